package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/expiration/app"
	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/services/expiration/internal/store"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// An expiry carries the correlation id of the purchase whose order:created
// scheduled it, in its event and its log line, so that it shows in the
// purchase's story; a deadline stored before deadlines kept the id still
// fires, without one. Each firing is measured in expiration_lateness_seconds.
func TestExpiryCarriesThePurchasesCorrelationID(t *testing.T) {
	db := testkit.Mongo(t)
	ctx := context.Background()
	old := time.Now().Add(300 * time.Millisecond)
	if _, err := store.New(db, mongox.NewWriter(), nil).Add(ctx, scheduler.Deadline{OrderID: "old", ExpiresAt: scheduler.CeilMillis(old)}); err != nil {
		t.Fatal(err)
	}
	writeOldDeadline(t, db, "old", scheduler.CeilMillis(old))
	logs := &lines{}
	logged := func(ctx context.Context, cfg service.Config, _ *slog.Logger) (testkit.App, error) {
		return app.New(ctx, app.Config{Service: cfg}, slog.New(slog.NewJSONHandler(logs, nil)))
	}
	c := testkit.Start(t, app.Name, logged, testkit.OnDB(db), testkit.Observe(events.ExpirationComplete))

	data, err := events.Encode(correlation.With(ctx, "purchase-1"), events.OrderCreatedEvent{
		ID: "o1", Status: events.OrderStatusCreated, UserID: "buyer",
		ExpiresAt: time.Now().Add(300 * time.Millisecond), Stuff: events.StuffRef{ID: "stuff-o1", Price: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Peer.PublishRaw(events.OrderCreated, data)

	for id, want := range map[string]string{"o1": "purchase-1", "old": ""} {
		m := c.Peer.Wait(events.ExpirationComplete, func(m events.Msg) bool {
			ev, err := events.Decode[events.ExpirationCompleteEvent](m)
			return err == nil && ev.OrderID == id
		})
		var env struct {
			CorrelationID string `json:"correlationId"`
		}
		if err := json.Unmarshal(m.Data, &env); err != nil || env.CorrelationID != want {
			t.Errorf("expiration:complete of %s = %s, want correlation id %q", id, m.Data, want)
		}
	}
	if !logs.has(map[string]string{"msg": "deadline fired", "order_id": "o1", correlation.LogKey: "purchase-1"}) {
		t.Errorf("no line of o1's firing with its correlation id in:\n%s", logs)
	}
	got := testkit.Scrape(t, c.URL+"/metrics")
	if n := got.Value("expiration_lateness_seconds"); n != 2 {
		t.Errorf("expiration_lateness_seconds counts %v firings, want 2", n)
	}
}

// writeOldDeadline replaces the stored deadline of order id with a document
// of the shape deadlines had before they kept a correlation id.
func writeOldDeadline(tb testing.TB, db *mongo.Database, id string, at time.Time) {
	tb.Helper()
	ctx := context.Background()
	for i := range store.Shards {
		res, err := db.Collection(store.DeadlinesCollection(i)).ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "_id", Value: id}, {Key: "expiresAt", Value: at}})
		if err != nil {
			tb.Fatal(err)
		}
		if res.MatchedCount == 1 {
			return
		}
	}
	tb.Fatalf("no deadline of %s stored", id)
}

// lines keeps what a JSON logger writes, one line per Write.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, string(p))
	return len(p), nil
}

// has reports whether a line has every attribute of want.
func (l *lines) has(want map[string]string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.all {
		var got map[string]any
		if json.Unmarshal([]byte(line), &got) != nil {
			continue
		}
		if matches(got, want) {
			return true
		}
	}
	return false
}

func matches(got map[string]any, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "")
}
