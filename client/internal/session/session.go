// Package session resolves who a browser request is for. It reads the
// session cookie that the auth service sets (sealed with SESSION_KEY, the
// access token inside verified locally with JWT_KEY: no call to auth per
// request), and when the access token has expired it refreshes it once,
// transparently, through auth's /api/users/refresh: the new cookie is relayed
// to the browser and used for the rest of the request. A refused refresh
// (revoked, expired, banned) signs the browser out.
//
// auth rotates refresh tokens: a token used again after its grace
// (REFRESH_GRACE, 10 s by default), or once its successor was used, revokes
// its whole family; within the grace, while the successor is unused, auth
// gives the same answer again. Browsers send several requests with the same
// cookie at once (two tabs, a prefetch), so the Manager refreshes each
// refresh token at most once per process: concurrent requests share one
// call, and requests that arrive within Grace (a few seconds, shorter than
// auth's grace) with the old cookie get the same new cookie instead of a
// second call. The memory is kept short because whoever presents the old
// cookie in that time gets the rotated one: a stolen copy of a cookie must
// not be worth more here than at auth. Signing out forgets that memory
// (Forget): a signed-out cookie never gets the rotated session back.
package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/singleflight"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// Grace is how long the outcome of a refresh is remembered for requests
// that still carry the old cookie: long enough for the requests a page
// sends at once with one cookie, and shorter than auth's own grace
// (REFRESH_GRACE, 10 s by default), so that the memory never hands out a
// rotated cookie that auth itself would no longer give for the old one.
const Grace = 5 * time.Second

// sweepAt is the number of remembered refreshes above which old ones are
// dropped on the next insert.
const sweepAt = 64

// Refresher exchanges a session's refresh token for a new session.
type Refresher interface {
	Refresh(ctx context.Context, s api.Session) (api.SignedIn, error)
}

// Visitor is who a request is for.
type Visitor struct {
	// User is the signed-in user; nil for an anonymous visitor.
	User *auth.User
	// Session is what calls to the services carry for this visitor: the
	// current session cookie (refreshed if it had to be).
	Session api.Session
}

// SignedIn reports whether the visitor is signed in.
func (v Visitor) SignedIn() bool { return v.User != nil }

// IsAdmin reports whether the visitor is a signed-in admin.
func (v Visitor) IsAdmin() bool { return v.User != nil && v.User.IsAdmin() }

// UserID is the signed-in user's id, or "".
func (v Visitor) UserID() string {
	if v.User == nil {
		return ""
	}
	return v.User.ID
}

const ctxKey = "session.visitor"

// From returns the request's visitor (anonymous when the middleware did not
// run).
func From(c echo.Context) Visitor {
	v, _ := c.Get(ctxKey).(Visitor)
	return v
}

// Manager is the session middleware.
type Manager struct {
	sessions *auth.Sessions
	refresh  Refresher
	log      *slog.Logger
	now      func() time.Time

	flight singleflight.Group
	mu     sync.Mutex
	recent map[[32]byte]outcome
}

// outcome is a finished refresh, remembered for Grace.
type outcome struct {
	in  api.SignedIn
	err error
	at  time.Time
	// next is the key of the refresh token in the new cookie (zero when
	// refused): the link to the refresh that comes after this one.
	next [32]byte
	// signedOut marks the refusal Forget leaves: a refresh that finishes
	// after it does not replace it.
	signedOut bool
}

// errSignedOut is the remembered outcome of a refresh of a signed-out
// session: refused, as auth would.
var errSignedOut = &api.Error{Service: "storefront", Status: http.StatusUnauthorized, Items: []errs.Item{{Message: "Signed out"}}}

// New returns a Manager reading cookies with sessions and refreshing through
// refresh. now is the clock of the grace window (time.Now when nil).
func New(sessions *auth.Sessions, refresh Refresher, log *slog.Logger, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{sessions: sessions, refresh: refresh, log: log, now: now, recent: map[[32]byte]outcome{}}
}

// Middleware resolves the visitor of every request it wraps. It never fails
// a request: a bad cookie or an unreachable auth service leaves it anonymous.
func (m *Manager) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(ctxKey, m.resolve(c))
			return next(c)
		}
	}
}

func (m *Manager) resolve(c echo.Context) Visitor {
	r := c.Request()
	v := Visitor{Session: api.Session{HTTPS: auth.IsHTTPS(r), RequestID: c.Response().Header().Get(echo.HeaderXRequestID),
		ForwardedFor: api.ForwardedFor(r)}}
	ck, err := r.Cookie(auth.CookieName)
	if err != nil || ck.Value == "" {
		return v
	}
	sess := m.sessions.Load(r)
	if sess.Access == "" && sess.Refresh == "" {
		return v // tampered, foreign or empty: anonymous
	}
	v.Session.Cookie = ck.Value
	if u, err := m.sessions.Tokens().Verify(sess.Access); err == nil {
		v.User = &u
		return v
	}
	if sess.Refresh == "" {
		v.Session.Cookie = ""
		return v
	}
	in, err := m.refreshOnce(r.Context(), v.Session, sess.Refresh)
	switch {
	case err == nil:
		u, verr := m.sessions.Tokens().Verify(m.access(in.Cookie))
		if verr != nil {
			m.log.WarnContext(r.Context(), "refreshed session does not verify", "err", verr)
			v.Session.Cookie = ""
			return v
		}
		for _, line := range in.SetCookies {
			c.Response().Header().Add("Set-Cookie", line)
		}
		v.User = &u
		v.Session.Cookie = in.Cookie
	case api.StatusOf(err) == http.StatusUnauthorized:
		// Refused for good: sign the browser out.
		m.sessions.Clear(c.Response(), r)
		v.Session.Cookie = ""
	default:
		// auth unreachable: anonymous for this request, the cookie kept
		// for the next one.
		m.log.WarnContext(r.Context(), "refresh session", "err", err)
		v.Session.Cookie = ""
	}
	return v
}

// access returns the access token sealed in a cookie value.
func (m *Manager) access(cookie string) string { return m.open(cookie).Access }

// open returns the session sealed in a cookie value (empty when it does not
// open).
func (m *Manager) open(cookie string) auth.Session {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: auth.CookieName, Value: cookie})
	return m.sessions.Load(r)
}

// refreshOnce refreshes the token at most once per process within Grace:
// concurrent callers share the call, later ones its remembered outcome.
func (m *Manager) refreshOnce(ctx context.Context, s api.Session, refreshToken string) (api.SignedIn, error) {
	key := tokenKey(refreshToken)
	now := m.now()
	m.mu.Lock()
	if o, ok := m.recent[key]; ok && now.Sub(o.at) < Grace {
		m.mu.Unlock()
		return o.in, o.err
	}
	m.mu.Unlock()
	ch := m.flight.DoChan(string(key[:]), func() (any, error) {
		// Detached from the first caller: if that browser goes away the
		// others still need the answer, and a refresh cut short may have
		// used the token up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		in, err := m.refresh.Refresh(cctx, s)
		if err == nil || api.StatusOf(err) == http.StatusUnauthorized {
			o := outcome{in: in, err: err, at: m.now()}
			if err == nil {
				o.next = tokenKey(m.open(in.Cookie).Refresh)
			}
			m.remember(key, o)
		}
		return in, err
	})
	select {
	case res := <-ch:
		// A sign-out while the refresh was in flight wins: its new
		// cookie is not handed to the requests that waited for it.
		m.mu.Lock()
		o, ok := m.recent[key]
		m.mu.Unlock()
		if ok && o.signedOut && m.now().Sub(o.at) < Grace {
			return api.SignedIn{}, errSignedOut
		}
		in, _ := res.Val.(api.SignedIn)
		return in, res.Err
	case <-ctx.Done():
		return api.SignedIn{}, errors.Join(errors.New("refresh abandoned"), ctx.Err())
	}
}

// tokenKey is the key of a refresh token in the memory (zero for none).
func tokenKey(refreshToken string) [32]byte {
	if refreshToken == "" {
		return [32]byte{}
	}
	return sha256.Sum256([]byte(refreshToken))
}

func (m *Manager) remember(key [32]byte, o outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.recent[key]; ok && prev.signedOut && o.at.Sub(prev.at) < Grace {
		return
	}
	m.sweep(o.at)
	m.recent[key] = o
}

// sweep drops the outcomes older than Grace once there are sweepAt of
// them. The caller holds mu.
func (m *Manager) sweep(now time.Time) {
	if len(m.recent) >= sweepAt {
		for k, old := range m.recent {
			if now.Sub(old.at) >= Grace {
				delete(m.recent, k)
			}
		}
	}
}

// Forget is called when the request's visitor signs out. Every refresh the
// Manager remembers for the session, before or after this request's cookie
// (the cookie the browser sent and the one the request was refreshed to,
// and the refreshes they came from or led to), is replaced by a refusal for
// Grace, and so is a refresh of those tokens still under way: another
// request with one of the session's cookies is signed out, instead of given
// the rotated session back from memory.
func (m *Manager) Forget(c echo.Context) {
	keys := map[[32]byte]bool{}
	for _, rt := range []string{m.sessions.Load(c.Request()).Refresh, m.open(From(c).Session.Cookie).Refresh} {
		if rt != "" {
			keys[tokenKey(rt)] = true
		}
	}
	if len(keys) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// The refreshes chain: a token was refreshed to the next, which may
	// have been refreshed in turn. Follow the links both ways.
	for grew := true; grew; {
		grew = false
		for k, o := range m.recent {
			linked := keys[k] || (o.next != [32]byte{} && keys[o.next])
			if !linked {
				continue
			}
			for _, x := range [][32]byte{k, o.next} {
				if x != [32]byte{} && !keys[x] {
					keys[x], grew = true, true
				}
			}
		}
	}
	now := m.now()
	m.sweep(now)
	for k := range keys {
		m.recent[k] = outcome{err: errSignedOut, at: now, signedOut: true}
	}
}

// Clear expires the session cookie in the browser (signing out when auth
// cannot be reached to do it).
func (m *Manager) Clear(w http.ResponseWriter, r *http.Request) { m.sessions.Clear(w, r) }
