package http

import (
	"strconv"
	"strings"
	"sync"
)

// MaxAnswers bounds how many search answers each replica keeps, and
// MaxAnswerBytes their total size: a page of 20 with highlights is some
// 20 KB, but a page of 100 long descriptions can be a few MB, and the
// queries are anyone's to choose. MaxAnswerSize is the largest answer kept.
const (
	MaxAnswers     = 256
	MaxAnswerBytes = 8 << 20
	MaxAnswerSize  = 256 << 10
)

// answers keeps the JSON of recent searches, each valid while the catalog
// has not changed since the search began (catalog.Changes): a search asked
// again before any listing is listed, unlisted or edited gets the same
// bytes without being run again. Popular searches repeat; a change of the
// list makes every kept answer stale at once, so nothing stale is served.
type answers struct {
	mu sync.Mutex
	m  map[string]answer
	// bytes is the size of the kept bodies together.
	bytes int
	// swept is the changes at which put last dropped the stale answers.
	swept uint64
}

type answer struct {
	changes uint64
	body    []byte
}

func newAnswers() *answers { return &answers{m: map[string]answer{}} }

// get returns the answer kept for key if it was built at changes.
func (a *answers) get(key string, changes uint64) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	an, ok := a.m[key]
	if ok && an.changes != changes {
		a.drop(key)
		ok = false
	}
	return an.body, ok
}

// put keeps body as the answer for key built at changes, unless it is over
// MaxAnswerSize. When full (by count or by bytes), it drops the stale
// answers (once per change of the catalog: while nothing changes, they were
// dropped already), then arbitrary ones until the new one fits.
func (a *answers) put(key string, changes uint64, body []byte) {
	if len(body) > MaxAnswerSize {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.drop(key)
	full := func() bool { return len(a.m) >= MaxAnswers || a.bytes+len(body) > MaxAnswerBytes }
	if full() && changes != a.swept {
		for k, an := range a.m {
			if an.changes != changes {
				a.drop(k)
			}
		}
		a.swept = changes
	}
	for k := range a.m {
		if !full() {
			break
		}
		a.drop(k)
	}
	a.m[key] = answer{changes: changes, body: body}
	a.bytes += len(body)
}

// drop forgets the answer kept for key, if any.
func (a *answers) drop(key string) {
	if an, ok := a.m[key]; ok {
		a.bytes -= len(an.body)
		delete(a.m, key)
	}
}

// key is the canonical form of a validated query: two URLs that ask the
// same (parameters in another order, other spellings of the same words)
// share an answer.
func (lq listQuery) key() string {
	q := lq.q
	var b strings.Builder
	b.WriteString(strconv.Itoa(lq.page))
	for _, n := range []int64{int64(lq.limit), int64(q.Order), q.MinPrice, q.MaxPrice} {
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(n, 10))
	}
	b.WriteByte(' ')
	b.WriteString(q.Seller)
	if q.Text {
		b.WriteString(" q")
		for _, w := range q.Words {
			b.WriteByte(' ')
			b.WriteString(w)
		}
	}
	return b.String()
}
