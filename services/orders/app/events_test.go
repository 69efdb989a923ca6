package app_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func stuffEvent(id string, version int64, title, seller string) events.StuffData {
	return events.StuffData{ID: id, Version: version, Title: title, Price: 100 * version, Currency: "usd", UserID: seller, Status: "available"}
}

// TestReplicaFollowsStuffEvents: versions apply in order whatever order
// they arrive in (an event ahead of the replica is not acked and comes
// back), and duplicates or stale versions change nothing.
func TestReplicaFollowsStuffEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seller := newID()
	a, b := newID(), newID()
	h.Peer.Publish(events.StuffCreatedEvent(stuffEvent(a, 1, "a1", seller)))
	h.Peer.Publish(events.StuffUpdatedEvent(stuffEvent(a, 3, "a3", seller))) // ahead: comes back
	h.Peer.Publish(events.StuffUpdatedEvent(stuffEvent(a, 2, "a2", seller)))
	h.Peer.Publish(events.StuffUpdatedEvent(stuffEvent(b, 2, "b2", seller))) // before its creation
	h.Peer.Publish(events.StuffCreatedEvent(stuffEvent(b, 1, "b1", seller)))
	h.waitReplica(a, 3)
	h.waitReplica(b, 2)
	if _, title := h.replicaVersion(a); title != "a3" {
		t.Fatalf("stuff a: title %q, want a3", title)
	}
	if _, title := h.replicaVersion(b); title != "b2" {
		t.Fatalf("stuff b: title %q, want b2", title)
	}

	// Redeliveries and stale versions change nothing: once the sentinel
	// update of b behind them on the same subject is applied, a is as it was.
	h.Peer.Publish(events.StuffCreatedEvent(stuffEvent(a, 1, "dup", seller)))
	h.Peer.Publish(events.StuffUpdatedEvent(stuffEvent(a, 2, "dup", seller)))
	h.Peer.Publish(events.StuffUpdatedEvent(stuffEvent(a, 3, "dup", seller)))
	h.Peer.Publish(events.StuffUpdatedEvent(stuffEvent(b, 3, "b3", seller)))
	h.waitReplica(b, 3)
	if v, title := h.replicaVersion(a); v != 3 || title != "a3" {
		t.Fatalf("stuff a after duplicates: v%d %q, want v3 a3", v, title)
	}
	h.Peer.Publish(events.StuffUpdatedEvent(stuffEvent(a, 4, "a4", seller)))
	h.waitReplica(a, 4)
	if _, title := h.replicaVersion(a); title != "a4" {
		t.Fatalf("stuff a: title %q, want a4", title)
	}

	o := h.buy(h.buyer(), a)
	if o.Stuff.Title != "a4" || o.Stuff.Price != 400 {
		t.Fatalf("order of the replica's latest version: %+v", o.Stuff)
	}
	if n, err := h.DB.Collection("parked_events").CountDocuments(context.Background(), bson.D{}); err != nil || n != 0 {
		t.Fatalf("%d good events parked (%v)", n, err)
	}
}

// TestPoisonMessagesAreParked: a payload that cannot decode, or can never
// apply, is parked in parked_events (at once, or once the retry budget is
// spent: 4 s here) and acked, so it does not loop forever.
func TestPoisonMessagesAreParked(t *testing.T) {
	t.Parallel()
	nc := testkit.NATS(t)
	nc.RetryFor = 4 * time.Second
	h := newHarness(t, testkit.OnNATS(nc))
	encode := func(ev events.Event) string {
		b, err := events.Encode(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ahead := newID()
	h.Peer.Publish(events.StuffCreatedEvent(stuffEvent(ahead, 1, "ahead", newID())))
	tests := []struct {
		name           string
		subject        events.Subject
		data           string
		wantDeliveries int // 0: more than one (retried with backoff, then parked)
	}{
		{"undecodable stuff:created", events.StuffCreated, `{"id":`, 1},
		{"undecodable stuff:updated", events.StuffUpdated, `[1,2]`, 1},
		{"undecodable payment:created", events.PaymentCreated, `not json`, 1},
		{"wrong type in expiration:complete", events.ExpirationComplete, `{"orderId":{"$ne":null}}`, 1},
		{"malformed stuff id", events.StuffCreated, `{"id":"zzz","version":1,"userId":"u"}`, 1},
		{"malformed order id", events.PaymentCreated, `{"id":"p","orderId":"42"}`, 1},
		{"expiry of an unknown order", events.ExpirationComplete, encode(events.ExpirationCompleteEvent{OrderID: newID()}), 0},
		{"payment of an unknown order", events.PaymentCreated, encode(events.PaymentCreatedEvent{ID: "p", OrderID: newID()}), 0},
		{"a version whose predecessor never comes", events.StuffUpdated, encode(events.StuffUpdatedEvent(stuffEvent(ahead, 3, "v3", newID()))), 0},
	}
	for _, tc := range tests {
		h.Peer.PublishRaw(tc.subject, []byte(tc.data))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testkit.Eventually(t, 30*time.Second, func() bool { return len(h.parked(t, tc.data)) > 0 }, "never parked")
			// Parking is at least once: a park slower than the ack wait
			// (FerretDB creating parked_events under load) is redelivered
			// and parked again. The first park is the one that counts.
			p := h.parked(t, tc.data)
			first := p[0]
			for _, d := range p {
				if d["subject"] != string(tc.subject) || d["sequence"] != first["sequence"] || d["error"] == "" {
					t.Fatalf("parked %v, want subject %s, one message", d, tc.subject)
				}
				if fmt.Sprint(d["deliveries"]) < fmt.Sprint(first["deliveries"]) {
					first = d
				}
			}
			switch d := fmt.Sprint(first["deliveries"]); {
			case tc.wantDeliveries == 0 && d == "1":
				t.Fatalf("parked at the first delivery; an event that waits must be retried first")
			case tc.wantDeliveries != 0 && d != fmt.Sprint(tc.wantDeliveries):
				t.Fatalf("parked after %v deliveries, want %d", first["deliveries"], tc.wantDeliveries)
			}
		})
	}
}

// TestOrderEndsByEvents: expiration:complete cancels, payment:created
// completes, each only while the order is created; redeliveries and late
// events change nothing; a payment of a cancelled order is left alone.
func TestOrderEndsByEvents(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	h := newHarnessWith(t, buildWith(func(c *app.Config) { c.Now = clock.Now }))
	seller := newID()
	ac, bc, other := h.buyer(), h.buyer(), h.buyer()
	stuffA, stuffB := h.list(seller, 111), h.list(seller, 222)
	oa, ob := h.buy(ac, stuffA), h.buy(bc, stuffB)
	// The sentinels of the late events, below.
	oc, od := h.buy(h.buyer(), h.list(seller, 1)), h.buy(h.buyer(), h.list(seller, 1))
	clock.Advance(orderHold) // the deadlines have come

	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: oa.ID})
	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: ob.ID, Amount: 222, ProviderID: "pi_1"})
	ca := h.wait(events.OrderCancelled, oa.ID)
	if ca.Version != 2 || ca.Stuff.ID != stuffA {
		t.Fatalf("order:cancelled = %+v", ca)
	}
	cb := h.wait(events.OrderCompleted, ob.ID)
	if cb.Version != 2 || cb.Stuff.ID != stuffB || cb.UserID != ob.UserID {
		t.Fatalf("order:completed = %+v", cb)
	}
	if o := h.order(ac, oa.ID); o.Status != "cancelled" || o.Version != 2 {
		t.Fatalf("expired order = %+v", o)
	}
	if o := h.order(bc, ob.ID); o.Status != "complete" || o.Version != 2 {
		t.Fatalf("paid order = %+v", o)
	}
	h.buy(other, stuffA)                                                                                // released
	h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+stuffB+`"}`, other).Want(http.StatusBadRequest) // sold
	h.do(http.MethodDelete, "/api/orders/"+ob.ID, "", bc).Want(http.StatusBadRequest)                   // paid

	// Redeliveries, a payment of the expired order, an expiry of the paid one.
	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: oa.ID})
	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: ob.ID, Amount: 222, ProviderID: "pi_1"})
	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: oa.ID, Amount: 111, ProviderID: "pi_2"})
	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: ob.ID})
	// Sentinels on both subjects: once applied, the above were handled.
	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: oc.ID})
	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: od.ID, Amount: 1, ProviderID: "pi_3"})
	h.wait(events.OrderCancelled, oc.ID)
	h.wait(events.OrderCompleted, od.ID)

	if n, m := len(h.seen(events.OrderCancelled, oa.ID)), len(h.seen(events.OrderCompleted, oa.ID)); n != 1 || m != 0 {
		t.Fatalf("expired order: %d order:cancelled, %d order:completed; want 1 and 0", n, m)
	}
	if n, m := len(h.seen(events.OrderCompleted, ob.ID)), len(h.seen(events.OrderCancelled, ob.ID)); n != 1 || m != 0 {
		t.Fatalf("paid order: %d order:completed, %d order:cancelled; want 1 and 0", n, m)
	}
	if o := h.order(ac, oa.ID); o.Status != "cancelled" || o.Version != 2 {
		t.Fatalf("expired order after late events = %+v", o)
	}
	if o := h.order(bc, ob.ID); o.Status != "complete" || o.Version != 2 {
		t.Fatalf("paid order after late events = %+v", o)
	}
	h.waitOutboxesEmpty()
	if n := len(h.seen(events.OrderCreated, oa.ID)); n != 1 {
		t.Fatalf("order:created of the expired order seen %d times, want once", n)
	}
}
