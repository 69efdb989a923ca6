package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// segmentJSON is one piece of a highlighted text.
type segmentJSON struct {
	Text  string `json:"text"`
	Match bool   `json:"match"`
}

// hitJSON is a listing as a search returns it: the listing and, with q,
// its highlights. Decoding is strict, like stuffJSON's.
type hitJSON struct {
	stuffJSON
	Highlight *struct {
		Title       []segmentJSON `json:"title"`
		Description []segmentJSON `json:"description"`
	} `json:"highlight"`
}

type searchJSON struct {
	Stuff []hitJSON `json:"stuff"`
	Page  int       `json:"page"`
	Limit int       `json:"limit"`
	Total int       `json:"total"`
}

func (p searchJSON) titles() []string {
	out := make([]string, 0, len(p.Stuff))
	for _, s := range p.Stuff {
		out = append(out, s.Title)
	}
	return out
}

func (p searchJSON) has(id string) bool {
	return slices.ContainsFunc(p.Stuff, func(h hitJSON) bool { return h.ID == id })
}

// search sends GET /api/stuff with the query parameters of kv (name,
// value, name, value...) and decodes the answer.
func (s *stack) search(t testing.TB, kv ...string) searchJSON {
	t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	var p searchJSON
	s.do(t, anon, http.MethodGet, "/api/stuff?"+q.Encode(), nil).Want(http.StatusOK).Decode(&p)
	return p
}

// list2 lists a stuff with a description.
func (s *stack) list2(t testing.TB, u user, title, desc string, price int64) stuffJSON {
	t.Helper()
	return s.do(t, u, http.MethodPost, "/api/stuff", map[string]any{"title": title, "description": desc, "price": price}).stuff(http.StatusCreated)
}

// marked returns the marked words of segments and their joined text.
func marked(segs []segmentJSON) (words []string, text string) {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
		if s.Match {
			words = append(words, s.Text)
		}
	}
	return words, b.String()
}

// TestSearch: relevance over title and description, words, prefixes,
// accents and case folded, typos forgiven, highlights as segments that
// rebuild the text, and only available stuff.
func TestSearch(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ann, bob := s.user(), s.user()
	long := strings.Repeat("Chapter filler about nothing in particular. ", 40)
	linalg := s.list2(t, ann, "Linear algebra notes", "Vectors, matrices and eigenvalues with worked examples.", 500)
	eigen := s.list2(t, bob, "Eigenvalue problems", "Numerical linear algebra, second edition.", 900)
	appendix := s.list2(t, ann, "Calculus notes", long+"An appendix on linear algebra & <matrices>. "+long, 300)
	s.list2(t, bob, "Café chairs", "Two chairs from the CAFÉ downstairs.", 2500)
	s.list2(t, ann, "Algorithms textbook", "Sorting and graphs.", 4000)
	s.list2(t, bob, "Dormitory lamp", "Bright desk lamp.", 800)

	tests := []struct {
		name, q string
		want    []string // titles, in order
	}{
		{"title match ranks first, every word required", "linear algebra", []string{"Linear algebra notes", "Eigenvalue problems", "Calculus notes"}},
		{"case folded", "LINEAR ALGEBRA", []string{"Linear algebra notes", "Eigenvalue problems", "Calculus notes"}},
		{"prefix", "eigenv", []string{"Eigenvalue problems", "Linear algebra notes"}},
		{"accent in the text", "cafe", []string{"Café chairs"}},
		{"accent in the query", "cAfÉ", []string{"Café chairs"}},
		{"one swap forgiven", "algebar", []string{"Linear algebra notes", "Eigenvalue problems", "Calculus notes"}},
		{"two typos in a long word", "dormotury", []string{"Dormitory lamp"}},
		{"too many typos", "dxrmotury", nil},
		{"no match", "zebra", nil},
		{"punctuation only matches nothing", "!!!", nil},
		{"operator text is only words", `{"$ne":null}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := s.search(t, "q", tc.q)
			if !slices.Equal(p.titles(), tc.want) || p.Total != len(tc.want) {
				t.Fatalf("q=%q: %q (total %d), want %q", tc.q, p.titles(), p.Total, tc.want)
			}
		})
	}

	t.Run("highlights", func(t *testing.T) {
		p := s.search(t, "q", "linear algebra")
		for _, h := range p.Stuff {
			if h.Highlight == nil || h.Delivery != nil || h.Status != "available" {
				t.Fatalf("hit %+v: no highlight, or delivery shown, or not available", h)
			}
			words, text := marked(h.Highlight.Title)
			if text != h.Title {
				t.Fatalf("title segments %+v do not rebuild %q", h.Highlight.Title, h.Title)
			}
			if h.ID == linalg.ID && !slices.Equal(words, []string{"Linear", "algebra"}) {
				t.Fatalf("title marks %q", words)
			}
			dwords, dtext := marked(h.Highlight.Description)
			switch h.ID {
			case appendix.ID: // a fragment around the match, cut on both sides
				if h.Highlight.Description[0].Text != "…" || h.Highlight.Description[len(h.Highlight.Description)-1].Text != "…" ||
					!strings.Contains(appendix.Description, strings.Trim(dtext, "…")) || len(dtext) > 300 ||
					!slices.Equal(dwords, []string{"linear", "algebra"}) || !strings.Contains(dtext, "& <matrices>") {
					t.Fatalf("fragment %+v", h.Highlight.Description)
				}
			case eigen.ID:
				if dtext != eigen.Description || !slices.Equal(dwords, []string{"linear", "algebra"}) {
					t.Fatalf("description segments %+v", h.Highlight.Description)
				}
			}
		}
		// The raw body keeps markup characters escaped: no HTML is built here.
		r := s.do(t, anon, http.MethodGet, "/api/stuff?q=appendix", nil)
		if body := string(r.Want(200).Body); strings.Contains(body, "<matrices>") || !strings.Contains(body, `\u0026 \u003cmatrices\u003e`) {
			t.Fatalf("markup not escaped in %s", body)
		}
	})

	t.Run("no highlight without q", func(t *testing.T) {
		for _, h := range s.search(t, "sort", "price_asc").Stuff {
			if h.Highlight != nil {
				t.Fatalf("highlight without a search: %+v", h)
			}
		}
	})

	t.Run("seller filter with and without q", func(t *testing.T) {
		if got := s.search(t, "seller", bob.ID).titles(); !slices.Equal(got, []string{"Dormitory lamp", "Café chairs", "Eigenvalue problems"}) {
			t.Fatalf("bob's stuff %q", got)
		}
		if got := s.search(t, "seller", ann.ID, "q", "notes", "sort", "newest").titles(); !slices.Equal(got, []string{"Calculus notes", "Linear algebra notes"}) {
			t.Fatalf("ann's notes %q", got)
		}
		if p := s.search(t, "seller", newID()); p.Total != 0 || len(p.Stuff) != 0 {
			t.Fatalf("unknown seller has %+v", p)
		}
	})

	t.Run("an edit is searchable at once", func(t *testing.T) {
		st := s.list2(t, ann, "Chemistry kit", "Test tubes.", 700)
		if !s.search(t, "q", "chemistry").has(st.ID) {
			t.Fatal("new listing not found at once")
		}
		s.do(t, ann, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Biology kit","description":"Petri dishes.","price":700}`).stuff(200)
		if s.search(t, "q", "chemistry").has(st.ID) || s.search(t, "q", "tubes").has(st.ID) {
			t.Fatal("old words still find the edited listing")
		}
		if !s.search(t, "q", "petri biology").has(st.ID) {
			t.Fatal("new words do not find the edited listing")
		}
	})
}

// TestSortFilterAndPages: the orders, the price range and pages, alone and
// with q; ties go newest first.
func TestSortFilterAndPages(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	u := s.user()
	prices := []int64{500, 100, 300, 100, 900, 700, 300, 200}
	var ids []string // oldest first
	for i, p := range prices {
		ids = append(ids, s.list2(t, u, "Poster "+strconv.Itoa(i), "A wall poster.", p).ID)
	}
	s.list2(t, u, "Kettle", "Boils water.", 400) // not a poster
	title := func(i int) string { return "Poster " + strconv.Itoa(i) }
	tests := []struct {
		name string
		kv   []string
		want []string
		tot  int
	}{
		{"newest", []string{"q", "poster", "sort", "newest"}, []string{title(7), title(6), title(5), title(4), title(3), title(2), title(1), title(0)}, 8},
		{"price ascending, ties newest first", []string{"q", "poster", "sort", "price_asc"}, []string{title(3), title(1), title(7), title(6), title(2), title(0), title(5), title(4)}, 8},
		{"price descending, ties newest first", []string{"q", "poster", "sort", "price_desc"}, []string{title(4), title(5), title(0), title(6), title(2), title(7), title(3), title(1)}, 8},
		{"range", []string{"q", "poster", "min", "200", "max", "500", "sort", "price_asc"}, []string{title(7), title(6), title(2), title(0)}, 4},
		{"min only", []string{"q", "poster", "min", "700"}, []string{title(5), title(4)}, 2}, // equal relevance: newest first
		{"max only, no q", []string{"max", "100"}, []string{title(3), title(1)}, 2},
		{"min = max", []string{"min", "300", "max", "300"}, []string{title(6), title(2)}, 2},
		{"no q, price descending", []string{"sort", "price_desc", "limit", "3"}, []string{title(4), title(5), title(0)}, 9},
		{"no q, price ascending, page 2", []string{"sort", "price_asc", "limit", "3", "page", "2"}, []string{title(6), title(2), "Kettle"}, 9},
		{"q, page 2 of 3", []string{"q", "poster", "sort", "price_asc", "limit", "3", "page", "2"}, []string{title(6), title(2), title(0)}, 8},
		{"q, page 3 of 3", []string{"q", "poster", "sort", "price_asc", "limit", "3", "page", "3"}, []string{title(5), title(4)}, 8},
		{"q, past the last page", []string{"q", "poster", "limit", "3", "page", "4"}, nil, 8},
		{"empty range", []string{"min", "901"}, nil, 0},
		{"empty q is no search", []string{"q", "  ", "limit", "2"}, []string{"Kettle", title(7)}, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := s.search(t, tc.kv...)
			if !slices.Equal(p.titles(), tc.want) || p.Total != tc.tot {
				t.Fatalf("%v: %q total %d, want %q total %d", tc.kv, p.titles(), p.Total, tc.want, tc.tot)
			}
			for _, h := range p.Stuff {
				if h.Status != "available" || h.Delivery != nil {
					t.Fatalf("hit %+v", h)
				}
			}
		})
	}
	// The plain listing is what it was: newest first, every one.
	if p := s.list(t, "?limit=2"); p.Total != 9 || p.Stuff[0].Title != "Kettle" || p.Stuff[1].ID != ids[7] {
		t.Fatalf("plain listing %+v", p)
	}
}

// TestSearchValidation: every bad parameter is a normalized 400 naming it.
func TestSearchValidation(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	tests := []struct {
		query          string
		status         int
		field, message string
	}{
		{"q=" + strings.Repeat("a", 201), 400, "q", "Search must be at most 200 characters"},
		{"q=" + url.QueryEscape(strings.Repeat("é", 201)), 400, "q", "Search must be at most 200 characters"},
		{"q=" + url.QueryEscape(strings.Repeat("é", 200)), 200, "", ""},
		{"q=" + url.QueryEscape(strings.Repeat("w ", 13)), 200, "", ""}, // a repeated word counts once
		{"q=" + url.QueryEscape("a b c d e f g h i j k l m"), 400, "q", "Search must have at most 12 words"},
		{"q=a%00b", 400, "q", "Search must not contain control or text-direction characters"},
		{"q=" + url.QueryEscape("abc\u202edef"), 400, "q", "Search must not contain control or text-direction characters"},
		{"q=%ff%fe", 400, "q", "Search must not contain control or text-direction characters"},
		{"q=a&q=b", 400, "q", "Must be given once"},
		{"q[$ne]=x", 400, "q[$ne]", "Unknown query parameter"},
		{"sort=cheapest", 400, "sort", "Must be one of newest, price_asc, price_desc, relevance"},
		{"sort=relevance", 400, "sort", "Sorting by relevance needs a search (q)"},
		{"sort=PRICE_ASC", 400, "sort", ""},
		{"q=x&sort=relevance", 200, "", ""},
		{"min=-1", 400, "min", "Must be an integer from 0 to 1000000"},
		{"min=1.5", 400, "min", ""},
		{"min=abc", 400, "min", ""},
		{"min=1e3", 400, "min", ""},
		{"max=1000001", 400, "max", "Must be an integer from 0 to 1000000"},
		{"max=99999999999999999999", 400, "max", ""},
		{"min=500&max=100", 400, "min", "Must not be more than max"},
		{"min=0&max=0", 200, "", ""},
		{"min[$gt]=1", 400, "min[$gt]", "Unknown query parameter"},
		{"seller=abc", 400, "seller", "Must be a user id"},
		{"seller=" + strings.ToUpper(newID()), 400, "seller", "Must be a user id"},
		{"seller=%7B%22%24ne%22%3Anull%7D", 400, "seller", "Must be a user id"},
		{"cursor=abc", 400, "cursor", "Unknown query parameter"},
		{"page=0", 400, "page", "Must be an integer from 1 to 10000"},
		{"limit=101&q=x", 400, "limit", "Must be an integer from 1 to 100"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			r := s.do(t, anon, http.MethodGet, "/api/stuff?"+tc.query, nil)
			if tc.status == http.StatusOK {
				r.Want(http.StatusOK)
				return
			}
			r.wantError(tc.status, tc.message, tc.field)
		})
	}
	t.Run("every bad parameter is named", func(t *testing.T) {
		items := s.do(t, anon, http.MethodGet, "/api/stuff?min=x&max=y&sort=z&seller=w", nil).Want(400).Errors()
		var fields []string
		for _, it := range items {
			fields = append(fields, it.Field)
		}
		slices.Sort(fields)
		if !slices.Equal(fields, []string{"max", "min", "seller", "sort"}) {
			t.Fatalf("fields %q", fields)
		}
	})
}

// TestSearchFollowsOrders: a listing held by an order leaves the search and
// every filter on every replica, comes back when the order is cancelled,
// and leaves for good when one completes. The order events go through real
// NATS: one replica applies each (queue group), the other learns it from
// the stuff:updated event it publishes.
func TestSearchFollowsOrders(t *testing.T) {
	t.Parallel()
	a := newStack(t, observe)
	b := newStack(t, testkit.OnNATS(a.NATS), testkit.OnDB(a.DB))
	bus := a.Peer
	seller := a.user()
	replicas := []*stack{a, b}
	found := func(r *stack, id string, kv ...string) bool { return r.search(t, kv...).has(id) }
	everywhere := func(id string, want bool, what string) {
		t.Helper()
		for i, r := range replicas {
			for _, kv := range [][]string{{"q", "telescope"}, {"seller", seller.ID}, {"min", "100", "max", "100"}, {"sort", "price_desc"}} {
				testkit.Eventually(t, 10*time.Second, func() bool { return found(r, id, kv...) == want }, "replica %d, %v: %s", i, kv, what)
			}
		}
	}

	st := a.list2(t, seller, "Telescope", "A small refractor.", 100)
	if !found(a, st.ID, "q", "telescope") { // the replica that wrote it: at once
		t.Fatal("not findable on its own replica right after creation")
	}
	everywhere(st.ID, true, "new listing not findable")

	order := newID()
	bus.Publish(created(order, newID(), st.ID))
	everywhere(st.ID, false, "held listing still found")
	bus.Publish(cancelled(order, st.ID))
	everywhere(st.ID, true, "released listing not found again")

	buyer := a.user()
	o2 := newID()
	bus.Publish(created(o2, buyer.ID, st.ID))
	bus.Publish(completed(o2, buyer.ID, st.ID))
	a.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.Status == "sold" }, "sold")
	everywhere(st.ID, false, "sold listing still found")

	// A replica started now knows only what is available.
	c := newStack(t, testkit.OnNATS(a.NATS), testkit.OnDB(a.DB))
	if found(c, st.ID, "q", "telescope") {
		t.Fatal("a new replica finds the sold listing")
	}
	st2 := c.list2(t, seller, "Telescope mount", "", 100)
	if !found(c, st2.ID, "q", "telescope") {
		t.Fatal("new listing not found on the new replica")
	}
}

// TestSearchRateLimit: searches (a query text) and the other computed
// listings (an order, a price range, a seller) are limited per client
// address (RATE_LIMIT_SEARCH), with a 429 in the normalized shape and its
// Retry-After; the plain newest-first pages and other addresses are not
// held up.
func TestSearchRateLimit(t *testing.T) {
	t.Parallel()
	s := newStackWith(t, func(c *app.Config) {
		c.Service.Limits = service.Limits{On: true, Unsafe: ratelimit.Rule{Every: time.Millisecond, Burst: 1000, Name: "rate_limit_unsafe"}}
		c.SearchLimit = ratelimit.Rule{Every: time.Hour, Burst: 3, Name: "rate_limit_search"}
	})
	from := func(addr string) testkit.RequestOption { return testkit.WithHeader("X-Forwarded-For", addr) }
	for i := range 3 {
		s.HTTP.Do(http.MethodGet, fmt.Sprintf("/api/stuff?q=notes+%d", i), nil, from("203.0.113.7")).Want(http.StatusOK)
	}
	r := s.HTTP.Do(http.MethodGet, "/api/stuff?q=lamp", nil, from("203.0.113.7"))
	r.WantError(http.StatusTooManyRequests, "Too many requests: try again in 3600 seconds", "")
	if got := r.Header.Get("Retry-After"); got != "3600" {
		t.Fatalf("Retry-After %q, want 3600", got)
	}
	s.HTTP.Do(http.MethodGet, "/api/stuff", nil, from("203.0.113.7")).Want(http.StatusOK)
	s.HTTP.Do(http.MethodGet, "/api/stuff?page=2&limit=5&q=+", nil, from("203.0.113.7")).Want(http.StatusOK)
	// A blank text beside an order, a range or a seller is computed all
	// the same: limited.
	for _, q := range []string{"sort=price_asc&q=+", "min=1", "max=100", "seller=" + strings.Repeat("a", 24)} {
		s.HTTP.Do(http.MethodGet, "/api/stuff?"+q, nil, from("203.0.113.7")).WantError(http.StatusTooManyRequests, "Too many requests: try again in 3600 seconds", "")
	}
	s.HTTP.Do(http.MethodGet, "/api/stuff?q=lamp", nil, from("198.51.100.9")).Want(http.StatusOK)
}

// TestDeepPagesRateLimit: a plain page past the listings the catalog keeps
// in memory (READ_MODEL_MAX) is read from the database: limited as a
// search; the pages in memory are not, nor a direct caller's.
func TestDeepPagesRateLimit(t *testing.T) {
	t.Parallel()
	s := newStackWith(t, func(c *app.Config) {
		c.ReadModelMax = 2
		c.Service.Limits = service.Limits{On: true, Unsafe: ratelimit.Rule{Every: time.Millisecond, Burst: 1000, Name: "rate_limit_unsafe"}}
		c.SearchLimit = ratelimit.Rule{Every: time.Hour, Burst: 1, Name: "rate_limit_search"}
	})
	seller := s.user()
	for i := range 4 {
		s.list2(t, seller, fmt.Sprintf("Deep page %d", i), "Listed to fill pages.", 100+int64(i))
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		var p struct {
			Stuff              []json.RawMessage `json:"stuff"`
			Page, Limit, Total int
		}
		s.HTTP.Do(http.MethodGet, "/api/stuff?limit=2", nil, testkit.WithHeader("X-Forwarded-For", "192.0.2.1")).Decode(&p)
		return p.Total == 4
	}, "the four listings in the catalog")
	from := testkit.WithHeader("X-Forwarded-For", "203.0.113.8")
	for range 3 {
		s.HTTP.Do(http.MethodGet, "/api/stuff?limit=2", nil, from).Want(http.StatusOK) // in memory
	}
	s.HTTP.Do(http.MethodGet, "/api/stuff?page=2&limit=2", nil, from).Want(http.StatusOK) // the one allowed
	s.HTTP.Do(http.MethodGet, "/api/stuff?page=2&limit=2", nil, from).
		WantError(http.StatusTooManyRequests, "Too many requests: try again in 3600 seconds", "")
	// A direct caller (no forwarded address: in the cluster, the storefront
	// paging through every listing for its sitemap) is not limited.
	for range 3 {
		s.HTTP.Do(http.MethodGet, "/api/stuff?page=2&limit=2", nil).Want(http.StatusOK)
		s.HTTP.Do(http.MethodGet, "/api/stuff?q=deep", nil).Want(http.StatusOK)
	}
}
