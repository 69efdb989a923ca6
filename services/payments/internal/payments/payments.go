// Package payments is the payments domain: the local replica of orders, the
// rules that decide whether and how much an order may be charged, coupons,
// and the refund of a payment that lost the race with a cancellation. It
// declares what it needs from the outside world (Store, Charger) and knows
// nothing of MongoDB, Echo, NATS or Stripe.
//
// Every decision two actors may race on is a claim made by one unique-index
// insert (SPEC §8): the charge attempt of an order ("orderId:n"), a coupon
// redemption slot ("CODE:slot"), the refund of a payment (its id).
package payments

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Order statuses of the replica (the same words as in order events).
const (
	StatusCreated   = "created"
	StatusCancelled = "cancelled"
	StatusComplete  = "complete"
)

// Order is the local replica of an order: what paying for it needs.
type Order struct {
	ID        string
	UserID    string
	Price     int64 // cents
	Status    string
	Version   int64
	ExpiresAt time.Time
}

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

// AttemptState is where a charge attempt is.
type AttemptState string

// Attempt states. Charging is the claim itself; declined and failed release
// the order for another attempt; succeeded and refunded are final.
const (
	AttemptCharging  AttemptState = "charging"
	AttemptDeclined  AttemptState = "declined"
	AttemptFailed    AttemptState = "failed"
	AttemptSucceeded AttemptState = "succeeded"
	AttemptRefunded  AttemptState = "refunded"
)

// Attempt is the claim of the n-th try to pay an order. Inserting attempt n
// is what makes a request the one that may charge; its key "orderId:n" is
// unique, so of two simultaneous requests exactly one gets it.
type Attempt struct {
	OrderID   string
	N         int
	State     AttemptState
	PaymentID string // the id the payment will have if this attempt succeeds
	Message   string // why it was declined or failed
	At        time.Time
}

// Coupon is an admin-made discount code.
type Coupon struct {
	Code       string
	PercentOff int
	// MaxRedemptions is how many orders may use it; 0 is unlimited.
	MaxRedemptions int
	// ExpiresAt is when it stops working; zero never.
	ExpiresAt   time.Time
	Redemptions int // filled by listings
	CreatedBy   string
	CreatedAt   time.Time
}

// Expired reports whether the coupon no longer works at now.
func (c Coupon) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// Apply returns what an order of price cents costs with the coupon:
// price × (100 − percentOff) / 100, rounded down to a whole cent, so the
// buyer never pays a fraction of a cent more than the stated discount.
func (c Coupon) Apply(price int64) int64 {
	return price * int64(100-c.PercentOff) / 100
}

// Redemption is the claim of one use of a coupon by one order. For a limited
// coupon its ID is "CODE:slot" with slot in 1..MaxRedemptions, so no more
// than MaxRedemptions can exist; for an unlimited one it is
// "CODE:order:orderId".
type Redemption struct {
	ID      string
	Code    string
	Slot    int // 0 for unlimited coupons
	OrderID string
	At      time.Time
}

// RefundState is where a refund is.
type RefundState string

// Refund states: pending is the claim; done is final.
const (
	RefundPending RefundState = "pending"
	RefundDone    RefundState = "done"
)

// Refund is the claim, then the record, of giving a payment's money back. Its
// key is the payment id, so a payment is refunded at most once.
type Refund struct {
	PaymentID  string
	OrderID    string
	Amount     int64
	State      RefundState
	Nonce      string // part of the provider idempotency key of this claim
	ProviderID string // the provider's refund id
	At         time.Time
	DoneAt     time.Time
}

// ErrExists is returned (wrapped) by Store inserts refused by a unique key:
// a claim already taken.
var ErrExists = errors.New("already exists")

// ErrOutOfOrder is returned by the replica when an event is ahead of it (an
// earlier version is not applied yet): the event must be retried later.
var ErrOutOfOrder = errors.New("order event ahead of the replica")

// ErrRefundInProgress is returned when another actor holds the refund claim
// of a payment and has not finished: retry later.
var ErrRefundInProgress = errors.New("refund in progress elsewhere")

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

// DeclinedError is a card refused by the provider (HTTP 402 with the
// provider's message, meant for the buyer). Nothing was charged.
type DeclinedError struct {
	Code    string // decline code, such as generic_decline
	Message string // "Your card was declined."
}

func (e *DeclinedError) Error() string { return "card declined (" + e.Code + "): " + e.Message }

// StatusCode is 402 Payment Required.
func (e *DeclinedError) StatusCode() int { return http.StatusPaymentRequired }

// Serialize shows the provider's message on the payment method field.
func (e *DeclinedError) Serialize() []errs.Item {
	return []errs.Item{{Message: e.Message, Field: "paymentMethod"}}
}

// InvalidPaymentMethodError is a payment method the provider does not know
// (400). Nothing was charged.
type InvalidPaymentMethodError struct {
	Message string
}

func (e *InvalidPaymentMethodError) Error() string { return "invalid payment method: " + e.Message }

// StatusCode is 400.
func (e *InvalidPaymentMethodError) StatusCode() int { return http.StatusBadRequest }

// Serialize names the paymentMethod field.
func (e *InvalidPaymentMethodError) Serialize() []errs.Item {
	return []errs.Item{{Message: e.Message, Field: "paymentMethod"}}
}

// AmountError is an amount the provider will not charge (below its minimum
// charge, 400). Nothing was charged.
type AmountError struct {
	Message string
}

func (e *AmountError) Error() string { return "amount refused: " + e.Message }

// StatusCode is 400.
func (e *AmountError) StatusCode() int { return http.StatusBadRequest }

// Serialize shows the provider's message.
func (e *AmountError) Serialize() []errs.Item { return []errs.Item{{Message: e.Message}} }

// ProviderError is a provider failure other than a decline (outage, bad
// configuration): 502 for the client, the cause for the logs.
type ProviderError struct {
	Err error
}

func (e *ProviderError) Error() string { return "payment provider: " + e.Err.Error() }

// Unwrap exposes the cause.
func (e *ProviderError) Unwrap() error { return e.Err }

// StatusCode is 502 Bad Gateway.
func (e *ProviderError) StatusCode() int { return http.StatusBadGateway }

// Serialize hides the cause.
func (e *ProviderError) Serialize() []errs.Item {
	return []errs.Item{{Message: "The payment provider could not be reached, please try again"}}
}

// Client-facing refusals of Pay.
var (
	ErrOrderCancelled = errs.BadRequest("Cannot pay for a cancelled order")
	ErrOrderExpired   = errs.BadRequest("Cannot pay for an expired order")
	ErrAlreadyPaid    = errs.BadRequest("Order has already been paid")
	ErrInProgress     = errs.BadRequest("A payment for this order is already in progress")
	ErrTooManyTries   = errs.BadRequest("Too many payment attempts for this order")
	ErrCouponUnknown  = &errs.BadRequestError{Message: "Coupon code is not valid", Field: "coupon"}
	ErrCouponExpired  = &errs.BadRequestError{Message: "Coupon has expired", Field: "coupon"}
	ErrCouponUsedUp   = &errs.BadRequestError{Message: "Coupon has been used up", Field: "coupon"}
)

// newID returns a random 24-hex-character id (the shape of a Mongo ObjectID).
func newID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// codeEncoding spells coupon codes: upper-case letters and digits 2-7, no
// padding, so codes are easy to read out and type.
var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// CodeLen is the length of a coupon code: 16 base32 characters, 80 random
// bits.
const CodeLen = 16

// NewCode returns a random, unguessable coupon code.
func NewCode() string {
	b := make([]byte, CodeLen*5/8)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return codeEncoding.EncodeToString(b)
}

// validCode reports whether s is spelled like a coupon code (after
// normalization to upper case); anything else is not looked up.
func validCode(s string) bool {
	if len(s) != CodeLen {
		return false
	}
	_, err := codeEncoding.DecodeString(s)
	return err == nil
}

// attemptKey is the idempotency key of charge attempt n of an order: the
// same attempt retried by the provider client is answered from the
// provider's idempotency cache, while a new attempt after a decline is not.
func attemptKey(orderID string, n int) string {
	return fmt.Sprintf("payment-%s-%d", orderID, n)
}
