package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// stored is what the users collection holds for email.
func (s *stack) stored(t *testing.T, email string) (role string, version int64) {
	t.Helper()
	var doc struct {
		Role    string `bson:"role"`
		Version int64  `bson:"version"`
	}
	if err := s.DB.Collection("users").FindOne(context.Background(), bson.D{{Key: "email", Value: email}}).Decode(&doc); err != nil {
		t.Fatalf("find %s: %v", email, err)
	}
	return doc.Role, doc.Version
}

// TestAdminCommand: the operator grants the admin role to an account that
// exists, lists the admins and revokes the role; a revoked admin's sessions
// end, and an access token already issued keeps its role until it expires.
func TestAdminCommand(t *testing.T) {
	s := newStack(t)
	signIn := func(email string) (*browser, userJSON) {
		b := s.client(t)
		return b, wantUser(t, b.Do(http.MethodPost, "/api/users/signin", signInBody(email, password)), http.StatusOK)
	}

	// Nobody to grant yet: an address alone is never enough.
	out, err := s.command("grant", "ann@uni.edu")
	if !errors.Is(err, users.ErrNoAccount) || !strings.Contains(err.Error(), "ann@uni.edu") {
		t.Fatalf("grant before sign-up: %v (printed %q), want no account for ann@uni.edu", err, out)
	}
	if out, err := s.command("list"); err != nil || out != "no admins\n" {
		t.Fatalf("list: %q, %v; want no admins", out, err)
	}

	// Signing up with the address the operator meant gives a plain user.
	laptop := s.client(t)
	ann := laptop.signUp("ann@uni.edu")
	if ann.Role != "user" {
		t.Fatalf("signed up as %+v, want a user", ann)
	}

	// Grant: any case, spaces around.
	if out, err := s.command("grant", " ANN@Uni.edu "); err != nil || !strings.HasPrefix(out, "ann@uni.edu is now an admin;") || !strings.Contains(out, "15m") {
		t.Fatalf("grant: %q, %v", out, err)
	}
	if role, version := s.stored(t, "ann@uni.edu"); role != "admin" || version != 1 {
		t.Fatalf("stored role %s version %d after grant, want admin 1", role, version)
	}
	// The access token issued before says user until the next refresh.
	if cur := laptop.currentUser(); cur == nil || cur.Role != "user" {
		t.Fatalf("currentuser before refresh: %+v", cur)
	}
	if u := wantUser(t, laptop.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK); u.Role != "admin" {
		t.Fatalf("refresh after grant: %+v, want admin", u)
	}
	laptop.Do(http.MethodGet, "/api/users", nil).Want(http.StatusOK)
	phone, u := signIn("ann@uni.edu")
	if u.Role != "admin" {
		t.Fatalf("sign-in after grant: %+v, want admin", u)
	}
	// Granting again changes nothing.
	if out, err := s.command("grant", "ann@uni.edu"); err != nil || out != "ann@uni.edu is already an admin\n" {
		t.Fatalf("grant again: %q, %v", out, err)
	}
	if _, version := s.stored(t, "ann@uni.edu"); version != 1 {
		t.Fatalf("version %d after a second grant, want 1", version)
	}

	bob := s.client(t).signUp("bob@uni.edu")
	s.grant(t, "bob@uni.edu")
	if out, err := s.command("list"); err != nil || out != fmt.Sprintf("ann@uni.edu\t%s\nbob@uni.edu\t%s\n", ann.ID, bob.ID) {
		t.Fatalf("list: %q, %v", out, err)
	}

	// Revoke: the role goes, and with it every session of ann's.
	issued := phone.cookie() // its access token says admin
	out, err = s.command("revoke", "ann@uni.edu")
	if err != nil || !strings.HasPrefix(out, "ann@uni.edu is no longer an admin") || !strings.Contains(out, "15m") {
		t.Fatalf("revoke: %q, %v; want the demotion and how long issued tokens last", out, err)
	}
	if role, version := s.stored(t, "ann@uni.edu"); role != "user" || version != 2 {
		t.Fatalf("stored role %s version %d after revoke, want user 2", role, version)
	}
	for name, b := range map[string]*browser{"laptop": laptop, "phone": phone} {
		r := b.Do(http.MethodPost, "/api/users/refresh", nil)
		wantErrors(t, r, http.StatusUnauthorized, notAuthorized)
		if !cleared(r) {
			t.Fatalf("%s: refused refresh kept the cookie", name)
		}
	}
	// An access token issued before keeps its role until it expires.
	kept := s.client(t).withCookie(issued)
	kept.Do(http.MethodGet, "/api/users", nil).Want(http.StatusOK)
	s.clock.Advance(testkit.AccessTTL + time.Second)
	wantErrors(t, kept.Do(http.MethodGet, "/api/users", nil), http.StatusUnauthorized, notAuthorized)
	if _, u := signIn("ann@uni.edu"); u.Role != "user" {
		t.Fatalf("sign-in after revoke: %+v, want user", u)
	}
	if out, err := s.command("list"); err != nil || out != fmt.Sprintf("bob@uni.edu\t%s\n", bob.ID) {
		t.Fatalf("list after revoke: %q, %v", out, err)
	}
	if out, err := s.command("revoke", "ann@uni.edu"); err != nil || !strings.HasPrefix(out, "ann@uni.edu was not an admin") {
		t.Fatalf("revoke again: %q, %v", out, err)
	}
	if _, err := s.command("revoke", "nobody@uni.edu"); !errors.Is(err, users.ErrNoAccount) {
		t.Fatalf("revoke of no account: %v", err)
	}
}

func TestAdminCommandUsage(t *testing.T) {
	s := newStack(t)
	for _, args := range [][]string{
		nil, {"grant"}, {"grant", "a@uni.edu", "b@uni.edu"}, {"promote", "a@uni.edu"}, {"list", "a@uni.edu"},
		{"grant", "not-an-email"}, {"revoke", ""},
	} {
		if out, err := s.command(args...); !errors.Is(err, app.ErrUsage) || out != "" {
			t.Errorf("auth admin %q: %v (printed %q), want a usage error", args, err, out)
		}
	}
}

// TestAdminMain runs the command as main does: configured from the
// environment, answering with an exit status.
func TestAdminMain(t *testing.T) {
	s := newStack(t)
	s.client(t).signUp("ann@uni.edu")
	env := map[string]string{
		"MONGO_URI": testkit.MongoURI(t), "MONGO_DB": s.DB.Name(), "NATS_URL": s.NATS.URL,
		"JWT_KEY": testkit.JWTKey, "SESSION_KEY": testkit.SessionKey,
	}
	run := func(changes map[string]string, args ...string) (int, string, string) {
		var stdout, stderr strings.Builder
		code := app.AdminMain(context.Background(), args, func(k string) string {
			if v, ok := changes[k]; ok {
				return v
			}
			return env[k]
		}, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	tests := []struct {
		name    string
		changes map[string]string
		args    []string
		code    int
		stdout  string // its start
		stderr  string // contained
	}{
		{"grant", nil, []string{"grant", "ann@uni.edu"}, 0, "ann@uni.edu is now an admin;", ""},
		{"no account", nil, []string{"grant", "bob@uni.edu"}, 1, "", "bob@uni.edu"},
		{"usage", nil, []string{"promote"}, 2, "", "usage: auth admin"},
		{"bad configuration", map[string]string{"MONGO_URI": ""}, []string{"list"}, 1, "", "MONGO_URI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(tc.changes, tc.args...)
			if code != tc.code || !strings.HasPrefix(stdout, tc.stdout) || (tc.stdout == "") != (stdout == "") || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
	if role, _ := s.stored(t, "ann@uni.edu"); role != "admin" {
		t.Fatalf("ann is %s after the command, want admin", role)
	}
}
