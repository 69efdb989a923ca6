package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/stuff/internal/store"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type notified struct{ n int }

func (c *notified) Notify(*mongo.Collection, any, ...outbox.Pending) { c.n++ }

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// pending returns the events waiting in a listing's outbox.
func pending(t *testing.T, db *mongo.Database, id string) []events.StuffData {
	t.Helper()
	oid, err := store.ObjectID(id)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Outbox []outbox.Pending `bson:"outbox"`
	}
	if err := db.Collection(store.Collection).FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	var out []events.StuffData
	for _, p := range d.Outbox {
		ev, err := events.Decode[events.StuffUpdatedEvent](events.Msg{Subject: events.Subject(p.Subject), Data: p.Data})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, events.StuffData(ev))
	}
	return out
}

// relayed empties a listing's outbox, as the relay does once it published.
func relayed(t *testing.T, db *mongo.Database, id string) {
	t.Helper()
	oid, err := store.ObjectID(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(store.Collection).UpdateOne(context.Background(), bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: outbox.Field, Value: bson.A{}}}}}); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateRetriesWhenAnotherReplicaWrote: replica A reads, replica B (its
// own Writer: another process) writes, A's write must not overwrite B's; A
// runs its change again on B's result. Both changes and both events stay.
// Replicas share a database on MongoDB, where guards are in the write's
// filter; GuardsInFilter makes FerretDB's Writers do the same.
func TestUpdateRetriesWhenAnotherReplicaWrote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	na, nb := &notified{}, &notified{}
	a := store.New(db, mongox.NewWriter().GuardsInFilter(), na, testkit.Logger(t), nil)
	b := store.New(db, mongox.NewWriter().GuardsInFilter(), nb, testkit.Logger(t), nil)
	s, err := a.Insert(ctx, stuff.New("", "seller", stuff.Input{Title: "t", Price: 1}, t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	got, err := a.Update(ctx, s.ID, func(x *stuff.Stuff) (bool, error) {
		runs++
		if runs == 1 { // B reserves it between A's read and A's write
			if _, err := b.Update(ctx, s.ID, func(y *stuff.Stuff) (bool, error) {
				return y.ApplyOrderCreated(createdRef("o1", "buyer", t0.Add(time.Hour)), t0)
			}); err != nil {
				t.Fatal(err)
			}
		}
		return x.Edit("seller", stuff.Input{Title: "edited", Price: 2}, t0)
	})
	if runs != 2 {
		t.Fatalf("fn ran %d times, want 2", runs)
	}
	if !errors.Is(err, stuff.ErrReserved) {
		t.Fatalf("edit after B's reservation: %v, want ErrReserved", err)
	}
	if got.ID != "" {
		t.Fatalf("refused update returned %+v", got)
	}
	final, err := a.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != stuff.Reserved || final.OrderID != "o1" || final.Title != "t" || final.Version != 2 || len(final.Orders) != 1 {
		t.Fatalf("final %+v", final)
	}
	evs := pending(t, db, s.ID)
	if len(evs) != 2 || evs[0].Version != 1 || evs[1].Version != 2 || evs[1].Status != "reserved" {
		t.Fatalf("outbox %+v", evs)
	}
	if na.n != 1 || nb.n != 1 {
		t.Fatalf("notified A %d, B %d times; want 1 and 1", na.n, nb.n)
	}
}

func TestUpdateNoChangeWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	n := &notified{}
	st := store.New(db, mongox.NewWriter(), n, testkit.Logger(t), nil)
	s, err := st.Insert(ctx, stuff.New("", "seller", stuff.Input{Title: "t", Price: 1}, t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	// An edit to the same values saves nothing and publishes nothing.
	if _, err := st.Update(ctx, s.ID, func(x *stuff.Stuff) (bool, error) { return x.Edit("seller", stuff.Input{Title: "t", Price: 1}, t0) }); err != nil {
		t.Fatal(err)
	}
	if evs := pending(t, db, s.ID); len(evs) != 1 || n.n != 1 {
		t.Fatalf("a no-op edit wrote an event: %+v, %d notifications", evs, n.n)
	}
	for _, id := range []string{"x", "0123456789abcdef0123456Z", "0123456789ABCDEF01234567", "0123456789abcdef01234567"} {
		if _, err := st.Update(ctx, id, func(*stuff.Stuff) (bool, error) { return true, nil }); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("Update(%q): %v, want not found", id, err)
		}
		if _, err := st.Get(ctx, id); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("Get(%q): %v, want not found", id, err)
		}
	}
}

// TestOrdersStayBounded: a create/cancel loop on one listing (what a buyer
// who keeps clicking BUY and cancelling does) must not grow its document:
// the orders it remembers are bounded, and what it keeps of the dropped ones
// (the latest deadline) survives the round trip, so a very late redelivery
// of the first order does not take the listing.
func TestOrdersStayBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	st := store.New(db, mongox.NewWriter(), &notified{}, testkit.Logger(t), nil)
	s, err := st.Insert(ctx, stuff.New("", "seller", stuff.Input{Title: "t", Price: 1}, t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Deadlines as events carry them: to the nanosecond.
	deadline := func(i int) time.Time { return t0.Add(15*time.Minute + time.Duration(i)*time.Second + 123456789) }
	const cycles = 100
	for i := range cycles {
		order := fmt.Sprintf("o%03d", i)
		if _, err := st.Update(ctx, s.ID, func(x *stuff.Stuff) (bool, error) {
			return x.ApplyOrderCreated(createdRef(order, "buyer", deadline(i)), t0)
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Update(ctx, s.ID, func(x *stuff.Stuff) (bool, error) { return x.ApplyOrderCancelled(cancelledRef(order), t0) }); err != nil {
			t.Fatal(err)
		}
		relayed(t, db, s.ID)
	}
	oid, _ := store.ObjectID(s.ID)
	var raw bson.Raw
	if err := db.Collection(store.Collection).FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	orders, err := raw.LookupErr("orders")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := orders.Array().Values()
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) > stuff.MaxEndedOrders {
		t.Fatalf("after %d create/cancel cycles the document remembers %d orders (%d bytes); want at most %d",
			cycles, len(vals), len(raw), stuff.MaxEndedOrders)
	}
	got, err := st.Update(ctx, s.ID, func(x *stuff.Stuff) (bool, error) {
		return x.ApplyOrderCreated(createdRef("o000", "buyer", deadline(0)), t0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != stuff.Available || got.Version != 1+2*cycles {
		t.Fatalf("a late order:created of a dropped order: %s %q version %d", got.Status, got.OrderID, got.Version)
	}
	// What an order's end is checked against is kept with the order.
	stored, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := stored.Orders[len(stored.Orders)-1]
	want := stuff.Order{ID: "o000", UserID: "buyer", State: stuff.OrderCreated, ExpiresAt: deadline(0).Truncate(time.Millisecond), Price: 1, Version: 1}
	if last != want {
		t.Fatalf("stored order %+v, want %+v", last, want)
	}
}

// TestOutboxStaysBounded: while its events cannot be published (NATS down),
// a listing edited again and again does not pile them up without end: past
// a bound, a change that would publish is refused as unavailable and nothing
// is written.
func TestOutboxStaysBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	st := store.New(db, mongox.NewWriter(), &notified{}, testkit.Logger(t), nil) // nothing relays
	s, err := st.Insert(ctx, stuff.New("", "seller", stuff.Input{Title: "t", Price: 1}, t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	var refused error
	edits := 0
	for i := range 1000 {
		_, err := st.Update(ctx, s.ID, func(x *stuff.Stuff) (bool, error) {
			return x.Edit("seller", stuff.Input{Title: fmt.Sprint("t", i), Price: 1}, t0)
		})
		if err != nil {
			refused = err
			break
		}
		edits++
	}
	if n := len(pending(t, db, s.ID)); n > 200 {
		t.Fatalf("%d events wait in one listing after %d edits", n, edits)
	}
	if se, ok := errs.As(refused); !ok || se.StatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("the edit past the bound: %v, want a 503", refused)
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != int64(1+edits) {
		t.Fatalf("version %d after %d edits", got.Version, edits)
	}
}

// TestInsertWithKey: the same key and seller mint the same id, so a second
// insert returns the first listing (as it is now) and writes nothing; another
// seller's same key is another listing.
func TestInsertWithKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := &notified{}
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), n, testkit.Logger(t), nil)
	key := &stuff.IdempotencyKey{Key: "form-1", Since: t0}
	first, err := st.Insert(ctx, stuff.New("", "seller", stuff.Input{Title: "first", Price: 1}, t0), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, first.ID, func(x *stuff.Stuff) (bool, error) {
		return x.Edit("seller", stuff.Input{Title: "edited", Price: 1}, t0)
	}); err != nil {
		t.Fatal(err)
	}
	again, err := st.Insert(ctx, stuff.New("", "seller", stuff.Input{Title: "second try", Price: 1}, t0.Add(time.Minute)), key)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.Title != "edited" || again.Version != 2 || n.n != 2 {
		t.Fatalf("second try %+v (first %s), %d notifications", again, first.ID, n.n)
	}
	other, err := st.Insert(ctx, stuff.New("", "other", stuff.Input{Title: "other", Price: 1}, t0), key)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == first.ID || other.UserID != "other" {
		t.Fatalf("another seller's key made %+v", other)
	}
}

// TestSaveBanMerges: bans and unbans of one user saved at once (the
// Writer serializes them within a process) keep the latest of each; another
// replica's later save merges into them; a late, older one changes nothing.
// (Two processes writing at the same instant rely on the rev guard in the
// filter, atomic on MongoDB only, as for listings.)
func TestSaveBanMerges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testkit.Mongo(t)
	a := store.New(db, mongox.NewWriter().GuardsInFilter(), &notified{}, testkit.Logger(t), nil)
	b := store.New(db, mongox.NewWriter().GuardsInFilter(), &notified{}, testkit.Logger(t), nil)
	const n = 20
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ban := stuff.Ban{UserID: "u1"}
			if i%2 == 0 {
				ban.BannedAt = t0.Add(time.Duration(i) * time.Second)
			} else {
				ban.UnbannedAt = t0.Add(time.Duration(i) * time.Second)
			}
			_, err := a.SaveBan(ctx, ban)
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := stuff.Ban{UserID: "u1", BannedAt: t0.Add((n - 2) * time.Second), UnbannedAt: t0.Add((n - 1) * time.Second)}
	if got, err := a.SaveBan(ctx, stuff.Ban{UserID: "u1", BannedAt: t0}); err != nil || got != want || got.Banned() {
		t.Fatalf("after concurrent saves and a late ban: %+v (%v), want %+v", got, err, want)
	}
	want.BannedAt = t0.Add(time.Hour)
	if got, err := b.SaveBan(ctx, stuff.Ban{UserID: "u1", BannedAt: want.BannedAt}); err != nil || got != want || !got.Banned() {
		t.Fatalf("another replica's ban: %+v (%v), want %+v", got, err, want)
	}
	all, err := a.Bans(ctx)
	if err != nil || len(all) != 1 || all[0] != want {
		t.Fatalf("stored bans %+v (%v)", all, err)
	}
}

// createdRef, cancelledRef and completedRef are the order events of order
// as the orders service publishes them, for a listing priced 1.
func createdRef(order, buyer string, expiresAt time.Time) stuff.OrderRef {
	return stuff.OrderRef{ID: order, Version: 1, BuyerID: buyer, Price: 1, ExpiresAt: expiresAt}
}

func cancelledRef(order string) stuff.OrderRef { return stuff.OrderRef{ID: order, Version: 2} }

func completedRef(order, buyer string) stuff.OrderRef {
	return stuff.OrderRef{ID: order, Version: 2, BuyerID: buyer, Price: 1}
}
