package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/web"
)

// logBuf collects what the code under test logs, so tests can check that a
// cause was logged (and not shown).
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// records returns the JSON log records with the given msg.
func (l *logBuf) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func newLogger() (*slog.Logger, *logBuf) {
	buf := &logBuf{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// errorBody decodes a normalized error body strictly: exactly
// {"errors":[{"message","field"?}, ...]} with at least one item.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) []errs.Item {
	t.Helper()
	if ct := rec.Header().Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		t.Fatalf("Content-Type %q, want JSON; body %s", ct, rec.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	var body errs.Body
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %s is not the normalized error shape: %v", rec.Body, err)
	}
	if len(body.Errors) == 0 {
		t.Fatalf("body %s has no errors", rec.Body)
	}
	for _, it := range body.Errors {
		if it.Message == "" {
			t.Fatalf("body %s has an item without a message", rec.Body)
		}
	}
	return body.Errors
}

func TestErrorHandler(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	e := web.New(log, web.Options{BodyLimit: "1K"})
	fail := func(err error) echo.HandlerFunc { return func(echo.Context) error { return err } }
	conflict := "The stuff is being checking out by someone else, please come back later"
	e.GET("/validation", fail(&errs.RequestValidationError{Items: []errs.Item{
		{Message: "Email must be valid", Field: "email"},
		{Message: "Password must be between 8 and 72 characters", Field: "password"},
	}}))
	e.GET("/database", fail(fmt.Errorf("load user: %w", &errs.DatabaseConnectionError{Err: errors.New("dial tcp 10.1.2.3:27017: connection refused")})))
	e.GET("/not-found", fail(fmt.Errorf("load stuff 42: %w", errs.ErrNotFound)))
	e.GET("/unauthorized", fail(errs.ErrNotAuthorized))
	e.GET("/bad-request", fail(errs.BadRequest("Email in use")))
	e.GET("/bad-request-field", fail(&errs.BadRequestError{Message: "Cannot edit a reserved stuff", Field: "price"}))
	e.Match([]string{http.MethodGet, http.MethodHead}, "/conflict", fail(errs.Conflict(conflict)))
	e.GET("/forbidden", fail(&errs.HTTPError{Status: http.StatusForbidden, Message: "Invalid CSRF token"}))
	e.GET("/echo-400", fail(echo.NewHTTPError(http.StatusBadRequest, "bad page")))
	e.GET("/echo-500", fail(echo.NewHTTPError(http.StatusInternalServerError, "pool exhausted at 10.1.2.3")))
	e.GET("/unknown", fail(fmt.Errorf("insert order: %w", errors.New("E11000 secret internals at 10.1.2.3"))))
	e.GET("/panic", func(echo.Context) error { panic("kaboom at 10.1.2.3") })
	e.GET("/panic-error", func(echo.Context) error { panic(errors.New("nil map write at 10.1.2.3")) })
	e.POST("/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, "text/plain", b)
	})

	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		status      int
		items       []errs.Item // nil for HEAD: no body
		logged      string      // a cause that must be in the logs
		header      [2]string   // a response header that must be set
		noBodyCheck bool
	}{
		{name: "validation", path: "/validation", status: 400, items: []errs.Item{
			{Message: "Email must be valid", Field: "email"},
			{Message: "Password must be between 8 and 72 characters", Field: "password"},
		}},
		{name: "database", path: "/database", status: 503, items: []errs.Item{{Message: "Failed to connect to database"}}, logged: "connection refused"},
		{name: "not found (wrapped)", path: "/not-found", status: 404, items: []errs.Item{{Message: "Not Found"}}},
		{name: "not authorized", path: "/unauthorized", status: 401, items: []errs.Item{{Message: "Not authorized"}}},
		{name: "bad request", path: "/bad-request", status: 400, items: []errs.Item{{Message: "Email in use"}}},
		{name: "bad request with field", path: "/bad-request-field", status: 400, items: []errs.Item{{Message: "Cannot edit a reserved stuff", Field: "price"}}},
		{name: "conflict", path: "/conflict", status: 409, items: []errs.Item{{Message: conflict}}},
		{name: "http error", path: "/forbidden", status: 403, items: []errs.Item{{Message: "Invalid CSRF token"}}},
		{name: "echo 4xx keeps its message", path: "/echo-400", status: 400, items: []errs.Item{{Message: "bad page"}}},
		{name: "echo 5xx is hidden", path: "/echo-500", status: 500, items: []errs.Item{{Message: "Something went wrong"}}, logged: "pool exhausted"},
		{name: "unknown error", path: "/unknown", status: 500, items: []errs.Item{{Message: "Something went wrong"}}, logged: "E11000 secret internals"},
		{name: "panic", path: "/panic", status: 500, items: []errs.Item{{Message: "Something went wrong"}}, logged: "kaboom"},
		{name: "panic with error", path: "/panic-error", status: 500, items: []errs.Item{{Message: "Something went wrong"}}, logged: "nil map write"},
		{name: "unknown route", path: "/no/such/route", status: 404, items: []errs.Item{{Message: "Not Found"}}},
		{name: "wrong method", method: http.MethodDelete, path: "/healthz", status: 405, items: []errs.Item{{Message: "Method Not Allowed"}}, header: [2]string{"Allow", "GET"}},
		{name: "body over the limit", method: http.MethodPost, path: "/echo", body: strings.Repeat("x", 2048), status: 413, items: []errs.Item{{Message: "Request body too large"}}},
		{name: "HEAD unknown route", method: http.MethodHead, path: "/no/such/route", status: 404},
		{name: "HEAD conflict", method: http.MethodHead, path: "/conflict", status: 409},
		{name: "HEAD wrong method", method: http.MethodHead, path: "/echo", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			rec := serve(e, httptest.NewRequest(method, tc.path, body))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if method == http.MethodHead {
				if rec.Body.Len() != 0 {
					t.Fatalf("HEAD answered with a body: %q", rec.Body)
				}
			} else if got := errorBody(t, rec); !reflect.DeepEqual(got, tc.items) {
				t.Fatalf("items %+v, want %+v", got, tc.items)
			}
			if strings.Contains(rec.Body.String(), "10.1.2.3") || strings.Contains(rec.Body.String(), "goroutine") {
				t.Fatalf("response leaks internals: %s", rec.Body)
			}
			if k := tc.header[0]; k != "" && !strings.Contains(rec.Header().Get(k), tc.header[1]) {
				t.Fatalf("header %s = %q, want it to contain %q", k, rec.Header().Get(k), tc.header[1])
			}
			if tc.logged != "" {
				rid := rec.Header().Get(echo.HeaderXRequestID)
				var found map[string]any
				for _, r := range logs.records(t, "request failed") {
					if r["request_id"] == rid {
						found = r
					}
				}
				if found == nil {
					t.Fatalf("no \"request failed\" log for request %s; logs:\n%s", rid, logs)
				}
				if s, _ := found["err"].(string); !strings.Contains(s, tc.logged) {
					t.Fatalf("logged err %q, want it to contain %q", s, tc.logged)
				}
				if found["level"] != "ERROR" || found["path"] != tc.path {
					t.Fatalf("log record %v: want level ERROR and path %s", found, tc.path)
				}
			}
		})
	}
}

func TestErrorHandlerLogsPanicStack(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	e := web.New(log, web.Options{})
	e.GET("/panic", func(echo.Context) error { panic("kaboom") })
	rec := serve(e, httptest.NewRequest(http.MethodGet, "/panic", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	recs := logs.records(t, "request failed")
	if len(recs) != 1 {
		t.Fatalf("got %d \"request failed\" logs, want exactly 1 (handle an error once); logs:\n%s", len(recs), logs)
	}
	if s, _ := recs[0]["stack"].(string); !strings.Contains(s, "web_test.TestErrorHandlerLogsPanicStack") {
		t.Fatalf("stack %q does not show the panicking function", s)
	}
}

func TestErrorHandlerLogsErrorAfterCommit(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	e := web.New(log, web.Options{})
	e.GET("/late", func(c echo.Context) error {
		if err := c.String(http.StatusOK, "partial"); err != nil {
			return err
		}
		return errors.New("template failed half way")
	})
	rec := serve(e, httptest.NewRequest(http.MethodGet, "/late", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "partial" {
		t.Fatalf("got %d %q, want the response already written (200 partial)", rec.Code, rec.Body)
	}
	recs := logs.records(t, "request failed after the response was sent")
	if len(recs) != 1 || !strings.Contains(fmt.Sprint(recs[0]["err"]), "template failed") {
		t.Fatalf("the error was not logged; logs:\n%s", logs)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"errs type", errs.Conflict("taken"), 409, "taken"},
		{"echo 404", echo.ErrNotFound, 404, "Not Found"},
		{"echo 401", echo.ErrUnauthorized, 401, "Not authorized"},
		{"echo 413", echo.ErrStatusRequestEntityTooLarge, 413, "Request body too large"},
		{"echo error message", echo.NewHTTPError(http.StatusBadRequest, errors.New("not a string")), 400, "Bad Request"},
		{"max bytes", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), 413, "Request body too large"},
		{"echo 503", echo.ErrServiceUnavailable, 500, "Something went wrong"},
		{"context canceled", context.Canceled, 500, "Something went wrong"},
		{"plain", errors.New("boom"), 500, "Something went wrong"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body := web.Classify(tc.err)
			if status != tc.status || len(body.Errors) != 1 || body.Errors[0].Message != tc.msg {
				t.Fatalf("Classify = %d %+v, want %d %q", status, body, tc.status, tc.msg)
			}
		})
	}
}

type check struct {
	mu  sync.Mutex
	err error
}

func (c *check) set(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func (c *check) Func(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func TestProbes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		db, bus error
		status  int
		items   []errs.Item
	}{
		{name: "all ready", status: 200},
		{name: "nats down", bus: errors.New("nats: not connected"), status: 503, items: []errs.Item{{Message: "nats is not ready"}}},
		{name: "both down", db: errors.New("ping"), bus: errors.New("nats"), status: 503, items: []errs.Item{{Message: "database is not ready"}, {Message: "nats is not ready"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log, _ := newLogger()
			db, bus := &check{err: tc.db}, &check{err: tc.bus}
			e := web.New(log, web.Options{Ready: []web.Check{{Name: "database", Func: db.Func}, {Name: "nats", Func: bus.Func}}})

			rec := serve(e, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
				t.Fatalf("/healthz: %d %s, want 200 {\"status\":\"ok\"} whatever the dependencies", rec.Code, rec.Body)
			}
			rec = serve(e, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.status {
				t.Fatalf("/readyz: status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				if got := errorBody(t, rec); !reflect.DeepEqual(got, tc.items) {
					t.Fatalf("/readyz items %+v, want %+v", got, tc.items)
				}
				// Recovers on its own when the dependency is back.
				db.set(nil)
				bus.set(nil)
				if rec = serve(e, httptest.NewRequest(http.MethodGet, "/readyz", nil)); rec.Code != 200 {
					t.Fatalf("/readyz after recovery: %d %s", rec.Code, rec.Body)
				}
			}
			for _, p := range []string{"/healthz", "/readyz"} {
				rec = serve(e, httptest.NewRequest(http.MethodHead, p, nil))
				if rec.Code != 200 || rec.Body.Len() != 0 {
					t.Fatalf("HEAD %s: %d %q, want 200 and no body", p, rec.Code, rec.Body)
				}
			}
		})
	}
}

func TestReadyzBoundsASlowCheck(t *testing.T) {
	t.Parallel()
	log, _ := newLogger()
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	e := web.New(log, web.Options{Ready: []web.Check{{Name: "database", Func: hang}}})
	start := time.Now()
	rec := serve(e, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("/readyz took %s with a hanging check; probes must answer quickly", d)
	}
}

func TestServeListenerShutsDownGracefully(t *testing.T) {
	t.Parallel()
	log, _ := newLogger()
	e := web.New(log, web.Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	e.GET("/slow", func(c echo.Context) error {
		close(entered)
		<-release
		return c.String(http.StatusOK, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- web.ServeListener(ctx, log, ln, e, 5*time.Second) }()

	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}

	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{string(b), err}
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("ServeListener returned (%v) before the in-flight request finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-slow; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q, %v; want done", r.body, r.err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ServeListener: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeListener did not return after shutdown")
	}
}

func TestServeReportsListenErrors(t *testing.T) {
	t.Parallel()
	log, _ := newLogger()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = web.Serve(context.Background(), log, ln.Addr().String(), http.NotFoundHandler(), time.Second)
	if err == nil {
		t.Fatal("Serve on a port in use returned nil")
	}
}

func TestAccessLogRecordsTheStatusTheClientGot(t *testing.T) {
	t.Parallel()
	log, buf := newLogger()
	e := web.New(log, web.Options{})
	e.GET("/missing", func(echo.Context) error { return errs.ErrNotFound })
	e.GET("/boom", func(echo.Context) error { panic("boom") })
	for path, want := range map[string]float64{"/missing": 404, "/boom": 500, "/no-route": 404} {
		rec := serve(e, httptest.NewRequest(http.MethodGet, path, nil))
		if float64(rec.Code) != want {
			t.Fatalf("GET %s = %d, want %v", path, rec.Code, want)
		}
		var logged []float64
		for _, r := range buf.records(t, "request") {
			if r["path"] == path {
				logged = append(logged, r["status"].(float64))
			}
		}
		if len(logged) != 1 || logged[0] != want {
			t.Errorf("access log for %s has statuses %v, want exactly [%v]", path, logged, want)
		}
	}
}
