package http

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/stuff/internal/catalog"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Page bounds of GET /api/stuff.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	MaxPage      = 10_000
)

// Writer is what the handlers need to change listings.
type Writer interface {
	Create(ctx context.Context, userID string, in stuff.Input, key *stuff.IdempotencyKey) (stuff.Stuff, error)
	Update(ctx context.Context, id, userID string, in stuff.Input) (stuff.Stuff, error)
	Mine(ctx context.Context, userID string) ([]stuff.Stuff, error)
}

// Reader is what the handlers need to show listings: the catalog.
type Reader interface {
	Page(ctx context.Context, offset, limit int) ([][]byte, int, error)
	// Resident reports whether Page answers that page from memory.
	Resident(offset, limit int) bool
	Search(ctx context.Context, q catalog.Query) ([]catalog.Hit, int, error)
	Changes() uint64
	Get(ctx context.Context, id string) (*catalog.View, error)
}

// Handler holds the /api/stuff handlers.
type Handler struct {
	w       Writer
	r       Reader
	answers *answers
	// searches limits per client address the listings computed for their
	// request (RATE_LIMIT_SEARCH; nil: no limit).
	searches *ratelimit.Limiter
}

// NewHandler returns the handlers over w and r.
//
// searches limits, per client address, the listings computed for their
// request (RATE_LIMIT_SEARCH; nil: no limit): every one but the plain
// newest-first pages the catalog holds in memory. A text is searched by the
// index, an order, a price range or a seller by a pass over every listing,
// a page past the catalog's newest ReadModelMax read from the database.
// A direct caller (web.Direct) is not limited: in the cluster that is the
// storefront calling for itself, whose sitemap pages through every listing;
// browsers always come through the ingress (or the storefront, which
// forwards their address).
func NewHandler(w Writer, r Reader, searches *ratelimit.Limiter) *Handler {
	return &Handler{w: w, r: r, answers: newAnswers(), searches: searches}
}

func (h *Handler) create(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireUser ran
	var req stuffRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	in := req.input()
	if err := in.Validate(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	var key *stuff.IdempotencyKey
	if i, ok := web.IdempotencyOf(ctx); ok { // the route's svc.Idempotent() claimed it
		key = &stuff.IdempotencyKey{Key: i.Key, Since: i.Since}
	}
	s, err := h.w.Create(ctx, u.ID, in, key)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusCreated, Encode(&s, true))
}

func (h *Handler) update(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireUser ran
	var req stuffRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	in := req.input()
	if err := in.Validate(); err != nil {
		return err
	}
	s, err := h.w.Update(c.Request().Context(), c.Param("id"), u.ID, in)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, Encode(&s, true))
}

func (h *Handler) get(c echo.Context) error {
	v, err := h.r.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	u, _ := auth.FromEcho(c)
	return blob(c, http.StatusOK, v.JSON(u.ID))
}

// blob writes a JSON body with its length, so hot responses are not sent
// chunked.
func blob(c echo.Context, status int, b []byte) error {
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
	return c.JSONBlob(status, b)
}

// list answers {"stuff":[...],"page":P,"limit":L,"total":N}: the available
// listings, searched, filtered and sorted as the query parameters say (see
// parseList and services/stuff/README.md). With q, each listing also has
// "highlight": its title and a fragment of its description as segments,
// {"text":"...","match":true} for the words that matched. The plain
// newest-first listing is served by Page, the others by Search.
func (h *Handler) list(c echo.Context) error {
	lq, err := parseList(c)
	if err != nil {
		return err
	}
	if (!lq.plain() || !h.r.Resident(lq.q.Offset, lq.q.Limit)) && !web.Direct(c) {
		if err := web.Take(h.searches, web.ClientIP(c)); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	if lq.plain() {
		items, total, err := h.r.Page(ctx, lq.q.Offset, lq.q.Limit)
		if err != nil {
			return err
		}
		hits := make([]catalog.Hit, len(items))
		for i, it := range items {
			hits[i].JSON = it
		}
		return blob(c, http.StatusOK, pageJSON(hits, lq.page, lq.limit, total))
	}
	key, changes := lq.key(), h.r.Changes() // read before the search
	if b, ok := h.answers.get(key, changes); ok {
		return blob(c, http.StatusOK, b)
	}
	hits, total, err := h.r.Search(ctx, lq.q)
	if err != nil {
		return err
	}
	b := pageJSON(hits, lq.page, lq.limit, total)
	h.answers.put(key, changes, b)
	return blob(c, http.StatusOK, b)
}

// mine answers {"stuff":[...]}: every listing of the caller, any status,
// newest first, with delivery (they are the seller).
func (h *Handler) mine(c echo.Context) error {
	u, _ := auth.FromEcho(c) // RequireUser ran
	ss, err := h.w.Mine(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	b := append(make([]byte, 0, 256*len(ss)+16), `{"stuff":[`...)
	for i := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, Encode(&ss[i], true)...)
	}
	b = append(b, "]}"...)
	return c.JSONBlob(http.StatusOK, b)
}
