package http

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Payer pays an order for its buyer, by payment method or on the
// provider's checkout page (payments.Service).
type Payer interface {
	Pay(ctx context.Context, userID string, in payments.PayInput) (payments.Payment, error)
	Checkout(ctx context.Context, userID string, in payments.CheckoutInput) (payments.CheckoutResult, error)
}

// Coupons makes and lists coupons for admins (payments.Service).
type Coupons interface {
	CreateCoupon(ctx context.Context, adminID string, in payments.NewCoupon) (payments.Coupon, error)
	Coupons(ctx context.Context) ([]payments.Coupon, error)
}

// Sessions applies the provider's checkout session events and shows a
// session to its buyer (payments.Service).
type Sessions interface {
	HandleSessionEvent(ctx context.Context, ev payments.SessionEvent) error
	SessionView(ctx context.Context, userID, orderID string, n int, sessionID string) (payments.SessionView, error)
	ConfirmCheckout(ctx context.Context, userID, orderID, sessionID string) (bool, error)
}

// Webhook verifies a webhook delivery and reads its event (stripe.Webhooks).
// A refused delivery is an error that answers 400 (an errs.Error).
type Webhook interface {
	Parse(payload []byte, signature string) (payments.SessionEvent, error)
}

// signatureHeader carries the provider's signature of a webhook delivery.
const signatureHeader = "Stripe-Signature"

// Handler answers the API's requests (see Routes).
type Handler struct {
	payer    Payer
	coupons  Coupons
	sessions Sessions
	hook     Webhook
	log      *slog.Logger
	standIn  StandIn
	client   *http.Client // the stand-in's deliveries to the webhook
	// origin is the storefront's public origin ("scheme://host"), which
	// return URLs must be on; empty: any.
	origin string
}

// NewHandler returns the handlers over payer, coupons and sessions, taking
// webhook deliveries through hook. Errors it handles itself (a refused
// webhook delivery) are logged to log.
func NewHandler(payer Payer, coupons Coupons, sessions Sessions, hook Webhook, log *slog.Logger) *Handler {
	return &Handler{payer: payer, coupons: coupons, sessions: sessions, hook: hook, log: log}
}

// WithPublicURL makes the handler accept checkout return URLs only on the
// origin of publicURL, the storefront's (empty: any origin).
func (h *Handler) WithPublicURL(publicURL string) *Handler {
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
		h.origin = u.Scheme + "://" + u.Host
	}
	return h
}

// WithStandIn has the handler serve the offline stand-in for the
// provider's checkout page (offline test mode only) and returns it.
func (h *Handler) WithStandIn(s StandIn) *Handler {
	h.standIn = s
	h.client = &http.Client{Timeout: 30 * time.Second}
	return h
}

// pay charges an order. A request with an Idempotency-Key mints the
// payment's id from the key (and the key's first claim), so that a retry
// whose first try died finds that try's charge instead of making another.
func (h *Handler) pay(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireUser ran
	var req payRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	in := req.input()
	if i, ok := web.IdempotencyOf(c.Request().Context()); ok {
		in.PaymentID = mongox.DerivedObjectID(i.Since, u.ID, i.Key).Hex()
	}
	p, err := h.payer.Pay(c.Request().Context(), u.ID, in)
	if err != nil {
		return payError(err)
	}
	return c.JSON(http.StatusCreated, toPaymentResponse(p))
}

// checkout starts (or resumes) the payment of an order on the provider's
// checkout page: 201 with the session's id and url, or completed when a
// coupon paid the whole order. The session's metadata carries the request's
// correlation id, so the events its payment causes carry it too.
func (h *Handler) checkout(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireUser ran
	var req checkoutRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	if err := req.leadsBack(h.origin); err != nil {
		return err
	}
	ctx := c.Request().Context()
	in := payments.CheckoutInput{OrderID: req.OrderID, Coupon: req.Coupon, SuccessURL: req.SuccessURL, CancelURL: req.CancelURL,
		CorrelationID: correlation.ID(ctx)}
	if i, ok := web.IdempotencyOf(ctx); ok {
		in.PaymentID = mongox.DerivedObjectID(i.Since, u.ID, i.Key).Hex()
	}
	res, err := h.payer.Checkout(ctx, u.ID, in)
	if err != nil {
		return payError(err)
	}
	return c.JSON(http.StatusCreated, checkoutResponse{ID: res.SessionID, URL: res.URL, Completed: res.Completed})
}

// confirmCheckout is the storefront's order page, where the buyer lands
// back from a paid checkout: it has payments ask the provider about the
// session and record its payment if its webhook event has not (see
// payments.Service.ConfirmCheckout). 200 {"paid": …}.
func (h *Handler) confirmCheckout(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireUser ran
	var req confirmRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	paid, err := h.sessions.ConfirmCheckout(c.Request().Context(), u.ID, req.OrderID, req.SessionID)
	if err != nil {
		return payError(err)
	}
	return c.JSON(http.StatusOK, confirmResponse{Paid: paid})
}

// webhook takes the provider's signed event deliveries. The raw body is
// verified against its signature before anything else; a refused delivery
// is a 400 and changes nothing. The event then runs with the correlation
// id of the purchase that made its session (its metadata), so its logs and
// the events it publishes carry it. 200 once applied (or of no interest);
// a 500 has the provider deliver it again.
func (h *Handler) webhook(c echo.Context) error {
	r := c.Request()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err // over the body limit: 413
	}
	ev, err := h.hook.Parse(body, r.Header.Get(signatureHeader))
	if err != nil {
		h.log.WarnContext(r.Context(), "webhook delivery refused", "err", err, "remote", c.RealIP())
		return err
	}
	ctx := correlation.With(r.Context(), ev.CorrelationID)
	c.SetRequest(r.WithContext(ctx))
	if err := h.sessions.HandleSessionEvent(ctx, ev); err != nil {
		return fmt.Errorf("handle event %s (%s) of session %s: %w", ev.ID, ev.Kind, ev.SessionID, err)
	}
	return c.JSON(http.StatusOK, map[string]bool{"received": true})
}

func (h *Handler) createCoupon(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireAdmin ran
	var req couponRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	cp, err := h.coupons.CreateCoupon(c.Request().Context(), u.ID, req.input())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toCouponResponse(cp))
}

func (h *Handler) listCoupons(c echo.Context) error {
	list, err := h.coupons.Coupons(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]couponResponse, len(list))
	for i, cp := range list {
		out[i] = toCouponResponse(cp)
	}
	return c.JSON(http.StatusOK, out)
}
