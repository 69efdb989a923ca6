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
	DefaultSweep     = 30 * time.Second
	DefaultMaxOpen   = 3
)

// ExpiryLeeway is how long before an order's deadline (by this service's
// clock) an expiry is taken as due: the expiration service fires at the
// deadline by its own clock, which may run a little ahead.
const ExpiryLeeway = time.Second

// OutcomeRetention is how long an outcome claim is kept once its order shows
// the outcome (see PruneOutcomes).
const OutcomeRetention = 24 * time.Hour

// endTimeout bounds the writes that bring an order to its claimed outcome.
const endTimeout = 10 * time.Second

// Options configures a Service. The zero value of each field is a default.
type Options struct {
	// Hold is how long a new order holds its stuff (ORDER_HOLD).
	Hold time.Duration
	// StaleHold is how old a hold must be before a buyer who meets it checks
	// whether it is an orphan (its order never saved, or cancelled without
	// the hold being released because the process died in between) and
	// releases it. Far longer than any request. A slot whose order was
	// never saved is an orphan after as long.
	StaleHold time.Duration
	// MaxOpen is how many orders waiting for payment (created) one buyer
	// may have at once (MAX_OPEN_ORDERS): the number of their Slots.
	MaxOpen int
	// Sweep is how long past its deadline an order still created is
	// cancelled by CancelOverdue (ORDER_SWEEP).
	Sweep time.Duration
	// Now is the clock; tests pin it.
	Now func() time.Time
	// IDs mints new order ids (the store's NewID).
	IDs func() string
	// DerivedIDs mints the order id of a request with a RequestKey from
	// the key's Since and parts (the store's DerivedID): every try of the
	// request gets the same id. Without it, requests with a key fail.
	DerivedIDs func(since time.Time, parts ...string) string
	// Metrics counts the holds BUY takes or is refused and the orders that
	// end; nil counts nothing.
	Metrics Metrics
}

// Service holds the orders rules.
type Service struct {
	store     Store
	hold      time.Duration
	staleHold time.Duration
	sweep     time.Duration
	maxOpen   int
	now       func() time.Time
	newID     func() string
	derivedID func(since time.Time, parts ...string) string
	metrics   Metrics
}

// NewService returns a Service over store.
func NewService(store Store, opts Options) *Service {
	s := &Service{store: store, hold: opts.Hold, staleHold: opts.StaleHold, sweep: opts.Sweep, maxOpen: opts.MaxOpen, now: opts.Now, newID: opts.IDs, derivedID: opts.DerivedIDs, metrics: opts.Metrics}
	if s.hold <= 0 {
		s.hold = DefaultHold
	}
	if s.staleHold <= 0 {
		s.staleHold = DefaultStaleHold
	}
	if s.sweep <= 0 {
		s.sweep = DefaultSweep
	}
	if s.maxOpen <= 0 {
		s.maxOpen = DefaultMaxOpen
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = uncounted{}
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
// malformed stuff id), ErrOwnStuff, ErrSold, ErrTooManyOpen (the buyer has
// Options.MaxOpen orders waiting for payment), ErrHeld.
//
// Who gets the stuff is decided by one atomic insert of its hold (keyed by the
// stuff id), never by reading first: of any number of concurrent buyers,
// exactly one insert succeeds. Whether the buyer may place one more order is
// decided the same way, by the insert of one of their slots (claimSlot),
// once the hold is won: the buyers who lose the stuff write nothing more
// (200 buyers racing for one stuff cost one slot, not 200 taken and given
// back). A buyer visibly at the cap is refused before the hold, by reads
// alone (atCap), so that clicking BUY again and again never holds a stuff,
// even for a moment. A step that fails gives back what the steps before it
// took (the hold, the slot), so a refused BUY holds nothing.
//
// With a key (a request that its client may send again), the order id is
// derived from it: a try after one that died without answering finds what
// the first try made (its order, as it is now, or its hold and slot, to
// which it adds the order) instead of meeting its own hold (ErrHeld) or slot
// (ErrTooManyOpen) or placing a second order.
//
// Each BUY that took the hold, or was refused because another order holds
// the stuff or the buyer is at the cap, is counted in Options.Metrics (a
// try that finds its first try's order is not counted again).
func (s *Service) Create(ctx context.Context, userID, stuffID string, key RequestKey) (Order, error) {
	if !ValidID(stuffID) {
		return Order{}, ErrNotFound
	}
	id := s.newID()
	if key.Key != "" {
		prev, derived, err := s.firstTry(ctx, userID, stuffID, key)
		if err != nil || prev.ID != "" {
			return prev, err
		}
		id = derived
	}
	o, err := s.create(ctx, id, userID, stuffID)
	switch {
	case err == nil:
		s.metrics.Hold(HoldTaken)
	case errors.Is(err, ErrHeld):
		s.metrics.Hold(HoldRefused)
	case errors.Is(err, ErrTooManyOpen):
		s.metrics.Hold(HoldTooManyOpen)
	}
	return o, err
}

// create places order id (see Create).
func (s *Service) create(ctx context.Context, id, userID, stuffID string) (Order, error) {
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
		ID:        id,
		UserID:    userID,
		Status:    StatusCreated,
		Stuff:     StuffRef{ID: st.ID, Title: st.Title, Price: st.Price, Currency: st.Currency},
		ExpiresAt: now.Add(s.hold),
		CreatedAt: now,
		Version:   1,
	}
	full, err := s.atCap(ctx, userID, o.ID, now)
	if err != nil {
		return Order{}, err
	}
	if full {
		return Order{}, tooManyOpen(s.maxOpen)
	}
	if err := s.claimHold(ctx, Hold{StuffID: st.ID, OrderID: o.ID, UserID: userID, CreatedAt: now}); err != nil {
		return Order{}, err
	}
	n, err := s.claimSlot(ctx, Slot{UserID: userID, OrderID: o.ID, CreatedAt: now})
	if err != nil {
		return Order{}, s.giveBackHold(ctx, o, err)
	}
	o.Slot = n
	if err := s.store.InsertOrder(ctx, o, now); err != nil {
		saved, err := s.undo(ctx, o, err)
		if err != nil {
			return Order{}, err
		}
		o = saved
	}
	return s.confirm(ctx, o)
}

// firstTry mints the order id of a request with key and returns the order
// an earlier try of the request placed with it, if there is one (prev.ID
// empty if not).
func (s *Service) firstTry(ctx context.Context, userID, stuffID string, key RequestKey) (prev Order, id string, err error) {
	if s.derivedID == nil {
		return Order{}, "", errors.New("a request with an Idempotency-Key, but no DerivedIDs to mint its order id")
	}
	id = s.derivedID(key.Since, userID, key.Key)
	prev, err = s.store.Order(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return Order{}, id, nil
	case err != nil:
		return Order{}, "", fmt.Errorf("load order %s: %w", id, err)
	case prev.UserID != userID || prev.Stuff.ID != stuffID:
		return Order{}, "", fmt.Errorf("order %s, minted for user %s and stuff %s, is another's", id, userID, stuffID)
	}
	return prev, id, nil
}

// confirm answers an order just saved only if it still holds its slot and
// its stuff. An insert slower than StaleHold lets another request find the
// slot or the hold without an order, release it as an orphan and take it;
// the order saved after that would be one too many of its buyer's, or
// payable without a stuff. It is cancelled instead, and its buyer told the
// stuff is held (or that they have too many orders). Each check runs under
// the lock of what it checks, as the release of an orphan does: once
// confirmed, the order is no orphan to anyone.
func (s *Service) confirm(ctx context.Context, o Order) (Order, error) {
	var slotHeld, stuffHeld bool
	err := s.store.LockSlot(ctx, o.UserID, o.Slot, func(ctx context.Context) error {
		var err error
		slotHeld, err = s.holdsSlot(ctx, o)
		return err
	})
	if err != nil {
		return Order{}, fmt.Errorf("check slot of order %s: %w", o.ID, err)
	}
	if slotHeld {
		err = s.store.LockHold(ctx, o.Stuff.ID, func(ctx context.Context) error {
			var err error
			stuffHeld, err = s.holdsStuff(ctx, o)
			return err
		})
		if err != nil {
			return Order{}, fmt.Errorf("check hold of order %s: %w", o.ID, err)
		}
	}
	if slotHeld && stuffHeld {
		return o, nil
	}
	if _, err := s.end(ctx, o.ID, EndCancelled, nil); err != nil && !errors.Is(err, ErrOutcomeTaken) {
		return Order{}, fmt.Errorf("cancel order %s, which lost its slot or its stuff: %w", o.ID, err)
	}
	if !slotHeld {
		return Order{}, tooManyOpen(s.maxOpen)
	}
	return Order{}, ErrHeld
}

// holdsSlot reports whether o holds its slot. Call it under LockSlot.
func (s *Service) holdsSlot(ctx context.Context, o Order) (bool, error) {
	sl, err := s.store.Slot(ctx, o.UserID, o.Slot)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return sl.OrderID == o.ID, nil
}

// claimSlot takes a slot of sl.UserID for order sl.OrderID and returns its
// number: the first of 0 … MaxOpen-1 that its insert gets, or that it takes
// back (reclaimSlot). When every slot stands for another order waiting for
// payment, the buyer is at the cap: tooManyOpen. Each step reads or writes
// one document by its _id (the slot, the order it names), never a count of
// the buyer's orders, which concurrent BUYs would all read below the cap.
func (s *Service) claimSlot(ctx context.Context, sl Slot) (int, error) {
	for n := range s.maxOpen {
		sl.N = n
		err := s.store.InsertSlot(ctx, sl)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, ErrDuplicate) {
			return 0, fmt.Errorf("take slot %d of %s: %w", n, sl.UserID, err)
		}
		claimed, err := s.reclaimSlot(ctx, sl)
		if err != nil {
			return 0, err
		}
		if claimed {
			return n, nil
		}
	}
	return 0, tooManyOpen(s.maxOpen)
}

// reclaimSlot takes slot sl.N for sl.OrderID if it was released meanwhile,
// already is that order's (an earlier try of the same request took it), or
// is an orphan (slotOrphan), which it releases first; it reports whether it
// took it. It reads, decides and writes under the slot's lock, so that the
// order the slot names is not confirmed (Create) in between.
func (s *Service) reclaimSlot(ctx context.Context, sl Slot) (claimed bool, err error) {
	err = s.store.LockSlot(ctx, sl.UserID, sl.N, func(ctx context.Context) error {
		cur, err := s.store.Slot(ctx, sl.UserID, sl.N)
		switch {
		case errors.Is(err, ErrNotFound): // released meanwhile
		case err != nil:
			return fmt.Errorf("read slot %d of %s: %w", sl.N, sl.UserID, err)
		case cur.OrderID == sl.OrderID:
			claimed = true
			return nil
		default:
			orphan, err := s.slotOrphan(ctx, cur, sl.CreatedAt)
			if err != nil || !orphan {
				return err
			}
			if err := s.store.ReleaseSlot(ctx, cur.UserID, cur.N, cur.OrderID); err != nil {
				return fmt.Errorf("release orphan slot %d of %s: %w", cur.N, cur.UserID, err)
			}
		}
		err = s.store.InsertSlot(ctx, sl)
		switch {
		case err == nil:
			claimed = true
		case !errors.Is(err, ErrDuplicate): // another request's insert won: not an error
			return fmt.Errorf("take slot %d of %s: %w", sl.N, sl.UserID, err)
		}
		return nil
	})
	return claimed, err
}

// slotOrphan reports whether slot sl no longer stands for an order waiting
// for payment, at now: its order ended (a process died before releasing
// the slot), holds another slot (an earlier try of its request took this
// one and died before saving the order), or was never saved and the slot is
// StaleHold old (a younger one may be a request's still under way).
func (s *Service) slotOrphan(ctx context.Context, sl Slot, now time.Time) (bool, error) {
	o, err := s.store.Order(ctx, sl.OrderID)
	switch {
	case errors.Is(err, ErrNotFound):
		return now.Sub(sl.CreatedAt) >= s.staleHold, nil
	case err != nil:
		return false, fmt.Errorf("read order %s of slot %d of %s: %w", sl.OrderID, sl.N, sl.UserID, err)
	}
	return o.Status != StatusCreated || o.Slot != sl.N, nil
}

// atCap reports whether every slot of userID stands for an order waiting
// for payment other than orderID (an earlier try of the same request may
// have taken one), as read at now (slotOrphan). It only reads, by _id, and
// may be wrong the moment after: claimSlot decides; this only spares a
// buyer at the cap the hold they would take and give back.
func (s *Service) atCap(ctx context.Context, userID, orderID string, now time.Time) (bool, error) {
	for n := range s.maxOpen {
		sl, err := s.store.Slot(ctx, userID, n)
		switch {
		case errors.Is(err, ErrNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("read slot %d of %s: %w", n, userID, err)
		case sl.OrderID == orderID:
			return false, nil
		}
		orphan, err := s.slotOrphan(ctx, sl, now)
		if err != nil || orphan {
			return false, err
		}
	}
	return true, nil
}

// giveBackHold releases the hold of order o, which will not be saved
// because a step of its creation failed with cause, and returns cause. If
// the release fails too, so does the request (a 500, logged): the hold stays
// until a buyer finds it an orphan (claimHold).
func (s *Service) giveBackHold(ctx context.Context, o Order, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseHold(ctx, o.Stuff.ID, o.ID); err != nil {
		return fmt.Errorf("give back hold of stuff %s after %v: %w", o.Stuff.ID, cause, err)
	}
	return cause
}

// giveBackSlot releases the slot of order o, which will not be saved
// because a step of its creation failed with cause, and returns cause. If
// the release fails too, so does the request (a 500, logged): the slot
// stays until it is found an orphan (claimSlot, FreeSlots).
func (s *Service) giveBackSlot(ctx context.Context, o Order, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseSlot(ctx, o.UserID, o.Slot, o.ID); err != nil {
		return fmt.Errorf("give back slot %d of %s after %v: %w", o.Slot, o.UserID, cause, err)
	}
	return cause
}

// holdsStuff reports whether o holds its stuff. Call it under LockHold.
func (s *Service) holdsStuff(ctx context.Context, o Order) (bool, error) {
	h, err := s.store.Hold(ctx, o.Stuff.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return h.OrderID == o.ID, nil
}

// undo releases the hold and the slot of an order whose insert failed, so
// that nothing is left half-written. An insert that failed ambiguously (a
// timeout after the server wrote it) is checked first: if the order is
// there, the purchase stands and the order is returned. If even that cannot
// be told, the hold and the slot stay, and whoever meets them after
// StaleHold releases them (claimHold, claimSlot). The check and the release
// of the hold are one step under the hold's lock.
func (s *Service) undo(ctx context.Context, o Order, cause error) (Order, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	cause = fmt.Errorf("save order %s: %w", o.ID, cause)
	var saved Order
	err := s.store.LockHold(ctx, o.Stuff.ID, func(ctx context.Context) error {
		var err error
		saved, err = s.store.Order(ctx, o.ID)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("check order %s: %w", o.ID, err)
		}
		if err := s.store.ReleaseHold(ctx, o.Stuff.ID, o.ID); err != nil {
			return fmt.Errorf("release hold of stuff %s: %w", o.Stuff.ID, err)
		}
		return cause
	})
	if errors.Is(err, cause) {
		return Order{}, s.giveBackSlot(ctx, o, cause)
	}
	if err != nil {
		return Order{}, errors.Join(cause, err)
	}
	return saved, nil
}

// claimHold inserts h. When the stuff is already held it answers ErrSold or
// ErrHeld, except for an orphan hold (see Options.StaleHold), which it
// releases and claims again (reclaim).
func (s *Service) claimHold(ctx context.Context, h Hold) error {
	for attempt := 0; attempt < 3; attempt++ {
		err := s.store.InsertHold(ctx, h)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrDuplicate) {
			return fmt.Errorf("hold stuff %s: %w", h.StuffID, err)
		}
		cur, err := s.store.Hold(ctx, h.StuffID)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // released in between: try again
		case err != nil:
			return fmt.Errorf("read hold of stuff %s: %w", h.StuffID, err)
		case cur.OrderID == h.OrderID:
			return nil // the first try of this request (same key) holds it
		case cur.Sold:
			return ErrSold
		case h.CreatedAt.Sub(cur.CreatedAt) < s.staleHold:
			return ErrHeld
		}
		claimed, err := s.reclaim(ctx, h)
		if err != nil || claimed {
			return err
		}
	}
	return ErrHeld
}

// reclaim releases the hold of h's stuff if it no longer stands for an order
// (see orphan) and claims it for h, reporting whether it did; not claimed and
// no error means the hold changed meanwhile (try again). It reads the hold,
// decides and writes under the hold's lock, so that the order the hold
// names is not confirmed (Create) or completed (Complete) in between, nor
// its failed insert undone (undo).
func (s *Service) reclaim(ctx context.Context, h Hold) (claimed bool, err error) {
	err = s.store.LockHold(ctx, h.StuffID, func(ctx context.Context) error {
		cur, err := s.store.Hold(ctx, h.StuffID)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil // released meanwhile
		case err != nil:
			return fmt.Errorf("read hold of stuff %s: %w", h.StuffID, err)
		case cur.OrderID == h.OrderID:
			claimed = true
			return nil
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
		err = s.store.InsertHold(ctx, h)
		switch {
		case err == nil:
			claimed = true
		case !errors.Is(err, ErrDuplicate): // a new buyer's claim won: not an error
			return fmt.Errorf("hold stuff %s: %w", h.StuffID, err)
		}
		return nil
	})
	return claimed, err
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
	if _, err := s.end(ctx, o.ID, EndCancelled, nil); err != nil {
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
// already ended. It is idempotent. The event says nothing but the order id,
// so what it is checked against is the order's own deadline: an expiry of an
// order still created that comes more than ExpiryLeeway before it (forged,
// or from a clock far ahead) is ErrBeforeDeadline, an ErrEventAhead, and
// cancels the order only when it comes back after the deadline. Errors:
// ErrMalformedEvent, ErrEventAhead (unknown order, or before the deadline).
func (s *Service) Expire(ctx context.Context, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: order id %q", ErrMalformedEvent, id)
	}
	_, err := s.end(ctx, id, EndExpired, func(o Order) error {
		if o.Status == StatusCreated && s.now().Before(o.ExpiresAt.Add(-ExpiryLeeway)) {
			return fmt.Errorf("%w: order %s expires at %s", ErrBeforeDeadline, o.ID, o.ExpiresAt.Format(time.RFC3339Nano))
		}
		return nil
	})
	if errors.Is(err, ErrOutcomeTaken) {
		return nil // paid in time: nothing to expire
	}
	return err
}

// Complete completes the order p paid for, unless it already ended. It is
// idempotent. A payment that cannot be one of the order (see Payment.check)
// changes nothing: ErrPaymentMismatch. An order that no longer holds its
// stuff is not completed but cancelled (see end). Errors: ErrMalformedEvent,
// ErrEventAhead (unknown order), ErrPaymentMismatch, ErrOutcomeTaken (the
// order was cancelled, first or now: the payment is the payments service's
// to refund, on order:cancelled).
func (s *Service) Complete(ctx context.Context, p Payment) error {
	if !ValidID(p.OrderID) {
		return fmt.Errorf("%w: order id %q", ErrMalformedEvent, p.OrderID)
	}
	_, err := s.end(ctx, p.OrderID, EndCompleted, p.check)
	return err
}

// end brings order id to the outcome of ending (EndCompleted: complete;
// EndCancelled or EndExpired: cancelled, and counted as said). The outcome is
// decided by one atomic insert of a claim keyed by the order id: of a
// cancellation and a completion racing, exactly one claim is recorded and the
// other gets ErrOutcomeTaken. The winner then saves the order's new status
// and version with its event in one write, and releases the hold (cancelled)
// or marks it sold (complete). Every step is idempotent, so a redelivered
// event or a retried request finishes the work of one that died half-way.
//
// A created order is completed only if it still holds its stuff
// (claimCompletion); otherwise it is cancelled instead, and end returns
// ErrOutcomeTaken: the payment is refunded rather than the stuff sold to two
// buyers.
//
// check, when not nil, vets the order as read against the event that ends
// it; its error is returned and nothing is written.
func (s *Service) end(ctx context.Context, id, ending string, check func(o Order) error) (Order, error) {
	outcome := statusOf(ending)
	o, err := s.store.Order(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return Order{}, fmt.Errorf("%w: order %s is unknown", ErrEventAhead, id)
	case err != nil:
		return Order{}, fmt.Errorf("load order %s: %w", id, err)
	}
	if check != nil {
		if err := check(o); err != nil {
			return o, err
		}
	}
	if o.Status != StatusCreated && o.Status != outcome {
		return o, fmt.Errorf("%w: order %s is %s", ErrOutcomeTaken, id, o.Status)
	}
	now := s.now()
	var won string
	var lost bool
	if outcome == StatusComplete && o.Status == StatusCreated {
		won, lost, err = s.claimCompletion(ctx, o, now)
	} else {
		won, err = s.store.ClaimOutcome(ctx, id, outcome, now)
	}
	if err != nil {
		return Order{}, fmt.Errorf("claim outcome of order %s: %w", id, err)
	}
	if won != outcome {
		if lost && won == StatusCancelled {
			if _, err := s.finish(ctx, id, EndCancelled, now); err != nil {
				return Order{}, err
			}
			return o, fmt.Errorf("%w: order %s does not hold stuff %s: cancelled", ErrOutcomeTaken, id, o.Stuff.ID)
		}
		return o, fmt.Errorf("%w: order %s is %s", ErrOutcomeTaken, id, won)
	}
	return s.finish(ctx, id, ending, now)
}

// claimCompletion claims the completion of created order o if o still holds
// its stuff, and its cancellation if not (lost). It returns the outcome
// recorded. The check and the claim run under the hold's lock, so the hold
// cannot be released as an orphan's in between (reclaim).
func (s *Service) claimCompletion(ctx context.Context, o Order, now time.Time) (won string, lost bool, err error) {
	err = s.store.LockHold(ctx, o.Stuff.ID, func(ctx context.Context) error {
		held, err := s.holdsStuff(ctx, o)
		if err != nil {
			return fmt.Errorf("check hold of stuff %s: %w", o.Stuff.ID, err)
		}
		outcome := StatusComplete
		if !held {
			outcome, lost = StatusCancelled, true
		}
		won, err = s.store.ClaimOutcome(ctx, o.ID, outcome, now)
		return err
	})
	return won, lost, err
}

// finish brings order id, whose outcome (that of ending) is claimed, to it:
// its status and event, then its hold, then its slot, which the order no
// longer needs either way. The write of the status counts the ending: once,
// by the process whose write it was.
func (s *Service) finish(ctx context.Context, id, ending string, now time.Time) (Order, error) {
	outcome := statusOf(ending)
	// The outcome is decided: finish the work even if the caller goes away
	// (a cancel request dropped now would leave the order "created", its
	// stuff held and no event out until the deadline fires).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	var o Order
	var err error
	for attempt := 0; ; attempt++ {
		changed := false
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
			changed = true
			return true, nil
		})
		if errors.Is(err, ErrStale) && attempt < 3 {
			continue
		}
		if err != nil {
			return Order{}, fmt.Errorf("end order %s as %s: %w", id, outcome, err)
		}
		if changed {
			s.metrics.Ended(ending)
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
	if err := s.store.ReleaseSlot(ctx, o.UserID, o.Slot, o.ID); err != nil {
		return Order{}, fmt.Errorf("%s order %s: release slot %d of %s: %w", outcome, id, o.Slot, o.UserID, err)
	}
	return o, nil
}

// CancelOrdersOf cancels the orders userID placed that are still created,
// through the outcome claim (an order paid meanwhile stays paid), and
// returns how many it cancelled: a banned user's purchases in progress end
// and their stuff is released, rather than held until the deadline. It is
// idempotent. Errors: those of the store; the orders it could not cancel
// are cancelled by a retry.
func (s *Service) CancelOrdersOf(ctx context.Context, userID string) (int, error) {
	list, err := s.store.OpenOrdersOf(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("list open orders of %s: %w", userID, err)
	}
	n := 0
	var failed []error
	for _, o := range list {
		_, err := s.end(ctx, o.ID, EndCancelled, nil)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, ErrOutcomeTaken):
			failed = append(failed, err)
		}
	}
	return n, errors.Join(failed...)
}

// pruneBatch is how many outcome claims PruneOutcomes reads at a time.
const pruneBatch = 1000

// PruneOutcomes forgets the outcome claims made more than OutcomeRetention
// ago whose order shows the outcome, or is gone, and returns how many it
// forgot, so that the claims do not grow with every order ever ended. A
// claim whose order was never brought to it (a process died half-way) is
// kept: it still decides how that order ends.
//
// Forgetting is safe because every way an order ends reads the order first
// and refuses one that ended the other way before it claims (end): once the
// order shows its outcome, the claim only matters to an actor that read the
// order while it was still created and has not claimed yet, which takes
// seconds, not a day. A late claim of the same outcome makes an identical
// claim again, and changes nothing. A background job calls it hourly.
func (s *Service) PruneOutcomes(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-OutcomeRetention)
	n := 0
	for {
		claims, err := s.store.OutcomesBefore(ctx, cutoff, pruneBatch)
		if err != nil {
			return n, fmt.Errorf("list outcome claims: %w", err)
		}
		forgot := 0
		for _, c := range claims {
			o, err := s.store.Order(ctx, c.OrderID)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return n, fmt.Errorf("load order %s: %w", c.OrderID, err)
			case o.Status != c.Outcome:
				continue // not finished yet: the claim still decides
			}
			if err := s.store.ForgetOutcome(ctx, c.OrderID, c.Outcome); err != nil {
				return n, fmt.Errorf("forget the outcome claim of order %s: %w", c.OrderID, err)
			}
			forgot++
		}
		n += forgot
		// A page that was not full was the last; one where every claim
		// is kept would come back the same.
		if len(claims) < pruneBatch || forgot == 0 || ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// overdueBatch bounds the orders one CancelOverdue ends; the next run takes
// the rest.
const overdueBatch = 500

// CancelOverdue cancels every order still created Options.Sweep past its
// deadline, the oldest first, and returns how many of them it ended. The
// expiration service is the precise path, within a second of the deadline;
// this is the orders service's own backstop for when expiration is down or
// its event lost, so that no stuff stays held for good. It ends each order
// through the outcome claim, as an expiry does: an order paid meanwhile
// stays paid, and one whose completion was claimed by a process that died
// before finishing it is finished as complete. A background job calls it
// every Sweep.
func (s *Service) CancelOverdue(ctx context.Context) (int, error) {
	list, err := s.store.OverdueOrders(ctx, s.now().Add(-s.sweep), overdueBatch)
	if err != nil {
		return 0, fmt.Errorf("list overdue orders: %w", err)
	}
	n := 0
	var failed []error
	for _, o := range list {
		ended, err := s.settle(ctx, o.ID)
		if err != nil {
			failed = append(failed, err)
		}
		if ended {
			n++
		}
	}
	return n, errors.Join(failed...)
}

// settle cancels order id, found created, unless it ended meanwhile, or
// finishes the completion claimed for it; it reports whether it ended it.
func (s *Service) settle(ctx context.Context, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, endTimeout)
	defer cancel()
	o, err := s.end(ctx, id, EndExpired, nil)
	if !errors.Is(err, ErrOutcomeTaken) {
		return err == nil, err
	}
	if o.Status != StatusCreated {
		return false, nil // ended meanwhile
	}
	// The completion is claimed, the order not brought to it: finish it.
	if _, err := s.end(ctx, id, EndCompleted, nil); err != nil {
		return false, fmt.Errorf("finish the completion of order %s: %w", id, err)
	}
	return true, nil
}

// slotBatch bounds the slots one FreeSlots looks at; the next run takes
// the rest.
const slotBatch = 1000

// FreeSlots releases the slots that no longer stand for an order waiting
// for payment (see slotOrphan) and returns how many it released: a process
// that died after an order ended, or before it was saved, left them. A BUY
// of their buyer takes such a slot back when it meets it; this frees those
// of buyers who do not come back. It looks only at slots older than an
// order's hold: a younger one is nearly always its order's, and an order
// still created past its deadline is cancelled by CancelOverdue, which
// frees its slot. Each slot is checked and released under its lock, as a
// BUY's reclaim does. A background job calls it every Sweep.
func (s *Service) FreeSlots(ctx context.Context) (int, error) {
	now := s.now()
	list, err := s.store.SlotsBefore(ctx, now.Add(-s.hold), slotBatch)
	if err != nil {
		return 0, fmt.Errorf("list old slots: %w", err)
	}
	n := 0
	var failed []error
	for _, sl := range list {
		err := s.store.LockSlot(ctx, sl.UserID, sl.N, func(ctx context.Context) error {
			cur, err := s.store.Slot(ctx, sl.UserID, sl.N)
			switch {
			case errors.Is(err, ErrNotFound):
				return nil // released meanwhile
			case err != nil:
				return err
			case cur.OrderID != sl.OrderID:
				return nil // taken again meanwhile
			}
			orphan, err := s.slotOrphan(ctx, cur, now)
			if err != nil || !orphan {
				return err
			}
			if err := s.store.ReleaseSlot(ctx, cur.UserID, cur.N, cur.OrderID); err != nil {
				return err
			}
			n++
			return nil
		})
		if err != nil {
			failed = append(failed, fmt.Errorf("free slot %d of %s: %w", sl.N, sl.UserID, err))
		}
	}
	return n, errors.Join(failed...)
}

// Sweep is the orders service's periodic repair, run every Options.Sweep:
// CancelOverdue, then FreeSlots. It returns how many orders and slots it
// ended or freed.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cancelled, err := s.CancelOverdue(ctx)
	freed, ferr := s.FreeSlots(ctx)
	return cancelled + freed, errors.Join(err, ferr)
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
