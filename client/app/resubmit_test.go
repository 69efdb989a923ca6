package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
)

// TestResubmitted covers what a browser sends twice: a form submitted
// again from the same page, and a cookie sent again after signing out.
func TestResubmitted(t *testing.T) {
	t.Parallel()
	s := clienttest.Start(t, clienttest.Options{NoCache: true})

	t.Run("a sell form submitted twice lists once", func(t *testing.T) {
		t.Parallel()
		seller := newBrowser(t, s)
		seller.signUp(email(t, "twice"))
		form := seller.get("/sell").is(http.StatusOK)
		typed := func() url.Values {
			return url.Values{"title": {"Thermodynamics cheat sheet"}, "price": {"3"}, "delivery": {"https://drive.example/thermo"}}
		}
		first := seller.submit(form, "/sell", typed()).redirects("/stuff/")
		// Again, as a double click or a retry after a lost answer would:
		// the same page with the same input leads to the same listing.
		if again := seller.submit(form, "/sell", typed()).redirects("/stuff/"); again != first {
			t.Errorf("resubmitted form led to %q, the first to %q", again, first)
		}
		if n := listed(seller, "Thermodynamics cheat sheet"); n != 1 {
			t.Errorf("%d listings after submitting one form twice, want 1", n)
		}

		// Three at once from another page, as an impatient seller's
		// clicks: the later ones wait for the first and lead to its listing.
		form = seller.get("/sell").is(http.StatusOK)
		var wg sync.WaitGroup
		locs := make([]string, 3)
		for i := range locs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				locs[i] = seller.submit(form, "/sell", url.Values{"title": {"Optics notes"}, "price": {"2"}}).header.Get("Location")
			}()
		}
		wg.Wait()
		for _, loc := range locs[1:] {
			if !strings.HasPrefix(locs[0], "/stuff/") || loc != locs[0] {
				t.Errorf("concurrent submissions of one page led to %q", locs)
				break
			}
		}
		if n := listed(seller, "Optics notes"); n != 1 {
			t.Errorf("%d listings after submitting one form three times at once, want 1", n)
		}

		// A new page is a new submission: the same input lists again.
		seller.submit(seller.get("/sell"), "/sell", typed()).redirects("/stuff/")
		if n := listed(seller, "Thermodynamics cheat sheet"); n != 2 {
			t.Errorf("%d listings after a second sell page, want 2", n)
		}
	})

	t.Run("BUY and pay submitted twice: one order, one payment, the same pages", func(t *testing.T) {
		t.Parallel()
		seller := newBrowser(t, s)
		seller.signUp(email(t, "seller"))
		id := seller.sell("Organic chemistry flashcards", "", "4", "https://cards.example/orgo")
		buyer := newBrowser(t, s)
		buyer.signUp(email(t, "buyer"))
		page := buyer.get("/stuff/" + id).is(http.StatusOK).contains(">BUY</button>")
		order := buyer.submit(page, "/stuff/"+id+"/buy", nil).redirects("/orders/")
		if again := buyer.submit(page, "/stuff/"+id+"/buy", nil).redirects("/orders/"); again != order {
			t.Errorf("BUY again from the same page led to %q, the first to %q", again, order)
		}
		if n := strings.Count(buyer.get("/orders").is(http.StatusOK).body, ">Organic chemistry flashcards</a>"); n != 1 {
			t.Errorf("%d orders after BUY twice from one page, want 1", n)
		}

		op := buyer.get(order).is(http.StatusOK)
		card := url.Values{"paymentMethod": {"pm_card_visa"}}
		content := buyer.submit(op, order+"/pay", card).redirects(order + "/content")
		if again := buyer.submit(op, order+"/pay", card).redirects(order + "/content"); again != content {
			t.Errorf("pay again from the same page led to %q, the first to %q", again, content)
		}
	})

	t.Run("a form without its key, or with a malformed one, still works", func(t *testing.T) {
		t.Parallel()
		seller := newBrowser(t, s)
		seller.signUp(email(t, "oldpage"))
		form := seller.get("/sell").is(http.StatusOK)
		for _, key := range []string{"", "not a key", strings.Repeat("k", 300)} {
			v := url.Values{"_csrf": {form.token()}, "title": {"Old page " + key[:min(len(key), 3)]}, "price": {"1"}}
			if key != "" {
				v.Set(idempotencyField, key)
			}
			seller.post("/sell", v).redirects("/stuff/")
		}
		if n := listed(seller, "Old page"); n != 3 {
			t.Errorf("%d listings from three keyless or malformed submissions, want 3", n)
		}
	})

	t.Run("a signed-out cookie is not signed in again from a remembered refresh", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			// refreshes is how many times the session is refreshed (each
			// time from a cookie whose access token expired) before it
			// signs out.
			refreshes int
			// withOld signs out with the oldest cookie (the request is
			// refreshed from memory) rather than the newest.
			withOld bool
		}{
			{"sign out with the refreshed cookie", 1, false},
			{"sign out with the old cookie", 1, true},
			{"sign out after two refreshes", 2, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				addr := email(t, "signout")
				b := newBrowser(t, s)
				b.signUp(addr)

				// Each old cookie is refreshed; the storefront remembers
				// the outcome for other requests with that cookie.
				var old []string
				var page page
				for range tc.refreshes {
					old = append(old, expiredCookie(t, s, b.cookie("session")))
					b.jar.SetCookies(b.base, []*http.Cookie{{Name: "session", Value: old[len(old)-1]}})
					page = b.get("/orders").is(http.StatusOK).contains("Signed in as <strong>" + addr)
				}
				if tc.withOld {
					b.jar.SetCookies(b.base, []*http.Cookie{{Name: "session", Value: old[0]}})
				}
				b.submit(page, "/signout", nil).redirects("/")
				if b.cookie("session") != "" {
					t.Fatal("sign out left the session cookie")
				}

				// Within the memory's lifetime, an old cookie again (a
				// second tab, a copy): signed out, not the rotated session
				// back.
				for i, c := range old {
					again := newBrowser(t, s)
					again.jar.SetCookies(again.base, []*http.Cookie{{Name: "session", Value: c}})
					if p := again.get("/orders"); p.status != http.StatusSeeOther {
						t.Errorf("old cookie %d after sign out: /orders answered %d, want the sign-in redirect", i, p.status)
					}
					again.get("/").is(http.StatusOK).lacks("Sign out", addr)
				}
			})
		}
	})
}

// listed is how many of the seller's listings have a title that starts
// with prefix.
func listed(seller *browser, prefix string) int {
	return strings.Count(seller.get("/mine").is(http.StatusOK).body, `">`+prefix)
}

// idempotencyField is the hidden field of a creating form that makes a
// resubmission of the same page one creation.
const idempotencyField = "_idempotencyKey"
