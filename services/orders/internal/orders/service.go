package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Defaults of Options.
const (
	DefaultHold      = 15 * time.Minute
	DefaultStaleHold = time.Minute
)

// endTimeout bounds the writes that bring an order to its claimed outcome.
const endTimeout = 10 * time.Second

// Options configures a Service. The zero value of each field is a default.
type Options struct {
	// Hold is how long a new order holds its stuff (ORDER_HOLD).
	Hold time.Duration
	// StaleHold is how old a hold must be before a buyer who meets it checks
	// whether it is an orphan (its order never saved, or cancelled without
	// the hold being released because the process died in between) and
	// releases it. Far longer than any request.
	StaleHold time.Duration
	// Now is the clock; tests pin it.
	Now func() time.Time
	// IDs mints new order ids (the store's NewID).
	IDs func() string
}

// Service holds the orders rules.
type Service struct {
	store     Store
	hold      time.Duration
	staleHold time.Duration
	now       func() time.Time
	newID     func() string
}

// NewService returns a Service over store.
func NewService(store Store, opts Options) *Service {
	s := &Service{store: store, hold: opts.Hold, staleHold: opts.StaleHold, now: opts.Now, newID: opts.IDs}
	if s.hold <= 0 {
		s.hold = DefaultHold
	}
	if s.staleHold <= 0 {
		s.staleHold = DefaultStaleHold
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// ValidID reports whether id looks like an id this system mints (a MongoDB
// ObjectID in hex). Anything else is unknown: a 404 or a parked event.
func ValidID(id string) bool {
	if len(id) != 24 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Create places an order of stuffID for userID and holds the stuff for
// Options.Hold. It publishes order:created. Errors: ErrNotFound (unknown or
// malformed stuff id), ErrOwnStuff, ErrSold, ErrHeld.
//
// Who gets the stuff is decided by one atomic insert of its hold (keyed by the
// stuff id), never by reading first: of any number of concurrent buyers,
// exactly one insert succeeds.
func (s *Service) Create(ctx context.Context, userID, stuffID string) (Order, error) {
	if !ValidID(stuffID) {
		return Order{}, ErrNotFound
	}
	st, err := s.store.Stuff(ctx, stuffID)
	if err != nil {
		return Order{}, fmt.Errorf("load stuff %s: %w", stuffID, err)
	}
	if st.SellerID == userID {
		return Order{}, ErrOwnStuff
	}
	if st.Status == StuffSold {
		return Order{}, ErrSold
	}
	now := s.now()
	o := Order{
		ID:        s.newID(),
		UserID:    userID,
		Status:    StatusCreated,
		Stuff:     StuffRef{ID: st.ID, Title: st.Title, Price: st.Price, Currency: st.Currency},
		ExpiresAt: now.Add(s.hold),
		CreatedAt: now,
		Version:   1,
	}
	if err := s.claimHold(ctx, Hold{StuffID: st.ID, OrderID: o.ID, UserID: userID, CreatedAt: now}); err != nil {
		return Order{}, err
	}
	if err := s.store.InsertOrder(ctx, o, now); err != nil {
		return s.undoHold(ctx, o, err)
	}
	return o, nil
}

// undoHold releases the hold of an order whose insert failed, so that
// nothing is left half-written. An insert that failed ambiguously (a timeout
// after the server wrote it) is checked first: if the order is there, the
// purchase stands. If even that cannot be told, the hold stays, and the next
// buyer who meets it after StaleHold releases it (claimHold).
func (s *Service) undoHold(ctx context.Context, o Order, cause error) (Order, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	cause = fmt.Errorf("save order %s: %w", o.ID, cause)
	saved, err := s.store.Order(ctx, o.ID)
	switch {
	case err == nil:
		return saved, nil
	case !errors.Is(err, ErrNotFound):
		return Order{}, errors.Join(cause, fmt.Errorf("check order %s: %w", o.ID, err))
	}
	if err := s.store.ReleaseHold(ctx, o.Stuff.ID, o.ID); err != nil {
		return Order{}, errors.Join(cause, fmt.Errorf("release hold of stuff %s: %w", o.Stuff.ID, err))
	}
	return Order{}, cause
}

// claimHold inserts h. When the stuff is already held it answers ErrSold or
// ErrHeld, except for an orphan hold (see Options.StaleHold), which it
// releases before trying again.
func (s *Service) claimHold(ctx context.Context, h Hold) error {
	for attempt := 0; ; attempt++ {
		err := s.store.InsertHold(ctx, h)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrDuplicate) {
			return fmt.Errorf("hold stuff %s: %w", h.StuffID, err)
		}
		if attempt == 2 {
			return ErrHeld
		}
		cur, err := s.store.Hold(ctx, h.StuffID)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // released in between: try again
		case err != nil:
			return fmt.Errorf("read hold of stuff %s: %w", h.StuffID, err)
		case cur.Sold:
			return ErrSold
		case h.CreatedAt.Sub(cur.CreatedAt) < s.staleHold:
			return ErrHeld
		}
		orphan, err := s.orphan(ctx, cur)
		if err != nil {
			return err
		}
		if !orphan {
			return ErrHeld
		}
		if err := s.store.ReleaseHold(ctx, cur.StuffID, cur.OrderID); err != nil {
			return fmt.Errorf("release orphan hold of stuff %s: %w", cur.StuffID, err)
		}
	}
}

// orphan reports whether an old hold no longer stands for an order: the
// order was never saved, or was cancelled. A hold of a completed order stands
// (the stuff is sold): it is marked so, and ErrSold returned.
func (s *Service) orphan(ctx context.Context, h Hold) (bool, error) {
	o, err := s.store.Order(ctx, h.OrderID)
	switch {
	case errors.Is(err, ErrNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read order %s of hold: %w", h.OrderID, err)
	}
	switch o.Status {
	case StatusCancelled:
		return true, nil
	case StatusComplete:
		if err := s.store.MarkHoldSold(ctx, h.StuffID, h.OrderID); err != nil {
			return false, fmt.Errorf("mark hold of stuff %s sold: %w", h.StuffID, err)
		}
		return false, ErrSold
	}
	return false, nil
}

// Get returns the order id of userID. Errors: ErrNotFound (unknown or
// malformed id), errs.ErrNotAuthorized (someone else's order).
func (s *Service) Get(ctx context.Context, userID, id string) (Order, error) {
	if !ValidID(id) {
		return Order{}, ErrNotFound
	}
	o, err := s.store.Order(ctx, id)
	if err != nil {
		return Order{}, fmt.Errorf("load order %s: %w", id, err)
	}
	if o.UserID != userID {
		return Order{}, errs.ErrNotAuthorized
	}
	return o, nil
}

// List returns userID's orders, newest first, page by page (page from 1).
func (s *Service) List(ctx context.Context, userID string, page, limit int) ([]Order, error) {
	list, err := s.store.OrdersByUser(ctx, userID, (page-1)*limit, limit)
	if err != nil {
		return nil, fmt.Errorf("list orders of %s: %w", userID, err)
	}
	return list, nil
}

// Cancel cancels userID's order id, releases its stuff and publishes
// order:cancelled. Errors: those of Get, ErrNotCancellable when the order is
// not (or no longer) created, for instance because a payment completed it at
// the same moment.
func (s *Service) Cancel(ctx context.Context, userID, id string) error {
	o, err := s.Get(ctx, userID, id)
	if err != nil {
		return err
	}
	if o.Status != StatusCreated {
		return ErrNotCancellable
	}
	if _, err := s.end(ctx, o.ID, StatusCancelled); err != nil {
		if errors.Is(err, ErrOutcomeTaken) {
			return ErrNotCancellable
		}
		return err
	}
	return nil
}

// ErrOutcomeTaken says the order already ended the other way.
var ErrOutcomeTaken = errors.New("order already ended otherwise")

// Expire cancels order id because its hold deadline passed, unless it
// already ended. It is idempotent. Errors: ErrMalformedEvent, ErrEventAhead
// (unknown order).
func (s *Service) Expire(ctx context.Context, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: order id %q", ErrMalformedEvent, id)
	}
	_, err := s.end(ctx, id, StatusCancelled)
	if errors.Is(err, ErrOutcomeTaken) {
		return nil // paid in time: nothing to expire
	}
	return err
}

// Complete completes order id because it was paid, unless it already ended.
// It is idempotent. Errors: ErrMalformedEvent, ErrEventAhead (unknown order),
// ErrOutcomeTaken (the order was cancelled first: the payment is the
// payments service's to refund).
func (s *Service) Complete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: order id %q", ErrMalformedEvent, id)
	}
	_, err := s.end(ctx, id, StatusComplete)
	return err
}

// end brings order id to outcome (cancelled or complete). The outcome is
// decided by one atomic insert of a claim keyed by the order id: of a
// cancellation and a completion racing, exactly one claim is recorded and the
// other gets ErrOutcomeTaken. The winner then saves the order's new status
// and version with its event in one write, and releases the hold (cancelled)
// or marks it sold (complete). Every step is idempotent, so a redelivered
// event or a retried request finishes the work of one that died half-way.
func (s *Service) end(ctx context.Context, id, outcome string) (Order, error) {
	o, err := s.store.Order(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return Order{}, fmt.Errorf("%w: order %s is unknown", ErrEventAhead, id)
	case err != nil:
		return Order{}, fmt.Errorf("load order %s: %w", id, err)
	}
	if o.Status != StatusCreated && o.Status != outcome {
		return o, fmt.Errorf("%w: order %s is %s", ErrOutcomeTaken, id, o.Status)
	}
	now := s.now()
	won, err := s.store.ClaimOutcome(ctx, id, outcome, now)
	if err != nil {
		return Order{}, fmt.Errorf("claim outcome of order %s: %w", id, err)
	}
	if won != outcome {
		return o, fmt.Errorf("%w: order %s is %s", ErrOutcomeTaken, id, won)
	}
	// The outcome is decided: finish the work even if the caller goes away
	// (a cancel request dropped now would leave the order "created", its
	// stuff held and no event out until the deadline fires).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		o, err = s.store.UpdateOrder(ctx, id, now, func(o *Order) (bool, error) {
			switch o.Status {
			case outcome:
				return false, nil
			case StatusCreated:
			default:
				return false, fmt.Errorf("order %s is %s but its outcome is %s", o.ID, o.Status, outcome)
			}
			o.Status = outcome
			o.Version++
			return true, nil
		})
		if errors.Is(err, ErrStale) && attempt < 3 {
			continue
		}
		if err != nil {
			return Order{}, fmt.Errorf("end order %s as %s: %w", id, outcome, err)
		}
		break
	}
	if outcome == StatusComplete {
		err = s.store.MarkHoldSold(ctx, o.Stuff.ID, o.ID)
	} else {
		err = s.store.ReleaseHold(ctx, o.Stuff.ID, o.ID)
	}
	if err != nil {
		return Order{}, fmt.Errorf("%s order %s: update hold of stuff %s: %w", outcome, id, o.Stuff.ID, err)
	}
	return o, nil
}

// ApplyStuffCreated adds a listed stuff to the replica. A duplicate delivery
// changes nothing. Errors: ErrMalformedEvent.
func (s *Service) ApplyStuffCreated(ctx context.Context, st Stuff) error {
	if err := checkStuff(st); err != nil {
		return err
	}
	err := s.store.InsertStuff(ctx, st)
	if errors.Is(err, ErrDuplicate) {
		return nil // already have it (a redelivery, or a later version)
	}
	if err != nil {
		return fmt.Errorf("insert stuff %s: %w", st.ID, err)
	}
	return nil
}

// ApplyStuffUpdated applies version st.Version of a stuff to the replica if
// the replica is at the version just before. An older or equal version is a
// duplicate and changes nothing; a later one, or one of a stuff not in the
// replica yet, is ErrEventAhead: it must come back after the ones before it.
// Errors: ErrMalformedEvent, ErrEventAhead.
func (s *Service) ApplyStuffUpdated(ctx context.Context, st Stuff) error {
	if err := checkStuff(st); err != nil {
		return err
	}
	err := s.store.UpdateStuff(ctx, st.ID, func(cur *Stuff) (bool, error) {
		switch {
		case st.Version <= cur.Version:
			return false, nil
		case st.Version > cur.Version+1:
			return false, fmt.Errorf("%w: stuff %s version %d, replica at %d", ErrEventAhead, st.ID, st.Version, cur.Version)
		}
		*cur = st
		return true, nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: stuff %s not in the replica yet", ErrEventAhead, st.ID)
	case errors.Is(err, ErrStale):
		return fmt.Errorf("%w: stuff %s changed concurrently", ErrEventAhead, st.ID)
	case err != nil:
		return fmt.Errorf("update stuff %s: %w", st.ID, err)
	}
	return nil
}

// checkStuff refuses a stuff the replica can never hold: an id this system
// does not mint, no version, no seller.
func checkStuff(st Stuff) error {
	if !ValidID(st.ID) || st.Version < 1 || st.SellerID == "" {
		return fmt.Errorf("%w: stuff id %q version %d seller %q", ErrMalformedEvent, st.ID, st.Version, st.SellerID)
	}
	return nil
}
