package app

import (
	"maps"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/metrics"
)

// outcomes are the attempt states payments_total counts, each a label value
// from the start (a rate over a series that does not exist yet is no rate).
var outcomes = map[payments.AttemptState]string{
	payments.AttemptSucceeded: "succeeded",
	payments.AttemptDeclined:  "declined",
	payments.AttemptFailed:    "failed",
	payments.AttemptUnknown:   "unknown",
	payments.AttemptRefunded:  "refunded",
	payments.AttemptExpired:   "expired",
}

// domainMetrics keeps the payments domain's metrics in the service's
// registry (docs/observability.md).
type domainMetrics struct {
	payments *prometheus.CounterVec
	coupons  prometheus.Counter
	pending  atomic.Int64
}

func newMetrics(set *metrics.Set) *domainMetrics {
	m := &domainMetrics{
		payments: set.Outcomes("payments_total", "Payment attempts by outcome: succeeded (recorded; a free coupon order too), "+
			"declined, failed (took nothing), unknown (outcome not known yet: looked up again), refunded, expired (a checkout session ended unpaid).",
			"outcome", slices.Collect(maps.Values(outcomes))...),
		coupons: set.Counter("payments_coupon_redemptions_total", "Payments recorded with a coupon.").WithLabelValues(),
	}
	m.pending.Store(-1)
	set.GaugeFunc("payments_refunds_pending", "Refunds owed and not made yet, as of the last sweep (PAYMENT_SWEEP); -1 before it, or when they could not be listed.",
		func() float64 { return float64(m.pending.Load()) })
	return m
}

func (m *domainMetrics) Outcome(state payments.AttemptState) {
	if o, ok := outcomes[state]; ok {
		m.payments.WithLabelValues(o).Inc()
	}
}

func (m *domainMetrics) CouponRedeemed() { m.coupons.Inc() }

func (m *domainMetrics) RefundsPending(n int) { m.pending.Store(int64(n)) }
