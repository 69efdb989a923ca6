package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Accounts starts and ends sessions (users.Service implements it).
type Accounts interface {
	SignUp(ctx context.Context, a users.NewAccount) (users.Session, error)
	SignIn(ctx context.Context, email, password, client string) (users.Session, error)
	SignOut(ctx context.Context, refreshToken string) error
}

// Refresher exchanges a refresh token for a new session (users.Service
// implements it). Every refusal wraps errs.ErrNotAuthorized.
type Refresher interface {
	Refresh(ctx context.Context, refreshToken string) (users.Session, error)
}

// Admin is what admins do to accounts: list, ban and unban them
// (users.Service implements it).
type Admin interface {
	List(ctx context.Context, page, limit int) ([]users.User, int64, error)
	Ban(ctx context.Context, actorID, id string) (users.User, error)
	Unban(ctx context.Context, id string) (users.User, error)
}

// Profiles reads and edits display names (users.Service implements it):
// User is the signed-in owner's read, Profile anyone's, SetName the
// owner's edit.
type Profiles interface {
	User(ctx context.Context, id string) (users.User, error)
	Profile(ctx context.Context, id string) (users.User, error)
	SetName(ctx context.Context, id, name string) (users.User, error)
}

// Handler serves the /api/users routes.
type Handler struct {
	accounts  Accounts
	refresher Refresher
	admin     Admin
	profiles  Profiles
	sessions  *auth.Sessions
}

// NewHandler returns a Handler over the account rules, writing session
// cookies with sessions.
func NewHandler(accounts Accounts, refresher Refresher, admin Admin, profiles Profiles, sessions *auth.Sessions) *Handler {
	return &Handler{accounts: accounts, refresher: refresher, admin: admin, profiles: profiles, sessions: sessions}
}

// ProfileMaxAge is how long the answer of GET /api/users/:id may be kept by
// any cache (storefront, proxy, browser): a renamed or banned user shows the
// old name for up to this long.
const ProfileMaxAge = 60 * time.Second

// signUp: POST /api/users/signup -> 201 user, signed in.
func (h *Handler) signUp(c echo.Context) error {
	var req signUpRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	s, err := h.accounts.SignUp(c.Request().Context(), users.NewAccount{Email: req.Email, Password: req.Password, Name: req.Name})
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
	s, err := h.accounts.SignIn(c.Request().Context(), req.Email, req.Password, web.ClientIP(c))
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
	if err := h.accounts.SignOut(c.Request().Context(), sess.Refresh); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// refresh: POST /api/users/refresh -> 200 user with a new access token and a
// rotated refresh token; 401 with the cookie cleared when refused.
func (h *Handler) refresh(c echo.Context) error {
	sess := h.sessions.Load(c.Request())
	s, err := h.refresher.Refresh(c.Request().Context(), sess.Refresh)
	if err != nil {
		if errors.Is(err, errs.ErrNotAuthorized) {
			h.sessions.Clear(c.Response(), c.Request())
		}
		return err
	}
	return h.signedIn(c, http.StatusOK, s)
}

// currentUser: GET /api/users/currentuser -> {"currentUser": user|null}.
// Who it is, and the role, come from the access token (the shared
// middleware verified it), as before names; the display name is read from
// the account (one lookup by _id), so an edit shows at once. A token whose
// account is not found still answers its user, with the default name.
func (h *Handler) currentUser(c echo.Context) error {
	var out currentUserJSON
	if tok, ok := auth.FromEcho(c); ok {
		u, err := h.profiles.User(c.Request().Context(), tok.ID)
		if err != nil && !errors.Is(err, errs.ErrNotFound) {
			return err
		}
		u.ID = tok.ID
		out.CurrentUser = &userJSON{ID: tok.ID, Email: tok.Email, Role: tok.Role, Name: u.DisplayName()}
	}
	return c.JSON(http.StatusOK, out)
}

// setName: PATCH /api/users/me {"name": "..."} (signed in) -> 200 user with
// the new name. Only the account of the access token is edited: the route
// has no id, and the body no other field.
func (h *Handler) setName(c echo.Context) error {
	tok, _ := auth.FromEcho(c) // RequireUser guarantees a user
	var req nameRequest
	if err := web.Bind(c, &req); err != nil {
		return err
	}
	u, err := h.profiles.SetName(c.Request().Context(), tok.ID, req.Name)
	if err != nil {
		return err
	}
	// The role the session acts with is the token's until its next
	// refresh, as currentuser says.
	return c.JSON(http.StatusOK, userJSON{ID: u.ID, Email: u.Email, Role: tok.Role, Name: u.DisplayName()})
}

// profile: GET /api/users/:id (anyone) -> 200 {"id","name"}, cacheable by
// anyone for ProfileMaxAge; 404 "User not found" for an unknown, malformed
// or banned id.
func (h *Handler) profile(c echo.Context) error {
	u, err := h.profiles.Profile(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(ProfileMaxAge.Seconds())))
	return c.JSON(http.StatusOK, publicUserJSON{ID: u.ID, Name: u.DisplayName()})
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
	us, total, err := h.admin.List(c.Request().Context(), page, limit)
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
	u, err := h.admin.Ban(c.Request().Context(), actor.ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAdminJSON(u))
}

// unban: POST /api/users/:id/unban (admin) -> 200 user.
func (h *Handler) unban(c echo.Context) error {
	u, err := h.admin.Unban(c.Request().Context(), c.Param("id"))
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
