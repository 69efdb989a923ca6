package stack_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/dev/stack"
)

// seen is what an upstream reports about the request it got.
type seen struct {
	Service    string `json:"service"`
	Path       string `json:"path"`
	Host       string `json:"host"`
	XFF        string `json:"xff"`
	XFProto    string `json:"xfProto"`
	XFHost     string `json:"xfHost"`
	XFPort     string `json:"xfPort"`
	XRealIP    string `json:"xRealIP"`
	XRequestID string `json:"xRequestID"`
}

func upstream(t *testing.T, name string) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(seen{
			Service: name, Path: r.URL.RequestURI(), Host: r.Host,
			XFF: r.Header.Get("X-Forwarded-For"), XFProto: r.Header.Get("X-Forwarded-Proto"),
			XFHost: r.Header.Get("X-Forwarded-Host"), XFPort: r.Header.Get("X-Forwarded-Port"),
			XRealIP: r.Header.Get("X-Real-IP"), XRequestID: r.Header.Get("X-Request-ID"),
		}); err != nil {
			t.Errorf("upstream %s: %v", name, err)
		}
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// downURL is the address of a server that is no longer listening.
func downURL(t *testing.T) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	return u
}

func TestGatewayRoutesLikeTheIngress(t *testing.T) {
	t.Parallel()
	gw := stack.NewGateway([]stack.Route{
		// The catch-all first on purpose: the longest prefix must win anyway.
		{Name: "client", Prefix: "/", Target: upstream(t, "client")},
		{Name: "auth", Prefix: "/api/users", Target: upstream(t, "auth")},
		{Name: "orders", Prefix: "/api/orders/", Target: downURL(t)},
	}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	host := strings.TrimPrefix(srv.URL, "http://")
	_, port, err := net.SplitHostPort(host)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   string // exact, for errors and /healthz
		check      func(t *testing.T, s seen)
	}{
		{name: "service prefix itself", path: "/api/users", wantStatus: 200, check: func(t *testing.T, s seen) {
			if s.Service != "auth" || s.Path != "/api/users" {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "path and query kept", path: "/api/users/currentuser?x=1", wantStatus: 200, check: func(t *testing.T, s seen) {
			if s.Service != "auth" || s.Path != "/api/users/currentuser?x=1" {
				t.Errorf("got %+v", s)
			}
		}},
		{
			name:       "forwarded headers set by the gateway, the browser's dropped",
			path:       "/api/users/signin",
			header:     map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Real-IP": "6.6.6.6"},
			wantStatus: 200,
			check: func(t *testing.T, s seen) {
				if s.Host != host || s.XFHost != host || s.XFF != "127.0.0.1" || s.XRealIP != "127.0.0.1" ||
					s.XFProto != "http" || s.XFPort != port {
					t.Errorf("got %+v (gateway at %s)", s, host)
				}
				if len(s.XRequestID) != 32 {
					t.Errorf("X-Request-ID = %q, want a generated one", s.XRequestID)
				}
			},
		},
		{name: "request id kept", path: "/api/users/x", header: map[string]string{"X-Request-ID": "abc"}, wantStatus: 200, check: func(t *testing.T, s seen) {
			if s.XRequestID != "abc" {
				t.Errorf("X-Request-ID = %q", s.XRequestID)
			}
		}},
		{name: "prefix matches whole path elements", path: "/api/usersx", wantStatus: 404, wantBody: `{"errors":[{"message":"Not Found"}]}`},
		{name: "api of a service not running is a JSON 404, not the client", path: "/api/stuff/123", wantStatus: 404, wantBody: `{"errors":[{"message":"Not Found"}]}`},
		{name: "bare /api is not the client's", path: "/api", wantStatus: 404, wantBody: `{"errors":[{"message":"Not Found"}]}`},
		{name: "everything else goes to the client", path: "/stuff/123?page=2", wantStatus: 200, check: func(t *testing.T, s seen) {
			if s.Service != "client" || s.Path != "/stuff/123?page=2" {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "apiary is the client's", path: "/apiary", wantStatus: 200, check: func(t *testing.T, s seen) {
			if s.Service != "client" {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "service down is a JSON 502", method: http.MethodPost, path: "/api/orders", wantStatus: 502, wantBody: `{"errors":[{"message":"Bad Gateway"}]}`},
		{name: "gateway health", path: "/healthz", wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "HEAD 404 has no body", method: http.MethodHead, path: "/api/stuff", wantStatus: 404, wantBody: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, tc.path, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.check != nil {
				var s seen
				if err := json.Unmarshal(body, &s); err != nil {
					t.Fatalf("decode %s: %v", body, err)
				}
				tc.check(t, s)
				return
			}
			if got := strings.TrimSpace(string(body)); got != tc.wantBody {
				t.Errorf("body = %q, want %q", got, tc.wantBody)
			}
			if tc.wantStatus >= 400 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestGatewayWithoutClientAnswers404Everywhere(t *testing.T) {
	t.Parallel()
	gw := stack.NewGateway([]stack.Route{{Name: "auth", Prefix: "/api/users", Target: upstream(t, "auth")}}, slog.New(slog.DiscardHandler))
	for _, path := range []string{"/", "/stuff/1", "/favicon.ico"} {
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound || strings.TrimSpace(rec.Body.String()) != `{"errors":[{"message":"Not Found"}]}` {
			t.Errorf("GET %s = %d %s, want the normalized 404", path, rec.Code, rec.Body)
		}
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
