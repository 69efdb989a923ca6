package http

import "github.com/stuffmart/stuffmart/services/auth/internal/users"

// credentials is the body of sign-in. Bind decodes it strictly (unknown
// fields such as "role", and non-string values such as {"$ne":null}, are
// 400s); the users service validates the values.
type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// signUpRequest is the body of sign-up: the credentials and an optional
// display name (absent or null: the default name; present, even empty:
// validated).
type signUpRequest struct {
	Email    string  `json:"email"`
	Password string  `json:"password"`
	Name     *string `json:"name"`
}

// nameRequest is the body of PATCH /api/users/me. The name is required:
// an absent one is validated as empty.
type nameRequest struct {
	Name string `json:"name"`
}

// userJSON is how a user is shown to themselves (sign-up, sign-in,
// refresh, currentuser, the name edit): never the password hash, the
// database id field, the version or pending events.
type userJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
	Name  string `json:"name"`
}

func toJSON(u users.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Role: u.Role, Name: u.DisplayName()}
}

// publicUserJSON is how a user is shown to anyone (GET /api/users/:id):
// the id and the display name, never the email, role or ban.
type publicUserJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// adminUserJSON is a user as admins see it: with the ban flag.
type adminUserJSON struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	Name   string `json:"name"`
	Banned bool   `json:"banned"`
}

func toAdminJSON(u users.User) adminUserJSON {
	return adminUserJSON{ID: u.ID, Email: u.Email, Role: u.Role, Name: u.DisplayName(), Banned: u.Banned}
}

// currentUserJSON answers GET /api/users/currentuser: null when anonymous.
type currentUserJSON struct {
	CurrentUser *userJSON `json:"currentUser"`
}

// listJSON is a page of users and the total count.
type listJSON struct {
	Users []adminUserJSON `json:"users"`
	Total int64           `json:"total"`
}
