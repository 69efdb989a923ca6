package app_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// BenchmarkPurchaseRace: 200 distinct buyers POST an order of one stuff at
// the same instant over real HTTP; ms/race is the wall time from their
// release until the last of them has its answer (one 201, 199 × 409).
func BenchmarkPurchaseRace(b *testing.B) {
	h := newHarnessWith(b, buildWith(func(c *app.Config) { c.MaxOpenOrders = 1 << 20 })) // a buyer may win every race
	_, cookies := h.buyers(buyers)
	seller := newID()
	var total, worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := h.list(seller, 100)
		b.StartTimer()
		res := h.race(s, cookies)
		b.StopTimer()
		res.check(b)
		total += res.elapsed
		worst = max(worst, res.elapsed)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/race")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms/race")
}

// BenchmarkStuffCreatedPropagation: the time from publishing stuff:created
// until the stuff can be read from the orders replica, one event at a time;
// p50 and p99 over b.N events (run with -benchtime=200x).
func BenchmarkStuffCreatedPropagation(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	coll := h.DB.Collection("stuff")
	seller := newID()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		oid := primitive.NewObjectID()
		t0 := time.Now()
		h.Peer.Publish(events.StuffCreatedEvent{ID: oid.Hex(), Version: 1, Title: "bench", Price: 100, UserID: seller})
		// A busy poll, not testkit.Eventually: its 10 ms step would be
		// measured instead of the propagation.
		for {
			n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: oid}})
			if err != nil {
				b.Fatal(err)
			}
			if n == 1 {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(testkit.Percentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(testkit.Percentile(lat, 0.99)), "p99-ms")
}
