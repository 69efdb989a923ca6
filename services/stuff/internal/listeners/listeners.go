// Package listeners holds the stuff service's event listeners: the order
// events that reserve, release and sell a listing (a durable queue group:
// one replica applies each), and its own stuff events that keep every
// replica's catalog current (broadcast: every replica receives them). Each
// listener decodes the payload, maps it to the domain's types and calls the
// domain; docs/events.md lists every subject and its payload.
package listeners

import (
	"context"
	"errors"
	"fmt"

	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/events"
)

// Group is the queue group and durable name of the stuff service.
const Group = "stuff"

// Orders applies order events to listings. Each method is idempotent, and
// returns stuff.ErrNotYet (wrapped) for an event that must come back after
// another one.
type Orders interface {
	OrderCreated(ctx context.Context, o stuff.OrderRef) error
	OrderCancelled(ctx context.Context, o stuff.OrderRef) error
	OrderCompleted(ctx context.Context, o stuff.OrderRef) error
}

// Refresher brings a replica's read model up to a listing's version.
type Refresher interface {
	Refresh(ctx context.Context, id string, version int64) error
}

var errNoIDs = errors.New("event names no order or no stuff")

// Listeners returns every listener of the service. An order event without
// an order or stuff id is parked at once (it can never apply).
func Listeners(o Orders, r Refresher) []events.Listener {
	return []events.Listener{
		{Subject: events.OrderCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCreatedEvent](m)
			if err != nil {
				return err
			}
			return apply(ctx, o.OrderCreated, stuff.OrderRef{ID: ev.ID, BuyerID: ev.UserID, StuffID: ev.Stuff.ID, ExpiresAt: ev.ExpiresAt})
		}},
		{Subject: events.OrderCancelled, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCancelledEvent](m)
			if err != nil {
				return err
			}
			return apply(ctx, o.OrderCancelled, stuff.OrderRef{ID: ev.ID, StuffID: ev.Stuff.ID})
		}},
		{Subject: events.OrderCompleted, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCompletedEvent](m)
			if err != nil {
				return err
			}
			return apply(ctx, o.OrderCompleted, stuff.OrderRef{ID: ev.ID, BuyerID: ev.UserID, StuffID: ev.Stuff.ID})
		}},
		{Subject: events.StuffCreated, Group: Group, Broadcast: true, Handle: refresh[events.StuffCreatedEvent](r)},
		{Subject: events.StuffUpdated, Group: Group, Broadcast: true, Handle: refresh[events.StuffUpdatedEvent](r)},
	}
}

// apply hands order ref to the domain's fn. The domain's stuff.ErrNotYet
// becomes the bus's events.ErrNotYet: the message is not acked and comes
// back.
func apply(ctx context.Context, fn func(context.Context, stuff.OrderRef) error, ref stuff.OrderRef) error {
	if ref.ID == "" || ref.StuffID == "" {
		return events.Permanent(errNoIDs)
	}
	err := fn(ctx, ref)
	if errors.Is(err, stuff.ErrNotYet) {
		return fmt.Errorf("%w: %w", err, events.ErrNotYet)
	}
	return err
}

// refresh applies a stuff event of any replica to this replica's catalog.
func refresh[T interface {
	events.StuffCreatedEvent | events.StuffUpdatedEvent
	events.Event
}](r Refresher) events.Handler {
	return func(ctx context.Context, m events.Msg) error {
		ev, err := events.Decode[T](m)
		if err != nil {
			return err
		}
		d := events.StuffData(ev)
		if d.ID == "" {
			return events.Permanent(errors.New("stuff event without id"))
		}
		return r.Refresh(ctx, d.ID, d.Version)
	}
}
