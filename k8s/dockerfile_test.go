package k8s_test

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// This file reads the Dockerfile with a small parser of the subset of the
// Dockerfile syntax it uses (FROM [--platform] … AS, ARG, WORKDIR, COPY
// [--from], ENV, RUN [--mount], USER, EXPOSE, ENTRYPOINT; comments and line
// continuations; $NAME and ${NAME} outside RUN), failing on anything else,
// rather than with BuildKit's parser, whose module would raise dependency
// versions across the whole Go workspace.

// dockerfilePath is the one Dockerfile, relative to the repository root:
// every image is built from it, with its own build arguments.
const dockerfilePath = "k8s/Dockerfile"

// platform is one an image is built for.
type platform struct {
	OS, Arch string
	Machine  elf.Machine // of its binaries
}

func (p platform) String() string { return p.OS + "/" + p.Arch }

// platforms are those every image must build for: amd64 machines, and arm64
// ones (Apple Silicon, arm64 Linux: kind, colima or Docker Desktop clusters
// there run arm64 images).
var platforms = []platform{
	{"linux", "amd64", elf.EM_X86_64},
	{"linux", "arm64", elf.EM_AARCH64},
}

// instruction is one Dockerfile instruction.
type instruction struct {
	Line  int
	Cmd   string            // upper case: FROM, COPY, …
	Flags map[string]string // --from=build → from: build
	Args  []string          // whitespace-separated, or the JSON array's items
	JSON  bool              // exec form: ["a", "b"]
	Raw   string            // the text after the flags, continuations joined
	// Env is what a RUN sees once resolved: its stage's ARG and ENV values
	// (BuildKit passes both to the command).
	Env map[string]string
}

type stage struct {
	Image, Name string
	Platform    string // FROM --platform
	Insts       []instruction
}

type dockerfile struct {
	Path   string // relative to the repository root
	Stages []stage
}

// stage returns the stage named name (case-insensitive, as in BuildKit);
// "" is the last one, the default target.
func (d dockerfile) stage(name string) (stage, bool) {
	if name == "" {
		return d.Stages[len(d.Stages)-1], true
	}
	for _, st := range d.Stages {
		if strings.EqualFold(st.Name, name) {
			return st, true
		}
	}
	return stage{}, false
}

// image is the image the target stage builds, flattened: the instructions
// of the stages it is built FROM, base first, then its own, on the base
// image of the first.
func (d dockerfile) image(target string) (stage, error) {
	st, ok := d.stage(target)
	if !ok {
		return stage{}, fmt.Errorf("no stage %q", target)
	}
	chain := []stage{st}
	for chain[0].Image != "" {
		parent, ok := d.stage(chain[0].Image)
		if !ok || slices.ContainsFunc(chain, func(s stage) bool { return strings.EqualFold(s.Name, parent.Name) }) {
			break
		}
		chain = slices.Insert(chain, 0, parent)
	}
	out := stage{Image: chain[0].Image, Platform: chain[0].Platform, Name: st.Name}
	for _, s := range chain {
		out.Insts = append(out.Insts, s.Insts...)
	}
	return out, nil
}

// copyInst is a COPY instruction.
type copyInst struct {
	From    string
	Sources []string
	Dest    string
}

func (s stage) copies() []copyInst {
	var out []copyInst
	for _, in := range s.Insts {
		if in.Cmd == "COPY" && len(in.Args) >= 2 {
			out = append(out, copyInst{From: in.Flags["from"], Sources: in.Args[:len(in.Args)-1], Dest: in.Args[len(in.Args)-1]})
		}
	}
	return out
}

// env is the stage's ENV variables.
func (s stage) env() map[string]string {
	out := map[string]string{}
	for _, in := range s.Insts {
		if in.Cmd != "ENV" {
			continue
		}
		for _, kv := range in.Args {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
	}
	return out
}

// args is the stage's ARG declarations: name → default, nil without one.
func (s stage) args() map[string]*string {
	out := map[string]*string{}
	for _, in := range s.Insts {
		if in.Cmd != "ARG" {
			continue
		}
		for _, kv := range in.Args {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				out[k] = &v
			} else {
				out[k] = nil
			}
		}
	}
	return out
}

// last returns the stage's last instruction cmd, if any.
func (s stage) last(cmd string) (instruction, bool) {
	for i := len(s.Insts) - 1; i >= 0; i-- {
		if s.Insts[i].Cmd == cmd {
			return s.Insts[i], true
		}
	}
	return instruction{}, false
}

// goBuild is the stage's RUN that runs go build.
func (s stage) goBuild() (instruction, bool) {
	for _, in := range s.Insts {
		if in.Cmd == "RUN" && strings.Contains(in.Raw, "go build ") {
			return in, true
		}
	}
	return instruction{}, false
}

func (s stage) workdir() string {
	wd := "/"
	for _, in := range s.Insts {
		if in.Cmd == "WORKDIR" && len(in.Args) == 1 {
			wd = path.Join(wd, in.Args[0])
		}
	}
	return wd
}

var knownInstructions = []string{"FROM", "ARG", "WORKDIR", "COPY", "ENV", "RUN", "USER", "EXPOSE", "ENTRYPOINT"}

func parseDockerfile(name string, r io.Reader) (dockerfile, error) {
	df := dockerfile{Path: name}
	sc := bufio.NewScanner(r)
	var (
		buf   strings.Builder
		start int
	)
	n := 0
	flush := func() error {
		text := strings.TrimSpace(buf.String())
		buf.Reset()
		if text == "" {
			return nil
		}
		in, err := parseInstruction(start, text)
		if err != nil {
			return err
		}
		if in.Cmd == "FROM" {
			st := stage{Platform: in.Flags["platform"]}
			for k := range in.Flags {
				if k != "platform" {
					return fmt.Errorf("line %d: FROM --%s is not read by these tests", start, k)
				}
			}
			switch {
			case len(in.Args) == 1:
				st.Image = in.Args[0]
			case len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS"):
				st.Image, st.Name = in.Args[0], in.Args[2]
			default:
				return fmt.Errorf("line %d: FROM %s", start, in.Raw)
			}
			df.Stages = append(df.Stages, st)
			return nil
		}
		if len(df.Stages) == 0 {
			return fmt.Errorf("line %d: %s before FROM", start, in.Cmd)
		}
		last := &df.Stages[len(df.Stages)-1]
		last.Insts = append(last.Insts, in)
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments, also inside a continued instruction
		}
		if buf.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			buf.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		buf.WriteString(trimmed)
		if err := flush(); err != nil {
			return df, err
		}
	}
	if err := sc.Err(); err != nil {
		return df, err
	}
	if err := flush(); err != nil {
		return df, err
	}
	if len(df.Stages) == 0 {
		return df, fmt.Errorf("no FROM")
	}
	return df, nil
}

func parseInstruction(line int, text string) (instruction, error) {
	cmd, rest, _ := strings.Cut(text, " ")
	in := instruction{Line: line, Cmd: strings.ToUpper(cmd), Flags: map[string]string{}}
	if !slices.Contains(knownInstructions, in.Cmd) {
		return in, fmt.Errorf("line %d: instruction %s is not one these tests read", line, cmd)
	}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		if _, dup := in.Flags[k]; dup && k != "mount" {
			return in, fmt.Errorf("line %d: flag --%s twice", line, k)
		}
		in.Flags[k] = v
		rest = strings.TrimSpace(after)
	}
	in.Raw = rest
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &in.Args); err != nil {
			return in, fmt.Errorf("line %d: %s: %v", line, in.Cmd, err)
		}
		in.JSON = true
		return in, nil
	}
	in.Args = strings.Fields(rest)
	return in, nil
}

func parseDockerfileAt(t testing.TB, rel string) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df, err := parseDockerfile(rel, f)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return df
}

// predefinedArgs are the variables BuildKit defines for a build for p: the
// builder's platform (here, this machine's architecture) and the image's. A
// stage sees them through an ARG of the same name without a default. With
// an empty p, the image's are left out, as a builder that does not set them
// would.
func predefinedArgs(p platform) map[string]string {
	vars := map[string]string{
		"BUILDPLATFORM": "linux/" + runtime.GOARCH,
		"BUILDOS":       "linux",
		"BUILDARCH":     runtime.GOARCH,
	}
	if p.Arch != "" {
		vars["TARGETPLATFORM"] = p.String()
		vars["TARGETOS"] = p.OS
		vars["TARGETARCH"] = p.Arch
	}
	return vars
}

// varRef is a variable reference outside RUN: $NAME or ${…}.
var varRef = regexp.MustCompile(`\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand substitutes $NAME and ${NAME} in s. A modifier (${NAME:-x}, …) is
// not read by these tests, and an undefined variable is an error: BuildKit
// would make it empty (a COPY of ${APP}/ would copy the whole context).
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var err error
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if !varName.MatchString(name) {
			err = fmt.Errorf("%s: only $NAME and ${NAME} are read by these tests outside RUN", m)
			return m
		}
		v, ok := lookup(name)
		if !ok && err == nil {
			err = fmt.Errorf("%s is not defined", m)
		}
		return v
	})
	return out, err
}

// resolve returns the Dockerfile as BuildKit runs it with these build
// arguments: in each stage an ARG takes the build argument of its name, else
// its default, else the predefined variable; ENV values carry into the
// stages built FROM that stage; $NAME and ${NAME} are substituted in COPY,
// ENV, ARG defaults, WORKDIR, USER and EXPOSE (not in ENTRYPOINT, and not in
// RUN, whose shell expands them from its Env).
func (d dockerfile) resolve(buildArgs, predefined map[string]string) (dockerfile, error) {
	out := dockerfile{Path: d.Path}
	envOf := map[string]map[string]string{} // stage name → its ENV, for stages FROM it
	for _, st := range d.Stages {
		env := map[string]string{}
		if parent, ok := envOf[strings.ToLower(st.Image)]; ok {
			maps.Copy(env, parent)
		}
		args := map[string]string{}
		lookup := func(k string) (string, bool) {
			if v, ok := env[k]; ok {
				return v, true
			}
			v, ok := args[k]
			return v, ok
		}
		rs := st
		rs.Insts = nil
		if rs.Platform != "" {
			p, err := expand(rs.Platform, func(k string) (string, bool) { v, ok := predefined[k]; return v, ok })
			if err != nil {
				return out, fmt.Errorf("FROM --platform: %v", err)
			}
			rs.Platform = p
		}
		for _, in := range st.Insts {
			in.Args = slices.Clone(in.Args)
			switch in.Cmd {
			case "ARG":
				for _, kv := range in.Args {
					k, def, hasDef := strings.Cut(kv, "=")
					if v, ok := buildArgs[k]; ok {
						args[k] = v
					} else if hasDef {
						v, err := expand(def, lookup)
						if err != nil {
							return out, fmt.Errorf("line %d: ARG %s: %v", in.Line, k, err)
						}
						args[k] = v
					} else if v, ok := predefined[k]; ok {
						args[k] = v
					}
				}
			case "ENV":
				for i, kv := range in.Args {
					k, v, _ := strings.Cut(kv, "=")
					v, err := expand(v, lookup)
					if err != nil {
						return out, fmt.Errorf("line %d: ENV %s: %v", in.Line, k, err)
					}
					env[k] = v
					in.Args[i] = k + "=" + v
				}
			case "COPY", "WORKDIR", "USER", "EXPOSE":
				for i, a := range in.Args {
					v, err := expand(a, lookup)
					if err != nil {
						return out, fmt.Errorf("line %d: %s: %v", in.Line, in.Cmd, err)
					}
					in.Args[i] = v
				}
			case "RUN":
				in.Env = map[string]string{}
				maps.Copy(in.Env, args)
				maps.Copy(in.Env, env)
			}
			rs.Insts = append(rs.Insts, in)
		}
		if st.Name != "" {
			envOf[strings.ToLower(st.Name)] = env
		}
		out.Stages = append(out.Stages, rs)
	}
	return out, nil
}

// artifactImage is what one skaffold artifact builds for one platform.
type artifactImage struct {
	Name      string // stuffmart/auth
	BuildArgs map[string]string
	Target    string     // the stage; "" is the last one
	DF        dockerfile // resolved with BuildArgs for the platform
	Final     stage      // the image: DF.image(Target)
}

// builder is the stage the image's binary comes from (its COPY --from).
func (a artifactImage) builder() (stage, error) {
	for _, cp := range a.Final.copies() {
		if cp.From != "" {
			if st, ok := a.DF.stage(cp.From); ok && st.Name != "" {
				return st, nil
			}
			return stage{}, fmt.Errorf("COPY --from=%s: no such stage", cp.From)
		}
	}
	return stage{}, fmt.Errorf("the image copies nothing from a build stage")
}

// mainPackage is the package the builder's go build builds: its last word,
// expanded as the RUN's shell would.
func (a artifactImage) mainPackage() (string, error) {
	b, err := a.builder()
	if err != nil {
		return "", err
	}
	run, ok := b.goBuild()
	if !ok {
		return "", fmt.Errorf("stage %s has no RUN … go build", b.Name)
	}
	f := strings.Fields(run.Raw)
	return expand(strings.Trim(f[len(f)-1], `"'`), func(k string) (string, bool) { v, ok := run.Env[k]; return v, ok })
}

// artifactImages resolves every skaffold artifact's image for p, by image
// name.
func artifactImages(t testing.TB, p platform) map[string]artifactImage {
	t.Helper()
	out := map[string]artifactImage{}
	for _, a := range loadSkaffold(t).Build.Artifacts {
		img := artifactImage{Name: a.ImageName, BuildArgs: map[string]string{}}
		if a.Docker != nil {
			img.Target = a.Docker.Target
			for k, v := range a.Docker.BuildArgs {
				if v == nil {
					t.Fatalf("%s: build argument %s has no value (skaffold would take it from the environment)", a.ImageName, k)
				}
				img.BuildArgs[k] = *v
			}
		}
		df, err := parseDockerfileAt(t, a.dockerfile()).resolve(img.BuildArgs, predefinedArgs(p))
		if err != nil {
			t.Fatalf("%s with %v: %v", a.dockerfile(), img.BuildArgs, err)
		}
		img.DF = df
		if img.Final, err = df.image(img.Target); err != nil {
			t.Fatalf("%s: target: %v", a.ImageName, err)
		}
		out[a.ImageName] = img
	}
	return out
}

// dockerignore is the build context's .dockerignore, with Docker's own
// matcher.
func dockerignore(t testing.TB) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

func ignored(t testing.TB, pm *patternmatcher.PatternMatcher, rel string) bool {
	t.Helper()
	ok, err := pm.MatchesOrParentMatches(filepath.FromSlash(rel))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// workspaceModules lists the module folders of go.work, relative to the
// repository root.
func workspaceModules(t testing.TB) []string {
	t.Helper()
	cmd := exec.Command("go", "work", "edit", "-json")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go work edit -json: %v", err)
	}
	var w struct{ Use []struct{ DiskPath string } }
	if err := json.Unmarshal(out, &w); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, u := range w.Use {
		dirs = append(dirs, path.Clean(u.DiskPath))
	}
	return dirs
}

// TestDockerfilesAreBuilt: the repository has one Dockerfile, and every
// skaffold artifact builds with it.
func TestDockerfilesAreBuilt(t *testing.T) {
	root := repoRoot(t)
	for _, a := range loadSkaffold(t).Build.Artifacts {
		if a.dockerfile() != dockerfilePath {
			t.Errorf("%s: dockerfile %s; every image is built from %s", a.ImageName, a.dockerfile(), dockerfilePath)
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == ".data") {
			return filepath.SkipDir
		}
		if d.Name() == "Dockerfile" || strings.HasSuffix(d.Name(), ".Dockerfile") || strings.HasPrefix(d.Name(), "Dockerfile.") {
			rel, _ := filepath.Rel(root, p)
			if filepath.ToSlash(rel) != dockerfilePath {
				t.Errorf("%s: one Dockerfile, %s, builds every image", rel, dockerfilePath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDockerfileBuildsForTheTargetPlatform checks the Dockerfile itself: a
// golang:1.26 build stage on the builder's platform that cross-compiles a
// static binary for the image's platform (TARGETOS/TARGETARCH, never a fixed
// GOARCH: an arm64 image with an amd64 binary fails with "exec format
// error"), and runtime stages pulled for the image's platform.
func TestDockerfileBuildsForTheTargetPlatform(t *testing.T) {
	df := parseDockerfileAt(t, dockerfilePath)
	builders := 0
	for _, st := range df.Stages {
		if _, ok := df.stage(st.Image); ok && st.Image != "" {
			continue // FROM another stage: its base decides
		}
		if !strings.HasPrefix(st.Image, "golang:") {
			if st.Platform != "" {
				t.Errorf("stage %s: FROM --platform=%s; a runtime stage must be the image's platform", st.Name, st.Platform)
			}
			continue
		}
		builders++
		if st.Image != "golang:1.26" {
			t.Errorf("stage %s: FROM %s; want golang:1.26", st.Name, st.Image)
		}
		if st.Platform != "$BUILDPLATFORM" {
			t.Errorf("stage %s: FROM --platform=%q; want $BUILDPLATFORM: compile natively, cross-compile for the target", st.Name, st.Platform)
		}
		args := st.args()
		for _, k := range []string{"TARGETOS", "TARGETARCH"} {
			def, ok := args[k]
			switch {
			case !ok:
				t.Errorf("stage %s: no ARG %s", st.Name, k)
			case def != nil:
				t.Errorf("stage %s: ARG %s=%s: a default replaces the value BuildKit sets", st.Name, k, *def)
			}
		}
		env := st.env()
		if env["CGO_ENABLED"] != "0" {
			t.Errorf("stage %s: ENV CGO_ENABLED=%q; want 0 (a static binary)", st.Name, env["CGO_ENABLED"])
		}
		for _, k := range []string{"GOOS", "GOARCH"} {
			if v, ok := env[k]; ok {
				t.Errorf("stage %s: ENV %s=%s fixes the platform; take it from TARGETOS/TARGETARCH", st.Name, k, v)
			}
		}
		run, ok := st.goBuild()
		if !ok || !strings.Contains(run.Raw, "-trimpath") || !strings.Contains(run.Raw, "-ldflags='-s -w'") {
			t.Errorf("stage %s: want a RUN … go build -trimpath -ldflags='-s -w' …, got %q", st.Name, run.Raw)
		}
	}
	if builders == 0 {
		t.Error("no golang build stage")
	}
}

// TestDockerfiles checks each artifact's image statically, resolved with its
// build arguments: APP names the app's folder and the image's name; the build
// stage copies paths that exist and are not ignored, the whole workspace's
// go.mod files among them; the image is distroless (or scratch) running the
// binary as a non-root user without a shell, on port 3000; only the
// storefront's carries files from the context, its assets at ASSETS_DIR.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	pm := dockerignore(t)
	modules := workspaceModules(t)
	declared := parseDockerfileAt(t, dockerfilePath)
	for image, img := range artifactImages(t, platforms[0]) {
		t.Run(image, func(t *testing.T) {
			for k := range img.BuildArgs {
				if !slices.ContainsFunc(declared.Stages, func(s stage) bool { _, ok := s.args()[k]; return ok }) {
					t.Errorf("build argument %s: no ARG %s in %s", k, k, dockerfilePath)
				}
			}
			app := img.BuildArgs["APP"]
			if app == "" {
				t.Fatal("no build argument APP: the folder of the app's main package")
			}
			if want := "stuffmart/" + path.Base(app); image != want {
				t.Errorf("APP=%s builds %s; the image is %s", app, want, image)
			}
			if img.Target != "" {
				if _, ok := img.DF.stage(img.Target); !ok {
					t.Fatalf("target %q: no such stage", img.Target)
				}
			}
			final := img.Final
			build, err := img.builder()
			if err != nil {
				t.Fatal(err)
			}

			// Every path copied from the context exists and is not
			// excluded by .dockerignore (docker build would fail).
			copied := map[string]bool{}
			for _, st := range []stage{build, final} {
				for _, cp := range st.copies() {
					if cp.From != "" {
						if _, ok := img.DF.stage(cp.From); !ok {
							t.Errorf("COPY --from=%s: no such stage", cp.From)
						}
						continue
					}
					for _, src := range cp.Sources {
						rel := path.Clean(src)
						copied[rel] = true
						if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
							t.Errorf("COPY %s: %v", src, err)
						} else if ignored(t, pm, rel) {
							t.Errorf("COPY %s: excluded by .dockerignore", src)
						}
					}
				}
			}
			// The workspace needs every module's go.mod and go.sum.
			for _, f := range []string{"go.work", "go.work.sum"} {
				if !copied[f] {
					t.Errorf("%s is not copied", f)
				}
			}
			for _, mod := range modules {
				for _, f := range []string{"go.mod", "go.sum"} {
					if p := path.Join(mod, f); !copied[p] {
						t.Errorf("%s is not copied; go.work lists %s", p, mod)
					}
				}
			}
			if !copied[path.Clean(app)] {
				t.Errorf("APP=%s: its folder is not copied", app)
			}

			if final.Image != "scratch" && !strings.HasPrefix(final.Image, "gcr.io/distroless/static") {
				t.Errorf("image FROM %s; want distroless/static or scratch", final.Image)
			}
			user, ok := final.last("USER")
			uid := -1
			if ok && len(user.Args) == 1 {
				u, _, _ := strings.Cut(user.Args[0], ":")
				uid, _ = strconv.Atoi(u)
			}
			if uid != distrolessNonroot {
				t.Errorf("USER %v; want %d (distroless nonroot), numeric so the kubelet can check runAsNonRoot", user.Args, distrolessNonroot)
			}
			if expose, ok := final.last("EXPOSE"); !ok || !slices.Equal(expose.Args, []string{"3000"}) {
				t.Errorf("EXPOSE %v; want 3000, the port every app listens on", expose.Args)
			}
			if _, ok := final.last("RUN"); ok {
				t.Error("RUN in the image's stages: it has no shell")
			}
			entry, ok := final.last("ENTRYPOINT")
			if !ok || !entry.JSON || len(entry.Args) != 1 {
				t.Fatalf("ENTRYPOINT %v: want the exec form of the binary", entry.Args)
			}
			if !slices.ContainsFunc(final.copies(), func(c copyInst) bool { return c.From == build.Name && c.Dest == entry.Args[0] }) {
				t.Errorf("ENTRYPOINT %s is not a binary copied from the build stage", entry.Args[0])
			}

			// The storefront reads its static files from ASSETS_DIR; the
			// services read no files: their images carry the binary only.
			assetsDir, storefront := final.env()["ASSETS_DIR"]
			if want := image == "stuffmart/client"; storefront != want {
				t.Errorf("ASSETS_DIR set: %v; want %v (only the storefront serves files)", storefront, want)
			}
			for _, cp := range final.copies() {
				if cp.From == "" && (!storefront || path.Clean(cp.Dest) != path.Clean(assetsDir)) {
					t.Errorf("COPY %v %s: the image takes from the context only the storefront's assets, at ASSETS_DIR", cp.Sources, cp.Dest)
				}
			}
		})
	}
}

// TestImagesBuild builds each image's binary the way the Dockerfile does,
// for every platform in platforms: in a fresh folder holding only what the
// build stage copies (less what .dockerignore keeps out), running its RUN
// commands with the stage's ENV and ARG values (APP from skaffold.yaml,
// TARGETOS and TARGETARCH as BuildKit sets them). Then the binary the image
// copies must be a static ELF executable for that platform's machine.
// Builds run one after the other and share Go's build cache (-trimpath
// makes it independent of the folder), so the first warms it for the rest.
func TestImagesBuild(t *testing.T) {
	root := repoRoot(t)
	pm := dockerignore(t)
	byPlatform := map[platform]map[string]artifactImage{}
	for _, p := range platforms {
		byPlatform[p] = artifactImages(t, p)
	}
	names := slices.Sorted(maps.Keys(byPlatform[platforms[0]]))
	for i, image := range names {
		t.Run(image, func(t *testing.T) {
			// The context is the same for every platform: copy it once.
			ctx := t.TempDir()
			build, err := byPlatform[platforms[0]][image].builder()
			if err != nil {
				t.Fatal(err)
			}
			copyBuildContext(t, pm, root, build, ctx)
			for _, p := range platforms {
				t.Run(p.OS+"_"+p.Arch, func(t *testing.T) {
					img := byPlatform[p][image]
					bin := runBuild(t, img, ctx)
					size := checkStaticBinary(t, bin, p.Machine)
					// distroless/static-debian13 is about 2 MB.
					const base = 2.0
					mb := float64(size) / 1e6
					t.Logf("%s %s: static binary %.1f MB; image ≈ %.1f MB", image, p, mb, mb+base)
					if mb+base >= 30 {
						t.Errorf("%s: image ≈ %.1f MB; the target is under 30 MB", image, mb+base)
					}
				})
			}
			// A builder that sets no TARGETOS/TARGETARCH gets a binary for
			// its own platform. Once is enough: the RUN is the same for
			// every image.
			if i == 0 {
				t.Run("builder_platform", func(t *testing.T) {
					native := slices.IndexFunc(platforms, func(p platform) bool { return p.Arch == runtime.GOARCH })
					if native < 0 {
						t.Skipf("no ELF machine known for %s", runtime.GOARCH)
					}
					imgs := artifactImages(t, platform{})
					bin := runBuild(t, imgs[image], ctx)
					checkStaticBinary(t, bin, platforms[native].Machine)
				})
			}
		})
	}
}

// copyBuildContext copies into ctx what the build stage's COPY instructions
// take from the context, at their place under its WORKDIR.
func copyBuildContext(t *testing.T, pm *patternmatcher.PatternMatcher, root string, build stage, ctx string) {
	t.Helper()
	wd := build.workdir()
	for _, cp := range build.copies() {
		if cp.From != "" {
			t.Fatalf("COPY --from=%s in the build stage: not read by these tests", cp.From)
		}
		dest := cp.Dest
		if !path.IsAbs(dest) {
			dest = path.Join(wd, dest)
		}
		rel, ok := strings.CutPrefix(path.Clean(dest)+"/", path.Clean(wd)+"/")
		if !ok {
			t.Fatalf("COPY to %s, outside WORKDIR %s", cp.Dest, wd)
		}
		for _, src := range cp.Sources {
			copyContext(t, pm, root, path.Clean(src), filepath.Join(ctx, filepath.FromSlash(rel)), strings.HasSuffix(cp.Dest, "/"))
		}
	}
}

// runBuild runs the build stage's RUN commands in ctx and returns the path
// of the binary the image copies from it.
func runBuild(t *testing.T, img artifactImage, ctx string) string {
	t.Helper()
	build, err := img.builder()
	if err != nil {
		t.Fatal(err)
	}
	declared := slices.Collect(maps.Keys(build.args()))
	for _, in := range build.Insts {
		if in.Cmd != "RUN" {
			continue
		}
		start := time.Now()
		cmd := exec.Command("sh", "-c", in.Raw)
		cmd.Dir = ctx
		cmd.Env = goEnv(in.Env, declared)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s: %v\n%s", in.Raw, err, out)
		}
		t.Logf("RUN %s: %s", in.Raw, time.Since(start).Round(time.Millisecond))
	}
	wd := build.workdir()
	var bin string
	for _, cp := range img.Final.copies() {
		if cp.From != build.Name {
			continue
		}
		if len(cp.Sources) != 1 || bin != "" {
			t.Fatalf("the image copies more than one file from %s", build.Name)
		}
		rel, ok := strings.CutPrefix(path.Clean(cp.Sources[0]), path.Clean(wd)+"/")
		if !ok {
			t.Fatalf("COPY --from=%s %s: outside WORKDIR %s", cp.From, cp.Sources[0], wd)
		}
		bin = filepath.Join(ctx, filepath.FromSlash(rel))
	}
	if bin == "" {
		t.Fatalf("the image copies nothing from %s", build.Name)
	}
	return bin
}

// goEnv is the environment of a RUN: the test's, with the RUN's variables,
// and without what would make it differ from the golang image's (a GOWORK,
// GOFLAGS, GOOS, GOARCH or CGO_ENABLED set here, or a variable the stage
// declares with ARG but that has no value in this build); never a
// toolchain download.
func goEnv(runEnv map[string]string, declared []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case slices.Contains([]string{"GOWORK", "GOFLAGS", "GOTOOLCHAIN", "GOOS", "GOARCH", "CGO_ENABLED"}, k),
			slices.Contains(declared, k):
			continue
		}
		if _, ok := runEnv[k]; ok {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOTOOLCHAIN=local")
	for k, v := range runEnv {
		env = append(env, k+"="+v)
	}
	return env
}

// copyContext copies src (relative to root) to dest as COPY does: a folder's
// contents into dest, a file into dest (a folder when destIsDir), leaving out
// what .dockerignore excludes.
func copyContext(t *testing.T, pm *patternmatcher.PatternMatcher, root, src, dest string, destIsDir bool) {
	t.Helper()
	from := filepath.Join(root, filepath.FromSlash(src))
	info, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsDir() {
		if destIsDir {
			dest = filepath.Join(dest, filepath.Base(from))
		}
		copyFile(t, from, dest)
		return
	}
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if ignored(t, pm, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		within, _ := filepath.Rel(from, p)
		copyFile(t, p, filepath.Join(dest, within))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkStaticBinary fails unless bin is a Linux ELF executable for machine,
// with no dynamic loader and no shared libraries (it runs on
// distroless/static or scratch), and returns its size.
func checkStaticBinary(t *testing.T, bin string, machine elf.Machine) int64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	if f.Machine != machine || f.Type != elf.ET_EXEC {
		t.Errorf("%s: %v %v; want an %v executable", bin, f.Machine, f.Type, machine)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("%s: OS ABI %v; want Linux", bin, f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s asks for a dynamic loader: not static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("%s needs shared libraries %v", bin, libs)
	}
	info, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}
