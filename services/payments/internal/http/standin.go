package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// StandIn is the offline stand-in for the provider's checkout page
// (stripe.StandIn): which attempt a session id names, and what paying it
// with a test card gives: the signed event the provider would deliver, or a
// *payments.DeclinedError or *payments.InvalidPaymentMethodError.
type StandIn interface {
	Session(id string) (orderID string, n int, ok bool)
	Pay(v payments.SessionView, card string) (payload []byte, signature string, err error)
}

// standInView is what the stand-in page shows.
type standInView struct {
	Title, Amount, Action, SuccessURL, CancelURL, Message string
	Open, Expired                                         bool
}

// standInTemplate is the stand-in page: no script and no style, so it
// needs nothing from a Content-Security-Policy but forms to itself.
var standInTemplate = template.Must(template.New("standin").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TEST MODE — Pay for {{.Title}}</title>
</head>
<body>
<header>
<p><strong>TEST MODE — no real money.</strong> Stuffmart runs without a Stripe key: this page stands in for Stripe Checkout.</p>
</header>
<main>
<h1>Pay for {{.Title}}</h1>
<p>Amount: <strong>{{.Amount}}</strong></p>
{{if .Message}}<p role="alert"><strong>{{.Message}}</strong></p>
{{end}}{{if .Open}}<p>Choose a test card:</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="card" value="4242424242424242"><button type="submit">4242 4242 4242 4242 — succeeds</button></form>
<form method="post" action="{{.Action}}"><input type="hidden" name="card" value="4000000000000002"><button type="submit">4000 0000 0000 0002 — declined</button></form>
<p><a href="{{.CancelURL}}">Cancel and go back</a></p>
{{else if .Expired}}<p>This checkout session has expired.</p>
<p><a href="{{.CancelURL}}">Back to the order</a></p>
{{else}}<p>This checkout session is paid.</p>
<p><a href="{{.SuccessURL}}">Back to the order</a></p>
{{end}}</main>
</body>
</html>
`))

// standInSession returns the session the request names, if it is the
// signed-in caller's: anyone else (anonymous included) gets 404, as for a
// session that does not exist.
func (h *Handler) standInSession(c echo.Context) (payments.SessionView, error) {
	u, ok := auth.FromEcho(c)
	if !ok {
		return payments.SessionView{}, errs.ErrNotFound
	}
	id := c.Param("id")
	orderID, n, ok := h.standIn.Session(id)
	if !ok {
		return payments.SessionView{}, errs.ErrNotFound
	}
	return h.sessions.SessionView(c.Request().Context(), u.ID, orderID, n, id)
}

// standInPage shows the session to its buyer: the stuff and the amount and
// a form per test card while it is open; that it expired, or was paid.
func (h *Handler) standInPage(c echo.Context) error {
	v, err := h.standInSession(c)
	if err != nil {
		return err
	}
	return renderStandIn(c, http.StatusOK, v, "")
}

// standInPay pays the session with the test card of the form (field card),
// as the provider's page does: a decline is shown on the page, which offers
// the cards again; a payment is the provider's signed
// checkout.session.completed, delivered over HTTP to this service's own
// webhook (the real handler) through the listener the request came in on,
// and the buyer is sent to the success URL. Cross-site posts are refused by
// the shared SameOrigin guard; only the session's buyer may pay it.
func (h *Handler) standInPay(c echo.Context) error {
	v, err := h.standInSession(c)
	if err != nil {
		return err
	}
	if v.Status != payments.SessionOpen {
		return renderStandIn(c, http.StatusConflict, v, "")
	}
	payload, signature, err := h.standIn.Pay(v, c.FormValue("card"))
	var declined *payments.DeclinedError
	var invalid *payments.InvalidPaymentMethodError
	switch {
	case errors.As(err, &declined):
		return renderStandIn(c, http.StatusPaymentRequired, v, declined.Message)
	case errors.As(err, &invalid):
		return renderStandIn(c, http.StatusBadRequest, v, invalid.Message)
	case err != nil:
		return err
	}
	if err := h.deliver(c.Request(), payload, signature); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, v.SuccessURL)
}

// deliver posts a signed event to this service's webhook, on the local
// address r came in on (loopback with the same port when that address is
// not a loopback one: a pod reaches itself there whatever its network
// policies).
func (h *Handler) deliver(r *http.Request, payload []byte, signature string) error {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return errors.New("stand-in: the request has no local address")
	}
	host, port, err := net.SplitHostPort(local.String())
	if err != nil {
		return fmt.Errorf("stand-in: local address %s: %w", local, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		host = "127.0.0.1"
	}
	ctx := context.WithoutCancel(r.Context()) // the money is taken: deliver it even if the buyer goes away
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(host, port)+"/api/payments/webhook", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set(echo.HeaderContentType, "application/json; charset=utf-8")
	req.Header.Set(signatureHeader, signature)
	res, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("stand-in: deliver the event to the webhook: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512)) // for the error only
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("stand-in: the webhook answered %d: %s", res.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func renderStandIn(c echo.Context, status int, v payments.SessionView, message string) error {
	view := standInView{
		Title: v.Title, Amount: formatAmount(v.Amount, v.Currency), Action: c.Request().URL.Path,
		SuccessURL: v.SuccessURL, CancelURL: v.CancelURL, Message: message,
		Open: v.Status == payments.SessionOpen, Expired: v.Status == payments.SessionExpired,
	}
	var buf bytes.Buffer
	if err := standInTemplate.Execute(&buf, view); err != nil {
		return fmt.Errorf("render the stand-in page: %w", err)
	}
	hdr := c.Response().Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "same-origin")
	return c.HTMLBlob(status, buf.Bytes())
}

// formatAmount writes cents of currency as "19.99 USD".
func formatAmount(cents int64, currency string) string {
	return fmt.Sprintf("%d.%02d %s", cents/100, cents%100, strings.ToUpper(currency))
}
