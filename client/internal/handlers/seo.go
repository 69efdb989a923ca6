package handlers

import (
	"bytes"
	"context"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/singleflight"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
)

// What the storefront tells crawlers and link previews: each listing page's
// title, description, canonical URL and schema.org Product/Offer data,
// robots.txt and the sitemap.

// Which pages crawlers may index (client/README.md, "Search engines"):
//
//   - the plain listings: the home page and its pages (/, /?page=N), each
//     seller's page and its pages (/sellers/:id, ?page=N), each stuff page;
//   - not the variants: a sorted or price-ranged home page, every search
//     page (/search?q=…, its pages, orders and ranges), a seller page with
//     nothing for sale or whose name cannot be told right now. They say
//     "noindex, follow": crawlers follow their links (to the stuff pages)
//     but do not index each combination of parameters.
//
// Every page's canonical URL is its own normalized URL (listing.url): the
// parameters in one order, defaults and blanks left out, so that the
// spellings of one page (?sort=newest, ?min=5.00&max=) are one URL. Pages
// refused with a 400 say "noindex, nofollow" and have no canonical URL.

const siteDescription = "notes, templates, e-books and licence codes from fellow students"

// homeMeta is page n (of last) of the home page l, whose first page p is:
// the plain first page speaks of the site, the others of their page;
// sorted or ranged pages are not indexed.
func homeMeta(base string, l listing, last int, p api.Page) layout.Meta {
	n := l.page
	meta := layout.Meta{
		Title:       "Stuffmart: digital stuff from students, for students",
		Description: "Buy notes, templates, e-books and licence codes from fellow students: " + strconv.Itoa(p.Total) + " for sale now, delivered the moment you pay.",
		Canonical:   base + l.url(n),
		JSONLD:      []any{websiteLD(base)},
	}
	switch {
	case l.filtered():
		meta.Title = "Available stuff, " + l.describe() + pageWords(n, last) + " · " + layout.SiteName
		meta.Description = strconv.Itoa(p.Total) + " listings on Stuffmart, " + l.describe() + ": " + siteDescription + "."
		meta.NoIndexFollow = true
	case n > 1:
		meta.Title = "Available stuff, page " + strconv.Itoa(n) + " of " + strconv.Itoa(last) + " · Stuffmart"
		meta.Description = "Page " + strconv.Itoa(n) + " of the digital stuff students sell on Stuffmart: notes, templates, e-books and licence codes."
	}
	if ld, ok := itemList(base, p, n); ok {
		meta.JSONLD = append(meta.JSONLD, ld)
	}
	return meta
}

// pageWords is ", page n of last" past the first page.
func pageWords(n, last int) string {
	if n <= 1 {
		return ""
	}
	return ", page " + strconv.Itoa(n) + " of " + strconv.Itoa(last)
}

// searchMeta is the search page l showing r: never indexed.
func searchMeta(base string, l listing, r searchResult) layout.Meta {
	if l.q == "" {
		return layout.Meta{Title: "Search · " + layout.SiteName, Description: "Search the digital stuff students sell on Stuffmart: " + siteDescription + ".",
			Canonical: base + searchPath, NoIndexFollow: true}
	}
	if r.model.Error != "" {
		return invalidListingMeta(l)
	}
	title := "Results for “" + excerpt(l.q, 60) + "”"
	if d := l.describe(); d != "" {
		title += ", " + d
	}
	meta := layout.Meta{
		Title:         title + pageWords(l.page, r.last) + " · " + layout.SiteName,
		Description:   results(r.page.Total) + " for “" + excerpt(l.q, 60) + "” on Stuffmart: " + siteDescription + ".",
		Canonical:     base + l.url(l.page),
		NoIndexFollow: true,
	}
	if ld, ok := itemList(base, r.page, l.page); ok {
		meta.JSONLD = []any{ld}
	}
	return meta
}

// invalidListingMeta is a listing page refused with a 400 (a bad order,
// range or search).
func invalidListingMeta(l listing) layout.Meta {
	what := "Available stuff"
	if l.path == searchPath {
		what = "Search"
	}
	return layout.Meta{Title: what + ": please check your request · " + layout.SiteName,
		Description: "The search, order or price range could not be read.", NoIndex: true}
}

// sellerMeta is page n (of last) of seller id's page, named name ("" when
// unknown for now), showing p.
func sellerMeta(base, id, name string, n, last int, p api.Page) layout.Meta {
	who := name
	if who == "" {
		who = "this seller"
	}
	meta := layout.Meta{
		Title:       "Stuff from " + who + pageWords(n, last) + " · " + layout.SiteName,
		Description: strconv.Itoa(p.Total) + " listings for sale from " + who + " on Stuffmart: " + siteDescription + ".",
		Canonical:   base + sellerURL(id, n),
		// Nothing for sale, or no name to show: nothing worth a search
		// result.
		NoIndexFollow: p.Total == 0 || name == "",
	}
	if name != "" {
		meta.JSONLD = append(meta.JSONLD, breadcrumbs(base, crumb{"Home", "/"}, crumb{name, sellerURL(id, 1)}))
	}
	if ld, ok := itemList(base, p, n); ok {
		meta.JSONLD = append(meta.JSONLD, ld)
	}
	return meta
}

// websiteLD is the site and its search (a sitelinks search box).
func websiteLD(base string) websiteJSON {
	return websiteJSON{Context: "https://schema.org", Type: "WebSite", Name: layout.SiteName, URL: base + "/",
		PotentialAction: searchActionJSON{Type: "SearchAction",
			Target:     entryPointJSON{Type: "EntryPoint", URLTemplate: base + searchPath + "?q={search_term_string}"},
			QueryInput: "required name=search_term_string"}}
}

type websiteJSON struct {
	Context         string           `json:"@context"`
	Type            string           `json:"@type"`
	Name            string           `json:"name"`
	URL             string           `json:"url"`
	PotentialAction searchActionJSON `json:"potentialAction"`
}

type searchActionJSON struct {
	Type       string         `json:"@type"`
	Target     entryPointJSON `json:"target"`
	QueryInput string         `json:"query-input"`
}

type entryPointJSON struct {
	Type        string `json:"@type"`
	URLTemplate string `json:"urlTemplate"`
}

// itemListJSON is a schema.org ItemList (a page of listings) or
// BreadcrumbList.
type itemListJSON struct {
	Context         string         `json:"@context"`
	Type            string         `json:"@type"`
	NumberOfItems   int            `json:"numberOfItems,omitempty"`
	ItemListElement []listItemJSON `json:"itemListElement"`
}

// listItemJSON is one item of a list: in an ItemList its page (URL only,
// a summary list's item: the page has the rest), in a BreadcrumbList its
// step (Name and Item).
type listItemJSON struct {
	Type     string `json:"@type"`
	Position int    `json:"position"`
	Name     string `json:"name,omitempty"`
	URL      string `json:"url,omitempty"`
	Item     string `json:"item,omitempty"`
}

// itemList is page n of listings p as an ItemList (positions counted from
// the first page); ok is false for an empty page.
func itemList(base string, p api.Page, n int) (itemListJSON, bool) {
	if len(p.Stuff) == 0 {
		return itemListJSON{}, false
	}
	first := (n-1)*PageSize + 1
	ld := itemListJSON{Context: "https://schema.org", Type: "ItemList", NumberOfItems: p.Total}
	for i, l := range p.Stuff {
		ld.ItemListElement = append(ld.ItemListElement, listItemJSON{Type: "ListItem", Position: first + i,
			URL: base + pathTo("/stuff/", l.ID)})
	}
	return ld, true
}

// crumb is a step of a BreadcrumbList: its name and path.
type crumb struct{ name, path string }

// breadcrumbs is the steps to a page, the page last, as a BreadcrumbList.
func breadcrumbs(base string, steps ...crumb) itemListJSON {
	ld := itemListJSON{Context: "https://schema.org", Type: "BreadcrumbList"}
	for i, s := range steps {
		ld.ItemListElement = append(ld.ItemListElement, listItemJSON{Type: "ListItem", Position: i + 1, Name: s.name, Item: base + s.path})
	}
	return ld
}

// productLD is schema.org structured data of a listing.
type productLD struct {
	Context     string  `json:"@context"`
	Type        string  `json:"@type"`
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	SKU         string  `json:"sku"`
	URL         string  `json:"url"`
	Offers      offerLD `json:"offers"`
}

type offerLD struct {
	Type          string      `json:"@type"`
	Price         string      `json:"price"`
	PriceCurrency string      `json:"priceCurrency"`
	Availability  string      `json:"availability"`
	URL           string      `json:"url"`
	Seller        *personJSON `json:"seller,omitempty"`
}

// personJSON is a seller: their display name and page.
type personJSON struct {
	Type string `json:"@type"`
	Name string `json:"name"`
	URL  string `json:"url"`
}

func availability(status string) string {
	switch status {
	case api.StatusReserved:
		return "https://schema.org/Reserved"
	case api.StatusSold:
		return "https://schema.org/SoldOut"
	default:
		return "https://schema.org/InStock"
	}
}

// stuffMeta is a stuff page's meta: its Product and Offer, and its
// breadcrumbs (Home → the seller → the stuff, or Home → the stuff when the
// seller's name is not known).
func (h *Handler) stuffMeta(l api.Listing, seller sellerName, base string) layout.Meta {
	canonical := base + pathTo("/stuff/", l.ID)
	price := formatPrice(l.Price, l.Currency)
	desc := excerpt(l.Description, 155)
	if desc == "" {
		desc = "Buy " + excerpt(l.Title, 80) + " for " + price + " on Stuffmart, from a fellow student."
	}
	currency := "USD"
	if l.Currency != "" {
		currency = upper(l.Currency)
	}
	product := productLD{
		Context: "https://schema.org", Type: "Product", Name: l.Title, Description: excerpt(l.Description, 500),
		SKU: l.ID, URL: canonical,
		Offers: offerLD{Type: "Offer", Price: decimalPrice(l.Price), PriceCurrency: currency,
			Availability: availability(l.Status), URL: canonical},
	}
	steps := []crumb{{"Home", "/"}}
	if seller.name != "" && validSeller(l.UserID) {
		product.Offers.Seller = &personJSON{Type: "Person", Name: seller.name, URL: base + sellerURL(l.UserID, 1)}
		steps = append(steps, crumb{seller.name, sellerURL(l.UserID, 1)})
	}
	steps = append(steps, crumb{l.Title, pathTo("/stuff/", l.ID)})
	return layout.Meta{
		Title:       l.Title + " · " + price + " · " + layout.SiteName,
		Description: desc,
		Canonical:   canonical,
		OGType:      "product",
		JSONLD:      []any{product, breadcrumbs(base, steps...)},
	}
}

// lastMod is t as a sitemap's lastmod (W3C datetime, UTC); "" for the
// zero time.
func lastMod(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// robots: GET /robots.txt. Crawlers may read the listings; account, order
// and admin pages are kept out (they are noindex too).
func (h *Handler) robots(c echo.Context) error {
	var b strings.Builder
	b.WriteString("User-agent: *\n")
	for _, p := range []string{"/signin", "/signup", "/account", "/sell", "/mine", "/orders", "/admin", "/stuff/*/edit", "/stuff/*/buy"} {
		b.WriteString("Disallow: " + p + "\n")
	}
	b.WriteString("Allow: /\n\nSitemap: " + h.baseURL(c) + "/sitemap.xml\n")
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(b.String()))
}

// sitemapMax is the sitemap protocol's limit of URLs in one file.
const sitemapMax = 50_000

// sitemapTTL-long copies of the sitemap are served: crawlers read it
// rarely, and listing every page of stuff is not free.
type sitemapCache struct {
	ttl    time.Duration
	flight singleflight.Group
	mu     sync.Mutex
	key    string
	body   []byte
	at     time.Time
}

type urlset struct {
	XMLName xml.Name     `xml:"urlset"`
	NS      string       `xml:"xmlns,attr"`
	URLs    []sitemapURL `xml:"url"`
}

type sitemapURL struct {
	Loc        string `xml:"loc"`
	LastMod    string `xml:"lastmod,omitempty"`
	ChangeFreq string `xml:"changefreq,omitempty"`
}

// sitemapXML: GET /sitemap.xml, the home page, every available stuff's
// page and the page of every seller with stuff for sale, each with its
// lastmod: a stuff page's is when it was listed (the stuff service dates
// nothing else), a seller's and the home page's that of their newest
// listing.
func (h *Handler) sitemapXML(c echo.Context) error {
	base := h.baseURL(c)
	now := time.Now()
	sc := h.sitemap
	sc.mu.Lock()
	body := sc.body
	fresh := sc.key == base && now.Sub(sc.at) < sc.ttl
	sc.mu.Unlock()
	if !fresh {
		v, err, _ := sc.flight.Do(base, func() (any, error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 30*time.Second)
			defer cancel()
			b, err := h.buildSitemap(ctx, base)
			if err != nil {
				return nil, err
			}
			sc.mu.Lock()
			sc.key, sc.body, sc.at = base, b, time.Now()
			sc.mu.Unlock()
			return b, nil
		})
		if err != nil {
			return err
		}
		body = v.([]byte)
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/xml; charset=utf-8", body)
}

func (h *Handler) buildSitemap(ctx context.Context, base string) ([]byte, error) {
	set := urlset{NS: "http://www.sitemaps.org/schemas/sitemap/0.9"}
	var stuff []sitemapURL
	var newest time.Time
	// Sellers in the order their newest listing comes (the listing is
	// newest first), with that listing's date.
	var sellers []string
	sellerDate := map[string]time.Time{}
	const limit = 100
	// One URL is the home page's; sellers come after the stuff, in what
	// the protocol's limit leaves.
	for page := 1; page <= MaxPage && len(stuff) < sitemapMax-1; page++ {
		p, err := h.api.Listings.Find(ctx, api.Session{}, api.Query{Page: page, Limit: limit})
		if err != nil {
			return nil, err
		}
		for _, l := range p.Stuff {
			if len(stuff) >= sitemapMax-1 {
				break
			}
			stuff = append(stuff, sitemapURL{Loc: base + pathTo("/stuff/", l.ID), LastMod: lastMod(l.CreatedAt)})
			if l.CreatedAt.After(newest) {
				newest = l.CreatedAt
			}
			if !validSeller(l.UserID) {
				continue
			}
			if at, seen := sellerDate[l.UserID]; !seen {
				sellers = append(sellers, l.UserID)
				sellerDate[l.UserID] = l.CreatedAt
			} else if l.CreatedAt.After(at) {
				sellerDate[l.UserID] = l.CreatedAt
			}
		}
		if len(p.Stuff) < limit || page*limit >= p.Total {
			break
		}
	}
	set.URLs = append(set.URLs, sitemapURL{Loc: base + "/", LastMod: lastMod(newest), ChangeFreq: "hourly"})
	set.URLs = append(set.URLs, stuff...)
	for _, id := range sellers {
		if len(set.URLs) >= sitemapMax {
			break
		}
		set.URLs = append(set.URLs, sitemapURL{Loc: base + sellerURL(id, 1), LastMod: lastMod(sellerDate[id])})
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	if err := enc.Encode(set); err != nil {
		return nil, err
	}
	buf.WriteString("\n")
	return buf.Bytes(), nil
}
