// Package listeners is the expiration service's inbound side of the bus: it
// schedules a deadline for every order:created and settles it on
// order:cancelled and order:completed. Each listener decodes its event's
// payload into the scheduler's own values (an order id, a deadline, an
// outcome); no event payload reaches the scheduler. The service publishes
// expiration:complete through the outbox of its store, not from here. The
// subjects and payloads are catalogued in docs/events.md.
package listeners

import (
	"context"
	"errors"
	"time"

	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/shared/events"
)

// Group is the durable queue group of the expiration service.
const Group = "expiration"

// Scheduler is the part of the domain the listeners drive
// (*scheduler.Scheduler).
type Scheduler interface {
	// Schedule persists and arms an order's deadline, once per order.
	Schedule(ctx context.Context, orderID string, expiresAt time.Time) error
	// Settle records that an order ended with outcome (one of the
	// scheduler's Outcome constants), so its deadline never fires.
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
