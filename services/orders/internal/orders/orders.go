// Package orders holds the orders service's domain: orders, the replica of
// stuff they are placed on, the hold that makes a stuff exclusive to one
// order, and the rules that decide how an order ends. It knows no Mongo, Echo
// or NATS; it declares the Store it needs and builds event payloads (the one
// type the services share) for the store to publish through its outbox.
package orders

import (
	"context"
	"errors"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
)

// Order statuses (SPEC §5): created, then exactly one of cancelled or
// complete.
const (
	StatusCreated   = events.OrderStatusCreated
	StatusCancelled = events.OrderStatusCancelled
	StatusComplete  = events.OrderStatusComplete
)

// Stuff statuses as the stuff service publishes them.
const (
	StuffAvailable = "available"
	StuffReserved  = "reserved"
	StuffSold      = "sold"
)

// HeldMessage is the customer's wording for a stuff held by another order
// (SPEC §1.3), verbatim.
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
)

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
)

// Stuff is the local replica of a stuff listed in the stuff service, kept
// from its stuff:created and stuff:updated events in version order.
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
	// Hold reads the hold of a stuff.
	Hold(ctx context.Context, stuffID string) (Hold, error)
	// ReleaseHold deletes the hold of stuffID if it belongs to orderID.
	ReleaseHold(ctx context.Context, stuffID, orderID string) error
	// MarkHoldSold marks the hold of stuffID sold if it belongs to orderID.
	MarkHoldSold(ctx context.Context, stuffID, orderID string) error

	// InsertOrder saves a new order with ev pending in its outbox, and has
	// the event published.
	InsertOrder(ctx context.Context, o Order, ev events.Event, now time.Time) error
	// Order reads an order.
	Order(ctx context.Context, id string) (Order, error)
	// OrdersByUser lists a user's orders, newest first.
	OrdersByUser(ctx context.Context, userID string, skip, limit int) ([]Order, error)
	// UpdateOrder loads an order and, under its document's write lock, lets
	// fn change it; when fn returns an event, the change and the event are
	// saved in one write and the event is published. fn returning a nil
	// event writes nothing. It returns the order as saved (or as found).
	UpdateOrder(ctx context.Context, id string, now time.Time, fn func(o *Order) (events.Event, error)) (Order, error)

	// ClaimOutcome records outcome as the end of orderID unless one is
	// already recorded, and returns the recorded one: the one atomic
	// decision between cancellation and completion.
	ClaimOutcome(ctx context.Context, orderID, outcome string, at time.Time) (string, error)
}
