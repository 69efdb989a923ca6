// Package events holds the stuff service's listeners: the order events that
// reserve, release and sell a listing (a durable queue group: one replica
// applies each), and its own stuff events that keep every replica's catalog
// current (broadcast: every replica receives them).
package events

import (
	"context"
	"errors"

	sharedevents "github.com/stuffmart/stuffmart/shared/events"
)

// Group is the queue group and durable name of the stuff service.
const Group = "stuff"

// Orders applies order events to listings. Each method is idempotent, and
// returns sharedevents.ErrNotYet (wrapped) for an event that must come back
// after another one.
type Orders interface {
	OrderCreated(ctx context.Context, ev sharedevents.OrderCreatedEvent) error
	OrderCancelled(ctx context.Context, ev sharedevents.OrderCancelledEvent) error
	OrderCompleted(ctx context.Context, ev sharedevents.OrderCompletedEvent) error
}

// Refresher brings a replica's read model up to a listing's version.
type Refresher interface {
	Refresh(ctx context.Context, id string, version int64) error
}

var errNoIDs = errors.New("event names no order or no stuff")

// Listeners returns every listener of the service.
func Listeners(o Orders, r Refresher) []sharedevents.Listener {
	return []sharedevents.Listener{
		{Subject: sharedevents.OrderCreated, Group: Group, Handle: func(ctx context.Context, m sharedevents.Msg) error {
			ev, err := sharedevents.Decode[sharedevents.OrderCreatedEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" || ev.Stuff.ID == "" {
				return sharedevents.Permanent(errNoIDs)
			}
			return o.OrderCreated(ctx, ev)
		}},
		{Subject: sharedevents.OrderCancelled, Group: Group, Handle: func(ctx context.Context, m sharedevents.Msg) error {
			ev, err := sharedevents.Decode[sharedevents.OrderCancelledEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" || ev.Stuff.ID == "" {
				return sharedevents.Permanent(errNoIDs)
			}
			return o.OrderCancelled(ctx, ev)
		}},
		{Subject: sharedevents.OrderCompleted, Group: Group, Handle: func(ctx context.Context, m sharedevents.Msg) error {
			ev, err := sharedevents.Decode[sharedevents.OrderCompletedEvent](m)
			if err != nil {
				return err
			}
			if ev.ID == "" || ev.Stuff.ID == "" {
				return sharedevents.Permanent(errNoIDs)
			}
			return o.OrderCompleted(ctx, ev)
		}},
		{Subject: sharedevents.StuffCreated, Group: Group, Broadcast: true, Handle: refresh[sharedevents.StuffCreatedEvent](r)},
		{Subject: sharedevents.StuffUpdated, Group: Group, Broadcast: true, Handle: refresh[sharedevents.StuffUpdatedEvent](r)},
	}
}

// refresh applies a stuff event of any replica to this replica's catalog.
func refresh[T interface {
	sharedevents.StuffCreatedEvent | sharedevents.StuffUpdatedEvent
	sharedevents.Event
}](r Refresher) sharedevents.Handler {
	return func(ctx context.Context, m sharedevents.Msg) error {
		ev, err := sharedevents.Decode[T](m)
		if err != nil {
			return err
		}
		d := sharedevents.StuffData(ev)
		if d.ID == "" {
			return sharedevents.Permanent(errors.New("stuff event without id"))
		}
		return r.Refresh(ctx, d.ID, d.Version)
	}
}
