package k8s_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	clientapp "github.com/stuffmart/stuffmart/client/app"
	authapp "github.com/stuffmart/stuffmart/services/auth/app"
	expirationapp "github.com/stuffmart/stuffmart/services/expiration/app"
	ordersapp "github.com/stuffmart/stuffmart/services/orders/app"
	paymentsapp "github.com/stuffmart/stuffmart/services/payments/app"
	stuffapp "github.com/stuffmart/stuffmart/services/stuff/app"
)

// loaders are the apps' own configuration loaders (what each main calls with
// os.Getenv), by Deployment name; each returns the app's Config.
var loaders = map[string]func(getenv func(string) string) (any, error){
	"auth":       func(g func(string) string) (any, error) { return authapp.LoadConfig(g) },
	"stuff":      func(g func(string) string) (any, error) { return stuffapp.LoadConfig(g) },
	"orders":     func(g func(string) string) (any, error) { return ordersapp.LoadConfig(g) },
	"expiration": func(g func(string) string) (any, error) { return expirationapp.LoadConfig(g) },
	"payments":   func(g func(string) string) (any, error) { return paymentsapp.LoadConfig(g) },
	"client":     func(g func(string) string) (any, error) { return clientapp.LoadConfig(g) },
}

// retiredEnv are variables an app reads only to refuse them at start, so
// that an operator who upgrades learns they no longer mean anything:
// ADMIN_EMAILS (admins are granted by auth's admin command).
var retiredEnv = []string{"ADMIN_EMAILS"}

// runtimeEnv are variables the Go runtime reads, not the apps.
var runtimeEnv = []string{"GOMEMLIMIT"}

// secretValue stands for the value of key in Secret name: distinct for every
// secret and key (so a test sees which one reached a variable), URL-safe (it
// may go into a URI) and long enough for JWT_KEY and SESSION_KEY (32+
// characters).
func secretValue(name, key string) string {
	return "secret-" + name + "-" + key + "-0123456789abcdefghijklmnopqrstuvwxyz"
}

// recorder is a getenv that remembers every name asked for.
type recorder struct {
	mu   sync.Mutex
	env  map[string]string
	read map[string]bool
}

func (r *recorder) getenv(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read[name] = true
	return r.env[name]
}

// resolveEnv is the environment the container would get: literal values,
// ConfigMap keys of the manifests, secretValue for each secret key (optional
// secrets only when withOptional), with $(VAR) references expanded as the
// kubelet expands them.
func resolveEnv(m *manifests, c corev1.Container, withOptional bool) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			return nil, fmt.Errorf("%s is set twice", e.Name)
		}
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = expandVars(e.Value, env)
			for _, ref := range referencedVars(env[e.Name]) {
				if slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == ref }) {
					return nil, fmt.Errorf("%s refers to $(%s), which is defined below it: the kubelet leaves it as it is", e.Name, ref)
				}
			}
		case vf.ConfigMapKeyRef != nil:
			ref := vf.ConfigMapKeyRef
			cm := m.ConfigMaps[ref.Name]
			v, ok := "", false
			if cm != nil {
				v, ok = cm.Data[ref.Key]
			}
			if !ok && (ref.Optional == nil || !*ref.Optional) {
				return nil, fmt.Errorf("%s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case vf.SecretKeyRef != nil:
			if ref := vf.SecretKeyRef; ref.Optional == nil || !*ref.Optional || withOptional {
				env[e.Name] = secretValue(ref.Name, ref.Key)
			} else {
				env[e.Name] = ""
			}
		default:
			return nil, fmt.Errorf("%s: only literal values, configMapKeyRef and secretKeyRef are resolved here", e.Name)
		}
	}
	return env, nil
}

// expandVars expands $(VAR) in s as the kubelet does in a container's env,
// command and args: VAR must be defined in env (for env, earlier in the
// list), else the reference stays as it is; $$ is a literal $.
func expandVars(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// referencedVars are the names s refers to with $(NAME).
func referencedVars(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "$(")
		if i < 0 {
			return out
		}
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return out
		}
		if i == 0 || s[i-1] != '$' {
			out = append(out, s[i+2:i+end])
		}
		s = s[i+end:]
	}
}

// TestEnvMatchesLoadConfig calls each app's real LoadConfig with a getenv that
// records every variable it reads, so the list cannot drift from the code:
// every variable read must be set in the app's Deployment, every variable
// set must be read, or put into one that is with $(NAME) (no typo goes
// unnoticed), and the Deployment's values
// (with the ConfigMap's, and stand-ins for the secrets) must load without
// error.
func TestEnvMatchesLoadConfig(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		apps := appDeployments(t, m)
		if got, want := slices.Sorted(maps.Keys(apps)), slices.Sorted(maps.Keys(loaders)); !slices.Equal(got, want) {
			t.Fatalf("app Deployments %v, config loaders %v: add the new app's LoadConfig to loaders", got, want)
		}
		for name, d := range apps {
			t.Run(name, func(t *testing.T) {
				c := d.Spec.Template.Spec.Containers[0]
				read := map[string]bool{}
				// With nothing set, a loader reads every variable on its
				// "missing" path; with the Deployment's values, on its normal
				// path, with and without the optional secrets.
				empty := &recorder{env: map[string]string{}, read: read}
				if _, err := loaders[name](empty.getenv); err == nil {
					t.Error("LoadConfig succeeds with no variable set: is it reading the environment at all?")
				}
				for _, withOptional := range []bool{false, true} {
					env, err := resolveEnv(m, c, withOptional)
					if err != nil {
						t.Fatal(err)
					}
					r := &recorder{env: env, read: read}
					if _, err := loaders[name](r.getenv); err != nil {
						t.Errorf("LoadConfig with the Deployment's environment (optional secrets set: %v): %v", withOptional, err)
					}
				}
				set := map[string]bool{}
				// Variables that exist to be put into others
				// ($(MONGO_PASSWORD) in MONGO_URI) are read through them.
				expanded := map[string]bool{}
				for _, e := range c.Env {
					set[e.Name] = true
					for _, v := range referencedVars(e.Value) {
						expanded[v] = true
					}
				}
				for _, v := range slices.Sorted(maps.Keys(read)) {
					if !set[v] && !slices.Contains(retiredEnv, v) {
						t.Errorf("LoadConfig reads %s; the Deployment does not set it", v)
					}
				}
				for _, v := range slices.Sorted(maps.Keys(set)) {
					if !read[v] && !expanded[v] && !slices.Contains(runtimeEnv, v) {
						t.Errorf("the Deployment sets %s; LoadConfig never reads it", v)
					}
				}
				t.Logf("LoadConfig reads %d variables: %s", len(read), strings.Join(slices.Sorted(maps.Keys(read)), " "))
			})
		}
	})
}

// TestClusterIDAgrees: every app connects to the cluster id the NATS
// Streaming server runs with.
func TestClusterIDAgrees(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		sopts, _ := natsOptions(t, m)
		for name, d := range appDeployments(t, m) {
			if name == "client" {
				continue // the storefront does not use NATS
			}
			env, err := resolveEnv(m, d.Spec.Template.Spec.Containers[0], false)
			if err != nil {
				t.Fatal(err)
			}
			if env["NATS_CLUSTER_ID"] != sopts.ID {
				t.Errorf("%s: NATS_CLUSTER_ID %q; the server's --cluster_id is %q", name, env["NATS_CLUSTER_ID"], sopts.ID)
			}
		}
	})
}

// TestClientStartsWithImageAssets builds the storefront (app.New, which
// connects to nothing) from its Deployment's environment, with ASSETS_DIR
// mapped to the folder the Dockerfile copies there in the Deployment's
// image: the image has every file the storefront needs.
func TestClientStartsWithImageAssets(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		d := m.Deployments["client"]
		if d == nil {
			t.Fatal("no client Deployment")
		}
		env, err := resolveEnv(m, d.Spec.Template.Spec.Containers[0], false)
		if err != nil {
			t.Fatal(err)
		}
		image := d.Spec.Template.Spec.Containers[0].Image
		img, ok := artifactImages(t, platforms[0])[image]
		if !ok {
			t.Fatalf("image %s is not built by skaffold.yaml", image)
		}
		src := ""
		for _, cp := range img.Final.copies() {
			if cp.From == "" && filepath.Clean(cp.Dest) == filepath.Clean(env["ASSETS_DIR"]) && len(cp.Sources) == 1 {
				src = filepath.Join(repoRoot(t), filepath.FromSlash(cp.Sources[0]))
			}
		}
		if src == "" {
			t.Fatalf("%s: the Dockerfile copies nothing from the context to ASSETS_DIR %q", image, env["ASSETS_DIR"])
		}
		env["ASSETS_DIR"] = src
		cfg, err := clientapp.LoadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		a, err := clientapp.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("the storefront does not start with the image's assets: %v", err)
		}
		if err := a.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

// TestNoEnvReadOutsideLoadConfig: the apps' own packages (this repository's,
// in each binary) read the environment only through the getenv given to
// LoadConfig. A direct os.Getenv, os.LookupEnv or os.Environ call would be a
// variable TestEnvMatchesLoadConfig cannot see; passing os.Getenv as a value
// (main's LoadConfig(os.Getenv)) is the one allowed use.
func TestNoEnvReadOutsideLoadConfig(t *testing.T) {
	checked := 0
	seen := map[string]bool{}
	// Per platform: a file with a build constraint is in one binary only.
	for _, p := range platforms {
		var pkgs []string
		for image, img := range artifactImages(t, p) {
			pkg, err := img.mainPackage()
			if err != nil {
				t.Fatalf("%s: %v", image, err)
			}
			pkgs = append(pkgs, pkg) // ./services/auth
		}
		cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{if .Module}}{{.Module.Path}} {{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{end}}"}, pkgs...)...)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list for %s: %v", p, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(f[0], "github.com/stuffmart/stuffmart/") {
				continue
			}
			for _, name := range f[2:] {
				file := filepath.Join(f[1], name)
				if seen[file] {
					continue
				}
				seen[file] = true
				checked++
				for _, pos := range envCalls(t, file) {
					t.Errorf("%s: reads the environment directly; read it in LoadConfig through getenv", pos)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no file of this repository checked")
	}
}

// envCalls returns the positions of calls to os.Getenv, os.LookupEnv and
// os.Environ in file.
func envCalls(t *testing.T, file string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	osName := ""
	for _, imp := range f.Imports {
		if imp.Path.Value == `"os"` {
			osName = "os"
			if imp.Name != nil {
				osName = imp.Name.Name
			}
		}
	}
	if osName == "" {
		return nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == osName && slices.Contains([]string{"Getenv", "LookupEnv", "Environ"}, sel.Sel.Name) {
			out = append(out, fset.Position(call.Pos()).String())
		}
		return true
	})
	return out
}
