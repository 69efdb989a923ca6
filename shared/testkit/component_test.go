package testkit_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// echoApp is the smallest service: the shared kit plus two routes, one that
// publishes an event and one that needs a signed-in user.
type echoApp struct{ svc *service.Service }

func (a echoApp) Handler() http.Handler           { return a.svc.Echo }
func (a echoApp) Start()                          { a.svc.Start() }
func (a echoApp) Close(ctx context.Context) error { return a.svc.Close(ctx) }
func buildEcho(got chan<- string) testkit.Build {
	return func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
		svc, err := service.Open(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		svc.Bus.Listen(events.Listener{Subject: events.UserBanned, Group: cfg.Name, Handle: func(_ context.Context, m events.Msg) error {
			ev, err := events.Decode[events.UserBannedEvent](m)
			if err == nil {
				got <- ev.UserID
			}
			return err
		}})
		svc.Echo.POST("/api/echo/ban", func(c echo.Context) error {
			if err := svc.Bus.PublishEvent(c.Request().Context(), events.UserBannedEvent{UserID: "u1"}); err != nil {
				return err
			}
			return c.JSON(http.StatusCreated, map[string]string{"userId": "u1"})
		})
		svc.Echo.GET("/api/echo/me", func(c echo.Context) error {
			u, ok := auth.FromEcho(c)
			if !ok {
				return errs.ErrNotAuthorized
			}
			return c.JSON(http.StatusOK, map[string]string{"id": u.ID})
		})
		return echoApp{svc}, nil
	}
}

// The builder runs a service on the embedded servers, waits until it is
// ready, and gives the test a peer on its bus, a JSON client and cookies the
// service accepts.
func TestComponent(t *testing.T) {
	t.Parallel()
	got := make(chan string, 4)
	c := testkit.Start(t, "echo", buildEcho(got), testkit.Observe(events.UserBanned))

	// What the service publishes, the peer records.
	var body struct {
		UserID string `json:"userId"`
	}
	// The request's correlation id travels in the event's envelope.
	c.HTTP.Do(http.MethodPost, "/api/echo/ban", testkit.Raw(`{}`), testkit.WithHeader(correlation.Header, "story-1")).
		Want(http.StatusCreated).Decode(&body)
	if body.UserID != "u1" {
		t.Fatalf("body %+v", body)
	}
	m := c.Peer.Wait(events.UserBanned, func(m events.Msg) bool {
		ev, err := events.Decode[events.UserBannedEvent](m)
		return err == nil && ev.UserID == "u1"
	})
	if !strings.HasPrefix(string(m.Data), `{"correlationId":"story-1","userId":"u1"`) {
		t.Fatalf("recorded %s, want the event with the request's correlation id", m.Data)
	}
	// What the peer publishes, the service receives (it got its own too).
	c.Peer.Publish(events.UserBannedEvent{UserID: "u2"})
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case id := <-got:
			seen[id] = true
		case <-time.After(15 * time.Second):
			t.Fatalf("the service received %v; want u1 and u2", seen)
		}
	}

	// Cookies the service accepts; errors in the normalized shape.
	c.HTTP.Do(http.MethodGet, "/api/echo/me", nil).WantError(http.StatusUnauthorized, "Not authorized", "")
	u, cookie := c.User("")
	var me struct {
		ID string `json:"id"`
	}
	c.HTTP.Do(http.MethodGet, "/api/echo/me", nil, testkit.WithCookie(cookie)).Want(http.StatusOK).Decode(&me)
	if me.ID != u.ID {
		t.Fatalf("signed in as %q, want %q", me.ID, u.ID)
	}
	c.HTTP.Do(http.MethodGet, "/api/echo/nowhere", nil).WantError(http.StatusNotFound, "Not Found", "")
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	in := ms(5, 1, 4, 2, 3, 10, 9, 8, 7, 6)
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{0.5, 5 * time.Millisecond},
		{0.9, 9 * time.Millisecond},
		{0.99, 10 * time.Millisecond},
		{1, 10 * time.Millisecond},
		{0.01, 1 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := testkit.Percentile(in, tc.p); got != tc.want {
			t.Errorf("Percentile(p%v) = %v, want %v", tc.p*100, got, tc.want)
		}
	}
	if in[0] != 5*time.Millisecond {
		t.Fatal("Percentile sorted its argument")
	}
	if got := testkit.Percentile(nil, 0.5); got != 0 {
		t.Fatalf("Percentile of nothing = %v", got)
	}
}
