package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// stuffDoc is how a service might store a stuff with its outbox.
type stuffDoc struct {
	ID      string           `bson:"_id"`
	Title   string           `bson:"title"`
	Version int64            `bson:"version"`
	Outbox  []outbox.Pending `bson:"outbox,omitempty"`
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pending(t *testing.T, id string, version int64) outbox.Pending {
	t.Helper()
	p, err := outbox.New(context.Background(), events.StuffUpdatedEvent{ID: id, Version: version, Title: "Notes"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// received is one stuff:updated event a listener got.
type received struct {
	ID      string
	Version int64
}

func listen(t *testing.T, cfg events.Config) (*events.Bus, <-chan received) {
	t.Helper()
	bus := events.NewBus(cfg, testkit.Logger(t), nil)
	t.Cleanup(func() {
		if err := bus.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	got := make(chan received, 100)
	bus.Listen(events.Listener{Subject: events.StuffUpdated, Group: "orders", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.StuffUpdatedEvent](m)
		if err != nil {
			return err
		}
		got <- received{ev.ID, ev.Version}
		return nil
	}})
	return bus, got
}

func waitConnected(t *testing.T, bus *events.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.WaitConnected(ctx); err != nil {
		t.Fatalf("bus did not connect: %v", err)
	}
}

// run starts the relay until the test ends.
func run(t *testing.T, r *outbox.Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Relay.Run did not return after its context ended")
		}
	})
}

func expect(t *testing.T, got <-chan received, want ...received) {
	t.Helper()
	for i, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("event %d: got %+v, want %+v (all: %+v)", i, g, w, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("event %d (%+v) not received", i, w)
		}
	}
}

func nothingMore(t *testing.T, got <-chan received, d time.Duration) {
	t.Helper()
	select {
	case g := <-got:
		t.Fatalf("unexpected extra event %+v (published twice?)", g)
	case <-time.After(d):
	}
}

func outboxOf(t *testing.T, c *mongo.Collection, id string) []outbox.Pending {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var doc stuffDoc
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return doc.Outbox
}

func emptied(t *testing.T, c *mongo.Collection, ids ...string) {
	t.Helper()
	for _, id := range ids {
		testkit.Eventually(t, 10*time.Second, func() bool { return len(outboxOf(t, c, id)) == 0 },
			"outbox of %s not emptied: %+v", id, outboxOf(t, c, id))
	}
}

func insert(t *testing.T, c *mongo.Collection, id string, events ...outbox.Pending) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.InsertOne(ctx, stuffDoc{ID: id, Title: "Notes", Outbox: events}); err != nil {
		t.Fatal(err)
	}
}

// update is a service's change of a stuff: $set plus its event, through the
// Writer.
func update(t *testing.T, w *mongox.Writer, c *mongo.Collection, id string, version int64, evs ...outbox.Pending) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	matched, err := w.UpdateByID(ctx, c, id, bson.D{
		{Key: "$set", Value: bson.D{{Key: "version", Value: version}}},
		outbox.Push(evs...),
	})
	if err != nil || !matched {
		t.Fatalf("update %s: matched %v, %v", id, matched, err)
	}
}

func TestNewAndPush(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	ev := events.StuffUpdatedEvent{ID: "s1", Version: 3, Title: "Notes", Price: 100}
	p, err := outbox.New(ctx, ev, t0)
	if err != nil {
		t.Fatal(err)
	}
	var back events.StuffUpdatedEvent
	if err := json.Unmarshal(p.Data, &back); err != nil || back != ev || p.Subject != string(events.StuffUpdated) || p.ID == "" || !p.At.Equal(t0) {
		t.Fatalf("New = %+v (%v)", p, err)
	}
	if q, _ := outbox.New(ctx, ev, t0); q.ID == p.ID {
		t.Fatal("two pending events share an id")
	}

	// $push with $each on FerretDB: creates the array, then appends in order.
	c := testkit.Mongo(t).Collection("stuff")
	insert(t, c, "s1")
	w := mongox.NewWriter()
	a, b, d := pending(t, "s1", 1), pending(t, "s1", 2), pending(t, "s1", 3)
	update(t, w, c, "s1", 2, a, b)
	update(t, w, c, "s1", 3, d)
	got := outboxOf(t, c, "s1")
	if len(got) != 3 {
		t.Fatalf("outbox %+v, want 3 entries", got)
	}
	for i, want := range []outbox.Pending{a, b, d} {
		if got[i].ID != want.ID || got[i].Subject != want.Subject || string(got[i].Data) != string(want.Data) || !got[i].At.Equal(want.At) {
			t.Fatalf("entry %d = %+v, want %+v", i, got[i], want)
		}
	}
	var doc stuffDoc
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "s1"}}).Decode(&doc); err != nil || doc.Version != 3 || doc.Title != "Notes" {
		t.Fatalf("document %+v (%v): the $set beside the $push was lost", doc, err)
	}
}

func TestRelayNotifyPublishesAndRemoves(t *testing.T) {
	t.Parallel()
	db := testkit.Mongo(t)
	c := db.Collection("stuff")
	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	w := mongox.NewWriter()
	r := outbox.NewRelay(bus, w, testkit.Logger(t), c)
	r.Sweep = time.Hour // only Notify (and the sweep at start) publish here
	run(t, r)

	insert(t, c, "s1", pending(t, "s1", 0))
	r.Notify(c, "s1")
	expect(t, got, received{"s1", 0})
	emptied(t, c, "s1")

	// Several events of one document, over several writes, go out in order.
	update(t, w, c, "s1", 1, pending(t, "s1", 1))
	r.Notify(c, "s1")
	update(t, w, c, "s1", 3, pending(t, "s1", 2), pending(t, "s1", 3))
	r.Notify(c, "s1")
	update(t, w, c, "s1", 4, pending(t, "s1", 4))
	update(t, w, c, "s1", 5, pending(t, "s1", 5))
	r.Notify(c, "s1")
	r.Notify(c, "s1")
	expect(t, got, received{"s1", 1}, received{"s1", 2}, received{"s1", 3}, received{"s1", 4}, received{"s1", 5})
	emptied(t, c, "s1")
	nothingMore(t, got, 1500*time.Millisecond)

	// A document that is gone, or a collection the relay does not watch, is
	// no reason to stop.
	r.Notify(c, "deleted")
	r.Notify(db.Collection("unwatched"), "x")
	insert(t, c, "s2", pending(t, "s2", 0))
	r.Notify(c, "s2")
	expect(t, got, received{"s2", 0})
}

// TestRelayPublishesOnce guards against removal that silently does nothing
// (FerretDB v1 ignores $pull conditions): every sweep would publish the same
// events again.
func TestRelayPublishesOnce(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	r := outbox.NewRelay(bus, mongox.NewWriter(), testkit.Logger(t), c)
	r.Sweep = 100 * time.Millisecond
	insert(t, c, "s1", pending(t, "s1", 0), pending(t, "s1", 1))
	run(t, r)
	expect(t, got, received{"s1", 0}, received{"s1", 1})
	emptied(t, c, "s1")
	nothingMore(t, got, 1500*time.Millisecond)
}

func TestRelaySweepsLeftoversAtStart(t *testing.T) {
	t.Parallel()
	db := testkit.Mongo(t)
	stuff, other := db.Collection("stuff"), db.Collection("archive")
	// Saved by a process that died before its relay published them.
	insert(t, stuff, "s1", pending(t, "s1", 0), pending(t, "s1", 1))
	insert(t, stuff, "s2", pending(t, "s2", 0))
	insert(t, stuff, "s3") // nothing pending
	insert(t, other, "a1", pending(t, "a1", 7))

	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	r := outbox.NewRelay(bus, mongox.NewWriter(), testkit.Logger(t), stuff, other)
	r.Sweep = time.Hour
	run(t, r) // no Notify: only the sweep at start can find them

	perDoc := map[string][]int64{}
	for range 4 {
		select {
		case g := <-got:
			perDoc[g.ID] = append(perDoc[g.ID], g.Version)
		case <-time.After(15 * time.Second):
			t.Fatalf("leftovers not published; got %v", perDoc)
		}
	}
	if fmt.Sprint(perDoc) != fmt.Sprint(map[string][]int64{"a1": {7}, "s1": {0, 1}, "s2": {0}}) {
		t.Fatalf("published %v", perDoc)
	}
	emptied(t, stuff, "s1", "s2", "s3")
	emptied(t, other, "a1")
}

func TestRelaySkipsADocumentWithABadEntry(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c := testkit.Mongo(t).Collection("stuff")
	// Written by hand, not by Push: it cannot be published, and must not
	// hold up the other documents of the sweep.
	bad := bson.D{{Key: "_id", Value: "a-bad"}, {Key: outbox.Field, Value: bson.A{
		bson.D{{Key: "id", Value: 5}, {Key: "subject", Value: 7}},
	}}}
	if _, err := c.InsertOne(ctx, bad); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "b-good", pending(t, "b-good", 0))

	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	r := outbox.NewRelay(bus, mongox.NewWriter(), testkit.Logger(t), c)
	r.Sweep = time.Hour
	run(t, r)
	expect(t, got, received{"b-good", 0})
	emptied(t, c, "b-good")
	var doc bson.M
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "a-bad"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if entries, _ := doc[outbox.Field].(bson.A); len(entries) != 1 {
		t.Fatalf("bad document %v: its entry must stay for a human to look at", doc)
	}
}

// blockingPublisher holds the first Publish until release is closed.
type blockingPublisher struct {
	inner   outbox.Publisher
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (p *blockingPublisher) Publish(ctx context.Context, s events.Subject, data []byte) error {
	first := false
	p.once.Do(func() { first = true })
	if first {
		close(p.entered)
		<-p.release
	}
	return p.inner.Publish(ctx, s, data)
}

func TestRelayKeepsEventsPushedDuringFlush(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	pub := &blockingPublisher{inner: bus, entered: make(chan struct{}), release: make(chan struct{})}
	w := mongox.NewWriter()
	r := outbox.NewRelay(pub, w, testkit.Logger(t), c)
	r.Sweep = time.Hour
	run(t, r)

	insert(t, c, "s1", pending(t, "s1", 0))
	r.Notify(c, "s1")
	select {
	case <-pub.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not start publishing")
	}
	// While the relay is publishing event 0, a handler saves a change. It
	// must not wait for NATS (the lock is not held while publishing).
	done := make(chan struct{})
	go func() {
		defer close(done)
		update(t, w, c, "s1", 1, pending(t, "s1", 1))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a write waited for the relay's publish")
	}
	r.Notify(c, "s1")
	close(pub.release)

	expect(t, got, received{"s1", 0}, received{"s1", 1})
	emptied(t, c, "s1")
	nothingMore(t, got, 1500*time.Millisecond)
}

// countingPublisher counts failed publishes.
type countingPublisher struct {
	inner  outbox.Publisher
	failed atomic.Int32
}

func (p *countingPublisher) Publish(ctx context.Context, s events.Subject, data []byte) error {
	err := p.inner.Publish(ctx, s, data)
	if err != nil {
		p.failed.Add(1)
	}
	return err
}

func TestRelayLosesNothingWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	c := testkit.Mongo(t).Collection("stuff")
	bus, got := listen(t, srv.Config)
	w := mongox.NewWriter()
	pub := &countingPublisher{inner: bus}
	r := outbox.NewRelay(pub, w, testkit.Logger(t), c)
	r.Sweep = time.Hour       // recovery must come from the reconnect, not the ticker
	bus.OnConnect(r.SweepNow) // as shared/service wires it
	bus.Start()
	waitConnected(t, bus)
	run(t, r)

	insert(t, c, "s1", pending(t, "s1", 0))
	r.Notify(c, "s1")
	expect(t, got, received{"s1", 0})
	emptied(t, c, "s1")

	srv.Stop()
	testkit.Eventually(t, 15*time.Second, func() bool { return bus.Ready(context.Background()) != nil }, "bus still ready with NATS down")

	// Saved while NATS is down.
	update(t, w, c, "s1", 1, pending(t, "s1", 1))
	r.Notify(c, "s1")
	insert(t, c, "s2", pending(t, "s2", 0))
	r.Notify(c, "s2")
	testkit.Eventually(t, 10*time.Second, func() bool { return pub.failed.Load() >= 1 }, "the relay did not try to publish")
	if n := len(outboxOf(t, c, "s1")); n != 1 {
		t.Fatalf("s1 outbox holds %d events after a failed publish, want 1", n)
	}

	srv.Restart()
	perDoc := map[string]int64{}
	for range 2 {
		select {
		case g := <-got:
			perDoc[g.ID] = g.Version
		case <-time.After(20 * time.Second):
			t.Fatalf("events saved during the outage not published after it; got %v", perDoc)
		}
	}
	if perDoc["s1"] != 1 || perDoc["s2"] != 0 || len(perDoc) != 2 {
		t.Fatalf("published %v, want s1 v1 and s2 v0", perDoc)
	}
	emptied(t, c, "s1", "s2")
}

func TestRelayRunStopsWithContext(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	r := outbox.NewRelay(failingPublisher{}, mongox.NewWriter(), testkit.Logger(t), c)
	r.Sweep = 0 // the default applies, no panic
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	insert(t, c, "s1", pending(t, "s1", 0))
	r.Notify(c, "s1")
	r.SweepNow()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := len(outboxOf(t, c, "s1")); n != 1 {
		t.Fatalf("outbox holds %d events after failed publishes, want 1 (kept for later)", n)
	}
}

type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, events.Subject, []byte) error {
	return errors.New("nats: not connected")
}

// finds counts the find commands a client sends to one collection.
type finds struct {
	coll string
	n    atomic.Int32
}

func (f *finds) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "find" && e.Command.Lookup("find").StringValue() == f.coll {
			f.n.Add(1)
		}
	}}
}

// monitored returns collection name of the test's database through a client
// whose find commands on it are counted.
func monitored(t *testing.T, name string) (*mongo.Collection, *finds) {
	t.Helper()
	f := &finds{coll: name}
	client, err := mongo.Connect(context.Background(), options.Client().ApplyURI(testkit.MongoURI(t)).SetMonitor(f.monitor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.Disconnect(context.Background()); err != nil {
			t.Errorf("disconnect: %v", err)
		}
	})
	return client.Database(testkit.DBName(t)).Collection(name), f
}

// A write that hands its events to Notify has them published as they are:
// the document is not read back (once the sweep at start has looked for
// leftovers), and the events are removed from it.
func TestRelayPublishesGivenEventsWithoutReadingBack(t *testing.T) {
	t.Parallel()
	c, f := monitored(t, "stuff")
	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	w := mongox.NewWriter()
	r := outbox.NewRelay(bus, w, testkit.Logger(t), c)
	r.Sweep = time.Hour
	insert(t, c, "s0", pending(t, "s0", 0)) // a leftover: proves the first sweep ran
	run(t, r)
	expect(t, got, received{"s0", 0})
	emptied(t, c, "s0")

	before := f.n.Load()
	p0 := pending(t, "s1", 0)
	insert(t, c, "s1", p0)
	r.Notify(c, "s1", p0)
	p1, p2 := pending(t, "s1", 1), pending(t, "s1", 2)
	update(t, w, c, "s1", 2, p1, p2)
	r.Notify(c, "s1", p1, p2)
	expect(t, got, received{"s1", 0}, received{"s1", 1}, received{"s1", 2})
	if n := f.n.Load() - before; n != 0 {
		t.Fatalf("the relay read the document back %d times; it was given every event", n)
	}
	emptied(t, c, "s1")
	nothingMore(t, got, time.Second)
}

// Many documents at once: all events arrive, each document's in the order
// they were pushed, whatever the interleaving between documents.
func TestRelayKeepsEachDocumentsOrderAcrossWorkers(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	w := mongox.NewWriter()
	r := outbox.NewRelay(bus, w, testkit.Logger(t), c)
	r.Sweep = time.Hour
	r.Workers = 4
	run(t, r)

	const docs, perDoc = 12, 5
	var wg sync.WaitGroup
	for d := range docs {
		wg.Go(func() {
			id := fmt.Sprintf("s%02d", d)
			p := pending(t, id, 0)
			insert(t, c, id, p)
			r.Notify(c, id, p)
			for v := int64(1); v < perDoc; v++ {
				p := pending(t, id, v)
				update(t, w, c, id, v, p)
				r.Notify(c, id, p)
			}
		})
	}
	wg.Wait()
	next := map[string]int64{}
	for range docs * perDoc {
		select {
		case g := <-got:
			if g.Version != next[g.ID] {
				t.Fatalf("%s: got version %d, want %d (out of order or twice)", g.ID, g.Version, next[g.ID])
			}
			next[g.ID]++
		case <-time.After(15 * time.Second):
			t.Fatalf("missing events; got so far %v", next)
		}
	}
	nothingMore(t, got, time.Second)
}

// slowPublisher takes d per publish and records what it published.
type slowPublisher struct {
	inner outbox.Publisher
	d     time.Duration
}

func (p *slowPublisher) Publish(ctx context.Context, s events.Subject, data []byte) error {
	time.Sleep(p.d) // a slow NATS, not synchronization
	return p.inner.Publish(ctx, s, data)
}

// A backlog found by the sweep never holds up a fresh event: with one worker
// and 100 leftover documents, an event notified after the first leftover went
// out is published next, or the one after.
func TestRelayFreshEventsGoBeforeTheBacklog(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	for i := range 100 {
		id := fmt.Sprintf("old%03d", i)
		insert(t, c, id, pending(t, id, 0))
	}
	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	w := mongox.NewWriter()
	r := outbox.NewRelay(&slowPublisher{inner: bus, d: 20 * time.Millisecond}, w, testkit.Logger(t), c)
	r.Sweep = time.Hour
	r.Workers = 1
	run(t, r)
	select {
	case <-got: // the backlog is queued and flowing
	case <-time.After(15 * time.Second):
		t.Fatal("the sweep at start published nothing")
	}
	p := pending(t, "fresh", 0)
	insert(t, c, "fresh", p)
	r.Notify(c, "fresh", p)
	for i := 0; ; i++ {
		select {
		case g := <-got:
			if g.ID == "fresh" {
				if i > 1 {
					t.Fatalf("the fresh event came out after %d leftovers", i)
				}
				return
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the fresh event was not published")
		}
	}
}

// flakyPublisher fails the first publish of an event of document id.
type flakyPublisher struct {
	inner  outbox.Publisher
	id     string
	failed atomic.Bool
}

func (p *flakyPublisher) Publish(ctx context.Context, s events.Subject, data []byte) error {
	if strings.Contains(string(data), `"id":"`+p.id+`"`) && p.failed.CompareAndSwap(false, true) {
		return errors.New("nats: timeout")
	}
	return p.inner.Publish(ctx, s, data)
}

// After a failed publish the relay no longer trusts what it is given for
// that document: the next write's event goes out after the one that failed,
// read back from the document, and not alone.
func TestRelayReadsBackAfterAFailedPublish(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	bus, got := listen(t, testkit.NATS(t))
	bus.Start()
	waitConnected(t, bus)
	w := mongox.NewWriter()
	pub := &flakyPublisher{inner: bus, id: "s1"}
	r := outbox.NewRelay(pub, w, testkit.Logger(t), c)
	r.Sweep = time.Hour // only the next write may bring the failed event out
	insert(t, c, "s0", pending(t, "s0", 0))
	run(t, r)
	expect(t, got, received{"s0", 0}) // the sweep at start is done

	p0 := pending(t, "s1", 0)
	insert(t, c, "s1", p0)
	r.Notify(c, "s1", p0)
	testkit.Eventually(t, 10*time.Second, func() bool { return pub.failed.Load() }, "first publish not tried")
	p1 := pending(t, "s1", 1)
	update(t, w, c, "s1", 1, p1)
	r.Notify(c, "s1", p1)
	var s1 []int64
	deadline := time.After(15 * time.Second)
	for len(s1) < 2 {
		select {
		case g := <-got:
			if g.ID == "s1" {
				s1 = append(s1, g.Version)
			}
		case <-deadline:
			t.Fatalf("s1 events received: %v; want 0 then 1", s1)
		}
	}
	if s1[0] != 0 || s1[1] != 1 {
		t.Fatalf("s1 events in order %v; want [0 1]", s1)
	}
	emptied(t, c, "s1")
}

// gatedPublisher fails until open, then accepts everything.
type gatedPublisher struct{ open atomic.Bool }

func (p *gatedPublisher) Publish(context.Context, events.Subject, []byte) error {
	if !p.open.Load() {
		return errors.New("nats: not connected")
	}
	return nil
}

// Stats (and the gauges Instrument serves) count what waits: leftovers the
// sweep found and fresh events that could not go out, with the age of the
// oldest; both drop to nothing once NATS takes them.
func TestRelayStats(t *testing.T) {
	t.Parallel()
	c := testkit.Mongo(t).Collection("stuff")
	insert(t, c, "s1", pending(t, "s1", 0), pending(t, "s1", 1)) // left by a crash, written at t0
	pub := &gatedPublisher{}
	r := outbox.NewRelay(pub, mongox.NewWriter(), testkit.Logger(t), c)
	r.Sweep = time.Hour
	m := metrics.New()
	clock := testkit.NewClock(t0.Add(time.Minute))
	r.Instrument(m, clock.Now)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	run(t, r)

	later, err := outbox.New(context.Background(), events.StuffUpdatedEvent{ID: "s2", Version: 0, Title: "Notes"}, t0.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	insert(t, c, "s2", later)
	r.Notify(c, "s2", later)
	testkit.Eventually(t, 10*time.Second, func() bool {
		n, oldest := r.Stats()
		return n == 3 && oldest.Equal(t0)
	}, "stats do not count the two leftovers and the fresh event")
	got := testkit.Scrape(t, srv.URL)
	if v := got.Value("outbox_pending_events"); v != 3 {
		t.Errorf("outbox_pending_events = %v, want 3", v)
	}
	if v := got.Value("outbox_oldest_pending_seconds"); v != 60 {
		t.Errorf("outbox_oldest_pending_seconds = %v, want 60", v)
	}

	pub.open.Store(true)
	r.SweepNow()
	testkit.Eventually(t, 10*time.Second, func() bool {
		n, oldest := r.Stats()
		return n == 0 && oldest.IsZero()
	}, "stats still count published events")
	emptied(t, c, "s1", "s2")
	got = testkit.Scrape(t, srv.URL)
	if v := got.Value("outbox_oldest_pending_seconds"); v != 0 || !got.Has("outbox_pending_events") {
		t.Errorf("after publishing: %s", got)
	}
}
