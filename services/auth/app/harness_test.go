package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
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

const (
	jwtKey     = "test-jwt-key-0123456789-0123456789-abcdef"
	sessionKey = "test-session-key-0123456789-0123456789-ab"
	accessTTL  = 15 * time.Minute
	refreshTTL = 7 * 24 * time.Hour
	password   = "correct horse"
)

// stack is one running auth service on its own database and NATS prefix,
// served over real HTTP.
type stack struct {
	t        *testing.T
	cfg      app.Config
	db       *mongo.Database
	clock    *testkit.Clock
	url      *url.URL
	sessions *auth.Sessions // same keys as the app: reads and forges cookies
	close    func()
}

// newStack starts the service on a fresh database with the given admins.
func newStack(t *testing.T, admins ...string) *stack {
	t.Helper()
	return startOn(t, testkit.Mongo(t), admins...)
}

// startOn starts the service on db (a restart when another stack used it).
func startOn(t *testing.T, db *mongo.Database, admins ...string) *stack {
	t.Helper()
	clk := testkit.NewClock(time.Now().UTC().Truncate(time.Second))
	cfg := app.Config{
		Service: service.Config{
			Name:       "auth",
			HTTPAddr:   "127.0.0.1:0",
			MongoURI:   testkit.MongoURI(t),
			MongoDB:    db.Name(),
			NATS:       testkit.NATS(t),
			JWTKey:     jwtKey,
			SessionKey: sessionKey,
			AccessTTL:  accessTTL,
			RefreshTTL: refreshTTL,
			BodyLimit:  "64K",
		},
		AdminEmails:  admins,
		PasswordCost: bcrypt.MinCost,
		Now:          clk.Now,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.New(ctx, cfg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	a.Start()
	srv := httptest.NewServer(a.Handler())
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Close(ctx); err != nil {
				t.Errorf("close app: %v", err)
			}
		})
	}
	t.Cleanup(closeFn)
	return &stack{
		t: t, cfg: cfg, db: db, clock: clk, url: u, close: closeFn,
		sessions: auth.NewSessions([]byte(sessionKey), auth.NewTokens([]byte(jwtKey), accessTTL), refreshTTL),
	}
}

// client is a browser: its own cookie jar.
type client struct {
	t   *testing.T
	s   *stack
	jar *cookiejar.Jar
	hc  *http.Client
}

// client returns a new browser for test t (a subtest may have its own).
func (s *stack) client(t *testing.T) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, s: s, jar: jar, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// response is a finished HTTP exchange.
type response struct {
	Status  int
	Body    []byte
	Header  http.Header
	Cookies []*http.Cookie
}

// do sends a request: body nil (none), a string (raw JSON) or any value
// (marshalled). JSON bodies get Content-Type application/json.
func (c *client) do(method, path string, body any) response {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.s.url.String()+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) response {
	c.t.Helper()
	r, err := fetch(c.hc, req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	return r
}

// fetch does req with hc and reads the whole response; safe to call from
// any goroutine.
func fetch(hc *http.Client, req *http.Request) (response, error) {
	res, err := hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: res.StatusCode, Body: body, Header: res.Header, Cookies: res.Cookies()}, nil
}

// cookie is the client's session cookie, or nil.
func (c *client) cookie() *http.Cookie {
	for _, ck := range c.jar.Cookies(c.s.url) {
		if ck.Name == auth.CookieName {
			return ck
		}
	}
	return nil
}

// setCookie replaces the client's session cookie.
func (c *client) setCookie(ck *http.Cookie) {
	c.jar.SetCookies(c.s.url, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/"}})
}

// session decodes what the client's cookie holds.
func (c *client) session() auth.Session {
	c.t.Helper()
	ck := c.cookie()
	if ck == nil {
		c.t.Fatal("no session cookie")
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(ck)
	return c.s.sessions.Load(req)
}

// userJSON is the public user shape.
type userJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

// adminUserJSON is the user shape of admin routes.
type adminUserJSON struct {
	ID     string `json:"id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	Banned bool   `json:"banned"`
}

// decodeStrict decodes r's body into v, failing on any field v lacks: the
// API must not say more than its documented shape.
func (r response) decodeStrict(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", r.Body, v, err)
	}
}

// user asserts status and that the body is exactly {id,email,role}.
func (r response) user(t *testing.T, status int) userJSON {
	t.Helper()
	r.wantStatus(t, status)
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &keys); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	if len(keys) != 3 {
		t.Fatalf("user body %s: want exactly id, email, role", r.Body)
	}
	var u userJSON
	r.decodeStrict(t, &u)
	if len(u.ID) != 24 || u.Email == "" || (u.Role != "user" && u.Role != "admin") {
		t.Fatalf("user body %s is incomplete", r.Body)
	}
	return u
}

func (r response) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// wantErrors asserts the status and the normalized error body; with want
// items given, exactly those items in that order.
func (r response) wantErrors(t *testing.T, status int, want ...errs.Item) {
	t.Helper()
	r.wantStatus(t, status)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q, want application/json; body %s", ct, r.Body)
	}
	var body errs.Body
	r.decodeStrict(t, &body)
	if len(body.Errors) == 0 {
		t.Fatalf("error body %s has no errors", r.Body)
	}
	for _, it := range body.Errors {
		if it.Message == "" {
			t.Fatalf("error body %s has an item without message", r.Body)
		}
	}
	if len(want) == 0 {
		return
	}
	if len(body.Errors) != len(want) {
		t.Fatalf("errors %+v, want %+v", body.Errors, want)
	}
	for i := range want {
		if body.Errors[i] != want[i] {
			t.Fatalf("errors %+v, want %+v", body.Errors, want)
		}
	}
}

// cleared reports whether the response expires the session cookie.
func (r response) cleared() bool {
	for _, ck := range r.Cookies {
		if ck.Name == auth.CookieName && ck.MaxAge < 0 {
			return true
		}
	}
	return false
}

var notAuthorized = errs.Item{Message: "Not authorized"}

// signUp signs c up and asserts success.
func (c *client) signUp(email string) userJSON {
	c.t.Helper()
	return c.do(http.MethodPost, "/api/users/signup", map[string]string{"email": email, "password": password}).user(c.t, http.StatusCreated)
}

// currentUser returns the currentUser of c, nil when anonymous.
func (c *client) currentUser() *userJSON {
	c.t.Helper()
	r := c.do(http.MethodGet, "/api/users/currentuser", nil)
	r.wantStatus(c.t, http.StatusOK)
	var out struct {
		CurrentUser *userJSON `json:"currentUser"`
	}
	r.decodeStrict(c.t, &out)
	return out.CurrentUser
}

// bannedEvents subscribes to user:banned on the stack's NATS prefix.
func (s *stack) bannedEvents() <-chan events.UserBannedEvent {
	s.t.Helper()
	bus := events.NewBus(s.cfg.Service.NATS, testkit.Logger(s.t), nil)
	ch := make(chan events.UserBannedEvent, 16)
	bus.Listen(events.Listener{Subject: events.UserBanned, Group: "auth-test", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.UserBannedEvent](m)
		if err != nil {
			return err
		}
		ch <- ev
		return nil
	}})
	bus.Start()
	s.t.Cleanup(func() {
		if err := bus.Close(); err != nil {
			s.t.Errorf("close bus: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.WaitConnected(ctx); err != nil {
		s.t.Fatalf("test bus: %v", err)
	}
	return ch
}
