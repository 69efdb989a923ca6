package k8s_test

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// This file tests how Prometheus finds the apps: the scrape annotations of
// the base, and the optional k8s/monitoring (a PodMonitor per app, the
// Grafana dashboard's ConfigMap). The NetworkPolicy that lets Prometheus in
// is evaluated with the others (netpol_test.go).

// monitoringDir is the optional kustomization applied by hand once the
// prometheus-operator's CRDs exist (README, "Observability").
const monitoringDir = "k8s/monitoring"

// dashboardFile is the Grafana dashboard, relative to the repository root.
const dashboardFile = "k8s/monitoring/grafana/stuffmart.json"

// TestScrapeAnnotations: every app's pods carry the annotations a Prometheus
// that discovers pods by annotation reads, naming the app's own port and
// /metrics.
func TestScrapeAnnotations(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for name, d := range appDeployments(t, m) {
			a := d.Spec.Template.Annotations
			w, _ := m.workload("Deployment", name)
			port, ok := w.containerPort("http")
			if !ok {
				t.Errorf("%s: no container port http", name)
				continue
			}
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != strconv.Itoa(int(port.ContainerPort)) {
				t.Errorf("%s: pod annotations %v; want prometheus.io/scrape true, path /metrics, port %d", name, a, port.ContainerPort)
			}
		}
	})
}

// monitoringObjects builds k8s/monitoring as `kubectl apply -k` would and
// decodes each object strictly.
func monitoringObjects(t *testing.T) (map[string]*monitoringv1.PodMonitor, map[string]*corev1.ConfigMap) {
	t.Helper()
	root := repoRoot(t)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, filepath.FromSlash(monitoringDir)))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", monitoringDir, err)
	}
	dec := strictDecoder(t)
	pms := map[string]*monitoringv1.PodMonitor{}
	cms := map[string]*corev1.ConfigMap{}
	for _, r := range rm.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", r.GetKind(), r.GetName(), err)
		}
		switch o := obj.(type) {
		case *monitoringv1.PodMonitor:
			pms[o.Name] = o
		case *corev1.ConfigMap:
			cms[o.Name] = o
		default:
			t.Errorf("%s: kind %T is not expected in %s", r.GetName(), obj, monitoringDir)
		}
	}
	return pms, cms
}

// TestPodMonitors: one PodMonitor per app of every overlay, in the app's
// namespace (none set), selecting exactly that app's pods, scraping
// /metrics on a port they have, and labelling the target app=<name> as the
// dashboard and make dev's targets do.
func TestPodMonitors(t *testing.T) {
	pms, _ := monitoringObjects(t)
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		apps := appDeployments(t, m)
		for name := range apps {
			if pms[name] == nil {
				t.Errorf("no PodMonitor for app %s", name)
			}
		}
		for name, pm := range pms {
			if apps[name] == nil {
				t.Errorf("PodMonitor %s: no app %s", name, name)
				continue
			}
			if pm.Namespace != "" {
				t.Errorf("PodMonitor %s: namespace %q; want none (the app's)", name, pm.Namespace)
			}
			if ns := pm.Spec.NamespaceSelector; ns.Any || len(ns.MatchNames) > 0 {
				t.Errorf("PodMonitor %s: namespaceSelector %+v; want its own namespace", name, ns)
			}
			sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Errorf("PodMonitor %s: selector %+v: %v", name, pm.Spec.Selector, err)
				continue
			}
			ws := m.workloadsMatching(sel)
			if len(ws) != 1 || ws[0].Kind != "Deployment" || ws[0].Name != name {
				t.Errorf("PodMonitor %s selects %v; want Deployment/%s only", name, ws, name)
			}
			if len(pm.Spec.PodMetricsEndpoints) != 1 {
				t.Errorf("PodMonitor %s: %d endpoints; want 1", name, len(pm.Spec.PodMetricsEndpoints))
				continue
			}
			ep := pm.Spec.PodMetricsEndpoints[0]
			if ep.Port == nil || ep.Path != "/metrics" {
				t.Errorf("PodMonitor %s: endpoint port %v path %q; want a named port and /metrics", name, ep.Port, ep.Path)
				continue
			}
			if len(ws) == 1 {
				if _, ok := ws[0].containerPort(*ep.Port); !ok {
					t.Errorf("PodMonitor %s: the pods have no port %s", name, *ep.Port)
				}
			}
			labelled := slices.ContainsFunc(ep.RelabelConfigs, func(r monitoringv1.RelabelConfig) bool {
				return r.TargetLabel == "app" && slices.Equal(r.SourceLabels, []monitoringv1.LabelName{"__meta_kubernetes_pod_label_app_kubernetes_io_name"}) &&
					(r.Action == "" || r.Action == "replace")
			})
			if !labelled {
				t.Errorf("PodMonitor %s: no relabeling of app.kubernetes.io/name to app", name)
			}
			if apps[name].Spec.Template.Labels["app.kubernetes.io/name"] != name {
				t.Errorf("app %s: pods not labelled app.kubernetes.io/name=%s", name, name)
			}
		}
	})
}

// TestDashboardConfigMap: the dashboard ships as a ConfigMap with a fixed
// name in namespace monitoring, labelled for Grafana's sidecar, holding the
// file of the repository as it is.
func TestDashboardConfigMap(t *testing.T) {
	_, cms := monitoringObjects(t)
	cm := cms["stuffmart-dashboard"]
	if cm == nil || len(cms) != 1 {
		t.Fatalf("ConfigMaps %v; want stuffmart-dashboard only", slices.Sorted(maps.Keys(cms)))
	}
	if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("stuffmart-dashboard: namespace %q labels %v; want monitoring, grafana_dashboard=1", cm.Namespace, cm.Labels)
	}
	want, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(dashboardFile)))
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["stuffmart.json"]; !bytes.Equal([]byte(got), want) || len(cm.Data) != 1 {
		t.Errorf("stuffmart-dashboard: data keys %v; want stuffmart.json, the file %s as it is", slices.Sorted(maps.Keys(cm.Data)), dashboardFile)
	}
}
