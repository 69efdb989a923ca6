package app_test

import (
	"compress/gzip"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const password = "correct horse battery"

// page is an answer of the storefront.
type page struct {
	t      testing.TB
	status int
	header http.Header
	body   string
	url    string
}

// contains fails the test unless the page contains every s.
func (p page) contains(ss ...string) page {
	p.t.Helper()
	for _, s := range ss {
		if !strings.Contains(p.body, s) {
			p.t.Fatalf("%s: want %q in the page (status %d):\n%s", p.url, s, p.status, p.body)
		}
	}
	return p
}

// lacks fails the test if the page contains any s.
func (p page) lacks(ss ...string) page {
	p.t.Helper()
	for _, s := range ss {
		if strings.Contains(p.body, s) {
			p.t.Fatalf("%s: want no %q in the page:\n%s", p.url, s, p.body)
		}
	}
	return p
}

// is fails the test unless the status is want.
func (p page) is(want int) page {
	p.t.Helper()
	if p.status != want {
		p.t.Fatalf("%s: status %d, want %d; location %q\n%s", p.url, p.status, want, p.header.Get("Location"), p.body)
	}
	return p
}

// redirects fails unless the page is a 303 to a location with prefix.
func (p page) redirects(prefix string) string {
	p.t.Helper()
	p.is(http.StatusSeeOther)
	loc := p.header.Get("Location")
	if !strings.HasPrefix(loc, prefix) {
		p.t.Fatalf("%s: redirect to %q, want %q...", p.url, loc, prefix)
	}
	return loc
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// token is the page's CSRF token.
func (p page) token() string {
	p.t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		p.t.Fatalf("%s: no CSRF token in the page:\n%s", p.url, p.body)
	}
	return html.UnescapeString(m[1])
}

// browser is a visitor with a cookie jar that does not follow redirects.
type browser struct {
	t    testing.TB
	url  string
	hc   *http.Client
	jar  *cookiejar.Jar
	base *url.URL
}

// newBrowser is a visitor of the stack's storefront, or of the storefront
// at base when given.
func newBrowser(t testing.TB, s *clienttest.Stack, base ...string) *browser {
	target := ""
	if s != nil {
		target = s.URL
	}
	if len(base) > 0 {
		target = base[0]
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, url: target, jar: jar, base: u, hc: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// in is the same browser (its cookies) reporting to t: a subtest's view
// of a browser of its parent.
func (b *browser) in(t testing.TB) *browser {
	c := *b
	c.t = t
	return &c
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" && !resp.Uncompressed {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			b.t.Fatalf("%s: gzip: %v", req.URL, err)
		}
		r = zr
	}
	body, err := io.ReadAll(r)
	if err != nil {
		b.t.Fatalf("%s: read: %v", req.URL, err)
	}
	return page{t: b.t, status: resp.StatusCode, header: resp.Header, body: string(body), url: req.Method + " " + req.URL.Path}
}

func (b *browser) get(path string, headers ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

// post sends a form as is (no CSRF token added).
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// submit posts a form as a browser would from the page from: with the
// page's hidden fields (its CSRF token, a creating form's idempotency key),
// then the fields of form.
func (b *browser) submit(from page, path string, form url.Values) page {
	b.t.Helper()
	out := from.hidden()
	for k, v := range form {
		out[k] = v
	}
	out.Set("_csrf", from.token())
	return b.post(path, out)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)

// hidden are the hidden fields of the page's forms.
func (p page) hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// cookie is the browser's cookie of that name ("" when none).
func (b *browser) cookie(name string) string {
	for _, c := range b.jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// signUp creates an account, with a display name made of the email's local
// part, and signs the browser in.
func (b *browser) signUp(email string) {
	b.t.Helper()
	form := b.get("/signup").is(http.StatusOK)
	name, _, _ := strings.Cut(email, "@")
	b.submit(form, "/signup", url.Values{"email": {email}, "password": {password}, "name": {name}}).redirects("/")
	if b.cookie("session") == "" {
		b.t.Fatalf("sign up %s: no session cookie", email)
	}
}

// signIn signs in an existing account.
func (b *browser) signIn(email string) {
	b.t.Helper()
	form := b.get("/signin").is(http.StatusOK)
	b.submit(form, "/signin", url.Values{"email": {email}, "password": {password}}).redirects("/")
	if b.cookie("session") == "" {
		b.t.Fatalf("sign in %s: no session cookie", email)
	}
}

// sell lists stuff and returns its id.
func (b *browser) sell(title, description, price, delivery string) string {
	b.t.Helper()
	form := b.get("/sell").is(http.StatusOK)
	loc := b.submit(form, "/sell", url.Values{"title": {title}, "description": {description}, "price": {price}, "delivery": {delivery}}).
		redirects("/stuff/")
	id, _, _ := strings.Cut(strings.TrimPrefix(loc, "/stuff/"), "?")
	return id
}

// buy orders stuff id from its page and returns the order page's path.
func (b *browser) buy(id string) string {
	b.t.Helper()
	p := b.get("/stuff/" + id).is(http.StatusOK).contains(">BUY</button>")
	return b.submit(p, "/stuff/"+id+"/buy", nil).redirects("/orders/")
}

// eventually retries get(path) until cond holds of the page (10 s at most)
// and returns that page.
func (b *browser) eventually(path string, cond func(page) bool, msg string) page {
	b.t.Helper()
	last := &lastPage{}
	testkit.Eventually(b.t, 10*time.Second, func() bool {
		last.p = b.get(path)
		return cond(last.p)
	}, "%s: %s; %v", path, msg, last)
	return last.p
}

// lastPage is the page a wait saw last, shown when the wait fails.
type lastPage struct{ p page }

func (l *lastPage) String() string {
	return fmt.Sprintf("last page %d:\n%s", l.p.status, l.p.body)
}

// email is a fresh address for a test.
func email(t testing.TB, who string) string {
	return who + "-" + testkit.RandomID(t)[:8] + "@uni.edu"
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
