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
	// Highlight is set in the answers of a search (Query.Q): where the
	// words matched.
	Highlight *Highlight `json:"highlight"`
}

// Highlight is where a search matched a listing: its title, and a fragment
// of its description around the first match, each as segments that joined
// give the text back ("…" segments where the fragment cuts the
// description). The segments are the seller's text: escape every one.
type Highlight struct {
	Title       []Segment `json:"title"`
	Description []Segment `json:"description"`
}

// Segment is a piece of highlighted text; Match marks a matched word.
type Segment struct {
	Text  string `json:"text"`
	Match bool   `json:"match"`
}

// Page is one page of available listings, in the order asked for.
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

// Sort orders of Find (Query.Sort).
const (
	SortNewest    = "newest"
	SortPriceAsc  = "price_asc"
	SortPriceDesc = "price_desc"
	// SortRelevance needs a search (Query.Q).
	SortRelevance = "relevance"
)

// Query is a search, sort and filter of the available listings (GET
// /api/stuff, services/stuff/README.md): every field left zero is the
// service's default (everything, newest first; by relevance with Q).
type Query struct {
	// Q is the words to search for (at most 200 characters, 12 words).
	Q string
	// Sort is one of the Sort constants; "" is the service's default.
	Sort string
	// Min and Max bound the price, in cents (nil: no bound).
	Min, Max *int64
	// Seller is a user id: only that seller's listings.
	Seller string
	// Page is from 1 (0: 1); Limit at most 100 (0: the service's 20).
	Page, Limit int
}

// values is q as GET /api/stuff's query parameters.
func (q Query) values() url.Values {
	v := url.Values{}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.Min != nil {
		v.Set("min", strconv.FormatInt(*q.Min, 10))
	}
	if q.Max != nil {
		v.Set("max", strconv.FormatInt(*q.Max, 10))
	}
	if q.Seller != "" {
		v.Set("seller", q.Seller)
	}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Find returns a page of the available listings that q asks for: a search
// (with each listing's Highlight), sorted, in a price range, of one
// seller. It is anonymous: nobody's delivery is in it. Errors: *Error 400
// with an item per bad parameter, its Field the parameter ("q", "min").
func (c *Stuff) Find(ctx context.Context, s Session, q Query) (Page, error) {
	var out Page
	_, err := c.b.into(ctx, call{method: http.MethodGet, path: "/api/stuff?" + q.values().Encode(), sess: Session{RequestID: s.RequestID, ForwardedFor: s.ForwardedFor}}, &out)
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
