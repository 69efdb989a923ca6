// Package listeners holds the stuff service's event listeners: the order
// events that reserve, release and sell a listing and the ban events that
// hide a seller's listings (durable queue groups: one replica applies and
// stores each), and its own stuff events and the ban events again that keep
// every replica's catalog current (broadcast: every replica receives them).
// Each listener decodes the payload, maps it to the domain's types and calls
// the domain; docs/events.md lists every subject and its payload.
package listeners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/events"
)

// Group is the queue group and durable name of the stuff service.
const Group = "stuff"

// CatalogGroup names the broadcast ban listeners of the catalog. A broadcast
// listener has no queue group; the name keeps its retries apart from those
// of the queue listener of the same subject.
const CatalogGroup = "stuff-catalog"

// BanReplay is how far back a replica's catalog replays the ban events each
// time it (re)subscribes: the bans published while it was away, before the
// queue listener stored them, still reach it.
const BanReplay = time.Hour

// Orders applies order events to listings. Each method is idempotent, and
// returns stuff.ErrNotYet (wrapped) for an event that must come back after
// another one.
type Orders interface {
	OrderCreated(ctx context.Context, o stuff.OrderRef) error
	OrderCancelled(ctx context.Context, o stuff.OrderRef) error
	OrderCompleted(ctx context.Context, o stuff.OrderRef) error
}

// Sellers stores bans and unbans (once, by one replica).
type Sellers interface {
	SellerBanned(ctx context.Context, userID string, at time.Time) error
	SellerUnbanned(ctx context.Context, userID string, at time.Time) error
}

// Domain is what the queue listeners call.
type Domain interface {
	Orders
	Sellers
}

// Refresher brings a replica's read model up to a listing's version.
type Refresher interface {
	Refresh(ctx context.Context, id string, version int64) error
}

// ReadModel is what the broadcast listeners call: this replica's catalog.
type ReadModel interface {
	Refresher
	ApplyBan(b stuff.Ban)
}

var errNoIDs = errors.New("event names no order or no stuff")

// Listeners returns every listener of the service. An order event without
// an order or stuff id, or a ban event without a user id, is parked at once
// (it can never apply). An order event that contradicts the listing's
// records (stuff.ErrMismatch: forged or corrupt) is acknowledged without
// being applied, with a warning on log.
func Listeners(o Domain, r ReadModel, log *slog.Logger) []events.Listener {
	return []events.Listener{
		{Subject: events.OrderCreated, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCreatedEvent](m)
			if err != nil {
				return err
			}
			ref := stuff.OrderRef{ID: ev.ID, Version: ev.Version, BuyerID: ev.UserID, StuffID: ev.Stuff.ID, Price: ev.Stuff.Price, ExpiresAt: ev.ExpiresAt}
			if ev.Status != events.OrderStatusCreated {
				return ignore(log, m, ref, fmt.Errorf("%w: order %s created with status %q", stuff.ErrMismatch, ev.ID, ev.Status))
			}
			return apply(ctx, log, m, o.OrderCreated, ref)
		}},
		{Subject: events.OrderCancelled, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCancelledEvent](m)
			if err != nil {
				return err
			}
			return apply(ctx, log, m, o.OrderCancelled, stuff.OrderRef{ID: ev.ID, Version: ev.Version, StuffID: ev.Stuff.ID})
		}},
		{Subject: events.OrderCompleted, Group: Group, Handle: func(ctx context.Context, m events.Msg) error {
			ev, err := events.Decode[events.OrderCompletedEvent](m)
			if err != nil {
				return err
			}
			return apply(ctx, log, m, o.OrderCompleted, stuff.OrderRef{ID: ev.ID, Version: ev.Version, BuyerID: ev.UserID, StuffID: ev.Stuff.ID, Price: ev.Stuff.Price})
		}},
		{Subject: events.UserBanned, Group: Group, Workers: 1, Handle: func(ctx context.Context, m events.Msg) error {
			id, at, err := banOf[events.UserBannedEvent](m)
			if err != nil {
				return err
			}
			return o.SellerBanned(ctx, id, at)
		}},
		{Subject: events.UserUnbanned, Group: Group, Workers: 1, Handle: func(ctx context.Context, m events.Msg) error {
			id, at, err := banOf[events.UserUnbannedEvent](m)
			if err != nil {
				return err
			}
			return o.SellerUnbanned(ctx, id, at)
		}},
		{Subject: events.StuffCreated, Group: Group, Broadcast: true, Handle: refresh[events.StuffCreatedEvent](r)},
		{Subject: events.StuffUpdated, Group: Group, Broadcast: true, Handle: refresh[events.StuffUpdatedEvent](r)},
		{Subject: events.UserBanned, Group: CatalogGroup, Broadcast: true, ReplayFor: BanReplay, Workers: 1,
			Handle: func(_ context.Context, m events.Msg) error {
				id, at, err := banOf[events.UserBannedEvent](m)
				if err != nil {
					return err
				}
				r.ApplyBan(stuff.Ban{UserID: id, BannedAt: at})
				return nil
			}},
		{Subject: events.UserUnbanned, Group: CatalogGroup, Broadcast: true, ReplayFor: BanReplay, Workers: 1,
			Handle: func(_ context.Context, m events.Msg) error {
				id, at, err := banOf[events.UserUnbannedEvent](m)
				if err != nil {
					return err
				}
				r.ApplyBan(stuff.Ban{UserID: id, UnbannedAt: at})
				return nil
			}},
	}
}

// banOf decodes a ban or unban event: the user and when (to the
// millisecond, as stored; when the event does not say, when NATS stored it,
// which is later than the change, so a ban is not undone by an earlier
// unban, nor the reverse).
func banOf[T interface {
	events.UserBannedEvent | events.UserUnbannedEvent
	events.Event
}](m events.Msg) (string, time.Time, error) {
	ev, err := events.Decode[T](m)
	if err != nil {
		return "", time.Time{}, err
	}
	b := events.UserBannedEvent(ev)
	if b.UserID == "" {
		return "", time.Time{}, events.Permanent(fmt.Errorf("%s without a user id", m.Subject))
	}
	at := b.At
	if at.IsZero() {
		at = m.Published
	}
	return b.UserID, at.UTC().Truncate(time.Millisecond), nil
}

// apply hands order ref of message m to the domain's fn. The domain's
// stuff.ErrNotYet becomes the bus's events.ErrNotYet: the message is not
// acked and comes back. stuff.ErrMismatch is ignored (see ignore).
func apply(ctx context.Context, log *slog.Logger, m events.Msg, fn func(context.Context, stuff.OrderRef) error, ref stuff.OrderRef) error {
	if ref.ID == "" || ref.StuffID == "" {
		return events.Permanent(errNoIDs)
	}
	err := fn(ctx, ref)
	switch {
	case errors.Is(err, stuff.ErrNotYet):
		return fmt.Errorf("%w: %w", err, events.ErrNotYet)
	case errors.Is(err, stuff.ErrMismatch):
		return ignore(log, m, ref, err)
	}
	return err
}

// ignore acknowledges message m, an order event that contradicts what the
// listing knows (err), without applying it, and logs a warning: it is
// forged or corrupt, and no retry or redelivery makes it true. It is not
// parked: whoever can publish forged events could fill the parked events.
func ignore(log *slog.Logger, m events.Msg, ref stuff.OrderRef, err error) error {
	log.Warn("order event ignored: it does not match the listing's records",
		"subject", string(m.Subject), "seq", m.Sequence, "order_id", ref.ID, "stuff_id", ref.StuffID, "buyer_id", ref.BuyerID, "err", err)
	return nil
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
