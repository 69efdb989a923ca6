package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/services/payments/internal/stripe"
	"github.com/stuffmart/stuffmart/services/payments/stripetest"
)

// TestWebhooksParse: a signed Checkout Session event is read whatever the
// account's API version and however payment_intent is given; other event
// types are of no interest; a signature made otherwise is an *EventError.
func TestWebhooksParse(t *testing.T) {
	const secret = "whsec_parse_test"
	hooks := stripe.NewWebhooks(secret, "stripe")
	session := `{"id":"cs_1","object":"checkout.session","client_reference_id":"o1","payment_status":"paid","amount_total":1999,"currency":"usd",` +
		`"metadata":{"orderId":"o1","userId":"u1","attempt":"2","correlationId":"buy-1"},"payment_intent":%s}`
	event := func(typ, version, intent string) []byte {
		return []byte(`{"id":"evt_1","object":"event","api_version":"` + version + `","type":"` + typ + `","data":{"object":` +
			fmt.Sprintf(session, intent) + `}}`)
	}
	signed := func(p []byte, secret string, at time.Time) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: p, Secret: secret, Timestamp: at}).Header
	}
	want := payments.SessionEvent{ID: "evt_1", Kind: payments.SessionCompleted, Provider: "stripe", SessionID: "cs_1", OrderID: "o1",
		UserID: "u1", Attempt: 2, CorrelationID: "buy-1", Paid: true, Amount: 1999, Currency: "usd", IntentID: "pi_1"}
	for _, tc := range []struct{ name, version, intent string }{
		{"stripe-go's API version, intent as an id", "2023-10-16", `"pi_1"`},
		{"another API version, intent expanded", "2025-03-31.basil", `{"id":"pi_1","object":"payment_intent"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := event("checkout.session.completed", tc.version, tc.intent)
			got, err := hooks.Parse(p, signed(p, secret, time.Now()))
			if err != nil || got != want {
				t.Fatalf("got %+v, %v; want %+v", got, err, want)
			}
		})
	}
	t.Run("another event type", func(t *testing.T) {
		p := event("payment_intent.succeeded", "2023-10-16", `"pi_1"`)
		got, err := hooks.Parse(p, signed(p, secret, time.Now()))
		if err != nil || got.Kind != "" {
			t.Fatalf("got %+v, %v; want no kind", got, err)
		}
	})
	p := event("checkout.session.completed", "2023-10-16", `"pi_1"`)
	for name, sig := range map[string]string{
		"no signature":   "",
		"another secret": signed(p, "whsec_other", time.Now()),
		"too old":        signed(p, secret, time.Now().Add(-6*time.Minute)),
		"malformed":      "v1",
	} {
		t.Run(name, func(t *testing.T) {
			var ee *stripe.EventError
			if _, err := hooks.Parse(p, sig); !errors.As(err, &ee) || ee.Message != "Webhook signature is not valid" || ee.StatusCode() != 400 {
				t.Fatalf("error %v", err)
			}
		})
	}
	t.Run("signed, not an event", func(t *testing.T) {
		bad := []byte(`not json`)
		var ee *stripe.EventError
		if _, err := hooks.Parse(bad, signed(bad, secret, time.Now())); !errors.As(err, &ee) || ee.Message != "Webhook payload is not a Stripe event" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("what Sign signs, Parse takes", func(t *testing.T) {
		if got, err := hooks.Parse(p, hooks.Sign(p)); err != nil || got != want {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
}

// TestStandInPaysASessionOnce: the stand-in page submitted twice (a double
// click) pays its session with one PaymentIntent, as Checkout does; both
// events name it, so the second records nothing new.
func TestStandInPaysASessionOnce(t *testing.T) {
	hooks := stripe.NewWebhooks("whsec_standin_test", "offline")
	standIn := stripe.NewStandIn(stripe.NewOffline(), hooks, time.Now)
	v := payments.SessionView{ID: "cs_offline_o1_1", OrderID: "o1", UserID: "u1", Attempt: 1, Amount: 1200, Currency: "usd"}
	intents := map[string]bool{}
	for range 2 {
		payload, signature, err := standIn.Pay(v, stripe.CardSucceeds)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := hooks.Parse(payload, signature)
		if err != nil {
			t.Fatal(err)
		}
		intents[ev.IntentID] = true
	}
	if len(intents) != 1 {
		t.Fatalf("two payments of one session made PaymentIntents %v, want one", intents)
	}
	payload, signature, err := standIn.Pay(payments.SessionView{ID: "cs_offline_o2_1", OrderID: "o2", UserID: "u1", Attempt: 1, Amount: 900, Currency: "usd"}, stripe.CardSucceeds)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := hooks.Parse(payload, signature)
	if err != nil {
		t.Fatal(err)
	}
	if intents[ev.IntentID] {
		t.Fatal("another session was paid with the same PaymentIntent")
	}
}

// TestLookupSession: a session is told paid, with what it took, once it
// was paid, whether or not its event was ever delivered: on the offline
// stand-in and at (the fake) Stripe through the real client.
func TestLookupSession(t *testing.T) {
	ctx := context.Background()
	t.Run("offline", func(t *testing.T) {
		offline := stripe.NewOffline()
		standIn := stripe.NewStandIn(offline, stripe.NewWebhooks("whsec_standin_test", "offline"), time.Now)
		v := payments.SessionView{ID: "cs_offline_o1_1", OrderID: "o1", UserID: "u1", Attempt: 1, Amount: 1200, Currency: "eur"}
		st, err := offline.LookupSession(ctx, v.ID)
		if err != nil || st.Paid || st.Status != payments.SessionOpen {
			t.Fatalf("before paying: %+v, %v", st, err)
		}
		if _, _, err := standIn.Pay(v, stripe.CardDeclined); err == nil {
			t.Fatal("the declined card paid")
		}
		if st, _ := offline.LookupSession(ctx, v.ID); st.Paid {
			t.Fatalf("after a decline: %+v", st)
		}
		if _, _, err := standIn.Pay(v, stripe.CardSucceeds); err != nil { // its event is dropped here
			t.Fatal(err)
		}
		st, err = offline.LookupSession(ctx, v.ID)
		in, ierr := offline.Intent(ctx, st.IntentID)
		if err != nil || ierr != nil || !st.Paid || st.Status != payments.SessionComplete || st.Amount != 1200 || st.Currency != "eur" ||
			st.Provider != "offline" || in.Status != payments.IntentSucceeded || in.Amount != 1200 {
			t.Fatalf("after paying: %+v (%v), its intent %+v (%v)", st, err, in, ierr)
		}
	})
	t.Run("stripe", func(t *testing.T) {
		f := stripetest.New(t)
		c := stripe.New(stripetest.Key, stripe.Options{URL: f.URL, MaxNetworkRetries: stripego.Int64(0)})
		ref, err := c.NewSession(ctx, payments.SessionRequest{OrderID: "o1", UserID: "u1", Attempt: 1, Title: "Notes", Amount: 1500, Currency: "usd",
			SuccessURL: "https://shop.test/orders/o1?paid=1&session_id=" + payments.SessionIDPlaceholder, CancelURL: "https://shop.test/orders/o1",
			ExpiresAt: time.Now().Add(time.Hour), IdempotencyKey: "checkout-o1-1"})
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.LookupSession(ctx, ref.ID)
		if err != nil || st.Paid || st.Status != payments.SessionOpen || st.IntentID != "" {
			t.Fatalf("before paying: %+v, %v", st, err)
		}
		paid, ok := f.PaySession(ref.ID)
		if !ok {
			t.Fatal("not paid")
		}
		st, err = c.LookupSession(ctx, ref.ID)
		if err != nil || !st.Paid || st.Status != payments.SessionComplete || st.IntentID != paid.PaymentIntent || st.Amount != 1500 ||
			st.Currency != "usd" || st.Provider != "stripe" {
			t.Fatalf("after paying: %+v, %v (paid by %s)", st, err, paid.PaymentIntent)
		}
		if st, err := c.LookupSession(ctx, "cs_test_nope"); err != nil || st.Status != payments.SessionExpired || st.Paid {
			t.Fatalf("an unknown session: %+v, %v", st, err)
		}
	})
}
