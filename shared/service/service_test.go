package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	jwtKey     = "a-jwt-key-of-at-least-32-characters!"
	sessionKey = "a-session-key-of-at-least-32-chars!!"
)

func testConfig(t *testing.T, nats events.Config) service.Config {
	t.Helper()
	db := testkit.Mongo(t) // dropped at cleanup, after the service closed
	nats.ClientName = "svc-" + testkit.RandomID(t)[:6]
	return service.Config{
		Name:       "svc",
		HTTPAddr:   "127.0.0.1:0",
		MongoURI:   testkit.MongoURI(t),
		MongoDB:    db.Name(),
		NATS:       nats,
		JWTKey:     jwtKey,
		SessionKey: sessionKey,
		AccessTTL:  15 * time.Minute,
		RefreshTTL: time.Hour,
		BodyLimit:  "64K",
	}
}

func open(t *testing.T, cfg service.Config) *service.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := service.Open(ctx, cfg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func get(h http.Handler, path string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func readyz(s *service.Service) (int, string) {
	rec := get(s.Echo, "/readyz")
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

func TestOpenStartClose(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t, testkit.NATS(t)))
	s.Echo.GET("/private", func(c echo.Context) error {
		u, _ := auth.FromEcho(c)
		return c.String(http.StatusOK, u.ID)
	}, auth.RequireUser)
	s.Start()
	s.Start() // harmless

	if rec := get(s.Echo, "/healthz"); rec.Code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", rec.Code, rec.Body)
	}
	testkit.Eventually(t, 15*time.Second, func() bool { code, _ := readyz(s); return code == http.StatusOK }, "/readyz never 200 with Mongo and NATS up")

	// The session middleware is installed.
	cookie := testkit.SessionCookie(t, s.Sessions, auth.User{ID: "u1", Email: "ann@uni.edu", Role: auth.RoleUser}, "")
	if rec := get(s.Echo, "/private", cookie); rec.Code != http.StatusOK || rec.Body.String() != "u1" {
		t.Fatalf("/private with a session: %d %s", rec.Code, rec.Body)
	}
	if rec := get(s.Echo, "/private"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("/private without a session: %d %s", rec.Code, rec.Body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("Close took %s", d)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if code, _ := readyz(s); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after Close: %d, want 503", code)
	}
}

func TestReadyzFollowsNATS(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	s := open(t, testConfig(t, srv.Config))
	s.Start()
	testkit.Eventually(t, 15*time.Second, func() bool { code, _ := readyz(s); return code == http.StatusOK }, "/readyz never 200")

	srv.Stop()
	testkit.Eventually(t, 15*time.Second, func() bool { code, _ := readyz(s); return code == http.StatusServiceUnavailable }, "/readyz still 200 with NATS down")
	if code, body := readyz(s); code != http.StatusServiceUnavailable || body != `{"errors":[{"message":"nats is not ready"}]}` {
		t.Fatalf("/readyz with NATS down: %d %s", code, body)
	}
	if rec := get(s.Echo, "/healthz"); rec.Code != http.StatusOK {
		t.Fatalf("/healthz with NATS down: %d (liveness must not depend on NATS)", rec.Code)
	}

	srv.Restart()
	testkit.Eventually(t, 20*time.Second, func() bool { code, _ := readyz(s); return code == http.StatusOK }, "/readyz did not recover after NATS came back")
}

func TestStartsWithoutDatabase(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testkit.NATS(t))
	cfg.MongoURI = "mongodb://127.0.0.1:1/"
	s := open(t, cfg)
	s.Start()
	code, body := readyz(s)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `{"message":"database is not ready"}`) {
		t.Fatalf("/readyz without a database: %d %s", code, body)
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, testkit.NATS(t))
	cfg.HTTPAddr = addr
	s := open(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	testkit.Eventually(t, 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "Run does not serve /readyz 200 on %s", addr)

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("still serving after Run returned")
	}
}

type parkedDoc struct {
	Subject    string    `bson:"subject"`
	Sequence   int64     `bson:"sequence"`
	Data       string    `bson:"data"`
	Deliveries int       `bson:"deliveries"`
	Error      string    `bson:"error"`
	ParkedAt   time.Time `bson:"parkedAt"`
}

func TestParkedEventsAreStored(t *testing.T) {
	t.Parallel()
	nats := testkit.NATS(t)
	nats.RetryFor = 1500 * time.Millisecond // a failing message is parked after that long
	s := open(t, testConfig(t, nats))
	s.Bus.Listen(events.Listener{Subject: events.StuffCreated, Group: "svc", Handle: func(context.Context, events.Msg) error {
		return events.Permanent(errors.New("title is not a string"))
	}})
	s.Bus.Listen(events.Listener{Subject: events.OrderCancelled, Group: "svc", Handle: func(context.Context, events.Msg) error {
		return errors.New("replica write failed")
	}})
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Bus.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Bus.PublishEvent(ctx, events.StuffCreatedEvent{ID: "s1", Title: "Notes"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Bus.PublishEvent(ctx, events.OrderCancelledEvent{ID: "o1", Version: 1}); err != nil {
		t.Fatal(err)
	}
	parked := s.DB.Collection("parked_events")
	testkit.Eventually(t, 15*time.Second, func() bool {
		n, err := parked.CountDocuments(ctx, bson.D{})
		return err == nil && n == 2
	}, "two parked events not stored")

	tests := []struct {
		subject    events.Subject
		deliveries int
		errPart    string
		dataPart   string
	}{
		{events.StuffCreated, 1, "title is not a string", `"id":"s1"`},
		{events.OrderCancelled, 3, "replica write failed", `"id":"o1"`},
	}
	for _, tc := range tests {
		var doc parkedDoc
		if err := parked.FindOne(ctx, bson.D{{Key: "subject", Value: string(tc.subject)}}).Decode(&doc); err != nil {
			t.Fatalf("parked %s: %v", tc.subject, err)
		}
		if doc.Deliveries < tc.deliveries || !strings.Contains(doc.Error, tc.errPart) || !strings.Contains(doc.Data, tc.dataPart) || doc.Sequence == 0 || doc.ParkedAt.IsZero() {
			t.Fatalf("parked %s: %+v; want at least %d deliveries, error with %q, data with %q", tc.subject, doc, tc.deliveries, tc.errPart, tc.dataPart)
		}
	}
}

func TestOutboxRecoversAfterNATSOutage(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	s := open(t, testConfig(t, srv.Config))
	stuff := s.DB.Collection("stuff")
	relay := s.Outbox(stuff)
	if again := s.Outbox(stuff); again != relay {
		t.Fatal("Outbox returned a second relay")
	}
	got := make(chan int64, 10)
	s.Bus.Listen(events.Listener{Subject: events.StuffUpdated, Group: "orders", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.StuffUpdatedEvent](m)
		if err == nil {
			got <- ev.Version
		}
		return err
	}})
	s.Start()
	testkit.Eventually(t, 15*time.Second, func() bool { code, _ := readyz(s); return code == http.StatusOK }, "/readyz never 200")

	srv.Stop()
	testkit.Eventually(t, 15*time.Second, func() bool { code, _ := readyz(s); return code != http.StatusOK }, "/readyz still 200 with NATS down")
	p, err := outbox.New(t.Context(), events.StuffUpdatedEvent{ID: "s1", Version: 4}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stuff.InsertOne(ctx, bson.D{{Key: "_id", Value: "s1"}, {Key: outbox.Field, Value: []outbox.Pending{p}}}); err != nil {
		t.Fatal(err)
	}
	relay.Notify(stuff, "s1")

	srv.Restart() // the relay's ticker is 30s: only the reconnect hook can publish in time
	select {
	case v := <-got:
		if v != 4 {
			t.Fatalf("got version %d, want 4", v)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the event saved while NATS was down was not published after it came back")
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	full := map[string]string{
		"MONGO_URI":   "mongodb://mongo:27017",
		"NATS_URL":    "nats://nats:4222",
		"JWT_KEY":     jwtKey,
		"SESSION_KEY": sessionKey,
	}
	tests := []struct {
		name    string
		env     map[string]string
		errs    []string
		check   func(t *testing.T, c service.Config)
		without []string
	}{
		{name: "defaults", env: full, check: func(t *testing.T, c service.Config) {
			want := service.Config{Name: "stuff", HTTPAddr: ":3000", MongoURI: "mongodb://mongo:27017", MongoDB: "stuff",
				NATS:   events.Config{URL: "nats://nats:4222", ClusterID: "stuffmart", ClientName: "stuff"},
				JWTKey: jwtKey, SessionKey: sessionKey, AccessTTL: 15 * time.Minute, RefreshTTL: 168 * time.Hour, BodyLimit: "64K",
				Limits: service.Limits{On: true, Unsafe: ratelimit.Rule{Every: 100 * time.Millisecond, Burst: 100, Name: "rate_limit_unsafe"}}}
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("config %+v, want %+v", c, want)
			}
		}},
		{name: "overrides", env: merge(full, map[string]string{"HTTP_ADDR": ":8081", "MONGO_DB": "stuffdb", "NATS_CLUSTER_ID": "prod", "ACCESS_TOKEN_TTL": "5m", "REFRESH_TOKEN_TTL": "24h", "BODY_LIMIT": "1M"}),
			check: func(t *testing.T, c service.Config) {
				if c.HTTPAddr != ":8081" || c.MongoDB != "stuffdb" || c.NATS.ClusterID != "prod" || c.AccessTTL != 5*time.Minute || c.RefreshTTL != 24*time.Hour || c.BodyLimit != "1M" {
					t.Fatalf("overrides not applied: %+v", c)
				}
			}},
		{name: "proxies and limits", env: merge(full, map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "RATE_LIMIT": "off", "RATE_LIMIT_UNSAFE": "10/s burst 5"}),
			check: func(t *testing.T, c service.Config) {
				want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
				if !reflect.DeepEqual(c.TrustedProxies, want) || c.Limits.On || c.Limits.Unsafe != (ratelimit.Rule{Every: 100 * time.Millisecond, Burst: 5, Name: "rate_limit_unsafe"}) {
					t.Fatalf("proxies %v, limits %+v", c.TrustedProxies, c.Limits)
				}
				if c.Limits.Limiter(c.Limits.Unsafe) != nil {
					t.Fatal("RATE_LIMIT=off still limits")
				}
			}},
		{name: "nothing set", env: map[string]string{}, errs: []string{"MONGO_URI", "NATS_URL", "JWT_KEY", "SESSION_KEY"}},
		{name: "profiles on loopback", env: merge(full, map[string]string{"DEBUG_ADDR": "127.0.0.1:6060"}),
			check: func(t *testing.T, c service.Config) {
				if c.DebugAddr != "127.0.0.1:6060" {
					t.Fatalf("DebugAddr %q", c.DebugAddr)
				}
			}},
		{name: "profiles on the network", env: merge(full, map[string]string{"DEBUG_ADDR": "0.0.0.0:6060"}), errs: []string{"DEBUG_ADDR"}},
		{name: "profiles without a port", env: merge(full, map[string]string{"DEBUG_ADDR": "127.0.0.1"}), errs: []string{"DEBUG_ADDR"}},
		{name: "bad proxies and limits", env: merge(full, map[string]string{"TRUSTED_PROXIES": "the ingress", "RATE_LIMIT": "maybe", "RATE_LIMIT_UNSAFE": "lots"}),
			errs: []string{"TRUSTED_PROXIES", "RATE_LIMIT: \"maybe\"", "RATE_LIMIT_UNSAFE"}},
		{name: "short secrets and bad durations", env: merge(full, map[string]string{"JWT_KEY": "short", "ACCESS_TOKEN_TTL": "soon"}),
			errs: []string{"JWT_KEY must be at least 32", "ACCESS_TOKEN_TTL"}, without: []string{"short"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.New(func(k string) string { return tc.env[k] })
			c := service.LoadConfig(r, "stuff")
			err := r.Err()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Err() = %v", err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("Err() = nil")
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Err() does not mention %s:\n%v", want, err)
				}
			}
			for _, no := range tc.without {
				if strings.Contains(err.Error(), no) {
					t.Errorf("Err() shows %q:\n%v", no, err)
				}
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestConfigLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	c := service.Config{Name: "auth", MongoURI: "mongodb://mongo", JWTKey: jwtKey, SessionKey: sessionKey}
	log.Info("config", "config", c)
	out := buf.String()
	if strings.Contains(out, jwtKey) || strings.Contains(out, sessionKey) {
		t.Fatalf("secrets logged: %s", out)
	}
	if !strings.Contains(out, `"jwt_key":"<36 chars>"`) || !strings.Contains(out, `"name":"auth"`) {
		t.Fatalf("config log %s: want the name and masked keys", out)
	}
}

func TestWorkersRunFromStartUntilClose(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t, testkit.NATS(t)))
	started := make(chan struct{})
	stopped := make(chan struct{})
	s.Go(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		close(stopped)
	})
	select {
	case <-started:
		t.Fatal("worker ran before Start")
	default:
	}
	s.Start()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("worker not started by Start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("Close returned before the worker stopped")
	}
}

func TestCloseGivesUpOnAStuckWorker(t *testing.T) {
	t.Parallel()
	octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ocancel()
	s, err := service.Open(octx, testConfig(t, testkit.NATS(t)), testkit.Logger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	release := make(chan struct{})
	defer close(release)
	s.Go(func(context.Context) { <-release }) // ignores its ctx
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a stuck worker = %v, want a deadline error", err)
	}
}

// The one start-up policy for indexes: a service is not ready until the
// indexes it asked for exist, then they hold (a unique one refuses a
// duplicate).
func TestIndexesGateReadiness(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testkit.NATS(t))
	s := open(t, cfg)
	s.Indexes(mongox.Index{Collection: "claims", Keys: bson.D{{Key: "key", Value: 1}}, Unique: true, Name: "key_unique"})
	if code, body := readyz(s); code != http.StatusServiceUnavailable || !strings.Contains(body, `"indexes is not ready"`) {
		t.Fatalf("/readyz before Start: %d %s; want the indexes named", code, body)
	}
	s.Start()
	testkit.Eventually(t, 15*time.Second, func() bool { code, _ := readyz(s); return code == http.StatusOK }, "/readyz never 200 once the indexes could be made")
	c := s.DB.Collection("claims")
	ctx := context.Background()
	if _, err := c.InsertOne(ctx, bson.D{{Key: "key", Value: "k1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InsertOne(ctx, bson.D{{Key: "key", Value: "k1"}}); !mongox.IsDuplicate(err) {
		t.Fatalf("second insert of k1: %v; want the unique index to refuse it", err)
	}
}

// While the database is unreachable, a request that needs it is answered
// 503 "Failed to connect to database" (the seed's DatabaseConnectionError)
// within about a second, not a 500 after the driver's long wait.
func TestDatabaseOutageIsA503(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testkit.NATS(t))
	cfg.MongoURI = "mongodb://127.0.0.1:1/"
	s := open(t, cfg)
	s.Echo.GET("/count", func(c echo.Context) error {
		n, err := s.DB.Collection("things").CountDocuments(c.Request().Context(), bson.D{})
		if err != nil {
			return fmt.Errorf("count things: %w", err)
		}
		return c.JSON(http.StatusOK, n)
	})
	s.Start()
	begin := time.Now()
	rec := get(s.Echo, "/count")
	took := time.Since(begin)
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != `{"errors":[{"message":"Failed to connect to database"}]}` {
		t.Fatalf("GET /count without a database = %d %s", rec.Code, rec.Body)
	}
	if took > 5*time.Second {
		t.Fatalf("the answer took %s; the request must not hang", took)
	}
}

// A ban bites at once: within moments of user:banned every service refuses
// the user's tokens issued before it, and one started after the ban (within
// a token's lifetime) knows it too. A token issued after the ban (the user
// unbanned and signed in again) is accepted.
func TestBanRefusesOlderTokens(t *testing.T) {
	t.Parallel()
	nc := testkit.NATS(t)
	serve := func() *service.Service {
		s := open(t, testConfig(t, nc))
		s.Echo.GET("/me", func(c echo.Context) error {
			u, _ := auth.FromEcho(c)
			return c.String(http.StatusOK, u.ID)
		}, auth.RequireUser)
		s.Start()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Bus.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := serve()
	u := auth.User{ID: "u-banned", Email: "b@uni.edu", Role: auth.RoleUser}
	before := testkit.SessionCookie(t, s.Sessions, u, "")
	if rec := get(s.Echo, "/me", before); rec.Code != http.StatusOK {
		t.Fatalf("before the ban: %d %s", rec.Code, rec.Body)
	}
	peer := testkit.NewPeer(t, nc)
	peer.Publish(events.UserBannedEvent{UserID: u.ID, At: time.Now()})
	testkit.Eventually(t, 5*time.Second, func() bool { return get(s.Echo, "/me", before).Code == http.StatusUnauthorized }, "the banned user's token still accepted")

	// A replica started after the ban learns it from the bus.
	late := serve()
	testkit.Eventually(t, 5*time.Second, func() bool { return get(late.Echo, "/me", before).Code == http.StatusUnauthorized }, "a service started after the ban accepts the banned user's token")

	// A token issued after the ban: the user was unbanned and signed in.
	time.Sleep(1100 * time.Millisecond) // tokens carry whole seconds
	after := testkit.SessionCookie(t, s.Sessions, u, "")
	if rec := get(s.Echo, "/me", after); rec.Code != http.StatusOK {
		t.Fatalf("a token issued after the ban: %d %s", rec.Code, rec.Body)
	}
}

// Parked messages can be listed and re-driven by an admin: the message goes
// out again on its subject (a fixed listener applies it) and leaves the
// list. Anyone else gets 401.
func TestParkedEventsCanBeRedriven(t *testing.T) {
	t.Parallel()
	nats := testkit.NATS(t)
	s := open(t, testConfig(t, nats))
	var fixed atomic.Bool
	applied := make(chan string, 4)
	s.Bus.Listen(events.Listener{Subject: events.OrderCancelled, Group: "svc", Handle: func(_ context.Context, m events.Msg) error {
		if !fixed.Load() {
			return events.Permanent(errors.New("bug in the handler"))
		}
		applied <- string(m.Data)
		return nil
	}})
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Bus.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Bus.PublishEvent(ctx, events.OrderCancelledEvent{ID: "o1", Version: 2}); err != nil {
		t.Fatal(err)
	}
	admin := testkit.SessionCookie(t, s.Sessions, auth.User{ID: "a1", Email: "a@uni.edu", Role: auth.RoleAdmin}, "")
	user := testkit.SessionCookie(t, s.Sessions, auth.User{ID: "u1", Email: "u@uni.edu", Role: auth.RoleUser}, "")
	type list struct {
		Parked []service.ParkedEvent `json:"parked"`
	}
	var got list
	testkit.Eventually(t, 15*time.Second, func() bool {
		rec := get(s.Echo, "/admin/parked", admin)
		return rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &got) == nil && len(got.Parked) == 1
	}, "the parked message is not listed")
	p := got.Parked[0]
	if p.Subject != string(events.OrderCancelled) || !strings.Contains(p.Data, `"id":"o1"`) || !strings.Contains(p.Error, "bug in the handler") {
		t.Fatalf("parked %+v", p)
	}
	if rec := get(s.Echo, "/admin/parked", user); rec.Code != http.StatusUnauthorized {
		t.Fatalf("a user lists parked events: %d", rec.Code)
	}
	if rec := get(s.Echo, "/admin/parked"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("anonymous lists parked events: %d", rec.Code)
	}

	fixed.Store(true) // the handler is fixed (a new release)
	post := func(path string, cookie *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		s.Echo.ServeHTTP(rec, req)
		return rec
	}
	if rec := post("/admin/parked/"+p.ID+"/redrive", user); rec.Code != http.StatusUnauthorized {
		t.Fatalf("a user re-drives: %d", rec.Code)
	}
	if rec := post("/admin/parked/"+p.ID+"/redrive", admin); rec.Code != http.StatusOK {
		t.Fatalf("re-drive: %d %s", rec.Code, rec.Body)
	}
	select {
	case d := <-applied:
		if !strings.Contains(d, `"id":"o1"`) {
			t.Fatalf("applied %s", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the re-driven message was not delivered")
	}
	rec := get(s.Echo, "/admin/parked", admin)
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Parked) != 0 {
		t.Fatalf("after the re-drive the list is %s", rec.Body)
	}
	if rec := post("/admin/parked/"+p.ID+"/redrive", admin); rec.Code != http.StatusNotFound {
		t.Fatalf("re-drive of a forgotten id: %d %s", rec.Code, rec.Body)
	}
}
