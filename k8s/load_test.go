package k8s_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// repoRoot is the repository root: the tests run in k8s/.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.work")); err != nil {
		t.Fatalf("repository root %s has no go.work: %v", dir, err)
	}
	return dir
}

// strictDecoder decodes the kinds the manifests may hold, rejecting unknown
// and duplicate fields, as `kubectl apply --validate=strict` does; the
// prometheus-operator's kinds too, for k8s/monitoring.
func strictDecoder(t testing.TB) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// object is one object of a built overlay.
type object struct {
	// File is the source file that declares it, relative to the repository
	// root ("" for generated objects).
	File string
	// Doc is its source document, comments included (the built YAML for
	// generated objects: kustomize drops comments).
	Doc []byte
	Obj runtime.Object
}

// workload is a Deployment, a StatefulSet or a Job: something that runs pods.
type workload struct {
	Kind, Name string
	Doc        []byte
	Selector   *metav1.LabelSelector
	Template   *corev1.PodTemplateSpec
	// Claims are the StatefulSet's volumeClaimTemplates, by name.
	Claims map[string]bool
}

func (w workload) String() string { return w.Kind + "/" + w.Name }

// podLabels is the workload's pod template labels.
func (w workload) podLabels() labels.Set { return labels.Set(w.Template.Labels) }

// containerPort finds the port p (a name or a number) among the workload's
// container ports.
func (w workload) containerPort(p string) (corev1.ContainerPort, bool) {
	for _, c := range w.Template.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p || fmt.Sprint(cp.ContainerPort) == p {
				return cp, true
			}
		}
	}
	return corev1.ContainerPort{}, false
}

// manifests is one overlay as kustomize builds it, decoded: what skaffold
// applies with that overlay.
type manifests struct {
	// Name is the overlay's folder name below k8s/: dev or prod.
	Name            string
	Objects         []object
	Deployments     map[string]*appsv1.Deployment
	StatefulSets    map[string]*appsv1.StatefulSet
	Jobs            map[string]*batchv1.Job
	Services        map[string]*corev1.Service
	ConfigMaps      map[string]*corev1.ConfigMap
	PVCs            map[string]*corev1.PersistentVolumeClaim
	Ingresses       map[string]*networkingv1.Ingress
	NetworkPolicies map[string]*networkingv1.NetworkPolicy
	PDBs            map[string]*policyv1.PodDisruptionBudget
	HPAs            map[string]*autoscalingv2.HorizontalPodAutoscaler
	Workloads       []workload
}

// workloadsSelectedBy returns the workloads whose pods svc selects.
func (m *manifests) workloadsSelectedBy(svc *corev1.Service) []workload {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	return m.workloadsMatching(labels.SelectorFromSet(svc.Spec.Selector))
}

// workloadsMatching returns the workloads whose pods sel selects.
func (m *manifests) workloadsMatching(sel labels.Selector) []workload {
	var out []workload
	for _, w := range m.Workloads {
		if sel.Matches(w.podLabels()) {
			out = append(out, w)
		}
	}
	return out
}

// workload returns the workload kind/name.
func (m *manifests) workload(kind, name string) (workload, bool) {
	for _, w := range m.Workloads {
		if w.Kind == kind && w.Name == name {
			return w, true
		}
	}
	return workload{}, false
}

// overlay is a kustomize overlay skaffold.yaml deploys.
type overlay struct {
	// Dir is its folder, relative to the repository root (k8s/dev).
	Dir string
	// Profile is the skaffold profile that deploys it; "" for the default
	// pipeline (skaffold dev, skaffold run).
	Profile string
}

// Name is the overlay's folder name: dev, prod.
func (o overlay) Name() string { return path.Base(o.Dir) }

// skaffoldOverlays are the overlays skaffold.yaml deploys: the default
// pipeline's first, then each profile's.
func skaffoldOverlays(t testing.TB) []overlay {
	t.Helper()
	cfg := loadSkaffold(t)
	var out []overlay
	add := func(p skaffoldPipeline, profile string) {
		if k := p.Manifests.Kustomize; k != nil {
			for _, dir := range k.Paths {
				out = append(out, overlay{Dir: path.Clean(dir), Profile: profile})
			}
		}
	}
	add(cfg.skaffoldPipeline, "")
	for _, p := range cfg.Profiles {
		add(p.skaffoldPipeline, p.Name)
	}
	if len(out) == 0 || out[0].Profile != "" {
		t.Fatal("skaffold.yaml's default pipeline renders no kustomize overlay")
	}
	return out
}

var (
	loadMu sync.Mutex
	loaded = map[string]*manifests{}
	failed = map[string]error{}
)

// loadManifests is the overlay `skaffold dev` deploys: the default
// pipeline's.
func loadManifests(t testing.TB) *manifests {
	t.Helper()
	return loadOverlay(t, skaffoldOverlays(t)[0].Dir)
}

// loadOverlay builds the overlay in dir (relative to the repository root)
// with the kustomize API, as `kustomize build` (which skaffold runs) does,
// and decodes every object strictly.
func loadOverlay(t testing.TB, dir string) *manifests {
	t.Helper()
	root := repoRoot(t)
	dec := strictDecoder(t)
	loadMu.Lock()
	defer loadMu.Unlock()
	if m := loaded[dir]; m != nil {
		return m
	}
	if err := failed[dir]; err != nil {
		t.Fatalf("overlay %s: %v", dir, err)
	}
	m, err := buildOverlay(root, dir, dec)
	if err != nil {
		failed[dir] = err
		t.Fatalf("overlay %s: %v", dir, err)
	}
	loaded[dir] = m
	return m
}

// forEachOverlay runs f on every overlay skaffold.yaml deploys, each in a
// subtest named after it.
func forEachOverlay(t *testing.T, f func(t *testing.T, m *manifests)) {
	t.Helper()
	for _, o := range skaffoldOverlays(t) {
		t.Run(o.Name(), func(t *testing.T) { f(t, loadOverlay(t, o.Dir)) })
	}
}

// buildOverlay runs kustomize on root/dir and decodes what it builds.
func buildOverlay(root, dir string, dec runtime.Decoder) (*manifests, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	sources, err := sourceDocs(root)
	if err != nil {
		return nil, err
	}
	m := &manifests{
		Name:            path.Base(dir),
		Deployments:     map[string]*appsv1.Deployment{},
		StatefulSets:    map[string]*appsv1.StatefulSet{},
		Jobs:            map[string]*batchv1.Job{},
		Services:        map[string]*corev1.Service{},
		ConfigMaps:      map[string]*corev1.ConfigMap{},
		PVCs:            map[string]*corev1.PersistentVolumeClaim{},
		Ingresses:       map[string]*networkingv1.Ingress{},
		NetworkPolicies: map[string]*networkingv1.NetworkPolicy{},
		PDBs:            map[string]*policyv1.PodDisruptionBudget{},
		HPAs:            map[string]*autoscalingv2.HorizontalPodAutoscaler{},
	}
	var errs []error
	for _, r := range rm.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err))
			continue
		}
		o := object{Doc: doc, Obj: obj}
		if src, ok := sources[r.GetKind()+"/"+r.OrgId().Name]; ok {
			o.File, o.Doc = src.file, src.doc
		}
		m.Objects = append(m.Objects, o)
		if err := m.add(obj, o.Doc); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", gvk.Kind, r.GetName(), err))
		}
	}
	return m, errors.Join(errs...)
}

// sourceDoc is one document of a base file.
type sourceDoc struct {
	file string
	doc  []byte
}

// sourceDocs are the documents of k8s/base by kind/name: where the comments
// of an object are.
func sourceDocs(root string) (map[string]sourceDoc, error) {
	files, err := filepath.Glob(filepath.Join(root, "k8s", "base", "*.yaml"))
	if err != nil {
		return nil, err
	}
	out := map[string]sourceDoc{}
	for _, f := range files {
		docs, err := splitYAML(f)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, f)
		for _, doc := range docs {
			var tm struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
				return nil, fmt.Errorf("%s: %w", rel, err)
			}
			if tm.Kind != "" && tm.Kind != "Kustomization" {
				out[tm.Kind+"/"+tm.Metadata.Name] = sourceDoc{filepath.ToSlash(rel), doc}
			}
		}
	}
	return out, nil
}

func (m *manifests) add(obj runtime.Object, doc []byte) error {
	put := func(kind, name string, present bool) error {
		if name == "" {
			return fmt.Errorf("%s without a name", kind)
		}
		if present {
			return fmt.Errorf("second %s named %q", kind, name)
		}
		return nil
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if err := put("Deployment", o.Name, m.Deployments[o.Name] != nil); err != nil {
			return err
		}
		m.Deployments[o.Name] = o
		m.Workloads = append(m.Workloads, workload{Kind: "Deployment", Name: o.Name, Doc: doc, Selector: o.Spec.Selector, Template: &o.Spec.Template})
	case *appsv1.StatefulSet:
		if err := put("StatefulSet", o.Name, m.StatefulSets[o.Name] != nil); err != nil {
			return err
		}
		m.StatefulSets[o.Name] = o
		claims := map[string]bool{}
		for _, c := range o.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
		}
		m.Workloads = append(m.Workloads, workload{Kind: "StatefulSet", Name: o.Name, Doc: doc, Selector: o.Spec.Selector, Template: &o.Spec.Template, Claims: claims})
	case *batchv1.Job:
		if err := put("Job", o.Name, m.Jobs[o.Name] != nil); err != nil {
			return err
		}
		m.Jobs[o.Name] = o
		m.Workloads = append(m.Workloads, workload{Kind: "Job", Name: o.Name, Doc: doc, Selector: &metav1.LabelSelector{MatchLabels: o.Spec.Template.Labels}, Template: &o.Spec.Template})
	case *corev1.Service:
		if err := put("Service", o.Name, m.Services[o.Name] != nil); err != nil {
			return err
		}
		m.Services[o.Name] = o
	case *corev1.ConfigMap:
		if err := put("ConfigMap", o.Name, m.ConfigMaps[o.Name] != nil); err != nil {
			return err
		}
		m.ConfigMaps[o.Name] = o
	case *corev1.PersistentVolumeClaim:
		if err := put("PersistentVolumeClaim", o.Name, m.PVCs[o.Name] != nil); err != nil {
			return err
		}
		m.PVCs[o.Name] = o
	case *networkingv1.Ingress:
		if err := put("Ingress", o.Name, m.Ingresses[o.Name] != nil); err != nil {
			return err
		}
		m.Ingresses[o.Name] = o
	case *networkingv1.NetworkPolicy:
		if err := put("NetworkPolicy", o.Name, m.NetworkPolicies[o.Name] != nil); err != nil {
			return err
		}
		m.NetworkPolicies[o.Name] = o
	case *policyv1.PodDisruptionBudget:
		if err := put("PodDisruptionBudget", o.Name, m.PDBs[o.Name] != nil); err != nil {
			return err
		}
		m.PDBs[o.Name] = o
	case *autoscalingv2.HorizontalPodAutoscaler:
		if err := put("HorizontalPodAutoscaler", o.Name, m.HPAs[o.Name] != nil); err != nil {
			return err
		}
		m.HPAs[o.Name] = o
	default:
		return fmt.Errorf("kind %T is not expected in k8s/ (add it to the tests)", obj)
	}
	return nil
}

// kustomizations are the folders of k8s/ that hold a kustomization.yaml,
// relative to the repository root.
func kustomizations(t testing.TB) []string {
	t.Helper()
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "k8s", "*", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		rel, _ := filepath.Rel(root, filepath.Dir(f))
		out = append(out, filepath.ToSlash(rel))
	}
	sort.Strings(out)
	return out
}

// readKustomization decodes dir/kustomization.yaml (dir relative to the
// repository root) into kustomize's own type, rejecting unknown fields.
func readKustomization(t testing.TB, dir string) types.Kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(dir), "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := sigsyaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

// splitYAML returns the documents of a multi-document YAML file, without
// those that hold only comments.
func splitYAML(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if hasContent(doc) {
			docs = append(docs, doc)
		}
	}
}

func hasContent(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s != "" && !strings.HasPrefix(s, "#") && s != "---" {
			return true
		}
	}
	return false
}

// TestKustomizeSourcesDecodeStrictly decodes, strictly, every document of
// the overlays' own files that is a Kubernetes object or a patch of one:
// kustomize itself accepts unknown fields and keeps only one of two
// duplicate keys, so a typo in a patch would otherwise reach the cluster.
// Every such file is used by its kustomization.
func TestKustomizeSourcesDecodeStrictly(t *testing.T) {
	root := repoRoot(t)
	dec := strictDecoder(t)
	for _, dir := range kustomizations(t) {
		k := readKustomization(t, dir)
		used := map[string]bool{}
		for _, r := range k.Resources {
			used[path.Clean(r)] = true
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				used[path.Clean(p.Path)] = true
			}
		}
		for _, g := range k.ConfigMapGenerator {
			for _, f := range g.FileSources {
				_, file, found := strings.Cut(f, "=")
				if !found {
					file = f
				}
				used[path.Clean(file)] = true
			}
		}
		files, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		more, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(files, more...) {
			rel, _ := filepath.Rel(filepath.Join(root, filepath.FromSlash(dir)), f)
			rel = filepath.ToSlash(rel)
			if rel == "kustomization.yaml" {
				continue
			}
			if !used[rel] {
				t.Errorf("%s/%s is not used by %s/kustomization.yaml", dir, rel, dir)
			}
			docs, err := splitYAML(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, doc := range docs {
				var tm metav1.TypeMeta
				if err := sigsyaml.Unmarshal(doc, &tm); err != nil || tm.Kind == "" {
					continue // a JSON patch (a list), not an object
				}
				if _, _, err := dec.Decode(doc, nil, nil); err != nil {
					t.Errorf("%s/%s, document %d: %v", dir, rel, i+1, err)
				}
			}
		}
	}
	for _, o := range skaffoldOverlays(t) {
		if !slices.Contains(kustomizations(t), o.Dir) {
			t.Errorf("skaffold.yaml renders %s, which has no kustomization.yaml", o.Dir)
		}
	}
}
