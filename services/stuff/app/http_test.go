package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestCreateAndGet(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, stranger := s.user(), s.user()
	tests := []struct {
		name string
		body map[string]any
		want stuffJSON
	}{
		{name: "every field", body: map[string]any{"title": "Calculus notes", "description": "All of it", "price": 1250, "delivery": "https://x.example/notes.pdf"},
			want: stuffJSON{Title: "Calculus notes", Description: "All of it", Price: 1250, Delivery: ptr("https://x.example/notes.pdf")}},
		{name: "title only and bounds", body: map[string]any{"title": strings.Repeat("é", 120), "price": 1_000_000},
			want: stuffJSON{Title: strings.Repeat("é", 120), Price: 1_000_000, Delivery: ptr("")}},
		{name: "title is trimmed, currency usd accepted", body: map[string]any{"title": "  Template  ", "price": 1, "currency": "usd"},
			want: stuffJSON{Title: "Template", Price: 1, Delivery: ptr("")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.do(t, seller, http.MethodPost, "/api/stuff", tc.body).stuff(http.StatusCreated)
			if len(got.ID) != 24 || got.UserID != seller.ID || got.Status != "available" || got.Version != 1 ||
				got.Currency != "usd" || got.OrderID != "" || got.CreatedAt.IsZero() {
				t.Fatalf("created %+v", got)
			}
			if got.Title != tc.want.Title || got.Description != tc.want.Description || got.Price != tc.want.Price ||
				*got.Delivery != *tc.want.Delivery {
				t.Fatalf("created %+v, want %+v", got, tc.want)
			}
			for _, u := range []user{seller, stranger, anon} {
				one := s.get(t, u, got.ID)
				if one.Title != got.Title || one.Version != 1 || one.Status != "available" || !one.CreatedAt.Equal(got.CreatedAt) {
					t.Fatalf("GET %+v, want %+v", one, got)
				}
				if (one.Delivery != nil) != (u == seller) {
					t.Fatalf("delivery shown to %q: %v (seller %s)", u.ID, one.Delivery != nil, seller.ID)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestCreateBadInput(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	u := s.user()
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name    string
		user    user
		body    string
		ctype   string
		status  int
		message string
		field   string
	}{
		{name: "anonymous", user: anon, body: `{"title":"a","price":1}`, status: 401, message: "Not authorized"},
		{name: "operator object as title", user: u, body: `{"title":{"$ne":null},"price":1}`, status: 400, message: "Must be a string", field: "title"},
		{name: "operator object as price", user: u, body: `{"title":"a","price":{"$gt":0}}`, status: 400, message: "Must be an integer", field: "price"},
		{name: "price as float", user: u, body: `{"title":"a","price":10.5}`, status: 400, message: "Must be an integer", field: "price"},
		{name: "price as string", user: u, body: `{"title":"a","price":"10"}`, status: 400, message: "Must be an integer", field: "price"},
		{name: "price as exponent", user: u, body: `{"title":"a","price":1e3}`, status: 400, field: "price"},
		{name: "price zero", user: u, body: `{"title":"a","price":0}`, status: 400, field: "price"},
		{name: "price negative", user: u, body: `{"title":"a","price":-1}`, status: 400, field: "price"},
		{name: "price too high", user: u, body: `{"title":"a","price":1000001}`, status: 400, field: "price"},
		{name: "price missing", user: u, body: `{"title":"a"}`, status: 400, field: "price"},
		{name: "title missing", user: u, body: `{"price":5}`, status: 400, message: "Title is required", field: "title"},
		{name: "title blank", user: u, body: `{"title":"   ","price":5}`, status: 400, field: "title"},
		{name: "title 121 chars", user: u, body: `{"title":"` + long(121) + `","price":5}`, status: 400, field: "title"},
		{name: "description too long", user: u, body: `{"title":"a","price":5,"description":"` + long(5001) + `"}`, status: 400, field: "description"},
		{name: "delivery too long", user: u, body: `{"title":"a","price":5,"delivery":"` + long(2001) + `"}`, status: 400, field: "delivery"},
		{name: "currency not usd", user: u, body: `{"title":"a","price":5,"currency":"eur"}`, status: 400, field: "currency"},
		{name: "unknown field", user: u, body: `{"title":"a","price":5,"userId":"someone"}`, status: 400, message: "Unknown field", field: "userId"},
		{name: "status cannot be set", user: u, body: `{"title":"a","price":5,"status":"sold"}`, status: 400, field: "status"},
		{name: "malformed JSON", user: u, body: `{"title":"a",`, status: 400, message: "Malformed JSON"},
		{name: "array body", user: u, body: `[{"title":"a","price":5}]`, status: 400},
		{name: "empty body", user: u, body: ``, status: 400},
		{name: "two objects", user: u, body: `{"title":"a","price":5}{"title":"b","price":5}`, status: 400},
		{name: "not JSON content type", user: u, body: `title=a`, ctype: "application/x-www-form-urlencoded", status: 415},
		{name: "body too large", user: u, body: `{"title":"a","price":5,"description":"` + long(70_000) + `"}`, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.ctype
			if ct == "" {
				ct = "application/json"
			}
			s.do(t, tc.user, http.MethodPost, "/api/stuff", tc.body, testkit.WithHeader("Content-Type", ct)).
				wantError(tc.status, tc.message, tc.field)
		})
	}
	mine := s.do(t, u, http.MethodGet, "/api/stuff/mine", nil).mine()
	if len(mine.Stuff) != 0 {
		t.Fatalf("bad input stored %d listings", len(mine.Stuff))
	}
}

func TestGetNotFound(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	real := s.create(t, s.user(), "Real", 100, "")
	for _, id := range []string{
		newID(),                    // well formed, unknown
		"123",                      // short
		"zzzzzzzzzzzzzzzzzzzzzzzz", // 24, not hex
		strings.ToUpper(real.ID),   // not the canonical form
		real.ID + "0",              // too long
		"%7B%22%24ne%22%3Anull%7D", // {"$ne":null}
		"%24where",
	} {
		t.Run(id, func(t *testing.T) {
			s.do(t, anon, http.MethodGet, "/api/stuff/"+id, nil).wantError(404, "Not Found", "")
		})
	}
}

// TestUndecodablePathEscape documents what a path whose percent-escape does
// not decode (/api/stuff/%zz) gets: Go's HTTP server refuses the request
// line itself (url.ParseRequestURI fails in net/http's readRequest) and
// writes its own plain-text 400 and closes the connection before any
// handler, middleware or error handler of the service runs; http.Server
// has no hook for it. So the answer is not the normalized error shape, and
// the service cannot make it so short of parsing HTTP itself. (The gateway
// of the local stack, also a Go server, and ingress-nginx in the cluster
// answer such a request themselves before it reaches the service.) An
// escape that decodes reaches the handler and is answered normalized: a
// 404, as every id that is not 24 lowercase hex digits.
func TestUndecodablePathEscape(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	for _, path := range []string{"/api/stuff/%zz", "/api/stuff/%", "/api/stuff/%zz?page=1", "/api/%zz/stuff"} {
		t.Run(path, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: stuffmart.dev\r\n\r\n", path); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusBadRequest || string(b) != "400 Bad Request" ||
				res.Header.Get("Content-Type") != "text/plain; charset=utf-8" || !res.Close {
				t.Fatalf("GET %s = %d %q, headers %v: net/http's own answer changed", path, res.StatusCode, b, res.Header)
			}
			if id := res.Header.Get(echo.HeaderXRequestID); id != "" {
				t.Fatalf("GET %s reached the service (request id %s)", path, id)
			}
		})
	}
	for _, path := range []string{"/api/stuff/%25zz", "/api/stuff/%7A%7A"} {
		t.Run(path, func(t *testing.T) {
			r := s.do(t, anon, http.MethodGet, path, nil)
			r.wantError(http.StatusNotFound, "Not Found", "")
			if r.Header.Get(echo.HeaderXRequestID) == "" {
				t.Fatalf("GET %s: no request id, so its absence above proves nothing", path)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller, stranger := s.user(), s.user()
	tests := []struct {
		name    string
		user    user
		id      func(own stuffJSON) string
		body    string
		status  int
		message string
		field   string
		check   func(t *testing.T, before, after stuffJSON)
	}{
		{name: "owner edits every field", user: seller, body: `{"title":"New title","description":"new","price":999,"delivery":"new secret"}`, status: 200,
			check: func(t *testing.T, before, after stuffJSON) {
				if after.Title != "New title" || after.Description != "new" || after.Price != 999 || *after.Delivery != "new secret" ||
					after.Version != before.Version+1 || !after.CreatedAt.Equal(before.CreatedAt) {
					t.Fatalf("after edit %+v (before %+v)", after, before)
				}
			}},
		{name: "absent delivery and description are kept", user: seller, body: `{"title":"Only title","price":5}`, status: 200,
			check: func(t *testing.T, before, after stuffJSON) {
				if after.Title != "Only title" || after.Description != before.Description || *after.Delivery != *before.Delivery || after.Version != before.Version+1 {
					t.Fatalf("after edit %+v (before %+v)", after, before)
				}
			}},
		{name: "same values keep the version", user: seller, body: `{"title":"Orig","price":100}`, status: 200,
			check: func(t *testing.T, before, after stuffJSON) {
				if after.Version != before.Version {
					t.Fatalf("version %d after a no-op edit, want %d", after.Version, before.Version)
				}
			}},
		{name: "stranger", user: stranger, body: `{"title":"Mine now","price":1}`, status: 401, message: "Not authorized"},
		{name: "anonymous", user: anon, body: `{"title":"Mine now","price":1}`, status: 401, message: "Not authorized"},
		{name: "unknown id", user: seller, id: func(stuffJSON) string { return newID() }, body: `{"title":"x","price":1}`, status: 404, message: "Not Found"},
		{name: "malformed id", user: seller, id: func(stuffJSON) string { return "not-an-id" }, body: `{"title":"x","price":1}`, status: 404, message: "Not Found"},
		{name: "operator object", user: seller, body: `{"title":{"$set":{"userId":"x"}},"price":1}`, status: 400, field: "title"},
		{name: "price as float", user: seller, body: `{"title":"x","price":1.5}`, status: 400, field: "price"},
		{name: "price too high", user: seller, body: `{"title":"x","price":1000001}`, status: 400, field: "price"},
		{name: "unknown field", user: seller, body: `{"title":"x","price":1,"version":7}`, status: 400, field: "version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			own := s.do(t, seller, http.MethodPost, "/api/stuff", `{"title":"Orig","description":"desc","price":100,"delivery":"secret"}`).stuff(201)
			id := own.ID
			if tc.id != nil {
				id = tc.id(own)
			}
			r := s.do(t, tc.user, http.MethodPut, "/api/stuff/"+id, tc.body)
			if tc.status != 200 {
				r.wantError(tc.status, tc.message, tc.field)
				if after := s.get(t, seller, own.ID); after.Version != own.Version || after.Title != own.Title || after.Price != own.Price {
					t.Fatalf("refused edit changed the stuff: %+v", after)
				}
				return
			}
			after := r.stuff(200)
			tc.check(t, own, after)
			// Every reader sees the edit at once (the catalog is updated by
			// the write itself).
			got := s.get(t, anon, own.ID)
			if got.Title != after.Title || got.Version != after.Version || got.Delivery != nil {
				t.Fatalf("GET after edit %+v, want %+v without delivery", got, after)
			}
			if p := s.list(t, "?limit=100"); !p.has(own.ID) {
				t.Fatal("edited stuff missing from the listing")
			} else {
				for _, it := range p.Stuff {
					if it.ID == own.ID && (it.Title != after.Title || it.Version != after.Version) {
						t.Fatalf("listing shows %+v, want %+v", it, after)
					}
				}
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	u := s.user()
	var ids []string // oldest first
	for i := range 25 {
		ids = append(ids, s.create(t, u, "Item "+string(rune('A'+i)), int64(100+i), "secret").ID)
	}
	newest := make([]string, len(ids))
	for i, id := range ids {
		newest[len(ids)-1-i] = id
	}
	tests := []struct {
		query     string
		page, lim int
		want      []string
	}{
		{query: "", page: 1, lim: 20, want: newest[:20]},
		{query: "?page=2", page: 2, lim: 20, want: newest[20:]},
		{query: "?page=3", page: 3, lim: 20, want: nil},
		{query: "?limit=5&page=3", page: 3, lim: 5, want: newest[10:15]},
		{query: "?limit=100", page: 1, lim: 100, want: newest},
		{query: "?limit=1", page: 1, lim: 1, want: newest[:1]},
		{query: "?page=10000&limit=100", page: 10000, lim: 100, want: nil},
	}
	for _, tc := range tests {
		t.Run("ok"+tc.query, func(t *testing.T) {
			p := s.list(t, tc.query)
			if p.Page != tc.page || p.Limit != tc.lim || p.Total != 25 {
				t.Fatalf("page %d limit %d total %d, want %d %d 25", p.Page, p.Limit, p.Total, tc.page, tc.lim)
			}
			if strings.Join(p.ids(), ",") != strings.Join(tc.want, ",") {
				t.Fatalf("ids %v, want %v", p.ids(), tc.want)
			}
			for _, it := range p.Stuff {
				if it.Delivery != nil || it.Status != "available" {
					t.Fatalf("listing item %+v shows delivery or is not available", it)
				}
			}
		})
	}
	for _, q := range []struct{ query, field string }{
		{"?page=0", "page"}, {"?page=-1", "page"}, {"?page=abc", "page"}, {"?page=1.5", "page"}, {"?page=10001", "page"},
		{"?limit=0", "limit"}, {"?limit=101", "limit"}, {"?limit=ten", "limit"},
		{"?page%5B%24gt%5D=1", "page[$gt]"}, {"?page[$gt]=1", "page[$gt]"}, {"?foo=bar", "foo"},
		{"?page=1&page=2", "page"}, {"?limit=99999999999999999999999", "limit"},
	} {
		t.Run("bad"+q.query, func(t *testing.T) {
			s.do(t, anon, http.MethodGet, "/api/stuff"+q.query, nil).wantError(400, "", q.field)
		})
	}
}

func TestMine(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ann, bob := s.user(), s.user()
	a1 := s.create(t, ann, "Ann one", 100, "ann secret")
	s.create(t, bob, "Bob one", 100, "")
	a2 := s.create(t, ann, "Ann two", 100, "")
	tests := []struct {
		name string
		user user
		want []string
	}{
		{name: "ann", user: ann, want: []string{a2.ID, a1.ID}},
		{name: "someone with none", user: s.user(), want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := s.do(t, tc.user, http.MethodGet, "/api/stuff/mine", nil).mine()
			var got []string
			for _, it := range m.Stuff {
				got = append(got, it.ID)
				if it.UserID != tc.user.ID || it.Delivery == nil {
					t.Fatalf("mine item %+v: not the caller's or without delivery", it)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("mine %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("anonymous", func(t *testing.T) {
		s.do(t, anon, http.MethodGet, "/api/stuff/mine", nil).wantError(401, "Not authorized", "")
	})
}

func TestProbes(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.do(t, anon, http.MethodGet, "/healthz", nil).Want(200)
	testkit.Eventually(t, 10*time.Second, func() bool { return s.do(t, anon, http.MethodGet, "/readyz", nil).Status == 200 }, "not ready")
}

// TestCreateIdempotencyKey: a create retried with the same Idempotency-Key
// makes one listing. A retry after an answered try gets the same answer; a
// retry after a try that saved the listing and died before answering (its
// claim left unfinished) takes the claim over, mints the same id and answers
// the listing the first try saved.
func TestCreateIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller := s.user()
	body := map[string]any{"title": "Retried", "description": "once", "price": 300, "delivery": "link"}
	post := func(key string) response {
		return s.do(t, seller, http.MethodPost, "/api/stuff", body, testkit.WithHeader("Idempotency-Key", key))
	}

	first := post("form-1")
	again := post("form-1")
	a, b := first.stuff(http.StatusCreated), again.stuff(http.StatusCreated)
	if a.ID != b.ID || string(first.Body) != string(again.Body) {
		t.Fatalf("the retry answered %s, the first try %s", again.Body, first.Body)
	}

	// The second form: its first try saved the listing, then its process
	// died before it answered.
	died := post("form-2")
	saved := died.stuff(http.StatusCreated)
	claim := seller.ID + "\x00POST\x00/api/stuff\x00form-2"
	res, err := s.DB.Collection("idempotency").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: claim}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "done", Value: false}, {Key: "claimedAt", Value: time.Now().UTC().Add(-time.Minute)}}},
		{Key: "$unset", Value: bson.D{{Key: "status", Value: ""}, {Key: "body", Value: ""}, {Key: "contentType", Value: ""}}},
	})
	if err != nil || res.MatchedCount != 1 {
		t.Fatalf("no idempotency claim for the first try: %v, %+v", err, res)
	}
	retry := post("form-2")
	if got := retry.stuff(http.StatusCreated); got.ID != saved.ID || string(retry.Body) != string(died.Body) {
		t.Fatalf("the retry after a crash answered %s, the first try had saved %s", retry.Body, died.Body)
	}
	if retry.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("the retry after a crash was replayed, not run again")
	}

	mine := s.do(t, seller, http.MethodGet, "/api/stuff/mine", nil).mine()
	if len(mine.Stuff) != 2 {
		t.Fatalf("two forms, each sent twice, made %d listings", len(mine.Stuff))
	}
}
