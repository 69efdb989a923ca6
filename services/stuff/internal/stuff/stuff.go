// Package stuff is the domain of the stuff service: a listing, the rules of
// editing it, and how order events move it between available, reserved and
// sold. It knows nothing of MongoDB, Echo or NATS, nor of the event payloads:
// the listeners map order events to OrderRef, and the store maps a listing to
// its stuff:created / stuff:updated payload.
package stuff

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// Status is where a listing stands in the buying flow.
type Status string

// Statuses of a listing.
const (
	Available Status = "available"
	Reserved  Status = "reserved"
	Sold      Status = "sold"
)

// Limits of a listing's fields, in characters and cents: what the API
// accepts and the storefront's forms say.
const (
	MaxTitle       = 120
	MaxDescription = 5000
	MaxDelivery    = 2000
	MinPrice       = 1
	MaxPrice       = 1_000_000
	// DefaultCurrency is the only currency sold today.
	DefaultCurrency = "usd"
)

// ErrReserved is returned when the owner edits a listing that an order holds
// or that is sold.
var ErrReserved = errs.BadRequest("Cannot edit a reserved stuff")

// ErrBacklog is returned for a change that would publish an event while the
// listing already holds as many unpublished ones as it may (NATS has been
// unreachable for a while): a 503, to be tried again later.
var ErrBacklog = &errs.HTTPError{Status: http.StatusServiceUnavailable, Message: "Too many changes of this stuff are waiting to be published, try again later"}

// ErrNotYet is returned for an order event that must come back after
// another one: the listing is held by another order, or the order has not
// been seen yet (its order:created comes first). Listeners leave such an
// event unacknowledged so that it is delivered again.
var ErrNotYet = errors.New("order event must wait for an earlier one")

// ErrMismatch is returned for an order event that contradicts what the
// listing knows: an order:created the orders service would not publish (no
// buyer, the seller's own, not at the listing's price), or an end of an
// order that is not the one the listing knows (another buyer, price or
// order version, an order that does not hold it). Such an event is forged
// or corrupt; listeners acknowledge it without applying it and log a
// warning, so it never sells the listing or shows anyone its delivery.
var ErrMismatch = errors.New("order event does not match the listing's records")

func mismatch(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMismatch}, args...)...)
}

// OrderState is what the stuff service knows of one order that named it.
type OrderState string

// Order states as learnt from order events.
const (
	OrderCreated   OrderState = "created"
	OrderCancelled OrderState = "cancelled"
	OrderComplete  OrderState = "complete"
)

// MaxEndedOrders is how many orders other than the one holding (or having
// bought) a listing it remembers: the window that makes a redelivered order
// event change nothing. An order's events reach the stuff service within
// seconds of each other, and a listing sees one order at a time (the orders
// service lets one order hold it), so a redelivery that comes after this
// many later orders is rare. What its order:created does then is in
// ApplyOrderCreated; its order:cancelled or order:completed alone looks like
// one whose order:created has not come yet: it waits (ErrNotYet) until the
// bus parks it (a completion on a sold listing is ignored at once), and
// changes nothing.
const MaxEndedOrders = 32

// Order is one order seen for a listing. The list of them is what makes order
// events idempotent, lets them be applied in order per listing, and is what
// the end of an order is checked against (see ApplyOrderCompleted).
type Order struct {
	ID     string
	UserID string
	State  OrderState
	// ExpiresAt is the order's deadline, as its order:created said (zero
	// for orders remembered before deadlines were).
	ExpiresAt time.Time
	// Price and Version are the order's price and version as its
	// order:created said (zero for orders remembered before they were).
	Price   int64
	Version int64
}

// OrderRef is what an order event tells about one order of a listing: the
// order and its version, its buyer and the price it charges (empty and
// zero when the event does not say), the listing, and the order's deadline
// (order:created only).
type OrderRef struct {
	ID        string
	Version   int64
	BuyerID   string
	StuffID   string
	Price     int64
	ExpiresAt time.Time
}

// Stuff is one listing.
type Stuff struct {
	ID          string
	Title       string
	Description string
	Price       int64
	Currency    string
	// Delivery is the content the buyer gets; shown only to the seller and
	// to buyers (see CanSeeDelivery).
	Delivery string
	UserID   string
	Status   Status
	// OrderID is the order that holds (reserved) or bought (sold) it.
	OrderID string
	// Buyers are the users whose order for it completed.
	Buyers []string
	// Orders are the orders seen for it, in the order they were seen: the
	// one in OrderID and at most MaxEndedOrders others, the latest.
	Orders []Order
	// Forgotten is the latest deadline of the orders dropped from Orders.
	// The orders service lets one order at a time hold a listing, so every
	// later order has a later deadline: an order:created whose deadline is
	// not after Forgotten is a redelivery of an order dropped long ago.
	Forgotten time.Time
	// Version starts at 1 and grows by one on every change that is
	// published (edit, reserved, released, sold).
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Input is what a seller sends to list or edit a listing. Description and
// Delivery are optional on edit: nil keeps the current value.
type Input struct {
	Title       string
	Description *string
	Price       int64
	Currency    *string
	Delivery    *string
}

// Validate checks every field at once and returns a
// *errs.RequestValidationError naming each bad one.
//
// The free text (title, description, delivery) must be text a person
// typed (validate.PlainText): no control characters, which terminals and
// logs obey, and no bidirectional overrides, isolates or marks, which make
// a title shown on a page read differently from what it holds. A tab is
// accepted anywhere; a line break only in the description and the delivery,
// which have lines (a delivery may be a link and a licence code on separate
// lines).
func (in *Input) Validate() error {
	var v validate.Errors
	in.Title = strings.TrimSpace(in.Title)
	n := validate.Len(in.Title)
	v.Check(n >= 1, "title", "Title is required")
	v.Check(n <= MaxTitle, "title", "Title must be at most 120 characters")
	v.Check(validate.PlainText(in.Title, false), "title", "Title must not contain control or text-direction characters")
	if in.Description != nil {
		v.Check(validate.Len(*in.Description) <= MaxDescription, "description", "Description must be at most 5000 characters")
		v.Check(validate.PlainText(*in.Description, true), "description", "Description must not contain control or text-direction characters")
	}
	v.Check(in.Price >= MinPrice && in.Price <= MaxPrice, "price", "Price must be an integer number of cents from 1 to 1000000")
	if in.Currency != nil {
		v.Check(*in.Currency == DefaultCurrency, "currency", "Currency must be usd")
	}
	if in.Delivery != nil {
		v.Check(validate.Len(*in.Delivery) <= MaxDelivery, "delivery", "Delivery must be at most 2000 characters")
		v.Check(validate.PlainText(*in.Delivery, true), "delivery", "Delivery must not contain control or text-direction characters")
	}
	return v.Err()
}

// New returns a listing of userID made from a validated input, available,
// at version 1.
func New(id, userID string, in Input, now time.Time) Stuff {
	s := Stuff{ID: id, Title: in.Title, Price: in.Price, Currency: DefaultCurrency, UserID: userID,
		Status: Available, Version: 1, CreatedAt: now, UpdatedAt: now}
	if in.Description != nil {
		s.Description = *in.Description
	}
	if in.Delivery != nil {
		s.Delivery = *in.Delivery
	}
	return s
}

// CanSeeDelivery reports whether userID (empty: anonymous) may see the
// delivery content: the seller and buyers whose order completed.
func (s *Stuff) CanSeeDelivery(userID string) bool {
	return userID != "" && (userID == s.UserID || slices.Contains(s.Buyers, userID))
}

// Edit applies the owner's validated input. It returns errs.ErrNotAuthorized
// when userID is not the seller and ErrReserved unless the listing is
// available. changed is false when the input equals the current values; the
// version then stays.
func (s *Stuff) Edit(userID string, in Input, now time.Time) (changed bool, err error) {
	if userID != s.UserID {
		return false, errs.ErrNotAuthorized
	}
	if s.Status != Available {
		return false, ErrReserved
	}
	next := *s
	next.Title, next.Price = in.Title, in.Price
	if in.Description != nil {
		next.Description = *in.Description
	}
	if in.Delivery != nil {
		next.Delivery = *in.Delivery
	}
	if next.Title == s.Title && next.Price == s.Price && next.Description == s.Description && next.Delivery == s.Delivery {
		return false, nil
	}
	next.Version++
	next.UpdatedAt = now
	*s = next
	return true, nil
}

func (s *Stuff) order(id string) *Order {
	for i := range s.Orders {
		if s.Orders[i].ID == id {
			return &s.Orders[i]
		}
	}
	return nil
}

// ApplyOrderCreated records that order o (its buyer, price and deadline)
// wants the listing. An available listing becomes reserved by it
// (version+1). A second delivery of the same event changes nothing. While
// another order holds the listing it returns ErrNotYet: that order's
// cancellation is on its way and this event must come back after it. On a
// sold listing the order is only recorded. changed says whether the listing
// must be saved.
//
// An order:created the orders service would not publish is ErrMismatch and
// changes nothing: one without a buyer or version, one of the seller (who
// cannot buy their own stuff), one that takes the listing at a price other
// than the listing's (or none), and one reusing a known order's id with
// another buyer or price. The price is that of the version the order was
// placed on: an order placed on an older price than the listing's (the
// orders service had not learnt the seller's edit yet) is not honoured.
//
// An order whose deadline is not after Forgotten was dropped from the window
// (see MaxEndedOrders): it ended long ago and this is a very late
// redelivery. It is only recorded, never reserves and never waits, so a
// dead order cannot take the listing back; should its cancellation or
// completion come again too, they find it recorded and change nothing (a
// completion sells, which a completed order did anyway). Were it a live
// order after all (the orders service's hold shortened while orders of the
// longer one were still being forgotten), the listing would show available
// while the orders service holds it, which decides every sale, and its
// completion would still sell it.
func (s *Stuff) ApplyOrderCreated(o OrderRef, now time.Time) (changed bool, err error) {
	if known := s.order(o.ID); known != nil {
		if (o.BuyerID != known.UserID && known.UserID != "") || (o.Price != known.Price && known.Price != 0) {
			return false, mismatch("order %s of buyer %q at %d, known as of buyer %q at %d", o.ID, o.BuyerID, o.Price, known.UserID, known.Price)
		}
		return false, nil
	}
	switch {
	case o.BuyerID == "":
		return false, mismatch("order %s without a buyer", o.ID)
	case o.BuyerID == s.UserID:
		return false, mismatch("order %s of the seller", o.ID)
	case o.Version < 1:
		return false, mismatch("order %s at version %d", o.ID, o.Version)
	case o.Price < 1:
		return false, mismatch("order %s without a price", o.ID)
	}
	// To the millisecond, as stored: a redelivery compares equal.
	expiresAt := o.ExpiresAt.UTC().Truncate(time.Millisecond)
	forgotten := !expiresAt.IsZero() && !expiresAt.After(s.Forgotten)
	switch {
	case forgotten:
	case s.Status == Reserved:
		return false, ErrNotYet
	case s.Status == Available:
		// Not checked against the listing's price: a seller's edit that
		// raced the BUY leaves an order at the price orders' replica had,
		// which is what the buyer pays; orders decides sales, and a paid
		// order must get its delivery. Its completion must then name the
		// same price.
		s.Status, s.OrderID = Reserved, o.ID
		s.Version++
		s.UpdatedAt = now
	}
	s.Orders = append(s.Orders, Order{ID: o.ID, UserID: o.BuyerID, State: OrderCreated, ExpiresAt: expiresAt, Price: o.Price, Version: o.Version})
	s.trimOrders()
	return true, nil
}

// trimOrders keeps the order in OrderID and the latest MaxEndedOrders
// others, and raises Forgotten to the deadlines of those it drops.
func (s *Stuff) trimOrders() {
	extra := len(s.Orders) - MaxEndedOrders
	if s.OrderID != "" && s.order(s.OrderID) != nil {
		extra--
	}
	if extra <= 0 {
		return
	}
	kept := make([]Order, 0, len(s.Orders)-extra)
	for _, o := range s.Orders {
		if extra > 0 && o.ID != s.OrderID {
			extra--
			if o.ExpiresAt.After(s.Forgotten) {
				s.Forgotten = o.ExpiresAt
			}
			continue
		}
		kept = append(kept, o)
	}
	s.Orders = kept
}

// ApplyOrderCancelled records that order o ended unpaid; if it holds the
// listing, the listing is available again (version+1). A cancellation of
// an order not seen yet returns ErrNotYet (its order:created comes first);
// one of an order already ended changes nothing; one whose version is not
// after the order's order:created is ErrMismatch and changes nothing.
func (s *Stuff) ApplyOrderCancelled(o OrderRef, now time.Time) (changed bool, err error) {
	known := s.order(o.ID)
	if known == nil {
		return false, ErrNotYet
	}
	if known.State != OrderCreated {
		return false, nil
	}
	if o.Version <= known.Version {
		return false, mismatch("cancellation of order %s at version %d, created at %d", o.ID, o.Version, known.Version)
	}
	known.State = OrderCancelled
	if s.Status == Reserved && s.OrderID == o.ID {
		s.Status, s.OrderID = Available, ""
		s.Version++
		s.UpdatedAt = now
	}
	s.trimOrders()
	return true, nil
}

// ApplyOrderCompleted records that order o was paid: the listing is sold
// to it (version+1) and its buyer may see the delivery. Selling and showing
// the delivery is a change of what every replica publishes, so the version
// grows once for both.
//
// A completion is honoured only for the order the listing knows: one whose
// order:created it recorded, from the same buyer, at the same price (the
// event must carry both; the orders service always sends them), at a later
// order version, and that holds the listing, or that was recorded without
// reserving it because it looked forgotten (see ApplyOrderCreated) while
// the listing is available. Anything else is ErrMismatch and changes
// nothing: the orders service completes only the order that holds a
// stuff, and sells a stuff once. A completion of an order not seen yet
// returns ErrNotYet (its order:created comes first), unless the listing is
// sold already (ErrMismatch); one of an order already ended (complete, or
// cancelled, which the payments service refunds) changes nothing.
func (s *Stuff) ApplyOrderCompleted(o OrderRef, now time.Time) (changed bool, err error) {
	known := s.order(o.ID)
	if known == nil {
		if s.Status == Sold {
			return false, mismatch("completion of order %s, unknown, for a listing sold to order %s", o.ID, s.OrderID)
		}
		return false, ErrNotYet
	}
	if known.State != OrderCreated {
		return false, nil
	}
	price := known.Price
	if price == 0 && s.OrderID == o.ID {
		price = s.Price // recorded before prices were; held since, so not edited
	}
	switch {
	case o.BuyerID != known.UserID:
		return false, mismatch("completion of order %s for buyer %q, placed by %q", o.ID, o.BuyerID, known.UserID)
	case o.Price == 0 || (price != 0 && o.Price != price):
		return false, mismatch("completion of order %s at %d, placed at %d", o.ID, o.Price, price)
	case o.Version <= known.Version:
		return false, mismatch("completion of order %s at version %d, created at %d", o.ID, o.Version, known.Version)
	case s.Status == Reserved && s.OrderID != o.ID:
		return false, mismatch("completion of order %s for a listing held by order %s", o.ID, s.OrderID)
	case s.Status == Sold:
		return false, mismatch("completion of order %s for a listing sold to order %s", o.ID, s.OrderID)
	}
	known.State = OrderComplete
	if known.UserID != "" && !slices.Contains(s.Buyers, known.UserID) {
		s.Buyers = append(s.Buyers, known.UserID)
	}
	s.Status, s.OrderID = Sold, o.ID
	s.Version++
	s.UpdatedAt = now
	s.trimOrders()
	return true, nil
}

// Key orders listings newest first: by creation time, then by id.
type Key struct {
	CreatedAt time.Time
	ID        string
}

// Key returns the listing's place in the newest-first order.
func (s *Stuff) Key() Key { return Key{CreatedAt: s.CreatedAt, ID: s.ID} }

// Before reports whether k comes before o in the newest-first order.
func (k Key) Before(o Key) bool {
	if !k.CreatedAt.Equal(o.CreatedAt) {
		return k.CreatedAt.After(o.CreatedAt)
	}
	return k.ID > o.ID
}
