// Package payments is the payments domain: the local replica of orders, the
// rules that decide whether and how much an order may be charged, coupons,
// and the refund of a payment that lost the race with a cancellation. It
// declares what it needs from the outside world (Store, Charger, Checkout)
// and knows nothing of MongoDB, Echo, NATS or Stripe.
//
// Every decision two actors may race on is a claim made by one unique-index
// insert, never a conditional update (docs/data-safety.md): the charge
// attempt of an order ("orderId:n"), a coupon redemption slot ("CODE:slot"),
// the refund owed for a payment (its id), the handling of a provider's event
// (its id). A payment by payment method moves money only through the order's
// one PaymentIntent, whose id is stored before it is confirmed, so that a
// charge whose answer was lost is looked up, never made again. A payment on
// the provider's checkout page is an attempt too: one open session per
// order, made with the attempt's idempotency key, whose signed event records
// the payment through the same path. A refund is an obligation stored before
// it is asked for, retried until the provider confirms it (docs/flows.md).
//
// The files follow the concerns: pay.go (claim an attempt, charge, record,
// re-check), checkout.go (attempts paid on the provider's checkout page, and
// the provider's events about them), reconcile.go (what became of an attempt
// whose holder is gone, the cancellation of an order, the sweeper),
// refunds.go, coupons.go, replica.go (the orders replica), service.go (the
// Service and its options).
package payments

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Payment is money received (or waived by a coupon) for an order. There is
// at most one per order; its id is minted before the charge (from the
// request's Idempotency-Key when it has one) and kept on the attempt.
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
// Updates of existing documents go through the service's one Writer, and
// those that move a claim from one state to another are guarded by the
// state they move it from (they report whether it still was).
type Store interface {
	InsertOrder(ctx context.Context, o Order) error
	Order(ctx context.Context, id string) (Order, error)
	// SetOrderStatus moves the replica from version from to version to.
	SetOrderStatus(ctx context.Context, id string, from, to int64, status string) error

	InsertAttempt(ctx context.Context, a Attempt) error
	Attempt(ctx context.Context, orderID string, n int) (Attempt, error)
	// UpdateAttempt writes a's state, message and intent if the stored
	// attempt is still in state from.
	UpdateAttempt(ctx context.Context, a Attempt, from AttemptState) (bool, error)
	// OpenAttempts lists the attempts charging, unknown or in checkout: a
	// scan, for the sweeper.
	OpenAttempts(ctx context.Context) ([]Attempt, error)

	// InsertPayment records a payment and, in the same write, its
	// payment:created event (published by the outbox relay). ErrExists when
	// the payment, or another payment of its order, is recorded already.
	InsertPayment(ctx context.Context, p Payment) error
	Payment(ctx context.Context, id string) (Payment, error)

	InsertRefund(ctx context.Context, r Refund) error
	Refund(ctx context.Context, paymentID string) (Refund, error)
	// UpdateRefund writes r's state, provider id, key generation, tries and
	// last error if the stored refund is still pending.
	UpdateRefund(ctx context.Context, r Refund) (bool, error)
	// PendingRefunds lists the refunds owed: a scan, for the sweeper.
	PendingRefunds(ctx context.Context) ([]Refund, error)

	// InsertEvent claims a provider event for handling; ErrExists when it
	// was claimed before (Event tells whether that handling finished).
	InsertEvent(ctx context.Context, e ProviderEvent) error
	Event(ctx context.Context, id string) (ProviderEvent, error)
	// FinishEvent records that event id was handled.
	FinishEvent(ctx context.Context, id string, at time.Time) error

	InsertCoupon(ctx context.Context, c Coupon) error
	Coupon(ctx context.Context, code string) (Coupon, error)
	// Coupons lists every coupon with its redemption count.
	Coupons(ctx context.Context) ([]Coupon, error)
	Redemptions(ctx context.Context, code string) ([]Redemption, error)
	InsertRedemption(ctx context.Context, r Redemption) error
	// DeleteRedemption frees redemption id if order orderID still holds it
	// (a slot freed once may be another order's since).
	DeleteRedemption(ctx context.Context, id, orderID string) (bool, error)
}

// IntentStatus is where a PaymentIntent is, as far as money is concerned.
type IntentStatus string

// Intent statuses.
const (
	// IntentOpen took no money and may be confirmed (again).
	IntentOpen IntentStatus = "open"
	// IntentProcessing is being charged: the provider has not decided.
	IntentProcessing IntentStatus = "processing"
	// IntentSucceeded took the money.
	IntentSucceeded IntentStatus = "succeeded"
	// IntentCanceled took no money and never will.
	IntentCanceled IntentStatus = "canceled"
)

// Intent is an order's PaymentIntent: one per order, made before the first
// charge, confirmed again with another payment method after a decline. The
// provider charges an intent at most once, so an order is never charged
// twice whatever happens to the answers.
type Intent struct {
	ID       string
	Provider string // "stripe" or "offline"
	Status   IntentStatus
	// Amount is what it took when succeeded, otherwise what it would take.
	Amount int64
	// Declined is why its last confirm was refused, when open.
	Declined *DeclinedError
}

// IntentRequest asks a provider for an order's PaymentIntent of Amount
// (cents) in Currency, made once for IdempotencyKey. Nothing is charged.
type IntentRequest struct {
	OrderID        string
	Amount         int64
	Currency       string
	IdempotencyKey string
}

// ConfirmRequest asks a provider to charge intent IntentID with
// PaymentMethod, at most once for IdempotencyKey.
type ConfirmRequest struct {
	IntentID       string
	PaymentMethod  string
	IdempotencyKey string
}

// RefundRequest asks a provider to give back the whole of a charge.
type RefundRequest struct {
	IntentID       string // the PaymentIntent of the charge
	Amount         int64
	IdempotencyKey string
}

// RefundResult is a successful refund.
type RefundResult struct {
	ProviderID string // the provider's refund id
}

// Charger takes and gives back money through PaymentIntents. Money moves
// only in Confirm, of an intent whose id the caller stored first, so that
// whatever becomes of the answer, Intent tells what happened.
//
// Errors of every call: ErrNoSuchIntent, ErrIntentNotOpen (it succeeded,
// is processing or was canceled: ask Intent), *ProviderError (an outage: the
// outcome of a Confirm or a Refund is then unknown). NewIntent and SetAmount
// also return *AmountError; Confirm returns *DeclinedError and
// *InvalidPaymentMethodError (nothing was charged in these cases). A Refund
// of a charge already refunded succeeds.
//
// One interface of six calls rather than several small ones: they are the
// steps of one protocol with one provider, and the domain needs them all.
type Charger interface {
	NewIntent(ctx context.Context, r IntentRequest) (Intent, error)
	// SetAmount changes what an open intent will take.
	SetAmount(ctx context.Context, intentID string, amount int64, idempotencyKey string) error
	Confirm(ctx context.Context, r ConfirmRequest) (Intent, error)
	Intent(ctx context.Context, intentID string) (Intent, error)
	// CancelIntent closes an open intent, so that nothing can charge it.
	CancelIntent(ctx context.Context, intentID string) (Intent, error)
	Refund(ctx context.Context, r RefundRequest) (RefundResult, error)
}

// Charger errors.
var (
	ErrNoSuchIntent  = errors.New("no such payment intent")
	ErrIntentNotOpen = errors.New("payment intent is not open")
)

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
// configuration). The cause is for the logs, never for the buyer. Answered
// says the provider answered and keeps that answer for the request's
// idempotency key (a retry with the same key gets it again, so a retry that
// should do the work needs another key); otherwise the request may or may
// not have been applied, and a retry with the same key finds out.
type ProviderError struct {
	Err      error
	Answered bool
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
