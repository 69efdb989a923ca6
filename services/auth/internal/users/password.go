package users

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// DefaultPasswordCost is the bcrypt cost used in production: about 50 ms a
// hash on one core here, slow enough to make offline guessing expensive and
// fast enough that sign-in stays responsive.
const DefaultPasswordCost = 10

// hasher hashes and checks passwords with bcrypt.
//
// Why bcrypt rather than argon2id: both are sound; bcrypt's cost is CPU
// only, while argon2id's strength comes from memory (tens of MiB per hash),
// which would blow the service's 40 MiB budget under a handful of concurrent
// sign-ins. bcrypt's one trap, reading only the first 72 bytes, is
// closed by refusing longer passwords at sign-up and sign-in instead of
// letting two passwords with the same 72-byte prefix match.
type hasher struct {
	cost int
	// dummy is compared against when the email is unknown, so that an unknown
	// email costs as much time as a wrong password.
	dummy []byte
}

func newHasher(cost int) (*hasher, error) {
	if cost == 0 {
		cost = DefaultPasswordCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("stuffmart timing equalizer"), cost)
	if err != nil {
		return nil, fmt.Errorf("dummy password hash: %w", err)
	}
	return &hasher{cost: cost, dummy: dummy}, nil
}

func (h *hasher) hash(password string) ([]byte, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(password), h.cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return b, nil
}

// matches reports whether password is the one hashed in hash. A nil hash
// (unknown email) is compared against the dummy and never matches. Passwords
// over 72 bytes never match, but still pay for one comparison.
func (h *hasher) matches(hash []byte, password string) (bool, error) {
	known := hash != nil
	if !known {
		hash = h.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	switch {
	case err == nil:
		return known && len(password) <= MaxPasswordBytes, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("compare password: %w", err)
	}
}
