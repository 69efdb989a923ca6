package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/shared/testkit"
	"golang.org/x/sys/unix"
)

// BenchmarkGetStuffMetrics: what the metrics cost GET /api/stuff/:id. Two
// services run on 5,000 listings each, one as served and one with every
// metric left out (service.Config.NoMetrics). Their handlers are called
// in-process, one request at a time, on one locked OS thread, in
// alternating batches of metricsBatch requests, and each batch is timed by
// the thread's CPU clock: on a shared machine other jobs take the CPU away
// for milliseconds at a time, which a wall clock would count and the
// thread's does not, and alternating has both services meet the same
// caches and the same collector. What is timed is the handler chain alone
// (routing, every middleware, the catalog's cached answer), without the
// network and the client, so the metrics' share of it is the largest any
// request can show. It reports the median CPU time per request of each,
// over its batches, and the overhead; run it with -count 5.
func BenchmarkGetStuffMetrics(b *testing.B) {
	type side struct {
		s       *stack
		reqs    []*http.Request
		batches []float64 // ns per request
	}
	var sides [2]*side
	for i, s := range metricsOnOff(b) {
		sd := &side{s: s}
		for _, id := range s.allIDs(b) {
			sd.reqs = append(sd.reqs, httptest.NewRequest(http.MethodGet, "/api/stuff/"+id, nil))
		}
		sides[i] = sd
	}
	on, off := sides[0], sides[1]
	serve := func(sd *side, i int) {
		rec := httptest.NewRecorder()
		req := sd.reqs[i%len(sd.reqs)]
		sd.s.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", req.URL, rec.Code, rec.Body)
		}
	}
	// Warm up past the start-up work (see load).
	for i, end := 0, time.Now().Add(3*time.Second); time.Now().Before(end); i++ {
		serve(sides[i/metricsBatch%2], i)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	i := 0
	var begin time.Duration
	for b.Loop() {
		sd := sides[i/metricsBatch%2]
		if i%metricsBatch == 0 {
			begin = threadCPU(b)
		}
		serve(sd, i)
		if i%metricsBatch == metricsBatch-1 {
			sd.batches = append(sd.batches, float64((threadCPU(b)-begin).Nanoseconds())/metricsBatch)
		}
		i++
	}
	reportOverhead(b, on.batches, off.batches)
}

// metricsOnOff starts two services on benchListings listings each: the
// first as served, the second with every metric left out.
func metricsOnOff(b *testing.B) [2]*stack {
	on, off := benchStack(b), benchStack(b, func(c *app.Config) { c.Service.NoMetrics = true })
	if !testkit.Scrape(b, on.URL+"/metrics").Has("http_requests_total") {
		b.Fatal("the service with metrics serves none")
	}
	if r := off.do(b, anon, http.MethodGet, "/metrics", nil); r.Status != http.StatusNotFound {
		b.Fatalf("/metrics of the service without metrics: %d, want 404", r.Status)
	}
	return [2]*stack{on, off}
}

// reportOverhead reports the median of the per-request CPU times measured
// with the metrics on and off, and the overhead of on over off.
func reportOverhead(b *testing.B, on, off []float64) {
	if len(on) == 0 || len(off) == 0 {
		return
	}
	median := func(xs []float64) float64 {
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	mOn, mOff := median(on), median(off)
	b.ReportMetric(mOn, "on-ns/req")
	b.ReportMetric(mOff, "off-ns/req")
	b.ReportMetric(100*(mOn-mOff)/mOff, "overhead-%")
}

// BenchmarkGetStuffMetricsHTTP: what the metrics cost GET /api/stuff/:id
// as served, over loopback HTTP from 50 concurrent clients. The two
// services of BenchmarkGetStuffMetrics take turns, metricsWindow requests
// at a time, and each turn is timed by the CPU the whole process used
// (the clients' share too, the same for both): the CPU a request costs the
// machine, with and without metrics. Run it with -count 5.
func BenchmarkGetStuffMetricsHTTP(b *testing.B) {
	type side struct {
		s       *stack
		paths   []string
		hc      *http.Client
		windows []float64 // ns of CPU per request
	}
	var sides [2]*side
	for i, s := range metricsOnOff(b) {
		tr := &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}
		b.Cleanup(tr.CloseIdleConnections)
		sd := &side{s: s, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
		for _, id := range s.allIDs(b) {
			sd.paths = append(sd.paths, "/api/stuff/"+id)
		}
		sides[i] = sd
	}
	next := 0
	turn := func(sd *side) time.Duration {
		begin := testkit.CPUTime(b)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed error
		var taken atomic.Int64
		for range benchClients {
			wg.Go(func() {
				for j := taken.Add(1) - 1; j < metricsWindow; j = taken.Add(1) - 1 {
					path := sd.paths[(next+int(j))%len(sd.paths)]
					res, err := sd.hc.Get(sd.s.URL + path)
					if err == nil {
						_, err = io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if err == nil && res.StatusCode != http.StatusOK {
							err = &statusError{res.StatusCode, path}
						}
					}
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		next += metricsWindow
		if failed != nil {
			b.Fatal(failed)
		}
		return testkit.CPUTime(b) - begin
	}
	// Warm up past the start-up work (see load).
	for i, end := 0, time.Now().Add(3*time.Second); time.Now().Before(end); i++ {
		turn(sides[i%2])
	}
	for b.Loop() {
		for _, sd := range sides {
			sd.windows = append(sd.windows, float64(turn(sd).Nanoseconds())/metricsWindow)
		}
	}
	reportOverhead(b, sides[0].windows, sides[1].windows)
}

// metricsWindow is how many requests one turn of
// BenchmarkGetStuffMetricsHTTP sends.
const metricsWindow = 500

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// metricsBatch is how many requests BenchmarkGetStuffMetrics sends to one
// service before it turns to the other.
const metricsBatch = 500
