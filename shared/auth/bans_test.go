package auth_test

import (
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestBans(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 500_000_000, time.UTC))
	b := auth.NewBans(15*time.Minute, clk.Now)
	banned := clk.Now()
	b.Ban("u1", banned)
	tests := []struct {
		name     string
		user     string
		issuedAt time.Time
		revoked  bool
	}{
		{"token from before the ban", "u1", banned.Add(-time.Minute), true},
		{"token issued in the second of the ban (tokens carry whole seconds)", "u1", banned.Truncate(time.Second), true},
		{"token issued after the ban (signed in again once unbanned)", "u1", banned.Truncate(time.Second).Add(time.Second), false},
		{"another user", "u2", banned.Add(-time.Minute), false},
	}
	for _, tc := range tests {
		if got := b.Revoked(tc.user, tc.issuedAt); got != tc.revoked {
			t.Errorf("%s: Revoked = %v, want %v", tc.name, got, tc.revoked)
		}
	}

	// A later ban (banned again after an unban) moves the line; an older
	// one does not.
	b.Ban("u1", banned.Add(-time.Hour))
	if !b.Revoked("u1", banned.Add(-time.Second)) {
		t.Fatal("an older ban replayed after a newer one lifted the newer")
	}
	// Once every token from before the ban has expired, the entry goes.
	clk.Advance(16 * time.Minute)
	b.Ban("u3", clk.Now())
	if b.Revoked("u1", banned.Add(-time.Minute)) {
		t.Fatal("a ban older than the token lifetime is still applied")
	}
	// A ban replayed from long ago changes nothing.
	b.Ban("u4", clk.Now().Add(-time.Hour))
	if b.Revoked("u4", clk.Now().Add(-2*time.Hour)) {
		t.Fatal("a ban older than the token lifetime was recorded")
	}
}
