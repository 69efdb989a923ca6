package stripe

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// SignatureHeader is the header Stripe signs its webhook deliveries in.
const SignatureHeader = "Stripe-Signature"

// The Checkout Session events the service acts on.
const (
	EventSessionCompleted      = "checkout.session.completed"
	EventSessionAsyncSucceeded = "checkout.session.async_payment_succeeded"
	EventSessionAsyncFailed    = "checkout.session.async_payment_failed"
	EventSessionExpired        = "checkout.session.expired"
)

var sessionKinds = map[stripego.EventType]payments.SessionEventKind{
	EventSessionCompleted:      payments.SessionCompleted,
	EventSessionAsyncSucceeded: payments.SessionPaymentSucceeded,
	EventSessionAsyncFailed:    payments.SessionPaymentFailed,
	EventSessionExpired:        payments.SessionEnded,
}

// Webhooks verifies the events Stripe posts to the webhook endpoint with
// the endpoint's signing secret (STRIPE_WEBHOOK_SECRET), and signs the
// offline stand-in's events with it the same way.
type Webhooks struct {
	secret   string
	provider string
}

// NewWebhooks returns Webhooks for signing secret secret; provider
// ("stripe" or "offline") names the provider of the payments its events
// record.
func NewWebhooks(secret, provider string) *Webhooks {
	return &Webhooks{secret: secret, provider: provider}
}

// EventError is a delivery refused before anything is done: a signature
// that does not verify (missing, malformed, made with another secret, older
// than stripe-go's tolerance of 5 minutes) or a payload that is not an
// event. It is a 400 with Message; Err is for the logs.
type EventError struct {
	Message string
	Err     error
}

// Error describes the refusal with its cause.
func (e *EventError) Error() string { return e.Message + ": " + e.Err.Error() }

// Unwrap exposes the cause.
func (e *EventError) Unwrap() error { return e.Err }

// StatusCode is 400: Stripe retries a delivery refused so, which a replay
// or a forgery deserves no better.
func (e *EventError) StatusCode() int { return http.StatusBadRequest }

// Serialize is the one item of the error body.
func (e *EventError) Serialize() []errs.Item { return []errs.Item{{Message: e.Message}} }

// Parse verifies payload against signature (the Stripe-Signature header)
// with stripe-go's webhook package and returns the Checkout Session event it
// carries. Events of other types come back with an empty Kind (nothing to
// do). The event's API version is not checked against stripe-go's: the
// endpoint's version is the Stripe account's, and only fields every version
// has are read. Errors: *EventError.
func (w *Webhooks) Parse(payload []byte, signature string) (payments.SessionEvent, error) {
	ev, err := webhook.ConstructEventWithOptions(payload, signature, w.secret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		switch {
		case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader),
			errors.Is(err, webhook.ErrNoValidSignature), errors.Is(err, webhook.ErrTooOld):
			return payments.SessionEvent{}, &EventError{Message: "Webhook signature is not valid", Err: err}
		}
		return payments.SessionEvent{}, &EventError{Message: "Webhook payload is not a Stripe event", Err: err}
	}
	kind, ok := sessionKinds[ev.Type]
	if !ok {
		return payments.SessionEvent{ID: ev.ID}, nil
	}
	if ev.ID == "" || ev.Data == nil {
		return payments.SessionEvent{}, &EventError{Message: "Webhook payload is not a Stripe event", Err: errors.New("no id or data")}
	}
	var s sessionJSON
	if err := json.Unmarshal(ev.Data.Raw, &s); err != nil || s.ID == "" {
		return payments.SessionEvent{}, &EventError{Message: "Webhook payload is not a Stripe event", Err: errors.Join(errors.New("no checkout session in "+string(ev.Type)), err)}
	}
	out := payments.SessionEvent{
		ID: ev.ID, Kind: kind, Provider: w.provider, SessionID: s.ID,
		OrderID: s.Metadata["orderId"], UserID: s.Metadata["userId"], CorrelationID: s.Metadata["correlationId"],
		Paid: s.PaymentStatus == string(stripego.CheckoutSessionPaymentStatusPaid), Amount: s.AmountTotal, Currency: s.Currency,
		IntentID: s.intentID(),
	}
	if out.OrderID == "" {
		out.OrderID = s.ClientReferenceID
	}
	out.Attempt, _ = strconv.Atoi(s.Metadata["attempt"]) // 0: not one of ours
	return out, nil
}

// sessionJSON is what is read of a Checkout Session.
type sessionJSON struct {
	ID                string            `json:"id"`
	ClientReferenceID string            `json:"client_reference_id"`
	Metadata          map[string]string `json:"metadata"`
	AmountTotal       int64             `json:"amount_total"`
	Currency          string            `json:"currency"`
	PaymentStatus     string            `json:"payment_status"`
	// PaymentIntent is its id, or the object when expanded.
	PaymentIntent json.RawMessage `json:"payment_intent"`
}

func (s sessionJSON) intentID() string {
	var id string
	if json.Unmarshal(s.PaymentIntent, &id) == nil {
		return id
	}
	var obj struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(s.PaymentIntent, &obj) == nil {
		return obj.ID
	}
	return ""
}

// Sign returns the Stripe-Signature header of payload, signed now as
// Stripe signs (stripe-go's test signatures are Stripe's scheme v1).
func (w *Webhooks) Sign(payload []byte) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: w.secret}).Header
}
