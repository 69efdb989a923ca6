package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Stuff is the client of the stuff service (/api/stuff).
type Stuff struct{ b *base }

// Listing statuses.
const (
	StatusAvailable = "available"
	StatusReserved  = "reserved"
	StatusSold      = "sold"
)

// Listing is a piece of stuff as the stuff service shows it. Delivery is
// set only for its seller and for buyers whose order completed.
type Listing struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Price       int64     `json:"price"`
	Currency    string    `json:"currency"`
	UserID      string    `json:"userId"`
	Status      string    `json:"status"`
	OrderID     string    `json:"orderId"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	Delivery    *string   `json:"delivery"`
}

// Page is one page of available listings, newest first.
type Page struct {
	Stuff []Listing `json:"stuff"`
	Page  int       `json:"page"`
	Limit int       `json:"limit"`
	Total int       `json:"total"`
}

// ListingInput is what a seller sends to list or edit.
type ListingInput struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Price       int64  `json:"price"`
	Delivery    string `json:"delivery"`
}

// List returns page (from 1) of available listings, limit per page
// (at most 100). It is anonymous: nobody's delivery is in it.
func (c *Stuff) List(ctx context.Context, s Session, page, limit int) (Page, error) {
	q := url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(limit)}}
	var out Page
	_, err := c.b.into(ctx, call{method: http.MethodGet, path: "/api/stuff?" + q.Encode(), sess: Session{RequestID: s.RequestID, ForwardedFor: s.ForwardedFor}}, &out)
	return out, err
}

// Get returns one listing, with its delivery if the session's user may see
// it. Errors: *Error 404.
func (c *Stuff) Get(ctx context.Context, s Session, id string) (Listing, error) {
	var out Listing
	_, err := c.b.into(ctx, call{method: http.MethodGet, path: "/api/stuff/" + url.PathEscape(id), sess: s}, &out)
	return out, err
}

// Create lists a new piece of stuff. key is the Idempotency-Key of the sell
// form's submission (none when empty): the same key again gets the same
// listing. Errors: *Error 400 with field items, 401.
func (c *Stuff) Create(ctx context.Context, s Session, key string, in ListingInput) (Listing, error) {
	var out Listing
	err := c.b.create(ctx, call{method: http.MethodPost, path: "/api/stuff", body: in, sess: s, key: key}, &out)
	return out, err
}

// Update edits the session user's listing. Errors: *Error 400 (field items,
// "Cannot edit a reserved stuff"), 401 not theirs, 404.
func (c *Stuff) Update(ctx context.Context, s Session, id string, in ListingInput) (Listing, error) {
	var out Listing
	_, err := c.b.into(ctx, call{method: http.MethodPut, path: "/api/stuff/" + url.PathEscape(id), body: in, sess: s}, &out)
	return out, err
}

// Mine returns the session user's listings, any status, with delivery.
func (c *Stuff) Mine(ctx context.Context, s Session) ([]Listing, error) {
	var out struct {
		Stuff []Listing `json:"stuff"`
	}
	_, err := c.b.into(ctx, call{method: http.MethodGet, path: "/api/stuff/mine", sess: s}, &out)
	return out.Stuff, err
}
