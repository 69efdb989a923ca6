package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestAdminRoutesNeedAnAdmin(t *testing.T) {
	s := newStack(t)
	target := s.client(t).signUp("target@uni.edu")
	user := s.client(t)
	user.signUp("user@uni.edu")
	admin, _ := s.signUpAdmin(t, "boss@uni.edu")

	routes := []struct{ method, path string }{
		{http.MethodGet, "/api/users"},
		{http.MethodGet, "/api/users?page=1&limit=5"},
		{http.MethodPost, "/api/users/" + target.ID + "/ban"},
		{http.MethodPost, "/api/users/" + target.ID + "/unban"},
	}
	callers := []struct {
		name string
		c    *browser
		ok   bool
	}{
		{"anonymous", s.client(t), false},
		{"user", user, false},
		{"admin", admin, true},
	}
	for _, caller := range callers {
		for _, rt := range routes {
			// Sequential: ban and unban of one target follow each other.
			r := caller.c.Do(rt.method, rt.path, nil)
			if caller.ok {
				r.Want(http.StatusOK)
				continue
			}
			wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
		}
	}
	var doc struct {
		Banned bool `bson:"banned"`
	}
	oid, err := primitive.ObjectIDFromHex(target.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Collection("users").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&doc); err != nil || doc.Banned {
		t.Fatalf("target banned=%t (err %v) after ban and unban", doc.Banned, err)
	}
}

func TestListUsers(t *testing.T) {
	s := newStack(t)
	admin, boss := s.signUpAdmin(t, "boss@uni.edu")
	var ids []string // newest first
	for _, e := range []string{"a@uni.edu", "b@uni.edu", "c@uni.edu"} {
		ids = append([]string{s.client(t).signUp(e).ID}, ids...)
	}
	ids = append(ids, boss.ID)

	type page struct {
		Users []adminUserJSON `json:"users"`
		Total int64           `json:"total"`
	}
	tests := []struct {
		query   string
		wantIDs []string
	}{
		{"", ids},
		{"?limit=2", ids[:2]},
		{"?page=2&limit=2", ids[2:]},
		{"?page=3&limit=2", []string{}},
		{"?page[$gt]=1&limit[$ne]=1", ids}, // not parameters we know: ignored
	}
	for _, tc := range tests {
		t.Run("query "+tc.query, func(t *testing.T) {
			t.Parallel()
			r := admin.in(t).Do(http.MethodGet, "/api/users"+tc.query, nil).Want(http.StatusOK)
			var p page
			r.Decode(&p)
			if p.Total != 4 || p.Users == nil {
				t.Fatalf("page %s: total %d users %v, want total 4 and a list", r.Body, p.Total, p.Users)
			}
			got := make([]string, len(p.Users))
			for i, u := range p.Users {
				got[i] = u.ID
				if u.Banned || u.Email == "" || (u.Role == "admin") != (u.ID == boss.ID) {
					t.Fatalf("user %+v in list", u)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantIDs) {
				t.Fatalf("ids %v, want %v", got, tc.wantIDs)
			}
			if strings.Contains(string(r.Body), "password") || strings.Contains(string(r.Body), "_id") || strings.Contains(string(r.Body), "version") {
				t.Fatalf("list leaks internals: %s", r.Body)
			}
		})
	}
	for _, q := range []struct{ query, field string }{
		{"?page=0", "page"}, {"?page=abc", "page"}, {"?page=-1", "page"},
		{"?limit=0", "limit"}, {"?limit=101", "limit"}, {"?limit=1e3", "limit"},
	} {
		t.Run("bad "+q.query, func(t *testing.T) {
			t.Parallel()
			r := admin.in(t).Do(http.MethodGet, "/api/users"+q.query, nil)
			wantErrors(t, r, http.StatusBadRequest)
			if !strings.Contains(string(r.Body), `"field":"`+q.field+`"`) {
				t.Fatalf("error %s does not name field %s", r.Body, q.field)
			}
		})
	}
}

func TestBan(t *testing.T) {
	s := newStack(t)
	admin, _ := s.signUpAdmin(t, "boss@uni.edu")
	victim := s.client(t)
	v := victim.signUp("ann@uni.edu")
	// A second device of the victim, another refresh-token family.
	phone := s.client(t)
	wantUser(t, phone.Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK)

	var got adminUserJSON
	admin.Do(http.MethodPost, "/api/users/"+v.ID+"/ban", nil).Want(http.StatusOK).Decode(&got)
	if got != (adminUserJSON{ID: v.ID, Email: v.Email, Role: "user", Name: v.Name, Banned: true}) {
		t.Fatalf("ban answered %+v", got)
	}

	bannedAt := s.clock.Now()
	ev, err := events.Decode[events.UserBannedEvent](s.Peer.Wait(events.UserBanned, func(events.Msg) bool { return true }))
	if err != nil || ev.UserID != v.ID || !ev.At.Equal(bannedAt) {
		t.Fatalf("user:banned %+v (err %v), want user %q at %s", ev, err, v.ID, bannedAt)
	}

	// Every family of the victim is revoked and refresh is refused.
	for name, c := range map[string]*browser{"laptop": victim, "phone": phone} {
		r := c.Do(http.MethodPost, "/api/users/refresh", nil)
		wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
		if !cleared(r) {
			t.Fatalf("%s: refused refresh did not clear the cookie", name)
		}
	}
	n, err := s.DB.Collection("revoked_families").CountDocuments(context.Background(), bson.D{{Key: "userId", Value: v.ID}})
	if err != nil || n != 2 {
		t.Fatalf("%d families of the banned user revoked (err %v), want 2", n, err)
	}
	// Sign-in is refused, even with the right password.
	wantErrors(t, s.client(t).Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": password}),
		http.StatusUnauthorized, notAuthorized)
	// ...but the wrong password still says only "Invalid credentials".
	wantErrors(t, s.client(t).Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": "wrong password"}),
		http.StatusBadRequest, errs.Item{Message: "Invalid credentials"})

	// The event left the outbox; the version counts the change.
	doc := func() bson.M {
		oid, err := primitive.ObjectIDFromHex(v.ID)
		if err != nil {
			t.Fatal(err)
		}
		var m bson.M
		if err := s.DB.Collection("users").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		ob, _ := doc()["outbox"].(bson.A)
		return len(ob) == 0
	}, "the user:banned event stays in the outbox")
	if d := doc(); d["version"] != int64(1) || d["banned"] != true {
		t.Fatalf("after ban: version %v banned %v, want 1 true", d["version"], d["banned"])
	}

	// Banning again changes nothing.
	admin.Do(http.MethodPost, "/api/users/"+v.ID+"/ban", nil).Want(http.StatusOK)
	if d := doc(); d["version"] != int64(1) {
		t.Fatalf("second ban changed version to %v", d["version"])
	}

	// Unban: user:unbanned goes out the same way; sign-in works again;
	// revoked tokens stay revoked.
	s.clock.Advance(time.Minute)
	unbannedAt := s.clock.Now()
	admin.Do(http.MethodPost, "/api/users/"+v.ID+"/unban", nil).Want(http.StatusOK).Decode(&got)
	if got.Banned {
		t.Fatalf("unban answered %+v", got)
	}
	un, err := events.Decode[events.UserUnbannedEvent](s.Peer.Wait(events.UserUnbanned, func(events.Msg) bool { return true }))
	if err != nil || un.UserID != v.ID || !un.At.Equal(unbannedAt) {
		t.Fatalf("user:unbanned %+v (err %v), want user %q at %s", un, err, v.ID, unbannedAt)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		ob, _ := doc()["outbox"].(bson.A)
		return len(ob) == 0
	}, "the user:unbanned event stays in the outbox")
	if d := doc(); d["version"] != int64(2) || d["banned"] != false {
		t.Fatalf("after unban: version %v banned %v, want 2 false", d["version"], d["banned"])
	}
	again := s.client(t)
	wantUser(t, again.Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK)
	wantUser(t, again.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)

	// Unbanning again changes nothing and publishes nothing.
	admin.Do(http.MethodPost, "/api/users/"+v.ID+"/unban", nil).Want(http.StatusOK)
	if d := doc(); d["version"] != int64(2) {
		t.Fatalf("second unban changed version to %v", d["version"])
	}
	for _, subject := range []events.Subject{events.UserBanned, events.UserUnbanned} {
		if got := s.Peer.Received(subject); len(got) != 1 {
			t.Fatalf("%s published %d times, want once", subject, len(got))
		}
	}
}

func TestBanErrors(t *testing.T) {
	s := newStack(t)
	admin, boss := s.signUpAdmin(t, "boss@uni.edu")
	notFound := errs.Item{Message: "Not Found"}
	self := errs.Item{Message: "You cannot ban yourself"}
	tests := []struct {
		name   string
		path   string
		status int
		want   errs.Item
	}{
		{"ban unknown id", "/api/users/" + primitive.NewObjectID().Hex() + "/ban", 404, notFound},
		{"ban malformed id", "/api/users/not-an-id/ban", 404, notFound},
		{"ban operator-looking id", "/api/users/%7B%22$ne%22:1%7D/ban", 404, notFound},
		{"unban unknown id", "/api/users/" + primitive.NewObjectID().Hex() + "/unban", 404, notFound},
		{"unban malformed id", "/api/users/123/unban", 404, notFound},
		{"ban self", "/api/users/" + boss.ID + "/ban", 400, self},
		{"ban self, id in upper case", "/api/users/" + strings.ToUpper(boss.ID) + "/ban", 400, self},
		{"unknown route", "/api/users/" + boss.ID + "/promote", 404, notFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantErrors(t, admin.in(t).Do(http.MethodPost, tc.path, nil), tc.status, tc.want)
		})
	}
	t.Cleanup(func() {
		// The admin is still usable: nothing above banned them.
		if u := admin.currentUser(); u == nil || u.Role != "admin" {
			t.Errorf("admin after errors: %+v", u)
		}
	})
}
