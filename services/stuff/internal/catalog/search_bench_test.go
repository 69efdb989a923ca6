package catalog_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/internal/catalog"
	httpapi "github.com/stuffmart/stuffmart/services/stuff/internal/http"
	"github.com/stuffmart/stuffmart/services/stuff/internal/search"
	"github.com/stuffmart/stuffmart/services/stuff/internal/search/sample"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// memSource serves sample listings from memory, for benchmarks that
// measure the catalog alone.
type memSource struct{ ss []stuff.Stuff }

func newMemSource(n int) *memSource {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &memSource{}
	for i := n - 1; i >= 0; i-- { // newest first
		t, d, p := sample.Listing(i)
		s := stuff.New(fmt.Sprintf("%024x", i+1), fmt.Sprintf("%024x", i%97+1), stuff.Input{Title: t, Description: &d, Price: p, Delivery: ptr("d")}, base.Add(time.Duration(i)*time.Second))
		m.ss = append(m.ss, s)
	}
	return m
}

func (m *memSource) Available(_ context.Context, limit int, _ []string) ([]stuff.Stuff, error) {
	return m.ss[:min(limit, len(m.ss))], nil
}
func (m *memSource) CountAvailable(context.Context, []string) (int, error) { return len(m.ss), nil }
func (m *memSource) AvailableAfter(context.Context, *stuff.Key, int, int, []string) ([]stuff.Stuff, int, error) {
	return nil, 0, nil
}
func (m *memSource) Get(context.Context, string) (stuff.Stuff, error) {
	return stuff.Stuff{}, errs.ErrNotFound
}
func (m *memSource) Bans(context.Context) ([]stuff.Ban, error) { return nil, nil }

func loadedCatalog(b *testing.B, n int) *catalog.Catalog {
	b.Helper()
	cat := catalog.New(newMemSource(n), enc, testkit.Logger(b), catalog.Options{Max: n, CacheMax: n})
	if err := cat.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	return cat
}

// BenchmarkSearch is the catalog's share of GET /api/stuff?q=… at 5,000
// sample listings: a first page of 20 ranked by relevance with highlights
// (no HTTP, no JSON), for each kind of search and for the sample queries in
// turn.
func BenchmarkSearch(b *testing.B) {
	cat := loadedCatalog(b, 5000)
	run := func(b *testing.B, texts []string) {
		qs := make([]catalog.Query, len(texts))
		for i, q := range texts {
			w, _ := search.Words(q, 12)
			qs[i] = catalog.Query{Text: true, Words: w, Order: catalog.Relevance, MaxPrice: -1, Limit: 20}
		}
		ctx := context.Background()
		b.ReportAllocs()
		defer testkit.ReportCPUPerOp(b)()
		i := 0
		for b.Loop() {
			if _, _, err := cat.Search(ctx, qs[i%len(qs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	for _, k := range sample.Kinds {
		b.Run(k.Name, func(b *testing.B) { run(b, []string{k.Q}) })
	}
	b.Run("sample", func(b *testing.B) { run(b, sample.Queries) })
}

// BenchmarkCatalogMemory reports the heap of a catalog loaded with 10,000
// sample listings: the list with each listing's JSON, the cache of single
// listings, the search index and the price order (search's own
// BenchmarkIndexMemory gives the index's share).
func BenchmarkCatalogMemory(b *testing.B) {
	src := newMemSource(10_000)
	for b.Loop() {
		before := heapNow()
		cat := catalog.New(src, httpapi.Encode, testkit.Logger(b), catalog.Options{Max: 10_000, CacheMax: 10_000})
		if err := cat.Reconcile(context.Background()); err != nil {
			b.Fatal(err)
		}
		loaded := heapNow()
		b.ReportMetric(float64(loaded-before)/(1<<20), "MiB-catalog/10k")
		runtime.KeepAlive(cat)
	}
}

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
