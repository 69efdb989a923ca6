// Package http is the auth service's JSON API under /api/users: Echo
// handlers that bind requests, call the users service and write responses,
// with the session cookie in between. Import it as httpapi.
package http

import (
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Limits are the per-client limits (by web.ClientIP) of the routes that cost
// auth the most. They run before the body is read, so a refused request
// costs no bcrypt. A nil limiter does not limit.
type Limits struct {
	SignIn, SignUp, Refresh *ratelimit.Limiter
}

// Routes registers the API on e, which must already run the shared
// middleware (service.Open installs it: body limit, session cookie).
func Routes(e *echo.Echo, h *Handler, l Limits) {
	g := e.Group("/api/users")
	g.POST("/signup", h.signUp, web.RateLimit(l.SignUp, web.ClientIP))
	g.POST("/signin", h.signIn, web.RateLimit(l.SignIn, web.ClientIP))
	g.POST("/signout", h.signOut)
	g.POST("/refresh", h.refresh, web.RateLimit(l.Refresh, web.ClientIP))
	g.GET("/currentuser", h.currentUser)
	g.PATCH("/me", h.setName, auth.RequireUser)
	g.GET("/:id", h.profile)
	g.GET("", h.list, auth.RequireAdmin)
	g.POST("/:id/ban", h.ban, auth.RequireAdmin)
	g.POST("/:id/unban", h.unban, auth.RequireAdmin)
}
