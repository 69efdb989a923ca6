package k8s_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
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
// BuildConfig, LocalBuild, Artifact, DockerArtifact, RenderConfig/Generate/
// Kustomize, DeployConfig/KubectlDeploy, PortForwardResource, Profile,
// Activation, JSONPatch). Decoding is strict, so a field that is not
// mirrored here fails the test: a misspelt field, or a real one this project
// does not use yet; mirror it from that file to use it.
type skaffoldConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name,omitempty"`
		Labels      map[string]string `yaml:"labels,omitempty"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	} `yaml:"metadata,omitempty"`
	skaffoldPipeline `yaml:",inline"`
	Profiles         []skaffoldProfile `yaml:"profiles,omitempty"`
}

// skaffoldPipeline is Pipeline: what the top level and a profile both have.
type skaffoldPipeline struct {
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

// skaffoldProfile is Profile: a named change of the pipeline, by JSON patches
// of the configuration or by replacing parts of it.
type skaffoldProfile struct {
	Name       string `yaml:"name"`
	Activation []struct {
		Env         string `yaml:"env,omitempty"`
		KubeContext string `yaml:"kubeContext,omitempty"`
		Command     string `yaml:"command,omitempty"`
	} `yaml:"activation,omitempty"`
	RequiresAllActivations bool `yaml:"requiresAllActivations,omitempty"`
	Patches                []struct {
		Op    string    `yaml:"op,omitempty"`
		Path  string    `yaml:"path"`
		From  string    `yaml:"from,omitempty"`
		Value yaml.Node `yaml:"value,omitempty"`
	} `yaml:"patches,omitempty"`
	skaffoldPipeline `yaml:",inline"`
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
		"kustomize typo":   "apiVersion: skaffold/v4beta11\nkind: Config\nmanifests:\n  kustomize:\n    path: [k8s/dev]\n",
		"profile typo":     "apiVersion: skaffold/v4beta11\nkind: Config\nprofiles:\n  - name: prod\n    manifest: {}\n",
		"patch typo":       "apiVersion: skaffold/v4beta11\nkind: Config\nprofiles:\n  - name: prod\n    patches:\n      - op: replace\n        paht: /build\n",
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

// TestSkaffold checks skaffold.yaml against the pinned schema and the project's
// rules: local builds that are not pushed, one Docker artifact per image
// built from the repository root, the k8s/dev overlay rendered by kustomize
// and applied with kubectl, a prod profile that renders k8s/prod and pushes
// the images, no file sync and no port-forward.
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
	if len(cfg.Manifests.RawYaml) != 0 {
		t.Error("manifests.rawYaml: the manifests are kustomize overlays (k8s/base, k8s/dev, k8s/prod)")
	}

	// The default pipeline (skaffold dev) renders k8s/dev; the prod profile
	// renders k8s/prod, and changes nothing else but pushing the images.
	var got []string
	for _, o := range skaffoldOverlays(t) {
		got = append(got, o.Profile+"="+o.Dir)
	}
	if want := []string{"=k8s/dev", "prod=k8s/prod"}; !slices.Equal(got, want) {
		t.Errorf("overlays by profile %q; want %q", got, want)
	}
	for _, p := range cfg.Profiles {
		if len(p.Activation) != 0 {
			t.Errorf("profile %s: activation; a profile is chosen with -p only, never by the environment", p.Name)
		}
		if p.Name != "prod" {
			continue
		}
		if len(p.Build.Artifacts) != 0 || p.Build.Local != nil || p.Deploy.Kubectl != nil || len(p.Manifests.RawYaml) != 0 {
			t.Error("profile prod: replaces more than the manifests; change the rest with a patch")
		}
		pushes := false
		for _, patch := range p.Patches {
			var v bool
			if patch.Path == "/build/local/push" && (patch.Op == "" || patch.Op == "replace") && patch.Value.Decode(&v) == nil && v {
				pushes = true
			} else {
				t.Errorf("profile prod: unexpected patch %s %s", patch.Op, patch.Path)
			}
		}
		if !pushes {
			t.Error("profile prod: does not push the images (a production cluster pulls them from a registry)")
		}
	}
	for _, dir := range kustomizations(t) {
		// k8s/base through the overlays; k8s/monitoring is applied by hand,
		// once the prometheus-operator's CRDs exist (README, "Observability").
		used := dir == "k8s/base" || dir == monitoringDir
		for _, o := range skaffoldOverlays(t) {
			used = used || o.Dir == dir
		}
		if !used {
			t.Errorf("%s is rendered by no skaffold pipeline or profile", dir)
		}
	}
}
