package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/mongox"
)

// BansCollection holds one document per user ever banned: their latest ban
// and unban. An unban keeps the document (a ban redelivered late must not
// win over it), so it grows with the users ever banned, no faster.
const BansCollection = "banned_sellers"

type banDoc struct {
	UserID     string    `bson:"_id"`
	BannedAt   time.Time `bson:"bannedAt"`
	UnbannedAt time.Time `bson:"unbannedAt"`
	Rev        int64     `bson:"rev"`
}

func (d banDoc) domain() stuff.Ban {
	return stuff.Ban{UserID: d.UserID, BannedAt: d.BannedAt.UTC(), UnbannedAt: d.UnbannedAt.UTC()}
}

// SaveBan implements stuff.BanStore: under the Writer's lock of the user's
// document, it merges b into what is stored and writes the result if it
// changed. A write of another replica in between (a duplicate insert, a
// rev that moved) makes it read and merge again.
func (st *Store) SaveBan(ctx context.Context, b stuff.Ban) (stuff.Ban, error) {
	if b.UserID == "" {
		return stuff.Ban{}, errors.New("save ban: no user id")
	}
	for range maxAttempts {
		var (
			out  stuff.Ban
			done bool
		)
		err := st.w.Lock(ctx, st.bans, b.UserID, func(ctx context.Context) error {
			var d banDoc
			err := st.bans.FindOne(ctx, bson.D{{Key: "_id", Value: b.UserID}}).Decode(&d)
			if errors.Is(err, mongo.ErrNoDocuments) {
				d = banDoc{UserID: b.UserID, BannedAt: b.BannedAt, UnbannedAt: b.UnbannedAt, Rev: 1}
				err := st.w.Insert(ctx, st.bans, d)
				if mongox.IsDuplicate(err) {
					return nil // another replica's first write: merge into it
				}
				if err != nil {
					return fmt.Errorf("insert ban of %s: %w", b.UserID, err)
				}
				out, done = d.domain(), true
				return nil
			}
			if err != nil {
				return fmt.Errorf("load ban of %s: %w", b.UserID, err)
			}
			merged := d.domain()
			if !merged.Merge(b) {
				out, done = merged, true
				return nil
			}
			done, err = st.w.UpdateLocked(ctx, st.bans, b.UserID, bson.D{{Key: "$set", Value: bson.D{
				{Key: "bannedAt", Value: merged.BannedAt},
				{Key: "unbannedAt", Value: merged.UnbannedAt},
				{Key: "rev", Value: d.Rev + 1},
			}}}, bson.E{Key: "rev", Value: d.Rev})
			if err != nil {
				return fmt.Errorf("save ban of %s: %w", b.UserID, err)
			}
			out = merged
			return nil
		})
		if err != nil {
			return stuff.Ban{}, err
		}
		if done {
			return out, nil
		}
	}
	return stuff.Ban{}, fmt.Errorf("save ban of %s: %w", b.UserID, ErrContention)
}

// Bans returns every stored ban, lifted ones included. It reads the whole
// collection: the catalog calls it when it loads and reconciles, never on a
// request.
func (st *Store) Bans(ctx context.Context) ([]stuff.Ban, error) {
	cur, err := st.bans.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("find bans: %w", err)
	}
	var ds []banDoc
	if err := cur.All(ctx, &ds); err != nil {
		return nil, fmt.Errorf("read bans: %w", err)
	}
	out := make([]stuff.Ban, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.domain())
	}
	return out, nil
}
