package mongox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Writer is the one write path of a service's database: every insert,
// update and delete goes through it (docs/data-safety.md).
//
// It does two things FerretDB v1 needs and MongoDB does not mind:
//
//   - A lock per document (collection and _id) inside the process, so that a
//     handler, a listener and the outbox relay touching the same document
//     take turns: FerretDB applies an update as read-modify-write without a
//     lock, so two concurrent updates of one document lose one of them.
//   - At most ferretWriteSlots writes at a time per database on FerretDB:
//     SQLite has a single writer per database file, and writers that
//     collide sleep in SQLite's busy handler (1, 2, 5, 10 … 100 ms) instead
//     of queueing. Writes queue here instead, without sleeping. Reads are
//     not held up (SQLite serves them beside the writer).
//
// On MongoDB single-document writes are atomic and concurrent: the lock costs
// a map lookup and there is no gate. Decisions two actors race on are not
// made by updates: they are claims, unique-index inserts (Insert).
type Writer struct {
	mu     sync.Mutex
	locks  map[string]*docLock
	server serverKind
	// guardsInFilter puts guards into write filters on any server.
	guardsInFilter bool
}

// docLock is a one-slot channel rather than a sync.Mutex so that a writer
// waiting for it gives up when its ctx ends.
type docLock struct {
	ch   chan struct{}
	refs int
}

// NewWriter returns a Writer; share one per process (per database).
func NewWriter() *Writer {
	return &Writer{locks: make(map[string]*docLock)}
}

// GuardsInFilter makes w put guards into write filters on FerretDB too, as
// it does on MongoDB: every guarded write then reads the whole collection on
// FerretDB, and a write of another process between a read and the write that
// follows it is refused, as long as the two do not overlap (FerretDB v1
// checks a filter and writes in two steps). Tests that play several replicas
// on FerretDB use it; it returns w.
func (w *Writer) GuardsInFilter() *Writer {
	w.guardsInFilter = true
	return w
}

// Lock runs fn while holding the lock of document id in coll, so fn may read
// and then write that document without another writer of this process in
// between. If ctx ends while waiting for the lock, Lock returns ctx.Err()
// without running fn.
func (w *Writer) Lock(ctx context.Context, coll *mongo.Collection, id any, fn func(ctx context.Context) error) error {
	key := fmt.Sprintf("%s/%s/%v", coll.Database().Name(), coll.Name(), id)
	w.mu.Lock()
	l := w.locks[key]
	if l == nil {
		l = &docLock{ch: make(chan struct{}, 1)}
		w.locks[key] = l
	}
	l.refs++
	w.mu.Unlock()

	defer func() {
		w.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(w.locks, key)
		}
		w.mu.Unlock()
	}()

	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.ch }()
	return fn(ctx)
}

// UpdateByID applies update to the document with _id id under its lock and
// reports whether a document matched. guard lists field values the document
// must still have for the update to apply (a version read earlier, say);
// they are plain equalities, not query operators.
func (w *Writer) UpdateByID(ctx context.Context, coll *mongo.Collection, id any, update any, guard ...bson.E) (matched bool, err error) {
	err = w.Lock(ctx, coll, id, func(ctx context.Context) error {
		filter, ok, err := w.guardedFilter(ctx, coll, id, guard)
		if err != nil || !ok {
			return err
		}
		matched, err = w.updateOne(ctx, coll, filter, update)
		return err
	})
	return matched, err
}

// DeleteByID deletes the document with _id id under its lock if it still
// has the guard's field values (plain equalities), and reports whether it
// did.
func (w *Writer) DeleteByID(ctx context.Context, coll *mongo.Collection, id any, guard ...bson.E) (deleted bool, err error) {
	err = w.Lock(ctx, coll, id, func(ctx context.Context) error {
		filter, ok, err := w.guardedFilter(ctx, coll, id, guard)
		if err != nil || !ok {
			return err
		}
		return w.write(ctx, coll.Database(), func() error {
			res, err := coll.DeleteOne(ctx, filter)
			if err == nil {
				deleted = res.DeletedCount > 0
			}
			return err
		})
	})
	return deleted, err
}

// UpdateLocked is for a caller that holds id's lock (inside Lock) and has
// read the document under it: guard names what it read (its version), so
// that on MongoDB a write of another process in between makes this update
// match nothing (the guard goes into the filter and is checked atomically
// with the write).
//
// On FerretDB the filter stays a plain {_id: id}, the one filter it serves
// from an index (any other filter reads the whole collection), and the guard
// is taken as checked by the caller's read: within the process nothing wrote
// the document since, and FerretDB v1 does not make conditional writes
// atomic across processes anyway, which is why the local stack runs one
// replica of each service. See docs/data-safety.md.
func (w *Writer) UpdateLocked(ctx context.Context, coll *mongo.Collection, id any, update any, guard ...bson.E) (bool, error) {
	filter := bson.D{{Key: "_id", Value: id}}
	if len(guard) > 0 {
		atomic, err := w.atomicFilters(ctx, coll.Database())
		if err != nil {
			return false, err
		}
		if atomic {
			filter = append(filter, guard...)
		}
	}
	return w.updateOne(ctx, coll, filter, update)
}

func (w *Writer) updateOne(ctx context.Context, coll *mongo.Collection, filter bson.D, update any) (matched bool, err error) {
	err = w.write(ctx, coll.Database(), func() error {
		res, err := coll.UpdateOne(ctx, filter, update)
		if err == nil {
			matched = res.MatchedCount > 0
		}
		return err
	})
	return matched, err
}

// Insert inserts doc. A claim is an Insert: the unique index on _id (or
// another unique index) lets exactly one of any number of concurrent
// inserts of one key win; the others get an error IsDuplicate recognises.
func (w *Writer) Insert(ctx context.Context, coll *mongo.Collection, doc any) error {
	return w.write(ctx, coll.Database(), func() error {
		_, err := coll.InsertOne(ctx, doc)
		return err
	})
}

// InsertMany inserts docs in one command, each as if alone (unordered: a
// duplicate key refuses that document only). Seeding and fixtures use it.
func (w *Writer) InsertMany(ctx context.Context, coll *mongo.Collection, docs []any) error {
	return w.write(ctx, coll.Database(), func() error {
		_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		return err
	})
}

// DeleteMany deletes the documents that match filter and returns how many
// went. A filter other than {_id} reads the whole collection on FerretDB:
// for background clean-ups only, never on a request's or an event's path.
func (w *Writer) DeleteMany(ctx context.Context, coll *mongo.Collection, filter any) (n int64, err error) {
	err = w.write(ctx, coll.Database(), func() error {
		res, err := coll.DeleteMany(ctx, filter)
		if err == nil {
			n = res.DeletedCount
		}
		return err
	})
	return n, err
}

// guardedFilter returns the filter of a write of document id guarded by
// guard, for a caller that has not read the document: on FerretDB the guard
// is checked by reading it by _id (ok false when it fails), and the filter is
// {_id: id} alone.
func (w *Writer) guardedFilter(ctx context.Context, coll *mongo.Collection, id any, guard []bson.E) (filter bson.D, ok bool, err error) {
	filter = bson.D{{Key: "_id", Value: id}}
	if len(guard) == 0 {
		return filter, true, nil
	}
	atomic, err := w.atomicFilters(ctx, coll.Database())
	if err != nil {
		return nil, false, err
	}
	if atomic {
		return append(filter, guard...), true, nil
	}
	ok, err = holds(ctx, coll, id, guard)
	return filter, ok, err
}

// holds reads document id by _id and reports whether it exists and has
// every field value of guard.
func holds(ctx context.Context, coll *mongo.Collection, id any, guard []bson.E) (bool, error) {
	proj := bson.D{{Key: "_id", Value: 1}}
	for _, g := range guard {
		proj = append(proj, bson.E{Key: g.Key, Value: 1})
	}
	raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(proj)).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, g := range guard {
		have, err := raw.LookupErr(g.Key)
		if err != nil {
			return false, nil // field missing
		}
		eq, err := equalValue(have, g.Value)
		if err != nil || !eq {
			return false, err
		}
	}
	return true, nil
}

// equalValue compares a stored value with a Go value as MongoDB's equality
// match does for the types guards use: numbers by value whatever their BSON
// width, everything else by type and bytes.
func equalValue(have bson.RawValue, want any) (bool, error) {
	t, data, err := bson.MarshalValue(want)
	if err != nil {
		return false, fmt.Errorf("guard value %v: %w", want, err)
	}
	wantRaw := bson.RawValue{Type: t, Value: data}
	if hn, ok := number(have); ok {
		wn, ok := number(wantRaw)
		return ok && hn == wn, nil
	}
	return have.Type == wantRaw.Type && bytes.Equal(have.Value, wantRaw.Value), nil
}

func number(v bson.RawValue) (float64, bool) {
	switch v.Type {
	case bsontype.Int32:
		return float64(v.Int32()), true
	case bsontype.Int64:
		return float64(v.Int64()), true
	case bsontype.Double:
		return v.Double(), true
	}
	return 0, false
}

// atomicFilters reports whether guards go into write filters: on MongoDB,
// or wherever GuardsInFilter asked for it.
func (w *Writer) atomicFilters(ctx context.Context, db *mongo.Database) (bool, error) {
	if w.guardsInFilter {
		return true, nil
	}
	return w.server.atomicFilters(ctx, db)
}

// ferretWriteSlots is how many writes of one database FerretDB gets at once.
// Two lets one write's read of the document overlap another's SQLite write;
// more collide in SQLite's busy handler. Measured on the local stack with
// 1,000 expiries at 100 a second (dev/stack BenchmarkStackExpiries): orders
// cancelled with a p99 delay of 0.1 s with two slots, 1.2 s with one, 1.6 s
// with three or four, and 2.8 s with no limit (forty writers at once).
const ferretWriteSlots = 2

// serverKind remembers what the server is: whether it checks a write's
// filter atomically with the write (MongoDB) or not (FerretDB v1), and the
// gate that keeps FerretDB's writes one at a time. It asks once, on the
// first write, and again after a failure to ask.
type serverKind struct {
	mu     sync.Mutex
	known  bool
	atomic bool
	gate   chan struct{} // nil on MongoDB
}

func (k *serverKind) learn(ctx context.Context, db *mongo.Database) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.known {
		return nil
	}
	ferret, err := IsFerretDB(ctx, db)
	if err != nil {
		return err
	}
	k.known, k.atomic = true, !ferret
	if ferret {
		k.gate = make(chan struct{}, ferretWriteSlots)
	}
	return nil
}

func (k *serverKind) atomicFilters(ctx context.Context, db *mongo.Database) (bool, error) {
	if err := k.learn(ctx, db); err != nil {
		return false, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.atomic, nil
}

// write runs fn, at most ferretWriteSlots at a time per database on
// FerretDB. It gives up when ctx ends while waiting.
func (w *Writer) write(ctx context.Context, db *mongo.Database, fn func() error) error {
	if err := w.server.learn(ctx, db); err != nil {
		return err
	}
	w.server.mu.Lock()
	gate := w.server.gate
	w.server.mu.Unlock()
	if gate == nil {
		return fn()
	}
	select {
	case gate <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-gate }()
	return fn()
}

// IsFerretDB reports whether db is served by FerretDB, which answers
// buildInfo with its own version next to MongoDB's.
func IsFerretDB(ctx context.Context, db *mongo.Database) (bool, error) {
	raw, err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		return false, fmt.Errorf("buildInfo: %w", err)
	}
	_, err = raw.LookupErr("ferretdbVersion")
	return err == nil, nil
}
