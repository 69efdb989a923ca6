package app_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// TestPruneForgetsWhatCanNoLongerMatter: refresh tokens, the claims of their
// uses and revoked families would only grow (FerretDB has no TTL index). A
// background worker deletes what refresh rotation can no longer need, and
// keeps everything else.
func TestPruneForgetsWhatCanNoLongerMatter(t *testing.T) {
	s := newStackWith(t, func(c *app.Config) { c.PruneEvery = 20 * time.Millisecond })
	old := s.clock.Now()
	tokens, uses, revoked := s.DB.Collection("refresh_tokens"), s.DB.Collection("refresh_uses"), s.DB.Collection("revoked_families")

	// Long ago: ann signs up, refreshes and signs out (a family used and
	// revoked), then signs in and refreshes again (a family left alone).
	ann := s.client(t)
	ann.signUp("ann@uni.edu")
	wantUser(t, ann.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	ann.Do(http.MethodPost, "/api/users/signout", nil).Want(http.StatusOK)
	ann = s.client(t)
	wantUser(t, ann.Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK)
	wantUser(t, ann.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	// Records older than what the pruner reads today: a claim of a use that
	// does not say when its token expires (pruned by when it was used), and
	// a revocation, as old as the others, of a family that still has a
	// token (as if the refresh lifetime had been longer then): kept, since
	// that token must stay refused.
	mustInsert(t, uses, bson.D{{Key: "_id", Value: "legacy-old"}, {Key: "familyId", Value: "f-legacy"}, {Key: "usedAt", Value: old}})
	mustInsert(t, tokens, bson.D{{Key: "_id", Value: "long-lived"}, {Key: "userId", Value: "u-long"}, {Key: "familyId", Value: "f-long"},
		{Key: "expiresAt", Value: old.Add(10 * testkit.RefreshTTL)}, {Key: "createdAt", Value: old}})
	mustInsert(t, revoked, bson.D{{Key: "_id", Value: "f-long"}, {Key: "userId", Value: "u-long"}, {Key: "revokedAt", Value: old}})

	// Every one of ann's tokens has now been expired for longer than the
	// margin.
	s.clock.Advance(testkit.RefreshTTL + users.PruneMargin + time.Minute)

	// Today: bob does the same; all of it still matters.
	bob := s.client(t)
	bob.signUp("bob@uni.edu")
	wantUser(t, bob.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	bob.Do(http.MethodPost, "/api/users/signout", nil).Want(http.StatusOK)
	bob = s.client(t)
	wantUser(t, bob.Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "bob@uni.edu", "password": password}), http.StatusOK)
	wantUser(t, bob.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	mustInsert(t, uses, bson.D{{Key: "_id", Value: "legacy-new"}, {Key: "familyId", Value: "f-legacy"}, {Key: "usedAt", Value: s.clock.Now()}})

	bobID := bob.currentUser().ID
	want := map[string][]string{
		"refresh_tokens":   append(idsWhere(t, tokens, "userId", bobID), "long-lived"),
		"refresh_uses":     append(idsWhere(t, uses, "userId", bobID), "legacy-new"),
		"revoked_families": append(idsWhere(t, revoked, "userId", bobID), "f-long"),
	}
	if len(want["refresh_tokens"]) != 5 || len(want["refresh_uses"]) != 3 || len(want["revoked_families"]) != 2 {
		t.Fatalf("bob's records %v: want 4 tokens, 2 uses and 1 revoked family of bob's", want)
	}
	var got map[string][]string
	testkit.Eventually(t, 10*time.Second, func() bool {
		got = map[string][]string{}
		for name := range want {
			got[name] = idsWhere(t, s.DB.Collection(name), "", nil)
		}
		return maps.EqualFunc(got, want, func(a, b []string) bool {
			return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
		})
	}, "records left %v, want %v", lazy(func() any { return got }), want)

	// Nothing that matters went: bob refreshes, ann signs in and refreshes.
	wantUser(t, bob.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	ann = s.client(t)
	wantUser(t, ann.Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK)
	wantUser(t, ann.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
}

func mustInsert(t *testing.T, coll *mongo.Collection, doc bson.D) {
	t.Helper()
	if _, err := coll.InsertOne(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
}

// idsWhere returns the _id of the documents of coll whose key is value,
// every one's when key is empty.
func idsWhere(t *testing.T, coll *mongo.Collection, key string, value any) []string {
	t.Helper()
	filter := bson.D{}
	if key != "" {
		filter = bson.D{{Key: key, Value: value}}
	}
	cur, err := coll.Find(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	return ids
}

// lazy formats what its function returns when printed: a message argument
// that shows the value at the time of the failure.
type lazy func() any

func (l lazy) String() string { return fmt.Sprint(l()) }
