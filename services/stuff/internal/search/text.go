// Package search is the stuff service's full-text index of available
// listings: an inverted index over the words of each listing's title and
// description, held in memory beside the catalog (the read model) and
// changed by it in the same step as its list, so a listing is findable
// exactly while it is listed. It knows nothing of listings: documents are
// numbered slots with a title and a description.
//
// Words are runs of letters and digits, folded for matching: lower case,
// accents and other combining marks removed (é→e, Ä→a, ß→ss). A query word
// matches a term of a listing when it is the same term, a prefix of it (two
// characters or more), or within one edit of it (words of 4 to 7
// characters) or two edits (8 or more): a substituted, missing, extra or
// swapped character each count as one, except in the first character (a
// word with a digit, a course number, must be exact or a prefix). Listings are ranked by BM25 (a title
// word weighs more than a description word), a prefix or a typo counting
// for less than the exact word; only the listings matching the most query
// words are returned (every word, whenever one listing has them all).
//
// Why not a search library: the catalog already keeps every available
// listing in memory on every replica, and already learns each change in the
// right order (its own writes, the broadcast stuff events, reconciles); an
// index changed by the catalog under its own lock is consistent with it by
// construction, with nothing to commit or refresh. bleve, the natural
// choice, would keep a second copy of every listing in its own segments,
// batch and merge them in the background, and add some twenty modules to the
// service, for features (phrase queries, facets, many languages' stemmers)
// the storefront does not use. services/stuff/README.md has the figures.
package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxTermBytes caps a term: longer runs of letters and digits (hashes,
// pasted links) are cut, so they cannot bloat the vocabulary.
const MaxTermBytes = 40

// asciiWord marks the ASCII bytes that belong to words.
var asciiWord = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	return t
}()

// isWord reports whether r belongs to a word: letters, digits and the
// combining marks that decorate them.
func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiWord[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// tokens calls fn with the byte range of every word of s, in order, and
// whether the word is ASCII.
func tokens(s string, fn func(start, end int, ascii bool)) {
	for i := 0; ; {
		start, end, ascii := nextWord(s, i)
		if start < 0 {
			return
		}
		fn(start, end, ascii)
		i = end
	}
}

// Byte classes for nextWord: between words, in an ASCII word, the start
// of a character beyond ASCII (or a byte that is not one).
const (
	classSpace = iota
	classWord
	classWide
)

var class = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = classWide
		case asciiWord[c]:
			t[c] = classWord
		}
	}
	return t
}()

// nextWord returns the byte range of the first word of s from byte i on
// (start -1 when there is none), and whether it is ASCII.
func nextWord(s string, i int) (start, end int, ascii bool) {
	for {
		// Between words.
		for i < len(s) && class[s[i]] == classSpace {
			i++
		}
		if i == len(s) {
			return -1, -1, false
		}
		if class[s[i]] == classWord {
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if isWord(r) {
			break
		}
		i += size
	}
	start, ascii = i, true
	for i < len(s) {
		for i < len(s) && class[s[i]] == classWord {
			i++
		}
		if i == len(s) || class[s[i]] == classSpace {
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !isWord(r) {
			break
		}
		ascii = false
		i += size
	}
	return start, i, ascii
}

// special are letters that folding maps to other letters: those that no
// Unicode decomposition takes apart.
var special = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'æ': "ae", 'Æ': "ae", 'œ': "oe", 'Œ': "oe", 'ø': "o", 'Ø': "o",
	'đ': "d", 'Đ': "d", 'ł': "l", 'Ł': "l", 'ı': "i", 'þ': "th", 'Þ': "th", 'ð': "d", 'Ð': "d",
}

// Fold returns word w as it is matched: lower case, without accents, at most
// MaxTermBytes long. Words already folded are returned as they are.
func Fold(w string) string {
	folded := true
	for i := 0; i < len(w) && folded; i++ {
		c := w[i]
		folded = c < utf8.RuneSelf && (c < 'A' || c > 'Z')
	}
	if folded {
		return cut(w)
	}
	var buf [MaxTermBytes]byte
	return string(foldAppend(buf[:0], w))
}

// foldAppend appends the folded w to dst, cut at MaxTermBytes: each letter
// lowered after its canonical decomposition (é is e and a combining acute
// accent), the combining marks dropped. It allocates only for words that
// fold longer than dst's capacity.
func foldAppend(dst []byte, w string) []byte {
	base := len(dst)
	for i := 0; i < len(w) && len(dst)-base < MaxTermBytes; {
		c := w[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(w[i:])
		if sp, ok := special[r]; ok {
			dst = append(dst, sp...)
			i += size
			continue
		}
		p := norm.NFD.PropertiesString(w[i:])
		if d := p.Decomposition(); d != nil {
			for _, dr := range string(d) {
				if !unicode.Is(unicode.Mn, dr) {
					dst = utf8.AppendRune(dst, unicode.ToLower(dr))
				}
			}
		} else if !unicode.Is(unicode.Mn, r) {
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
		i += size
	}
	return cutBytes(dst, base)
}

// cut shortens s to at most MaxTermBytes (s is ASCII).
func cut(s string) string { return s[:min(len(s), MaxTermBytes)] }

// cutBytes shortens what dst holds past base to at most MaxTermBytes, at a
// character boundary.
func cutBytes(dst []byte, base int) []byte {
	if len(dst)-base <= MaxTermBytes {
		return dst
	}
	n := base + MaxTermBytes
	for n > base && !utf8.RuneStart(dst[n]) {
		n--
	}
	return dst[:n]
}

// Words returns the distinct folded words of a query, in order, at most max
// of them (and whether there were more).
func Words(q string, max int) (words []string, more bool) {
	tokens(q, func(start, end int, _ bool) {
		w := Fold(q[start:end])
		if w == "" {
			return
		}
		for _, x := range words {
			if x == w {
				return
			}
		}
		if len(words) == max {
			more = true
			return
		}
		words = append(words, w)
	})
	return words, more
}

// Analysis is what the index keeps of one listing's text: its distinct
// terms with their counts and first place in the description, and how many
// words each field has.
type Analysis struct {
	Terms    []TermStat
	TitleLen int
	DescLen  int
}

// TermStat is one distinct term of a listing.
type TermStat struct {
	Term  string
	Title uint16 // occurrences in the title
	Desc  uint16 // occurrences in the description
	// First is the byte offset of its first occurrence in the description
	// (NoPlace when none): where the description's fragment starts.
	First uint32
}

// NoPlace is TermStat.First for a term absent from the description.
const NoPlace = ^uint32(0)

// Analyze splits a listing's title and description into folded terms.
func Analyze(title, description string) Analysis {
	var a Analysis
	at := map[string]int{}
	add := func(term string, inTitle bool, pos int) {
		i, ok := at[term]
		if !ok {
			i = len(a.Terms)
			at[term] = i
			a.Terms = append(a.Terms, TermStat{Term: term, First: NoPlace})
		}
		ts := &a.Terms[i]
		switch {
		case inTitle:
			ts.Title = inc(ts.Title)
		default:
			ts.Desc = inc(ts.Desc)
			if ts.First == NoPlace {
				ts.First = uint32(pos)
			}
		}
	}
	tokens(title, func(start, end int, _ bool) {
		if w := Fold(title[start:end]); w != "" {
			add(w, true, start)
			a.TitleLen++
		}
	})
	tokens(description, func(start, end int, _ bool) {
		if w := Fold(description[start:end]); w != "" {
			add(w, false, start)
			a.DescLen++
		}
	})
	return a
}

func inc(n uint16) uint16 {
	if n == ^uint16(0) {
		return n
	}
	return n + 1
}

// Segment is a piece of a listing's text, marked when it is a word that
// matched the query. A highlight is a list of segments that, joined, give
// the text (or a fragment of it): the storefront escapes each one and wraps
// the marked ones, so no markup is ever built from a seller's text here.
type Segment struct {
	Text  string
	Match bool
}

// Ellipsis marks where a fragment cuts its text.
const Ellipsis = "…"

// window returns the part of s of about size bytes that shows the word at
// byte offset at (the start when at is past s), cut at spaces, and whether
// it was cut before and after.
func window(s string, at, size int) (string, bool, bool) {
	if len(s) <= size {
		return s, false, false
	}
	if at < 0 || at >= len(s) {
		at = 0
	}
	start := max(0, at-size/4)
	end := min(len(s), start+size)
	start = max(0, min(start, end-size))
	if start > 0 { // begin after a space, if one is near before the match
		if i := strings.IndexAny(s[start:at], " \t\n"); i >= 0 {
			start += i + 1
		} else {
			for start < len(s) && !utf8.RuneStart(s[start]) {
				start++
			}
		}
	}
	if end < len(s) { // end at a space, if one is after the match
		if i := strings.LastIndexAny(s[max(at, start):end], " \t\n"); i > 0 {
			end = max(at, start) + i
		} else {
			for end > start && !utf8.RuneStart(s[end]) {
				end--
			}
		}
	}
	return strings.TrimSpace(s[start:end]), start > 0, end < len(s)
}
