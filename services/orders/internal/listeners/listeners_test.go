package listeners_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/orders/internal/listeners"
	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/services/orders/internal/store"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type nopNotifier struct{}

func (nopNotifier) Notify(*mongo.Collection, any, ...outbox.Pending) {}

// TestRedeliveryAfterAFailedHandler: every listener's first delivery fails,
// either before the change is written (a transient error) or after it (the
// ack is lost). The redelivery applies the change exactly once: no second
// version, no second event.
func TestRedeliveryAfterAFailedHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		applyFirst bool
	}{
		{"failure before the write", false},
		{"failure after the write (ack lost)", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := testkit.Mongo(t)
			clock := testkit.NewClock(time.Now())
			svc := orders.NewService(store.New(db, mongox.NewWriter(), nopNotifier{}), orders.Options{IDs: store.NewID, Now: clock.Now})
			log := testkit.Logger(t)
			bus := events.NewBus(testkit.NATS(t), log, nil)

			var mu sync.Mutex
			redelivered := map[events.Subject]int{}
			for _, l := range listeners.Listeners(svc, svc, svc, log) {
				handle := l.Handle
				l.Handle = func(ctx context.Context, m events.Msg) error {
					if m.Deliveries == 1 {
						if tc.applyFirst {
							if err := handle(ctx, m); err != nil {
								return err
							}
						}
						return errors.New("injected failure")
					}
					err := handle(ctx, m)
					if err == nil {
						mu.Lock()
						redelivered[m.Subject]++
						mu.Unlock()
					}
					return err
				}
				bus.Listen(l)
			}
			bus.Start()
			t.Cleanup(func() {
				if err := bus.Close(); err != nil {
					t.Error(err)
				}
			})

			seller, buyer, banned := store.NewID(), store.NewID(), store.NewID()
			old, fresh := store.NewID(), store.NewID()
			if err := svc.ApplyStuffCreated(ctx, orders.Stuff{ID: old, Version: 1, Title: "v1", Price: 100, SellerID: seller}); err != nil {
				t.Fatal(err)
			}
			var placed []orders.Order
			for _, b := range []string{buyer, buyer, banned} {
				id := store.NewID()
				if err := svc.ApplyStuffCreated(ctx, orders.Stuff{ID: id, Version: 1, Title: "t", Price: 100, SellerID: seller}); err != nil {
					t.Fatal(err)
				}
				o, err := svc.Create(ctx, b, id, orders.RequestKey{})
				if err != nil {
					t.Fatal(err)
				}
				placed = append(placed, o)
			}
			expired, paid, bannedOrder := placed[0], placed[1], placed[2]
			clock.Advance(orders.DefaultHold) // the deadlines have come

			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := bus.WaitConnected(wctx); err != nil {
				t.Fatal(err)
			}
			for _, ev := range []events.Event{
				events.StuffCreatedEvent{ID: fresh, Version: 1, Title: "fresh", Price: 100, UserID: seller},
				events.StuffUpdatedEvent{ID: old, Version: 2, Title: "v2", Price: 200, UserID: seller},
				events.ExpirationCompleteEvent{OrderID: expired.ID},
				events.PaymentCreatedEvent{ID: "pay", OrderID: paid.ID, Amount: 100, ProviderID: "pi_1"},
				events.UserBannedEvent{UserID: banned, At: time.Now()},
			} {
				if err := bus.PublishEvent(wctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			testkit.Eventually(t, 15*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(redelivered) == 5
			}, "not every event was redelivered and handled")

			for _, c := range []struct {
				id, title string
				version   int64
			}{{fresh, "fresh", 1}, {old, "v2", 2}} {
				var d struct {
					Title   string `bson:"title"`
					Version int64  `bson:"version"`
				}
				oid, _ := primitive.ObjectIDFromHex(c.id)
				err := db.Collection(store.StuffCollection).FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d)
				if err != nil || d.Title != c.title || d.Version != c.version {
					t.Fatalf("replica of %s: %+v (%v), want %s v%d", c.id, d, err, c.title, c.version)
				}
			}
			for _, c := range []struct {
				o      orders.Order
				status string
				events string
			}{
				{expired, orders.StatusCancelled, "[order:created order:cancelled]"},
				{paid, orders.StatusComplete, "[order:created order:completed]"},
				{bannedOrder, orders.StatusCancelled, "[order:created order:cancelled]"},
			} {
				var d struct {
					Status  string           `bson:"status"`
					Version int64            `bson:"version"`
					Outbox  []outbox.Pending `bson:"outbox"`
				}
				oid, _ := primitive.ObjectIDFromHex(c.o.ID)
				if err := db.Collection(store.OrdersCollection).FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
					t.Fatal(err)
				}
				var subjects []string
				for _, p := range d.Outbox {
					subjects = append(subjects, p.Subject)
				}
				if d.Status != c.status || d.Version != 2 || fmt.Sprint(subjects) != c.events {
					t.Fatalf("order %s v%d events %v, want %s v2 events %s", d.Status, d.Version, subjects, c.status, c.events)
				}
			}
		})
	}
}

// handler returns the Handle of the listener of subject.
func handler(t *testing.T, ls []events.Listener, subject events.Subject) func(context.Context, events.Msg) error {
	t.Helper()
	for _, l := range ls {
		if l.Subject == subject {
			return l.Handle
		}
	}
	t.Fatalf("no listener of %s", subject)
	return nil
}

// TestEventsAreCheckedAgainstTheOrder: a payment:created that cannot be a
// payment of its order is acked (handled: nil) without completing it; an
// expiration:complete before the order's deadline is not acked (it comes
// back) and cancels nothing. Matching events then end their orders.
func TestEventsAreCheckedAgainstTheOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	clock := testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	const hold = 15 * time.Minute
	svc := orders.NewService(store.New(db, mongox.NewWriter(), nopNotifier{}), orders.Options{Hold: hold, Now: clock.Now, IDs: store.NewID})
	ls := listeners.Listeners(svc, svc, svc, testkit.Logger(t))
	pay, expire := handler(t, ls, events.PaymentCreated), handler(t, ls, events.ExpirationComplete)
	seller := store.NewID()
	place := func(price int64) orders.Order {
		t.Helper()
		id := store.NewID()
		if err := svc.ApplyStuffCreated(ctx, orders.Stuff{ID: id, Version: 1, Title: "t", Price: price, Currency: "usd", SellerID: seller}); err != nil {
			t.Fatal(err)
		}
		o, err := svc.Create(ctx, store.NewID(), id, orders.RequestKey{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	msg := func(ev events.Event) events.Msg {
		t.Helper()
		b, err := events.Encode(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		return events.Msg{Subject: ev.Subject(), Data: b, Deliveries: 1}
	}
	status := func(id string) string {
		t.Helper()
		var d struct {
			Status string `bson:"status"`
		}
		oid, _ := primitive.ObjectIDFromHex(id)
		if err := db.Collection(store.OrdersCollection).FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d.Status
	}

	paid, free, partly, expired := place(500), place(500), place(500), place(500)
	for _, ev := range []events.PaymentCreatedEvent{
		{ID: "p1", OrderID: paid.ID, Amount: 501, ProviderID: "pi_1"},
		{ID: "p2", OrderID: paid.ID, Amount: 0, ProviderID: "pi_2"},
		{ID: "p3", OrderID: paid.ID, Amount: -1, ProviderID: "pi_3"},
		{ID: "p4", OrderID: paid.ID, Amount: 500, ProviderID: "coupon"},
	} {
		if err := pay(ctx, msg(ev)); err != nil {
			t.Fatalf("%+v: got %v, want it acked (nil)", ev, err)
		}
		if s := status(paid.ID); s != orders.StatusCreated {
			t.Fatalf("%+v made the order %s", ev, s)
		}
	}
	err := expire(ctx, msg(events.ExpirationCompleteEvent{OrderID: expired.ID}))
	if !errors.Is(err, events.ErrNotYet) {
		t.Fatalf("expiry before the deadline: got %v, want events.ErrNotYet", err)
	}
	if s := status(expired.ID); s != orders.StatusCreated {
		t.Fatalf("expiry before the deadline made the order %s", s)
	}

	for _, c := range []struct {
		ev   events.PaymentCreatedEvent
		name string
	}{
		{events.PaymentCreatedEvent{ID: "p5", OrderID: paid.ID, Amount: 500, ProviderID: "pi_5"}, "full price"},
		{events.PaymentCreatedEvent{ID: "p6", OrderID: free.ID, Amount: 0, ProviderID: "coupon"}, "free coupon"},
		{events.PaymentCreatedEvent{ID: "p7", OrderID: partly.ID, Amount: 250, ProviderID: "pi_7"}, "a coupon's part of the price"},
	} {
		if err := pay(ctx, msg(c.ev)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if s := status(c.ev.OrderID); s != orders.StatusComplete {
			t.Fatalf("%s: order %s, want complete", c.name, s)
		}
	}
	clock.Advance(hold)
	if err := expire(ctx, msg(events.ExpirationCompleteEvent{OrderID: expired.ID})); err != nil {
		t.Fatalf("expiry at the deadline: %v", err)
	}
	if s := status(expired.ID); s != orders.StatusCancelled {
		t.Fatalf("expiry at the deadline: order %s, want cancelled", s)
	}
}
