// Package service wires what every Stuffmart service has in common, so each
// service's app package only adds its own store, routes and listeners: the
// MongoDB client and database, the NATS Streaming bus, the one document
// Writer, the outbox relay, the session middleware, the Echo server with its
// probes, and an orderly start and stop.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/gommon/bytes"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Config is what every service reads from the environment.
type Config struct {
	Name       string
	HTTPAddr   string
	MongoURI   string
	MongoDB    string
	NATS       events.Config
	JWTKey     string
	SessionKey string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	BodyLimit  string
	// TrustedProxies may tell the client's address and scheme (forwarded
	// headers): the ingress and the storefront.
	TrustedProxies []netip.Prefix
	// Limits are the rate limits; off switches every limit off.
	Limits Limits
	// DebugAddr, when set, serves net/http/pprof on a listener of its own
	// (a loopback address: reach it with kubectl port-forward).
	DebugAddr string
	// NoMetrics leaves out every metric and GET /metrics (Service.Metrics
	// is nil, which records nothing). Not read from the environment: the
	// benchmark of what metrics cost sets it.
	NoMetrics bool
}

// Limits are a service's rate limits (RATE_LIMIT and RATE_LIMIT_*).
type Limits struct {
	// On is false when RATE_LIMIT=off: benchmarks and load tests sign up
	// hundreds of buyers from one address.
	On bool
	// Unsafe limits every POST, PUT, PATCH and DELETE by client address.
	Unsafe ratelimit.Rule
}

// Limiter returns a limiter for rule, or nil (no limit) when the limits are
// off.
func (l Limits) Limiter(rule ratelimit.Rule) *ratelimit.Limiter {
	if !l.On {
		return nil
	}
	return ratelimit.New(rule, nil)
}

// LoadConfig reads the common variables for service name: HTTP_ADDR
// (":3000"), MONGO_URI (required), MONGO_DB (name), NATS_URL (required),
// NATS_CLUSTER_ID ("stuffmart"), JWT_KEY and SESSION_KEY (required, 32+
// characters), ACCESS_TOKEN_TTL ("15m"), REFRESH_TOKEN_TTL ("168h"),
// BODY_LIMIT ("64K"), TRUSTED_PROXIES (none), RATE_LIMIT ("on"),
// RATE_LIMIT_UNSAFE ("600/m burst 100") and DEBUG_ADDR (none: no profiles; a
// loopback address such as 127.0.0.1:6060). Problems are collected in r.
func LoadConfig(r *config.Reader, name string) Config {
	proxies, err := web.ParsePrefixes(r.List("TRUSTED_PROXIES"))
	if err != nil {
		r.Fail(fmt.Errorf("TRUSTED_PROXIES: %w", err))
	}
	return Config{
		DebugAddr:      DebugAddr(r),
		TrustedProxies: proxies,
		Limits:         LoadLimits(r),
		Name:           name,
		HTTPAddr:       r.String("HTTP_ADDR", ":3000"),
		MongoURI:       r.Required("MONGO_URI"),
		MongoDB:        r.String("MONGO_DB", name),
		NATS: events.Config{
			URL:        r.Required("NATS_URL"),
			ClusterID:  r.String("NATS_CLUSTER_ID", "stuffmart"),
			ClientName: name,
		},
		JWTKey:     r.Secret("JWT_KEY", 32),
		SessionKey: r.Secret("SESSION_KEY", 32),
		AccessTTL:  r.Duration("ACCESS_TOKEN_TTL", 15*time.Minute),
		RefreshTTL: r.Duration("REFRESH_TOKEN_TTL", 7*24*time.Hour),
		BodyLimit:  bodyLimit(r),
	}
}

// DebugAddr reads DEBUG_ADDR: empty, or a loopback host:port, so that
// profiles are never served to the network.
func DebugAddr(r *config.Reader) string {
	addr := r.String("DEBUG_ADDR", "")
	if addr == "" {
		return ""
	}
	host, _, err := net.SplitHostPort(addr)
	ip, perr := netip.ParseAddr(host)
	if err != nil || (host != "localhost" && (perr != nil || !ip.IsLoopback())) {
		r.Fail(fmt.Errorf("DEBUG_ADDR: %q is not a loopback host:port such as 127.0.0.1:6060", addr))
		return ""
	}
	return addr
}

// LoadLimits reads RATE_LIMIT ("on", or "off") and RATE_LIMIT_UNSAFE (a
// rule such as "600/m burst 100"; see ratelimit.ParseRule).
func LoadLimits(r *config.Reader) Limits {
	var l Limits
	switch v := r.String("RATE_LIMIT", "on"); v {
	case "on":
		l.On = true
	case "off":
	default:
		r.Fail(fmt.Errorf("RATE_LIMIT: %q is neither on nor off", v))
	}
	l.Unsafe = Rule(r, "RATE_LIMIT_UNSAFE", "600/m burst 100")
	return l
}

// DefaultSearchLimit is RATE_LIMIT_SEARCH's default: ten searches a second
// per client address, two hundred at once. Far beyond a person typing and
// paging, it leaves room for a campus behind one NAT address (as
// RATE_LIMIT_UNSAFE does) while holding one script to about a percent of
// a core (a computed search page costs the storefront under 1 ms of CPU,
// stuff a fraction of that).
const DefaultSearchLimit = "600/m burst 200"

// SearchRule reads RATE_LIMIT_SEARCH (DefaultSearchLimit when unset), the
// limit per client address of the listings computed for their request, in
// the two that serve them: the storefront's /search, seller pages and home
// page sorted or in a price range, and stuff's GET /api/stuff with a query
// text, an order, a price range or a seller, or a plain page past the
// catalog's memory. Searches are anonymous, and a query never asked before
// is computed, never served from memory: the read one client could make the
// catalog spend its CPU on.
func SearchRule(r *config.Reader) ratelimit.Rule {
	return Rule(r, "RATE_LIMIT_SEARCH", DefaultSearchLimit)
}

// Rule reads a rate-limit rule from variable name, def when unset.
func Rule(r *config.Reader, name, def string) ratelimit.Rule {
	rule, err := ratelimit.ParseRule(r.String(name, def))
	if err != nil {
		r.Fail(fmt.Errorf("%s: %w", name, err))
		rule, _ = ratelimit.ParseRule(def) // a constant of the code: it parses
	}
	rule.Name = strings.ToLower(name)
	return rule
}

// bodyLimit reads BODY_LIMIT; Echo panics at start on a size it cannot parse,
// so a bad value is reported with the other configuration problems instead.
func bodyLimit(r *config.Reader) string {
	v := r.String("BODY_LIMIT", web.DefaultBodyLimit)
	if _, err := bytes.Parse(v); err != nil {
		r.Fail(fmt.Errorf("BODY_LIMIT: %q is not a size such as 64K", v))
		return web.DefaultBodyLimit
	}
	return v
}

// LogValue logs the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("mongo_db", c.MongoDB),
		slog.String("nats_url", config.MaskURL(c.NATS.URL)),
		slog.String("nats_cluster_id", c.NATS.ClusterID),
		slog.String("jwt_key", config.Mask(c.JWTKey)),
		slog.String("session_key", config.Mask(c.SessionKey)),
		slog.Duration("access_ttl", c.AccessTTL),
		slog.Duration("refresh_ttl", c.RefreshTTL),
	)
}

// Service is the common part of a running service.
type Service struct {
	Cfg      Config
	Log      *slog.Logger
	Mongo    *mongo.Client
	DB       *mongo.Database
	Bus      *events.Bus
	Writer   *mongox.Writer
	Sessions *auth.Sessions
	// Bans are the users banned within an access token's lifetime; the
	// session middleware refuses their older tokens.
	Bans *auth.Bans
	// Echo has the shared middleware, /healthz, /readyz and the session
	// middleware (auth.Sessions.CurrentUserUnless(Bans)) installed.
	Echo *echo.Echo
	// Metrics is the service's registry, served on GET /metrics of its own
	// port (see web.Internal); the app adds its domain metrics to it. Nil
	// (records nothing) when Cfg.NoMetrics.
	Metrics *metrics.Set
	relay   *outbox.Relay

	indexes      []mongox.Index
	indexesReady atomic.Bool

	mu       sync.Mutex
	workers  []func(ctx context.Context)
	cancel   context.CancelFunc
	done     chan struct{}
	closed   bool
	closeErr error
}

// Open connects to MongoDB (lazily: the service starts while the database
// comes up; /readyz tells) and prepares the bus, which connects on Start.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	// Lines logged with a request's or an event's context carry its
	// correlation id.
	log = slog.New(correlation.LogHandler(log.Handler()))
	client, err := mongox.Connect(ctx, cfg.MongoURI)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.Name, err)
	}
	db := client.Database(cfg.MongoDB)
	tokens := auth.NewTokens([]byte(cfg.JWTKey), cfg.AccessTTL)
	s := &Service{
		Cfg:      cfg,
		Log:      log,
		Mongo:    client,
		DB:       db,
		Writer:   mongox.NewWriter(),
		Sessions: auth.NewSessions([]byte(cfg.SessionKey), tokens, cfg.RefreshTTL),
	}
	if !cfg.NoMetrics {
		s.Metrics = metrics.New()
	}
	busCfg := cfg.NATS
	busCfg.Metrics = s.Metrics
	s.Bus = events.NewBus(busCfg, log, s.park)
	s.Metrics.GaugeFunc("events_parked", "Events parked for a human (GET /admin/parked); -1 while the database does not answer.", s.countParked)
	s.Echo = web.New(log, web.Options{
		Metrics:        s.Metrics,
		BodyLimit:      cfg.BodyLimit,
		Translate:      mongox.AsConnectionError,
		TrustedProxies: cfg.TrustedProxies,
		UnsafeLimit:    cfg.Limits.Limiter(cfg.Limits.Unsafe),
		Ready: []web.Check{
			{Name: "database", Func: func(ctx context.Context) error { return mongox.Ping(ctx, client) }},
			{Name: "nats", Func: s.Bus.Ready},
			{Name: "indexes", Func: s.checkIndexes},
		},
	})
	// A ban bites at once: every replica of every service learns it (and,
	// after a restart, the bans of the last token lifetime) and refuses the
	// user's tokens issued before it.
	s.Bans = auth.NewBans(cfg.AccessTTL, nil)
	s.Bus.Listen(events.Listener{Subject: events.UserBanned, Group: cfg.Name, Broadcast: true, ReplayFor: cfg.AccessTTL,
		Workers: 1, Handle: s.applyBan})
	s.Echo.Use(s.Sessions.CurrentUserUnless(s.Bans))
	s.routeParked()
	return s, nil
}

// applyBan records a user:banned in the ban list.
func (s *Service) applyBan(_ context.Context, m events.Msg) error {
	ev, err := events.Decode[events.UserBannedEvent](m)
	if err != nil {
		return err
	}
	if ev.UserID == "" {
		return events.Permanent(errors.New("user:banned without a user id"))
	}
	at := ev.At
	if at.IsZero() {
		at = m.Published // published after the ban: later, so safer
	}
	s.Bans.Ban(ev.UserID, at)
	return nil
}

// Outbox returns the relay that publishes pending events of colls, creating
// it on first call. Call it before Start.
func (s *Service) Outbox(colls ...*mongo.Collection) *outbox.Relay {
	if s.relay == nil {
		s.relay = outbox.NewRelay(s.Bus, s.Writer, s.Log, colls...)
		s.relay.Instrument(s.Metrics, time.Now)
		s.Bus.OnConnect(s.relay.SweepNow)
	}
	return s.relay
}

// Indexes has the service create idx when it starts (idempotently), and
// again until the database answers. /readyz fails until they all exist:
// claims rest on unique indexes, so no traffic is routed before them. It is
// the one start-up policy of every service; call it before Start.
func (s *Service) Indexes(idx ...mongox.Index) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexes = append(s.indexes, idx...)
}

// errIndexesPending is the readiness failure while indexes are being made.
var errIndexesPending = errors.New("indexes not created yet")

func (s *Service) checkIndexes(context.Context) error {
	s.mu.Lock()
	none := len(s.indexes) == 0
	s.mu.Unlock()
	if none || s.indexesReady.Load() {
		return nil
	}
	return errIndexesPending
}

func (s *Service) ensureIndexes(ctx context.Context, idx []mongox.Index) {
	if err := mongox.EnsureIndexesRetry(ctx, s.DB, idx...); err != nil {
		if ctx.Err() == nil {
			s.Log.Error("create indexes", "err", err)
		}
		return
	}
	s.indexesReady.Store(true)
	s.Log.Debug("indexes ready", "count", len(idx))
}

// park keeps a message that will not be applied in the parked_events
// collection, for a human to look at.
// It is keyed by subject and sequence, so parking one message twice (a
// redelivery racing a slow park, or every replica of a broadcast listener)
// keeps one copy and is not an error.
func (s *Service) park(ctx context.Context, m events.Msg, cause error) error {
	err := s.Writer.Insert(ctx, s.DB.Collection(ParkedCollection), bson.D{
		{Key: "_id", Value: fmt.Sprintf("%s#%d", m.Subject, m.Sequence)},
		{Key: "subject", Value: string(m.Subject)},
		{Key: "sequence", Value: int64(m.Sequence)},
		{Key: "data", Value: string(m.Data)},
		{Key: "deliveries", Value: m.Deliveries},
		{Key: "error", Value: cause.Error()},
		{Key: "parkedAt", Value: time.Now()},
	})
	if mongox.IsDuplicate(err) {
		return nil
	}
	return err
}

// Start connects the bus and runs the outbox relay in the background, until
// Close.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil || s.closed {
		return // Run after Start, or a second Start: one relay, one bus
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	s.Bus.Start()
	var wg sync.WaitGroup
	if s.relay != nil {
		wg.Go(func() { s.relay.Run(ctx) })
	}
	if idx := s.indexes; len(idx) > 0 {
		wg.Go(func() { s.ensureIndexes(ctx, idx) })
	}
	wg.Go(func() { s.pruneIdempotency(ctx) })
	for _, fn := range s.workers {
		wg.Go(func() { fn(ctx) })
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
}

// Go registers fn to run in the background from Start until Close, which
// cancels its ctx and waits for it to return. Register before Start: the
// scheduler of deadlines, a read model's reconciliation, index creation that
// retries until the database answers.
func (s *Service) Go(fn func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workers = append(s.workers, fn)
}

// Close stops the background work (relay and workers registered with Go),
// then the bus (listeners Close, keeping their durable position), and
// disconnects from MongoDB. Calling it again returns the first
// result.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	var waitErr error
	if s.cancel != nil {
		s.cancel()
		select {
		case <-s.done:
		case <-ctx.Done():
			waitErr = fmt.Errorf("background work still running: %w", ctx.Err())
		}
	}
	s.closeErr = errors.Join(waitErr, s.Bus.Close(), s.Mongo.Disconnect(ctx))
	return s.closeErr
}

// Run starts the service, serves HTTP on Cfg.HTTPAddr until ctx ends, then
// shuts down: HTTP first (in-flight requests finish), then events, then the
// database.
func (s *Service) Run(ctx context.Context) error {
	s.Start()
	if s.Cfg.DebugAddr != "" {
		go func() {
			if err := web.Serve(ctx, s.Log, s.Cfg.DebugAddr, web.Profiles(), time.Second); err != nil {
				s.Log.Error("profiles listener", "addr", s.Cfg.DebugAddr, "err", err)
			}
		}()
	}
	serveErr := web.Serve(ctx, s.Log, s.Cfg.HTTPAddr, s.Echo, 10*time.Second)
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(serveErr, s.Close(cctx))
}
