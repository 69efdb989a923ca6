package mongox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestIsDuplicate(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := testkit.Mongo(t)
	users := db.Collection("users")
	if err := mongox.EnsureIndexes(ctx, db, mongox.Index{Collection: "users", Keys: bson.D{{Key: "email", Value: 1}}, Unique: true, Name: "email_unique"}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "u1"}, {Key: "email", Value: "ann@uni.edu"}}); err != nil {
		t.Fatal(err)
	}
	_, dupEmail := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "u2"}, {Key: "email", Value: "ann@uni.edu"}})
	_, dupID := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "u1"}, {Key: "email", Value: "bob@uni.edu"}})
	_, other := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "u3"}, {Key: "email", Value: "bob@uni.edu"}})
	if other != nil {
		t.Fatalf("insert of a new email: %v", other)
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"unique index", dupEmail, true},
		{"duplicate _id", dupID, true},
		{"wrapped", fmt.Errorf("claim stuff s1: %w", dupEmail), true},
		{"nil", nil, false},
		{"no documents", mongo.ErrNoDocuments, false},
		{"plain error mentioning E11000", errors.New("E11000 duplicate key error"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := mongox.IsDuplicate(tc.err); got != tc.want {
				t.Fatalf("IsDuplicate(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func indexNames(t *testing.T, ctx context.Context, c *mongo.Collection) []string {
	t.Helper()
	cur, err := c.Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var specs []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

func TestEnsureIndexesIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := testkit.Mongo(t)
	idx := []mongox.Index{
		{Collection: "claims", Keys: bson.D{{Key: "stuffId", Value: 1}}, Unique: true, Name: "stuff_claim"},
		{Collection: "claims", Keys: bson.D{{Key: "createdAt", Value: -1}}},
	}
	for i := range 3 {
		if err := mongox.EnsureIndexes(ctx, db, idx...); err != nil {
			t.Fatalf("EnsureIndexes call %d: %v", i+1, err)
		}
	}
	// On FerretDB (the test server) the index that enforces nothing is not
	// made: FerretDB would never read it, only keep it up to date.
	if got, want := indexNames(t, ctx, db.Collection("claims")), []string{"_id_", "stuff_claim"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("indexes %v, want %v", got, want)
	}
	if err := mongox.EnsureIndexesRetry(ctx, db, idx...); err != nil {
		t.Fatalf("EnsureIndexesRetry on existing indexes: %v", err)
	}
	c := db.Collection("claims")
	if _, err := c.InsertOne(ctx, bson.D{{Key: "stuffId", Value: "s1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InsertOne(ctx, bson.D{{Key: "stuffId", Value: "s1"}}); !mongox.IsDuplicate(err) {
		t.Fatalf("second claim: %v, want a duplicate key (the unique index must still hold)", err)
	}
	// A conflicting definition under an existing name is reported.
	conflicting := mongox.Index{Collection: "claims", Keys: bson.D{{Key: "other", Value: 1}}, Unique: true, Name: "stuff_claim"}
	if err := mongox.EnsureIndexes(ctx, db, conflicting); err == nil {
		t.Fatal("EnsureIndexes with a conflicting definition returned nil")
	}
}

func TestEnsureIndexesRetryGivesUpWithContext(t *testing.T) {
	t.Parallel()
	client, err := mongox.Connect(context.Background(), "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = mongox.EnsureIndexesRetry(ctx, client.Database("x"), mongox.Index{Collection: "c", Keys: bson.D{{Key: "k", Value: 1}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("EnsureIndexesRetry = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("EnsureIndexesRetry returned %s after its context ended", d)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	up, err := mongox.Connect(ctx, testkit.MongoURI(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Disconnect(context.Background()) })
	if err := mongox.Ping(ctx, up); err != nil {
		t.Fatalf("Ping(FerretDB) = %v", err)
	}

	// Connect is lazy: a database that is not there yet is not an error...
	down, err := mongox.Connect(ctx, "mongodb://127.0.0.1:1/")
	if err != nil {
		t.Fatalf("Connect to an absent server = %v, want nil (lazy)", err)
	}
	t.Cleanup(func() { _ = down.Disconnect(context.Background()) })
	// ...but Ping says so, as the 503 "Failed to connect to database".
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err = mongox.Ping(pctx, down)
	e, ok := errs.As(err)
	if !ok || e.StatusCode() != http.StatusServiceUnavailable || e.Serialize()[0].Message != "Failed to connect to database" {
		t.Fatalf("Ping(absent) = %v, want a DatabaseConnectionError", err)
	}
}

func TestConnectBadURI(t *testing.T) {
	t.Parallel()
	_, err := mongox.Connect(context.Background(), "postgres://nope")
	var dce *errs.DatabaseConnectionError
	if !errors.As(err, &dce) {
		t.Fatalf("Connect(bad URI) = %v, want a DatabaseConnectionError", err)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	other := errors.New("socket closed")
	tests := []struct {
		name string
		in   error
		want error
	}{
		{"no documents", mongo.ErrNoDocuments, errs.ErrNotFound},
		{"wrapped no documents", fmt.Errorf("find: %w", mongo.ErrNoDocuments), errs.ErrNotFound},
		{"other", other, other},
		{"nil", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := mongox.NotFound(tc.in); got != tc.want {
				t.Fatalf("NotFound(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
