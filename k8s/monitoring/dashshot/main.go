// Command dashshot draws the Grafana dashboard of k8s/monitoring as an SVG
// picture, with the data of a real Prometheus: each panel's queries are run
// as range queries against its HTTP API, and the series drawn as lines on
// the dashboard's own grid. It is how the README's picture of the dashboard
// is made (Grafana itself is not needed):
//
//	go run ./k8s/monitoring/dashshot -prometheus http://localhost:9090 \
//	    -last 30m -out docs/dashboard.svg
//
// It draws time series only (every panel of the dashboard is one), with
// the dashboard's variables at "All".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dashshot:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dashboard    = flag.String("dashboard", "k8s/monitoring/grafana/stuffmart.json", "the Grafana dashboard JSON")
		promURL      = flag.String("prometheus", "http://localhost:9090", "base URL of the Prometheus HTTP API")
		last         = flag.Duration("last", 30*time.Minute, "how much time to draw, ending at -end")
		endFlag      = flag.String("end", "", "end of the time drawn (RFC 3339); empty: now")
		step         = flag.Duration("step", 15*time.Second, "resolution of the range queries")
		rateInterval = flag.Duration("rate-interval", time.Minute, "the value of $__rate_interval")
		width        = flag.Int("width", 1400, "width of the picture in pixels")
		note         = flag.String("note", "", "a line under the title: what the data is")
		out          = flag.String("out", "dashboard.svg", "the SVG file to write")
	)
	flag.Parse()
	end := time.Now().Truncate(time.Second)
	if *endFlag != "" {
		t, err := time.Parse(time.RFC3339, *endFlag)
		if err != nil {
			return fmt.Errorf("-end: %w", err)
		}
		end = t.Truncate(time.Second)
	}
	raw, err := os.ReadFile(*dashboard)
	if err != nil {
		return err
	}
	d, err := parseDashboard(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", *dashboard, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	src := &prometheus{base: *promURL, http: &http.Client{Timeout: 30 * time.Second}}
	q := window{Start: end.Add(-*last), End: end, Step: *step, RateInterval: *rateInterval}
	data, err := fetch(ctx, log, src, d, q)
	if err != nil {
		return err
	}
	svg := render(d, data, q, layout{Width: *width, Note: *note})
	if err := os.WriteFile(*out, svg, 0o644); err != nil {
		return errors.Join(errors.New("write picture"), err)
	}
	log.Info("picture written", "file", *out, "bytes", len(svg))
	return nil
}
