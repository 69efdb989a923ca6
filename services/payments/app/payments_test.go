package app_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/stripetest"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestPayWithStripe(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)

	t.Run("success charges once, publishes payment:created, then refuses a second payment", func(t *testing.T) {
		id := s.order(buyer, 1999)
		r := s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
		r.Want(http.StatusCreated)
		var p paymentJSON
		r.Decode(&p)
		if p.ID == "" || p.OrderID != id || p.Amount != 1999 {
			t.Fatalf("payment %+v", p)
		}

		intents := s.stripe.Intents(id)
		if len(intents) != 1 {
			t.Fatalf("%d PaymentIntents for the order, want 1: %+v", len(intents), intents)
		}
		charge := intents[0]
		if charge.Amount != 1999 || charge.AmountReceived != 1999 || charge.Status != "succeeded" || charge.PaymentMethod != "pm_card_visa" {
			t.Errorf("PaymentIntent %+v", charge)
		}
		var create stripetest.Request
		for _, r := range s.stripe.Requests("/v1/payment_intents") {
			if r.Path == "/v1/payment_intents" && r.Form.Get("metadata[order_id]") == id {
				create = r
			}
		}
		want := map[string]string{
			"amount": "1999", "currency": "usd", "metadata[order_id]": id,
			"automatic_payment_methods[enabled]": "true", "automatic_payment_methods[allow_redirects]": "never",
		}
		for k, v := range want {
			if got := create.Form.Get(k); got != v {
				t.Errorf("PaymentIntent created with %s = %q, want %q (form %v)", k, got, v, create.Form)
			}
		}
		confirms := s.stripe.ChargeRequests(id)
		if len(confirms) != 1 || confirms[0].IdempotencyKey != "payment-"+id+"-1" || confirms[0].Form.Get("payment_method") != "pm_card_visa" {
			t.Errorf("charge requests %+v, want one confirm of pm_card_visa with Idempotency-Key payment-%s-1", confirms, id)
		}

		ev := s.paymentEvent(id)
		if ev != (events.PaymentCreatedEvent{ID: p.ID, OrderID: id, Amount: 1999, ProviderID: charge.ID}) {
			t.Fatalf("payment:created %+v, want id %s amount 1999 provider %s", ev, p.ID, charge.ID)
		}

		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Order has already been paid", "")
		// orders completes it: still refused, from the replica this time.
		s.Peer.Publish(events.OrderCompletedEvent{ID: id, Version: 2, UserID: buyer.ID})
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.replica(id); return st == events.OrderStatusComplete }, "order complete in the replica")
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Order has already been paid", "")
		if n := len(s.stripe.ChargeRequests(id)); n != 1 {
			t.Fatalf("%d charges reached Stripe, want 1", n)
		}
	})

	t.Run("decline then success", func(t *testing.T) {
		id := s.order(buyer, 2500)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_chargeDeclined"}).WantError(http.StatusPaymentRequired, "Your card was declined.", "paymentMethod")
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_chargeDeclinedInsufficientFunds"}).WantError(http.StatusPaymentRequired, "Your card has insufficient funds.", "paymentMethod")
		if st, _ := s.replica(id); st != events.OrderStatusCreated {
			t.Fatalf("order %s after declines, want created", st)
		}
		r := s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_mastercard"})
		r.Want(http.StatusCreated)
		s.paymentEvent(id)
		var keys []string
		for _, c := range s.stripe.ChargeRequests(id) {
			keys = append(keys, c.IdempotencyKey)
		}
		want := []string{"payment-" + id + "-1", "payment-" + id + "-2", "payment-" + id + "-3"}
		if strings.Join(keys, ",") != strings.Join(want, ",") {
			t.Fatalf("idempotency keys %v, want %v", keys, want)
		}
		// One PaymentIntent for the order, confirmed again after each decline.
		if intents := s.stripe.Intents(id); len(intents) != 1 || intents[0].Status != "succeeded" || intents[0].PaymentMethod != "pm_card_mastercard" {
			t.Fatalf("PaymentIntents %+v, want one, succeeded with the third card", intents)
		}
	})

	t.Run("unknown payment method at Stripe is a 400 on the field", func(t *testing.T) {
		id := s.order(buyer, 2500)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_nope"}).WantError(http.StatusBadRequest, "No such PaymentMethod: 'pm_nope'", "paymentMethod")
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
	})

	t.Run("cancelled order is refused before any charge", func(t *testing.T) {
		id := s.order(buyer, 1000)
		s.cancel(id)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Cannot pay for a cancelled order", "")
		if n := len(s.stripe.ChargeRequests(id)); n != 0 {
			t.Fatalf("%d charges reached Stripe for a cancelled order", n)
		}
	})

	t.Run("expired order is refused", func(t *testing.T) {
		id := testkit.RandomID(t)[:24]
		s.Peer.Publish(events.OrderCreatedEvent{ID: id, Version: 1, Status: "created", UserID: buyer.ID,
			ExpiresAt: s.clock.Now().Add(-time.Second), Stuff: events.StuffRef{ID: "x", Price: 1000}})
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.replica(id); return st != "" }, "replica")
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Cannot pay for an expired order", "")
	})

	t.Run("who may pay", func(t *testing.T) {
		id := s.order(buyer, 1000)
		_, other := s.User(auth.RoleUser)
		s.pay(other, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusUnauthorized, "Not authorized", "")
		s.pay(nil, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusUnauthorized, "Not authorized", "")
		s.pay(cookie, map[string]any{"orderId": "000000000000000000000000", "paymentMethod": "pm_card_visa"}).WantError(http.StatusNotFound, "Not Found", "")
		if n := len(s.stripe.ChargeRequests(id)); n != 0 {
			t.Fatalf("%d charges reached Stripe", n)
		}
	})
}

// TestDoubleSubmit: 20 simultaneous POSTs for one order reach Stripe once.
// The charge is held until the 19 others have been answered, so they all
// meet the claim while it is charging (or before the charge).
func TestDoubleSubmit(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)
	id := s.order(buyer, 4200)
	arrived, release := s.stripe.HoldCharges()
	defer release()

	const n = 20
	type answer struct {
		r   result
		err error
	}
	results := make(chan answer, n)
	for range n {
		go func() {
			r, err := s.tryPay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
			results <- answer{r, err}
		}()
	}
	var created, refused int
	timeout := time.After(waitFor)
	for got := 0; got < n; got++ {
		if got == n-1 {
			// All but one answered: let the charge finish, once it is there.
			select {
			case <-arrived:
			case <-timeout:
				t.Fatal("the charge never reached Stripe")
			}
			release()
		}
		select {
		case res := <-results:
			if res.err != nil {
				t.Fatal(res.err)
			}
			switch res.r.Status {
			case http.StatusCreated:
				created++
			case http.StatusBadRequest:
				refused++
				msg := testkit.ErrorItems(t, res.r.Body)[0].Message
				if msg != "A payment for this order is already in progress" && msg != "Order has already been paid" {
					t.Errorf("refusal %q", msg)
				}
			default:
				t.Errorf("status %d: %s", res.r.Status, res.r.Body)
			}
		case <-timeout:
			release()
			t.Fatalf("only %d of %d answered (created %d): more than one charge is stuck at Stripe?", got, n, created)
		}
	}
	if created != 1 || refused != n-1 {
		t.Fatalf("created %d, refused %d; want 1 and %d", created, refused, n-1)
	}
	if c := len(s.stripe.ChargeRequests(id)); c != 1 {
		t.Fatalf("%d charges reached Stripe, want 1", c)
	}
	s.paymentEvent(id)
}

// TestCancelRace covers a payment racing the order's deadline: the money is
// given back exactly once and the order is not treated as paid.
func TestCancelRace(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)

	t.Run("cancelled while the card is being charged", func(t *testing.T) {
		id := s.order(buyer, 3000)
		arrived, release := s.stripe.HoldCharges()
		defer release()
		done := make(chan result, 1)
		go func() {
			r, err := s.tryPay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		select {
		case <-arrived:
		case <-time.After(waitFor):
			t.Fatal("charge never reached Stripe")
		}
		s.cancel(id) // the deadline passes while Stripe is charging
		release()
		(<-done).wantError(t, http.StatusBadRequest, "Cannot pay for a cancelled order", "")

		charge := s.wantChargedOnce(id) // recorded and published; orders ignores it for a cancelled order
		s.wantRefundedOnce(s.paymentEvent(id).ID, charge)
	})

	t.Run("cancelled after the payment was answered", func(t *testing.T) {
		id := s.order(buyer, 3100)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
		ev := s.paymentEvent(id)
		s.cancel(id)
		charge := s.wantChargedOnce(id)
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.refundRecord(ev.ID); return st == "done" }, "refund recorded")

		// A redelivered cancellation, then another order's: once the marker
		// is applied the duplicate has been handled (same channel, in order).
		s.Peer.Publish(events.OrderCancelledEvent{ID: id, Version: 2})
		marker := s.order(buyer, 100)
		s.cancel(marker)
		s.wantRefundedOnce(ev.ID, charge)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Cannot pay for a cancelled order", "")
	})
}

// TestOffline: without a Stripe key the service charges in test mode with
// Stripe's test payment methods.
func TestOffline(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	buyer, cookie := s.User(auth.RoleUser)

	tests := []struct {
		name, method string
		status       int
		message      string
		field        string
	}{
		{"visa succeeds", "pm_card_visa", http.StatusCreated, "", ""},
		{"mastercard succeeds", "pm_card_mastercard", http.StatusCreated, "", ""},
		{"generic decline", "pm_card_chargeDeclined", http.StatusPaymentRequired, "Your card was declined.", "paymentMethod"},
		{"insufficient funds", "pm_card_insufficientFunds", http.StatusPaymentRequired, "Your card has insufficient funds.", "paymentMethod"},
		{"unknown method", "pm_card_bogus", http.StatusBadRequest,
			"No such PaymentMethod: 'pm_card_bogus' (offline test mode accepts Stripe's test payment methods, such as pm_card_visa or pm_card_chargeDeclined)", "paymentMethod"},
		{"missing method", "", http.StatusBadRequest, "Payment method is required", "paymentMethod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := s.order(buyer, 1500)
			r := s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": tc.method})
			if tc.status != http.StatusCreated {
				r.WantError(tc.status, tc.message, tc.field)
				// The order stays payable.
				s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
			} else {
				r.Want(http.StatusCreated)
			}
			if ev := s.paymentEvent(id); ev.Amount != 1500 || !strings.HasPrefix(ev.ProviderID, "pi_offline_") {
				t.Fatalf("payment:created %+v", ev)
			}
		})
	}

	t.Run("under Stripe's minimum charge", func(t *testing.T) {
		id := s.order(buyer, 49)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Amount must be at least 50 cents", "")
	})

	t.Run("refund when cancelled after payment", func(t *testing.T) {
		id := s.order(buyer, 1500)
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
		ev := s.paymentEvent(id)
		s.cancel(id)
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.refundRecord(ev.ID); return st == "done" }, "refund recorded")
		if _, provider := s.refundRecord(ev.ID); !strings.HasPrefix(provider, "re_offline_") {
			t.Fatalf("refund provider id %q", provider)
		}
	})
}

// TestReplicaOrdering: an order event ahead of the replica waits for the
// earlier one (it is not acked and comes back).
func TestReplicaOrdering(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	buyer, cookie := s.User(auth.RoleUser)
	id := testkit.RandomID(t)[:24]
	s.Peer.Publish(events.OrderCompletedEvent{ID: id, Version: 2, UserID: buyer.ID})
	s.Peer.Publish(events.OrderCreatedEvent{ID: id, Version: 1, Status: "created", UserID: buyer.ID,
		ExpiresAt: s.clock.Now().Add(time.Hour), Stuff: events.StuffRef{ID: "x", Price: 700}})
	testkit.Eventually(t, waitFor, func() bool {
		st, v := s.replica(id)
		return st == events.OrderStatusComplete && v == 2
	}, "completed v2 applied after created v1")
	// A late duplicate of created does not roll it back.
	s.Peer.Publish(events.OrderCreatedEvent{ID: id, Version: 1, Status: "created", UserID: buyer.ID, Stuff: events.StuffRef{ID: "x", Price: 700}})
	s.cancel(s.order(buyer, 100)) // a marker through the same listeners
	if st, v := s.replica(id); st != events.OrderStatusComplete || v != 2 {
		t.Fatalf("replica %s v%d after a duplicate created", st, v)
	}
	s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Order has already been paid", "")

	// A version gap (v3 on a v1 replica) is not applied: it waits (and is
	// parked after the last redelivery).
	gap := s.order(buyer, 800)
	s.Peer.Publish(events.OrderCancelledEvent{ID: gap, Version: 3})
	s.cancel(s.order(buyer, 100)) // delivered after v3's first delivery
	if st, v := s.replica(gap); st != events.OrderStatusCreated || v != 1 {
		t.Fatalf("replica %s v%d after a v3 event on v1", st, v)
	}
	s.pay(cookie, map[string]any{"orderId": gap, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
}

func TestPayBadInput(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	buyer, cookie := s.User(auth.RoleUser)
	id := s.order(buyer, 1000)
	tests := []struct {
		name, body string
		status     int
		message    string
		field      string
	}{
		{"operator object as order id", `{"orderId":{"$ne":null},"paymentMethod":"pm_card_visa"}`, 400, "Must be a string", "orderId"},
		{"number as order id", `{"orderId":5}`, 400, "Must be a string", "orderId"},
		{"operator object as coupon", `{"orderId":"` + id + `","coupon":{"$regex":".*"}}`, 400, "Must be a string", "coupon"},
		{"missing order id", `{"paymentMethod":"pm_card_visa"}`, 400, "Order id is required", "orderId"},
		{"unknown field", `{"orderId":"` + id + `","amount":1}`, 400, "Unknown field", "amount"},
		{"array body", `[]`, 400, "Request body must be a JSON object", ""},
		{"malformed", `{"orderId":`, 400, "Malformed JSON", ""},
		{"empty", ``, 400, "Request body must be a JSON object", ""},
		{"malformed coupon", `{"orderId":"` + id + `","coupon":"nope"}`, 400, "Coupon code is not valid", "coupon"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.HTTP.Do(http.MethodPost, "/api/payments", testkit.Raw(tc.body), testkit.WithCookie(cookie)).WantError(tc.status, tc.message, tc.field)
		})
	}
	// None of that paid the order.
	s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
}

// TestConcurrentOrdersOfOneBuyer: payments of different orders do not block
// each other (the claims are per order).
func TestConcurrentOrdersOfOneBuyer(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	buyer, cookie := s.User(auth.RoleUser)
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = s.order(buyer, 1000+int64(i))
	}
	var wg sync.WaitGroup
	statuses := make([]int, len(ids))
	for i, id := range ids {
		wg.Go(func() {
			r, err := s.tryPay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.Status
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusCreated {
			t.Fatalf("order %d: status %d", i, st)
		}
	}
}
