package web

import (
	"context"
	"time"
)

// Idempotency is the Idempotency-Key of a request being answered for the
// first time (or again, after the first try died without an answer).
type Idempotency struct {
	Key string
	// Since is when the key was first claimed; it is the same for every try.
	Since time.Time
}

type idemKey struct{}

// WithIdempotency returns ctx carrying the request's Idempotency-Key.
func WithIdempotency(ctx context.Context, i Idempotency) context.Context {
	return context.WithValue(ctx, idemKey{}, i)
}

// IdempotencyOf returns the request's Idempotency-Key, if it has one. A
// handler that creates something mints its id from it (and from Since, not
// from the clock), so that a try after a crash finds what the first try
// created instead of making a second one.
func IdempotencyOf(ctx context.Context) (Idempotency, bool) {
	i, ok := ctx.Value(idemKey{}).(Idempotency)
	return i, ok
}
