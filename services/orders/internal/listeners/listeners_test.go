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
			svc := orders.NewService(store.New(db, mongox.NewWriter(), nopNotifier{}), orders.Options{IDs: store.NewID})
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

			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := bus.WaitConnected(wctx); err != nil {
				t.Fatal(err)
			}
			for _, ev := range []events.Event{
				events.StuffCreatedEvent{ID: fresh, Version: 1, Title: "fresh", Price: 100, UserID: seller},
				events.StuffUpdatedEvent{ID: old, Version: 2, Title: "v2", Price: 200, UserID: seller},
				events.ExpirationCompleteEvent{OrderID: expired.ID},
				events.PaymentCreatedEvent{ID: "pay", OrderID: paid.ID, Amount: 100},
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
