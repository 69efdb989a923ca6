package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/components"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
)

// The seller's pages: sell, edit and the list of their own stuff.

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
	m.Key = newKey()
	m.Intro = "List a piece of digital stuff. Buyers pay first, then see what you enter under “What the buyer gets”."
	meta := layout.Meta{Title: "Sell something · Stuffmart", Description: "List your notes, templates, e-books or licence codes for sale to fellow students.",
		Canonical: h.baseURL(c) + "/sell", NoIndex: true}
	return h.render(c, status, h.frame(c, meta, layout.NavSell, pages.StuffFormPage(m)))
}

// sellForm: GET /sell.
func (h *Handler) sellForm(c echo.Context) error {
	return h.renderSellForm(c, http.StatusOK, stuffInput{}, formErrors{})
}

// sell: POST /sell, then the new listing's page (the same one for the
// same page submitted again).
func (h *Handler) sell(c echo.Context) error {
	in := readStuffInput(c)
	body, parsed := listingInput(in)
	l, err := h.api.Selling.Create(c.Request().Context(), session.From(c).Session, submissionKey(c), body)
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
	l, err := h.api.Listings.Get(c.Request().Context(), v.Session, c.Param("id"))
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
	_, err = h.api.Selling.Update(c.Request().Context(), session.From(c).Session, l.ID, body)
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
	ls, err := h.api.Selling.Mine(c.Request().Context(), session.From(c).Session)
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
