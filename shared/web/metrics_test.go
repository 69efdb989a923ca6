package web_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/testkit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Requests are counted by the route pattern they matched (never the raw
// path), method and status; refusals by the limit that refused; and
// /metrics is served to direct callers only, not through a proxy.
func TestMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	clock := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	limit := ratelimit.New(ratelimit.Rule{Every: time.Minute, Burst: 1, Name: "rate_limit_unsafe"}, clock.Now)
	e := web.New(slog.New(slog.DiscardHandler), web.Options{Metrics: m, TrustedProxies: web.Loopback, UnsafeLimit: limit})
	e.GET("/api/stuff/:id", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("id")) })
	e.POST("/api/stuff", func(c echo.Context) error { return c.NoContent(http.StatusCreated) })
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	c := testkit.NewClient(t, srv.URL)

	c.Do(http.MethodGet, "/api/stuff/a1", nil).Want(http.StatusOK)
	c.Do(http.MethodGet, "/api/stuff/b2", nil).Want(http.StatusOK)
	c.Do(http.MethodGet, "/nowhere", nil).Want(http.StatusNotFound)
	c.Do(http.MethodPost, "/api/stuff", nil).Want(http.StatusCreated)
	c.Do(http.MethodPost, "/api/stuff", nil).Want(http.StatusTooManyRequests)

	got := testkit.Scrape(t, srv.URL+"/metrics")
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"http_requests_total", []string{"route", "/api/stuff/:id", "method", "GET", "status", "200"}, 2},
		{"http_request_duration_seconds", []string{"route", "/api/stuff/:id", "method", "GET"}, 2},
		{"http_requests_total", []string{"route", "unmatched", "status", "404"}, 1},
		{"http_requests_total", []string{"route", "/api/stuff", "method", "POST", "status", "201"}, 1},
		{"http_requests_total", []string{"route", "/api/stuff", "method", "POST", "status", "429"}, 1},
		{"ratelimit_refused_total", []string{"limit", "rate_limit_unsafe"}, 1},
	}
	for _, ch := range checks {
		if v := got.Value(ch.name, ch.labels...); v != ch.want {
			t.Errorf("%s%v = %v, want %v\n%s", ch.name, ch.labels, v, ch.want, got)
		}
	}
	if got.Value("http_requests_total", "route", "/api/stuff/a1") != 0 {
		t.Error("a raw path became a label")
	}
	if !got.Has("go_goroutines") || !got.Has("process_cpu_seconds_total") {
		t.Error("the runtime and process collectors are missing")
	}

	// Through the gateway or the ingress (a trusted proxy that adds
	// X-Forwarded-For) the page does not exist.
	c.Do(http.MethodGet, "/metrics", nil, testkit.WithHeader("X-Forwarded-For", "203.0.113.9")).
		WantError(http.StatusNotFound, "Not Found", "")

	// A proxy missing from TRUSTED_PROXIES has its forwarded headers
	// dropped, and still does not reach the page.
	untrusted := web.New(slog.New(slog.DiscardHandler), web.Options{Metrics: m})
	usrv := httptest.NewServer(untrusted)
	t.Cleanup(usrv.Close)
	uc := testkit.NewClient(t, usrv.URL)
	uc.Do(http.MethodGet, "/metrics", nil, testkit.WithHeader("X-Forwarded-For", "203.0.113.9")).
		WantError(http.StatusNotFound, "Not Found", "")
	uc.Do(http.MethodGet, "/metrics", nil, testkit.WithHeader("Forwarded", "for=203.0.113.9")).
		WantError(http.StatusNotFound, "Not Found", "")
	uc.Do(http.MethodGet, "/metrics", nil).Want(http.StatusOK)
}

// Without a Set there is no /metrics route.
func TestNoMetrics(t *testing.T) {
	t.Parallel()
	e := web.New(slog.New(slog.DiscardHandler), web.Options{})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
}
