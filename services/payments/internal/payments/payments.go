// Package payments is the payments domain: the local replica of orders, the
// rules that decide whether and how much an order may be charged, coupons,
// and the refund of a payment that lost the race with a cancellation. It
// declares what it needs from the outside world (Store, Charger) and knows
// nothing of MongoDB, Echo, NATS or Stripe.
//
// Every decision two actors may race on is a claim made by one unique-index
// insert, never a conditional update (docs/data-safety.md): the charge
// attempt of an order ("orderId:n"), a coupon redemption slot ("CODE:slot"),
// the refund of a payment (its id). The files follow the concerns: pay.go
// (claim an attempt, charge, record, re-check), refunds.go, coupons.go,
// replica.go (the orders replica), service.go (the Service and its options).
package payments

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Payment is money received (or waived by a coupon) for an order. There is
// at most one per order.
type Payment struct {
	ID       string
	OrderID  string
	UserID   string
	Amount   int64 // cents actually charged; 0 with a 100 % coupon
	Currency string
	// Provider is "stripe", "offline" (test mode) or "coupon" (nothing
	// charged); ProviderID is the provider's reference (a PaymentIntent id).
	Provider   string
	ProviderID string
	Coupon     string // code, when one was redeemed
	Redemption string // the redemption claim's id, when one was redeemed
	Attempt    int
	CreatedAt  time.Time
}

// ErrExists is returned (wrapped) by Store inserts refused by a unique key:
// a claim already taken.
var ErrExists = errors.New("already exists")

// Store keeps the replica, the claims and the records. Inserts return
// ErrExists (wrapped) on a duplicate key; reads return errs.ErrNotFound.
// Updates of existing documents go through the service's one Writer.
type Store interface {
	InsertOrder(ctx context.Context, o Order) error
	Order(ctx context.Context, id string) (Order, error)
	// SetOrderStatus moves the replica from version from to version to.
	SetOrderStatus(ctx context.Context, id string, from, to int64, status string) error

	InsertAttempt(ctx context.Context, a Attempt) error
	Attempt(ctx context.Context, orderID string, n int) (Attempt, error)
	SetAttemptState(ctx context.Context, orderID string, n int, state AttemptState, message string) error

	// InsertPayment records a payment and, in the same write, its
	// payment:created event (published by the outbox relay). ErrExists when
	// the order already has a payment.
	InsertPayment(ctx context.Context, p Payment) error
	PaymentByOrder(ctx context.Context, orderID string) (Payment, error)

	InsertRefund(ctx context.Context, r Refund) error
	Refund(ctx context.Context, paymentID string) (Refund, error)
	CompleteRefund(ctx context.Context, paymentID, providerID string, at time.Time) error
	DeleteRefund(ctx context.Context, paymentID string) error

	InsertCoupon(ctx context.Context, c Coupon) error
	Coupon(ctx context.Context, code string) (Coupon, error)
	// Coupons lists every coupon with its redemption count.
	Coupons(ctx context.Context) ([]Coupon, error)
	Redemptions(ctx context.Context, code string) ([]Redemption, error)
	InsertRedemption(ctx context.Context, r Redemption) error
	DeleteRedemption(ctx context.Context, id string) error
}

// ChargeRequest asks a provider to take Amount (cents, > 0) in Currency from
// PaymentMethod, at most once for IdempotencyKey.
type ChargeRequest struct {
	OrderID        string
	Amount         int64
	Currency       string
	PaymentMethod  string
	IdempotencyKey string
}

// ChargeResult is a successful charge.
type ChargeResult struct {
	Provider   string // "stripe" or "offline"
	ProviderID string // PaymentIntent id
}

// RefundRequest asks a provider to give back the whole of a charge.
type RefundRequest struct {
	ProviderID     string // the PaymentIntent id of the charge
	Amount         int64
	IdempotencyKey string
}

// RefundResult is a successful refund.
type RefundResult struct {
	ProviderID string // the provider's refund id
}

// Charger takes and gives back money. Charge returns *DeclinedError when the
// card is refused, *InvalidPaymentMethodError or *AmountError when the
// request cannot be charged as made (nothing was charged in all three cases),
// and any other error when the outcome is unknown. Refund of a charge that
// was already refunded succeeds.
type Charger interface {
	Charge(ctx context.Context, r ChargeRequest) (ChargeResult, error)
	Refund(ctx context.Context, r RefundRequest) (RefundResult, error)
}

// DeclinedError is a card refused by the provider. Nothing was charged, and
// the order may be paid again. Message is the provider's, meant for the
// buyer (the API shows it on the paymentMethod field).
type DeclinedError struct {
	Code    string // decline code, such as generic_decline
	Message string // "Your card was declined."
}

// Error describes the decline, for the logs.
func (e *DeclinedError) Error() string { return "card declined (" + e.Code + "): " + e.Message }

// InvalidPaymentMethodError is a payment method the provider does not know.
// Nothing was charged. Message is meant for the buyer.
type InvalidPaymentMethodError struct {
	Message string
}

// Error describes the refusal, for the logs.
func (e *InvalidPaymentMethodError) Error() string { return "invalid payment method: " + e.Message }

// AmountError is an amount the provider will not charge (below its minimum
// charge). Nothing was charged. Message is meant for the buyer.
type AmountError struct {
	Message string
}

// Error describes the refusal, for the logs.
func (e *AmountError) Error() string { return "amount refused: " + e.Message }

// ProviderError is a provider failure other than a decline (outage, bad
// configuration). The cause is for the logs, never for the buyer.
type ProviderError struct {
	Err error
}

// Error describes the failure with its cause, for the logs.
func (e *ProviderError) Error() string { return "payment provider: " + e.Err.Error() }

// Unwrap exposes the cause.
func (e *ProviderError) Unwrap() error { return e.Err }

// newID returns a random 24-hex-character id (the shape of a Mongo ObjectID).
func newID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}
