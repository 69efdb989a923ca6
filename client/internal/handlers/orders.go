package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/components"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
)

// TestCards are Stripe's test payment methods that the payments service's
// offline test mode (and Stripe in test mode) understands.
var TestCards = []components.Choice{
	{Value: "pm_card_visa", Label: "Visa ending 4242", Hint: "succeeds"},
	{Value: "pm_card_chargeDeclined", Label: "Card that is declined", Hint: "test a decline"},
	{Value: "pm_card_insufficientFunds", Label: "Card with insufficient funds", Hint: "test a decline"},
}

func testCard(v string) bool {
	for _, c := range TestCards {
		if c.Value == v {
			return true
		}
	}
	return false
}

// orderState is how an order is shown at a moment.
type orderState struct {
	kind, text string
	payable    bool // created and before its deadline
	expired    bool
	cancelled  bool
	complete   bool
}

// stateOf decides how an order is shown at now. An order that is still
// created after its deadline is expired (the expiration service cancels it
// within a second); a cancelled order whose deadline has passed is shown as
// expired too (the orders service does not say why an order was cancelled).
func stateOf(o api.Order, now time.Time) orderState {
	over := !now.Before(o.ExpiresAt)
	switch {
	case o.Status == api.OrderComplete:
		return orderState{kind: "complete", text: "Paid", complete: true}
	case o.Status == api.OrderCancelled && over:
		return orderState{kind: "expired", text: "Expired", expired: true}
	case o.Status == api.OrderCancelled:
		return orderState{kind: "cancelled", text: "Cancelled", cancelled: true}
	case over:
		return orderState{kind: "expired", text: "Expired", expired: true}
	default:
		return orderState{kind: "created", text: "Waiting for payment", payable: true}
	}
}

// orders: GET /orders, the buyer's orders.
func (h *Handler) orders(c echo.Context) error {
	list, err := h.api.Orders.List(c.Request().Context(), session.From(c).Session)
	if err != nil {
		return err
	}
	now := h.opts.Now()
	var m pages.Orders
	for _, o := range list {
		st := stateOf(o, now)
		r := pages.OrderRow{URL: pathTo("/orders/", o.ID), Title: o.Stuff.Title, Price: formatPrice(o.Stuff.Price, o.Stuff.Currency),
			Created: formatTime(o.CreatedAt), BadgeKind: st.kind, BadgeText: st.text}
		if st.complete {
			r.ContentURL = pathTo("/orders/", o.ID, "/content")
		}
		m.Rows = append(m.Rows, r)
	}
	meta := layout.Meta{Title: "My orders · Stuffmart", Description: "Your Stuffmart orders and what you bought.",
		Canonical: h.baseURL(c) + "/orders", NoIndex: true}
	return h.render(c, http.StatusOK, h.frame(c, meta, layout.NavOrders, pages.OrdersPage(m)))
}

// myOrder returns the visitor's order, or the 404 page (for an unknown
// order and for someone else's alike).
func (h *Handler) myOrder(c echo.Context) (api.Order, error) {
	o, err := h.api.Orders.Get(c.Request().Context(), session.From(c).Session, c.Param("id"))
	if s := api.StatusOf(err); s == http.StatusNotFound || s == http.StatusUnauthorized {
		return api.Order{}, errNotFound
	}
	return o, err
}

// payForm is the payment form as typed.
type payForm struct {
	method, coupon string
}

// orderModel is the order page at now, with the payment form's input and
// errors.
func (h *Handler) orderModel(c echo.Context, o api.Order, in payForm, fe formErrors) pages.Order {
	now := h.opts.Now()
	st := stateOf(o, now)
	m := pages.Order{
		ID: o.ID, Title: o.Stuff.Title, StuffURL: pathTo("/stuff/", o.Stuff.ID),
		Price: formatPrice(o.Stuff.Price, o.Stuff.Currency), Created: formatTime(o.CreatedAt),
		BadgeKind: st.kind, BadgeText: st.text,
		Deadline: formatClock(o.ExpiresAt), DeadlineISO: isoTime(o.ExpiresAt),
		Payable: st.payable, Expired: st.expired, Cancelled: st.cancelled, Complete: st.complete,
		ContentURL: pathTo("/orders/", o.ID, "/content"),
		PayAction:  pathTo("/orders/", o.ID, "/pay"),
		CancelURL:  pathTo("/orders/", o.ID, "/cancel"),
		Offline:    h.opts.PaymentsOffline,
		Errors:     fe.general,
	}
	if st.payable {
		m.CSRF = h.csrf.Token(c)
		m.Key = newKey()
		left := o.ExpiresAt.Sub(now)
		m.RemainingMS = left.Milliseconds()
		m.Remaining = formatRemaining(left)
	}
	method := in.method
	if method == "" {
		method = TestCards[0].Value
	}
	for _, card := range TestCards {
		card.Checked = card.Value == method
		m.Cards = append(m.Cards, card)
	}
	m.MethodError = fe.fields["paymentMethod"]
	m.MethodField = components.Field{ID: "paymentMethod", Label: "Payment method", Value: in.method, Error: m.MethodError,
		Hint: "A Stripe payment method id, such as pm_card_visa."}
	m.Coupon = components.Field{ID: "coupon", Label: "Coupon code (optional)", Value: in.coupon, Error: fe.fields["coupon"],
		Autocomplete: "off", Hint: "A 100% coupon pays the whole order: no card needed."}
	return m
}

func (h *Handler) renderOrder(c echo.Context, status int, o api.Order, in payForm, fe formErrors) error {
	m := h.orderModel(c, o, in, fe)
	meta := layout.Meta{Title: "Order: " + o.Stuff.Title + " · Stuffmart", Description: "Your order of " + excerpt(o.Stuff.Title, 80) + " on Stuffmart.",
		Canonical: h.baseURL(c) + pathTo("/orders/", o.ID), NoIndex: true}
	if m.Payable {
		meta.Scripts = []string{h.assets.URL("countdown.js")}
	}
	return h.render(c, status, h.frame(c, meta, layout.NavOrders, pages.OrderPage(m)))
}

// order: GET /orders/:id, with the countdown and payment form while it may
// be paid.
func (h *Handler) order(c echo.Context) error {
	o, err := h.myOrder(c)
	if err != nil {
		return err
	}
	return h.renderOrder(c, http.StatusOK, o, payForm{}, formErrors{})
}

// pay: POST /orders/:id/pay with a card (test card in offline mode) and/or
// a coupon; then the purchased content. The same page submitted again is
// the same payment, never a second charge. A declined card or a bad coupon
// shows the order page again with the error next to its field.
func (h *Handler) pay(c echo.Context) error {
	o, err := h.myOrder(c)
	if err != nil {
		return err
	}
	in := payForm{method: strings.TrimSpace(c.FormValue("paymentMethod")), coupon: strings.TrimSpace(c.FormValue("coupon"))}
	if h.opts.PaymentsOffline && in.method != "" && !testCard(in.method) {
		var fe formErrors
		fe.set("paymentMethod", "Choose one of the test cards.")
		return h.renderOrder(c, http.StatusBadRequest, o, in, fe)
	}
	_, err = h.api.Paying.Pay(c.Request().Context(), session.From(c).Session, submissionKey(c),
		api.PayInput{OrderID: o.ID, PaymentMethod: in.method, Coupon: in.coupon})
	if err == nil {
		return c.Redirect(http.StatusSeeOther, pathTo("/orders/", o.ID, "/content"))
	}
	if s := api.StatusOf(err); s == http.StatusNotFound || s == http.StatusUnauthorized {
		return errNotFound
	}
	fe, ok := formErrorsOf(err, "paymentMethod", "coupon")
	if !ok {
		return err
	}
	// The order may have changed (paid elsewhere, cancelled, expired).
	if fresh, gerr := h.myOrder(c); gerr == nil {
		o = fresh
	}
	return h.renderOrder(c, http.StatusBadRequest, o, in, fe)
}

// cancel: POST /orders/:id/cancel, releasing the stuff.
func (h *Handler) cancel(c echo.Context) error {
	o, err := h.myOrder(c)
	if err != nil {
		return err
	}
	err = h.api.Orders.Cancel(c.Request().Context(), session.From(c).Session, o.ID)
	if err == nil {
		return c.Redirect(http.StatusSeeOther, pathTo("/orders/", o.ID, "?m=cancelled"))
	}
	fe, ok := formErrorsOf(err)
	if !ok {
		return notFoundIf404(err)
	}
	return h.renderOrder(c, http.StatusBadRequest, o, payForm{}, fe)
}

// pendingFor is how long after its deadline an unpaid order's content page
// keeps waiting for the payment to be recorded.
const pendingFor = 30 * time.Second

// content: GET /orders/:id/content, what the buyer bought. Right after a
// payment the sale may still be on its way to the stuff service: the page
// says so and reloads itself (no JavaScript needed).
func (h *Handler) content(c echo.Context) error {
	o, err := h.myOrder(c)
	if err != nil {
		return err
	}
	v := session.From(c)
	m := pages.Content{Title: o.Stuff.Title, StuffURL: pathTo("/stuff/", o.Stuff.ID), OrderURL: pathTo("/orders/", o.ID)}
	l, err := h.api.Listings.Get(c.Request().Context(), v.Session, o.Stuff.ID)
	if err != nil && api.StatusOf(err) != http.StatusNotFound {
		return err
	}
	now := h.opts.Now()
	switch {
	case err == nil && l.Delivery != nil && o.Status == api.OrderComplete:
		m.Delivery = *l.Delivery
		m.DeliveryURL = linkOf(m.Delivery)
	case o.Status == api.OrderCancelled || (o.Status == api.OrderCreated && now.After(o.ExpiresAt.Add(pendingFor))):
		m.Cancelled = true
	default:
		m.Pending = true
	}
	meta := layout.Meta{Title: "What you bought: " + o.Stuff.Title + " · Stuffmart", Description: "The content of your purchase on Stuffmart.",
		Canonical: h.baseURL(c) + pathTo("/orders/", o.ID, "/content"), NoIndex: true}
	if m.Pending {
		meta.Refresh = 2
	}
	return h.render(c, http.StatusOK, h.frame(c, meta, layout.NavOrders, pages.ContentPage(m)))
}
