package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stuffmart/stuffmart/shared/metrics"
)

// domainMetrics observes the scheduler's firings in the service's registry
// (docs/observability.md lists every metric).
type domainMetrics struct {
	lateness prometheus.Observer
}

func newDomainMetrics(m *metrics.Set) *domainMetrics {
	// A few milliseconds when all is well, seconds in a burst of deadlines,
	// minutes after the service was down (overdue deadlines fire at start).
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	return &domainMetrics{lateness: m.Histogram("expiration_lateness_seconds",
		"How late each deadline fired: the claim of its expiry minus the deadline.", buckets).WithLabelValues()}
}

func (d *domainMetrics) Fired(late time.Duration) { d.lateness.Observe(late.Seconds()) }
