package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/metrics"
)

// domainMetrics counts what the orders rules decide in the service's
// registry (docs/observability.md lists every metric).
type domainMetrics struct {
	holds, ended *prometheus.CounterVec
}

func newDomainMetrics(m *metrics.Set) *domainMetrics {
	return &domainMetrics{
		holds: m.Outcomes("orders_holds_total", "BUY clicks by what they got: taken (the order holds the stuff), refused (409: another order holds it), too_many_open (the buyer is at MAX_OPEN_ORDERS).",
			"result", orders.HoldTaken, orders.HoldRefused, orders.HoldTooManyOpen),
		ended: m.Outcomes("orders_ended_total", "Orders ended, by outcome: completed (paid), cancelled (by the buyer, a ban, a lost hold), expired (past the deadline).",
			"outcome", orders.EndCompleted, orders.EndCancelled, orders.EndExpired),
	}
}

func (d *domainMetrics) Hold(result string)  { d.holds.WithLabelValues(result).Inc() }
func (d *domainMetrics) Ended(ending string) { d.ended.WithLabelValues(ending).Inc() }
