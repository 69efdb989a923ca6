package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/services/payments/internal/stripe"
)

func charge(method string) payments.ChargeRequest {
	return payments.ChargeRequest{OrderID: "o1", Amount: 1000, Currency: "usd", PaymentMethod: method, IdempotencyKey: "payment-o1-1-" + method}
}

func TestOffline(t *testing.T) {
	ctx := context.Background()
	o := stripe.NewOffline()

	res, err := o.Charge(ctx, charge("pm_card_visa"))
	if err != nil || res.Provider != "offline" || res.ProviderID == "" {
		t.Fatalf("visa: %+v, %v", res, err)
	}
	again, err := o.Charge(ctx, charge("pm_card_visa"))
	if err != nil || again != res {
		t.Fatalf("same idempotency key answered %+v, %v; want the first answer %+v", again, err, res)
	}

	declines := map[string]string{
		"pm_card_chargeDeclined":                  "Your card was declined.",
		"pm_card_insufficientFunds":               "Your card has insufficient funds.",
		"pm_card_chargeDeclinedInsufficientFunds": "Your card has insufficient funds.",
		"pm_card_chargeDeclinedExpiredCard":       "Your card has expired.",
	}
	for method, msg := range declines {
		_, err := o.Charge(ctx, charge(method))
		var d *payments.DeclinedError
		if !errors.As(err, &d) || d.Message != msg {
			t.Errorf("%s: %v, want decline %q", method, err, msg)
		}
	}
	var inv *payments.InvalidPaymentMethodError
	if _, err := o.Charge(ctx, charge("tok_visa")); !errors.As(err, &inv) {
		t.Errorf("unknown method: %v", err)
	}
	var amt *payments.AmountError
	small := charge("pm_card_visa")
	small.Amount, small.IdempotencyKey = 49, "small"
	if _, err := o.Charge(ctx, small); !errors.As(err, &amt) {
		t.Errorf("49 cents: %v", err)
	}

	r1, err := o.Refund(ctx, payments.RefundRequest{ProviderID: res.ProviderID, Amount: 1000, IdempotencyKey: "a"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := o.Refund(ctx, payments.RefundRequest{ProviderID: res.ProviderID, Amount: 1000, IdempotencyKey: "b"})
	if err != nil || r2 != r1 {
		t.Fatalf("second refund %+v, %v; want the first %+v", r2, err, r1)
	}
	if _, err := o.Refund(ctx, payments.RefundRequest{ProviderID: "pi_unknown"}); err == nil {
		t.Fatal("refund of an unknown charge succeeded")
	}
}

// TestClientErrors: Stripe answers other than success and card declines
// map to the domain's errors.
func TestClientErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		check  func(error) bool
	}{
		{"requires action is a decline", 200, `{"id":"pi_1","object":"payment_intent","status":"requires_action"}`,
			func(err error) bool {
				var d *payments.DeclinedError
				return errors.As(err, &d) && d.Code == "authentication_required"
			}},
		{"amount too small", 400, `{"error":{"type":"invalid_request_error","code":"amount_too_small","message":"Amount must be at least $0.50 usd","param":"amount"}}`,
			func(err error) bool {
				var a *payments.AmountError
				return errors.As(err, &a) && a.Message == "Amount must be at least $0.50 usd"
			}},
		{"bad key is a provider error", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`,
			func(err error) bool { var p *payments.ProviderError; return errors.As(err, &p) }},
		{"outage is a provider error", 500, `{"error":{"type":"api_error","message":"boom"}}`,
			func(err error) bool { var p *payments.ProviderError; return errors.As(err, &p) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body)) // test server
			}))
			defer srv.Close()
			c := stripe.New("sk_test_x", stripe.Options{URL: srv.URL, MaxNetworkRetries: stripego.Int64(0)})
			_, err := c.Charge(context.Background(), charge("pm_card_visa"))
			if !tc.check(err) {
				t.Fatalf("error %T %v", err, err)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d calls", n)
			}
		})
	}

	t.Run("refund of an already refunded charge succeeds", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}`)) // test server
		}))
		defer srv.Close()
		c := stripe.New("sk_test_x", stripe.Options{URL: srv.URL, MaxNetworkRetries: stripego.Int64(0)})
		if _, err := c.Refund(context.Background(), payments.RefundRequest{ProviderID: "pi_1", Amount: 1000, IdempotencyKey: "k"}); err != nil {
			t.Fatal(err)
		}
	})
}
