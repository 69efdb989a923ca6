package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// TestOverdueOrdersAreCancelledWithoutExpiration: no expiration service
// runs here. An order still created ORDER_SWEEP past its deadline is
// cancelled by the orders service itself, with its order:cancelled, and its
// stuff can be bought again.
func TestOverdueOrdersAreCancelledWithoutExpiration(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	const sweep = 200 * time.Millisecond
	h := newHarnessWith(t, func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
		return app.New(ctx, app.Config{Service: cfg, OrderHold: orderHold, OrderSweep: sweep, Now: clock.Now}, log)
	})
	stuff := h.list(newID(), 600)
	c := h.buyer()
	o := h.buy(c, stuff)
	clock.Advance(orderHold + sweep + time.Second)
	ev := h.wait(events.OrderCancelled, o.ID)
	if ev.Version != 2 || ev.Stuff.ID != stuff {
		t.Fatalf("order:cancelled = %+v", ev)
	}
	if got := h.order(c, o.ID); got.Status != "cancelled" {
		t.Fatalf("order after the sweep: %+v", got)
	}
	h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+stuff+`"}`, h.buyer()).Want(http.StatusCreated)
}
