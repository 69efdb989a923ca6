package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// stack is one running stuff service (one replica), started by testkit.
type stack struct {
	*testkit.Component
	// handler is the app's handler, for benchmarks that call it in-process.
	handler http.Handler
}

// observe has the stack's Peer record the stuff events the service
// publishes (one recording stack per NATS prefix: the Peers of one prefix
// share a queue group).
var observe = testkit.Observe(events.StuffCreated, events.StuffUpdated)

// newStack starts the service with the test defaults: room for 20,000
// listings in memory and a clock that ticks one millisecond per reading.
func newStack(t testing.TB, opts ...testkit.Option) *stack {
	t.Helper()
	return newStackWith(t, func(*app.Config) {}, opts...)
}

// newStackWith starts the service with the test defaults changed by tune.
func newStackWith(t testing.TB, tune func(*app.Config), opts ...testkit.Option) *stack {
	t.Helper()
	s := &stack{}
	build := func(ctx context.Context, sc service.Config, log *slog.Logger) (testkit.App, error) {
		cfg := app.Config{Service: sc, ReadModelMax: 20_000, CacheMax: 10_000, ReconcileEvery: time.Minute, Now: tickClock()}
		tune(&cfg)
		a, err := app.New(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		s.handler = a.Handler()
		return a, nil
	}
	s.Component = testkit.Start(t, "stuff", build, opts...)
	return s
}

func readModelMax(n int) func(*app.Config) { return func(c *app.Config) { c.ReadModelMax = n } }

// realClock uses time.Now (benchmarks: the cache's TTL runs on it).
func realClock(c *app.Config) { c.Now = nil }

// tickClock is pinned at 2025-03-01 12:00 UTC and moves one millisecond on
// every reading, so listings created one after the other have distinct,
// ordered times.
func tickClock() func() time.Time {
	c := testkit.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	return func() time.Time {
		c.Advance(time.Millisecond)
		return c.Now()
	}
}

// user is a signed-in student: their id and session cookie.
type user struct {
	ID     string
	cookie *http.Cookie
}

// anon is a visitor without a session.
var anon = user{}

func (s *stack) user() user {
	u, c := s.User("")
	return user{ID: u.ID, cookie: c}
}

// response is a finished exchange with the stuff API's decoders; t is the
// test that sent it.
type response struct {
	*testkit.Response
	t testing.TB
}

// do sends a request as u: body nil (none), a string (sent as it is) or any
// value (sent as JSON). Its failures are t's.
func (s *stack) do(t testing.TB, u user, method, path string, body any, opts ...testkit.RequestOption) response {
	t.Helper()
	if b, ok := body.(string); ok {
		body = testkit.Raw(b)
	}
	c := testkit.NewClient(t, s.URL, testkit.WithoutCookies())
	return response{c.Do(method, path, body, append(opts, testkit.WithCookie(u.cookie))...), t}
}

// stuffJSON is the documented shape of a listing; decoding is strict, so
// any extra field (_id, outbox, orders, buyers) fails the test.
type stuffJSON struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Price       int64     `json:"price"`
	Currency    string    `json:"currency"`
	UserID      string    `json:"userId"`
	Status      string    `json:"status"`
	OrderID     string    `json:"orderId"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	Delivery    *string   `json:"delivery"`
}

type pageJSON struct {
	Stuff []stuffJSON `json:"stuff"`
	Page  int         `json:"page"`
	Limit int         `json:"limit"`
	Total int         `json:"total"`
}

type mineJSON struct {
	Stuff []stuffJSON `json:"stuff"`
}

func (r response) stuff(status int) stuffJSON {
	r.t.Helper()
	var s stuffJSON
	r.Want(status).Decode(&s)
	return s
}

func (r response) page() pageJSON {
	r.t.Helper()
	var p pageJSON
	r.Want(http.StatusOK).Decode(&p)
	return p
}

func (r response) mine() mineJSON {
	r.t.Helper()
	var m mineJSON
	r.Want(http.StatusOK).Decode(&m)
	return m
}

// wantError asserts a normalized error body whose first item has message
// and field (each checked when not empty).
func (r response) wantError(status int, message, field string) {
	r.t.Helper()
	items := r.Want(status).Errors()
	if message != "" && items[0].Message != message {
		r.t.Fatalf("message %q, want %q (%s)", items[0].Message, message, r.Body)
	}
	if field != "" && items[0].Field != field {
		r.t.Fatalf("field %q, want %q (%s)", items[0].Field, field, r.Body)
	}
}

// create lists a stuff as u and returns it.
func (s *stack) create(t testing.TB, u user, title string, price int64, delivery string) stuffJSON {
	t.Helper()
	return s.do(t, u, http.MethodPost, "/api/stuff", map[string]any{
		"title": title, "description": "about " + title, "price": price, "delivery": delivery,
	}).stuff(http.StatusCreated)
}

func (s *stack) get(t testing.TB, u user, id string) stuffJSON {
	t.Helper()
	return s.do(t, u, http.MethodGet, "/api/stuff/"+id, nil).stuff(http.StatusOK)
}

func (s *stack) list(t testing.TB, query string) pageJSON {
	t.Helper()
	return s.do(t, anon, http.MethodGet, "/api/stuff"+query, nil).page()
}

func (p pageJSON) ids() []string {
	out := make([]string, 0, len(p.Stuff))
	for _, s := range p.Stuff {
		out = append(out, s.ID)
	}
	return out
}

func (p pageJSON) has(id string) bool { return slices.Contains(p.ids(), id) }

// recorded is one stuff event the service published.
type recorded struct {
	Subject events.Subject
	Data    events.StuffData
}

// of returns the stuff events of one stuff that the Peer recorded, one per
// version, in version order. Delivery is at least once, so a redelivered
// event (same subject, version and payload) counts once; two different
// events under one version fail the test.
func (s *stack) of(t testing.TB, id string) []recorded {
	t.Helper()
	byVersion := map[int64]recorded{}
	for _, subj := range []events.Subject{events.StuffCreated, events.StuffUpdated} {
		for _, m := range s.Peer.Received(subj) {
			var d events.StuffData
			if err := json.Unmarshal(m.Data, &d); err != nil {
				t.Fatalf("%s: %s: %v", subj, m.Data, err)
			}
			if d.ID != id {
				continue
			}
			r := recorded{Subject: subj, Data: d}
			if old, ok := byVersion[d.Version]; ok && old != r {
				t.Fatalf("two different events for version %d of stuff %s: %+v and %+v", d.Version, id, old, r)
			}
			byVersion[d.Version] = r
		}
	}
	out := make([]recorded, 0, len(byVersion))
	for _, v := range slices.Sorted(maps.Keys(byVersion)) {
		out = append(out, byVersion[v])
	}
	return out
}

// waitVersion waits for stuff id's event of version v and returns it.
func (s *stack) waitVersion(t testing.TB, id string, v int64) recorded {
	t.Helper()
	var found recorded
	testkit.Eventually(t, 15*time.Second, func() bool {
		for _, r := range s.of(t, id) {
			if r.Data.Version == v {
				found = r
				return true
			}
		}
		return false
	}, "no event of version %d for stuff %s (got %+v)", v, id, s.of(t, id))
	return found
}

// parked counts the parked messages of subject.
func parked(t testing.TB, db *mongo.Database, subj events.Subject) int64 {
	t.Helper()
	n, err := db.Collection("parked_events").CountDocuments(context.Background(), bson.D{{Key: "subject", Value: string(subj)}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newID() string { return primitive.NewObjectID().Hex() }
