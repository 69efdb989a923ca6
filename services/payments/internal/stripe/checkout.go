package stripe

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
)

// NewSession creates the Checkout Session of an attempt: mode payment, card
// payment methods, one line item (the stuff's title at the amount after any
// coupon), client_reference_id the order id, metadata orderId, userId,
// attempt and correlationId (what its webhook events find the attempt and
// the purchase by), the PaymentIntent tagged with the order id as the
// service's own are, and Stripe's idempotency key per order and attempt.
func (c *Client) NewSession(ctx context.Context, r payments.SessionRequest) (payments.SessionRef, error) {
	params := &stripego.CheckoutSessionParams{
		Mode:               stripego.String(string(stripego.CheckoutSessionModePayment)),
		PaymentMethodTypes: stripego.StringSlice([]string{"card"}),
		ClientReferenceID:  stripego.String(r.OrderID),
		SuccessURL:         stripego.String(r.SuccessURL),
		CancelURL:          stripego.String(r.CancelURL),
		LineItems: []*stripego.CheckoutSessionLineItemParams{{
			Quantity: stripego.Int64(1),
			PriceData: &stripego.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripego.String(r.Currency),
				UnitAmount:  stripego.Int64(r.Amount),
				ProductData: &stripego.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripego.String(r.Title)},
			},
		}},
		PaymentIntentData: &stripego.CheckoutSessionPaymentIntentDataParams{
			Description: stripego.String("Stuffmart order " + r.OrderID),
			Metadata:    map[string]string{"order_id": r.OrderID},
		},
	}
	if !r.ExpiresAt.IsZero() {
		params.ExpiresAt = stripego.Int64(r.ExpiresAt.Unix())
	}
	for k, v := range sessionMetadata(r) {
		params.AddMetadata(k, v)
	}
	params.Context = ctx
	params.SetIdempotencyKey(r.IdempotencyKey)
	s, err := c.sessions.New(params)
	if err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && se.Code == stripego.ErrorCodeAmountTooSmall {
			return payments.SessionRef{}, &payments.AmountError{Message: se.Msg}
		}
		return payments.SessionRef{}, &payments.ProviderError{Err: fmt.Errorf("create checkout session: %w", err), Answered: errors.As(err, &se) && kept(se)}
	}
	return payments.SessionRef{ID: s.ID, URL: s.URL}, nil
}

// sessionMetadata is the metadata of the session of r (empty values left
// out: Stripe takes an empty value for "unset").
func sessionMetadata(r payments.SessionRequest) map[string]string {
	m := map[string]string{"orderId": r.OrderID, "attempt": strconv.Itoa(r.Attempt)}
	if r.UserID != "" {
		m["userId"] = r.UserID
	}
	if r.CorrelationID != "" {
		m["correlationId"] = r.CorrelationID
	}
	return m
}

// ExpireSession expires an open Checkout Session. One that is no longer
// open (Stripe refuses to expire it) is retrieved to tell whether it was
// paid or had expired; one Stripe does not know could never be paid. It
// needs no idempotency key of ours: expiring is idempotent by itself, and
// stripe-go gives its own retries of the request one key.
func (c *Client) ExpireSession(ctx context.Context, id string) (payments.SessionStatus, string, error) {
	params := &stripego.CheckoutSessionExpireParams{}
	params.Context = ctx
	s, err := c.sessions.Expire(id, params)
	if err == nil {
		return sessionStatus(s.Status), sessionIntent(s), nil
	}
	var se *stripego.Error
	if !errors.As(err, &se) || se.Type != stripego.ErrorTypeInvalidRequest {
		return "", "", &payments.ProviderError{Err: fmt.Errorf("expire checkout session %s: %w", id, err)}
	}
	if se.Code == stripego.ErrorCodeResourceMissing {
		return payments.SessionExpired, "", nil
	}
	get := &stripego.CheckoutSessionParams{}
	get.Context = ctx
	s, gerr := c.sessions.Get(id, get)
	if gerr != nil || s.Status == stripego.CheckoutSessionStatusOpen {
		return "", "", &payments.ProviderError{Err: fmt.Errorf("expire checkout session %s: %w", id, errors.Join(err, gerr))}
	}
	return sessionStatus(s.Status), sessionIntent(s), nil
}

// LookupSession retrieves a Checkout Session: its status and, once paid
// (payment_status "paid"), its PaymentIntent, amount_total and currency. One
// Stripe does not know is expired.
func (c *Client) LookupSession(ctx context.Context, id string) (payments.SessionState, error) {
	params := &stripego.CheckoutSessionParams{}
	params.Context = ctx
	s, err := c.sessions.Get(id, params)
	if err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && se.Code == stripego.ErrorCodeResourceMissing {
			return payments.SessionState{Status: payments.SessionExpired, Provider: "stripe"}, nil
		}
		return payments.SessionState{}, &payments.ProviderError{Err: fmt.Errorf("retrieve checkout session %s: %w", id, err)}
	}
	st := payments.SessionState{Status: sessionStatus(s.Status), Provider: "stripe"}
	if s.PaymentStatus == stripego.CheckoutSessionPaymentStatusPaid {
		st.Paid, st.IntentID, st.Amount, st.Currency = true, sessionIntent(s), s.AmountTotal, string(s.Currency)
	}
	return st, nil
}

// sessionIntent is the id of the PaymentIntent of a paid session ("" if
// none).
func sessionIntent(s *stripego.CheckoutSession) string {
	if s.Status != stripego.CheckoutSessionStatusComplete || s.PaymentIntent == nil {
		return ""
	}
	return s.PaymentIntent.ID
}

func sessionStatus(s stripego.CheckoutSessionStatus) payments.SessionStatus {
	switch s {
	case stripego.CheckoutSessionStatusComplete:
		return payments.SessionComplete
	case stripego.CheckoutSessionStatusOpen:
		return payments.SessionOpen
	}
	return payments.SessionExpired
}
