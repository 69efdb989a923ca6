package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/dev/chaos"
	"github.com/stuffmart/stuffmart/services/payments/stripetest"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// Payments is killed in the middle of payments while Stripe (a fake in this
// test process) answers charges after the client's timeout, reports charges
// "processing", and fails refunds for a while; buyers cancel some orders
// while they are being charged, and retry their payments as a browser
// would. In the end every order ended, every completed order was charged
// exactly once and kept its money, and every cancelled order that was
// charged was refunded, exactly once.
func TestPaymentsKilledWithStripeFailing(t *testing.T) {
	fake := stripetest.New(t)
	w := start(t, map[string]string{
		"STRIPE_SECRET_KEY": stripetest.Key, "STRIPE_WEBHOOK_SECRET": "whsec_chaos_0123456789", "STRIPE_API_URL": fake.URL,
		"CHARGE_TIMEOUT": "4s", "PAYMENT_SWEEP": "1s", "ORDER_HOLD": "5m",
	})
	sh := newShop(t, w, 12)

	// Stripe answers every charge after the client gave up on it; one of
	// the buyers cancels while being charged.
	fake.SlowCharges(5 * time.Second)
	var group sync.WaitGroup
	for i := 8; i < 11; i++ {
		group.Go(func() { sh.payUntilDone(i) })
	}
	group.Go(func() { sh.cancel(10) })
	group.Wait()

	// Charges held at Stripe (taken, unanswered), refunds failing, two of
	// the orders cancelled after their charge went through: payments is
	// killed with all of it in flight.
	fake.FailRefunds(true)
	arrived, release := fake.HoldCharges()
	var buyers sync.WaitGroup
	for i := range 6 {
		buyers.Go(func() { sh.payUntilDone(i) })
	}
	for range 6 {
		select {
		case <-arrived:
		case <-time.After(60 * time.Second):
			t.Fatal("the charges never reached Stripe")
		}
	}
	sh.cancel(0)
	sh.cancel(1)
	w.c.Svc["payments"].Kill()
	release()
	sh.restart("payments")

	// Charges are "processing" now; payments is killed again while the
	// late buyers' charges are at Stripe and refunds still fail.
	fake.Processing(4 * time.Second)
	for i := 6; i < 8; i++ {
		buyers.Go(func() { sh.payUntilDone(i) })
	}
	testkit.Eventually(t, 60*time.Second, func() bool {
		return len(fake.ChargeRequests(sh.orders[6])) > 0 && len(fake.ChargeRequests(sh.orders[7])) > 0
	}, "the late charges never reached Stripe")
	w.c.Svc["payments"].Kill()
	sh.restart("payments")

	// Stripe answers in time again, but still processing: the last buyer is
	// told so, and the payment is recorded when Stripe has decided.
	fake.SlowCharges(0)
	buyers.Go(func() { sh.payUntilDone(11) })
	// Refunds keep failing until one was asked for again after failing.
	testkit.Eventually(t, 90*time.Second, func() bool { return len(fake.Requests("/v1/refunds")) >= 2 }, "no refund was retried")
	fake.FailRefunds(false)
	buyers.Wait()

	// Every order ends: paid ones complete, cancelled ones stay cancelled.
	status := map[string]string{}
	testkit.Eventually(t, 90*time.Second, func() bool {
		for _, id := range sh.orders {
			if st := sh.status(id); st == "complete" || st == "cancelled" {
				status[id] = st
			}
		}
		return len(status) == len(sh.orders)
	}, "orders never ended: %v", status)

	// The money: completed orders charged once and kept; cancelled ones
	// charged at most once and refunded in full, once.
	refunded := 0
	testkit.Eventually(t, 60*time.Second, func() bool {
		refunded = 0
		for _, id := range sh.orders {
			if status[id] != "cancelled" {
				continue
			}
			for _, in := range fake.Charged(id) {
				if len(fake.Refunds(in.ID)) == 0 {
					return false
				}
				refunded++
			}
		}
		return true
	}, "cancelled orders charged and never refunded")
	complete := 0
	for i, id := range sh.orders {
		charged := fake.Charged(id)
		switch status[id] {
		case "complete":
			complete++
			if len(charged) != 1 || charged[0].Refunded != 0 {
				t.Errorf("order %d (%s) complete, charged %+v: want one charge, kept", i, id, charged)
			}
		case "cancelled":
			if len(charged) > 1 {
				t.Errorf("order %d (%s) cancelled, charged %d times: %+v", i, id, len(charged), charged)
			}
			for _, in := range charged {
				if refunds := fake.Refunds(in.ID); len(refunds) != 1 || refunds[0].Amount != in.AmountReceived || in.Refunded != in.AmountReceived {
					t.Errorf("order %d (%s) cancelled, charge %+v refunded by %+v: want once, in full", i, id, in, refunds)
				}
			}
		}
	}
	for _, i := range []int{0, 1} {
		if status[sh.orders[i]] != "cancelled" || len(fake.Charged(sh.orders[i])) != 1 {
			t.Errorf("order %d: %s, charged %d times; the scenario wants it charged, then cancelled", i, status[sh.orders[i]], len(fake.Charged(sh.orders[i])))
		}
	}
	if complete == 0 {
		t.Error("no order completed: the scenario did not run")
	}
	t.Logf("%d orders: %d complete (charged once each), %d cancelled; %d charges of cancelled orders refunded once each; %d refund requests, %d requests about PaymentIntents reached Stripe",
		len(sh.orders), complete, len(sh.orders)-complete, refunded, len(fake.Requests("/v1/refunds")), len(fake.Requests("/v1/payment_intents")))
}

// shop is what the payments scenario drives: listings of one seller, an
// order of each by a few buyers, and their payments.
type shop struct {
	t       *testing.T
	w       *world
	orders  []string
	cookies []*http.Cookie // of each order's buyer
}

// newShop lists n stuffs, has buyers order each, and waits until payments
// knows every order.
func newShop(t *testing.T, w *world, n int) *shop {
	t.Helper()
	_, seller := w.user()
	buyers := make([]*http.Cookie, 3)
	for i := range buyers {
		_, buyers[i] = w.user()
	}
	stuff, orders := w.client("stuff"), w.client("orders")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = idOf(t, stuff.Do(http.MethodPost, "/api/stuff", map[string]any{"title": fmt.Sprintf("Notes %d", i), "price": 1000 + i}, testkit.WithCookie(seller)).Want(http.StatusCreated))
	}
	w.allReach(ids, 30*time.Second)
	sh := &shop{t: t, w: w}
	for i, id := range ids {
		c := buyers[i%len(buyers)]
		sh.orders = append(sh.orders, idOf(t, orders.Do(http.MethodPost, "/api/orders", map[string]string{"stuffId": id}, testkit.WithCookie(c)).Want(http.StatusCreated)))
		sh.cookies = append(sh.cookies, c)
	}
	testkit.Eventually(t, 30*time.Second, func() bool {
		for _, id := range sh.orders {
			if !w.hasDoc("payments", "orders", id) {
				return false
			}
		}
		return true
	}, "the orders never reached payments")
	return sh
}

// payUntilDone pays order i as its buyer's browser would: until payments
// answers for good (paid, already paid, cancelled), trying again after a
// failure, an answer "in progress" or no answer (payments is down). Even
// orders send an Idempotency-Key, the same for every try. It reports
// nothing: the end state is what the test checks.
func (sh *shop) payUntilDone(i int) {
	c := sh.w.client("payments")
	opts := []testkit.RequestOption{testkit.WithCookie(sh.cookies[i])}
	if i%2 == 0 {
		opts = append(opts, testkit.WithHeader("Idempotency-Key", "pay-"+sh.orders[i]))
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		r, err := c.Try(http.MethodPost, "/api/payments", map[string]string{"orderId": sh.orders[i], "paymentMethod": "pm_card_visa"}, opts...)
		if err == nil && final(r) {
			return
		}
		time.Sleep(300 * time.Millisecond) // a buyer's pace, not a synchronisation
	}
}

// final reports whether a payment answer ends the buyer's tries.
func final(r *testkit.Response) bool {
	if r.Status == http.StatusCreated {
		return true
	}
	if r.Status != http.StatusBadRequest {
		return false
	}
	for _, e := range r.Errors() {
		switch e.Message {
		case "Order has already been paid", "Cannot pay for a cancelled order", "Cannot pay for an expired order":
			return true
		}
	}
	return false
}

// cancel cancels order i as its buyer (a 400 means it was paid first) and
// waits until orders has decided.
func (sh *shop) cancel(i int) {
	c := sh.w.client("orders")
	r, err := c.Try(http.MethodDelete, "/api/orders/"+sh.orders[i], nil, testkit.WithCookie(sh.cookies[i]))
	if err != nil {
		sh.t.Error(err)
		return
	}
	if r.Status != http.StatusNoContent && r.Status != http.StatusBadRequest {
		sh.t.Errorf("cancel order %d: %d %s", i, r.Status, r.Body)
	}
}

// status returns order id's status as its buyer sees it.
func (sh *shop) status(id string) string {
	for i, o := range sh.orders {
		if o != id {
			continue
		}
		r, err := sh.w.client("orders").Try(http.MethodGet, "/api/orders/"+id, nil, testkit.WithCookie(sh.cookies[i]))
		if err != nil || r.Status != http.StatusOK {
			return ""
		}
		var v struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(r.Body, &v) != nil {
			return ""
		}
		return v.Status
	}
	return ""
}

// restart starts a killed service again and waits until it is ready.
func (sh *shop) restart(name string) {
	sh.t.Helper()
	if err := sh.w.c.Svc[name].Start(); err != nil {
		sh.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := chaos.WaitReady(ctx, sh.w.c.Svc[name]); err != nil {
		sh.t.Fatal(err)
	}
}

// hasDoc reports whether database db's collection coll has a document with
// the string _id id.
func (w *world) hasDoc(db, coll, id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.mongo.Database(db).Collection(coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err() == nil
}
