// Package events holds the payments service's listeners: they keep the
// order replica from order:created, order:cancelled and order:completed, in
// version order and idempotently, and trigger the refund of a payment whose
// order was cancelled. (payment:created is published through the outbox of
// the payment document, see package store.)
package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	sev "github.com/stuffmart/stuffmart/shared/events"
)

// Group is the durable queue group of the payments service.
const Group = "payments"

// Replica is what the listeners need from the payments domain.
type Replica interface {
	OrderCreated(ctx context.Context, o payments.Order) error
	OrderChanged(ctx context.Context, id string, version int64, status string) error
}

// Listeners returns the service's listeners over r.
func Listeners(r Replica) []sev.Listener {
	return []sev.Listener{
		{Subject: sev.OrderCreated, Group: Group, Handle: func(ctx context.Context, m sev.Msg) error {
			ev, err := sev.Decode[sev.OrderCreatedEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" || ev.UserID == "" {
				return sev.Permanent(fmt.Errorf("order:created without id or user: %s", m.Data))
			}
			return r.OrderCreated(ctx, payments.Order{
				ID: ev.ID, UserID: ev.UserID, Price: ev.Stuff.Price, Status: ev.Status, Version: ev.Version, ExpiresAt: ev.ExpiresAt,
			})
		}},
		{Subject: sev.OrderCancelled, Group: Group, Handle: func(ctx context.Context, m sev.Msg) error {
			ev, err := sev.Decode[sev.OrderCancelledEvent](m)
			if err != nil {
				return err
			}
			return changed(ctx, r, m, ev.ID, ev.Version, payments.StatusCancelled)
		}},
		{Subject: sev.OrderCompleted, Group: Group, Handle: func(ctx context.Context, m sev.Msg) error {
			ev, err := sev.Decode[sev.OrderCompletedEvent](m)
			if err != nil {
				return err
			}
			return changed(ctx, r, m, ev.ID, ev.Version, payments.StatusComplete)
		}},
	}
}

func changed(ctx context.Context, r Replica, m sev.Msg, id string, version int64, status string) error {
	if id == "" || version < 2 {
		return sev.Permanent(fmt.Errorf("%s without id or with version %d: %s", m.Subject, version, m.Data))
	}
	err := r.OrderChanged(ctx, id, version, status)
	if errors.Is(err, payments.ErrOutOfOrder) {
		return sev.ErrNotYet
	}
	return err
}
