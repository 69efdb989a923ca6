package metrics_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// A nil Set records nothing and serves an empty page, so code under test
// can run without metrics; a domain counter made on it still counts.
func TestNilSet(t *testing.T) {
	t.Parallel()
	var m *metrics.Set
	m.ServedHTTP("/x", "GET", 200, time.Millisecond)
	m.Published("stuff:created", errors.New("down"))
	m.Handled("stuff:created", "orders", metrics.Acked, time.Millisecond)
	m.Refused("signin")
	m.Called("auth", "GET", 0, time.Millisecond)
	m.GaugeFunc("g", "help", func() float64 { return 1 })
	c := m.Counter("domain_total", "help", "kind")
	c.WithLabelValues("a").Inc()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	if got := testkit.Scrape(t, srv.URL); len(got) != 0 {
		t.Fatalf("a nil set served %s", got)
	}
}

// Domain metrics join the shared ones in the service's registry; a call to
// another service that got no answer is counted with status "error".
func TestDomainAndUpstream(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.Counter("orders_completed_total", "Orders completed.").WithLabelValues().Add(2)
	m.Histogram("expiry_lateness_seconds", "Lateness.", nil).WithLabelValues().Observe(0.2)
	m.GaugeFunc("refunds_pending", "Refunds waiting.", func() float64 { return 3 })
	m.Called("stuff", "GET", 0, time.Millisecond)
	m.Called("stuff", "GET", 200, time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	got := testkit.Scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"orders_completed_total", nil, 2},
		{"expiry_lateness_seconds", nil, 1},
		{"refunds_pending", nil, 3},
		{"upstream_requests_total", []string{"service", "stuff", "status", "error"}, 1},
		{"upstream_requests_total", []string{"service", "stuff", "status", "200"}, 1},
		{"upstream_request_duration_seconds", []string{"service", "stuff"}, 2},
	} {
		if v := got.Value(c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}

// Requests are counted per route, method and status however often each is
// seen, and a method outside HTTP's standard ones is counted as "other",
// so that no client can add series.
func TestServedHTTP(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	for range 3 {
		m.ServedHTTP("/api/stuff/:id", "GET", 200, time.Millisecond)
	}
	m.ServedHTTP("/api/stuff/:id", "GET", 304, time.Millisecond)
	m.ServedHTTP("/api/stuff/:id", "BREW", 405, time.Millisecond)
	m.ServedHTTP("/api/stuff/:id", "TEAPOT", 405, time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	got := testkit.Scrape(t, srv.URL)
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"method", "GET", "status", "200"}, 3},
		{[]string{"method", "GET", "status", "304"}, 1},
		{[]string{"method", "other", "status", "405"}, 2},
		{[]string{"method", "BREW"}, 0},
	} {
		if v := got.Value("http_requests_total", c.labels...); v != c.want {
			t.Errorf("http_requests_total%v = %v, want %v", c.labels, v, c.want)
		}
	}
	if v := got.Value("http_request_duration_seconds", "method", "GET"); v != 4 {
		t.Errorf("http_request_duration_seconds{GET} counts %v, want 4", v)
	}
}

// Outcomes serves every given value's series from the start, at 0.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	c := m.Outcomes("things_total", "Things by result.", "result", "ok", "refused")
	c.WithLabelValues("ok").Inc()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	got := testkit.Scrape(t, srv.URL)
	if !strings.Contains(got.String(), "things_total{result=refused}") || got.Value("things_total", "result", "refused") != 0 || got.Value("things_total", "result", "ok") != 1 {
		t.Fatalf("series:\n%s", got)
	}
}
