package csrf_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/csrf"
)

// issue renders a token for user on a fresh browser and returns it with
// the cookie set.
func issue(t *testing.T, g *csrf.Guard, e *echo.Echo, user string) (string, *http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
	c.Set("user", user)
	tok := g.Token(c)
	if again := g.Token(c); again != tok {
		t.Fatal("two tokens in one request")
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != csrf.CookieName || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode ||
		cookies[0].MaxAge != int(lifetime.Seconds()) {
		t.Fatalf("cookies %v", rec.Header().Values("Set-Cookie"))
	}
	return tok, cookies[0]
}

// lifetime is the session's: the CSRF cookie lives no longer.
const lifetime = 168 * time.Hour

func newGuard() *csrf.Guard {
	return csrf.New([]byte("a-session-key-of-at-least-32-characters"), func(c echo.Context) string {
		u, _ := c.Get("user").(string)
		return u
	}, lifetime)
}

// valid reports whether a POST with token, cookie and user passes the guard.
func valid(g *csrf.Guard, e *echo.Echo, token string, ck *http.Cookie, user string) bool {
	form := url.Values{csrf.FieldName: {token}}
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(ck)
	c := e.NewContext(req, httptest.NewRecorder())
	c.Set("user", user)
	return g.Valid(c)
}

// TestRotate: a new cookie at sign-in or sign-out makes the tokens of the
// session before fail, even for the same user signed in again, while the
// pages rendered after it in the same request get tokens that pass.
func TestRotate(t *testing.T) {
	t.Parallel()
	g, e := newGuard(), echo.New()
	before, cookie := issue(t, g, e, "ann")
	if !valid(g, e, before, cookie, "ann") {
		t.Fatal("the token does not pass before the rotation")
	}

	// The sign-out (or sign-in) request: the browser's cookie, rotated.
	req := httptest.NewRequest(http.MethodPost, "/signout", nil)
	req.AddCookie(cookie)
	rec := httptest.NewRecorder()
	c := e.NewContext(req, rec)
	c.Set("user", "ann")
	g.Token(c) // a page rendered before the rotation in the same request
	g.Rotate(c)
	after := g.Token(c)
	set := rec.Result().Cookies()
	if len(set) != 1 || set[0].Name != csrf.CookieName || set[0].Value == cookie.Value || set[0].MaxAge != int(lifetime.Seconds()) {
		t.Fatalf("Set-Cookie after the rotation: %v", rec.Header().Values("Set-Cookie"))
	}
	rotated := set[0]
	if valid(g, e, before, rotated, "ann") {
		t.Error("a token of the session before the rotation passes with the new cookie")
	}
	if !valid(g, e, after, rotated, "ann") {
		t.Error("a token issued after the rotation does not pass")
	}
}

func TestGuard(t *testing.T) {
	t.Parallel()
	g := newGuard()
	e := echo.New()
	tok, cookie := issue(t, g, e, "ann")
	otherTok, otherCookie := issue(t, g, e, "ann")
	anonTok, _ := issue(t, g, e, "")

	post := func(token string, ck *http.Cookie, user string, header bool) int {
		form := url.Values{}
		if token != "" && !header {
			form.Set(csrf.FieldName, token)
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if header {
			req.Header.Set(csrf.HeaderName, token)
		}
		if ck != nil {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		c.Set("user", user)
		h := g.Middleware(func(c echo.Context) error { return c.NoContent(http.StatusForbidden) })(func(c echo.Context) error {
			return c.NoContent(http.StatusOK)
		})
		if err := h(c); err != nil {
			t.Fatal(err)
		}
		return rec.Code
	}
	tests := []struct {
		name   string
		token  string
		cookie *http.Cookie
		user   string
		header bool
		want   int
	}{
		{"valid", tok, cookie, "ann", false, http.StatusOK},
		{"valid in the header", tok, cookie, "ann", true, http.StatusOK},
		{"no token", "", cookie, "ann", false, http.StatusForbidden},
		{"no cookie", tok, nil, "ann", false, http.StatusForbidden},
		{"another browser's token", otherTok, cookie, "ann", false, http.StatusForbidden},
		{"token with its own cookie, other browser", otherTok, otherCookie, "ann", false, http.StatusOK},
		{"another user", tok, cookie, "bob", false, http.StatusForbidden},
		{"signed in since the token", anonTok, cookie, "ann", false, http.StatusForbidden},
		{"garbage cookie", tok, &http.Cookie{Name: csrf.CookieName, Value: "x"}, "ann", false, http.StatusForbidden},
	}
	for _, tc := range tests {
		if got := post(tc.token, tc.cookie, tc.user, tc.header); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// Safe methods pass without a token.
	rec := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
	h := g.Middleware(func(c echo.Context) error { return c.NoContent(http.StatusForbidden) })(func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	if err := h(c); err != nil || rec.Code != http.StatusOK {
		t.Errorf("GET without a token: %d %v", rec.Code, err)
	}
}
