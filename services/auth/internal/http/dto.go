package http

import "github.com/stuffmart/stuffmart/services/auth/internal/users"

// credentials is the body of sign-up and sign-in. Bind decodes it strictly
// (unknown fields such as "role", and non-string values such as
// {"$ne":null}, are 400s); the users service validates the values.
type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// userJSON is how a user is shown to anyone: never the password hash, the
// database id field, the version or pending events.
type userJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

func toJSON(u users.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Role: u.Role}
}

// adminUserJSON is a user as admins see it: with the ban flag.
type adminUserJSON struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	Banned bool   `json:"banned"`
}

func toAdminJSON(u users.User) adminUserJSON {
	return adminUserJSON{ID: u.ID, Email: u.Email, Role: u.Role, Banned: u.Banned}
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
