package stuff

import (
	"context"
	"fmt"
	"time"
)

// Ban is what the stuff service knows of a user's bans: when they were last
// banned and last unbanned (zero: never). A banned seller's listings are
// hidden from every listing page and answer 404.
//
// Ban and unban events travel on two channels and may come late, twice or
// in any order, so a Ban only ever moves forward: Merge keeps the later time
// of each, and the latest of the two decides.
type Ban struct {
	UserID     string
	BannedAt   time.Time
	UnbannedAt time.Time
}

// Banned reports whether the user's latest ban is later than their latest
// unban.
func (b Ban) Banned() bool { return b.BannedAt.After(b.UnbannedAt) }

// Merge takes what o knows (of the same user) into b, keeping the later time
// of each, and reports whether b changed.
func (b *Ban) Merge(o Ban) bool {
	changed := false
	if o.BannedAt.After(b.BannedAt) {
		b.BannedAt, changed = o.BannedAt, true
	}
	if o.UnbannedAt.After(b.UnbannedAt) {
		b.UnbannedAt, changed = o.UnbannedAt, true
	}
	return changed
}

// BanStore keeps the bans.
type BanStore interface {
	// SaveBan merges b into the stored ban of b.UserID (creating it) and
	// returns the result.
	SaveBan(ctx context.Context, b Ban) (Ban, error)
}

// SellerBanned records that userID was banned at at: their listings are
// hidden (on this replica at once; every replica hears the ban itself, and a
// replica started later reads it from the store).
func (sv *Service) SellerBanned(ctx context.Context, userID string, at time.Time) error {
	return sv.saveBan(ctx, Ban{UserID: userID, BannedAt: at.UTC().Truncate(time.Millisecond)})
}

// SellerUnbanned records that userID's ban was lifted at at: their listings
// are shown again.
func (sv *Service) SellerUnbanned(ctx context.Context, userID string, at time.Time) error {
	return sv.saveBan(ctx, Ban{UserID: userID, UnbannedAt: at.UTC().Truncate(time.Millisecond)})
}

func (sv *Service) saveBan(ctx context.Context, b Ban) error {
	saved, err := sv.bans.SaveBan(ctx, b)
	if err != nil {
		return fmt.Errorf("save ban of %s: %w", b.UserID, err)
	}
	sv.obs.ApplyBan(saved)
	return nil
}
