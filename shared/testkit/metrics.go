package testkit

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Metrics is one scrape of a /metrics page.
type Metrics map[string]*dto.MetricFamily

// Scrape reads url (a service's /metrics) as Prometheus does, failing the
// test unless it answers 200 in the text format.
func Scrape(tb testing.TB, url string) Metrics {
	tb.Helper()
	resp, err := sharedTransport.RoundTrip(mustRequest(tb, url))
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("scrape %s: %d %s", url, resp.StatusCode, b)
	}
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	return Metrics(fams)
}

func mustRequest(tb testing.TB, url string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return req
}

// Value is the value of the series of name whose labels include the given
// pairs ("route", "/api/stuff/:id", "status", "200"), summed over the series
// that match: a counter's or gauge's value, a histogram's count. It is 0
// when no series matches.
func (m Metrics) Value(name string, labels ...string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, s := range f.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		switch {
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		case s.Histogram != nil:
			sum += float64(s.Histogram.GetSampleCount())
		case s.Untyped != nil:
			sum += s.Untyped.GetValue()
		}
	}
	return sum
}

// Has reports whether a family called name was served.
func (m Metrics) Has(name string) bool { return m[name] != nil }

// String lists the series, for failure messages.
func (m Metrics) String() string {
	var lines []string
	for name, f := range m {
		for _, s := range f.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s{%s}", name, strings.Join(ls, ",")))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func hasLabels(s *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
