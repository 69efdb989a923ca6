package app_test

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/app"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// TestCheckoutWithStripe: a card payment through Stripe Checkout, against
// the fake Stripe API through the real stripe-go client, with webhook
// events signed as Stripe signs them.
func TestCheckoutWithStripe(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)

	t.Run("a session for the order; its signed completion pays the order with the purchase's correlation id", func(t *testing.T) {
		id := s.titledOrder(buyer, 1999, "Linear algebra notes")
		r := s.checkout(cookie, id, nil, testkit.WithHeader(correlation.Header, "buy-1234"))
		r.Want(http.StatusCreated)
		var sess sessionJSON
		r.Decode(&sess)
		stripeSessions := s.stripe.Sessions(id)
		if len(stripeSessions) != 1 {
			t.Fatalf("%d Checkout Sessions for the order, want 1", len(stripeSessions))
		}
		cs := stripeSessions[0]
		if sess.ID != cs.ID || sess.URL != cs.URL || !strings.HasPrefix(sess.URL, "https://checkout.stripe.test/") {
			t.Fatalf("answered %+v, Stripe made %s at %s", sess, cs.ID, cs.URL)
		}
		success, cancel := returnURLs(id)
		if cs.Mode != "payment" || cs.Title != "Linear algebra notes" || cs.Amount != 1999 || cs.Currency != "usd" || cs.Quantity != "1" ||
			cs.OrderID != id || cs.SuccessURL != success || cs.CancelURL != cancel || !slices.Equal(cs.MethodTypes, []string{"card"}) ||
			cs.IntentOrderID != id {
			t.Errorf("session made with %+v", cs)
		}
		wantMeta := map[string]string{"orderId": id, "userId": buyer.ID, "attempt": "1", "correlationId": "buy-1234"}
		for k, v := range wantMeta {
			if cs.Metadata[k] != v {
				t.Errorf("metadata %v, want %v", cs.Metadata, wantMeta)
			}
		}
		deadline := s.clock.Now().Add(15 * time.Minute)
		if exp := time.Unix(cs.ExpiresAt, 0); exp.Before(s.clock.Now().Add(30*time.Minute)) || exp.Before(deadline) || exp.After(s.clock.Now().Add(24*time.Hour)) {
			t.Errorf("session expires at %v: not within Stripe's 30 minutes to 24 hours, or before the order's deadline %v", exp, deadline)
		}
		creates := s.stripe.Requests("/v1/checkout/sessions")
		if len(creates) != 1 || creates[0].IdempotencyKey != "checkout-"+id+"-1" {
			t.Fatalf("session requests %+v, want one with Idempotency-Key checkout-%s-1", creates, id)
		}
		if st, _ := s.attempt(id, 1); st != "checkout" {
			t.Fatalf("attempt %s, want checkout", st)
		}

		paid, ok := s.stripe.PaySession(cs.ID)
		if !ok {
			t.Fatal("the session could not be paid")
		}
		s.deliver(s.stripe.Event(cs.ID, "checkout.session.completed"))
		ev := s.paymentEvent(id)
		if ev.Amount != 1999 || ev.ProviderID != paid.PaymentIntent || ev.ID == "" {
			t.Fatalf("payment:created %+v, want 1999 by %s", ev, paid.PaymentIntent)
		}
		msg := s.Peer.Received(events.PaymentCreated)
		if i := slices.IndexFunc(msg, func(m events.Msg) bool { return bytes.Contains(m.Data, []byte(id)) }); i < 0 ||
			!bytes.Contains(msg[i].Data, []byte(`"correlationId":"buy-1234"`)) {
			t.Fatalf("payment:created does not carry the purchase's correlation id: %s", msg[i].Data)
		}
		if st, _ := s.attempt(id, 1); st != "succeeded" {
			t.Fatalf("attempt %s after the payment, want succeeded", st)
		}
		s.checkout(cookie, id, nil).WantError(http.StatusBadRequest, "Order has already been paid", "")
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Order has already been paid", "")
		if n := len(s.stripe.Charged(id)); n != 1 {
			t.Fatalf("Stripe charged the order %d times", n)
		}
	})

	t.Run("the webhook never comes: the buyer's return to the order page records the payment", func(t *testing.T) {
		id := s.titledOrder(buyer, 2050, "Webhook lost")
		sess := s.startCheckout(cookie, id, testkit.WithHeader(correlation.Header, "buy-5678"))
		confirm := func(cookie *http.Cookie, orderID, sessionID string) *testkit.Response {
			return s.HTTP.Do(http.MethodPost, "/api/payments/checkout/confirm", map[string]any{"orderId": orderID, "sessionId": sessionID},
				testkit.WithCookie(cookie))
		}
		paid := func(r *testkit.Response) bool {
			t.Helper()
			var out struct {
				Paid *bool `json:"paid"`
			}
			r.Want(http.StatusOK).Decode(&out)
			if out.Paid == nil {
				t.Fatal("answer without paid")
			}
			return *out.Paid
		}
		lookups := func() int { return s.sessionLookups(sess.ID) }

		// Back before paying (the back button): not paid, and asked once
		// however often the page reloads.
		if paid(confirm(cookie, id, sess.ID)) || paid(confirm(cookie, id, sess.ID)) {
			t.Fatal("an unpaid session confirmed as paid")
		}
		if n := lookups(); n != 1 {
			t.Fatalf("Stripe asked %d times about the session within 5 s, want 1", n)
		}
		// Refused: no session, another order's session, another buyer.
		confirm(cookie, id, "cs_test_unknown").WantError(http.StatusNotFound, "Checkout session not found", "")
		other := s.order(buyer, 2060)
		confirm(cookie, other, sess.ID).WantError(http.StatusNotFound, "Checkout session not found", "")
		_, stranger := s.User(auth.RoleUser)
		confirm(stranger, id, sess.ID).WantError(http.StatusNotFound, "Order not found", "")
		confirm(nil, id, sess.ID).Want(http.StatusUnauthorized)
		confirm(cookie, id, "").WantError(http.StatusBadRequest, "Session id is required", "sessionId")

		// Paid on Stripe's page; its event is lost. The page the buyer
		// lands on asks again (after the 5 s spacing) and the payment is
		// recorded as the event would have recorded it.
		charged, ok := s.stripe.PaySession(sess.ID)
		if !ok {
			t.Fatal("the session could not be paid")
		}
		if paid(confirm(cookie, id, sess.ID)) {
			t.Fatal("asked Stripe again within 5 s")
		}
		s.clock.Advance(5 * time.Second)
		if !paid(confirm(cookie, id, sess.ID)) {
			t.Fatal("a paid session not confirmed")
		}
		ev := s.paymentEvent(id)
		if ev.Amount != 2050 || ev.ProviderID != charged.PaymentIntent {
			t.Fatalf("payment:created %+v, want 2050 by %s", ev, charged.PaymentIntent)
		}
		msg := s.Peer.Received(events.PaymentCreated)
		if i := slices.IndexFunc(msg, func(m events.Msg) bool { return bytes.Contains(m.Data, []byte(id)) }); i < 0 ||
			!bytes.Contains(msg[i].Data, []byte(`"correlationId":"buy-5678"`)) {
			t.Fatal("payment:created does not carry the purchase's correlation id")
		}
		if st, _ := s.attempt(id, 1); st != "succeeded" {
			t.Fatalf("attempt %s after the confirmation, want succeeded", st)
		}
		// Again, and the late event: nothing more is recorded or asked.
		asked := lookups()
		s.clock.Advance(5 * time.Second)
		if !paid(confirm(cookie, id, sess.ID)) {
			t.Fatal("a recorded payment answered unpaid")
		}
		s.deliver(s.stripe.Event(sess.ID, "checkout.session.completed"))
		s.settled(buyer)
		if evs := s.paymentEvents(id); len(evs) != 1 || lookups() != asked {
			t.Fatalf("payment:created %d times, Stripe asked %d more times; want once and none", len(evs), lookups()-asked)
		}
		if n := len(s.stripe.Charged(id)); n != 1 {
			t.Fatalf("Stripe charged the order %d times", n)
		}
	})

	t.Run("the webhook never comes nor the buyer back: the sweep looks the session up before the deadline", func(t *testing.T) {
		id := s.titledOrder(buyer, 2070, "Nobody came back")
		sess := s.startCheckout(cookie, id)
		charged, ok := s.stripe.PaySession(sess.ID)
		if !ok {
			t.Fatal("the session could not be paid")
		}
		lookups := func() int { return s.sessionLookups(sess.ID) }
		// Far from its deadline the session is left to its event: a whole
		// sweep since it was paid did not ask about it.
		s.sweptOnce(buyer, cookie)
		if n := lookups(); n != 0 {
			t.Fatalf("Stripe asked %d times about a session 15 minutes from its deadline", n)
		}
		// Two minutes before it, the sweep asks, and the order completes.
		s.clock.Advance(13*time.Minute + time.Second)
		ev := s.paymentEvent(id)
		if ev.Amount != 2070 || ev.ProviderID != charged.PaymentIntent {
			t.Fatalf("payment:created %+v, want 2070 by %s", ev, charged.PaymentIntent)
		}
		// Final once the order is read again after the payment.
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.attempt(id, 1); return st == "succeeded" }, "attempt succeeded")
		if len(s.stripe.Refunds(charged.PaymentIntent)) != 0 {
			t.Fatal("the payment was refunded")
		}
		// Recorded: no more lookups.
		asked := lookups()
		s.clock.Advance(10 * time.Second)
		s.sweptOnce(buyer, cookie)
		if lookups() != asked {
			t.Fatal("Stripe asked again after the payment was recorded")
		}
	})

	t.Run("a second click gets the same session; another coupon replaces it", func(t *testing.T) {
		id := s.order(buyer, 2000)
		first := s.startCheckout(cookie, id)
		again := s.startCheckout(cookie, id)
		if again != first || len(s.stripe.Sessions(id)) != 1 {
			t.Fatalf("second click %+v, first %+v, %d sessions at Stripe", again, first, len(s.stripe.Sessions(id)))
		}
		admin := s.Cookie(auth.User{ID: testkit.RandomID(t)[:24], Email: "admin@uni.edu", Role: auth.RoleAdmin})
		c := s.createCoupon(admin, map[string]any{"percentOff": 25})
		var third sessionJSON
		s.checkout(cookie, id, map[string]any{"coupon": c.Code}).Want(http.StatusCreated).Decode(&third)
		sessions := s.stripe.Sessions(id)
		if third.ID == first.ID || len(sessions) != 2 || sessions[0].Status != "expired" || sessions[1].Amount != 1500 || sessions[1].Metadata["attempt"] != "2" {
			t.Fatalf("with a coupon: %+v; sessions %+v", third, sessions)
		}
		if st, _ := s.attempt(id, 1); st != "expired" {
			t.Fatalf("the replaced attempt is %s, want expired", st)
		}
	})

	t.Run("an expired session is forgotten: the next click makes another", func(t *testing.T) {
		id := s.order(buyer, 2100)
		first := s.startCheckout(cookie, id)
		s.deliver(s.stripe.Event(first.ID, "checkout.session.expired"))
		if st, _ := s.attempt(id, 1); st != "expired" {
			t.Fatalf("attempt %s after checkout.session.expired", st)
		}
		next := s.startCheckout(cookie, id)
		if next.ID == first.ID || len(s.stripe.Sessions(id)) != 2 {
			t.Fatalf("after expiry got %+v (first %+v)", next, first)
		}
		// A failed asynchronous payment leaves the order payable as well.
		s.deliver(s.stripe.Event(next.ID, "checkout.session.async_payment_failed"))
		if st, _ := s.attempt(id, 2); st != "expired" {
			t.Fatalf("attempt %s after checkout.session.async_payment_failed", st)
		}
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
	})

	t.Run("a replayed event changes nothing", func(t *testing.T) {
		id := s.order(buyer, 2200)
		sess := s.startCheckout(cookie, id)
		s.stripe.PaySession(sess.ID)
		event := s.stripe.Event(sess.ID, "checkout.session.completed")
		s.deliver(event)
		first := s.paymentEvent(id)
		s.deliver(event)                                                               // the same delivery again
		s.deliver(s.stripe.Event(sess.ID, "checkout.session.async_payment_succeeded")) // another event, same payment
		s.settled(buyer)
		if evs := s.paymentEvents(id); len(evs) != 1 || evs[0] != first {
			t.Fatalf("payment:created %+v, want once", evs)
		}
		handled, err := s.DB.Collection("stripe_events").CountDocuments(t.Context(), map[string]any{"orderId": id, "done": true})
		if err != nil || handled != 2 {
			t.Fatalf("%d events recorded handled (%v), want 2", handled, err)
		}
	})

	t.Run("a bad or missing signature is refused and changes nothing", func(t *testing.T) {
		id := s.order(buyer, 2300)
		sess := s.startCheckout(cookie, id)
		s.stripe.PaySession(sess.ID)
		event := s.stripe.Event(sess.ID, "checkout.session.completed")
		tampered := bytes.Replace(event, []byte(`"amount_total":2300`), []byte(`"amount_total":2301`), 1)
		if bytes.Equal(tampered, event) {
			t.Fatal("the test did not tamper with the event")
		}
		s.postEvent(tampered, sign(event)).WantError(http.StatusBadRequest, "Webhook signature is not valid", "")
		s.postEvent(event, "").WantError(http.StatusBadRequest, "Webhook signature is not valid", "")
		s.postEvent(event, "t=1,v1=00ff").WantError(http.StatusBadRequest, "Webhook signature is not valid", "")
		old := time.Now().Add(-10 * time.Minute).Unix()
		s.postEvent(event, "t="+strconv.FormatInt(old, 10)+",v1=00").WantError(http.StatusBadRequest, "Webhook signature is not valid", "")
		s.settled(buyer)
		if evs := s.paymentEvents(id); len(evs) != 0 {
			t.Fatalf("payment:created %+v after refused deliveries", evs)
		}
		if st, _ := s.attempt(id, 1); st != "checkout" {
			t.Fatalf("attempt %s after refused deliveries, want checkout", st)
		}
		// The genuine delivery still pays.
		s.deliver(event)
		if ev := s.paymentEvent(id); ev.Amount != 2300 {
			t.Fatalf("payment:created %+v", ev)
		}
	})

	for _, tc := range []struct {
		name   string
		change func(map[string]any)
	}{
		{"a wrong amount is refused and refunded", func(o map[string]any) { o["amount_total"] = 100 }},
		{"a wrong currency is refused and refunded", func(o map[string]any) { o["currency"] = "eur" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := s.order(buyer, 2400)
			sess := s.startCheckout(cookie, id)
			paid, _ := s.stripe.PaySession(sess.ID)
			s.deliver(s.stripe.Event(sess.ID, "checkout.session.completed", tc.change))
			testkit.Eventually(t, waitFor, func() bool { st, _ := s.refundRecord("session-" + sess.ID); return st == "done" }, "refund of the session's charge")
			if refunds := s.stripe.Refunds(paid.PaymentIntent); len(refunds) != 1 {
				t.Fatalf("refunds of %s: %+v", paid.PaymentIntent, refunds)
			}
			s.settled(buyer)
			if evs := s.paymentEvents(id); len(evs) != 0 {
				t.Fatalf("payment:created %+v for a wrong payment", evs)
			}
			// The order stays payable.
			if next := s.startCheckout(cookie, id); next.ID == sess.ID {
				t.Fatal("the refused session was handed out again")
			}
		})
	}

	t.Run("a cancelled order's session is expired at Stripe", func(t *testing.T) {
		id := s.order(buyer, 2500)
		sess := s.startCheckout(cookie, id)
		s.cancel(id)
		testkit.Eventually(t, waitFor, func() bool { return s.stripe.Sessions(id)[0].Status == "expired" }, "session expired at Stripe")
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.attempt(id, 1); return st == "expired" }, "attempt expired")
		if _, ok := s.stripe.PaySession(sess.ID); ok {
			t.Fatal("an expired session could be paid")
		}
		s.checkout(cookie, id, nil).WantError(http.StatusBadRequest, "Cannot pay for a cancelled order", "")
	})

	t.Run("a payment that lands on a cancelled order is refunded", func(t *testing.T) {
		id := s.order(buyer, 2600)
		sess := s.startCheckout(cookie, id)
		paid, _ := s.stripe.PaySession(sess.ID) // paid on Stripe's page...
		s.cancel(id)                            // ...as the deadline passed; the event comes after
		s.deliver(s.stripe.Event(sess.ID, "checkout.session.completed"))
		ev := s.paymentEvent(id)
		s.wantRefundedOnce(ev.ID, s.stripe.Charged(id)[0])
		if ev.ProviderID != paid.PaymentIntent {
			t.Fatalf("payment:created %+v, paid by %s", ev, paid.PaymentIntent)
		}
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.attempt(id, 1); return st == "refunded" }, "attempt refunded")
	})

	t.Run("a payment whose event never comes is recorded by the sweep, and refunded on a cancelled order", func(t *testing.T) {
		id := s.order(buyer, 2650)
		sess := s.startCheckout(cookie, id)
		s.stripe.PaySession(sess.ID) // paid on Stripe's page; the webhook keeps failing
		s.cancel(id)                 // the deadline passes
		ev := s.paymentEvent(id)
		s.wantRefundedOnce(ev.ID, s.stripe.Charged(id)[0])
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.attempt(id, 1); return st == "refunded" }, "attempt refunded")
	})

	t.Run("paying with a payment method ends the open session first", func(t *testing.T) {
		id := s.order(buyer, 2700)
		s.startCheckout(cookie, id)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
		if sessions := s.stripe.Sessions(id); sessions[0].Status != "expired" {
			t.Fatalf("session %s after a payment by payment method", sessions[0].Status)
		}
		if st, _ := s.attempt(id, 1); st != "expired" {
			t.Fatalf("attempt 1 %s", st)
		}
	})

	t.Run("a session paid whose event has not come yet cannot be ended", func(t *testing.T) {
		id := s.order(buyer, 2800)
		sess := s.startCheckout(cookie, id)
		s.stripe.PaySession(sess.ID)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).
			WantError(http.StatusBadRequest, "A payment for this order is already in progress", "")
		// The session's PaymentIntent is known now: the sweep records the
		// payment if the event does not; the event, when it comes, finds
		// it recorded. Either way one charge, one payment.
		if st, _ := s.attempt(id, 1); st != "unknown" && st != "succeeded" {
			t.Fatalf("attempt %s, want unknown until the sweep or the event records it", st)
		}
		s.deliver(s.stripe.Event(sess.ID, "checkout.session.completed"))
		s.paymentEvent(id)
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.attempt(id, 1); return st == "succeeded" }, "attempt succeeded")
		if n := len(s.stripe.Charged(id)); n != 1 {
			t.Fatalf("Stripe charged the order %d times", n)
		}
		if n := len(s.paymentEvents(id)); n != 1 {
			t.Fatalf("%d payment:created events, want 1", n)
		}
	})

	t.Run("under Stripe's minimum", func(t *testing.T) {
		id := s.order(buyer, 49)
		s.checkout(cookie, id, nil).WantError(http.StatusBadRequest, "The Checkout Session's total amount due must add up to at least $0.50 usd", "")
	})

	t.Run("metrics", func(t *testing.T) {
		m := s.metrics()
		if m.Value("payments_total", "outcome", "succeeded") < 1 || m.Value("payments_total", "outcome", "expired") < 1 ||
			m.Value("payments_total", "outcome", "refunded") < 1 || !m.Has("payments_refunds_pending") || !m.Has("payments_coupon_redemptions_total") {
			t.Fatalf("metrics:\n%s", m)
		}
	})
}

// TestCheckoutRefusals: only the buyer may start a checkout, of an order
// that can still be paid, with return URLs of its own site.
func TestCheckoutRefusals(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)
	_, other := s.User(auth.RoleUser)

	id := s.order(buyer, 1000)
	s.checkout(other, id, nil).WantError(http.StatusNotFound, "Order not found", "")
	s.checkout(cookie, "0123456789abcdef01234567", nil).WantError(http.StatusNotFound, "Order not found", "")
	s.checkout(nil, id, nil).WantError(http.StatusUnauthorized, "Not authorized", "")

	tooLong := "https://shop.test/" + strings.Repeat("a", 2048)
	for _, tc := range []struct {
		name  string
		body  map[string]any
		items []errs.Item
	}{
		{"relative", map[string]any{"successUrl": "/orders/x"}, []errs.Item{{Message: "Must be an absolute http or https URL", Field: "successUrl"}}},
		{"script", map[string]any{"cancelUrl": "javascript:alert(1)"}, []errs.Item{{Message: "Must be an absolute http or https URL", Field: "cancelUrl"}}},
		{"too long", map[string]any{"successUrl": tooLong}, []errs.Item{{Message: "Return URL is too long", Field: "successUrl"}}},
		{"missing", map[string]any{"successUrl": "", "cancelUrl": ""}, []errs.Item{
			{Message: "Return URL is required", Field: "successUrl"}, {Message: "Return URL is required", Field: "cancelUrl"}}},
		{"operator object", map[string]any{"orderId": map[string]any{"$ne": nil}}, []errs.Item{{Message: "Must be a string", Field: "orderId"}}},
		{"not back to the order", map[string]any{"successUrl": "https://shop.test/elsewhere", "cancelUrl": "https://shop.test/orders/0123456789abcdef01234567"}, []errs.Item{
			{Message: "Must lead back to the order's page", Field: "successUrl"}, {Message: "Must lead back to the order's page", Field: "cancelUrl"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.checkout(cookie, id, tc.body).WantErrors(http.StatusBadRequest, tc.items...)
		})
	}

	expired := testkit.RandomID(t)[:24]
	s.Peer.Publish(events.OrderCreatedEvent{ID: expired, Version: 1, Status: "created", UserID: buyer.ID,
		ExpiresAt: s.clock.Now().Add(-time.Second), Stuff: events.StuffRef{ID: "x", Price: 1000}})
	testkit.Eventually(t, waitFor, func() bool { st, _ := s.replica(expired); return st != "" }, "replica")
	s.checkout(cookie, expired, nil).WantError(http.StatusBadRequest, "Cannot pay for an expired order", "")
	cancelled := s.order(buyer, 1000)
	s.cancel(cancelled)
	s.checkout(cookie, cancelled, nil).WantError(http.StatusBadRequest, "Cannot pay for a cancelled order", "")
	if n := len(s.stripe.Requests("/v1/checkout/sessions")); n != 0 {
		t.Fatalf("%d session requests reached Stripe", n)
	}
}

// TestCheckoutReturnsToThePublicURL: with PUBLIC_URL set, the return URLs
// must be on the storefront's origin: no checkout sends a buyer to another
// site.
func TestCheckoutReturnsToThePublicURL(t *testing.T) {
	t.Parallel()
	s := newStack(t, false, func(c *app.Config) { c.PublicURL = "https://shop.test" })
	buyer, cookie := s.User(auth.RoleUser)
	id := s.order(buyer, 1000)
	s.checkout(cookie, id, map[string]any{"successUrl": "https://evil.example/orders/" + id + "?paid=1"}).
		WantError(http.StatusBadRequest, "Must be on https://shop.test", "successUrl")
	s.checkout(cookie, id, map[string]any{"cancelUrl": "http://shop.test/orders/" + id}).
		WantError(http.StatusBadRequest, "Must be on https://shop.test", "cancelUrl")
	s.checkout(cookie, id, nil).Want(http.StatusCreated)
}

// TestCheckoutFreeCoupon: a coupon that makes the order free pays it at
// once, without Stripe.
func TestCheckoutFreeCoupon(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)
	admin := s.Cookie(auth.User{ID: testkit.RandomID(t)[:24], Email: "admin@uni.edu", Role: auth.RoleAdmin})
	c := s.createCoupon(admin, map[string]any{"percentOff": 100})
	id := s.order(buyer, 1000)
	s.startCheckout(cookie, id) // an open session, which the coupon's payment ends
	r := s.checkout(cookie, id, map[string]any{"coupon": strings.ToLower(c.Code)})
	r.Want(http.StatusCreated)
	if strings.TrimSpace(string(r.Body)) != `{"completed":true}` {
		t.Fatalf("answered %s", r.Body)
	}
	if ev := s.paymentEvent(id); ev.Amount != 0 || ev.ProviderID != "coupon" {
		t.Fatalf("payment:created %+v", ev)
	}
	if sessions := s.stripe.Sessions(id); len(sessions) != 1 || sessions[0].Status != "expired" {
		t.Fatalf("sessions %+v, want the open one expired", sessions)
	}
	if m := s.metrics(); m.Value("payments_coupon_redemptions_total") != 1 {
		t.Fatalf("coupon redemptions: %s", m)
	}
}

// TestConfirmWhileStripeIsDown: the buyer comes back from a paid checkout
// while Stripe cannot be reached: the confirmation answers 502 in the
// normalized shape, and nothing is written: the attempt waits for its event
// (or the next confirmation) as before, no payment is recorded.
func TestConfirmWhileStripeIsDown(t *testing.T) {
	t.Parallel()
	s := newStack(t, true, func(c *app.Config) { c.SweepEvery = time.Minute }) // no sweep during the test
	buyer, cookie := s.User(auth.RoleUser)
	id := s.titledOrder(buyer, 1500, "Stripe down")
	sess := s.startCheckout(cookie, id)
	if _, ok := s.stripe.PaySession(sess.ID); !ok {
		t.Fatal("the session could not be paid")
	}
	s.stripe.Close()
	s.HTTP.Do(http.MethodPost, "/api/payments/checkout/confirm", map[string]any{"orderId": id, "sessionId": sess.ID}, testkit.WithCookie(cookie)).
		WantError(http.StatusBadGateway, "The payment provider could not be reached, please try again", "")
	if st, _ := s.attempt(id, 1); st != "checkout" {
		t.Fatalf("attempt %s after a failed look-up, want checkout", st)
	}
	s.settled(buyer)
	if evs := s.paymentEvents(id); len(evs) != 0 {
		t.Fatalf("payment:created %+v while Stripe could not be asked", evs)
	}
}
