package k8s_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// autoscaled are the Deployments a HorizontalPodAutoscaler scales on CPU: the
// storefront, which renders every page, and stuff, which serves the
// listings behind them.
var autoscaled = []string{"client", "stuff"}

// hpaFor returns the HorizontalPodAutoscaler that scales Deployment name.
func hpaFor(m *manifests, name string) *autoscalingv2.HorizontalPodAutoscaler {
	for _, h := range m.HPAs {
		if r := h.Spec.ScaleTargetRef; r.Kind == "Deployment" && r.Name == name {
			return h
		}
	}
	return nil
}

// pdbsFor returns the PodDisruptionBudgets that select w's pods.
func pdbsFor(t *testing.T, m *manifests, w workload) []*policyv1.PodDisruptionBudget {
	t.Helper()
	var out []*policyv1.PodDisruptionBudget
	for _, p := range m.PDBs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Fatalf("PodDisruptionBudget %s: %v", p.Name, err)
		}
		if !sel.Empty() && sel.Matches(w.podLabels()) {
			out = append(out, p)
		}
	}
	return out
}

// disruptionsAllowed is how many of n pods the budget lets a drain take at
// once.
func disruptionsAllowed(t *testing.T, p *policyv1.PodDisruptionBudget, n int32) int32 {
	t.Helper()
	switch {
	case p.Spec.MaxUnavailable != nil:
		v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, int(n), true)
		if err != nil {
			t.Fatal(err)
		}
		return int32(v)
	case p.Spec.MinAvailable != nil:
		v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, int(n), true)
		if err != nil {
			t.Fatal(err)
		}
		return n - int32(v)
	}
	return 0
}

// TestAppsScale: every app runs at least two replicas (a fixed count, or an
// autoscaler's minimum for the storefront and stuff, whose Deployments then
// leave the count to it), updates without ever having fewer ready pods than
// wanted, prefers its replicas on different nodes, and has a disruption
// budget that lets a drain take one pod at a time.
func TestAppsScale(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		apps := appDeployments(t, m)
		for name, d := range apps {
			t.Run(name, func(t *testing.T) {
				min := int32(0)
				if h := hpaFor(m, name); h != nil {
					if d.Spec.Replicas != nil {
						t.Errorf("replicas %d next to a HorizontalPodAutoscaler: every apply would reset its count", *d.Spec.Replicas)
					}
					if h.Spec.MinReplicas != nil {
						min = *h.Spec.MinReplicas
					}
					if h.Spec.MaxReplicas <= min {
						t.Errorf("autoscaler from %d to %d replicas", min, h.Spec.MaxReplicas)
					}
					cpu := false
					for _, mt := range h.Spec.Metrics {
						if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU &&
							mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType && mt.Resource.Target.AverageUtilization != nil {
							cpu = true
						}
					}
					if !cpu || len(h.Spec.Metrics) != 1 {
						t.Errorf("autoscaler metrics %+v; want CPU utilization", h.Spec.Metrics)
					}
					for _, c := range d.Spec.Template.Spec.Containers {
						if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
							t.Errorf("container %s has no CPU request: CPU utilization is relative to it", c.Name)
						}
					}
				} else if d.Spec.Replicas != nil {
					min = *d.Spec.Replicas
				} else {
					min = 1
				}
				if want := slices.Contains(autoscaled, name); want != (hpaFor(m, name) != nil) {
					t.Errorf("autoscaled %v; want %v", !want, want)
				}
				if min < 2 {
					t.Errorf("runs %d replica(s) at least; want 2 or more", min)
				}

				s := d.Spec.Strategy
				if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
					s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.String() != "0" ||
					s.RollingUpdate.MaxSurge == nil || s.RollingUpdate.MaxSurge.String() == "0" {
					t.Errorf("strategy %+v; want a rolling update with maxUnavailable 0 and a surge", s)
				}

				w, _ := m.workload("Deployment", name)
				spread := false
				if a := d.Spec.Template.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
					for _, term := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
						sel, err := metav1.LabelSelectorAsSelector(term.PodAffinityTerm.LabelSelector)
						if err != nil {
							t.Fatal(err)
						}
						if term.PodAffinityTerm.TopologyKey == corev1.LabelHostname && sel.Matches(w.podLabels()) && len(m.workloadsMatching(sel)) == 1 {
							spread = true
						}
					}
				}
				if !spread {
					t.Error("no preferred pod anti-affinity on kubernetes.io/hostname for its own pods")
				}

				pdbs := pdbsFor(t, m, w)
				if len(pdbs) != 1 {
					t.Fatalf("%d PodDisruptionBudgets select its pods; want 1", len(pdbs))
				}
				if n := disruptionsAllowed(t, pdbs[0], min); n < 1 || n >= min {
					t.Errorf("PodDisruptionBudget %s lets a drain take %d of %d pods; want at least 1 and fewer than all", pdbs[0].Name, n, min)
				}
			})
		}
		for name, h := range m.HPAs {
			if apps[h.Spec.ScaleTargetRef.Name] == nil || h.Spec.ScaleTargetRef.Kind != "Deployment" {
				t.Errorf("HorizontalPodAutoscaler %s scales %s/%s, not an app Deployment", name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
			}
		}
	})
}

// TestStatefulDisruptionBudgets: a StatefulSet of one pod (NATS, a MongoDB of
// k8s/dev) has no disruption budget, which could only block every drain; a
// replica set (k8s/prod) has one that keeps a majority of its members up.
func TestStatefulDisruptionBudgets(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for name, ss := range m.StatefulSets {
			w, _ := m.workload("StatefulSet", name)
			n := int32(1)
			if ss.Spec.Replicas != nil {
				n = *ss.Spec.Replicas
			}
			pdbs := pdbsFor(t, m, w)
			switch {
			case n == 1 && len(pdbs) != 0:
				t.Errorf("%s: one pod and a PodDisruptionBudget %s", name, pdbs[0].Name)
			case n > 1 && len(pdbs) != 1:
				t.Errorf("%s: %d pods and %d PodDisruptionBudgets; want 1", name, n, len(pdbs))
			case n > 1:
				if got := disruptionsAllowed(t, pdbs[0], n); got < 1 || got > (n-1)/2 {
					t.Errorf("%s: PodDisruptionBudget %s lets a drain take %d of %d members; want 1 to %d (a majority stays)", name, pdbs[0].Name, got, n, (n-1)/2)
				}
			}
		}
		for name, p := range m.PDBs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.workloadsMatching(sel)) != 1 {
				t.Errorf("PodDisruptionBudget %s selects %d workloads; want 1", name, len(m.workloadsMatching(sel)))
			}
		}
	})
}

// TestImagePins: every image is built by skaffold (which deploys it by the
// digest it built), pinned by digest, or an infrastructure image that the
// README tells how to pin. Images are not pinned here because resolving a
// multi-platform digest needs the registry, which this machine cannot reach.
func TestImagePins(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	built := skaffoldImages(t)
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for _, w := range m.Workloads {
			for _, c := range append(slices.Clone(w.Template.Spec.InitContainers), w.Template.Spec.Containers...) {
				if built[c.Image] || strings.Contains(c.Image, "@sha256:") {
					continue
				}
				repo, _, _ := strings.Cut(c.Image, ":")
				if !strings.Contains(string(readme), "kustomize edit set image "+repo+"="+repo+"@sha256:") {
					t.Errorf("%s: image %s is neither pinned by digest nor is its pinning documented in the README", w, c.Image)
				}
			}
		}
	})

	// What the README's command writes (an images entry with a digest)
	// pins every container of that image, init containers too.
	digest := "sha256:" + strings.Repeat("ab", 32)
	dir := t.TempDir()
	prod, err := filepath.Rel(dir, filepath.Join(repoRoot(t), "k8s", "prod")) // kustomize wants it relative
	if err != nil {
		t.Fatal(err)
	}
	kz := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " +
		filepath.ToSlash(prod) + "\nimages:\n  - name: mongo\n    newName: mongo\n    digest: " + digest + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kz), 0o644); err != nil {
		t.Fatal(err)
	}
	pinned, err := buildOverlay(dir, ".", strictDecoder(t))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, w := range pinned.Workloads {
		for _, c := range append(slices.Clone(w.Template.Spec.InitContainers), w.Template.Spec.Containers...) {
			if strings.HasPrefix(c.Image, "mongo") {
				n++
				if c.Image != "mongo@"+digest {
					t.Errorf("%s: container %s runs %s after pinning mongo", w, c.Name, c.Image)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no mongo container to pin")
	}
}
