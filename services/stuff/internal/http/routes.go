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
// asked for with a query text (q), an order, a price range or a seller by
// client address (RATE_LIMIT_SEARCH; nil: no limit): each such query never
// asked before is computed (a text by the search index, the others by a
// pass over every listing), while the plain newest-first pages are served
// from memory.
func Routes(e *echo.Echo, h *Handler, idempotent echo.MiddlewareFunc, searches *ratelimit.Limiter) {
	g := e.Group("/api/stuff")
	g.POST("", h.create, auth.RequireUser, idempotent)
	g.GET("", h.list, searchLimit(searches))
	g.GET("/mine", h.mine, auth.RequireUser)
	g.GET("/:id", h.get)
	g.PUT("/:id", h.update, auth.RequireUser)
}

// searchLimit is web.RateLimit(l, web.ClientIP) for the requests that
// are not the plain newest-first listing: a query text (q), or any of
// sort, min, max and seller. A blank q alone is the plain listing (as
// parseList reads it), but a blank q beside a price range is not: the range
// is computed all the same.
func searchLimit(l *ratelimit.Limiter) echo.MiddlewareFunc {
	limit := web.RateLimit(l, web.ClientIP)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		limited := limit(next)
		return func(c echo.Context) error {
			if plainList(c) {
				return next(c)
			}
			return limited(c)
		}
	}
}

// plainList reports whether a GET /api/stuff asks for nothing beyond a
// page of the newest-first listing (page and limit), so that no search,
// order, price range or seller is computed for it. A parameter given twice
// is refused by parseList before anything is computed.
func plainList(c echo.Context) bool {
	p := c.QueryParams()
	if strings.TrimSpace(p.Get("q")) != "" {
		return false
	}
	for _, k := range []string{"sort", "min", "max", "seller"} {
		if p.Get(k) != "" {
			return false
		}
	}
	return true
}
