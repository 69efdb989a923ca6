package service_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// idemService serves POST /things behind Idempotent: it counts its runs and
// creates a thing whose id is minted from the key when there is one.
type idemService struct {
	*service.Service
	runs  atomic.Int32
	fail  atomic.Bool
	slow  chan struct{}
	since chan time.Time
}

func newIdemService(t *testing.T) *idemService {
	s := &idemService{Service: open(t, testConfig(t, testkit.NATS(t))), since: make(chan time.Time, 10)}
	s.Echo.POST("/things", func(c echo.Context) error {
		s.runs.Add(1)
		if s.slow != nil {
			<-s.slow
		}
		if s.fail.Load() {
			return errFailing
		}
		var in struct {
			Name string `json:"name"`
		}
		if err := web.Bind(c, &in); err != nil {
			return err
		}
		id := testkit.RandomID(t)[:24]
		if i, ok := web.IdempotencyOf(c.Request().Context()); ok {
			u, _ := auth.FromEcho(c)
			id = mongox.DerivedObjectID(i.Since, u.ID, i.Key).Hex()
			s.since <- i.Since
		}
		return c.JSON(http.StatusCreated, map[string]string{"id": id, "name": in.Name})
	}, auth.RequireUser, s.Idempotent())
	s.Start()
	return s
}

var errFailing = &errs.DatabaseConnectionError{}

func hashOf(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}

func post(s *idemService, cookie *http.Cookie, key, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/things", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(service.IdempotencyHeader, key)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	rec := httptest.NewRecorder()
	s.Echo.ServeHTTP(rec, req)
	return rec
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newIdemService(t)
	ann := testkit.SessionCookie(t, s.Sessions, auth.User{ID: "ann", Email: "ann@uni.edu", Role: auth.RoleUser}, "")
	bob := testkit.SessionCookie(t, s.Sessions, auth.User{ID: "bob", Email: "bob@uni.edu", Role: auth.RoleUser}, "")

	// Without a key, every request is its own.
	a, b := post(s, ann, "", `{"name":"x"}`), post(s, ann, "", `{"name":"x"}`)
	if a.Code != http.StatusCreated || b.Code != http.StatusCreated || a.Body.String() == b.Body.String() || s.runs.Load() != 2 {
		t.Fatalf("without a key: %d %s / %d %s, %d runs", a.Code, a.Body, b.Code, b.Body, s.runs.Load())
	}

	// With a key, the second request gets the first answer, not a second run.
	first := post(s, ann, "k-1", `{"name":"notes"}`)
	again := post(s, ann, "k-1", `{"name":"notes"}`)
	if first.Code != http.StatusCreated || again.Code != http.StatusCreated || again.Body.String() != first.Body.String() {
		t.Fatalf("replay: %d %s then %d %s", first.Code, first.Body, again.Code, again.Body)
	}
	if again.Header().Get("Idempotent-Replayed") != "true" || first.Header().Get("Idempotent-Replayed") != "" {
		t.Fatalf("Idempotent-Replayed: first %q, again %q", first.Header().Get("Idempotent-Replayed"), again.Header().Get("Idempotent-Replayed"))
	}
	if s.runs.Load() != 3 {
		t.Fatalf("%d runs, want 3: the replay ran the handler", s.runs.Load())
	}

	// The same key with another body, a key of another user, a bad key.
	other := post(s, ann, "k-1", `{"name":"other"}`)
	if other.Code != http.StatusBadRequest || !strings.Contains(other.Body.String(), `"field":"Idempotency-Key"`) {
		t.Fatalf("the key reused with another body: %d %s", other.Code, other.Body)
	}
	if r := post(s, bob, "k-1", `{"name":"notes"}`); r.Code != http.StatusCreated || r.Body.String() == first.Body.String() {
		t.Fatalf("another user's same key: %d %s", r.Code, r.Body)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "two words", "tab\tkey"} {
		if r := post(s, ann, bad, `{}`); r.Code != http.StatusBadRequest {
			t.Fatalf("key %q: %d %s, want 400", bad, r.Code, r.Body)
		}
	}

	// A 5xx is not kept: the retry runs again.
	s.fail.Store(true)
	if r := post(s, ann, "k-2", `{"name":"x"}`); r.Code != http.StatusServiceUnavailable {
		t.Fatalf("failing: %d %s", r.Code, r.Body)
	}
	s.fail.Store(false)
	if r := post(s, ann, "k-2", `{"name":"x"}`); r.Code != http.StatusCreated || r.Header().Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after a 5xx: %d %s (replayed %q)", r.Code, r.Body, r.Header().Get("Idempotent-Replayed"))
	}
}

// Many tries of one key at once: one runs, the others are told it is in
// progress (409) or, once it answered, get its answer.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	s := newIdemService(t)
	s.slow = make(chan struct{})
	ann := testkit.SessionCookie(t, s.Sessions, auth.User{ID: "ann", Email: "ann@uni.edu", Role: auth.RoleUser}, "")
	const n = 10
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { codes <- post(s, ann, "same", `{"name":"x"}`).Code })
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return s.runs.Load() >= 1 && len(codes) == n-1 }, "the others did not answer while the first ran")
	close(s.slow)
	wg.Wait()
	close(codes)
	created, busy := 0, 0
	for c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			busy++
		default:
			t.Fatalf("answer %d", c)
		}
	}
	if s.runs.Load() != 1 || created != 1 || busy != n-1 {
		t.Fatalf("%d runs, %d created, %d told in progress; want 1, 1, %d", s.runs.Load(), created, busy, n-1)
	}
}

// A first try that died without answering (its claim left behind) is taken
// over by a retry after the claim's timeout, which mints the same id from
// the same claim time.
func TestIdempotencyKeyTakeOver(t *testing.T) {
	t.Parallel()
	s := newIdemService(t)
	ann := testkit.SessionCookie(t, s.Sessions, auth.User{ID: "ann", Email: "ann@uni.edu", Role: auth.RoleUser}, "")
	claimed := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	_, err := s.DB.Collection("idempotency").InsertOne(context.Background(), bson.D{
		{Key: "_id", Value: "ann\x00POST\x00/things\x00dead"},
		{Key: "bodyHash", Value: "d0e2b5a0d6f3c3b0c7f7d9b3b76c1c3f1e2f0ad1c27a4b8b5c5b1c9e8e0bfa12"},
		{Key: "done", Value: false}, {Key: "createdAt", Value: claimed}, {Key: "claimedAt", Value: claimed},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The body differs from the dead try's (a made-up hash): refused.
	if r := post(s, ann, "dead", `{"name":"x"}`); r.Code != http.StatusBadRequest {
		t.Fatalf("another body: %d %s", r.Code, r.Body)
	}
	// With the dead try's body, the retry takes over.
	if _, err := s.DB.Collection("idempotency").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: "ann\x00POST\x00/things\x00dead"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "bodyHash", Value: hashOf(`{"name":"x"}`)}}}}); err != nil {
		t.Fatal(err)
	}
	r := post(s, ann, "dead", `{"name":"x"}`)
	if r.Code != http.StatusCreated {
		t.Fatalf("take over: %d %s", r.Code, r.Body)
	}
	if since := <-s.since; !since.Equal(claimed) {
		t.Fatalf("the handler minted from %v, want the first claim's time %v", since, claimed)
	}
	if !strings.Contains(r.Body.String(), mongox.DerivedObjectID(claimed, "ann", "dead").Hex()) {
		t.Fatalf("answer %s: not the id the first try would have minted", r.Body)
	}
}
