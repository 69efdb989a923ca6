package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"
)

// RefreshToken is the stored form of a refresh token. The token itself is
// never stored: Hash (hex SHA-256 of the token) is the document's _id, so a
// leaked database cannot be replayed. Tokens issued from one sign-in share a
// FamilyID; rotation keeps the family, revocation kills it whole.
type RefreshToken struct {
	Hash      string
	UserID    string
	FamilyID  string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// TokenStore keeps refresh tokens and the claims that make rotation safe on
// FerretDB, whose conditional updates are not atomic (docs/data-safety.md):
// "this token was used" and "this family is revoked" are inserts keyed by
// _id, never flags flipped by an update.
type TokenStore interface {
	CreateToken(ctx context.Context, t RefreshToken) error
	// Token returns the token stored under hash, errs.ErrNotFound if none.
	Token(ctx context.Context, hash string) (RefreshToken, error)
	// ClaimUse records the one use of a token; ErrTokenUsed (wrapped) if it
	// was already claimed, by this or a concurrent request.
	ClaimUse(ctx context.Context, hash, familyID string, now time.Time) error
	// RevokeFamily revokes every token of the family, now and to come.
	// Revoking a revoked family is a no-op.
	RevokeFamily(ctx context.Context, familyID, userID string, now time.Time) error
	// FamilyRevoked reports whether the family was revoked.
	FamilyRevoked(ctx context.Context, familyID string) (bool, error)
	// RevokeUser revokes every family of the user's tokens.
	RevokeUser(ctx context.Context, userID string, now time.Time) error
}

// HashToken is the store key of a refresh token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newToken returns a fresh token (32 random bytes, base64url) for the user in
// family, and its stored form.
func newToken(userID, familyID string, now time.Time, ttl time.Duration) (string, RefreshToken) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, RefreshToken{
		Hash:      HashToken(tok),
		UserID:    userID,
		FamilyID:  familyID,
		ExpiresAt: now.Add(ttl),
		CreatedAt: now,
	}
}

// newFamilyID returns a random refresh-token family id.
func newFamilyID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails, as above
	return hex.EncodeToString(b)
}
