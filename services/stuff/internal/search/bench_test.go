package search_test

import (
	"runtime"
	"testing"

	"github.com/stuffmart/stuffmart/services/stuff/internal/search"
	"github.com/stuffmart/stuffmart/services/stuff/internal/search/sample"
)

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkIndexMemory reports the heap the index takes for 10,000 sample
// listings (their text itself, which the catalog holds anyway, excluded),
// and the size of the vocabulary.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 10_000
	type text struct{ title, desc string }
	texts := make([]text, n)
	for i := range texts {
		texts[i].title, texts[i].desc, _ = sample.Listing(i)
	}
	for b.Loop() {
		before := heap()
		ix := search.New()
		for _, t := range texts {
			ix.Add(search.Analyze(t.title, t.desc))
		}
		ix.Flush()
		after := heap()
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/10k-listings")
		runtime.KeepAlive(ix)
	}
}

// BenchmarkMatch is the index's share of a search at 5,000 listings: the
// sample queries in turn, matched and ranked (no HTTP, no JSON).
func BenchmarkMatch(b *testing.B) {
	ix := search.New()
	for i := range 5000 {
		t, d, _ := sample.Listing(i)
		ix.Add(search.Analyze(t, d))
	}
	ix.Flush()
	queries := make([][]string, len(sample.Queries))
	for i, q := range sample.Queries {
		queries[i], _ = search.Words(q, 12)
	}
	i := 0
	for b.Loop() {
		m := ix.Match(queries[i%len(queries)])
		m.Release()
		i++
	}
}
