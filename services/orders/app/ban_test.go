package app_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/shared/events"
)

// status reads an order's status in the database (a banned buyer's cookie
// no longer reads it through the API).
func (h *harness) status(id string) string {
	h.tb.Helper()
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		h.tb.Fatal(err)
	}
	var d struct {
		Status string `bson:"status"`
	}
	if err := h.DB.Collection("orders").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		h.tb.Fatalf("read order %s: %v", id, err)
	}
	return d.Status
}

// TestBannedBuyersOpenOrdersAreCancelled: on user:banned, the orders the
// user placed that are still created are cancelled (order:cancelled, stuff
// released); their paid orders and everyone else's stay as they are.
func TestBannedBuyersOpenOrdersAreCancelled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seller := newID()
	banned, bc := h.User("")
	open1, open2 := h.buy(bc, h.list(seller, 100)), h.buy(bc, h.list(seller, 200))
	paid := h.buy(bc, h.list(seller, 300))
	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: paid.ID, Amount: 300, ProviderID: "pi_1"})
	h.wait(events.OrderCompleted, paid.ID)
	others := h.buy(h.buyer(), h.list(seller, 400))

	h.Peer.Publish(events.UserBannedEvent{UserID: banned.ID, At: time.Now()})
	for _, o := range []orderJSON{open1, open2} {
		if ev := h.wait(events.OrderCancelled, o.ID); ev.Version != 2 || ev.Stuff.ID != o.Stuff.ID {
			t.Fatalf("order:cancelled = %+v", ev)
		}
		if s := h.status(o.ID); s != "cancelled" {
			t.Fatalf("open order of the banned buyer is %s", s)
		}
		h.buy(h.buyer(), o.Stuff.ID) // released
	}
	if s := h.status(paid.ID); s != "complete" {
		t.Fatalf("paid order of the banned buyer is %s", s)
	}
	if s := h.status(others.ID); s != "created" {
		t.Fatalf("another buyer's order is %s", s)
	}
}
