package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/pagecache"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
)

// The seller pages: /sellers/:id, a seller's display name (never their
// email) and available stuff, newest first, linked from each of their
// stuff pages.

// validSeller reports whether id is a user id as the services write it:
// 24 lowercase hex digits (the form of the seller page's URL).
func validSeller(id string) bool {
	if len(id) != 24 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// sellerURL is page n of seller id's page.
func sellerURL(id string, n int) string {
	u := pathTo("/sellers/", id)
	if n > 1 {
		u += "?page=" + strconv.Itoa(n)
	}
	return u
}

// seller: GET /sellers/:id and ?page=N. A 404 page for an id auth does not
// know (or a banned seller's); the page still shows, with a neutral
// heading, when auth cannot tell the name right now. Anonymous renders come
// from the page cache.
func (h *Handler) seller(c echo.Context) error {
	id := c.Param("id")
	n, ok := pageParam(c.QueryParam("page"))
	if !validSeller(id) || !ok {
		return errNotFound
	}
	if err := h.limitSearch(c); err != nil {
		return err
	}
	v := session.From(c)
	base := h.baseURL(c)
	if !v.SignedIn() {
		sess := api.Session{RequestID: v.Session.RequestID, ForwardedFor: v.Session.ForwardedFor}
		return h.serveCached(c, "seller "+base+" "+sellerURL(id, n), func(ctx context.Context) (*pagecache.Page, error) {
			meta, content, err := h.sellerPage(ctx, sess, base, id, n)
			if err != nil {
				return nil, err
			}
			b, err := renderBytes(ctx, h.anonFrame(meta, "", content))
			if err != nil {
				return nil, err
			}
			return pagecache.NewPage(http.StatusOK, b), nil
		})
	}
	meta, content, err := h.sellerPage(c.Request().Context(), v.Session, base, id, n)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, h.frame(c, meta, "", content))
}

func (h *Handler) sellerPage(ctx context.Context, sess api.Session, base, id string, n int) (layout.Meta, templ.Component, error) {
	name := h.names.get(ctx, id)
	if name.missing {
		return layout.Meta{}, nil, errNotFound
	}
	p, err := h.api.Listings.Find(ctx, sess, api.Query{Seller: id, Page: n, Limit: PageSize})
	if err != nil {
		return layout.Meta{}, nil, err
	}
	if n > 1 && len(p.Stuff) == 0 {
		return layout.Meta{}, nil, errNotFound
	}
	last := lastPage(p.Total)
	m := pages.Seller{Name: name.name, Total: p.Total, First: n == 1}
	for _, it := range p.Stuff {
		m.Cards = append(m.Cards, cardOf(it))
	}
	m.Pager = listingPager(n, last, func(k int) string { return sellerURL(id, k) })
	m.Pager.PrevText, m.Pager.NextText = "← Newer", "Older →"
	return sellerMeta(base, id, name.name, n, last, p), pages.SellerPage(m), nil
}
