package http

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// payRequest is the body of POST /api/payments.
type payRequest struct {
	OrderID       string `json:"orderId"`
	PaymentMethod string `json:"paymentMethod"`
	Coupon        string `json:"coupon"`
}

// Validate checks shapes; the rules that depend on the order live in the
// domain.
func (r *payRequest) Validate() error {
	var v validate.Errors
	r.OrderID = strings.TrimSpace(r.OrderID)
	v.Check(r.OrderID != "", "orderId", "Order id is required")
	v.Check(len(r.OrderID) <= 64, "orderId", "Order id is too long")
	v.Check(len(r.PaymentMethod) <= 255, "paymentMethod", "Payment method is too long")
	v.Check(len(r.Coupon) <= 64, "coupon", "Coupon code is too long")
	return v.Err()
}

func (r *payRequest) input() payments.PayInput {
	return payments.PayInput{OrderID: r.OrderID, PaymentMethod: r.PaymentMethod, Coupon: r.Coupon}
}

// MaxReturnURL is the longest successUrl or cancelUrl a checkout takes.
const MaxReturnURL = 2048

// checkoutRequest is the body of POST /api/payments/checkout: the order, an
// optional coupon, and where the provider's page sends the buyer back.
type checkoutRequest struct {
	OrderID    string `json:"orderId"`
	Coupon     string `json:"coupon"`
	SuccessURL string `json:"successUrl"`
	CancelURL  string `json:"cancelUrl"`
}

// Validate checks shapes: the return URLs must be absolute http(s) URLs of
// at most MaxReturnURL characters.
func (r *checkoutRequest) Validate() error {
	var v validate.Errors
	r.OrderID = strings.TrimSpace(r.OrderID)
	v.Check(r.OrderID != "", "orderId", "Order id is required")
	v.Check(len(r.OrderID) <= 64, "orderId", "Order id is too long")
	v.Check(len(r.Coupon) <= 64, "coupon", "Coupon code is too long")
	returnURL(&v, "successUrl", r.SuccessURL)
	returnURL(&v, "cancelUrl", r.CancelURL)
	return v.Err()
}

func returnURL(v *validate.Errors, field, s string) {
	switch {
	case s == "":
		v.Add(field, "Return URL is required")
	case len(s) > MaxReturnURL:
		v.Add(field, "Return URL is too long")
	default:
		u, err := url.Parse(s)
		v.Check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil,
			field, "Must be an absolute http or https URL")
	}
}

// leadsBack checks that both return URLs lead back to the order's page of
// the storefront (a path ending in /orders/<orderId>), on origin when it is
// set: neither the provider's page nor the stand-in may send a buyer
// anywhere else.
func (r *checkoutRequest) leadsBack(origin string) error {
	var v validate.Errors
	for _, f := range []struct{ field, url string }{{"successUrl", r.SuccessURL}, {"cancelUrl", r.CancelURL}} {
		u, err := url.Parse(f.url)
		if err != nil {
			continue // Validate refused it
		}
		if origin != "" && u.Scheme+"://"+u.Host != origin {
			v.Add(f.field, "Must be on "+origin)
		} else if !strings.HasSuffix(u.Path, "/orders/"+r.OrderID) {
			v.Add(f.field, "Must lead back to the order's page")
		}
	}
	return v.Err()
}

// confirmRequest is the body of POST /api/payments/checkout/confirm: the
// order and the checkout session the buyer came back from.
type confirmRequest struct {
	OrderID   string `json:"orderId"`
	SessionID string `json:"sessionId"`
}

// maxSessionID bounds a session id (Stripe's are about 70 characters).
const maxSessionID = 255

// Validate checks shapes: both ids are required and short.
func (r *confirmRequest) Validate() error {
	var v validate.Errors
	v.Check(r.OrderID != "", "orderId", "Order id is required")
	v.Check(len(r.OrderID) <= 64, "orderId", "Order id is too long")
	v.Check(r.SessionID != "", "sessionId", "Session id is required")
	v.Check(len(r.SessionID) <= maxSessionID, "sessionId", "Session id is too long")
	return v.Err()
}

// confirmResponse tells whether a payment of the order is recorded.
type confirmResponse struct {
	Paid bool `json:"paid"`
}

// checkoutResponse is where the buyer goes: the session's page (id, url),
// or back to the order, which a coupon paid (completed).
type checkoutResponse struct {
	ID        string `json:"id,omitempty"`
	URL       string `json:"url,omitempty"`
	Completed bool   `json:"completed,omitempty"`
}

// paymentResponse is a created payment.
type paymentResponse struct {
	ID      string `json:"id"`
	OrderID string `json:"orderId"`
	Amount  int64  `json:"amount"`
}

func toPaymentResponse(p payments.Payment) paymentResponse {
	return paymentResponse{ID: p.ID, OrderID: p.OrderID, Amount: p.Amount}
}

// couponRequest is the body of POST /api/payments/coupons. ExpiresAt is an
// RFC 3339 date-time, parsed here so a bad one is a field error.
type couponRequest struct {
	PercentOff     *int    `json:"percentOff"`
	MaxRedemptions *int    `json:"maxRedemptions"`
	ExpiresAt      *string `json:"expiresAt"`

	expiresAt *time.Time
}

// Validate checks presence and the date's syntax; ranges are the domain's.
func (r *couponRequest) Validate() error {
	var v validate.Errors
	v.Check(r.PercentOff != nil, "percentOff", "Must be an integer from 1 to 100")
	if r.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *r.ExpiresAt)
		if err != nil {
			v.Add("expiresAt", "Must be a date-time such as 2030-01-31T23:59:00Z")
		} else {
			r.expiresAt = &t
		}
	}
	return v.Err()
}

// input is the domain's request; call it after Validate.
func (r *couponRequest) input() payments.NewCoupon {
	return payments.NewCoupon{PercentOff: *r.PercentOff, MaxRedemptions: r.MaxRedemptions, ExpiresAt: r.expiresAt}
}

// couponResponse is a coupon as admins see it. MaxRedemptions and ExpiresAt
// are null when unlimited.
type couponResponse struct {
	Code           string     `json:"code"`
	PercentOff     int        `json:"percentOff"`
	MaxRedemptions *int       `json:"maxRedemptions"`
	ExpiresAt      *time.Time `json:"expiresAt"`
	Redemptions    int        `json:"redemptions"`
}

func toCouponResponse(c payments.Coupon) couponResponse {
	r := couponResponse{Code: c.Code, PercentOff: c.PercentOff, Redemptions: c.Redemptions}
	if c.MaxRedemptions > 0 {
		n := c.MaxRedemptions
		r.MaxRedemptions = &n
	}
	if !c.ExpiresAt.IsZero() {
		t := c.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	return r
}

// providerUnreachable is what a buyer reads when the payment provider failed:
// never the cause, which the error handler logs. Trying again is safe: a
// charge whose answer was lost is looked up before anything is charged.
const providerUnreachable = "The payment provider could not be reached, please try again"

// paymentPending is what a buyer reads while a charge's outcome is not
// known: the order completes by itself if the charge went through.
const paymentPending = "The payment is being confirmed by the payment provider; check the order again in a moment"

// payError gives the provider's answers of a payment their status and
// body: a declined card is a 402 and an unknown payment method a 400, both on
// the paymentMethod field with the provider's message; an amount the
// provider refuses is a 400; a provider failure is a 502 that hides its
// cause; a charge whose outcome is not known yet is a 503 (not kept for an
// Idempotency-Key: a retry looks it up again). Every other error (the
// domain's refusals are errs errors already) passes unchanged.
func payError(err error) error {
	var (
		declined *payments.DeclinedError
		invalid  *payments.InvalidPaymentMethodError
		amount   *payments.AmountError
		provider *payments.ProviderError
	)
	switch {
	case errors.As(err, &declined):
		return &apiError{err: err, status: http.StatusPaymentRequired, item: errs.Item{Message: declined.Message, Field: "paymentMethod"}}
	case errors.As(err, &invalid):
		return &apiError{err: err, status: http.StatusBadRequest, item: errs.Item{Message: invalid.Message, Field: "paymentMethod"}}
	case errors.As(err, &amount):
		return &apiError{err: err, status: http.StatusBadRequest, item: errs.Item{Message: amount.Message}}
	case errors.Is(err, payments.ErrPaymentPending):
		return &apiError{err: err, status: http.StatusServiceUnavailable, item: errs.Item{Message: paymentPending}}
	case errors.As(err, &provider):
		return &apiError{err: err, status: http.StatusBadGateway, item: errs.Item{Message: providerUnreachable}}
	}
	return err
}

// apiError is a domain error with the status and the one item the API
// answers it with (an errs.Error). It reads and unwraps as the domain error.
type apiError struct {
	err    error
	status int
	item   errs.Item
}

// Error is the domain error's text (the error handler logs it on a 502).
func (e *apiError) Error() string { return e.err.Error() }

// Unwrap exposes the domain error.
func (e *apiError) Unwrap() error { return e.err }

// StatusCode is the status the API answers with.
func (e *apiError) StatusCode() int { return e.status }

// Serialize is the one item of the error body.
func (e *apiError) Serialize() []errs.Item { return []errs.Item{e.item} }
