// Package csrf protects the storefront's forms against cross-site request
// forgery with signed double-submit tokens bound to the session.
//
// Each browser gets a random "csrf" cookie (HttpOnly, SameSite=Lax) the first
// time a page with a form is rendered for it. A form carries the token
// HMAC-SHA256(key, cookie || user id) in a hidden field. A POST is accepted
// only if its token matches the cookie it came with and the user it is for:
// another site can neither read the cookie nor compute the HMAC, and a
// token obtained with the attacker's own cookie or account does not match
// the victim's. SameSite=Lax on the session cookie is a second line, not the
// defence.
package csrf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"

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

// cookieMaxAge keeps the cookie for a year: tokens stay valid across
// sessions of the same browser (they are bound to the user on top).
const cookieMaxAge = 365 * 24 * 60 * 60

// Guard issues and checks tokens.
type Guard struct {
	key  []byte
	bind func(echo.Context) string
}

// New returns a Guard whose key is derived from secret (SESSION_KEY), with
// tokens bound to what bind returns for a request (the signed-in user's id,
// "" when anonymous).
func New(secret []byte, bind func(echo.Context) string) *Guard {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("stuffmart csrf"))
	return &Guard{key: m.Sum(nil), bind: bind}
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
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(c.Response(), &http.Cookie{
		Name:     CookieName,
		Value:    v,
		Path:     "/",
		MaxAge:   cookieMaxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   auth.IsHTTPS(c.Request()),
	})
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
