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

// homeMeta is page n (of last) of the home page, with total listings for
// sale: the first page speaks of the site, the others of their page.
func homeMeta(base string, n, last, total int) layout.Meta {
	meta := layout.Meta{
		Title:       "Stuffmart: digital stuff from students, for students",
		Description: "Buy notes, templates, e-books and licence codes from fellow students: " + strconv.Itoa(total) + " for sale now, delivered the moment you pay.",
		Canonical:   base + homeURL(n),
	}
	if n > 1 {
		meta.Title = "Available stuff, page " + strconv.Itoa(n) + " of " + strconv.Itoa(last) + " · Stuffmart"
		meta.Description = "Page " + strconv.Itoa(n) + " of the digital stuff students sell on Stuffmart: notes, templates, e-books and licence codes."
	}
	return meta
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
	Type          string `json:"@type"`
	Price         string `json:"price"`
	PriceCurrency string `json:"priceCurrency"`
	Availability  string `json:"availability"`
	URL           string `json:"url"`
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

func (h *Handler) stuffMeta(l api.Listing, base string) layout.Meta {
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
	return layout.Meta{
		Title:       l.Title + " · " + price + " · " + layout.SiteName,
		Description: desc,
		Canonical:   canonical,
		OGType:      "product",
		JSONLD: productLD{
			Context: "https://schema.org", Type: "Product", Name: l.Title, Description: excerpt(l.Description, 500),
			SKU: l.ID, URL: canonical,
			Offers: offerLD{Type: "Offer", Price: decimalPrice(l.Price), PriceCurrency: currency,
				Availability: availability(l.Status), URL: canonical},
		},
	}
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
	ChangeFreq string `xml:"changefreq,omitempty"`
}

// sitemapXML: GET /sitemap.xml, the home page and every available stuff's
// page.
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
	set.URLs = append(set.URLs, sitemapURL{Loc: base + "/", ChangeFreq: "hourly"})
	const limit = 100
	for page := 1; page <= MaxPage && len(set.URLs) < sitemapMax; page++ {
		p, err := h.api.Listings.List(ctx, api.Session{}, page, limit)
		if err != nil {
			return nil, err
		}
		for _, l := range p.Stuff {
			if len(set.URLs) >= sitemapMax {
				break
			}
			set.URLs = append(set.URLs, sitemapURL{Loc: base + pathTo("/stuff/", l.ID)})
		}
		if len(p.Stuff) < limit || page*limit >= p.Total {
			break
		}
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
