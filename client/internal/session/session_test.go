package session_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// rotator stands in for auth's refresh: every call rotates the session to
// next, and is counted.
type rotator struct {
	calls atomic.Int64
	next  *http.Cookie
}

func (r *rotator) Refresh(context.Context, api.Session) (api.SignedIn, error) {
	r.calls.Add(1)
	return api.SignedIn{Cookie: r.next.Value, SetCookies: []string{r.next.String()}}, nil
}

// expired is a session cookie of u whose access token expired an hour ago,
// with refresh token rt.
func expired(t *testing.T, sessions *auth.Sessions, u auth.User, rt string) *http.Cookie {
	t.Helper()
	old := *sessions.Tokens()
	old.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	tok, err := old.Issue(u)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := sessions.Save(rec, httptest.NewRequest(http.MethodGet, "/", nil), auth.Session{Access: tok, Refresh: rt}); err != nil {
		t.Fatal(err)
	}
	return rec.Result().Cookies()[0]
}

// TestMemoryIsShort: a refresh's outcome is given again, without calling
// auth, to requests with the old cookie for a few seconds only (auth's own
// grace is longer); after that the old cookie goes to auth again, which
// decides. Signing out turns the memory into a refusal.
func TestMemoryIsShort(t *testing.T) {
	t.Parallel()
	sessions := testkit.NewSessions()
	u := auth.User{ID: "6650a0000000000000000001", Email: "ann@uni.edu", Role: auth.RoleUser}
	old := expired(t, sessions, u, "refresh-token-1")
	r := &rotator{next: testkit.SessionCookie(t, sessions, u, "refresh-token-2")}
	clk := testkit.NewClock(time.Now())
	m := session.New(sessions, r, slog.New(slog.DiscardHandler), clk.Now)
	e := echo.New()
	visit := func(ck *http.Cookie) (session.Visitor, echo.Context) {
		req := httptest.NewRequest(http.MethodGet, "/orders", nil)
		req.AddCookie(ck)
		c := e.NewContext(req, httptest.NewRecorder())
		var v session.Visitor
		h := m.Middleware()(func(c echo.Context) error {
			v = session.From(c)
			return nil
		})
		if err := h(c); err != nil {
			t.Fatal(err)
		}
		return v, c
	}

	if v, _ := visit(old); !v.SignedIn() || v.Session.Cookie != r.next.Value || r.calls.Load() != 1 {
		t.Fatalf("first request with the expired cookie: signed in %v, %d refreshes", v.SignedIn(), r.calls.Load())
	}
	// A page's other requests, a second tab: the same new cookie.
	clk.Advance(2 * time.Second)
	if v, _ := visit(old); !v.SignedIn() || v.Session.Cookie != r.next.Value || r.calls.Load() != 1 {
		t.Fatalf("2s later: signed in %v, %d refreshes, want the remembered one", v.SignedIn(), r.calls.Load())
	}
	// Not for long: a copy of the old cookie must not get the rotated
	// session from here for longer than auth would give it (its grace, 10 s
	// by default); past the memory, auth decides.
	clk.Advance(4 * time.Second)
	if visit(old); r.calls.Load() != 2 {
		t.Fatalf("6s later: %d refreshes, want the old cookie sent to auth again (the memory lasts %s)", r.calls.Load(), session.Grace)
	}

	// Sign out with the new cookie: within the memory the old one is
	// refused, without asking auth.
	_, c := visit(r.next)
	m.Forget(c)
	if v, _ := visit(old); v.SignedIn() || r.calls.Load() != 2 {
		t.Fatalf("after signing out: signed in %v, %d refreshes", v.SignedIn(), r.calls.Load())
	}
}

// gated is a refresh that waits until released.
type gated struct {
	rotator
	started chan struct{}
	release chan struct{}
}

func (g *gated) Refresh(ctx context.Context, s api.Session) (api.SignedIn, error) {
	close(g.started)
	<-g.release
	return g.rotator.Refresh(ctx, s)
}

// TestSignOutWinsOverARefreshInFlight: a request waiting on a refresh when
// its session signs out does not get the refresh's new cookie.
func TestSignOutWinsOverARefreshInFlight(t *testing.T) {
	t.Parallel()
	sessions := testkit.NewSessions()
	u := auth.User{ID: "6650a0000000000000000001", Email: "ann@uni.edu", Role: auth.RoleUser}
	old := expired(t, sessions, u, "refresh-token-1")
	g := &gated{rotator: rotator{next: testkit.SessionCookie(t, sessions, u, "refresh-token-2")},
		started: make(chan struct{}), release: make(chan struct{})}
	m := session.New(sessions, g, slog.New(slog.DiscardHandler), nil)
	e := echo.New()
	request := func() echo.Context {
		req := httptest.NewRequest(http.MethodGet, "/orders", nil)
		req.AddCookie(old)
		return e.NewContext(req, httptest.NewRecorder())
	}
	got := make(chan session.Visitor, 1)
	go func() {
		h := m.Middleware()(func(c echo.Context) error { got <- session.From(c); return nil })
		if err := h(request()); err != nil {
			t.Error(err)
		}
	}()
	<-g.started
	m.Forget(request()) // the sign-out, with the same cookie
	close(g.release)
	if v := <-got; v.SignedIn() {
		t.Fatalf("the request that waited on the refresh is signed in as %q after the sign-out", v.Session.Cookie)
	}
}
