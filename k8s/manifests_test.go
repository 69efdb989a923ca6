package k8s_test

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// shutdownBudget is how long an app takes to stop after SIGTERM: HTTP
// requests drain for up to 10 s (web.Serve's grace), then NATS and MongoDB
// close within 5 s (shared/service Run; client/app Run does the same).
const shutdownBudget = 15

// ingressRoutes is the routing of docs/architecture.md: path prefix ->
// Service.
var ingressRoutes = map[string]string{
	"/api/users":    "auth",
	"/api/stuff":    "stuff",
	"/api/orders":   "orders",
	"/api/payments": "payments",
	"/":             "client",
}

// infraImages are the images not built here: the official MongoDB and NATS
// Streaming images, pinned to a release line.
var infraImages = []string{"mongo:7", "nats-streaming:0.25.6"}

// TestStrictDecoderRejectsUnknownFields makes sure the manifest checks can
// fail: the decoder refuses a misspelt field.
func TestStrictDecoderRejectsUnknownFields(t *testing.T) {
	dec := strictDecoder(t)
	good := "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n    - port: 80\n"
	if _, _, err := dec.Decode([]byte(good), nil, nil); err != nil {
		t.Fatalf("a valid Service: %v", err)
	}
	for _, bad := range []string{
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  port: 80\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          readinessProbe:\n            httpGet:\n              path: /readyz\n              prot: 3000\n",
		"apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  name: y\n",
	} {
		if _, _, err := dec.Decode([]byte(bad), nil, nil); err == nil {
			t.Errorf("decoded without error:\n%s", bad)
		}
	}
}

// TestManifests decodes every document skaffold applies in strict mode and
// checks that it deploys into the current namespace.
func TestManifests(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		if len(m.Objects) == 0 {
			t.Fatal("no objects")
		}
		for _, o := range m.Objects {
			meta, err := metaOf(o)
			if err != nil {
				t.Fatal(err)
			}
			if meta.GetNamespace() != "" {
				t.Errorf("%s %s: namespace %q; skaffold deploys into the current one", o.File, meta.GetName(), meta.GetNamespace())
			}
			if meta.GetLabels()["app.kubernetes.io/part-of"] != "stuffmart" {
				t.Errorf("%s %s: no app.kubernetes.io/part-of: stuffmart label", o.File, meta.GetName())
			}
		}
		for _, want := range []string{"auth", "stuff", "orders", "expiration", "payments", "client"} {
			if m.Deployments[want] == nil {
				t.Errorf("no Deployment %s", want)
			}
			if m.Services[want] == nil {
				t.Errorf("no Service %s", want)
			}
		}
		if m.StatefulSets["nats"] == nil || m.Services["nats"] == nil {
			t.Error("no StatefulSet and Service nats")
		}
	})
}

func metaOf(o object) (metav1.Object, error) {
	obj, err := meta.Accessor(o.Obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.File, err)
	}
	return obj, nil
}

// TestWorkloads checks every Deployment, StatefulSet and Job: selectors,
// probes, resources, security context and volumes, of init containers too.
func TestWorkloads(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		built := skaffoldImages(t)
		for _, w := range m.Workloads {
			t.Run(w.String(), func(t *testing.T) {
				sel, err := metav1.LabelSelectorAsSelector(w.Selector)
				if err != nil || sel.Empty() || !sel.Matches(w.podLabels()) {
					t.Errorf("selector %v does not select the pod template's labels %v (%v)", w.Selector, w.Template.Labels, err)
				}
				spec := w.Template.Spec
				if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
					t.Error("automountServiceAccountToken must be false: nothing here calls the Kubernetes API")
				}
				checkPodSecurity(t, spec.SecurityContext)
				if len(spec.Containers) == 0 {
					t.Fatal("no containers")
				}
				volumes := map[string]corev1.Volume{}
				for _, v := range spec.Volumes {
					volumes[v.Name] = v
					if v.PersistentVolumeClaim != nil && m.PVCs[v.PersistentVolumeClaim.ClaimName] == nil {
						t.Errorf("volume %s: no PersistentVolumeClaim %s", v.Name, v.PersistentVolumeClaim.ClaimName)
					}
				}
				for i, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
					if !built[c.Image] && !slices.Contains(infraImages, c.Image) {
						t.Errorf("container %s: image %q is neither built by skaffold.yaml nor one of %v", c.Name, c.Image, infraImages)
					}
					// Init containers and a Job's run to completion: no
					// probes.
					checkContainer(t, w, c, i >= len(spec.InitContainers) && w.Kind != "Job")
					if len(c.EnvFrom) != 0 {
						t.Errorf("container %s: envFrom; name each variable in env (the tests resolve env only)", c.Name)
					}
					for _, vm := range c.VolumeMounts {
						if _, ok := volumes[vm.Name]; !ok && !w.Claims[vm.Name] {
							t.Errorf("container %s: mount %s has no volume", c.Name, vm.Name)
						}
					}
				}
			})
		}
	})
}

func checkPodSecurity(t *testing.T, sc *corev1.PodSecurityContext) {
	t.Helper()
	if sc == nil {
		t.Error("no pod securityContext")
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("runAsNonRoot must be true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("runAsUser must be a non-zero uid (the kubelet cannot check a named USER)")
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("seccompProfile must be RuntimeDefault")
	}
}

func checkContainer(t *testing.T, w workload, c corev1.Container, serves bool) {
	t.Helper()
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}, {"startupProbe", c.StartupProbe}} {
		if p.probe == nil {
			if serves && p.name != "startupProbe" { // optional
				t.Errorf("container %s: no %s", c.Name, p.name)
			}
			continue
		}
		var port intstr.IntOrString
		switch h := p.probe.ProbeHandler; {
		case h.HTTPGet != nil:
			port = h.HTTPGet.Port
		case h.TCPSocket != nil:
			port = h.TCPSocket.Port
		default:
			t.Errorf("container %s: %s is neither httpGet nor tcpSocket (the images have no shell)", c.Name, p.name)
			continue
		}
		if _, ok := w.containerPort(port.String()); !ok {
			t.Errorf("container %s: %s port %s is not a container port", c.Name, p.name, port.String())
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim {
			t.Errorf("container %s: %s needs a request and a limit", c.Name, r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("container %s: %s request %s above its limit %s", c.Name, r, req.String(), lim.String())
		}
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("container %s: no securityContext", c.Name)
		return
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s: privileged", c.Name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container %s: capabilities must drop ALL and add none", c.Name)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("container %s: runs as root", c.Name)
	}
}

// appDeployments are the Deployments of the images skaffold builds (the five
// services and the storefront), by name.
func appDeployments(t *testing.T, m *manifests) map[string]*appsv1.Deployment {
	t.Helper()
	built := skaffoldImages(t)
	out := map[string]*appsv1.Deployment{}
	for name, d := range m.Deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if built[c.Image] {
				out[name] = d
			}
		}
	}
	return out
}

// skaffoldImages is the set of images skaffold.yaml builds.
func skaffoldImages(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, a := range loadSkaffold(t).Build.Artifacts {
		out[a.ImageName] = true
	}
	return out
}

// TestImagesBuiltBySkaffold: every app Deployment runs an image skaffold
// builds, every built image is deployed once, and nothing else is built.
func TestImagesBuiltBySkaffold(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		used := map[string]int{}
		for _, w := range m.Workloads {
			for _, c := range w.Template.Spec.Containers {
				used[c.Image]++
				if !strings.Contains(c.Image, ":") && !skaffoldImages(t)[c.Image] {
					t.Errorf("%s: image %q has no tag and is not built by skaffold", w, c.Image)
				}
			}
		}
		for img := range skaffoldImages(t) {
			if used[img] != 1 {
				t.Errorf("image %s is built by skaffold and used by %d containers; want 1", img, used[img])
			}
		}
		apps := appDeployments(t, m)
		want := []string{"auth", "client", "expiration", "orders", "payments", "stuff"}
		if got := slices.Sorted(maps.Keys(apps)); !slices.Equal(got, want) {
			t.Errorf("Deployments running skaffold-built images: %v; want %v", got, want)
		}
	})
}

// TestAppDeployments checks what every service and the storefront share:
// the port HTTP_ADDR listens on, the probes on /readyz and /healthz, the
// graceful stop, the Go memory limit, the uid of the image and the note on
// replicas.
func TestAppDeployments(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for name, d := range appDeployments(t, m) {
			t.Run(name, func(t *testing.T) {
				spec := d.Spec.Template.Spec
				if len(spec.Containers) != 1 {
					t.Fatalf("%d containers; want 1", len(spec.Containers))
				}
				c := spec.Containers[0]
				env := literalEnv(c)
				_, port, err := net.SplitHostPort(env["HTTP_ADDR"])
				if err != nil {
					t.Fatalf("HTTP_ADDR %q: %v", env["HTTP_ADDR"], err)
				}
				var http *corev1.ContainerPort
				for i := range c.Ports {
					if c.Ports[i].Name == "http" {
						http = &c.Ports[i]
					}
				}
				if http == nil || strconv.Itoa(int(http.ContainerPort)) != port {
					t.Errorf("container port http %v does not match HTTP_ADDR %q", http, env["HTTP_ADDR"])
				}
				for _, p := range []struct {
					probe *corev1.Probe
					path  string
				}{{c.ReadinessProbe, "/readyz"}, {c.LivenessProbe, "/healthz"}} {
					if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
						t.Errorf("want an httpGet probe of %s on port http", p.path)
					}
				}
				sleep := int64(0)
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
					sleep = c.Lifecycle.PreStop.Sleep.Seconds
				}
				if sleep == 0 {
					t.Error("no preStop sleep: the ingress would still send requests to a stopping pod")
				}
				if g := spec.TerminationGracePeriodSeconds; g == nil || *g < sleep+shutdownBudget {
					t.Errorf("terminationGracePeriodSeconds %v: below preStop %d s + shutdown %d s", g, sleep, shutdownBudget)
				}
				lim := c.Resources.Limits[corev1.ResourceMemory]
				gml, err := parseGoBytes(env["GOMEMLIMIT"])
				if err != nil {
					t.Errorf("GOMEMLIMIT: %v", err)
				} else if gml >= lim.Value() || gml < lim.Value()/2 {
					t.Errorf("GOMEMLIMIT %s should be a little below the memory limit %s", env["GOMEMLIMIT"], lim.String())
				}
				if uid := spec.SecurityContext.RunAsUser; uid == nil || *uid != distrolessNonroot {
					t.Errorf("runAsUser %v; want %d, the image's USER", uid, distrolessNonroot)
				}
				if !strings.Contains(string(docOf(t, m, d)), "Safe with more than one replica") {
					t.Error("no comment saying why it is safe with more than one replica")
				}
			})
		}
	})
}

// distrolessNonroot is the uid of distroless's nonroot user, which the
// Dockerfile's USER names in every image.
const distrolessNonroot = 65532

func docOf(t *testing.T, m *manifests, d *appsv1.Deployment) []byte {
	t.Helper()
	for _, o := range m.Objects {
		if o.Obj == d {
			return o.Doc
		}
	}
	t.Fatalf("no document for Deployment %s", d.Name)
	return nil
}

// literalEnv is the container's variables that have a literal value.
func literalEnv(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			out[e.Name] = e.Value
		}
	}
	return out
}

// parseGoBytes parses a GOMEMLIMIT value: a number of bytes with an optional
// B, KiB, MiB, GiB or TiB suffix (runtime/debug.SetMemoryLimit).
func parseGoBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a Go memory limit", s)
	}
	return n * mult, nil
}

// TestServices: every Service selects the pods of exactly one workload and
// targets ports its containers have; every app Deployment has a ClusterIP
// Service of its name; every StatefulSet is governed by a headless Service.
func TestServices(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for name, svc := range m.Services {
			t.Run(name, func(t *testing.T) {
				if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
					t.Errorf("type %s; want ClusterIP (the ingress is the way in)", svc.Spec.Type)
				}
				ws := m.workloadsSelectedBy(svc)
				if len(ws) != 1 {
					t.Fatalf("selector %v selects %d workloads; want 1", svc.Spec.Selector, len(ws))
				}
				if len(svc.Spec.Ports) == 0 {
					t.Error("no ports")
				}
				for _, p := range svc.Spec.Ports {
					target := p.TargetPort.String()
					if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
						target = strconv.Itoa(int(p.Port))
					}
					if _, ok := ws[0].containerPort(target); !ok {
						t.Errorf("port %d: targetPort %s is not a container port of %s", p.Port, target, ws[0])
					}
				}
			})
		}
		for name := range appDeployments(t, m) {
			svc := m.Services[name]
			if svc == nil || svc.Spec.ClusterIP == corev1.ClusterIPNone {
				t.Errorf("Deployment %s: no ClusterIP Service %s", name, name)
				continue
			}
			if ws := m.workloadsSelectedBy(svc); len(ws) != 1 || ws[0].Name != name {
				t.Errorf("Service %s selects %v, not Deployment %s", name, ws, name)
			}
		}
		for name, ss := range m.StatefulSets {
			svc := m.Services[ss.Spec.ServiceName]
			if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("StatefulSet %s: serviceName %q is not a headless Service", name, ss.Spec.ServiceName)
				continue
			}
			if ws := m.workloadsSelectedBy(svc); len(ws) != 1 || ws[0].Name != name {
				t.Errorf("Service %s selects %v, not StatefulSet %s", svc.Name, ws, name)
			}
		}
	})
}

// servicePort finds port p (a name or a number) of svc.
func servicePort(svc *corev1.Service, p networkingv1.ServiceBackendPort) (corev1.ServicePort, bool) {
	for _, sp := range svc.Spec.Ports {
		if (p.Name != "" && sp.Name == p.Name) || (p.Name == "" && sp.Port == p.Number) {
			return sp, true
		}
	}
	return corev1.ServicePort{}, false
}

// privateRoutes are the paths the ingress refuses to everyone (the
// Ingress stuffmart-private): what each app serves only to direct callers.
var privateRoutes = []string{"/metrics"}

// TestIngress: ingress-nginx, host stuffmart.dev with TLS from the Secret
// stuffmart-tls; the Ingress stuffmart sends each path to the Service and
// port of the app that serves it, and stuffmart-private refuses /metrics to
// every address, with a path longer than the public one that would match it
// (ingress-nginx picks the longest matching prefix).
func TestIngress(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		if len(m.Ingresses) != 2 || m.Ingresses["stuffmart"] == nil || m.Ingresses["stuffmart-private"] == nil {
			t.Fatalf("Ingresses %v; want stuffmart and stuffmart-private", slices.Sorted(maps.Keys(m.Ingresses)))
		}
		apps := appDeployments(t, m)
		routes := map[string]map[string]string{}
		for name, ing := range m.Ingresses {
			if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
				t.Errorf("%s: ingressClassName must be nginx", name)
			}
			if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "stuffmart.dev" || ing.Spec.Rules[0].HTTP == nil {
				t.Fatalf("%s: want one HTTP rule for host stuffmart.dev, got %+v", name, ing.Spec.Rules)
			}
			// TLS for the host, from the Secret the README's certificate
			// step creates.
			if len(ing.Spec.TLS) != 1 || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"stuffmart.dev"}) || ing.Spec.TLS[0].SecretName != "stuffmart-tls" {
				t.Errorf("%s: tls %+v; want stuffmart.dev with the Secret stuffmart-tls", name, ing.Spec.TLS)
			}
			got := map[string]string{}
			for _, p := range ing.Spec.Rules[0].HTTP.Paths {
				if p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
					t.Errorf("%s: path %s: pathType must be Prefix", name, p.Path)
				}
				b := p.Backend.Service
				if b == nil {
					t.Errorf("%s: path %s: no service backend", name, p.Path)
					continue
				}
				if _, dup := got[p.Path]; dup {
					t.Errorf("%s: path %s listed twice", name, p.Path)
				}
				got[p.Path] = b.Name
				svc := m.Services[b.Name]
				if svc == nil {
					t.Errorf("%s: path %s: no Service %s", name, p.Path, b.Name)
					continue
				}
				if _, ok := servicePort(svc, b.Port); !ok {
					t.Errorf("%s: path %s: Service %s has no port %+v", name, p.Path, b.Name, b.Port)
				}
				if ws := m.workloadsSelectedBy(svc); len(ws) != 1 || apps[ws[0].Name] == nil {
					t.Errorf("%s: path %s: Service %s does not select an app Deployment", name, p.Path, b.Name)
				}
			}
			routes[name] = got
		}
		if !maps.Equal(routes["stuffmart"], ingressRoutes) {
			t.Errorf("stuffmart: routes %v; want %v", routes["stuffmart"], ingressRoutes)
		}
		if got := slices.Sorted(maps.Keys(routes["stuffmart-private"])); !slices.Equal(got, privateRoutes) {
			t.Errorf("stuffmart-private: paths %v; want %v", got, privateRoutes)
		}
		if deny := m.Ingresses["stuffmart-private"].Annotations["nginx.ingress.kubernetes.io/denylist-source-range"]; !deniesEveryone(deny) {
			t.Errorf("stuffmart-private: denylist-source-range %q must cover every IPv4 and IPv6 address", deny)
		}
		for k := range m.Ingresses["stuffmart"].Annotations {
			if strings.Contains(k, "source-range") {
				t.Errorf("stuffmart: %s restricts the public routes", k)
			}
		}
		for _, private := range privateRoutes {
			for public := range ingressRoutes {
				if prefixMatches(public, private) && len(public) >= len(private) {
					t.Errorf("public route %s would win over the refusal of %s", public, private)
				}
			}
		}
	})
}

// prefixMatches reports whether a Prefix path matches path p, element by
// element as the Ingress API defines it.
func prefixMatches(prefix, p string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

// deniesEveryone reports whether a comma-separated list of CIDRs covers all
// of IPv4 and IPv6.
func deniesEveryone(list string) bool {
	var v4, v6 bool
	for _, c := range strings.Split(list, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return false
		}
		if p.Bits() == 0 {
			v4 = v4 || p.Addr().Is4()
			v6 = v6 || p.Addr().Is6()
		}
	}
	return v4 && v6
}

// TestInClusterAddresses: every URL a Deployment is configured with (as the
// kubelet resolves its environment) names Services and ports of the overlay,
// or pods of a StatefulSet by their stable names, each service has its own
// MongoDB, and the storefront's public URL is the ingress host.
func TestInClusterAddresses(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		defaultPorts := map[string]string{"http": "80", "mongodb": "27017", "nats": "4222"}
		mongoOf := map[string]string{}
		for name, d := range appDeployments(t, m) {
			env, err := resolveEnv(m, d.Spec.Template.Spec.Containers[0], true)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range env {
				scheme, rest, ok := strings.Cut(v, "://")
				if !ok || !slices.Contains([]string{"http", "https", "mongodb", "nats"}, scheme) {
					continue
				}
				if _, after, ok := strings.Cut(rest, "@"); ok {
					rest = after
				}
				hostList, _, _ := strings.Cut(rest, "/")
				hostList, _, _ = strings.Cut(hostList, "?")
				for _, host := range strings.Split(hostList, ",") {
					h, port, err := net.SplitHostPort(host)
					if err != nil {
						h, port = host, defaultPorts[scheme]
					}
					if k == "PUBLIC_URL" {
						if h != "stuffmart.dev" {
							t.Errorf("%s: PUBLIC_URL %s is not the ingress host", name, v)
						}
						continue
					}
					w, ok := inClusterHost(m, h)
					if !ok {
						t.Errorf("%s: %s: host %s is neither a Service nor a StatefulSet's pod of the overlay", name, k, h)
						continue
					}
					if _, ok := w.containerPort(port); !ok {
						if svc := m.Services[h]; svc == nil || !hasServicePort(svc, port) {
							t.Errorf("%s: %s: %s has no port %s", name, k, h, port)
						}
					}
					if scheme == "mongodb" {
						if prev, ok := mongoOf[name]; ok && prev != w.String() {
							t.Errorf("%s: MONGO_URI reaches %s and %s", name, prev, w)
						}
						mongoOf[name] = w.String()
						if !strings.HasPrefix(w.Template.Spec.Containers[0].Image, "mongo:") {
							t.Errorf("%s: MONGO_URI %s does not reach a MongoDB", name, h)
						}
					}
				}
			}
		}
		owners := map[string]string{}
		for app, db := range mongoOf {
			if other, ok := owners[db]; ok {
				t.Errorf("%s and %s share %s; each service owns its database", app, other, db)
			}
			owners[db] = app
		}
		for _, app := range []string{"auth", "stuff", "orders", "expiration", "payments"} {
			if mongoOf[app] == "" {
				t.Errorf("%s has no MongoDB", app)
			}
		}
	})
}

// inClusterHost finds the workload behind a host name: a Service of the
// overlay that selects one workload, or <statefulset>-<ordinal>.<service>,
// a pod of a StatefulSet that Service governs.
func inClusterHost(m *manifests, host string) (workload, bool) {
	if svc := m.Services[host]; svc != nil {
		if ws := m.workloadsSelectedBy(svc); len(ws) == 1 {
			return ws[0], true
		}
		return workload{}, false
	}
	pod, svc, ok := strings.Cut(host, ".")
	if !ok {
		return workload{}, false
	}
	for name, ss := range m.StatefulSets {
		ord, found := strings.CutPrefix(pod, name+"-")
		n, err := strconv.Atoi(ord)
		if !found || err != nil || ss.Spec.ServiceName != svc {
			continue
		}
		if replicas := int32(1); ss.Spec.Replicas != nil {
			replicas = *ss.Spec.Replicas
			if n < 0 || int32(n) >= replicas {
				return workload{}, false
			}
		} else if n != 0 {
			return workload{}, false
		}
		return m.workload("StatefulSet", name)
	}
	return workload{}, false
}

func hasServicePort(svc *corev1.Service, port string) bool {
	for _, p := range svc.Spec.Ports {
		if strconv.Itoa(int(p.Port)) == port {
			return true
		}
	}
	return false
}

// TestMongo: the official image, data on a claim of the StatefulSet, run as
// the image's mongodb user with a volume it can write.
func TestMongo(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		mongos := mongoStatefulSets(m)
		if len(mongos) != 5 {
			t.Errorf("%d MongoDB StatefulSets; want one per service (5)", len(mongos))
		}
		for name, ss := range mongos {
			spec := ss.Spec.Template.Spec
			c := spec.Containers[0]
			if c.Image != "mongo:7" {
				t.Errorf("%s: image %s; want the official mongo:7", name, c.Image)
			}
			sc := spec.SecurityContext
			if sc.RunAsUser == nil || *sc.RunAsUser != 999 || sc.FSGroup == nil || *sc.FSGroup != 999 {
				t.Errorf("%s: want runAsUser and fsGroup 999, the image's mongodb user", name)
			}
			var data bool
			for _, vm := range c.VolumeMounts {
				if vm.MountPath == "/data/db" && ss.Spec.VolumeClaimTemplates != nil && slices.ContainsFunc(ss.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == vm.Name }) {
					data = true
				}
			}
			if !data {
				t.Errorf("%s: /data/db is not on a volumeClaimTemplate", name)
			}
			for _, p := range ss.Spec.VolumeClaimTemplates {
				if q := p.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse("1Gi")) < 0 {
					t.Errorf("%s: claim %s of %s; want at least 1Gi", name, p.Name, q.String())
				}
			}
		}
	})
}

// mongoStatefulSets are the StatefulSets that run MongoDB, by name.
func mongoStatefulSets(m *manifests) map[string]*appsv1.StatefulSet {
	out := map[string]*appsv1.StatefulSet{}
	for name, ss := range m.StatefulSets {
		if cs := ss.Spec.Template.Spec.Containers; len(cs) > 0 && strings.HasPrefix(cs[0].Image, "mongo:") {
			out[name] = ss
		}
	}
	return out
}
