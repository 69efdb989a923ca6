package http

import (
	"time"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// createRequest is the body of POST /api/orders.
type createRequest struct {
	StuffID string `json:"stuffId"`
}

// Validate requires a stuff id; its shape is checked by the service (a
// malformed id is an unknown stuff: 404).
func (r createRequest) Validate() error {
	var v validate.Errors
	v.Check(r.StuffID != "", "stuffId", "Stuff id is required")
	return v.Err()
}

// stuffJSON is an order's stuff as it was when bought.
type stuffJSON struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
}

// orderJSON is an order as the API shows it to its owner.
type orderJSON struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	Stuff     stuffJSON `json:"stuff"`
	Version   int64     `json:"version"`
}

func toJSON(o orders.Order) orderJSON {
	return orderJSON{
		ID:        o.ID,
		Status:    o.Status,
		UserID:    o.UserID,
		ExpiresAt: o.ExpiresAt.UTC(),
		CreatedAt: o.CreatedAt.UTC(),
		Stuff:     stuffJSON{ID: o.Stuff.ID, Title: o.Stuff.Title, Price: o.Stuff.Price, Currency: o.Stuff.Currency},
		Version:   o.Version,
	}
}

func listJSON(list []orders.Order) []orderJSON {
	out := make([]orderJSON, len(list))
	for i, o := range list {
		out[i] = toJSON(o)
	}
	return out
}
