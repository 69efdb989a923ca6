package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestRefreshRotates(t *testing.T) {
	s := newStack(t)
	c := s.client(t)
	u := c.signUp("ann@uni.edu")
	first := c.session()

	s.clock.Advance(testkit.AccessTTL + time.Minute)
	if cur := c.currentUser(); cur != nil {
		t.Fatalf("currentuser %+v with an expired access token, want null", cur)
	}
	got := wantUser(t, c.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	if got != u {
		t.Fatalf("refresh answered %+v, want %+v", got, u)
	}
	second := c.session()
	if second.Refresh == first.Refresh || second.Refresh == "" {
		t.Fatal("refresh did not rotate the refresh token")
	}
	if second.Access == first.Access {
		t.Fatal("refresh did not issue a new access token")
	}
	if cur := c.currentUser(); cur == nil || *cur != u {
		t.Fatalf("currentuser %+v after refresh, want %+v", cur, u)
	}
	// The successor works in turn.
	wantUser(t, c.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	if third := c.session(); third.Refresh == second.Refresh {
		t.Fatal("second refresh did not rotate")
	}
}

func TestRefreshTokensAreStoredHashed(t *testing.T) {
	s := newStack(t)
	c := s.client(t)
	u := c.signUp("ann@uni.edu")
	tok := c.session().Refresh
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != 32 {
		t.Fatalf("refresh token %q is not 32 bytes of base64url (err %v)", tok, err)
	}
	cur, err := s.DB.Collection("refresh_tokens").Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%d refresh tokens stored, want 1", len(docs))
	}
	d := docs[0]
	if d["_id"] != hashOf(tok) {
		t.Fatalf("stored _id %v, want the SHA-256 of the token", d["_id"])
	}
	if d["userId"] != u.ID || d["familyId"] == "" {
		t.Fatalf("stored token %v lacks its user or family", d)
	}
	exp, ok := d["expiresAt"].(primitive.DateTime)
	if !ok || !exp.Time().Equal(s.clock.Now().Add(testkit.RefreshTTL)) {
		t.Fatalf("expiresAt %v, want now + %s", d["expiresAt"], testkit.RefreshTTL)
	}
	// After a rotation, neither token is anywhere in the clear: not in the
	// tokens, not in the claim of the use (which keeps its successor's hash).
	wantUser(t, c.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	next := c.session().Refresh
	for _, coll := range []string{"refresh_tokens", "refresh_uses"} {
		cur, err := s.DB.Collection(coll).Find(context.Background(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(context.Background(), &docs); err != nil {
			t.Fatal(err)
		}
		ext, err := bson.MarshalExtJSON(bson.M{"docs": docs}, false, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, clear := range []string{tok, next} {
			if strings.Contains(string(ext), clear) {
				t.Fatalf("a refresh token is stored in the clear in %s: %s", coll, ext)
			}
		}
		if !strings.Contains(string(ext), hashOf(next)) {
			t.Fatalf("%s does not know the successor by its hash: %s", coll, ext)
		}
	}
}

func TestRefreshRefused(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name   string
		cookie func(t *testing.T) *http.Cookie // nil: no cookie
		before func(t *testing.T)
	}{
		{name: "no cookie"},
		{name: "garbage cookie", cookie: func(*testing.T) *http.Cookie {
			return &http.Cookie{Name: auth.CookieName, Value: "garbage"}
		}},
		{name: "access token without refresh token", cookie: func(t *testing.T) *http.Cookie {
			return testkit.SessionCookie(t, s.Sessions, auth.User{ID: "65a1b2c3d4e5f60718293a4b", Email: "x@uni.edu", Role: "user"}, "")
		}},
		{name: "unknown refresh token", cookie: func(t *testing.T) *http.Cookie {
			return sealed(t, s.Sessions, "", testkit.RandomID(t))
		}},
		{name: "tampered cookie of a real session", cookie: func(t *testing.T) *http.Cookie {
			c := s.client(t)
			c.signUp(testkit.RandomID(t)[:8] + "@uni.edu")
			return &http.Cookie{Name: auth.CookieName, Value: tamper(c.cookie().Value)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			if tc.cookie != nil {
				c.setCookie(tc.cookie(t))
			}
			r := c.Do(http.MethodPost, "/api/users/refresh", nil)
			wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
			if !cleared(r) {
				t.Fatal("a refused refresh did not clear the cookie")
			}
		})
	}
}

func TestRefreshTokenExpires(t *testing.T) {
	s := newStack(t)
	c := s.client(t)
	c.signUp("ann@uni.edu")
	s.clock.Advance(testkit.RefreshTTL)
	r := c.Do(http.MethodPost, "/api/users/refresh", nil)
	wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
	if !cleared(r) || c.cookie() != nil {
		t.Fatal("an expired refresh token left the cookie in place")
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	s := newStack(t)
	victim := s.client(t)
	victim.signUp("ann@uni.edu")
	stolen := victim.cookie()

	// The victim refreshes first: the stolen copy is now a used token, and
	// once the grace is over, presenting it again is a replay.
	wantUser(t, victim.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	successor := victim.cookie()
	s.clock.Advance(grace)

	thief := s.client(t)
	thief.setCookie(stolen)
	wantErrors(t, thief.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusUnauthorized, notAuthorized)

	// The reuse revoked the family: the victim's rotated token fails too, and
	// the victim must sign in again.
	r := victim.Do(http.MethodPost, "/api/users/refresh", nil)
	wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
	if !cleared(r) {
		t.Fatal("refused refresh did not clear the cookie")
	}
	again := s.client(t)
	again.setCookie(successor)
	wantErrors(t, again.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusUnauthorized, notAuthorized)

	// A new sign-in starts a new family that works.
	fresh := s.client(t)
	wantUser(t, fresh.Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK)
	wantUser(t, fresh.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
}

// Two replicas of the storefront refreshing one browser's cookie at once, or
// a browser retrying a refresh whose answer it never got, present one token
// several times within the grace: every one of them gets the same successor,
// and the family lives on.
func TestRefreshConcurrentPresentersShareOneSuccessor(t *testing.T) {
	s := newStack(t)
	c := s.client(t)
	u := c.signUp("ann@uni.edu")
	ck := c.cookie()

	const n = 20
	reqs := make([]*http.Request, n)
	for i := range reqs {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/api/users/refresh", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		reqs[i] = req
	}

	successors := map[string]bool{}
	var last *http.Cookie
	for _, res := range concurrently(reqs) {
		if res.err != nil {
			t.Fatalf("request failed: %v", res.err)
		}
		if res.status != http.StatusOK {
			t.Fatalf("a concurrent refresh with one token answered %d %s, want 200", res.status, res.body)
		}
		for _, rc := range res.cookies {
			if rc.Name == auth.CookieName && rc.MaxAge >= 0 {
				last = rc
				sess := s.client(t).withCookie(rc).session()
				successors[sess.Refresh] = true
			}
		}
	}
	if len(successors) != 1 {
		t.Fatalf("%d concurrent refreshes with one token gave %d successors, want 1", n, len(successors))
	}
	// The successor works, and its family was not revoked.
	w := s.client(t).withCookie(last)
	if cur := w.currentUser(); cur == nil || *cur != u {
		t.Fatalf("currentuser %+v with the shared access token, want %+v", cur, u)
	}
	wantUser(t, w.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	n2, err := s.DB.Collection("revoked_families").CountDocuments(context.Background(), bson.D{})
	if err != nil || n2 != 0 {
		t.Fatalf("%d families revoked (err %v), want none", n2, err)
	}
}

// TestRefreshGrace: the token a refresh just used up still gives the same
// answer for a few seconds, and only then counts as a replay.
func TestRefreshGrace(t *testing.T) {
	s := newStack(t)
	admin, _ := s.signUpAdmin(t, "boss@uni.edu")
	ctx := context.Background()
	revoked := func(t *testing.T, userID string) int64 {
		t.Helper()
		n, err := s.DB.Collection("revoked_families").CountDocuments(ctx, bson.D{{Key: "userId", Value: userID}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		name string
		// between runs after the browser's refresh (its cookie holds the
		// successor) and before the used token is presented again.
		between func(t *testing.T, c *browser, u userJSON)
		// same: the used token gives the same successor again; otherwise it
		// is refused.
		same bool
		// revokes: a refusal revokes the family (the browser's successor
		// stops working).
		revokes bool
	}{
		{name: "presented again at once", same: true},
		{name: "presented again just before the grace ends", same: true, between: func(*testing.T, *browser, userJSON) {
			s.clock.Advance(grace - time.Second)
		}},
		{name: "presented again when the grace is over", revokes: true, between: func(*testing.T, *browser, userJSON) {
			s.clock.Advance(grace)
		}},
		{name: "not the immediate previous token: its successor was used", revokes: true, between: func(t *testing.T, c *browser, _ userJSON) {
			wantUser(t, c.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
		}},
		{name: "the user was banned", between: func(t *testing.T, _ *browser, u userJSON) {
			admin.in(t).Do(http.MethodPost, "/api/users/"+u.ID+"/ban", nil).Want(http.StatusOK)
		}},
		{name: "the user is flagged banned", revokes: true, between: func(t *testing.T, _ *browser, u userJSON) {
			oid, err := primitive.ObjectIDFromHex(u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.DB.Collection("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: bson.D{{Key: "banned", Value: true}}}}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "the browser signed out", between: func(t *testing.T, c *browser, _ userJSON) {
			c.Do(http.MethodPost, "/api/users/signout", nil).Want(http.StatusOK)
		}},
		{name: "the first use died before saving the successor", same: true, between: func(t *testing.T, c *browser, _ userJSON) {
			res, err := s.DB.Collection("refresh_tokens").DeleteOne(ctx, bson.D{{Key: "_id", Value: hashOf(c.session().Refresh)}})
			if err != nil || res.DeletedCount != 1 {
				t.Fatalf("deleted %v successors (err %v), want 1", res, err)
			}
		}},
	}
	for i, tc := range tests {
		// One after the other: they move the stack's clock.
		t.Run(tc.name, func(t *testing.T) {
			c := s.client(t)
			u := c.signUp(fmt.Sprintf("user%d@uni.edu", i))
			used := c.cookie()
			wantUser(t, c.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
			successor := c.session().Refresh
			if tc.between != nil {
				tc.between(t, c, u)
			}
			again := s.client(t).withCookie(used)
			r := again.Do(http.MethodPost, "/api/users/refresh", nil)
			if !tc.same {
				wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
				if !cleared(r) {
					t.Fatal("a refused refresh did not clear the cookie")
				}
				if tc.revokes && revoked(t, u.ID) == 0 {
					t.Fatal("the refusal did not revoke the family")
				}
				return
			}
			if got := wantUser(t, r, http.StatusOK); got != u {
				t.Fatalf("refresh answered %+v, want %+v", got, u)
			}
			if got := again.session().Refresh; got != successor {
				t.Fatal("the used token presented again within the grace gave another successor")
			}
			if cur := again.currentUser(); cur == nil || *cur != u {
				t.Fatalf("currentuser %+v with the access token of the second answer, want %+v", cur, u)
			}
			// The family lives on: the successor rotates as usual.
			wantUser(t, again.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
			if revoked(t, u.ID) != 0 {
				t.Fatal("the family was revoked")
			}
		})
	}
}

// TestRefreshChecksTheUser covers what the refresh reads from the user
// document itself, apart from the revocations a ban makes: a refresh token
// of a user flagged banned (or gone) is refused and its family revoked.
func TestRefreshChecksTheUser(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name   string
		change func(ctx context.Context, id primitive.ObjectID) error
	}{
		{"banned flag", func(ctx context.Context, id primitive.ObjectID) error {
			_, err := s.DB.Collection("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "banned", Value: true}}}})
			return err
		}},
		{"user deleted", func(ctx context.Context, id primitive.ObjectID) error {
			_, err := s.DB.Collection("users").DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := s.client(t)
			u := c.signUp(strings.ReplaceAll(tc.name, " ", "") + "@uni.edu")
			oid, err := primitive.ObjectIDFromHex(u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.change(ctx, oid); err != nil {
				t.Fatal(err)
			}
			r := c.Do(http.MethodPost, "/api/users/refresh", nil)
			wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
			if !cleared(r) {
				t.Fatal("refused refresh did not clear the cookie")
			}
			n, err := s.DB.Collection("revoked_families").CountDocuments(ctx, bson.D{{Key: "userId", Value: u.ID}})
			if err != nil || n != 1 {
				t.Fatalf("%d families revoked (err %v), want 1", n, err)
			}
		})
	}
}

// grace is how long a just-used refresh token still gives the same answer:
// the default REFRESH_GRACE, which the stacks run with.
const grace = 10 * time.Second

// hashOf is the stored key of refresh token tok (its SHA-256).
func hashOf(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
