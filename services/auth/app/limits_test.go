package app_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// tight is the rule the limit tests hit: two at once, then one every 20 s.
var tight = ratelimit.Rule{Every: 20 * time.Second, Burst: 2}

// limitedStack starts the service with the limits on (testkit turns them
// off) and limits set by the test; the shared limit of every unsafe request
// is left unset, so it does not limit.
func limitedStack(t *testing.T, limits app.Limits) *stack {
	t.Helper()
	return newStackWith(t, func(c *app.Config) {
		c.Service.Limits.On = true
		c.Limits = limits
	})
}

// from is a request coming, through the trusted proxy the test plays, from
// the client at address addr.
func from(addr string) testkit.RequestOption { return testkit.WithHeader("X-Forwarded-For", addr) }

// wantLimited asserts a 429 in the normalized shape with its Retry-After.
func wantLimited(t *testing.T, r *testkit.Response, retryAfter time.Duration) {
	t.Helper()
	secs := int(retryAfter / time.Second)
	wantErrors(t, r, http.StatusTooManyRequests, errs.Item{Message: fmt.Sprintf("Too many requests: try again in %d seconds", secs)})
	if got := r.Header.Get("Retry-After"); got != fmt.Sprint(secs) {
		t.Fatalf("Retry-After %q, want %d", got, secs)
	}
}

// addrs hands out client addresses no other request of the test used.
var addrs atomic.Int64

// newAddr is a client address not used before in this test binary.
func newAddr() string {
	n := addrs.Add(1)
	return netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)}).String()
}

func signInBody(email, pw string) map[string]string {
	return map[string]string{"email": email, "password": pw}
}

// TestLimits drives each limit with the test clock: the requests of one key
// (a client address, an account) are refused with a 429 once its burst is
// spent, another key is not, and the key is let through again once the
// clock has moved on by the rule's interval.
func TestLimits(t *testing.T) {
	var n atomic.Int64 // unique emails across subtests
	next := func() int64 { return n.Add(1) }
	tests := []struct {
		name   string
		limits app.Limits
		// prepare returns what sends one request for key (what the
		// limit counts by) as attempt i, answered ok when not limited.
		prepare func(t *testing.T, s *stack) func(key string, i int) *testkit.Response
		keys    [2]string
		ok      int
	}{
		{
			name: "sign-in per client", limits: app.Limits{SignIn: tight}, ok: http.StatusBadRequest,
			keys: [2]string{"203.0.113.1", "203.0.113.2"},
			prepare: func(t *testing.T, s *stack) func(string, int) *testkit.Response {
				// Unknown emails, a new one each time: no account is limited.
				return func(addr string, _ int) *testkit.Response {
					return s.client(t).Do(http.MethodPost, "/api/users/signin",
						signInBody(fmt.Sprintf("nobody%d@uni.edu", next()), password), from(addr))
				}
			},
		},
		{
			name: "sign-in per account", limits: app.Limits{SignInAccount: tight}, ok: http.StatusOK,
			keys: [2]string{"ann@uni.edu", "bob@uni.edu"},
			prepare: func(t *testing.T, s *stack) func(string, int) *testkit.Response {
				s.client(t).signUp("ann@uni.edu")
				s.client(t).signUp("bob@uni.edu")
				// The right password, from a new address each time: only
				// the account is limited; the email's case does not matter.
				return func(email string, i int) *testkit.Response {
					if i%2 == 1 {
						email = strings.ToUpper(email)
					}
					return s.client(t).Do(http.MethodPost, "/api/users/signin",
						signInBody(email, password), from(newAddr()))
				}
			},
		},
		{
			name: "sign-up per client", limits: app.Limits{SignUp: tight}, ok: http.StatusCreated,
			keys: [2]string{"203.0.113.1", "2001:db8::1"},
			prepare: func(t *testing.T, s *stack) func(string, int) *testkit.Response {
				return func(addr string, _ int) *testkit.Response {
					return s.client(t).Do(http.MethodPost, "/api/users/signup",
						signInBody(fmt.Sprintf("new%d@uni.edu", next()), password), from(addr))
				}
			},
		},
		{
			name: "refresh per client", limits: app.Limits{Refresh: tight}, ok: http.StatusOK,
			keys: [2]string{"203.0.113.1", "203.0.113.2"},
			prepare: func(t *testing.T, s *stack) func(string, int) *testkit.Response {
				// A new account each time: no account is limited.
				return func(addr string, _ int) *testkit.Response {
					c := s.client(t)
					c.signUp(fmt.Sprintf("refresher%d@uni.edu", next()))
					return c.Do(http.MethodPost, "/api/users/refresh", nil, from(addr))
				}
			},
		},
		{
			name: "refresh per account", limits: app.Limits{RefreshAccount: tight}, ok: http.StatusOK,
			keys: [2]string{"ann@uni.edu", "bob@uni.edu"},
			prepare: func(t *testing.T, s *stack) func(string, int) *testkit.Response {
				// Two devices of each account (two refresh-token families),
				// refreshing in turn from new addresses: the account is
				// limited, whatever the device.
				devices := map[string][2]*browser{}
				for _, email := range []string{"ann@uni.edu", "bob@uni.edu"} {
					laptop, phone := s.client(t), s.client(t)
					laptop.signUp(email)
					wantUser(t, phone.Do(http.MethodPost, "/api/users/signin", signInBody(email, password)), http.StatusOK)
					devices[email] = [2]*browser{laptop, phone}
				}
				return func(email string, i int) *testkit.Response {
					return devices[email][i%2].Do(http.MethodPost, "/api/users/refresh", nil,
						from(newAddr()))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := limitedStack(t, tc.limits)
			do := tc.prepare(t, s)
			key, other := tc.keys[0], tc.keys[1]
			for i := range tight.Burst {
				do(key, i).Want(tc.ok)
			}
			wantLimited(t, do(key, tight.Burst), tight.Every)
			// A refused request takes nothing: still refused a little later,
			// for the rest of the interval.
			s.clock.Advance(5 * time.Second)
			wantLimited(t, do(key, tight.Burst+1), tight.Every-5*time.Second)
			// Another key has its own allowance.
			do(other, 0).Want(tc.ok)
			s.clock.Advance(tight.Every - 5*time.Second)
			do(key, tight.Burst+2).Want(tc.ok)
			wantLimited(t, do(key, tight.Burst+3), tight.Every)
		})
	}
}

// TestSignInBackoff: after failed sign-ins in a row from one network, an
// account is refused there for a delay that doubles with each further
// failure up to five minutes; any password, the right one included, waits it
// out; a success forgets the failures. Unknown emails back off alike, so a
// 429 does not tell which accounts exist. The backoff is the account's on
// one network: an attacker who keeps failing does not keep the owner, on
// another, from signing in, and an IPv6 attacker cannot leave it by
// changing addresses within their /64.
func TestSignInBackoff(t *testing.T) {
	// Every limit loose: only the backoff refuses.
	s := limitedStack(t, app.Limits{})
	s.client(t).signUp("ann@uni.edu")
	invalid := errs.Item{Message: "Invalid credentials"}
	signIn := func(addr, email, pw string) *testkit.Response {
		return s.client(t).Do(http.MethodPost, "/api/users/signin", signInBody(email, pw), from(addr))
	}
	for _, email := range []string{"ann@uni.edu", "nobody@uni.edu"} {
		t.Run(email, func(t *testing.T) {
			attacker := newAddr()
			for range 5 {
				wantErrors(t, signIn(attacker, email, "wrong password"), http.StatusBadRequest, invalid)
			}
			for _, delay := range []time.Duration{5, 10, 20, 40, 80, 160, 300, 300} {
				delay *= time.Second
				wantLimited(t, signIn(attacker, email, password), delay)
				s.clock.Advance(delay - time.Second)
				wantLimited(t, signIn(attacker, email, "wrong password"), time.Second)
				s.clock.Advance(time.Second)
				wantErrors(t, signIn(attacker, email, "wrong password"), http.StatusBadRequest, invalid)
			}
			wantLimited(t, signIn(attacker, email, password), 5*time.Minute)
			if email == "nobody@uni.edu" {
				return
			}
			// Meanwhile the owner, on another network, signs in at once,
			// and that does not free the attacker's network.
			wantUser(t, signIn(newAddr(), email, password), http.StatusOK)
			wantLimited(t, signIn(attacker, email, password), 5*time.Minute)
			// Ann gets in from there too once the wait is over; her
			// failures there are forgotten: four more are free.
			s.clock.Advance(5 * time.Minute)
			wantUser(t, signIn(attacker, email, password), http.StatusOK)
			for range 4 {
				wantErrors(t, signIn(attacker, email, "wrong password"), http.StatusBadRequest, invalid)
			}
			wantUser(t, signIn(attacker, email, password), http.StatusOK)
		})
	}
	t.Run("another account is not held up", func(t *testing.T) {
		s.client(t).signUp("bob@uni.edu")
		attacker := newAddr()
		for range 5 {
			wantErrors(t, signIn(attacker, "ann@uni.edu", "wrong password"), http.StatusBadRequest, invalid)
		}
		wantLimited(t, signIn(attacker, "ann@uni.edu", password), 5*time.Second)
		wantUser(t, signIn(attacker, "bob@uni.edu", password), http.StatusOK)
	})
	t.Run("an IPv6 network is one client", func(t *testing.T) {
		s.client(t).signUp("dee@uni.edu")
		for i := range 5 {
			wantErrors(t, signIn(fmt.Sprintf("2001:db8:7:1::%x", i+1), "dee@uni.edu", "wrong password"), http.StatusBadRequest, invalid)
		}
		wantLimited(t, signIn("2001:db8:7:1:ffff::9", "dee@uni.edu", password), 5*time.Second)
		wantUser(t, signIn("2001:db8:7:2::1", "dee@uni.edu", password), http.StatusOK)
	})
	t.Run("failures long ago are forgotten", func(t *testing.T) {
		s.client(t).signUp("cy@uni.edu")
		addr := newAddr()
		for range 4 {
			wantErrors(t, signIn(addr, "cy@uni.edu", "wrong password"), http.StatusBadRequest, invalid)
		}
		s.clock.Advance(time.Hour)
		for range 4 {
			wantErrors(t, signIn(addr, "cy@uni.edu", "wrong password"), http.StatusBadRequest, invalid)
		}
		wantUser(t, signIn(addr, "cy@uni.edu", password), http.StatusOK)
	})
}

// TestLimitsOff: RATE_LIMIT=off (Service.Limits.On false) turns every
// limit and the backoff off, whatever the rules say: benchmarks sign up
// hundreds of buyers from one address.
func TestLimitsOff(t *testing.T) {
	s := newStackWith(t, func(c *app.Config) {
		c.Limits = app.Limits{SignIn: tight, SignInAccount: tight, SignUp: tight, Refresh: tight, RefreshAccount: tight}
	})
	const addr = "203.0.113.9"
	c := s.client(t)
	for i := range 5 {
		wantUser(t, s.client(t).Do(http.MethodPost, "/api/users/signup", signInBody(fmt.Sprintf("u%d@uni.edu", i), password), from(addr)), http.StatusCreated)
	}
	for range 10 {
		wantErrors(t, c.Do(http.MethodPost, "/api/users/signin", signInBody("u0@uni.edu", "wrong password"), from(addr)), http.StatusBadRequest)
	}
	wantUser(t, c.Do(http.MethodPost, "/api/users/signin", signInBody("u0@uni.edu", password), from(addr)), http.StatusOK)
	for range 5 {
		wantUser(t, c.Do(http.MethodPost, "/api/users/refresh", nil, from(addr)), http.StatusOK)
	}
}

// TestOneNetworkCannotLockTheOwnerOut: with the default limits, an attacker
// guessing one account's password from one network every 10 s for two
// hours is held to a dozen guesses an hour once the delay has grown, and the
// owner, on another network, signs in every time they try meanwhile.
func TestOneNetworkCannotLockTheOwnerOut(t *testing.T) {
	cfg, err := app.LoadConfig(func(k string) string {
		return map[string]string{"MONGO_URI": "mongodb://db", "NATS_URL": "nats://nats", "JWT_KEY": strings.Repeat("j", 32),
			"SESSION_KEY": strings.Repeat("s", 32)}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	s := limitedStack(t, cfg.Limits) // the defaults
	s.client(t).signUp("owner@uni.edu")
	attacker, owner := newAddr(), newAddr()
	signIn := func(addr, pw string) *testkit.Response {
		return s.client(t).Do(http.MethodPost, "/api/users/signin", signInBody("owner@uni.edu", pw), from(addr))
	}
	guesses := 0
	for i := range 720 { // every 10 s for two hours
		switch r := signIn(attacker, "wrong password"); r.Status {
		case http.StatusBadRequest:
			guesses++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("a guess answered %d", r.Status)
		}
		if i%60 == 0 { // the owner, every ten minutes
			wantUser(t, signIn(owner, password), http.StatusOK)
		}
		s.clock.Advance(10 * time.Second)
	}
	// The five free ones, six while the delay grows to five minutes, then
	// one every five minutes: 24 in two hours at most.
	if max := users.BackoffFree + 6 + 24; guesses > max {
		t.Fatalf("%d guesses in two hours from one network, want at most %d", guesses, max)
	}
}
