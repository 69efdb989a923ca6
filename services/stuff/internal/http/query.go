package http

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/stuff/internal/catalog"
	"github.com/stuffmart/stuffmart/services/stuff/internal/search"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// Bounds of a search.
const (
	// MaxQuery is the longest q, in characters.
	MaxQuery = 200
	// MaxWords is how many distinct words q may have.
	MaxWords = 12
)

// Sort orders of GET /api/stuff (the sort parameter).
const (
	SortNewest    = "newest"
	SortPriceAsc  = "price_asc"
	SortPriceDesc = "price_desc"
	SortRelevance = "relevance"
)

var orders = map[string]catalog.Order{
	SortNewest: catalog.Newest, SortPriceAsc: catalog.PriceAsc, SortPriceDesc: catalog.PriceDesc, SortRelevance: catalog.Relevance,
}

// listParams are the query parameters GET /api/stuff accepts.
var listParams = []string{"page", "limit", "q", "sort", "min", "max", "seller"}

// listQuery is a validated GET /api/stuff.
type listQuery struct {
	page, limit int
	q           catalog.Query
}

// plain reports whether the query is the newest-first listing of
// everything, which Page serves (reading past the in-memory listings from
// the database).
func (lq listQuery) plain() bool {
	return !lq.q.Text && lq.q.Order == catalog.Newest && lq.q.MinPrice == 0 && lq.q.MaxPrice < 0 && lq.q.Seller == ""
}

// parseList validates every query parameter of GET /api/stuff and reports
// every bad one at once (a *errs.RequestValidationError naming each):
// unknown or repeated parameters (page[$gt]=1 is refused, never ignored),
// page and limit out of range, q too long, with too many words or hidden
// characters, sort not one of the orders (relevance only with q), min and
// max not whole cents from 0 to stuff.MaxPrice or min above max, seller not
// a user id. Nothing of it ever becomes a database filter: the query runs
// in memory, and q only ever matches words.
func parseList(c echo.Context) (listQuery, error) {
	var v validate.Errors
	params := c.QueryParams()
	for _, k := range slices.Sorted(maps.Keys(params)) {
		switch {
		case !slices.Contains(listParams, k):
			v.Add(k, "Unknown query parameter")
		case len(params[k]) > 1:
			v.Add(k, "Must be given once")
		}
	}
	if err := v.Err(); err != nil {
		return listQuery{}, err
	}
	get := func(k string) string { return params.Get(k) }
	intOf := func(k string, def, lo, hi int) int {
		raw := get(k)
		if raw == "" {
			return def
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < lo || n > hi {
			v.Add(k, "Must be an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
			return def
		}
		return n
	}
	lq := listQuery{page: intOf("page", 1, 1, MaxPage), limit: intOf("limit", DefaultLimit, 1, MaxLimit)}
	lq.q.MinPrice = int64(intOf("min", 0, 0, stuff.MaxPrice))
	lq.q.MaxPrice = int64(intOf("max", -1, 0, stuff.MaxPrice))
	if lq.q.MaxPrice >= 0 && lq.q.MinPrice > lq.q.MaxPrice {
		v.Add("min", "Must not be more than max")
	}

	q := strings.TrimSpace(get("q"))
	switch {
	case validate.Len(q) > MaxQuery:
		v.Add("q", "Search must be at most "+strconv.Itoa(MaxQuery)+" characters")
	case !validate.PlainText(q, false):
		v.Add("q", "Search must not contain control or text-direction characters")
	case q != "":
		words, more := search.Words(q, MaxWords)
		if more {
			v.Add("q", "Search must have at most "+strconv.Itoa(MaxWords)+" words")
		}
		lq.q.Text, lq.q.Words = true, words
	}

	lq.q.Order = catalog.Newest
	if lq.q.Text {
		lq.q.Order = catalog.Relevance
	}
	if s := get("sort"); s != "" {
		o, ok := orders[s]
		switch {
		case !ok:
			v.Add("sort", "Must be one of newest, price_asc, price_desc, relevance")
		case o == catalog.Relevance && !lq.q.Text:
			v.Add("sort", "Sorting by relevance needs a search (q)")
		default:
			lq.q.Order = o
		}
	}

	if s := get("seller"); s != "" {
		if !userID(s) {
			v.Add("seller", "Must be a user id")
		}
		lq.q.Seller = s
	}
	if err := v.Err(); err != nil {
		return listQuery{}, err
	}
	lq.q.Offset, lq.q.Limit = (lq.page-1)*lq.limit, lq.limit
	return lq, nil
}

// userID reports whether s has the form of a user id: 24 lowercase hex
// digits.
func userID(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
