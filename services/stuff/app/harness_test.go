package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	jwtKey     = "test-jwt-key-0123456789-0123456789-abcdef"
	sessionKey = "test-session-key-0123456789-0123456789-ab"
	accessTTL  = 15 * time.Minute
	refreshTTL = 7 * 24 * time.Hour
)

// tickClock is a pinned clock that moves one millisecond on every reading,
// so listings created one after the other have distinct, ordered times.
type tickClock struct {
	base time.Time
	n    atomic.Int64
}

func newClock() *tickClock {
	return &tickClock{base: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *tickClock) Now() time.Time {
	return c.base.Add(time.Duration(c.n.Add(1)) * time.Millisecond)
}

// stack is one running stuff service (one replica) served over real HTTP.
type stack struct {
	t        testing.TB
	cfg      app.Config
	db       *mongo.Database
	url      string
	sessions *auth.Sessions // same keys as the app: forges session cookies
	hc       *http.Client
}

type option func(*app.Config)

func withNATS(c events.Config) option { return func(cfg *app.Config) { cfg.Service.NATS = c } }
func withDB(db *mongo.Database) option {
	return func(cfg *app.Config) { cfg.Service.MongoDB = db.Name() }
}
func withReadModelMax(n int) option { return func(cfg *app.Config) { cfg.ReadModelMax = n } }

// withRealClock uses time.Now (benchmarks: the cache's TTL runs on it).
func withRealClock() option { return func(cfg *app.Config) { cfg.Now = nil } }

// newStack starts the service on a fresh database and NATS prefix unless
// options say otherwise.
func newStack(t testing.TB, opts ...option) *stack {
	t.Helper()
	db := testkit.Mongo(t)
	cfg := app.Config{
		Service: service.Config{
			Name:       "stuff",
			HTTPAddr:   "127.0.0.1:0",
			MongoURI:   testkit.MongoURI(t),
			MongoDB:    db.Name(),
			JWTKey:     jwtKey,
			SessionKey: sessionKey,
			AccessTTL:  accessTTL,
			RefreshTTL: refreshTTL,
			BodyLimit:  "64K",
		},
		ReadModelMax:   20_000,
		CacheMax:       10_000,
		ReconcileEvery: time.Minute,
		Now:            newClock().Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Service.NATS.URL == "" {
		cfg.Service.NATS = testkit.NATS(t)
	}
	if cfg.Service.MongoDB != db.Name() {
		db = db.Client().Database(cfg.Service.MongoDB)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.New(ctx, cfg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	a.Start()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("close app: %v", err)
		}
	})
	s := &stack{
		t: t, cfg: cfg, db: db, url: srv.URL,
		sessions: auth.NewSessions([]byte(sessionKey), auth.NewTokens([]byte(jwtKey), accessTTL), refreshTTL),
		hc:       &http.Client{Timeout: 30 * time.Second},
	}
	// Ready means connected to NATS: its listeners are subscribed.
	testkit.Eventually(t, 15*time.Second, func() bool {
		return s.do(t, anon, http.MethodGet, "/readyz", nil).Status == http.StatusOK
	}, "the service did not become ready")
	return s
}

// user is a signed-in student: their id and session cookie.
type user struct {
	ID     string
	cookie *http.Cookie
}

// anon is a visitor without a session.
var anon = user{}

func (s *stack) user() user {
	u := auth.User{ID: primitive.NewObjectID().Hex(), Email: "u@uni.edu", Role: auth.RoleUser}
	u.Email = u.ID + "@uni.edu"
	return user{ID: u.ID, cookie: testkit.SessionCookie(s.t, s.sessions, u, "")}
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Body   []byte
}

// do sends a request as u: body nil (none), a string (raw) or any value
// (marshalled as JSON).
func (s *stack) do(t testing.TB, u user, method, path string, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u.cookie != nil {
		req.AddCookie(u.cookie)
	}
	res, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Body: data}
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

func decodeStrict(t testing.TB, r response, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", r.Body, v, err)
	}
}

func (r response) want(t testing.TB, status int) response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	return r
}

func (r response) stuff(t testing.TB, status int) stuffJSON {
	t.Helper()
	r.want(t, status)
	var s stuffJSON
	decodeStrict(t, r, &s)
	return s
}

func (r response) page(t testing.TB) pageJSON {
	t.Helper()
	r.want(t, http.StatusOK)
	var p pageJSON
	decodeStrict(t, r, &p)
	return p
}

// wantError asserts a normalized error body with one item of message (and
// field, when not empty).
func (r response) wantError(t testing.TB, status int, message, field string) {
	t.Helper()
	r.want(t, status)
	var b errs.Body
	decodeStrict(t, r, &b)
	if len(b.Errors) == 0 {
		t.Fatalf("no error items in %s", r.Body)
	}
	if message != "" && b.Errors[0].Message != message {
		t.Fatalf("message %q, want %q (%s)", b.Errors[0].Message, message, r.Body)
	}
	if field != "" && b.Errors[0].Field != field {
		t.Fatalf("field %q, want %q (%s)", b.Errors[0].Field, field, r.Body)
	}
}

// create lists a stuff as u and returns it.
func (s *stack) create(t testing.TB, u user, title string, price int64, delivery string) stuffJSON {
	t.Helper()
	return s.do(t, u, http.MethodPost, "/api/stuff", map[string]any{
		"title": title, "description": "about " + title, "price": price, "delivery": delivery,
	}).stuff(t, http.StatusCreated)
}

func (s *stack) get(t testing.TB, u user, id string) stuffJSON {
	t.Helper()
	return s.do(t, u, http.MethodGet, "/api/stuff/"+id, nil).stuff(t, http.StatusOK)
}

func (s *stack) list(t testing.TB, query string) pageJSON {
	t.Helper()
	return s.do(t, anon, http.MethodGet, "/api/stuff"+query, nil).page(t)
}

func (p pageJSON) ids() []string {
	out := make([]string, 0, len(p.Stuff))
	for _, s := range p.Stuff {
		out = append(out, s.ID)
	}
	return out
}

func (p pageJSON) has(id string) bool { return slices.Contains(p.ids(), id) }

// bus is a test's own NATS connection: it publishes order events and
// records the stuff events the service publishes. Delivery is at least
// once, so a redelivered event (same subject, id, version and payload) is
// recorded once; a different payload under a version already seen is a
// conflict, which fails the test that looks at that stuff.
type bus struct {
	b         *events.Bus
	mu        sync.Mutex
	got       []recorded
	conflicts []recorded
}

type recorded struct {
	Subject events.Subject
	Data    events.StuffData
}

func newBus(t testing.TB, cfg events.Config) *bus {
	t.Helper()
	cfg.ClientName = "test-bus"
	tb := &bus{}
	tb.b = events.NewBus(cfg, testkit.Logger(t), nil)
	for _, subj := range []events.Subject{events.StuffCreated, events.StuffUpdated} {
		tb.b.Listen(events.Listener{Subject: subj, Group: "test-recorder", Handle: func(_ context.Context, m events.Msg) error {
			var d events.StuffData
			if err := json.Unmarshal(m.Data, &d); err != nil {
				return events.Permanent(err)
			}
			r := recorded{Subject: m.Subject, Data: d}
			tb.mu.Lock()
			defer tb.mu.Unlock()
			for _, old := range tb.got {
				if old.Data.ID == d.ID && old.Data.Version == d.Version {
					if old != r {
						tb.conflicts = append(tb.conflicts, r)
					}
					return nil
				}
			}
			tb.got = append(tb.got, r)
			return nil
		}})
	}
	tb.b.Start()
	t.Cleanup(func() {
		if err := tb.b.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.b.WaitConnected(ctx); err != nil {
		t.Fatalf("test bus: %v", err)
	}
	return tb
}

func (b *bus) publish(t testing.TB, ev events.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.b.PublishEvent(ctx, ev); err != nil {
		t.Fatalf("publish %s: %v", ev.Subject(), err)
	}
}

func (b *bus) publishRaw(t testing.TB, subj events.Subject, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.b.Publish(ctx, subj, []byte(data)); err != nil {
		t.Fatalf("publish %s: %v", subj, err)
	}
}

// of returns the recorded events of one stuff, one per version, in arrival
// order, and fails the test if two different events carried one version.
func (b *bus) of(t testing.TB, id string) []recorded {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conflicts {
		if c.Data.ID == id {
			t.Fatalf("two different events for version %d of stuff %s: %+v", c.Data.Version, id, c)
		}
	}
	var out []recorded
	for _, r := range b.got {
		if r.Data.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// waitVersion waits for stuff id's event of version v and returns it.
func (b *bus) waitVersion(t testing.TB, id string, v int64) recorded {
	t.Helper()
	var found recorded
	testkit.Eventually(t, 15*time.Second, func() bool {
		for _, r := range b.of(t, id) {
			if r.Data.Version == v {
				found = r
				return true
			}
		}
		return false
	}, "no event of version %d for stuff %s (got %+v)", v, id, b.of(t, id))
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
