// Package stripe charges and refunds through Stripe (stripe-go v76,
// PaymentIntents: one per order, created first, then confirmed, again with
// another payment method after a decline), hosts card payments on Stripe
// Checkout (checkout.go: Checkout Sessions, and the signed webhook events
// that tell their outcome, webhook.go) and, without a Stripe key, does both
// through Offline: a test mode that answers like Stripe's test payment
// methods with no network, and serves a stand-in for Checkout's page
// (standin.go). Client and Offline implement payments.Charger and
// payments.Checkout.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/checkout/session"
	"github.com/stripe/stripe-go/v76/paymentintent"
	"github.com/stripe/stripe-go/v76/refund"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
)

// Options configures a Client.
type Options struct {
	// URL overrides Stripe's API base URL (tests, stripe-mock).
	URL string
	// HTTPClient; one with a 30 s timeout when nil.
	HTTPClient *http.Client
	// MaxNetworkRetries is how often stripe-go retries a request that failed
	// in transit, with the same idempotency key; 2 when nil.
	MaxNetworkRetries *int64
	Log               *slog.Logger
}

// Client charges through Stripe's API. It uses the per-resource clients of
// stripe-go on one configured backend, without package-level state.
type Client struct {
	intents  paymentintent.Client
	refunds  refund.Client
	sessions session.Client
}

var (
	_ payments.Charger  = (*Client)(nil)
	_ payments.Checkout = (*Client)(nil)
)

// New returns a Client authenticated with secret key key.
func New(key string, opts Options) *Client {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.MaxNetworkRetries == nil {
		opts.MaxNetworkRetries = stripego.Int64(2)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	cfg := &stripego.BackendConfig{
		HTTPClient:        opts.HTTPClient,
		MaxNetworkRetries: opts.MaxNetworkRetries,
		LeveledLogger:     leveled{opts.Log.With("component", "stripe-go")},
	}
	if opts.URL != "" {
		cfg.URL = stripego.String(opts.URL)
	}
	b := stripego.GetBackendWithConfig(stripego.APIBackend, cfg)
	return &Client{intents: paymentintent.Client{B: b, Key: key}, refunds: refund.Client{B: b, Key: key}, sessions: session.Client{B: b, Key: key}}
}

// NewIntent creates the order's PaymentIntent for r.Amount (card payment
// methods, no redirects), tagged with the order id, without charging it.
func (c *Client) NewIntent(ctx context.Context, r payments.IntentRequest) (payments.Intent, error) {
	params := &stripego.PaymentIntentParams{
		Amount:   stripego.Int64(r.Amount),
		Currency: stripego.String(r.Currency),
		AutomaticPaymentMethods: &stripego.PaymentIntentAutomaticPaymentMethodsParams{
			Enabled:        stripego.Bool(true),
			AllowRedirects: stripego.String("never"),
		},
		Description: stripego.String("Stuffmart order " + r.OrderID),
	}
	params.Context = ctx
	params.SetIdempotencyKey(r.IdempotencyKey)
	params.AddMetadata("order_id", r.OrderID)
	pi, err := c.intents.New(params)
	if err != nil {
		return payments.Intent{}, intentError(err)
	}
	return intentOf(pi), nil
}

// SetAmount changes the amount of an open PaymentIntent.
func (c *Client) SetAmount(ctx context.Context, id string, amount int64, key string) error {
	params := &stripego.PaymentIntentParams{Amount: stripego.Int64(amount)}
	params.Context = ctx
	params.SetIdempotencyKey(key)
	_, err := c.intents.Update(id, params)
	if err != nil {
		return intentError(err)
	}
	return nil
}

// Confirm charges PaymentIntent r.IntentID with r.PaymentMethod. A
// PaymentIntent left waiting for an authentication (3-D Secure) or another
// payment method is a decline: not charged, and this checkout has no page to
// complete an authentication on.
func (c *Client) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Intent, error) {
	params := &stripego.PaymentIntentConfirmParams{PaymentMethod: stripego.String(r.PaymentMethod)}
	params.Context = ctx
	params.SetIdempotencyKey(r.IdempotencyKey)
	pi, err := c.intents.Confirm(r.IntentID, params)
	if err != nil {
		return payments.Intent{}, intentError(err)
	}
	in := intentOf(pi)
	if in.Status == payments.IntentOpen {
		return payments.Intent{}, &payments.DeclinedError{Code: "authentication_required",
			Message: "Your card requires authentication, which this checkout does not support. Please use another card."}
	}
	return in, nil
}

// Intent retrieves a PaymentIntent.
func (c *Client) Intent(ctx context.Context, id string) (payments.Intent, error) {
	params := &stripego.PaymentIntentParams{}
	params.Context = ctx
	pi, err := c.intents.Get(id, params)
	if err != nil {
		return payments.Intent{}, intentError(err)
	}
	return intentOf(pi), nil
}

// CancelIntent cancels an open PaymentIntent.
func (c *Client) CancelIntent(ctx context.Context, id string) (payments.Intent, error) {
	params := &stripego.PaymentIntentCancelParams{}
	params.Context = ctx
	pi, err := c.intents.Cancel(id, params)
	if err != nil {
		return payments.Intent{}, intentError(err)
	}
	return intentOf(pi), nil
}

// intentOf maps a PaymentIntent to the domain's view of it. One being
// captured (we never ask for manual capture) counts as processing.
func intentOf(pi *stripego.PaymentIntent) payments.Intent {
	in := payments.Intent{ID: pi.ID, Provider: "stripe", Amount: pi.Amount}
	switch pi.Status {
	case stripego.PaymentIntentStatusSucceeded:
		in.Status, in.Amount = payments.IntentSucceeded, pi.AmountReceived
	case stripego.PaymentIntentStatusProcessing, stripego.PaymentIntentStatusRequiresCapture:
		in.Status = payments.IntentProcessing
	case stripego.PaymentIntentStatusCanceled:
		in.Status = payments.IntentCanceled
	default:
		in.Status = payments.IntentOpen
		if e := pi.LastPaymentError; e != nil && e.Type == stripego.ErrorTypeCard {
			in.Declined = declineOf(e)
		}
	}
	return in
}

func declineOf(e *stripego.Error) *payments.DeclinedError {
	code := string(e.DeclineCode)
	if code == "" {
		code = string(e.Code)
	}
	return &payments.DeclinedError{Code: code, Message: e.Msg}
}

// intentError maps a Stripe error to the domain's: card errors are declines
// with Stripe's message; an unknown payment method and an amount under the
// minimum are the buyer's to fix; a PaymentIntent that is no longer open or
// does not exist is said so; anything else is a provider failure, answered
// (Stripe keeps its answer for the idempotency key) or not.
func intentError(err error) error {
	var se *stripego.Error
	if !errors.As(err, &se) {
		return &payments.ProviderError{Err: err}
	}
	switch {
	case se.Type == stripego.ErrorTypeCard:
		return declineOf(se)
	case se.Code == stripego.ErrorCodeAmountTooSmall:
		return &payments.AmountError{Message: se.Msg}
	case se.Type == stripego.ErrorTypeInvalidRequest && se.Param == "payment_method":
		return &payments.InvalidPaymentMethodError{Message: se.Msg}
	case se.Code == stripego.ErrorCodePaymentIntentUnexpectedState:
		return fmt.Errorf("%w: %s", payments.ErrIntentNotOpen, se.Msg)
	case se.Code == stripego.ErrorCodeResourceMissing:
		return fmt.Errorf("%w: %s", payments.ErrNoSuchIntent, se.Msg)
	}
	return &payments.ProviderError{Err: err, Answered: kept(se)}
}

// kept reports whether Stripe keeps its answer se for the request's
// idempotency key (a retry with the key gets it again): every answer of an
// endpoint that began to execute, which excludes a refused API key, a
// conflict with a request of the same key still running and a rate limit.
func kept(se *stripego.Error) bool {
	switch se.HTTPStatusCode {
	case 0, http.StatusUnauthorized, http.StatusConflict, http.StatusTooManyRequests:
		return false
	}
	return true
}

// Refund refunds the whole PaymentIntent r.IntentID. A PaymentIntent that
// is already refunded counts as refunded.
func (c *Client) Refund(ctx context.Context, r payments.RefundRequest) (payments.RefundResult, error) {
	params := &stripego.RefundParams{PaymentIntent: stripego.String(r.IntentID)}
	params.Context = ctx
	params.SetIdempotencyKey(r.IdempotencyKey)
	re, err := c.refunds.New(params)
	if err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && se.Code == stripego.ErrorCodeChargeAlreadyRefunded {
			return payments.RefundResult{ProviderID: "already_refunded"}, nil
		}
		return payments.RefundResult{}, &payments.ProviderError{Err: fmt.Errorf("stripe refund of %s: %w", r.IntentID, err), Answered: errors.As(err, &se) && kept(se)}
	}
	return payments.RefundResult{ProviderID: re.ID}, nil
}

// leveled sends stripe-go's own logs to slog at debug level: every failure
// it reports is returned to us as an error and handled (and logged) there.
type leveled struct{ log *slog.Logger }

func (l leveled) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l leveled) Infof(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l leveled) Warnf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l leveled) Errorf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
