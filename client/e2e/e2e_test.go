// Package e2e_test drives the storefront in a real headless Chromium
// (Debian's chromium, through chromedp) against the real services: a
// purchase (docs/flows.md) with and without JavaScript, screenshots of the
// main pages, and an axe-core accessibility check of each of them.
//
// Chromium is required: a missing browser fails the test, it never skips.
// CI installs it (apt-get install -y chromium) and axe-core (npm ci here).
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	password     = "correct horse battery"
	heldSentence = "The stuff is being checking out by someone else, please come back later"
	orderHold    = 15 * time.Minute
)

// chromePath is $CHROME_PATH or Debian's chromium.
func chromePath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROME_PATH")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Chromium is required for the end-to-end tests and was not found at %s (%v). "+
			"Install it with `apt-get update && apt-get install -y chromium` (CI's .ci/run does), "+
			"or point CHROME_PATH at a Chrome or Chromium binary.", p, err)
	}
	return p
}

// axeSource is axe-core's browser bundle, installed by `npm ci` here.
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is required for the accessibility checks and was not found (%v). Run `npm ci` in client/e2e (CI's .ci/run does).", err)
	}
	return string(b)
}

// shotsDir is where screenshots go: $E2E_SCREENSHOTS, or the test's temp
// dir.
func shotsDir(t *testing.T) string {
	if d := os.Getenv("E2E_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// startBrowser starts one headless Chromium for the test.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromePath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return bctx
}

// offsetClock is the storefront's clock: the real time moved by an offset
// the test sets. Not a testkit.Clock, which stands still: the pages must
// see time pass (the countdown, the deadline reached on screen).
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
}

// user is one student in a browser context of their own (own cookies).
type user struct {
	t    *testing.T
	ctx  context.Context
	base string
	js   bool
	axe  string
}

func newUser(t *testing.T, browser context.Context, base, axe string, js bool) *user {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	if !js {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("disable JavaScript: %v", err)
		}
	}
	return &user{t: t, ctx: ctx, base: base, js: js, axe: axe}
}

// step runs a browser action with a deadline.
func step[T any](u *user, what string, a chromedp.Action[T]) T {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		u.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open loads a page and returns its HTTP response.
func (u *user) open(path string) *network.Response {
	u.t.Helper()
	return step(u, "open "+path, chromedp.NavigateResponse(u.base+path))
}

// click clicks the element and waits for the page it loads.
func (u *user) click(sel string) *network.Response {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 20*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		u.t.Fatalf("click %s: %v", sel, err)
	}
	return resp
}

// fill types value into the input with that id, as a person would.
func (u *user) fill(id, value string) {
	u.t.Helper()
	step(u, "fill #"+id, chromedp.SendKeys(chromedp.ID(id), value))
}

// clear empties the input with that id (of up to 100 characters) with
// the keyboard, as a person would, which needs no script in the page.
func (u *user) clear(id string) {
	u.t.Helper()
	step(u, "clear #"+id, chromedp.SendKeys(chromedp.ID(id), kb.End+strings.Repeat(kb.Backspace, 100)))
}

// html is the page's markup (read through the DOM, so it works without
// JavaScript too). Right after a navigation the page's script started,
// the DOM may be replaced under the query: it is read again then, for up
// to 30 s.
func (u *user) html() string {
	u.t.Helper()
	last := &read{}
	testkit.Eventually(u.t, 30*time.Second, func() bool {
		last.html, last.err = u.read(10 * time.Second)
		return last.err == nil
	}, "read the page: %v", last)
	return last.html
}

// read reads the page's markup once, within timeout.
func (u *user) read(timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(u.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
}

// read is the last reading of a page, shown when a wait for it fails.
type read struct {
	html string
	err  error
}

func (r *read) String() string { return fmt.Sprintf("last page (%v):\n%s", r.err, r.html) }

// path is the current page's path and query.
func (u *user) path() string {
	u.t.Helper()
	loc := step(u, "location", chromedp.Location())
	return strings.TrimPrefix(loc, u.base)
}

// see fails unless the page shows every s.
func (u *user) see(ss ...string) {
	u.t.Helper()
	h := u.html()
	for _, s := range ss {
		if !strings.Contains(h, s) {
			u.t.Fatalf("%s: want %q on the page:\n%s", u.path(), s, h)
		}
	}
}

// waitFor reads the page until it shows s (the page may reload itself
// meanwhile).
func (u *user) waitFor(s string, timeout time.Duration) {
	u.t.Helper()
	last := &read{}
	testkit.Eventually(u.t, timeout, func() bool {
		last.html, last.err = u.read(5 * time.Second)
		return last.err == nil && strings.Contains(last.html, s)
	}, "%q did not show; %v", s, last)
}

// screenshot saves a full-page PNG.
func (u *user) screenshot(dir, name string) {
	u.t.Helper()
	png := step(u, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		u.t.Fatal(err)
	}
	u.t.Logf("screenshot: %s", p)
}

type violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkA11y runs axe-core on the page and fails on serious or critical
// violations. DevTools evaluation is not subject to the page's CSP.
func (u *user) checkA11y(name string) {
	u.t.Helper()
	step(u, "inject axe-core", chromedp.Evaluate[chromedp.Void](u.axe))
	raw := step(u, "run axe-core on "+name, chromedp.Evaluate[[]byte](`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
		id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))})))`, chromedp.EvalAwaitPromise))
	var vs []violation
	if err := json.Unmarshal(raw, &vs); err != nil {
		u.t.Fatalf("axe-core result %s: %v", raw, err)
	}
	for _, v := range vs {
		msg := fmt.Sprintf("%s: axe %s (%s): %s at %v", name, v.ID, v.Impact, v.Help, v.Nodes)
		if v.Impact == "serious" || v.Impact == "critical" {
			u.t.Error(msg)
		} else {
			u.t.Log(msg)
		}
	}
}

// signUp signs up with a display name made of the email's local part.
func (u *user) signUp(email string) {
	u.t.Helper()
	u.open("/signup")
	name, _, _ := strings.Cut(email, "@")
	u.fill("name", name)
	u.fill("email", email)
	u.fill("password", password)
	if r := u.click("main form button[type=submit]"); r.Status != http.StatusOK {
		u.t.Fatalf("sign up %s: %d", email, r.Status)
	}
	u.see("Signed in as <strong>" + email + "</strong>")
}

// rename goes to the account page from the header, is refused a
// one-letter display name (the error next to the field, the input kept),
// then saves "Ada Lovelace"; with JavaScript, axe-core checks the page
// with and without the error.
func (u *user) rename() {
	u.t.Helper()
	if r := u.click(`header a[href="/account"]`); r.Status != http.StatusOK {
		u.t.Fatalf("account page: %d", r.Status)
	}
	u.see("Your account", `<label for="name">Display name</label>`)
	if u.js {
		u.checkA11y("account page")
	}
	u.clear("name")
	u.fill("name", "A")
	if r := u.click("main form button[type=submit]"); r.Status != http.StatusBadRequest {
		u.t.Fatalf("a one-letter name: %d, want 400", r.Status)
	}
	u.see(`id="name-error"`, "Name must be between 2 and 40 characters", `value="A"`)
	if u.js {
		u.checkA11y("account page with an error")
	}
	u.clear("name")
	u.fill("name", "Ada Lovelace")
	if r := u.click("main form button[type=submit]"); r.Status != http.StatusOK {
		u.t.Fatalf("save the name: %d", r.Status)
	}
	u.see("Your display name is saved.", `value="Ada Lovelace"`)
}

// sell lists stuff through the form and returns its page's path.
func (u *user) sell(title, description, price, delivery string) string {
	u.t.Helper()
	u.open("/sell")
	u.fill("title", title)
	u.fill("description", description)
	u.fill("price", price)
	u.fill("delivery", delivery)
	if r := u.click("main form button[type=submit]"); r.Status != http.StatusOK {
		u.t.Fatalf("sell %s: %d", title, r.Status)
	}
	p, _, _ := strings.Cut(u.path(), "?")
	if !strings.HasPrefix(p, "/stuff/") {
		u.t.Fatalf("after selling: at %s", p)
	}
	u.see("Your stuff is listed.")
	return p
}

func email(t *testing.T, who string) string {
	return who + "-" + testkit.RandomID(t)[:6] + "@uni.edu"
}

// TestStory is a purchase (docs/flows.md) in a browser: sign up, sell, a
// second student buys, a third gets the 409 page, the buyer sees the
// countdown, pays with the test card and gets the delivery; then an order
// left unpaid runs out on screen (an expiry); then the same story with
// JavaScript off.
func TestStory(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	browser := startBrowser(t)
	clock := &offsetClock{}
	s := clienttest.Start(t, clienttest.Options{OrderHold: orderHold, Now: clock.Now})
	shots := shotsDir(t)

	t.Run("with JavaScript", func(t *testing.T) {
		seller := newUser(t, browser, s.URL, axe, true)
		buyer := newUser(t, browser, s.URL, axe, true)
		late := newUser(t, browser, s.URL, axe, true)
		anon := newUser(t, browser, s.URL, axe, true)

		anon.open("/signup")
		anon.checkA11y("sign-up page")
		anon.open("/signin")
		anon.checkA11y("sign-in page")

		seller.signUp(email(t, "seller"))
		seller.rename()
		seller.open("/sell")
		seller.checkA11y("sell page")
		seller.sell("Statistics cheat sheet", "Two pages with every formula of STAT 110.", "3.50", "https://files.example/stat110.pdf")
		seller.sell("Thesis LaTeX template", "The university's thesis layout, ready to fill in: title page, abstract, chapters, bibliography.", "9", "https://files.example/thesis.zip")
		stuff := seller.sell("Organic chemistry notes", "All 24 lectures of CHEM 230, typed and illustrated.\nIncludes the mechanisms summary and past exam answers.", "12.50", "Download: https://files.example/chem230-notes.pdf")
		seller.see("Edit listing", "chem230-notes.pdf")

		late.signUp(email(t, "late"))
		late.open(stuff)
		late.see(">BUY</button>")

		buyer.signUp(email(t, "buyer"))
		buyer.open(stuff)
		buyer.see("Organic chemistry notes", "$12.50", ">BUY</button>")
		buyer.screenshot(shots, "stuff.png")
		buyer.checkA11y("stuff page")

		if r := buyer.click("form[action$='/buy'] button"); r.Status != http.StatusOK {
			t.Fatalf("BUY: %d", r.Status)
		}
		order := buyer.path()
		if !strings.HasPrefix(order, "/orders/") {
			t.Fatalf("after BUY: at %s", order)
		}
		buyer.see("left to pay", "data-countdown", "pm_card_visa", `id="coupon"`)
		first := step(buyer, "countdown", chromedp.Text(chromedp.CSS("[data-remaining]"), chromedp.NodeVisible))
		if !strings.HasPrefix(first, "15:") && !strings.HasPrefix(first, "14:") {
			t.Errorf("countdown shows %q, want about 15 minutes", first)
		}
		// It ticks.
		step(buyer, "countdown ticks", chromedp.Poll[bool](
			fmt.Sprintf(`document.querySelector("[data-remaining]").textContent !== %q`, first),
			chromedp.WithPollingTimeout(5*time.Second)))
		buyer.screenshot(shots, "order.png")
		buyer.checkA11y("order page")

		// The third student clicks BUY on the page they had open.
		r := late.click("form[action$='/buy'] button")
		if r.Status != http.StatusConflict {
			t.Errorf("third student's BUY: status %d, want 409", r.Status)
		}
		late.see(heldSentence)
		late.screenshot(shots, "conflict.png")
		late.checkA11y("409 page")
		late.open(stuff)
		late.waitFor("Being checked out.", 5*time.Second)

		// Pay with the test card (the default choice).
		step(buyer, "choose Visa", chromedp.Click(chromedp.CSS(`input[value="pm_card_visa"]`), chromedp.NodeVisible))
		buyer.click("form[action$='/pay'] button[type=submit]")
		if p := buyer.path(); p != order+"/content" {
			t.Fatalf("after paying: at %s", p)
		}
		buyer.waitFor("Download: https://files.example/chem230-notes.pdf", 15*time.Second)
		buyer.screenshot(shots, "content.png")
		buyer.checkA11y("purchased content page")
		buyer.open("/orders")
		buyer.see("Organic chemistry notes", "Paid")
		buyer.checkA11y("orders page")

		anon.open("/")
		anon.see("Statistics cheat sheet", "Thesis LaTeX template")
		anon.screenshot(shots, "home.png")
		anon.checkA11y("home page")
		anon.open("/no-such-page")
		anon.checkA11y("404 page")

		// An order left unpaid runs out on screen: the script reloads the
		// page at zero and the server says it expired.
		cheat := seller.sell("Calculus flashcards", "", "1", "cards")
		late.open(cheat)
		late.click("form[action$='/buy'] button")
		unpaid := late.path()
		clock.Set(orderHold - 3*time.Second)
		defer clock.Set(0)
		late.open(unpaid)
		late.see("data-countdown")
		late.waitFor("Order expired.", 10*time.Second)
		if h := late.html(); strings.Contains(h, "data-countdown") {
			t.Error("the countdown is still there after the order expired")
		}
		clock.Set(0)
	})

	t.Run("without JavaScript", func(t *testing.T) {
		seller := newUser(t, browser, s.URL, axe, false)
		buyer := newUser(t, browser, s.URL, axe, false)
		late := newUser(t, browser, s.URL, axe, false)

		seller.signUp(email(t, "seller"))
		seller.rename()
		stuff := seller.sell("History essay outline", "An outline that scored a first.", "2.25", "The outline: https://files.example/essay.docx")
		late.signUp(email(t, "late"))
		late.open(stuff)
		buyer.signUp(email(t, "buyer"))
		buyer.open(stuff)
		buyer.click("form[action$='/buy'] button")
		order := buyer.path()
		buyer.see("left to pay", "It is held for you until <time datetime=")
		before := buyer.html()
		// Not a wait: a window longer than a tick, in which nothing must
		// happen (the countdown must not tick without JavaScript).
		time.Sleep(1200 * time.Millisecond)
		if after := buyer.html(); remaining(after) != remaining(before) {
			t.Errorf("countdown ticked without JavaScript: %q then %q", remaining(before), remaining(after))
		}

		if r := late.click("form[action$='/buy'] button"); r.Status != http.StatusConflict {
			t.Errorf("third student's BUY: status %d, want 409", r.Status)
		}
		late.see(heldSentence)

		// A declined card first: the form comes back with the error.
		step(buyer, "choose the declined card", chromedp.Click(chromedp.CSS(`input[value="pm_card_chargeDeclined"]`), chromedp.NodeVisible))
		if r := buyer.click("form[action$='/pay'] button[type=submit]"); r.Status != http.StatusBadRequest {
			t.Errorf("declined payment: status %d, want 400", r.Status)
		}
		buyer.see("declined", `id="paymentMethod-error"`)
		step(buyer, "choose Visa", chromedp.Click(chromedp.CSS(`input[value="pm_card_visa"]`), chromedp.NodeVisible))
		buyer.click("form[action$='/pay'] button[type=submit]")
		if p := buyer.path(); p != order+"/content" {
			t.Fatalf("after paying: at %s", p)
		}
		// The content page reloads itself (a meta refresh) until the sale
		// is recorded.
		buyer.waitFor("The outline: https://files.example/essay.docx", 15*time.Second)

		buyer.click("form[action='/signout'] button")
		buyer.see(`href="/signin"`)
	})
}

// remaining is the countdown's text in a page.
func remaining(html string) string {
	_, after, ok := strings.Cut(html, "data-remaining")
	if !ok {
		return ""
	}
	_, after, _ = strings.Cut(after, ">")
	text, _, _ := strings.Cut(after, "<")
	return text
}
