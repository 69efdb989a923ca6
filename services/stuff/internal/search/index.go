package search

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// maxQueryPrefix and maxQueryFuzzy bound them for a whole query: a
	// query of many words shares them (up to 4 words get each word's
	// full share), so no query scans more than about 270 posting lists.
	maxQueryPrefix = 4 * maxPrefix
	maxQueryFuzzy  = 4 * maxFuzzy
	bm25K1         = 1.2
	bm25B          = 0.75
	// maxCachedWords and maxCachedTerms bound the query words whose
	// candidate terms are kept, and those terms (16 bytes each): about 1 MiB.
	maxCachedWords = 4096
	maxCachedTerms = 1 << 16
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
	gen   uint64 // Adds and Removes so far
	norms norms
	cands candCache
	pool  sync.Pool
}

// norms are the documents' length normalizations in BM25 (the part of a
// score that depends on the average lengths, so on every document): the
// first Match after a change computes them once for every Match until the
// next change.
type norms struct {
	mu    sync.Mutex
	valid atomic.Uint64 // the index's gen+1 when they were computed; 0: never
	title []float32     // by slot
	desc  []float32
}

// candCache keeps, for the query words asked lately, the terms of the
// vocabulary each one may expand to (see candidates), so that the
// vocabulary is not walked again for every search. A term new to the
// vocabulary can only be a candidate of words with its first character:
// Flush forgets those words.
type candCache struct {
	mu      sync.Mutex
	byFirst map[rune]map[string]*candidates
	words   int
	terms   int
}

// New returns an empty index.
func New() *Index {
	return &Index{terms: map[string]*term{}, cands: candCache{byFirst: map[rune]map[string]*candidates{}}}
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
	ix.gen++
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
	ix.gen++
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
		ix.cands.forgetAll()
	}
	if len(ix.fresh) == 0 {
		return
	}
	for _, w := range ix.fresh {
		ix.cands.forget(w)
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
	Hits []Hit
	// firsts (a bit per byte), shortest and longest sieve the words of a
	// text before the set of matched terms is asked: most words of a
	// fragment are not matched.
	firsts            [4]uint64
	shortest, longest int
	s                 *scratch
	ix                *Index
}

// Matched reports whether term (folded) matched a query word.
func (m *Matches) Matched(term []byte) bool {
	if len(term) == 0 || !m.sieve(len(term), term[0]) {
		return false
	}
	if len(m.s.list) <= 8 { // a few terms: compared rather than hashed
		for _, t := range m.s.list {
			if t == string(term) {
				return true
			}
		}
		return false
	}
	_, ok := m.s.terms[string(term)]
	return ok
}

// sieve reports whether a matched term may have n bytes and first byte c.
func (m *Matches) sieve(n int, c byte) bool {
	return n >= m.shortest && n <= m.longest && m.firsts[c>>6]&(1<<(c&63)) != 0
}

// matched records that term matched a query word.
func (m *Matches) matched(term string) {
	if len(m.s.terms) == 0 || len(term) < m.shortest {
		m.shortest = len(term)
	}
	m.longest = max(m.longest, len(term))
	m.firsts[term[0]>>6] |= 1 << (term[0] & 63)
	if _, ok := m.s.terms[term]; !ok {
		m.s.terms[term] = struct{}{}
		m.s.list = append(m.s.list, term)
	}
}

// Highlight splits s into segments, marking the words that matched.
func (m *Matches) Highlight(s string) []Segment { return m.AppendHighlight(make([]Segment, 0, 8), s) }

// AppendHighlight appends the segments of Highlight(s) to dst: a page of
// results can keep all of its highlights in one slice.
func (m *Matches) AppendHighlight(dst []Segment, s string) []Segment {
	var buf [2 * MaxTermBytes]byte
	last := 0
	for i := 0; ; {
		start, end, ascii := nextWord(s, i)
		if start < 0 {
			break
		}
		i = end
		// An ASCII word is sieved before it is folded: its folded form is
		// its lower case.
		if c := s[start] | 0x20; ascii && !m.sieve(min(end-start, MaxTermBytes), c) {
			continue
		}
		if !m.Matched(foldAppend(buf[:0], s[start:end])) {
			continue
		}
		if start > last {
			dst = append(dst, Segment{Text: s[last:start]})
		}
		dst = append(dst, Segment{Text: s[start:end], Match: true})
		last = end
	}
	if last < len(s) {
		dst = append(dst, Segment{Text: s[last:]})
	}
	return dst
}

// Fragment returns about size bytes of s around byte offset at (from the
// start when at is NoPlace), as segments with the matched words marked,
// with an Ellipsis segment where it cuts s.
func (m *Matches) Fragment(s string, at uint32, size int) []Segment {
	return m.AppendFragment(make([]Segment, 0, 8), s, at, size)
}

// AppendFragment appends the segments of Fragment(s, at, size) to dst.
func (m *Matches) AppendFragment(dst []Segment, s string, at uint32, size int) []Segment {
	pos := -1
	if at != NoPlace {
		pos = int(at)
	}
	w, before, after := window(s, pos, size)
	if before {
		dst = append(dst, Segment{Text: Ellipsis})
	}
	dst = m.AppendHighlight(dst, w)
	if after {
		dst = append(dst, Segment{Text: Ellipsis})
	}
	return dst
}

// Release returns the match's scratch memory for reuse; Hits, Matched and
// the highlights are invalid after it (the segments already made stay
// valid).
func (m *Matches) Release() {
	if m.s != nil {
		m.s.hits = m.Hits[:0]
		m.ix.pool.Put(m.s)
		m.s = nil
		m.Hits = nil
	}
}

// acc is what Match gathers for one document.
type acc struct {
	qGen  uint32 // == the query's gen: total, cover, first hold its values
	wGen  uint32 // == the word's gen: best holds the word's score
	total float32
	best  float32 // of the word's terms, the best score
	first uint32
	cover uint8
}

type scratch struct {
	gen     uint32
	acc     []acc    // by slot
	touched []uint32 // docs matched by the current word (when it has several terms)
	docs    []uint32 // docs matched by any word
	hits    []Hit
	exps    []expansion         // the terms of every word
	ends    []int               // where each word's terms end in exps
	terms   map[string]struct{} // the terms matched
	list    []string            // the same
	table   []int               // the typo walk's table
}

func (s *scratch) fit(n int) {
	if len(s.acc) >= n {
		return
	}
	s.acc = make([]acc, n)
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
		s = &scratch{terms: map[string]struct{}{}}
	}
	clear(s.terms)
	clear(s.list)
	s.list = s.list[:0]
	m := &Matches{s: s, ix: ix}
	// Every word's terms, one after the other: word i's are
	// s.exps[s.ends[i-1]:s.ends[i]].
	s.exps, s.ends = s.exps[:0], s.ends[:0]
	matching := 0 // words that matched a term
	for _, w := range words {
		s.exps = ix.expand(s.exps, s, w, len(words))
		if len(s.ends) == 0 || len(s.exps) > s.ends[len(s.ends)-1] {
			matching++
		}
		s.ends = append(s.ends, len(s.exps))
	}
	for _, e := range s.exps {
		m.matched(e.t.text)
	}
	n := float64(max(ix.live, 1))
	normT, normD := ix.docNorms()
	if matching == 1 && len(s.exps) == 1 {
		// One word matching one term, the most common search: every
		// document with the term is a hit, scored once.
		e := s.exps[0]
		wi := e.weight * idf(n, len(e.t.postings))
		hits := s.hits[:0]
		for _, p := range e.t.postings {
			sc := wi * (TitleBoost*bm25(p.title, normT[p.doc]) + bm25(p.desc, normD[p.doc]))
			hits = append(hits, Hit{Slot: p.doc, Score: sc, First: p.first})
		}
		m.Hits = hits
		return m
	}
	s.fit(len(ix.docs))
	if s.gen > math.MaxUint32-512 { // about to wrap: forget every stamp
		clear(s.acc)
		s.gen = 0
	}
	s.gen++
	if matching == 1 {
		m.Hits = ix.matchOne(s, s.exps, n, normT, normD)
		return m
	}
	qgen := s.gen
	s.docs = s.docs[:0]
	accs := s.acc
	bestCover := uint8(0)
	from := 0
	for _, to := range s.ends {
		exps := s.exps[from:to]
		from = to
		if len(exps) == 0 {
			continue
		}
		// A word that matched one term (most do) scores each document
		// once: its score is added as it is computed.
		single := len(exps) == 1
		s.gen++
		wgen := s.gen
		s.touched = s.touched[:0]
		for _, e := range exps {
			wi := e.weight * idf(n, len(e.t.postings))
			for _, p := range e.t.postings {
				sc := wi * (TitleBoost*bm25(p.title, normT[p.doc]) + bm25(p.desc, normD[p.doc]))
				a := &accs[p.doc]
				if a.qGen != qgen {
					a.qGen = qgen
					a.total, a.cover, a.first = 0, 0, NoPlace
					s.docs = append(s.docs, p.doc)
				}
				if p.first < a.first {
					a.first = p.first
				}
				switch {
				case single:
					a.total += sc
					a.cover++
					bestCover = max(bestCover, a.cover)
				case a.wGen != wgen:
					a.wGen = wgen
					a.best = sc
					s.touched = append(s.touched, p.doc)
				case sc > a.best:
					a.best = sc
				}
			}
		}
		for _, d := range s.touched {
			a := &accs[d]
			a.total += a.best
			a.cover++
			bestCover = max(bestCover, a.cover)
		}
	}
	hits := s.hits[:0]
	for _, d := range s.docs {
		if a := &accs[d]; a.cover == bestCover {
			hits = append(hits, Hit{Slot: d, Score: a.total, First: a.first})
		}
	}
	m.Hits = hits
	return m
}

// matchOne is Match for a single word that matched several terms
// (exps): every document with one of them is a hit, scored by its best
// term.
func (ix *Index) matchOne(s *scratch, exps []expansion, n float64, normT, normD []float32) []Hit {
	wgen := s.gen
	accs := s.acc
	s.touched = s.touched[:0]
	for _, e := range exps {
		wi := e.weight * idf(n, len(e.t.postings))
		for _, p := range e.t.postings {
			sc := wi * (TitleBoost*bm25(p.title, normT[p.doc]) + bm25(p.desc, normD[p.doc]))
			a := &accs[p.doc]
			if a.wGen != wgen {
				a.wGen, a.best, a.first = wgen, sc, p.first
				s.touched = append(s.touched, p.doc)
				continue
			}
			a.best = max(a.best, sc)
			a.first = min(a.first, p.first)
		}
	}
	hits := s.hits[:0]
	for _, d := range s.touched {
		a := &accs[d]
		hits = append(hits, Hit{Slot: d, Score: a.best, First: a.first})
	}
	return hits
}

// idf is BM25's inverse document frequency of a term in df of n documents.
func idf(n float64, df int) float32 {
	d := float64(df)
	return float32(math.Log(1 + (n-d+0.5)/(d+0.5)))
}

// docNorms returns the length normalizations of the documents' titles and
// descriptions, by slot, computing them when the documents changed since
// the last call.
func (ix *Index) docNorms() (title, desc []float32) {
	nm := &ix.norms
	if nm.valid.Load() != ix.gen+1 {
		nm.mu.Lock()
		if nm.valid.Load() != ix.gen+1 {
			n := float64(max(ix.live, 1))
			avgT := float32(max(float64(ix.sumT)/n, 1))
			avgD := float32(max(float64(ix.sumD)/n, 1))
			nm.title = slices.Grow(nm.title[:0], len(ix.docs))[:len(ix.docs)]
			nm.desc = slices.Grow(nm.desc[:0], len(ix.docs))[:len(ix.docs)]
			for i := range ix.docs {
				nm.title[i] = lengthNorm(ix.docs[i].titleLen, avgT)
				nm.desc[i] = lengthNorm(ix.docs[i].descLen, avgD)
			}
			nm.valid.Store(ix.gen + 1)
		}
		nm.mu.Unlock()
	}
	return nm.title, nm.desc
}

// lengthNorm is BM25's normalization of a field of length words, avg on
// average.
func lengthNorm(length uint16, avg float32) float32 {
	return bm25K1 * (1 - bm25B + bm25B*float32(length)/avg)
}

// bm25 is the BM25 weight of a term found tf times in a field whose
// lengthNorm is ln: 0 when tf is 0 (ln is never 0), computed without a
// branch, as a term is in about one field in two.
func bm25(tf uint16, ln float32) float32 {
	f := float32(tf)
	return f * (bm25K1 + 1) / (f + ln)
}

// candidates are the terms of the vocabulary a query word may expand to,
// live or not: those it is a prefix of and those within its typos, each
// with its weight, in vocabulary order. They change only with the
// vocabulary.
type candidates struct {
	prefix []expansion
	fuzzy  []expansion
}

func (c *candidates) size() int { return len(c.prefix) + len(c.fuzzy) }

// expand appends to out the live terms word matches: itself, the terms it
// is a prefix of, and those within MaxTypos edits, each once with its best
// weight. words is how many words the query has: their expansions share
// maxQueryPrefix and maxQueryFuzzy.
func (ix *Index) expand(out []expansion, s *scratch, word string, words int) []expansion {
	if t := ix.terms[word]; t != nil && len(t.postings) > 0 {
		out = append(out, expansion{t: t, weight: 1})
	}
	c := ix.candidatesOf(s, word)
	words = max(words, 1)
	out = appendTop(out, c.prefix, min(maxPrefix, maxQueryPrefix/words))
	return appendTop(out, c.fuzzy, min(maxFuzzy, maxQueryFuzzy/words))
}

// appendTop appends the n best live expansions of es to out.
func appendTop(out, es []expansion, n int) []expansion {
	start := len(out)
	for _, e := range es {
		if len(e.t.postings) > 0 {
			out = append(out, e)
		}
	}
	return out[:start+len(top(out[start:], n))]
}

// candidatesOf returns word's candidates, from the cache or found and
// cached.
func (ix *Index) candidatesOf(s *scratch, word string) *candidates {
	cc := &ix.cands
	first, _ := utf8.DecodeRuneInString(word)
	cc.mu.Lock()
	c := cc.byFirst[first][word]
	cc.mu.Unlock()
	if c != nil {
		return c
	}
	c = ix.findCandidates(s, word)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if old := cc.byFirst[first][word]; old != nil { // found meanwhile
		return old
	}
	if cc.words >= maxCachedWords || cc.terms+c.size() > maxCachedTerms {
		cc.forgetAllLocked()
	}
	words := cc.byFirst[first]
	if words == nil {
		words = map[string]*candidates{}
		cc.byFirst[first] = words
	}
	words[word] = c
	cc.words++
	cc.terms += c.size()
	return c
}

// forget drops the candidates of the words that term (new to the
// vocabulary) may be a candidate of: those with its first character.
func (cc *candCache) forget(term string) {
	first, _ := utf8.DecodeRuneInString(term)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for _, c := range cc.byFirst[first] {
		cc.words--
		cc.terms -= c.size()
	}
	delete(cc.byFirst, first)
}

// forgetAll drops every word's candidates: terms left the vocabulary (the
// candidates would still be right, dead terms being skipped, but would keep
// the terms in memory).
func (cc *candCache) forgetAll() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.forgetAllLocked()
}

func (cc *candCache) forgetAllLocked() {
	clear(cc.byFirst)
	cc.words, cc.terms = 0, 0
}

// findCandidates walks the vocabulary for word's candidates.
func (ix *Index) findCandidates(s *scratch, word string) *candidates {
	c := &candidates{}
	runes := []rune(word)
	if len(runes) >= 2 {
		lo := sort.SearchStrings(ix.vocab, word)
		for i := lo; i < len(ix.vocab) && strings.HasPrefix(ix.vocab[i], word); i++ {
			t := ix.terms[ix.vocab[i]]
			if t.text == word {
				continue
			}
			// The closer the prefix is to the whole term, the more it counts.
			cover := float32(len(runes)) / float32(utf8.RuneCountInString(t.text))
			c.prefix = append(c.prefix, expansion{t: t, weight: prefixWeight * (0.5 + 0.5*cover)})
		}
	}
	// Numbers are not guessed at: course 2030 is not course 2040.
	if k := MaxTypos(len(runes)); k > 0 && !strings.ContainsAny(word, "0123456789") {
		s.table = ix.fuzzy(runes, k, s.table, func(t *term, d int) {
			if d == 0 || strings.HasPrefix(t.text, word) {
				return // the word itself or a prefix match: counted above
			}
			w := float32(typo1Weight)
			if d == 2 {
				w = typo2Weight
			}
			c.fuzzy = append(c.fuzzy, expansion{t: t, weight: w})
		})
	}
	return c
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

// fuzzy calls fn for every term of the vocabulary, live or not, that
// starts with w's first character and is within maxd edits of w (optimal
// string alignment distance: insertions, deletions, substitutions and swaps
// of two adjacent characters). It walks the sorted vocabulary as a trie: terms
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
			fn(ix.terms[t], d)
		}
		i++
	}
	return table
}
