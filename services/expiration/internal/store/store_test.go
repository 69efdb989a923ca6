package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/services/expiration/internal/store"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestAddIsOncePerOrderAndDueFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	st := store.New(db, mongox.NewWriter(), nil)
	at := scheduler.CeilMillis(t0.Add(1500*time.Microsecond + 7))
	for i, want := range []bool{true, false} {
		created, err := st.Add(ctx, scheduler.Deadline{OrderID: "o1", ExpiresAt: at.Add(time.Duration(i) * time.Hour)})
		if err != nil || created != want {
			t.Fatalf("add #%d: created %v, %v; want %v", i+1, created, err, want)
		}
	}
	if _, err := st.Add(ctx, scheduler.Deadline{OrderID: "o2", ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	d, err := st.Deadline(ctx, "o1")
	if err != nil || !d.ExpiresAt.Equal(at) {
		t.Fatalf("deadline of o1: %v, %v; want the first one, %v (a rounded-up deadline survives the round trip)", d.ExpiresAt, err, at)
	}
	tests := []struct {
		name   string
		before time.Time
		want   int
	}{
		{"all", time.Time{}, 2},
		{"due soon", t0.Add(time.Minute), 1},
		{"the deadline itself is not before", at, 0},
		{"none yet", t0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := st.Due(ctx, tc.before)
			if err != nil || len(ds) != tc.want {
				t.Fatalf("Due(%v) = %v, %v; want %d deadlines", tc.before, ds, err, tc.want)
			}
		})
	}
	if err := st.Delete(ctx, "o1"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "o1"); err != nil {
		t.Fatalf("deleting a deleted deadline: %v", err)
	}
	if _, err := st.Deadline(ctx, "o1"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("deleted deadline: %v, want not found", err)
	}
}

func TestClaimIsWonOnceUnderConcurrencyAndCarriesTheEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	st := store.New(db, mongox.NewWriter(), nil)
	const n = 20
	var wg sync.WaitGroup
	results := make(chan error, n)
	won := make(chan bool, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			ok, err := st.Claim(ctx, "o1", t0)
			results <- err
			won <- ok
		})
	}
	close(start)
	wg.Wait()
	close(results)
	close(won)
	for err := range results {
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
	}
	wins := 0
	for ok := range won {
		if ok {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent claims won, want exactly 1", wins, n)
	}
	var doc struct {
		Outcome string           `bson:"outcome"`
		Outbox  []outbox.Pending `bson:"outbox"`
	}
	if err := st.SettledFor("o1").FindOne(ctx, bson.D{{Key: "_id", Value: "o1"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Outcome != scheduler.OutcomeExpired || len(doc.Outbox) != 1 || doc.Outbox[0].Subject != string(events.ExpirationComplete) {
		t.Fatalf("claim document %+v, want expired with one expiration:complete pending", doc)
	}
	ev, err := events.Decode[events.ExpirationCompleteEvent](events.Msg{Subject: events.ExpirationComplete, Data: doc.Outbox[0].Data})
	if err != nil || ev.OrderID != "o1" {
		t.Fatalf("pending event %+v, %v; want order o1", ev, err)
	}
}

func TestSettleBlocksClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	for _, outcome := range []string{scheduler.OutcomeCancelled, scheduler.OutcomeCompleted} {
		id := "order-" + outcome
		if settled, err := st.IsSettled(ctx, id); err != nil || settled {
			t.Fatalf("fresh order settled=%v, %v", settled, err)
		}
		for i, want := range []bool{true, false} {
			ok, err := st.Settle(ctx, id, outcome, t0)
			if err != nil || ok != want {
				t.Fatalf("settle #%d: %v, %v; want %v", i+1, ok, err, want)
			}
		}
		if ok, err := st.Claim(ctx, id, t0); err != nil || ok {
			t.Fatalf("claim after %s: %v, %v; want lost", outcome, ok, err)
		}
		got, err := st.Outcome(ctx, id)
		if err != nil || got != outcome {
			t.Fatalf("outcome %q, %v; want %q", got, err, outcome)
		}
		if settled, err := st.IsSettled(ctx, id); err != nil || !settled {
			t.Fatalf("settled=%v, %v; want true", settled, err)
		}
		n, err := st.SettledFor(id).CountDocuments(ctx, bson.D{{Key: "_id", Value: id}, {Key: outbox.Field + ".0", Value: bson.D{{Key: "$exists", Value: true}}}})
		if err != nil || n != 0 {
			t.Fatalf("%s left %d pending events (%v), want none", outcome, n, err)
		}
	}
	if _, err := st.Outcome(ctx, "unknown"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("outcome of an unknown order: %v, want not found", err)
	}
}

func TestPruneKeepsRecentAndUnpublishedSettlements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	st := store.New(db, mongox.NewWriter(), nil)
	old, recent := t0, t0.Add(time.Hour)
	mustSettle := func(id string, at time.Time, claim bool) {
		t.Helper()
		var ok bool
		var err error
		if claim {
			ok, err = st.Claim(ctx, id, at)
		} else {
			ok, err = st.Settle(ctx, id, scheduler.OutcomeCancelled, at)
		}
		if err != nil || !ok {
			t.Fatalf("settle %s: %v, %v", id, ok, err)
		}
	}
	mustSettle("old-published", old, true)
	mustSettle("old-unpublished", old, true)
	mustSettle("old-cancelled", old, false)
	mustSettle("recent", recent, true)
	// The relay published this one's event.
	if _, err := st.SettledFor("old-published").UpdateOne(ctx, bson.D{{Key: "_id", Value: "old-published"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: outbox.Field, Value: bson.A{}}}}}); err != nil {
		t.Fatal(err)
	}
	n, err := st.Prune(ctx, t0.Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	for id, want := range map[string]bool{"old-published": false, "old-cancelled": false, "old-unpublished": true, "recent": true} {
		if got, err := st.IsSettled(ctx, id); err != nil || got != want {
			t.Errorf("%s settled after prune: %v, %v; want %v", id, got, err, want)
		}
	}
	shards := map[string]bool{}
	for i := range 200 {
		shards[st.SettledFor(fmt.Sprint(i)).Name()] = true
	}
	if len(shards) != store.Shards || len(store.SettledCollections(db)) != store.Shards {
		t.Fatalf("orders spread over %d of %d shards", len(shards), store.Shards)
	}
}

func TestEnsureCreatesEveryCollectionOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	a, b := store.New(db, mongox.NewWriter(), nil), store.New(db, mongox.NewWriter(), nil)
	if _, err := a.Add(ctx, scheduler.Deadline{OrderID: "o1", ExpiresAt: t0}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for _, st := range []*store.Store{a, b} { // two replicas starting together
		wg.Go(func() { errc <- st.Ensure(ctx) })
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatalf("ensure: %v", err)
		}
	}
	if err := a.Ensure(ctx); err != nil {
		t.Fatalf("ensure again: %v", err)
	}
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2*store.Shards {
		t.Fatalf("%d collections, want %d: %v", len(names), 2*store.Shards, names)
	}
	if ds, err := a.Due(ctx, time.Time{}); err != nil || len(ds) != 1 {
		t.Fatalf("deadlines after ensure: %v, %v; want the one added before", ds, err)
	}
}

// A deadline keeps the correlation id of the purchase that created it; one
// stored before deadlines had it (no correlationId field) reads back
// without one.
func TestDeadlineKeepsItsCorrelationIDAndOldOnesHaveNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	st := store.New(db, mongox.NewWriter(), nil)
	for _, d := range []scheduler.Deadline{
		{OrderID: "new", ExpiresAt: t0, CorrelationID: "purchase-1"},
		{OrderID: "old", ExpiresAt: t0},
	} {
		if _, err := st.Add(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	writeOldDeadline(t, db, "old", t0)

	want := map[string]string{"new": "purchase-1", "old": ""}
	for id, corr := range want {
		if d, err := st.Deadline(ctx, id); err != nil || d.CorrelationID != corr || !d.ExpiresAt.Equal(t0) {
			t.Errorf("Deadline(%s) = %+v, %v; want correlation id %q", id, d, err, corr)
		}
	}
	ds, err := st.Due(ctx, time.Time{})
	if err != nil || len(ds) != 2 {
		t.Fatalf("Due = %+v, %v", ds, err)
	}
	for _, d := range ds {
		if d.CorrelationID != want[d.OrderID] {
			t.Errorf("Due: %+v, want correlation id %q", d, want[d.OrderID])
		}
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
