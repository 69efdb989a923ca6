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

// User is an account as auth shows it to its owner and to admins. Name is
// the display name (auth's default, "Student …", when none was chosen).
type User struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	Name   string `json:"name"`
	Banned bool   `json:"banned"`
}

// PublicUser is what anyone may see of an account: its id and display
// name, never its email.
type PublicUser struct {
	ID   string `json:"id"`
	Name string `json:"name"`
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

// NewAccount is what the sign-up form sends: the credentials and the
// display name, always (an empty one is refused by auth, as the form
// requires it).
type NewAccount struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// SignUp creates an account and signs it in. Errors: *Error 400 with field
// items (email, password, name) or "Email in use".
func (a *Auth) SignUp(ctx context.Context, s Session, in NewAccount) (SignedIn, error) {
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

// User returns the public view of account id: its display name, for a
// seller's page. Anonymous (no cookie travels): the answer is the same for
// everyone. Errors: *Error 404 for an unknown, malformed or banned id.
func (a *Auth) User(ctx context.Context, id string) (PublicUser, error) {
	var out PublicUser
	_, err := a.b.into(ctx, call{method: http.MethodGet, path: "/api/users/" + url.PathEscape(id)}, &out)
	return out, err
}

// CurrentUser returns the session's account with its display name; ok is
// false when the session is anonymous (or its access token no longer
// valid).
func (a *Auth) CurrentUser(ctx context.Context, s Session) (u User, ok bool, err error) {
	var out struct {
		CurrentUser *User `json:"currentUser"`
	}
	if _, err := a.b.into(ctx, call{method: http.MethodGet, path: "/api/users/currentuser", sess: s}, &out); err != nil {
		return User{}, false, err
	}
	if out.CurrentUser == nil {
		return User{}, false, nil
	}
	return *out.CurrentUser, true, nil
}

// SetName changes the session user's display name and returns the account.
// Errors: *Error 400 with a "name" item, 401.
func (a *Auth) SetName(ctx context.Context, s Session, name string) (User, error) {
	var out User
	_, err := a.b.into(ctx, call{method: http.MethodPatch, path: "/api/users/me", body: map[string]string{"name": name}, sess: s}, &out)
	return out, err
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
