package k8s_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

// kindConfigPath is the kind cluster configuration the README's kind route
// creates its cluster with.
const kindConfigPath = "k8s/kind.yaml"

// decodeKindConfig decodes a kind configuration as kind itself does
// (pkg/internal/apis/config/encoding: apiVersion kind.x-k8s.io/v1alpha4, kind
// Cluster, go.yaml.in/yaml/v3 with unknown fields refused) into kind's own
// v1alpha4 types, then applies kind's defaults. kind's validation is internal
// to its module, so TestKindConfig checks what this project relies on.
func decodeKindConfig(b []byte) (*v1alpha4.Cluster, error) {
	var tm v1alpha4.TypeMeta
	if err := yaml.Unmarshal(b, &tm); err != nil {
		return nil, err
	}
	if tm.APIVersion != "kind.x-k8s.io/v1alpha4" || tm.Kind != "Cluster" {
		return nil, &yaml.TypeError{Errors: []string{"apiVersion " + tm.APIVersion + ", kind " + tm.Kind + ": want kind.x-k8s.io/v1alpha4, Cluster"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c v1alpha4.Cluster
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	v1alpha4.SetDefaultsCluster(&c)
	return &c, nil
}

// TestKindDecoderIsStrict makes sure the kind check can fail.
func TestKindDecoderIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelt field":  "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n    extraPortMapping: []\n",
		"wrong version":   "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n",
		"wrong protocol":  "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - extraPortMappings:\n      - containerPort: 80\n        protocol: TCPP\n",
		"wrong type":      "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - labels: [ingress-ready]\n",
		"unknown top key": "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnode: []\n",
	} {
		if _, err := decodeKindConfig([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, doc)
		}
	}
}

// TestKindConfig: k8s/kind.yaml is a valid kind configuration whose single
// control-plane node maps the host's ports 80 and 443 to the node and carries
// the ingress-ready label that ingress-nginx's kind manifest schedules its
// controller on; its name gives kubectl the context kind-stuffmart, which
// the README uses; and the README creates the cluster with it.
func TestKindConfig(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, kindConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeKindConfig(b)
	if err != nil {
		t.Fatalf("%s: %v", kindConfigPath, err)
	}
	if c.Name != "stuffmart" {
		t.Errorf("name %q; want stuffmart (kubectl context kind-stuffmart)", c.Name)
	}
	var cp []v1alpha4.Node
	for _, n := range c.Nodes {
		if n.Role == v1alpha4.ControlPlaneRole {
			cp = append(cp, n)
		}
	}
	if len(cp) != 1 {
		t.Fatalf("%d control-plane nodes; want 1", len(cp))
	}
	n := cp[0]
	if n.Labels["ingress-ready"] != "true" {
		t.Errorf("labels %v; want ingress-ready: \"true\" (ingress-nginx's kind manifest selects it)", n.Labels)
	}
	for _, port := range []int32{80, 443} {
		if !slices.ContainsFunc(n.ExtraPortMappings, func(m v1alpha4.PortMapping) bool {
			return m.ContainerPort == port && m.HostPort == port && (m.Protocol == "" || m.Protocol == v1alpha4.PortMappingProtocolTCP) &&
				(m.ListenAddress == "" || m.ListenAddress == "0.0.0.0" || m.ListenAddress == "127.0.0.1")
		}) {
			t.Errorf("no extraPortMapping of the host's TCP port %d to the node's %d", port, port)
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kind create cluster --config " + kindConfigPath,
		"deploy/static/provider/kind/deploy.yaml",
		"kind-" + c.Name,
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README does not say %q", want)
		}
	}
}
