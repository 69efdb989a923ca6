package search_test

import (
	"runtime"
	"testing"

	"github.com/stuffmart/stuffmart/services/stuff/internal/search"
	"github.com/stuffmart/stuffmart/services/stuff/internal/search/sample"
	"github.com/stuffmart/stuffmart/shared/testkit"
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

// sampleIndex is an index of n sample listings, and their texts by slot.
func sampleIndex(n int) (*search.Index, map[uint32][2]string) {
	ix := search.New()
	texts := make(map[uint32][2]string, n)
	for i := range n {
		t, d, _ := sample.Listing(i)
		texts[ix.Add(search.Analyze(t, d))] = [2]string{t, d}
	}
	ix.Flush()
	return ix, texts
}

// BenchmarkMatch is the index's share of a search at 5,000 listings:
// matched and ranked (no highlights, no HTTP, no JSON); sample: the sample
// queries in turn.
func BenchmarkMatch(b *testing.B) {
	ix, _ := sampleIndex(5000)
	run := func(b *testing.B, qs []string) {
		words := make([][]string, len(qs))
		for i, q := range qs {
			words[i], _ = search.Words(q, 12)
		}
		b.ReportAllocs()
		defer testkit.ReportCPUPerOp(b)()
		i := 0
		for b.Loop() {
			m := ix.Match(words[i%len(words)])
			m.Release()
			i++
		}
	}
	for _, k := range sample.Kinds {
		b.Run(k.Name, func(b *testing.B) { run(b, []string{k.Q}) })
	}
	b.Run("sample", func(b *testing.B) { run(b, sample.Queries) })
}

// BenchmarkHighlight is the highlights of a page: the title and a fragment
// of the description of 20 hits, each kind of query.
func BenchmarkHighlight(b *testing.B) {
	ix, texts := sampleIndex(5000)
	for _, k := range sample.Kinds {
		b.Run(k.Name, func(b *testing.B) {
			words, _ := search.Words(k.Q, 12)
			m := ix.Match(words)
			defer m.Release()
			hits := m.Hits[:min(20, len(m.Hits))]
			b.ReportAllocs()
			defer testkit.ReportCPUPerOp(b)()
			for b.Loop() {
				for _, h := range hits {
					t := texts[h.Slot]
					m.Highlight(t[0])
					m.Fragment(t[1], h.First, 160)
				}
			}
		})
	}
}
