package k8s_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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
// and duplicate fields, as `kubectl apply --validate=strict` does.
func strictDecoder(t testing.TB) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// object is one decoded document of a manifest file.
type object struct {
	File string // relative to the repository root
	Doc  []byte // the document's text, comments included
	Obj  runtime.Object
}

// workload is a Deployment or a StatefulSet: something that runs pods.
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

// manifests is everything skaffold deploys, decoded.
type manifests struct {
	Objects      []object
	Deployments  map[string]*appsv1.Deployment
	StatefulSets map[string]*appsv1.StatefulSet
	Services     map[string]*corev1.Service
	ConfigMaps   map[string]*corev1.ConfigMap
	PVCs         map[string]*corev1.PersistentVolumeClaim
	Ingresses    map[string]*networkingv1.Ingress
	Workloads    []workload
}

// workloadSelectedBy returns the workloads whose pods svc selects.
func (m *manifests) workloadsSelectedBy(svc *corev1.Service) []workload {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	var out []workload
	for _, w := range m.Workloads {
		if sel.Matches(w.podLabels()) {
			out = append(out, w)
		}
	}
	return out
}

var (
	loadOnce sync.Once
	loaded   *manifests
	loadErr  error
)

// loadManifests decodes, strictly, every document of the files that
// skaffold.yaml's manifests.rawYaml names: exactly what `skaffold dev`
// applies.
func loadManifests(t testing.TB) *manifests {
	t.Helper()
	root := repoRoot(t)
	cfg := loadSkaffold(t)
	loadOnce.Do(func() {
		loaded, loadErr = decodeManifests(root, cfg.Manifests.RawYaml, strictDecoder(t))
	})
	if loadErr != nil {
		t.Fatalf("manifests: %v", loadErr)
	}
	return loaded
}

func decodeManifests(root string, globs []string, dec runtime.Decoder) (*manifests, error) {
	m := &manifests{
		Deployments:  map[string]*appsv1.Deployment{},
		StatefulSets: map[string]*appsv1.StatefulSet{},
		Services:     map[string]*corev1.Service{},
		ConfigMaps:   map[string]*corev1.ConfigMap{},
		PVCs:         map[string]*corev1.PersistentVolumeClaim{},
		Ingresses:    map[string]*networkingv1.Ingress{},
	}
	var files []string
	for _, g := range globs {
		matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(g)))
		if err != nil {
			return nil, fmt.Errorf("rawYaml %q: %w", g, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("rawYaml %q matches no file", g)
		}
		files = append(files, matches...)
	}
	sort.Strings(files)
	files = slices.Compact(files)
	var errs []error
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		docs, err := splitYAML(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rel, err))
			continue
		}
		for i, doc := range docs {
			obj, gvk, err := dec.Decode(doc, nil, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s, document %d: %w", rel, i+1, err))
				continue
			}
			m.Objects = append(m.Objects, object{File: filepath.ToSlash(rel), Doc: doc, Obj: obj})
			if err := m.add(obj, doc); err != nil {
				errs = append(errs, fmt.Errorf("%s, document %d (%s): %w", rel, i+1, gvk.Kind, err))
			}
		}
	}
	return m, errors.Join(errs...)
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
	default:
		return fmt.Errorf("kind %T is not expected in k8s/ (add it to the tests)", obj)
	}
	return nil
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
