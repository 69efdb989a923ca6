// Package http serves the stuff service's JSON API under /api/stuff. Reads
// of listings come from the in-process catalog; writes go to the stuff
// service.
package http

import (
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
)

// Routes registers the /api/stuff routes on e. /mine is a static route, so
// Echo never takes it for an id. idempotent is the service's Idempotent()
// middleware: a create sent again with the same Idempotency-Key gets the
// first answer and makes no second listing.
func Routes(e *echo.Echo, h *Handler, idempotent echo.MiddlewareFunc) {
	g := e.Group("/api/stuff")
	g.POST("", h.create, auth.RequireUser, idempotent)
	g.GET("", h.list)
	g.GET("/mine", h.mine, auth.RequireUser)
	g.GET("/:id", h.get)
	g.PUT("/:id", h.update, auth.RequireUser)
}
