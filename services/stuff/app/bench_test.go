package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/services/stuff/internal/store"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

const (
	benchListings = 5000
	benchClients  = 50
)

type noNotify struct{}

func (noNotify) Notify(*mongo.Collection, any, ...outbox.Pending) {}

// benchStack seeds benchListings available listings in bulk (no events)
// and starts the service on them, its configuration changed by tune.
func benchStack(b *testing.B, tune ...func(*app.Config)) *stack {
	b.Helper()
	desc := strings.Repeat("Lecture notes, worked examples and past papers. ", 4)
	return benchStackOf(b, func(i int) stuff.Input {
		return stuff.Input{Title: "Listing " + strconv.Itoa(i), Description: &desc, Price: int64(100 + i)}
	}, tune...)
}

// benchStackOf seeds benchListings available listings made by listing (a
// delivery is added) in bulk, without events, and starts the service on
// them, its configuration changed by tune.
func benchStackOf(b *testing.B, listing func(i int) stuff.Input, tune ...func(*app.Config)) *stack {
	b.Helper()
	db := testkit.Mongo(b)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ss := make([]stuff.Stuff, benchListings)
	for i := range ss {
		in := listing(i)
		in.Delivery = ptr("https://x.example/" + strconv.Itoa(i))
		ss[i] = stuff.New("", benchSeller(i%97), in, base.Add(time.Duration(i)*time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := store.New(db, mongox.NewWriter(), noNotify{}, testkit.Logger(b), nil).Seed(ctx, ss); err != nil {
		b.Fatal(err)
	}
	return newStackWith(b, func(c *app.Config) {
		realClock(c)
		for _, t := range tune {
			t(c)
		}
	}, testkit.OnDB(db))
}

// pool is benchClients concurrent HTTP clients taking paths from jobs.
type pool struct {
	jobs chan string
	lat  [][]time.Duration
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func startPool(hc *http.Client, base string) *pool {
	p := &pool{jobs: make(chan string, benchClients), lat: make([][]time.Duration, benchClients)}
	for w := range benchClients {
		p.wg.Go(func() {
			for path := range p.jobs {
				t0 := time.Now()
				res, err := hc.Get(base + path)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = &statusError{res.StatusCode, path}
					}
				}
				p.lat[w] = append(p.lat[w], time.Since(t0))
				if err != nil {
					p.mu.Lock()
					p.err = err
					p.mu.Unlock()
				}
			}
		})
	}
	return p
}

// stop waits for the queued requests and returns every latency.
func (p *pool) stop() ([]time.Duration, error) {
	close(p.jobs)
	p.wg.Wait()
	return slices.Concat(p.lat...), p.err
}

// load sends requests from benchClients concurrent clients over loopback
// HTTP, one per b.Loop iteration, and reports req/s, p50, p99 and the
// process's CPU time per request. It first
// warms up for 3 s, past the start-up work (the outbox relay and the catalog
// each scan the collection once or twice after connecting: about a second
// of CPU each at 5,000 listings on FerretDB).
func load(b *testing.B, s *stack, path func(i int) string) {
	tr := &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	testkit.Eventually(b, 10*time.Second, func() bool {
		return s.do(b, anon, http.MethodGet, "/readyz", nil).Status == http.StatusOK
	}, "not ready")
	warm := startPool(hc, s.URL)
	for i, end := 0, time.Now().Add(3*time.Second); time.Now().Before(end); i++ {
		warm.jobs <- path(i)
	}
	if _, err := warm.stop(); err != nil {
		b.Fatal(err)
	}

	p := startPool(hc, s.URL)
	cpu0 := testkit.CPUTime(b)
	start := time.Now()
	i := 0
	for b.Loop() {
		p.jobs <- path(i)
		i++
	}
	all, err := p.stop()
	elapsed := time.Since(start)
	cpu := testkit.CPUTime(b) - cpu0
	if err != nil {
		b.Fatal(err)
	}
	if len(all) == 0 {
		return
	}
	pct := func(q float64) float64 { return float64(testkit.Percentile(all, q).Microseconds()) / 1000 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	// CPU of the whole process (service, load generator, FerretDB, NATS)
	// per request: what a busy machine changes least.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/req")
}

type statusError struct {
	status int
	path   string
}

func (e *statusError) Error() string { return "GET " + e.path + ": status " + strconv.Itoa(e.status) }

// BenchmarkListStuff: GET /api/stuff, a page of 20 from 5,000 listings
// (pages 1 to 50 in turn), 50 concurrent clients.
func BenchmarkListStuff(b *testing.B) {
	s := benchStack(b)
	if p := s.list(b, ""); p.Total != benchListings || len(p.Stuff) != 20 {
		b.Fatalf("listing total %d, %d items", p.Total, len(p.Stuff))
	}
	load(b, s, func(i int) string { return "/api/stuff?page=" + strconv.Itoa(i%50+1) })
}

// BenchmarkGetStuff: GET /api/stuff/:id over all 5,000 listings in turn (the
// catalog caches every available listing when it loads), 50 concurrent
// clients.
func BenchmarkGetStuff(b *testing.B) {
	s := benchStack(b)
	ids := s.allIDs(b)
	load(b, s, func(i int) string { return "/api/stuff/" + ids[i%len(ids)] })
}

// allIDs lists the ids of the benchListings listings.
func (s *stack) allIDs(b *testing.B) []string {
	var ids []string
	for page := 1; page <= benchListings/100; page++ {
		ids = append(ids, s.list(b, "?limit=100&page="+strconv.Itoa(page)).ids()...)
	}
	if len(ids) != benchListings {
		b.Fatalf("%d ids listed", len(ids))
	}
	return ids
}

// benchSeller is the user id of bench seller n.
func benchSeller(n int) string { return fmt.Sprintf("%024x", n+1) }
