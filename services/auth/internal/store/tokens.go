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
// Every write on a request's path is an insert and every hot read is by
// _id: on FerretDB a unique-key insert is the one atomic decision, and _id
// lookups are the only fast ones (docs/data-safety.md). The pruner's
// deletes, in the background, scan.
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

// CreateToken stores t (its hash, never the token). A token already stored
// under t.Hash is kept: it is the same successor, saved by another presenter
// of the token it replaces.
func (s *Tokens) CreateToken(ctx context.Context, t users.RefreshToken) error {
	err := s.w.Insert(ctx, s.tokens, tokenDoc(t))
	if err != nil && !mongox.IsDuplicate(err) {
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

// useDoc is the claim of a token's use, with its result: the successor's
// stored form (a hash, never the token).
type useDoc struct {
	Hash      string    `bson:"_id"`
	UserID    string    `bson:"userId"`
	FamilyID  string    `bson:"familyId"`
	ExpiresAt time.Time `bson:"expiresAt"`
	UsedAt    time.Time `bson:"usedAt"`
	Next      *nextDoc  `bson:"next,omitempty"`
}

// nextDoc is the successor a use issued. Its user and family are the used
// token's.
type nextDoc struct {
	Hash      string    `bson:"hash"`
	ExpiresAt time.Time `bson:"expiresAt"`
	CreatedAt time.Time `bson:"createdAt"`
}

// ClaimUse inserts the claim {_id: u.Hash, …, next} into refresh_uses: the
// first insert wins, any other (concurrent or later) gets users.ErrTokenUsed.
func (s *Tokens) ClaimUse(ctx context.Context, u users.Use) error {
	d := useDoc{Hash: u.Hash, UserID: u.UserID, FamilyID: u.FamilyID, ExpiresAt: u.ExpiresAt, UsedAt: u.UsedAt,
		Next: &nextDoc{Hash: u.Next.Hash, ExpiresAt: u.Next.ExpiresAt, CreatedAt: u.Next.CreatedAt}}
	err := s.w.Insert(ctx, s.uses, d)
	if mongox.IsDuplicate(err) {
		return users.ErrTokenUsed
	}
	if err != nil {
		return fmt.Errorf("claim refresh token use: %w", err)
	}
	return nil
}

// Use returns the claim of the token stored under hash (a lookup by _id);
// errs.ErrNotFound if it was not used. A claim written before claims carried
// their successor has an empty Next.
func (s *Tokens) Use(ctx context.Context, hash string) (users.Use, error) {
	var d useDoc
	if err := s.uses.FindOne(ctx, bson.D{{Key: "_id", Value: hash}}).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return users.Use{}, errs.ErrNotFound
		}
		return users.Use{}, fmt.Errorf("find refresh token use: %w", err)
	}
	u := users.Use{Hash: d.Hash, UserID: d.UserID, FamilyID: d.FamilyID, ExpiresAt: d.ExpiresAt, UsedAt: d.UsedAt}
	if d.Next != nil {
		u.Next = users.RefreshToken{Hash: d.Next.Hash, UserID: d.UserID, FamilyID: d.FamilyID,
			ExpiresAt: d.Next.ExpiresAt, CreatedAt: d.Next.CreatedAt}
	}
	return u, nil
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

// PruneTokens deletes the tokens that expired before t. It scans the
// collection on FerretDB: for the background pruner only.
func (s *Tokens) PruneTokens(ctx context.Context, expiredBefore time.Time) (int64, error) {
	return s.w.DeleteMany(ctx, s.tokens, bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$lt", Value: expiredBefore}}}})
}

// PruneUses deletes the claims of uses of tokens that expired before
// expiredBefore, and the claims without the token's expiry used before
// usedBefore. A scan, for the background pruner only.
func (s *Tokens) PruneUses(ctx context.Context, expiredBefore, usedBefore time.Time) (int64, error) {
	return s.w.DeleteMany(ctx, s.uses, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$lt", Value: expiredBefore}}}},
		bson.D{
			{Key: "expiresAt", Value: bson.D{{Key: "$exists", Value: false}}},
			{Key: "usedAt", Value: bson.D{{Key: "$lt", Value: usedBefore}}},
		},
	}}})
}

// pruneBatch is how many revocations PruneRevocations checks against the
// tokens in one query.
const pruneBatch = 500

// PruneRevocations deletes the revocations made before revokedBefore whose
// family has no token left in refresh_tokens. Scans, for the background
// pruner only. A family without tokens gets none again: tokens are issued
// only by rotating a stored, unexpired token of the family.
func (s *Tokens) PruneRevocations(ctx context.Context, revokedBefore time.Time) (int64, error) {
	cur, err := s.revoked.Find(ctx, bson.D{{Key: "revokedAt", Value: bson.D{{Key: "$lt", Value: revokedBefore}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("find old revocations: %w", err)
	}
	var old []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &old); err != nil {
		return 0, fmt.Errorf("find old revocations: %w", err)
	}
	var total int64
	for start := 0; start < len(old); start += pruneBatch {
		batch := make([]string, 0, pruneBatch)
		for _, d := range old[start:min(start+pruneBatch, len(old))] {
			batch = append(batch, d.ID)
		}
		live, err := s.familiesWithTokens(ctx, batch)
		if err != nil {
			return total, err
		}
		var gone []string
		for _, f := range batch {
			if !live[f] {
				gone = append(gone, f)
			}
		}
		if len(gone) == 0 {
			continue
		}
		n, err := s.w.DeleteMany(ctx, s.revoked, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: gone}}}})
		total += n
		if err != nil {
			return total, fmt.Errorf("delete revocations: %w", err)
		}
	}
	return total, nil
}

// familiesWithTokens returns which of families have a token stored.
func (s *Tokens) familiesWithTokens(ctx context.Context, families []string) (map[string]bool, error) {
	cur, err := s.tokens.Find(ctx, bson.D{{Key: "familyId", Value: bson.D{{Key: "$in", Value: families}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "familyId", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("find tokens of revoked families: %w", err)
	}
	var docs []struct {
		FamilyID string `bson:"familyId"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("find tokens of revoked families: %w", err)
	}
	live := make(map[string]bool, len(docs))
	for _, d := range docs {
		live[d.FamilyID] = true
	}
	return live, nil
}
