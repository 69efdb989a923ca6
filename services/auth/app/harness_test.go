package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"golang.org/x/crypto/bcrypt"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// password is the password of the accounts tests sign up.
const password = "correct horse"

var notAuthorized = errs.Item{Message: "Not authorized"}

// stack is one auth service under test (see testkit.Start) with its clock
// pinned; its Peer records user:banned and user:unbanned.
type stack struct {
	*testkit.Component
	clock *testkit.Clock
	url   *url.URL
}

// newStack starts the service on a fresh database.
func newStack(t *testing.T) *stack {
	t.Helper()
	return start(t, nil)
}

// newStackWith starts the service on a fresh database, with its
// configuration changed by configure.
func newStackWith(t *testing.T, configure func(*app.Config)) *stack {
	t.Helper()
	return start(t, configure)
}

// startOn starts the service on db (a restart when another stack used it).
func startOn(t *testing.T, db *mongo.Database) *stack {
	t.Helper()
	return start(t, nil, testkit.OnDB(db))
}

func start(t testing.TB, configure func(*app.Config), opts ...testkit.Option) *stack {
	t.Helper()
	clk := testkit.NewClock(time.Now().UTC().Truncate(time.Second))
	build := func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
		c := app.Config{Service: cfg, PasswordCost: bcrypt.MinCost, Now: clk.Now}
		if configure != nil {
			configure(&c)
		}
		return app.New(ctx, c, log)
	}
	c := testkit.Start(t, "auth", build, append(opts, testkit.Observe(events.UserBanned, events.UserUnbanned))...)
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{Component: c, clock: clk, url: u}
}

// command runs the operator command `auth admin args...` on the stack's
// database, as an operator would next to the running service, and returns
// what it printed.
func (s *stack) command(args ...string) (string, error) {
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := app.Admin(ctx, app.Config{Service: s.Config, PasswordCost: bcrypt.MinCost, Now: s.clock.Now}, args, &out)
	return out.String(), err
}

// grant makes the account of email an admin with the operator command.
func (s *stack) grant(t *testing.T, email string) {
	t.Helper()
	if out, err := s.command("grant", email); err != nil {
		t.Fatalf("auth admin grant %s: %v (printed %q)", email, err, out)
	}
}

// signUpAdmin signs a new browser up as email, has the operator grant it
// admin and refreshes its session, whose access token then says admin.
func (s *stack) signUpAdmin(t *testing.T, email string) (*browser, userJSON) {
	t.Helper()
	b := s.client(t)
	b.signUp(email)
	s.grant(t, email)
	u := wantUser(t, b.Do(http.MethodPost, "/api/users/refresh", nil), http.StatusOK)
	if u.Role != "admin" {
		t.Fatalf("%s after grant and refresh: %+v, want an admin", email, u)
	}
	return b, u
}

// browser is a client with a cookie jar of its own whose failures go to t.
type browser struct {
	*testkit.Client
	t *testing.T
	s *stack
}

// client returns a new browser for test t (a subtest may have its own).
func (s *stack) client(t *testing.T) *browser {
	return &browser{Client: testkit.NewClient(t, s.URL), t: t, s: s}
}

// in returns b for subtest t: the same cookies, failures reported to t.
func (b *browser) in(t *testing.T) *browser {
	c := testkit.NewClient(t, b.Base)
	c.HTTP = b.HTTP
	return &browser{Client: c, t: t, s: b.s}
}

// cookie is the browser's session cookie, or nil.
func (b *browser) cookie() *http.Cookie {
	for _, ck := range b.HTTP.Jar.Cookies(b.s.url) {
		if ck.Name == auth.CookieName {
			return ck
		}
	}
	return nil
}

// withCookie sets ck as the browser's session cookie and returns b.
func (b *browser) withCookie(ck *http.Cookie) *browser {
	b.setCookie(ck)
	return b
}

// setCookie replaces the browser's session cookie.
func (b *browser) setCookie(ck *http.Cookie) {
	b.HTTP.Jar.SetCookies(b.s.url, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/"}})
}

// session decodes what the browser's cookie holds.
func (b *browser) session() auth.Session {
	b.t.Helper()
	ck := b.cookie()
	if ck == nil {
		b.t.Fatal("no session cookie")
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(ck)
	return b.s.Sessions.Load(req)
}

// signUp signs b up and asserts success.
func (b *browser) signUp(email string) userJSON {
	b.t.Helper()
	return wantUser(b.t, b.Do(http.MethodPost, "/api/users/signup", map[string]string{"email": email, "password": password}), http.StatusCreated)
}

// currentUser returns the currentUser of b, nil when anonymous.
func (b *browser) currentUser() *userJSON {
	b.t.Helper()
	var out struct {
		CurrentUser *userJSON `json:"currentUser"`
	}
	b.Do(http.MethodGet, "/api/users/currentuser", nil).Want(http.StatusOK).Decode(&out)
	return out.CurrentUser
}

// userJSON is the user shape a user sees of themselves.
type userJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
	Name  string `json:"name"`
}

// adminUserJSON is the user shape of admin routes.
type adminUserJSON struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	Name   string `json:"name"`
	Banned bool   `json:"banned"`
}

// defaultName is the display name of an account that has not chosen one.
func defaultName(id string) string { return "Student " + id[len(id)-6:] }

// wantUser asserts status and that the body is exactly
// {id,email,role,name}, every one filled in.
func wantUser(t *testing.T, r *testkit.Response, status int) userJSON {
	t.Helper()
	r.Want(status)
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &keys); err != nil || len(keys) != 4 {
		t.Fatalf("user body %s: want exactly id, email, role, name (%v)", r.Body, err)
	}
	var u userJSON
	r.Decode(&u)
	if len(u.ID) != 24 || u.Email == "" || (u.Role != "user" && u.Role != "admin") || u.Name == "" {
		t.Fatalf("user body %s is incomplete", r.Body)
	}
	return u
}

// wantErrors asserts the status and a normalized error body served as JSON:
// exactly want, in order, when given; any items otherwise.
func wantErrors(t *testing.T, r *testkit.Response, status int, want ...errs.Item) {
	t.Helper()
	checkErrors(t, r.Status, r.Header, r.Body, status, want)
}

// checkErrors is wantErrors on the parts of a response. testkit's
// Response.WantErrors does not check the Content-Type, which auth promises.
func checkErrors(t *testing.T, got int, h http.Header, body []byte, status int, want []errs.Item) {
	t.Helper()
	if got != status {
		t.Fatalf("status %d, want %d; body %s", got, status, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q, want application/json; body %s", ct, body)
	}
	if items := testkit.ErrorItems(t, body); len(want) > 0 && !slices.Equal(items, want) {
		t.Fatalf("errors %+v, want %+v", items, want)
	}
}

// cleared reports whether the response expires the session cookie.
func cleared(r *testkit.Response) bool {
	return slices.ContainsFunc(r.Cookies, func(ck *http.Cookie) bool { return ck.Name == auth.CookieName && ck.MaxAge < 0 })
}

// reply is a response read in a goroutine the test started, where t.Fatal
// must not be called (testkit's Client does): the test checks it after.
type reply struct {
	status  int
	header  http.Header
	body    []byte
	cookies []*http.Cookie
	err     error
}

// concurrently sends every request at once, each from a goroutine of its
// own, and returns the replies in order.
func concurrently(reqs []*http.Request) []reply {
	out := make([]reply, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			<-start
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				out[i].err = err
				return
			}
			defer res.Body.Close()
			out[i].status, out[i].header, out[i].cookies = res.StatusCode, res.Header, res.Cookies()
			out[i].body, out[i].err = io.ReadAll(res.Body)
		})
	}
	close(start)
	wg.Wait()
	return out
}
