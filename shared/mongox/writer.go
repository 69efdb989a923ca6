package mongox

import (
	"context"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// Writer is the one write path for updates of existing documents (SPEC §8
// rule 2). FerretDB v1 applies an update as read-modify-write without a lock,
// so two concurrent updates of one document lose one of them; Writer holds a
// lock per (collection, _id) inside the process so that a handler, a listener
// and the outbox relay touching the same document take turns. On real MongoDB
// single-document updates are atomic anyway and the lock costs a map lookup.
//
// Decisions two actors race on are not made here: they are claims by a
// unique-index insert.
type Writer struct {
	mu    sync.Mutex
	locks map[string]*docLock
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
// reports whether a document matched. extra filter conditions (such as a
// status) may be added; they are checked under the same lock.
func (w *Writer) UpdateByID(ctx context.Context, coll *mongo.Collection, id any, update any, extra ...bson.E) (matched bool, err error) {
	filter := bson.D{{Key: "_id", Value: id}}
	filter = append(filter, extra...)
	err = w.Lock(ctx, coll, id, func(ctx context.Context) error {
		res, err := coll.UpdateOne(ctx, filter, update)
		if err != nil {
			return err
		}
		matched = res.MatchedCount > 0
		return nil
	})
	return matched, err
}
