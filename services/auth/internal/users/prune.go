package users

import (
	"context"
	"fmt"
	"time"
)

// PruneMargin is how long the Pruner keeps a record after it stopped
// mattering: a sign-out with a cookie whose token just expired still finds
// the token (and revokes its family), and replicas whose clocks disagree a
// little agree on what is gone.
const PruneMargin = 24 * time.Hour

// Retention deletes the refresh-rotation records the Pruner finds useless.
// Each method returns how many records went.
type Retention interface {
	// PruneTokens deletes the refresh tokens that expired before t.
	PruneTokens(ctx context.Context, expiredBefore time.Time) (int64, error)
	// PruneUses deletes the claims of uses of tokens that expired before
	// expiredBefore; a claim that does not say when its token expires
	// (written before claims kept it) goes when it was used before
	// usedBefore.
	PruneUses(ctx context.Context, expiredBefore, usedBefore time.Time) (int64, error)
	// PruneRevocations deletes the revocations made before revokedBefore of
	// families that have no token left.
	PruneRevocations(ctx context.Context, revokedBefore time.Time) (int64, error)
}

// Pruner keeps the refresh-rotation records from growing forever (FerretDB
// has no TTL index; MongoDB's would not know these rules either). What it
// keeps, and why:
//
//   - A refresh token until PruneMargin after it expires. Until it expires it
//     may be presented; after, Refresh refuses it as expired before reading
//     anything else about it.
//   - The claim of a token's use as long as that token: Refresh reads it only
//     for a token it found unexpired (to give the grace's answer, or to see
//     a replay and revoke the family).
//   - A family's revocation for a refresh lifetime plus PruneMargin after it
//     was made (by then every token of the family issued before it has
//     expired), and after that as long as any token of the family is still
//     stored (one issued under a longer lifetime, say): the revocation is
//     what refuses them.
//
// Users, and the events in their outbox, are never pruned.
type Pruner struct {
	store      Retention
	refreshTTL time.Duration
	now        func() time.Time
}

// NewPruner returns a Pruner over store for refresh tokens valid refreshTTL
// (default 7 days); now is the clock (default time.Now).
func NewPruner(store Retention, refreshTTL time.Duration, now func() time.Time) *Pruner {
	if refreshTTL <= 0 {
		refreshTTL = 7 * 24 * time.Hour
	}
	if now == nil {
		now = time.Now
	}
	return &Pruner{store: store, refreshTTL: refreshTTL, now: now}
}

// Pruned counts what one Prune deleted.
type Pruned struct {
	Tokens, Uses, Revocations int64
}

// Prune deletes what can no longer matter (see Pruner), tokens first, so
// that a revocation is judged on the tokens left. Several replicas may
// prune at once: deleting what is gone is a no-op.
func (p *Pruner) Prune(ctx context.Context) (Pruned, error) {
	var n Pruned
	var err error
	now := p.now()
	expired := now.Add(-PruneMargin)
	if n.Tokens, err = p.store.PruneTokens(ctx, expired); err != nil {
		return n, fmt.Errorf("prune refresh tokens: %w", err)
	}
	if n.Uses, err = p.store.PruneUses(ctx, expired, expired.Add(-p.refreshTTL)); err != nil {
		return n, fmt.Errorf("prune refresh token uses: %w", err)
	}
	if n.Revocations, err = p.store.PruneRevocations(ctx, expired.Add(-p.refreshTTL)); err != nil {
		return n, fmt.Errorf("prune revoked families: %w", err)
	}
	return n, nil
}
