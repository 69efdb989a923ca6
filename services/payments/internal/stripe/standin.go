package stripe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
)

// StandInPath is the path of the offline stand-in for Stripe Checkout's
// page of session id, on the storefront's origin (the gateway and the
// ingress send /api/payments to this service).
func StandInPath(id string) string { return "/api/payments/checkout/" + id + "/pay" }

const offlineSessionPrefix = "cs_offline_"

// NewSession makes the session of an attempt in offline test mode. Its id
// names the attempt (cs_offline_<orderId>_<attempt>): the same attempt
// gets the same session, from any replica and after a restart, because
// the session itself is the attempt the service stored. Its page is the
// stand-in, on the origin of the success URL. Amounts under MinimumAmount
// are refused, as Stripe refuses them.
func (o *Offline) NewSession(_ context.Context, r payments.SessionRequest) (payments.SessionRef, error) {
	if err := minimum(r.Amount); err != nil {
		return payments.SessionRef{}, err
	}
	u, err := url.Parse(r.SuccessURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return payments.SessionRef{}, &payments.ProviderError{Err: fmt.Errorf("offline: success URL %q is not absolute", r.SuccessURL), Answered: true}
	}
	id := fmt.Sprintf("%s%s_%d", offlineSessionPrefix, r.OrderID, r.Attempt)
	return payments.SessionRef{ID: id, URL: u.Scheme + "://" + u.Host + StandInPath(id)}, nil
}

// ExpireSession ends a session offline: the session is the attempt, which
// the service moves to expired itself. One the stand-in page paid is
// complete, with its PaymentIntent, whether or not its event was recorded.
func (o *Offline) ExpireSession(_ context.Context, id string) (payments.SessionStatus, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p, ok := o.paid[id]; ok {
		return payments.SessionComplete, p.intent, nil
	}
	return payments.SessionExpired, "", nil
}

// LookupSession tells what an offline session is: paid (complete) once the
// stand-in page took the money for it, whether or not its event was
// recorded; open otherwise (the service itself knows when it ended).
func (o *Offline) LookupSession(_ context.Context, id string) (payments.SessionState, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.paid[id]
	if !ok {
		return payments.SessionState{Status: payments.SessionOpen, Provider: "offline"}, nil
	}
	in := o.intents[p.intent]
	return payments.SessionState{Status: payments.SessionComplete, Paid: true, IntentID: p.intent, Amount: in.amount,
		Currency: p.currency, Provider: "offline"}, nil
}

// SessionAttempt returns the order and attempt an offline session id names.
func SessionAttempt(id string) (orderID string, n int, ok bool) {
	rest, ok := strings.CutPrefix(id, offlineSessionPrefix)
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(rest[i+1:])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return rest[:i], n, true
}

// The stand-in's test cards, as on Stripe's page in test mode.
const (
	CardSucceeds = "4242424242424242"
	CardDeclined = "4000000000000002"
)

// StandIn is the offline test mode's stand-in for the page Stripe Checkout
// hosts: the buyer picks a test card, and it answers as Stripe's page does,
// a decline on the page itself, a payment by the signed
// checkout.session.completed Stripe would send to the webhook.
type StandIn struct {
	offline *Offline
	hooks   *Webhooks
	now     func() time.Time
}

// NewStandIn returns the stand-in charging through offline and signing
// with hooks; now is the clock of the events' creation time (time.Now when
// nil).
func NewStandIn(offline *Offline, hooks *Webhooks, now func() time.Time) *StandIn {
	if now == nil {
		now = time.Now
	}
	return &StandIn{offline: offline, hooks: hooks, now: now}
}

// Session returns the order and attempt of session id (SessionAttempt).
func (s *StandIn) Session(id string) (orderID string, n int, ok bool) { return SessionAttempt(id) }

// Pay pays open session v with card: CardSucceeds takes the money (a
// succeeded PaymentIntent of the offline test mode, which can be refunded
// as any other) and returns the checkout.session.completed event and its
// Stripe-Signature header; CardDeclined returns a *payments.DeclinedError
// and takes nothing; any other card is a *payments.InvalidPaymentMethodError.
func (s *StandIn) Pay(v payments.SessionView, card string) (payload []byte, signature string, err error) {
	switch card {
	case CardDeclined:
		return nil, "", &payments.DeclinedError{Code: "generic_decline", Message: "Your card was declined."}
	case CardSucceeds:
	default:
		return nil, "", &payments.InvalidPaymentMethodError{Message: "Choose one of the test cards"}
	}
	intent := s.offline.paySession(v.ID, v.Amount, v.Currency)
	metadata := map[string]string{"orderId": v.OrderID, "userId": v.UserID, "attempt": strconv.Itoa(v.Attempt)}
	if v.CorrelationID != "" {
		metadata["correlationId"] = v.CorrelationID
	}
	payload, err = json.Marshal(map[string]any{
		"id": "evt_offline_" + randomHex(), "object": "event", "api_version": stripego.APIVersion,
		"created": s.now().Unix(), "livemode": false, "type": EventSessionCompleted,
		"data": map[string]any{"object": map[string]any{
			"id": v.ID, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
			"client_reference_id": v.OrderID, "metadata": metadata, "amount_total": v.Amount, "currency": v.Currency,
			"payment_intent": intent, "success_url": v.SuccessURL, "cancel_url": v.CancelURL,
		}},
	})
	if err != nil {
		return nil, "", fmt.Errorf("encode the offline checkout event: %w", err)
	}
	return payload, s.hooks.Sign(payload), nil
}

// paySession makes the PaymentIntent that took amount for Checkout Session
// session, as Checkout does when it is paid, and returns its id. A session
// is paid once: the page submitted twice gets the same PaymentIntent back,
// whose second event changes nothing.
func (o *Offline) paySession(session string, amount int64, currency string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p, ok := o.paid[session]; ok {
		return p.intent
	}
	in := &offlineIntent{id: "pi_offline_" + randomHex(), amount: amount, status: payments.IntentSucceeded}
	o.intents[in.id] = in
	o.paid[session] = paidSession{intent: in.id, currency: currency}
	return in.id
}
