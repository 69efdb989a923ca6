package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/clienttest"
)

const heldSentence = "The stuff is being checking out by someone else, please come back later"

// TestStorefront runs the pages against the real services, one stack
// shared by subtests that each use accounts and stuff of their own.
func TestStorefront(t *testing.T) {
	t.Parallel()
	adminEmail := email(t, "admin")
	s := clienttest.Start(t, clienttest.Options{Admins: []string{adminEmail}})
	// The admin's account exists before the subtests that sign in as it run
	// (in parallel, in any order).
	newBrowser(t, s).signUp(adminEmail)

	t.Run("public pages, SEO and headers", func(t *testing.T) {
		t.Parallel()
		seller := newBrowser(t, s)
		seller.signUp(email(t, "seller"))
		id := seller.sell("Linear algebra notes", "Every lecture of MATH 201, typed up.\nWith worked examples.", "12.50", "https://drive.example/notes")

		anon := newBrowser(t, s)
		home := anon.eventually("/", func(p page) bool { return strings.Contains(p.body, "Linear algebra notes") }, "new stuff on the home page").
			is(http.StatusOK).
			contains(`<html lang="en">`, `<title>Stuffmart: digital stuff from students, for students</title>`,
				`<meta name="description" content="`, `<link rel="canonical" href="`+s.URL+`/">`,
				`<meta property="og:title"`, `<meta property="og:type" content="website">`, `<meta property="og:url" content="`+s.URL+`/">`,
				`href="/stuff/`+id+`"`, "$12.50", `href="/signin"`, `href="/signup"`).
			lacks("Sign out", "_csrf", "<script src", "<script>")
		checkSecurityHeaders(t, home)
		if cc := home.header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("anonymous home Cache-Control %q, want no-cache", cc)
		}

		stuff := anon.get("/stuff/"+id).is(http.StatusOK).
			contains(`<title>Linear algebra notes · $12.50 · Stuffmart</title>`,
				`<meta name="description" content="Every lecture of MATH 201, typed up. With worked examples.">`,
				`<link rel="canonical" href="`+s.URL+`/stuff/`+id+`">`, `<meta property="og:type" content="product">`,
				"Sign in to buy", `/signin?next=%2Fstuff%2F`+id).
			lacks(">BUY</button>", "https://drive.example/notes", "_csrf")
		ld := jsonLD(t, stuff)
		offer, _ := ld["offers"].(map[string]any)
		if ld["@type"] != "Product" || ld["name"] != "Linear algebra notes" || offer["@type"] != "Offer" ||
			offer["price"] != "12.50" || offer["priceCurrency"] != "USD" || offer["availability"] != "https://schema.org/InStock" ||
			offer["url"] != s.URL+"/stuff/"+id {
			t.Errorf("JSON-LD %v", ld)
		}

		robots := anon.get("/robots.txt").is(http.StatusOK)
		for _, want := range []string{"Disallow: /orders", "Disallow: /admin", "Disallow: /signin", "Disallow: /account", "Disallow: /sell", "Disallow: /mine", "Sitemap: " + s.URL + "/sitemap.xml"} {
			robots.contains(want)
		}
		anon.eventually("/sitemap.xml", func(p page) bool { return strings.Contains(p.body, "<loc>"+s.URL+"/stuff/"+id+"</loc>") }, "stuff in the sitemap").
			contains(`<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">`, "<loc>"+s.URL+"/</loc>")

		for _, path := range []string{"/no-such-page", "/stuff/000000000000000000000000", "/stuff/not-an-id", "/?page=abc", "/?page=0", "/?page=99"} {
			anon.get(path).is(http.StatusNotFound).contains("Page not found", `<meta name="robots" content="noindex, nofollow">`)
		}
		// Private pages send anonymous visitors to sign in, and come back.
		if loc := anon.get("/orders").redirects("/signin"); loc != "/signin?next=%2Forders" {
			t.Errorf("anonymous /orders -> %q", loc)
		}
	})

	t.Run("ids no service mints are 404, signed in or not", func(t *testing.T) {
		t.Parallel()
		seller := newBrowser(t, s)
		seller.signUp(email(t, "seller"))
		seller.sell("Mine stuff", "", "1", "secret delivery")
		anon := newBrowser(t, s)
		// "mine" is the stuff service's own list (/api/stuff/mine), not a
		// listing: it must not be shown as an empty stuff page.
		for _, path := range []string{"/stuff/mine", "/stuff/..", "/stuff/mine/edit", "/orders/mine", "/orders/..", "/orders/mine/content"} {
			anon.get(path).is(http.StatusNotFound).contains("Page not found")
			seller.get(path).is(http.StatusNotFound).contains("Page not found").lacks("secret delivery")
		}
		form := seller.get("/sell")
		for _, path := range []string{"/stuff/mine/buy", "/stuff/mine/edit", "/orders/mine/pay", "/orders/mine/cancel"} {
			seller.submit(form, path, url.Values{"title": {"x"}, "price": {"1"}}).is(http.StatusNotFound)
		}
	})

	t.Run("text a service refuses as too large is a 413 page, not a 5xx", func(t *testing.T) {
		t.Parallel()
		// 20,000 "<" fit the storefront's body limit URL-encoded (60 KB)
		// but not the services' once JSON-encoded (\u003c: 120 KB).
		long := strings.Repeat("<", 20_000)
		seller := newBrowser(t, s)
		seller.signUp(email(t, "seller"))
		form := seller.get("/sell")
		seller.submit(form, "/sell", url.Values{"title": {"Long"}, "description": {long}, "price": {"1"}}).
			is(http.StatusRequestEntityTooLarge).contains("Too much text")
		id := seller.sell("Short", "", "1", "")
		edit := seller.get("/stuff/" + id + "/edit")
		seller.submit(edit, "/stuff/"+id+"/edit", url.Values{"title": {"Short"}, "delivery": {long}, "price": {"1"}}).
			is(http.StatusRequestEntityTooLarge).contains("Too much text")
		anon := newBrowser(t, s)
		up := anon.get("/signup")
		anon.submit(up, "/signup", url.Values{"email": {long}, "password": {password}}).
			is(http.StatusRequestEntityTooLarge).contains("Too much text")
	})

	t.Run("assets are fingerprinted, cached and gzipped", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t, s)
		home := b.get("/")
		css := regexp.MustCompile(`href="(/assets/app\.[0-9a-f]{8}\.css)"`).FindStringSubmatch(home.body)
		if css == nil {
			t.Fatalf("no fingerprinted stylesheet in %s", home.body)
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+css[1], nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
			t.Errorf("stylesheet: %d %v", resp.StatusCode, resp.Header)
		}
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		resp, err = http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("conditional stylesheet: %d, want 304", resp.StatusCode)
		}
		b.get("/assets/countdown.js").is(http.StatusOK).contains("location.reload")
		b.get("/assets/nope.js").is(http.StatusNotFound)
	})

	t.Run("user input is escaped", func(t *testing.T) {
		t.Parallel()
		seller := newBrowser(t, s)
		seller.signUp(email(t, "xss"))
		evil := `</script><script>alert(1)</script><b>"x"</b>`
		id := seller.sell(evil, evil, "1", evil)
		anon := newBrowser(t, s)
		p := anon.get("/stuff/"+id).is(http.StatusOK).
			lacks("<script>alert(1)", "<b>").
			contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;")
		ld := jsonLD(t, p)
		if ld["name"] != evil {
			t.Errorf("JSON-LD name %q, want %q", ld["name"], evil)
		}
		if !strings.Contains(p.body, `\u003c/script\u003e`) {
			t.Errorf("JSON-LD does not escape <: %s", p.body)
		}
		// The seller sees the delivery, escaped too.
		seller.get("/stuff/" + id).lacks("<script>alert(1)").contains("What buyers get")
	})

	t.Run("CSRF", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t, s)
		form := b.get("/signup").is(http.StatusOK)
		creds := url.Values{"email": {email(t, "csrf")}, "password": {password}, "name": {"CSRF tester"}}
		// No token, a wrong one, and another browser's.
		b.post("/signup", creds).is(http.StatusForbidden).contains("This form has expired")
		bad := url.Values{"_csrf": {"forged"}, "email": creds["email"], "password": creds["password"]}
		b.post("/signup", bad).is(http.StatusForbidden)
		other := newBrowser(t, s)
		otherForm := other.get("/signup")
		b.submit(otherForm, "/signup", creds).is(http.StatusForbidden)
		if b.cookie("session") != "" {
			t.Fatal("a refused form signed the browser up")
		}
		b.submit(form, "/signup", creds).redirects("/")

		// A token issued before signing in is bound to no user: refused now.
		seller := newBrowser(t, s)
		seller.signUp(email(t, "seller"))
		id := seller.sell("CSRF target", "", "3", "")
		b.post("/stuff/"+id+"/buy", url.Values{}).is(http.StatusForbidden)
		b.submit(form, "/stuff/"+id+"/buy", nil).is(http.StatusForbidden)
		b.post("/signout", url.Values{}).is(http.StatusForbidden)
		if b.cookie("session") == "" {
			t.Fatal("a refused sign-out signed the browser out")
		}
	})

	t.Run("sign up, sign in, sign out", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t, s)
		form := b.get("/signup").is(http.StatusOK).contains(`<label for="email">Email</label>`, `<label for="password">Password</label>`, `autocomplete="new-password"`,
			`<label for="name">Display name</label>`, `autocomplete="nickname"`)
		p := b.submit(form, "/signup", url.Values{"email": {"not-an-email"}, "password": {"short"}, "name": {" A "}}).is(http.StatusBadRequest).
			contains(`value="not-an-email"`, `aria-invalid="true"`, `id="email-error"`, `id="password-error"`, `aria-describedby="password-hint password-error"`,
				`id="name-error"`, "Name must be between 2 and 40 characters", `value=" A "`, `aria-describedby="name-hint name-error"`).
			lacks(`value="short"`)
		// The name is required by the form: an empty one is refused too.
		b.submit(p, "/signup", url.Values{"email": {email(t, "nameless")}, "password": {password}}).is(http.StatusBadRequest).
			contains(`id="name-error"`, "Name must be between 2 and 40 characters").lacks(`id="email-error"`, `id="password-error"`)
		if b.cookie("session") != "" {
			t.Fatal("a sign-up without a display name signed the browser in")
		}
		addr := email(t, "ann")
		b.submit(p, "/signup", url.Values{"email": {addr}, "password": {password}, "name": {"Ann from Physics"}}).redirects("/")
		b.get("/").is(http.StatusOK).contains("Signed in as <strong>"+addr+"</strong>", "Sign out", `href="/sell"`, `href="/orders"`).
			lacks(`href="/admin/coupons"`, `href="/signup"`)
		if cc := b.get("/").header.Get("Cache-Control"); cc != "private, no-store" {
			t.Errorf("signed-in Cache-Control %q", cc)
		}

		// The same email again.
		other := newBrowser(t, s)
		f := other.get("/signup")
		other.submit(f, "/signup", url.Values{"email": {addr}, "password": {password}, "name": {"Ann again"}}).is(http.StatusBadRequest).
			contains("Email in use", `value="Ann again"`)

		// Sign out, then sign in with a wrong and the right password.
		b.submit(b.get("/"), "/signout", nil).redirects("/")
		if b.cookie("session") != "" {
			t.Fatal("still a session cookie after signing out")
		}
		b.get("/").contains(`href="/signin"`).lacks(addr)
		in := b.get("/signin?next=%2Forders").contains(`name="next" value="/orders"`)
		in = b.submit(in, "/signin", url.Values{"email": {addr}, "password": {"wrong password"}, "next": {"/orders"}}).is(http.StatusBadRequest).
			contains("Invalid credentials", `value="`+addr+`"`)
		if loc := b.submit(in, "/signin", url.Values{"email": {addr}, "password": {password}, "next": {"/orders"}}).redirects("/orders"); loc != "/orders" {
			t.Errorf("sign in went to %q", loc)
		}
		// Another site as next is ignored.
		b.submit(b.get("/"), "/signout", nil).redirects("/")
		in = b.get("/signin")
		if loc := b.submit(in, "/signin", url.Values{"email": {addr}, "password": {password}, "next": {"//evil.example/x"}}).redirects("/"); strings.Contains(loc, "evil") {
			t.Errorf("sign in went to %q", loc)
		}
	})

	t.Run("display name: sign-up, account page, errors kept", func(t *testing.T) {
		t.Parallel()
		newBrowser(t, s).get("/account").redirects("/signin")
		b := newBrowser(t, s)
		addr := email(t, "named")
		form := b.get("/signup")
		b.submit(form, "/signup", url.Values{"email": {addr}, "password": {password}, "name": {"  Grace H. "}}).redirects("/")
		b.get("/").contains(`href="/account"`)
		acct := b.get("/account").is(http.StatusOK).
			contains("<title>Your account · Stuffmart</title>", `<meta name="robots" content="noindex, nofollow">`, `aria-current="page">Account</a>`,
				"<strong>"+addr+"</strong>", `<label for="name">Display name</label>`, `value="Grace H."`, `name="_csrf"`)
		if cc := acct.header.Get("Cache-Control"); cc != "private, no-store" {
			t.Errorf("account page Cache-Control %q", cc)
		}

		// Refusals keep what was typed and show auth's message at the field.
		for _, tc := range []struct{ name, typed, msg string }{
			{"too short", "G", "Name must be between 2 and 40 characters"},
			{"empty", "", "Name must be between 2 and 40 characters"},
			{"too long", strings.Repeat("g", 41), "Name must be between 2 and 40 characters"},
			{"text-direction override", "Grace ‮evil", "Name must not contain control or text-direction characters"},
		} {
			p := b.submit(acct, "/account", url.Values{"name": {tc.typed}}).is(http.StatusBadRequest).
				contains(`id="name-error"`, tc.msg, `aria-invalid="true"`)
			if tc.typed != "" && !strings.Contains(p.body, `value="`+tc.typed+`"`) {
				t.Errorf("%s: the typed name %q is not kept:\n%s", tc.name, tc.typed, p.body)
			}
		}
		b.get("/account").contains(`value="Grace H."`)

		// Without a CSRF token, or with another browser's, nothing changes.
		b.post("/account", url.Values{"name": {"Mallory"}}).is(http.StatusForbidden)
		other := newBrowser(t, s)
		other.signUp(email(t, "other"))
		b.submit(other.get("/account"), "/account", url.Values{"name": {"Mallory"}}).is(http.StatusForbidden)

		// A good one is saved, and shown to others through auth.
		if loc := b.submit(acct, "/account", url.Values{"name": {"Grace Hopper"}}).redirects("/account"); loc != "/account?m=renamed" {
			t.Errorf("saved to %q", loc)
		}
		b.get("/account?m=renamed").contains("Your display name is saved.", `value="Grace Hopper"`)
		other.get("/account").lacks("Grace")

		// What the seller pages will read: the client's public view of the
		// account, without the email.
		clients, err := api.New(s.AuthURL, s.StuffURL, s.OrdersURL, s.PaymentsURL, api.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(clients.Close)
		ctx := context.Background()
		me, ok, err := clients.Auth.CurrentUser(ctx, api.Session{Cookie: b.cookie("session")})
		if err != nil || !ok || me.Email != addr || me.Name != "Grace Hopper" {
			t.Fatalf("CurrentUser = %+v %t %v", me, ok, err)
		}
		if pub, err := clients.Auth.User(ctx, me.ID); err != nil || pub != (api.PublicUser{ID: me.ID, Name: "Grace Hopper"}) {
			t.Fatalf("User(%s) = %+v %v", me.ID, pub, err)
		}
		for _, id := range []string{"0123456789abcdef01234567", "not-an-id", "../currentuser"} {
			if _, err := clients.Auth.User(ctx, id); api.StatusOf(err) != http.StatusNotFound {
				t.Errorf("User(%q): %v, want a 404", id, err)
			}
		}
		if _, ok, err := clients.Auth.CurrentUser(ctx, api.Session{}); ok || err != nil {
			t.Errorf("anonymous CurrentUser: %t %v", ok, err)
		}
	})

	t.Run("sell and edit", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t, s)
		b.signUp(email(t, "seller"))
		form := b.get("/sell").is(http.StatusOK).contains(`<label for="title">Title</label>`, `<label for="price">Price in US dollars</label>`)
		b.submit(form, "/sell", url.Values{"title": {""}, "description": {"kept"}, "price": {"abc"}, "delivery": {"kept delivery"}}).
			is(http.StatusBadRequest).
			contains("Title is required", "Enter a price in dollars, such as 4.99.", ">kept</textarea>", ">kept delivery</textarea>", `value="abc"`)
		b.submit(form, "/sell", url.Values{"title": {"Too cheap"}, "price": {"0"}}).is(http.StatusBadRequest).contains("Enter a price from $0.01 to $10,000.")

		id := b.sell("Essay template", "A template.", "4.99", "https://docs.example/template")
		b.get("/stuff/"+id+"?m=listed").is(http.StatusOK).contains("Your stuff is listed.", "You are selling this.", "Edit listing", "https://docs.example/template").lacks(">BUY</button>")
		b.get("/mine").is(http.StatusOK).contains("Essay template", "/stuff/"+id+"/edit")

		edit := b.get("/stuff/"+id+"/edit").is(http.StatusOK).contains(`value="Essay template"`, `value="4.99"`, "https://docs.example/template</textarea>")
		b.submit(edit, "/stuff/"+id+"/edit", url.Values{"title": {"Essay template v2"}, "description": {"A better template."}, "price": {"5.50"}, "delivery": {"https://docs.example/v2"}}).
			redirects("/stuff/" + id)
		b.get("/stuff/"+id).contains("Essay template v2", "$5.50", "https://docs.example/v2")

		other := newBrowser(t, s)
		other.signUp(email(t, "other"))
		other.get("/stuff/" + id + "/edit").is(http.StatusNotFound)
		other.get("/stuff/"+id).contains(">BUY</button>").lacks("https://docs.example/v2", "Edit listing")
	})

	t.Run("buy, 409, decline, pay, delivery", func(t *testing.T) {
		t.Parallel()
		seller, buyer, late := newBrowser(t, s), newBrowser(t, s), newBrowser(t, s)
		seller.signUp(email(t, "seller"))
		buyer.signUp(email(t, "buyer"))
		late.signUp(email(t, "late"))
		id := seller.sell("Physics lab report", "Graded A.", "7", "The secret content: lab-report.pdf")
		latePage := late.get("/stuff/"+id).contains(">BUY</button>", "It is held for you for 15 minutes while you pay.")

		order := buyer.buy(id)
		op := buyer.get(order).is(http.StatusOK).
			contains("data-countdown", "data-remaining-ms=", "left to pay", `<time datetime="`, "Waiting for payment",
				`value="pm_card_visa"`, `value="pm_card_chargeDeclined"`, `<label for="coupon">Coupon code (optional)</label>`, "Pay $7.00", "Cancel order").
			contains(`<script src="/assets/countdown.`)
		ms := regexp.MustCompile(`data-remaining-ms="(\d+)"`).FindStringSubmatch(op.body)
		if n, _ := strconv.Atoi(ms[1]); n < 14*60*1000 || n > 15*60*1000 {
			t.Errorf("remaining %s ms, want about 15 minutes", ms[1])
		}

		// The third student clicks BUY on the page they had open.
		late.submit(latePage, "/stuff/"+id+"/buy", nil).is(http.StatusConflict).contains(heldSentence, `href="/stuff/`+id+`"`)
		late.eventually("/stuff/"+id, func(p page) bool { return strings.Contains(p.body, "Being checked out.") }, "the stuff shown as being checked out").
			lacks(">BUY</button>")
		newBrowser(t, s).eventually("/stuff/"+id, func(p page) bool {
			return strings.Contains(p.body, `"availability":"https://schema.org/Reserved"`)
		}, "anonymous stuff page shows reserved")
		seller.get("/stuff/" + id).lacks("Edit listing").contains("cannot be edited")

		// A declined card, then a good one.
		p := buyer.submit(op, order+"/pay", url.Values{"paymentMethod": {"pm_card_chargeDeclined"}, "coupon": {""}}).is(http.StatusBadRequest).
			contains(`id="paymentMethod-error"`, "declined", `value="pm_card_chargeDeclined" checked`)
		buyer.submit(p, order+"/pay", url.Values{"paymentMethod": {"pm_card_visa"}, "coupon": {"NOPE-NOT-A-COUPON"}}).is(http.StatusBadRequest).
			contains(`id="coupon-error"`, "Coupon code is not valid", `value="NOPE-NOT-A-COUPON"`)
		content := buyer.submit(p, order+"/pay", url.Values{"paymentMethod": {"pm_card_visa"}}).redirects(order + "/content")
		buyer.eventually(content, func(p page) bool { return strings.Contains(p.body, "The secret content: lab-report.pdf") }, "the delivery").
			is(http.StatusOK).lacks(`http-equiv="refresh"`)
		buyer.get(order).contains("Paid. The stuff is yours.").lacks("data-countdown")
		buyer.get("/orders").contains("Physics lab report", "Paid", order+"/content")
		buyer.eventually("/stuff/"+id, func(p page) bool { return strings.Contains(p.body, "You bought this.") }, "stuff page for the buyer").
			contains("The secret content: lab-report.pdf")
		late.eventually("/stuff/"+id, func(p page) bool { return strings.Contains(p.body, "Sold.") }, "stuff sold").lacks("lab-report.pdf")
		// Nobody else sees the delivery, nor the order.
		late.get(order).is(http.StatusNotFound)
		late.get(order + "/content").is(http.StatusNotFound)
	})

	t.Run("cancel an order", func(t *testing.T) {
		t.Parallel()
		seller, buyer := newBrowser(t, s), newBrowser(t, s)
		seller.signUp(email(t, "seller"))
		buyer.signUp(email(t, "buyer"))
		id := seller.sell("Flashcards", "", "2", "cards")
		order := buyer.buy(id)
		op := buyer.get(order)
		buyer.submit(op, order+"/cancel", nil).redirects(order)
		buyer.get(order+"?m=cancelled").contains("You cancelled this order.", "Order cancelled.").lacks("data-countdown", "Pay $2.00")
		buyer.get(order + "/content").contains("nothing to show")
		buyer.eventually("/stuff/"+id, func(p page) bool { return strings.Contains(p.body, ">BUY</button>") }, "stuff back on sale")
	})

	t.Run("admin: free coupon, users, bans", func(t *testing.T) {
		t.Parallel()
		admin, seller, buyer := newBrowser(t, s), newBrowser(t, s), newBrowser(t, s)
		admin.signIn(adminEmail)
		sellerEmail := email(t, "seller")
		seller.signUp(sellerEmail)
		buyer.signUp(email(t, "buyer"))
		admin.get("/").contains(`href="/admin/coupons"`, `href="/admin/users"`)
		seller.get("/").lacks(`href="/admin/coupons"`)
		seller.get("/admin/coupons").is(http.StatusForbidden).contains("Admins only")
		seller.get("/admin/users").is(http.StatusForbidden)
		newBrowser(t, s).get("/admin/coupons").redirects("/signin")

		cp := admin.get("/admin/coupons").is(http.StatusOK).contains(`<label for="percentOff">Percent off</label>`)
		admin.submit(cp, "/admin/coupons", url.Values{"percentOff": {"150"}}).is(http.StatusBadRequest).contains(`id="percentOff-error"`, `value="150"`)
		admin.submit(cp, "/admin/coupons", url.Values{"percentOff": {"x"}, "expiresAt": {"soon"}}).is(http.StatusBadRequest).
			contains("Enter a whole number from 1 to 100.", "Enter a date and time")
		code := createCoupon(t, admin, cp, url.Values{"percentOff": {"100"}, "maxRedemptions": {"1"}, "expiresAt": {"2099-01-31T23:59"}}).
			contains("100%", "0 of 1", "31 Jan 2099").code

		id := seller.sell("Free with a coupon", "", "9.99", "free delivery text")
		order := buyer.buy(id)
		content := buyer.submit(buyer.get(order), order+"/pay", url.Values{"coupon": {code}}).redirects(order + "/content")
		buyer.eventually(content, func(p page) bool { return strings.Contains(p.body, "free delivery text") }, "the delivery bought with a coupon")
		admin.eventually("/admin/coupons", func(p page) bool { return strings.Contains(p.body, "1 of 1") }, "the coupon used once")

		// Ban the seller: they can no longer sign in; unban.
		sellerName, _, _ := strings.Cut(sellerEmail, "@")
		users := admin.get("/admin/users").is(http.StatusOK).contains(sellerEmail, "You", `<th scope="col">Display name</th>`, "<td>"+sellerName+"</td>")
		banURL := regexp.MustCompile(`action="(/admin/users/[^"]+/ban\?page=1)"[^>]*>\s*<input type="hidden" name="_csrf" value="[^"]+">\s*<button[^>]*>Ban<span class="visually-hidden"> ` + regexp.QuoteMeta(sellerEmail))
		m := banURL.FindStringSubmatch(users.body)
		if m == nil {
			t.Fatalf("no ban form for %s:\n%s", sellerEmail, users.body)
		}
		admin.submit(users, m[1], nil).redirects("/admin/users?page=1&m=banned")
		admin.get("/admin/users?page=1&m=banned").contains("The user is banned.", "Banned")
		again := newBrowser(t, s)
		f := again.get("/signin")
		again.submit(f, "/signin", url.Values{"email": {sellerEmail}, "password": {password}}).is(http.StatusForbidden).contains("cannot sign in")
		users = admin.get("/admin/users")
		unban := strings.Replace(m[1], "/ban?", "/unban?", 1)
		admin.submit(users, unban, nil).redirects("/admin/users?page=1&m=unbanned")
		again.submit(f, "/signin", url.Values{"email": {sellerEmail}, "password": {password}}).redirects("/")
	})

	t.Run("expired access token is refreshed once, refused refresh signs out", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t, s)
		addr := email(t, "refresh")
		b.signUp(addr)
		cookie := b.cookie("session")
		sess := s.Sessions.Load(requestWithCookie(cookie))
		if sess.Refresh == "" {
			t.Fatal("no refresh token in the session cookie")
		}
		stale := expiredCookie(t, s, cookie)

		// Five requests at once with the same expired cookie: one refresh.
		before := s.Refreshes()
		const n = 5
		results := make(chan page, n)
		for range n {
			go func() {
				c := newBrowser(t, s)
				c.jar.SetCookies(c.base, []*http.Cookie{{Name: "session", Value: stale}})
				results <- c.get("/orders")
			}()
		}
		var fresh string
		for range n {
			p := <-results
			p.is(http.StatusOK).contains("Signed in as <strong>" + addr)
			for _, c := range (&http.Response{Header: p.header}).Cookies() {
				if c.Name == "session" && c.Value != "" {
					fresh = c.Value
				}
			}
		}
		if got := s.Refreshes() - before; got != 1 {
			t.Errorf("%d refreshes for %d requests with one cookie, want 1", got, n)
		}
		if fresh == "" {
			t.Fatal("no new session cookie relayed")
		}
		// The family is still valid: the rotated token refreshes again.
		c := newBrowser(t, s)
		c.jar.SetCookies(c.base, []*http.Cookie{{Name: "session", Value: expiredCookie(t, s, fresh)}})
		c.get("/orders").is(http.StatusOK).contains(addr)
		latest := c.cookie("session")

		// A banned user's refresh is refused: signed out.
		admin := newBrowser(t, s)
		admin.signIn(adminEmail)
		users := admin.get("/admin/users?page=1")
		uid := userID(t, s, latest)
		admin.submit(users, "/admin/users/"+uid+"/ban?page=1", nil).redirects("/admin/users")
		d := newBrowser(t, s)
		d.jar.SetCookies(d.base, []*http.Cookie{{Name: "session", Value: expiredCookie(t, s, latest)}})
		d.get("/orders").redirects("/signin")
		if d.cookie("session") != "" {
			t.Error("the refused session cookie was not cleared")
		}
	})
}

// TestOrderExpired shows an order past its deadline as expired, without the
// payment form.
func TestOrderExpired(t *testing.T) {
	t.Parallel()
	s := clienttest.Start(t, clienttest.Options{OrderHold: time.Second})
	seller, buyer := newBrowser(t, s), newBrowser(t, s)
	seller.signUp(email(t, "seller"))
	buyer.signUp(email(t, "buyer"))
	id := seller.sell("Quick stuff", "", "1", "x")
	// The page promises the hold the stack runs with (ORDER_HOLD).
	buyer.get("/stuff/" + id).contains("It is held for you for 1 second while you pay.")
	order := buyer.buy(id)
	buyer.eventually(order, func(p page) bool { return strings.Contains(p.body, "Order expired.") }, "order expired").
		is(http.StatusOK).lacks("data-countdown", "Pay $1.00").contains("Expired")
	p := buyer.get("/orders")
	p.contains("Expired")
}

// TestHomePagination pages the home page.
func TestHomePagination(t *testing.T) {
	t.Parallel()
	s := clienttest.Start(t, clienttest.Options{NoCache: true})
	seller := newBrowser(t, s)
	seller.signUp(email(t, "seller"))
	for i := range 22 {
		seller.sell("Item "+strconv.Itoa(i), "", "1", "")
	}
	anon := newBrowser(t, s)
	first := anon.get("/").is(http.StatusOK).contains("Item 21", "Page 1 of 2", `href="/?page=2" rel="next"`).lacks("Item 1<", `rel="prev"`)
	if n := strings.Count(first.body, `class="card"`); n != 20 {
		t.Errorf("%d cards on page 1, want 20", n)
	}
	anon.get("/?page=2").is(http.StatusOK).
		contains("Item 1<", "Item 0<", "Page 2 of 2", `href="/" rel="prev"`, `<link rel="canonical" href="`+s.URL+`/?page=2">`,
			"<title>Available stuff, page 2 of 2 · Stuffmart</title>").
		lacks(`rel="next"`)
	anon.get("/?page=3").is(http.StatusNotFound)
}

// TestAnonymousCache serves anonymous pages from the short cache and never
// a signed-in page to someone else.
func TestAnonymousCache(t *testing.T) {
	t.Parallel()
	s := clienttest.Start(t, clienttest.Options{CacheTTL: time.Second})
	seller := newBrowser(t, s)
	addr := email(t, "seller")
	seller.signUp(addr)
	anon := newBrowser(t, s)
	first := anon.get("/").is(http.StatusOK)
	etag := first.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the anonymous home page")
	}
	anon.get("/", "If-None-Match", etag).is(http.StatusNotModified)
	seller.get("/").contains(addr)
	anon.get("/").lacks(addr, "Sign out")

	// A visitor whose refresh is refused is anonymous, and gets the cached
	// page with a Set-Cookie that signs the browser out: that answer is
	// theirs alone, never for a shared cache.
	gone := newBrowser(t, s)
	gone.signUp(email(t, "gone"))
	cookie := gone.cookie("session")
	gone.submit(gone.get("/"), "/signout", nil).redirects("/")
	stale := newBrowser(t, s)
	stale.jar.SetCookies(stale.base, []*http.Cookie{{Name: "session", Value: expiredCookie(t, s, cookie)}})
	out := stale.get("/").is(http.StatusOK).lacks("Sign out")
	if len(out.header.Values("Set-Cookie")) == 0 {
		t.Fatal("refused refresh: no Set-Cookie clearing the session")
	}
	if cc := out.header.Get("Cache-Control"); !strings.Contains(cc, "private") {
		t.Errorf("anonymous page with Set-Cookie has Cache-Control %q, want private", cc)
	}
	stale.jar.SetCookies(stale.base, []*http.Cookie{{Name: "session", Value: expiredCookie(t, s, cookie)}})
	if cc := stale.get("/", "If-None-Match", etag).header.Get("Cache-Control"); !strings.Contains(cc, "private") {
		t.Errorf("304 with Set-Cookie has Cache-Control %q, want private", cc)
	}

	// Timed from the listing's creation (the sell form's answer), not from
	// before the form: on a busy machine the form alone may take seconds.
	id := seller.sell("Fresh stuff", "", "1", "")
	start := time.Now()
	anon.eventually("/", func(p page) bool { return strings.Contains(p.body, "/stuff/"+id) }, "new stuff within the cache TTL")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("new stuff showed after %s; the cache keeps pages at most 1s", d)
	}
}

func checkSecurityHeaders(t *testing.T, p page) {
	t.Helper()
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'self'",
		"form-action 'self' https://checkout.stripe.com;"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "strict-origin-when-cross-origin",
		"X-Frame-Options":        "DENY",
	} {
		if got := p.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

var ldRE = regexp.MustCompile(`(?s)<script type="application/ld\+json">(.*?)</script>`)

func jsonLD(t *testing.T, p page) map[string]any {
	t.Helper()
	m := ldRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no JSON-LD in %s", p.body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(m[1]), &v); err != nil {
		t.Fatalf("JSON-LD %s: %v", m[1], err)
	}
	return v
}

func requestWithCookie(v string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: v})
	return r
}

// expiredCookie is cookie with its access token replaced by one that
// expired an hour ago (same user, same refresh token).
func expiredCookie(t *testing.T, s *clienttest.Stack, cookie string) string {
	t.Helper()
	sess := s.Sessions.Load(requestWithCookie(cookie))
	u, err := s.Sessions.Tokens().Verify(sess.Access)
	if err != nil {
		t.Fatalf("cookie's access token: %v", err)
	}
	old := *s.Sessions.Tokens()
	old.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	tok, err := old.Issue(u)
	if err != nil {
		t.Fatal(err)
	}
	sess.Access = tok
	rec := newRecorder()
	if err := s.Sessions.Save(rec, requestWithCookie(cookie), sess); err != nil {
		t.Fatal(err)
	}
	for _, c := range (&http.Response{Header: rec.Header()}).Cookies() {
		if c.Name == "session" {
			return c.Value
		}
	}
	t.Fatal("no cookie saved")
	return ""
}

// userID is the user of a session cookie.
func userID(t *testing.T, s *clienttest.Stack, cookie string) string {
	t.Helper()
	sess := s.Sessions.Load(requestWithCookie(cookie))
	u, err := s.Sessions.Tokens().Verify(sess.Access)
	if err != nil {
		t.Fatalf("cookie's access token: %v", err)
	}
	return u.ID
}
