package http

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Placer places and cancels a buyer's orders.
type Placer interface {
	Create(ctx context.Context, userID, stuffID string, key orders.RequestKey) (orders.Order, error)
	Cancel(ctx context.Context, userID, id string) error
}

// Reader reads a buyer's orders.
type Reader interface {
	Get(ctx context.Context, userID, id string) (orders.Order, error)
	List(ctx context.Context, userID string, page, limit int) ([]orders.Order, error)
}

// Paging bounds of GET /api/orders.
const (
	DefaultLimit = 50
	MaxLimit     = 100
	MaxPage      = 10000
)

// Handler serves the /api/orders routes.
type Handler struct {
	placer Placer
	reader Reader
}

// NewHandler returns a Handler that places and cancels orders with placer
// and reads them with reader.
func NewHandler(placer Placer, reader Reader) *Handler {
	return &Handler{placer: placer, reader: reader}
}

func user(c echo.Context) (auth.User, error) {
	u, ok := auth.FromEcho(c)
	if !ok {
		return auth.User{}, errs.ErrNotAuthorized
	}
	return u, nil
}

// create is POST /api/orders {stuffId}: 201 with the order; 404 unknown
// stuff; 400 own or sold stuff, or a buyer who already has MAX_OPEN_ORDERS
// orders waiting for payment; 409 held by another order. A request with an
// Idempotency-Key (see Routes) hands the key to the domain, which mints the
// order id from it.
func (h *Handler) create(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	var req createRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	var key orders.RequestKey
	if i, ok := web.IdempotencyOf(ctx); ok {
		key = orders.RequestKey{Key: i.Key, Since: i.Since}
	}
	o, err := h.placer.Create(ctx, u.ID, req.StuffID, key)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toJSON(o))
}

// list is GET /api/orders?page=&limit=: the caller's orders, newest first,
// as a JSON array.
func (h *Handler) list(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	page, err := web.QueryInt(c, "page", 1, 1, MaxPage)
	if err != nil {
		return err
	}
	limit, err := web.QueryInt(c, "limit", DefaultLimit, 1, MaxLimit)
	if err != nil {
		return err
	}
	list, err := h.reader.List(c.Request().Context(), u.ID, page, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, listJSON(list))
}

// get is GET /api/orders/:id: 404 unknown, 401 not the caller's.
func (h *Handler) get(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	o, err := h.reader.Get(c.Request().Context(), u.ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toJSON(o))
}

// cancel is DELETE /api/orders/:id: 204; 400 unless the order is created.
func (h *Handler) cancel(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	if err := h.placer.Cancel(c.Request().Context(), u.ID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
