package testkit_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestMongoIsRealAndIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := testkit.Mongo(t), testkit.Mongo(t)
	if a.Name() == b.Name() {
		t.Fatalf("two tests share database %s", a.Name())
	}
	if err := mongox.EnsureIndexes(ctx, a, mongox.Index{Collection: "c", Keys: bson.D{{Key: "k", Value: 1}}, Unique: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Collection("c").InsertOne(ctx, bson.D{{Key: "k", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Collection("c").InsertOne(ctx, bson.D{{Key: "k", Value: 1}})
	if !mongox.IsDuplicate(err) {
		t.Fatalf("second insert of a unique key: got %v, want duplicate key", err)
	}
	n, err := b.Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil || n != 0 {
		t.Fatalf("other test's database sees %d documents (err %v)", n, err)
	}
}

func TestNATSDeliversWithinPrefix(t *testing.T) {
	cfg := testkit.NATS(t)
	bus := events.NewBus(cfg, slog.New(slog.DiscardHandler), nil)
	got := make(chan string, 1)
	bus.Listen(events.Listener{Subject: events.UserBanned, Group: "kit", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.UserBannedEvent](m)
		if err == nil {
			got <- ev.UserID
		}
		return err
	}})
	bus.Start()
	t.Cleanup(func() { _ = bus.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bus.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishEvent(ctx, events.UserBannedEvent{UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "u1" {
			t.Fatalf("got user %q, want u1", id)
		}
	case <-ctx.Done():
		t.Fatal("event not delivered")
	}
}
