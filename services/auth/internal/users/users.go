// Package users is the auth service's domain: accounts, roles, bans and the
// refresh-token rules. It knows nothing of MongoDB or HTTP: it declares the
// stores it needs and returns errors from shared/errs that already know their
// HTTP status, so handlers only map requests and responses.
package users

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// Roles a user may have. They are the role names the shared access token
// accepts (shared/auth.RoleUser and RoleAdmin).
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// Password limits. bcrypt reads at most 72 bytes of a password and ignores
// the rest, so a longer password is refused rather than silently truncated.
const (
	MinPasswordLen   = 8
	MaxPasswordLen   = 72
	MaxPasswordBytes = 72
)

// Display-name limits, in characters (validate.Len).
const (
	MinNameLen = 2
	MaxNameLen = 40
)

// User is an account. Email is normalized (trimmed, lower case) and unique.
// Name is the display name the user chose, shown to others instead of the
// email; empty when they never chose one (accounts from before names, and
// API sign-ups without one): DisplayName answers the default then.
// Version increases by one on every change of the stored document.
type User struct {
	ID           string
	Email        string
	Name         string
	PasswordHash []byte
	Role         string
	Banned       bool
	Version      int64
	CreatedAt    time.Time
}

// Errors the service returns. They are client-facing (shared/errs), so the
// shared error handler answers them as they are.
var (
	// ErrEmailInUse is returned by SignUp when the normalized email is taken,
	// including when two sign-ups race for it (the unique index decides).
	ErrEmailInUse = &errs.BadRequestError{Message: "Email in use", Field: "email"}
	// ErrInvalidCredentials is the one answer to a wrong password and to an
	// unknown email, so that sign-in does not reveal which accounts exist.
	ErrInvalidCredentials = errs.BadRequest("Invalid credentials")
	// ErrUserNotFound answers the public read of an unknown, malformed or
	// banned user's id alike, and the edit of an account that is gone.
	ErrUserNotFound = &errs.HTTPError{Status: http.StatusNotFound, Message: "User not found"}
	// ErrCannotBanSelf is returned when an admin tries to ban themselves.
	ErrCannotBanSelf = errs.BadRequest("You cannot ban yourself")
	// ErrNoAccount is returned by Roles when no account has the email: a
	// role is granted only to an account that exists, never to an address.
	ErrNoAccount = errors.New("no account has this email")
	// ErrTokenUsed is returned by TokenStore.ClaimUse when the refresh token
	// was already claimed: a second presenter of the token, which is the
	// same client again within the grace, and a thief after it.
	ErrTokenUsed = errors.New("refresh token already used")
)

// Store keeps users. Methods return errs.ErrNotFound (wrapped) for an unknown
// or malformed id or email, and Create returns ErrEmailInUse on a duplicate.
type Store interface {
	// Create inserts u and sets u.ID.
	Create(ctx context.Context, u *User) error
	ByEmail(ctx context.Context, email string) (User, error)
	ByID(ctx context.Context, id string) (User, error)
	// List returns a page of users, newest first, and the total count.
	List(ctx context.Context, skip, limit int) ([]User, int64, error)
	// SetBanned sets the banned flag and returns the user as stored. Banning
	// a user who was not banned publishes user:banned, unbanning a banned
	// one user:unbanned (docs/events.md), through the document's outbox in
	// the same write, with now as the event's time; setting the flag it
	// already has changes nothing.
	SetBanned(ctx context.Context, id string, banned bool, now time.Time) (User, error)
	// SetRole gives the user with email the role and returns the user as
	// stored and whether the role changed (false: it had it already).
	// Errors: errs.ErrNotFound if no user has that email.
	SetRole(ctx context.Context, email, role string, now time.Time) (User, bool, error)
	// WithRole returns the users who have role, by email.
	WithRole(ctx context.Context, role string) ([]User, error)
	// SetName sets the display name of user id and returns the user as
	// stored. Errors: errs.ErrNotFound.
	SetName(ctx context.Context, id, name string, now time.Time) (User, error)
}

// DisplayName is the name shown for u: the one chosen, or DefaultName.
func (u User) DisplayName() string {
	if u.Name != "" {
		return u.Name
	}
	return DefaultName(u.ID)
}

// DefaultName is the display name of an account without a chosen one:
// "Student " and the last six hex digits of its id. It is derived from the
// id alone, so it tells nothing of the email, needs no write, and is the
// same on every read.
func DefaultName(id string) string {
	if len(id) < 6 {
		return "Student"
	}
	return "Student " + id[len(id)-6:]
}

// NormalizeName is the form display names are validated and stored in:
// without leading and trailing white space.
func NormalizeName(s string) string { return strings.TrimSpace(s) }

// checkName records what is wrong with a normalized display name: it must
// be 2 to 40 characters of text a person typed on one line
// (validate.PlainText; a tab is refused too, a name has no columns).
func checkName(v *validate.Errors, name string) {
	n := validate.Len(name)
	v.Check(n >= MinNameLen && n <= MaxNameLen, "name", "Name must be between 2 and 40 characters")
	v.Check(validate.PlainText(name, false) && !strings.ContainsRune(name, '\t'), "name",
		"Name must not contain control or text-direction characters")
	v.Check(!looksDefault(name), "name", "Names like \"Student 1a2b3c\" are kept for accounts that have not chosen one")
}

// looksDefault tells whether name has the form of a DefaultName, which
// nobody may choose: it would pass for another account's.
func looksDefault(name string) bool {
	rest, ok := strings.CutPrefix(strings.ToLower(name), "student ")
	if !ok || len(rest) != 6 {
		return false
	}
	for _, c := range rest {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// NormalizeEmail is the form emails are stored, compared and looked up in.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// validateSignUp checks a new account's credentials and its display name
// (nil: none given), one item per bad field.
func validateSignUp(email, password string, name *string) error {
	var v validate.Errors
	v.Check(validate.Email(email), "email", "Email must be valid")
	if n := validate.Len(password); n < MinPasswordLen || n > MaxPasswordLen {
		v.Add("password", "Password must be between 8 and 72 characters")
	} else if len(password) > MaxPasswordBytes {
		v.Add("password", "Password must be at most 72 bytes: accented letters and emoji count as 2 to 4 bytes each")
	}
	if name != nil {
		checkName(&v, *name)
	}
	return v.Err()
}

// validateName checks a normalized display name on its own.
func validateName(name string) error {
	var v validate.Errors
	checkName(&v, name)
	return v.Err()
}

// validateSignIn checks the shape of sign-in input only; whether the
// password is right is answered with ErrInvalidCredentials.
func validateSignIn(email, password string) error {
	var v validate.Errors
	v.Check(validate.Email(email), "email", "Email must be valid")
	v.Check(password != "", "password", "You must supply a password")
	return v.Err()
}
