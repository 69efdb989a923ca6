package k8s_test

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// prodManifests is the overlay `skaffold run -p prod` deploys.
func prodManifests(t *testing.T) *manifests {
	t.Helper()
	for _, o := range skaffoldOverlays(t) {
		if o.Profile == "prod" {
			return loadOverlay(t, o.Dir)
		}
	}
	t.Fatal("skaffold.yaml has no prod profile")
	return nil
}

// memberHosts are the stable names of a StatefulSet's pods, as a replica
// set's members and its clients name them.
func memberHosts(name, service string, replicas int32, port string) []string {
	var out []string
	for i := range replicas {
		out = append(out, fmt.Sprintf("%s-%d.%s:%s", name, i, service, port))
	}
	return out
}

// argValue is the value of flag among args (--flag value or --flag=value).
func argValue(args []string, flag string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestProdMongoReplicaSets: in production every MongoDB is a replica set of
// an odd number of members, at least three, which authenticate to each
// other with a keyfile of their own database's Secret (copied by an init
// container to a volume only mongod reads); its members resolve before they
// are ready; its service connects to every member by name with the set's
// name; and the Job initiates each set with exactly those members.
func TestProdMongoReplicaSets(t *testing.T) {
	m := prodManifests(t)
	job := m.Jobs["mongo-replica-sets"]
	if job == nil {
		t.Fatal("no Job mongo-replica-sets")
	}
	jobSpec := job.Spec.Template.Spec
	if jobSpec.RestartPolicy != corev1.RestartPolicyOnFailure || job.Spec.TTLSecondsAfterFinished == nil {
		t.Error("the Job must retry (restartPolicy OnFailure) and go away after it succeeds (ttlSecondsAfterFinished), so the next deploy re-creates it")
	}
	script := ""
	for name, cm := range m.ConfigMaps {
		if strings.HasPrefix(name, "mongo-replica-set-init") {
			script = cm.Data["initiate-replica-set.js"]
		}
	}
	for _, want := range []string{"replSetGetStatus", "replSetInitiate", "NotYetInitialized = 94"} {
		if !strings.Contains(script, want) {
			t.Errorf("initiate-replica-set.js does not use %s: it must initiate once and only once", want)
		}
	}
	scriptVars := map[string]bool{}
	for _, v := range regexp.MustCompile(`process\.env\.(\w+)`).FindAllStringSubmatch(script, -1) {
		scriptVars[v[1]] = true
	}
	initiated := map[string]bool{}
	for _, svc := range services {
		name := svc + "-mongo"
		t.Run(name, func(t *testing.T) {
			ss := m.StatefulSets[name]
			if ss == nil {
				t.Fatal("no StatefulSet")
			}
			spec := ss.Spec.Template.Spec
			c := spec.Containers[0]
			n := int32(1)
			if ss.Spec.Replicas != nil {
				n = *ss.Spec.Replicas
			}
			if n < 3 || n%2 == 0 {
				t.Errorf("%d members; want an odd number, 3 or more (a majority survives one down)", n)
			}
			set := replicaSetName(c.Args)
			if set == "" {
				t.Fatal("mongod has no --replSet")
			}
			if svc := m.Services[ss.Spec.ServiceName]; svc == nil || !svc.Spec.PublishNotReadyAddresses {
				t.Errorf("Service %s does not publish members before they are ready: they could not find each other while starting", ss.Spec.ServiceName)
			}

			// The keyfile: mongod reads it from a memory volume that an init
			// container fills, with install -m 0400, from the Secret.
			keyFile := argValue(c.Args, "--keyFile")
			if keyFile == "" {
				t.Fatal("mongod has no --keyFile: members of a set with authentication must authenticate to each other")
			}
			mountOf := func(c corev1.Container, p string) (corev1.VolumeMount, bool) {
				for _, vm := range c.VolumeMounts {
					if path.Dir(p) == path.Clean(vm.MountPath) {
						return vm, true
					}
				}
				return corev1.VolumeMount{}, false
			}
			vm, ok := mountOf(c, keyFile)
			vol := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
			if !ok || vol < 0 || spec.Volumes[vol].EmptyDir == nil || spec.Volumes[vol].EmptyDir.Medium != corev1.StorageMediumMemory {
				t.Errorf("--keyFile %s is not on a memory emptyDir", keyFile)
			}
			copied := false
			for _, ic := range spec.InitContainers {
				cmd := ic.Command
				if len(cmd) != 5 || cmd[0] != "install" || cmd[1] != "-m" || cmd[2] != "0400" || cmd[4] != keyFile {
					continue
				}
				src, ok := mountOf(ic, cmd[3])
				if dst, ok2 := mountOf(ic, cmd[4]); !ok || !ok2 || dst.Name != vm.Name {
					continue
				}
				for _, v := range spec.Volumes {
					if v.Name == src.Name && v.Secret != nil && v.Secret.SecretName == svc+"-mongo" &&
						len(v.Secret.Items) == 1 && v.Secret.Items[0].Key == "MONGO_KEYFILE" && v.Secret.Items[0].Path == path.Base(cmd[3]) {
						copied = true
					}
				}
			}
			if !copied {
				t.Errorf("no init container copies %s-mongo's MONGO_KEYFILE to %s with mode 0400", svc, keyFile)
			}

			hosts := memberHosts(name, ss.Spec.ServiceName, n, "27017")
			d := m.Deployments[svc]
			env, err := resolveEnv(m, d.Spec.Template.Spec.Containers[0], true)
			if err != nil {
				t.Fatal(err)
			}
			u, err := parseMongoURI(env["MONGO_URI"])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(u.Hosts, hosts) || u.Query.Get("replicaSet") != set {
				t.Errorf("%s's MONGO_URI names %v, replica set %q; want %v, %q", svc, u.Hosts, u.Query.Get("replicaSet"), hosts, set)
			}

			// The Job's container for this database.
			i := slices.IndexFunc(jobSpec.Containers, func(c corev1.Container) bool { return c.Name == svc })
			if i < 0 {
				t.Fatalf("the Job has no container %s", svc)
			}
			jc := jobSpec.Containers[i]
			jenv, err := resolveEnv(m, jc, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Split(jenv["MONGO_HOSTS"], ","); !slices.Equal(got, hosts) || jenv["MONGO_REPLICA_SET"] != set {
				t.Errorf("the Job initiates %q with %v; want %q with %v", jenv["MONGO_REPLICA_SET"], got, set, hosts)
			}
			if jenv["MONGO_ROOT_PASSWORD"] != secretValue(name, "MONGO_ROOT_PASSWORD") {
				t.Errorf("the Job's container %s does not log in with %s's root password", svc, name)
			}
			for v := range scriptVars {
				if _, ok := jenv[v]; !ok {
					t.Errorf("initiate-replica-set.js reads %s, which the Job's container %s does not set", v, svc)
				}
			}
			if !slices.Contains(jc.Command, "/scripts/initiate-replica-set.js") {
				t.Errorf("the Job's container %s runs %v", svc, jc.Command)
			}
			initiated[svc] = true
		})
	}
	if len(jobSpec.Containers) != len(initiated) {
		t.Errorf("the Job has %d containers for %d databases", len(jobSpec.Containers), len(initiated))
	}
}

// TestProdPayments: production needs the Stripe key (payments does not
// start without it) and the storefront asks for a real payment method.
func TestProdPayments(t *testing.T) {
	m := prodManifests(t)
	env, err := resolveEnv(m, m.Deployments["payments"].Spec.Template.Spec.Containers[0], false)
	if err != nil {
		t.Fatal(err)
	}
	if env["STRIPE_SECRET_KEY"] == "" {
		t.Error("payments would run in offline test mode: STRIPE_SECRET_KEY must be a required secret")
	}
	if env["STRIPE_WEBHOOK_SECRET"] == "" {
		t.Error("no card payment's webhook could be verified: STRIPE_WEBHOOK_SECRET must be a required secret")
	}
	cfg, err := loaders["client"](func(k string) string {
		env, _ := resolveEnv(m, m.Deployments["client"].Spec.Template.Spec.Containers[0], false)
		return env[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if flatten(cfg)["PaymentsOffline"] != false {
		t.Error("the storefront offers Stripe's test cards in production")
	}
}

// TestProdIngress: HTTP is redirected to HTTPS.
func TestProdIngress(t *testing.T) {
	m := prodManifests(t)
	ing := m.Ingresses["stuffmart"]
	if ing == nil {
		t.Fatal("no Ingress stuffmart")
	}
	if ing.Annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] != "true" {
		t.Error("no nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"")
	}
}

// TestProdReplicas: production runs more of every app than a laptop, at
// least three (one to spare while another is replaced and a third is
// drained), and lets the autoscaled ones grow further.
func TestProdReplicas(t *testing.T) {
	prod, dev := prodManifests(t), loadManifests(t)
	least := func(m *manifests, name string) (int32, int32) {
		if h := hpaFor(m, name); h != nil && h.Spec.MinReplicas != nil {
			return *h.Spec.MinReplicas, h.Spec.MaxReplicas
		}
		if r := m.Deployments[name].Spec.Replicas; r != nil {
			return *r, *r
		}
		return 1, 1
	}
	for name := range appDeployments(t, prod) {
		pmin, pmax := least(prod, name)
		dmin, dmax := least(dev, name)
		if pmin < 3 || pmin <= dmin || pmax <= dmax {
			t.Errorf("%s: %d to %d replicas in production, %d to %d in dev; want 3 or more, and more than dev", name, pmin, pmax, dmin, dmax)
		}
	}
}
