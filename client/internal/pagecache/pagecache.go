// Package pagecache keeps rendered anonymous pages for a very short time
// (at most one second), so that a burst of crawlers and anonymous visitors
// costs one render and one service call per page per moment, not one per
// request.
//
// An entry is fresh for half the TTL. In the second half it is still served,
// while one background render replaces it (stale-while-revalidate); after
// the TTL it is not served at all. Misses of one key are rendered once for
// all the requests that wait on them (singleflight). Only what the caller
// puts in is cached: the handlers put anonymous renders only, never a page of
// a signed-in user.
package pagecache

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/stuffmart/stuffmart/shared/metrics"
)

// MaxTTL is the longest TTL the cache accepts.
const MaxTTL = time.Second

// Page is a rendered page: status and HTML body, with its ETag and, made on
// first need, its gzip encoding.
type Page struct {
	Status int
	Body   []byte
	ETag   string

	gzOnce sync.Once
	gz     []byte
}

// NewPage returns a page with its ETag computed.
func NewPage(status int, body []byte) *Page {
	sum := sha256.Sum256(body)
	return &Page{Status: status, Body: body, ETag: `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

// Gzipped returns the body gzip-encoded (computed once per page), or nil
// if it could not be.
func (p *Page) Gzipped() []byte {
	p.gzOnce.Do(func() { p.gz = Gzip(p.Body) })
	return p.gz
}

var gzips = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
	return w
}}

// Gzip compresses body at gzip's fastest level with a pooled writer (a
// new writer costs more than compressing a page); nil on failure.
func Gzip(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body)/3 + 64)
	zw := gzips.Get().(*gzip.Writer)
	defer gzips.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(body); err != nil {
		return nil
	}
	if err := zw.Close(); err != nil {
		return nil
	}
	return buf.Bytes()
}

// Fill renders a page. It must depend on nothing but the key.
type Fill func(ctx context.Context) (*Page, error)

type entry struct {
	page *Page
	at   time.Time
}

// Cache is a TTL cache of pages. The zero TTL disables it: every Get
// renders.
type Cache struct {
	ttl    time.Duration
	max    int
	now    func() time.Time
	flight singleflight.Group

	mu         sync.Mutex
	entries    map[string]entry
	refreshing map[string]bool
	swept      time.Time

	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc

	// results counts Gets by result (see Instrument); nil: not counted.
	results *prometheus.CounterVec
}

// The results of a Get, as storefront_page_cache_total counts them.
const (
	Hit   = "hit"   // fresh in the cache
	Stale = "stale" // in its second half-life: served while one background render replaces it
	Miss  = "miss"  // rendered for the request (or waited for a render under way); every Get when the cache is off
)

// Instrument counts every Get in m as storefront_page_cache_total{result}
// (Hit, Stale, Miss). Call it once, before the cache is used.
func (c *Cache) Instrument(m *metrics.Set) {
	c.results = m.Outcomes("storefront_page_cache_total",
		"Anonymous page renders asked of the page cache, by result (hit, stale: served while re-rendered, miss: rendered).", "result", Hit, Stale, Miss)
}

func (c *Cache) count(result string) {
	if c.results != nil {
		c.results.WithLabelValues(result).Inc()
	}
}

// New returns a cache of at most max entries whose pages live ttl (0
// disables caching; more than MaxTTL is an error). now is the clock
// (time.Now when nil).
func New(ttl time.Duration, max int, now func() time.Time) (*Cache, error) {
	if ttl < 0 || ttl > MaxTTL {
		return nil, fmt.Errorf("page cache TTL %s: must be from 0 to %s", ttl, MaxTTL)
	}
	if max <= 0 {
		max = 10_000
	}
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{ttl: ttl, max: max, now: now, entries: map[string]entry{}, refreshing: map[string]bool{}, bgCtx: ctx, bgCancel: cancel}, nil
}

// Enabled reports whether pages are cached at all.
func (c *Cache) Enabled() bool { return c.ttl > 0 }

// Get returns the page of key: from the cache while it is young enough,
// else rendered by fill (once for all concurrent callers). A failed render
// is returned as is and not cached.
func (c *Cache) Get(ctx context.Context, key string, fill Fill) (*Page, error) {
	if c.ttl == 0 {
		c.count(Miss)
		return fill(ctx)
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		age := now.Sub(e.at)
		switch {
		case age >= 0 && age < c.ttl/2:
			c.count(Hit)
			return e.page, nil
		case age >= 0 && age < c.ttl:
			c.count(Stale)
			c.revalidate(key, fill)
			return e.page, nil
		}
	}
	c.count(Miss)
	ch := c.flight.DoChan(key, func() (any, error) {
		// Detached from the first caller: the others wait on the result.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return c.render(rctx, key, fill)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Page), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// revalidate renders key again in the background, once at a time.
func (c *Cache) revalidate(key string, fill Fill) {
	c.mu.Lock()
	if c.refreshing[key] || c.bgCtx.Err() != nil {
		c.mu.Unlock()
		return
	}
	c.refreshing[key] = true
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.refreshing, key)
			c.mu.Unlock()
		}()
		// Shares the flight of a miss of the same key, if one runs.
		_, _, _ = c.flight.Do(key, func() (any, error) { // the error is for the callers of a miss; here it only means "keep the stale page"
			ctx, cancel := context.WithTimeout(c.bgCtx, 10*time.Second)
			defer cancel()
			return c.render(ctx, key, fill)
		})
	}()
}

func (c *Cache) render(ctx context.Context, key string, fill Fill) (*Page, error) {
	start := c.now()
	p, err := fill(ctx)
	if err != nil {
		return nil, err
	}
	c.put(key, entry{page: p, at: start})
	return p, nil
}

func (c *Cache) put(key string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Dropping what has expired takes a pass over every entry: at
		// most twice per TTL, not on every insert of a full cache.
		if now := c.now(); now.Sub(c.swept) >= c.ttl/2 {
			for k, old := range c.entries {
				if now.Sub(old.at) >= c.ttl {
					delete(c.entries, k)
				}
			}
			c.swept = now
		}
		// Still full of live pages: drop any, the cache is only a
		// shortcut.
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

// Close stops background renders and waits for those running.
func (c *Cache) Close() {
	c.mu.Lock()
	c.bgCancel() // under mu: no revalidate starts after this
	c.mu.Unlock()
	c.bg.Wait()
}
