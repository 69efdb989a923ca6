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
	"github.com/stuffmart/stuffmart/services/payments/stripetest"
)

// protocol runs one order's payment through c: an intent, a declined
// confirm, a new amount, a confirm that succeeds, what the intent says, a
// refund, twice.
func protocol(t *testing.T, c payments.Charger) {
	t.Helper()
	ctx := context.Background()
	in, err := c.NewIntent(ctx, payments.IntentRequest{OrderID: "o1", Amount: 1000, Currency: "usd", IdempotencyKey: "intent-o1-1"})
	if err != nil || in.ID == "" || in.Status != payments.IntentOpen || in.Amount != 1000 {
		t.Fatalf("new intent: %+v, %v", in, err)
	}
	again, err := c.NewIntent(ctx, payments.IntentRequest{OrderID: "o1", Amount: 1000, Currency: "usd", IdempotencyKey: "intent-o1-1"})
	if err != nil || again.ID != in.ID {
		t.Fatalf("the same key made %+v, %v; want intent %s again", again, err, in.ID)
	}

	_, err = c.Confirm(ctx, payments.ConfirmRequest{IntentID: in.ID, PaymentMethod: "pm_card_chargeDeclined", IdempotencyKey: "payment-o1-1"})
	var d *payments.DeclinedError
	if !errors.As(err, &d) || d.Message != "Your card was declined." {
		t.Fatalf("declined card: %v", err)
	}
	got, err := c.Intent(ctx, in.ID)
	if err != nil || got.Status != payments.IntentOpen || got.Declined == nil {
		t.Fatalf("intent after a decline: %+v, %v; want open with the decline", got, err)
	}
	var inv *payments.InvalidPaymentMethodError
	if _, err := c.Confirm(ctx, payments.ConfirmRequest{IntentID: in.ID, PaymentMethod: "tok_visa", IdempotencyKey: "payment-o1-2"}); !errors.As(err, &inv) {
		t.Fatalf("unknown payment method: %v", err)
	}
	var amt *payments.AmountError
	if err := c.SetAmount(ctx, in.ID, 49, "amount-o1-3"); !errors.As(err, &amt) {
		t.Fatalf("49 cents: %v", err)
	}
	if err := c.SetAmount(ctx, in.ID, 800, "amount-o1-4"); err != nil {
		t.Fatal(err)
	}
	paid, err := c.Confirm(ctx, payments.ConfirmRequest{IntentID: in.ID, PaymentMethod: "pm_card_visa", IdempotencyKey: "payment-o1-4"})
	if err != nil || paid.Status != payments.IntentSucceeded || paid.Amount != 800 {
		t.Fatalf("confirm: %+v, %v", paid, err)
	}
	replay, err := c.Confirm(ctx, payments.ConfirmRequest{IntentID: in.ID, PaymentMethod: "pm_card_visa", IdempotencyKey: "payment-o1-4"})
	if err != nil || replay != paid {
		t.Fatalf("the same confirm again: %+v, %v; want %+v", replay, err, paid)
	}
	if _, err := c.Confirm(ctx, payments.ConfirmRequest{IntentID: in.ID, PaymentMethod: "pm_card_visa", IdempotencyKey: "payment-o1-5"}); !errors.Is(err, payments.ErrIntentNotOpen) {
		t.Fatalf("a second charge of a succeeded intent: %v, want ErrIntentNotOpen", err)
	}
	if _, err := c.CancelIntent(ctx, in.ID); !errors.Is(err, payments.ErrIntentNotOpen) {
		t.Fatalf("cancel of a succeeded intent: %v, want ErrIntentNotOpen", err)
	}

	r1, err := c.Refund(ctx, payments.RefundRequest{IntentID: in.ID, Amount: 800, IdempotencyKey: "refund-a"})
	if err != nil || r1.ProviderID == "" {
		t.Fatalf("refund: %+v, %v", r1, err)
	}
	if _, err := c.Refund(ctx, payments.RefundRequest{IntentID: in.ID, Amount: 800, IdempotencyKey: "refund-b"}); err != nil {
		t.Fatalf("second refund of a refunded charge: %v, want success", err)
	}

	if _, err := c.Intent(ctx, "pi_unknown"); !errors.Is(err, payments.ErrNoSuchIntent) {
		t.Fatalf("unknown intent: %v", err)
	}
	other, err := c.NewIntent(ctx, payments.IntentRequest{OrderID: "o2", Amount: 500, Currency: "usd", IdempotencyKey: "intent-o2-1"})
	if err != nil {
		t.Fatal(err)
	}
	if closed, err := c.CancelIntent(ctx, other.ID); err != nil || closed.Status != payments.IntentCanceled {
		t.Fatalf("cancel: %+v, %v", closed, err)
	}
	if _, err := c.Confirm(ctx, payments.ConfirmRequest{IntentID: other.ID, PaymentMethod: "pm_card_visa", IdempotencyKey: "payment-o2-1"}); !errors.Is(err, payments.ErrIntentNotOpen) {
		t.Fatalf("confirm of a canceled intent: %v, want ErrIntentNotOpen", err)
	}
	var small *payments.AmountError
	if _, err := c.NewIntent(ctx, payments.IntentRequest{OrderID: "o3", Amount: 49, Currency: "usd", IdempotencyKey: "intent-o3-1"}); !errors.As(err, &small) {
		t.Fatalf("49 cents: %v", err)
	}
}

// TestOffline: the offline test mode follows the protocol as Stripe does.
func TestOffline(t *testing.T) {
	protocol(t, stripe.NewOffline())
}

// TestClient: the Stripe client follows the protocol against the fake
// Stripe API.
func TestClient(t *testing.T) {
	f := stripetest.New(t)
	protocol(t, stripe.New(stripetest.Key, stripe.Options{URL: f.URL, MaxNetworkRetries: stripego.Int64(0)}))
}

// TestClientErrors: Stripe answers other than success and card declines
// map to the domain's errors; a provider error says whether Stripe keeps
// its answer for the idempotency key (a retry then needs another key).
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
		{"bad key is a provider error", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`,
			func(err error) bool { var p *payments.ProviderError; return errors.As(err, &p) && !p.Answered }},
		{"a request of the same key running is not an answer kept", 409, `{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use","message":"in progress"}}`,
			func(err error) bool { var p *payments.ProviderError; return errors.As(err, &p) && !p.Answered }},
		{"outage is an answered provider error", 500, `{"error":{"type":"api_error","message":"boom"}}`,
			func(err error) bool { var p *payments.ProviderError; return errors.As(err, &p) && p.Answered }},
		{"an intent no longer open", 400, `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"You cannot confirm this PaymentIntent because it has a status of succeeded."}}`,
			func(err error) bool { return errors.Is(err, payments.ErrIntentNotOpen) }},
		{"an unknown intent", 404, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such payment_intent: 'pi_1'","param":"intent"}}`,
			func(err error) bool { return errors.Is(err, payments.ErrNoSuchIntent) }},
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
			_, err := c.Confirm(context.Background(), payments.ConfirmRequest{IntentID: "pi_1", PaymentMethod: "pm_card_visa", IdempotencyKey: "k"})
			if !tc.check(err) {
				t.Fatalf("error %T %v", err, err)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d calls", n)
			}
		})
	}

	t.Run("no answer is a provider error not answered", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		url := srv.URL
		srv.Close() // nothing listens
		c := stripe.New("sk_test_x", stripe.Options{URL: url, MaxNetworkRetries: stripego.Int64(0)})
		_, err := c.Confirm(context.Background(), payments.ConfirmRequest{IntentID: "pi_1", PaymentMethod: "pm_card_visa", IdempotencyKey: "k"})
		var p *payments.ProviderError
		if !errors.As(err, &p) || p.Answered {
			t.Fatalf("error %T %v, want an unanswered ProviderError", err, err)
		}
	})
}
