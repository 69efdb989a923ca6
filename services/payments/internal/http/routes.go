// Package http is the payments service's JSON API under /api/payments:
// routes.go maps paths to handlers, handlers.go binds requests and calls the
// payments domain through the small interfaces it declares, dto.go holds the
// request and response bodies and the mapping of domain errors to answers,
// standin.go the offline stand-in for the provider's checkout page (HTML).
// Authentication, strict binding and error bodies come from the shared
// module. Import it as httpapi.
package http

import (
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
)

// Routes registers the API on e, which must already run the shared
// middleware (service.Open installs it: body limit, session cookie).
// idempotent is the middleware that honours an Idempotency-Key header on a
// create (service.Service.Idempotent): POST /api/payments and POST
// /api/payments/checkout run behind it. The offline stand-in for the
// provider's checkout page is served only by a handler WithStandIn.
func Routes(e *echo.Echo, h *Handler, idempotent echo.MiddlewareFunc) {
	g := e.Group("/api/payments")
	g.POST("", h.pay, auth.RequireUser, idempotent)
	g.POST("/checkout", h.checkout, auth.RequireUser, idempotent)
	// Asks the provider, so it may come again: no Idempotency-Key needed.
	g.POST("/checkout/confirm", h.confirmCheckout, auth.RequireUser)
	// Signed by the provider instead of a session or a CSRF guard.
	g.POST("/webhook", h.webhook)
	if h.standIn != nil {
		g.GET("/checkout/:id/pay", h.standInPage)
		g.POST("/checkout/:id/pay", h.standInPay)
	}
	g.POST("/coupons", h.createCoupon, auth.RequireAdmin)
	g.GET("/coupons", h.listCoupons, auth.RequireAdmin)
}
