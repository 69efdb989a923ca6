// Package http is the orders service's JSON API under /api/orders: the
// routes (routes.go), the handlers (handlers.go) and the request and
// response shapes (dto.go). Handlers only bind, call the domain through the
// small interfaces they declare and write; the rules live in package
// orders, errors are written by the shared error handler.
package http

import (
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
)

// Routes adds the routes to e. Every route needs a signed-in user (the
// shared CurrentUser middleware must run first). idempotent is the service's
// Idempotency-Key middleware (service.Idempotent): a retried POST
// /api/orders with the key of an earlier one gets the earlier answer.
func Routes(e *echo.Echo, h *Handler, idempotent echo.MiddlewareFunc) {
	e.POST("/api/orders", h.create, auth.RequireUser, idempotent)
	e.GET("/api/orders", h.list, auth.RequireUser)
	e.GET("/api/orders/:id", h.get, auth.RequireUser)
	e.DELETE("/api/orders/:id", h.cancel, auth.RequireUser)
}
