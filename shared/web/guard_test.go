package web_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/testkit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// whoami answers the client address and scheme the server believes.
func whoami(opts web.Options) *echo.Echo {
	e := web.New(slog.New(slog.DiscardHandler), opts)
	e.Any("/who", func(c echo.Context) error { return c.String(http.StatusOK, c.RealIP()+" "+c.Scheme()) })
	return e
}

func serveFrom(e *echo.Echo, method, remote string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://shop.example/who", nil)
	req.RemoteAddr = remote
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// Forwarded headers count only from a trusted proxy: anyone else's are
// dropped, so a client cannot pick the address it is rate-limited by, nor
// claim HTTPS.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	proxies, err := web.ParsePrefixes([]string{"10.0.0.0/8", " 192.168.1.7 "})
	if err != nil {
		t.Fatal(err)
	}
	e := whoami(web.Options{TrustedProxies: proxies})
	fwd := map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
	tests := []struct {
		name   string
		remote string
		header map[string]string
		want   string
	}{
		{"a client claiming to be forwarded", "198.51.100.4:5000", fwd, "198.51.100.4 http"},
		{"the trusted ingress", "10.1.2.3:5000", fwd, "203.0.113.9 https"},
		{"a single trusted address", "192.168.1.7:5000", fwd, "203.0.113.9 https"},
		{"a client's own X-Forwarded-For behind the ingress",
			"10.1.2.3:5000", map[string]string{"X-Forwarded-For": "1.2.3.4, 203.0.113.9"}, "203.0.113.9 http"},
		{"the storefront behind the ingress",
			"10.1.2.3:5000", map[string]string{"X-Forwarded-For": "203.0.113.9, 10.4.4.4"}, "203.0.113.9 http"},
		{"no proxy headers", "198.51.100.4:5000", nil, "198.51.100.4 http"},
	}
	for _, tc := range tests {
		if got := strings.TrimSpace(serveFrom(e, http.MethodGet, tc.remote, tc.header).Body.String()); got != tc.want {
			t.Errorf("%s: the server believes %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := strings.TrimSpace(serveFrom(whoami(web.Options{}), http.MethodGet, "127.0.0.1:1", fwd).Body.String()); got != "127.0.0.1 http" {
		t.Errorf("no trusted proxies, loopback peer: %q; want the forwarded headers ignored", got)
	}
	if _, err := web.ParsePrefixes([]string{"10.0.0.0/8", "not-an-ip"}); err == nil {
		t.Error("a bad entry is accepted")
	}
}

// An unsafe request a browser makes from another site, a sibling subdomain
// included, is refused; the site's own pages, navigations and server-side
// callers pass.
func TestSameOrigin(t *testing.T) {
	t.Parallel()
	e := whoami(web.Options{})
	tests := []struct {
		name   string
		method string
		header map[string]string
		status int
	}{
		{"cross-site POST", http.MethodPost, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"sibling subdomain POST", http.MethodPost, map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"same-origin POST", http.MethodPost, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"typed in the address bar", http.MethodPost, map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
		{"old browser, other Origin", http.MethodDelete, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"old browser, sibling Origin", http.MethodPut, map[string]string{"Origin": "https://notes.shop.example"}, http.StatusForbidden},
		{"old browser, own Origin", http.MethodPost, map[string]string{"Origin": "https://shop.example"}, http.StatusOK},
		{"a service or the storefront (no browser headers)", http.MethodPost, nil, http.StatusOK},
		{"cross-site GET (safe)", http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusOK},
	}
	for _, tc := range tests {
		rec := serveFrom(e, tc.method, "198.51.100.4:5000", tc.header)
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.status)
		}
		if tc.status == http.StatusForbidden && !strings.Contains(rec.Body.String(), `{"errors":[{"message":"Cross-site requests are refused"}]}`) {
			t.Errorf("%s: body %s", tc.name, rec.Body)
		}
	}
}

// Unsafe requests are limited per client address; the refusal is a 429 in
// the normalized shape with Retry-After; safe requests are not counted.
func TestUnsafeLimit(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	e := whoami(web.Options{UnsafeLimit: ratelimit.New(ratelimit.Rule{Every: 20 * time.Second, Burst: 2}, clk.Now)})
	for range 5 {
		if rec := serveFrom(e, http.MethodGet, "198.51.100.4:5000", nil); rec.Code != http.StatusOK {
			t.Fatalf("GET limited: %d", rec.Code)
		}
	}
	for i := range 2 {
		if rec := serveFrom(e, http.MethodPost, "198.51.100.4:5000", nil); rec.Code != http.StatusOK {
			t.Fatalf("POST %d: %d", i+1, rec.Code)
		}
	}
	rec := serveFrom(e, http.MethodPost, "198.51.100.4:5000", nil)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "20" ||
		strings.TrimSpace(rec.Body.String()) != `{"errors":[{"message":"Too many requests: try again in 20 seconds"}]}` {
		t.Fatalf("third POST: %d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if rec := serveFrom(e, http.MethodPost, "198.51.100.5:5000", nil); rec.Code != http.StatusOK {
		t.Fatalf("another client limited: %d", rec.Code)
	}
	clk.Advance(20 * time.Second)
	if rec := serveFrom(e, http.MethodPost, "198.51.100.4:5000", nil); rec.Code != http.StatusOK {
		t.Fatalf("after the wait: %d", rec.Code)
	}
}
