package handlers

import (
	"errors"
	"net/http"
	"regexp"
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

// payForm is a payment form as typed: the payment-method form, or the
// "Pay by card" form when checkout is set.
type payForm struct {
	method, coupon string
	checkout       bool
}

// paidQuery is the order page's query parameter that says the buyer is back
// from a card checkout they paid (the checkout's success URL).
const paidQuery = "paid"

// backFromCheckout reports whether the request is the buyer's return from a
// paid card checkout (?paid=1).
func backFromCheckout(c echo.Context) bool { return c.QueryParam(paidQuery) == "1" }

// sessionQuery names the checkout session the buyer is back from, in the
// success URL: the card processor replaces sessionPlaceholder (Stripe's
// template variable) with the session's id.
const (
	sessionQuery       = "session_id"
	sessionPlaceholder = "{CHECKOUT_SESSION_ID}"
)

// sessionIDRE is what a checkout session id looks like (Stripe's cs_…, the
// offline stand-in's cs_offline_…); anything else is not asked about.
var sessionIDRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,255}$`)

// confirmCheckout has payments confirm the checkout session the buyer is
// back from, when the order still waits for its payment: should the card
// processor's webhook be late or failing, payments records the payment now
// and the page's next reload finds the order complete. A failure only
// leaves the page waiting for the webhook, as before; it is logged.
func (h *Handler) confirmCheckout(c echo.Context, o api.Order) {
	id := c.QueryParam(sessionQuery)
	if o.Status != api.OrderCreated || !sessionIDRE.MatchString(id) {
		return
	}
	ctx := c.Request().Context()
	_, err := h.api.Paying.ConfirmCheckout(ctx, session.From(c).Session, o.ID, id)
	switch s := api.StatusOf(err); {
	case err == nil:
	case s >= 400 && s < 500 && s != http.StatusTooManyRequests:
		// A session that is not the order's (a hand-made URL): every
		// reload of the page would say so again.
		h.log.DebugContext(ctx, "checkout session not confirmed", "order_id", o.ID, "session", id, "status", s)
	default:
		h.log.WarnContext(ctx, "confirm checkout session", "order_id", o.ID, "session", id, "err", err)
	}
}

// confirming reports whether the order page says that a card payment is
// being confirmed: the buyer is back from a paid checkout (paid) while the
// order is still created. The card processor tells the payments service of
// the payment by a signed webhook, which may arrive after the buyer: the
// page waits for it up to pendingFor after the deadline, as the content
// page does, since a payment made in time may be recorded a little late.
func confirming(o api.Order, now time.Time, paid bool) bool {
	return paid && o.Status == api.OrderCreated && now.Before(o.ExpiresAt.Add(pendingFor))
}

// orderModel is the order page at now, with the payment form's input and
// errors.
func (h *Handler) orderModel(c echo.Context, o api.Order, in payForm, fe formErrors) pages.Order {
	now := h.opts.Now()
	st := stateOf(o, now)
	paid := backFromCheckout(c)
	wait := confirming(o, now, paid)
	if wait {
		st = orderState{kind: "created", text: "Confirming payment"}
	}
	m := pages.Order{
		ID: o.ID, Title: o.Stuff.Title, StuffURL: pathTo("/stuff/", o.Stuff.ID),
		Price: formatPrice(o.Stuff.Price, o.Stuff.Currency), Created: formatTime(o.CreatedAt),
		BadgeKind: st.kind, BadgeText: st.text,
		Deadline: formatClock(o.ExpiresAt), DeadlineISO: isoTime(o.ExpiresAt),
		Payable: st.payable, Expired: st.expired, Cancelled: st.cancelled, Complete: st.complete,
		Confirming: wait, EndedAfterPayment: paid && (st.expired || st.cancelled),
		ContentURL:     pathTo("/orders/", o.ID, "/content"),
		PayAction:      pathTo("/orders/", o.ID, "/pay"),
		CheckoutAction: pathTo("/orders/", o.ID, "/checkout"),
		CancelURL:      pathTo("/orders/", o.ID, "/cancel"),
		Offline:        h.opts.PaymentsOffline,
		Errors:         fe.general,
	}
	if st.payable {
		m.CSRF = h.csrf.Token(c)
		// Each form is a submission of its own.
		m.Key = newKey()
		m.CheckoutKey = newKey()
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
	m.Coupon = components.Field{ID: "coupon", Label: "Coupon code (optional)",
		Autocomplete: "off", Hint: "A 100% coupon pays the whole order: no card needed."}
	m.CheckoutCoupon = components.Field{ID: "checkout-coupon", Name: "coupon", Label: "Coupon code (optional)",
		Autocomplete: "off", Hint: "Taken off the price before you pay; a 100% coupon pays the whole order."}
	// The coupon and its error go back to the form that was sent.
	if in.checkout {
		m.CheckoutCoupon.Value, m.CheckoutCoupon.Error = in.coupon, fe.fields["coupon"]
	} else {
		m.Coupon.Value, m.Coupon.Error = in.coupon, fe.fields["coupon"]
	}
	return m
}

func (h *Handler) renderOrder(c echo.Context, status int, o api.Order, in payForm, fe formErrors) error {
	m := h.orderModel(c, o, in, fe)
	meta := layout.Meta{Title: "Order: " + o.Stuff.Title + " · Stuffmart", Description: "Your order of " + excerpt(o.Stuff.Title, 80) + " on Stuffmart.",
		Canonical: h.baseURL(c) + pathTo("/orders/", o.ID), NoIndex: true}
	if m.Payable {
		meta.Scripts = []string{h.assets.URL("countdown.js")}
	}
	if m.Confirming {
		// Reloads until the payment is recorded, with or without
		// JavaScript (the CSP allows no inline script anyway).
		meta.Refresh = 2
	}
	return h.render(c, status, h.frame(c, meta, layout.NavOrders, pages.OrderPage(m)))
}

// order: GET /orders/:id, with the countdown and payment forms while it may
// be paid. Back from a paid card checkout (?paid=1), it says the payment is
// being confirmed and reloads itself until the order is complete, then
// sends the buyer to what they bought.
func (h *Handler) order(c echo.Context) error {
	o, err := h.myOrder(c)
	if err != nil {
		return err
	}
	if backFromCheckout(c) {
		h.confirmCheckout(c, o)
	}
	if backFromCheckout(c) && o.Status == api.OrderComplete {
		c.Response().Header().Set("Cache-Control", "private, no-store")
		return c.Redirect(http.StatusSeeOther, pathTo("/orders/", o.ID, "/content"))
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

// checkout: POST /orders/:id/checkout, "Pay by card" with an optional
// coupon. The payments service starts a card checkout of the order (or
// gives the open one again) and the buyer is sent to its hosted page, which
// brings them back to the order page: with ?paid=1 and the session's id
// once paid (the page then confirms the session and waits for the payment
// to be recorded), without when they give up. A
// coupon that makes the order free pays it at once: the buyer goes straight
// to the order page, paid. The URLs are the storefront's public ones
// (PublicURL, or the request's own origin), since the buyer's browser
// follows them. A refusal (a bad coupon, an order that can no longer be
// paid, too many tries) shows the order page again with its message.
func (h *Handler) checkout(c echo.Context) error {
	o, err := h.myOrder(c)
	if err != nil {
		return err
	}
	in := payForm{coupon: strings.TrimSpace(c.FormValue("coupon")), checkout: true}
	page := h.baseURL(c) + pathTo("/orders/", o.ID)
	out, err := h.api.Paying.Checkout(c.Request().Context(), session.From(c).Session, submissionKey(c), api.CheckoutInput{
		OrderID: o.ID, Coupon: in.coupon, SuccessURL: page + "?" + paidQuery + "=1&" + sessionQuery + "=" + sessionPlaceholder, CancelURL: page})
	switch {
	case err == nil && out.Completed:
		return c.Redirect(http.StatusSeeOther, pathTo("/orders/", o.ID, "?"+paidQuery+"=1"))
	case err == nil:
		return c.Redirect(http.StatusSeeOther, out.URL)
	}
	status, fe, ok := checkoutErrorsOf(err)
	if !ok {
		return err
	}
	// The order may have changed (paid elsewhere, cancelled, expired).
	if fresh, gerr := h.myOrder(c); gerr == nil {
		o = fresh
	}
	return h.renderOrder(c, status, o, in, fe)
}

// checkoutErrorsOf returns the status and messages of a refused checkout
// that the order page shows (the coupon's error next to its field), or ok
// false for an error that is not a refusal: a 400 (a bad coupon, an order
// that can no longer be paid), a 409 (the same submission still being
// answered, or the order's state changing meanwhile), a 429 (too many
// tries), or a 404, which after the buyer's own order was found can only
// mean that the payments service has not heard of it yet.
func checkoutErrorsOf(err error) (int, formErrors, bool) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return 0, formErrors{}, false
	}
	switch ae.Status {
	case http.StatusBadRequest, http.StatusPaymentRequired:
		fe, ok := formErrorsOf(err, "coupon")
		return http.StatusBadRequest, fe, ok
	case http.StatusNotFound:
		return ae.Status, formErrors{general: []string{"Payments has not heard of this order yet. Please try again in a moment."}}, true
	case http.StatusConflict, http.StatusTooManyRequests:
		return ae.Status, formErrors{general: []string{ae.Message()}}, true
	}
	return 0, formErrors{}, false
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
