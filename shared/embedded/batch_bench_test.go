package embedded_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/shared/embedded"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// BenchmarkCommandCost is what one FerretDB command costs, in wall time and
// in the process's CPU (client and server are in this process), on 2,000
// order-sized documents: alone, two at once, and the same work batched (a
// bulk write, an insertMany, a find of many _ids). It is the arithmetic
// behind the README's "Expiry bursts": what a burst of expiries can cost at
// best on the embedded store.
func BenchmarkCommandCost(b *testing.B) {
	ctx := context.Background()
	c := benchClient(b, embedded.StartFerret).Database("bench").Collection("orders")
	order := func(id primitive.ObjectID) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "userId", Value: "6750f0c0a1b2c3d4e5f60718"}, {Key: "status", Value: "created"},
			{Key: "version", Value: 0}, {Key: "expiresAt", Value: time.Now()},
			{Key: "stuff", Value: bson.D{{Key: "id", Value: "6750f0c0a1b2c3d4e5f60719"}, {Key: "title", Value: "Linear algebra notes"}, {Key: "price", Value: 1200}}},
			{Key: "outbox", Value: bson.A{}}}
	}
	ids := make([]primitive.ObjectID, 2000)
	docs := make([]any, len(ids))
	for i := range ids {
		ids[i] = primitive.NewObjectID()
		docs[i] = order(ids[i])
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the _id path index reach the new table (it looks every 100 ms)
	byID := func(i int) bson.D { return bson.D{{Key: "_id", Value: ids[i%len(ids)]}} }
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "cancelled"}}}}

	// each runs n operations, i to i+n-1, and reports errors through b.
	type op struct {
		name  string
		batch int // operations per command
		run   func(b *testing.B, i, n int)
	}
	ops := []op{
		{"FindOne", 1, func(b *testing.B, i, _ int) {
			if err := c.FindOne(ctx, byID(i)).Err(); err != nil {
				b.Error(err)
			}
		}},
		{"Find-$in-100", 100, func(b *testing.B, i, n int) {
			in := bson.A{}
			for j := range n {
				in = append(in, ids[(i+j)%len(ids)])
			}
			cur, err := c.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}})
			if err == nil {
				err = cur.All(ctx, &[]bson.Raw{})
			}
			if err != nil {
				b.Error(err)
			}
		}},
		{"UpdateOne", 1, func(b *testing.B, i, _ int) {
			if _, err := c.UpdateOne(ctx, byID(i), set); err != nil {
				b.Error(err)
			}
		}},
		{"BulkUpdate-8", 8, func(b *testing.B, i, n int) {
			models := make([]mongo.WriteModel, n)
			for j := range models {
				models[j] = mongo.NewUpdateOneModel().SetFilter(byID(i + j)).SetUpdate(set)
			}
			if _, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
				b.Error(err)
			}
		}},
		{"InsertOne", 1, func(b *testing.B, _, _ int) {
			if _, err := c.Database().Collection("claims").InsertOne(ctx, order(primitive.NewObjectID())); err != nil {
				b.Error(err)
			}
		}},
		{"InsertMany-100", 100, func(b *testing.B, _, n int) {
			batch := make([]any, n)
			for j := range batch {
				batch[j] = order(primitive.NewObjectID())
			}
			if _, err := c.Database().Collection("claims").InsertMany(ctx, batch, options.InsertMany().SetOrdered(false)); err != nil {
				b.Error(err)
			}
		}},
	}
	for _, o := range ops {
		for _, conc := range []int{1, 2} {
			if o.batch > 1 && conc > 1 {
				continue
			}
			b.Run(fmt.Sprintf("%s/at-once=%d", o.name, conc), func(b *testing.B) {
				defer testkit.ReportCPUPerOp(b)()
				var next atomic.Int64
				var wg sync.WaitGroup
				for range conc {
					wg.Go(func() {
						for {
							i := int(next.Add(int64(o.batch))) - o.batch
							if i >= b.N {
								return
							}
							o.run(b, i, min(o.batch, b.N-i))
						}
					})
				}
				wg.Wait()
			})
		}
	}
}
