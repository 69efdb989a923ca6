package catalog

import (
	"context"
	"net/http"

	"github.com/stuffmart/stuffmart/services/stuff/internal/search"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// Order is how Search orders its results.
type Order int

// Orders of Search. Relevance needs words; ties of every order go newest
// first.
const (
	Newest Order = iota
	PriceAsc
	PriceDesc
	Relevance
)

// FragmentBytes is about how much of a description a search result shows
// around its first matching word.
const FragmentBytes = 160

// ErrNotLoaded is returned by Search until the catalog has loaded: search,
// sort and filter run only over the listings in memory. The service answers
// 503 while its database cannot be reached at start.
var ErrNotLoaded = &errs.HTTPError{Status: http.StatusServiceUnavailable, Message: "Search is starting, try again in a moment"}

// Query is a search, sort and filter of the available listings.
type Query struct {
	// Text says a text search was asked for; Words are its folded words
	// (search.Words). Text without words matches nothing.
	Text  bool
	Words []string
	Order Order
	// MinPrice and MaxPrice bound the price in cents (MaxPrice < 0: no
	// upper bound).
	MinPrice, MaxPrice int64
	// Seller, when set, keeps that seller's listings only.
	Seller        string
	Offset, Limit int
}

// Hit is one listing found: its public JSON and, for a text search, its
// title and a fragment of its description with the matched words marked.
type Hit struct {
	JSON        []byte
	Title       []search.Segment
	Description []search.Segment
}

// Changes counts the changes of what Search can return: a listing listed,
// unlisted or changed. Read before a Search, it tells whether an answer
// built from that Search may still be served: while Changes has not moved.
func (c *Catalog) Changes() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changes
}

// Search returns the listings of q's page and how many match in all. It
// runs over the listings held in memory: every available one while they
// number at most Options.Max, the newest Max otherwise. It returns
// ErrNotLoaded until the catalog has loaded.
func (c *Catalog) Search(_ context.Context, q Query) ([]Hit, int, error) {
	c.mu.RLock()
	if !c.loaded {
		c.mu.RUnlock()
		return nil, 0, ErrNotLoaded
	}
	if !q.Text {
		keep := func(e *entry) bool {
			return e.price >= q.MinPrice && (q.MaxPrice < 0 || e.price <= q.MaxPrice) && (q.Seller == "" || e.seller == q.Seller)
		}
		var page []*entry
		total := 0
		c.each(q.Order, func(e *entry) {
			if !keep(e) {
				return
			}
			if total >= q.Offset && total < q.Offset+q.Limit {
				page = append(page, e)
			}
			total++
		})
		c.mu.RUnlock()
		hits := make([]Hit, len(page))
		for i, e := range page {
			hits[i] = Hit{JSON: e.json}
		}
		return hits, total, nil
	}
	if len(q.Words) == 0 {
		c.mu.RUnlock()
		return []Hit{}, 0, nil
	}
	m := c.ix.Match(q.Words)
	defer m.Release()
	buf, _ := c.found.Get().(*[]found)
	if buf == nil {
		buf = new([]found)
	}
	defer c.found.Put(buf) // not cleared: it holds listed entries, or lately listed ones
	fs := (*buf)[:0]
	for _, h := range m.Hits {
		// The price is read by slot, as the hits come, rather than from
		// the entry: a common word has thousands of hits.
		if e, p := c.slots[h.Slot], c.prices[h.Slot]; e != nil && p >= q.MinPrice && (q.MaxPrice < 0 || p <= q.MaxPrice) && (q.Seller == "" || e.seller == q.Seller) {
			fs = append(fs, found{e: e, score: h.Score, first: h.First})
		}
	}
	c.mu.RUnlock()
	*buf = fs
	// Entries are immutable: the page is built without the lock.
	total := len(fs)
	page := topK(fs, q.Offset+q.Limit, q.Order)
	if q.Offset >= len(page) {
		return []Hit{}, total, nil
	}
	page = page[q.Offset:]
	hits := make([]Hit, len(page))
	// The page's highlights share one slice: each hit's are a piece of it
	// (capped, so that appending to one cannot overwrite the next).
	segs := make([]search.Segment, 0, 10*len(page))
	for i, f := range page {
		n := len(segs)
		segs = m.AppendHighlight(segs, f.e.title)
		title := segs[n:len(segs):len(segs)]
		n = len(segs)
		segs = m.AppendFragment(segs, f.e.desc, f.first, FragmentBytes)
		hits[i] = Hit{JSON: f.e.json, Title: title, Description: segs[n:len(segs):len(segs)]}
	}
	return hits, total, nil
}

// each calls fn with every listed entry in order o (Newest for Relevance).
// Call with mu held.
func (c *Catalog) each(o Order, fn func(e *entry)) {
	switch o {
	case PriceAsc:
		for _, e := range c.byPrice {
			fn(e)
		}
	case PriceDesc:
		// byPrice backwards, one price at a time, each newest first.
		for end := len(c.byPrice); end > 0; {
			start := end - 1
			for start > 0 && c.byPrice[start-1].price == c.byPrice[end-1].price {
				start--
			}
			for _, e := range c.byPrice[start:end] {
				fn(e)
			}
			end = start
		}
	default:
		for _, e := range c.list {
			fn(e)
		}
	}
}

// found is an entry a text search matched.
type found struct {
	e     *entry
	score float32
	first uint32
}

// less reports whether a comes before b in order o; ties go newest first.
func less(o Order, a, b *found) bool {
	switch o {
	case PriceAsc:
		return cmpPrice(a.e, b.e) < 0
	case PriceDesc:
		if a.e.price != b.e.price {
			return a.e.price > b.e.price
		}
	case Relevance: // scores are never NaN
		if a.score != b.score {
			return a.score > b.score
		}
	}
	return a.e.key.Before(b.e.key)
}

// topK returns the first k of fs in order o, sorted; it reorders fs.
// A bounded heap keeps it O(n log k) for the usual first pages.
func topK(fs []found, k int, o Order) []found {
	if k <= 0 {
		return nil
	}
	if k > len(fs) {
		k = len(fs)
	}
	// fs[:k] is a heap with the last (worst) of the best k at its root.
	worse := func(i, j int) bool { return less(o, &fs[j], &fs[i]) }
	down := func(i, n int) {
		for {
			l := 2*i + 1
			if l >= n {
				return
			}
			w := l
			if r := l + 1; r < n && worse(r, l) {
				w = r
			}
			if !worse(w, i) {
				return
			}
			fs[i], fs[w] = fs[w], fs[i]
			i = w
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i, k)
	}
	for i := k; i < len(fs); i++ {
		// Most of a common word's hits score below the root: they are
		// passed over without a call.
		if o == Relevance && fs[i].score < fs[0].score {
			continue
		}
		if less(o, &fs[i], &fs[0]) {
			fs[0] = fs[i]
			down(0, k)
		}
	}
	// Heap sort the k: pop the worst to the end.
	for n := k - 1; n > 0; n-- {
		fs[0], fs[n] = fs[n], fs[0]
		down(0, n)
	}
	return fs[:k]
}
