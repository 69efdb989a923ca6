// Package http is the payments service's JSON API under /api/payments: Echo
// handlers that bind requests, call the payments service and write
// responses. Authentication, strict binding and error bodies come from the
// shared module. Import it as httpapi.
package http

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/validate"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Payments is what the handlers need from the payments domain.
type Payments interface {
	Pay(ctx context.Context, userID string, in payments.PayInput) (payments.Payment, error)
	CreateCoupon(ctx context.Context, adminID string, in payments.NewCoupon) (payments.Coupon, error)
	Coupons(ctx context.Context) ([]payments.Coupon, error)
}

// Routes registers the API on e, which must already run the shared
// middleware (service.Open installs it: body limit, session cookie).
func Routes(e *echo.Echo, p Payments) {
	h := handler{p: p}
	g := e.Group("/api/payments")
	g.POST("", h.pay, auth.RequireUser)
	g.POST("/coupons", h.createCoupon, auth.RequireAdmin)
	g.GET("/coupons", h.listCoupons, auth.RequireAdmin)
}

type handler struct {
	p Payments
}

// payRequest is the body of POST /api/payments.
type payRequest struct {
	OrderID       string `json:"orderId"`
	PaymentMethod string `json:"paymentMethod"`
	Coupon        string `json:"coupon"`
}

// Validate checks shapes; the rules that depend on the order live in the
// domain.
func (r *payRequest) Validate() error {
	var v validate.Errors
	r.OrderID = strings.TrimSpace(r.OrderID)
	v.Check(r.OrderID != "", "orderId", "Order id is required")
	v.Check(len(r.OrderID) <= 64, "orderId", "Order id is too long")
	v.Check(len(r.PaymentMethod) <= 255, "paymentMethod", "Payment method is too long")
	v.Check(len(r.Coupon) <= 64, "coupon", "Coupon code is too long")
	return v.Err()
}

// paymentResponse is a created payment.
type paymentResponse struct {
	ID      string `json:"id"`
	OrderID string `json:"orderId"`
	Amount  int64  `json:"amount"`
}

func (h handler) pay(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireUser ran
	var req payRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	p, err := h.p.Pay(c.Request().Context(), u.ID, payments.PayInput{OrderID: req.OrderID, PaymentMethod: req.PaymentMethod, Coupon: req.Coupon})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, paymentResponse{ID: p.ID, OrderID: p.OrderID, Amount: p.Amount})
}

// couponRequest is the body of POST /api/payments/coupons. ExpiresAt is an
// RFC 3339 date-time, parsed here so a bad one is a field error.
type couponRequest struct {
	PercentOff     *int    `json:"percentOff"`
	MaxRedemptions *int    `json:"maxRedemptions"`
	ExpiresAt      *string `json:"expiresAt"`

	expiresAt *time.Time
}

// Validate checks presence and the date's syntax; ranges are the domain's.
func (r *couponRequest) Validate() error {
	var v validate.Errors
	v.Check(r.PercentOff != nil, "percentOff", "Must be an integer from 1 to 100")
	if r.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *r.ExpiresAt)
		if err != nil {
			v.Add("expiresAt", "Must be a date-time such as 2030-01-31T23:59:00Z")
		} else {
			r.expiresAt = &t
		}
	}
	return v.Err()
}

// couponResponse is a coupon as admins see it. MaxRedemptions and ExpiresAt
// are null when unlimited.
type couponResponse struct {
	Code           string     `json:"code"`
	PercentOff     int        `json:"percentOff"`
	MaxRedemptions *int       `json:"maxRedemptions"`
	ExpiresAt      *time.Time `json:"expiresAt"`
	Redemptions    int        `json:"redemptions"`
}

func toCouponResponse(c payments.Coupon) couponResponse {
	r := couponResponse{Code: c.Code, PercentOff: c.PercentOff, Redemptions: c.Redemptions}
	if c.MaxRedemptions > 0 {
		n := c.MaxRedemptions
		r.MaxRedemptions = &n
	}
	if !c.ExpiresAt.IsZero() {
		t := c.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	return r
}

func (h handler) createCoupon(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireAdmin ran
	var req couponRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	cp, err := h.p.CreateCoupon(c.Request().Context(), u.ID, payments.NewCoupon{
		PercentOff: *req.PercentOff, MaxRedemptions: req.MaxRedemptions, ExpiresAt: req.expiresAt,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toCouponResponse(cp))
}

func (h handler) listCoupons(c echo.Context) error {
	list, err := h.p.Coupons(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]couponResponse, len(list))
	for i, cp := range list {
		out[i] = toCouponResponse(cp)
	}
	return c.JSON(http.StatusOK, out)
}
