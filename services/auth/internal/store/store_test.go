package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/auth/internal/store"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func openDB(t *testing.T) *mongo.Database {
	t.Helper()
	db := testkit.Mongo(t)
	if err := mongox.EnsureIndexes(context.Background(), db, store.Indexes()...); err != nil {
		t.Fatal(err)
	}
	return db
}

// notifications counts relay notifications.
type notifications struct {
	mu  sync.Mutex
	ids []any
}

func (n *notifications) Notify(_ *mongo.Collection, id any, _ ...outbox.Pending) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ids = append(n.ids, id)
}

func (n *notifications) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.ids)
}

func TestClaimUseHasOneWinner(t *testing.T) {
	t.Parallel()
	s := store.NewTokens(openDB(t), mongox.NewWriter())
	ctx := context.Background()
	const n = 50
	errc := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errc <- s.ClaimUse(ctx, users.Use{Hash: "hash-1", UserID: "u1", FamilyID: "family-1", UsedAt: time.Now()})
		}()
	}
	close(start)
	wg.Wait()
	close(errc)
	won := 0
	for err := range errc {
		switch {
		case err == nil:
			won++
		case errors.Is(err, users.ErrTokenUsed):
		default:
			t.Fatalf("claim: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent claims won, want exactly 1", won, n)
	}
}

func TestUseKeepsItsSuccessor(t *testing.T) {
	t.Parallel()
	s := store.NewTokens(openDB(t), mongox.NewWriter())
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	next := users.RefreshToken{Hash: "h2", UserID: "u1", FamilyID: "f1", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	use := users.Use{Hash: "h1", UserID: "u1", FamilyID: "f1", ExpiresAt: now.Add(time.Minute), UsedAt: now, Next: next}
	if _, err := s.Use(ctx, "h1"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("use of an unused token: %v, want not found", err)
	}
	if err := s.ClaimUse(ctx, use); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimUse(ctx, use); !errors.Is(err, users.ErrTokenUsed) {
		t.Fatalf("second claim: %v, want ErrTokenUsed", err)
	}
	got, err := s.Use(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.UsedAt.Equal(use.UsedAt) || !got.ExpiresAt.Equal(use.ExpiresAt) || !got.Next.ExpiresAt.Equal(next.ExpiresAt) || !got.Next.CreatedAt.Equal(next.CreatedAt) {
		t.Fatalf("use read back %+v, want %+v", got, use)
	}
	got.UsedAt, got.ExpiresAt, got.Next.ExpiresAt, got.Next.CreatedAt = use.UsedAt, use.ExpiresAt, next.ExpiresAt, next.CreatedAt
	if got != use {
		t.Fatalf("use read back %+v, want %+v", got, use)
	}
	// The successor is saved by whichever presenter comes first; saving it
	// again is not an error and keeps it.
	for range 2 {
		if err := s.CreateToken(ctx, next); err != nil {
			t.Fatal(err)
		}
	}
	if tok, err := s.Token(ctx, "h2"); err != nil || tok.FamilyID != "f1" {
		t.Fatalf("successor %+v (err %v)", tok, err)
	}
}

// TestPruneRevocationsKeepsFamiliesWithTokens: a revocation old enough goes
// only when no token of its family is left, across batches.
func TestPruneRevocationsKeepsFamiliesWithTokens(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	s := store.NewTokens(db, mongox.NewWriter())
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	const n = 1201 // more than two batches
	var revocations, tokens []any
	wantKept := map[string]bool{}
	for i := range n {
		fam := fmt.Sprintf("f%04d", i)
		revokedAt := now.Add(-time.Hour)
		if i%3 == 0 {
			revokedAt = now // too recent: kept whatever its tokens
			wantKept[fam] = true
		}
		revocations = append(revocations, bson.D{{Key: "_id", Value: fam}, {Key: "userId", Value: "u"}, {Key: "revokedAt", Value: revokedAt}})
		if i%100 == 1 {
			tokens = append(tokens, bson.D{{Key: "_id", Value: "t" + fam}, {Key: "userId", Value: "u"}, {Key: "familyId", Value: fam},
				{Key: "expiresAt", Value: now.Add(time.Hour)}, {Key: "createdAt", Value: now}})
			wantKept[fam] = true
		}
	}
	if _, err := db.Collection(store.RevokedFamiliesCollection).InsertMany(ctx, revocations); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection(store.TokensCollection).InsertMany(ctx, tokens); err != nil {
		t.Fatal(err)
	}
	pruned, err := s.PruneRevocations(ctx, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(n - len(wantKept)); pruned != want {
		t.Fatalf("pruned %d revocations, want %d", pruned, want)
	}
	for i := range n {
		fam := fmt.Sprintf("f%04d", i)
		revoked, err := s.FamilyRevoked(ctx, fam)
		if err != nil {
			t.Fatal(err)
		}
		if revoked != wantKept[fam] {
			t.Fatalf("family %s revoked=%t after pruning, want %t", fam, revoked, wantKept[fam])
		}
	}
}

func TestRevokeFamily(t *testing.T) {
	t.Parallel()
	s := store.NewTokens(openDB(t), mongox.NewWriter())
	ctx := context.Background()
	now := time.Now()
	for _, tok := range []users.RefreshToken{
		{Hash: "h1", UserID: "u1", FamilyID: "f1", ExpiresAt: now.Add(time.Hour), CreatedAt: now},
		{Hash: "h2", UserID: "u1", FamilyID: "f1", ExpiresAt: now.Add(time.Hour), CreatedAt: now},
		{Hash: "h3", UserID: "u1", FamilyID: "f2", ExpiresAt: now.Add(time.Hour), CreatedAt: now},
		{Hash: "h4", UserID: "u2", FamilyID: "f3", ExpiresAt: now.Add(time.Hour), CreatedAt: now},
	} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Token(ctx, "nope"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("unknown token: %v, want not found", err)
	}
	// Twice: revocation is idempotent.
	for range 2 {
		if err := s.RevokeUser(ctx, "u1", now); err != nil {
			t.Fatal(err)
		}
	}
	for fam, want := range map[string]bool{"f1": true, "f2": true, "f3": false} {
		got, err := s.FamilyRevoked(ctx, fam)
		if err != nil || got != want {
			t.Fatalf("family %s revoked=%t (err %v), want %t", fam, got, err, want)
		}
	}
}

func TestSetBanned(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	relay := &notifications{}
	s := store.NewUsers(db, mongox.NewWriter(), relay)
	ctx := context.Background()
	u := users.User{Email: "ann@uni.edu", PasswordHash: []byte("x"), Role: users.RoleUser, CreatedAt: time.Now()}
	if err := s.Create(ctx, &u); err != nil {
		t.Fatal(err)
	}
	dup := users.User{Email: "ann@uni.edu", PasswordHash: []byte("y"), Role: users.RoleUser, CreatedAt: time.Now()}
	if err := s.Create(ctx, &dup); !errors.Is(err, users.ErrEmailInUse) {
		t.Fatalf("duplicate email: %v, want ErrEmailInUse", err)
	}
	// queued returns the events pending in the user's outbox.
	queued := func() []outbox.Pending {
		var d struct {
			Outbox []outbox.Pending `bson:"outbox"`
		}
		if err := db.Collection(store.UsersCollection).FindOne(ctx, bson.D{}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d.Outbox
	}
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	steps := []struct {
		banned      bool
		wantVersion int64
		wantEvent   events.Subject // pushed by this step, "" for none
	}{
		{true, 1, events.UserBanned},    // ban: event pushed in the same write, relay told
		{true, 1, ""},                   // ban again: nothing changes
		{false, 2, events.UserUnbanned}, // unban: its own event, the same way
		{false, 2, ""},                  // unban again: nothing
		{true, 3, events.UserBanned},
	}
	pending := 0
	for i, st := range steps {
		at := base.Add(time.Duration(i) * time.Minute)
		got, err := s.SetBanned(ctx, u.ID, st.banned, at)
		if err != nil {
			t.Fatal(err)
		}
		if st.wantEvent != "" {
			pending++
		}
		ob := queued()
		if got.Banned != st.banned || got.Version != st.wantVersion || len(ob) != pending || relay.count() != pending {
			t.Fatalf("step %d: banned %t version %d outbox %d notified %d; want %+v and %d events",
				i, got.Banned, got.Version, len(ob), relay.count(), st, pending)
		}
		if st.wantEvent == "" {
			continue
		}
		last := ob[len(ob)-1]
		var payload struct {
			UserID string    `json:"userId"`
			At     time.Time `json:"at"`
		}
		if err := json.Unmarshal(last.Data, &payload); err != nil {
			t.Fatal(err)
		}
		if last.Subject != string(st.wantEvent) || payload.UserID != u.ID || !payload.At.Equal(at) {
			t.Fatalf("step %d pushed %s %s, want %s for %s at %s", i, last.Subject, last.Data, st.wantEvent, u.ID, at)
		}
	}
	for _, id := range []string{"not-hex", "0123456789abcdef01234567"} {
		for _, banned := range []bool{true, false} {
			if _, err := s.SetBanned(ctx, id, banned, time.Now()); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("SetBanned(%q, %t): %v, want not found", id, banned, err)
			}
		}
	}
	if relay.count() != pending {
		t.Fatalf("unknown users notified the relay: %d notifications, want %d", relay.count(), pending)
	}
}

func TestSetName(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	relay := &notifications{}
	s := store.NewUsers(db, mongox.NewWriter(), relay)
	ctx := context.Background()
	u := users.User{Email: "ann@uni.edu", PasswordHash: []byte("x"), Role: users.RoleUser, CreatedAt: time.Now()}
	if err := s.Create(ctx, &u); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ByID(ctx, u.ID); err != nil || got.Name != "" || got.DisplayName() != users.DefaultName(u.ID) {
		t.Fatalf("new user without a name: %+v %v", got, err)
	}
	// A ban and a rename of one user, one after the other: both kept.
	if _, err := s.SetBanned(ctx, u.ID, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := s.SetName(ctx, u.ID, "Ann Lee", time.Now())
	if err != nil || got.Name != "Ann Lee" || !got.Banned || got.Version != 2 || got.Email != u.Email {
		t.Fatalf("SetName: %+v %v, want Ann Lee, banned, version 2", got, err)
	}
	if relay.count() != 1 {
		t.Fatalf("%d relay notifications, want 1 (the ban's): a rename publishes nothing", relay.count())
	}
	for _, id := range []string{"not-hex", "", "0123456789abcdef01234567"} {
		if _, err := s.SetName(ctx, id, "Mallory", time.Now()); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("SetName(%q): %v, want not found", id, err)
		}
	}
	if got, err := s.ByID(ctx, u.ID); err != nil || got.Name != "Ann Lee" {
		t.Fatalf("after refused renames: %+v %v", got, err)
	}
}
