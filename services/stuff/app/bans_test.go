package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// banRecorded reports whether the stuff database holds userID's ban record
// (what a replica started later loads).
func banRecorded(t testing.TB, s *stack, userID string) bool {
	t.Helper()
	n, err := s.DB.Collection("banned_sellers").CountDocuments(context.Background(), bson.D{{Key: "_id", Value: userID}})
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestBannedSeller: a ban hides the seller's listings on every replica (the
// listing and the single listing), on a replica started later too, and an
// unban lists them again; a late redelivery of the ban does not undo the
// unban.
func TestBannedSeller(t *testing.T) {
	t.Parallel()
	a := newStack(t)
	b := newStack(t, testkit.OnNATS(a.NATS), testkit.OnDB(a.DB))
	peer := a.Peer
	seller, other := a.user(), a.user()
	s1 := a.create(t, seller, "Seller's first", 100, "")
	s2 := b.create(t, seller, "Seller's second", 100, "")
	kept := a.create(t, other, "Someone else's", 100, "")
	mine := []string{s1.ID, s2.ID}

	shows := func(r *stack, want ...string) func() bool {
		return func() bool {
			p := r.list(t, "?limit=100")
			if p.Total != len(want) || len(p.Stuff) != len(want) {
				return false
			}
			for _, id := range want {
				if !p.has(id) {
					return false
				}
			}
			return true
		}
	}
	hidden := func(t *testing.T, r *stack, ids ...string) {
		t.Helper()
		for _, id := range ids {
			r.do(t, anon, http.MethodGet, "/api/stuff/"+id, nil).wantError(http.StatusNotFound, "Not Found", "")
		}
	}
	replicas := []*stack{a, b}
	for _, r := range replicas {
		testkit.Eventually(t, 10*time.Second, shows(r, s1.ID, s2.ID, kept.ID), "a replica does not list every listing")
		for _, id := range mine { // cached on every replica
			r.get(t, anon, id)
		}
	}

	bannedAt := time.Now().UTC()
	peer.Publish(events.UserBannedEvent{UserID: seller.ID, At: bannedAt})
	for _, r := range replicas {
		testkit.Eventually(t, 10*time.Second, shows(r, kept.ID), "a replica still lists the banned seller's stuff")
		hidden(t, r, mine...)
		r.get(t, anon, kept.ID)
	}

	// A replica started later, on another NATS prefix (it cannot hear the
	// ban), learns it from the database.
	testkit.Eventually(t, 10*time.Second, func() bool { return banRecorded(t, a, seller.ID) }, "the ban was not recorded")
	late := newStack(t, testkit.OnDB(a.DB))
	if !shows(late, kept.ID)() {
		t.Fatalf("a replica started after the ban lists %v", late.list(t, "?limit=100").ids())
	}
	hidden(t, late, mine...)
	late.Stop()

	peer.Publish(events.UserUnbannedEvent{UserID: seller.ID, At: bannedAt.Add(time.Second)})
	for _, r := range replicas {
		testkit.Eventually(t, 10*time.Second, shows(r, s1.ID, s2.ID, kept.ID), "a replica does not list the unbanned seller's stuff again")
		for _, id := range mine {
			if got := r.get(t, anon, id); got.Status != "available" {
				t.Fatalf("after the unban %+v", got)
			}
		}
	}

	// The ban again, redelivered late (older than the unban), then a ban of
	// the other seller: the first changes nothing, the second bites.
	peer.Publish(events.UserBannedEvent{UserID: seller.ID, At: bannedAt})
	peer.Publish(events.UserBannedEvent{UserID: other.ID, At: time.Now().UTC()})
	for _, r := range replicas {
		testkit.Eventually(t, 10*time.Second, shows(r, s1.ID, s2.ID), "the other seller's ban did not bite, or the late one did")
		hidden(t, r, kept.ID)
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return banRecorded(t, a, other.ID) }, "the second ban was not recorded")
	later := newStack(t, testkit.OnDB(a.DB))
	if !shows(later, s1.ID, s2.ID)() {
		t.Fatalf("a replica started after the unban lists %v", later.list(t, "?limit=100").ids())
	}
}
