// Package app wires the stuff service: configuration, the shared service kit,
// the store, the catalog (read model), the listings service, the event
// listeners and the HTTP routes. main, the local stack (dev/) and the tests
// all start the service through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/internal/catalog"
	httpapi "github.com/stuffmart/stuffmart/services/stuff/internal/http"
	"github.com/stuffmart/stuffmart/services/stuff/internal/listeners"
	"github.com/stuffmart/stuffmart/services/stuff/internal/store"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/service"
)

// Config is the stuff service's configuration.
type Config struct {
	// Service is the part every service shares (see service.LoadConfig).
	Service service.Config
	// ReadModelMax (READ_MODEL_MAX, default 10000) is how many available
	// listings each replica keeps in memory (about twice their JSON size);
	// pages past them are read from the database.
	ReadModelMax int
	// ReconcileEvery (READ_MODEL_RECONCILE, default 60s) is how often the
	// in-memory listings are checked against the database: the bound on how
	// stale a replica can be while events cannot reach it. A reconcile reads
	// every available listing (a full scan on FerretDB: about a second of
	// CPU at 5,000 listings), so it is not run often.
	ReconcileEvery time.Duration
	// CacheMax (STUFF_CACHE_MAX, default 10000) bounds the cache of single
	// listings behind GET /api/stuff/:id.
	CacheMax int
	// SearchLimit (RATE_LIMIT_SEARCH, default service.DefaultSearchLimit)
	// limits the searches of one client address (GET /api/stuff with a
	// query text, an order, a price range or a seller, or a plain page past
	// the newest ReadModelMax) while the limits are on
	// (Service.Limits.On); the zero Rule limits nothing.
	SearchLimit ratelimit.Rule
	// Now is the clock; nil means time.Now. Tests pin it.
	Now func() time.Time
}

// LoadConfig reads the configuration through getenv (os.Getenv in main): the
// shared variables for service "stuff" and the read model's bounds. It
// reports every missing or malformed variable at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.New(getenv)
	cfg := Config{
		Service:        service.LoadConfig(r, "stuff"),
		ReadModelMax:   r.Int("READ_MODEL_MAX", 10_000),
		ReconcileEvery: r.Duration("READ_MODEL_RECONCILE", time.Minute),
		CacheMax:       r.Int("STUFF_CACHE_MAX", 10_000),
		SearchLimit:    service.SearchRule(r),
	}
	problems := []error{r.Err()}
	if cfg.ReadModelMax < 1 {
		problems = append(problems, fmt.Errorf("READ_MODEL_MAX: must be at least 1"))
	}
	if cfg.CacheMax < 1 {
		problems = append(problems, fmt.Errorf("STUFF_CACHE_MAX: must be at least 1"))
	}
	if err := errors.Join(problems...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// App is the stuff service, built and ready to Start.
type App struct {
	svc *service.Service
}

// New builds the service: connects to MongoDB (lazily), declares its
// indexes (made once Start runs; /readyz waits for them), loads the catalog
// (tried for a few seconds; if the database is not there yet it is retried
// in the background after Start, and listings are read from the database
// meanwhile), registers the listeners and the routes. Call Start to connect
// to NATS and run the background work, and Close when done.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	svc, err := service.Open(ctx, cfg.Service, log)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	coll := svc.DB.Collection(store.Collection)
	st := store.New(svc.DB, svc.Writer, svc.Outbox(coll), log, now)
	cat := catalog.New(st, httpapi.Encode, log, catalog.Options{
		Max:            cfg.ReadModelMax,
		CacheMax:       cfg.CacheMax,
		ReconcileEvery: cfg.ReconcileEvery,
		Now:            now,
	})
	a := &App{svc: svc}

	svc.Indexes(store.Indexes()...)
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	svc.Go(cat.Run)
	if err := cat.Reconcile(ictx); err != nil {
		log.Warn("catalog not loaded yet; retrying in the background", "err", err)
	}

	listings := stuff.NewService(st, st, cat, now)
	for _, l := range listeners.Listeners(listings, cat, log) {
		svc.Bus.Listen(l)
	}
	// Broadcast subscriptions start at "now" on every (re)connection: what
	// other replicas published while this one was away is read back.
	svc.Bus.OnConnect(cat.Trigger)
	// The search limit runs on the service's clock, as the storefront's does.
	var searches *ratelimit.Limiter
	if cfg.Service.Limits.On {
		searches = ratelimit.New(cfg.SearchLimit, now)
	}
	httpapi.Routes(svc.Echo, httpapi.NewHandler(listings, cat, searches), svc.Idempotent())
	return a, nil
}

// Handler is the service's HTTP handler (the Echo instance).
func (a *App) Handler() http.Handler { return a.svc.Echo }

// Start connects to NATS and runs the outbox relay and the catalog's
// reconciliation in the background.
func (a *App) Start() { a.svc.Start() }

// Close stops the background work, the relay and the bus, and disconnects
// from MongoDB.
func (a *App) Close(ctx context.Context) error { return a.svc.Close(ctx) }

// Run builds the service and serves HTTP on cfg.Service.HTTPAddr until ctx
// ends, then shuts down gracefully: HTTP first, then events, then the
// database.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting stuff", "config", cfg.Service, "read_model_max", cfg.ReadModelMax,
		"reconcile_every", cfg.ReconcileEvery, "cache_max", cfg.CacheMax)
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.svc.Run(ctx)
}
