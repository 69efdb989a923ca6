package app_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/client/app"
	"github.com/stuffmart/stuffmart/client/internal/clienttest"
	authapp "github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// The storefront against abuse: the browser's address reaches the
// services, a 429 is a page that says when to come back, the storefront's
// own limit and same-origin check of form posts, CSRF tokens that end with
// the session, and a coupon's code kept out of URLs.

// from makes b's requests arrive as if through the ingress from addr: the
// test's loopback is a trusted proxy of the storefront (clienttest, and
// TRUSTED_PROXIES below).
func from(b *browser, addr string) *browser {
	b.hc.Transport = forwardedFor{addr}
	return b
}

type forwardedFor struct{ addr string }

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.addr)
	return http.DefaultTransport.RoundTrip(r)
}

var retryRE = regexp.MustCompile(`try again in (\d+) seconds?\.`)

// tooMany fails unless p is the 429 page, and returns the seconds it says
// to wait, which the Retry-After header must say too.
func tooMany(t *testing.T, p page) int {
	t.Helper()
	p.is(http.StatusTooManyRequests).contains("Too many requests", `<meta name="robots" content="noindex, nofollow">`)
	m := retryRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("the 429 page does not say when to try again:\n%s", p.body)
	}
	if ra := p.header.Get("Retry-After"); ra != m[1] {
		t.Errorf("Retry-After %q, the page says %s seconds", ra, m[1])
	}
	checkSecurityHeaders(t, p)
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestAbuse runs against the real services, auth limiting sign-ins to two
// an hour per client address.
func TestAbuse(t *testing.T) {
	t.Parallel()
	adminEmail := email(t, "admin")
	s := clienttest.Start(t, clienttest.Options{
		Admins:     []string{adminEmail},
		AuthLimits: &authapp.Limits{SignIn: ratelimit.Rule{Every: time.Hour, Burst: 2, Name: "signin_limit"}},
	})
	from(newBrowser(t, s), "192.0.2.1").signUp(adminEmail)

	t.Run("auth limits browsers by their own address, not the storefront's", func(t *testing.T) {
		t.Parallel()
		addr := email(t, "ann")
		from(newBrowser(t, s), "192.0.2.2").signUp(addr)
		// Two sign-ins from one address, then auth refuses the third: a
		// 429 page that says when to come back.
		for range 2 {
			from(newBrowser(t, s), "203.0.113.7").signIn(addr)
		}
		a := from(newBrowser(t, s), "203.0.113.7")
		form := a.get("/signin").is(http.StatusOK)
		wait := tooMany(t, a.submit(form, "/signin", url.Values{"email": {addr}, "password": {password}}))
		if wait < 1 || wait > 3600 {
			t.Errorf("try again in %d seconds; auth's limit earns a sign-in an hour", wait)
		}
		// Another browser, behind the same storefront: its own allowance.
		// Were the storefront's address what auth saw, it would share the
		// first browser's, already spent.
		from(newBrowser(t, s), "198.51.100.9").signIn(addr)
	})

	t.Run("a CSRF token of a session that ended fails in the next", func(t *testing.T) {
		t.Parallel()
		b := from(newBrowser(t, s), "192.0.2.3")
		addr := email(t, "seller")
		b.signUp(addr)
		before := b.get("/sell").is(http.StatusOK)
		csrfCookie := b.cookie("csrf")
		b.submit(b.get("/"), "/signout", nil).redirects("/")
		if b.cookie("csrf") == csrfCookie {
			t.Error("signing out kept the CSRF cookie")
		}
		b.signIn(addr)
		form := url.Values{"title": {"Old token"}, "description": {""}, "price": {"1"}, "delivery": {"x"}}
		// Same browser, same user, a new session: the old page's token
		// is refused; a page of this session works.
		b.submit(before, "/sell", form).is(http.StatusForbidden).contains("This form has expired")
		b.submit(b.get("/sell"), "/sell", form).redirects("/stuff/")
	})

	t.Run("a new coupon's code is in no URL", func(t *testing.T) {
		t.Parallel()
		admin := from(newBrowser(t, s), "192.0.2.1")
		admin.signIn(adminEmail)
		created := createCoupon(t, admin, admin.get("/admin/coupons"), url.Values{"percentOff": {"15"}})
		created.contains("15%")
		// A cookie the browser made up names no coupon.
		admin.jar.SetCookies(&url.URL{Scheme: "http", Host: admin.base.Host, Path: "/admin/coupons"},
			[]*http.Cookie{{Name: "coupon_created", Value: base64.RawURLEncoding.EncodeToString([]byte("FAKE")), Path: "/admin/coupons"}})
		admin.get("/admin/coupons").is(http.StatusOK).lacks("FAKE", "created.")
	})

	t.Run("metrics move after a page view and are not served through a proxy", func(t *testing.T) {
		t.Parallel()
		before := testkit.Scrape(t, s.URL+"/metrics")
		// An anonymous stuff page the cache has never seen: a miss, and
		// a call to the stuff service (which answers 404).
		id := testkit.RandomID(t)[:24]
		newBrowser(t, s).get("/stuff/" + id).is(http.StatusNotFound)
		after := testkit.Scrape(t, s.URL+"/metrics")
		for _, c := range []struct {
			name   string
			labels []string
		}{
			{"storefront_page_cache_total", []string{"result", "miss"}},
			{"upstream_requests_total", []string{"service", "stuff", "method", "GET", "status", "404"}},
			{"upstream_request_duration_seconds", []string{"service", "stuff", "method", "GET"}},
			{"http_requests_total", []string{"route", "/stuff/:id", "method", "GET", "status", "404"}},
		} {
			if b, a := before.Value(c.name, c.labels...), after.Value(c.name, c.labels...); a < b+1 {
				t.Errorf("%s%v: %v before the page view, %v after\n%s", c.name, c.labels, b, a, after)
			}
		}
		if !after.Has("go_goroutines") || !after.Has("process_cpu_seconds_total") {
			t.Error("no Go runtime or process metrics")
		}
		// Through the ingress (a forwarded header a trusted proxy set),
		// /metrics does not exist.
		from(newBrowser(t, s), "203.0.113.50").get("/metrics").is(http.StatusNotFound).contains("Page not found").lacks("go_goroutines")
	})
}

// createdCoupon is the coupons page after a coupon was created, and the
// coupon's code.
type createdCoupon struct {
	page
	code string
}

func (c createdCoupon) contains(ss ...string) createdCoupon {
	c.t.Helper()
	c.page.contains(ss...)
	return c
}

var createdRE = regexp.MustCompile(`Coupon <code>([^<]+)</code> created\.`)

// createCoupon submits the coupon form of page cp and follows the redirect:
// to the coupons page, with no code in its URL, which names the new code
// once (a reload does not).
func createCoupon(t *testing.T, admin *browser, cp page, form url.Values) createdCoupon {
	t.Helper()
	loc := admin.submit(cp, "/admin/coupons", form).redirects("/admin/coupons")
	if loc != "/admin/coupons" {
		t.Fatalf("redirect to %q after creating a coupon, want /admin/coupons and no query", loc)
	}
	p := admin.get(loc).is(http.StatusOK)
	m := createdRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no notice of the new coupon:\n%s", p.body)
	}
	admin.get(loc).is(http.StatusOK).lacks("created.")
	return createdCoupon{page: p, code: m[1]}
}

// guarded starts a storefront (its services unreachable: the guards answer
// before any page code) trusting loopback as its proxy, with extra
// environment kv, on clk.
func guarded(t *testing.T, clk *testkit.Clock, kv ...string) string {
	t.Helper()
	cfg, err := app.LoadConfig(env(with(append([]string{"API_URL", "http://127.0.0.1:1", "TRUSTED_PROXIES", "127.0.0.0/8,::1"}, kv...)...)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Now = clk.Now
	a, err := app.New(context.Background(), cfg, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := a.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return srv.URL
}

// postFrom posts an empty form to the sign-in page from addr, with the
// header pairs kv.
func postFrom(t *testing.T, base, addr string, kv ...string) page {
	t.Helper()
	b := from(newBrowser(t, nil, base), addr)
	req, err := http.NewRequest(http.MethodPost, base+"/signin", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	return b.do(req)
}

// TestRateLimit: the storefront limits form posts per browser address
// (RATE_LIMIT_UNSAFE), before even the CSRF check; RATE_LIMIT=off lifts it.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Now())
	base := guarded(t, clk, "RATE_LIMIT_UNSAFE", "3/h")
	for range 3 {
		postFrom(t, base, "203.0.113.7").is(http.StatusForbidden).contains("This form has expired")
	}
	if wait := tooMany(t, postFrom(t, base, "203.0.113.7")); wait != 1200 {
		t.Errorf("try again in %d seconds, want 1200 (three an hour)", wait)
	}
	// Another address has its own allowance.
	postFrom(t, base, "198.51.100.9").is(http.StatusForbidden).contains("This form has expired")
	// Twenty minutes later the first address has earned one more.
	clk.Advance(20 * time.Minute)
	postFrom(t, base, "203.0.113.7").is(http.StatusForbidden).contains("This form has expired")
	tooMany(t, postFrom(t, base, "203.0.113.7"))
	// Pages are not limited.
	from(newBrowser(t, nil, base), "203.0.113.7").get("/signin").is(http.StatusOK)
	if n := testkit.Scrape(t, base+"/metrics").Value("ratelimit_refused_total", "limit", "rate_limit_unsafe"); n != 2 {
		t.Errorf("ratelimit_refused_total{limit=rate_limit_unsafe} = %v, want 2", n)
	}

	off := guarded(t, clk, "RATE_LIMIT_UNSAFE", "3/h", "RATE_LIMIT", "off")
	for range 10 {
		postFrom(t, off, "203.0.113.7").is(http.StatusForbidden)
	}
}

// TestSearchRateLimit: the listings computed for their request are limited
// per browser address (RATE_LIMIT_SEARCH) with the 429 page: the search
// page, a seller's page, the home page sorted or in a price range. The
// plain home page and other addresses are not held up.
func TestSearchRateLimit(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Now())
	base := guarded(t, clk, "RATE_LIMIT_SEARCH", "3/h")
	b := from(newBrowser(t, nil, base), "203.0.113.7")
	for _, path := range []string{"/search?q=notes", "/sellers/" + strings.Repeat("a", 24), "/?sort=price_asc"} {
		// The services are not there: an error page, but not refused.
		if p := b.get(path); p.status == http.StatusTooManyRequests {
			t.Fatalf("%s refused within the limit", path)
		}
	}
	for _, path := range []string{"/search?q=chairs", "/?min=5", "/sellers/" + strings.Repeat("b", 24)} {
		if wait := tooMany(t, b.get(path)); wait != 1200 {
			t.Errorf("%s: try again in %d seconds, want 1200 (three an hour)", path, wait)
		}
	}
	for _, path := range []string{"/", "/?page=2"} {
		if p := b.get(path); p.status == http.StatusTooManyRequests {
			t.Fatalf("%s was refused", path)
		}
	}
	if p := from(newBrowser(t, nil, base), "198.51.100.9").get("/search?q=chairs"); p.status == http.StatusTooManyRequests {
		t.Fatal("another address was refused")
	}
	if n := testkit.Scrape(t, base+"/metrics").Value("ratelimit_refused_total", "limit", "rate_limit_search"); n != 3 {
		t.Errorf("ratelimit_refused_total{limit=rate_limit_search} = %v, want 3", n)
	}
}

// TestCrossSite: a form post another site's page sent is refused with a
// page (403) before the CSRF check; the storefront's own pass on to it.
func TestCrossSite(t *testing.T) {
	t.Parallel()
	base := guarded(t, testkit.NewClock(time.Now()))
	host := strings.TrimPrefix(base, "http://")
	for _, h := range [][]string{
		{"Origin", "https://evil.example"},
		{"Origin", "http://shop." + host},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Sec-Fetch-Site", "cross-site", "Origin", base},
	} {
		p := postFrom(t, base, "203.0.113.7", h...).is(http.StatusForbidden).contains("Sent from another site").lacks("This form has expired")
		checkSecurityHeaders(t, p)
	}
	for _, h := range [][]string{
		{"Origin", base},
		{"Sec-Fetch-Site", "same-origin"},
		{},
	} {
		postFrom(t, base, "203.0.113.7", h...).is(http.StatusForbidden).contains("This form has expired")
	}
}

// TestPassedOn: a call the storefront makes for a page carries the
// browser's address after the storefront's trusted proxy, and the page's
// correlation id (its request id, not one the browser sent).
func TestPassedOn(t *testing.T) {
	t.Parallel()
	type seen struct{ xff, correlationID string }
	calls := make(chan seen, 1)
	stuff := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls <- seen{r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Correlation-Id")}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"message":"Not Found"}]}`))
	}))
	t.Cleanup(stuff.Close)
	base := guarded(t, testkit.NewClock(time.Now()), "STUFF_URL", stuff.URL, "CACHE_TTL", "0")
	p := from(newBrowser(t, nil, base), "203.0.113.7").get("/stuff/0123456789abcdef01234567",
		"X-Correlation-Id", "forged-id", "X-Request-Id", "forged-request").is(http.StatusNotFound)
	got := <-calls
	if got.xff != "203.0.113.7, 127.0.0.1" {
		t.Errorf("the service saw X-Forwarded-For %q, want the browser's address then the proxy's", got.xff)
	}
	if id := p.header.Get("X-Correlation-Id"); got.correlationID != id || id != p.header.Get("X-Request-Id") || id == "forged-id" || id == "forged-request" {
		t.Errorf("correlation id: the service saw %q, the page answered %q (request id %q)", got.correlationID, id, p.header.Get("X-Request-Id"))
	}
}
