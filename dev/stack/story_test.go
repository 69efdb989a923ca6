package stack_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/testkit"
)

const heldMessage = "The stuff is being checking out by someone else, please come back later"

// decode unmarshals a JSON body into v or fails the test.
func decode(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

type idOnly struct {
	ID string `json:"id"`
}

// TestStackWholeStory walks the core story (docs/flows.md) through the
// gateway on one port, as a
// user of `make dev` would with curl: sell, buy, a second buyer is told the
// stuff is held, cancel, the second buyer gets it, a declined card then a
// good one completes the order and shows the delivery, an unpaid order is
// cancelled at its deadline, and an admin's free coupon completes an order
// with no card.
func TestStackWholeStory(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	st := startStack(t, dataDir, "ORDER_HOLD", "6s")
	signup := func(email string) *client {
		c := newClient(t, st.info.URL)
		c.expect(http.MethodPost, "/api/users/signup", map[string]string{"email": email, "password": "password123"}, http.StatusCreated)
		return c
	}
	// Everything outside /api is the storefront.
	if status, raw := newClient(t, st.info.URL).do(http.MethodGet, "/", nil, ""); status != http.StatusOK || !strings.Contains(string(raw), "<html") {
		t.Fatalf("GET / = %d %.200s, want the storefront's home page", status, raw)
	}
	seller, ann, bob, admin := signup("seller@uni.edu"), signup("ann@uni.edu"), signup("bob@uni.edu"), signup("admin@uni.edu")
	// The operator makes an admin of an account that exists; its next
	// refresh carries the role.
	grant(t, dataDir, "admin@uni.edu")
	admin.expect(http.MethodPost, "/api/users/refresh", nil, http.StatusOK)

	sell := func(title string, price int) string {
		var s idOnly
		decode(t, seller.expect(http.MethodPost, "/api/stuff", map[string]any{
			"title": title, "description": "notes", "price": price, "delivery": "https://files.example/" + title,
		}, http.StatusCreated), &s)
		return s.ID
	}
	type stuffView struct {
		Status   string `json:"status"`
		Delivery string `json:"delivery"`
	}
	stuffOf := func(c *client, id string) stuffView {
		var v stuffView
		decode(t, c.expect(http.MethodGet, "/api/stuff/"+id, nil, http.StatusOK), &v)
		return v
	}
	// buy retries 404 briefly: the orders service learns of new stuff by
	// event, milliseconds after it is listed.
	buy := func(c *client, stuffID string, want int) []byte {
		t.Helper()
		var status int
		var raw []byte
		testkit.Eventually(t, 5*time.Second, func() bool {
			status, raw = c.do(http.MethodPost, "/api/orders", map[string]string{"stuffId": stuffID}, "")
			return status != http.StatusNotFound
		}, "stuff %s never reached the orders service", stuffID)
		if status != want {
			t.Fatalf("POST /api/orders = %d %s, want %d", status, raw, want)
		}
		return raw
	}
	orderStatus := func(c *client, id string) string {
		var o struct {
			Status string `json:"status"`
		}
		decode(t, c.expect(http.MethodGet, "/api/orders/"+id, nil, http.StatusOK), &o)
		return o.Status
	}
	pay := func(c *client, body map[string]string) (int, []byte) {
		var status int
		var raw []byte
		testkit.Eventually(t, 5*time.Second, func() bool {
			status, raw = c.do(http.MethodPost, "/api/payments", body, "")
			return status != http.StatusNotFound // the payments replica learns of the order by event
		}, "order %s never reached the payments service", body["orderId"])
		return status, raw
	}

	// Ann holds the notes; Bob is told they are being checked out.
	notes := sell("calculus", 1500)
	var annOrder idOnly
	decode(t, buy(ann, notes, http.StatusCreated), &annOrder)
	var held struct {
		Errors []struct{ Message string } `json:"errors"`
	}
	decode(t, buy(bob, notes, http.StatusConflict), &held)
	if len(held.Errors) != 1 || held.Errors[0].Message != heldMessage {
		t.Fatalf("409 body = %+v, want the customer's sentence", held)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return stuffOf(bob, notes).Status == "reserved" }, "stuff never shown reserved")

	// Ann cancels; Bob gets it.
	ann.expect(http.MethodDelete, "/api/orders/"+annOrder.ID, nil, http.StatusNoContent)
	var bobOrder idOnly
	testkit.Eventually(t, 5*time.Second, func() bool {
		status, raw := bob.do(http.MethodPost, "/api/orders", map[string]string{"stuffId": notes}, "")
		if status == http.StatusCreated {
			decode(t, raw, &bobOrder)
		}
		return status == http.StatusCreated
	}, "the second buyer could not buy after the cancel")

	// A declined card, then a good one.
	if status, raw := pay(bob, map[string]string{"orderId": bobOrder.ID, "paymentMethod": "pm_card_chargeDeclined"}); status != http.StatusPaymentRequired && status != http.StatusBadRequest {
		t.Fatalf("declined card = %d %s, want 402 or 400", status, raw)
	}
	if status, raw := pay(bob, map[string]string{"orderId": bobOrder.ID, "paymentMethod": "pm_card_visa"}); status != http.StatusCreated {
		t.Fatalf("good card = %d %s, want 201", status, raw)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return orderStatus(bob, bobOrder.ID) == "complete" }, "order never completed")
	testkit.Eventually(t, 5*time.Second, func() bool {
		v := stuffOf(bob, notes)
		return v.Status == "sold" && v.Delivery == "https://files.example/calculus"
	}, "buyer never saw the delivery of the sold stuff")
	if v := stuffOf(ann, notes); v.Delivery != "" {
		t.Fatalf("a stranger sees the delivery: %+v", v)
	}

	// An unpaid order is cancelled at its deadline and the stuff released.
	essay := sell("essay", 800)
	var late struct {
		ID        string    `json:"id"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	decode(t, buy(ann, essay, http.StatusCreated), &late)
	testkit.Eventually(t, 20*time.Second, func() bool { return orderStatus(ann, late.ID) == "cancelled" }, "unpaid order never expired")
	if now := time.Now(); now.Before(late.ExpiresAt) {
		t.Fatalf("order cancelled at %s, before its deadline %s", now, late.ExpiresAt)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return stuffOf(bob, essay).Status == "available" }, "expired order's stuff never released")

	// An admin's free coupon completes an order with no card.
	var coupon struct {
		Code string `json:"code"`
	}
	decode(t, admin.expect(http.MethodPost, "/api/payments/coupons", map[string]any{"percentOff": 100, "maxRedemptions": 1}, http.StatusCreated), &coupon)
	key := sell("licence", 2500)
	var free idOnly
	decode(t, buy(ann, key, http.StatusCreated), &free)
	if status, raw := pay(ann, map[string]string{"orderId": free.ID, "coupon": coupon.Code}); status != http.StatusCreated {
		t.Fatalf("free coupon = %d %s, want 201", status, raw)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return orderStatus(ann, free.ID) == "complete" }, "coupon order never completed")
	testkit.Eventually(t, 5*time.Second, func() bool { return stuffOf(ann, key).Delivery == "https://files.example/licence" }, "coupon buyer never saw the delivery")
}
