package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/shared/errs"
)

func TestSignIn(t *testing.T) {
	s := newStack(t)
	ann := s.client(t).signUp("ann@uni.edu")
	// A 72-byte password: bcrypt would accept any longer password with the
	// same first 72 bytes if sign-in did not refuse it.
	long := strings.Repeat("k", 72)
	wantUser(t, s.client(t).Do(http.MethodPost, "/api/users/signup", map[string]string{"email": "long@uni.edu", "password": long}), http.StatusCreated)
	// An admin signs in as one: the role is the stored one.
	s.signUpAdmin(t, "boss@uni.edu")

	invalid := errs.Item{Message: "Invalid credentials"}
	tests := []struct {
		name     string
		email    string
		password string
		status   int
		want     []errs.Item
		wantID   string
		wantRole string
	}{
		{name: "right password", email: "ann@uni.edu", password: password, status: 200, wantID: ann.ID, wantRole: "user"},
		{name: "email in another case", email: " ANN@uni.EDU ", password: password, status: 200, wantID: ann.ID, wantRole: "user"},
		{name: "admin", email: "boss@uni.edu", password: password, status: 200, wantRole: "admin"},
		{name: "72-byte password", email: "long@uni.edu", password: long, status: 200, wantRole: "user"},
		{name: "wrong password", email: "ann@uni.edu", password: password + "!", status: 400, want: []errs.Item{invalid}},
		{name: "password in another case", email: "ann@uni.edu", password: strings.ToUpper(password), status: 400, want: []errs.Item{invalid}},
		{name: "unknown email", email: "nobody@uni.edu", password: password, status: 400, want: []errs.Item{invalid}},
		{name: "73 bytes with the right first 72", email: "long@uni.edu", password: long + "x", status: 400, want: []errs.Item{invalid}},
		{name: "invalid email", email: "ann", password: password, status: 400, want: []errs.Item{{Message: "Email must be valid", Field: "email"}}},
		{name: "no password", email: "ann@uni.edu", password: "", status: 400, want: []errs.Item{{Message: "You must supply a password", Field: "password"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			r := c.Do(http.MethodPost, "/api/users/signin", map[string]string{"email": tc.email, "password": tc.password})
			if tc.status != http.StatusOK {
				wantErrors(t, r, tc.status, tc.want...)
				if c.cookie() != nil {
					t.Fatal("a refused sign-in set a session cookie")
				}
				return
			}
			u := wantUser(t, r, http.StatusOK)
			if (tc.wantID != "" && u.ID != tc.wantID) || u.Role != tc.wantRole {
				t.Fatalf("signed in as %+v, want id %q role %s", u, tc.wantID, tc.wantRole)
			}
			if cur := c.currentUser(); cur == nil || *cur != u {
				t.Fatalf("currentuser %+v after sign-in, want %+v", cur, u)
			}
		})
	}
}

// TestSignInSameAnswerForUnknownEmail checks that a wrong password and an
// unknown email cannot be told apart from the response.
func TestSignInSameAnswerForUnknownEmail(t *testing.T) {
	s := newStack(t)
	s.client(t).signUp("ann@uni.edu")
	wrong := s.client(t).Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": "not the password"})
	unknown := s.client(t).Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "bob@uni.edu", "password": "not the password"})
	if wrong.Status != unknown.Status || string(wrong.Body) != string(unknown.Body) {
		t.Fatalf("wrong password: %d %s; unknown email: %d %s", wrong.Status, wrong.Body, unknown.Status, unknown.Body)
	}
}
