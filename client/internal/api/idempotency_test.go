package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/client/internal/api"
)

// recorded is one request the recording service got.
type recorded struct {
	method, path, key string
	header            http.Header
	body              string
}

// answer is what the recording service says to a request.
type answer struct {
	status   int
	body     string
	replayed bool
}

// recorder is a stand-in for the services that records every request's
// Idempotency-Key and answers from a script per path (the last answer of
// a script repeats).
type recorder struct {
	mu     sync.Mutex
	got    []recorded
	script map[string][]answer
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, recorded{req.Method, req.URL.Path, req.Header.Get(api.IdempotencyHeader), req.Header.Clone(), string(body)})
	key := req.Method + " " + req.URL.Path
	s := r.script[key]
	a := answer{status: http.StatusOK, body: `{}`}
	if len(s) > 0 {
		a = s[0]
		if len(s) > 1 {
			r.script[key] = s[1:]
		}
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if a.replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(a.body))
}

// requests returns the recorded requests of method and path.
func (r *recorder) requests(method, path string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, g := range r.got {
		if g.method == method && g.path == path {
			out = append(out, g)
		}
	}
	return out
}

// all returns every recorded request.
func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

func keysOf(rs []recorded) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.key
	}
	return out
}

func startRecorder(t *testing.T, script map[string][]answer) (*recorder, *api.Clients) {
	t.Helper()
	rec := &recorder{script: script}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c, err := api.New(srv.URL, srv.URL, srv.URL, srv.URL, api.Options{Timeout: 5 * time.Second, PayTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return rec, c
}

const (
	key     = "d8JbM0bV3p1dZx8r5GkQeA"
	listing = `{"id":"6650a0000000000000000001","title":"Notes","price":100}`
	order   = `{"id":"6650a0000000000000000002","status":"created"}`
	payment = `{"id":"6650a0000000000000000003","orderId":"6650a0000000000000000002","amount":100}`
	held    = `{"errors":[{"message":"held"}]}`
)

// TestCreatesSendTheirKey: every create carries the submission's key as its
// Idempotency-Key; a create without one and every other call carry none.
func TestCreatesSendTheirKey(t *testing.T) {
	t.Parallel()
	rec, c := startRecorder(t, map[string][]answer{
		"POST /api/stuff":    {{status: http.StatusCreated, body: listing}},
		"POST /api/orders":   {{status: http.StatusCreated, body: order}},
		"POST /api/payments": {{status: http.StatusCreated, body: payment}},
	})
	ctx := context.Background()
	s := api.Session{Cookie: "sealed"}
	if _, err := c.Stuff.Create(ctx, s, key, api.ListingInput{Title: "Notes", Price: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Orders.Create(ctx, s, key, "6650a0000000000000000001"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Payments.Pay(ctx, s, key, api.PayInput{OrderID: "6650a0000000000000000002", PaymentMethod: "pm_card_visa"}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/stuff", "/api/orders", "/api/payments"} {
		if got := keysOf(rec.requests(http.MethodPost, path)); len(got) != 1 || got[0] != key {
			t.Errorf("POST %s sent Idempotency-Key %q, want [%q]", path, got, key)
		}
	}

	if _, err := c.Stuff.Create(ctx, s, "", api.ListingInput{Title: "Notes", Price: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stuff.Update(ctx, s, "6650a0000000000000000001", api.ListingInput{Title: "Notes", Price: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Payments.CreateCoupon(ctx, s, api.NewCoupon{PercentOff: 10}); err != nil {
		t.Fatal(err)
	}
	if err := c.Orders.Cancel(ctx, s, "6650a0000000000000000002"); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(rec.requests(http.MethodPost, "/api/stuff")); len(got) != 2 || got[1] != "" {
		t.Errorf("a create without a key sent %q", got)
	}
	for _, r := range rec.all() {
		if r.path != "/api/stuff" && r.path != "/api/orders" && r.path != "/api/payments" && r.key != "" {
			t.Errorf("%s %s sent Idempotency-Key %q", r.method, r.path, r.key)
		}
	}
}

// TestCreateKeys covers the answers about the key itself, and the replica
// retries of a create.
func TestCreateKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := api.Session{Cookie: "sealed"}

	t.Run("each retry while a replica catches up has its own key, derived from the submission's", func(t *testing.T) {
		t.Parallel()
		notFound := answer{status: http.StatusNotFound, body: `{"errors":[{"message":"Not Found"}]}`}
		rec, c := startRecorder(t, map[string][]answer{
			"POST /api/orders":                        {notFound, notFound, {status: http.StatusCreated, body: order}},
			"POST /api/payments":                      {notFound, {status: http.StatusCreated, body: payment}},
			"GET /api/stuff/6650a0000000000000000001": {{status: http.StatusOK, body: listing}},
		})
		o, err := c.Orders.Create(ctx, s, key, "6650a0000000000000000001")
		if err != nil || o.ID != "6650a0000000000000000002" {
			t.Fatalf("order %+v, %v", o, err)
		}
		if got, want := keysOf(rec.requests(http.MethodPost, "/api/orders")), []string{key, key + ".1", key + ".2"}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("order attempts sent keys %q, want %q", got, want)
		}
		if _, err := c.Payments.Pay(ctx, s, key, api.PayInput{OrderID: "6650a0000000000000000002", PaymentMethod: "pm_card_visa"}); err != nil {
			t.Fatal(err)
		}
		if got, want := keysOf(rec.requests(http.MethodPost, "/api/payments")), []string{key, key + ".1"}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("payment attempts sent keys %q, want %q", got, want)
		}
	})

	t.Run("while the first request with the key is answered, the create waits for its answer", func(t *testing.T) {
		t.Parallel()
		inProgress := answer{status: http.StatusConflict, body: `{"errors":[{"message":"in progress"}]}`}
		rec, c := startRecorder(t, map[string][]answer{
			"POST /api/stuff": {inProgress, inProgress, {status: http.StatusCreated, body: listing, replayed: true}},
		})
		l, err := c.Stuff.Create(ctx, s, key, api.ListingInput{Title: "Notes", Price: 100})
		if err != nil || l.ID != "6650a0000000000000000001" {
			t.Fatalf("listing %+v, %v; want the first request's listing", l, err)
		}
		if got := keysOf(rec.requests(http.MethodPost, "/api/stuff")); len(got) != 3 || got[2] != key {
			t.Errorf("sent keys %q, want the same key 3 times", got)
		}
	})

	t.Run("a 409 that is the create's own answer is returned once it is replayed", func(t *testing.T) {
		t.Parallel()
		rec, c := startRecorder(t, map[string][]answer{
			"POST /api/orders": {{status: http.StatusConflict, body: held}, {status: http.StatusConflict, body: held, replayed: true}},
		})
		_, err := c.Orders.Create(ctx, s, key, "6650a0000000000000000001")
		if api.StatusOf(err) != http.StatusConflict {
			t.Fatalf("err %v, want the 409", err)
		}
		if n := len(rec.requests(http.MethodPost, "/api/orders")); n != 2 {
			t.Errorf("%d requests, want 2 (the answer, then its replay)", n)
		}
	})

	t.Run("the key used before with another body: a key of its own for this body", func(t *testing.T) {
		t.Parallel()
		reused := answer{status: http.StatusBadRequest, body: `{"errors":[{"message":"used","field":"Idempotency-Key"}]}`}
		script := func() map[string][]answer {
			return map[string][]answer{"POST /api/stuff": {reused, {status: http.StatusCreated, body: listing}}}
		}
		in := api.ListingInput{Title: "Notes, corrected", Price: 100}
		rec, c := startRecorder(t, script())
		if _, err := c.Stuff.Create(ctx, s, key, in); err != nil {
			t.Fatal(err)
		}
		first := keysOf(rec.requests(http.MethodPost, "/api/stuff"))
		if len(first) != 2 || first[0] != key || !strings.HasPrefix(first[1], key+"-") {
			t.Fatalf("sent keys %q, want %q then a key derived from it", first, key)
		}
		// The same input submitted again derives the same key.
		rec, c = startRecorder(t, script())
		if _, err := c.Stuff.Create(ctx, s, key, in); err != nil {
			t.Fatal(err)
		}
		if again := keysOf(rec.requests(http.MethodPost, "/api/stuff")); again[1] != first[1] {
			t.Errorf("the same input derived %q, then %q", first[1], again[1])
		}
	})
}
