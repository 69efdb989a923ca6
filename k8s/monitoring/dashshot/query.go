package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// dashboard is the part of Grafana's dashboard model that is drawn.
type dashboard struct {
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string   `json:"unit"`
			Min  *float64 `json:"min"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

func parseDashboard(raw []byte) (dashboard, error) {
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, err
	}
	// A collapsed row's panels are drawn as if it were open.
	var flat []panel
	for _, p := range d.Panels {
		flat = append(flat, p)
		flat = append(flat, p.Panels...)
	}
	d.Panels = flat
	return d, nil
}

// window is the time drawn.
type window struct {
	Start, End   time.Time
	Step         time.Duration
	RateInterval time.Duration
}

// series is one line of a panel.
type series struct {
	Legend string
	Times  []time.Time
	Values []float64 // NaN where the series has no point
}

// source runs a PromQL range query.
type source interface {
	QueryRange(ctx context.Context, query string, w window) ([]rangeResult, error)
}

type rangeResult struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// prometheus is the HTTP API of a Prometheus (or anything that answers
// like one).
type prometheus struct {
	base string
	http *http.Client
}

func (p *prometheus) QueryRange(ctx context.Context, query string, w window) ([]rangeResult, error) {
	v := url.Values{}
	v.Set("query", query)
	v.Set("start", strconv.FormatInt(w.Start.Unix(), 10))
	v.Set("end", strconv.FormatInt(w.End.Unix(), 10))
	v.Set("step", strconv.FormatFloat(w.Step.Seconds(), 'f', -1, 64))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.base, "/")+"/api/v1/query_range?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string        `json:"resultType"`
			Result     []rangeResult `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, r.Error)
	}
	if r.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("result type %q, want matrix", r.Data.ResultType)
	}
	return r.Data.Result, nil
}

var (
	grafanaVar  = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`)
	legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// expand gives the dashboard's variables their values: the rate interval,
// and "All" (.*) for the others.
func expand(expr string, w window) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "__rate_interval", "__interval":
			return strconv.Itoa(int(w.RateInterval.Seconds())) + "s"
		case "__range":
			return strconv.Itoa(int(w.End.Sub(w.Start).Seconds())) + "s"
		}
		return ".*"
	})
}

// fetch runs every query of every panel, by panel id.
func fetch(ctx context.Context, log *slog.Logger, src source, d dashboard, w window) (map[int][]series, error) {
	out := map[int][]series{}
	var errs []error
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			res, err := src.QueryRange(ctx, expand(t.Expr, w), w)
			if err != nil {
				errs = append(errs, fmt.Errorf("panel %q: %s: %w", p.Title, t.Expr, err))
				continue
			}
			for _, r := range res {
				s, err := toSeries(r, t.LegendFormat, w)
				if err != nil {
					errs = append(errs, fmt.Errorf("panel %q: %w", p.Title, err))
					continue
				}
				out[p.ID] = append(out[p.ID], s)
			}
		}
		log.Debug("panel", "title", p.Title, "series", len(out[p.ID]))
	}
	for id := range out {
		sort.SliceStable(out[id], func(i, j int) bool { return out[id][i].Legend < out[id][j].Legend })
	}
	return out, errors.Join(errs...)
}

// toSeries puts a range result on the window's steps (NaN where it has no
// point) and names it by the legend format.
func toSeries(r rangeResult, format string, w window) (series, error) {
	legend := legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return r.Metric[legendLabel.FindStringSubmatch(m)[1]]
	})
	if format == "" {
		legend = fmt.Sprint(r.Metric)
	}
	s := series{Legend: legend}
	n := int(w.End.Sub(w.Start)/w.Step) + 1
	at := map[int64]float64{}
	for _, v := range r.Values {
		ts, ok := v[0].(float64)
		str, ok2 := v[1].(string)
		if !ok || !ok2 {
			return s, fmt.Errorf("unexpected point %v", v)
		}
		f, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return s, err
		}
		at[int64(math.Round(ts))] = f
	}
	for i := range n {
		t := w.Start.Add(time.Duration(i) * w.Step)
		s.Times = append(s.Times, t)
		if f, ok := at[t.Unix()]; ok {
			s.Values = append(s.Values, f)
		} else {
			s.Values = append(s.Values, math.NaN())
		}
	}
	return s, nil
}
