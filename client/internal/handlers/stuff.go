package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/pagecache"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/components"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
)

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

func homeURL(n int) string {
	if n <= 1 {
		return "/"
	}
	return "/?page=" + strconv.Itoa(n)
}

// home: GET / and /?page=N, the available stuff, newest first. Anonymous
// renders come from the page cache.
func (h *Handler) home(c echo.Context) error {
	n, ok := pageParam(c.QueryParam("page"))
	if !ok {
		return errNotFound
	}
	v := session.From(c)
	base := h.baseURL(c)
	if !v.SignedIn() {
		sess := api.Session{RequestID: v.Session.RequestID}
		return h.serveCached(c, "home "+base+" "+strconv.Itoa(n), func(ctx context.Context) (*pagecache.Page, error) {
			meta, content, err := h.homePage(ctx, sess, base, n, false)
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
	meta, content, err := h.homePage(c.Request().Context(), v.Session, base, n, true)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, h.frame(c, meta, layout.NavHome, content))
}

func (h *Handler) homePage(ctx context.Context, sess api.Session, base string, n int, signedIn bool) (layout.Meta, templ.Component, error) {
	p, err := h.api.Stuff.List(ctx, sess, n, PageSize)
	if err != nil {
		return layout.Meta{}, nil, err
	}
	if n > 1 && len(p.Stuff) == 0 {
		return layout.Meta{}, nil, errNotFound
	}
	last := max(1, (p.Total+PageSize-1)/PageSize)
	m := pages.Home{Total: p.Total, First: n == 1, SignedIn: signedIn}
	for _, l := range p.Stuff {
		m.Cards = append(m.Cards, components.Card{
			URL:     pathTo("/stuff/", l.ID),
			Title:   l.Title,
			Excerpt: excerpt(l.Description, 140),
			Price:   formatPrice(l.Price, l.Currency),
		})
	}
	if n > 1 {
		m.Pager.PrevURL = homeURL(n - 1)
	}
	if n < last {
		m.Pager.NextURL = homeURL(n + 1)
	}
	m.Pager.Label = "Page " + strconv.Itoa(n) + " of " + strconv.Itoa(last)
	meta := layout.Meta{
		Title:       "Stuffmart: digital stuff from students, for students",
		Description: "Buy notes, templates, e-books and licence codes from fellow students: " + strconv.Itoa(p.Total) + " for sale now, delivered the moment you pay.",
		Canonical:   base + homeURL(n),
	}
	if n > 1 {
		meta.Title = "Available stuff, page " + strconv.Itoa(n) + " of " + strconv.Itoa(last) + " · Stuffmart"
		meta.Description = "Page " + strconv.Itoa(n) + " of the digital stuff students sell on Stuffmart: notes, templates, e-books and licence codes."
	}
	return meta, pages.HomePage(m), nil
}

// stuff: GET /stuff/:id, one listing with BUY. Anonymous renders come from
// the page cache.
func (h *Handler) stuff(c echo.Context) error {
	id := c.Param("id")
	v := session.From(c)
	base := h.baseURL(c)
	if !v.SignedIn() {
		sess := api.Session{RequestID: v.Session.RequestID}
		return h.serveCached(c, "stuff "+base+" "+id, func(ctx context.Context) (*pagecache.Page, error) {
			l, err := h.api.Stuff.Get(ctx, sess, id)
			if err != nil {
				return nil, notFoundIf404(err)
			}
			content := pages.StuffPage(h.stuffModel(l, session.Visitor{}, ""))
			b, err := renderBytes(ctx, h.anonFrame(h.stuffMeta(l, base), "", content))
			if err != nil {
				return nil, err
			}
			return pagecache.NewPage(http.StatusOK, b), nil
		})
	}
	l, err := h.api.Stuff.Get(c.Request().Context(), v.Session, id)
	if err != nil {
		return notFoundIf404(err)
	}
	return h.renderStuff(c, http.StatusOK, l, "")
}

func (h *Handler) renderStuff(c echo.Context, status int, l api.Listing, errMsg string) error {
	m := h.stuffModel(l, session.From(c), h.csrf.Token(c))
	m.Error = errMsg
	return h.render(c, status, h.frame(c, h.stuffMeta(l, h.baseURL(c)), "", pages.StuffPage(m)))
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
func (h *Handler) stuffModel(l api.Listing, v session.Visitor, token string) pages.Stuff {
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
		CSRF:        token,
	}
	m.BadgeKind, m.BadgeText = badgeOf(l.Status)
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

// productLD is schema.org structured data of a listing.
type productLD struct {
	Context     string  `json:"@context"`
	Type        string  `json:"@type"`
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	SKU         string  `json:"sku"`
	URL         string  `json:"url"`
	Offers      offerLD `json:"offers"`
}

type offerLD struct {
	Type          string `json:"@type"`
	Price         string `json:"price"`
	PriceCurrency string `json:"priceCurrency"`
	Availability  string `json:"availability"`
	URL           string `json:"url"`
}

func availability(status string) string {
	switch status {
	case api.StatusReserved:
		return "https://schema.org/Reserved"
	case api.StatusSold:
		return "https://schema.org/SoldOut"
	default:
		return "https://schema.org/InStock"
	}
}

func (h *Handler) stuffMeta(l api.Listing, base string) layout.Meta {
	canonical := base + pathTo("/stuff/", l.ID)
	price := formatPrice(l.Price, l.Currency)
	desc := excerpt(l.Description, 155)
	if desc == "" {
		desc = "Buy " + excerpt(l.Title, 80) + " for " + price + " on Stuffmart, from a fellow student."
	}
	currency := "USD"
	if l.Currency != "" {
		currency = upper(l.Currency)
	}
	return layout.Meta{
		Title:       l.Title + " · " + price + " · " + layout.SiteName,
		Description: desc,
		Canonical:   canonical,
		OGType:      "product",
		JSONLD: productLD{
			Context: "https://schema.org", Type: "Product", Name: l.Title, Description: excerpt(l.Description, 500),
			SKU: l.ID, URL: canonical,
			Offers: offerLD{Type: "Offer", Price: decimalPrice(l.Price), PriceCurrency: currency,
				Availability: availability(l.Status), URL: canonical},
		},
	}
}

// buy: POST /stuff/:id/buy. The order holds the stuff for the buyer, who is
// sent to its page; stuff held by someone else is the 409 page.
func (h *Handler) buy(c echo.Context) error {
	id := c.Param("id")
	v := session.From(c)
	o, err := h.createOrder(c.Request().Context(), v.Session, id)
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
		l, gerr := h.api.Stuff.Get(c.Request().Context(), v.Session, id)
		if gerr != nil {
			return notFoundIf404(gerr)
		}
		return h.renderStuff(c, http.StatusBadRequest, l, apiMessage(err))
	}
	return err
}

// replicaWait bounds how long a BUY waits for the orders service to learn
// of a stuff listed a moment ago (it learns from the stuff:created event).
const replicaWait = 3 * time.Second

// createOrder orders stuff id. The orders service answers 404 for a stuff
// it has not heard of yet; when the stuff service knows it, the order is
// retried for a few seconds instead of telling the buyer it does not exist.
func (h *Handler) createOrder(ctx context.Context, sess api.Session, id string) (api.Order, error) {
	o, err := h.api.Orders.Create(ctx, sess, id)
	if api.StatusOf(err) != http.StatusNotFound {
		return o, err
	}
	if _, gerr := h.api.Stuff.Get(ctx, sess, id); gerr != nil {
		return o, err
	}
	deadline := time.Now().Add(replicaWait)
	for wait := 25 * time.Millisecond; api.StatusOf(err) == http.StatusNotFound && time.Now().Add(wait).Before(deadline); wait = min(2*wait, 400*time.Millisecond) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return o, ctx.Err()
		case <-t.C:
		}
		o, err = h.api.Orders.Create(ctx, sess, id)
	}
	return o, err
}

// stuffInput is the sell/edit form as typed.
type stuffInput struct {
	title, description, price, delivery string
}

func readStuffInput(c echo.Context) stuffInput {
	return stuffInput{title: c.FormValue("title"), description: c.FormValue("description"),
		price: c.FormValue("price"), delivery: c.FormValue("delivery")}
}

var stuffFields = []string{"title", "description", "price", "delivery"}

func (h *Handler) stuffForm(c echo.Context, in stuffInput, fe formErrors) pages.StuffForm {
	return pages.StuffForm{
		CSRF:   h.csrf.Token(c),
		Errors: fe.general,
		Title: components.Field{ID: "title", Label: "Title", Value: in.title, Error: fe.fields["title"],
			Required: true, MaxLength: 120, Hint: "Up to 120 characters."},
		Description: components.Field{ID: "description", Label: "Description", Value: in.description, Error: fe.fields["description"],
			MaxLength: 5000, Hint: "What is it, and who is it for? Up to 5,000 characters."},
		Price: components.Field{ID: "price", Label: "Price in US dollars", Value: in.price, Error: fe.fields["price"],
			Required: true, InputMode: "decimal", Hint: "For example 4.99 (from $0.01 to $10,000)."},
		Delivery: components.Field{ID: "delivery", Label: "What the buyer gets", Value: in.delivery, Error: fe.fields["delivery"],
			MaxLength: 2000, Hint: "A link or text, such as a download link or a licence code. Only you and buyers who paid see it. Up to 2,000 characters."},
	}
}

// listingInput turns the form into the service's input. A price that is
// not a number is sent as 0, so that the service still checks every other
// field and the form shows all its errors at once.
func listingInput(in stuffInput) (api.ListingInput, bool) {
	cents, ok := parsePrice(in.price)
	return api.ListingInput{Title: in.title, Description: in.description, Price: cents, Delivery: in.delivery}, ok
}

// priceError rewrites the service's price error (in cents) for a form in
// dollars, or reports a price that is not a number.
func priceError(fe *formErrors, parsed bool) {
	switch {
	case !parsed:
		fe.set("price", "Enter a price in dollars, such as 4.99.")
	case fe.fields["price"] != "":
		fe.set("price", "Enter a price from $0.01 to $10,000.")
	}
}

func (h *Handler) renderSellForm(c echo.Context, status int, in stuffInput, fe formErrors) error {
	m := h.stuffForm(c, in, fe)
	m.Heading, m.Action, m.Submit = "Sell something", "/sell", "List it for sale"
	m.Intro = "List a piece of digital stuff. Buyers pay first, then see what you enter under “What the buyer gets”."
	meta := layout.Meta{Title: "Sell something · Stuffmart", Description: "List your notes, templates, e-books or licence codes for sale to fellow students.",
		Canonical: h.baseURL(c) + "/sell", NoIndex: true}
	return h.render(c, status, h.frame(c, meta, layout.NavSell, pages.StuffFormPage(m)))
}

// sellForm: GET /sell.
func (h *Handler) sellForm(c echo.Context) error {
	return h.renderSellForm(c, http.StatusOK, stuffInput{}, formErrors{})
}

// sell: POST /sell, then the new listing's page.
func (h *Handler) sell(c echo.Context) error {
	in := readStuffInput(c)
	body, parsed := listingInput(in)
	l, err := h.api.Stuff.Create(c.Request().Context(), session.From(c).Session, body)
	if err == nil && parsed {
		return c.Redirect(http.StatusSeeOther, pathTo("/stuff/", l.ID, "?m=listed"))
	}
	fe, ok := formErrorsOf(err, stuffFields...)
	if err != nil && !ok {
		return err
	}
	priceError(&fe, parsed)
	return h.renderSellForm(c, http.StatusBadRequest, in, fe)
}

// ownListing returns the visitor's listing id, or the 404 page when it is
// someone else's.
func (h *Handler) ownListing(c echo.Context) (api.Listing, error) {
	v := session.From(c)
	l, err := h.api.Stuff.Get(c.Request().Context(), v.Session, c.Param("id"))
	if err != nil {
		return api.Listing{}, notFoundIf404(err)
	}
	if l.UserID != v.UserID() {
		return api.Listing{}, errNotFound
	}
	return l, nil
}

func (h *Handler) renderEditForm(c echo.Context, status int, l api.Listing, in stuffInput, fe formErrors) error {
	m := h.stuffForm(c, in, fe)
	m.Heading, m.Submit = "Edit “"+l.Title+"”", "Save changes"
	m.Action = pathTo("/stuff/", l.ID, "/edit")
	m.CancelURL = pathTo("/stuff/", l.ID)
	if l.Status != api.StatusAvailable && len(m.Errors) == 0 {
		m.Errors = []string{"It is being checked out or has been sold, so it cannot be edited right now."}
	}
	meta := layout.Meta{Title: "Edit " + l.Title + " · Stuffmart", Description: "Edit your listing " + excerpt(l.Title, 80) + ".",
		Canonical: h.baseURL(c) + m.Action, NoIndex: true}
	return h.render(c, status, h.frame(c, meta, "", pages.StuffFormPage(m)))
}

// editForm: GET /stuff/:id/edit, for the seller.
func (h *Handler) editForm(c echo.Context) error {
	l, err := h.ownListing(c)
	if err != nil {
		return err
	}
	in := stuffInput{title: l.Title, description: l.Description, price: inputPrice(l.Price)}
	if l.Delivery != nil {
		in.delivery = *l.Delivery
	}
	return h.renderEditForm(c, http.StatusOK, l, in, formErrors{})
}

// edit: POST /stuff/:id/edit, then the listing's page.
func (h *Handler) edit(c echo.Context) error {
	l, err := h.ownListing(c)
	if err != nil {
		return err
	}
	in := readStuffInput(c)
	body, parsed := listingInput(in)
	_, err = h.api.Stuff.Update(c.Request().Context(), session.From(c).Session, l.ID, body)
	if err == nil && parsed {
		return c.Redirect(http.StatusSeeOther, pathTo("/stuff/", l.ID, "?m=updated"))
	}
	if s := api.StatusOf(err); s == http.StatusNotFound || s == http.StatusUnauthorized {
		return errNotFound
	}
	fe, ok := formErrorsOf(err, stuffFields...)
	if err != nil && !ok {
		return err
	}
	priceError(&fe, parsed)
	return h.renderEditForm(c, http.StatusBadRequest, l, in, fe)
}

// mine: GET /mine, the seller's listings.
func (h *Handler) mine(c echo.Context) error {
	ls, err := h.api.Stuff.Mine(c.Request().Context(), session.From(c).Session)
	if err != nil {
		return err
	}
	var m pages.Mine
	for _, l := range ls {
		r := pages.MineRow{URL: pathTo("/stuff/", l.ID), Title: l.Title, Price: formatPrice(l.Price, l.Currency)}
		r.BadgeKind, r.BadgeText = badgeOf(l.Status)
		if l.Status == api.StatusAvailable {
			r.EditURL = pathTo("/stuff/", l.ID, "/edit")
		}
		m.Rows = append(m.Rows, r)
	}
	meta := layout.Meta{Title: "My stuff · Stuffmart", Description: "The stuff you sell on Stuffmart.", Canonical: h.baseURL(c) + "/mine", NoIndex: true}
	return h.render(c, http.StatusOK, h.frame(c, meta, layout.NavMine, pages.MinePage(m)))
}
