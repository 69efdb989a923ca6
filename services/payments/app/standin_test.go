package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// TestOfflineCheckout: without a Stripe key the checkout's page is the
// stand-in, which only the buyer sees, and whose succeeding card pays the
// order through the real webhook handler.
func TestOfflineCheckout(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	buyer, cookie := s.User(auth.RoleUser)
	_, other := s.User(auth.RoleUser)
	// A browser that stays on the page's answers (the return URLs are the
	// storefront's, which this test does not run).
	browser := testkit.NewClient(t, s.URL, testkit.WithoutCookies(), func(c *http.Client) {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	})
	form := func(cookie *http.Cookie, path, card string, opts ...testkit.RequestOption) *testkit.Response {
		t.Helper()
		opts = append([]testkit.RequestOption{testkit.WithCookie(cookie),
			testkit.WithHeader("Content-Type", "application/x-www-form-urlencoded")}, opts...)
		return browser.Do(http.MethodPost, path, testkit.Raw(url.Values{"card": {card}}.Encode()), opts...)
	}
	page := func(cookie *http.Cookie, path string) *testkit.Response {
		t.Helper()
		return browser.Do(http.MethodGet, path, nil, testkit.WithCookie(cookie))
	}
	wantPage := func(r *testkit.Response, status int, texts ...string) {
		t.Helper()
		r.Want(status)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("page sent as %q", ct)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("page without a strict Content-Security-Policy: %q", csp)
		}
		body := string(r.Body)
		for _, text := range texts {
			if !strings.Contains(body, text) {
				t.Fatalf("page lacks %q:\n%s", text, body)
			}
		}
		if strings.Contains(body, "<script") || strings.Contains(body, "style") {
			t.Fatalf("page has a script or a style:\n%s", body)
		}
	}

	t.Run("the buyer pays on the stand-in: a decline, then the card that succeeds", func(t *testing.T) {
		id := s.titledOrder(buyer, 2000, "Physics <b>notes</b>")
		r := s.checkout(cookie, id, nil)
		r.Want(http.StatusCreated)
		if want := `{"id":"cs_offline_` + id + `_1","url":"https://shop.test/api/payments/checkout/cs_offline_` + id + `_1/pay"}`; strings.TrimSpace(string(r.Body)) != want {
			t.Fatalf("checkout answered %s, want %s", r.Body, want)
		}
		var sess sessionJSON
		r.Decode(&sess)
		u, err := url.Parse(sess.URL)
		if err != nil {
			t.Fatal(err)
		}
		success, cancel := returnURLs(id)
		wantPage(page(cookie, u.Path), http.StatusOK, "TEST MODE — no real money", "Physics &lt;b&gt;notes&lt;/b&gt;", "20.00 USD",
			"4242 4242 4242 4242 — succeeds", "4000 0000 0000 0002 — declined", `href="`+cancel+`"`, "Cancel and go back")

		page(other, u.Path).WantError(http.StatusNotFound, "Not Found", "")
		page(nil, u.Path).WantError(http.StatusNotFound, "Not Found", "")
		form(other, u.Path, "4242424242424242").WantError(http.StatusNotFound, "Not Found", "")
		form(cookie, u.Path, "4242424242424242", testkit.WithHeader("Sec-Fetch-Site", "cross-site")).WantError(http.StatusForbidden, "Cross-site requests are refused", "")

		wantPage(form(cookie, u.Path, "4000000000000002"), http.StatusPaymentRequired, "Your card was declined", "4242 4242 4242 4242 — succeeds")
		s.settled(buyer)
		if evs := s.paymentEvents(id); len(evs) != 0 {
			t.Fatalf("payment:created %+v after a declined card", evs)
		}

		paid := form(cookie, u.Path, "4242424242424242", testkit.WithHeader("Sec-Fetch-Site", "same-origin"))
		paid.Want(http.StatusSeeOther)
		// Sent back as Stripe sends the buyer: the session's id in place of
		// the placeholder, for the order page to confirm it.
		if want := strings.ReplaceAll(success, "{CHECKOUT_SESSION_ID}", sess.ID); paid.Header.Get("Location") != want {
			t.Fatalf("sent to %q, want the success URL %q", paid.Header.Get("Location"), want)
		}
		ev := s.paymentEvent(id)
		if ev.Amount != 2000 || !strings.HasPrefix(ev.ProviderID, "pi_offline_") {
			t.Fatalf("payment:created %+v", ev)
		}
		if st, _ := s.attempt(id, 1); st != "succeeded" {
			t.Fatalf("attempt %s, want succeeded", st)
		}
		wantPage(page(cookie, u.Path), http.StatusOK, "This checkout session is paid")
		wantPage(form(cookie, u.Path, "4242424242424242"), http.StatusConflict, "This checkout session is paid")

		// The charge is the offline test mode's: refundable as any other.
		s.cancel(id)
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.refundRecord(ev.ID); return st == "done" }, "refund recorded")
		if _, provider := s.refundRecord(ev.ID); !strings.HasPrefix(provider, "re_offline_") {
			t.Fatalf("refund provider id %q", provider)
		}
	})

	t.Run("a cancelled order's session is expired on the stand-in", func(t *testing.T) {
		id := s.order(buyer, 1500)
		sess := s.startCheckout(cookie, id)
		u, err := url.Parse(sess.URL)
		if err != nil {
			t.Fatal(err)
		}
		s.cancel(id)
		testkit.Eventually(t, waitFor, func() bool { st, _ := s.attempt(id, 1); return st == "expired" }, "attempt expired")
		_, cancel := returnURLs(id)
		wantPage(page(cookie, u.Path), http.StatusOK, "This checkout session has expired", `href="`+cancel+`"`)
		wantPage(form(cookie, u.Path, "4242424242424242"), http.StatusConflict, "This checkout session has expired")
		s.settled(buyer)
		if evs := s.paymentEvents(id); len(evs) != 0 {
			t.Fatalf("payment:created %+v for an expired session", evs)
		}
	})

	t.Run("an unknown session or card", func(t *testing.T) {
		page(cookie, "/api/payments/checkout/cs_offline_nope/pay").WantError(http.StatusNotFound, "Not Found", "")
		page(cookie, "/api/payments/checkout/cs_offline_0123456789abcdef01234567_1/pay").WantError(http.StatusNotFound, "Not Found", "")
		id := s.order(buyer, 1500)
		u, err := url.Parse(s.startCheckout(cookie, id).URL)
		if err != nil {
			t.Fatal(err)
		}
		wantPage(form(cookie, u.Path, "4111111111111111"), http.StatusBadRequest, "Choose one of the test cards")
	})
}

// TestStandInOnlyOffline: with a Stripe key the stand-in does not exist.
func TestStandInOnlyOffline(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	buyer, cookie := s.User(auth.RoleUser)
	id := s.order(buyer, 1500)
	sess := s.startCheckout(cookie, id)
	s.HTTP.Do(http.MethodGet, "/api/payments/checkout/"+sess.ID+"/pay", nil, testkit.WithCookie(cookie)).WantError(http.StatusNotFound, "Not Found", "")
	s.HTTP.Do(http.MethodGet, "/api/payments/checkout/cs_offline_"+id+"_1/pay", nil, testkit.WithCookie(cookie)).WantError(http.StatusNotFound, "Not Found", "")
}
