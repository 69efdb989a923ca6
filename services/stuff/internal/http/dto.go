package http

import (
	"encoding/json"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
)

// stuffRequest is the body of POST and PUT /api/stuff. Decoding is strict
// (web.Bind): unknown fields, wrong types (a float or string price, an
// operator object as title) are 400s before any rule runs. On PUT, an absent
// description or delivery keeps the current one.
type stuffRequest struct {
	Title       string  `json:"title"`
	Description *string `json:"description"`
	Price       int64   `json:"price"`
	Currency    *string `json:"currency"`
	Delivery    *string `json:"delivery"`
}

func (r stuffRequest) input() stuff.Input {
	return stuff.Input{Title: r.Title, Description: r.Description, Price: r.Price, Currency: r.Currency, Delivery: r.Delivery}
}

// stuffJSON is a listing as clients see it: no _id, no outbox, no
// bookkeeping; delivery only for who may see it.
type stuffJSON struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Description string  `json:"description"`
	Price       int64   `json:"price"`
	Currency    string  `json:"currency"`
	UserID      string  `json:"userId"`
	Status      string  `json:"status"`
	OrderID     string  `json:"orderId,omitempty"`
	Version     int64   `json:"version"`
	CreatedAt   string  `json:"createdAt"`
	Delivery    *string `json:"delivery,omitempty"`
}

// Encode returns the JSON of s, with its delivery content when withDelivery
// is set (the caller decides who may see it). It is the catalog's encoder,
// so every response of the service has one shape.
func Encode(s *stuff.Stuff, withDelivery bool) []byte {
	v := stuffJSON{ID: s.ID, Title: s.Title, Description: s.Description, Price: s.Price, Currency: s.Currency,
		UserID: s.UserID, Status: string(s.Status), OrderID: s.OrderID, Version: s.Version,
		CreatedAt: s.CreatedAt.UTC().Format(time.RFC3339Nano)}
	if withDelivery {
		d := s.Delivery
		v.Delivery = &d
	}
	// Strings and integers only: encoding/json cannot fail on them.
	b, _ := json.Marshal(v)
	return b
}
