package handlers

import (
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/views/components"
)

// The search, sort and filter of the listing pages (home, search), as
// their URLs say them: plain GET query parameters, so that every page is a
// shareable, crawlable URL. Each URL has one normalized form (listing.url):
// the parameters in a fixed order, defaults and blanks left out, prices
// written the shortest way. The page cache keys on it, and it is each
// page's canonical URL; which pages crawlers may index is in seo.go.

// Paths of the listing pages.
const (
	homePath   = "/"
	searchPath = "/search"
)

// maxPriceCents is the highest price a range may name: the stuff service's
// highest price ($10,000).
const maxPriceCents = 1_000_000

// maxQuery is the longest search the box takes, in characters (the stuff
// service's own limit, which answers longer ones with a 400).
const maxQuery = 200

// sortOption is an order a listing page offers.
type sortOption struct {
	value, label string
	// words say the order in a page's title ("cheapest first").
	words string
}

var (
	sortNewest    = sortOption{api.SortNewest, "Newest first", "newest first"}
	sortPriceAsc  = sortOption{api.SortPriceAsc, "Price: low to high", "cheapest first"}
	sortPriceDesc = sortOption{api.SortPriceDesc, "Price: high to low", "most expensive first"}
	sortRelevance = sortOption{api.SortRelevance, "Best match", "best match first"}
)

// sortsOf are the orders of the page at path, its default first.
func sortsOf(path string) []sortOption {
	if path == searchPath {
		return []sortOption{sortRelevance, sortNewest, sortPriceAsc, sortPriceDesc}
	}
	return []sortOption{sortNewest, sortPriceAsc, sortPriceDesc}
}

// listing is what a listing page shows: the search (search page only), the
// order, the price range (in cents) and the page number.
type listing struct {
	path string
	// q is the search with its runs of white space made one space.
	q string
	// sort is an order of sortsOf(path) other than the default; "" is the
	// default.
	sort     string
	min, max *int64
	// minText and maxText are the range as typed, for the form.
	minText, maxText string
	page             int
}

// listingErrors are the messages of a listing URL's bad parameters, by
// parameter (q, sort, min, max).
type listingErrors map[string]string

// parseListing reads the listing page at path from the request's query:
// q (search page only), sort, min and max (in dollars, as prices are
// shown), page. A page that is not a page number is ok=false (a 404, as
// before sorting existed); any other bad parameter is a message in errs.
// Other parameters (a tracking tag) are ignored: they are in no URL the
// storefront makes, nor in the cache key.
func parseListing(c echo.Context, path string) (l listing, errs listingErrors, ok bool) {
	l = listing{path: path}
	if l.page, ok = pageParam(c.QueryParam("page")); !ok {
		return l, nil, false
	}
	errs = listingErrors{}
	if path == searchPath {
		l.q = strings.Join(strings.Fields(c.QueryParam("q")), " ")
		if n := len([]rune(l.q)); n > maxQuery {
			errs["q"] = "Search with at most " + strconv.Itoa(maxQuery) + " characters (this has " + strconv.Itoa(n) + ")."
		}
	}
	if s := c.QueryParam("sort"); s != "" {
		opts := sortsOf(path)
		found := false
		for _, o := range opts {
			if o.value == s {
				found = true
			}
		}
		switch {
		case !found:
			errs["sort"] = "Choose an order from the list."
		case s != opts[0].value:
			l.sort = s
		}
	}
	l.minText = strings.TrimSpace(c.QueryParam("min"))
	l.maxText = strings.TrimSpace(c.QueryParam("max"))
	l.min = priceBound(l.minText, "min", "the lowest price", "5", errs)
	l.max = priceBound(l.maxText, "max", "the highest price", "20", errs)
	if l.min != nil && l.max != nil && *l.min > *l.max {
		errs["min"] = "The lowest price must not be above the highest."
	}
	return l, errs, true
}

// priceBound reads one end of a price range typed in dollars (nil when
// blank), putting a message for field in errs when it is not a price
// from $0 to $10,000.
func priceBound(raw, field, what, example string, errs listingErrors) *int64 {
	if raw == "" {
		return nil
	}
	cents, ok := parsePrice(raw)
	if !ok {
		errs[field] = "Enter " + what + " in dollars, such as " + example + " or " + example + ".50."
		return nil
	}
	if cents > maxPriceCents {
		errs[field] = "Enter " + what + " from $0 to $10,000."
		return nil
	}
	return &cents
}

// filtered reports whether the page is sorted or ranged: a variant of the
// plain page.
func (l listing) filtered() bool { return l.sort != "" || l.min != nil || l.max != nil }

// ranged reports whether a price range is set.
func (l listing) ranged() bool { return l.min != nil || l.max != nil }

// url is page n of the listing in its normalized form: q, sort, min, max,
// page, each only when not the default.
func (l listing) url(n int) string {
	var b strings.Builder
	b.WriteString(l.path)
	sep := byte('?')
	add := func(k, v string) {
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	if l.q != "" {
		add("q", l.q)
	}
	if l.sort != "" {
		add("sort", l.sort)
	}
	if l.min != nil {
		add("min", priceParam(*l.min))
	}
	if l.max != nil {
		add("max", priceParam(*l.max))
	}
	if n > 1 {
		add("page", strconv.Itoa(n))
	}
	return b.String()
}

// unfiltered is the listing without its order and range (the same search,
// if any), from its first page.
func (l listing) unfiltered() listing {
	return listing{path: l.path, q: l.q, page: 1}
}

// priceParam writes cents as a URL's price in dollars: "5", "4.99",
// "4.50".
func priceParam(cents int64) string {
	if cents%100 == 0 {
		return strconv.FormatInt(cents/100, 10)
	}
	return decimalPrice(cents)
}

// query is the listing as the stuff service's query.
func (l listing) query() api.Query {
	return api.Query{Q: l.q, Sort: l.sort, Min: l.min, Max: l.max, Page: l.page, Limit: PageSize}
}

// sortWords say the order in words ("cheapest first"); "" for the
// default.
func (l listing) sortWords() string {
	for _, o := range sortsOf(l.path) {
		if o.value == l.sort && l.sort != "" {
			return o.words
		}
	}
	return ""
}

// rangeWords say the price range: "$5.00 to $20.00", "from $5.00",
// "up to $20.00"; "" for none.
func (l listing) rangeWords() string {
	switch {
	case l.min != nil && l.max != nil:
		return formatPrice(*l.min, "usd") + " to " + formatPrice(*l.max, "usd")
	case l.min != nil:
		return "from " + formatPrice(*l.min, "usd")
	case l.max != nil:
		return "up to " + formatPrice(*l.max, "usd")
	}
	return ""
}

// describe says the order and range, for titles: "cheapest first, $5.00 to
// $20.00"; "" for the plain listing.
func (l listing) describe() string {
	var parts []string
	if w := l.sortWords(); w != "" {
		parts = append(parts, w)
	}
	if w := l.rangeWords(); w != "" {
		parts = append(parts, w)
	}
	return strings.Join(parts, ", ")
}

// controls is the sort and filter form of the listing, with errs next to
// their fields.
func (l listing) controls(errs listingErrors) components.Controls {
	m := components.Controls{
		Action: l.path,
		Query:  l.q,
		Search: l.path == searchPath,
		Min: components.Field{ID: "min", Label: "From", Value: l.minText, Error: errs["min"],
			InputMode: "decimal", Autocomplete: "off", MaxLength: 12},
		Max: components.Field{ID: "max", Label: "To", Value: l.maxText, Error: errs["max"],
			InputMode: "decimal", Autocomplete: "off", MaxLength: 12},
		SortError: errs["sort"],
	}
	for i, o := range sortsOf(l.path) {
		m.Sorts = append(m.Sorts, components.Choice{Value: o.value, Label: o.label,
			Checked: o.value == l.sort || (l.sort == "" && i == 0)})
	}
	if len(errs) == 0 && l.filtered() {
		m.ClearURL = l.unfiltered().url(1)
	}
	return m
}

// pager links page n of last to its neighbours; newest-first pages say
// "Newer" and "Older".
func (l listing) pager(n, last int) components.Pager {
	p := listingPager(n, last, l.url)
	if l.path == homePath && l.sort == "" {
		p.PrevText, p.NextText = "← Newer", "Older →"
	}
	return p
}

// listingPager links page n of last to its neighbours, urlOf(k) being
// page k.
func listingPager(n, last int, urlOf func(int) string) components.Pager {
	p := components.Pager{Label: "Page " + strconv.Itoa(n) + " of " + strconv.Itoa(last)}
	if n > 1 {
		p.PrevURL = urlOf(n - 1)
	}
	if n < last {
		p.NextURL = urlOf(n + 1)
	}
	return p
}

// lastPage is the number of the last page of total listings (1 for none).
func lastPage(total int) int { return max(1, (total+PageSize-1)/PageSize) }

// cardOf is a listing as a card; with a search's highlights when the
// answer has them.
func cardOf(l api.Listing) components.Card {
	c := components.Card{
		URL:   pathTo("/stuff/", l.ID),
		Title: l.Title,
		Price: formatPrice(l.Price, l.Currency),
	}
	if hl := l.Highlight; hl != nil {
		c.TitleMarks = segments(hl.Title)
		c.ExcerptMarks = segments(hl.Description)
	}
	if len(c.ExcerptMarks) == 0 {
		c.Excerpt = excerpt(l.Description, 140)
	}
	return c
}

// segments are the service's highlight segments for a view: the text
// kept as is (templ escapes it), runs of white space made one space (a
// card shows the description on a few lines).
func segments(in []api.Segment) []components.Segment {
	if len(in) == 0 {
		return nil
	}
	out := make([]components.Segment, 0, len(in))
	for _, s := range in {
		out = append(out, components.Segment{Text: oneLine(s.Text), Match: s.Match})
	}
	return out
}

// oneLine replaces every run of white space in s with one space, keeping
// a leading and a trailing one (they separate a segment from the next).
func oneLine(s string) string {
	if !strings.Contains(s, "  ") && !strings.ContainsFunc(s, func(r rune) bool { return r != ' ' && unicode.IsSpace(r) }) {
		return s
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return " "
	}
	out := strings.Join(f, " ")
	if r, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(r) {
		out = " " + out
	}
	if r, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(r) {
		out += " "
	}
	return out
}
