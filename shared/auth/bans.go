package auth

import (
	"sync"
	"time"
)

// Bans remembers the users banned within the lifetime of an access token,
// so that every service refuses their tokens at once instead of when the
// tokens expire. A token issued before its user's ban is refused (issued at
// the same second counts as before: token times have a second's precision);
// one issued later, after the user was unbanned, is not. An entry is dropped
// once every token issued before it has expired. It is safe for concurrent
// use; the zero value is not: use NewBans.
type Bans struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	at map[string]time.Time // user id → the latest ban
}

// NewBans returns an empty list for access tokens valid ttl; now is the
// clock (time.Now when nil).
func NewBans(ttl time.Duration, now func() time.Time) *Bans {
	if now == nil {
		now = time.Now
	}
	return &Bans{ttl: ttl, now: now, at: map[string]time.Time{}}
}

// Ban records that userID was banned at at. A ban older than the token
// lifetime changes nothing (every token issued before it has expired).
func (b *Bans) Ban(userID string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for id, t := range b.at {
		if now.Sub(t) > b.ttl {
			delete(b.at, id)
		}
	}
	if now.Sub(at) > b.ttl {
		return
	}
	if prev, ok := b.at[userID]; !ok || at.After(prev) {
		b.at[userID] = at
	}
}

// Revoked reports whether a token of userID issued at issuedAt must be
// refused.
func (b *Bans) Revoked(userID string, issuedAt time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.at[userID]
	return ok && !issuedAt.After(at.Truncate(time.Second))
}
