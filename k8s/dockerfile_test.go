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
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// This file reads the Dockerfiles with a small parser of the subset of the
// Dockerfile syntax they use (FROM … AS, WORKDIR, COPY [--from], ENV, RUN
// [--mount], USER, EXPOSE, ENTRYPOINT; comments and line continuations),
// failing on anything else, rather than with BuildKit's parser, whose module
// would raise dependency versions across the whole Go workspace.

// instruction is one Dockerfile instruction.
type instruction struct {
	Line  int
	Cmd   string            // upper case: FROM, COPY, …
	Flags map[string]string // --from=build → from: build
	Args  []string          // whitespace-separated, or the JSON array's items
	JSON  bool              // exec form: ["a", "b"]
	Raw   string            // the text after the flags, continuations joined
}

type stage struct {
	Image, Name string
	Insts       []instruction
}

type dockerfile struct {
	Path   string // relative to the repository root
	Stages []stage
}

func (d dockerfile) final() stage { return d.Stages[len(d.Stages)-1] }

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

// last returns the stage's last instruction cmd, if any.
func (s stage) last(cmd string) (instruction, bool) {
	for i := len(s.Insts) - 1; i >= 0; i-- {
		if s.Insts[i].Cmd == cmd {
			return s.Insts[i], true
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

var knownInstructions = []string{"FROM", "WORKDIR", "COPY", "ENV", "RUN", "USER", "EXPOSE", "ENTRYPOINT"}

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
			st := stage{}
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

// artifactDockerfiles is the Dockerfile of every image skaffold builds, by
// image name.
func artifactDockerfiles(t testing.TB) map[string]dockerfile {
	t.Helper()
	out := map[string]dockerfile{}
	for _, a := range loadSkaffold(t).Build.Artifacts {
		out[a.ImageName] = parseDockerfileAt(t, a.dockerfile())
	}
	return out
}

// TestDockerfilesAreBuilt: every Dockerfile in the repository is an artifact
// of skaffold.yaml.
func TestDockerfilesAreBuilt(t *testing.T) {
	root := repoRoot(t)
	var want []string
	for _, a := range loadSkaffold(t).Build.Artifacts {
		want = append(want, a.dockerfile())
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == ".data") {
			return filepath.SkipDir
		}
		if d.Name() == "Dockerfile" {
			rel, _ := filepath.Rel(root, p)
			if !slices.Contains(want, filepath.ToSlash(rel)) {
				t.Errorf("%s is not built by skaffold.yaml", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDockerfiles checks each Dockerfile statically: a golang:1.26 builder
// that builds a static linux/amd64 binary with the workspace, from paths that
// exist and are not ignored, and a final distroless (or scratch) stage that
// runs it as a non-root user without a shell.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	pm := dockerignore(t)
	modules := workspaceModules(t)
	for image, df := range artifactDockerfiles(t) {
		t.Run(image, func(t *testing.T) {
			if len(df.Stages) < 2 {
				t.Fatalf("%d stages; want a build stage and a final one", len(df.Stages))
			}
			names := map[string]bool{}
			for _, st := range df.Stages[:len(df.Stages)-1] {
				names[st.Name] = true
				if st.Image != "golang:1.26" {
					t.Errorf("build stage FROM %s; want golang:1.26", st.Image)
				}
			}
			build := df.Stages[0]
			env := build.env()
			for k, v := range map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64"} {
				if env[k] != v {
					t.Errorf("build stage ENV %s=%q; want %q", k, env[k], v)
				}
			}
			run, ok := build.last("RUN")
			if !ok || !strings.HasPrefix(run.Raw, "go build ") || !strings.Contains(run.Raw, "-trimpath") || !strings.Contains(run.Raw, "-ldflags='-s -w'") {
				t.Errorf("the build stage's RUN should be go build -trimpath -ldflags='-s -w' …, got %q", run.Raw)
			}
			// Every path copied from the context exists and is not
			// excluded by .dockerignore (docker build would fail).
			copied := map[string]bool{}
			for _, st := range df.Stages {
				for _, cp := range st.copies() {
					if cp.From != "" {
						if !names[cp.From] {
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

			final := df.final()
			if final.Image != "scratch" && !strings.HasPrefix(final.Image, "gcr.io/distroless/static") {
				t.Errorf("final stage FROM %s; want distroless/static or scratch", final.Image)
			}
			user, ok := final.last("USER")
			uid := -1
			if ok && len(user.Args) == 1 {
				u, _, _ := strings.Cut(user.Args[0], ":")
				uid, _ = strconv.Atoi(u)
			}
			if uid != distrolessNonroot {
				t.Errorf("final USER %v; want %d (distroless nonroot), numeric so the kubelet can check runAsNonRoot", user.Args, distrolessNonroot)
			}
			if _, ok := final.last("RUN"); ok {
				t.Error("RUN in the final stage: it has no shell")
			}
			entry, ok := final.last("ENTRYPOINT")
			if !ok || !entry.JSON || len(entry.Args) != 1 {
				t.Fatalf("final ENTRYPOINT %v: want the exec form of the binary", entry.Args)
			}
			if !slices.ContainsFunc(final.copies(), func(c copyInst) bool { return c.From != "" && c.Dest == entry.Args[0] }) {
				t.Errorf("ENTRYPOINT %s is not a binary copied from the build stage", entry.Args[0])
			}
		})
	}
}

// TestImagesBuild builds each image's binary the way its Dockerfile does: in
// a fresh folder holding only what the build stage copies (less what
// .dockerignore keeps out), with the stage's ENV, running its RUN commands.
// Then the binary the final stage copies must be a static linux/amd64 ELF.
// Builds run one after the other and share Go's build cache (-trimpath
// makes it independent of the folder), so the first warms it for the rest.
func TestImagesBuild(t *testing.T) {
	root := repoRoot(t)
	pm := dockerignore(t)
	dfs := artifactDockerfiles(t)
	for _, image := range slices.Sorted(maps.Keys(dfs)) {
		df := dfs[image]
		t.Run(image, func(t *testing.T) {
			build := df.Stages[0]
			wd := build.workdir()
			ctx := t.TempDir()
			for _, cp := range build.copies() {
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
			env := goEnv(build.env())
			for _, in := range build.Insts {
				if in.Cmd != "RUN" {
					continue
				}
				start := time.Now()
				cmd := exec.Command("sh", "-c", in.Raw)
				cmd.Dir = ctx
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("RUN %s: %v\n%s", in.Raw, err, out)
				}
				t.Logf("RUN %s: %s", in.Raw, time.Since(start).Round(time.Millisecond))
			}
			final := df.final()
			for _, cp := range final.copies() {
				if cp.From == "" {
					continue
				}
				for _, src := range cp.Sources {
					rel, ok := strings.CutPrefix(path.Clean(src), path.Clean(wd)+"/")
					if !ok {
						t.Fatalf("COPY --from=%s %s: outside WORKDIR %s", cp.From, src, wd)
					}
					bin := filepath.Join(ctx, filepath.FromSlash(rel))
					size := checkStaticBinary(t, bin)
					// distroless/static-debian13 is about 2 MB.
					const base = 2.0
					mb := float64(size) / 1e6
					t.Logf("%s: static binary %.1f MB; image ≈ %.1f MB", image, mb, mb+base)
					if mb+base >= 30 {
						t.Errorf("%s: image ≈ %.1f MB; the target is under 30 MB", image, mb+base)
					}
				}
			}
		})
	}
}

// goEnv is the environment of a RUN: the test's, with the stage's ENV, and
// without what would make it differ from the golang image's (a GOWORK or
// GOFLAGS set here); never a toolchain download.
func goEnv(stageEnv map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "GOWORK" || k == "GOFLAGS" || k == "GOTOOLCHAIN" || stageEnv[k] != "" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOTOOLCHAIN=local")
	for k, v := range stageEnv {
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

// checkStaticBinary fails unless bin is a linux/amd64 ELF executable with no
// dynamic loader and no shared libraries (it runs on distroless/static or
// scratch), and returns its size.
func checkStaticBinary(t *testing.T, bin string) int64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("%s: %v %v; want an x86-64 executable", bin, f.Machine, f.Type)
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
