package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakePrometheus answers range queries as Prometheus's HTTP API does: two
// series for queries of http_requests_total (one with a gap), none for the
// others, and an error for a query that does not parse.
func fakePrometheus(t *testing.T, seen *[]string) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query_range" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		*seen = append(*seen, q.Get("query"))
		if strings.Contains(q.Get("query"), "(((") {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
			return
		}
		start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
		end, _ := strconv.ParseInt(q.Get("end"), 10, 64)
		step, _ := strconv.ParseFloat(q.Get("step"), 64)
		type result struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		}
		var res []result
		if strings.Contains(q.Get("query"), "http_requests_total") {
			for i, route := range []string{"/api/stuff/:id", "/api/orders"} {
				r := result{Metric: map[string]string{"app": "stuff", "route": route}}
				for ts, k := start, 0; ts <= end; ts, k = ts+int64(step), k+1 {
					if i == 1 && k%10 == 5 {
						continue // a gap
					}
					r.Values = append(r.Values, [2]any{float64(ts), strconv.FormatFloat(float64(k%7)+float64(i), 'f', -1, 64)})
				}
				res = append(res, r)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": res}})
	}))
}

// TestRender draws the repository's dashboard from a fake Prometheus: the
// queries go out with the variables given values, the picture is
// well-formed SVG with every panel's title, lines where there is data and
// "No data" where there is none.
func TestRender(t *testing.T) {
	raw, err := os.ReadFile("../grafana/stuffmart.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDashboard(raw)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	srv := fakePrometheus(t, &seen)
	defer srv.Close()
	end := time.Date(2026, 12, 4, 12, 30, 0, 0, time.UTC)
	w := window{Start: end.Add(-30 * time.Minute), End: end, Step: 15 * time.Second, RateInterval: time.Minute}
	src := &prometheus{base: srv.URL, http: srv.Client()}
	data, err := fetch(t.Context(), slog.New(slog.DiscardHandler), src, d, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range seen {
		if strings.Contains(q, "$") {
			t.Errorf("query sent with a variable: %s", q)
		}
	}
	svg := render(d, data, w, layout{Width: 1400, Note: "a test"})
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := dec.Token(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
	}
	text := string(svg)
	for _, p := range d.Panels {
		if !strings.Contains(text, ">"+esc(p.Title)+"<") {
			t.Errorf("no title %q", p.Title)
		}
	}
	if !strings.Contains(text, "<polyline") || !strings.Contains(text, "No data") || !strings.Contains(text, "stuff /api/orders") {
		t.Error("want lines and legends for the panels with data, No data for the others")
	}
	if !strings.Contains(text, "a test") {
		t.Error("the note is missing")
	}
}

// TestFetchReportsQueryErrors: a query Prometheus refuses is an error
// naming the panel.
func TestFetchReportsQueryErrors(t *testing.T) {
	var seen []string
	srv := fakePrometheus(t, &seen)
	defer srv.Close()
	d, err := parseDashboard([]byte(`{"panels":[{"id":1,"type":"timeseries","title":"Broken","targets":[{"expr":"sum(((x"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Truncate(time.Second)
	_, err = fetch(t.Context(), slog.New(slog.DiscardHandler), &prometheus{base: srv.URL, http: srv.Client()}, d,
		window{Start: end.Add(-time.Minute), End: end, Step: 15 * time.Second, RateInterval: time.Minute})
	if err == nil || !strings.Contains(err.Error(), `"Broken"`) || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("error %v; want one naming the panel and Prometheus's reason", err)
	}
}

func TestToSeriesPutsPointsOnSteps(t *testing.T) {
	start := time.Unix(1000, 0)
	w := window{Start: start, End: start.Add(time.Minute), Step: 15 * time.Second}
	s, err := toSeries(rangeResult{
		Metric: map[string]string{"result": "taken"},
		Values: [][2]any{{1000.0, "1"}, {1030.0, "2.5"}},
	}, "{{result}} holds", w)
	if err != nil {
		t.Fatal(err)
	}
	if s.Legend != "taken holds" || len(s.Values) != 5 {
		t.Fatalf("series %+v", s)
	}
	if s.Values[0] != 1 || !math.IsNaN(s.Values[1]) || s.Values[2] != 2.5 || !math.IsNaN(s.Values[4]) {
		t.Errorf("values %v; want 1 NaN 2.5 NaN NaN", s.Values)
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v     float64
		unit  string
		ticks []float64
		want  string
	}{
		{0.005, "s", []float64{0, 0.005, 0.01}, "5 ms"},
		{0.0002, "s", []float64{0, 0.0002, 0.0004}, "200 µs"},
		{2, "s", []float64{0, 1, 2}, "2 s"},
		{0.25, "percentunit", []float64{0, 0.25, 0.5}, "25%"},
		{3 << 20, "bytes", []float64{0, 2 << 20, 4 << 20}, "3 MiB"},
		{1.5, "opm", []float64{0, 0.5, 1.5}, "1.5 /min"},
		{12, "reqps", []float64{0, 10, 20}, "12 req/s"},
	} {
		if got := formatValue(tc.v, tc.unit, tc.ticks); got != tc.want {
			t.Errorf("formatValue(%v, %s) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}
