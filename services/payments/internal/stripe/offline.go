package stripe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
)

// MinimumAmount is the smallest charge Offline accepts, in the currency's
// smallest unit: Stripe's minimum for usd and eur (50 cents), so that what
// works offline also works against Stripe.
const MinimumAmount = 50

// outcome is what a test payment method does.
type outcome struct {
	declineCode string // empty: succeeds
	message     string
}

// testMethods are Stripe's test PaymentMethods
// (https://docs.stripe.com/testing#cards and #declined-payments) with the
// messages Stripe answers them with.
var testMethods = map[string]outcome{
	"pm_card_visa":               {},
	"pm_card_visa_debit":         {},
	"pm_card_mastercard":         {},
	"pm_card_mastercard_debit":   {},
	"pm_card_mastercard_prepaid": {},
	"pm_card_amex":               {},
	"pm_card_discover":           {},
	"pm_card_diners":             {},
	"pm_card_jcb":                {},
	"pm_card_unionpay":           {},
	"pm_card_us":                 {},

	"pm_card_chargeDeclined":                  {"generic_decline", "Your card was declined."},
	"pm_card_chargeDeclinedInsufficientFunds": {"insufficient_funds", "Your card has insufficient funds."},
	"pm_card_insufficientFunds":               {"insufficient_funds", "Your card has insufficient funds."},
	"pm_card_chargeDeclinedLostCard":          {"lost_card", "Your card was declined."},
	"pm_card_chargeDeclinedStolenCard":        {"stolen_card", "Your card was declined."},
	"pm_card_chargeDeclinedFraudulent":        {"fraudulent", "Your card was declined."},
	"pm_card_chargeDeclinedExpiredCard":       {"expired_card", "Your card has expired."},
	"pm_card_chargeDeclinedIncorrectCvc":      {"incorrect_cvc", "Your card's security code is incorrect."},
	"pm_card_chargeDeclinedProcessingError":   {"processing_error", "An error occurred while processing your card. Try again in a little bit."},
}

type offlineResult struct {
	res payments.ChargeResult
	err error
}

// Offline is the test mode used when no Stripe key is configured: no
// network, Stripe's test payment methods, idempotency keys honoured as
// Stripe does (a repeated key gets the first answer), and each charge
// refundable once. Its state lives in memory; the payments themselves are
// recorded by the service as with Stripe.
type Offline struct {
	mu       sync.Mutex
	byKey    map[string]offlineResult
	charges  map[string]int64  // PaymentIntent id -> amount
	refunded map[string]string // PaymentIntent id -> refund id
}

var _ payments.Charger = (*Offline)(nil)

// NewOffline returns an empty Offline.
func NewOffline() *Offline {
	return &Offline{byKey: map[string]offlineResult{}, charges: map[string]int64{}, refunded: map[string]string{}}
}

// Charge succeeds for Stripe's success test methods (pm_card_visa, ...),
// declines with Stripe's message for the decline ones
// (pm_card_chargeDeclined, pm_card_insufficientFunds, ...), and refuses any
// other payment method and amounts under MinimumAmount.
func (o *Offline) Charge(_ context.Context, r payments.ChargeRequest) (payments.ChargeResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev, ok := o.byKey[r.IdempotencyKey]; ok && r.IdempotencyKey != "" {
		return prev.res, prev.err
	}
	res, err := o.charge(r)
	if r.IdempotencyKey != "" {
		o.byKey[r.IdempotencyKey] = offlineResult{res, err}
	}
	return res, err
}

func (o *Offline) charge(r payments.ChargeRequest) (payments.ChargeResult, error) {
	if r.Amount < MinimumAmount {
		return payments.ChargeResult{}, &payments.AmountError{Message: fmt.Sprintf("Amount must be at least %d cents", MinimumAmount)}
	}
	out, ok := testMethods[r.PaymentMethod]
	if !ok {
		return payments.ChargeResult{}, &payments.InvalidPaymentMethodError{Message: fmt.Sprintf(
			"No such PaymentMethod: '%s' (offline test mode accepts Stripe's test payment methods, such as pm_card_visa or pm_card_chargeDeclined)", r.PaymentMethod)}
	}
	if out.declineCode != "" {
		return payments.ChargeResult{}, &payments.DeclinedError{Code: out.declineCode, Message: out.message}
	}
	id := "pi_offline_" + randomHex()
	o.charges[id] = r.Amount
	return payments.ChargeResult{Provider: "offline", ProviderID: id}, nil
}

// Refund refunds a charge made by this Offline, once: a second refund of the
// same charge returns the first refund's id.
func (o *Offline) Refund(_ context.Context, r payments.RefundRequest) (payments.RefundResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.charges[r.ProviderID]; !ok {
		return payments.RefundResult{}, fmt.Errorf("offline refund: no such payment_intent: '%s'", r.ProviderID)
	}
	if id, ok := o.refunded[r.ProviderID]; ok {
		return payments.RefundResult{ProviderID: id}, nil
	}
	id := "re_offline_" + randomHex()
	o.refunded[r.ProviderID] = id
	return payments.RefundResult{ProviderID: id}, nil
}

// Refunded returns the refund id of a charge, if it was refunded.
func (o *Offline) Refunded(providerID string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id, ok := o.refunded[providerID]
	return id, ok
}

func randomHex() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}
