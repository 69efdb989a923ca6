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
	"github.com/stuffmart/stuffmart/client/internal/views/components"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
)

// The listing pages: the home page, a stuff's page and its BUY. Their
// meta and structured data are in seo.go; the seller's pages in sell.go.

// pageParam reads the home page's ?page= (1 when absent); ok is false for
// anything but a page number.
func pageParam(raw string) (int, bool) {
	if raw == "" {
		return 1, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > MaxPage || strconv.Itoa(n) != raw {
		return 0, false
	}
	return n, true
}

// home: GET /, the available stuff, newest first, or sorted and in a
// price range (?sort=&min=&max=), a page at a time (?page=N). Anonymous
// renders come from the page cache, keyed on the normalized URL.
func (h *Handler) home(c echo.Context) error {
	l, errs, ok := parseListing(c, homePath)
	if !ok {
		return errNotFound
	}
	if l.filtered() {
		if err := h.limitSearch(c); err != nil {
			return err
		}
	}
	v := session.From(c)
	base := h.baseURL(c)
	if len(errs) > 0 {
		return h.render(c, http.StatusBadRequest, h.frame(c, invalidListingMeta(l), layout.NavHome,
			pages.HomePage(pages.Home{Controls: l.controls(errs), Invalid: true, SignedIn: v.SignedIn()})))
	}
	if !v.SignedIn() {
		sess := api.Session{RequestID: v.Session.RequestID, ForwardedFor: v.Session.ForwardedFor}
		return h.serveCached(c, "home "+base+" "+l.url(l.page), func(ctx context.Context) (*pagecache.Page, error) {
			meta, content, err := h.homePage(ctx, sess, base, l, false)
			if err != nil {
				return nil, err
			}
			b, err := renderBytes(ctx, h.anonFrame(meta, layout.NavHome, content))
			if err != nil {
				return nil, err
			}
			return pagecache.NewPage(http.StatusOK, b), nil
		})
	}
	meta, content, err := h.homePage(c.Request().Context(), v.Session, base, l, true)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, h.frame(c, meta, layout.NavHome, content))
}

func (h *Handler) homePage(ctx context.Context, sess api.Session, base string, l listing, signedIn bool) (layout.Meta, templ.Component, error) {
	p, err := h.api.Listings.Find(ctx, sess, l.query())
	if err != nil {
		return layout.Meta{}, nil, err
	}
	n := l.page
	if n > 1 && len(p.Stuff) == 0 {
		return layout.Meta{}, nil, errNotFound
	}
	last := lastPage(p.Total)
	m := pages.Home{Total: p.Total, First: n == 1 && !l.filtered(), SignedIn: signedIn,
		Controls: l.controls(nil), Filtered: l.ranged()}
	for _, it := range p.Stuff {
		m.Cards = append(m.Cards, cardOf(it))
	}
	m.Pager = l.pager(n, last)
	return homeMeta(base, l, last, p), pages.HomePage(m), nil
}

// stuff: GET /stuff/:id, one listing with BUY. Anonymous renders come from
// the page cache.
func (h *Handler) stuff(c echo.Context) error {
	id := c.Param("id")
	v := session.From(c)
	base := h.baseURL(c)
	if !v.SignedIn() {
		sess := api.Session{RequestID: v.Session.RequestID, ForwardedFor: v.Session.ForwardedFor}
		return h.serveCached(c, "stuff "+base+" "+id, func(ctx context.Context) (*pagecache.Page, error) {
			l, err := h.api.Listings.Get(ctx, sess, id)
			if err != nil {
				return nil, notFoundIf404(err)
			}
			seller := h.names.get(ctx, l.UserID)
			content := pages.StuffPage(h.stuffModel(l, seller, session.Visitor{}, ""))
			b, err := renderBytes(ctx, h.anonFrame(h.stuffMeta(l, seller, base), "", content))
			if err != nil {
				return nil, err
			}
			return pagecache.NewPage(http.StatusOK, b), nil
		})
	}
	l, err := h.api.Listings.Get(c.Request().Context(), v.Session, id)
	if err != nil {
		return notFoundIf404(err)
	}
	return h.renderStuff(c, http.StatusOK, l, "")
}

func (h *Handler) renderStuff(c echo.Context, status int, l api.Listing, errMsg string) error {
	seller := h.names.get(c.Request().Context(), l.UserID)
	m := h.stuffModel(l, seller, session.From(c), h.csrf.Token(c))
	m.Error = errMsg
	if m.CanBuy {
		m.Key = newKey()
	}
	return h.render(c, status, h.frame(c, h.stuffMeta(l, seller, h.baseURL(c)), "", pages.StuffPage(m)))
}

func notFoundIf404(err error) error {
	if api.StatusOf(err) == http.StatusNotFound {
		return errNotFound
	}
	return err
}

// badgeOf is how a listing's status is shown.
func badgeOf(status string) (kind, text string) {
	switch status {
	case api.StatusReserved:
		return "reserved", "Being checked out"
	case api.StatusSold:
		return "sold", "Sold"
	default:
		return "available", "Available"
	}
}

// stuffModel decides what the visitor sees of a listing and may do with it.
// seller is the seller's name as far as it is known.
func (h *Handler) stuffModel(l api.Listing, seller sellerName, v session.Visitor, token string) pages.Stuff {
	m := pages.Stuff{
		ID:          l.ID,
		Title:       l.Title,
		Description: l.Description,
		Price:       formatPrice(l.Price, l.Currency),
		Listed:      formatTime(l.CreatedAt),
		ListedISO:   isoTime(l.CreatedAt),
		Held:        l.Status == api.StatusReserved,
		Sold:        l.Status == api.StatusSold,
		IsSeller:    v.SignedIn() && v.UserID() == l.UserID,
		BuyURL:      pathTo("/stuff/", l.ID, "/buy"),
		Hold:        h.hold,
		CSRF:        token,
	}
	m.BadgeKind, m.BadgeText = badgeOf(l.Status)
	m.Crumbs = []components.Crumb{{Name: "Home", URL: "/"}}
	if validSeller(l.UserID) && !seller.missing {
		m.SellerURL = sellerURL(l.UserID, 1)
		m.SellerName = seller.name
		if seller.name != "" {
			m.Crumbs = append(m.Crumbs, components.Crumb{Name: seller.name, URL: m.SellerURL})
		}
	}
	m.Crumbs = append(m.Crumbs, components.Crumb{Name: l.Title})
	available := l.Status == api.StatusAvailable
	if l.Delivery != nil {
		m.Delivery = *l.Delivery
		m.DeliveryURL = linkOf(m.Delivery)
		m.Bought = !m.IsSeller
	}
	switch {
	case m.IsSeller:
		if available {
			m.EditURL = pathTo("/stuff/", l.ID, "/edit")
		}
	case !v.SignedIn():
		if available {
			m.SignInTo = "/signin?next=" + urlQueryEscape(pathTo("/stuff/", l.ID))
		}
	default:
		m.CanBuy = available && !m.Bought
	}
	return m
}

// buy: POST /stuff/:id/buy. The order holds the stuff for the buyer, who is
// sent to its page (the same order for the same page submitted again);
// stuff held by someone else is the 409 page.
func (h *Handler) buy(c echo.Context) error {
	id := c.Param("id")
	v := session.From(c)
	o, err := h.api.Buying.Create(c.Request().Context(), v.Session, submissionKey(c), id)
	switch api.StatusOf(err) {
	case 0:
		if err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, pathTo("/orders/", o.ID))
	case http.StatusConflict:
		return held(pathTo("/stuff/", id))
	case http.StatusNotFound:
		return errNotFound
	case http.StatusUnauthorized:
		return c.Redirect(http.StatusSeeOther, "/signin")
	case http.StatusBadRequest:
		// Own stuff, or sold meanwhile: the stuff page says why.
		l, gerr := h.api.Listings.Get(c.Request().Context(), v.Session, id)
		if gerr != nil {
			return notFoundIf404(gerr)
		}
		return h.renderStuff(c, http.StatusBadRequest, l, apiMessage(err))
	}
	return err
}
