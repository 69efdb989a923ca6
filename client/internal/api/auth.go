package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/stuffmart/stuffmart/shared/auth"
)

// Auth is the client of the auth service (/api/users).
type Auth struct{ b *base }

// User is an account as auth shows it.
type User struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	Banned bool   `json:"banned"`
}

// SignedIn is the outcome of a sign-up, sign-in or refresh: the user, the
// Set-Cookie lines auth wrote (to relay to the browser unchanged) and the new
// session cookie's value (to forward on the rest of the request's calls).
type SignedIn struct {
	User       User
	SetCookies []string
	Cookie     string
}

// Credentials are an email and a password.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// SignUp creates an account and signs it in. Errors: *Error 400 with field
// items (email, password) or "Email in use".
func (a *Auth) SignUp(ctx context.Context, s Session, in Credentials) (SignedIn, error) {
	return a.signedIn(ctx, call{method: http.MethodPost, path: "/api/users/signup", body: in, sess: s})
}

// SignIn signs in. Errors: *Error 400 "Invalid credentials" (or field
// items), 401 for a banned user.
func (a *Auth) SignIn(ctx context.Context, s Session, in Credentials) (SignedIn, error) {
	return a.signedIn(ctx, call{method: http.MethodPost, path: "/api/users/signin", body: in, sess: s})
}

// Refresh exchanges the session's refresh token for a new access token (and
// a rotated refresh token). Errors: *Error 401 when refused (revoked,
// expired, banned); auth then also clears the cookie, in SetCookies of the
// error-free path only, so the caller clears it itself.
func (a *Auth) Refresh(ctx context.Context, s Session) (SignedIn, error) {
	return a.signedIn(ctx, call{method: http.MethodPost, path: "/api/users/refresh", sess: s})
}

// SignOut revokes the session's refresh token family and returns the
// Set-Cookie lines that clear the cookie.
func (a *Auth) SignOut(ctx context.Context, s Session) ([]string, error) {
	r, err := a.b.do(ctx, call{method: http.MethodPost, path: "/api/users/signout", sess: s})
	return r.setCookies, err
}

func (a *Auth) signedIn(ctx context.Context, c call) (SignedIn, error) {
	var u User
	r, err := a.b.into(ctx, c, &u)
	if err != nil {
		return SignedIn{}, err
	}
	out := SignedIn{User: u, SetCookies: r.setCookies}
	for _, line := range r.setCookies {
		if ck, err := http.ParseSetCookie(line); err == nil && ck.Name == auth.CookieName && ck.MaxAge >= 0 && ck.Value != "" {
			out.Cookie = ck.Value
		}
	}
	if out.Cookie == "" {
		return SignedIn{}, fmt.Errorf("auth %s: no %s cookie in the answer", c.path, auth.CookieName)
	}
	return out, nil
}

// UserList is a page of users.
type UserList struct {
	Users []User `json:"users"`
	Total int64  `json:"total"`
}

// Users lists accounts, newest first (admins only: 401 otherwise).
func (a *Auth) Users(ctx context.Context, s Session, page, limit int) (UserList, error) {
	q := url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(limit)}}
	var out UserList
	_, err := a.b.into(ctx, call{method: http.MethodGet, path: "/api/users?" + q.Encode(), sess: s}, &out)
	return out, err
}

// Ban bans a user (admins only). Errors: 404, 400 (cannot ban yourself).
func (a *Auth) Ban(ctx context.Context, s Session, id string) (User, error) {
	var out User
	_, err := a.b.into(ctx, call{method: http.MethodPost, path: "/api/users/" + url.PathEscape(id) + "/ban", sess: s}, &out)
	return out, err
}

// Unban lifts a ban (admins only). Errors: 404.
func (a *Auth) Unban(ctx context.Context, s Session, id string) (User, error) {
	var out User
	_, err := a.b.into(ctx, call{method: http.MethodPost, path: "/api/users/" + url.PathEscape(id) + "/unban", sess: s}, &out)
	return out, err
}
