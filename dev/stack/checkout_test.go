package stack_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/stripetest"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// TestStackCardCheckout pays by card as `make dev` offers it with no Stripe
// key: the checkout payments starts, its offline stand-in of Stripe's hosted
// page on the gateway's origin, a declined card, then a good one whose signed
// checkout.session.completed (with the webhook secret make dev generated)
// completes the order through payments' real webhook.
func TestStackCardCheckout(t *testing.T) {
	t.Parallel()
	st := startStack(t, t.TempDir())
	co := startCardCheckout(t, st)
	buyer, order, session, checkout := co.buyer, co.orderID, co.session, co.request
	if !strings.HasPrefix(session.URL, st.info.URL+"/api/payments/checkout/") {
		t.Fatalf("checkout %+v: want the offline page on the gateway's origin", session)
	}
	// A second click gets the same checkout.
	var again struct {
		ID string `json:"id"`
	}
	status, raw := buyer.send(http.MethodPost, "/api/payments/checkout", checkout, "Idempotency-Key", "card-2")
	if status != http.StatusCreated {
		t.Fatalf("second click: %d %s", status, raw)
	}
	if decode(t, raw, &again); again.ID != session.ID {
		t.Fatalf("second click got checkout %q, want the open one %q", again.ID, session.ID)
	}

	page := func(method, card string) (int, string) {
		t.Helper()
		var body io.Reader
		if card != "" {
			body = strings.NewReader(url.Values{"card": {card}}.Encode())
		}
		req, err := http.NewRequestWithContext(t.Context(), method, session.URL, body)
		if err != nil {
			t.Fatal(err)
		}
		if card != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := buyer.http.Do(req) // follows the 303 back to the storefront
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(raw)
	}
	if status, html := page(http.MethodGet, ""); status != http.StatusOK || !strings.Contains(html, "TEST MODE") || !strings.Contains(html, "Linear algebra notes") {
		t.Fatalf("the stand-in page: %d %.300s", status, html)
	}
	if status, html := page(http.MethodPost, "4000000000000002"); status != http.StatusPaymentRequired || !strings.Contains(html, "Your card was declined") {
		t.Fatalf("declined card: %d %.300s", status, html)
	}
	if status, html := page(http.MethodPost, "4242424242424242"); status != http.StatusOK || !strings.Contains(html, "<html") {
		t.Fatalf("paid card, back on the storefront: %d %.300s", status, html)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		var o struct {
			Status string `json:"status"`
		}
		decode(t, buyer.expect(http.MethodGet, "/api/orders/"+order, nil, http.StatusOK), &o)
		return o.Status == "complete"
	}, "the order never completed after the card payment")
}

// cardCheckout is a buyer's order of a listing whose card checkout was
// started through the gateway, as the storefront's "Pay by card" starts it:
// request is the body it was started with, session what payments answered.
type cardCheckout struct {
	buyer     *client
	orderID   string
	orderPage string
	request   map[string]string
	session   struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
}

// startCardCheckout signs up a seller and a buyer, lists "Linear algebra
// notes" (delivery https://files.example/la), buys it and starts its card
// checkout, each step retried while the services' replicas catch up.
func startCardCheckout(t *testing.T, st running) cardCheckout {
	t.Helper()
	signup := func(email string) *client {
		c := newClient(t, st.info.URL)
		c.expect(http.MethodPost, "/api/users/signup", map[string]string{"email": email, "password": "password123"}, http.StatusCreated)
		return c
	}
	seller, buyer := signup("seller@uni.edu"), signup("buyer@uni.edu")
	var stuff idOnly
	decode(t, seller.expect(http.MethodPost, "/api/stuff", map[string]any{
		"title": "Linear algebra notes", "description": "notes", "price": 1200, "delivery": "https://files.example/la",
	}, http.StatusCreated), &stuff)
	var order idOnly
	testkit.Eventually(t, 5*time.Second, func() bool {
		status, raw := buyer.do(http.MethodPost, "/api/orders", map[string]string{"stuffId": stuff.ID}, "")
		if status == http.StatusCreated {
			decode(t, raw, &order)
		}
		return status != http.StatusNotFound
	}, "stuff never reached the orders service")
	if order.ID == "" {
		t.Fatal("BUY refused")
	}
	co := cardCheckout{buyer: buyer, orderID: order.ID, orderPage: st.info.URL + "/orders/" + order.ID}
	// The return URLs the storefront gives.
	co.request = map[string]string{"orderId": order.ID, "successUrl": co.orderPage + "?paid=1&session_id={CHECKOUT_SESSION_ID}", "cancelUrl": co.orderPage}
	var status int
	var raw []byte
	tries := 0
	testkit.Eventually(t, 5*time.Second, func() bool {
		// A new key each try: an answer is kept for its key, a 404 too.
		tries++
		status, raw = buyer.send(http.MethodPost, "/api/payments/checkout", co.request, "Idempotency-Key", fmt.Sprintf("card-1-%d", tries))
		return status != http.StatusNotFound // the payments replica learns of the order by event
	}, "order never reached the payments service")
	if status != http.StatusCreated {
		t.Fatalf("checkout: %d %s", status, raw)
	}
	decode(t, raw, &co.session)
	return co
}

// TestStackCardCheckoutWebhookLost: payments on (a fake) Stripe whose
// webhook events never arrive. The buyer pays on Stripe's page and comes
// back to the storefront's order page with the session's id, as Stripe
// sends them: the page has payments look the session up, the payment is
// recorded, the order completes, and the buyer is sent to the delivery.
func TestStackCardCheckoutWebhookLost(t *testing.T) {
	t.Parallel()
	fake := stripetest.New(t)
	st := startStack(t, t.TempDir(), "STRIPE_SECRET_KEY", stripetest.Key, "STRIPE_WEBHOOK_SECRET", "whsec_stack_webhook_never_comes",
		"STRIPE_API_URL", fake.URL)
	co := startCardCheckout(t, st)
	if !strings.HasPrefix(co.session.URL, "https://checkout.stripe.test/") {
		t.Fatalf("checkout %+v: want Stripe's page", co.session)
	}
	if _, ok := fake.PaySession(co.session.ID); !ok { // and no event is ever delivered
		t.Fatal("the session could not be paid")
	}
	back := co.orderPage + "?paid=1&session_id=" + co.session.ID
	var landed string
	// 30 s: a confirm cut short by a loaded machine is asked again only
	// after payments' 5 s spacing.
	testkit.Eventually(t, 30*time.Second, func() bool {
		resp, err := co.buyer.http.Get(back) // follows the storefront's 303s
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		landed = resp.Request.URL.Path
		return resp.StatusCode == http.StatusOK && strings.HasSuffix(landed, "/content") && strings.Contains(string(raw), "https://files.example/la")
	}, "the buyer back from Stripe never reached the delivery")
	var o struct {
		Status string `json:"status"`
	}
	if decode(t, co.buyer.expect(http.MethodGet, "/api/orders/"+co.orderID, nil, http.StatusOK), &o); o.Status != "complete" {
		t.Fatalf("order %s, want complete", o.Status)
	}
	lookups := 0
	for _, r := range fake.Requests("/v1/checkout/sessions/" + co.session.ID) {
		if r.Method == http.MethodGet {
			lookups++
		}
	}
	if lookups == 0 || len(fake.Charged(co.orderID)) != 1 {
		t.Fatalf("Stripe asked %d times about the session, charged %d times; want asked, and one charge", lookups, len(fake.Charged(co.orderID)))
	}
}
