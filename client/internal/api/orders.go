package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Orders is the client of the orders service (/api/orders).
type Orders struct {
	b *base
	// stuff tells a stuff the orders service has not heard of yet from
	// one that does not exist (Create).
	stuff *Stuff
}

// Order statuses.
const (
	OrderCreated   = "created"
	OrderCancelled = "cancelled"
	OrderComplete  = "complete"
)

// Order is an order as the orders service shows it to its owner.
type Order struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	Stuff     struct {
		ID       string `json:"id"`
		Title    string `json:"title"`
		Price    int64  `json:"price"`
		Currency string `json:"currency"`
	} `json:"stuff"`
	Version int64 `json:"version"`
}

// Create orders a stuff for the session's user, holding it. key is the
// Idempotency-Key of the BUY submission (none when empty): the same key
// again gets the same order. Errors: *Error 404 unknown stuff, 400 own or
// sold stuff, 409 held by someone else.
//
// orders learns of a stuff from the stuff:created event, so it answers 404
// for a stuff listed a moment ago: when the stuff service knows the stuff,
// the 404 is retried for up to 3 s (awaitReplica) instead of telling the
// buyer it does not exist.
func (c *Orders) Create(ctx context.Context, s Session, key, stuffID string) (Order, error) {
	body := struct {
		StuffID string `json:"stuffId"`
	}{stuffID}
	create := func(attempt int) (Order, error) {
		var out Order
		err := c.b.create(ctx, call{method: http.MethodPost, path: "/api/orders", body: body, sess: s, key: attemptKey(key, attempt)}, &out)
		return out, err
	}
	listed := func() bool {
		_, err := c.stuff.Get(ctx, s, stuffID)
		return err == nil
	}
	return awaitReplica(ctx, create, listed)
}

// List returns the session user's orders, newest first.
func (c *Orders) List(ctx context.Context, s Session) ([]Order, error) {
	var out []Order
	_, err := c.b.into(ctx, call{method: http.MethodGet, path: "/api/orders", sess: s}, &out)
	return out, err
}

// Get returns one of the session user's orders. Errors: *Error 404, 401 not
// theirs.
func (c *Orders) Get(ctx context.Context, s Session, id string) (Order, error) {
	var out Order
	_, err := c.b.into(ctx, call{method: http.MethodGet, path: "/api/orders/" + url.PathEscape(id), sess: s}, &out)
	return out, err
}

// Cancel cancels one of the session user's orders, releasing the stuff.
// Errors: *Error 400 unless created, 401, 404.
func (c *Orders) Cancel(ctx context.Context, s Session, id string) error {
	_, err := c.b.do(ctx, call{method: http.MethodDelete, path: "/api/orders/" + url.PathEscape(id), sess: s})
	return err
}
