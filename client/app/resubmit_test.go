package app_test

import (
	"net/http"
	"testing"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
)

// TestResubmitted covers what a browser sends again: a cookie after
// signing out.
func TestResubmitted(t *testing.T) {
	t.Parallel()
	s := clienttest.Start(t, clienttest.Options{NoCache: true})

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
