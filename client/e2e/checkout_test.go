package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
)

// The test cards of the payments service's offline stand-in for the card
// processor's hosted checkout page.
const (
	goodCard     = "4242 4242 4242 4242"
	declinedCard = "4000 0000 0000 0002"
)

// standIn is where the storefront's "Pay by card" leads in offline mode:
// payments' stand-in page, on the storefront's origin.
const standIn = "/api/payments/checkout/"

// clickXPath clicks the element the XPath query finds (through the DOM, so
// it works without JavaScript too) and waits for the page it loads.
func (u *user) clickXPath(q string) *network.Response {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.Search(q), chromedp.NodeVisible))
	if err != nil {
		u.t.Fatalf("click %s: %v", q, err)
	}
	return resp
}

// payWith submits the checkout page's form of the test card.
func (u *user) payWith(card string) *network.Response {
	u.t.Helper()
	return u.clickXPath(fmt.Sprintf(`(//form[contains(normalize-space(.), %q)]//button)[1]`, card))
}

// payByCard clicks "Pay by card" on the order page and returns the
// checkout page's path, checking it is the offline stand-in showing the
// stuff, clearly in test mode.
func (u *user) payByCard(title string) string {
	u.t.Helper()
	if r := u.click("form[action$='/checkout'] button[type=submit]"); r.Status != http.StatusOK {
		u.t.Fatalf("Pay by card: status %d at %s", r.Status, r.URL)
	}
	p := u.path()
	if !strings.HasPrefix(p, standIn) || !strings.HasSuffix(p, "/pay") {
		u.t.Fatalf("after Pay by card: at %s, want the checkout page %s<id>/pay", p, standIn)
	}
	u.see("TEST MODE", title, goodCard, declinedCard, "Cancel and go back")
	return p
}

// TestCardCheckout pays by card through the payments service's offline
// stand-in for the hosted checkout page (docs/flows.md), with JavaScript on
// and off: "Pay by card" on the order page, the test card on the checkout
// page, back on the order page while the signed webhook completes the
// order, then the delivery. With JavaScript, the buyer first goes back from
// the checkout page and comes again to the same checkout; without, a card
// is declined first. It needs the payments service's card checkout.
func TestCardCheckout(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	browser := startBrowser(t)
	s := clienttest.Start(t, clienttest.Options{OrderHold: orderHold})
	shots := shotsDir(t)

	t.Run("with JavaScript", func(t *testing.T) {
		seller := newUser(t, browser, s.URL, axe, true)
		buyer := newUser(t, browser, s.URL, axe, true)
		seller.signUp(email(t, "seller"))
		stuff := seller.sell("Microeconomics summary", "Every model of ECON 101 on ten pages.", "6.40", "Download: https://files.example/econ101.pdf")
		buyer.signUp(email(t, "buyer"))
		buyer.open(stuff)
		buyer.click("form[action$='/buy'] button")
		order := buyer.path()
		buyer.see(">Pay by card</button>", "data-countdown")
		buyer.screenshot(shots, "order-pay-by-card.png")
		buyer.checkA11y("order page with Pay by card")

		checkout := buyer.payByCard("Microeconomics summary")
		buyer.screenshot(shots, "checkout-stand-in.png")
		buyer.checkA11y("checkout stand-in page")

		// Cancel and go back: the order page, still payable; the next
		// click is the same checkout.
		buyer.clickXPath(`(//a[contains(normalize-space(.), "Cancel and go back")])[1]`)
		if p := buyer.path(); p != order {
			t.Fatalf("after cancel and go back: at %s, want %s", p, order)
		}
		buyer.see(">Pay by card</button>", "Waiting for payment")
		if again := buyer.payByCard("Microeconomics summary"); again != checkout {
			t.Errorf("second Pay by card: checkout %s, want the open one %s", again, checkout)
		}

		buyer.payWith(goodCard)
		buyer.waitFor("Download: https://files.example/econ101.pdf", 20*time.Second)
		if p := buyer.path(); p != order+"/content" {
			t.Errorf("after paying: at %s, want %s/content", p, order)
		}
		buyer.screenshot(shots, "checkout-content.png")
		buyer.open(order)
		buyer.see("Paid. The stuff is yours.")
	})

	t.Run("without JavaScript", func(t *testing.T) {
		seller := newUser(t, browser, s.URL, axe, false)
		buyer := newUser(t, browser, s.URL, axe, false)
		seller.signUp(email(t, "seller"))
		stuff := seller.sell("Databases exam answers", "Worked answers to the last five SQL exams.", "4.75", "The answers: https://files.example/db-exams.pdf")
		buyer.signUp(email(t, "buyer"))
		buyer.open(stuff)
		buyer.click("form[action$='/buy'] button")
		order := buyer.path()

		checkout := buyer.payByCard("Databases exam answers")
		// Declined: the checkout page says so and offers the cards again.
		buyer.payWith(declinedCard)
		buyer.see("Your card was declined", goodCard)
		if p, _, _ := strings.Cut(buyer.path(), "?"); p != checkout {
			t.Errorf("after a decline: at %s, want the checkout page %s", p, checkout)
		}

		// Then back on the order page, which reloads itself (a meta
		// refresh) until the payment is recorded, then leads to the
		// delivery.
		buyer.payWith(goodCard)
		buyer.waitFor("The answers: https://files.example/db-exams.pdf", 20*time.Second)
		if p := buyer.path(); p != order+"/content" {
			t.Errorf("after paying: at %s, want %s/content", p, order)
		}
	})
}
