package stuff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Store keeps listings. Every write stores the change and its pending
// stuff:created / stuff:updated event in one single-document write (the
// outbox), so no event is lost when NATS is down.
type Store interface {
	// Insert stores a new listing with its stuff:created event and returns
	// it with its new ID. With a key, the ID is minted from the key and the
	// seller, and when that listing exists already (an earlier try of the
	// same request saved it) Insert returns it as it is now, saving
	// nothing.
	Insert(ctx context.Context, s Stuff, key *IdempotencyKey) (Stuff, error)
	// Update loads listing id, lets fn change it and saves it with a
	// stuff:updated event when its version grew, serialized with every
	// other write of that listing. fn may run more than once (when a
	// concurrent writer elsewhere won); changed=false saves nothing.
	// Unknown or malformed ids are errs.ErrNotFound; a change that would
	// publish while too many of the listing's events wait is ErrBacklog.
	Update(ctx context.Context, id string, fn func(s *Stuff) (changed bool, err error)) (Stuff, error)
	// ListByUser returns userID's listings, newest first.
	ListByUser(ctx context.Context, userID string) ([]Stuff, error)
}

// IdempotencyKey is the Idempotency-Key of a create request: the client's key and when
// its first try was claimed, the same for every try.
type IdempotencyKey struct {
	Key   string
	Since time.Time
}

// Observer learns every saved state of a listing and of a ban (the read
// model).
type Observer interface {
	Apply(s Stuff)
	ApplyBan(b Ban)
}

// Service holds the use cases of listings: what the HTTP handlers and the
// order- and ban-event listeners call.
type Service struct {
	store Store
	bans  BanStore
	obs   Observer
	now   func() time.Time
}

// NewService returns a Service saving listings to store and bans to bans,
// and telling obs about every saved state. now is the clock (time.Now when
// nil).
func NewService(store Store, bans BanStore, obs Observer, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, bans: bans, obs: obs, now: now}
}

// Create lists a new stuff of userID from a validated input and publishes
// stuff:created. A request that carries an Idempotency-Key (key, else nil)
// creates one listing however many times it is tried: a try after the
// listing was saved returns it.
func (sv *Service) Create(ctx context.Context, userID string, in Input, key *IdempotencyKey) (Stuff, error) {
	s, err := sv.store.Insert(ctx, New("", userID, in, sv.clock()), key)
	if err != nil {
		return Stuff{}, fmt.Errorf("create stuff: %w", err)
	}
	sv.obs.Apply(s)
	return s, nil
}

// Update applies the owner's validated edit and publishes stuff:updated. It
// returns errs.ErrNotFound, errs.ErrNotAuthorized (not the seller) or
// ErrReserved (held or sold).
func (sv *Service) Update(ctx context.Context, id, userID string, in Input) (Stuff, error) {
	s, err := sv.store.Update(ctx, id, func(s *Stuff) (bool, error) {
		return s.Edit(userID, in, sv.clock())
	})
	if err != nil {
		return Stuff{}, fmt.Errorf("update stuff %s: %w", id, err)
	}
	sv.obs.Apply(s)
	return s, nil
}

// Mine returns userID's listings in any status, newest first.
func (sv *Service) Mine(ctx context.Context, userID string) ([]Stuff, error) {
	ss, err := sv.store.ListByUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list stuff of %s: %w", userID, err)
	}
	return ss, nil
}

// OrderCreated reserves listing o.StuffID for order o (see
// Stuff.ApplyOrderCreated). It returns ErrNotYet (wrapped) when the event
// must come back later, including for a listing not found, and ErrMismatch
// (wrapped) for an event that contradicts the listing's records.
func (sv *Service) OrderCreated(ctx context.Context, o OrderRef) error {
	return sv.applyOrder(ctx, o.StuffID, func(s *Stuff) (bool, error) {
		return s.ApplyOrderCreated(o, sv.clock())
	})
}

// OrderCancelled releases listing o.StuffID if order o holds it (see
// Stuff.ApplyOrderCancelled). It returns ErrNotYet and ErrMismatch
// (wrapped) like OrderCreated.
func (sv *Service) OrderCancelled(ctx context.Context, o OrderRef) error {
	return sv.applyOrder(ctx, o.StuffID, func(s *Stuff) (bool, error) {
		return s.ApplyOrderCancelled(o, sv.clock())
	})
}

// OrderCompleted sells listing o.StuffID to order o's buyer (see
// Stuff.ApplyOrderCompleted). It returns ErrNotYet and ErrMismatch
// (wrapped) like OrderCreated.
func (sv *Service) OrderCompleted(ctx context.Context, o OrderRef) error {
	return sv.applyOrder(ctx, o.StuffID, func(s *Stuff) (bool, error) {
		return s.ApplyOrderCompleted(o, sv.clock())
	})
}

// clock is now in UTC to the millisecond: what MongoDB keeps, so a listing
// sorts and serializes the same before and after a round trip.
func (sv *Service) clock() time.Time { return sv.now().UTC().Truncate(time.Millisecond) }

func (sv *Service) applyOrder(ctx context.Context, id string, fn func(s *Stuff) (bool, error)) error {
	s, err := sv.store.Update(ctx, id, fn)
	if errors.Is(err, errs.ErrNotFound) {
		// Our own listing is written before any order can name it; a
		// missing one is a replica lagging, or garbage parked after the
		// last delivery.
		return fmt.Errorf("stuff %s not found: %w", id, ErrNotYet)
	}
	if err != nil {
		return fmt.Errorf("apply order event to stuff %s: %w", id, err)
	}
	sv.obs.Apply(s)
	return nil
}
