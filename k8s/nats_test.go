package k8s_test

import (
	"flag"
	"io"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	stand "github.com/nats-io/nats-streaming-server/server"

	"github.com/stuffmart/stuffmart/shared/embedded"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// natsPorts are the ports the NATS server listens on, and the credentials
// it requires of clients.
type natsPorts struct {
	Client, HTTP   int
	User, Password string
}

// natsOptions parses the nats-streaming container's arguments, with $(VAR)
// expanded from its environment as the kubelet does, with the server's own
// flag parsing (the image's entrypoint is the server binary of the same
// release, v0.25.6, that the tests embed).
func natsOptions(t *testing.T, m *manifests) (*stand.Options, natsPorts) {
	t.Helper()
	c := natsContainer(t, m)
	env, err := resolveEnv(m, c, false)
	if err != nil {
		t.Fatal(err)
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = expandVars(a, env)
	}
	fs := flag.NewFlagSet("nats-streaming-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fail := func() { t.Fatalf("the arguments %q ask for help or the version", c.Args) }
	sopts, nopts, err := stand.ConfigureOptions(fs, args, fail, fail, fail)
	if err != nil {
		t.Fatalf("nats-streaming-server %s: %v", strings.Join(c.Args, " "), err)
	}
	if fs.NArg() != 0 {
		t.Fatalf("arguments the server ignores: %q", fs.Args())
	}
	return sopts, natsPorts{Client: nopts.Port, HTTP: nopts.HTTPPort, User: nopts.Username, Password: nopts.Password}
}

func natsStatefulSet(t *testing.T, m *manifests) *appsv1.StatefulSet {
	t.Helper()
	ss := m.StatefulSets["nats"]
	if ss == nil {
		t.Fatal("no nats StatefulSet")
	}
	return ss
}

func natsContainer(t *testing.T, m *manifests) corev1.Container {
	t.Helper()
	cs := natsStatefulSet(t, m).Spec.Template.Spec.Containers
	if len(cs) != 1 || !strings.HasPrefix(cs[0].Image, "nats-streaming:") {
		t.Fatalf("want one nats-streaming container, got %d", len(cs))
	}
	if len(cs[0].Command) != 0 {
		t.Fatal("command replaces the image's entrypoint (the server); give only args")
	}
	return cs[0]
}

// TestNATSStreaming checks the server's settings: those of the embedded
// server of `make dev` and the tests (shared/embedded.StartNATS), one server
// (one writer of the file store) with the store on a claim of its
// StatefulSet's template, and the ports the Service and the probes use.
func TestNATSStreaming(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		sopts, nopts := natsOptions(t, m)
		ss := natsStatefulSet(t, m)
		c := natsContainer(t, m)

		if got := strings.ToUpper(sopts.StoreType); got != "FILE" {
			t.Errorf("store %q; want a file store", sopts.StoreType)
		}
		// Clients that vanish are found within seconds, as in shared/embedded.
		if sopts.ClientHBInterval != time.Second || sopts.ClientHBTimeout != time.Second || sopts.ClientHBFailCount != 3 {
			t.Errorf("client heartbeats %v/%v/%d; want 1s/1s/3", sopts.ClientHBInterval, sopts.ClientHBTimeout, sopts.ClientHBFailCount)
		}
		if !sopts.ReplaceDurable {
			t.Error("--replace_durable is off: a restarted service could not take its durable subscription back")
		}
		if sopts.MaxChannels != 0 || sopts.MaxSubscriptions != 0 {
			t.Errorf("channel and subscription limits %d/%d; want none (0), as shared/embedded", sopts.MaxChannels, sopts.MaxSubscriptions)
		}
		if sopts.MaxAge != embedded.ChannelMaxAge || sopts.MaxBytes != embedded.ChannelMaxBytes || sopts.MaxMsgs != 0 {
			t.Errorf("channel limits age %v, bytes %d, messages %d; want %v, %d and none, as shared/embedded",
				sopts.MaxAge, sopts.MaxBytes, sopts.MaxMsgs, embedded.ChannelMaxAge, embedded.ChannelMaxBytes)
		}

		// The store is a folder strictly inside the volume of a claim of the
		// StatefulSet's template: its root may hold lost+found, and the file
		// store takes every folder for a channel.
		onClaim := false
		for _, vm := range c.VolumeMounts {
			rel := strings.TrimPrefix(path.Clean(sopts.FilestoreDir), path.Clean(vm.MountPath)+"/")
			if slices.ContainsFunc(ss.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == vm.Name }) &&
				rel != path.Clean(sopts.FilestoreDir) && rel != "" {
				onClaim = true
			}
		}
		if !onClaim {
			t.Errorf("--dir %q is not a folder inside a volume of the StatefulSet's volumeClaimTemplates", sopts.FilestoreDir)
		}
		if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
			t.Errorf("replicas %v; want 1: two servers cannot share one file store", ss.Spec.Replicas)
		}
		if p := ss.Spec.PersistentVolumeClaimRetentionPolicy; p != nil &&
			(p.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType || p.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType) {
			t.Errorf("persistentVolumeClaimRetentionPolicy %+v deletes the events with the StatefulSet", *p)
		}

		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if int32(nopts.Client) != ports["nats"] {
			t.Errorf("the server listens on %d; container port nats is %d", nopts.Client, ports["nats"])
		}
		if nopts.HTTP == 0 || int32(nopts.HTTP) != ports["monitor"] {
			t.Errorf("monitoring port %d; container port monitor is %d (the probes use it)", nopts.HTTP, ports["monitor"])
		}
		svc := m.Services["nats"]
		if svc == nil {
			t.Fatal("no Service nats")
		}
		// The Service exposes the client port and nothing else: the
		// monitoring port tells anyone the channels, clients and
		// subscriptions; the probes reach the pod directly.
		if len(svc.Spec.Ports) != 1 || (svc.Spec.Ports[0].TargetPort.String() != "nats" && svc.Spec.Ports[0].TargetPort.String() != strconv.Itoa(nopts.Client)) {
			t.Errorf("Service nats ports %+v; want the client port only", svc.Spec.Ports)
		}
	})
}

// TestNATSAuthentication: the server requires a user and password, the
// password from the Secret nats-secret, and every service's NATS_URL (as the
// kubelet expands it) carries exactly those.
func TestNATSAuthentication(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		_, nopts := natsOptions(t, m)
		if nopts.User == "" || nopts.Password != secretValue("nats-secret", "NATS_PASSWORD") {
			t.Fatalf("the server's --user %q, --pass %q; want a user and the password of nats-secret", nopts.User, nopts.Password)
		}
		for name, d := range appDeployments(t, m) {
			env, err := resolveEnv(m, d.Spec.Template.Spec.Containers[0], false)
			if err != nil {
				t.Fatal(err)
			}
			raw, ok := env["NATS_URL"]
			if !ok {
				continue // the storefront does not use NATS
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Errorf("%s: NATS_URL: %v", name, err)
				continue
			}
			pass, _ := u.User.Password()
			if u.User.Username() != nopts.User || pass != nopts.Password {
				t.Errorf("%s: NATS_URL logs in as %q with %q; the server wants %q with nats-secret's NATS_PASSWORD", name, u.User.Username(), pass, nopts.User)
			}
		}
	})
}
