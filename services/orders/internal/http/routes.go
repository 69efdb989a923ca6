// Package http is the orders service's JSON API under /api/orders: request
// and response shapes and the routes. Handlers only bind, call the service
// and write; the rules live in package orders, errors are written by the
// shared error handler.
package http

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/auth"
)

// Service is what the handlers need from the orders rules.
type Service interface {
	Create(ctx context.Context, userID, stuffID string) (orders.Order, error)
	List(ctx context.Context, userID string, page, limit int) ([]orders.Order, error)
	Get(ctx context.Context, userID, id string) (orders.Order, error)
	Cancel(ctx context.Context, userID, id string) error
}

// Paging bounds of GET /api/orders.
const (
	DefaultLimit = 50
	MaxLimit     = 100
	MaxPage      = 10000
)

// Register adds the routes to e. Every route needs a signed-in user (the
// shared CurrentUser middleware must run first).
func Register(e *echo.Echo, svc Service) {
	h := handlers{svc: svc}
	e.POST("/api/orders", h.create, auth.RequireUser)
	e.GET("/api/orders", h.list, auth.RequireUser)
	e.GET("/api/orders/:id", h.get, auth.RequireUser)
	e.DELETE("/api/orders/:id", h.cancel, auth.RequireUser)
}
