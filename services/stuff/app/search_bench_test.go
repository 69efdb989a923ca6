package app_test

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/stuffmart/stuffmart/services/stuff/internal/search/sample"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
)

// searchStack seeds benchListings sample listings (titles and descriptions
// drawn from a skewed vocabulary that grows with them, see package sample).
func searchStack(b *testing.B) *stack {
	b.Helper()
	return benchStackOf(b, func(i int) stuff.Input {
		t, d, p := sample.Listing(i)
		return stuff.Input{Title: t, Description: &d, Price: p}
	})
}

// BenchmarkSearchStuff: GET /api/stuff?q=… over 5,000 listings, the sample
// queries in turn (common and rare words, two words, prefixes, typos,
// accents), a page of 20 with highlights, 50 concurrent clients.
func BenchmarkSearchStuff(b *testing.B) {
	s := searchStack(b)
	paths := make([]string, len(sample.Queries))
	for i, q := range sample.Queries {
		paths[i] = "/api/stuff?q=" + url.QueryEscape(q)
		if p := s.search(b, "q", q); p.Total == 0 || p.Stuff[0].Highlight == nil {
			b.Fatalf("q=%q found nothing", q)
		}
	}
	load(b, s, func(i int) string { return paths[i%len(paths)] })
}

// BenchmarkSearchSortFilter: the same searches sorted by price, within a
// price range, one seller's or a page further on, and the whole listing
// sorted by price, in turn; 50 concurrent clients.
func BenchmarkSearchSortFilter(b *testing.B) {
	s := searchStack(b)
	var paths []string
	for i, q := range sample.Queries {
		v := url.Values{"q": {q}}
		switch i % 4 {
		case 0:
			v.Set("sort", "price_asc")
		case 1:
			v.Set("min", "1000")
			v.Set("max", "8000")
		case 2:
			v.Set("seller", benchSeller(i))
		case 3:
			v.Set("page", "2")
		}
		paths = append(paths, "/api/stuff?"+v.Encode())
	}
	for page := 1; page <= 5; page++ {
		paths = append(paths, "/api/stuff?sort=price_desc&page="+strconv.Itoa(page), "/api/stuff?min=500&max=5000&page="+strconv.Itoa(page))
	}
	load(b, s, func(i int) string { return paths[i%len(paths)] })
}

// BenchmarkSearchStuffUncached: the same searches, each asked with a
// min price from 0 to 99 cents in turn (no listing is that cheap, so the
// answers are the same), so that no answer is ever served again: what
// every search costs while listings change all the time.
func BenchmarkSearchStuffUncached(b *testing.B) {
	s := searchStack(b)
	var paths []string
	for n := range 100 {
		for _, q := range sample.Queries {
			paths = append(paths, "/api/stuff?q="+url.QueryEscape(q)+"&min="+strconv.Itoa(n))
		}
	}
	load(b, s, func(i int) string { return paths[i%len(paths)] })
}
