package pagecache_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/client/internal/pagecache"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// counter is a Fill that renders "1", "2", ... and counts its calls.
type counter struct {
	n     atomic.Int64
	block chan struct{}
}

func (f *counter) fill(context.Context) (*pagecache.Page, error) {
	n := f.n.Add(1)
	if f.block != nil {
		<-f.block
	}
	return pagecache.NewPage(http.StatusOK, []byte{byte('0' + n)}), nil
}

func TestFreshStaleExpired(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Unix(1000, 0))
	c, err := pagecache.New(time.Second, 10, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := &counter{}
	get := func() string {
		p, err := c.Get(context.Background(), "k", f.fill)
		if err != nil {
			t.Fatal(err)
		}
		return string(p.Body)
	}
	if got := get(); got != "1" || f.n.Load() != 1 {
		t.Fatalf("first Get = %q after %d renders", got, f.n.Load())
	}
	clk.Advance(400 * time.Millisecond)
	if got := get(); got != "1" || f.n.Load() != 1 {
		t.Fatalf("fresh Get = %q after %d renders, want the cached page", got, f.n.Load())
	}
	// Stale: the old page now, a new one rendered in the background.
	clk.Advance(200 * time.Millisecond)
	if got := get(); got != "1" {
		t.Fatalf("stale Get = %q, want the stale page at once", got)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return get() == "2" }, "the stale page was never revalidated")
	// Past the TTL a page is never served.
	clk.Advance(1100 * time.Millisecond)
	if got := get(); got != "3" {
		t.Fatalf("expired Get = %q, want a new render", got)
	}
}

func TestMissesRenderOnce(t *testing.T) {
	t.Parallel()
	// A stopped clock: the page, once rendered, stays fresh, so a caller
	// that comes after the render has none to start either.
	clk := testkit.NewClock(time.Unix(1000, 0))
	c, err := pagecache.New(time.Second, 10, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := &counter{block: make(chan struct{})}
	var wg sync.WaitGroup
	var started atomic.Int64
	for range 20 {
		wg.Go(func() {
			started.Add(1)
			if _, err := c.Get(context.Background(), "k", f.fill); err != nil {
				t.Error(err)
			}
		})
	}
	// The render is under way, held, and every caller has come: they wait
	// on that one render.
	testkit.Eventually(t, 5*time.Second, func() bool { return f.n.Load() == 1 && started.Load() == 20 },
		"the 20 callers never all came while the one render was held")
	close(f.block)
	wg.Wait()
	if n := f.n.Load(); n != 1 {
		t.Errorf("%d renders for 20 concurrent misses, want 1", n)
	}
}

func TestErrorsAndDisabled(t *testing.T) {
	t.Parallel()
	if _, err := pagecache.New(2*time.Second, 10, nil); err == nil {
		t.Error("a TTL over 1s was accepted")
	}
	c, err := pagecache.New(time.Second, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	boom := errors.New("boom")
	calls := 0
	failing := func(context.Context) (*pagecache.Page, error) { calls++; return nil, boom }
	for range 2 {
		if _, err := c.Get(context.Background(), "k", failing); !errors.Is(err, boom) {
			t.Fatalf("Get = %v, want the render's error", err)
		}
	}
	if calls != 2 {
		t.Errorf("a failed render was cached (%d calls)", calls)
	}

	off, err := pagecache.New(0, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	f := &counter{}
	for range 3 {
		if _, err := off.Get(context.Background(), "k", f.fill); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.n.Load(); n != 3 || off.Enabled() {
		t.Errorf("disabled cache: %d renders for 3 Gets", n)
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	c, err := pagecache.New(time.Second, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := &counter{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if _, err := c.Get(context.Background(), k, f.fill); err != nil {
			t.Fatal(err)
		}
	}
	// Every key was rendered once; the cache kept at most 3, so at least
	// two of them render again.
	before := f.n.Load()
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if _, err := c.Get(context.Background(), k, f.fill); err != nil {
			t.Fatal(err)
		}
	}
	if again := f.n.Load() - before; again < 2 {
		t.Errorf("%d keys rendered again, want at least 2 (at most 3 kept)", again)
	}
	p := pagecache.NewPage(http.StatusOK, []byte("<html>hello hello hello hello</html>"))
	if gz := p.Gzipped(); len(gz) == 0 || p.ETag == "" {
		t.Errorf("page gzip %d bytes, ETag %q", len(gz), p.ETag)
	}
}

// TestCounts counts every Get by result in storefront_page_cache_total.
func TestCounts(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Unix(1000, 0))
	c, err := pagecache.New(time.Second, 10, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	set := metrics.New()
	c.Instrument(set)
	f := &counter{}
	get := func() {
		if _, err := c.Get(context.Background(), "k", f.fill); err != nil {
			t.Fatal(err)
		}
	}
	get()                               // miss
	get()                               // hit
	clk.Advance(600 * time.Millisecond) // second half-life
	get()                               // stale
	clk.Advance(time.Second)            // expired
	get()                               // miss
	m := scrape(t, set)
	for result, want := range map[string]float64{pagecache.Hit: 1, pagecache.Stale: 1, pagecache.Miss: 2} {
		if got := m.Value("storefront_page_cache_total", "result", result); got != want {
			t.Errorf("storefront_page_cache_total{result=%q} = %v, want %v\n%s", result, got, want, m)
		}
	}

	off, err := pagecache.New(0, 10, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	offSet := metrics.New()
	off.Instrument(offSet)
	for range 2 {
		if _, err := off.Get(context.Background(), "k", f.fill); err != nil {
			t.Fatal(err)
		}
	}
	if got := scrape(t, offSet).Value("storefront_page_cache_total", "result", pagecache.Miss); got != 2 {
		t.Errorf("cache off: %v misses counted, want 2", got)
	}
}

// scrape reads set as Prometheus would.
func scrape(t *testing.T, set *metrics.Set) testkit.Metrics {
	t.Helper()
	srv := httptest.NewServer(set.Handler())
	defer srv.Close()
	return testkit.Scrape(t, srv.URL)
}
