package users

import (
	"context"
	"crypto/hmac"
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

// Use is the claim that a refresh token was used, and what the use gave: its
// successor. A second presenter of the token within the grace reads it to get
// the same answer. It holds no token in the clear: the successor is derived
// again from the used token and the service's secret (see successorOf).
type Use struct {
	// Hash is the used token's hash: the claim's key.
	Hash     string
	UserID   string
	FamilyID string
	// ExpiresAt is the used token's expiry: after it the token is refused
	// as expired before its claim is read, so the claim no longer matters.
	ExpiresAt time.Time
	UsedAt    time.Time
	// Next is the stored form of the successor the use issued.
	Next RefreshToken
}

// TokenStore keeps refresh tokens and the claims that make rotation safe on
// FerretDB, whose conditional updates are not atomic (docs/data-safety.md):
// "this token was used" and "this family is revoked" are inserts keyed by
// _id, never flags flipped by an update.
type TokenStore interface {
	// CreateToken stores t; a token already stored under t.Hash is kept
	// (the successor a second presenter within the grace saved first).
	CreateToken(ctx context.Context, t RefreshToken) error
	// Token returns the token stored under hash, errs.ErrNotFound if none.
	Token(ctx context.Context, hash string) (RefreshToken, error)
	// ClaimUse records the one use of token u.Hash with its result;
	// ErrTokenUsed (wrapped) if it was already claimed, by this or a
	// concurrent request.
	ClaimUse(ctx context.Context, u Use) error
	// Use returns the claim of the token stored under hash, errs.ErrNotFound
	// if it was not used.
	Use(ctx context.Context, hash string) (Use, error)
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
	return stored(base64.RawURLEncoding.EncodeToString(b), userID, familyID, now, ttl)
}

// stored returns tok and its stored form.
func stored(tok, userID, familyID string, now time.Time, ttl time.Duration) (string, RefreshToken) {
	return tok, RefreshToken{
		Hash:      HashToken(tok),
		UserID:    userID,
		FamilyID:  familyID,
		ExpiresAt: now.Add(ttl),
		CreatedAt: now,
	}
}

// successorOf returns the token that rotation issues for token: 32 bytes,
// base64url, of HMAC-SHA256 keyed by key (derived from the service's
// secret). Derived rather than drawn, so that a second presenter of token
// within the grace gets the same successor without the database holding it
// in the clear: the database keeps hashes, from which neither token nor its
// successor can be computed, and whoever holds token alone cannot compute the
// successor either: the server computes it, within the grace only.
func successorOf(key []byte, token string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// successorKey derives the key of successorOf from the service's secret.
func successorKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("stuffmart refresh successor"))
	return m.Sum(nil)
}

// newFamilyID returns a random refresh-token family id.
func newFamilyID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails, as above
	return hex.EncodeToString(b)
}
