package http

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
	"github.com/stuffmart/stuffmart/shared/web"
)

type handlers struct {
	svc Service
}

type createRequest struct {
	StuffID string `json:"stuffId"`
}

// Validate requires a stuff id; its shape is checked by the service (a
// malformed id is an unknown stuff: 404).
func (r createRequest) Validate() error {
	var v validate.Errors
	v.Check(r.StuffID != "", "stuffId", "Stuff id is required")
	return v.Err()
}

type stuffJSON struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
}

type orderJSON struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	Stuff     stuffJSON `json:"stuff"`
	Version   int64     `json:"version"`
}

func toJSON(o orders.Order) orderJSON {
	return orderJSON{
		ID:        o.ID,
		Status:    o.Status,
		UserID:    o.UserID,
		ExpiresAt: o.ExpiresAt.UTC(),
		CreatedAt: o.CreatedAt.UTC(),
		Stuff:     stuffJSON{ID: o.Stuff.ID, Title: o.Stuff.Title, Price: o.Stuff.Price, Currency: o.Stuff.Currency},
		Version:   o.Version,
	}
}

func user(c echo.Context) (auth.User, error) {
	u, ok := auth.FromEcho(c)
	if !ok {
		return auth.User{}, errs.ErrNotAuthorized
	}
	return u, nil
}

// create is POST /api/orders {stuffId}: 201 with the order; 404 unknown
// stuff; 400 own or sold stuff; 409 held by another order.
func (h handlers) create(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	var req createRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	o, err := h.svc.Create(c.Request().Context(), u.ID, req.StuffID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toJSON(o))
}

// list is GET /api/orders?page=&limit=: the caller's orders, newest first,
// as a JSON array.
func (h handlers) list(c echo.Context) error {
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
	list, err := h.svc.List(c.Request().Context(), u.ID, page, limit)
	if err != nil {
		return err
	}
	out := make([]orderJSON, len(list))
	for i, o := range list {
		out[i] = toJSON(o)
	}
	return c.JSON(http.StatusOK, out)
}

// get is GET /api/orders/:id: 404 unknown, 401 not the caller's.
func (h handlers) get(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	o, err := h.svc.Get(c.Request().Context(), u.ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toJSON(o))
}

// cancel is DELETE /api/orders/:id: 204; 400 unless the order is created.
func (h handlers) cancel(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	if err := h.svc.Cancel(c.Request().Context(), u.ID, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
