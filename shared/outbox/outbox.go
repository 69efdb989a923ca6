// Package outbox makes "save the change and publish its event" safe without
// transactions (FerretDB has none): the pending event is written in the same
// single-document write as the change, in the document's outbox array, and a
// Relay publishes pending events in order and then removes them. If NATS is
// down, the events wait in the documents and go out when it is back; if the
// process dies, the next sweep finds them. Delivery is at least once, so
// listeners are idempotent. docs/data-safety.md tells the whole story.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nuid"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/mongox"
)

// Field is the array field that holds a document's pending events.
const Field = "outbox"

// Pending is one event waiting in a document's outbox.
type Pending struct {
	ID      string    `bson:"id"`
	Subject string    `bson:"subject"`
	Data    []byte    `bson:"data"`
	At      time.Time `bson:"at"`
}

// New encodes ev as a pending event; the correlation id ctx carries goes
// with it (events.Encode).
func New(ctx context.Context, ev events.Event, now time.Time) (Pending, error) {
	data, err := events.Encode(ctx, ev)
	if err != nil {
		return Pending{}, err
	}
	// BSON keeps milliseconds: truncated here, the value in memory is the
	// value stored, so the relay can remove it ($pullAll) without reading
	// it back.
	return Pending{ID: nuid.Next(), Subject: string(ev.Subject()), Data: data, At: now.Truncate(time.Millisecond)}, nil
}

// Push is the update operator that appends events to a document's outbox;
// combine it with the change's $set in one update through the service's
// mongox.Writer, so the relay's removal of sent events and this push never
// overwrite each other. After the write, hand the same events to
// Relay.Notify.
func Push(p ...Pending) bson.E {
	return bson.E{Key: "$push", Value: bson.D{{Key: Field, Value: bson.D{{Key: "$each", Value: p}}}}}
}

// Publisher publishes one message; *events.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, subject events.Subject, data []byte) error
}

// Relay publishes the pending events of the collections it watches.
//
// Fresh events (Notify with the events a write just pushed) are published
// as they are, without reading the document back, and removed with one
// $pullAll by _id. Each document's events go out in the order they were
// pushed; different documents are published concurrently by Workers
// goroutines. A document is read back instead when the relay cannot vouch
// that the events it was given are all that wait in it: before the first
// sweep since start has looked for leftovers, and after a publish of the
// document failed, until a read-back flush empties it.
//
// The sweep (at start, every Sweep, and on SweepNow: after NATS reconnects)
// scans the watched collections for documents with pending events and
// queues them behind fresh work, so a backlog never delays new events.
type Relay struct {
	pub   Publisher
	w     *mongox.Writer
	log   *slog.Logger
	colls map[string]*mongo.Collection
	// Sweep is how often every watched collection is scanned for events that
	// were not published right away (NATS down, a crash). Default 30s.
	Sweep time.Duration
	// Workers is how many documents are published at once (default 32):
	// each publish waits for NATS Streaming's ack, so many in flight are
	// what keeps up with a burst of writes.
	Workers int

	mu      sync.Mutex
	docs    map[docRef]*docWork // documents with work queued or running
	fresh   []docRef            // documents ready to run, fresh work first
	backlog []docRef            // then those the sweep found
	suspect map[docRef]backlog  // may hold events the relay was not given
	swept   bool                // the first sweep queued every leftover
	ready   chan struct{}       // a document was made ready
	sweepc  chan struct{}
}

// defaultWorkers is Relay.Workers when unset.
const defaultWorkers = 32

type docRef struct {
	coll string
	id   any // comparable: ObjectID, string
}

// docWork is what is queued for one document.
type docWork struct {
	events   []Pending // given by Notify, in push order
	readBack bool      // read the document: it may hold more than events
	running  bool
	inFresh  bool // queued in fresh (it may also be in backlog)

	// sending are the events being published now (Stats counts them).
	sending []Pending
}

// backlog is what a document was last known to hold beyond the events
// Notify gave: found by the sweep, or left by a failed publish.
type backlog struct {
	n      int
	oldest time.Time
}

// add counts one more event written at.
func (b *backlog) add(at time.Time) {
	b.n++
	if b.oldest.IsZero() || at.Before(b.oldest) {
		b.oldest = at
	}
}

// NewRelay returns a relay that publishes through pub and removes published
// events through the service's one Writer.
func NewRelay(pub Publisher, w *mongox.Writer, log *slog.Logger, colls ...*mongo.Collection) *Relay {
	r := &Relay{pub: pub, w: w, log: log, colls: map[string]*mongo.Collection{}, Sweep: 30 * time.Second, Workers: defaultWorkers,
		docs: map[docRef]*docWork{}, suspect: map[docRef]backlog{},
		ready: make(chan struct{}, 1), sweepc: make(chan struct{}, 1)}
	for _, c := range colls {
		r.colls[c.Name()] = c
	}
	return r
}

// Notify asks the relay to publish what a write just pushed to document id
// of coll: events, exactly as pushed (in order), or nothing to have the
// document read back. Call it after every write that pushed to an outbox;
// it never blocks.
func (r *Relay) Notify(coll *mongo.Collection, id any, evs ...Pending) {
	d := docRef{coll: coll.Name(), id: id}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enqueue(d, evs, len(evs) == 0, &r.fresh)
}

// enqueue adds work for d to queue (fresh or backlog); called with r.mu
// held. A document has an entry in r.docs while it is queued or running; a
// running document picks up what is added meanwhile, and a document waiting
// in the backlog is queued again as fresh when a write notifies it.
func (r *Relay) enqueue(d docRef, evs []Pending, readBack bool, queue *[]docRef) {
	w, queued := r.docs[d]
	if !queued {
		w = &docWork{}
		r.docs[d] = w
	}
	w.events = append(w.events, evs...)
	w.readBack = w.readBack || readBack
	fresh := queue == &r.fresh
	if w.running || (queued && (!fresh || w.inFresh)) {
		return
	}
	w.inFresh = w.inFresh || fresh
	*queue = append(*queue, d)
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// Stats is what waits to be published as far as the relay knows: the events
// writes handed to Notify and not yet sent, and those the last sweep found
// in documents (left by a crash, or by NATS being down), with the time the
// oldest of them was written (zero when none waits). An event pushed by a
// write whose Notify never came (the process died in between) is counted
// from the next sweep on.
func (r *Relay) Stats() (pending int, oldest time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	note := func(at time.Time) {
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	for _, w := range r.docs {
		for _, evs := range [][]Pending{w.sending, w.events} {
			pending += len(evs)
			for _, p := range evs {
				note(p.At)
			}
		}
	}
	for _, b := range r.suspect {
		pending += b.n
		if b.n > 0 {
			note(b.oldest)
		}
	}
	return pending, oldest
}

// Instrument serves Stats as outbox_pending_events and
// outbox_oldest_pending_seconds.
func (r *Relay) Instrument(m *metrics.Set, now func() time.Time) {
	m.GaugeFunc("outbox_pending_events", "Events written to an outbox and not yet published to NATS Streaming.", func() float64 {
		n, _ := r.Stats()
		return float64(n)
	})
	m.GaugeFunc("outbox_oldest_pending_seconds", "Age of the oldest event not yet published (0 when none waits).", func() float64 {
		_, oldest := r.Stats()
		if oldest.IsZero() {
			return 0
		}
		return max(0, now().Sub(oldest).Seconds())
	})
}

// SweepNow asks for a scan of every watched collection (after NATS
// reconnects, for instance).
func (r *Relay) SweepNow() {
	select {
	case r.sweepc <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends. It sweeps once at start.
func (r *Relay) Run(ctx context.Context) {
	every := r.Sweep
	if every <= 0 {
		every = 30 * time.Second
	}
	workers := r.Workers
	if workers <= 0 {
		workers = defaultWorkers
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			r.sweep(ctx)
			select {
			case <-ctx.Done():
				return
			case <-r.sweepc:
			case <-t.C:
			}
		}
	})
	wg.Wait()
}

// work runs queued documents, fresh ones first, until ctx ends.
func (r *Relay) work(ctx context.Context) {
	for {
		d, ok := r.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-r.ready:
				continue
			}
		}
		r.runDoc(ctx, d)
		if ctx.Err() != nil {
			return
		}
	}
}

// next takes the next ready document and marks it running.
func (r *Relay) next() (docRef, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range []*[]docRef{&r.fresh, &r.backlog} {
		for len(*q) > 0 {
			d := (*q)[0]
			*q = (*q)[1:]
			w := r.docs[d]
			if w == nil || w.running {
				continue
			}
			w.running = true
			if len(r.fresh)+len(r.backlog) > 0 {
				// More to do: wake another worker.
				select {
				case r.ready <- struct{}{}:
				default:
				}
			}
			return d, true
		}
	}
	return docRef{}, false
}

// runDoc flushes document d until no work is queued for it.
func (r *Relay) runDoc(ctx context.Context, d docRef) {
	for {
		r.mu.Lock()
		w := r.docs[d]
		if len(w.events) == 0 && !w.readBack {
			delete(r.docs, d)
			r.mu.Unlock()
			return
		}
		_, suspect := r.suspect[d]
		evs, readBack := w.events, w.readBack || suspect || !r.swept
		w.events, w.readBack, w.sending = nil, false, evs
		r.mu.Unlock()

		c := r.colls[d.coll]
		var err error
		var left backlog
		switch {
		case c == nil:
			err = fmt.Errorf("outbox: collection %s not watched", d.coll)
		case readBack:
			left, err = r.flush(ctx, c, d.id)
		default:
			left, err = r.publish(ctx, c, d.id, evs)
		}
		r.mu.Lock()
		w.sending = nil
		switch {
		case err == nil && readBack:
			delete(r.suspect, d) // read back and emptied
		case err != nil && c != nil:
			r.suspect[d] = left // the sweep or the next write reads it back
		}
		r.mu.Unlock()
		if err != nil {
			if errors.Is(err, errBadEntry) {
				r.log.Error("outbox: entry cannot be published", "collection", d.coll, "id", d.id, "err", err)
			} else {
				r.log.Warn("outbox: publish deferred", "collection", d.coll, "id", d.id, "err", err)
			}
		}
	}
}

// sweep queues every document of every watched collection that holds
// pending events, behind fresh work. The scan is a collection scan on
// FerretDB, so it runs rarely; Notify covers the common case.
func (r *Relay) sweep(ctx context.Context) {
	complete := true
	for name, c := range r.colls {
		if ctx.Err() != nil {
			return // shutting down
		}
		cur, err := c.Find(ctx, bson.D{{Key: Field + ".0", Value: bson.D{{Key: "$exists", Value: true}}}},
			options.Find().SetProjection(bson.D{{Key: Field, Value: 1}}))
		if err != nil {
			r.log.Warn("outbox: sweep", "collection", name, "err", err)
			complete = false
			continue
		}
		var docs []struct {
			ID     any `bson:"_id"`
			Outbox []struct {
				At time.Time `bson:"at"`
			} `bson:"outbox"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			r.log.Warn("outbox: sweep", "collection", name, "err", err)
			complete = false
			continue
		}
		r.mu.Lock()
		for _, d := range docs {
			ref := docRef{coll: name, id: d.ID}
			// What the document holds beyond what Notify gave (and is
			// still queued or being sent) waits for the read-back.
			w := r.docs[ref]
			given := 0
			if w != nil {
				given = len(w.events) + len(w.sending)
			}
			var b backlog
			for i, p := range d.Outbox {
				if i >= given {
					b.add(p.At)
				}
			}
			r.suspect[ref] = b
			r.enqueue(ref, nil, true, &r.backlog)
		}
		r.mu.Unlock()
	}
	if complete {
		r.mu.Lock()
		// Every leftover is queued for a read-back: from now on, a
		// document's fresh events are all it holds unless a publish fails.
		r.swept = true
		r.mu.Unlock()
	}
}

// errBadEntry marks an outbox entry that does not decode as a Pending.
var errBadEntry = errors.New("outbox: undecodable entry")

// publish sends evs (all of document id's pending events, in order) and
// removes those that went out.
//
// On failure it also returns what is left in the document of evs: the
// events not sent, or all of them when the removal failed.
func (r *Relay) publish(ctx context.Context, c *mongo.Collection, id any, evs []Pending) (backlog, error) {
	var sent []any
	var pubErr error
	for _, p := range evs {
		if pubErr = r.pub.Publish(ctx, events.Subject(p.Subject), p.Data); pubErr != nil {
			break
		}
		sent = append(sent, p)
	}
	all := make([]time.Time, len(evs))
	for i, p := range evs {
		all[i] = p.At
	}
	return r.remove(ctx, c, id, sent, all, pubErr)
}

// flush reads document id back, publishes its pending events in order and
// removes those that went out. Publishing happens outside the document lock
// so handlers are not held up by NATS; the removal takes out exactly the
// entries that were sent, so an event pushed meanwhile stays.
//
// The removal is a $pullAll of the entries exactly as they were read:
// FerretDB v1's $pull only removes elements equal to the given value (it
// ignores query conditions such as {id: {$in: [...]}}, so nothing was ever
// removed and every sweep published the events again), while $pullAll with
// exact values works on FerretDB and, atomically, on MongoDB.
func (r *Relay) flush(ctx context.Context, c *mongo.Collection, id any) (backlog, error) {
	var doc struct {
		Outbox []bson.Raw `bson:"outbox"`
	}
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: Field, Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return backlog{}, nil
	}
	if err != nil {
		r.mu.Lock()
		left := r.suspect[docRef{coll: c.Name(), id: id}] // as it was known
		r.mu.Unlock()
		return left, fmt.Errorf("load outbox: %w", err)
	}
	all := make([]time.Time, len(doc.Outbox))
	for i, raw := range doc.Outbox {
		var p Pending
		if bson.Unmarshal(raw, &p) == nil {
			all[i] = p.At
		}
	}
	var sent []any
	var pubErr error
	for _, raw := range doc.Outbox {
		var p Pending
		if err := bson.Unmarshal(raw, &p); err != nil {
			// Not something Push wrote; publishing stops here so that
			// order is kept, and a human has to look at the document.
			pubErr = fmt.Errorf("%w: %w", errBadEntry, err)
			break
		}
		if pubErr = r.pub.Publish(ctx, events.Subject(p.Subject), p.Data); pubErr != nil {
			break
		}
		sent = append(sent, raw)
	}
	return r.remove(ctx, c, id, sent, all, pubErr)
}

// remove takes the sent entries out of document id's outbox and returns
// pubErr (a failed publish is retried by a read-back: the Bus asks for a
// sweep on reconnect, and the ticker runs one anyway) with what is left of
// the entries written at times all: those after the sent ones, or all of
// them when the removal failed.
func (r *Relay) remove(ctx context.Context, c *mongo.Collection, id any, sent []any, all []time.Time, pubErr error) (backlog, error) {
	var left backlog
	keep := func(from int) backlog {
		for _, at := range all[from:] {
			left.add(at)
		}
		return left
	}
	if len(sent) == 0 {
		if pubErr == nil {
			return left, nil
		}
		return keep(0), pubErr
	}
	_, err := r.w.UpdateByID(ctx, c, id, bson.D{{Key: "$pullAll", Value: bson.D{{Key: Field, Value: sent}}}})
	if err != nil {
		return keep(0), errors.Join(fmt.Errorf("mark outbox sent: %w", err), pubErr)
	}
	if pubErr != nil {
		return keep(len(sent)), pubErr
	}
	return left, nil
}
