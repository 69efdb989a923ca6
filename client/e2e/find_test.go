package e2e_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/stuffmart/stuffmart/client/internal/clienttest"
)

// defaultWait is how long a page may take to show what is awaited.
const defaultWait = 10 * time.Second

// TestFind looks for stuff in a browser, with JavaScript and without: the
// header's search box, the results with their matches marked, sorting and
// a price range through the listing's form (plain GET forms), the empty
// state, a refused range, the home page sorted and ranged, then a stuff
// page's "Sold by" link to the seller's page. Every page passes the
// Lighthouse-level checks (checkSEO: title, description, canonical,
// robots, valid JSON-LD of the right types, crawlable links) and, with
// JavaScript, axe-core.
func TestFind(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	browser := startBrowser(t)
	// The page cache on, as deployed: each search, order and range is a
	// URL of its own.
	s := clienttest.Start(t, clienttest.Options{})
	shots := shotsDir(t)

	for _, mode := range []struct {
		name string
		js   bool
		// word is in the listings of this run only; prices too.
		word  string
		price string
	}{{"with JavaScript", true, "quokka", "71"}, {"without JavaScript", false, "wombat", "81"}} {
		t.Run(mode.name, func(t *testing.T) {
			seller := newUser(t, browser, s.URL, axe, mode.js)
			anon := newUser(t, browser, s.URL, axe, mode.js)
			sellerEmail := email(t, "seller")
			sellerName, _, _ := strings.Cut(sellerEmail, "@")
			seller.signUp(sellerEmail)
			w, p := mode.word, mode.price
			physics := seller.sell("Physics notes about the "+w, "Mechanics and waves.", p+".01", "x")
			chem := seller.sell("Chemistry notes", "Reactions, and a "+w+" on the cover.", p+".02", "x")
			bio := seller.sell("Biology flashcards, "+w+" edition", "Cells and genes.", p+".03", "x")

			// The header's search box, from the home page.
			anon.open("/")
			anon.checkSEO("home page", true, "WebSite", "ItemList")
			anon.fill("site-search", w)
			if r := anon.click("form.site-search button[type=submit]"); r.Status != http.StatusOK {
				t.Fatalf("search: %d", r.Status)
			}
			if got := anon.path(); got != "/search?q="+w {
				t.Fatalf("search went to %s", got)
			}
			anon.waitFor("3 results", defaultWait)
			anon.see("<mark>"+w+"</mark>", `value="`+w+`"`, physics, chem, bio)
			anon.checkSEO("search page", false, "ItemList")
			if mode.js {
				anon.checkA11y("search page")
				anon.screenshot(shots, "search.png")
			}

			// Sort by price, high to low, through the form; then a range.
			anon.choose("sort", "price_desc")
			anon.click("form.controls button[type=submit]")
			anon.inOrder(bio, chem, physics)
			if got := anon.path(); !strings.HasPrefix(got, "/search?q="+w+"&sort=price_desc") {
				t.Errorf("sorted search at %s", got)
			}
			anon.fill("min", p+".015")
			if r := anon.click("form.controls button[type=submit]"); r.Status != http.StatusBadRequest {
				t.Errorf("a price with three decimals: status %d, want 400", r.Status)
			}
			anon.see("Enter the lowest price in dollars", `aria-invalid="true"`, `value="`+p+`.015"`, `value="`+w+`"`)
			anon.checkSEO("refused search", false)
			if mode.js {
				anon.checkA11y("refused search page")
			}
			anon.clear("min")
			anon.fill("min", p+".02")
			anon.click("form.controls button[type=submit]")
			anon.waitFor("2 results", defaultWait)
			anon.inOrder(bio, chem)
			if strings.Contains(anon.html(), physics) {
				t.Errorf("%s is below the range", physics)
			}

			// Nothing found: suggestions.
			anon.open("/search?q=" + w + "zzqx")
			anon.see("No stuff matches", "Check the spelling", "Browse the newest stuff")
			anon.checkSEO("search without results", false)
			if mode.js {
				anon.checkA11y("search without results")
			}

			// The home page, cheapest first, in this run's price range.
			anon.open("/")
			anon.choose("sort", "price_asc")
			anon.fill("min", p)
			anon.fill("max", p+".99")
			anon.click("form.controls button[type=submit]")
			if got := anon.path(); got != "/?sort=price_asc&min="+p+"&max="+url.QueryEscape(p+".99") {
				t.Errorf("home sorted at %s", got)
			}
			anon.inOrder(physics, chem, bio)
			anon.checkSEO("home page, sorted and ranged", false, "WebSite", "ItemList")
			if mode.js {
				anon.checkA11y("home page, sorted and ranged")
			}

			// A stuff page links to its seller's page.
			anon.click(`main a[href^="/stuff/"]`)
			anon.see("Sold by", sellerName, physics)
			anon.checkSEO("stuff page", true, "Product", "BreadcrumbList")
			if mode.js {
				anon.checkA11y("stuff page with its seller")
			}
			if r := anon.click(".sold-by a"); r.Status != http.StatusOK {
				t.Fatalf("seller page: %d", r.Status)
			}
			if got := anon.path(); !strings.HasPrefix(got, "/sellers/") {
				t.Fatalf("the seller link went to %s", got)
			}
			anon.see("<h1>Stuff from "+sellerName+"</h1>", "3 listings for sale.", physics, chem, bio)
			if strings.Contains(anon.html(), sellerEmail) {
				t.Error("the seller page shows the seller's email")
			}
			anon.checkSEO("seller page", true, "BreadcrumbList", "ItemList")
			if mode.js {
				anon.checkA11y("seller page")
				anon.screenshot(shots, "seller.png")
			}
		})
	}
}

// choose picks the option of the select with that id.
func (u *user) choose(id, value string) {
	u.t.Helper()
	step(u, "choose "+value+" in #"+id, chromedp.SetValue(chromedp.ID(id), value))
}

// inOrder fails unless the page shows every s, in that order.
func (u *user) inOrder(ss ...string) {
	u.t.Helper()
	h := u.html()
	at := -1
	for _, s := range ss {
		i := strings.Index(h, s)
		if i < 0 || i < at {
			u.t.Fatalf("%s: want %q in that order on the page:\n%s", u.path(), ss, h)
		}
		at = i
	}
}

// genericLinkText are the link texts Lighthouse's SEO audit calls not
// descriptive.
var genericLinkText = []string{"click here", "click this", "go", "here", "information", "learn more", "more",
	"more info", "more information", "right here", "read more", "see more", "start", "this"}

// checkSEO checks the page as Lighthouse's SEO audit does, from its
// markup (so without JavaScript too): a language, a viewport, a title and
// a description; a canonical URL on this site, required when the page may
// be indexed; robots that allow indexing or not, as want; every JSON-LD
// block valid JSON of a schema.org type, those of types among them; every
// link crawlable (an href, not javascript:) with descriptive text.
func (u *user) checkSEO(name string, indexable bool, types ...string) {
	u.t.Helper()
	doc, err := html.Parse(strings.NewReader(u.html()))
	if err != nil {
		u.t.Fatalf("%s: parse: %v", name, err)
	}
	attr := func(n *html.Node, key string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == key {
				return a.Val, true
			}
		}
		return "", false
	}
	var title, description, canonical, robots, lang string
	viewport := false
	var found []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.DataAtom {
			case atom.Html:
				lang, _ = attr(n, "lang")
			case atom.Title:
				if n.FirstChild != nil {
					title = n.FirstChild.Data
				}
			case atom.Meta:
				v, _ := attr(n, "content")
				switch nm, _ := attr(n, "name"); nm {
				case "description":
					description = v
				case "robots":
					robots = v
				case "viewport":
					viewport = v != ""
				}
			case atom.Link:
				if rel, _ := attr(n, "rel"); rel == "canonical" {
					canonical, _ = attr(n, "href")
				}
			case atom.Script:
				if typ, _ := attr(n, "type"); typ == "application/ld+json" {
					var ld struct {
						Context string `json:"@context"`
						Type    string `json:"@type"`
					}
					text := ""
					if n.FirstChild != nil {
						text = n.FirstChild.Data
					}
					if err := json.Unmarshal([]byte(text), &ld); err != nil || ld.Context != "https://schema.org" || ld.Type == "" {
						u.t.Errorf("%s: JSON-LD not valid schema.org data (%v): %s", name, err, text)
					}
					found = append(found, ld.Type)
				}
			case atom.A:
				href, ok := attr(n, "href")
				if !ok || strings.HasPrefix(strings.ToLower(strings.TrimSpace(href)), "javascript:") {
					u.t.Errorf("%s: a link crawlers cannot follow: %v", name, n.Attr)
				}
				if slices.Contains(genericLinkText, strings.ToLower(strings.TrimSpace(textOf(n)))) {
					u.t.Errorf("%s: link text %q is not descriptive", name, textOf(n))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if lang == "" || !viewport || strings.TrimSpace(title) == "" || strings.TrimSpace(description) == "" {
		u.t.Errorf("%s: lang %q, viewport %v, title %q, description %q: each is required", name, lang, viewport, title, description)
	}
	if canonical != "" {
		if c, err := url.Parse(canonical); err != nil || !strings.HasPrefix(canonical, u.base+"/") || c.Fragment != "" {
			u.t.Errorf("%s: canonical %q is not an absolute URL of this site", name, canonical)
		}
	}
	noindex := strings.Contains(robots, "noindex")
	switch {
	case indexable && (noindex || canonical == ""):
		u.t.Errorf("%s: robots %q, canonical %q: want the page indexable with its canonical URL", name, robots, canonical)
	case !indexable && !noindex:
		u.t.Errorf("%s: robots %q: want noindex", name, robots)
	}
	for _, typ := range types {
		if !slices.Contains(found, typ) {
			u.t.Errorf("%s: JSON-LD %v, want a %s", name, found, typ)
		}
	}
}

// textOf is the text of n and its descendants.
func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
