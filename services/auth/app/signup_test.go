package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestSignUp(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name      string
		email     string
		password  string
		wantEmail string
		wantRole  string
	}{
		{"plain", "ann@uni.edu", "password1", "ann@uni.edu", "user"},
		{"email normalized", "  Bob@Uni.EDU ", "password1", "bob@uni.edu", "user"},
		{"8 characters", "eight@uni.edu", "12345678", "eight@uni.edu", "user"},
		{"72 characters", "long@uni.edu", strings.Repeat("p", 72), "long@uni.edu", "user"},
		{"72 bytes of accents", "accent@uni.edu", strings.Repeat("é", 36), "accent@uni.edu", "user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			u := wantUser(t, c.Do(http.MethodPost, "/api/users/signup", map[string]string{"email": tc.email, "password": tc.password}), http.StatusCreated)
			if u.Email != tc.wantEmail || u.Role != tc.wantRole {
				t.Fatalf("signed up as %+v, want %s %s", u, tc.wantEmail, tc.wantRole)
			}
			ck := c.cookie()
			if ck == nil {
				t.Fatal("no session cookie after sign-up")
			}
			sess := c.session()
			if sess.Access == "" || sess.Refresh == "" {
				t.Fatalf("session cookie holds %+v, want an access and a refresh token", sess)
			}
			if cur := c.currentUser(); cur == nil || *cur != u {
				t.Fatalf("currentuser %+v, want %+v", cur, u)
			}
			// The same credentials sign in.
			wantUser(t, s.client(t).Do(http.MethodPost, "/api/users/signin", map[string]string{"email": tc.email, "password": tc.password}), http.StatusOK)
		})
	}
}

func TestSignUpCookieAttributes(t *testing.T) {
	s := newStack(t)
	r := s.client(t).Do(http.MethodPost, "/api/users/signup", map[string]string{"email": "ann@uni.edu", "password": password}).Want(http.StatusCreated)
	var set string
	for _, h := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "session=") {
			set = h
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(set, attr) {
			t.Errorf("Set-Cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("Set-Cookie %q is Secure over plain HTTP", set)
	}
	// Behind the HTTPS ingress the cookie is Secure.
	r = s.client(t).Do(http.MethodPost, "/api/users/signup", testkit.Raw(`{"email":"tls@uni.edu","password":"password1"}`),
		testkit.WithHeader("X-Forwarded-Proto", "https")).Want(http.StatusCreated)
	if !strings.Contains(r.Header.Get("Set-Cookie"), "Secure") {
		t.Errorf("Set-Cookie %q over HTTPS is not Secure", r.Header.Get("Set-Cookie"))
	}
}

// badBodies are requests that sign-up and sign-in must refuse with a 4xx in
// the normalized shape, never a 500, and without creating anything.
var badBodies = []struct {
	name        string
	contentType string // application/json when empty
	body        string
	chunked     bool
	status      int
	want        []errs.Item // nil: any items
}{
	{name: "email a number", body: `{"email":123,"password":"password1"}`, status: 400,
		want: []errs.Item{{Message: "Must be a string", Field: "email"}}},
	{name: "email a query operator", body: `{"email":{"$ne":null},"password":"password1"}`, status: 400,
		want: []errs.Item{{Message: "Must be a string", Field: "email"}}},
	{name: "password a query operator", body: `{"email":"ann@uni.edu","password":{"$gt":""}}`, status: 400,
		want: []errs.Item{{Message: "Must be a string", Field: "password"}}},
	{name: "password an array", body: `{"email":"ann@uni.edu","password":["password1"]}`, status: 400,
		want: []errs.Item{{Message: "Must be a string", Field: "password"}}},
	{name: "unknown field role", body: `{"email":"ann@uni.edu","password":"password1","role":"admin"}`, status: 400,
		want: []errs.Item{{Message: "Unknown field", Field: "role"}}},
	{name: "malformed JSON", body: `{"email":`, status: 400,
		want: []errs.Item{{Message: "Malformed JSON"}}},
	{name: "not JSON", body: `email=ann@uni.edu`, status: 400,
		want: []errs.Item{{Message: "Malformed JSON"}}},
	{name: "array", body: `[]`, status: 400,
		want: []errs.Item{{Message: "Request body must be a JSON object"}}},
	{name: "string", body: `"ann@uni.edu"`, status: 400,
		want: []errs.Item{{Message: "Request body must be a JSON object"}}},
	{name: "null", body: `null`, status: 400},
	{name: "empty body", body: ``, status: 400,
		want: []errs.Item{{Message: "Request body must be a JSON object"}}},
	{name: "two objects", body: `{"email":"ann@uni.edu","password":"password1"}{}`, status: 400,
		want: []errs.Item{{Message: "Request body must hold a single JSON object"}}},
	{name: "2 MB body", body: `{"email":"ann@uni.edu","password":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413,
		want: []errs.Item{{Message: "Request body too large"}}},
	{name: "2 MB chunked body", chunked: true, body: `{"email":"ann@uni.edu","password":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413,
		want: []errs.Item{{Message: "Request body too large"}}},
	{name: "text/plain", contentType: "text/plain", body: `{"email":"ann@uni.edu","password":"password1"}`, status: 415,
		want: []errs.Item{{Message: "Content-Type must be application/json"}}},
	{name: "form", contentType: "application/x-www-form-urlencoded", body: `email=ann%40uni.edu&password=password1`, status: 415,
		want: []errs.Item{{Message: "Content-Type must be application/json"}}},
}

func TestCredentialsRejectBadBodies(t *testing.T) {
	s := newStack(t)
	for _, path := range []string{"/api/users/signup", "/api/users/signin"} {
		for _, tc := range badBodies {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				var body io.Reader = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.NopCloser(bytes.NewReader([]byte(tc.body))) // unknown length: sent chunked
				}
				req, err := http.NewRequest(http.MethodPost, s.URL+path, body)
				if err != nil {
					t.Fatal(err)
				}
				ct := tc.contentType
				if ct == "" {
					ct = "application/json"
				}
				req.Header.Set("Content-Type", ct)
				r := s.client(t).Send(req)
				wantErrors(t, r, tc.status, tc.want...)
				if cleared(r) || len(r.Cookies) > 0 {
					t.Fatalf("a refused request set cookies: %v", r.Cookies)
				}
			})
		}
	}
	t.Cleanup(func() {
		n, err := s.DB.Collection("users").CountDocuments(context.Background(), bson.D{})
		if err != nil || n != 0 {
			t.Errorf("bad requests left %d users (err %v)", n, err)
		}
	})
}

func TestSignUpValidation(t *testing.T) {
	s := newStack(t)
	badEmail := errs.Item{Message: "Email must be valid", Field: "email"}
	badLen := errs.Item{Message: "Password must be between 8 and 72 characters", Field: "password"}
	tooManyBytes := errs.Item{Message: "Password must be at most 72 bytes: accented letters and emoji count as 2 to 4 bytes each", Field: "password"}
	tests := []struct {
		name     string
		email    string
		password string
		want     []errs.Item
	}{
		{"invalid email", "not-an-email", "password1", []errs.Item{badEmail}},
		{"email with display name", "Ann <ann@uni.edu>", "password1", []errs.Item{badEmail}},
		{"email without dot in domain", "ann@localhost", "password1", []errs.Item{badEmail}},
		{"empty email", "", "password1", []errs.Item{badEmail}},
		{"short password", "ann@uni.edu", "1234567", []errs.Item{badLen}},
		{"73 character password", "ann@uni.edu", strings.Repeat("p", 73), []errs.Item{badLen}},
		{"1000 character password", "ann@uni.edu", strings.Repeat("p", 1000), []errs.Item{badLen}},
		{"40 characters but 80 bytes", "ann@uni.edu", strings.Repeat("é", 40), []errs.Item{tooManyBytes}},
		{"everything missing", "", "", []errs.Item{badEmail, badLen}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.client(t).Do(http.MethodPost, "/api/users/signup", map[string]string{"email": tc.email, "password": tc.password})
			wantErrors(t, r, http.StatusBadRequest, tc.want...)
		})
	}
	t.Run("empty object", func(t *testing.T) {
		t.Parallel()
		wantErrors(t, s.client(t).Do(http.MethodPost, "/api/users/signup", testkit.Raw(`{}`)), http.StatusBadRequest, badEmail, badLen)
	})
}

func TestSignUpEmailInUse(t *testing.T) {
	s := newStack(t)
	first := s.client(t).signUp("ann@uni.edu")
	for _, email := range []string{"ann@uni.edu", "ANN@Uni.Edu", " ann@uni.edu\t"} {
		t.Run(email, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			r := c.Do(http.MethodPost, "/api/users/signup", map[string]string{"email": email, "password": "another password"})
			wantErrors(t, r, http.StatusBadRequest, errs.Item{Message: "Email in use", Field: "email"})
			if c.cookie() != nil {
				t.Fatal("a refused sign-up set a session cookie")
			}
		})
	}
	t.Run("first account keeps its password", func(t *testing.T) {
		t.Parallel()
		u := wantUser(t, s.client(t).Do(http.MethodPost, "/api/users/signin", map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK)
		if u.ID != first.ID {
			t.Fatalf("signed in as %s, want %s", u.ID, first.ID)
		}
	})
}

func TestSignUpConcurrentSameEmail(t *testing.T) {
	s := newStack(t)
	const n = 10
	reqs := make([]*http.Request, n)
	for i := range reqs {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/api/users/signup",
			strings.NewReader(`{"email":"Race@uni.edu","password":"password1"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		reqs[i] = req
	}
	created := 0
	for _, res := range concurrently(reqs) {
		if res.err != nil {
			t.Fatalf("request failed: %v", res.err)
		}
		if res.status == http.StatusCreated {
			created++
			continue
		}
		checkErrors(t, res.status, res.header, res.body, http.StatusBadRequest, []errs.Item{{Message: "Email in use", Field: "email"}})
	}
	if created != 1 {
		t.Fatalf("%d of %d concurrent sign-ups of one email succeeded, want exactly 1", created, n)
	}
	n2, err := s.DB.Collection("users").CountDocuments(context.Background(), bson.D{})
	if err != nil || n2 != 1 {
		t.Fatalf("%d users stored (err %v), want 1", n2, err)
	}
}
