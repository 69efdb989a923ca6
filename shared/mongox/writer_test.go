package mongox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

type counter struct {
	ID     string `bson:"_id"`
	N      int    `bson:"n"`
	Status string `bson:"status"`
	Last   int    `bson:"last"`
}

func load(t *testing.T, ctx context.Context, c *mongo.Collection, id string) counter {
	t.Helper()
	var doc counter
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return doc
}

// TestWriterKeepsEveryConcurrentUpdate is SPEC §8 rule 2: FerretDB v1 loses
// concurrent updates of one document, the Writer must not.
func TestWriterKeepsEveryConcurrentUpdate(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c := testkit.Mongo(t).Collection("stuff")
	if _, err := c.InsertOne(ctx, counter{ID: "s1", Status: "available"}); err != nil {
		t.Fatal(err)
	}
	w := mongox.NewWriter()
	const n = 50
	var wg sync.WaitGroup
	errc := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			matched, err := w.UpdateByID(ctx, c, "s1", bson.D{
				{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}},
				{Key: "$set", Value: bson.D{{Key: "last", Value: i}}},
			})
			if err == nil && !matched {
				err = errors.New("update did not match")
			}
			errc <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatalf("UpdateByID: %v", err)
		}
	}
	if got := load(t, ctx, c, "s1").N; got != n {
		t.Fatalf("n = %d after %d concurrent $inc through the Writer, want %d", got, n, n)
	}
	if got := w.LockCount(); got != 0 {
		t.Fatalf("Writer still holds %d locks after every update returned", got)
	}
}

func TestWriterUpdateByID(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c := testkit.Mongo(t).Collection("orders")
	w := mongox.NewWriter()
	if _, err := c.InsertOne(ctx, counter{ID: "o1", Status: "created"}); err != nil {
		t.Fatal(err)
	}
	complete := bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "complete"}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}
	tests := []struct {
		name       string
		id         string
		extra      []bson.E
		matched    bool
		wantStatus string
		wantN      int
	}{
		// Run in order: each row starts from the state the previous left.
		{"extra condition not met", "o1", []bson.E{{Key: "status", Value: "cancelled"}}, false, "created", 0},
		{"two conditions, one not met", "o1", []bson.E{{Key: "status", Value: "created"}, {Key: "n", Value: 5}}, false, "created", 0},
		{"extra condition met", "o1", []bson.E{{Key: "status", Value: "created"}}, true, "complete", 1},
		{"condition no longer met", "o1", []bson.E{{Key: "status", Value: "created"}}, false, "complete", 1},
		{"no extra condition", "o1", nil, true, "complete", 2},
		{"missing document", "nope", nil, false, "", 0},
	}
	for _, tc := range tests {
		matched, err := w.UpdateByID(ctx, c, tc.id, complete, tc.extra...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if matched != tc.matched {
			t.Fatalf("%s: matched = %v, want %v", tc.name, matched, tc.matched)
		}
		if tc.id != "o1" {
			continue
		}
		if doc := load(t, ctx, c, "o1"); doc.Status != tc.wantStatus || doc.N != tc.wantN {
			t.Fatalf("%s: document %+v, want status %s n %d", tc.name, doc, tc.wantStatus, tc.wantN)
		}
	}
	if n, err := c.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("%d documents (%v): an update must never insert", n, err)
	}
	if got := w.LockCount(); got != 0 {
		t.Fatalf("%d locks left", got)
	}
}

func TestWriterUpdateErrorIsReturned(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c := testkit.Mongo(t).Collection("stuff")
	if _, err := c.InsertOne(ctx, counter{ID: "s1"}); err != nil {
		t.Fatal(err)
	}
	w := mongox.NewWriter()
	if _, err := w.UpdateByID(ctx, c, "s1", bson.D{{Key: "$bogus", Value: bson.D{{Key: "n", Value: 1}}}}); err == nil {
		t.Fatal("an invalid update returned nil")
	}
	if got := w.LockCount(); got != 0 {
		t.Fatalf("%d locks left after a failed update", got)
	}
}

// lockHeld takes the lock of id and holds it until the returned release is
// called.
func lockHeld(t *testing.T, w *mongox.Writer, c *mongo.Collection, id string) (release func()) {
	t.Helper()
	held, rel := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- w.Lock(context.Background(), c, id, func(context.Context) error {
			close(held)
			<-rel
			return nil
		})
	}()
	<-held
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(rel)
			if err := <-done; err != nil {
				t.Errorf("holder: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

func TestWriterLockGivesUpWhenContextEnds(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	w := mongox.NewWriter()
	release := lockHeld(t, w, c, "s1")

	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline while waiting", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled while waiting", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"cancelled before", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tc.ctx()
			defer cancel()
			ran := false
			done := make(chan error, 1)
			go func() {
				done <- w.Lock(ctx, c, "s1", func(context.Context) error { ran = true; return nil })
			}()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("Lock = %v, want %v", err, tc.want)
				}
				if ran {
					t.Fatal("fn ran without the lock")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Lock kept waiting after its context ended")
			}
		})
	}
	t.Cleanup(func() {
		// After the waiters gave up and the holder let go, nothing is left
		// and the lock is free.
		release()
		if got := w.LockCount(); got != 0 {
			t.Errorf("%d locks left after every caller returned", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := w.Lock(ctx, c, "s1", func(context.Context) error { return nil }); err != nil {
			t.Errorf("Lock after release: %v", err)
		}
	})
}

func TestWriterLocksPerDocument(t *testing.T) {
	t.Parallel()
	db := testkit.Mongo(t)
	w := mongox.NewWriter()
	lockHeld(t, w, db.Collection("stuff"), "s1")
	others := []struct {
		name string
		coll *mongo.Collection
		id   string
	}{
		{"another document", db.Collection("stuff"), "s2"},
		{"same id in another collection", db.Collection("orders"), "s1"},
	}
	for _, o := range others {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := w.Lock(ctx, o.coll, o.id, func(context.Context) error { return nil })
		cancel()
		if err != nil {
			t.Fatalf("%s: Lock = %v while s1 is held; want no waiting", o.name, err)
		}
	}
}

func TestWriterLockReturnsFnError(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	w := mongox.NewWriter()
	boom := errors.New("boom")
	if err := w.Lock(context.Background(), c, "s1", func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Lock = %v, want fn's error", err)
	}
	if got := w.LockCount(); got != 0 {
		t.Fatalf("%d locks left after fn failed", got)
	}
	func() {
		defer func() { _ = recover() }()
		_ = w.Lock(context.Background(), c, "s1", func(context.Context) error { panic("fn panicked") })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.Lock(ctx, c, "s1", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("lock not released after fn panicked: %v", err)
	}
	if got := w.LockCount(); got != 0 {
		t.Fatalf("%d locks left", got)
	}
}
