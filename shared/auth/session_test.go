package auth_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/testkit"
	"github.com/stuffmart/stuffmart/shared/web"
)

var sessionKey = []byte("a-session-key-of-at-least-32-chars!!")

func newSessions(key []byte, tk *auth.Tokens) *auth.Sessions {
	return auth.NewSessions(key, tk, 7*24*time.Hour)
}

func cookieOf(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == auth.CookieName {
			if found != nil {
				t.Fatalf("two %s cookies set", auth.CookieName)
			}
			found = c
		}
	}
	if found == nil {
		t.Fatalf("no %s cookie set; headers %v", auth.CookieName, rec.Header())
	}
	return found
}

// flip changes the i-th character of v.
func flip(v string, i int) string {
	b := []byte(v)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func requestWith(c *http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestSessionRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSessions(sessionKey, auth.NewTokens(jwtKey, 15*time.Minute))
	want := auth.Session{Access: "access-token", Refresh: "refresh-token"}
	rec := httptest.NewRecorder()
	if err := s.Save(rec, httptest.NewRequest(http.MethodPost, "/api/users/signin", nil), want); err != nil {
		t.Fatal(err)
	}
	c := cookieOf(t, rec)
	if strings.Contains(c.Value, "access-token") || strings.Contains(c.Value, "refresh-token") {
		t.Fatalf("cookie value shows the tokens in clear: %s", c.Value)
	}
	if got := s.Load(requestWith(c)); got != want {
		t.Fatalf("Load = %+v, want %+v", got, want)
	}
	// Another instance with the same key (another service) reads it too.
	other := newSessions(sessionKey, auth.NewTokens(jwtKey, 15*time.Minute))
	if got := other.Load(requestWith(c)); got != want {
		t.Fatalf("other service Load = %+v, want %+v", got, want)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		url    string
		proto  string
		secure bool
	}{
		{name: "plain http", url: "http://shop.test/", secure: false},
		{name: "TLS", url: "https://shop.test/", secure: true},
		{name: "behind the ingress over https", url: "http://shop.test/", proto: "https", secure: true},
		{name: "forwarded proto upper case", url: "http://shop.test/", proto: "HTTPS", secure: true},
		{name: "forwarded proto list", url: "http://shop.test/", proto: "https, http", secure: true},
		{name: "behind the ingress over http", url: "http://shop.test/", proto: "http", secure: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSessions(sessionKey, auth.NewTokens(jwtKey, 15*time.Minute))
			req := httptest.NewRequest(http.MethodPost, tc.url, nil)
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			if got := auth.IsHTTPS(req); got != tc.secure {
				t.Fatalf("IsHTTPS = %v, want %v", got, tc.secure)
			}
			rec := httptest.NewRecorder()
			if err := s.Save(rec, req, auth.Session{Access: "a", Refresh: "r"}); err != nil {
				t.Fatal(err)
			}
			c := cookieOf(t, rec)
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != tc.secure {
				t.Fatalf("cookie %q: want HttpOnly, SameSite=Lax, Path=/, Secure=%v", rec.Header().Get("Set-Cookie"), tc.secure)
			}
			if c.MaxAge != int((7 * 24 * time.Hour).Seconds()) {
				t.Fatalf("Max-Age %d, want the refresh lifetime", c.MaxAge)
			}

			rec = httptest.NewRecorder()
			s.Clear(rec, req)
			c = cookieOf(t, rec)
			if c.Value != "" || c.MaxAge >= 0 || !c.Expires.Before(time.Now()) {
				t.Fatalf("Clear wrote %q: want an empty, expired cookie", rec.Header().Get("Set-Cookie"))
			}
			if !c.HttpOnly || c.Path != "/" || c.Secure != tc.secure || c.SameSite != http.SameSiteLaxMode {
				t.Fatalf("Clear wrote %q: want the same attributes as the cookie it replaces", rec.Header().Get("Set-Cookie"))
			}
			if got := s.Load(requestWith(c)); got != (auth.Session{}) {
				t.Fatalf("Load(cleared cookie) = %+v, want empty", got)
			}
		})
	}
}

func TestSessionLoadUntrusted(t *testing.T) {
	t.Parallel()
	s := newSessions(sessionKey, auth.NewTokens(jwtKey, 15*time.Minute))
	rec := httptest.NewRecorder()
	if err := s.Save(rec, httptest.NewRequest(http.MethodPost, "/", nil), auth.Session{Access: "a", Refresh: "r"}); err != nil {
		t.Fatal(err)
	}
	good := cookieOf(t, rec)
	if s.Load(requestWith(good)).Access != "a" {
		t.Fatal("control: the untouched cookie does not load")
	}
	otherKey := newSessions([]byte("another-session-key-of-32-characters"), auth.NewTokens(jwtKey, 15*time.Minute))
	rec = httptest.NewRecorder()
	if err := otherKey.Save(rec, httptest.NewRequest(http.MethodPost, "/", nil), auth.Session{Access: "a", Refresh: "r"}); err != nil {
		t.Fatal(err)
	}
	foreign := cookieOf(t, rec)
	tests := []struct {
		name   string
		cookie *http.Cookie
	}{
		{"no cookie", nil},
		{"empty value", &http.Cookie{Name: auth.CookieName, Value: ""}},
		{"garbage", &http.Cookie{Name: auth.CookieName, Value: "garbage"}},
		{"byte flipped in the middle", &http.Cookie{Name: auth.CookieName, Value: flip(good.Value, len(good.Value)/2)}},
		{"byte flipped at the end", &http.Cookie{Name: auth.CookieName, Value: flip(good.Value, len(good.Value)-2)}},
		{"truncated", &http.Cookie{Name: auth.CookieName, Value: good.Value[:len(good.Value)-10]}},
		{"sealed with another SESSION_KEY", foreign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := s.Load(requestWith(tc.cookie)); got != (auth.Session{}) {
				t.Fatalf("Load = %+v, want an empty session", got)
			}
		})
	}
}

type whoami struct {
	User    *auth.User `json:"user"`
	CtxUser *auth.User `json:"ctxUser"`
}

func middlewareServer(s *auth.Sessions) *echo.Echo {
	e := web.New(slog.New(slog.DiscardHandler), web.Options{})
	e.Use(s.CurrentUser())
	me := func(c echo.Context) error {
		var out whoami
		if u, ok := auth.FromEcho(c); ok {
			out.User = &u
		}
		if u, ok := auth.FromContext(c.Request().Context()); ok {
			out.CtxUser = &u
		}
		return c.JSON(http.StatusOK, out)
	}
	e.GET("/me", me)
	e.GET("/private", me, auth.RequireUser)
	e.GET("/admin", me, auth.RequireAdmin)
	return e
}

func TestMiddlewares(t *testing.T) {
	t.Parallel()
	tokens := auth.NewTokens(jwtKey, 15*time.Minute)
	s := newSessions(sessionKey, tokens)

	userCookie := testkit.SessionCookie(t, s, ann, "refresh")
	adminCookie := testkit.SessionCookie(t, s, root, "")
	// A token that expired an hour ago, in a perfectly valid cookie.
	expired := testkit.SessionCookie(t, newSessions(sessionKey, pinned(jwtKey, time.Now().Add(-time.Hour))), ann, "refresh")
	// A token signed with another JWT key, in a valid cookie.
	forged := testkit.SessionCookie(t, newSessions(sessionKey, auth.NewTokens([]byte("attacker-key-of-at-least-32-characters"), time.Hour)), root, "")
	// A cookie with only a refresh token (the access token is gone).
	rec := httptest.NewRecorder()
	if err := s.Save(rec, httptest.NewRequest(http.MethodGet, "/", nil), auth.Session{Refresh: "refresh"}); err != nil {
		t.Fatal(err)
	}
	refreshOnly := cookieOf(t, rec)
	tampered := &http.Cookie{Name: auth.CookieName, Value: flip(userCookie.Value, 5)}
	foreign := testkit.SessionCookie(t, auth.NewSessions([]byte("another-session-key-of-32-characters"), tokens, time.Hour), ann, "")

	notAuthorized := `{"errors":[{"message":"Not authorized"}]}`
	tests := []struct {
		name   string
		cookie *http.Cookie
		want   *auth.User // nil: anonymous
	}{
		{"no cookie", nil, nil},
		{"user", userCookie, &ann},
		{"admin", adminCookie, &root},
		{"expired token", expired, nil},
		{"token signed with another key", forged, nil},
		{"refresh token only", refreshOnly, nil},
		{"tampered cookie", tampered, nil},
		{"garbage cookie", &http.Cookie{Name: auth.CookieName, Value: "%%%garbage"}, nil},
		{"cookie from another SESSION_KEY", foreign, nil},
	}
	e := middlewareServer(s)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			get := func(path string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				if tc.cookie != nil {
					req.AddCookie(tc.cookie)
				}
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				return rec
			}
			rec := get("/me")
			if rec.Code != http.StatusOK {
				t.Fatalf("/me: %d %s; a bad cookie must leave the request anonymous, never fail it", rec.Code, rec.Body)
			}
			var got whoami
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if (got.User == nil) != (tc.want == nil) || (tc.want != nil && (*got.User != *tc.want || got.CtxUser == nil || *got.CtxUser != *tc.want)) {
				t.Fatalf("/me = %s, want user %+v in the echo context and the request context", rec.Body, tc.want)
			}

			rec = get("/private")
			if tc.want == nil {
				if rec.Code != http.StatusUnauthorized || !bytes.Equal(bytes.TrimSpace(rec.Body.Bytes()), []byte(notAuthorized)) {
					t.Fatalf("/private anonymous: %d %s, want 401 %s", rec.Code, rec.Body, notAuthorized)
				}
			} else if rec.Code != http.StatusOK {
				t.Fatalf("/private signed in: %d %s", rec.Code, rec.Body)
			}

			rec = get("/admin")
			if tc.want != nil && tc.want.IsAdmin() {
				if rec.Code != http.StatusOK {
					t.Fatalf("/admin as admin: %d %s", rec.Code, rec.Body)
				}
			} else if rec.Code != http.StatusUnauthorized || !bytes.Equal(bytes.TrimSpace(rec.Body.Bytes()), []byte(notAuthorized)) {
				t.Fatalf("/admin as %+v: %d %s, want 401 %s", tc.want, rec.Code, rec.Body, notAuthorized)
			}
		})
	}
}

func TestRequireUserWithoutCurrentUser(t *testing.T) {
	t.Parallel()
	// Forgetting CurrentUser must fail closed.
	e := echo.New()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	called := false
	h := func(echo.Context) error { called = true; return nil }
	for name, mw := range map[string]echo.MiddlewareFunc{"RequireUser": auth.RequireUser, "RequireAdmin": auth.RequireAdmin} {
		err := mw(h)(c)
		if e, ok := errs.As(err); !ok || e.StatusCode() != http.StatusUnauthorized || called {
			t.Fatalf("%s without a user: err %v, handler called %v; want 401 and no call", name, err, called)
		}
	}
}
