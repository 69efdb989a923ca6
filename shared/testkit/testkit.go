// Package testkit starts the real infrastructure for tests, once per test
// binary: an embedded FerretDB (v1, SQLite files in a temp dir) and an
// embedded nats-streaming-server. Each test gets its own database and its own
// subject prefix, so tests run in parallel without seeing each other. Import
// it from _test.go files only, and call Main from TestMain.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/embedded"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
)

var (
	mu      sync.Mutex
	tmpDirs []string
	ferret  *embedded.Ferret
	nats    *embedded.NATS
	client  *mongo.Client
)

// Main runs the tests and then stops the shared servers and removes their
// files. Use it as: func TestMain(m *testing.M) { testkit.Main(m) }.
//
// Tests against the real servers mostly wait (ack waits, redeliveries,
// reconnects), so unless -parallel is given, Main lets at least
// 8 parallel tests run at once instead of GOMAXPROCS.
func Main(m *testing.M) {
	if !flag.Parsed() {
		flag.Parse()
	}
	raiseParallel()
	code := m.Run()
	mu.Lock()
	if client != nil {
		_ = client.Disconnect(context.Background()) // the process ends next
	}
	if nats != nil {
		nats.Stop()
	}
	if ferret != nil {
		ferret.Stop()
	}
	for _, d := range tmpDirs {
		_ = os.RemoveAll(d) // best effort: temp files of a finished run
	}
	mu.Unlock()
	os.Exit(code)
}

// minParallel is the -parallel value Main uses when none is given.
const minParallel = 8

func raiseParallel() {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if explicit || flag.Lookup("test.parallel") == nil {
		return
	}
	if n := runtime.GOMAXPROCS(0); n < minParallel {
		_ = flag.Set("test.parallel", strconv.Itoa(minParallel)) // a valid int; cannot fail
	}
}

func tempDir(tb testing.TB, pattern string) string {
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		tb.Fatalf("temp dir: %v", err)
	}
	tmpDirs = append(tmpDirs, d)
	return d
}

// Logger returns a logger for code under test: errors only, on stderr, unless
// TEST_LOG=debug|info|warn asks for more.
func Logger(tb testing.TB) *slog.Logger {
	lvl := slog.LevelError
	switch strings.ToLower(os.Getenv("TEST_LOG")) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn":
		lvl = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("test", tb.Name())
}

// MongoURI returns the URI of the binary's embedded FerretDB, starting it on
// first use.
func MongoURI(tb testing.TB) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if ferret == nil {
		f, err := embedded.StartFerret(tempDir(tb, "stuffmart-ferret-"), "127.0.0.1:0", slog.New(slog.DiscardHandler))
		if err != nil {
			tb.Fatalf("start ferretdb: %v", err)
		}
		ferret = f
	}
	return ferret.URI
}

// DBName returns a fresh database name for a test.
func DBName(tb testing.TB) string {
	return "t" + RandomID(tb)[:12]
}

// Mongo returns a database of its own for this test, dropped at cleanup.
func Mongo(tb testing.TB) *mongo.Database {
	tb.Helper()
	uri := MongoURI(tb)
	mu.Lock()
	if client == nil {
		c, err := mongox.Connect(context.Background(), uri)
		if err != nil {
			mu.Unlock()
			tb.Fatalf("connect ferretdb: %v", err)
		}
		client = c
	}
	c := client
	mu.Unlock()
	db := c.Database(DBName(tb))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			tb.Logf("drop %s: %v", db.Name(), err)
		}
	})
	return db
}

// NATS returns a configuration on the binary's shared embedded NATS Streaming
// server with a subject prefix of this test's own, and the bus timings of
// TestBus: quick redeliveries and a short retry budget.
func NATS(tb testing.TB) events.Config {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if nats == nil {
		n, err := embedded.StartNATS("stuffmart-test", "127.0.0.1", 0, "")
		if err != nil {
			tb.Fatalf("start nats streaming: %v", err)
		}
		nats = n
	}
	id := RandomID(tb)[:10]
	return TestBus(events.Config{
		URL:        nats.URL,
		ClusterID:  nats.ClusterID,
		ClientName: "test-" + id,
		Prefix:     "t" + id + ".",
	})
}

// TestBus sets the bus timings of tests on c: a 1 s ack wait and handler
// timeout (a message comes back a second after a failure), backoff capped at
// 2 s, and a retry budget of a minute before a failing message is parked
// (tests of parking set a shorter one).
func TestBus(c events.Config) events.Config {
	c.AckWait = time.Second
	c.HandlerTimeout = time.Second
	c.MaxBackoff = 2 * time.Second
	c.RetryFor = time.Minute
	return c
}

// NATSServer is a dedicated NATS Streaming server a test may stop and start
// again (same port, same file store) to simulate an outage.
type NATSServer struct {
	tb   testing.TB
	dir  string
	port int
	srv  *embedded.NATS
	// Config reaches this server.
	Config events.Config
}

// StartNATS starts a dedicated server with a file store, stopped at cleanup.
func StartNATS(tb testing.TB) *NATSServer {
	tb.Helper()
	mu.Lock()
	dir := tempDir(tb, "stuffmart-nats-")
	mu.Unlock()
	n, err := startOnStablePort(dir)
	if err != nil {
		tb.Fatalf("start nats streaming: %v", err)
	}
	s := &NATSServer{tb: tb, dir: dir, port: n.Port(), srv: n}
	s.Config = TestBus(events.Config{URL: n.URL, ClusterID: n.ClusterID, ClientName: "test-" + RandomID(tb)[:10]})
	tb.Cleanup(s.Stop)
	return s
}

// startOnStablePort starts a server on a random port below Linux's
// ephemeral range (32768-60999). Such a port is never handed out for port 0
// or as the local port of an outgoing connection, so it stays free while the
// server is stopped: in the ephemeral range, a client that keeps dialing a
// port nobody listens on can end up connected to itself on that very port
// (TCP simultaneous open) and keep the server from starting again.
func startOnStablePort(dir string) (*embedded.NATS, error) {
	var lastErr error
	for range 50 {
		port := 20000 + mrand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			lastErr = err
			continue // taken
		}
		if err := ln.Close(); err != nil {
			return nil, err
		}
		n, err := embedded.StartNATS("stuffmart-test", "127.0.0.1", port, dir)
		if err == nil {
			return n, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// Stop shuts the server down (no-op when stopped).
func (s *NATSServer) Stop() {
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
}

// Restart starts the server again on the same port and file store.
func (s *NATSServer) Restart() {
	s.tb.Helper()
	if s.srv != nil {
		s.tb.Fatal("nats streaming is already running")
	}
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.srv, err = embedded.StartNATS("stuffmart-test", "127.0.0.1", s.port, s.dir)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the port may linger briefly after Stop
	}
	if err != nil {
		s.tb.Fatalf("restart nats streaming: %v", err)
	}
}

// RandomID returns 32 random hex characters.
func RandomID(tb testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// SessionCookie returns the session cookie a browser of u would hold: an
// access token issued by sess's tokens inside a cookie sealed with sess's
// keys (and the given refresh token, which may be empty).
func SessionCookie(tb testing.TB, sess *auth.Sessions, u auth.User, refresh string) *http.Cookie {
	tb.Helper()
	tok, err := sess.Tokens().Issue(u)
	if err != nil {
		tb.Fatalf("issue token: %v", err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if err := sess.Save(rec, req, auth.Session{Access: tok, Refresh: refresh}); err != nil {
		tb.Fatalf("save session: %v", err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == auth.CookieName {
			return c
		}
	}
	tb.Fatal(fmt.Sprintf("no %s cookie written", auth.CookieName))
	return nil
}

// Eventually polls cond every 10 ms until it is true or timeout passes, then
// fails the test with msg. Use it instead of sleeping to wait for events.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Clock is a settable clock for code that takes a now func: pass c.Now,
// then move time with Advance. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Percentile returns the p-th percentile (0 < p ≤ 1) of ds by the nearest
// rank: the smallest value at least p of them are not above. ds need not
// be sorted and is not changed; it is 0 when ds is empty. Every benchmark
// reports its latencies with it.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
