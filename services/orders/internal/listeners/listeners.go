// Package listeners holds the orders service's inbound events: the stuff
// replica (stuff:created, stuff:updated), the ends of an order
// (expiration:complete, payment:created) and bans (user:banned: the user's
// open orders are cancelled). Each listener decodes its payload,
// maps it to the orders domain's types, calls the domain and turns its
// errors into the bus's ack policy: nil acks, an event ahead of the local
// state is left unacked (events.ErrNotYet) so it comes back, a malformed one
// is parked at once (events.Permanent), and any other failure is
// redelivered, then parked after the bus's MaxDeliveries. Outbound events
// are published by the outbox relay, not here. docs/events.md lists every
// subject with its producer and consumers.
package listeners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/events"
)

// Group is the durable queue group of every listener: the service's name.
const Group = "orders"

// Replica is what the stuff listeners need: the orders domain's replica of
// stuff, fed in version order.
type Replica interface {
	ApplyStuffCreated(ctx context.Context, s orders.Stuff) error
	ApplyStuffUpdated(ctx context.Context, s orders.Stuff) error
}

// Ends is what the expiration and payment listeners need: the two ways an
// order ends on another service's word, each checked against the order
// (an expiry before its deadline waits; a payment that cannot be one of the
// order is refused).
type Ends interface {
	Expire(ctx context.Context, orderID string) error
	Complete(ctx context.Context, p orders.Payment) error
}

// Buyers is what the user:banned listener needs: ending a banned buyer's
// open orders.
type Buyers interface {
	CancelOrdersOf(ctx context.Context, userID string) (int, error)
}

// Listeners returns the service's listeners, to register on the bus before
// it starts.
func Listeners(replica Replica, ends Ends, buyers Buyers, log *slog.Logger) []events.Listener {
	return []events.Listener{
		{Subject: events.StuffCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.StuffCreatedEvent](m)
			if err != nil {
				return err
			}
			return policy(replica.ApplyStuffCreated(ctx, stuff(events.StuffData(ev))))
		}},
		{Subject: events.StuffUpdated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.StuffUpdatedEvent](m)
			if err != nil {
				return err
			}
			return policy(replica.ApplyStuffUpdated(ctx, stuff(events.StuffData(ev))))
		}},
		{Subject: events.ExpirationComplete, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.ExpirationCompleteEvent](m)
			if err != nil {
				return err
			}
			err = ends.Expire(ctx, ev.OrderID)
			if errors.Is(err, orders.ErrBeforeDeadline) {
				// Forged, or a clock far ahead: it comes back, and
				// applies once the deadline has passed.
				log.Warn("expiry before the order's deadline; not applied yet", "order_id", ev.OrderID, "err", err)
			}
			return policy(err)
		}},
		{Subject: events.PaymentCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.PaymentCreatedEvent](m)
			if err != nil {
				return err
			}
			err = ends.Complete(ctx, orders.Payment{ID: ev.ID, OrderID: ev.OrderID, Amount: ev.Amount, ProviderID: ev.ProviderID})
			if errors.Is(err, orders.ErrPaymentMismatch) {
				// Not a payment of this order (forged, or a bug): acked
				// and left alone. If money was taken, the order expires
				// and the payments service refunds it on order:cancelled.
				log.Warn("payment that does not match its order; ignored",
					"order_id", ev.OrderID, "payment_id", ev.ID, "amount", ev.Amount, "provider_id", ev.ProviderID, "err", err)
				return nil
			}
			if errors.Is(err, orders.ErrOutcomeTaken) {
				// The order was cancelled (or expired) first. The payments
				// service, which sees order:cancelled, refunds it.
				log.Info("payment for an order that already ended; left to the payments service to refund",
					"order_id", ev.OrderID, "payment_id", ev.ID, "err", err)
				return nil
			}
			return policy(err)
		}},
		// A queue listener, beside the shared broadcast one that refuses
		// the user's tokens in every replica: one replica cancels.
		{Subject: events.UserBanned, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.UserBannedEvent](m)
			if err != nil {
				return err
			}
			if ev.UserID == "" {
				return events.Permanent(errors.New("user:banned without a user id"))
			}
			n, err := buyers.CancelOrdersOf(ctx, ev.UserID)
			if n > 0 {
				log.Info("cancelled the open orders of a banned user", "user_id", ev.UserID, "count", n)
			}
			return policy(err)
		}},
	}
}

// stuff maps a stuff:created or stuff:updated payload to the replica's
// Stuff. Fields a payload may leave out get the stuff service's meaning of
// their absence: no status is available, or reserved when an order is
// named; no currency is usd.
func stuff(d events.StuffData) orders.Stuff {
	status := d.Status
	if status == "" {
		status = orders.StuffAvailable
		if d.OrderID != "" {
			status = orders.StuffReserved
		}
	}
	currency := d.Currency
	if currency == "" {
		currency = "usd"
	}
	return orders.Stuff{ID: d.ID, Title: d.Title, Price: d.Price, Currency: currency, SellerID: d.UserID,
		Status: status, OrderID: d.OrderID, Version: d.Version}
}

// policy maps the domain's errors to the bus's ack policy.
func policy(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, orders.ErrMalformedEvent):
		return events.Permanent(err)
	case errors.Is(err, orders.ErrEventAhead):
		return fmt.Errorf("%w: %w", events.ErrNotYet, err)
	}
	return err
}
