// Package csrf protects the storefront's forms against cross-site request
// forgery with signed double-submit tokens bound to the session.
//
// Each browser gets a random "csrf" cookie (HttpOnly, SameSite=Lax) the first
// time a page with a form is rendered for it, and a new one whenever it
// signs in, signs up or signs out (Rotate), so the cookie belongs to one
// session: it lives no longer than the session cookie. A form carries the
// token HMAC-SHA256(key, cookie || user id) in a hidden field. A POST is
// accepted only if its token matches the cookie it came with and the user
// it is for: another site can neither read the cookie nor compute the HMAC,
// a token obtained with the attacker's own cookie or account does not match
// the victim's, and a token of an earlier session of the same browser (the
// same user signed in again included) does not match the new cookie.
// SameSite=Lax on the session cookie and the same-origin check of unsafe
// requests (shared/web) are further lines, not the defence.
package csrf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
)

// CookieName is the browser's CSRF cookie.
const CookieName = "csrf"

// FieldName is the hidden form field carrying the token.
const FieldName = "_csrf"

// HeaderName may carry the token instead of the form field.
const HeaderName = "X-CSRF-Token"

const ctxKey = "csrf.cookie"

// Guard issues and checks tokens.
type Guard struct {
	key    []byte
	bind   func(echo.Context) string
	maxAge int
}

// New returns a Guard whose key is derived from secret (SESSION_KEY), with
// tokens bound to what bind returns for a request (the signed-in user's id,
// "" when anonymous) and cookies that live lifetime (the session cookie's,
// REFRESH_TOKEN_TTL; 0: until the browser closes).
func New(secret []byte, bind func(echo.Context) string, lifetime time.Duration) *Guard {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("stuffmart csrf"))
	return &Guard{key: m.Sum(nil), bind: bind, maxAge: int(lifetime.Seconds())}
}

// Token returns the token for the request's forms, setting the browser's
// CSRF cookie on the response if it has none yet.
func (g *Guard) Token(c echo.Context) string {
	return g.sign(g.cookie(c), g.bind(c))
}

// cookie returns the browser's CSRF cookie value, creating it if needed.
func (g *Guard) cookie(c echo.Context) string {
	if v, ok := c.Get(ctxKey).(string); ok {
		return v
	}
	if ck, err := c.Request().Cookie(CookieName); err == nil && validCookie(ck.Value) {
		c.Set(ctxKey, ck.Value)
		return ck.Value
	}
	return g.newCookie(c)
}

// Rotate gives the browser a new CSRF cookie, so that every token issued
// before (for the cookie it had) is refused from now on. The handlers call
// it when the session changes: at sign-in, sign-up and sign-out. Pages
// rendered later in the same request get tokens of the new cookie.
func (g *Guard) Rotate(c echo.Context) { g.newCookie(c) }

// newCookie sets a new random cookie on the response (replacing one set
// earlier in the request) and returns its value.
func (g *Guard) newCookie(c echo.Context) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	v := base64.RawURLEncoding.EncodeToString(b)
	ck := &http.Cookie{
		Name:     CookieName,
		Value:    v,
		Path:     "/",
		MaxAge:   g.maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   auth.IsHTTPS(c.Request()),
	}
	h := c.Response().Header()
	kept := h.Values("Set-Cookie")[:0:0]
	for _, line := range h.Values("Set-Cookie") {
		if prev, err := http.ParseSetCookie(line); err != nil || prev.Name != CookieName {
			kept = append(kept, line)
		}
	}
	h.Del("Set-Cookie")
	for _, line := range kept {
		h.Add("Set-Cookie", line)
	}
	h.Add("Set-Cookie", ck.String())
	c.Set(ctxKey, v)
	return v
}

func validCookie(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}

func (g *Guard) sign(cookie, user string) string {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte(cookie))
	m.Write([]byte{0})
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Valid reports whether the request carries a token that matches its CSRF
// cookie and user.
func (g *Guard) Valid(c echo.Context) bool {
	ck, err := c.Request().Cookie(CookieName)
	if err != nil || !validCookie(ck.Value) {
		return false
	}
	got := c.Request().Header.Get(HeaderName)
	if got == "" {
		got = c.FormValue(FieldName)
	}
	if got == "" {
		return false
	}
	want := g.sign(ck.Value, g.bind(c))
	return hmac.Equal([]byte(got), []byte(want))
}

// Middleware refuses every request whose method may change something (all
// but GET, HEAD, OPTIONS and TRACE) without a valid token, with the error
// that reject returns (the caller's 403 page).
func (g *Guard) Middleware(reject func(echo.Context) error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			switch c.Request().Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
				return next(c)
			}
			if !g.Valid(c) {
				return reject(c)
			}
			return next(c)
		}
	}
}
