package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/web"
)

// A client is its IPv4 address, or its IPv6 /64: the addresses of one
// subscriber's network share its limits.
func TestClientIP(t *testing.T) {
	t.Parallel()
	e := echo.New()
	for _, tc := range []struct{ remote, want string }{
		{"203.0.113.7:4000", "203.0.113.7"},
		{"[2001:db8:1:2:aaaa::1]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:4000", "2001:db8:1:2::/64"},
		{"[::ffff:203.0.113.7]:4000", "::ffff:203.0.113.7"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tc.remote
		if got := web.ClientIP(e.NewContext(req, httptest.NewRecorder())); got != tc.want {
			t.Errorf("client %s: %q, want %q", tc.remote, got, tc.want)
		}
	}
}
