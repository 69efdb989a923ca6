package stack_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/dev/stack"
	authapp "github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// admin runs `go run ./dev admin args...` on the stack data in dataDir and
// returns what it printed.
func admin(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	cfg, err := stack.LoadConfig(getenv(map[string]string{"DATA_DIR": dataDir}))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	err = stack.Admin(ctx, cfg, testkit.Logger(t), args, &out)
	return out.String(), err
}

// grant makes email an admin with `go run ./dev admin grant`.
func grant(t *testing.T, dataDir, email string) {
	t.Helper()
	if out, err := admin(t, dataDir, "grant", email); err != nil || !strings.HasPrefix(out, email+" is now an admin") {
		t.Fatalf("dev admin grant %s: %q, %v", email, out, err)
	}
}

// TestAdminCommand: `go run ./dev admin` grants and revokes the admin role
// on the local stack's data, while the stack runs (through its FerretDB: a
// second one on the same files would not see the collections the first
// creates, nor the first those it creates) and while it is stopped.
func TestAdminCommand(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	signIn := func(base, email string) (*client, user) {
		c := newClient(t, base)
		var u user
		decode(t, c.expect(http.MethodPost, "/api/users/signin", map[string]string{"email": email, "password": "password123"}, http.StatusOK), &u)
		return c, u
	}

	st := startStack(t, dataDir)
	bob := newClient(t, st.info.URL)
	bob.expect(http.MethodPost, "/api/users/signup", map[string]string{"email": "bob@uni.edu", "password": "password123"}, http.StatusCreated)
	bobCookie := ""
	for _, ck := range bob.http.Jar.Cookies(mustURL(t, st.info.URL)) {
		if ck.Name == "session" {
			bobCookie = ck.Name + "=" + ck.Value
		}
	}
	var ann user
	decode(t, newClient(t, st.info.URL).expect(http.MethodPost, "/api/users/signup",
		map[string]string{"email": "ann@uni.edu", "password": "password123"}, http.StatusCreated), &ann)
	if ann.Role != "user" {
		t.Fatalf("signed up as %+v, want a user", ann)
	}

	grant(t, dataDir, "ann@uni.edu")
	annPhone, u := signIn(st.info.URL, "ann@uni.edu")
	if u.Role != "admin" {
		t.Fatalf("signed in after grant as %+v, want admin", u)
	}
	annPhone.expect(http.MethodGet, "/api/users", nil, http.StatusOK)

	// The revoke is the first revocation of a refresh family on this data:
	// it creates the collection, in the running FerretDB.
	if out, err := admin(t, dataDir, "revoke", "ann@uni.edu"); err != nil || !strings.HasPrefix(out, "ann@uni.edu is no longer an admin") {
		t.Fatalf("dev admin revoke: %q, %v", out, err)
	}
	annPhone.expect(http.MethodPost, "/api/users/refresh", nil, http.StatusUnauthorized)
	// The stack revokes families in the same collection afterwards.
	bob.expect(http.MethodPost, "/api/users/signout", nil, http.StatusOK)
	if status, raw := newClient(t, st.info.URL).do(http.MethodPost, "/api/users/refresh", nil, bobCookie); status != http.StatusUnauthorized {
		t.Fatalf("refresh with a signed-out cookie = %d %s, want 401", status, raw)
	}
	grant(t, dataDir, "ann@uni.edu")
	st.stop(t)

	// Stopped: the command runs a FerretDB of its own on the data.
	if _, err := os.Stat(filepath.Join(dataDir, stack.FerretURIFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after the stack stopped: %v, want none", stack.FerretURIFile, err)
	}
	if out, err := admin(t, dataDir, "list"); err != nil || out != fmt.Sprintf("ann@uni.edu\t%s\n", ann.ID) {
		t.Fatalf("dev admin list: %q, %v", out, err)
	}
	if out, err := admin(t, dataDir, "revoke", "ann@uni.edu"); err != nil || !strings.HasPrefix(out, "ann@uni.edu is no longer an admin") {
		t.Fatalf("dev admin revoke, stopped: %q, %v", out, err)
	}
	if _, err := admin(t, dataDir, "grant", "nobody@uni.edu"); err == nil || !strings.Contains(err.Error(), "nobody@uni.edu") {
		t.Fatalf("dev admin grant of no account: %v", err)
	}
	if _, err := admin(t, dataDir, "promote", "ann@uni.edu"); !errors.Is(err, authapp.ErrUsage) {
		t.Fatalf("dev admin promote: %v, want a usage error", err)
	}

	again := startStack(t, dataDir)
	if _, u := signIn(again.info.URL, "ann@uni.edu"); u.Role != "user" {
		t.Fatalf("signed in after revoke as %+v, want user", u)
	}
}
