package listeners

import (
	"testing"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/events"
)

// TestStuffMapping: a stuff payload becomes the replica's Stuff field by
// field, and the fields a payload may leave out take the stuff service's
// meaning of their absence.
func TestStuffMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   events.StuffData
		want orders.Stuff
	}{
		{"every field",
			events.StuffData{ID: "s1", Version: 3, Title: "Notes", Price: 1250, Currency: "eur", UserID: "u1", OrderID: "o1", Status: orders.StuffSold},
			orders.Stuff{ID: "s1", Version: 3, Title: "Notes", Price: 1250, Currency: "eur", SellerID: "u1", OrderID: "o1", Status: orders.StuffSold}},
		{"no status, no order: available",
			events.StuffData{ID: "s1", Version: 1, UserID: "u1"},
			orders.Stuff{ID: "s1", Version: 1, Currency: "usd", SellerID: "u1", Status: orders.StuffAvailable}},
		{"no status, an order: reserved",
			events.StuffData{ID: "s1", Version: 2, UserID: "u1", OrderID: "o1"},
			orders.Stuff{ID: "s1", Version: 2, Currency: "usd", SellerID: "u1", OrderID: "o1", Status: orders.StuffReserved}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := stuff(tc.in); got != tc.want {
				t.Fatalf("stuff(%+v) = %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}
