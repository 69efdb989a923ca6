package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/pagecache"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
	"github.com/stuffmart/stuffmart/shared/web"
)

// The search page: /search?q=…, the stuff service's search (relevance
// ranking, matches highlighted), sorted and in a price range as the home
// page, a page at a time.

// search: GET /search. A search the stuff service refuses (too long, too
// many words, hidden characters) and an order or range the storefront
// cannot read are the page again, status 400, with the message and the
// search kept in the box. Anonymous renders come from the page cache,
// keyed on the normalized URL (a refused search's page too: it is the
// same for everyone).
func (h *Handler) search(c echo.Context) error {
	l, errs, ok := parseListing(c, searchPath)
	if !ok {
		return errNotFound
	}
	if err := h.limitSearch(c); err != nil {
		return err
	}
	v := session.From(c)
	base := h.baseURL(c)
	if len(errs) > 0 {
		m := pages.Search{Query: l.q, Controls: l.controls(errs), Invalid: true}
		if msg, bad := errs["q"]; bad {
			m.Error, m.Invalid = msg, false
		}
		return h.render(c, http.StatusBadRequest, h.searchFrame(c, invalidListingMeta(l), "", l.q, pages.SearchPage(m)))
	}
	if !v.SignedIn() {
		sess := api.Session{RequestID: v.Session.RequestID, ForwardedFor: v.Session.ForwardedFor}
		return h.serveCached(c, "search "+base+" "+l.url(l.page), func(ctx context.Context) (*pagecache.Page, error) {
			status, content, err := h.searchPage(ctx, sess, base, l)
			if err != nil {
				return nil, err
			}
			b, err := renderBytes(ctx, h.anonSearchFrame(searchMeta(base, l, content), "", l.q, pages.SearchPage(content.model)))
			if err != nil {
				return nil, err
			}
			return pagecache.NewPage(status, b), nil
		})
	}
	status, content, err := h.searchPage(c.Request().Context(), v.Session, base, l)
	if err != nil {
		return err
	}
	return h.render(c, status, h.searchFrame(c, searchMeta(base, l, content), "", l.q, pages.SearchPage(content.model)))
}

// searchResult is a search page's model and the answer it shows.
type searchResult struct {
	model pages.Search
	page  api.Page
	last  int
}

// searchPage asks the stuff service for l's results; its 400 is the page
// with the service's message, status 400.
func (h *Handler) searchPage(ctx context.Context, sess api.Session, base string, l listing) (int, searchResult, error) {
	r := searchResult{model: pages.Search{Query: l.q, Controls: l.controls(nil)}, last: 1}
	if l.q == "" {
		return http.StatusOK, r, nil
	}
	p, err := h.api.Listings.Find(ctx, sess, l.query())
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			r.model.Error = ae.Message()
			return http.StatusBadRequest, r, nil
		}
		return 0, r, err
	}
	if l.page > 1 && len(p.Stuff) == 0 {
		return 0, r, errNotFound
	}
	r.page, r.last = p, lastPage(p.Total)
	for _, it := range p.Stuff {
		r.model.Cards = append(r.model.Cards, cardOf(it))
	}
	r.model.Pager = l.pager(l.page, r.last)
	r.model.Summary = results(p.Total)
	if r.last > 1 {
		r.model.Summary += ", page " + strconv.Itoa(l.page) + " of " + strconv.Itoa(r.last)
	}
	if l.ranged() {
		r.model.RangeURL = listing{path: l.path, q: l.q, sort: l.sort, page: 1}.url(1)
	}
	return http.StatusOK, r, nil
}

// results says how many listings matched: "1 result", "12 results".
func results(n int) string {
	if n == 1 {
		return "1 result"
	}
	return strconv.Itoa(n) + " results"
}

// limitSearch takes one of the browser's searches (Options.SearchLimit):
// a 429 once it has none left. The plain home pages are not searches: they
// are the stuff service's newest listings, served from its memory.
func (h *Handler) limitSearch(c echo.Context) error {
	return web.Take(h.opts.SearchLimit, web.ClientIP(c))
}
