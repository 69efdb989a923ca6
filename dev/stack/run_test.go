package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/dev/stack"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// serve is a minimal service: it listens on HTTP_ADDR, answers /readyz with
// readyStatus and anything else with its name and the path, until ctx ends.
func serve(ctx context.Context, name string, getenv func(string) string, readyStatus int) error {
	ln, err := net.Listen("tcp", getenv("HTTP_ADDR"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := name + " " + r.URL.Path
		if r.URL.Path == "/readyz" {
			w.WriteHeader(readyStatus)
			body = `{"errors":[{"message":"database is not ready"}]}`
		}
		if _, err := io.WriteString(w, body); err != nil {
			return // the client went away
		}
	})}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return srv.Shutdown(context.Background())
	}
}

func healthy(name string) stack.StartFunc {
	return func(ctx context.Context, getenv func(string) string, _ *slog.Logger) error {
		return serve(ctx, name, getenv, http.StatusOK)
	}
}

// config returns a stack configuration on a temp data dir and a free port
// running services.
func config(t *testing.T, env map[string]string, services ...stack.Service) stack.Config {
	t.Helper()
	all := map[string]string{"PORT": "0", "DATA_DIR": t.TempDir()}
	for k, v := range env {
		all[k] = v
	}
	cfg, err := stack.LoadConfig(getenv(all))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	cfg.Services = services
	cfg.ReadyTimeout = 30 * time.Second
	return cfg
}

// runAsync runs the stack and reports its Info and its result.
func runAsync(t *testing.T, ctx context.Context, cfg stack.Config) (<-chan stack.Info, <-chan error) {
	infoc := make(chan stack.Info, 1)
	errc := make(chan error, 1)
	go func() { errc <- stack.Run(ctx, cfg, testkit.Logger(t), func(i stack.Info) { infoc <- i }) }()
	return infoc, errc
}

func waitInfo(t *testing.T, infoc <-chan stack.Info, errc <-chan error) stack.Info {
	t.Helper()
	select {
	case info := <-infoc:
		return info
	case err := <-errc:
		t.Fatalf("Run ended while starting: %v", err)
	case <-time.After(startTimeout):
		t.Fatalf("not ready within %s", startTimeout)
	}
	return stack.Info{}
}

func waitErr(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(startTimeout):
		t.Fatalf("Run did not return within %s", startTimeout)
	}
	return nil
}

func getBody(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(raw))
}

func TestRunGivesEachServiceItsDeploymentEnvironment(t *testing.T) {
	t.Parallel()
	names := []string{"HTTP_ADDR", "MONGO_URI", "MONGO_DB", "NATS_URL", "NATS_CLUSTER_ID", "JWT_KEY", "SESSION_KEY",
		"ACCESS_TOKEN_TTL", "ADMIN_EMAILS", "ORDER_HOLD", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "PORT", "DATA_DIR", "HOME"}
	envs := make(chan map[string]string, 2)
	record := func(name string) stack.StartFunc {
		return func(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
			env := map[string]string{}
			for _, n := range names {
				env[n] = getenv(n)
			}
			envs <- env
			return serve(ctx, name, getenv, http.StatusOK)
		}
	}
	cfg := config(t, map[string]string{
		"SESSION_KEY":      "session-from-env-0123456789abcdef0123",
		"ACCESS_TOKEN_TTL": "2m", "ORDER_HOLD": "90s", "STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_WEBHOOK_SECRET": "whsec_test_123",
	},
		stack.Service{Name: "stuff", Prefix: "/api/stuff", Start: record("stuff")},
		stack.Service{Name: "expiration", Start: record("expiration")},
	)
	ctx, cancel := context.WithCancel(t.Context())
	infoc, errc := runAsync(t, ctx, cfg)
	info := waitInfo(t, infoc, errc)

	secrets := readSecrets(t, filepath.Join(cfg.DataDir, stack.SecretsFile))
	addrs := map[string]bool{}
	for range 2 {
		env := <-envs
		host, _, err := net.SplitHostPort(env["HTTP_ADDR"])
		if err != nil || host != "127.0.0.1" || addrs[env["HTTP_ADDR"]] {
			t.Errorf("HTTP_ADDR = %q, want a port of its own on 127.0.0.1", env["HTTP_ADDR"])
		}
		addrs[env["HTTP_ADDR"]] = true
		want := map[string]string{
			"MONGO_URI": info.MongoURI, "NATS_URL": info.NATSURL, "NATS_CLUSTER_ID": "stuffmart",
			"JWT_KEY": secrets.JWTKey, "SESSION_KEY": "session-from-env-0123456789abcdef0123",
			"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_WEBHOOK_SECRET": "whsec_test_123",
			// Admins are granted with `go run ./dev admin`, never by a list.
			"ADMIN_EMAILS": "",
			// The stack's own variables and the rest of the process
			// environment are not the service's business.
			"PORT": "", "DATA_DIR": "", "HOME": "",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
		if env["MONGO_DB"] != "stuff" && env["MONGO_DB"] != "expiration" {
			t.Errorf("MONGO_DB = %q, want the service's name", env["MONGO_DB"])
		}
		if d, err := time.ParseDuration(env["ACCESS_TOKEN_TTL"]); err != nil || d != 2*time.Minute {
			t.Errorf("ACCESS_TOKEN_TTL = %q", env["ACCESS_TOKEN_TTL"])
		}
		if d, err := time.ParseDuration(env["ORDER_HOLD"]); err != nil || d != 90*time.Second {
			t.Errorf("ORDER_HOLD = %q", env["ORDER_HOLD"])
		}
	}
	if !strings.HasPrefix(info.MongoURI, "mongodb://127.0.0.1:") || !strings.HasPrefix(info.NATSURL, "nats://127.0.0.1:") {
		t.Errorf("infrastructure not on loopback: %+v", info)
	}
	if len(info.Services) != 2 || info.Services[0].Name != "stuff" || info.Services[1].Prefix != "" {
		t.Errorf("Info.Services = %+v", info.Services)
	}
	if status, body := getBody(t, info.URL+"/api/stuff/42"); status != 200 || body != "stuff /api/stuff/42" {
		t.Errorf("/api/stuff/42 = %d %q, want the stuff service", status, body)
	}
	if status, body := getBody(t, info.URL+"/api/orders"); status != 404 || body != `{"errors":[{"message":"Not Found"}]}` {
		t.Errorf("/api/orders = %d %q, want the normalized 404", status, body)
	}
	cancel()
	if err := waitErr(t, errc); err != nil {
		t.Errorf("Run = %v after cancel", err)
	}
}

func TestRunRetriesAServiceWhosePortWasTaken(t *testing.T) {
	t.Parallel()
	var starts atomic.Int32
	flaky := func(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
		if starts.Add(1) == 1 {
			return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
		}
		return serve(ctx, "auth", getenv, http.StatusOK)
	}
	ctx, cancel := context.WithCancel(t.Context())
	infoc, errc := runAsync(t, ctx, config(t, nil, stack.Service{Name: "auth", Prefix: "/api/users", Start: flaky}))
	info := waitInfo(t, infoc, errc)
	if n := starts.Load(); n != 2 {
		t.Errorf("started %d times, want 2", n)
	}
	if status, body := getBody(t, info.URL+"/api/users/x"); status != 200 || body != "auth /api/users/x" {
		t.Errorf("/api/users/x = %d %q", status, body)
	}
	cancel()
	if err := waitErr(t, errc); err != nil {
		t.Errorf("Run = %v after cancel", err)
	}
}

func TestRunFailures(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name string
		// start is the failing service; healthy "other" runs beside it.
		start        func(ctx context.Context, getenv func(string) string, died <-chan struct{}) error
		readyTimeout time.Duration
		// afterReady: the failure comes once the stack is up.
		afterReady bool
		want       []string
	}{
		{
			name:  "service fails to start",
			start: func(context.Context, func(string) string, <-chan struct{}) error { return boom },
			want:  []string{"broken", "exited while starting", "boom"},
		},
		{
			name: "service never ready",
			start: func(ctx context.Context, getenv func(string) string, _ <-chan struct{}) error {
				return serve(ctx, "broken", getenv, http.StatusServiceUnavailable)
			},
			readyTimeout: 300 * time.Millisecond,
			want:         []string{"broken", "not ready within 300ms", "503", "database is not ready"},
		},
		{
			name: "service dies after start",
			start: func(ctx context.Context, getenv func(string) string, died <-chan struct{}) error {
				sctx, stop := context.WithCancel(ctx)
				defer stop()
				go func() {
					<-died
					stop()
				}()
				if err := serve(sctx, "broken", getenv, http.StatusOK); err != nil {
					return err
				}
				if ctx.Err() == nil {
					return boom
				}
				return nil
			},
			afterReady: true,
			want:       []string{"broken stopped on its own", "boom"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			died := make(chan struct{})
			var otherStopped atomic.Bool
			other := func(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
				defer otherStopped.Store(true)
				return serve(ctx, "other", getenv, http.StatusOK)
			}
			broken := func(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
				return tc.start(ctx, getenv, died)
			}
			cfg := config(t, nil,
				stack.Service{Name: "other", Prefix: "/api/other", Start: other},
				stack.Service{Name: "broken", Prefix: "/api/broken", Start: broken},
			)
			if tc.readyTimeout > 0 {
				cfg.ReadyTimeout = tc.readyTimeout
			}
			infoc, errc := runAsync(t, t.Context(), cfg)
			if tc.afterReady {
				waitInfo(t, infoc, errc)
				close(died)
			}
			err := waitErr(t, errc)
			if err == nil {
				t.Fatal("Run = nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !tc.afterReady {
				select {
				case info := <-infoc:
					t.Errorf("ready was called: %+v", info)
				default:
				}
			}
			if !otherStopped.Load() {
				t.Error("the healthy service was still running when Run returned")
			}
		})
	}
}

func TestRunInterruptedWhileStartingIsNotAnError(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	slow := func(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
		close(started)
		return serve(ctx, "slow", getenv, http.StatusServiceUnavailable)
	}
	ctx, cancel := context.WithCancel(t.Context())
	infoc, errc := runAsync(t, ctx, config(t, nil, stack.Service{Name: "slow", Start: slow}))
	<-started
	cancel()
	if err := waitErr(t, errc); err != nil {
		t.Errorf("Run = %v, want nil after Ctrl-C", err)
	}
	select {
	case info := <-infoc:
		t.Errorf("ready was called: %+v", info)
	default:
	}
}

// The stack lists every app's metrics endpoint for a local Prometheus, and
// DEBUG_ADDR serves the process's profiles on loopback.
func TestRunListsMetricsTargetsAndServesProfiles(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := config(t, map[string]string{"DEBUG_ADDR": debugAddr},
		stack.Service{Name: "stuff", Prefix: "/api/stuff", Start: healthy("stuff")},
		stack.Service{Name: "expiration", Start: healthy("expiration")},
	)
	ctx, cancel := context.WithCancel(t.Context())
	infoc, errc := runAsync(t, ctx, cfg)
	info := waitInfo(t, infoc, errc)

	if info.Targets != filepath.Join(cfg.DataDir, stack.TargetsFile) {
		t.Fatalf("Targets = %q", info.Targets)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(readFile(t, info.Targets)), &groups); err != nil {
		t.Fatalf("targets file: %v", err)
	}
	got := map[string]string{}
	for _, g := range groups {
		if len(g.Targets) != 1 {
			t.Fatalf("group %+v", g)
		}
		got[g.Labels["app"]] = "http://" + g.Targets[0]
	}
	for _, s := range info.Services {
		if got[s.Name] != s.URL {
			t.Errorf("target of %s = %q, want its URL %q", s.Name, got[s.Name], s.URL)
		}
	}
	if len(got) != len(info.Services) {
		t.Errorf("targets %v for services %+v", got, info.Services)
	}
	if info.DebugURL != "http://"+debugAddr+"/debug/pprof/" {
		t.Fatalf("DebugURL = %q", info.DebugURL)
	}
	if status, _ := getBody(t, "http://"+debugAddr+"/debug/pprof/cmdline"); status != http.StatusOK {
		t.Fatalf("profiles answered %d", status)
	}
	cancel()
	if err := waitErr(t, errc); err != nil {
		t.Errorf("Run = %v after cancel", err)
	}
	if _, err := http.Get("http://" + debugAddr + "/debug/pprof/"); err == nil {
		t.Error("profiles still served after the stack stopped")
	}
}
