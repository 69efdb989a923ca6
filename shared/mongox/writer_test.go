package mongox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

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

// TestWriterKeepsEveryConcurrentUpdate is the second rule of
// docs/data-safety.md: FerretDB v1 loses
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

// modes runs a test once as the Writer behaves on FerretDB (guards checked
// by reading the document) and once as on MongoDB (guards in the filter).
var modes = []struct {
	name   string
	atomic bool
}{{"guards read back", false}, {"guards in filter", true}}

func TestWriterUpdateByID(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			c := testkit.Mongo(t).Collection("orders")
			w := mongox.NewWriter()
			w.SetAtomicFilters(mode.atomic)
			if _, err := c.InsertOne(ctx, counter{ID: "o1", Status: "created"}); err != nil {
				t.Fatal(err)
			}
			complete := bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "complete"}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}
			tests := []struct {
				name       string
				id         string
				guard      []bson.E
				matched    bool
				wantStatus string
				wantN      int
			}{
				// Run in order: each row starts from the state the previous left.
				{"guard not met", "o1", []bson.E{{Key: "status", Value: "cancelled"}}, false, "created", 0},
				{"two guards, one not met", "o1", []bson.E{{Key: "status", Value: "created"}, {Key: "n", Value: 5}}, false, "created", 0},
				{"guard on a missing field", "o1", []bson.E{{Key: "nope", Value: 1}}, false, "created", 0},
				{"guard met", "o1", []bson.E{{Key: "status", Value: "created"}}, true, "complete", 1},
				{"guard no longer met", "o1", []bson.E{{Key: "status", Value: "created"}}, false, "complete", 1},
				{"number guard of another width", "o1", []bson.E{{Key: "n", Value: int64(1)}}, true, "complete", 2},
				{"no guard", "o1", nil, true, "complete", 3},
				{"missing document", "nope", nil, false, "", 0},
				{"missing document, guarded", "nope", []bson.E{{Key: "status", Value: "created"}}, false, "", 0},
			}
			for _, tc := range tests {
				matched, err := w.UpdateByID(ctx, c, tc.id, complete, tc.guard...)
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
		})
	}
}

func TestWriterDeleteByID(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			c := testkit.Mongo(t).Collection("holds")
			w := mongox.NewWriter()
			w.SetAtomicFilters(mode.atomic)
			if _, err := c.InsertMany(ctx, []any{counter{ID: "h1", Status: "o1"}, counter{ID: "h2", Status: "o2"}}); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name    string
				id      string
				guard   []bson.E
				deleted bool
				left    int64
			}{
				{"guard not met: another order holds it", "h1", []bson.E{{Key: "status", Value: "o9"}}, false, 2},
				{"guard met", "h1", []bson.E{{Key: "status", Value: "o1"}}, true, 1},
				{"already gone", "h1", []bson.E{{Key: "status", Value: "o1"}}, false, 1},
				{"no guard", "h2", nil, true, 0},
			}
			for _, tc := range tests {
				deleted, err := w.DeleteByID(ctx, c, tc.id, tc.guard...)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if deleted != tc.deleted {
					t.Fatalf("%s: deleted = %v, want %v", tc.name, deleted, tc.deleted)
				}
				if n, err := c.CountDocuments(ctx, bson.D{}); err != nil || n != tc.left {
					t.Fatalf("%s: %d documents left (%v), want %d", tc.name, n, err, tc.left)
				}
			}
		})
	}
}

// On FerretDB every write the Writer sends filters on _id alone: the one
// filter FerretDB serves from an index (any other filter reads the whole
// collection). The commands are read off the wire with the driver's monitor.
func TestWriterFiltersByIDOnlyOnFerretDB(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	var mu sync.Mutex
	var filters []bson.Raw
	finds := 0
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		var stmts []bson.Raw
		switch e.CommandName {
		case "update":
			stmts = rawArray(e.Command, "updates")
		case "delete":
			stmts = rawArray(e.Command, "deletes")
		case "find":
			mu.Lock()
			finds++
			mu.Unlock()
			return
		default:
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, st := range stmts {
			filters = append(filters, st.Lookup("q").Document())
		}
	}}
	findsSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return finds
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(testkit.MongoURI(t)).SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.Disconnect(context.Background()); err != nil {
			t.Errorf("disconnect: %v", err)
		}
	})
	c := client.Database(testkit.DBName(t)).Collection("orders")
	if _, err := c.InsertOne(ctx, counter{ID: "o1", Status: "created"}); err != nil {
		t.Fatal(err)
	}
	w := mongox.NewWriter() // asks the server what it is
	steps := []struct {
		name  string
		run   func() (bool, error)
		finds int // reads of the document the step makes
	}{
		{"guarded update", func() (bool, error) {
			return w.UpdateByID(ctx, c, "o1", bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "complete"}}}}, bson.E{Key: "status", Value: "created"})
		}, 1},
		{"update after the caller's own read", func() (bool, error) {
			var ok bool
			err := w.Lock(ctx, c, "o1", func(ctx context.Context) error {
				var err error
				ok, err = w.UpdateLocked(ctx, c, "o1", bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 1}}}}, bson.E{Key: "status", Value: "complete"})
				return err
			})
			return ok, err
		}, 0},
		{"guarded delete", func() (bool, error) {
			return w.DeleteByID(ctx, c, "o1", bson.E{Key: "status", Value: "complete"})
		}, 1},
	}
	for _, st := range steps {
		before := findsSoFar()
		if ok, err := st.run(); err != nil || !ok {
			t.Fatalf("%s: %v, %v", st.name, ok, err)
		}
		if n := findsSoFar() - before; n != st.finds {
			t.Errorf("%s read the document %d times, want %d", st.name, n, st.finds)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(filters) != 3 {
		t.Fatalf("saw %d write filters, want 3: %v", len(filters), filters)
	}
	for _, f := range filters {
		elems, err := f.Elements()
		if err != nil || len(elems) != 1 || elems[0].Key() != "_id" {
			t.Errorf("write filter %v; want {_id: …} alone", f)
		}
	}
}

func rawArray(doc bson.Raw, key string) []bson.Raw {
	vals, err := doc.Lookup(key).Array().Values()
	if err != nil {
		return nil
	}
	out := make([]bson.Raw, 0, len(vals))
	for _, v := range vals {
		out = append(out, v.Document())
	}
	return out
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

// GuardsInFilter puts guards into the filter on FerretDB too, as on MongoDB:
// a write made after a read is refused when the document changed since,
// even by another Writer (another process).
func TestWriterGuardsInFilter(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c := testkit.Mongo(t).Collection("stuff")
	if _, err := c.InsertOne(ctx, counter{ID: "s1", Status: "v1"}); err != nil {
		t.Fatal(err)
	}
	a, b := mongox.NewWriter().GuardsInFilter(), mongox.NewWriter()
	err := a.Lock(ctx, c, "s1", func(ctx context.Context) error {
		read := load(t, ctx, c, "s1")
		// Another process writes between this one's read and write.
		if ok, err := b.UpdateByID(ctx, c, "s1", bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "v2"}}}}); err != nil || !ok {
			t.Fatalf("other writer: %v, %v", ok, err)
		}
		ok, err := a.UpdateLocked(ctx, c, "s1", bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 9}}}}, bson.E{Key: "status", Value: read.Status})
		if err != nil || ok {
			t.Fatalf("write on a stale read: matched %v, %v; want no match", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if doc := load(t, ctx, c, "s1"); doc.Status != "v2" || doc.N != 0 {
		t.Fatalf("document %+v; the other writer's change must stand alone", doc)
	}
}

// On FerretDB the Writer sends at most two writes at a time per database
// (SQLite has one writer per file, and colliding writers sleep in its busy
// handler), whatever the number of goroutines writing; the commands in flight
// are read off the wire with the driver's monitor.
func TestWriterLimitsWritesInFlightOnFerretDB(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	var mu sync.Mutex
	inflight, most := 0, 0
	writes := map[string]bool{"insert": true, "update": true, "delete": true}
	track := func(name string, d int) {
		if !writes[name] {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		inflight += d
		most = max(most, inflight)
	}
	monitor := &event.CommandMonitor{
		Started:   func(_ context.Context, e *event.CommandStartedEvent) { track(e.CommandName, 1) },
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { track(e.CommandName, -1) },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { track(e.CommandName, -1) },
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(testkit.MongoURI(t)).SetMonitor(monitor))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.Disconnect(context.Background()); err != nil {
			t.Errorf("disconnect: %v", err)
		}
	})
	db := client.Database(testkit.DBName(t))
	w := mongox.NewWriter()
	var wg sync.WaitGroup
	errc := make(chan error, 60)
	for i := range 20 {
		wg.Go(func() {
			id := fmt.Sprintf("d%02d", i)
			c := db.Collection([]string{"orders", "holds"}[i%2])
			if err := w.Insert(ctx, c, counter{ID: id}); err != nil {
				errc <- err
				return
			}
			if _, err := w.UpdateByID(ctx, c, id, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}); err != nil {
				errc <- err
				return
			}
			if _, err := w.DeleteByID(ctx, c, id); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if most < 1 || most > 2 {
		t.Fatalf("%d writes were in flight at once; want at most 2", most)
	}
}
