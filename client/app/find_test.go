package app_test

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
)

// TestFind runs search, sort and filter, the seller pages, their
// structured data and canonical rules, and the sitemap against the real
// services. The subtests run in turn on one stack holding only their
// listings, so that orders and counts are exact.
func TestFind(t *testing.T) {
	t.Parallel()
	s := clienttest.Start(t, clienttest.Options{NoCache: true})
	seller := newBrowser(t, s)
	sellerEmail := email(t, "ada")
	seller.signUp(sellerEmail)
	sellerID := userID(t, s, seller.cookie("session"))
	setName(t, s, seller, `Ada <Lovelace> & "co"`)
	const shownName = `Ada &lt;Lovelace&gt; &amp; &#34;co&#34;`

	// Listed in this order: newest last.
	algebra := seller.sell("Linear algebra notes", "Vectors & matrices, with worked examples of linear maps.", "5", "x")
	evil := seller.sell(`<script>alert(1)</script> linear`, `A hostile <b>linear</b> description.`, "7", "x")
	chem := seller.sell("Organic chemistry notes", "All of CHEM 230: mechanisms and past exams.", "12.50", "x")
	calc := seller.sell("Calculus summary", "Limits, derivatives, integrals, and a page on algebra.", "3", "x")
	other := newBrowser(t, s)
	other.signUp(email(t, "bob"))
	otherID := userID(t, s, other.cookie("session"))
	thesis := other.sell("Thesis template", "LaTeX thesis layout.", "9.99", "x")

	anon := newBrowser(t, s)
	anon.eventually("/search?q=template", func(p page) bool { return strings.Contains(p.body, "/stuff/"+thesis) }, "the newest listing found")

	t.Run("search: ranking, highlights, escaping, box keeps the words", func(t *testing.T) {
		anon := anon.in(t)
		p := anon.get("/search?q=linear").is(http.StatusOK).
			contains(`<mark>Linear</mark> algebra notes`, `examples of <mark>linear</mark> maps`,
				`&lt;script&gt;alert(1)&lt;/script&gt; <mark>linear</mark>`, `A hostile &lt;b&gt;<mark>linear</mark>&lt;/b&gt; description.`,
				`<input id="site-search" name="q" type="search" value="linear"`, `<label for="site-search" class="visually-hidden">Search stuff</label>`,
				`<form class="site-search" role="search" method="get" action="/search">`,
				"2 results", `<title>Results for “linear” · Stuffmart</title>`).
			lacks("<script>alert(1)", "<b>", "/stuff/"+chem, "/stuff/"+calc)
		list := ldOf(t, p, "ItemList")
		items, _ := list["itemListElement"].([]any)
		if len(items) != 2 || list["numberOfItems"] != 2.0 {
			t.Fatalf("ItemList %v", list)
		}
		first, _ := items[0].(map[string]any)
		if first["position"] != 1.0 || first["url"] != s.URL+"/stuff/"+algebra && first["url"] != s.URL+"/stuff/"+evil {
			t.Errorf("first item %v", first)
		}

		// A title match ranks above a newer description match; newest
		// first puts the newer one first.
		inOrder(t, anon.get("/search?q=algebra").is(http.StatusOK), "/stuff/"+algebra, "/stuff/"+calc)
		inOrder(t, anon.get("/search?q=algebra&sort=newest").is(http.StatusOK), "/stuff/"+calc, "/stuff/"+algebra)
		// Prefixes, case and a typo.
		anon.get("/search?q=ALGEB").contains("/stuff/"+algebra, "<mark>algebra</mark>")
		anon.get("/search?q=chemistyr").contains("/stuff/" + chem)
		// A search in the sort and filter form keeps its words.
		anon.get("/search?q=notes&sort=price_desc").contains(`<input type="hidden" name="q" value="notes">`,
			`<option value="price_desc" selected>`)
		inOrder(t, anon.get("/search?q=notes&sort=price_desc"), "/stuff/"+chem, "/stuff/"+algebra)
		inOrder(t, anon.get("/search?q=notes&sort=price_asc"), "/stuff/"+algebra, "/stuff/"+chem)
		anon.get("/search?q=notes&min=10").contains("/stuff/"+chem, "1 result").lacks("/stuff/" + algebra)
	})

	t.Run("search: empty state, prompt and refusals", func(t *testing.T) {
		anon := anon.in(t)
		anon.get("/search?q=zebraquux").is(http.StatusOK).
			contains("No stuff matches “zebraquux”", "Check the spelling", `<a href="/">Browse the newest stuff</a>`, `value="zebraquux"`).
			lacks(`class="card"`, "without the price range")
		anon.get("/search?q=zebraquux&max=2").is(http.StatusOK).
			contains(`<a href="/search?q=zebraquux">Search again without the price range</a>`)
		anon.get("/search").is(http.StatusOK).contains("<h1>Search</h1>", "Type what you are looking for", `<meta name="robots" content="noindex, follow">`)
		anon.get("/search?q=+++").is(http.StatusOK).contains("<h1>Search</h1>")

		long := strings.Repeat("a", 201)
		anon.get("/search?q="+long).is(http.StatusBadRequest).
			contains("Search with at most 200 characters", `value="`+long+`"`, `role="alert"`, `<meta name="robots" content="noindex, nofollow">`)
		words := "one two three four five six seven eight nine ten eleven twelve thirteen"
		anon.get("/search?q="+url.QueryEscape(words)).is(http.StatusBadRequest).
			contains("Search must have at most 12 words", `value="`+words+`"`).lacks(`class="card"`)
		anon.get("/search?q=" + url.QueryEscape("linear\x01")).is(http.StatusBadRequest).contains("control or text-direction")
		anon.get("/search?q=linear&min=abc").is(http.StatusBadRequest).
			contains("Enter the lowest price in dollars, such as 5 or 5.50.", `id="min-error"`, `value="abc"`, `aria-invalid="true"`, `value="linear"`).
			lacks(`class="card"`)
		anon.get("/search?q=linear&min=10&max=5").is(http.StatusBadRequest).contains("The lowest price must not be above the highest.")
		anon.get("/search?q=linear&max=10001").is(http.StatusBadRequest).contains("Enter the highest price from $0 to $10,000.")
		anon.get("/search?q=linear&sort=cheap").is(http.StatusBadRequest).contains("Choose an order from the list.", `id="sort-error"`)
		anon.get("/search?q=linear&page=9").is(http.StatusNotFound)
		anon.get("/search?q=linear&page=x").is(http.StatusNotFound)
	})

	t.Run("home: sort and price range", func(t *testing.T) {
		anon, other := anon.in(t), other.in(t)
		home := anon.get("/").is(http.StatusOK).contains(`<form class="controls" method="get" action="/" aria-label="Sort and filter">`,
			`<label for="sort">Sort by</label>`, `<option value="newest" selected>`, `<label for="min">From</label>`).
			lacks(`value="relevance"`, `name="q" value=`)
		inOrder(t, home, "/stuff/"+thesis, "/stuff/"+calc, "/stuff/"+chem, "/stuff/"+evil, "/stuff/"+algebra)
		inOrder(t, anon.get("/?sort=price_asc").is(http.StatusOK).contains(`<option value="price_asc" selected>`),
			"/stuff/"+calc, "/stuff/"+algebra, "/stuff/"+evil, "/stuff/"+thesis, "/stuff/"+chem)
		inOrder(t, anon.get("/?sort=price_desc"), "/stuff/"+chem, "/stuff/"+thesis, "/stuff/"+evil, "/stuff/"+algebra, "/stuff/"+calc)
		// Dollars to cents: $5.00 is in from 5, $12.50 out up to 12.49
		// and in up to 12.5.
		anon.get("/?min=5&max=12.49").is(http.StatusOK).contains("/stuff/"+algebra, "/stuff/"+evil, "/stuff/"+thesis,
			`value="5"`, `value="12.49"`, `<a href="/">Clear sort and price</a>`).lacks("/stuff/"+chem, "/stuff/"+calc)
		anon.get("/?max=12.5").contains("/stuff/" + chem)
		anon.get("/?min=%244.99&max=5").contains("/stuff/" + algebra).lacks("/stuff/" + evil)
		anon.get("/?min=20").is(http.StatusOK).contains("Nothing for sale matches this price range.", `<a class="button" href="/">Show all stuff</a>`)

		anon.get("/?min=abc").is(http.StatusBadRequest).contains("Enter the lowest price in dollars", `aria-invalid="true"`, `value="abc"`).lacks(`class="card"`)
		anon.get("/?min=-1").is(http.StatusBadRequest).contains("Enter the lowest price in dollars")
		anon.get("/?min=9&max=3").is(http.StatusBadRequest).contains("The lowest price must not be above the highest.")
		anon.get("/?sort=relevance").is(http.StatusBadRequest).contains("Choose an order from the list.")
		anon.get("/?page=2").is(http.StatusNotFound)

		// Signed in, the same pages.
		inOrder(t, other.get("/?sort=price_asc").is(http.StatusOK), "/stuff/"+calc, "/stuff/"+chem)
		other.get("/search?q=linear").is(http.StatusOK).contains("<mark>Linear</mark>", `value="linear"`)
	})

	t.Run("canonical and robots of each combination", func(t *testing.T) {
		anon := anon.in(t)
		for _, tc := range []struct {
			path, canonical, robots string
		}{
			{"/", "/", ""},
			{"/?page=1", "/", ""},
			{"/?sort=newest&min=&max=&utm_source=mail", "/", ""},
			{"/?sort=price_asc", "/?sort=price_asc", "noindex, follow"},
			{"/?max=10.00&min=2&sort=price_desc", "/?sort=price_desc&min=2&max=10", "noindex, follow"},
			{"/?min=4.5", "/?min=4.50", "noindex, follow"},
			{"/search?q=linear", "/search?q=linear", "noindex, follow"},
			{"/search?q=++Linear+++algebra+&sort=relevance&min=&max=", "/search?q=Linear+algebra", "noindex, follow"},
			{"/search?q=linear&sort=newest&min=1", "/search?q=linear&sort=newest&min=1", "noindex, follow"},
			{"/search?q=zebraquux", "/search?q=zebraquux", "noindex, follow"},
			{"/search", "/search", "noindex, follow"},
			{"/sellers/" + sellerID, "/sellers/" + sellerID, ""},
			{"/stuff/" + algebra, "/stuff/" + algebra, ""},
			{"/?min=abc", "", "noindex, nofollow"},
			{"/search?q=linear&sort=x", "", "noindex, nofollow"},
		} {
			p := anon.get(tc.path)
			if strings.HasPrefix(tc.path, "/sellers/") && robotsOf(p) != tc.robots {
				// A first visit waits at most 0.5 s for the seller's name
				// from auth; on a loaded machine the name comes for a later
				// one (the page is noindex without it).
				p = anon.eventually(tc.path, func(p page) bool { return robotsOf(p) == tc.robots }, "the seller's name learnt")
			}
			want := ""
			if tc.canonical != "" {
				want = s.URL + tc.canonical
			}
			if got := canonicalOf(p); got != want {
				t.Errorf("%s: canonical %q, want %q", tc.path, got, want)
			}
			if got := robotsOf(p); got != tc.robots {
				t.Errorf("%s: robots %q, want %q", tc.path, got, tc.robots)
			}
		}
	})

	t.Run("seller page and the stuff page's link to it", func(t *testing.T) {
		anon, other := anon.in(t), other.in(t)
		sp := anon.get("/sellers/"+sellerID).is(http.StatusOK).
			contains("<h1>Stuff from "+shownName+"</h1>", "4 listings for sale.", "/stuff/"+algebra, "/stuff/"+evil, "/stuff/"+chem, "/stuff/"+calc,
				"<title>Stuff from "+shownName+" · Stuffmart</title>").
			lacks(sellerEmail, "/stuff/"+thesis, `rel="next"`)
		crumbs := ldOf(t, sp, "BreadcrumbList")["itemListElement"].([]any)
		if last := crumbs[len(crumbs)-1].(map[string]any); len(crumbs) != 2 || last["name"] != `Ada <Lovelace> & "co"` || last["item"] != s.URL+"/sellers/"+sellerID {
			t.Errorf("seller page breadcrumbs %v", crumbs)
		}
		if n := len(ldOf(t, sp, "ItemList")["itemListElement"].([]any)); n != 4 {
			t.Errorf("seller ItemList of %d items, want 4", n)
		}
		anon.get("/sellers/" + otherID).is(http.StatusOK).contains("/stuff/" + thesis).lacks("/stuff/" + algebra)

		for _, path := range []string{"/sellers/000000000000000000000000", "/sellers/" + strings.ToUpper(sellerID), "/sellers/not-an-id",
			"/sellers/" + sellerID + "?page=2", "/sellers/" + sellerID + "?page=0"} {
			anon.get(path).is(http.StatusNotFound).contains("Page not found")
		}

		stuff := anon.get("/stuff/"+algebra).is(http.StatusOK).
			contains(`Sold by <a href="/sellers/`+sellerID+`">`+shownName+`</a>`,
				`<nav class="breadcrumbs" aria-label="Breadcrumb">`, `<li aria-current="page">Linear algebra notes</li>`).
			lacks(sellerEmail)
		if ld := jsonLD(t, stuff); ld["@type"] != "Product" {
			t.Errorf("first JSON-LD of a stuff page %v, want the Product", ld)
		}
		crumbs = ldOf(t, stuff, "BreadcrumbList")["itemListElement"].([]any)
		var names, items []string
		for _, c := range crumbs {
			m := c.(map[string]any)
			names = append(names, m["name"].(string))
			items = append(items, m["item"].(string))
		}
		if strings.Join(names, "|") != `Home|Ada <Lovelace> & "co"|Linear algebra notes` ||
			strings.Join(items, "|") != s.URL+"/|"+s.URL+"/sellers/"+sellerID+"|"+s.URL+"/stuff/"+algebra {
			t.Errorf("stuff breadcrumbs %v %v", names, items)
		}
		offer := ldOf(t, stuff, "Product")["offers"].(map[string]any)
		if sold, _ := offer["seller"].(map[string]any); sold["name"] != `Ada <Lovelace> & "co"` || sold["url"] != s.URL+"/sellers/"+sellerID {
			t.Errorf("offer seller %v", offer["seller"])
		}
		// The other seller's name is the one chosen at sign-up.
		other.get("/stuff/" + thesis).contains(`Sold by <a href="/sellers/` + otherID + `">bob-`)
	})

	t.Run("home structured data: the site's search, the list", func(t *testing.T) {
		anon := anon.in(t)
		home := anon.get("/")
		site := ldOf(t, home, "WebSite")
		action, _ := site["potentialAction"].(map[string]any)
		target, _ := action["target"].(map[string]any)
		if site["url"] != s.URL+"/" || action["@type"] != "SearchAction" || target["urlTemplate"] != s.URL+"/search?q={search_term_string}" ||
			action["query-input"] != "required name=search_term_string" {
			t.Errorf("WebSite %v", site)
		}
		list := ldOf(t, home, "ItemList")
		if items := list["itemListElement"].([]any); len(items) != 5 || items[0].(map[string]any)["url"] != s.URL+"/stuff/"+thesis {
			t.Errorf("home ItemList %v", list)
		}
	})

	t.Run("sitemap: stuff, sellers, lastmod", func(t *testing.T) {
		anon := anon.in(t)
		sm := anon.get("/sitemap.xml").is(http.StatusOK)
		lastmod := `<lastmod>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</lastmod>`
		for _, path := range []string{"/", "/stuff/" + algebra, "/stuff/" + evil, "/stuff/" + thesis, "/sellers/" + sellerID, "/sellers/" + otherID} {
			if !regexp.MustCompile(`<url><loc>` + regexp.QuoteMeta(s.URL+path) + `</loc>` + lastmod).MatchString(sm.body) {
				t.Errorf("sitemap lacks %s with its lastmod:\n%s", path, sm.body)
			}
		}
		if n := strings.Count(sm.body, "<url>"); n != 1+5+2 {
			t.Errorf("sitemap of %d URLs, want 8:\n%s", n, sm.body)
		}
	})
}

// TestSellerNameUnavailable: while auth cannot tell a seller's name, the
// stuff page still links to the seller's page with a neutral label, and
// the seller page shows, not indexed; once auth answers again, the name.
func TestSellerNameUnavailable(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	s := clienttest.Start(t, clienttest.Options{NoCache: true, Auth: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() && r.Method == http.MethodGet && strings.Count(r.URL.Path, "/") == 3 && r.URL.Path != "/api/users/currentuser" {
				http.Error(w, `{"errors":[{"message":"Service Unavailable"}]}`, http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	seller := newBrowser(t, s)
	seller.signUp(email(t, "cleo"))
	sellerID := userID(t, s, seller.cookie("session"))
	down.Store(true)
	id := seller.sell("Latin grammar tables", "", "2", "x")
	anon := newBrowser(t, s)
	p := anon.get("/stuff/" + id).is(http.StatusOK).contains(`<a href="/sellers/` + sellerID + `">More from this seller</a>`).lacks("Sold by")
	crumbs := ldOf(t, p, "BreadcrumbList")["itemListElement"].([]any)
	if len(crumbs) != 2 {
		t.Errorf("breadcrumbs without the seller's name: %v, want Home → stuff", crumbs)
	}
	anon.get("/sellers/"+sellerID).is(http.StatusOK).contains("<h1>Stuff from this seller</h1>", `<meta name="robots" content="noindex, follow">`, "/stuff/"+id)

	down.Store(false)
	anon.eventually("/stuff/"+id, func(p page) bool { return strings.Contains(p.body, "Sold by") }, "the name once auth answers").
		contains(`Sold by <a href="/sellers/` + sellerID + `">cleo-`)
}

// setName sets the browser's display name through auth's API.
func setName(t *testing.T, s *clienttest.Stack, b *browser, name string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name}) // a string: cannot fail
	req, err := http.NewRequest(http.MethodPatch, s.AuthURL+"/api/users/me", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: "session", Value: b.cookie("session")})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set name %q: %d", name, resp.StatusCode)
	}
}

// inOrder fails unless every s is in the page, in that order.
func inOrder(t *testing.T, p page, ss ...string) {
	t.Helper()
	at := -1
	for _, s := range ss {
		i := strings.Index(p.body, s)
		if i < 0 {
			t.Fatalf("%s: no %q in the page:\n%s", p.url, s, p.body)
		}
		if i < at {
			t.Fatalf("%s: %q before %q, want the order %v", p.url, s, ss[0], ss)
		}
		at = i
	}
}

var (
	canonicalRE = regexp.MustCompile(`<link rel="canonical" href="([^"]*)">`)
	robotsRE    = regexp.MustCompile(`<meta name="robots" content="([^"]*)">`)
)

// canonicalOf is the page's canonical URL ("" for none).
func canonicalOf(p page) string {
	if m := canonicalRE.FindStringSubmatch(p.body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// robotsOf is the page's robots meta ("" for none).
func robotsOf(p page) string {
	if m := robotsRE.FindStringSubmatch(p.body); m != nil {
		return m[1]
	}
	return ""
}

// ldAll is every JSON-LD item of the page, each of which must be valid
// JSON of a schema.org type.
func ldAll(t *testing.T, p page) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range ldRE.FindAllStringSubmatch(p.body, -1) {
		var v map[string]any
		if err := json.Unmarshal([]byte(m[1]), &v); err != nil {
			t.Fatalf("%s: JSON-LD %s: %v", p.url, m[1], err)
		}
		if v["@context"] != "https://schema.org" || v["@type"] == nil {
			t.Fatalf("%s: JSON-LD without schema.org context or type: %s", p.url, m[1])
		}
		out = append(out, v)
	}
	return out
}

// ldOf is the page's JSON-LD item of type typ.
func ldOf(t *testing.T, p page, typ string) map[string]any {
	t.Helper()
	for _, v := range ldAll(t, p) {
		if v["@type"] == typ {
			return v
		}
	}
	t.Fatalf("%s: no JSON-LD %s in the page:\n%s", p.url, typ, p.body)
	return nil
}
