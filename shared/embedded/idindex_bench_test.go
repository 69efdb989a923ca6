package embedded_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/embedded"
	"github.com/stuffmart/stuffmart/shared/mongox"
)

// BenchmarkIDOps times the operations by _id every service's hot path makes
// (a lookup, a $set, the outbox relay's $pullAll of a sent event) on a collection of 5,000
// listing-sized documents, with FerretDB as it comes and with the _id path
// index the embedded package adds.
func BenchmarkIDOps(b *testing.B) {
	const docs = 5000
	for _, v := range []struct {
		name  string
		start func(dir, addr string, log *slog.Logger) (*embedded.Ferret, error)
	}{
		{"ferretdb-as-it-comes", embedded.StartFerretWithoutIDIndex},
		{"with-id-path-index", embedded.StartFerret},
	} {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			c := benchClient(b, v.start).Database("bench").Collection("stuff")
			ids := make([]primitive.ObjectID, docs)
			batch := make([]any, docs)
			for i := range batch {
				ids[i] = primitive.NewObjectID()
				batch[i] = bson.D{{Key: "_id", Value: ids[i]}, {Key: "title", Value: "Linear algebra notes"},
					{Key: "description", Value: "Every lecture of the term, with worked examples."}, {Key: "price", Value: 500},
					{Key: "outbox", Value: bson.A{"x"}}}
			}
			if _, err := c.InsertMany(ctx, batch); err != nil {
				b.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // let the indexer see the new table (it looks every 100 ms)
			ops := []struct {
				name string
				run  func(id primitive.ObjectID) error
			}{
				{"FindOne", func(id primitive.ObjectID) error { return c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err() }},
				{"UpdateOne-set", func(id primitive.ObjectID) error {
					_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "price", Value: 600}}}})
					return err
				}},
				{"UpdateOne-pullAll", func(id primitive.ObjectID) error {
					_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$pullAll", Value: bson.D{{Key: "outbox", Value: bson.A{"x"}}}}})
					return err
				}},
			}
			for _, op := range ops {
				b.Run(op.name, func(b *testing.B) {
					for i := range b.N {
						if err := op.run(ids[i%docs]); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// benchClient starts an embedded FerretDB with start in a folder of its own
// and connects to it; both end with the benchmark.
func benchClient(b *testing.B, start func(dir, addr string, log *slog.Logger) (*embedded.Ferret, error)) *mongo.Client {
	b.Helper()
	f, err := start(b.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	client, err := mongox.Connect(context.Background(), f.URI)
	if err != nil {
		f.Stop()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = client.Disconnect(context.Background()) // the server stops next
		f.Stop()
	})
	return client
}
