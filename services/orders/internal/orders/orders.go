// Package orders holds the orders service's domain: orders, the replica of
// stuff they are placed on, the hold that makes a stuff exclusive to one
// order, and the rules that decide how an order ends. It knows no Mongo,
// Echo, NATS or event payloads: it declares the Store it needs, and the
// store publishes the event of each change it saves (order:created,
// order:cancelled, order:completed) through its outbox. docs/flows.md
// follows an order through a purchase, an expiry and a refund.
package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Order statuses: created, then exactly one of cancelled or complete. The
// order events carry them as they are (docs/events.md).
const (
	StatusCreated   = "created"
	StatusCancelled = "cancelled"
	StatusComplete  = "complete"
)

// Stuff statuses as the stuff service publishes them.
const (
	StuffAvailable = "available"
	StuffReserved  = "reserved"
	StuffSold      = "sold"
)

// HeldMessage is the customer's wording, verbatim, for a stuff held by
// another order: the buyer who meets it gets a 409 with this message.
const HeldMessage = "The stuff is being checking out by someone else, please come back later"

// Errors the service returns to HTTP clients.
var (
	// ErrHeld (409): another order holds the stuff.
	ErrHeld = errs.Conflict(HeldMessage)
	// ErrOwnStuff (400): a seller cannot buy their own stuff.
	ErrOwnStuff = errs.BadRequest("You cannot buy your own stuff")
	// ErrSold (400): the stuff has been sold.
	ErrSold = errs.BadRequest("The stuff has already been sold")
	// ErrNotCancellable (400): only a created order can be cancelled.
	ErrNotCancellable = errs.BadRequest("Only an order that is created can be cancelled")
	// ErrTooManyOpen is matched (errors.Is) by the error that refuses an
	// order to a buyer who already has Options.MaxOpen orders waiting for
	// payment (see tooManyOpen).
	ErrTooManyOpen = errors.New("too many open orders")
)

// TooManyOpenMessage is what a buyer who already has max orders waiting for
// payment is told when they click BUY.
func TooManyOpenMessage(max int) string {
	if max == 1 {
		return "You already have an order waiting for payment: pay or cancel it first"
	}
	return fmt.Sprintf("You already have %d orders waiting for payment: pay or cancel one first", max)
}

// tooManyOpen is the refusal of an order to a buyer at the cap of max open
// orders: ErrTooManyOpen, answered 400 with TooManyOpenMessage. A 400, not a
// 429: waiting does not help (nothing frees a place before the buyer pays or
// cancels, or an order's deadline passes, up to ORDER_HOLD later), so there
// is no honest Retry-After, and clients and proxies retry a 429 on their
// own. Like the other 400s of BUY (own stuff, sold), the storefront shows
// the message on the stuff's page.
func tooManyOpen(max int) error {
	return fmt.Errorf("%w: %w", ErrTooManyOpen, errs.BadRequest(TooManyOpenMessage(max)))
}

// Errors the listeners map to an ack policy.
var (
	// ErrEventAhead says an event depends on one not applied yet (a version
	// gap, or an event about a stuff or order not known yet): leave it
	// unacked so it comes back.
	ErrEventAhead = errors.New("event is ahead of the local state")
	// ErrMalformedEvent says an event can never be applied (bad id, bad
	// version): park it.
	ErrMalformedEvent = errors.New("malformed event")
	// ErrDuplicate is returned (wrapped) by Store inserts refused by a
	// unique index: the claim belongs to someone else.
	ErrDuplicate = errors.New("duplicate key")
	// ErrNotFound is returned (wrapped, or as is) by Store reads of an
	// unknown or malformed id. It is the shared 404.
	ErrNotFound = errs.ErrNotFound
	// ErrStale is returned by Store updates when the document changed
	// between the read and the write (another process wrote it); the caller
	// may retry.
	ErrStale = errors.New("document changed concurrently")
	// ErrPaymentMismatch says a payment cannot be a payment of the order it
	// names (see Payment): it is ignored, the order not completed.
	ErrPaymentMismatch = errors.New("payment does not match its order")
	// ErrBeforeDeadline says an expiry came before the order's deadline:
	// it is an ErrEventAhead, and comes back.
	ErrBeforeDeadline = fmt.Errorf("%w: the order's deadline has not passed", ErrEventAhead)
)

// Stuff is the local replica of a stuff listed in the stuff service, kept
// from its stuff:created and stuff:updated events in version order (the
// listeners map each payload to a Stuff).
type Stuff struct {
	ID       string
	Title    string
	Price    int64 // cents
	Currency string
	SellerID string
	Status   string // available, reserved or sold
	OrderID  string // the order holding it, as the stuff service last said
	Version  int64
}

// StuffRef is what an order remembers of its stuff: as it was when bought.
type StuffRef struct {
	ID       string
	Title    string
	Price    int64
	Currency string
}

// Order is a buyer's order of one stuff.
type Order struct {
	ID        string
	UserID    string
	Status    string
	Stuff     StuffRef
	ExpiresAt time.Time
	CreatedAt time.Time
	Version   int64
	// Slot is the number of the buyer's Slot the order takes while it is
	// created. Orders placed before slots existed say 0 and hold none.
	Slot int
}

// Slot is one of the Options.MaxOpen places a buyer's orders waiting for
// payment take: number N (0 to MaxOpen-1) of UserID, held by OrderID from
// just before the order is saved until it ends. Store.InsertSlot, keyed by
// the user and the number, is the one atomic decision of whether a buyer may
// place one more order: of any number of concurrent BUYs of one buyer, at
// most MaxOpen find a free slot.
type Slot struct {
	UserID    string
	N         int
	OrderID   string
	CreatedAt time.Time
}

// FreeCouponProvider is the provider id of a payment that took no money: a
// 100 % coupon paid for the whole order.
const FreeCouponProvider = "coupon"

// Payment is a payment:created: what the payments service took for an
// order.
type Payment struct {
	ID      string
	OrderID string
	// Amount is what was taken, in cents of the order's currency: the
	// order's price, less a coupon's discount.
	Amount int64
	// ProviderID is the provider's charge id, or FreeCouponProvider.
	ProviderID string
}

// check returns ErrPaymentMismatch unless p can be a payment of o: no more
// than its price (a coupon only takes off), and nothing exactly when a free
// coupon paid. The payload carries neither the currency nor the coupon's
// discount, so an amount under the price (a coupon's part of it) is taken
// as it is. A payment refused here was not recorded by orders: its order
// stays created, expires, and the payments service refunds what it took on
// order:cancelled.
func (p Payment) check(o Order) error {
	free := p.ProviderID == FreeCouponProvider
	switch {
	case p.Amount < 0 || p.Amount > o.Stuff.Price:
		return fmt.Errorf("%w: payment %s of order %s is %d cents, the order charges %d", ErrPaymentMismatch, p.ID, o.ID, p.Amount, o.Stuff.Price)
	case (p.Amount == 0) != free:
		return fmt.Errorf("%w: payment %s of order %s is %d cents by %q: only a free coupon pays nothing", ErrPaymentMismatch, p.ID, o.ID, p.Amount, p.ProviderID)
	}
	return nil
}

// RequestKey names a create request its client may send again (the
// Idempotency-Key of POST /api/orders): Key as the client sent it, and Since,
// when the key was first seen, the same on every try. The zero RequestKey is
// a request of its own.
type RequestKey struct {
	Key   string
	Since time.Time
}

// Hold makes a stuff exclusive to one order. It exists from the order's
// creation until the order is cancelled; it stays, marked Sold, when the
// order completes. Store.InsertHold, keyed by StuffID, is the one atomic
// decision of who may buy a stuff.
type Hold struct {
	StuffID   string
	OrderID   string
	UserID    string
	CreatedAt time.Time
	Sold      bool
}

// Outcome is the claim of how an order ends: the one atomic decision
// between its cancellation and its completion (Store.ClaimOutcome).
type Outcome struct {
	OrderID string
	Outcome string // StatusCancelled or StatusComplete
	At      time.Time
}

// Store is what the service needs from its database. Inserts that a unique
// index refuses return ErrDuplicate (wrapped); reads of an unknown id return
// ErrNotFound.
type Store interface {
	// InsertStuff adds a stuff to the replica.
	InsertStuff(ctx context.Context, s Stuff) error
	// UpdateStuff loads a stuff and, under its document's write lock, lets
	// fn change it; the change is saved only if fn reports one.
	UpdateStuff(ctx context.Context, id string, fn func(s *Stuff) (changed bool, err error)) error
	// Stuff reads a stuff of the replica.
	Stuff(ctx context.Context, id string) (Stuff, error)

	// InsertHold claims a stuff for an order: ErrDuplicate if held.
	InsertHold(ctx context.Context, h Hold) error
	// Hold reads the hold of a stuff (under LockHold: as it is now; else
	// possibly a read already in flight).
	Hold(ctx context.Context, stuffID string) (Hold, error)
	// ReleaseHold deletes the hold of stuffID if it belongs to orderID.
	ReleaseHold(ctx context.Context, stuffID, orderID string) error
	// MarkHoldSold marks the hold of stuffID sold if it belongs to orderID.
	MarkHoldSold(ctx context.Context, stuffID, orderID string) error
	// LockHold runs fn holding the process's write lock of stuffID's hold,
	// which ReleaseHold and MarkHoldSold take too: a decision that reads the
	// hold (and the order it names) and then releases it, claims it again or
	// relies on it, made in fn, cannot interleave with another such decision
	// or release in this process. Inside fn, use fn's ctx for the store.
	LockHold(ctx context.Context, stuffID string, fn func(ctx context.Context) error) error

	// InsertOrder saves a new order with its order:created pending in its
	// outbox, in one write, and has the event published.
	InsertOrder(ctx context.Context, o Order, now time.Time) error
	// Order reads an order.
	Order(ctx context.Context, id string) (Order, error)
	// OrdersByUser lists a user's orders, newest first.
	OrdersByUser(ctx context.Context, userID string, skip, limit int) ([]Order, error)
	// OpenOrdersOf lists the orders of userID still created. It scans on
	// FerretDB: for rare events (a ban) and background jobs only.
	OpenOrdersOf(ctx context.Context, userID string) ([]Order, error)
	// OverdueOrders lists up to limit orders still created whose deadline
	// is before before, the earliest deadline first. It scans: for
	// background jobs only.
	OverdueOrders(ctx context.Context, before time.Time, limit int) ([]Order, error)
	// UpdateOrder loads an order and, under its document's write lock, lets
	// fn end it (set its Status to StatusCancelled or StatusComplete and
	// bump its Version). When fn reports a change, the order is saved with
	// the event of its end (order:cancelled or order:completed) in one
	// write, and the event is published; otherwise nothing is written. It
	// returns the order as saved (or as found).
	UpdateOrder(ctx context.Context, id string, now time.Time, fn func(o *Order) (changed bool, err error)) (Order, error)

	// ClaimOutcome records outcome as the end of orderID unless one is
	// already recorded, and returns the recorded one: the one atomic
	// decision between cancellation and completion.
	ClaimOutcome(ctx context.Context, orderID, outcome string, at time.Time) (string, error)
	// OutcomesBefore lists up to limit outcome claims made before before,
	// the oldest first. It scans: for background jobs only.
	OutcomesBefore(ctx context.Context, before time.Time, limit int) ([]Outcome, error)
	// ForgetOutcome deletes the outcome claim of orderID if it is outcome.
	ForgetOutcome(ctx context.Context, orderID, outcome string) error

	// InsertSlot claims slot s.N of s.UserID for s.OrderID: ErrDuplicate if
	// another order holds it.
	InsertSlot(ctx context.Context, s Slot) error
	// Slot reads slot n of userID (under LockSlot: as it is now).
	Slot(ctx context.Context, userID string, n int) (Slot, error)
	// ReleaseSlot deletes slot n of userID if orderID holds it.
	ReleaseSlot(ctx context.Context, userID string, n int, orderID string) error
	// LockSlot runs fn holding the process's write lock of slot n of
	// userID, which ReleaseSlot takes too, as LockHold does for a hold.
	// Inside fn, use fn's ctx for the store.
	LockSlot(ctx context.Context, userID string, n int, fn func(ctx context.Context) error) error
	// SlotsBefore lists up to limit slots taken before before, the oldest
	// first. It scans: for background jobs only.
	SlotsBefore(ctx context.Context, before time.Time, limit int) ([]Slot, error)
}
