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

type offlineIntent struct {
	id       string
	amount   int64
	status   payments.IntentStatus
	declined *payments.DeclinedError
	refund   string // refund id, once refunded
}

type offlineAnswer struct {
	in  payments.Intent
	err error
}

// Offline is the test mode used when no Stripe key is configured: no
// network, Stripe's test payment methods, and Stripe's rules for what
// matters here: one PaymentIntent per order, confirmed again after a
// decline, charged at most once, refundable once; idempotency keys honoured
// (a repeated key gets the first answer). Its state lives in memory, so
// after a restart it knows no earlier intent (ErrNoSuchIntent: the service
// then takes them as not charged, which in this mode they were not); the
// payments themselves are recorded by the service as with Stripe.
type Offline struct {
	mu      sync.Mutex
	byKey   map[string]offlineAnswer
	intents map[string]*offlineIntent
	// paid is the payment of each Checkout Session paid on the stand-in
	// page: one PaymentIntent per session, as at Stripe.
	paid map[string]paidSession
}

// paidSession is the PaymentIntent that paid an offline session, and in
// which currency.
type paidSession struct {
	intent   string
	currency string
}

var (
	_ payments.Charger  = (*Offline)(nil)
	_ payments.Checkout = (*Offline)(nil)
)

// NewOffline returns an empty Offline.
func NewOffline() *Offline {
	return &Offline{byKey: map[string]offlineAnswer{}, intents: map[string]*offlineIntent{}, paid: map[string]paidSession{}}
}

// once answers key with the first answer given to it, or with do's.
func (o *Offline) once(key string, do func() (payments.Intent, error)) (payments.Intent, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if prev, ok := o.byKey[key]; ok && key != "" {
		return prev.in, prev.err
	}
	in, err := do()
	if key != "" {
		o.byKey[key] = offlineAnswer{in, err}
	}
	return in, err
}

func (o *Offline) intent(id string) (*offlineIntent, error) {
	in, ok := o.intents[id]
	if !ok {
		return nil, fmt.Errorf("%w: offline: no such payment_intent: '%s'", payments.ErrNoSuchIntent, id)
	}
	return in, nil
}

func (in *offlineIntent) view() payments.Intent {
	return payments.Intent{ID: in.id, Provider: "offline", Status: in.status, Amount: in.amount, Declined: in.declined}
}

func minimum(amount int64) error {
	if amount < MinimumAmount {
		return &payments.AmountError{Message: fmt.Sprintf("Amount must be at least %d cents", MinimumAmount)}
	}
	return nil
}

// NewIntent makes an open intent; amounts under MinimumAmount are refused.
func (o *Offline) NewIntent(_ context.Context, r payments.IntentRequest) (payments.Intent, error) {
	return o.once(r.IdempotencyKey, func() (payments.Intent, error) {
		if err := minimum(r.Amount); err != nil {
			return payments.Intent{}, err
		}
		in := &offlineIntent{id: "pi_offline_" + randomHex(), amount: r.Amount, status: payments.IntentOpen}
		o.intents[in.id] = in
		return in.view(), nil
	})
}

// SetAmount changes what an open intent will take.
func (o *Offline) SetAmount(_ context.Context, id string, amount int64, key string) error {
	_, err := o.once(key, func() (payments.Intent, error) {
		in, err := o.intent(id)
		if err != nil {
			return payments.Intent{}, err
		}
		if in.status != payments.IntentOpen {
			return payments.Intent{}, fmt.Errorf("%w: offline: intent %s is %s", payments.ErrIntentNotOpen, id, in.status)
		}
		if err := minimum(amount); err != nil {
			return payments.Intent{}, err
		}
		in.amount = amount
		return in.view(), nil
	})
	return err
}

// Confirm succeeds for Stripe's success test methods (pm_card_visa, ...),
// declines with Stripe's message for the decline ones
// (pm_card_chargeDeclined, pm_card_insufficientFunds, ...), and refuses any
// other payment method.
func (o *Offline) Confirm(_ context.Context, r payments.ConfirmRequest) (payments.Intent, error) {
	return o.once(r.IdempotencyKey, func() (payments.Intent, error) {
		in, err := o.intent(r.IntentID)
		if err != nil {
			return payments.Intent{}, err
		}
		if in.status != payments.IntentOpen {
			return payments.Intent{}, fmt.Errorf("%w: offline: intent %s is %s", payments.ErrIntentNotOpen, in.id, in.status)
		}
		out, ok := testMethods[r.PaymentMethod]
		if !ok {
			return payments.Intent{}, &payments.InvalidPaymentMethodError{Message: fmt.Sprintf(
				"No such PaymentMethod: '%s' (offline test mode accepts Stripe's test payment methods, such as pm_card_visa or pm_card_chargeDeclined)", r.PaymentMethod)}
		}
		if out.declineCode != "" {
			in.declined = &payments.DeclinedError{Code: out.declineCode, Message: out.message}
			return payments.Intent{}, in.declined
		}
		in.status, in.declined = payments.IntentSucceeded, nil
		return in.view(), nil
	})
}

// Intent returns an intent as it is now.
func (o *Offline) Intent(_ context.Context, id string) (payments.Intent, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, err := o.intent(id)
	if err != nil {
		return payments.Intent{}, err
	}
	return in.view(), nil
}

// CancelIntent closes an open intent.
func (o *Offline) CancelIntent(_ context.Context, id string) (payments.Intent, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, err := o.intent(id)
	if err != nil {
		return payments.Intent{}, err
	}
	if in.status != payments.IntentOpen {
		return payments.Intent{}, fmt.Errorf("%w: offline: intent %s is %s", payments.ErrIntentNotOpen, id, in.status)
	}
	in.status = payments.IntentCanceled
	return in.view(), nil
}

// Refund refunds a charge made by this Offline, once: a second refund of the
// same charge returns the first refund's id.
func (o *Offline) Refund(_ context.Context, r payments.RefundRequest) (payments.RefundResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, err := o.intent(r.IntentID)
	if err != nil {
		return payments.RefundResult{}, err
	}
	if in.status != payments.IntentSucceeded {
		return payments.RefundResult{}, fmt.Errorf("offline refund: intent %s is %s, not charged", in.id, in.status)
	}
	if in.refund == "" {
		in.refund = "re_offline_" + randomHex()
	}
	return payments.RefundResult{ProviderID: in.refund}, nil
}

// Refunded returns the refund id of a charge, if it was refunded.
func (o *Offline) Refunded(intentID string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, ok := o.intents[intentID]
	if !ok || in.refund == "" {
		return "", false
	}
	return in.refund, true
}

func randomHex() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}
