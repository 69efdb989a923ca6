// Package metrics is what every Stuffmart process tells Prometheus: one
// registry per service (the local stack runs every service in one process,
// each with its own), with the Go runtime and process collectors, the
// metrics the shared packages keep (HTTP, events, outbox, rate limits, calls
// to other services) and the domain metrics each service adds.
//
// A nil *Set is valid and records nothing, so code and tests that do not
// care about metrics pass nil.
//
// The names, for dashboards and alerts (docs/observability.md has the full
// list with the domain metrics):
//
//	http_requests_total{route,method,status}         requests served, by route pattern
//	http_request_duration_seconds{route,method}      their latency
//	events_published_total{subject,result}           publishes to NATS Streaming: ok, error
//	events_handled_total{subject,group,result}       deliveries: acked, not_yet, failed, parked, skipped
//	events_handle_duration_seconds{subject,group}    handling latency
//	outbox_pending_events                            events written but not yet published
//	outbox_oldest_pending_seconds                    age of the oldest of them
//	ratelimit_refused_total{limit}                   requests refused 429, by limit
//	upstream_requests_total{service,method,status}   calls to other services (status "error": no answer)
//	upstream_request_duration_seconds{service,method}
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set is one service's registry and the shared metrics in it.
type Set struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	published    *prometheus.CounterVec
	handled      *prometheus.CounterVec
	handleTime   *prometheus.HistogramVec
	refused      *prometheus.CounterVec
	upstream     *prometheus.CounterVec
	upstreamTime *prometheus.HistogramVec

	// served caches the series of each route, method and status already
	// seen (httpKey → *httpSeries): resolving them from their label values
	// at every request costs about as much again as the rest of
	// recording it, and requests are the hottest path measured.
	served sync.Map
}

type httpKey struct {
	route, method string
	status        int
}

type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// Buckets are the latency buckets of every duration histogram, in seconds:
// from a cached page (~100µs) to a request that waited for a timeout.
var Buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns a Set with the Go runtime and process collectors and the
// shared metrics registered.
func New() *Set {
	s := &Set{reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.httpRequests = s.Counter("http_requests_total", "HTTP requests served, by route pattern, method and status.", "route", "method", "status")
	s.httpDuration = s.Histogram("http_request_duration_seconds", "Time to serve an HTTP request, by route pattern and method.", Buckets, "route", "method")
	s.published = s.Counter("events_published_total", "Events published to NATS Streaming, by subject and result (ok, error).", "subject", "result")
	s.handled = s.Counter("events_handled_total", "Event deliveries handled, by subject, listener group and result (acked, not_yet, failed, parked, skipped).", "subject", "group", "result")
	s.handleTime = s.Histogram("events_handle_duration_seconds", "Time to handle one event delivery, by subject and listener group.", Buckets, "subject", "group")
	s.refused = s.Counter("ratelimit_refused_total", "Requests refused with 429 by a rate limit, by limit.", "limit")
	s.upstream = s.Counter("upstream_requests_total", "Calls to other services, by service, method and status (error: no answer).", "service", "method", "status")
	s.upstreamTime = s.Histogram("upstream_request_duration_seconds", "Time of a call to another service, by service and method.", Buckets, "service", "method")
	return s
}

// Handler serves the registry in the Prometheus text format. It is nil-safe:
// a nil Set serves an empty page.
func (s *Set) Handler() http.Handler {
	if s == nil {
		return promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})
	}
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
}

// Counter registers a counter vector (a domain metric). On a nil Set it
// returns one that counts without being served.
func (s *Set) Counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	if s != nil {
		s.reg.MustRegister(c)
	}
	return c
}

// Outcomes registers a counter of one label whose every value in values is
// served from the start, at 0: a rate over a series that does not exist
// yet is no rate at all, and a dashboard would show nothing rather than 0.
func (s *Set) Outcomes(name, help, label string, values ...string) *prometheus.CounterVec {
	c := s.Counter(name, help, label)
	for _, v := range values {
		c.WithLabelValues(v)
	}
	return c
}

// Histogram registers a histogram vector with the given buckets (Buckets
// when nil).
func (s *Set) Histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	if buckets == nil {
		buckets = Buckets
	}
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	if s != nil {
		s.reg.MustRegister(h)
	}
	return h
}

// GaugeFunc registers a gauge read by calling fn at every scrape. fn must be
// quick and safe for concurrent use.
func (s *Set) GaugeFunc(name, help string, fn func() float64) {
	if s == nil {
		return
	}
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Collect registers a collector of its own (several gauges read at once).
func (s *Set) Collect(c prometheus.Collector) {
	if s != nil {
		s.reg.MustRegister(c)
	}
}

// Gatherer is the registry, for tests that read values.
func (s *Set) Gatherer() prometheus.Gatherer {
	if s == nil {
		return prometheus.NewRegistry()
	}
	return s.reg
}

// ServedHTTP records one request: route is the route pattern ("/api/stuff/:id"),
// never the raw path, and a method other than the standard ones is counted
// as "other", so that the number of series stays bounded.
func (s *Set) ServedHTTP(route, method string, status int, d time.Duration) {
	if s == nil {
		return
	}
	k := httpKey{route: route, method: standardMethod(method), status: status}
	v, ok := s.served.Load(k)
	if !ok {
		v, _ = s.served.LoadOrStore(k, &httpSeries{
			requests: s.httpRequests.WithLabelValues(k.route, k.method, statusText(k.status)),
			duration: s.httpDuration.WithLabelValues(k.route, k.method),
		})
	}
	series := v.(*httpSeries)
	series.requests.Inc()
	series.duration.Observe(d.Seconds())
}

// standardMethod is method if it is one of HTTP's standard methods, else
// "other": a client may send any token as its method.
func standardMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// Published records one publish.
func (s *Set) Published(subject string, err error) {
	if s == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.published.WithLabelValues(subject, result).Inc()
}

// The results of handling an event delivery.
const (
	Acked   = "acked"   // applied (or already applied) and acked
	NotYet  = "not_yet" // ahead of the local state: left for a later delivery
	Failed  = "failed"  // failed; retried with backoff
	Parked  = "parked"  // given up on and parked for a human
	Skipped = "skipped" // a redelivery that came before its backoff ended
)

// Handled records one delivery of subject to group.
func (s *Set) Handled(subject, group, result string, d time.Duration) {
	if s == nil {
		return
	}
	s.handled.WithLabelValues(subject, group, result).Inc()
	if result != Skipped {
		s.handleTime.WithLabelValues(subject, group).Observe(d.Seconds())
	}
}

// Refused records one request refused by the rate limit named limit.
func (s *Set) Refused(limit string) {
	if s == nil {
		return
	}
	s.refused.WithLabelValues(limit).Inc()
}

// Called records one call to another service; status 0 means no answer
// (connection refused, timeout).
func (s *Set) Called(service, method string, status int, d time.Duration) {
	if s == nil {
		return
	}
	st := "error"
	if status > 0 {
		st = statusText(status)
	}
	s.upstream.WithLabelValues(service, method, st).Inc()
	s.upstreamTime.WithLabelValues(service, method).Observe(d.Seconds())
}

// statusText is the status as a label.
func statusText(code int) string { return strconv.Itoa(code) }
