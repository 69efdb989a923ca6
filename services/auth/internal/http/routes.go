// Package http is the auth service's JSON API under /api/users: Echo
// handlers that bind requests, call the users service and write responses,
// with the session cookie in between. Import it as httpapi.
package http

import (
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/auth"
)

// Routes registers the API on e, which must already run the shared
// middleware (service.Open installs it: body limit, session cookie).
func Routes(e *echo.Echo, h *Handler) {
	g := e.Group("/api/users")
	g.POST("/signup", h.signUp)
	g.POST("/signin", h.signIn)
	g.POST("/signout", h.signOut)
	g.POST("/refresh", h.refresh)
	g.GET("/currentuser", h.currentUser)
	g.GET("", h.list, auth.RequireAdmin)
	g.POST("/:id/ban", h.ban, auth.RequireAdmin)
	g.POST("/:id/unban", h.unban, auth.RequireAdmin)
}
