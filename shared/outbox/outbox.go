// Package outbox makes "save the change and publish its event" safe without
// transactions (FerretDB has none): the pending event is written in the same
// single-document write as the change, in the document's outbox array, and a
// Relay publishes pending events in order and then removes them. If NATS is
// down, the events wait in the documents and go out when it is back; if the
// process dies, the next sweep finds them. Delivery is at least once, so
// listeners are idempotent.
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

// New encodes ev as a pending event.
func New(ev events.Event, now time.Time) (Pending, error) {
	data, err := events.Encode(ev)
	if err != nil {
		return Pending{}, err
	}
	return Pending{ID: nuid.Next(), Subject: string(ev.Subject()), Data: data, At: now}, nil
}

// Push is the update operator that appends events to a document's outbox;
// combine it with the change's $set in one update through the service's
// mongox.Writer (UpdateByID), so the relay's removal of sent events and this
// push never overwrite each other.
func Push(p ...Pending) bson.E {
	return bson.E{Key: "$push", Value: bson.D{{Key: Field, Value: bson.D{{Key: "$each", Value: p}}}}}
}

// Publisher publishes one message; *events.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, subject events.Subject, data []byte) error
}

type docRef struct {
	coll string
	id   any
}

// Relay publishes the pending events of the collections it watches.
type Relay struct {
	pub   Publisher
	w     *mongox.Writer
	log   *slog.Logger
	colls map[string]*mongo.Collection
	// Sweep is how often every watched collection is scanned for events that
	// were not published right away (NATS down, a crash). Default 30s.
	Sweep time.Duration

	mu     sync.Mutex
	queue  []docRef
	kick   chan struct{}
	sweepc chan struct{}
}

// NewRelay returns a relay that publishes through pub and removes published
// events through the service's one Writer.
func NewRelay(pub Publisher, w *mongox.Writer, log *slog.Logger, colls ...*mongo.Collection) *Relay {
	r := &Relay{pub: pub, w: w, log: log, colls: map[string]*mongo.Collection{}, Sweep: 30 * time.Second,
		kick: make(chan struct{}, 1), sweepc: make(chan struct{}, 1)}
	for _, c := range colls {
		r.colls[c.Name()] = c
	}
	return r
}

// Notify asks the relay to publish the pending events of one document now.
// Call it after every write that pushed to an outbox; it never blocks.
func (r *Relay) Notify(coll *mongo.Collection, id any) {
	r.mu.Lock()
	r.queue = append(r.queue, docRef{coll: coll.Name(), id: id})
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
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
	t := time.NewTicker(every)
	defer t.Stop()
	r.sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			r.drain(ctx)
		case <-r.sweepc:
			r.sweep(ctx)
		case <-t.C:
			r.sweep(ctx)
		}
	}
}

func (r *Relay) drain(ctx context.Context) {
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	r.mu.Unlock()
	seen := make(map[string]bool, len(q))
	for _, d := range q {
		// One flush sends everything a document holds: skip repeats.
		k := fmt.Sprintf("%s/%v", d.coll, d.id)
		if seen[k] {
			continue
		}
		seen[k] = true
		if err := r.flush(ctx, r.colls[d.coll], d.id); err != nil {
			r.log.Warn("outbox: publish deferred", "collection", d.coll, "id", d.id, "err", err)
		}
	}
}

// sweep publishes every pending event of every watched collection. The scan
// is a collection scan on FerretDB, so it runs rarely; Notify covers the
// common case.
func (r *Relay) sweep(ctx context.Context) {
	for name, c := range r.colls {
		if ctx.Err() != nil {
			return // shutting down
		}
		cur, err := c.Find(ctx, bson.D{{Key: Field + ".0", Value: bson.D{{Key: "$exists", Value: true}}}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			r.log.Warn("outbox: sweep", "collection", name, "err", err)
			continue
		}
		var ids []struct {
			ID any `bson:"_id"`
		}
		err = cur.All(ctx, &ids)
		if err != nil {
			r.log.Warn("outbox: sweep", "collection", name, "err", err)
			continue
		}
		for _, d := range ids {
			if err := r.flush(ctx, c, d.ID); err != nil {
				if errors.Is(err, errBadEntry) {
					r.log.Error("outbox: entry cannot be published", "collection", name, "id", d.ID, "err", err)
					continue // that document only
				}
				r.log.Warn("outbox: publish deferred", "collection", name, "id", d.ID, "err", err)
				break // NATS is likely down; the next sweep retries
			}
		}
	}
}

// errBadEntry marks an outbox entry that does not decode as a Pending.
var errBadEntry = errors.New("outbox: undecodable entry")

// flush publishes one document's pending events in order and removes those
// that went out. Publishing happens outside the document lock so handlers are
// not held up by NATS; the removal takes out exactly the entries that were
// sent, so an event pushed meanwhile stays.
//
// The removal is a $pullAll of the entries exactly as they were read:
// FerretDB v1's $pull only removes elements equal to the given value (it
// ignores query conditions such as {id: {$in: [...]}}, so nothing was ever
// removed and every sweep published the events again), while $pullAll with
// exact values works on FerretDB and, atomically, on MongoDB.
func (r *Relay) flush(ctx context.Context, c *mongo.Collection, id any) error {
	if c == nil {
		return fmt.Errorf("outbox: collection not watched")
	}
	var doc struct {
		Outbox []bson.Raw `bson:"outbox"`
	}
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(bson.D{{Key: Field, Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load outbox: %w", err)
	}
	var sent []bson.Raw
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
	if len(sent) > 0 {
		_, err := r.w.UpdateByID(ctx, c, id, bson.D{{Key: "$pullAll", Value: bson.D{{Key: Field, Value: sent}}}})
		if err != nil {
			return errors.Join(fmt.Errorf("mark outbox sent: %w", err), pubErr)
		}
	}
	// A failed publish is retried by the next sweep: the Bus asks for one on
	// reconnect, and the ticker runs one anyway.
	return pubErr
}
