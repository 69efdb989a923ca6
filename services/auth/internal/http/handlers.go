package http

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/web"
)

// credentials is the body of sign-up and sign-in. Bind decodes it strictly
// (unknown fields such as "role", and non-string values such as
// {"$ne":null}, are 400s); the users service validates the values.
type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// signUp: POST /api/users/signup -> 201 user, signed in.
func (h *Handler) signUp(c echo.Context) error {
	var req credentials
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	s, err := h.users.SignUp(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return h.signedIn(c, http.StatusCreated, s)
}

// signIn: POST /api/users/signin -> 200 user, signed in.
func (h *Handler) signIn(c echo.Context) error {
	var req credentials
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	s, err := h.users.SignIn(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	return h.signedIn(c, http.StatusOK, s)
}

// signOut: POST /api/users/signout -> 200 {}, cookie cleared, refresh token
// family revoked. The cookie is cleared even if the revocation fails.
func (h *Handler) signOut(c echo.Context) error {
	sess := h.sessions.Load(c.Request())
	h.sessions.Clear(c.Response(), c.Request())
	if err := h.users.SignOut(c.Request().Context(), sess.Refresh); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// refresh: POST /api/users/refresh -> 200 user with a new access token and a
// rotated refresh token; 401 with the cookie cleared when refused.
func (h *Handler) refresh(c echo.Context) error {
	sess := h.sessions.Load(c.Request())
	s, err := h.users.Refresh(c.Request().Context(), sess.Refresh)
	if err != nil {
		if errors.Is(err, errs.ErrNotAuthorized) {
			h.sessions.Clear(c.Response(), c.Request())
		}
		return err
	}
	return h.signedIn(c, http.StatusOK, s)
}

// currentUser: GET /api/users/currentuser -> {"currentUser": user|null}, from
// the access token alone (the shared middleware verified it).
func (h *Handler) currentUser(c echo.Context) error {
	var out struct {
		CurrentUser *userJSON `json:"currentUser"`
	}
	if u, ok := auth.FromEcho(c); ok {
		out.CurrentUser = &userJSON{ID: u.ID, Email: u.Email, Role: u.Role}
	}
	return c.JSON(http.StatusOK, out)
}

// list: GET /api/users?page=&limit= (admin) -> {"users":[...],"total":N}.
func (h *Handler) list(c echo.Context) error {
	page, err := web.QueryInt(c, "page", 1, 1, 1_000_000)
	if err != nil {
		return err
	}
	limit, err := web.QueryInt(c, "limit", 20, 1, 100)
	if err != nil {
		return err
	}
	us, total, err := h.users.List(c.Request().Context(), page, limit)
	if err != nil {
		return err
	}
	out := listJSON{Users: make([]adminUserJSON, len(us)), Total: total}
	for i, u := range us {
		out.Users[i] = toAdminJSON(u)
	}
	return c.JSON(http.StatusOK, out)
}

// ban: POST /api/users/:id/ban (admin) -> 200 user.
func (h *Handler) ban(c echo.Context) error {
	actor, _ := auth.FromEcho(c) // RequireAdmin guarantees a user
	u, err := h.users.Ban(c.Request().Context(), actor.ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAdminJSON(u))
}

// unban: POST /api/users/:id/unban (admin) -> 200 user.
func (h *Handler) unban(c echo.Context) error {
	u, err := h.users.Unban(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAdminJSON(u))
}

// signedIn seals a new access token and s's refresh token into the
// session cookie and answers the user.
func (h *Handler) signedIn(c echo.Context, status int, s users.Session) error {
	u := s.User
	access, err := h.sessions.Tokens().Issue(auth.User{ID: u.ID, Email: u.Email, Role: u.Role})
	if err != nil {
		return err
	}
	if err := h.sessions.Save(c.Response(), c.Request(), auth.Session{Access: access, Refresh: s.RefreshToken}); err != nil {
		return err
	}
	return c.JSON(status, toJSON(u))
}
