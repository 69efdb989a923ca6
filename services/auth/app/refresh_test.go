package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
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
	sum := sha256.Sum256([]byte(tok))
	d := docs[0]
	if d["_id"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("stored _id %v, want the SHA-256 of the token", d["_id"])
	}
	if d["userId"] != u.ID || d["familyId"] == "" {
		t.Fatalf("stored token %v lacks its user or family", d)
	}
	exp, ok := d["expiresAt"].(primitive.DateTime)
	if !ok || !exp.Time().Equal(s.clock.Now().Add(testkit.RefreshTTL)) {
		t.Fatalf("expiresAt %v, want now + %s", d["expiresAt"], testkit.RefreshTTL)
	}
	ext, err := bson.MarshalExtJSON(d, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ext), tok) {
		t.Fatal("the refresh token is stored in the clear")
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

	// The victim refreshes first: the stolen copy is now a used token.
	wantUser(t, victim.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	successor := victim.cookie()

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

func TestRefreshConcurrentReuse(t *testing.T) {
	s := newStack(t)
	c := s.client(t)
	c.signUp("ann@uni.edu")
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

	var winner *http.Cookie
	ok := 0
	for _, res := range concurrently(reqs) {
		if res.err != nil {
			t.Fatalf("request failed: %v", res.err)
		}
		if res.status != http.StatusOK {
			checkErrors(t, res.status, res.header, res.body, http.StatusUnauthorized, []errs.Item{notAuthorized})
			continue
		}
		ok++
		for _, rc := range res.cookies {
			if rc.Name == auth.CookieName && rc.MaxAge >= 0 {
				winner = rc
			}
		}
	}
	if ok > 1 {
		t.Fatalf("%d of %d concurrent refreshes with one token succeeded, want at most 1", ok, n)
	}
	if ok == 0 {
		return // every use lost to a reuse; nothing was issued
	}
	// The winner's successor belongs to the revoked family.
	w := s.client(t)
	w.setCookie(winner)
	wantErrors(t, w.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusUnauthorized, notAuthorized)
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
