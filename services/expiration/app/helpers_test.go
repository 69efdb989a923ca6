package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/expiration/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const key = "0123456789abcdef0123456789abcdef"

// env is the environment of a service on the test's database and NATS.
func env(tb testing.TB, db string, nc events.Config) map[string]string {
	return map[string]string{
		"MONGO_URI":       testkit.MongoURI(tb),
		"MONGO_DB":        db,
		"NATS_URL":        nc.URL,
		"NATS_CLUSTER_ID": nc.ClusterID,
		"JWT_KEY":         key,
		"SESSION_KEY":     key,
	}
}

// config loads the service's configuration the way main does, on the
// test's database and NATS subject prefix.
func config(tb testing.TB, db string, nc events.Config) app.Config {
	tb.Helper()
	e := env(tb, db, nc)
	cfg, err := app.LoadConfig(func(k string) string { return e[k] })
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Service.NATS.Prefix = nc.Prefix
	cfg.Service.NATS.AckWait = nc.AckWait
	cfg.Service.NATS.MaxDeliveries = nc.MaxDeliveries
	return cfg
}

// running is a started App that stops once, at the latest when the test ends.
type running struct {
	*app.App
	once sync.Once
	tb   testing.TB
}

func (r *running) stop() {
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			r.tb.Errorf("close: %v", err)
		}
	})
}

func startApp(tb testing.TB, cfg app.Config) *running {
	tb.Helper()
	a, err := app.New(context.Background(), cfg, testkit.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	a.Start()
	r := &running{App: a, tb: tb}
	tb.Cleanup(r.stop)
	return r
}

func ready(tb testing.TB, a *running) {
	tb.Helper()
	testkit.Eventually(tb, 10*time.Second, func() bool {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code == http.StatusOK
	}, "service not ready")
}

// probe is the other side of the bus: it publishes order events and records
// when each expiration:complete arrives.
type probe struct {
	bus *events.Bus

	mu      sync.Mutex
	arrived map[string][]time.Time
}

func newProbe(tb testing.TB, nc events.Config) *probe {
	tb.Helper()
	p := &probe{arrived: map[string][]time.Time{}}
	nc.ClientName = "probe"
	p.bus = events.NewBus(nc, testkit.Logger(tb), nil)
	p.bus.Listen(events.Listener{Subject: events.ExpirationComplete, Group: "probe", Handle: func(_ context.Context, m events.Msg) error {
		at := time.Now()
		ev, err := events.Decode[events.ExpirationCompleteEvent](m)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.arrived[ev.OrderID] = append(p.arrived[ev.OrderID], at)
		p.mu.Unlock()
		return nil
	}})
	p.bus.Start()
	tb.Cleanup(func() {
		if err := p.bus.Close(); err != nil {
			tb.Errorf("close probe bus: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.bus.WaitConnected(ctx); err != nil {
		tb.Fatal(err)
	}
	return p
}

func (p *probe) publish(tb testing.TB, ev events.Event) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.bus.PublishEvent(ctx, ev); err != nil {
		tb.Fatal(err)
	}
}

func (p *probe) created(tb testing.TB, id string, expiresAt time.Time) {
	tb.Helper()
	p.publish(tb, events.OrderCreatedEvent{
		ID: id, Version: 0, Status: events.OrderStatusCreated, UserID: "buyer",
		ExpiresAt: expiresAt, Stuff: events.StuffRef{ID: "stuff-" + id, Price: 1000},
	})
}

// count is how many times id expired; total counts every order.
func (p *probe) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.arrived[id])
}

func (p *probe) total() (orders, events int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.arrived {
		events += len(a)
	}
	return len(p.arrived), events
}

// first waits for id's first expiration:complete and returns its arrival.
func (p *probe) first(tb testing.TB, id string, timeout time.Duration) time.Time {
	tb.Helper()
	testkit.Eventually(tb, timeout, func() bool { return p.count(id) > 0 }, "no expiration:complete for %s", id)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arrived[id][0]
}

// holds polls cond until until and fails the test as soon as it is false.
func holds(tb testing.TB, until time.Time, cond func() bool, msg string, args ...any) {
	tb.Helper()
	for {
		if !cond() {
			tb.Fatalf(msg, args...)
		}
		if time.Now().After(until) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
