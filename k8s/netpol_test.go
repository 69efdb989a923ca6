package k8s_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// This file evaluates the NetworkPolicies of an overlay as the Kubernetes
// API defines them (a pod selected by a policy of a type is isolated for
// that direction and accepts only what some rule of those policies allows; a
// connection needs both the source's egress and the destination's ingress),
// for every pair of pods the overlay runs plus the outsiders that matter,
// on every port. There is no cluster here to try them on.

// appNamespace is the namespace the tests place the overlay in: skaffold
// deploys into the current one, whatever its name.
const appNamespace = "stuffmart"

// endpoint is one end of a connection: a pod (of a workload of the overlay,
// or an outsider) or an address outside the cluster.
type endpoint struct {
	Name      string
	Namespace string // "" for an address outside the cluster
	NSLabels  labels.Set
	Labels    labels.Set
	IP        netip.Addr
	Ports     []corev1.ContainerPort
	// Ours is a pod of the overlay: the policies apply to it.
	Ours bool
}

func (e endpoint) isPod() bool { return e.Namespace != "" }

// outsiders are the endpoints that are not the overlay's pods.
func outsiders() []endpoint {
	ns := func(name string) labels.Set { return labels.Set{"kubernetes.io/metadata.name": name} }
	tcp := func(name string, port int32) corev1.ContainerPort {
		return corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}
	}
	return []endpoint{
		{Name: "ingress-nginx", Namespace: "ingress-nginx", NSLabels: ns("ingress-nginx"),
			Labels: labels.Set{"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
			IP:     netip.MustParseAddr("10.244.1.10"), Ports: []corev1.ContainerPort{tcp("http", 80), tcp("https", 443)}},
		{Name: "kube-dns", Namespace: "kube-system", NSLabels: ns("kube-system"), Labels: labels.Set{"k8s-app": "kube-dns"},
			IP: netip.MustParseAddr("10.244.1.11"),
			Ports: []corev1.ContainerPort{
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}, tcp("dns-tcp", 53), tcp("metrics", 9153),
			}},
		// Anything started in the namespace by hand (kubectl run), or a pod
		// of another app that is compromised.
		{Name: "intruder", Namespace: appNamespace, NSLabels: ns(appNamespace), Labels: labels.Set{"run": "intruder"},
			IP: netip.MustParseAddr("10.244.0.250"), Ports: []corev1.ContainerPort{tcp("http", 8080)}},
		{Name: "other-namespace", Namespace: "other", NSLabels: ns("other"),
			Labels: labels.Set{"app.kubernetes.io/name": "auth", "app.kubernetes.io/part-of": "stuffmart"},
			IP:     netip.MustParseAddr("10.244.2.10"), Ports: []corev1.ContainerPort{tcp("http", 3000)}},
		// Prometheus scrapes the apps from namespace monitoring; nothing
		// else there may reach them, nor a Prometheus of another namespace.
		{Name: "prometheus", Namespace: "monitoring", NSLabels: ns("monitoring"),
			Labels: labels.Set{"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack-prometheus"},
			IP:     netip.MustParseAddr("10.244.3.10"), Ports: []corev1.ContainerPort{tcp("web", 9090)}},
		{Name: "grafana", Namespace: "monitoring", NSLabels: ns("monitoring"),
			Labels: labels.Set{"app.kubernetes.io/name": "grafana"},
			IP:     netip.MustParseAddr("10.244.3.11"), Ports: []corev1.ContainerPort{tcp("grafana", 3000)}},
		{Name: "prometheus-elsewhere", Namespace: "observability", NSLabels: ns("observability"),
			Labels: labels.Set{"app.kubernetes.io/name": "prometheus"},
			IP:     netip.MustParseAddr("10.244.4.10"), Ports: []corev1.ContainerPort{tcp("web", 9090)}},
		{Name: "api.stripe.com", IP: netip.MustParseAddr("54.187.216.72"), Ports: []corev1.ContainerPort{tcp("https", 443)}},
		{Name: "cloud-metadata", IP: netip.MustParseAddr("169.254.169.254"), Ports: []corev1.ContainerPort{tcp("http", 80)}},
		{Name: "node", IP: netip.MustParseAddr("172.18.0.2"), Ports: []corev1.ContainerPort{tcp("kubelet", 10250)}},
	}
}

// endpoints are the overlay's pods (one per workload: its replicas share
// labels and ports) and the outsiders.
func endpoints(m *manifests) []endpoint {
	var out []endpoint
	for i, w := range m.Workloads {
		var ports []corev1.ContainerPort
		for _, c := range w.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Protocol == "" {
					p.Protocol = corev1.ProtocolTCP
				}
				ports = append(ports, p)
			}
		}
		out = append(out, endpoint{
			Name: w.Name, Namespace: appNamespace, NSLabels: labels.Set{"kubernetes.io/metadata.name": appNamespace},
			Labels: w.podLabels(), IP: netip.AddrFrom4([4]byte{10, 244, 0, byte(10 + i)}), Ports: ports, Ours: true,
		})
	}
	return append(out, outsiders()...)
}

// netpolEval answers whether a connection is allowed under a set of policies
// of appNamespace.
type netpolEval struct {
	policies []*networkingv1.NetworkPolicy
}

func hasType(p *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(p.Spec.PolicyTypes) == 0 { // the API's default
		return t == networkingv1.PolicyTypeIngress || (t == networkingv1.PolicyTypeEgress && len(p.Spec.Egress) > 0)
	}
	return slices.Contains(p.Spec.PolicyTypes, t)
}

func selects(sel metav1.LabelSelector, set labels.Set) (bool, error) {
	s, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil {
		return false, err
	}
	return s.Matches(set), nil
}

// peerMatches: does the rule's peer list admit e?
func peerMatches(peers []networkingv1.NetworkPolicyPeer, e endpoint) (bool, error) {
	if len(peers) == 0 {
		return true, nil
	}
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			if e.isPod() { // ipBlock is for addresses outside the cluster
				continue
			}
			cidr, err := netip.ParsePrefix(p.IPBlock.CIDR)
			if err != nil {
				return false, err
			}
			in := cidr.Contains(e.IP)
			for _, x := range p.IPBlock.Except {
				ex, err := netip.ParsePrefix(x)
				if err != nil {
					return false, err
				}
				in = in && !ex.Contains(e.IP)
			}
			if in {
				return true, nil
			}
		case e.isPod():
			nsOK := e.Namespace == appNamespace
			if p.NamespaceSelector != nil {
				ok, err := selects(*p.NamespaceSelector, e.NSLabels)
				if err != nil {
					return false, err
				}
				nsOK = ok
			}
			podOK := true
			if p.PodSelector != nil {
				ok, err := selects(*p.PodSelector, e.Labels)
				if err != nil {
					return false, err
				}
				podOK = ok
			}
			if nsOK && podOK {
				return true, nil
			}
		}
	}
	return false, nil
}

// portMatches: does the rule's port list admit port/proto on dst (named ports
// are dst's container ports)?
func portMatches(ports []networkingv1.NetworkPolicyPort, dst endpoint, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == 0: // int
			end := p.Port.IntVal
			if p.EndPort != nil {
				end = *p.EndPort
			}
			if port >= p.Port.IntVal && port <= end {
				return true
			}
		default:
			for _, cp := range dst.Ports {
				if cp.Name == p.Port.StrVal && cp.ContainerPort == port && cp.Protocol == proto {
					return true
				}
			}
		}
	}
	return false
}

// allowed reports whether src may open a connection to dst on port/proto.
func (n netpolEval) allowed(src, dst endpoint, port int32, proto corev1.Protocol) (bool, error) {
	direction := func(self, other endpoint, t networkingv1.PolicyType) (bool, error) {
		if !self.Ours {
			return true, nil // no policy of ours applies to it
		}
		isolated := false
		for _, p := range n.policies {
			if !hasType(p, t) {
				continue
			}
			ok, err := selects(p.Spec.PodSelector, self.Labels)
			if err != nil || !ok {
				if err != nil {
					return false, err
				}
				continue
			}
			isolated = true
			if t == networkingv1.PolicyTypeIngress {
				for _, r := range p.Spec.Ingress {
					peer, err := peerMatches(r.From, other)
					if err != nil {
						return false, err
					}
					if peer && portMatches(r.Ports, self, port, proto) {
						return true, nil
					}
				}
			} else {
				for _, r := range p.Spec.Egress {
					peer, err := peerMatches(r.To, other)
					if err != nil {
						return false, err
					}
					if peer && portMatches(r.Ports, other, port, proto) {
						return true, nil
					}
				}
			}
		}
		return !isolated, nil
	}
	out, err := direction(src, dst, networkingv1.PolicyTypeEgress)
	if err != nil || !out {
		return false, err
	}
	return direction(dst, src, networkingv1.PolicyTypeIngress)
}

// intendedFlows are the connections an overlay must allow, as
// "source -> destination:port-name"; every other one must be denied.
func intendedFlows(m *manifests) map[string]bool {
	services := []string{"auth", "stuff", "orders", "expiration", "payments"}
	apis := []string{"auth", "stuff", "orders", "payments"}
	flows := map[string]bool{}
	add := func(src, dst, port string) { flows[src+" -> "+dst+":"+port] = true }
	for _, w := range m.Workloads {
		add(w.Name, "kube-dns", "dns")
		add(w.Name, "kube-dns", "dns-tcp")
	}
	for _, a := range append(apis, "client") {
		add("ingress-nginx", a, "http")
	}
	// Prometheus scrapes each app's /metrics on its own port.
	for _, a := range append(services, "client") {
		add("prometheus", a, "http")
	}
	for _, a := range apis {
		add("client", a, "http")
	}
	for _, s := range services {
		add(s, "nats", "nats")
		add(s, s+"-mongo", "mongo")
	}
	add("payments", "api.stripe.com", "https")
	// Replica sets (k8s/prod): members replicate from each other; the Job
	// that initiates the sets reaches every member.
	for name, ss := range mongoStatefulSets(m) {
		if replicaSetName(ss.Spec.Template.Spec.Containers[0].Args) != "" {
			add(name, name, "mongo")
			add("mongo-replica-sets", name, "mongo")
		}
	}
	return flows
}

// TestNetworkPolicies evaluates every connection between the overlay's
// pods, the ingress controller, the cluster's DNS, Prometheus and Grafana in
// namespace monitoring, a Prometheus elsewhere, a pod started by hand in
// the namespace, a pod of another namespace and addresses outside the
// cluster, on each port the destination listens on: exactly the intended
// flows are allowed. Without the policies everything is.
func TestNetworkPolicies(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		var n netpolEval
		for _, p := range m.NetworkPolicies {
			n.policies = append(n.policies, p)
		}
		want := intendedFlows(m)
		got := map[string]bool{}
		eps := endpoints(m)
		for _, src := range eps {
			for _, dst := range eps {
				if !src.Ours && !dst.Ours {
					continue // neither end is ours
				}
				if src.Name == "node" {
					continue // the kubelet's probes: node traffic is always allowed
				}
				for _, p := range dst.Ports {
					ok, err := n.allowed(src, dst, p.ContainerPort, p.Protocol)
					if err != nil {
						t.Fatal(err)
					}
					flow := src.Name + " -> " + dst.Name + ":" + p.Name
					if ok {
						got[flow] = true
					}
					if ok != want[flow] {
						t.Errorf("%s (%d/%s): allowed %v, want %v", flow, p.ContainerPort, p.Protocol, ok, want[flow])
					}
				}
			}
		}
		for flow := range want {
			if !got[flow] {
				t.Errorf("intended flow %s: no such pod or port", flow)
			}
		}
		// Every pod of the overlay is isolated both ways by a policy that
		// allows nothing: a rule added later cannot open what it forgets.
		denyAll := false
		for _, p := range n.policies {
			if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
				hasType(p, networkingv1.PolicyTypeIngress) && hasType(p, networkingv1.PolicyTypeEgress) &&
				len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 {
				denyAll = true
			}
		}
		if !denyAll {
			t.Error("no default-deny policy (podSelector {}, Ingress and Egress, no rules)")
		}
	})
}

// TestNetworkPolicyEvaluator makes sure the evaluator can say no and yes:
// with no policy everything is allowed, with a default deny nothing is.
func TestNetworkPolicyEvaluator(t *testing.T) {
	m := loadManifests(t)
	eps := endpoints(m)
	find := func(name string) endpoint {
		i := slices.IndexFunc(eps, func(e endpoint) bool { return e.Name == name })
		if i < 0 {
			t.Fatalf("no endpoint %s", name)
		}
		return eps[i]
	}
	intruder, mongo := find("intruder"), find("auth-mongo")
	port := mongo.Ports[0]
	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		want     bool
	}{
		{"no policies", nil, true},
		{"default deny", []*networkingv1.NetworkPolicy{m.NetworkPolicies["default-deny"]}, false},
		{"every policy", slicesOf(m.NetworkPolicies), false},
	} {
		got, err := netpolEval{tc.policies}.allowed(intruder, mongo, port.ContainerPort, corev1.ProtocolTCP)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: intruder -> auth-mongo:%d allowed %v, want %v", tc.name, port.ContainerPort, got, tc.want)
		}
	}
	if find("auth").Ports[0].Name != "http" || !strings.Contains(fmt.Sprint(find("kube-dns").Ports), strconv.Itoa(53)) {
		t.Error("endpoints have unexpected ports")
	}
}

func slicesOf[K comparable, V any](m map[K]V) []V {
	var out []V
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
