// Package auth carries the signed-in user between the browser and every
// service: a short-lived HS256 JWT (and the refresh token) inside a signed,
// encrypted gorilla/sessions cookie, verified locally by each service with no
// call to the auth service, plus the Echo middlewares that use it.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles a user may have. The role travels in the JWT.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// User is who a request acts for, as asserted by a valid access token.
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
	// IssuedAt is when the access token that names the user was issued
	// (zero for a user that did not come from a token). A ban refuses the
	// tokens issued before it.
	IssuedAt time.Time `json:"-"`
}

// IsAdmin reports whether the user may use admin routes.
func (u User) IsAdmin() bool { return u.Role == RoleAdmin }

// ErrInvalidToken is returned for any token that must not be trusted:
// malformed, badly signed, signed with another algorithm, without or past
// its expiry, or missing a subject or role.
var ErrInvalidToken = errors.New("invalid access token")

type claims struct {
	Email string `json:"email"`
	Role  string `json:"role"`
	jwt.RegisteredClaims
}

// Tokens issues and verifies access tokens with one HS256 key.
type Tokens struct {
	key []byte
	ttl time.Duration
	// Now is the clock; tests pin it.
	Now func() time.Time
}

// NewTokens returns Tokens signing with key; tokens are valid for ttl.
func NewTokens(key []byte, ttl time.Duration) *Tokens {
	return &Tokens{key: key, ttl: ttl, Now: time.Now}
}

// TTL is how long an issued access token stays valid.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue signs an access token for u, valid from now for the configured TTL.
func (t *Tokens) Issue(u User) (string, error) {
	now := t.Now()
	c := claims{
		Email: u.Email,
		Role:  u.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}

// Verify checks the token's signature (HS256 only), expiry (required) and
// claims, and returns the user it names. Any failure is ErrInvalidToken.
func (t *Tokens) Verify(token string) (User, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c,
		func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.Now),
		jwt.WithStrictDecoding(),
	)
	if err != nil {
		return User{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" || (c.Role != RoleUser && c.Role != RoleAdmin) {
		return User{}, fmt.Errorf("%w: missing subject or role", ErrInvalidToken)
	}
	u := User{ID: c.Subject, Email: c.Email, Role: c.Role}
	if c.IssuedAt != nil {
		u.IssuedAt = c.IssuedAt.Time.UTC()
	}
	return u, nil
}
