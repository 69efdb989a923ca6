package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Payments is the client of the payments service (/api/payments).
type Payments struct {
	b          *base
	payTimeout time.Duration
}

// PayInput pays an order with a payment method and/or a coupon code.
type PayInput struct {
	OrderID       string `json:"orderId"`
	PaymentMethod string `json:"paymentMethod,omitempty"`
	Coupon        string `json:"coupon,omitempty"`
}

// Payment is a recorded payment.
type Payment struct {
	ID      string `json:"id"`
	OrderID string `json:"orderId"`
	Amount  int64  `json:"amount"`
}

// Pay pays an order. key is the Idempotency-Key of the payment form's
// submission (none when empty): the same key again gets the same payment,
// never a second charge. Errors: *Error 400 (declined card on the
// paymentMethod field, coupon errors on the coupon field, cancelled, expired
// or already paid), 401 not the buyer, 404 unknown order.
//
// payments learns of an order from the order:created event, which may trail
// the order's creation by a few milliseconds: a 404 is retried for up to 3 s
// (awaitReplica), so a buyer who pays at once is not told the order does not
// exist.
func (c *Payments) Pay(ctx context.Context, s Session, key string, in PayInput) (Payment, error) {
	return awaitReplica(ctx, func(attempt int) (Payment, error) {
		var out Payment
		err := c.b.create(ctx, call{method: http.MethodPost, path: "/api/payments", body: in, sess: s, timeout: c.payTimeout, key: attemptKey(key, attempt)}, &out)
		return out, err
	}, nil)
}

// CheckoutInput asks payments to start a card checkout of an order: the
// buyer pays on the card processor's hosted page (Stripe Checkout, or the
// payments service's offline stand-in), which sends the buyer back to
// SuccessURL once paid or to CancelURL when they give up. Both are absolute
// http(s) URLs of the storefront's public origin.
type CheckoutInput struct {
	OrderID    string `json:"orderId"`
	Coupon     string `json:"coupon,omitempty"`
	SuccessURL string `json:"successUrl"`
	CancelURL  string `json:"cancelUrl"`
}

// Checkout is payments' answer to a checkout: where to send the buyer to
// pay (URL, of the session ID), or Completed when a coupon made the order
// free and it is paid already (no URL then).
type Checkout struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	Completed bool   `json:"completed"`
}

// Checkout starts (or, for an order that has an open one, reuses) the
// card checkout of an order. key is the Idempotency-Key of the "Pay by
// card" form's submission: the same key again gets the same answer. Errors:
// *Error 400 (a bad coupon on the coupon field, an order that can no longer
// be paid), 401 not signed in, 404 unknown order or not the buyer's. An
// answer that is neither completed nor a usable http(s) URL is an error.
//
// Like Pay, a 404 is retried for up to 3 s while payments' replica of a new
// order catches up (awaitReplica).
func (c *Payments) Checkout(ctx context.Context, s Session, key string, in CheckoutInput) (Checkout, error) {
	out, err := awaitReplica(ctx, func(attempt int) (Checkout, error) {
		var out Checkout
		err := c.b.create(ctx, call{method: http.MethodPost, path: "/api/payments/checkout", body: in, sess: s, timeout: c.payTimeout, key: attemptKey(key, attempt)}, &out)
		return out, err
	}, nil)
	if err != nil || out.Completed {
		return out, err
	}
	if u, perr := url.Parse(out.URL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Checkout{}, fmt.Errorf("payments POST /api/payments/checkout: answer has no checkout URL (%q)", out.URL)
	}
	return out, nil
}

// ConfirmCheckout tells payments that the buyer is back from card checkout
// session sessionID of an order (the session id Stripe puts in the success
// URL): payments asks the card processor about the session and records its
// payment if the processor's webhook has not. It answers whether a payment
// of the order is recorded: the order then completes a moment later (its
// events), unless it was cancelled meanwhile and the payment is refunded.
// Safe to call again. Errors: *Error 404 (not the buyer's order,
// not its session), 502 (the processor could not be asked).
func (c *Payments) ConfirmCheckout(ctx context.Context, s Session, orderID, sessionID string) (bool, error) {
	var out struct {
		Paid bool `json:"paid"`
	}
	_, err := c.b.into(ctx, call{method: http.MethodPost, path: "/api/payments/checkout/confirm",
		body: map[string]string{"orderId": orderID, "sessionId": sessionID}, sess: s, timeout: c.payTimeout}, &out)
	return out.Paid, err
}

// NewCoupon is an admin's coupon request. MaxRedemptions and ExpiresAt are
// optional (unlimited).
type NewCoupon struct {
	PercentOff     int     `json:"percentOff"`
	MaxRedemptions *int    `json:"maxRedemptions,omitempty"`
	ExpiresAt      *string `json:"expiresAt,omitempty"`
}

// Coupon is a coupon as admins see it.
type Coupon struct {
	Code           string     `json:"code"`
	PercentOff     int        `json:"percentOff"`
	MaxRedemptions *int       `json:"maxRedemptions"`
	ExpiresAt      *time.Time `json:"expiresAt"`
	Redemptions    int        `json:"redemptions"`
}

// CreateCoupon creates a coupon (admins only). Errors: *Error 400 with
// field items, 401.
func (c *Payments) CreateCoupon(ctx context.Context, s Session, in NewCoupon) (Coupon, error) {
	var out Coupon
	_, err := c.b.into(ctx, call{method: http.MethodPost, path: "/api/payments/coupons", body: in, sess: s}, &out)
	return out, err
}

// Coupons lists every coupon (admins only).
func (c *Payments) Coupons(ctx context.Context, s Session) ([]Coupon, error) {
	var out []Coupon
	_, err := c.b.into(ctx, call{method: http.MethodGet, path: "/api/payments/coupons", sess: s}, &out)
	return out, err
}
