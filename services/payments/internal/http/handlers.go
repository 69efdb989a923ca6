package http

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Payer pays an order for its buyer (payments.Service).
type Payer interface {
	Pay(ctx context.Context, userID string, in payments.PayInput) (payments.Payment, error)
}

// Coupons makes and lists coupons for admins (payments.Service).
type Coupons interface {
	CreateCoupon(ctx context.Context, adminID string, in payments.NewCoupon) (payments.Coupon, error)
	Coupons(ctx context.Context) ([]payments.Coupon, error)
}

// Handler answers the API's requests (see Routes).
type Handler struct {
	payer   Payer
	coupons Coupons
}

// NewHandler returns the handlers over payer and coupons.
func NewHandler(payer Payer, coupons Coupons) *Handler {
	return &Handler{payer: payer, coupons: coupons}
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
