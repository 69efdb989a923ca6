package app_test

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
)

// checkoutPath is payments' card checkout, which the storefront's "Pay by
// card" form asks for.
const checkoutPath = "/api/payments/checkout"

// asked is one request of the storefront for a card checkout, as payments
// got it.
type asked struct {
	key    string
	cookie bool
	body   map[string]string
}

// answer is what payments says to a card checkout.
type answer struct {
	status int
	body   string
	header map[string]string
}

// checkoutDesk stands at payments' door for card checkouts: it answers each
// order's checkout as the test says, in the shape payments answers, and
// records what the storefront asked; every other request goes on to the
// real payments service. The storefront's side of the checkout is tested
// here, answers that the real service gives only in a race or under load
// included; the real card checkout end to end is the browser test's
// (client/e2e).
type checkoutDesk struct {
	mu       sync.Mutex
	answers  map[string]answer   // by order id
	asks     map[string][]asked  // by order id
	confirms map[string][]string // session ids confirmed, by order id
}

func newCheckoutDesk() *checkoutDesk {
	return &checkoutDesk{answers: map[string]answer{}, asks: map[string][]asked{}, confirms: map[string][]string{}}
}

// confirmed returns the sessions the storefront asked payments to confirm
// for the order at path /orders/<id> with the buyer's session cookie (the
// requests went on to payments).
func (d *checkoutDesk) confirmed(order string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.confirms[strings.TrimPrefix(order, "/orders/")]...)
}

// answer sets the answer to the checkouts of the order at path
// /orders/<id>.
func (d *checkoutDesk) answer(order string, a answer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answers[strings.TrimPrefix(order, "/orders/")] = a
}

// asked returns the checkouts asked for the order at path /orders/<id>.
func (d *checkoutDesk) asked(order string) []asked {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]asked(nil), d.asks[strings.TrimPrefix(order, "/orders/")]...)
}

func (d *checkoutDesk) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == checkoutPath+"/confirm" {
			raw, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var body map[string]string
			if _, err := r.Cookie("session"); err == nil && json.Unmarshal(raw, &body) == nil {
				d.mu.Lock()
				d.confirms[body["orderId"]] = append(d.confirms[body["orderId"]], body["sessionId"])
				d.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(raw))
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != checkoutPath {
			next.ServeHTTP(w, r)
			return
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var body map[string]string
		if err := json.Unmarshal(raw, &body); err != nil || r.Header.Get("Content-Type") != "application/json" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":[{"message":"want a JSON object"}]}`)) // the storefront's bug, seen in its assertions
			return
		}
		_, err = r.Cookie("session")
		d.mu.Lock()
		d.asks[body["orderId"]] = append(d.asks[body["orderId"]], asked{key: r.Header.Get("Idempotency-Key"), cookie: err == nil, body: body})
		a, ok := d.answers[body["orderId"]]
		d.mu.Unlock()
		if !ok {
			a = answer{status: http.StatusInternalServerError, body: `{"errors":[{"message":"no answer set for this order"}]}`}
		}
		w.Header().Set("Content-Type", "application/json")
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body)) // the storefront hung up: its test fails on its own
	})
}

var formRE = regexp.MustCompile(`(?s)<form[^>]* action="([^"]*)"[^>]*>(.*?)</form>`)

// form is the hidden fields of the page's form with that action, and the
// CSRF token.
func (p page) form(action string) url.Values {
	p.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(p.body, -1) {
		if html.UnescapeString(m[1]) != action {
			continue
		}
		v := url.Values{}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			v.Set(h[1], html.UnescapeString(h[2]))
		}
		return v
	}
	p.t.Fatalf("%s: no form with action %q:\n%s", p.url, action, p.body)
	return nil
}

// payByCard submits the order page's "Pay by card" form with a coupon.
func (b *browser) payByCard(from page, order, coupon string) page {
	b.t.Helper()
	f := from.form(order + "/checkout")
	f.Set("coupon", coupon)
	return b.post(order+"/checkout", f)
}

// TestCheckout is the storefront's side of a card checkout: "Pay by card"
// on the order page asks payments for a checkout with the storefront's
// return URLs and sends the buyer to its page, or back to the order when a
// coupon paid it; refusals show the order page again; back from a paid
// checkout, the order page waits for the payment, then shows the delivery.
func TestCheckout(t *testing.T) {
	t.Parallel()
	desk := newCheckoutDesk()
	s := clienttest.Start(t, clienttest.Options{Payments: desk.wrap})
	// shop is a buyer and a seller of their own for a (parallel) subtest.
	shop := func(t *testing.T) (buyer, seller *browser) {
		buyer, seller = newBrowser(t, s), newBrowser(t, s)
		buyer.signUp(email(t, "buyer"))
		seller.signUp(email(t, "seller"))
		return buyer, seller
	}

	t.Run("the buyer is sent to the checkout page, which brings them back to the order", func(t *testing.T) {
		t.Parallel()
		buyer, seller := shop(t)
		order := buyer.buy(seller.sell("Linear algebra notes", "", "4", "notes.pdf"))
		checkoutURL := "https://checkout.stripe.com/c/pay/cs_test_a1"
		desk.answer(order, answer{status: http.StatusCreated, body: `{"id":"cs_test_a1","url":"` + checkoutURL + `"}`})

		op := buyer.get(order).is(http.StatusOK).
			contains(`action="`+order+`/checkout"`, ">Pay by card</button>", `<label for="checkout-coupon">Coupon code (optional)</label>`,
				`id="checkout-coupon" name="coupon"`, "Pay $4.00", `value="pm_card_visa"`, `<label for="coupon">`).
			lacks(`http-equiv="refresh"`)
		form := op.form(order + "/checkout")
		if form.Get("_csrf") == "" || form.Get("_idempotencyKey") == "" || form.Get("_idempotencyKey") == op.form(order+"/pay").Get("_idempotencyKey") {
			t.Fatalf("checkout form's hidden fields %v: want a CSRF token and a key of its own", form)
		}
		if loc := buyer.payByCard(op, order, "").redirects(checkoutURL); loc != checkoutURL {
			t.Errorf("sent to %q, want %q", loc, checkoutURL)
		}
		// The same page submitted again (a double click, a retry) is the
		// same submission.
		buyer.payByCard(op, order, "").redirects(checkoutURL)
		asks := desk.asked(order)
		if len(asks) != 2 {
			t.Fatalf("payments asked %d times, want 2", len(asks))
		}
		id := strings.TrimPrefix(order, "/orders/")
		want := map[string]string{"orderId": id, "successUrl": s.URL + order + "?paid=1&session_id={CHECKOUT_SESSION_ID}", "cancelUrl": s.URL + order}
		for i, a := range asks {
			if a.key != form.Get("_idempotencyKey") || !a.cookie {
				t.Errorf("ask %d: key %q, session cookie %v; want the form's key %q and the buyer's session", i, a.key, a.cookie, form.Get("_idempotencyKey"))
			}
			if len(a.body) != len(want) {
				t.Errorf("ask %d: body %v, want %v", i, a.body, want)
			}
			for k, v := range want {
				if a.body[k] != v {
					t.Errorf("ask %d: %s = %q, want %q", i, k, a.body[k], v)
				}
			}
		}

		// The coupon goes along, trimmed; the return URLs are of the host
		// the browser came to (no PUBLIC_URL here).
		req, err := http.NewRequest(http.MethodPost, s.URL+order+"/checkout", strings.NewReader(func() string {
			f := buyer.get(order).form(order + "/checkout")
			f.Set("coupon", "  HALF ")
			return f.Encode()
		}()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Host = "shop.example"
		// The jar knows the stack's host only.
		for _, ck := range buyer.jar.Cookies(buyer.base) {
			req.AddCookie(ck)
		}
		buyer.do(req).redirects(checkoutURL)
		asks = desk.asked(order)
		last := asks[len(asks)-1].body
		if last["coupon"] != "HALF" || last["successUrl"] != "http://shop.example"+order+"?paid=1&session_id={CHECKOUT_SESSION_ID}" || last["cancelUrl"] != "http://shop.example"+order {
			t.Errorf("checkout with a coupon through http://shop.example: %v", last)
		}
	})

	t.Run("a coupon that pays the whole order: back to the order, which waits for the payment, then the delivery", func(t *testing.T) {
		t.Parallel()
		buyer, seller := shop(t)
		order := buyer.buy(seller.sell("Free essay plan", "", "2.50", "The plan: essay-plan.pdf"))
		desk.answer(order, answer{status: http.StatusCreated, body: `{"completed":true}`})
		op := buyer.get(order)
		loc := buyer.payByCard(op, order, "FREE100").redirects(order)
		if loc != order+"?paid=1" {
			t.Fatalf("after a free checkout: sent to %q, want %q", loc, order+"?paid=1")
		}

		// Payments has not recorded it yet (here it never will: the desk
		// only answered): the page says so and reloads itself.
		w := buyer.get(loc).is(http.StatusOK).
			contains("Payment received, confirming…", `<meta http-equiv="refresh" content="2">`, `<meta name="robots" content="noindex, nofollow">`,
				"Confirming payment", `<link rel="canonical" href="`+s.URL+order+`">`).
			lacks("data-countdown", "countdown.", "Pay by card", "Pay $2.50", "<script")
		if cc := w.header.Get("Cache-Control"); cc != "private, no-store" {
			t.Errorf("Cache-Control %q, want private, no-store", cc)
		}
		checkSecurityHeaders(t, w)
		if c := desk.confirmed(order); len(c) != 0 {
			t.Errorf("no checkout session to confirm, but payments was asked about %v", c)
		}

		// The payment lands (here through the payment-method form): the
		// same page then leads to the delivery.
		buyer.submit(op, order+"/pay", url.Values{"paymentMethod": {"pm_card_visa"}}).redirects(order + "/content")
		p := buyer.eventually(loc, func(p page) bool { return p.status == http.StatusSeeOther }, "the order complete")
		if got := p.header.Get("Location"); got != order+"/content" {
			t.Fatalf("paid order: sent to %q, want its content", got)
		}
		buyer.eventually(order+"/content", func(p page) bool { return strings.Contains(p.body, "The plan: essay-plan.pdf") }, "the delivery")
		// Without ?paid=1 the order page is as ever.
		buyer.get(order).is(http.StatusOK).contains("Paid. The stuff is yours.")
	})

	t.Run("back from a paid checkout with its session's id: payments is asked to confirm it", func(t *testing.T) {
		t.Parallel()
		buyer, seller := shop(t)
		order := buyer.buy(seller.sell("Webhook late", "", "3", "x"))
		// Payments knows no such session (the desk made none): it answers
		// 404, and the page waits for the payment all the same.
		buyer.get(order+"?paid=1&session_id=cs_test_back1").is(http.StatusOK).
			contains("Payment received, confirming…", `<meta http-equiv="refresh" content="2">`)
		buyer.get(order + "?paid=1&session_id=cs%3Cscript%3E").is(http.StatusOK).contains("Payment received, confirming…")
		buyer.get(order + "?session_id=cs_test_back2").is(http.StatusOK).lacks("confirming")
		if c := desk.confirmed(order); len(c) != 1 || c[0] != "cs_test_back1" {
			t.Fatalf("payments asked to confirm %v, want [cs_test_back1] (no odd ids, only back from a checkout)", c)
		}
		// Paid (here with the payment-method form): nothing left to confirm.
		buyer.submit(buyer.get(order), order+"/pay", url.Values{"paymentMethod": {"pm_card_visa"}}).redirects(order + "/content")
		buyer.eventually(order, func(p page) bool { return strings.Contains(p.body, "Paid. The stuff is yours.") }, "the order complete")
		buyer.get(order + "?paid=1&session_id=cs_test_back1").redirects(order + "/content")
		if c := desk.confirmed(order); len(c) != 1 {
			t.Fatalf("payments asked to confirm %v, the last ones after the order completed", c)
		}
	})

	t.Run("back from a checkout on an order that ended meanwhile", func(t *testing.T) {
		t.Parallel()
		buyer, seller := shop(t)
		order := buyer.buy(seller.sell("Cancelled too soon", "", "1", "x"))
		buyer.submit(buyer.get(order), order+"/cancel", nil).redirects(order)
		buyer.get(order+"?paid=1").is(http.StatusOK).contains("Order cancelled.", "the payment is refunded").
			lacks("confirming", `http-equiv="refresh"`, "Pay by card")
	})

	t.Run("refusals show the order page with the message", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			answer answer
			status int
			want   []string
		}{
			{"a bad coupon, next to the coupon of the card form", answer{status: http.StatusBadRequest, body: `{"errors":[{"message":"Coupon code is not valid","field":"coupon"}]}`},
				http.StatusBadRequest, []string{`id="checkout-coupon-error"`, "Coupon code is not valid", `id="checkout-coupon" name="coupon" type="text" value="NOPE"`, `id="coupon" name="coupon" type="text" value=""`}},
			{"an order that can no longer be paid", answer{status: http.StatusBadRequest, body: `{"errors":[{"message":"This order can no longer be paid"}]}`},
				http.StatusBadRequest, []string{`role="alert">This order can no longer be paid<`}},
			{"payments has not heard of the order", answer{status: http.StatusNotFound, body: `{"errors":[{"message":"Order not found"}]}`},
				http.StatusNotFound, []string{"Payments has not heard of this order yet. Please try again in a moment."}},
			{"a conflict", answer{status: http.StatusConflict, body: `{"errors":[{"message":"The order is being paid"}]}`, header: map[string]string{"Idempotent-Replayed": "true"}},
				http.StatusConflict, []string{`role="alert">The order is being paid<`}},
			{"too many tries", answer{status: http.StatusTooManyRequests, body: `{"errors":[{"message":"Too many requests: try again in 5 seconds"}]}`, header: map[string]string{"Retry-After": "5"}},
				http.StatusTooManyRequests, []string{`role="alert">Too many requests: try again in 5 seconds<`}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				buyer, seller := shop(t)
				order := buyer.buy(seller.sell("Refused: "+tc.name, "", "3", "x"))
				desk.answer(order, tc.answer)
				op := buyer.get(order)
				p := buyer.payByCard(op, order, "NOPE").is(tc.status).
					contains(append([]string{"Order: Refused: " + tc.name, ">Pay by card</button>", "Pay $3.00", "data-countdown"}, tc.want...)...)
				// A new page is a new submission.
				if k := p.form(order + "/checkout").Get("_idempotencyKey"); k == "" || k == op.form(order+"/checkout").Get("_idempotencyKey") {
					t.Errorf("the page again has key %q, want a new one", k)
				}
			})
		}
	})

	t.Run("only the buyer, signed in, with the form's token", func(t *testing.T) {
		t.Parallel()
		buyer, seller := shop(t)
		other := newBrowser(t, s)
		other.signUp(email(t, "other"))
		order := buyer.buy(seller.sell("Mine alone", "", "5", "x"))
		desk.answer(order, answer{status: http.StatusCreated, body: `{"id":"cs_test_b2","url":"https://checkout.stripe.com/c/pay/cs_test_b2"}`})
		op := buyer.get(order)
		other.submit(other.get("/orders"), order+"/checkout", nil).is(http.StatusNotFound)
		anon := newBrowser(t, s)
		anon.submit(anon.get("/signin"), order+"/checkout", nil).redirects("/signin")
		f := op.form(order + "/checkout")
		f.Del("_csrf")
		buyer.post(order+"/checkout", f).is(http.StatusForbidden)
		if n := len(desk.asked(order)); n != 0 {
			t.Errorf("payments asked %d times, want never", n)
		}
	})
}
