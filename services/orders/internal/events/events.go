// Package events holds the orders service's listeners: the stuff replica
// (stuff:created, stuff:updated) and the ends of an order
// (expiration:complete, payment:created). Each decodes its payload, calls the
// orders rules and turns their errors into the bus's ack policy: nil acks,
// an event ahead of the local state is left unacked (ErrNotYet) so it comes
// back, a malformed one is parked at once (Permanent), and any other failure
// is redelivered, then parked after the bus's MaxDeliveries. Outbound events
// are published by the outbox relay, not here.
package events

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

// Service is what the listeners need from the orders rules.
type Service interface {
	ApplyStuffCreated(ctx context.Context, d events.StuffData) error
	ApplyStuffUpdated(ctx context.Context, d events.StuffData) error
	Expire(ctx context.Context, orderID string) error
	Complete(ctx context.Context, orderID string) error
}

// Listeners returns the service's listeners, to register on the bus before
// it starts.
func Listeners(svc Service, log *slog.Logger) []events.Listener {
	return []events.Listener{
		{Subject: events.StuffCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.StuffCreatedEvent](m)
			if err != nil {
				return err
			}
			return policy(svc.ApplyStuffCreated(ctx, events.StuffData(ev)))
		}},
		{Subject: events.StuffUpdated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.StuffUpdatedEvent](m)
			if err != nil {
				return err
			}
			return policy(svc.ApplyStuffUpdated(ctx, events.StuffData(ev)))
		}},
		{Subject: events.ExpirationComplete, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.ExpirationCompleteEvent](m)
			if err != nil {
				return err
			}
			return policy(svc.Expire(ctx, ev.OrderID))
		}},
		{Subject: events.PaymentCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.PaymentCreatedEvent](m)
			if err != nil {
				return err
			}
			err = svc.Complete(ctx, ev.OrderID)
			if errors.Is(err, orders.ErrOutcomeTaken) {
				// The order was cancelled (or expired) first. The payments
				// service, which sees order:cancelled, refunds it.
				log.Info("payment for an order that already ended; left to the payments service to refund",
					"order_id", ev.OrderID, "payment_id", ev.ID, "err", err)
				return nil
			}
			return policy(err)
		}},
	}
}

// policy maps the rules' errors to the bus's ack policy.
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
