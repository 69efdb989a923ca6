package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	jwtKey     = "orders-test-jwt-key-0123456789abcdef"
	sessionKey = "orders-test-session-key-0123456789abcdef"
	heldMsg    = "The stuff is being checking out by someone else, please come back later"
	orderHold  = 10 * time.Minute
)

// harness is one orders service on the test's own database and NATS subject
// prefix, served over real HTTP, with a bus of the test's own on the same
// prefix to publish what other services would and to observe what orders
// publishes.
type harness struct {
	tb     testing.TB
	app    *app.App
	srv    *httptest.Server
	db     *mongo.Database
	sess   *auth.Sessions
	bus    *events.Bus
	client *http.Client
	obs    *observer
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	return start(tb, testkit.NATS(tb))
}

// start runs the service against NATS nc.
func start(tb testing.TB, nc events.Config) *harness {
	tb.Helper()
	db := testkit.Mongo(tb)
	env := map[string]string{
		"MONGO_URI":       testkit.MongoURI(tb),
		"MONGO_DB":        db.Name(),
		"NATS_URL":        nc.URL,
		"NATS_CLUSTER_ID": nc.ClusterID,
		"JWT_KEY":         jwtKey,
		"SESSION_KEY":     sessionKey,
		"ORDER_HOLD":      orderHold.String(),
	}
	cfg, err := app.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Service.NATS.Prefix = nc.Prefix
	cfg.Service.NATS.AckWait = nc.AckWait
	cfg.Service.NATS.MaxDeliveries = nc.MaxDeliveries
	log := testkit.Logger(tb)
	a, err := app.New(context.Background(), cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	a.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			tb.Errorf("close app: %v", err)
		}
	})

	tc := nc
	tc.ClientName = "test-peer"
	bus := events.NewBus(tc, log, nil)
	obs := &observer{got: map[events.Subject][][]byte{}}
	for _, s := range []events.Subject{events.OrderCreated, events.OrderCancelled, events.OrderCompleted} {
		bus.Listen(events.Listener{Subject: s, Group: "observer", Handle: obs.record})
	}
	bus.Start()
	tb.Cleanup(func() {
		if err := bus.Close(); err != nil {
			tb.Errorf("close bus: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.WaitConnected(ctx); err != nil {
		tb.Fatalf("test bus: %v", err)
	}

	srv := httptest.NewServer(a.Handler())
	tb.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}
	tb.Cleanup(tr.CloseIdleConnections)
	return &harness{
		tb:     tb,
		app:    a,
		srv:    srv,
		db:     db,
		sess:   auth.NewSessions([]byte(sessionKey), auth.NewTokens([]byte(jwtKey), 15*time.Minute), time.Hour),
		bus:    bus,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		obs:    obs,
	}
}

// newID returns a fresh id of the kind the services mint.
func newID() string { return primitive.NewObjectID().Hex() }

// cookie is the session cookie of a signed-in user.
func (h *harness) cookie(userID string) *http.Cookie {
	h.tb.Helper()
	return testkit.SessionCookie(h.tb, h.sess, auth.User{ID: userID, Email: userID[:8] + "@uni.edu", Role: auth.RoleUser}, "")
}

// request builds a request with a JSON body (when body is not empty) and a
// cookie (when not nil).
func (h *harness) request(method, path, body string, c *http.Cookie) *http.Request {
	h.tb.Helper()
	var r io.Reader
	if body != "" {
		r = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, r)
	if err != nil {
		h.tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c != nil {
		req.AddCookie(c)
	}
	return req
}

// send performs req and returns the status and body.
func (h *harness) send(req *http.Request) (int, []byte) {
	h.tb.Helper()
	res, err := h.client.Do(req)
	if err != nil {
		h.tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.tb.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return res.StatusCode, b
}

func (h *harness) do(method, path, body string, c *http.Cookie) (int, []byte) {
	h.tb.Helper()
	return h.send(h.request(method, path, body, c))
}

type orderJSON struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	Stuff     struct {
		ID       string `json:"id"`
		Title    string `json:"title"`
		Price    int64  `json:"price"`
		Currency string `json:"currency"`
	} `json:"stuff"`
	Version int64 `json:"version"`
}

// buy has the holder of cookie c order stuffID and wants a 201.
func (h *harness) buy(c *http.Cookie, stuffID string) orderJSON {
	h.tb.Helper()
	code, body := h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+stuffID+`"}`, c)
	if code != http.StatusCreated {
		h.tb.Fatalf("buy %s: %d %s", stuffID, code, body)
	}
	var o orderJSON
	if err := json.Unmarshal(body, &o); err != nil {
		h.tb.Fatal(err)
	}
	return o
}

// order reads an order through the API as its owner.
func (h *harness) order(c *http.Cookie, id string) orderJSON {
	h.tb.Helper()
	code, body := h.do(http.MethodGet, "/api/orders/"+id, "", c)
	if code != http.StatusOK {
		h.tb.Fatalf("get order %s: %d %s", id, code, body)
	}
	var o orderJSON
	if err := json.Unmarshal(body, &o); err != nil {
		h.tb.Fatal(err)
	}
	return o
}

// publish sends ev as the service that owns it would.
func (h *harness) publish(ev events.Event) {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.bus.PublishEvent(ctx, ev); err != nil {
		h.tb.Fatalf("publish %s: %v", ev.Subject(), err)
	}
}

// publishRaw sends bytes that may not decode.
func (h *harness) publishRaw(subject events.Subject, data []byte) {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.bus.Publish(ctx, subject, data); err != nil {
		h.tb.Fatalf("publish %s: %v", subject, err)
	}
}

// replicaVersion reads the version of a stuff in the replica, 0 if absent.
func (h *harness) replicaVersion(id string) (int64, string) {
	h.tb.Helper()
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		h.tb.Fatal(err)
	}
	var d struct {
		Version int64  `bson:"version"`
		Title   string `bson:"title"`
	}
	err = h.db.Collection("stuff").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&d)
	if err == mongo.ErrNoDocuments {
		return 0, ""
	}
	if err != nil {
		h.tb.Fatalf("read replica: %v", err)
	}
	return d.Version, d.Title
}

// waitReplica waits until the replica has stuff id at version.
func (h *harness) waitReplica(id string, version int64) {
	h.tb.Helper()
	testkit.Eventually(h.tb, 15*time.Second, func() bool {
		v, _ := h.replicaVersion(id)
		return v == version
	}, "stuff %s never reached version %d in the replica", id, version)
}

// list publishes stuff:created for a new stuff of seller and waits until the
// replica has it.
func (h *harness) list(seller string, price int64) string {
	h.tb.Helper()
	id := h.listAsync(seller, price)
	h.waitReplica(id, 1)
	return id
}

func (h *harness) listAsync(seller string, price int64) string {
	h.tb.Helper()
	id := newID()
	h.publish(events.StuffCreatedEvent{ID: id, Version: 1, Title: "Notes " + id[16:], Price: price, Currency: "usd", UserID: seller, Status: "available"})
	return id
}

// parked returns the documents parked with data.
func (h *harness) parked(data string) []bson.M {
	h.tb.Helper()
	cur, err := h.db.Collection("parked_events").Find(context.Background(), bson.D{{Key: "data", Value: data}})
	if err != nil {
		h.tb.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(context.Background(), &docs); err != nil {
		h.tb.Fatal(err)
	}
	return docs
}

// errorBody decodes a normalized error body.
func errorBody(tb testing.TB, b []byte) errs.Body {
	tb.Helper()
	var body errs.Body
	if err := json.Unmarshal(b, &body); err != nil || len(body.Errors) == 0 {
		tb.Fatalf("not a normalized error body: %s (%v)", b, err)
	}
	return body
}

// observer records what the orders service publishes.
type observer struct {
	mu  sync.Mutex
	got map[events.Subject][][]byte
}

func (o *observer) record(_ context.Context, m events.Msg) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got[m.Subject] = append(o.got[m.Subject], m.Data)
	return nil
}

// orderEvent is the common part of every order event.
type orderEvent struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
	Status  string `json:"status"`
	UserID  string `json:"userId"`
	Stuff   struct {
		ID    string `json:"id"`
		Price int64  `json:"price"`
	} `json:"stuff"`
}

// of returns the events of subject about order id.
func (o *observer) of(subject events.Subject, id string) []orderEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []orderEvent
	for _, d := range o.got[subject] {
		var ev orderEvent
		if json.Unmarshal(d, &ev) == nil && ev.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// wait waits for an event of subject about order id and returns it.
func (o *observer) wait(tb testing.TB, subject events.Subject, id string) orderEvent {
	tb.Helper()
	testkit.Eventually(tb, 15*time.Second, func() bool { return len(o.of(subject, id)) > 0 }, "no %s for order %s", subject, id)
	return o.of(subject, id)[0]
}

// waitOutboxesEmpty waits until every order's pending events are published
// and removed from its outbox.
func (h *harness) waitOutboxesEmpty() {
	h.tb.Helper()
	testkit.Eventually(h.tb, 15*time.Second, func() bool {
		n, err := h.db.Collection("orders").CountDocuments(context.Background(), bson.D{{Key: "outbox.0", Value: bson.D{{Key: "$exists", Value: true}}}})
		return err == nil && n == 0
	}, "published events still pending in outboxes")
}
