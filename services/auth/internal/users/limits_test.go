package users

import (
	"testing"
	"time"
)

// Tries sent together when a wait ends get one guess between them: the
// first is reserved until it fails or succeeds.
func TestBackoffOneGuessAtATime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBackoff(func() time.Time { return now })
	const email = "ann@uni.edu"
	for range BackoffFree - 1 {
		if w, _ := b.Wait(email); w != 0 {
			t.Fatalf("a free try waits %s", w)
		}
		b.Failed(email)
	}
	// The last free try and the ones sent with it.
	if w, _ := b.Wait(email); w != 0 {
		t.Fatalf("the last free try waits %s", w)
	}
	for range 4 {
		if w, _ := b.Wait(email); w != BackoffFirst {
			t.Fatalf("a try sent with the last free one waits %s, want %s", w, BackoffFirst)
		}
	}
	b.Failed(email)
	now = now.Add(BackoffFirst)
	if w, _ := b.Wait(email); w != 0 {
		t.Fatalf("after the wait: %s", w)
	}
	if w, _ := b.Wait(email); w != 2*BackoffFirst {
		t.Fatalf("a second try when the wait ended waits %s, want %s", w, 2*BackoffFirst)
	}
	// A success ends the run, reservation included.
	b.Succeeded(email)
	if w, _ := b.Wait(email); w != 0 {
		t.Fatalf("after a success: %s", w)
	}
	// A run long over reserves nothing.
	for range BackoffFree {
		b.Failed(email)
	}
	now = now.Add(BackoffForget)
	for range 3 {
		if w, _ := b.Wait(email); w != 0 {
			t.Fatalf("a run over %s ago still holds: %s", BackoffForget, w)
		}
	}
}

// A try let through that could not check the password (the database
// failed) gives its reservation back with its ticket: the next try goes
// ahead at once rather than waiting for a guess never made. A stale
// ticket (its try outlived its delay and another took the run) releases
// nothing.
func TestBackoffReleased(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBackoff(func() time.Time { return now })
	const key = "ann@uni.edu 198.51.100.7"
	for range BackoffFree {
		b.Failed(key)
	}
	now = now.Add(BackoffFirst)
	w, ticket := b.Wait(key)
	if w != 0 || ticket == 0 {
		t.Fatalf("after the first wait: %s, ticket %d", w, ticket)
	}
	if w, tk := b.Wait(key); w != 2*BackoffFirst || tk != 0 {
		t.Fatalf("while reserved: %s (ticket %d), want %s", w, tk, 2*BackoffFirst)
	}
	b.Released(key, ticket)
	w, ticket = b.Wait(key)
	if w != 0 {
		t.Fatalf("after the release: %s, want none", w)
	}
	// That try is slow: its delay passes and another try takes the run.
	now = now.Add(2 * BackoffFirst)
	_, other := b.Wait(key)
	if other == 0 || other == ticket {
		t.Fatalf("the next try's ticket %d (the slow one's %d)", other, ticket)
	}
	b.Released(key, ticket) // late, and not its reservation any more
	if w, _ := b.Wait(key); w != 2*BackoffFirst {
		t.Fatalf("a stale release lifted another try's reservation: wait %s, want %s", w, 2*BackoffFirst)
	}
	// The other fails: the schedule goes on from where it was.
	b.Failed(key)
	if w, _ := b.Wait(key); w != 2*BackoffFirst {
		t.Fatalf("after the next failure: %s, want %s", w, 2*BackoffFirst)
	}
	b.Released("nobody@uni.edu 198.51.100.7", other) // no run: nothing to release
}

// The delay doubles from BackoffFirst up to BackoffMax.
func TestBackoffSchedule(t *testing.T) {
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := backoffDelay(BackoffFree + i); got != w {
			t.Errorf("after failure %d: %s, want %s", BackoffFree+i, got, w)
		}
	}
}
