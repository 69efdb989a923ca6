package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

var (
	badNameLen  = errs.Item{Message: "Name must be between 2 and 40 characters", Field: "name"}
	badNameText = errs.Item{Message: "Name must not contain control or text-direction characters", Field: "name"}
	userGone    = errs.Item{Message: "User not found"}
)

// signUpNamed signs b up with a display name and asserts success.
func (b *browser) signUpNamed(email, name string) userJSON {
	b.t.Helper()
	return wantUser(b.t, b.Do(http.MethodPost, "/api/users/signup",
		map[string]string{"email": email, "password": password, "name": name}), http.StatusCreated)
}

// publicUser reads GET /api/users/:id anonymously, asserts a 200 with
// exactly {id, name} and the cache header, and returns the name.
func (s *stack) publicUser(t *testing.T, id string) string {
	t.Helper()
	r := testkit.NewClient(t, s.URL, testkit.WithoutCookies()).Do(http.MethodGet, "/api/users/"+id, nil).Want(http.StatusOK)
	var keys map[string]string
	if err := json.Unmarshal(r.Body, &keys); err != nil || len(keys) != 2 || keys["id"] != id || keys["name"] == "" {
		t.Fatalf("GET /api/users/%s = %s (%v), want exactly {id, name}", id, r.Body, err)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "public, max-age=60" {
		t.Fatalf("Cache-Control %q, want public, max-age=60", cc)
	}
	if len(r.Cookies) > 0 {
		t.Fatalf("the public read set cookies: %v", r.Cookies)
	}
	return keys["name"]
}

// storedUser is the raw document of user id.
func (s *stack) storedUser(t *testing.T, id string) bson.M {
	t.Helper()
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		t.Fatal(err)
	}
	var doc bson.M
	if err := s.DB.Collection("users").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestSignUpWithName(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name string
		body string // the sign-up body after the credentials
		want string // "": the default name
	}{
		{name: "plain", body: `,"name":"Ann Lee"`, want: "Ann Lee"},
		{name: "trimmed", body: `,"name":"  Ann Lee \t"`, want: "Ann Lee"},
		{name: "2 characters", body: `,"name":"Al"`, want: "Al"},
		{name: "40 characters", body: `,"name":"` + strings.Repeat("n", 40) + `"`, want: strings.Repeat("n", 40)},
		{name: "40 accented characters", body: `,"name":"` + strings.Repeat("é", 40) + `"`, want: strings.Repeat("é", 40)},
		{name: "non-Latin and emoji", body: `,"name":"李小龍 📚"`, want: "李小龍 📚"},
		{name: "HTML is just text", body: `,"name":"<b>Bob</b>"`, want: "<b>Bob</b>"},
		{name: "omitted", body: ``},
		{name: "null", body: `,"name":null`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			email := "user" + string(rune('a'+i)) + "@uni.edu"
			u := wantUser(t, c.Do(http.MethodPost, "/api/users/signup",
				testkit.Raw(`{"email":"`+email+`","password":"`+password+`"`+tc.body+`}`)), http.StatusCreated)
			want := tc.want
			if want == "" {
				want = defaultName(u.ID)
			}
			if u.Name != want {
				t.Fatalf("signed up with name %q, want %q", u.Name, want)
			}
			if cur := c.currentUser(); cur == nil || *cur != u {
				t.Fatalf("currentuser %+v, want %+v", cur, u)
			}
			if got := s.publicUser(t, u.ID); got != want {
				t.Fatalf("public name %q, want %q", got, want)
			}
			// No name given: nothing stored, as for accounts from before
			// names; the default is derived on every read.
			if _, stored := s.storedUser(t, u.ID)["name"]; stored != (tc.want != "") {
				t.Fatalf("document %v: name stored %t, want %t", s.storedUser(t, u.ID), stored, tc.want != "")
			}
		})
	}
}

func TestDefaultNameRevealsNoEmail(t *testing.T) {
	s := newStack(t)
	u := s.client(t).signUp("123456@uni.edu")
	name := s.publicUser(t, u.ID)
	if name != defaultName(u.ID) || !strings.HasPrefix(name, "Student ") || strings.Contains(name, "123456") {
		t.Fatalf("default name %q of %s", name, u.ID)
	}
	// Two accounts get different default names.
	if other := s.client(t).signUp("654321@uni.edu"); defaultName(other.ID) == name {
		t.Fatalf("two accounts share the default name %q", name)
	}
}

func TestSignUpNameValidation(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name string
		body string
		want []errs.Item
	}{
		{"empty", `{"email":"ann@uni.edu","password":"password1","name":""}`, []errs.Item{badNameLen}},
		{"blank", `{"email":"ann@uni.edu","password":"password1","name":"   "}`, []errs.Item{badNameLen}},
		{"1 character after trimming", `{"email":"ann@uni.edu","password":"password1","name":" A "}`, []errs.Item{badNameLen}},
		{"41 characters", `{"email":"ann@uni.edu","password":"password1","name":"` + strings.Repeat("n", 41) + `"}`, []errs.Item{badNameLen}},
		{"right-to-left override", `{"email":"ann@uni.edu","password":"password1","name":"Ann \u202eeeL"}`, []errs.Item{badNameText}},
		{"line break", `{"email":"ann@uni.edu","password":"password1","name":"Ann\nLee"}`, []errs.Item{badNameText}},
		{"tab", `{"email":"ann@uni.edu","password":"password1","name":"Ann\tLee"}`, []errs.Item{badNameText}},
		{"NUL", `{"email":"ann@uni.edu","password":"password1","name":"Ann\u0000Lee"}`, []errs.Item{badNameText}},
		{"a number", `{"email":"ann@uni.edu","password":"password1","name":42}`, []errs.Item{{Message: "Must be a string", Field: "name"}}},
		{"a query operator", `{"email":"ann@uni.edu","password":"password1","name":{"$ne":null}}`, []errs.Item{{Message: "Must be a string", Field: "name"}}},
		{"every field wrong", `{"email":"ann","password":"short","name":"A"}`, []errs.Item{
			{Message: "Email must be valid", Field: "email"},
			{Message: "Password must be between 8 and 72 characters", Field: "password"},
			badNameLen,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := s.client(t)
			wantErrors(t, c.Do(http.MethodPost, "/api/users/signup", testkit.Raw(tc.body)), http.StatusBadRequest, tc.want...)
			if c.cookie() != nil {
				t.Fatal("a refused sign-up set a session cookie")
			}
		})
	}
	t.Run("sign-in takes no name", func(t *testing.T) {
		t.Parallel()
		wantErrors(t, s.client(t).Do(http.MethodPost, "/api/users/signin",
			testkit.Raw(`{"email":"ann@uni.edu","password":"password1","name":"Ann"}`)),
			http.StatusBadRequest, errs.Item{Message: "Unknown field", Field: "name"})
	})
	t.Cleanup(func() {
		n, err := s.DB.Collection("users").CountDocuments(context.Background(), bson.D{})
		if err != nil || n != 0 {
			t.Errorf("refused sign-ups left %d users (err %v)", n, err)
		}
	})
}

func TestSetName(t *testing.T) {
	s := newStack(t)
	ann := s.client(t)
	a := ann.signUp("ann@uni.edu")
	bob := s.client(t)
	b := bob.signUpNamed("bob@uni.edu", "Bob")

	got := wantUser(t, ann.Do(http.MethodPatch, "/api/users/me", map[string]string{"name": "  Ann the Seller "}), http.StatusOK)
	if want := (userJSON{ID: a.ID, Email: a.Email, Role: "user", Name: "Ann the Seller"}); got != want {
		t.Fatalf("PATCH answered %+v, want %+v", got, want)
	}
	if cur := ann.currentUser(); cur == nil || *cur != got {
		t.Fatalf("currentuser %+v after the edit, want %+v", cur, got)
	}
	if name := s.publicUser(t, a.ID); name != "Ann the Seller" {
		t.Fatalf("public name %q after the edit", name)
	}
	// Signing in again (a new access token) keeps it.
	if u := wantUser(t, s.client(t).Do(http.MethodPost, "/api/users/signin",
		map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK); u.Name != "Ann the Seller" {
		t.Fatalf("signed in with name %q", u.Name)
	}
	// Only the caller's own account changed.
	if name := s.publicUser(t, b.ID); name != "Bob" {
		t.Fatalf("Bob's name became %q", name)
	}
	doc := s.storedUser(t, a.ID)
	if doc["name"] != "Ann the Seller" || doc["version"] != int64(1) {
		t.Fatalf("stored %v, want the name at version 1", doc)
	}

	refusals := []struct {
		name   string
		anon   bool // sent without a session; else as Bob
		body   any
		status int
		want   []errs.Item
	}{
		{"anonymous", true, map[string]string{"name": "Mallory"}, http.StatusUnauthorized, []errs.Item{notAuthorized}},
		{"too short", false, map[string]string{"name": "B"}, http.StatusBadRequest, []errs.Item{badNameLen}},
		{"missing", false, testkit.Raw(`{}`), http.StatusBadRequest, []errs.Item{badNameLen}},
		{"control character", false, map[string]string{"name": "Bob\u2066x"}, http.StatusBadRequest, []errs.Item{badNameText}},
		{"another account's default name", false, map[string]string{"name": "student 00A1b2"}, http.StatusBadRequest, []errs.Item{
			{Message: `Names like "Student 1a2b3c" are kept for accounts that have not chosen one`, Field: "name"}}},
		{"another user's id", false, map[string]string{"name": "Mallory", "id": a.ID}, http.StatusBadRequest,
			[]errs.Item{{Message: "Unknown field", Field: "id"}}},
		{"a role", false, map[string]string{"name": "Mallory", "role": "admin"}, http.StatusBadRequest,
			[]errs.Item{{Message: "Unknown field", Field: "role"}}},
		{"an email", false, map[string]string{"name": "Mallory", "email": "ann@uni.edu"}, http.StatusBadRequest,
			[]errs.Item{{Message: "Unknown field", Field: "email"}}},
		{"a query operator", false, testkit.Raw(`{"name":{"$set":{"role":"admin"}}}`), http.StatusBadRequest,
			[]errs.Item{{Message: "Must be a string", Field: "name"}}},
		{"not JSON", false, nil, http.StatusUnsupportedMediaType, []errs.Item{{Message: "Content-Type must be application/json"}}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			c := bob.in(t)
			if tc.anon {
				c = s.client(t)
			}
			r := c.Do(http.MethodPatch, "/api/users/me", tc.body)
			wantErrors(t, r, tc.status, tc.want...)
		})
	}
	t.Run("the other account's edit is refused on another route", func(t *testing.T) {
		wantErrors(t, bob.in(t).Do(http.MethodPatch, "/api/users/"+a.ID, map[string]string{"name": "Mallory"}), http.StatusMethodNotAllowed)
	})
	if name := s.publicUser(t, a.ID); name != "Ann the Seller" {
		t.Fatalf("Ann's name became %q after the refusals", name)
	}
	if name := s.publicUser(t, b.ID); name != "Bob" {
		t.Fatalf("Bob's name became %q after the refusals", name)
	}
	if cur := bob.currentUser(); cur == nil || cur.Role != "user" {
		t.Fatalf("Bob is %+v after the refusals", cur)
	}
}

// TestSetNameConcurrently edits one account's name from many requests at
// once: each edit is its own write through the one write path, so none is
// lost (the version counts them all) and the name is one of those sent.
func TestSetNameConcurrently(t *testing.T) {
	s := newStack(t)
	ann := s.client(t)
	a := ann.signUp("ann@uni.edu")
	const n = 20
	sent := map[string]bool{}
	reqs := make([]*http.Request, n)
	for i := range reqs {
		name := "Ann " + string(rune('A'+i))
		sent[name] = true
		req, err := ann.Request(http.MethodPatch, "/api/users/me", map[string]string{"name": name})
		if err != nil {
			t.Fatal(err)
		}
		for _, ck := range ann.HTTP.Jar.Cookies(s.url) {
			req.AddCookie(ck)
		}
		reqs[i] = req
	}
	for i, res := range concurrently(reqs) {
		if res.err != nil || res.status != http.StatusOK {
			t.Fatalf("edit %d: %d %s (%v)", i, res.status, res.body, res.err)
		}
	}
	doc := s.storedUser(t, a.ID)
	if doc["version"] != int64(n) {
		t.Fatalf("version %v after %d concurrent edits: edits were lost", doc["version"], n)
	}
	if name, _ := doc["name"].(string); !sent[name] || s.publicUser(t, a.ID) != name {
		t.Fatalf("stored name %q is not one of those sent, or not the one read", name)
	}
}

func TestPublicUser(t *testing.T) {
	s := newStack(t)
	admin, _ := s.signUpAdmin(t, "boss@uni.edu")
	ann := s.client(t).signUpNamed("ann@uni.edu", "Ann Lee")

	r := testkit.NewClient(t, s.URL, testkit.WithoutCookies()).Do(http.MethodGet, "/api/users/"+ann.ID, nil).Want(http.StatusOK)
	if string(r.Body) != `{"id":"`+ann.ID+`","name":"Ann Lee"}`+"\n" {
		t.Fatalf("public user %s", r.Body)
	}
	if strings.Contains(string(r.Body), "uni.edu") || strings.Contains(string(r.Body), "role") {
		t.Fatalf("the public user shows the email or role: %s", r.Body)
	}

	t.Run("not found", func(t *testing.T) {
		for _, id := range []string{
			"0123456789abcdef01234567", // well-formed, nobody's
			"not-an-id",
			ann.ID[:23],
			ann.ID + "0",
			url.PathEscape(`{"$ne":null}`),
			url.PathEscape(`{"$gt":""}`),
			"%24ne",
			"currentuser%00",
		} {
			t.Run(id, func(t *testing.T) {
				r := testkit.NewClient(t, s.URL).Do(http.MethodGet, "/api/users/"+id, nil)
				wantErrors(t, r, http.StatusNotFound, userGone)
				if cc := r.Header.Get("Cache-Control"); strings.Contains(cc, "public") {
					t.Fatalf("a 404 is cacheable: %q", cc)
				}
			})
		}
	})

	t.Run("banned users have no profile", func(t *testing.T) {
		admin.in(t).Do(http.MethodPost, "/api/users/"+ann.ID+"/ban", nil).Want(http.StatusOK)
		wantErrors(t, testkit.NewClient(t, s.URL).Do(http.MethodGet, "/api/users/"+ann.ID, nil), http.StatusNotFound, userGone)
		admin.in(t).Do(http.MethodPost, "/api/users/"+ann.ID+"/unban", nil).Want(http.StatusOK)
		if name := s.publicUser(t, ann.ID); name != "Ann Lee" {
			t.Fatalf("after the unban: %q", name)
		}
	})

	t.Run("admins see the name", func(t *testing.T) {
		var list struct {
			Users []adminUserJSON `json:"users"`
			Total int             `json:"total"`
		}
		admin.in(t).Do(http.MethodGet, "/api/users", nil).Want(http.StatusOK).Decode(&list)
		for _, u := range list.Users {
			if u.ID == ann.ID && u.Name == "Ann Lee" {
				return
			}
		}
		t.Fatalf("the admin list %+v lacks Ann's name", list.Users)
	})
}

// TestAccountsFromBeforeNames: a document without a name field (every
// account created before display names) reads as the default name
// everywhere, and takes a name when its owner sets one.
func TestAccountsFromBeforeNames(t *testing.T) {
	s := newStack(t)
	ann := s.client(t)
	a := ann.signUpNamed("ann@uni.edu", "Ann Lee")
	// The document as an older auth wrote it: no name field.
	oid, err := primitive.ObjectIDFromHex(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Collection("users").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "name", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	want := defaultName(a.ID)
	if name := s.publicUser(t, a.ID); name != want {
		t.Fatalf("public name %q, want %q", name, want)
	}
	if cur := ann.currentUser(); cur == nil || cur.Name != want {
		t.Fatalf("currentuser %+v, want the name %q", cur, want)
	}
	if u := wantUser(t, s.client(t).Do(http.MethodPost, "/api/users/signin",
		map[string]string{"email": "ann@uni.edu", "password": password}), http.StatusOK); u.Name != want {
		t.Fatalf("signed in with name %q, want %q", u.Name, want)
	}
	wantUser(t, ann.Do(http.MethodPatch, "/api/users/me", map[string]string{"name": "Ann again"}), http.StatusOK)
	if name := s.publicUser(t, a.ID); name != "Ann again" {
		t.Fatalf("public name %q after the edit", name)
	}
}

// TestPublicUserCache: the public read is answered from memory for 30 s.
// A change through this replica (a rename, a ban) shows at once, whatever
// the case of the id asked for; one made elsewhere (another replica, played
// by a direct write) shows once the 30 s are over.
func TestPublicUserCache(t *testing.T) {
	s := newStack(t)
	ann := s.client(t)
	a := ann.signUpNamed("ann@uni.edu", "Ann Lee")
	upper := strings.ToUpper(a.ID)
	anon := func(id string) *testkit.Response {
		return testkit.NewClient(t, s.URL, testkit.WithoutCookies()).Do(http.MethodGet, "/api/users/"+id, nil)
	}
	for _, id := range []string{a.ID, upper} {
		if r := anon(id).Want(http.StatusOK); string(r.Body) != `{"id":"`+a.ID+`","name":"Ann Lee"}`+"\n" {
			t.Fatalf("GET %s = %s", id, r.Body)
		}
	}

	wantUser(t, ann.Do(http.MethodPatch, "/api/users/me", map[string]string{"name": "Ann Renamed"}), http.StatusOK)
	for _, id := range []string{a.ID, upper} {
		if r := anon(id).Want(http.StatusOK); !strings.Contains(string(r.Body), `"Ann Renamed"`) {
			t.Fatalf("GET %s right after the rename = %s", id, r.Body)
		}
	}

	oid, err := primitive.ObjectIDFromHex(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Collection("users").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: "Ann Elsewhere"}}}}); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(29 * time.Second)
	if name := s.publicUser(t, a.ID); name != "Ann Renamed" {
		t.Fatalf("within 30 s of the read: %q", name)
	}
	s.clock.Advance(time.Second)
	if name := s.publicUser(t, a.ID); name != "Ann Elsewhere" {
		t.Fatalf("30 s after the read: %q, want the name written elsewhere", name)
	}
}
