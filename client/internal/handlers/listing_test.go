package handlers

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestParseListing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, query string
		// url is the normalized URL of the page asked for; errs the
		// parameters refused; notFound a page that is not a number.
		url      string
		errs     []string
		notFound bool
		filtered bool
	}{
		{path: homePath, query: "", url: "/"},
		{path: homePath, query: "page=1&sort=newest&min=&max=&utm_source=x", url: "/"},
		{path: homePath, query: "page=3", url: "/?page=3"},
		{path: homePath, query: "max=10.00&min=2&sort=price_desc&page=2", url: "/?sort=price_desc&min=2&max=10&page=2", filtered: true},
		{path: homePath, query: "min=%244.5", url: "/?min=4.50", filtered: true},
		{path: homePath, query: "min=0", url: "/?min=0", filtered: true},
		{path: homePath, query: "max=10000", url: "/?max=10000", filtered: true},
		{path: homePath, query: "sort=relevance", errs: []string{"sort"}},
		{path: homePath, query: "min=abc&max=-1", errs: []string{"max", "min"}},
		{path: homePath, query: "min=5&max=4.99", errs: []string{"min"}},
		{path: homePath, query: "max=10000.01", errs: []string{"max"}},
		{path: homePath, query: "page=0", notFound: true},
		{path: homePath, query: "page=01", notFound: true},
		{path: homePath, query: "q=ignored", url: "/"},
		{path: searchPath, query: "q=++Linear+%0A+algebra+&sort=relevance", url: "/search?q=Linear+algebra"},
		{path: searchPath, query: "q=caf%C3%A9+%26+co&sort=newest&page=2", url: "/search?q=caf%C3%A9+%26+co&sort=newest&page=2", filtered: true},
		{path: searchPath, query: "sort=price_asc", url: "/search?sort=price_asc", filtered: true},
		{path: searchPath, query: "q=x&sort=random", errs: []string{"sort"}},
	}
	e := echo.New()
	for _, tc := range tests {
		c := e.NewContext(httptest.NewRequest(http.MethodGet, tc.path+"?"+tc.query, nil), httptest.NewRecorder())
		l, errs, ok := parseListing(c, tc.path)
		if !ok != tc.notFound {
			t.Errorf("%s?%s: ok %v", tc.path, tc.query, ok)
			continue
		}
		if tc.notFound {
			continue
		}
		if got := slices.Sorted(maps.Keys(errs)); !slices.Equal(got, tc.errs) {
			t.Errorf("%s?%s: errors %v, want %v", tc.path, tc.query, errs, tc.errs)
		}
		if len(tc.errs) > 0 {
			continue
		}
		if got := l.url(l.page); got != tc.url || l.filtered() != tc.filtered {
			t.Errorf("%s?%s: %q (filtered %v), want %q (%v)", tc.path, tc.query, got, l.filtered(), tc.url, tc.filtered)
		}
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":               "plain",
		" a word ":            " a word ",
		"two\n\nlines":        "two lines",
		"\tindented\r\n":      " indented ",
		"\n":                  " ",
		"double  space":       "double space",
		"no\u00a0break space": "no break space",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	var calls atomic.Int64
	var mu sync.Mutex
	answer := map[string]error{}
	release := make(chan struct{})
	close(release)
	gate := release
	fetch := func(ctx context.Context, id string) (api.PublicUser, error) {
		calls.Add(1)
		mu.Lock()
		err, g := answer[id], gate
		mu.Unlock()
		<-g
		if err != nil {
			return api.PublicUser{}, err
		}
		return api.PublicUser{ID: id, Name: "Name of " + id}, nil
	}
	n := newNames(fetch, clock)
	ctx := context.Background()

	if got := n.get(ctx, "a"); got.name != "Name of a" || got.missing || got.failed {
		t.Fatalf("get a: %+v", got)
	}
	advance(nameTTL - time.Second)
	n.get(ctx, "a")
	if calls.Load() != 1 {
		t.Errorf("%d calls within a minute, want 1", calls.Load())
	}
	advance(time.Second)
	n.get(ctx, "a")
	if calls.Load() != 2 {
		t.Errorf("%d calls after a minute, want 2", calls.Load())
	}

	mu.Lock()
	answer["gone"] = &api.Error{Status: http.StatusNotFound}
	answer["down"] = errors.New("connection refused")
	mu.Unlock()
	if got := n.get(ctx, "gone"); !got.missing || got.name != "" {
		t.Errorf("unknown user: %+v", got)
	}
	if got := n.get(ctx, "down"); !got.failed || got.name != "" {
		t.Errorf("auth down: %+v", got)
	}
	before := calls.Load()
	advance(nameRetry - time.Millisecond)
	n.get(ctx, "down")
	n.get(ctx, "gone")
	if calls.Load() != before {
		t.Errorf("a failure or a 404 asked again within %s", nameRetry)
	}
	mu.Lock()
	delete(answer, "down")
	mu.Unlock()
	advance(time.Millisecond)
	if got := n.get(ctx, "down"); got.name != "Name of down" {
		t.Errorf("after %s, auth back: %+v", nameRetry, got)
	}

	// Concurrent pages of one new seller: one call.
	mu.Lock()
	gate = make(chan struct{})
	mu.Unlock()
	before = calls.Load()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { n.get(ctx, "busy") })
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return calls.Load() > before }, "the call for a new seller")
	mu.Lock()
	close(gate)
	mu.Unlock()
	wg.Wait()
	if got := calls.Load() - before; got != 1 {
		t.Errorf("%d calls for 10 concurrent pages, want 1", got)
	}

	// A slow auth: the page does not wait past nameWait, and the name
	// that comes later serves the next page without another call.
	mu.Lock()
	gate = make(chan struct{})
	mu.Unlock()
	before = calls.Load()
	if got := n.get(ctx, "slow"); !got.failed {
		t.Errorf("a page waited for a slow auth: %+v", got)
	}
	mu.Lock()
	close(gate)
	mu.Unlock()
	testkit.Eventually(t, 5*time.Second, func() bool { return n.get(ctx, "slow").name == "Name of slow" }, "the late name kept")
	if got := calls.Load() - before; got != 1 {
		t.Errorf("%d calls for a slow seller, want 1", got)
	}

	// Bounded.
	for i := range namesMax + 100 {
		n.put(string(rune(i)), nameEntry{at: clock()})
	}
	if len(n.entries) > namesMax {
		t.Errorf("%d names kept, want at most %d", len(n.entries), namesMax)
	}
}
