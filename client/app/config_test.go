package app_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/client/app"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var validEnv = map[string]string{
	"JWT_KEY":     "a-jwt-key-of-at-least-32-characters!",
	"SESSION_KEY": "a-session-key-of-at-least-32-chars!!",
	"API_URL":     "http://gateway:8080",
}

func with(kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range validEnv {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cfg, err := app.LoadConfig(env(validEnv))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":3000" || cfg.AuthURL != "http://gateway:8080" || cfg.PaymentsURL != "http://gateway:8080" ||
		cfg.CacheTTL != time.Second || !cfg.PaymentsOffline || cfg.ServiceTimeout != 5*time.Second || cfg.OrderHold != 15*time.Minute ||
		len(cfg.TrustedProxies) != 0 || !cfg.Limits.On || cfg.Limits.Unsafe.Burst != 100 || cfg.DebugAddr != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = app.LoadConfig(env(with("STUFF_URL", "http://stuff-srv:3000", "CACHE_TTL", "0", "PAYMENTS_OFFLINE", "false", "PUBLIC_URL", "https://shop.example/", "ORDER_HOLD", "10m")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StuffURL != "http://stuff-srv:3000" || cfg.AuthURL != "http://gateway:8080" || cfg.CacheTTL != 0 || cfg.PaymentsOffline || cfg.PublicURL != "https://shop.example" || cfg.OrderHold != 10*time.Minute {
		t.Errorf("overrides: %+v", cfg)
	}
	cfg, err = app.LoadConfig(env(with("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1", "RATE_LIMIT", "off", "RATE_LIMIT_UNSAFE", "5/m burst 2", "RATE_LIMIT_SEARCH", "30/m burst 4", "DEBUG_ADDR", "127.0.0.1:6061")))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TrustedProxies) != 2 || cfg.TrustedProxies[0].String() != "10.0.0.0/8" || cfg.TrustedProxies[1].String() != "127.0.0.1/32" ||
		cfg.Limits.On || cfg.Limits.Unsafe.Every != 12*time.Second || cfg.Limits.Unsafe.Burst != 2 || cfg.Limits.Unsafe.Name != "rate_limit_unsafe" ||
		cfg.SearchLimit.Every != 2*time.Second || cfg.SearchLimit.Burst != 4 || cfg.SearchLimit.Name != "rate_limit_search" ||
		cfg.DebugAddr != "127.0.0.1:6061" {
		t.Errorf("proxies, limits, profiles: %+v", cfg)
	}
	if s := cfg.LogValue().String(); strings.Contains(s, validEnv["JWT_KEY"]) || strings.Contains(s, validEnv["SESSION_KEY"]) {
		t.Errorf("secrets in the log: %s", s)
	}

	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", map[string]string{}, []string{"AUTH_URL is required", "STUFF_URL is required", "ORDERS_URL is required", "PAYMENTS_URL is required", "JWT_KEY is required", "SESSION_KEY is required"}},
		{"short secret", with("JWT_KEY", "short"), []string{"JWT_KEY must be at least 32 characters"}},
		{"cache over a second", with("CACHE_TTL", "2s"), []string{"CACHE_TTL"}},
		{"bad cache", with("CACHE_TTL", "soon"), []string{"CACHE_TTL"}},
		{"bad bool", with("PAYMENTS_OFFLINE", "maybe"), []string{"PAYMENTS_OFFLINE"}},
		{"bad public URL", with("PUBLIC_URL", "shop.example/path"), []string{"PUBLIC_URL"}},
		{"bad body limit", with("BODY_LIMIT", "lots"), []string{"BODY_LIMIT"}},
		{"bad hold", with("ORDER_HOLD", "soon"), []string{"ORDER_HOLD"}},
		{"no hold", with("ORDER_HOLD", "0"), []string{"ORDER_HOLD"}},
		{"bad proxies", with("TRUSTED_PROXIES", "ingress"), []string{"TRUSTED_PROXIES"}},
		{"bad switch", with("RATE_LIMIT", "maybe"), []string{"RATE_LIMIT"}},
		{"bad rule", with("RATE_LIMIT_UNSAFE", "lots"), []string{"RATE_LIMIT_UNSAFE"}},
		{"bad search rule", with("RATE_LIMIT_SEARCH", "often"), []string{"RATE_LIMIT_SEARCH"}},
		{"profiles on the network", with("DEBUG_ADDR", "0.0.0.0:6060"), []string{"DEBUG_ADDR"}},
	}
	for _, tc := range tests {
		_, err := app.LoadConfig(env(tc.env))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v lacks %q", tc.name, err, w)
			}
		}
	}
}

// TestServicesDown: with no service reachable the storefront still answers
// its probes, and pages are a friendly 503, never a stack trace.
func TestServicesDown(t *testing.T) {
	t.Parallel()
	cfg, err := app.LoadConfig(env(with("API_URL", "http://127.0.0.1:1", "SERVICE_TIMEOUT", "2s")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := a.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusOK} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	nb := newBrowser(t, nil, srv.URL)
	p := nb.get("/").is(http.StatusServiceUnavailable).contains("We are having trouble", "Reference: <code>")
	p.lacks("goroutine", "127.0.0.1:1", "dial tcp")
	// A well-formed id: "abc" is no id at all, a 404 without asking the
	// stuff service.
	nb.get("/stuff/0123456789abcdef01234567").is(http.StatusServiceUnavailable)
	nb.get("/stuff/abc").is(http.StatusNotFound)
	// HEAD works on the pages crawlers check.
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/robots.txt", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /robots.txt: %d", resp.StatusCode)
	}
}

// TestRunServesProfilesOnDebugAddr: DEBUG_ADDR serves the profiles on a
// listener of its own; the storefront's port does not.
func TestRunServesProfilesOnDebugAddr(t *testing.T) {
	t.Parallel()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	httpAddr, debugAddr := free(), free()
	cfg, err := app.LoadConfig(env(with("API_URL", "http://127.0.0.1:1", "HTTP_ADDR", httpAddr, "DEBUG_ADDR", debugAddr)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx, cfg, testkit.Logger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testkit.Eventually(t, 15*time.Second, func() bool {
		return status("http://"+debugAddr+"/debug/pprof/cmdline") == http.StatusOK
	}, "no profiles on DEBUG_ADDR")
	testkit.Eventually(t, 15*time.Second, func() bool { return status("http://"+httpAddr+"/healthz") == http.StatusOK }, "the storefront does not answer")
	if code := status("http://" + httpAddr + "/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Fatalf("the storefront's port answers profiles: %d", code)
	}
}
