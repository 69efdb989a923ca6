package stuff_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/errs"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ptr(s string) *string { return &s }

// step is one order event applied to a listing.
type step struct {
	kind    string // created, cancelled, completed
	order   string
	buyer   string
	tweak   func(*stuff.OrderRef) // changes the genuine event: nil keeps it
	wantErr error                 // nil, stuff.ErrNotYet or stuff.ErrMismatch
	changed bool
}

// ref is the event of the step as the orders service publishes it, at the
// listing's price, then tweaked.
func (st step) ref(i int) stuff.OrderRef {
	r := stuff.OrderRef{ID: st.order, StuffID: "s1"}
	switch st.kind {
	case "created":
		r.Version, r.BuyerID, r.Price, r.ExpiresAt = 1, st.buyer, 100, t0.Add(time.Duration(i)*time.Minute)
	case "cancelled":
		r.Version = 2
	case "completed":
		r.Version, r.BuyerID, r.Price = 2, st.buyer, 100
	}
	if st.tweak != nil {
		st.tweak(&r)
	}
	return r
}

func price(p int64) func(*stuff.OrderRef)   { return func(r *stuff.OrderRef) { r.Price = p } }
func version(v int64) func(*stuff.OrderRef) { return func(r *stuff.OrderRef) { r.Version = v } }

func TestOrderEventRules(t *testing.T) {
	tests := []struct {
		name        string
		steps       []step
		wantStatus  stuff.Status
		wantOrder   string
		wantVersion int64
		wantBuyers  []string
	}{
		{name: "created reserves", steps: []step{{kind: "created", order: "o1", buyer: "b1", changed: true}},
			wantStatus: stuff.Reserved, wantOrder: "o1", wantVersion: 2},
		{name: "created twice is a no-op", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "created", order: "o1", buyer: "b1"},
		}, wantStatus: stuff.Reserved, wantOrder: "o1", wantVersion: 2},
		{name: "cancelled releases", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "cancelled", order: "o1", changed: true},
		}, wantStatus: stuff.Available, wantVersion: 3},
		{name: "cancelled twice is a no-op", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "cancelled", order: "o1", changed: true},
			{kind: "cancelled", order: "o1"},
		}, wantStatus: stuff.Available, wantVersion: 3},
		{name: "cancelled before created comes back", steps: []step{
			{kind: "cancelled", order: "o1", wantErr: stuff.ErrNotYet},
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "cancelled", order: "o1", changed: true},
		}, wantStatus: stuff.Available, wantVersion: 3},
		{name: "completed before created comes back", steps: []step{
			{kind: "completed", order: "o1", buyer: "b1", wantErr: stuff.ErrNotYet},
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
		{name: "completed sells and records the buyer once", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1"},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
		{name: "second order waits while the first holds", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "created", order: "o2", buyer: "b2", wantErr: stuff.ErrNotYet},
			{kind: "cancelled", order: "o1", changed: true},
			{kind: "created", order: "o2", buyer: "b2", changed: true},
		}, wantStatus: stuff.Reserved, wantOrder: "o2", wantVersion: 4},
		{name: "late cancel of an earlier order leaves the new holder", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "cancelled", order: "o1", changed: true},
			{kind: "created", order: "o2", buyer: "b2", changed: true},
			{kind: "cancelled", order: "o1"},
		}, wantStatus: stuff.Reserved, wantOrder: "o2", wantVersion: 4},
		{name: "completion of a cancelled order sells nothing", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "cancelled", order: "o1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1"},
		}, wantStatus: stuff.Available, wantVersion: 3},
		{name: "cancel after completion keeps it sold", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
			{kind: "cancelled", order: "o1"},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
		{name: "an order on a sold stuff is only recorded", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
			{kind: "created", order: "o2", buyer: "b2", changed: true},
			{kind: "cancelled", order: "o2", changed: true},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},

		// Events that contradict the listing's records change nothing.
		{name: "order of the seller", steps: []step{
			{kind: "created", order: "o1", buyer: "seller", wantErr: stuff.ErrMismatch},
		}, wantStatus: stuff.Available, wantVersion: 1},
		{name: "order without a buyer", steps: []step{
			{kind: "created", order: "o1", wantErr: stuff.ErrMismatch},
		}, wantStatus: stuff.Available, wantVersion: 1},
		{name: "order at a price from before an edit", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", tweak: price(99), changed: true},
			{kind: "completed", order: "o1", buyer: "b1", tweak: price(100), wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o1", buyer: "b1", tweak: price(99), changed: true},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
		{name: "order without a price", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", tweak: price(0), wantErr: stuff.ErrMismatch},
		}, wantStatus: stuff.Available, wantVersion: 1},
		{name: "order without a version", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", tweak: version(0), wantErr: stuff.ErrMismatch},
		}, wantStatus: stuff.Available, wantVersion: 1},
		{name: "a known order's id with another buyer", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "created", order: "o1", buyer: "b2", wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
		{name: "completion for another buyer", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "attacker", wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o1", buyer: "", wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
		{name: "completion at another price or none", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1", tweak: price(1), wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o1", buyer: "b1", tweak: price(0), wantErr: stuff.ErrMismatch},
		}, wantStatus: stuff.Reserved, wantOrder: "o1", wantVersion: 2},
		{name: "completion not after the order's creation", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1", tweak: version(1), wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o1", buyer: "b1", tweak: version(0), wantErr: stuff.ErrMismatch},
		}, wantStatus: stuff.Reserved, wantOrder: "o1", wantVersion: 2},
		{name: "completion of an order on a stuff sold to another", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
			{kind: "created", order: "o2", buyer: "b2", changed: true},
			{kind: "completed", order: "o2", buyer: "b2", wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o3", buyer: "b3", wantErr: stuff.ErrMismatch}, // never seen
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
		{name: "cancellation not after the order's creation", steps: []step{
			{kind: "created", order: "o1", buyer: "b1", changed: true},
			{kind: "cancelled", order: "o1", tweak: version(1), wantErr: stuff.ErrMismatch},
			{kind: "completed", order: "o1", buyer: "b1", changed: true},
		}, wantStatus: stuff.Sold, wantOrder: "o1", wantVersion: 3, wantBuyers: []string{"b1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := stuff.New("s1", "seller", stuff.Input{Title: "Notes", Price: 100}, t0)
			for i, st := range tc.steps {
				var changed bool
				var err error
				before := s
				before.Orders = slices.Clone(s.Orders)
				switch st.kind {
				case "created":
					changed, err = s.ApplyOrderCreated(st.ref(i), t0)
				case "cancelled":
					changed, err = s.ApplyOrderCancelled(st.ref(i), t0)
				case "completed":
					changed, err = s.ApplyOrderCompleted(st.ref(i), t0)
				}
				if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
					t.Fatalf("step %d %s(%s): err %v, want %v", i, st.kind, st.order, err, st.wantErr)
				}
				if changed != st.changed {
					t.Fatalf("step %d %s(%s): changed %v, want %v", i, st.kind, st.order, changed, st.changed)
				}
				if !changed && !reflect.DeepEqual(s, before) {
					t.Fatalf("step %d %s(%s): unchanged, yet the listing went from %+v to %+v", i, st.kind, st.order, before, s)
				}
			}
			if s.Status != tc.wantStatus || s.OrderID != tc.wantOrder || s.Version != tc.wantVersion {
				t.Fatalf("got status %s order %q version %d, want %s %q %d", s.Status, s.OrderID, s.Version, tc.wantStatus, tc.wantOrder, tc.wantVersion)
			}
			if strings.Join(s.Buyers, ",") != strings.Join(tc.wantBuyers, ",") {
				t.Fatalf("buyers %v, want %v", s.Buyers, tc.wantBuyers)
			}
			for _, b := range tc.wantBuyers {
				if !s.CanSeeDelivery(b) {
					t.Fatalf("buyer %s cannot see the delivery", b)
				}
			}
			if s.CanSeeDelivery("stranger") || s.CanSeeDelivery("") || !s.CanSeeDelivery("seller") {
				t.Fatal("delivery visibility is wrong")
			}
		})
	}
}

// TestOrderWindow: a listing remembers the order that holds it and a
// bounded window of other orders, however many come and go; a very late
// redelivery of an order dropped from the window changes nothing.
func TestOrderWindow(t *testing.T) {
	t.Parallel()
	s := stuff.New("s1", "seller", stuff.Input{Title: "Notes", Price: 100}, t0)
	deadline := func(i int) time.Time { return t0.Add(15*time.Minute + time.Duration(i)*time.Second) }
	order := func(i int) string { return fmt.Sprintf("o%03d", i) }
	mustApply := func(what string, changed bool, err error) {
		t.Helper()
		if err != nil || !changed {
			t.Fatalf("%s: changed %v, err %v", what, changed, err)
		}
	}
	const cycles = 3 * stuff.MaxEndedOrders
	for i := range cycles {
		changed, err := s.ApplyOrderCreated(createdRef(order(i), "b", deadline(i)), t0)
		mustApply("created "+order(i), changed, err)
		if s.Status != stuff.Reserved || s.OrderID != order(i) {
			t.Fatalf("%s did not reserve: %s %q", order(i), s.Status, s.OrderID)
		}
		changed, err = s.ApplyOrderCancelled(cancelledRef(order(i)), t0)
		mustApply("cancelled "+order(i), changed, err)
		if len(s.Orders) > stuff.MaxEndedOrders {
			t.Fatalf("after %d orders the listing remembers %d", i+1, len(s.Orders))
		}
	}
	if s.Status != stuff.Available || s.Version != 1+2*cycles {
		t.Fatalf("after the loop: %s version %d", s.Status, s.Version)
	}
	// The newest ended orders are still known: their redeliveries are no-ops.
	last := cycles - 1
	if changed, err := s.ApplyOrderCreated(createdRef(order(last), "b", deadline(last)), t0); changed || err != nil {
		t.Fatalf("redelivered created of a remembered order: changed %v, err %v", changed, err)
	}

	// A very late order:created of a dropped order: recorded, never reserves.
	version := s.Version
	changed, err := s.ApplyOrderCreated(createdRef(order(0), "b", deadline(0)), t0)
	mustApply("late created "+order(0), changed, err)
	if s.Status != stuff.Available || s.Version != version {
		t.Fatalf("a dropped order's late order:created took the listing: %s %q version %d", s.Status, s.OrderID, s.Version)
	}
	// Its late cancellation changes nothing either.
	if _, err := s.ApplyOrderCancelled(cancelledRef(order(0)), t0); err != nil || s.Status != stuff.Available || s.Version != version {
		t.Fatalf("late cancelled: err %v, %s version %d", err, s.Status, s.Version)
	}

	// A new order reserves as ever; while it holds, a dropped order's late
	// order:created does not wait for it (it would take the listing next).
	changed, err = s.ApplyOrderCreated(createdRef("live", "buyer", deadline(cycles)), t0)
	mustApply("created live", changed, err)
	changed, err = s.ApplyOrderCreated(createdRef(order(1), "b", deadline(1)), t0)
	mustApply("late created "+order(1)+" while held", changed, err)
	if s.Status != stuff.Reserved || s.OrderID != "live" {
		t.Fatalf("held by %q (%s), want live", s.OrderID, s.Status)
	}
	// Many more orders come and go on paper: the holder is never dropped.
	for i := cycles + 1; i < cycles+2*stuff.MaxEndedOrders; i++ {
		changed, err := s.ApplyOrderCreated(createdRef(order(i), "b", deadline(0)), t0) // late ones
		mustApply("late created "+order(i), changed, err)
	}
	if len(s.Orders) > stuff.MaxEndedOrders+1 {
		t.Fatalf("the listing remembers %d orders", len(s.Orders))
	}
	changed, err = s.ApplyOrderCompleted(completedRef("live", "buyer"), t0)
	mustApply("completed live", changed, err)
	if s.Status != stuff.Sold || s.OrderID != "live" || !s.CanSeeDelivery("buyer") {
		t.Fatalf("after completion: %s %q, buyers %v", s.Status, s.OrderID, s.Buyers)
	}
}

// TestForgottenOrderCompletes: an order taken for a forgotten one (never
// reserved) that completes after all sells the listing to its buyer.
func TestForgottenOrderCompletes(t *testing.T) {
	t.Parallel()
	s := stuff.New("s1", "seller", stuff.Input{Title: "Notes", Price: 100}, t0)
	s.Forgotten = t0.Add(time.Hour)
	if changed, err := s.ApplyOrderCreated(createdRef("o1", "buyer", t0.Add(30*time.Minute)), t0); !changed || err != nil || s.Status != stuff.Available {
		t.Fatalf("created: changed %v, err %v, %s", changed, err, s.Status)
	}
	if changed, err := s.ApplyOrderCompleted(completedRef("o1", "buyer"), t0); !changed || err != nil {
		t.Fatalf("completed: changed %v, err %v", changed, err)
	}
	if s.Status != stuff.Sold || s.OrderID != "o1" || s.Version != 2 || !s.CanSeeDelivery("buyer") {
		t.Fatalf("after completion %s %q version %d buyers %v", s.Status, s.OrderID, s.Version, s.Buyers)
	}
}

// TestCompletionOfAnOrderNotHolding: an order recorded without reserving
// the listing (it looked forgotten) is not sold the listing while another
// order holds it, which the orders service would never allow; once the
// listing is available again, its completion sells as before.
func TestCompletionOfAnOrderNotHolding(t *testing.T) {
	t.Parallel()
	s := stuff.New("s1", "seller", stuff.Input{Title: "Notes", Price: 100}, t0)
	s.Forgotten = t0.Add(time.Hour)
	if changed, err := s.ApplyOrderCreated(createdRef("late", "b1", t0.Add(30*time.Minute)), t0); !changed || err != nil || s.Status != stuff.Available {
		t.Fatalf("created late: changed %v, err %v, %s", changed, err, s.Status)
	}
	if changed, err := s.ApplyOrderCreated(createdRef("holder", "b2", t0.Add(2*time.Hour)), t0); !changed || err != nil || s.OrderID != "holder" {
		t.Fatalf("created holder: changed %v, err %v, held by %q", changed, err, s.OrderID)
	}
	if changed, err := s.ApplyOrderCompleted(completedRef("late", "b1"), t0); changed || !errors.Is(err, stuff.ErrMismatch) {
		t.Fatalf("completed late while another holds: changed %v, err %v", changed, err)
	}
	if s.Status != stuff.Reserved || s.OrderID != "holder" || s.Version != 2 || s.CanSeeDelivery("b1") {
		t.Fatalf("after the refused completion: %s %q version %d buyers %v", s.Status, s.OrderID, s.Version, s.Buyers)
	}
	if changed, err := s.ApplyOrderCancelled(cancelledRef("holder"), t0); !changed || err != nil {
		t.Fatalf("cancelled holder: changed %v, err %v", changed, err)
	}
	if changed, err := s.ApplyOrderCompleted(completedRef("late", "b1"), t0); !changed || err != nil {
		t.Fatalf("completed late: changed %v, err %v", changed, err)
	}
	if s.Status != stuff.Sold || s.OrderID != "late" || !s.CanSeeDelivery("b1") || s.CanSeeDelivery("b2") {
		t.Fatalf("after completion %s %q buyers %v", s.Status, s.OrderID, s.Buyers)
	}
}

func TestEdit(t *testing.T) {
	tests := []struct {
		name        string
		user        string
		status      stuff.Status
		in          stuff.Input
		wantErr     error
		wantChanged bool
	}{
		{name: "owner edits", user: "seller", status: stuff.Available, in: stuff.Input{Title: "New", Price: 200}, wantChanged: true},
		{name: "same values change nothing", user: "seller", status: stuff.Available, in: stuff.Input{Title: "Notes", Price: 100, Description: ptr("d")}},
		{name: "stranger", user: "other", status: stuff.Available, in: stuff.Input{Title: "New", Price: 200}, wantErr: errs.ErrNotAuthorized},
		{name: "reserved", user: "seller", status: stuff.Reserved, in: stuff.Input{Title: "New", Price: 200}, wantErr: stuff.ErrReserved},
		{name: "sold", user: "seller", status: stuff.Sold, in: stuff.Input{Title: "New", Price: 200}, wantErr: stuff.ErrReserved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stuff.New("s1", "seller", stuff.Input{Title: "Notes", Price: 100, Description: ptr("d"), Delivery: ptr("secret")}, t0)
			s.Status = tc.status
			changed, err := s.Edit(tc.user, tc.in, t0.Add(time.Second))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if changed != tc.wantChanged {
				t.Fatalf("changed %v, want %v", changed, tc.wantChanged)
			}
			wantVersion := int64(1)
			if tc.wantChanged {
				wantVersion = 2
			}
			if s.Version != wantVersion {
				t.Fatalf("version %d, want %d", s.Version, wantVersion)
			}
			if s.Delivery != "secret" {
				t.Fatalf("delivery %q: an absent delivery must keep the current one", s.Delivery)
			}
		})
	}
}

func TestInputValidate(t *testing.T) {
	tests := []struct {
		name      string
		in        stuff.Input
		wantField string
	}{
		{name: "valid", in: stuff.Input{Title: "Notes", Price: 1}},
		{name: "valid limits", in: stuff.Input{Title: strings.Repeat("é", 120), Price: 1_000_000, Description: ptr(strings.Repeat("d", 5000)), Delivery: ptr(strings.Repeat("x", 2000)), Currency: ptr("usd")}},
		{name: "empty title", in: stuff.Input{Title: "  ", Price: 1}, wantField: "title"},
		{name: "long title", in: stuff.Input{Title: strings.Repeat("a", 121), Price: 1}, wantField: "title"},
		{name: "zero price", in: stuff.Input{Title: "a", Price: 0}, wantField: "price"},
		{name: "negative price", in: stuff.Input{Title: "a", Price: -5}, wantField: "price"},
		{name: "price too high", in: stuff.Input{Title: "a", Price: 1_000_001}, wantField: "price"},
		{name: "long description", in: stuff.Input{Title: "a", Price: 1, Description: ptr(strings.Repeat("d", 5001))}, wantField: "description"},
		{name: "long delivery", in: stuff.Input{Title: "a", Price: 1, Delivery: ptr(strings.Repeat("d", 2001))}, wantField: "delivery"},
		{name: "other currency", in: stuff.Input{Title: "a", Price: 1, Currency: ptr("eur")}, wantField: "currency"},
		{name: "lines in description and delivery", in: stuff.Input{Title: "a\tb", Price: 1, Description: ptr("one\r\ntwo"), Delivery: ptr("link\n\tcode")}},
		{name: "line break in title", in: stuff.Input{Title: "a\nb", Price: 1}, wantField: "title"},
		{name: "override in title", in: stuff.Input{Title: "txt.\u202eexe", Price: 1}, wantField: "title"},
		{name: "escape in description", in: stuff.Input{Title: "a", Price: 1, Description: ptr("\x1b[2J")}, wantField: "description"},
		{name: "isolate in delivery", in: stuff.Input{Title: "a", Price: 1, Delivery: ptr("code \u2067x")}, wantField: "delivery"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var ve *errs.RequestValidationError
			if !errors.As(err, &ve) || len(ve.Items) != 1 || ve.Items[0].Field != tc.wantField {
				t.Fatalf("got %v, want one error on %s", err, tc.wantField)
			}
		})
	}
}

// createdRef, cancelledRef and completedRef are the order events of order
// as the orders service publishes them, for a listing priced 100.
func createdRef(order, buyer string, expiresAt time.Time) stuff.OrderRef {
	return stuff.OrderRef{ID: order, Version: 1, BuyerID: buyer, Price: 100, ExpiresAt: expiresAt}
}

func cancelledRef(order string) stuff.OrderRef { return stuff.OrderRef{ID: order, Version: 2} }

func completedRef(order, buyer string) stuff.OrderRef {
	return stuff.OrderRef{ID: order, Version: 2, BuyerID: buyer, Price: 100}
}
