// Package stripe charges and refunds through Stripe (stripe-go v76,
// PaymentIntents) and, without a Stripe key, through Offline: a test mode
// that answers like Stripe's test payment methods with no network. Both
// implement payments.Charger.
package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
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
	intents paymentintent.Client
	refunds refund.Client
}

var _ payments.Charger = (*Client)(nil)

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
	return &Client{intents: paymentintent.Client{B: b, Key: key}, refunds: refund.Client{B: b, Key: key}}
}

// Charge creates and confirms a PaymentIntent for r.Amount in one call
// (card payment methods, no redirects), tagged with the order id and sent
// with r.IdempotencyKey.
func (c *Client) Charge(ctx context.Context, r payments.ChargeRequest) (payments.ChargeResult, error) {
	params := &stripego.PaymentIntentParams{
		Amount:        stripego.Int64(r.Amount),
		Currency:      stripego.String(r.Currency),
		PaymentMethod: stripego.String(r.PaymentMethod),
		Confirm:       stripego.Bool(true),
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
		return payments.ChargeResult{}, chargeError(err)
	}
	switch pi.Status {
	case stripego.PaymentIntentStatusSucceeded:
		return payments.ChargeResult{Provider: "stripe", ProviderID: pi.ID}, nil
	case stripego.PaymentIntentStatusRequiresAction, stripego.PaymentIntentStatusRequiresPaymentMethod:
		// 3-D Secure or a soft decline: not charged, and this checkout has no
		// page to complete an authentication on.
		return payments.ChargeResult{}, &payments.DeclinedError{Code: "authentication_required",
			Message: "Your card requires authentication, which this checkout does not support. Please use another card."}
	default:
		return payments.ChargeResult{}, &payments.ProviderError{Err: fmt.Errorf("payment intent %s has status %s", pi.ID, pi.Status)}
	}
}

// chargeError maps a Stripe error to the domain's: card errors are declines
// with Stripe's message; an unknown payment method and an amount under the
// minimum are the buyer's to fix; anything else is a provider failure.
func chargeError(err error) error {
	var se *stripego.Error
	if !errors.As(err, &se) {
		return &payments.ProviderError{Err: err}
	}
	switch {
	case se.Type == stripego.ErrorTypeCard:
		code := string(se.DeclineCode)
		if code == "" {
			code = string(se.Code)
		}
		return &payments.DeclinedError{Code: code, Message: se.Msg}
	case se.Code == stripego.ErrorCodeAmountTooSmall:
		return &payments.AmountError{Message: se.Msg}
	case se.Type == stripego.ErrorTypeInvalidRequest && se.Param == "payment_method":
		return &payments.InvalidPaymentMethodError{Message: se.Msg}
	}
	return &payments.ProviderError{Err: err}
}

// Refund refunds the whole PaymentIntent r.ProviderID. A PaymentIntent that
// is already refunded counts as refunded.
func (c *Client) Refund(ctx context.Context, r payments.RefundRequest) (payments.RefundResult, error) {
	params := &stripego.RefundParams{PaymentIntent: stripego.String(r.ProviderID)}
	params.Context = ctx
	params.SetIdempotencyKey(r.IdempotencyKey)
	re, err := c.refunds.New(params)
	if err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && se.Code == stripego.ErrorCodeChargeAlreadyRefunded {
			return payments.RefundResult{ProviderID: "already_refunded"}, nil
		}
		return payments.RefundResult{}, fmt.Errorf("stripe refund of %s: %w", r.ProviderID, err)
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
