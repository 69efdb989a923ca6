package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// CookieName is the session cookie's name.
const CookieName = "session"

const (
	keyAccess  = "access"
	keyRefresh = "refresh"
	ctxUserKey = "auth.user"
)

// Sessions reads and writes the session cookie. The cookie is signed and
// encrypted with keys derived from SESSION_KEY, HttpOnly, SameSite=Lax, and
// Secure when the request came over HTTPS.
type Sessions struct {
	store  *sessions.CookieStore
	tokens *Tokens
	maxAge time.Duration
}

// NewSessions returns Sessions keyed by sessionKey. maxAge is the cookie's
// lifetime: the refresh token's (the access token inside expires sooner).
func NewSessions(sessionKey []byte, tokens *Tokens, maxAge time.Duration) *Sessions {
	store := sessions.NewCookieStore(derive(sessionKey, "stuffmart session hmac"), derive(sessionKey, "stuffmart session aes"))
	store.Options = &sessions.Options{Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge.Seconds())}
	store.MaxAge(int(maxAge.Seconds()))
	return &Sessions{store: store, tokens: tokens, maxAge: maxAge}
}

// derive gives independent 32-byte keys for signing and encryption from the
// one configured secret.
func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Tokens returns the token issuer/verifier the sessions use.
func (s *Sessions) Tokens() *Tokens { return s.tokens }

// Session is what the cookie holds.
type Session struct {
	Access  string
	Refresh string
}

// Load decodes the cookie. A missing, tampered or undecodable cookie is an
// empty Session, never an error: the request is then anonymous.
func (s *Sessions) Load(r *http.Request) Session {
	sess, err := s.store.New(r, CookieName)
	if err != nil || sess.IsNew {
		return Session{}
	}
	access, _ := sess.Values[keyAccess].(string)
	refresh, _ := sess.Values[keyRefresh].(string)
	return Session{Access: access, Refresh: refresh}
}

// Save writes the cookie with both tokens.
func (s *Sessions) Save(w http.ResponseWriter, r *http.Request, v Session) error {
	sess := sessions.NewSession(s.store, CookieName)
	sess.Options = s.options(r, int(s.maxAge.Seconds()))
	sess.Values[keyAccess] = v.Access
	sess.Values[keyRefresh] = v.Refresh
	return s.store.Save(r, w, sess)
}

// Clear expires the cookie in the browser.
func (s *Sessions) Clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, sessions.NewCookie(CookieName, "", s.options(r, -1)))
}

func (s *Sessions) options(r *http.Request, maxAge int) *sessions.Options {
	return &sessions.Options{
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   IsHTTPS(r),
	}
}

// IsHTTPS reports whether the browser reached us over HTTPS, directly or
// through the ingress (which sets X-Forwarded-Proto).
func IsHTTPS(r *http.Request) bool {
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return r.TLS != nil || strings.EqualFold(strings.TrimSpace(proto), "https")
}

// CurrentUser is middleware that resolves the session cookie into a User on
// the request. A missing, tampered or expired cookie or token leaves the
// request anonymous; it never fails the request.
func (s *Sessions) CurrentUser() echo.MiddlewareFunc { return s.CurrentUserUnless(nil) }

// Revoker says whether a valid token of a user must still be refused: the
// user was banned after the token was issued.
type Revoker interface {
	Revoked(userID string, issuedAt time.Time) bool
}

// CurrentUserUnless is CurrentUser that also leaves the request anonymous
// when revoked refuses the token (nil: none is refused).
func (s *Sessions) CurrentUserUnless(revoked Revoker) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if sess := s.Load(c.Request()); sess.Access != "" {
				u, err := s.tokens.Verify(sess.Access)
				if err == nil && (revoked == nil || !revoked.Revoked(u.ID, u.IssuedAt)) {
					c.Set(ctxUserKey, u)
					c.SetRequest(c.Request().WithContext(WithUser(c.Request().Context(), u)))
				}
			}
			return next(c)
		}
	}
}

// RequireUser answers 401 "Not authorized" to anonymous requests. Use after
// CurrentUser.
func RequireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, ok := FromEcho(c); !ok {
			return errs.ErrNotAuthorized
		}
		return next(c)
	}
}

// RequireAdmin answers 401 "Not authorized" unless the token's role is admin.
func RequireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if u, ok := FromEcho(c); !ok || !u.IsAdmin() {
			return errs.ErrNotAuthorized
		}
		return next(c)
	}
}

// FromEcho returns the signed-in user of the request, if any.
func FromEcho(c echo.Context) (User, bool) {
	u, ok := c.Get(ctxUserKey).(User)
	return u, ok
}

type ctxKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, ctxKey{}, u)
}

// FromContext returns the user carried by ctx, if any.
func FromContext(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(ctxKey{}).(User)
	return u, ok
}
