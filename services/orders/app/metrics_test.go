package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// /metrics counts what each BUY got (the hold, a 409, the cap) and how
// orders end (paid, cancelled, expired), each order once: a redelivered
// payment or expiry counts nothing more.
func TestHoldAndEndingMetrics(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	h := newHarnessWith(t, buildWith(func(c *app.Config) {
		c.Now = clock.Now
		c.MaxOpenOrders = 1
	}))
	seller := newID()
	ann, bob := h.buyer(), h.buyer()
	notes, essay, book := h.list(seller, 500), h.list(seller, 600), h.list(seller, 700)

	paid := h.buy(ann, notes)
	h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+notes+`"}`, bob).Want(http.StatusConflict)
	h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+essay+`"}`, ann).Want(http.StatusBadRequest) // at the cap
	pay := events.PaymentCreatedEvent{ID: newID(), OrderID: paid.ID, Amount: 500, ProviderID: "pi_1"}
	h.Peer.Publish(pay)
	h.wait(events.OrderCompleted, paid.ID)

	cancelled := h.buy(ann, essay)
	h.do(http.MethodDelete, "/api/orders/"+cancelled.ID, "", ann).Want(http.StatusNoContent)
	expired := h.buy(bob, book)
	clock.Advance(orderHold + time.Second)
	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: expired.ID})
	h.wait(events.OrderCancelled, expired.ID)

	// Redeliveries end nothing again.
	h.Peer.Publish(pay)
	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: expired.ID})
	var got testkit.Metrics
	testkit.Eventually(t, 15*time.Second, func() bool {
		got = testkit.Scrape(t, h.URL+"/metrics")
		return got.Value("events_handled_total", "subject", "payment:created", "result", "acked") == 2 &&
			got.Value("events_handled_total", "subject", "expiration:complete", "result", "acked") == 2
	}, "the redeliveries were not handled")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"orders_holds_total", []string{"result", "taken"}, 3},
		{"orders_holds_total", []string{"result", "refused"}, 1},
		{"orders_holds_total", []string{"result", "too_many_open"}, 1},
		{"orders_ended_total", []string{"outcome", "completed"}, 1},
		{"orders_ended_total", []string{"outcome", "cancelled"}, 1},
		{"orders_ended_total", []string{"outcome", "expired"}, 1},
		{"http_requests_total", []string{"route", "/api/orders", "method", "POST", "status", "409"}, 1},
	} {
		if v := got.Value(c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}
