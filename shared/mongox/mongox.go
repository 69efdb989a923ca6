// Package mongox holds the MongoDB helpers every service shares: connecting
// with timeouts, creating indexes at start, recognising duplicate keys, and the
// one write path (Writer) of docs/data-safety.md.
package mongox

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// ServerSelectionTimeout is how long an operation waits for a reachable
// server before it fails: while the database is down, a request is answered
// 503 "Failed to connect to database" within about this long instead of
// hanging (see Unreachable).
const ServerSelectionTimeout = time.Second

// Connect opens a client to uri with bounded connect, server-selection and
// socket timeouts. It does not wait for the server: a service starts while its
// database is still coming up, and /readyz (Ping) reports when it is there.
func Connect(ctx context.Context, uri string) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(uri).
		SetConnectTimeout(5 * time.Second).
		SetServerSelectionTimeout(ServerSelectionTimeout).
		// Find out within a second or two that the server is back (the
		// default waits ten).
		SetHeartbeatInterval(2 * time.Second).
		SetTimeout(10 * time.Second).
		SetMaxPoolSize(64)
	c, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, &errs.DatabaseConnectionError{Err: err}
	}
	return c, nil
}

// Ping checks that the primary answers; it is a readiness check.
func Ping(ctx context.Context, c *mongo.Client) error {
	if err := c.Ping(ctx, readpref.Primary()); err != nil {
		return &errs.DatabaseConnectionError{Err: err}
	}
	return nil
}

// Index is one index to create at start.
type Index struct {
	Collection string
	Keys       any // bson.D, e.g. bson.D{{Key: "email", Value: 1}}
	Unique     bool
	Name       string
}

// EnsureIndexes creates the indexes (idempotently). Unique indexes are what
// claims rest on (docs/data-safety.md), so a service must not serve before
// they exist.
//
// On FerretDB v1 only the unique ones are created: it serves no query from a
// secondary index (it pushes down a filter on _id alone), so there an index
// that enforces nothing would only slow every write down.
func EnsureIndexes(ctx context.Context, db *mongo.Database, idx ...Index) error {
	ferret, err := IsFerretDB(ctx, db)
	if err != nil {
		return err
	}
	for _, ix := range idx {
		if ferret && !ix.Unique {
			continue
		}
		opts := options.Index().SetUnique(ix.Unique)
		if ix.Name != "" {
			opts.SetName(ix.Name)
		}
		if _, err := db.Collection(ix.Collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.Keys, Options: opts}); err != nil {
			return fmt.Errorf("create index %s on %s: %w", ix.Name, ix.Collection, err)
		}
	}
	return nil
}

// EnsureIndexesRetry is EnsureIndexes retried until ctx ends, for a service
// that starts before its database is reachable.
func EnsureIndexesRetry(ctx context.Context, db *mongo.Database, idx ...Index) error {
	delay := 200 * time.Millisecond
	for {
		err := EnsureIndexes(ctx, db, idx...)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// IsDuplicate reports whether err is a duplicate-key error (code 11000) from an
// insert: the signal that a claim was lost to someone else.
func IsDuplicate(err error) bool {
	return mongo.IsDuplicateKeyError(err)
}

// ErrDuplicate is returned by store methods (wrapped) when a unique index
// refused a write.
var ErrDuplicate = errors.New("duplicate key")

// NotFound maps mongo.ErrNoDocuments to errs.ErrNotFound and keeps any other
// error as is.
func NotFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return errs.ErrNotFound
	}
	return err
}

// Unreachable reports whether err says the database could not be reached
// (no server to select, a broken connection), as opposed to an answer of the
// database (a duplicate key, a bad query).
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var dce *errs.DatabaseConnectionError
	if errors.As(err, &dce) {
		return true
	}
	if errors.As(err, &topology.ServerSelectionError{}) || errors.Is(err, topology.ErrServerSelectionTimeout) {
		return true
	}
	return mongo.IsNetworkError(err)
}

// AsConnectionError turns an error that says the database could not be
// reached into an errs.DatabaseConnectionError (503 "Failed to connect to
// database"); any other error is returned as it is. The services' error
// handler applies it to every error a handler returns.
func AsConnectionError(err error) error {
	var dce *errs.DatabaseConnectionError
	if Unreachable(err) && !errors.As(err, &dce) {
		return &errs.DatabaseConnectionError{Err: err}
	}
	return err
}

// DerivedObjectID returns an ObjectID made from t (its first four bytes, as
// every ObjectID's, so that ids still sort by time) and a hash of parts: the
// same parts and second always give the same id. A create request that
// carries an Idempotency-Key mints its document's id this way, so that a
// retry inserts the same _id and finds the first try's document (a
// duplicate key) instead of making a second one.
func DerivedObjectID(t time.Time, parts ...string) primitive.ObjectID {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p)) // a hash write never fails
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	var id primitive.ObjectID
	binary.BigEndian.PutUint32(id[:4], uint32(t.Unix()))
	copy(id[4:], sum[:8])
	return id
}
