package app_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// sealed returns a session cookie sealed with sessions' keys that holds
// access and refresh as given: the seal is valid, the tokens are whatever the
// test forged.
func sealed(t *testing.T, sessions *auth.Sessions, access, refresh string) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := sessions.Save(rec, httptest.NewRequest(http.MethodGet, "/", nil), auth.Session{Access: access, Refresh: refresh}); err != nil {
		t.Fatal(err)
	}
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == auth.CookieName {
			return ck
		}
	}
	t.Fatal("no cookie sealed")
	return nil
}

// forge signs claims for an admin with method and key (nil key: alg none).
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	if key == nil {
		key = jwt.UnsafeAllowNoneSignatureType
	}
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestCurrentUserRejectsForgedSessions(t *testing.T) {
	s := newStack(t)
	admin := auth.User{ID: "65a1b2c3d4e5f60718293a4b", Email: "mallory@uni.edu", Role: "admin"}
	now := s.clock.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": admin.ID, "email": admin.Email, "role": admin.Role,
			"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	key := []byte(testkit.JWTKey)
	otherSessions := auth.NewSessions([]byte("another-session-key-0123456789-0123456789"), s.Sessions.Tokens(), testkit.RefreshTTL)
	valid := forge(t, jwt.SigningMethodHS256, key, claims(nil))
	validCookie := sealed(t, s.Sessions, valid, "")

	tests := []struct {
		name   string
		cookie *http.Cookie // nil: none
		admin  bool         // the forged admin gets through
	}{
		{name: "no cookie"},
		{name: "control: HS256 with the right key", cookie: validCookie, admin: true},
		{name: "garbage cookie", cookie: &http.Cookie{Name: auth.CookieName, Value: "garbage"}},
		{name: "tampered seal", cookie: &http.Cookie{Name: auth.CookieName, Value: tamper(validCookie.Value)}},
		{name: "sealed with another session key", cookie: sealed(t, otherSessions, valid, "")},
		{name: "alg none", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodNone, nil, claims(nil)), "")},
		{name: "HS512 with the right key", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodHS512, key, claims(nil)), "")},
		{name: "HS384 with the right key", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodHS384, key, claims(nil)), "")},
		{name: "HS256 with another key", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodHS256, []byte("not-the-jwt-key-0123456789-0123456789"), claims(nil)), "")},
		{name: "expired", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) {
			c["exp"] = now.Add(-time.Second).Unix()
		})), "")},
		{name: "no expiry", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { delete(c, "exp") })), "")},
		{name: "unknown role", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { c["role"] = "root" })), "")},
		{name: "no subject", cookie: sealed(t, s.Sessions, forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { delete(c, "sub") })), "")},
		{name: "raw JWT as cookie value", cookie: &http.Cookie{Name: auth.CookieName, Value: valid}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			if tc.cookie != nil {
				c.setCookie(tc.cookie)
			}
			cur := c.currentUser()
			if tc.admin {
				if cur == nil || cur.ID != admin.ID || cur.Role != "admin" {
					t.Fatalf("currentuser %+v, want the admin", cur)
				}
				c.Do(http.MethodGet, "/api/users", nil).Want(http.StatusOK)
				return
			}
			if cur != nil {
				t.Fatalf("currentuser %+v, want null", cur)
			}
			r := c.Do(http.MethodGet, "/api/users/currentuser", nil)
			if string(r.Body) != "{\"currentUser\":null}\n" {
				t.Fatalf("anonymous currentuser body %q", r.Body)
			}
			wantErrors(t, c.Do(http.MethodGet, "/api/users", nil), http.StatusUnauthorized, notAuthorized)
			wantErrors(t, c.Do(http.MethodPost, "/api/users/"+admin.ID+"/ban", nil), http.StatusUnauthorized, notAuthorized)
		})
	}
}

// tamper flips one character in the middle of a cookie value.
func tamper(v string) string {
	b := []byte(v)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestAccessTokenExpires(t *testing.T) {
	s := newStack(t)
	c := s.client(t)
	u := c.signUp("ann@uni.edu")
	s.clock.Advance(testkit.AccessTTL - time.Second)
	if cur := c.currentUser(); cur == nil || *cur != u {
		t.Fatalf("currentuser %+v just before expiry, want %+v", cur, u)
	}
	s.clock.Advance(time.Second)
	if cur := c.currentUser(); cur != nil {
		t.Fatalf("currentuser %+v at expiry, want null", cur)
	}
}

func TestSignOut(t *testing.T) {
	s := newStack(t)
	t.Run("signed in", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		c.signUp("ann@uni.edu")
		before := c.cookie()
		r := c.Do(http.MethodPost, "/api/users/signout", nil).Want(http.StatusOK)
		if string(r.Body) != "{}\n" {
			t.Fatalf("sign-out body %q, want {}", r.Body)
		}
		if !cleared(r) {
			t.Fatalf("sign-out did not clear the cookie: %v", r.Header.Values("Set-Cookie"))
		}
		if c.cookie() != nil || c.currentUser() != nil {
			t.Fatal("still signed in after sign-out")
		}
		// The refresh token inside the old cookie is revoked: a copy kept by
		// someone else cannot start a new session.
		thief := s.client(t)
		thief.setCookie(before)
		wantErrors(t, thief.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusUnauthorized, notAuthorized)
	})
	t.Run("after a refresh, the rotated token is revoked too", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		c.signUp("bob@uni.edu")
		wantUser(t, c.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
		rotated := c.cookie()
		c.Do(http.MethodPost, "/api/users/signout", nil).Want(http.StatusOK)
		thief := s.client(t)
		thief.setCookie(rotated)
		wantErrors(t, thief.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusUnauthorized, notAuthorized)
	})
	for name, cookie := range map[string]*http.Cookie{
		"anonymous":         nil,
		"tampered cookie":   {Name: auth.CookieName, Value: "garbage"},
		"unknown refresh":   sealed(t, s.Sessions, "", testkit.RandomID(t)),
		"access token only": testkit.SessionCookie(t, s.Sessions, auth.User{ID: "65a1b2c3d4e5f60718293a4b", Email: "x@uni.edu", Role: "user"}, ""),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			if cookie != nil {
				c.setCookie(cookie)
			}
			r := c.Do(http.MethodPost, "/api/users/signout", nil).Want(http.StatusOK)
			if string(r.Body) != "{}\n" || !cleared(r) {
				t.Fatalf("sign-out: body %q, cleared %t", r.Body, cleared(r))
			}
		})
	}
}
