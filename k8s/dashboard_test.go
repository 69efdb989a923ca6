package k8s_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/stuffmart/stuffmart/shared/metrics"
)

// This file checks the Grafana dashboard (k8s/monitoring/grafana) against
// the metrics catalogue of docs/observability.md: every metric its queries
// read is one the apps serve, with the labels they serve, so that a renamed
// metric or label shows here rather than as an empty panel.

// observabilityDoc is the metrics catalogue, relative to the repository root.
const observabilityDoc = "docs/observability.md"

// targetLabels are the labels Prometheus puts on every series of a target:
// app by make dev's targets file and k8s/monitoring's relabeling, the rest
// by Prometheus and the PodMonitors.
var targetLabels = []string{"app", "instance", "job", "namespace", "pod", "container", "endpoint"}

// metricDef is one metric the apps serve.
type metricDef struct {
	Labels    []string
	Histogram bool
}

// catalogue reads the metrics tables of docs/observability.md (the columns
// "metric", "labels" and "what"; a histogram says so in "what") and adds the
// Go runtime and process collectors' metrics as a real registry serves them.
func catalogue(t *testing.T) map[string]metricDef {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), observabilityDoc))
	if err != nil {
		t.Fatal(err)
	}
	out, err := parseCatalogue(string(b))
	if err != nil {
		t.Fatalf("%s: %v", observabilityDoc, err)
	}
	fams, err := metrics.New().Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if name := f.GetName(); strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			out[name] = familyDef(f)
		}
	}
	return out
}

func familyDef(f *dto.MetricFamily) metricDef {
	var d metricDef
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(d.Labels, l.GetName()) {
				d.Labels = append(d.Labels, l.GetName())
			}
		}
	}
	slices.Sort(d.Labels)
	d.Histogram = f.GetType() == dto.MetricType_HISTOGRAM
	return d
}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
)

// parseCatalogue reads every Markdown table with a "metric" column.
func parseCatalogue(doc string) (map[string]metricDef, error) {
	out := map[string]metricDef{}
	var header []string
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			header = nil
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		col := func(name string) string {
			if i := slices.Index(header, name); i >= 0 && i < len(cells) {
				return cells[i]
			}
			return ""
		}
		if !slices.Contains(header, "metric") {
			continue
		}
		m := backticked.FindStringSubmatch(col("metric"))
		if m == nil || !metricName.MatchString(m[1]) {
			return nil, fmt.Errorf("row %q: no metric name", line)
		}
		if _, dup := out[m[1]]; dup {
			return nil, fmt.Errorf("metric %s listed twice", m[1])
		}
		// Labels are the backticked names outside parentheses (those
		// inside are values: `result` (`ok`, `error`)).
		var d metricDef
		for _, l := range backticked.FindAllStringSubmatch(stripParens(col("labels")), -1) {
			d.Labels = append(d.Labels, l[1])
		}
		slices.Sort(d.Labels)
		d.Histogram = strings.Contains(col("what"), "histogram")
		out[m[1]] = d
	}
	if len(out) == 0 {
		return nil, errors.New("no metrics table")
	}
	return out, nil
}

// stripParens removes every parenthesized part of s.
func stripParens(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestCatalogueMatchesSharedMetrics: what docs/observability.md says of the
// metrics every app gets from shared/metrics (names, labels, histograms) is
// what a real Set serves once each has a sample.
func TestCatalogueMatchesSharedMetrics(t *testing.T) {
	cat := catalogue(t)
	s := metrics.New()
	s.ServedHTTP("/api/stuff/:id", "GET", 200, time.Millisecond)
	s.Published("stuff:created", nil)
	s.Handled("stuff:created", "orders", metrics.Acked, time.Millisecond)
	s.Refused("rate_limit_unsafe")
	s.Called("stuff", "GET", 200, time.Millisecond)
	fams, err := s.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		name := f.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		n++
		got, want := familyDef(f), cat[name]
		if _, ok := cat[name]; !ok {
			t.Errorf("%s is served but not in %s", name, observabilityDoc)
			continue
		}
		if !slices.Equal(got.Labels, want.Labels) || got.Histogram != want.Histogram {
			t.Errorf("%s: served with labels %v (histogram %v); %s says %v (histogram %v)",
				name, got.Labels, got.Histogram, observabilityDoc, want.Labels, want.Histogram)
		}
	}
	if n < 8 {
		t.Errorf("only %d shared metrics gathered", n)
	}
}

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// loadDashboard reads the dashboard file.
func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(dashboardFile)))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels is every panel, those of collapsed rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// grafanaVars are the dashboard's variables as a query may use them, with a
// value that keeps the query valid PromQL.
var grafanaVars = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range|[a-zA-Z_][a-zA-Z0-9_]*)\}?`)

func expandGrafanaVars(expr string, known []string) (string, error) {
	var bad []string
	out := grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(v, "${}")
		switch {
		case strings.HasPrefix(name, "__"):
			return "5m"
		case slices.Contains(known, name):
			return ".*"
		}
		bad = append(bad, v)
		return v
	})
	if bad != nil {
		return "", fmt.Errorf("unknown variables %v", bad)
	}
	return out, nil
}

// TestDashboard: the dashboard has the panels the README promises, laid out
// on Grafana's 24-column grid without overlaps, and each query reads only
// metrics of the catalogue, with their labels.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	cat := catalogue(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title (the sidecar and links find it by uid)")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.allPanels() {
		if p.Title == "" || ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %d %q: needs a title and an id of its own", p.ID, p.Title)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps %q", p.Title, other)
					x, y = g.X+g.W, g.Y+g.H
					continue
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr, err := expandGrafanaVars(tg.Expr, vars)
			if err == nil {
				var names []string
				names, err = checkQuery(expr, cat)
				for _, n := range names {
					used[n] = true
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if base, ok := strings.CutSuffix(n, suf); ok && cat[base].Histogram {
							used[base] = true
						}
					}
				}
			}
			if err != nil {
				t.Errorf("panel %q, query %s: %v\n\t%s", p.Title, tg.RefID, err, tg.Expr)
			}
		}
	}
	// What the README's Observability section says the dashboard shows.
	for _, m := range []string{
		"http_requests_total", "http_request_duration_seconds", "events_published_total", "events_handled_total",
		"events_handle_duration_seconds", "outbox_pending_events", "outbox_oldest_pending_seconds", "events_parked",
		"orders_holds_total", "orders_ended_total", "expiration_lateness_seconds", "payments_total",
		"payments_refunds_pending", "payments_coupon_redemptions_total", "auth_signins_total",
		"ratelimit_refused_total", "storefront_page_cache_total", "upstream_requests_total",
		"upstream_request_duration_seconds", "go_goroutines", "go_memstats_heap_inuse_bytes",
	} {
		if !used[m] {
			t.Errorf("no panel reads %s", m)
		}
	}
}

// TestCheckQuery makes sure the query check says no as well as yes.
func TestCheckQuery(t *testing.T) {
	cat := map[string]metricDef{
		"http_requests_total":           {Labels: []string{"method", "route", "status"}},
		"http_request_duration_seconds": {Labels: []string{"method", "route"}, Histogram: true},
		"outbox_pending_events":         {},
	}
	for _, tc := range []struct {
		expr  string
		names []string
		err   string
	}{
		{`sum by (app, route) (rate(http_requests_total{app=~".*",status=~"5.."}[5m]))`, []string{"http_requests_total"}, ""},
		{`histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket[5m])))`, []string{"http_request_duration_seconds_bucket"}, ""},
		{`sum by (app) (outbox_pending_events) / 2`, []string{"outbox_pending_events"}, ""},
		{`rate(http_requests_totl[5m])`, nil, "not in the catalogue"},
		{`sum by (service) (rate(http_requests_total[5m]))`, nil, `label "service"`},
		{`http_requests_total{servce="x"}`, nil, `label "servce"`},
		{`rate(outbox_pending_events_bucket[5m])`, nil, "not in the catalogue"},
		{`histogram_quantile(0.5, sum by (route) (rate(http_request_duration_seconds_bucket[5m])))`, nil, "without le"},
		{`sum(rate(http_requests_total[5m])) by (route)`, nil, "grouping after"},
		{`{__name__="http_requests_total"}`, nil, "no metric name"},
		{`sum by (app) (rate(http_requests_total[5m])`, nil, "unbalanced"},
	} {
		names, err := checkQuery(tc.expr, cat)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.expr, err)
		case tc.err == "" && !slices.Equal(names, tc.names):
			t.Errorf("%s: metrics %v, want %v", tc.expr, names, tc.names)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one with %q", tc.expr, err, tc.err)
		}
	}
}

// PromQL, as much of it as the dashboard's queries need: a lexer, then one
// pass that finds each metric selector with its matchers, and each
// aggregation with its grouping labels and the selectors it aggregates.

type promToken struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, else the punctuation itself ('(' …) or 'o' operator
	text string
}

func lexPromQL(s string) ([]promToken, error) {
	var out []promToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, errors.New("unterminated string")
			}
			out = append(out, promToken{'s', s[i+1 : j]})
			i = j + 1
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == ':' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			out = append(out, promToken{'i', s[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] == '.' || s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
				j++
			}
			out = append(out, promToken{'n', s[i:j]})
			i = j
		case strings.ContainsRune("(){}[],", rune(c)):
			out = append(out, promToken{c, string(c)})
			i++
		case strings.ContainsRune("=!~<>+-*/%^", rune(c)):
			j := i + 1
			for j < len(s) && strings.ContainsRune("=~", rune(s[j])) {
				j++
			}
			out = append(out, promToken{'o', s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return out, nil
}

var (
	aggregators   = []string{"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group", "count_values"}
	groupingWords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	binaryWords   = []string{"and", "or", "unless", "bool", "offset"}
)

// selector is one metric selector of a query.
type selector struct {
	name   string
	labels []string // matched on
	pos    int      // token index
}

// aggregation is one `agg by (labels) (expr)`.
type aggregation struct {
	by         []string
	depth      int // parentheses inside its own
	start, end int // token indexes of its parentheses
}

// checkQuery returns the metric names a query reads, or why it reads
// something the catalogue does not serve: an unknown metric, a label the
// metric does not have (in a matcher or a grouping), a histogram's buckets
// aggregated without le.
func checkQuery(expr string, cat map[string]metricDef) ([]string, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return nil, err
	}
	var sels []selector
	var aggs []aggregation
	var openAggs []int // indexes in aggs of those whose ")" is still to come
	depth := 0
	// labelList reads "( a, b )" from toks[i] ("(") and returns the labels
	// and the index after ")".
	labelList := func(i int) ([]string, int, error) {
		if i >= len(toks) || toks[i].kind != '(' {
			return nil, i, errors.New("a label list must follow " + toks[i-1].text)
		}
		var ls []string
		for i++; i < len(toks) && toks[i].kind != ')'; i++ {
			if toks[i].kind == 'i' {
				ls = append(ls, toks[i].text)
			}
		}
		return ls, i + 1, nil
	}
	for i := 0; i < len(toks); {
		tk := toks[i]
		next := func(k byte) bool { return i+1 < len(toks) && toks[i+1].kind == k }
		switch {
		case tk.kind == '(':
			depth++
			i++
		case tk.kind == ')':
			depth--
			if n := len(openAggs); n > 0 && aggs[openAggs[n-1]].depth == depth+1 {
				aggs[openAggs[n-1]].end = i
				openAggs = openAggs[:n-1]
			}
			if depth < 0 {
				return nil, errors.New("unbalanced parentheses")
			}
			i++
		case tk.kind == '[':
			for i < len(toks) && toks[i].kind != ']' {
				i++
			}
			i++
		case tk.kind == '{':
			return nil, errors.New("a selector with no metric name")
		case tk.kind == 'i' && slices.Contains(aggregators, tk.text):
			a := aggregation{}
			i++
			if i < len(toks) && toks[i].kind == 'i' && (toks[i].text == "by" || toks[i].text == "without") {
				if toks[i].text == "without" {
					return nil, errors.New("without: name the labels kept (by)")
				}
				a.by, i, err = labelList(i + 1)
				if err != nil {
					return nil, err
				}
			}
			if i >= len(toks) || toks[i].kind != '(' {
				return nil, fmt.Errorf("%s: want (", tk.text)
			}
			a.depth, a.start = depth+1, i
			aggs = append(aggs, a)
			openAggs = append(openAggs, len(aggs)-1)
			// the "(" is consumed by the next iteration
		case tk.kind == 'i' && slices.Contains(groupingWords, tk.text):
			if tk.text == "by" || tk.text == "without" {
				return nil, errors.New("grouping after the aggregated expression: write sum by (…) (…)")
			}
			if next('(') {
				_, i, err = labelList(i + 1)
				if err != nil {
					return nil, err
				}
			} else {
				i++
			}
		case tk.kind == 'i' && slices.Contains(binaryWords, tk.text):
			i++
		case tk.kind == 'i' && next('('):
			i++ // a function: rate, histogram_quantile …
		case tk.kind == 'i':
			sel := selector{name: tk.text, pos: i}
			i++
			if i < len(toks) && toks[i].kind == '{' {
				for i++; i < len(toks) && toks[i].kind != '}'; i++ {
					if toks[i].kind == 'i' {
						sel.labels = append(sel.labels, toks[i].text)
					}
				}
				i++
			}
			sels = append(sels, sel)
		default:
			i++
		}
	}
	if depth != 0 || len(openAggs) != 0 {
		return nil, errors.New("unbalanced parentheses")
	}
	var names []string
	var problems []string
	labelsOf := func(name string) ([]string, bool) {
		if d, ok := cat[name]; ok && !d.Histogram {
			return d.Labels, true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok {
				if d, ok := cat[base]; ok && d.Histogram {
					if suf == "_bucket" {
						return append(slices.Clone(d.Labels), "le"), true
					}
					return d.Labels, true
				}
			}
		}
		return nil, false // unknown, or a histogram named without its suffix
	}
	for _, s := range sels {
		if !slices.Contains(names, s.name) {
			names = append(names, s.name)
		}
		ls, ok := labelsOf(s.name)
		if !ok {
			problems = append(problems, fmt.Sprintf("metric %s is not in the catalogue", s.name))
			continue
		}
		for _, l := range s.labels {
			if !slices.Contains(ls, l) && !slices.Contains(targetLabels, l) {
				problems = append(problems, fmt.Sprintf("%s has no label %q", s.name, l))
			}
		}
	}
	for _, a := range aggs {
		for _, s := range sels {
			if s.pos <= a.start || s.pos >= a.end {
				continue // not aggregated by a
			}
			ls, ok := labelsOf(s.name)
			if !ok {
				continue
			}
			for _, l := range a.by {
				if !slices.Contains(ls, l) && !slices.Contains(targetLabels, l) {
					problems = append(problems, fmt.Sprintf("aggregation by label %q, which %s does not have", l, s.name))
				}
			}
			if strings.HasSuffix(s.name, "_bucket") && !slices.Contains(a.by, "le") {
				problems = append(problems, fmt.Sprintf("%s aggregated without le", s.name))
			}
		}
	}
	if problems != nil {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return names, nil
}
