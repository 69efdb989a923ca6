package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/dev/stack"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

const (
	startTimeout = 2 * time.Minute
	// stopWithin is "a few seconds" with room for a loaded CI machine.
	stopWithin = 10 * time.Second
)

// running is one stack started by startStack.
type running struct {
	info stack.Info
	stop func(t *testing.T) time.Duration
}

// startStack runs the whole stack on dataDir and a free port and returns once
// every service is ready. The stack is stopped at cleanup unless the test
// stops it first.
func startStack(t *testing.T, dataDir string, extraEnv ...string) running {
	t.Helper()
	return startStackLogging(t, dataDir, testkit.Logger(t), extraEnv...)
}

// startStackLogging is startStack with the stack's logs written to log.
func startStackLogging(t *testing.T, dataDir string, log *slog.Logger, extraEnv ...string) running {
	t.Helper()
	env := map[string]string{"PORT": "0", "DATA_DIR": dataDir}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		env[extraEnv[i]] = extraEnv[i+1]
	}
	cfg, err := stack.LoadConfig(getenv(env))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	infoc := make(chan stack.Info, 1)
	errc := make(chan error, 1)
	go func() { errc <- stack.Run(ctx, cfg, log, func(i stack.Info) { infoc <- i }) }()

	var once sync.Once
	var took time.Duration
	stop := func(t *testing.T) time.Duration {
		once.Do(func() {
			begin := time.Now()
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run returned %v after cancel", err)
				}
			case <-time.After(stopWithin):
				t.Errorf("Run did not return within %s of cancel", stopWithin)
			}
			took = time.Since(begin)
		})
		return took
	}
	t.Cleanup(func() { stop(t) })

	select {
	case info := <-infoc:
		if !strings.HasPrefix(info.URL, "http://localhost:") || strings.HasSuffix(info.URL, ":0") {
			t.Fatalf("URL = %q, want http://localhost:<picked port>", info.URL)
		}
		return running{info: info, stop: stop}
	case err := <-errc:
		t.Fatalf("stack stopped while starting: %v", err)
	case <-time.After(startTimeout):
		t.Fatalf("stack not ready within %s", startTimeout)
	}
	return running{}
}

type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, base string) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// do sends a request (body as JSON when not nil, extra cookie header when
// set) and returns the status and raw body.
func (c *client) do(method, path string, body any, cookie string) (int, []byte) {
	c.t.Helper()
	if cookie != "" {
		return c.send(method, path, body, "Cookie", cookie)
	}
	return c.send(method, path, body)
}

// send sends a request (body as JSON when not nil) with the headers of
// pairs (name, value, …) and returns the status and raw body.
func (c *client) send(method, path string, body any, headers ...string) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, raw
}

func (c *client) expect(method, path string, body any, wantStatus int) []byte {
	c.t.Helper()
	status, raw := c.do(method, path, body, "")
	if status != wantStatus {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, status, raw, wantStatus)
	}
	return raw
}

type user struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Role  string `json:"role"`
	Name  string `json:"name"`
}

// currentUser returns GET /api/users/currentuser's user, nil when anonymous.
func (c *client) currentUser(cookie string) *user {
	c.t.Helper()
	status, raw := c.do(http.MethodGet, "/api/users/currentuser", nil, cookie)
	if status != http.StatusOK {
		c.t.Fatalf("currentuser = %d %s", status, raw)
	}
	var body struct {
		CurrentUser *user `json:"currentUser"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		c.t.Fatalf("currentuser body %s: %v", raw, err)
	}
	return body.CurrentUser
}

func TestStackServesAuthAndKeepsDataAcrossRestarts(t *testing.T) {
	dataDir := t.TempDir()
	creds := map[string]string{"email": "ada@example.com", "password": "correct horse battery"}

	// First run: a fresh machine.
	first := startStack(t, dataDir)
	t.Logf("first run at %s", first.info.URL)
	c := newClient(t, first.info.URL)

	if u := c.currentUser(""); u != nil {
		t.Fatalf("anonymous currentuser = %+v, want null", u)
	}
	var signedUp user
	if err := json.Unmarshal(c.expect(http.MethodPost, "/api/users/signup", creds, http.StatusCreated), &signedUp); err != nil {
		t.Fatal(err)
	}
	if u := c.currentUser(""); u == nil || u.Email != creds["email"] || u.ID != signedUp.ID || u.Name != signedUp.Name {
		t.Fatalf("currentuser after signup = %+v, want %+v", u, signedUp)
	}
	// Keep the session cookie as a browser would have it before signing out.
	oldCookie := ""
	for _, ck := range c.http.Jar.Cookies(mustURL(t, first.info.URL)) {
		if ck.Name == "session" {
			oldCookie = ck.Name + "=" + ck.Value
		}
	}
	if oldCookie == "" {
		t.Fatal("no session cookie after signup")
	}
	c.expect(http.MethodPost, "/api/users/signout", nil, http.StatusOK)
	if u := c.currentUser(""); u != nil {
		t.Fatalf("currentuser after signout = %+v, want null", u)
	}

	notFound := `{"errors":[{"message":"Not Found"}]}`
	for _, path := range []string{"/api/nothing", "/api/stuff/abc", "/api/users/no/such/route"} {
		if got := strings.TrimSpace(string(c.expect(http.MethodGet, path, nil, http.StatusNotFound))); got != notFound {
			t.Errorf("GET %s body = %s, want %s", path, got, notFound)
		}
	}
	if got := strings.TrimSpace(string(c.expect(http.MethodGet, "/healthz", nil, http.StatusOK))); got != `{"status":"ok"}` {
		t.Errorf("/healthz body = %s", got)
	}

	secretsPath := filepath.Join(dataDir, stack.SecretsFile)
	secretsBefore := readFile(t, secretsPath)
	took := first.stop(t)
	t.Logf("first run stopped in %s", took)
	if took > stopWithin {
		t.Errorf("stop took %s, want under %s", took, stopWithin)
	}

	// Second run on the same data.
	second := startStack(t, dataDir)
	t.Logf("second run at %s", second.info.URL)
	if after := readFile(t, secretsPath); after != secretsBefore {
		t.Errorf("secrets.json changed across restarts:\n%s\n%s", secretsBefore, after)
	}
	c2 := newClient(t, second.info.URL)
	// The access token in the first run's cookie is still valid (15 minutes):
	// it decodes only if SESSION_KEY and JWT_KEY were reused.
	if u := c2.currentUser(oldCookie); u == nil || u.ID != signedUp.ID {
		t.Fatalf("currentuser with the first run's cookie = %+v, want %+v", u, signedUp)
	}
	c2.expect(http.MethodPost, "/api/users/signin", creds, http.StatusOK)
	if u := c2.currentUser(""); u == nil || u.ID != signedUp.ID {
		t.Fatalf("currentuser after signin = %+v, want %+v", u, signedUp)
	}
	if took := second.stop(t); took > stopWithin {
		t.Errorf("second stop took %s", took)
	}
}

func TestStackFailsFastWhenThePortIsTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := taken.Close(); err != nil {
			t.Error(err)
		}
	})
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	dataDir := t.TempDir()
	cfg, err := stack.LoadConfig(getenv(map[string]string{"PORT": port, "DATA_DIR": dataDir}))
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	err = stack.Run(t.Context(), cfg, testkit.Logger(t), func(stack.Info) { t.Error("stack on a taken port became ready") })
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Run = %v, want address in use", err)
	}
	if took := time.Since(begin); took > stopWithin {
		t.Errorf("Run took %s to fail", took)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "ferretdb")); !os.IsNotExist(err) {
		t.Errorf("FerretDB was started before the port was checked (stat: %v)", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
