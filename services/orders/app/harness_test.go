package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	heldMsg   = "The stuff is being checking out by someone else, please come back later"
	orderHold = 10 * time.Minute
)

// harness is one orders service under test (see testkit.Component), its
// Peer observing the order events it publishes, with the helpers particular
// to orders.
type harness struct {
	*testkit.Component
	tb testing.TB
}

func newHarness(tb testing.TB, opts ...testkit.Option) *harness {
	tb.Helper()
	return newHarnessWith(tb, build, opts...)
}

// newHarnessWith is newHarness with a build of the test's own (another
// configuration of the app).
func newHarnessWith(tb testing.TB, build testkit.Build, opts ...testkit.Option) *harness {
	tb.Helper()
	opts = append(opts, testkit.Observe(events.OrderCreated, events.OrderCancelled, events.OrderCompleted))
	return &harness{Component: testkit.Start(tb, app.Name, build, opts...), tb: tb}
}

// build is the orders app as testkit.Start runs it: the common test
// configuration and an orderHold hold.
func build(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
	a, err := app.New(ctx, app.Config{Service: cfg, OrderHold: orderHold}, log)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// buildWith is build with the configuration changed by set.
func buildWith(set func(c *app.Config)) testkit.Build {
	return func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
		c := app.Config{Service: cfg, OrderHold: orderHold}
		set(&c)
		return app.New(ctx, c, log)
	}
}

// newID returns a fresh id of the kind the services mint.
func newID() string { return primitive.NewObjectID().Hex() }

// buyer returns the session cookie of a new signed-in user.
func (h *harness) buyer() *http.Cookie {
	_, c := h.User("")
	return c
}

// do sends a request with the JSON body (none when empty) and the cookie (when
// not nil). Subtests use a client of their own (client).
func (h *harness) do(method, path, body string, c *http.Cookie) *testkit.Response {
	h.tb.Helper()
	return h.HTTP.Do(method, path, jsonBody(body), testkit.WithCookie(c))
}

// client returns a client of the service for test tb (a subtest: a client
// fails the test it was made for), keeping no cookies.
func (h *harness) client(tb testing.TB) *testkit.Client {
	return testkit.NewClient(tb, h.URL, testkit.WithoutCookies())
}

// jsonBody is body sent as it is, or no body at all when it is empty.
func jsonBody(body string) any {
	if body == "" {
		return nil
	}
	return testkit.Raw(body)
}

// orderJSON is an order as the API returns it; decoding is strict, so a
// field the API does not promise fails the test.
type orderJSON struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
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
	var o orderJSON
	h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+stuffID+`"}`, c).Want(http.StatusCreated).Decode(&o)
	return o
}

// order reads an order through the API as its owner.
func (h *harness) order(c *http.Cookie, id string) orderJSON {
	h.tb.Helper()
	var o orderJSON
	h.do(http.MethodGet, "/api/orders/"+id, "", c).Want(http.StatusOK).Decode(&o)
	return o
}

// replicaVersion reads the version and title of a stuff in the replica, 0
// if absent.
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
	err = h.DB.Collection("stuff").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&d)
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
	h.Peer.Publish(events.StuffCreatedEvent{ID: id, Version: 1, Title: "Notes " + id[16:], Price: price, Currency: "usd", UserID: seller, Status: "available"})
	return id
}

// parked returns the documents parked with data; an error fails tb (a
// subtest's).
func (h *harness) parked(tb testing.TB, data string) []bson.M {
	tb.Helper()
	cur, err := h.DB.Collection("parked_events").Find(context.Background(), bson.D{{Key: "data", Value: data}})
	if err != nil {
		tb.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(context.Background(), &docs); err != nil {
		tb.Fatal(err)
	}
	return docs
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

// decodeOrderEvent reads the common part of an order event, ok false when
// it does not decode.
func decodeOrderEvent(m events.Msg) (orderEvent, bool) {
	var ev orderEvent
	return ev, json.Unmarshal(m.Data, &ev) == nil
}

// seen returns the events of subject about order id the Peer recorded.
func (h *harness) seen(subject events.Subject, id string) []orderEvent {
	var out []orderEvent
	for _, m := range h.Peer.Received(subject) {
		if ev, ok := decodeOrderEvent(m); ok && ev.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// wait waits for an event of subject about order id and returns it.
func (h *harness) wait(subject events.Subject, id string) orderEvent {
	h.tb.Helper()
	ev, _ := decodeOrderEvent(h.Peer.Wait(subject, func(m events.Msg) bool {
		ev, ok := decodeOrderEvent(m)
		return ok && ev.ID == id
	}))
	return ev
}

// waitOutboxesEmpty waits until every order's pending events are published
// and removed from its outbox.
func (h *harness) waitOutboxesEmpty() {
	h.tb.Helper()
	testkit.Eventually(h.tb, 15*time.Second, func() bool {
		n, err := h.DB.Collection("orders").CountDocuments(context.Background(), bson.D{{Key: "outbox.0", Value: bson.D{{Key: "$exists", Value: true}}}})
		return err == nil && n == 0
	}, "published events still pending in outboxes")
}
