// Package listeners holds the payments service's event listeners: they keep
// the order replica from order:created, order:cancelled and order:completed,
// in version order and idempotently, and so trigger the refund of a payment
// whose order was cancelled. Each decodes its payload and maps it to domain
// values here; no event type reaches the domain. (payment:created is
// published through the outbox of the payment document, see package store.)
// docs/events.md lists every subject with its payload.
package listeners

import (
	"context"
	"errors"
	"fmt"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/events"
)

// Group is the durable queue group of the payments service.
const Group = "payments"

// Replica is what the listeners need from the payments domain
// (payments.Service).
type Replica interface {
	OrderCreated(ctx context.Context, o payments.Order) error
	OrderChanged(ctx context.Context, id string, version int64, status string) error
}

// Listeners returns the service's listeners over r.
func Listeners(r Replica) []events.Listener {
	return []events.Listener{
		{Subject: events.OrderCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCreatedEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" || ev.UserID == "" {
				return events.Permanent(fmt.Errorf("order:created without id or user: %s", m.Data))
			}
			return r.OrderCreated(ctx, payments.Order{
				ID: ev.ID, UserID: ev.UserID, Title: ev.Stuff.Title, Price: ev.Stuff.Price, Status: ev.Status, Version: ev.Version, ExpiresAt: ev.ExpiresAt,
			})
		}},
		{Subject: events.OrderCancelled, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCancelledEvent](m)
			if err != nil {
				return err
			}
			return changed(ctx, r, m, ev.ID, ev.Version, payments.StatusCancelled)
		}},
		{Subject: events.OrderCompleted, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCompletedEvent](m)
			if err != nil {
				return err
			}
			return changed(ctx, r, m, ev.ID, ev.Version, payments.StatusComplete)
		}},
	}
}

// changed applies a status change of an order. An event ahead of the
// replica is not acked (events.ErrNotYet), so it comes back after the
// earlier one.
func changed(ctx context.Context, r Replica, m events.Msg, id string, version int64, status string) error {
	if id == "" || version < 2 {
		return events.Permanent(fmt.Errorf("%s without id or with version %d: %s", m.Subject, version, m.Data))
	}
	err := r.OrderChanged(ctx, id, version, status)
	if errors.Is(err, payments.ErrOutOfOrder) {
		return events.ErrNotYet
	}
	return err
}
