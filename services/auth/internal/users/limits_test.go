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
		if w := b.Wait(email); w != 0 {
			t.Fatalf("a free try waits %s", w)
		}
		b.Failed(email)
	}
	// The last free try and the ones sent with it.
	if w := b.Wait(email); w != 0 {
		t.Fatalf("the last free try waits %s", w)
	}
	for range 4 {
		if w := b.Wait(email); w != BackoffFirst {
			t.Fatalf("a try sent with the last free one waits %s, want %s", w, BackoffFirst)
		}
	}
	b.Failed(email)
	now = now.Add(BackoffFirst)
	if w := b.Wait(email); w != 0 {
		t.Fatalf("after the wait: %s", w)
	}
	if w := b.Wait(email); w != 2*BackoffFirst {
		t.Fatalf("a second try when the wait ended waits %s, want %s", w, 2*BackoffFirst)
	}
	// A success ends the run, reservation included.
	b.Succeeded(email)
	if w := b.Wait(email); w != 0 {
		t.Fatalf("after a success: %s", w)
	}
	// A run long over reserves nothing.
	for range BackoffFree {
		b.Failed(email)
	}
	now = now.Add(BackoffForget)
	for range 3 {
		if w := b.Wait(email); w != 0 {
			t.Fatalf("a run over %s ago still holds: %s", BackoffForget, w)
		}
	}
}
