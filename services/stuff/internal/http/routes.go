// Package http serves the stuff service's JSON API under /api/stuff. Reads
// of listings come from the in-process catalog; writes go to the stuff
// service.
package http

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Routes registers the /api/stuff routes on e. /mine is a static route, so
// Echo never takes it for an id. idempotent is the service's Idempotent()
// middleware: a create sent again with the same Idempotency-Key gets the
// first answer and makes no second listing. searches limits the listings
// asked for with a query text (q) by client address (RATE_LIMIT_SEARCH;
// nil: no limit): a text never asked before is computed by the search
// index, while the pages without one are served from memory.
func Routes(e *echo.Echo, h *Handler, idempotent echo.MiddlewareFunc, searches *ratelimit.Limiter) {
	g := e.Group("/api/stuff")
	g.POST("", h.create, auth.RequireUser, idempotent)
	g.GET("", h.list, searchLimit(searches))
	g.GET("/mine", h.mine, auth.RequireUser)
	g.GET("/:id", h.get)
	g.PUT("/:id", h.update, auth.RequireUser)
}

// searchLimit is web.RateLimit(l, web.ClientIP) for the requests with a
// query text.
func searchLimit(l *ratelimit.Limiter) echo.MiddlewareFunc {
	limit := web.RateLimit(l, web.ClientIP)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		limited := limit(next)
		return func(c echo.Context) error {
			if strings.TrimSpace(c.QueryParam("q")) == "" {
				return next(c)
			}
			return limited(c)
		}
	}
}
