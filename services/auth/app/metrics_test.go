package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// /metrics counts sign-ins and sign-ups by result, and names the limit
// behind each refused sign-in: the account's limit or its backoff.
func TestSignInAndSignUpMetrics(t *testing.T) {
	account := ratelimit.Rule{Every: 20 * time.Second, Burst: 2, Name: "signin_account_limit"}
	s := limitedStack(t, app.Limits{SignInAccount: account})
	signIn := func(email, pw string) *testkit.Response {
		return s.client(t).Do(http.MethodPost, "/api/users/signin", signInBody(email, pw))
	}
	s.client(t).signUp("ann@uni.edu")
	s.client(t).signUp("bob@uni.edu")
	s.client(t).Do(http.MethodPost, "/api/users/signup", signInBody("ann@uni.edu", password)).Want(http.StatusBadRequest)

	// Bob signs in twice, then meets his account's limit.
	signIn("bob@uni.edu", password).Want(http.StatusOK)
	signIn("bob@uni.edu", password).Want(http.StatusOK)
	signIn("bob@uni.edu", password).Want(http.StatusTooManyRequests)
	// Ann's password is guessed wrong, slowly enough for her limit, until
	// the backoff refuses even the right one.
	for range users.BackoffFree {
		s.clock.Advance(account.Every)
		signIn("ann@uni.edu", "not the password").Want(http.StatusBadRequest)
	}
	signIn("ann@uni.edu", password).Want(http.StatusTooManyRequests)
	signIn("not an email", password).Want(http.StatusBadRequest)

	got := testkit.Scrape(t, s.URL+"/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"auth_signins_total", []string{"result", "succeeded"}, 2},
		{"auth_signins_total", []string{"result", "failed"}, users.BackoffFree + 1},
		{"auth_signins_total", []string{"result", "refused"}, 2},
		{"auth_signups_total", []string{"result", "succeeded"}, 2},
		{"auth_signups_total", []string{"result", "failed"}, 1},
		{"ratelimit_refused_total", []string{"limit", "signin_account_limit"}, 1},
		{"ratelimit_refused_total", []string{"limit", users.BackoffLimit}, 1},
		{"http_requests_total", []string{"route", "/api/users/signin", "status", "429"}, 2},
	} {
		if v := got.Value(c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}
