// Package store keeps the expiration service's state in its own MongoDB
// database: pending deadlines, and one settlement document per order whose
// unique _id is the claim that makes a deadline fire at most once across
// replicas (docs/data-safety.md, rule 1: one unique-index insert, never a
// conditional update). A claim carries its expiration:complete event in its
// outbox, in the same single-document insert.
//
// Both kinds of document are spread over Shards collections each
// (deadlines_NN, settled_NN) by a hash of the order id. The reason is
// FerretDB v1's SQLite backend: its _id index is built on an expression its
// queries do not use, so every lookup, update or delete by _id scans the
// whole collection (checked in its source, and measured: ~3-5 ms per
// operation at 1,000 documents). A firing deletes a deadline, and the outbox
// relay reads and updates each claim by _id, so without shards the time to
// publish an expiry grows with the number of orders; with them it stays at
// a millisecond or two. An order always maps to the same shard, so its
// claim stays one unique key. Settlements are also pruned once old and
// published. On MongoDB none of this costs anything.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
)

// Shards is how many deadlines_NN and settled_NN collections there are.
// Never change it on a live database: an order's documents must always be
// looked for in the same collections.
const Shards = 16

// Store is the MongoDB implementation of scheduler.Store. Deadline
// documents are only inserted and deleted; settlement documents are inserted
// once, then touched only by the outbox relay (through the service's Writer)
// and deleted by Prune.
type Store struct {
	db        *mongo.Database
	w         *mongox.Writer
	notify    Notifier
	deadlines [Shards]*mongo.Collection
	settled   [Shards]*mongo.Collection
}

// Notifier is told about each claim's pending event; the outbox relay
// implements it.
type Notifier interface {
	Notify(coll *mongo.Collection, id any, pending ...outbox.Pending)
}

// New returns a Store over db that writes through w. notify is told about
// each claim's event; nil leaves the events to the relay's sweep.
func New(db *mongo.Database, w *mongox.Writer, notify Notifier) *Store {
	s := &Store{db: db, w: w, notify: notify}
	for i := range Shards {
		s.deadlines[i] = db.Collection(DeadlinesCollection(i))
		s.settled[i] = db.Collection(SettledCollection(i))
	}
	return s
}

// DeadlinesCollection is the name of deadline shard i.
func DeadlinesCollection(i int) string { return fmt.Sprintf("deadlines_%02d", i) }

// SettledCollection is the name of settlement shard i.
func SettledCollection(i int) string { return fmt.Sprintf("settled_%02d", i) }

func shard(orderID string) int {
	h := fnv.New32a()
	h.Write([]byte(orderID)) // never fails
	return int(h.Sum32() % Shards)
}

// Ensure creates the store's collections that do not exist yet. Creating a
// collection takes a lock over the whole of FerretDB, which stalls every
// query for a moment: better at start than at a deadline. Collections are
// also created on first use, so failing here is not fatal.
func (s *Store) Ensure(ctx context.Context) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	for i := range Shards {
		for _, name := range []string{DeadlinesCollection(i), SettledCollection(i)} {
			if have[name] {
				continue
			}
			err := s.db.CreateCollection(ctx, name)
			var ce mongo.CommandError
			if errors.As(err, &ce) && ce.Code == codeNamespaceExists {
				continue // another replica was first
			}
			if err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
		}
	}
	return nil
}

// codeNamespaceExists is MongoDB's (and FerretDB's) error code for creating
// a collection that exists.
const codeNamespaceExists = 48

// SettledCollections lists db's collections whose documents carry the
// pending expiration:complete events; the outbox relay watches them.
func SettledCollections(db *mongo.Database) []*mongo.Collection {
	out := make([]*mongo.Collection, Shards)
	for i := range out {
		out[i] = db.Collection(SettledCollection(i))
	}
	return out
}

// SettledFor is the collection that holds the settlement of an order.
func (s *Store) SettledFor(orderID string) *mongo.Collection { return s.settled[shard(orderID)] }

// deadlineDoc is a pending deadline. CorrelationID came later: a document
// stored before it has none, and its expiry carries no id.
type deadlineDoc struct {
	ID            string    `bson:"_id"`
	ExpiresAt     time.Time `bson:"expiresAt"`
	CorrelationID string    `bson:"correlationId,omitempty"`
}

func (d deadlineDoc) domain() scheduler.Deadline {
	return scheduler.Deadline{OrderID: d.ID, ExpiresAt: d.ExpiresAt.UTC(), CorrelationID: d.CorrelationID}
}

type settledDoc struct {
	ID      string           `bson:"_id"`
	Outcome string           `bson:"outcome"`
	At      time.Time        `bson:"at"`
	Outbox  []outbox.Pending `bson:"outbox"`
}

// Add persists a deadline; false when the order already has one.
func (s *Store) Add(ctx context.Context, d scheduler.Deadline) (bool, error) {
	err := s.w.Insert(ctx, s.deadlines[shard(d.OrderID)], deadlineDoc{ID: d.OrderID, ExpiresAt: d.ExpiresAt, CorrelationID: d.CorrelationID})
	if mongox.IsDuplicate(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("insert deadline %s: %w", d.OrderID, err)
	}
	return true, nil
}

// Due lists pending deadlines expiring before before; all of them when
// before is zero. The shards are read in parallel: this is on the path of
// the overdue deadlines at start.
func (s *Store) Due(ctx context.Context, before time.Time) ([]scheduler.Deadline, error) {
	filter := bson.D{}
	if !before.IsZero() {
		filter = bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$lt", Value: before}}}}
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		out    []scheduler.Deadline
		failed []error
	)
	for _, c := range s.deadlines {
		wg.Go(func() {
			var docs []deadlineDoc
			cur, err := c.Find(ctx, filter)
			if err == nil {
				err = cur.All(ctx, &docs)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Errorf("find deadlines in %s: %w", c.Name(), err))
				return
			}
			for _, d := range docs {
				out = append(out, d.domain())
			}
		})
	}
	wg.Wait()
	if err := errors.Join(failed...); err != nil {
		return nil, err
	}
	return out, nil
}

// Deadline returns the pending deadline of an order, or errs.ErrNotFound.
func (s *Store) Deadline(ctx context.Context, orderID string) (scheduler.Deadline, error) {
	var d deadlineDoc
	err := s.deadlines[shard(orderID)].FindOne(ctx, bson.D{{Key: "_id", Value: orderID}}).Decode(&d)
	if err != nil {
		return scheduler.Deadline{}, fmt.Errorf("find deadline %s: %w", orderID, mongox.NotFound(err))
	}
	return d.domain(), nil
}

// Delete forgets an order's pending deadline; no error when there is none.
func (s *Store) Delete(ctx context.Context, orderID string) error {
	if _, err := s.w.DeleteByID(ctx, s.deadlines[shard(orderID)], orderID); err != nil {
		return fmt.Errorf("delete deadline %s: %w", orderID, err)
	}
	return nil
}

// Claim settles the order as expired and stores its expiration:complete
// event in the same single-document insert, so the claim and the event that
// must follow it cannot be separated. False when the order was already
// settled, here or on another replica.
func (s *Store) Claim(ctx context.Context, orderID string, now time.Time) (bool, error) {
	ev, err := outbox.New(ctx, events.ExpirationCompleteEvent{OrderID: orderID}, now)
	if err != nil {
		return false, err
	}
	claimed, err := s.insertSettled(ctx, settledDoc{ID: orderID, Outcome: scheduler.OutcomeExpired, At: now, Outbox: []outbox.Pending{ev}})
	if claimed && s.notify != nil {
		s.notify.Notify(s.SettledFor(orderID), orderID, ev)
	}
	return claimed, err
}

// Settle records another outcome for the order (no event); false when it was
// already settled.
func (s *Store) Settle(ctx context.Context, orderID, outcome string, now time.Time) (bool, error) {
	return s.insertSettled(ctx, settledDoc{ID: orderID, Outcome: outcome, At: now, Outbox: []outbox.Pending{}})
}

func (s *Store) insertSettled(ctx context.Context, d settledDoc) (bool, error) {
	err := s.w.Insert(ctx, s.settled[shard(d.ID)], d)
	if mongox.IsDuplicate(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("settle order %s as %s: %w", d.ID, d.Outcome, err)
	}
	return true, nil
}

// IsSettled reports whether the order was already settled.
func (s *Store) IsSettled(ctx context.Context, orderID string) (bool, error) {
	_, err := s.Outcome(ctx, orderID)
	if errors.Is(err, errs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Outcome returns how an order was settled, or an error wrapping
// errs.ErrNotFound when it was not.
func (s *Store) Outcome(ctx context.Context, orderID string) (string, error) {
	var d struct {
		Outcome string `bson:"outcome"`
	}
	err := s.SettledFor(orderID).FindOne(ctx, bson.D{{Key: "_id", Value: orderID}},
		options.FindOne().SetProjection(bson.D{{Key: "outcome", Value: 1}})).Decode(&d)
	if err != nil {
		return "", fmt.Errorf("find settlement %s: %w", orderID, mongox.NotFound(err))
	}
	return d.Outcome, nil
}

// Prune deletes the settlements made before before whose event was
// published, and reports how many went. Run it with before well past any
// moment a replica might still try the same claim: a pruned order that is
// somehow scheduled again expires again, which orders ignores.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	var failed []error
	for _, c := range s.settled {
		deleted, err := s.w.DeleteMany(ctx, c, bson.D{
			{Key: "at", Value: bson.D{{Key: "$lt", Value: before}}},
			{Key: outbox.Field + ".0", Value: bson.D{{Key: "$exists", Value: false}}},
		})
		if err != nil {
			failed = append(failed, fmt.Errorf("prune %s: %w", c.Name(), err))
			continue
		}
		n += deleted
	}
	return n, errors.Join(failed...)
}
