package events_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// quiet is how long a test watches for a delivery that must not happen:
// comfortably more than the 1 s ack wait testkit configures, so a
// redelivery would show.
const quiet = 2 * time.Second

// retryFor is the retry budget the parking tests configure: a failing
// message is parked once it is that old.
const retryFor = 3 * time.Second

func redeliveryConfig(t *testing.T) events.Config {
	cfg := testkit.NATS(t)
	cfg.RetryFor = retryFor
	// Two seconds, not one: an ack sent under load (the race detector,
	// other packages' tests) may reach the server after a 1 s ack wait, and
	// the message comes back although it was handled.
	cfg.AckWait = 2 * time.Second
	return cfg
}

func newBus(t *testing.T, cfg events.Config, park events.Parker) *events.Bus {
	t.Helper()
	b := events.NewBus(cfg, testkit.Logger(t), park)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	return b
}

func start(t *testing.T, b *events.Bus) {
	t.Helper()
	b.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		t.Fatalf("bus did not connect: %v", err)
	}
}

func publish(t *testing.T, b *events.Bus, ev events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.PublishEvent(ctx, ev); err != nil {
		t.Fatalf("publish %s: %v", ev.Subject(), err)
	}
}

// recv waits for one value.
func recv[T any](t *testing.T, c <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// none checks that nothing arrives on c for d.
func none[T any](t *testing.T, c <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("unexpected %s: %+v", what, v)
	case <-time.After(d):
	}
}

func TestPublishSubscribeRoundTrip(t *testing.T) {
	t.Parallel()
	expires := time.Date(2025, 3, 1, 12, 15, 0, 0, time.UTC)
	tests := []struct {
		ev     events.Event
		decode func(events.Msg) (events.Event, error)
	}{
		{events.StuffCreatedEvent{ID: "s1", Version: 0, Title: "Linear algebra notes", Price: 500, Currency: "usd", UserID: "u1", Status: "available"},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.StuffCreatedEvent](m) }},
		{events.StuffUpdatedEvent{ID: "s1", Version: 1, Title: "Notes", Price: 450, Currency: "usd", UserID: "u1", OrderID: "o1", Status: "reserved"},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.StuffUpdatedEvent](m) }},
		{events.OrderCreatedEvent{ID: "o1", Version: 0, Status: events.OrderStatusCreated, UserID: "u2", ExpiresAt: expires, Stuff: events.StuffRef{ID: "s1", Price: 450}},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.OrderCreatedEvent](m) }},
		{events.OrderCancelledEvent{ID: "o1", Version: 1, Stuff: events.StuffRef{ID: "s1"}},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.OrderCancelledEvent](m) }},
		{events.OrderCompletedEvent{ID: "o2", Version: 1, UserID: "u2", Stuff: events.StuffRef{ID: "s1"}},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.OrderCompletedEvent](m) }},
		{events.ExpirationCompleteEvent{OrderID: "o1"},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.ExpirationCompleteEvent](m) }},
		{events.PaymentCreatedEvent{ID: "p1", OrderID: "o2", Amount: 450, ProviderID: "pi_123"},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.PaymentCreatedEvent](m) }},
		{events.UserBannedEvent{UserID: "u3"},
			func(m events.Msg) (events.Event, error) { return events.Decode[events.UserBannedEvent](m) }},
	}
	type got struct {
		ev  events.Event
		msg events.Msg
	}
	bus := newBus(t, testkit.NATS(t), nil)
	received := make(chan got, len(tests))
	for _, tc := range tests {
		bus.Listen(events.Listener{Subject: tc.ev.Subject(), Group: "roundtrip", Handle: func(_ context.Context, m events.Msg) error {
			ev, err := tc.decode(m)
			if err != nil {
				return err
			}
			received <- got{ev, m}
			return nil
		}})
	}
	start(t, bus)
	for _, tc := range tests {
		publish(t, bus, tc.ev)
	}
	bySubject := map[events.Subject]got{}
	for range tests {
		g := recv(t, received, 10*time.Second, "an event")
		bySubject[g.msg.Subject] = g
	}
	for _, tc := range tests {
		g, ok := bySubject[tc.ev.Subject()]
		if !ok {
			t.Errorf("%s: not received", tc.ev.Subject())
			continue
		}
		if !reflect.DeepEqual(g.ev, tc.ev) {
			t.Errorf("%s: received %+v, want %+v", tc.ev.Subject(), g.ev, tc.ev)
		}
		if g.msg.Deliveries != 1 || g.msg.Sequence == 0 {
			t.Errorf("%s: Deliveries %d, Sequence %d; want 1 and a sequence", tc.ev.Subject(), g.msg.Deliveries, g.msg.Sequence)
		}
	}
}

func TestQueueGroupSharesMessages(t *testing.T) {
	t.Parallel()
	cfg := testkit.NATS(t)
	type delivery struct {
		bus  string
		user string
	}
	got := make(chan delivery, 100)
	listen := func(name, group string) *events.Bus {
		b := newBus(t, cfg, nil)
		b.Listen(events.Listener{Subject: events.UserBanned, Group: group, Handle: func(_ context.Context, m events.Msg) error {
			ev, err := events.Decode[events.UserBannedEvent](m)
			if err != nil {
				return err
			}
			got <- delivery{name, ev.UserID}
			return nil
		}})
		start(t, b)
		return b
	}
	listen("orders-1", "orders")
	listen("orders-2", "orders")
	listen("payments-1", "payments")
	pub := newBus(t, cfg, nil)
	start(t, pub)

	const n = 20
	for i := range n {
		publish(t, pub, events.UserBannedEvent{UserID: fmt.Sprint(i)})
	}
	perBus := map[string]int{}
	perGroupUser := map[string]int{}
	for range 2 * n {
		d := recv(t, got, 10*time.Second, "a delivery")
		perBus[d.bus]++
		group := "orders"
		if d.bus == "payments-1" {
			group = "payments"
		}
		perGroupUser[group+"/"+d.user]++
	}
	none(t, got, quiet, "extra delivery (a message delivered twice)")
	for i := range n {
		for _, g := range []string{"orders", "payments"} {
			if c := perGroupUser[fmt.Sprintf("%s/%d", g, i)]; c != 1 {
				t.Errorf("group %s got message %d %d times, want once", g, i, c)
			}
		}
	}
	if perBus["orders-1"] == 0 || perBus["orders-2"] == 0 || perBus["orders-1"]+perBus["orders-2"] != n {
		t.Errorf("orders replicas got %d and %d messages, want both some and %d in all", perBus["orders-1"], perBus["orders-2"], n)
	}
	if perBus["payments-1"] != n {
		t.Errorf("the payments group got %d messages, want all %d", perBus["payments-1"], n)
	}
}

func TestBroadcastReachesEveryReplica(t *testing.T) {
	t.Parallel()
	cfg := testkit.NATS(t)
	got := make(chan string, 10)
	for _, name := range []string{"client-1", "client-2"} {
		b := newBus(t, cfg, nil)
		b.Listen(events.Listener{Subject: events.StuffUpdated, Group: "client", Broadcast: true, Handle: func(context.Context, events.Msg) error {
			got <- name
			return nil
		}})
		start(t, b)
	}
	pub := newBus(t, cfg, nil)
	start(t, pub)
	publish(t, pub, events.StuffUpdatedEvent{ID: "s1", Version: 2})
	seen := map[string]int{}
	for range 2 {
		seen[recv(t, got, 10*time.Second, "a broadcast delivery")]++
	}
	none(t, got, quiet, "extra delivery")
	if seen["client-1"] != 1 || seen["client-2"] != 1 {
		t.Fatalf("deliveries %v, want one per replica", seen)
	}
}

// attempt is one delivery seen by a handler.
type attempt struct {
	deliveries int
	seq        uint64
}

type parked struct {
	m     events.Msg
	cause error
	ctxOK bool
}

func TestRedeliveryUntilSuccess(t *testing.T) {
	t.Parallel()
	dbDown := errors.New("database unreachable")
	tests := []struct {
		name string
		err  error // returned by the first two tries
	}{
		{"error", dbDown},
		{"wrapped error", fmt.Errorf("apply stuff s1: %w", dbDown)},
		{"not yet", events.ErrNotYet},
		{"wrapped not yet", fmt.Errorf("order o1 version 3 ahead of 1: %w", events.ErrNotYet)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parks := make(chan parked, 10)
			bus := newBus(t, redeliveryConfig(t), func(ctx context.Context, m events.Msg, cause error) error {
				parks <- parked{m, cause, ctx.Err() == nil}
				return nil
			})
			seen := make(chan attempt, 20)
			var tries atomic.Int32
			bus.Listen(events.Listener{Subject: events.OrderCreated, Group: "stuff", Handle: func(_ context.Context, m events.Msg) error {
				seen <- attempt{m.Deliveries, m.Sequence}
				if tries.Add(1) < 3 {
					return tc.err
				}
				return nil
			}})
			start(t, bus)
			publish(t, bus, events.OrderCreatedEvent{ID: "o1"})
			first := recv(t, seen, 10*time.Second, "try 1")
			last := first
			for want := 2; want <= 3; want++ {
				a := recv(t, seen, 10*time.Second, fmt.Sprintf("try %d", want))
				if a.seq != first.seq || a.deliveries <= last.deliveries {
					t.Fatalf("try %d: %+v after %+v; want a later delivery of sequence %d", want, a, last, first.seq)
				}
				last = a
			}
			none(t, seen, quiet, "delivery after the handler succeeded (not acked)")
			none(t, parks, 0, "parking")
		})
	}
}

// An event that waits for another (ErrNotYet) longer than a few
// redeliveries is not poison: it is tried again, less and less often, and
// applied when it can be, never parked within the retry budget.
func TestNotYetWaitsWithoutBeingParked(t *testing.T) {
	t.Parallel()
	parks := make(chan parked, 10)
	cfg := testkit.NATS(t) // a budget of a minute
	bus := newBus(t, cfg, func(ctx context.Context, m events.Msg, cause error) error {
		parks <- parked{m, cause, ctx.Err() == nil}
		return nil
	})
	var tries atomic.Int32
	applied := make(chan attempt, 1)
	bus.Listen(events.Listener{Subject: events.StuffUpdated, Group: "orders", Handle: func(_ context.Context, m events.Msg) error {
		if tries.Add(1) <= 6 { // the stuff:created it waits for comes late
			return fmt.Errorf("stuff s1 version 2 ahead of the replica: %w", events.ErrNotYet)
		}
		applied <- attempt{m.Deliveries, m.Sequence}
		return nil
	}})
	start(t, bus)
	publish(t, bus, events.StuffUpdatedEvent{ID: "s1", Version: 2})
	a := recv(t, applied, 30*time.Second, "the event applied at last")
	if a.deliveries < 7 {
		t.Fatalf("applied at delivery %d after 6 tries; want a later one", a.deliveries)
	}
	none(t, parks, 0, "parking of an event that was only early")
}

// A failing message is tried after one ack wait, then two, four …: over
// eight seconds with a 1 s ack wait, a handler that always fails runs about
// four times, not eight (NATS redelivers every second; the listener leaves
// the early redeliveries alone).
func TestFailuresBackOff(t *testing.T) {
	t.Parallel()
	cfg := testkit.NATS(t)
	cfg.MaxBackoff = 8 * time.Second
	bus := newBus(t, cfg, nil)
	var tries atomic.Int32
	bus.Listen(events.Listener{Subject: events.StuffUpdated, Group: "orders", Handle: func(context.Context, events.Msg) error {
		tries.Add(1)
		return errors.New("replica unreachable")
	}})
	start(t, bus)
	publish(t, bus, events.StuffUpdatedEvent{ID: "s1", Version: 1})
	testkit.Eventually(t, 10*time.Second, func() bool { return tries.Load() >= 1 }, "never tried")
	time.Sleep(8500 * time.Millisecond) // the window the tries are counted in
	if n := tries.Load(); n < 3 || n > 5 {
		t.Fatalf("tried %d times in 8.5 s with a 1 s ack wait; want 3 to 5 (backing off), not one a second", n)
	}
}

// A handler slower than the bus's ack wait (but within its own timeout) is
// not handed the same message again while it runs: the subscription's ack
// wait is the handler's timeout.
func TestSlowHandlerIsNotRedeliveredWhileRunning(t *testing.T) {
	t.Parallel()
	bus := newBus(t, testkit.NATS(t), nil) // 1 s ack wait
	var tries atomic.Int32
	done := make(chan struct{}, 4)
	bus.Listen(events.Listener{Subject: events.OrderCreated, Group: "slow", Timeout: 4 * time.Second, Handle: func(ctx context.Context, _ events.Msg) error {
		tries.Add(1)
		select {
		case <-time.After(2500 * time.Millisecond): // slow, not stuck
		case <-ctx.Done():
			return ctx.Err()
		}
		done <- struct{}{}
		return nil
	}})
	start(t, bus)
	publish(t, bus, events.OrderCreatedEvent{ID: "o1"})
	recv(t, done, 15*time.Second, "the slow handling")
	none(t, done, quiet, "a second handling")
	if n := tries.Load(); n != 1 {
		t.Fatalf("the handler ran %d times; a message still being handled must not be delivered again", n)
	}
}

func TestParking(t *testing.T) {
	t.Parallel()
	poison := errors.New("cannot apply")
	tests := []struct {
		name       string
		timeout    time.Duration
		handle     events.Handler
		parkFails  int  // the parker fails this many times first
		atOnce     bool // parked at the first delivery; else once older than retryFor
		causeIs    error
		causeMatch func(error) bool
	}{
		{name: "fails every time", handle: func(context.Context, events.Msg) error { return poison },
			causeIs: poison},
		{name: "never caught up", handle: func(context.Context, events.Msg) error { return events.ErrNotYet },
			causeIs: events.ErrNotYet},
		{name: "permanent", handle: func(context.Context, events.Msg) error { return events.Permanent(poison) },
			atOnce: true, causeIs: poison},
		{name: "wrapped permanent", handle: func(context.Context, events.Msg) error {
			return fmt.Errorf("apply: %w", events.Permanent(poison))
		}, atOnce: true, causeIs: poison},
		{name: "payload that does not decode", handle: func(_ context.Context, m events.Msg) error {
			m.Data = []byte(`{"id": 12`)
			_, err := events.Decode[events.OrderCreatedEvent](m)
			return err
		}, atOnce: true, causeMatch: func(err error) bool { return err != nil }},
		{name: "payload of the wrong shape", handle: func(_ context.Context, m events.Msg) error {
			m.Data = []byte(`{"id": 12}`)
			_, err := events.Decode[events.OrderCreatedEvent](m)
			return err
		}, atOnce: true, causeMatch: func(err error) bool { return err != nil }},
		{name: "handler panics", handle: func(context.Context, events.Msg) error { panic("nil map") },
			causeMatch: func(err error) bool { return err != nil }},
		{name: "handler runs out of time", timeout: 50 * time.Millisecond, handle: func(ctx context.Context, _ events.Msg) error {
			<-ctx.Done()
			return fmt.Errorf("update replica: %w", ctx.Err())
		}, causeIs: context.DeadlineExceeded},
		{name: "parker fails once", handle: func(context.Context, events.Msg) error { return events.Permanent(poison) },
			parkFails: 1, atOnce: true, causeIs: poison},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parks := make(chan parked, 10)
			var parkCalls atomic.Int32
			bus := newBus(t, redeliveryConfig(t), func(ctx context.Context, m events.Msg, cause error) error {
				parks <- parked{m, cause, ctx.Err() == nil}
				if int(parkCalls.Add(1)) <= tc.parkFails {
					return errors.New("parked_events unreachable")
				}
				if ctx.Err() != nil {
					return ctx.Err() // what a database insert would do
				}
				return nil
			})
			seen := make(chan attempt, 20)
			bus.Listen(events.Listener{Subject: events.StuffUpdated, Group: "orders", Timeout: tc.timeout, Handle: func(ctx context.Context, m events.Msg) error {
				seen <- attempt{m.Deliveries, m.Sequence}
				return tc.handle(ctx, m)
			}})
			start(t, bus)
			published := time.Now()
			publish(t, bus, events.StuffUpdatedEvent{ID: "s1", Version: 1})

			var p parked
			for i := 0; i <= tc.parkFails; i++ {
				p = recv(t, parks, 20*time.Second, "parking")
			}
			age := time.Since(published)
			switch {
			case tc.atOnce && p.m.Deliveries != 1+tc.parkFails:
				t.Fatalf("parked %+v, want the message at delivery %d", p.m, 1+tc.parkFails)
			case !tc.atOnce && age < retryFor:
				t.Fatalf("parked after %s, before the retry budget of %s", age, retryFor)
			case p.m.Subject != events.StuffUpdated || string(p.m.Data) == "":
				t.Fatalf("parked %+v", p.m)
			case !p.ctxOK:
				t.Fatal("the parker got a context that had already ended")
			case tc.causeIs != nil && !errors.Is(p.cause, tc.causeIs):
				t.Fatalf("parked with cause %v, want %v", p.cause, tc.causeIs)
			case tc.causeMatch != nil && !tc.causeMatch(p.cause):
				t.Fatalf("parked with cause %v", p.cause)
			}
			for len(seen) > 0 {
				<-seen // the tries before parking
			}
			none(t, seen, quiet, "delivery after parking")
			none(t, parks, 0, "second parking")
		})
	}
}

func TestListenAfterStart(t *testing.T) {
	t.Parallel()
	bus := newBus(t, testkit.NATS(t), nil)
	start(t, bus)
	got := make(chan string, 1)
	bus.Listen(events.Listener{Subject: events.ExpirationComplete, Group: "orders", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.ExpirationCompleteEvent](m)
		if err == nil {
			got <- ev.OrderID
		}
		return err
	}})
	publish(t, bus, events.ExpirationCompleteEvent{OrderID: "o9"})
	if id := recv(t, got, 10*time.Second, "the event"); id != "o9" {
		t.Fatalf("got %q, want o9", id)
	}
}

func TestCloseKeepsDurablePosition(t *testing.T) {
	t.Parallel()
	cfg := testkit.NATS(t)
	listen := func(got chan<- string) *events.Bus {
		b := newBus(t, cfg, nil)
		b.Listen(events.Listener{Subject: events.PaymentCreated, Group: "orders", Handle: func(_ context.Context, m events.Msg) error {
			ev, err := events.Decode[events.PaymentCreatedEvent](m)
			if err == nil {
				got <- ev.ID
			}
			return err
		}})
		start(t, b)
		return b
	}
	pub := newBus(t, cfg, nil)
	start(t, pub)

	first := make(chan string, 10)
	a := listen(first)
	publish(t, pub, events.PaymentCreatedEvent{ID: "p1"})
	if id := recv(t, first, 10*time.Second, "p1"); id != "p1" {
		t.Fatalf("got %s, want p1", id)
	}
	began := time.Now()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
	if err := a.Ready(context.Background()); !errors.Is(err, events.ErrNotConnected) {
		t.Fatalf("Ready after Close = %v, want ErrNotConnected", err)
	}

	// Published while no member of the group runs.
	publish(t, pub, events.PaymentCreatedEvent{ID: "p2"})

	second := make(chan string, 10)
	listen(second)
	if id := recv(t, second, 10*time.Second, "p2"); id != "p2" {
		t.Fatalf("the restarted group first got %s, want p2 (it must resume after p1, not start over)", id)
	}
	none(t, second, quiet, "redelivery")
}

func TestCloseAndStartEdgeCases(t *testing.T) {
	t.Parallel()
	never := events.NewBus(testkit.NATS(t), testkit.Logger(t), nil)
	if err := never.Close(); err != nil {
		t.Fatalf("Close of a bus never started: %v", err)
	}
	if err := never.Ready(context.Background()); !errors.Is(err, events.ErrNotConnected) {
		t.Fatalf("Ready of a bus never started = %v", err)
	}
	if err := never.Publish(context.Background(), events.UserBanned, []byte(`{}`)); !errors.Is(err, events.ErrNotConnected) {
		t.Fatalf("Publish on a bus never started = %v, want ErrNotConnected", err)
	}

	b := events.NewBus(testkit.NATS(t), testkit.Logger(t), nil)
	var hooks atomic.Int32
	b.OnConnect(func() { hooks.Add(1) })
	b.Start()
	b.Start() // a second Start must not open a second connection
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return hooks.Load() >= 1 }, "OnConnect hook did not run")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}()
	recv(t, done, 5*time.Second, "Close to return")
	if n := hooks.Load(); n != 1 {
		t.Fatalf("OnConnect ran %d times, want 1 (one connection)", n)
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	cause := errors.New("bad payload")
	if events.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) != nil")
	}
	p := events.Permanent(cause)
	if !errors.Is(p, cause) || p.Error() != cause.Error() {
		t.Fatalf("Permanent(%v) = %v: want it to wrap and read as the cause", cause, p)
	}
}

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	ev := events.StuffCreatedEvent{ID: "s1", Title: "Notes", Price: 100, UserID: "u1"}
	data, err := events.Encode(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode[events.StuffCreatedEvent](events.Msg{Subject: events.StuffCreated, Data: data})
	if err != nil || got != ev {
		t.Fatalf("Decode(Encode(ev)) = %+v, %v; want %+v", got, err, ev)
	}
	tests := []struct {
		name string
		data string
	}{
		{"truncated", `{"id":"s1"`},
		{"not JSON", `garbage`},
		{"wrong type", `{"price":"100"}`},
		{"empty", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := events.Decode[events.StuffCreatedEvent](events.Msg{Subject: events.StuffCreated, Data: []byte(tc.data)}); err == nil {
				t.Fatal("Decode = nil error")
			}
		})
	}
}

// outage is what a reconnect test observes.
type outage struct {
	bus   *events.Bus
	hooks *atomic.Int32
	got   chan string
}

func listenOn(t *testing.T, cfg events.Config) outage {
	t.Helper()
	o := outage{bus: newBus(t, cfg, nil), hooks: &atomic.Int32{}, got: make(chan string, 10)}
	o.bus.OnConnect(func() { o.hooks.Add(1) })
	o.bus.Listen(events.Listener{Subject: events.UserBanned, Group: "auth", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.UserBannedEvent](m)
		if err == nil {
			o.got <- ev.UserID
		}
		return err
	}})
	return o
}

func ready(b *events.Bus) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return b.Ready(ctx) == nil
}

func TestBusReconnectsAfterOutage(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	o := listenOn(t, srv.Config)
	start(t, o.bus)
	publish(t, o.bus, events.UserBannedEvent{UserID: "before"})
	if id := recv(t, o.got, 10*time.Second, "the event before the outage"); id != "before" {
		t.Fatalf("got %s", id)
	}

	srv.Stop()
	testkit.Eventually(t, 15*time.Second, func() bool { return !ready(o.bus) }, "Ready still nil with NATS down")
	err := o.bus.PublishEvent(context.Background(), events.UserBannedEvent{UserID: "during"})
	if !errors.Is(err, events.ErrNotConnected) {
		t.Fatalf("Publish with NATS down = %v, want ErrNotConnected", err)
	}

	srv.Restart()
	testkit.Eventually(t, 15*time.Second, func() bool { return ready(o.bus) }, "bus did not reconnect")
	testkit.Eventually(t, 5*time.Second, func() bool { return o.hooks.Load() >= 2 }, "OnConnect hook did not run after the reconnect (ran %d times)", o.hooks.Load())
	publish(t, o.bus, events.UserBannedEvent{UserID: "after"})
	if id := recv(t, o.got, 15*time.Second, "the event after the restart (listener resubscribed?)"); id != "after" {
		t.Fatalf("got %s, want after", id)
	}

	began := time.Now()
	if err := o.bus.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("Close took %s", d)
	}
}

func TestBusStartedBeforeNATS(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	srv.Stop()

	o := listenOn(t, srv.Config)
	o.bus.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := o.bus.WaitConnected(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected with NATS down = %v, want the context's deadline", err)
	}
	if ready(o.bus) {
		t.Fatal("Ready = nil with NATS down")
	}
	if err := o.bus.PublishEvent(context.Background(), events.UserBannedEvent{UserID: "x"}); !errors.Is(err, events.ErrNotConnected) {
		t.Fatalf("Publish with NATS down = %v, want ErrNotConnected", err)
	}

	srv.Restart()
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	if err := o.bus.WaitConnected(wctx); err != nil {
		t.Fatalf("bus did not connect once NATS came up: %v", err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return o.hooks.Load() == 1 }, "OnConnect hook ran %d times, want 1", o.hooks.Load())
	publish(t, o.bus, events.UserBannedEvent{UserID: "u1"})
	if id := recv(t, o.got, 10*time.Second, "the event"); id != "u1" {
		t.Fatalf("got %s", id)
	}
}

// TestConcurrentPublish checks the bus is safe for concurrent use.
func TestConcurrentPublish(t *testing.T) {
	t.Parallel()
	bus := newBus(t, testkit.NATS(t), nil)
	var mu sync.Mutex
	seen := map[string]bool{}
	all := make(chan struct{})
	const n = 40
	bus.Listen(events.Listener{Subject: events.UserBanned, Group: "auth", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.UserBannedEvent](m)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		seen[ev.UserID] = true
		if len(seen) == n {
			close(all)
		}
		return nil
	}})
	start(t, bus)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := bus.PublishEvent(ctx, events.UserBannedEvent{UserID: fmt.Sprint(i)}); err != nil {
				t.Errorf("publish %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	recv(t, all, 10*time.Second, "all events")
}

// A listener handles messages about different entities at once, and the
// messages about one entity one after another in the order they came: while
// the handler of stuff s1's first update is stuck, s2's updates are applied,
// and s1's second update waits for its first.
func TestListenerWorkersKeepEachEntitysOrder(t *testing.T) {
	t.Parallel()
	bus := newBus(t, testkit.NATS(t), nil)
	release := make(chan struct{})
	type seen struct {
		id      string
		version int64
	}
	got := make(chan seen, 10)
	bus.Listen(events.Listener{Subject: events.StuffUpdated, Group: "workers", Workers: 4, Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.StuffUpdatedEvent](m)
		if err != nil {
			return err
		}
		if ev.ID == "s1" && ev.Version == 1 {
			<-release
		}
		got <- seen{ev.ID, ev.Version}
		return nil
	}})
	start(t, bus)
	// s1 and s2 must land on different workers for s2 to pass s1.
	for _, ev := range []events.StuffUpdatedEvent{{ID: "s1", Version: 1}, {ID: "s1", Version: 2}, {ID: "s2", Version: 1}, {ID: "s2", Version: 2}} {
		publish(t, bus, ev)
	}
	if a, b := recv(t, got, 10*time.Second, "s2 v1"), recv(t, got, 10*time.Second, "s2 v2"); a != (seen{"s2", 1}) || b != (seen{"s2", 2}) {
		t.Fatalf("while s1 v1 is stuck, got %+v then %+v; want s2 v1 then s2 v2", a, b)
	}
	none(t, got, 300*time.Millisecond, "s1 v2 before s1 v1")
	close(release)
	if a, b := recv(t, got, 10*time.Second, "s1 v1"), recv(t, got, 10*time.Second, "s1 v2"); a != (seen{"s1", 1}) || b != (seen{"s1", 2}) {
		t.Fatalf("got %+v then %+v; want s1 v1 then s1 v2", a, b)
	}
}

// A correlation id in the publisher's context rides in the payload's
// envelope to the handler's context; the event itself decodes as before.
func TestCorrelationIDRidesTheEvent(t *testing.T) {
	t.Parallel()
	ev := events.StuffCreatedEvent{ID: "s1", Title: "Notes", Price: 100, UserID: "u1"}
	ctx := correlation.With(context.Background(), "purchase-42")
	data, err := events.Encode(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), `{"correlationId":"purchase-42","id":"s1",`) {
		t.Fatalf("payload %s", data)
	}
	if got, err := events.Decode[events.StuffCreatedEvent](events.Msg{Data: data}); err != nil || got != ev {
		t.Fatalf("Decode = %+v, %v", got, err)
	}

	b := newBus(t, testkit.NATS(t), nil)
	got := make(chan string, 2)
	b.Listen(events.Listener{Subject: events.StuffCreated, Group: "orders", Handle: func(ctx context.Context, _ events.Msg) error {
		got <- correlation.ID(ctx)
		return nil
	}})
	start(t, b)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.PublishEvent(pctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"purchase-42", ""} {
		select {
		case id := <-got:
			if id != want {
				t.Fatalf("handler's correlation id %q, want %q", id, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("not delivered")
		}
	}
}
