package stuff_test

import (
	"errors"
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
	wantErr error // nil or stuff.ErrNotYet
	changed bool
}

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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := stuff.New("s1", "seller", stuff.Input{Title: "Notes", Price: 100}, t0)
			for i, st := range tc.steps {
				var changed bool
				var err error
				switch st.kind {
				case "created":
					changed, err = s.ApplyOrderCreated(st.order, st.buyer, t0)
				case "cancelled":
					changed, err = s.ApplyOrderCancelled(st.order, t0)
				case "completed":
					changed, err = s.ApplyOrderCompleted(st.order, st.buyer, t0)
				}
				if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
					t.Fatalf("step %d %s(%s): err %v, want %v", i, st.kind, st.order, err, st.wantErr)
				}
				if changed != st.changed {
					t.Fatalf("step %d %s(%s): changed %v, want %v", i, st.kind, st.order, changed, st.changed)
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
