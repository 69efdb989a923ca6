package k8s_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// skaffoldVersion is the schema skaffold.yaml pins (skaffold v2.12.0 and
// later read it).
const skaffoldVersion = "skaffold/v4beta11"

// skaffoldConfig mirrors the part of skaffold's v4beta11 schema that
// skaffold.yaml uses, with the same YAML names and nesting. Source:
// pkg/skaffold/schema/v4beta11/config.go in
// github.com/GoogleContainerTools/skaffold (SkaffoldConfig, Pipeline,
// BuildConfig, LocalBuild, Artifact, DockerArtifact, RenderConfig/Generate,
// DeployConfig/KubectlDeploy, PortForwardResource). Decoding is strict, so a
// field that is not mirrored here fails the test: a misspelt field, or a real
// one this project does not use yet; mirror it from that file to use it.
type skaffoldConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name,omitempty"`
		Labels      map[string]string `yaml:"labels,omitempty"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	} `yaml:"metadata,omitempty"`
	Build struct {
		Artifacts []skaffoldArtifact `yaml:"artifacts,omitempty"`
		Platforms []string           `yaml:"platforms,omitempty"`
		// Local is one of BuildType's oneOf=build members.
		Local *struct {
			Push             *bool `yaml:"push,omitempty"`
			TryImportMissing bool  `yaml:"tryImportMissing,omitempty"`
			UseDockerCLI     bool  `yaml:"useDockerCLI,omitempty"`
			UseBuildkit      *bool `yaml:"useBuildkit,omitempty"`
			Concurrency      *int  `yaml:"concurrency,omitempty"`
		} `yaml:"local,omitempty"`
	} `yaml:"build,omitempty"`
	// Manifests is Pipeline.Render (RenderConfig, Generate inline).
	Manifests struct {
		RawYaml   []string `yaml:"rawYaml,omitempty"`
		Kustomize *struct {
			Paths     []string `yaml:"paths,omitempty"`
			BuildArgs []string `yaml:"buildArgs,omitempty"`
		} `yaml:"kustomize,omitempty"`
	} `yaml:"manifests,omitempty"`
	Deploy struct {
		Kubectl *struct {
			Flags struct {
				Global            []string `yaml:"global,omitempty"`
				Apply             []string `yaml:"apply,omitempty"`
				Delete            []string `yaml:"delete,omitempty"`
				DisableValidation bool     `yaml:"disableValidation,omitempty"`
			} `yaml:"flags,omitempty"`
			DefaultNamespace *string `yaml:"defaultNamespace,omitempty"`
		} `yaml:"kubectl,omitempty"`
		StatusCheck                *bool `yaml:"statusCheck,omitempty"`
		StatusCheckDeadlineSeconds int   `yaml:"statusCheckDeadlineSeconds,omitempty"`
	} `yaml:"deploy,omitempty"`
	// PortForward is read so that the test can require it to be empty.
	PortForward []yaml.Node `yaml:"portForward,omitempty"`
}

type skaffoldArtifact struct {
	ImageName string `yaml:"image"`
	Workspace string `yaml:"context,omitempty"`
	// Sync is read so that the test can require it to be absent.
	Sync   *yaml.Node `yaml:"sync,omitempty"`
	Docker *struct {
		DockerfilePath string             `yaml:"dockerfile,omitempty"`
		Target         string             `yaml:"target,omitempty"`
		BuildArgs      map[string]*string `yaml:"buildArgs,omitempty"`
		CacheFrom      []string           `yaml:"cacheFrom,omitempty"`
	} `yaml:"docker,omitempty"`
}

// context is the artifact's build context (skaffold's default is ".").
func (a skaffoldArtifact) context() string {
	if a.Workspace == "" {
		return "."
	}
	return a.Workspace
}

// dockerfile is the Dockerfile path relative to the repository root.
func (a skaffoldArtifact) dockerfile() string {
	p := "Dockerfile"
	if a.Docker != nil && a.Docker.DockerfilePath != "" {
		p = a.Docker.DockerfilePath
	}
	return filepath.ToSlash(filepath.Join(a.context(), p))
}

func decodeSkaffold(b []byte) (*skaffoldConfig, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var cfg skaffoldConfig
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

var (
	skaffoldOnce sync.Once
	skaffoldCfg  *skaffoldConfig
	skaffoldErr  error
)

func loadSkaffold(t testing.TB) *skaffoldConfig {
	t.Helper()
	root := repoRoot(t)
	skaffoldOnce.Do(func() {
		var b []byte
		if b, skaffoldErr = os.ReadFile(filepath.Join(root, "skaffold.yaml")); skaffoldErr == nil {
			skaffoldCfg, skaffoldErr = decodeSkaffold(b)
		}
	})
	if skaffoldErr != nil {
		t.Fatalf("skaffold.yaml: %v", skaffoldErr)
	}
	return skaffoldCfg
}

// TestSkaffoldDecoderIsStrict makes sure the schema check can fail: a
// misspelt or unknown field is an error, as it is for skaffold.
func TestSkaffoldDecoderIsStrict(t *testing.T) {
	bad := map[string]string{
		"misspelt push":    "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  local:\n    pushh: false\n",
		"unknown top":      "apiVersion: skaffold/v4beta11\nkind: Config\nbuilds: {}\n",
		"artifact typo":    "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  artifacts:\n    - image: x\n      dockerFile: {}\n",
		"manifests typo":   "apiVersion: skaffold/v4beta11\nkind: Config\nmanifests:\n  rawYAML: [a.yaml]\n",
		"kubectl typo":     "apiVersion: skaffold/v4beta11\nkind: Config\ndeploy:\n  kubectl:\n    flag: {}\n",
		"wrong value type": "apiVersion: skaffold/v4beta11\nkind: Config\nbuild:\n  local:\n    push: [yes]\n",
	}
	for name, doc := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeSkaffold([]byte(doc)); err == nil {
				t.Errorf("decoded without error:\n%s", doc)
			}
		})
	}
}

// TestSkaffold checks skaffold.yaml against the pinned schema and the issue's
// rules: local builds that are not pushed, one Docker artifact per image
// built from the repository root, raw manifests from k8s/ applied with
// kubectl, no file sync and no port-forward.
func TestSkaffold(t *testing.T) {
	root := repoRoot(t)
	cfg := loadSkaffold(t)
	if cfg.APIVersion != skaffoldVersion || cfg.Kind != "Config" {
		t.Errorf("apiVersion %q, kind %q; want %q, Config", cfg.APIVersion, cfg.Kind, skaffoldVersion)
	}
	if l := cfg.Build.Local; l == nil || l.Push == nil || *l.Push {
		t.Error("build.local.push must be set to false: images stay in the local daemon")
	}
	if len(cfg.Build.Artifacts) == 0 {
		t.Fatal("no build.artifacts")
	}
	seen := map[string]bool{}
	for _, a := range cfg.Build.Artifacts {
		if a.ImageName == "" || seen[a.ImageName] {
			t.Errorf("artifact image %q: empty or listed twice", a.ImageName)
		}
		seen[a.ImageName] = true
		if a.Docker == nil {
			t.Errorf("%s: not a docker artifact", a.ImageName)
		}
		if a.context() != "." {
			t.Errorf("%s: context %q; the repository root (.) holds go.work and shared/", a.ImageName, a.context())
		}
		if _, err := os.Stat(filepath.Join(root, a.dockerfile())); err != nil {
			t.Errorf("%s: dockerfile: %v", a.ImageName, err)
		}
		if a.Sync != nil {
			t.Errorf("%s: sync would copy files into a static distroless image; rebuild instead", a.ImageName)
		}
	}
	if len(cfg.PortForward) != 0 {
		t.Error("portForward: the ingress serves every app")
	}
	if cfg.Deploy.Kubectl == nil {
		t.Error("deploy.kubectl is not set")
	}
	if len(cfg.Manifests.RawYaml) == 0 {
		t.Fatal("manifests.rawYaml is empty")
	}
	// Every YAML file in k8s/ is deployed: none is forgotten by the globs.
	all, err := filepath.Glob(filepath.Join(root, "k8s", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	var covered []string
	for _, g := range cfg.Manifests.RawYaml {
		if strings.HasPrefix(g, "/") || strings.Contains(g, "..") {
			t.Errorf("rawYaml %q: must be relative to the repository root", g)
		}
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(g)))
		if err != nil {
			t.Fatal(err)
		}
		covered = append(covered, m...)
	}
	for _, f := range all {
		if !slices.Contains(covered, f) {
			t.Errorf("%s is not in manifests.rawYaml", f)
		}
	}
}
