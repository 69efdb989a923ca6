package http_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/stuff/internal/catalog"
	httpapi "github.com/stuffmart/stuffmart/services/stuff/internal/http"
	"github.com/stuffmart/stuffmart/services/stuff/internal/search/sample"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// memSource serves sample listings from memory: the catalog without a
// database.
type memSource struct{ ss []stuff.Stuff }

func (m *memSource) Available(_ context.Context, limit int, _ []string) ([]stuff.Stuff, error) {
	return m.ss[:min(limit, len(m.ss))], nil
}
func (m *memSource) CountAvailable(context.Context, []string) (int, error) { return len(m.ss), nil }
func (m *memSource) AvailableAfter(context.Context, *stuff.Key, int, int, []string) ([]stuff.Stuff, int, error) {
	return nil, 0, nil
}
func (m *memSource) Get(context.Context, string) (stuff.Stuff, error) {
	return stuff.Stuff{}, errs.ErrNotFound
}
func (m *memSource) Bans(context.Context) ([]stuff.Ban, error) { return nil, nil }

// BenchmarkListSearch is the service's whole work for GET /api/stuff?q=…
// computed (no kept answer) at 5,000 sample listings, without the network:
// query validation, the catalog's search with highlights and the page's
// JSON, through Echo, for each kind of search and for the sample queries in
// turn. The requests ask 10,000 price ranges in turn that every listing is
// in (min from 0 to 99 cents, max above every price), so that no answer is
// served again.
func BenchmarkListSearch(b *testing.B) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &memSource{}
	for i := 4999; i >= 0; i-- { // newest first
		t, d, p := sample.Listing(i)
		in := stuff.Input{Title: t, Description: &d, Price: p, Delivery: new("d")}
		src.ss = append(src.ss, stuff.New(fmt.Sprintf("%024x", i+1), fmt.Sprintf("%024x", i%97+1), in, base.Add(time.Duration(i)*time.Second)))
	}
	cat := catalog.New(src, httpapi.Encode, testkit.Logger(b), catalog.Options{Max: 5000, CacheMax: 5000})
	if err := cat.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	httpapi.Routes(e, httpapi.NewHandler(nil, cat, nil), nil)
	run := func(b *testing.B, qs []string) {
		reqs := make([]*http.Request, 10_000)
		for n := range reqs {
			q := qs[n%len(qs)]
			reqs[n] = httptest.NewRequest(http.MethodGet, "/api/stuff?q="+url.QueryEscape(q)+"&min="+strconv.Itoa(n%100)+"&max="+strconv.Itoa(100_000+n/100), nil)
		}
		w := &discard{h: http.Header{}}
		b.ReportAllocs()
		defer testkit.ReportCPUPerOp(b)()
		i := 0
		for b.Loop() {
			clear(w.h)
			w.status = 0
			e.ServeHTTP(w, reqs[i%len(reqs)])
			if w.status != http.StatusOK {
				b.Fatalf("%s: status %d", reqs[i%len(reqs)].URL, w.status)
			}
			i++
		}
	}
	for _, k := range sample.Kinds {
		b.Run(k.Name, func(b *testing.B) { run(b, []string{k.Q}) })
	}
	b.Run("sample", func(b *testing.B) { run(b, sample.Queries) })
}

// discard is a response writer that keeps only the status, as a server's
// buffered connection costs next to nothing per response.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(status int)      { d.status = status }
