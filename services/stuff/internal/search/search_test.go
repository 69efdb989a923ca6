package search

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stuffmart/stuffmart/services/stuff/internal/search/sample"
)

func TestFold(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"algebra": "algebra", "Algebra": "algebra", "ÉCOLE": "ecole", "Straße": "strasse", "Ærø": "aero",
		"naïve": "naive", "Łódź": "lodz", "ПРИВЕТ": "привет", "Ångström": "angstrom",
		"e\u0301te\u0301":       "ete", // combining accents
		strings.Repeat("x", 50): strings.Repeat("x", MaxTermBytes),
		strings.Repeat("é", 30): strings.Repeat("e", 30),
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWords(t *testing.T) {
	t.Parallel()
	got, more := Words(`  Linear ALGEBRA, algebra; "notes"!! {"$ne":1} `, 5)
	if want := []string{"linear", "algebra", "notes", "ne", "1"}; !slices.Equal(got, want) || more {
		t.Fatalf("Words = %q more=%v, want %q", got, more, want)
	}
	if _, more := Words("a b c d e", 4); !more {
		t.Fatal("fifth word not reported")
	}
	if got, _ := Words("!!! ... ---", 4); len(got) != 0 {
		t.Fatalf("punctuation gave words %q", got)
	}
}

// osa is the optimal string alignment distance, computed plainly.
func osa(a, b []rune) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range b {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// TestFuzzyFindsExactlyTheCloseTerms compares the trie walk with a plain
// distance over every term with the same first character, on random words
// of a small alphabet (so that many are close).
func TestFuzzyFindsExactlyTheCloseTerms(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	alpha := []rune("abcdeé")
	word := func() string {
		r := make([]rune, 1+rng.IntN(9))
		for i := range r {
			r[i] = alpha[rng.IntN(len(alpha))]
		}
		return string(r)
	}
	ix := New()
	var vocab []string
	for range 400 {
		w := word()
		vocab = append(vocab, Fold(w))
		ix.Add(Analyze(w, ""))
	}
	ix.Flush()
	slices.Sort(vocab)
	vocab = slices.Compact(vocab)
	for range 300 {
		q := []rune(Fold(word()))
		for maxd := 0; maxd <= 2; maxd++ {
			var got, want []string
			ix.fuzzy(q, maxd, nil, func(tm *term, d int) {
				if d != osa(q, []rune(tm.text)) {
					t.Fatalf("%q ~ %q: distance %d, want %d", string(q), tm.text, d, osa(q, []rune(tm.text)))
				}
				got = append(got, tm.text)
			})
			for _, v := range vocab {
				if []rune(v)[0] == q[0] && osa(q, []rune(v)) <= maxd {
					want = append(want, v)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("fuzzy(%q, %d) = %q, want %q", string(q), maxd, got, want)
			}
		}
	}
}

type corpus struct {
	ix    *Index
	slots map[uint32]string // slot → name
	texts map[string][2]string
}

func newCorpus(docs map[string][2]string) *corpus {
	c := &corpus{ix: New(), slots: map[uint32]string{}, texts: docs}
	for _, name := range slices.Sorted(mapsKeys(docs)) {
		c.slots[c.ix.Add(Analyze(docs[name][0], docs[name][1]))] = name
	}
	c.ix.Flush()
	return c
}

func mapsKeys(m map[string][2]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ranked returns the names matching q, best first (ties by name).
func (c *corpus) ranked(q string) []string {
	words, _ := Words(q, 12)
	m := c.ix.Match(words)
	defer m.Release()
	hits := slices.Clone(m.Hits)
	slices.SortFunc(hits, func(a, b Hit) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(c.slots[a.Slot], c.slots[b.Slot])
	})
	var out []string
	for _, h := range hits {
		out = append(out, c.slots[h.Slot])
	}
	return out
}

func TestMatch(t *testing.T) {
	t.Parallel()
	c := newCorpus(map[string][2]string{
		"linalg":    {"Linear algebra notes", "Vectors, matrices and eigenvalues, with worked examples."},
		"calc":      {"Calculus notes", "Limits, derivatives; a chapter on linear approximation."},
		"algo":      {"Algorithms textbook", "Sorting and graphs."},
		"cafe":      {"Café chairs", "Two chairs from the café downstairs."},
		"strasse":   {"Straßenkarte", "A street map."},
		"physics":   {"Physics lab report", "Experimental physics, mechanics."},
		"lin2":      {"Notes", "Some linear algebra in the appendix."},
		"eigen":     {"Eigenvalue problems", "Numerical linear algebra."},
		"dormitory": {"Dormitory lamp", "Bright desk lamp."},
	})
	tests := []struct {
		q    string
		want []string // exactly these, in this order
	}{
		{"linear algebra", []string{"linalg", "eigen", "lin2"}}, // title match first; every word required
		{"LINEAR Algebra", []string{"linalg", "eigen", "lin2"}},
		{"algebra", []string{"linalg", "eigen", "lin2"}},
		{"alg", []string{"algo", "linalg", "eigen", "lin2"}}, // prefix of algebra and algorithms
		{"cafe", []string{"cafe"}},                           // accent folded in the text
		{"CAFÉ", []string{"cafe"}},                           // and in the query
		{"strassenkarte", []string{"strasse"}},               // ß folded
		{"algebar", []string{"linalg", "eigen", "lin2"}},     // one swap
		{"dormatory", []string{"dormitory"}},                 // one substitution
		{"phisycs", nil},                                     // two edits in 7 letters: one too many
		{"phisics", []string{"physics"}},                     // one is forgiven
		{"lamp dormitery", []string{"dormitory"}},
		{"nothing here", nil},
		{"linear zebra", []string{"calc", "eigen", "lin2", "linalg"}}, // no listing has both: those with the most words
	}
	for _, tc := range tests {
		got := c.ranked(tc.q)
		if tc.q == "linear zebra" { // equal coverage; only the set is meaningful
			slices.Sort(got)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.q, got, tc.want)
		}
	}
}

func TestRemoveAndReuse(t *testing.T) {
	t.Parallel()
	ix := New()
	a := ix.Add(Analyze("Blue bicycle", "fast"))
	b := ix.Add(Analyze("Red bicycle", "slow"))
	ix.Flush()
	count := func(q string) int {
		w, _ := Words(q, 12)
		m := ix.Match(w)
		defer m.Release()
		return len(m.Hits)
	}
	if count("bicycle") != 2 || count("blue") != 1 {
		t.Fatal("both not indexed")
	}
	ix.Remove(a)
	ix.Remove(a) // twice: nothing more
	if count("bicycle") != 1 || count("blue") != 0 || count("fast") != 0 || ix.Len() != 1 {
		t.Fatalf("after remove: bicycle %d blue %d len %d", count("bicycle"), count("blue"), ix.Len())
	}
	c := ix.Add(Analyze("Blue kettle", ""))
	ix.Flush()
	if c != a || count("blue") != 1 || count("bicycle") != 1 {
		t.Fatalf("slot %d not reused (was %d) or counts wrong", c, a)
	}
	ix.Remove(b)
	ix.Remove(c)
	if ix.Len() != 0 || count("blue") != 0 {
		t.Fatal("not empty")
	}
}

// TestVocabularyCompaction: terms no listing has any more are dropped once
// they are many, and matching stays right across it.
func TestVocabularyCompaction(t *testing.T) {
	t.Parallel()
	ix := New()
	var slots []uint32
	for i := range 3000 {
		slots = append(slots, ix.Add(Analyze(fmt.Sprintf("item%d common", i), "")))
	}
	ix.Flush()
	for _, s := range slots[:2900] {
		ix.Remove(s)
	}
	ix.Flush()
	if len(ix.vocab) > 200 || len(ix.terms) > 200 {
		t.Fatalf("vocabulary %d, terms %d after removing 2,900 of 3,000", len(ix.vocab), len(ix.terms))
	}
	w, _ := Words("common item2950", 12)
	m := ix.Match(w)
	defer m.Release()
	if len(m.Hits) != 1 || m.Hits[0].Slot != slots[2950] {
		t.Fatalf("hits %+v", m.Hits)
	}
}

func TestHighlight(t *testing.T) {
	t.Parallel()
	desc := strings.Repeat("filler words here ", 30) + "the <b>Algèbre</b> chapter & more " + strings.Repeat("tail text ", 30)
	ix := New()
	slot := ix.Add(Analyze("Linear <algèbre> notes", desc))
	ix.Flush()
	w, _ := Words("algebre line", 12)
	m := ix.Match(w)
	defer m.Release()
	if len(m.Hits) != 1 || m.Hits[0].Slot != slot {
		t.Fatalf("hits %+v", m.Hits)
	}
	title := m.Highlight("Linear <algèbre> notes")
	want := []Segment{{Text: "Linear", Match: true}, {Text: " <"}, {Text: "algèbre", Match: true}, {Text: "> notes"}}
	if !slices.Equal(title, want) {
		t.Fatalf("title %+v, want %+v", title, want)
	}
	frag := m.Fragment(desc, m.Hits[0].First, 120)
	var joined strings.Builder
	var marked []string
	for _, s := range frag {
		joined.WriteString(s.Text)
		if s.Match {
			marked = append(marked, s.Text)
		}
	}
	if frag[0].Text != Ellipsis || frag[len(frag)-1].Text != Ellipsis {
		t.Fatalf("fragment not cut on both sides: %+v", frag)
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(joined.String(), Ellipsis), Ellipsis)
	if !strings.Contains(desc, inner) || len(inner) > 120 || !slices.Equal(marked, []string{"Algèbre"}) {
		t.Fatalf("fragment %q (marked %q) is not a piece of the description around the match", joined.String(), marked)
	}
	// No match in the description: its start.
	if f := m.Fragment("short one", NoPlace, 120); len(f) != 1 || f[0].Text != "short one" || f[0].Match {
		t.Fatalf("fragment of a short text %+v", f)
	}
}

// TestMatchAfterChangesAsFresh: an index that lived through adds, removes,
// reused slots and vocabulary compactions, with the candidates of query
// words kept between them, matches exactly as an index built afresh from
// the same documents: the same hits, scores and first places.
func TestMatchAfterChangesAsFresh(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	word := func() string {
		alpha := "abcdeé"
		if rng.IntN(3) == 0 {
			alpha = "abcdefghijklmnopqrstuvwxyz"
		}
		r := make([]rune, 2+rng.IntN(8))
		for i := range r {
			r[i] = []rune(alpha)[rng.IntN(len([]rune(alpha)))]
		}
		return string(r)
	}
	text := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = word()
		}
		return strings.Join(ws, " ")
	}
	type doc struct{ title, desc string }
	docs := map[string]doc{}
	ix := New()
	slots := map[string]uint32{}
	names := map[uint32]string{}
	hits := func(ix *Index, names map[uint32]string, q string) map[string]Hit {
		words, _ := Words(q, 12)
		m := ix.Match(words)
		defer m.Release()
		out := map[string]Hit{}
		for _, h := range m.Hits {
			name := names[h.Slot]
			h.Slot = 0
			out[name] = h
		}
		return out
	}
	compacted := false
	next := 0
	for round := range 60 {
		for range rng.IntN(80) {
			name := fmt.Sprint("d", next)
			next++
			docs[name] = doc{text(1 + rng.IntN(3)), text(rng.IntN(8))}
			slots[name] = ix.Add(Analyze(docs[name].title, docs[name].desc))
			names[slots[name]] = name
		}
		for _, name := range slices.Sorted(maps.Keys(docs)) {
			if rng.IntN(3) == 0 {
				ix.Remove(slots[name])
				delete(names, slots[name])
				delete(slots, name)
				delete(docs, name)
			}
		}
		before := len(ix.vocab)
		ix.Flush()
		compacted = compacted || len(ix.vocab) < before
		fresh, freshNames := New(), map[uint32]string{}
		for _, name := range slices.Sorted(maps.Keys(docs)) {
			freshNames[fresh.Add(Analyze(docs[name].title, docs[name].desc))] = name
		}
		fresh.Flush()
		for range 40 {
			q := word()
			switch rng.IntN(4) {
			case 0:
				q = q[:1+rng.IntN(len(q))] // maybe a prefix, maybe cut in a character: Words cleans it
			case 1:
				q += " " + word()
			}
			got, want := hits(ix, names, q), hits(fresh, freshNames, q)
			if !maps.Equal(got, want) {
				t.Fatalf("round %d, %q: %d hits %v, afresh %d %v", round, q, len(got), got, len(want), want)
			}
		}
	}
	if !compacted {
		t.Fatal("the vocabulary was never compacted: the test does not cover it")
	}
}

// TestConcurrentMatch: searches running together on a fresh index (its
// length normalizations and word candidates not computed yet) find what a
// search alone finds. Run with -race.
func TestConcurrentMatch(t *testing.T) {
	t.Parallel()
	build := func() *Index {
		ix := New()
		for i := range 500 {
			title, desc, _ := sample.Listing(i)
			ix.Add(Analyze(title, desc))
		}
		ix.Flush()
		return ix
	}
	hits := func(ix *Index, q string) []Hit {
		words, _ := Words(q, 12)
		m := ix.Match(words)
		defer m.Release()
		h := slices.Clone(m.Hits)
		slices.SortFunc(h, func(a, b Hit) int { return cmp.Compare(a.Slot, b.Slot) })
		return h
	}
	alone := build()
	want := map[string][]Hit{}
	for _, q := range sample.Queries {
		want[q] = hits(alone, q)
	}
	together := build()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			<-start
			for i := range sample.Queries {
				q := sample.Queries[(i+g)%len(sample.Queries)]
				if got := hits(together, q); !slices.Equal(got, want[q]) {
					t.Errorf("%q: %d hits, alone %d", q, len(got), len(want[q]))
				}
			}
		})
	}
	close(start)
	wg.Wait()
}

// A query of many short words, each the prefix of many terms, scans a
// bounded number of posting lists, however large the vocabulary.
func TestQueryExpansionsBounded(t *testing.T) {
	ix := New()
	words := []string{"ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr", "st", "uv", "wx"}
	// Each two-letter word starts 60 terms.
	for _, w := range words {
		for c := range 60 {
			ix.Add(Analyze(w+string(rune('a'+c/26))+string(rune('a'+c%26))+"x", ""))
		}
	}
	ix.Flush()
	m := ix.Match(words)
	defer m.Release()
	if n, most := len(m.s.exps), len(words)+maxQueryPrefix+maxQueryFuzzy; n > most {
		t.Fatalf("%d terms scanned for %d words, want at most %d", n, len(words), most)
	}
	// One word keeps a word's full share.
	one := ix.Match(words[:1])
	defer one.Release()
	if n := len(one.s.exps); n != maxPrefix {
		t.Fatalf("%d terms for one prefix of 60, want %d", n, maxPrefix)
	}
}
