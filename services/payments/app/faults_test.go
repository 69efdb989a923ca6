package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/services/payments/app"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// A refund that fails is not forgotten: the order is cancelled while its
// card is being charged, and Stripe fails the refund of the charge. The
// refund is kept as an obligation and retried until Stripe refunds, once.
// It used to be logged and dropped: the money stayed taken.
func TestFailedRefundIsRetried(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)
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
	s.stripe.FailRefunds(true)
	s.cancel(id) // handled while the charge is at Stripe, before the payment is recorded
	release()
	(<-done).wantError(t, http.StatusBadRequest, "Cannot pay for a cancelled order", "")

	charge := s.wantChargedOnce(id)
	ev := s.paymentEvent(id)
	testkit.Eventually(t, waitFor, func() bool { return len(s.stripe.Requests("/v1/refunds")) >= 2 }, "the refund was not retried")
	if refunds := s.stripe.Refunds(charge.ID); len(refunds) != 0 {
		t.Fatalf("refunded while Stripe failed refunds: %+v", refunds)
	}
	s.stripe.FailRefunds(false)
	s.wantRefundedOnce(ev.ID, charge)
}

// What a payments process killed half-way through a payment leaves behind
// is finished by the sweeper: a charge that went through but was never
// recorded is recorded (once, and nobody is charged again); a payment
// recorded for an order whose cancellation was handled before the payment
// existed is refunded. Both used to stay as they were: an attempt
// "charging" forever (every later try "in progress"), money kept for a
// cancelled order.
func TestCrashMidPayment(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)
	long := s.clock.Now().Add(-time.Hour) // the process died an hour ago

	// attempt is the claim a killed process left, its charge at Stripe.
	attempt := func(orderID, paymentID, intentID string, amount int64) bson.M {
		return bson.M{"_id": orderID + ":1", "orderId": orderID, "n": 1, "state": "charging", "paymentId": paymentID,
			"userId": buyer.ID, "amount": amount, "currency": "usd", "paymentMethod": "pm_card_visa",
			"intentId": intentID, "intentAttempt": 1, "at": long}
	}

	t.Run("killed after the charge, before recording it", func(t *testing.T) {
		id := s.order(buyer, 2500)
		charge := s.stripe.Charge(id, 2500)
		paymentID := testkit.RandomID(t)[:24]
		s.put("charges", attempt(id, paymentID, charge.ID, 2500))

		ev := s.paymentEvent(id) // recorded by the sweeper
		if ev.ID != paymentID || ev.ProviderID != charge.ID || ev.Amount != 2500 {
			t.Fatalf("payment:created %+v, want payment %s of %s", ev, paymentID, charge.ID)
		}
		s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}).WantError(http.StatusBadRequest, "Order has already been paid", "")
		s.wantChargedOnce(id)
	})

	t.Run("killed after recording, before the re-check", func(t *testing.T) {
		id := s.order(buyer, 2600)
		s.cancel(id) // handled before the payment existed: nothing to refund then
		charge := s.stripe.Charge(id, 2600)
		paymentID := testkit.RandomID(t)[:24]
		s.put("charges", attempt(id, paymentID, charge.ID, 2600))
		s.put("payments", bson.M{"_id": paymentID, "orderId": id, "userId": buyer.ID, "amount": int64(2600), "currency": "usd",
			"provider": "stripe", "providerId": charge.ID, "attempt": 1, "createdAt": long})
		s.wantRefundedOnce(paymentID, charge)
	})
}

// A charge whose answer comes after the client's timeout is not charged a
// second time when the buyer tries again: the outcome is looked up at
// Stripe first. It used to be marked failed, and the retry made a second
// PaymentIntent: two charges for one order.
func TestChargeAnsweredTooLate(t *testing.T) {
	t.Parallel()
	s := newStack(t, true, func(c *app.Config) { c.ChargeTimeout = time.Second })
	buyer, cookie := s.User(auth.RoleUser)
	id := s.order(buyer, 1800)

	s.stripe.SlowCharges(5 * time.Second)
	first := s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
	s.stripe.SlowCharges(0)
	if len(s.stripe.Charged(id)) != 1 {
		t.Fatalf("the first charge did not reach Stripe within the timeout (answered %d %s): the scenario did not run", first.Status, first.Body)
	}
	second := s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
	if first.Status != http.StatusCreated && second.Status != http.StatusCreated {
		testkit.Eventually(t, waitFor, func() bool { return len(s.paymentEvents(id)) > 0 }, "the charge that went through was never recorded")
	}
	s.settled(buyer)
	s.wantChargedOnce(id)
	t.Logf("answers: %d %s, then %d %s", first.Status, first.Body, second.Status, second.Body)
}

// A PaymentIntent Stripe reports "processing" is neither failed nor charged
// again: the buyer's retry is told it is in progress, and the payment is
// recorded once Stripe says it succeeded. It used to be marked failed, and
// the retry charged a second PaymentIntent.
func TestProcessingCharge(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)
	id := s.order(buyer, 2200)

	s.stripe.Processing(time.Hour)
	first := s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
	if first.Status == http.StatusCreated {
		t.Fatalf("a processing charge answered 201: %s", first.Body)
	}
	s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_mastercard"}).WantError(http.StatusBadRequest, "A payment for this order is already in progress", "")
	s.stripe.Processing(0)
	s.stripe.SettleProcessing()

	ev := s.paymentEvent(id) // once Stripe says succeeded
	if ev.Amount != 2200 {
		t.Fatalf("payment:created %+v", ev)
	}
	s.settled(buyer)
	s.wantChargedOnce(id)
}

// A retried refund cannot free a coupon slot that another order took since:
// the slot is released only while it is still the refunded order's. It used
// to be deleted by _id alone, so the coupon's limit no longer held.
func TestRetriedRefundKeepsAnotherOrdersSlot(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	_, admin := s.User(auth.RoleAdmin)
	buyer, cookie := s.User(auth.RoleUser)
	c := s.createCoupon(admin, map[string]any{"percentOff": 50, "maxRedemptions": 1})

	a := s.order(buyer, 3000)
	s.pay(cookie, map[string]any{"orderId": a, "paymentMethod": "pm_card_visa", "coupon": c.Code}).Want(http.StatusCreated)
	paid := s.paymentEvent(a)
	s.cancel(a)
	testkit.Eventually(t, waitFor, func() bool { st, _ := s.refundRecord(paid.ID); return st == "done" }, "refund of order a")
	if got := couponByCode(t, s, admin, c.Code); got.Redemptions != 0 {
		t.Fatalf("redemptions after the refund: %d, want 0 (the slot is given back)", got.Redemptions)
	}

	b := s.order(buyer, 3000)
	s.pay(cookie, map[string]any{"orderId": b, "paymentMethod": "pm_card_visa", "coupon": c.Code}).Want(http.StatusCreated)

	// The refund of a is done again, as after a crash between releasing its
	// slot and recording the refund (and its cancellation comes again).
	s.set("refunds", paid.ID, bson.M{"state": "pending", "at": s.clock.Now().Add(-time.Hour)})
	s.Peer.Publish(events.OrderCancelledEvent{ID: a, Version: 2})
	testkit.Eventually(t, waitFor, func() bool { st, _ := s.refundRecord(paid.ID); return st == "done" }, "refund of order a redone")
	s.settled(buyer)

	if got := couponByCode(t, s, admin, c.Code); got.Redemptions != 1 {
		t.Fatalf("redemptions %d, want 1: order b's slot was freed by order a's refund", got.Redemptions)
	}
	third := s.order(buyer, 3000)
	s.pay(cookie, map[string]any{"orderId": third, "paymentMethod": "pm_card_visa", "coupon": c.Code}).WantError(http.StatusBadRequest, "Coupon has been used up", "coupon")
}

// POST /api/payments honours an Idempotency-Key: the same request again
// gets the first answer and charges nothing more; a first try that died
// after charging is finished by the retry, which answers the payment the
// first try would have. Without it the retry was refused ("already paid"
// or "in progress") and the client never learned its payment.
func TestPayIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)

	t.Run("the same request twice", func(t *testing.T) {
		id := s.order(buyer, 1200)
		body := map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"}
		key := testkit.WithHeader("Idempotency-Key", "pay-"+id)
		first := s.HTTP.Do(http.MethodPost, "/api/payments", body, testkit.WithCookie(cookie), key).Want(http.StatusCreated)
		again := s.HTTP.Do(http.MethodPost, "/api/payments", body, testkit.WithCookie(cookie), key).Want(http.StatusCreated)
		if string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry answered %s (replayed %q), first %s", again.Body, again.Header.Get("Idempotent-Replayed"), first.Body)
		}
		s.settled(buyer)
		s.wantChargedOnce(id)
		// Another key is another request: refused, the order is paid.
		s.HTTP.Do(http.MethodPost, "/api/payments", body, testkit.WithCookie(cookie), testkit.WithHeader("Idempotency-Key", "other")).
			WantError(http.StatusBadRequest, "Order has already been paid", "")
	})

	t.Run("a first try that died after charging", func(t *testing.T) {
		id := s.order(buyer, 1300)
		body := `{"orderId":"` + id + `","paymentMethod":"pm_card_visa"}`
		since := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
		paymentID := mongox.DerivedObjectID(since, buyer.ID, "died").Hex()
		// The first try claimed the key, the attempt and charged; then its
		// process was killed.
		s.put("idempotency", bson.M{"_id": buyer.ID + "\x00POST\x00/api/payments\x00died", "bodyHash": sha256Hex(body),
			"done": false, "createdAt": since, "claimedAt": since})
		charge := s.stripe.Charge(id, 1300)
		s.put("charges", bson.M{"_id": id + ":1", "orderId": id, "n": 1, "state": "charging", "paymentId": paymentID,
			"userId": buyer.ID, "amount": int64(1300), "currency": "usd", "paymentMethod": "pm_card_visa",
			"intentId": charge.ID, "intentAttempt": 1, "at": s.clock.Now()})

		r := s.HTTP.Do(http.MethodPost, "/api/payments", testkit.Raw(body), testkit.WithCookie(cookie), testkit.WithHeader("Idempotency-Key", "died")).Want(http.StatusCreated)
		var p paymentJSON
		r.Decode(&p)
		if p.ID != paymentID || p.Amount != 1300 {
			t.Fatalf("payment %+v, want %s of 1300", p, paymentID)
		}
		s.settled(buyer)
		s.wantChargedOnce(id)
	})
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
