package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Roles grants and revokes the admin role: the operator's command (`auth
// admin`), not an HTTP route. It acts only on accounts that exist, so the
// role goes to the person who holds the account, not to whoever signs up
// first with an address.
type Roles struct {
	users  Store
	tokens TokenStore
	now    func() time.Time
}

// NewRoles returns Roles over the stores; now is the clock (time.Now when
// nil).
func NewRoles(users Store, tokens TokenStore, now func() time.Time) *Roles {
	if now == nil {
		now = time.Now
	}
	return &Roles{users: users, tokens: tokens, now: now}
}

// Grant makes the account of email (any case) an admin and reports whether
// it changed (false: it was one already). The role shows in the account's
// next access token: at its next refresh or sign-in. Errors: ErrNoAccount.
func (r *Roles) Grant(ctx context.Context, email string) (User, bool, error) {
	u, changed, err := r.set(ctx, email, RoleAdmin)
	if err != nil {
		return User{}, false, fmt.Errorf("grant admin to %s: %w", NormalizeEmail(email), err)
	}
	return u, changed, nil
}

// Revoke makes the account of email a plain user again and reports whether
// it changed (false: it was not an admin). Every refresh-token family of
// the account is revoked too, also when the role had not changed (a revoke
// that failed half-way is completed by running it again): the account signs
// in again, as a user. An access token issued before keeps the admin role
// until it expires (ACCESS_TOKEN_TTL): the services verify it without asking
// auth. Errors: ErrNoAccount.
func (r *Roles) Revoke(ctx context.Context, email string) (User, bool, error) {
	u, changed, err := r.set(ctx, email, RoleUser)
	if err != nil {
		return User{}, false, fmt.Errorf("revoke admin from %s: %w", NormalizeEmail(email), err)
	}
	// After the role: a refresh racing with the revoke reads the new role
	// if it starts after this point, and is refused by the revocation
	// otherwise.
	if err := r.tokens.RevokeUser(ctx, u.ID, r.now()); err != nil {
		return User{}, false, fmt.Errorf("revoke admin from %s: end sessions: %w", u.Email, err)
	}
	return u, changed, nil
}

// Admins returns the admins, by email.
func (r *Roles) Admins(ctx context.Context) ([]User, error) {
	us, err := r.users.WithRole(ctx, RoleAdmin)
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	return us, nil
}

func (r *Roles) set(ctx context.Context, email, role string) (User, bool, error) {
	u, changed, err := r.users.SetRole(ctx, NormalizeEmail(email), role, r.now())
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return User{}, false, ErrNoAccount
	case err != nil:
		return User{}, false, err
	case u.Role != role:
		// Another command set another role in between.
		return User{}, false, fmt.Errorf("the role changed meanwhile to %s: run the command again", u.Role)
	}
	return u, changed, nil
}
