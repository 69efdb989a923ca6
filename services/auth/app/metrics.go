package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/metrics"
)

// domainMetrics counts what the account rules decide in the service's
// registry (docs/observability.md lists every metric).
type domainMetrics struct {
	signIns, signUps *prometheus.CounterVec
}

func newDomainMetrics(m *metrics.Set) *domainMetrics {
	return &domainMetrics{
		signIns: m.Outcomes("auth_signins_total", "Sign-ins, by result: succeeded, failed (what was sent), refused (the account's limit or backoff).",
			"result", users.Succeeded, users.Failed, users.Refused),
		signUps: m.Outcomes("auth_signups_total", "Sign-ups, by result: succeeded, failed (what was sent, an email in use).",
			"result", users.Succeeded, users.Failed),
	}
}

func (d *domainMetrics) SignIn(result string) { d.signIns.WithLabelValues(result).Inc() }
func (d *domainMetrics) SignUp(result string) { d.signUps.WithLabelValues(result).Inc() }
