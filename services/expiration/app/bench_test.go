package app_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/testkit"
)

// BenchmarkDeadlinePrecision measures, over 1,000 orders per iteration, how
// late expiration:complete reaches a subscriber after each order's deadline
// (end to end: order:created in, deadline persisted and armed, claim, outbox
// relay, NATS). Deadlines are set 5 s ahead so that scheduling the burst of
// order:created events is not what is measured; "burst" puts all 1,000 on
// the same instant, the others spread them at a steady rate.
func BenchmarkDeadlinePrecision(b *testing.B) {
	for _, bc := range []struct {
		name   string
		spread time.Duration // between consecutive deadlines
	}{
		{"rate=100/s", 10 * time.Millisecond},
		{"rate=200/s", 5 * time.Millisecond},
		{"burst", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const orders = 1000
			c, got := start(b)
			var late []time.Duration
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				base := time.Now().Add(5 * time.Second)
				deadlines := make(map[string]time.Time, orders)
				for i := range orders {
					id := fmt.Sprintf("i%d-o%04d", it, i)
					deadlines[id] = base.Add(time.Duration(i) * bc.spread)
					created(b, c, id, deadlines[id])
				}
				for id, d := range deadlines {
					late = append(late, got.first(b, id, 60*time.Second).Sub(d))
				}
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(testkit.Percentile(late, 0.50)), "p50-ms")
			b.ReportMetric(ms(testkit.Percentile(late, 0.99)), "p99-ms")
			b.ReportMetric(ms(slices.Max(late)), "max-ms")
			b.ReportMetric(ms(slices.Min(late)), "min-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
