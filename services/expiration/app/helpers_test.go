package app_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/expiration/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// build makes the real app, as main does, on the component's configuration.
func build(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
	a, err := app.New(ctx, app.Config{Service: cfg}, log)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// start runs the service on a database and NATS subject prefix of its own,
// and records when each of its expiration:complete events arrives.
func start(tb testing.TB) (*testkit.Component, *arrivals) {
	tb.Helper()
	c := testkit.Start(tb, app.Name, build)
	return c, watch(tb, c.NATS)
}

// replica runs the service again on c's database and bus: a second replica
// beside c, or c restarted after c.Stop.
func replica(tb testing.TB, c *testkit.Component) *testkit.Component {
	tb.Helper()
	return testkit.Start(tb, app.Name, build, testkit.OnDB(c.DB), testkit.OnNATS(c.NATS))
}

// created publishes, as orders would, that order id was created with its
// hold ending at expiresAt.
func created(tb testing.TB, c *testkit.Component, id string, expiresAt time.Time) {
	tb.Helper()
	c.Peer.Publish(events.OrderCreatedEvent{
		ID: id, Version: 0, Status: events.OrderStatusCreated, UserID: "buyer",
		ExpiresAt: expiresAt, Stuff: events.StuffRef{ID: "stuff-" + id, Price: 1000},
	})
}

// arrivals records, by order, when each expiration:complete reaches a
// subscriber. The tests measure lateness end to end at the subscriber, to
// the millisecond; the testkit Peer records what arrives but not when, so a
// listener of the test's own stamps each event as it is delivered.
type arrivals struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func watch(tb testing.TB, nc events.Config) *arrivals {
	tb.Helper()
	a := &arrivals{at: map[string][]time.Time{}}
	nc.ClientName = "arrivals"
	bus := events.NewBus(nc, testkit.Logger(tb), nil)
	bus.Listen(events.Listener{Subject: events.ExpirationComplete, Group: "arrivals", Handle: a.record})
	bus.Start()
	tb.Cleanup(func() {
		if err := bus.Close(); err != nil {
			tb.Errorf("close arrivals bus: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.WaitConnected(ctx); err != nil {
		tb.Fatal(err)
	}
	return a
}

func (a *arrivals) record(_ context.Context, m events.Msg) error {
	at := time.Now()
	ev, err := events.Decode[events.ExpirationCompleteEvent](m)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.at[ev.OrderID] = append(a.at[ev.OrderID], at)
	a.mu.Unlock()
	return nil
}

// count is how many times id expired.
func (a *arrivals) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at[id])
}

// total counts the orders that expired and their events.
func (a *arrivals) total() (orders, events int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.at {
		events += len(at)
	}
	return len(a.at), events
}

// first waits for id's first expiration:complete and returns its arrival.
func (a *arrivals) first(tb testing.TB, id string, timeout time.Duration) time.Time {
	tb.Helper()
	testkit.Eventually(tb, timeout, func() bool { return a.count(id) > 0 }, "no expiration:complete for %s", id)
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.at[id][0]
}

// holds asserts that nothing happens during a window: cond stays true from
// now until until. It is not a wait for an event (that is
// testkit.Eventually) but the check itself, so it watches the whole window,
// failing as soon as cond turns false.
func holds(tb testing.TB, until time.Time, cond func() bool, msg string, args ...any) {
	tb.Helper()
	for {
		if !cond() {
			tb.Fatalf(msg, args...)
		}
		if time.Now().After(until) {
			return
		}
		time.Sleep(10 * time.Millisecond) // the window's sampling, not synchronization
	}
}
