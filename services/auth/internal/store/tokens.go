package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/mongox"
)

// Tokens keeps refresh tokens (by hash), their uses and revoked families.
// Every write is an insert and every hot read is by _id: on FerretDB a
// unique-key insert is the one atomic decision, and _id lookups are the only
// fast ones (docs/data-safety.md).
type Tokens struct {
	w       *mongox.Writer
	tokens  *mongo.Collection
	uses    *mongo.Collection
	revoked *mongo.Collection
}

// NewTokens returns the refresh-token store; it writes through w.
func NewTokens(db *mongo.Database, w *mongox.Writer) *Tokens {
	return &Tokens{
		w:       w,
		tokens:  db.Collection(TokensCollection),
		uses:    db.Collection(UsesCollection),
		revoked: db.Collection(RevokedFamiliesCollection),
	}
}

type tokenDoc struct {
	Hash      string    `bson:"_id"`
	UserID    string    `bson:"userId"`
	FamilyID  string    `bson:"familyId"`
	ExpiresAt time.Time `bson:"expiresAt"`
	CreatedAt time.Time `bson:"createdAt"`
}

// CreateToken stores t (its hash, never the token).
func (s *Tokens) CreateToken(ctx context.Context, t users.RefreshToken) error {
	err := s.w.Insert(ctx, s.tokens, tokenDoc(t))
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

// Token returns the token stored under hash; errs.ErrNotFound if none.
func (s *Tokens) Token(ctx context.Context, hash string) (users.RefreshToken, error) {
	var d tokenDoc
	if err := s.tokens.FindOne(ctx, bson.D{{Key: "_id", Value: hash}}).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return users.RefreshToken{}, errs.ErrNotFound
		}
		return users.RefreshToken{}, fmt.Errorf("find refresh token: %w", err)
	}
	return users.RefreshToken(d), nil
}

// ClaimUse inserts {_id: hash} into refresh_uses: the first insert wins, any
// other (concurrent or later) gets users.ErrTokenUsed.
func (s *Tokens) ClaimUse(ctx context.Context, hash, familyID string, now time.Time) error {
	err := s.w.Insert(ctx, s.uses, bson.D{{Key: "_id", Value: hash}, {Key: "familyId", Value: familyID}, {Key: "usedAt", Value: now}})
	if mongox.IsDuplicate(err) {
		return users.ErrTokenUsed
	}
	if err != nil {
		return fmt.Errorf("claim refresh token use: %w", err)
	}
	return nil
}

// RevokeFamily inserts {_id: familyID} into revoked_families; an existing
// revocation is kept as is.
func (s *Tokens) RevokeFamily(ctx context.Context, familyID, userID string, now time.Time) error {
	err := s.w.Insert(ctx, s.revoked, bson.D{{Key: "_id", Value: familyID}, {Key: "userId", Value: userID}, {Key: "revokedAt", Value: now}})
	if err != nil && !mongox.IsDuplicate(err) {
		return fmt.Errorf("revoke refresh token family: %w", err)
	}
	return nil
}

// FamilyRevoked reports whether familyID was revoked (a lookup by _id).
func (s *Tokens) FamilyRevoked(ctx context.Context, familyID string) (bool, error) {
	err := s.revoked.FindOne(ctx, bson.D{{Key: "_id", Value: familyID}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	default:
		return false, fmt.Errorf("check refresh token family: %w", err)
	}
}

// RevokeUser revokes every family the user has tokens in. It queries by
// userId (a scan on FerretDB), which is fine for bans, a rare admin action.
func (s *Tokens) RevokeUser(ctx context.Context, userID string, now time.Time) error {
	cur, err := s.tokens.Find(ctx, bson.D{{Key: "userId", Value: userID}},
		options.Find().SetProjection(bson.D{{Key: "familyId", Value: 1}}))
	if err != nil {
		return fmt.Errorf("find refresh tokens of %s: %w", userID, err)
	}
	var docs []struct {
		FamilyID string `bson:"familyId"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("find refresh tokens of %s: %w", userID, err)
	}
	seen := map[string]bool{}
	for _, d := range docs {
		if seen[d.FamilyID] {
			continue
		}
		seen[d.FamilyID] = true
		if err := s.RevokeFamily(ctx, d.FamilyID, userID, now); err != nil {
			return err
		}
	}
	return nil
}
