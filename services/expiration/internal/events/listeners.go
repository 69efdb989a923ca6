// Package events is the expiration service's side of the event bus: it
// schedules a deadline for every order:created and settles it on
// order:cancelled and order:completed. The service publishes
// expiration:complete through the outbox of its store, not from here.
package events

import (
	"context"
	"errors"
	"time"

	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/shared/events"
)

// Group is the durable queue group of the expiration service.
const Group = "expiration"

// Scheduler is what the listeners drive.
type Scheduler interface {
	Schedule(ctx context.Context, orderID string, expiresAt time.Time) error
	Settle(ctx context.Context, orderID, outcome string) error
}

// Listeners returns the service's listeners. Each acks only after the
// deadline is persisted or settled; a payload that does not decode or lacks
// an order id or deadline is parked at once.
func Listeners(s Scheduler) []events.Listener {
	return []events.Listener{
		{Subject: events.OrderCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCreatedEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" || ev.ExpiresAt.IsZero() {
				return events.Permanent(errors.New("order:created without id or expiresAt"))
			}
			return s.Schedule(ctx, ev.ID, ev.ExpiresAt)
		}},
		{Subject: events.OrderCancelled, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCancelledEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" {
				return events.Permanent(errors.New("order:cancelled without id"))
			}
			return s.Settle(ctx, ev.ID, scheduler.OutcomeCancelled)
		}},
		{Subject: events.OrderCompleted, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCompletedEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" {
				return events.Permanent(errors.New("order:completed without id"))
			}
			return s.Settle(ctx, ev.ID, scheduler.OutcomeCompleted)
		}},
	}
}
