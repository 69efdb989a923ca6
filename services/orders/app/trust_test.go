package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// TestPaymentMustMatchItsOrder: payment:created completes an order only if
// it can be a payment of what the order charges. A payment of more than the
// price, of nothing without a free coupon, or by coupon with money taken is
// ignored: the order stays payable, nothing is parked, and a matching payment
// (the full price, or a free coupon) then completes it.
func TestPaymentMustMatchItsOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seller := newID()
	c := h.buyer()
	o := h.buy(c, h.list(seller, 700))
	forged := []events.PaymentCreatedEvent{
		{ID: newID(), OrderID: o.ID, Amount: 70000, ProviderID: "pi_more"},
		{ID: newID(), OrderID: o.ID, Amount: 0, ProviderID: "pi_nothing"},
		{ID: newID(), OrderID: o.ID, Amount: -700, ProviderID: "pi_negative"},
		{ID: newID(), OrderID: o.ID, Amount: 700, ProviderID: "coupon"},
	}
	for _, ev := range forged {
		h.Peer.Publish(ev)
	}
	// Sentinel: once a payment published after them is applied, they were
	// handled.
	sentinel := h.buy(h.buyer(), h.list(seller, 100))
	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: sentinel.ID, Amount: 100, ProviderID: "pi_sentinel"})
	h.wait(events.OrderCompleted, sentinel.ID)
	if got := h.order(c, o.ID); got.Status != "created" || got.Version != 1 {
		t.Fatalf("order after payments that do not match it: %+v", got)
	}
	if got := h.seen(events.OrderCompleted, o.ID); len(got) != 0 {
		t.Fatalf("order:completed after payments that do not match: %+v", got)
	}

	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: o.ID, Amount: 700, ProviderID: "pi_real"})
	if ev := h.wait(events.OrderCompleted, o.ID); ev.Version != 2 || ev.Stuff.Price != 700 {
		t.Fatalf("order:completed = %+v", ev)
	}
	free := h.buy(c, h.list(seller, 300))
	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: free.ID, Amount: 0, ProviderID: "coupon"})
	h.wait(events.OrderCompleted, free.ID)
	for _, ev := range forged {
		b, err := events.Encode(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if p := h.parked(t, string(b)); len(p) != 0 {
			t.Fatalf("a payment that does not match was parked, not ignored: %v", p)
		}
	}
}

// TestExpiryBeforeTheDeadlineWaits: an expiration:complete that comes before
// the order's deadline (forged, or from a clock far ahead) does not cancel
// the order then: it is not acked, and comes back; once the deadline has
// passed, it cancels the order.
func TestExpiryBeforeTheDeadlineWaits(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	h := newHarnessWith(t, buildWith(func(c *app.Config) { c.Now = clock.Now }))
	seller := newID()
	due := h.buy(h.buyer(), h.list(seller, 100))
	clock.Advance(orderHold / 2)
	c := h.buyer()
	early := h.buy(c, h.list(seller, 200))
	clock.Advance(orderHold/2 + time.Second) // due is past its deadline, early is not

	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: early.ID})
	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: due.ID})
	h.wait(events.OrderCancelled, due.ID)
	if got := h.order(c, early.ID); got.Status != "created" {
		t.Fatalf("order expired %v before its deadline: %+v", early.ExpiresAt.Sub(clock.Now()), got)
	}

	clock.Advance(early.ExpiresAt.Sub(clock.Now()))
	if ev := h.wait(events.OrderCancelled, early.ID); ev.Version != 2 {
		t.Fatalf("order:cancelled = %+v", ev)
	}
}
