package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// TestForwardedFor: the X-Forwarded-For a call carries is the browser
// request's own, followed by the address it came from.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "198.51.100.4:51234", nil, "198.51.100.4"},
		{"through a proxy", "10.0.0.7:40000", []string{"203.0.113.9"}, "203.0.113.9, 10.0.0.7"},
		{"two headers, IPv6 peer", "[fd00::7]:40000", []string{"203.0.113.9", "10.0.0.2"}, "203.0.113.9, 10.0.0.2, fd00::7"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := api.ForwardedFor(r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// seen is what the stand-in service saw of a call.
type seen struct{ xff, correlationID, requestID string }

// TestCallsCarryTheBrowser: every call carries the browser's address, the
// request id and the correlation id of the storefront request; a 429's
// Retry-After comes back with the error; and every call, answered or not,
// is counted and timed by service, method and status.
func TestCallsCarryTheBrowser(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Header.Get("X-Forwarded-For"), r.Header.Get(correlation.Header), r.Header.Get("X-Request-ID")})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/users/signin" {
			w.Header().Set("Retry-After", "42")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"errors":[{"message":"Too many requests: try again in 42 seconds"}]}`))
			return
		}
		_, _ = w.Write([]byte(`{"stuff":[],"page":1,"limit":20,"total":0}`))
	}))
	t.Cleanup(srv.Close)
	set := metrics.New()
	// auth is not listening: its calls get no answer.
	c, err := api.New(srv.URL, srv.URL, srv.URL, "http://127.0.0.1:1", api.Options{Timeout: 5 * time.Second, Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	ctx := correlation.With(context.Background(), "corr-4711")
	s := api.Session{RequestID: "req-1", ForwardedFor: "203.0.113.9, 10.0.0.7"}
	if _, err := c.Stuff.List(ctx, s, 1, 20); err != nil {
		t.Fatal(err)
	}
	_, err = c.Auth.SignIn(ctx, s, api.Credentials{Email: "ann@uni.edu", Password: "secret secret"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.RetryAfter != 42*time.Second {
		t.Errorf("sign-in refused with 429: %#v", err)
	}
	if _, err := c.Payments.Coupons(ctx, s); err == nil || api.StatusOf(err) != 0 {
		t.Errorf("a call to a service that is down: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d calls reached the service, want 2", len(got))
	}
	for _, g := range got {
		if g != (seen{"203.0.113.9, 10.0.0.7", "corr-4711", "req-1"}) {
			t.Errorf("the service saw %+v", g)
		}
	}

	msrv := httptest.NewServer(set.Handler())
	t.Cleanup(msrv.Close)
	m := testkit.Scrape(t, msrv.URL)
	for _, want := range []struct {
		service, method, status string
	}{{"stuff", "GET", "200"}, {"auth", "POST", "429"}, {"payments", "GET", "error"}} {
		if n := m.Value("upstream_requests_total", "service", want.service, "method", want.method, "status", want.status); n != 1 {
			t.Errorf("upstream_requests_total%v = %v, want 1\n%s", want, n, m)
		}
		if n := m.Value("upstream_request_duration_seconds", "service", want.service, "method", want.method); n != 1 {
			t.Errorf("upstream_request_duration_seconds of %s %s: %v observations, want 1", want.service, want.method, n)
		}
	}
}
