package search

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Ranking weights: a title word counts TitleBoost times a description word;
// a match by prefix or with typos counts for less than the word itself.
const (
	TitleBoost   = 2.5
	prefixWeight = 0.6
	typo1Weight  = 0.5
	typo2Weight  = 0.3
	// maxPrefix and maxFuzzy bound the terms one query word expands to
	// (those in the most listings are kept), so a query costs about the
	// same whatever the vocabulary.
	maxPrefix = 48
	maxFuzzy  = 16
	bm25K1    = 1.2
	bm25B     = 0.75
)

// MaxTypos returns how many edits a query word of n characters forgives
// (none in a word with a digit).
func MaxTypos(n int) int {
	switch {
	case n >= 8:
		return 2
	case n >= 4:
		return 1
	}
	return 0
}

type posting struct {
	doc   uint32
	title uint16
	desc  uint16
	first uint32
}

type term struct {
	text     string
	postings []posting
}

type doc struct {
	terms    []*term // nil: a free slot
	titleLen uint16
	descLen  uint16
}

// Index is the inverted index. It is not safe for concurrent use by
// itself: its owner (the catalog) calls Add and Remove under its write lock
// and Match under its read lock; Match may run concurrently with Match.
type Index struct {
	terms map[string]*term
	vocab []string // the terms, sorted; some may have no postings left
	fresh []string // terms added since the last Flush, not in vocab yet
	dead  int      // terms in vocab without postings
	docs  []doc
	free  []uint32
	live  int
	sumT  int // total title words of live docs
	sumD  int
	pool  sync.Pool
}

// New returns an empty index.
func New() *Index {
	return &Index{terms: map[string]*term{}}
}

// Len is the number of documents.
func (ix *Index) Len() int { return ix.live }

// Add indexes a document and returns its slot. Call Flush before the next
// Match.
func (ix *Index) Add(a Analysis) uint32 {
	var slot uint32
	if n := len(ix.free); n > 0 {
		slot = ix.free[n-1]
		ix.free = ix.free[:n-1]
	} else {
		slot = uint32(len(ix.docs))
		ix.docs = append(ix.docs, doc{})
	}
	d := doc{terms: make([]*term, 0, len(a.Terms)), titleLen: clamp16(a.TitleLen), descLen: clamp16(a.DescLen)}
	for _, ts := range a.Terms {
		t := ix.terms[ts.Term]
		switch {
		case t == nil:
			t = &term{text: ts.Term}
			ix.terms[ts.Term] = t
			ix.fresh = append(ix.fresh, ts.Term)
		case len(t.postings) == 0:
			ix.dead--
		}
		t.postings = append(t.postings, posting{doc: slot, title: ts.Title, desc: ts.Desc, first: ts.First})
		d.terms = append(d.terms, t)
	}
	ix.docs[slot] = d
	ix.live++
	ix.sumT += int(d.titleLen)
	ix.sumD += int(d.descLen)
	return slot
}

// Remove takes the document in slot out of the index.
func (ix *Index) Remove(slot uint32) {
	if int(slot) >= len(ix.docs) || ix.docs[slot].terms == nil {
		return
	}
	d := ix.docs[slot]
	for _, t := range d.terms {
		for i := range t.postings {
			if t.postings[i].doc == slot {
				last := len(t.postings) - 1
				t.postings[i] = t.postings[last]
				t.postings = t.postings[:last]
				break
			}
		}
		if len(t.postings) == 0 {
			t.postings = nil
			ix.dead++
		}
	}
	ix.docs[slot] = doc{}
	ix.free = append(ix.free, slot)
	ix.live--
	ix.sumT -= int(d.titleLen)
	ix.sumD -= int(d.descLen)
}

// Flush brings the sorted vocabulary up to date with the terms added since
// the last call, and drops the terms no document has any more once they are
// a quarter of it. Call it after a batch of Adds and Removes, before Match.
func (ix *Index) Flush() {
	if ix.dead > 1024 && ix.dead > len(ix.terms)/4 {
		kept := ix.vocab[:0]
		for _, w := range ix.vocab {
			if len(ix.terms[w].postings) > 0 {
				kept = append(kept, w)
			} else {
				delete(ix.terms, w)
			}
		}
		clear(ix.vocab[len(kept):])
		ix.vocab = kept
		ix.dead = 0
	}
	if len(ix.fresh) == 0 {
		return
	}
	if len(ix.fresh) <= 8 {
		for _, w := range ix.fresh {
			i, _ := slices.BinarySearch(ix.vocab, w)
			ix.vocab = slices.Insert(ix.vocab, i, w)
		}
	} else {
		slices.Sort(ix.fresh)
		merged := make([]string, 0, len(ix.vocab)+len(ix.fresh))
		i, j := 0, 0
		for i < len(ix.vocab) || j < len(ix.fresh) {
			if j == len(ix.fresh) || (i < len(ix.vocab) && ix.vocab[i] < ix.fresh[j]) {
				merged = append(merged, ix.vocab[i])
				i++
			} else {
				merged = append(merged, ix.fresh[j])
				j++
			}
		}
		ix.vocab = merged
	}
	clear(ix.fresh)
	ix.fresh = ix.fresh[:0]
}

func clamp16(n int) uint16 { return uint16(min(n, math.MaxUint16)) }

// Hit is one matching document.
type Hit struct {
	Slot  uint32
	Score float32
	// First is the byte offset in the description of the first word that
	// matched (NoPlace when only the title matched).
	First uint32
}

// Matches is the answer to a query: the documents matching the most query
// words, and the terms each word matched (for highlighting). Release it
// when done.
type Matches struct {
	Hits  []Hit
	terms map[string]struct{}
	// firsts, shortest and longest sieve the words of a text before the
	// map is asked: most words of a fragment are not matched.
	firsts            [256]bool
	shortest, longest int
	s                 *scratch
	ix                *Index
}

// Matched reports whether term (folded) matched a query word.
func (m *Matches) Matched(term []byte) bool {
	if len(term) == 0 || len(term) < m.shortest || len(term) > m.longest || !m.firsts[term[0]] {
		return false
	}
	_, ok := m.terms[string(term)]
	return ok
}

// matched records that term matched a query word.
func (m *Matches) matched(term string) {
	if len(m.terms) == 0 || len(term) < m.shortest {
		m.shortest = len(term)
	}
	m.longest = max(m.longest, len(term))
	m.firsts[term[0]] = true
	m.terms[term] = struct{}{}
}

// Highlight splits s into segments, marking the words that matched.
func (m *Matches) Highlight(s string) []Segment { return highlight(s, m.Matched) }

// Fragment returns about size bytes of s around byte offset at (from the
// start when at is NoPlace), as segments with the matched words marked,
// with an Ellipsis segment where it cuts s.
func (m *Matches) Fragment(s string, at uint32, size int) []Segment {
	pos := -1
	if at != NoPlace {
		pos = int(at)
	}
	w, before, after := window(s, pos, size)
	out := make([]Segment, 0, 8)
	if before {
		out = append(out, Segment{Text: Ellipsis})
	}
	out = append(out, highlight(w, m.Matched)...)
	if after {
		out = append(out, Segment{Text: Ellipsis})
	}
	return out
}

// Release returns the match's scratch memory for reuse; Hits is invalid
// after it.
func (m *Matches) Release() {
	if m.s != nil {
		m.s.hits = m.Hits[:0]
		m.ix.pool.Put(m.s)
		m.s = nil
		m.Hits = nil
	}
}

type scratch struct {
	gen     uint32
	wordGen []uint32 // == gen: best holds this word's score for the doc
	best    []float32
	qGen    []uint32 // == gen: total, cover, first hold this query's values
	total   []float32
	cover   []uint8
	first   []uint32
	touched []uint32 // docs matched by the current word
	docs    []uint32 // docs matched by any word
	hits    []Hit
	table   []int // the typo walk's table
}

func (s *scratch) fit(n int) {
	if len(s.wordGen) >= n {
		return
	}
	s.wordGen = make([]uint32, n)
	s.best = make([]float32, n)
	s.qGen = make([]uint32, n)
	s.total = make([]float32, n)
	s.cover = make([]uint8, n)
	s.first = make([]uint32, n)
	s.gen = 0
}

// expansion is a term a query word matched, and how much it counts.
type expansion struct {
	t      *term
	weight float32
}

// Match finds the documents matching words (folded, at most 255 of them). Only those
// matching the most words are returned, in no particular order.
func (ix *Index) Match(words []string) *Matches {
	s, _ := ix.pool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	s.fit(len(ix.docs))
	m := &Matches{terms: map[string]struct{}{}, s: s, ix: ix}
	if s.gen > math.MaxUint32-512 { // about to wrap: forget every stamp
		clear(s.wordGen)
		clear(s.qGen)
		s.gen = 0
	}
	s.gen++
	qgen := s.gen
	s.docs = s.docs[:0]
	n := float64(max(ix.live, 1))
	avgT := float32(max(float64(ix.sumT)/n, 1))
	avgD := float32(max(float64(ix.sumD)/n, 1))
	bestCover := uint8(0)
	for _, w := range words {
		exps := ix.expand(s, w)
		if len(exps) == 0 {
			continue
		}
		s.gen++
		wgen := s.gen
		s.touched = s.touched[:0]
		for _, e := range exps {
			m.matched(e.t.text)
			df := float64(len(e.t.postings))
			idf := float32(math.Log(1 + (n-df+0.5)/(df+0.5)))
			for _, p := range e.t.postings {
				d := &ix.docs[p.doc]
				sc := e.weight * idf * (TitleBoost*bm25(p.title, d.titleLen, avgT) + bm25(p.desc, d.descLen, avgD))
				if s.wordGen[p.doc] != wgen {
					s.wordGen[p.doc] = wgen
					s.best[p.doc] = sc
					s.touched = append(s.touched, p.doc)
				} else if sc > s.best[p.doc] {
					s.best[p.doc] = sc
				}
				if s.qGen[p.doc] != qgen {
					s.qGen[p.doc] = qgen
					s.total[p.doc], s.cover[p.doc], s.first[p.doc] = 0, 0, NoPlace
					s.docs = append(s.docs, p.doc)
				}
				if p.first < s.first[p.doc] {
					s.first[p.doc] = p.first
				}
			}
		}
		for _, d := range s.touched {
			s.total[d] += s.best[d]
			s.cover[d]++
			bestCover = max(bestCover, s.cover[d])
		}
	}
	hits := s.hits[:0]
	for _, d := range s.docs {
		if s.cover[d] == bestCover {
			hits = append(hits, Hit{Slot: d, Score: s.total[d], First: s.first[d]})
		}
	}
	m.Hits = hits
	return m
}

func bm25(tf, length uint16, avg float32) float32 {
	if tf == 0 {
		return 0
	}
	f := float32(tf)
	return f * (bm25K1 + 1) / (f + bm25K1*(1-bm25B+bm25B*float32(length)/avg))
}

// expand returns the live terms word matches: itself, the terms it is a
// prefix of, and those within MaxTypos edits, each once with its best
// weight.
func (ix *Index) expand(s *scratch, word string) []expansion {
	var out []expansion
	if t := ix.terms[word]; t != nil && len(t.postings) > 0 {
		out = append(out, expansion{t: t, weight: 1})
	}
	runes := []rune(word)
	if len(runes) >= 2 {
		var pre []expansion
		lo := sort.SearchStrings(ix.vocab, word)
		for i := lo; i < len(ix.vocab) && strings.HasPrefix(ix.vocab[i], word); i++ {
			t := ix.terms[ix.vocab[i]]
			if t.text == word || len(t.postings) == 0 {
				continue
			}
			// The closer the prefix is to the whole term, the more it counts.
			cover := float32(len(runes)) / float32(utf8.RuneCountInString(t.text))
			pre = append(pre, expansion{t: t, weight: prefixWeight * (0.5 + 0.5*cover)})
		}
		out = append(out, top(pre, maxPrefix)...)
	}
	// Numbers are not guessed at: course 2030 is not course 2040.
	if k := MaxTypos(len(runes)); k > 0 && !strings.ContainsAny(word, "0123456789") {
		var fz []expansion
		s.table = ix.fuzzy(runes, k, s.table, func(t *term, d int) {
			if d == 0 || strings.HasPrefix(t.text, word) {
				return // the word itself or a prefix match: counted above
			}
			w := float32(typo1Weight)
			if d == 2 {
				w = typo2Weight
			}
			fz = append(fz, expansion{t: t, weight: w})
		})
		out = append(out, top(fz, maxFuzzy)...)
	}
	return out
}

// top keeps the n best expansions: the heaviest, then the most common.
func top(es []expansion, n int) []expansion {
	if len(es) <= n {
		return es
	}
	slices.SortFunc(es, func(a, b expansion) int {
		if c := cmp.Compare(b.weight, a.weight); c != 0 {
			return c
		}
		return cmp.Compare(len(b.t.postings), len(a.t.postings))
	})
	return es[:n]
}

// skip returns the index of the first term after i that does not start with
// prefix (vocab[i] does): galloping, then a binary search, as most prefixes
// are shared by a few terms only.
func skip(vocab []string, i int, prefix string) int {
	step := 1
	for i+step < len(vocab) && strings.HasPrefix(vocab[i+step], prefix) {
		i += step
		step *= 2
	}
	end := min(i+step, len(vocab))
	return i + sort.Search(end-i, func(x int) bool { return !strings.HasPrefix(vocab[i+x], prefix) })
}

// fuzzy calls fn for every live term that starts with w's first character
// and is within maxd edits of w (optimal string alignment distance:
// insertions, deletions, substitutions and swaps of two adjacent
// characters). It walks the sorted vocabulary as a trie: terms
// sharing a prefix with the previous one reuse its rows of the edit-distance
// table, and once every cell of a row exceeds maxd, every term with that
// prefix is skipped with a binary search.
func (ix *Index) fuzzy(w []rune, maxd int, buf []int, fn func(t *term, d int)) []int {
	n := len(w)
	if n == 0 {
		return buf
	}
	width := n + 1
	table := slices.Grow(buf[:0], (MaxTermBytes+1)*width)[:(MaxTermBytes+1)*width] // row k: after k runes of the term
	row := func(k int) []int { return table[k*width : (k+1)*width] }
	for j := range width {
		table[j] = j
	}
	var runes [MaxTermBytes]rune   // the term's runes so far
	var offs [MaxTermBytes + 1]int // offs[k]: byte length of the term's first k runes
	k := 0                         // rows (and runes) valid so far
	prev := ""
	// The first character is taken as typed: typos there are rare, and
	// walking only the terms that start with it makes the walk some twenty
	// times shorter.
	first := string(w[:1])
	lo := sort.SearchStrings(ix.vocab, first)
	hi := lo + sort.Search(len(ix.vocab)-lo, func(x int) bool { return !strings.HasPrefix(ix.vocab[lo+x], first) })
	vocab := ix.vocab[lo:hi]
	for i := 0; i < len(vocab); {
		t := vocab[i]
		// Keep the rows of the prefix t shares with the previous term.
		common := 0
		for common < len(prev) && common < len(t) && prev[common] == t[common] {
			common++
		}
		for offs[k] > common {
			k--
		}
		pruned := false
		for pos := offs[k]; pos < len(t) && k < MaxTermBytes; {
			r, size := utf8.DecodeRuneInString(t[pos:])
			pos += size
			last, cur := row(k), row(k+1)
			cur[0] = k + 1
			lowest := cur[0]
			for j := 1; j <= n; j++ {
				cost := 1
				if w[j-1] == r {
					cost = 0
				}
				v := min(last[j]+1, cur[j-1]+1, last[j-1]+cost)
				if k >= 1 && j >= 2 && r == w[j-2] && runes[k-1] == w[j-1] {
					v = min(v, row(k - 1)[j-2]+1)
				}
				cur[j] = v
				lowest = min(lowest, v)
			}
			runes[k] = r
			k++
			offs[k] = pos
			if lowest > maxd {
				pruned = true
				break
			}
		}
		prev = t
		if pruned {
			i = skip(vocab, i, t[:offs[k]])
			continue
		}
		if d := row(k)[n]; d <= maxd {
			if tt := ix.terms[t]; len(tt.postings) > 0 {
				fn(tt, d)
			}
		}
		i++
	}
	return table
}
