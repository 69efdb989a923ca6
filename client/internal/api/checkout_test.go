package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/client/internal/api"
)

// TestCheckout: a card checkout is a create of payments' (POST
// /api/payments/checkout, with the form's key), answered with where to send
// the buyer or with the order paid at once by a free coupon.
func TestCheckout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := api.Session{Cookie: "sealed"}
	in := api.CheckoutInput{OrderID: "6650a0000000000000000002", Coupon: "HALF",
		SuccessURL: "https://shop.example/orders/6650a0000000000000000002?paid=1", CancelURL: "https://shop.example/orders/6650a0000000000000000002"}
	session := `{"id":"cs_test_1","url":"https://checkout.stripe.com/c/pay/cs_test_1"}`

	t.Run("the request, and the checkout page to send the buyer to", func(t *testing.T) {
		t.Parallel()
		rec, c := startRecorder(t, map[string][]answer{"POST /api/payments/checkout": {{status: http.StatusCreated, body: session}}})
		out, err := c.Payments.Checkout(ctx, s, key, in)
		if err != nil {
			t.Fatal(err)
		}
		if out.ID != "cs_test_1" || out.URL != "https://checkout.stripe.com/c/pay/cs_test_1" || out.Completed {
			t.Errorf("checkout %+v", out)
		}
		reqs := rec.requests(http.MethodPost, "/api/payments/checkout")
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.key != key || r.header.Get("Content-Type") != "application/json" || !strings.Contains(r.header.Get("Cookie"), "session=sealed") {
			t.Errorf("headers %v, want the key, JSON and the session cookie", r.header)
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		want := map[string]string{"orderId": in.OrderID, "coupon": "HALF", "successUrl": in.SuccessURL, "cancelUrl": in.CancelURL}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("body %s: %s = %q, want %q", r.body, k, got[k], v)
			}
		}
	})

	t.Run("no coupon: none sent", func(t *testing.T) {
		t.Parallel()
		rec, c := startRecorder(t, map[string][]answer{"POST /api/payments/checkout": {{status: http.StatusCreated, body: session}}})
		noCoupon := in
		noCoupon.Coupon = ""
		if _, err := c.Payments.Checkout(ctx, s, key, noCoupon); err != nil {
			t.Fatal(err)
		}
		if b := rec.requests(http.MethodPost, "/api/payments/checkout")[0].body; strings.Contains(b, "coupon") {
			t.Errorf("body %s has a coupon", b)
		}
	})

	t.Run("a free order is paid at once", func(t *testing.T) {
		t.Parallel()
		_, c := startRecorder(t, map[string][]answer{"POST /api/payments/checkout": {{status: http.StatusCreated, body: `{"completed":true}`}}})
		out, err := c.Payments.Checkout(ctx, s, key, in)
		if err != nil || !out.Completed {
			t.Fatalf("checkout %+v, %v; want completed", out, err)
		}
	})

	t.Run("an order payments has not heard of yet is asked again, with keys derived from the form's", func(t *testing.T) {
		t.Parallel()
		notFound := answer{status: http.StatusNotFound, body: `{"errors":[{"message":"Order not found"}]}`}
		rec, c := startRecorder(t, map[string][]answer{"POST /api/payments/checkout": {notFound, {status: http.StatusCreated, body: session}}})
		if _, err := c.Payments.Checkout(ctx, s, key, in); err != nil {
			t.Fatal(err)
		}
		if got := keysOf(rec.requests(http.MethodPost, "/api/payments/checkout")); strings.Join(got, " ") != key+" "+key+".1" {
			t.Errorf("sent keys %q", got)
		}
	})

	t.Run("refusals come back as the service's error", func(t *testing.T) {
		t.Parallel()
		_, c := startRecorder(t, map[string][]answer{"POST /api/payments/checkout": {{status: http.StatusBadRequest,
			body: `{"errors":[{"message":"Coupon code is not valid","field":"coupon"}]}`}}})
		_, err := c.Payments.Checkout(ctx, s, key, in)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Items[0].Field != "coupon" {
			t.Fatalf("err %v, want the 400 on the coupon", err)
		}
	})

	t.Run("an answer without a usable URL is an error, never a redirect", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{`{"id":"cs_1"}`, `{"id":"cs_1","url":"javascript:alert(1)"}`, `{"id":"cs_1","url":"/relative"}`} {
			_, c := startRecorder(t, map[string][]answer{"POST /api/payments/checkout": {{status: http.StatusCreated, body: body}}})
			if out, err := c.Payments.Checkout(ctx, s, key, in); err == nil {
				t.Errorf("answer %s: checkout %+v, want an error", body, out)
			}
		}
	})
}
