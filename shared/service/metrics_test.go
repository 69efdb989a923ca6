package service_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// A service's /metrics shows its requests by route, the events it published
// and handled by result, what its outbox holds and how many events are
// parked.
func TestServiceMetrics(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t, testkit.NATS(t)))
	things := s.DB.Collection("things")
	relay := s.Outbox(things)
	s.Echo.GET("/things/:id", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("id")) })
	handled := make(chan struct{}, 1)
	s.Bus.Listen(events.Listener{Subject: events.StuffUpdated, Group: "svc", Handle: func(context.Context, events.Msg) error {
		select {
		case handled <- struct{}{}:
		default: // delivered again: told once is enough
		}
		return nil
	}})
	s.Bus.Listen(events.Listener{Subject: events.StuffCreated, Group: "svc", Handle: func(context.Context, events.Msg) error {
		return events.Permanent(errors.New("title is not a string"))
	}})
	s.Start()
	srv := httptest.NewServer(s.Echo)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Bus.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	testkit.NewClient(t, srv.URL).Do(http.MethodGet, "/things/t1", nil).Want(http.StatusOK)
	p, err := outbox.New(ctx, events.StuffUpdatedEvent{ID: "t1", Version: 1, Title: "Notes"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Writer.Insert(ctx, things, bson.D{{Key: "_id", Value: "t1"}, {Key: outbox.Field, Value: []outbox.Pending{p}}}); err != nil {
		t.Fatal(err)
	}
	relay.Notify(things, "t1", p)
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatal("the outbox event was not handled")
	}
	if err := s.Bus.PublishEvent(ctx, events.StuffCreatedEvent{ID: "t2", Title: "Notes"}); err != nil {
		t.Fatal(err)
	}

	// Delivery is at least once (a relay's first sweep and a write's
	// notice may both publish an event; a slow ack brings a message back):
	// the counts are at least one, not exactly one.
	var got testkit.Metrics
	testkit.Eventually(t, 15*time.Second, func() bool {
		got = testkit.Scrape(t, srv.URL+"/metrics")
		return got.Value("events_parked") >= 1 && got.Value("events_handled_total", "result", "parked") >= 1 &&
			got.Value("events_handled_total", "subject", "stuff:updated", "result", "acked") >= 1
	}, "the parked event and the handled one are not counted; last scrape:\n%s", &got)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"http_requests_total", []string{"route", "/things/:id", "status", "200"}, 1},
		{"events_published_total", []string{"subject", "stuff:updated", "result", "ok"}, 1},
		{"events_published_total", []string{"subject", "stuff:created", "result", "ok"}, 1},
		{"events_handled_total", []string{"subject", "stuff:created", "group", "svc", "result", "parked"}, 1},
		{"events_handle_duration_seconds", []string{"subject", "stuff:updated", "group", "svc"}, 1},
	}
	for _, ch := range checks {
		if v := got.Value(ch.name, ch.labels...); v < ch.want {
			t.Errorf("%s%v = %v, want at least %v", ch.name, ch.labels, v, ch.want)
		}
	}
	if !got.Has("outbox_pending_events") || !got.Has("outbox_oldest_pending_seconds") || !got.Has("go_goroutines") {
		t.Errorf("outbox or runtime gauges missing:\n%s", got)
	}
}

// DEBUG_ADDR serves the profiles on a listener of its own; the service's
// port does not.
func TestRunServesProfilesOnDebugAddr(t *testing.T) {
	t.Parallel()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	cfg := testConfig(t, testkit.NATS(t))
	cfg.HTTPAddr, cfg.DebugAddr = free(), free()
	s := open(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testkit.Eventually(t, 15*time.Second, func() bool {
		return status("http://"+cfg.DebugAddr+"/debug/pprof/cmdline") == http.StatusOK
	}, "no profiles on DEBUG_ADDR")
	if code := status("http://" + cfg.HTTPAddr + "/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Fatalf("the service's port answers profiles: %d", code)
	}
}
