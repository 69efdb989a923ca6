// Package app wires the expiration service: configuration, the durable
// deadline scheduler, its listeners and the outbox relay that publishes
// expiration:complete. main, the local stack and tests start the service
// through it the same way. The service has no API: its HTTP server answers
// only the probes.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/stuffmart/stuffmart/services/expiration/internal/listeners"
	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/services/expiration/internal/store"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/service"
)

// Name is the service's name: client name, default database and queue group.
const Name = "expiration"

// Config is the expiration service's configuration.
type Config struct {
	Service service.Config
}

// LoadConfig reads the configuration through getenv (os.Getenv in main) and
// reports every missing or malformed variable at once. The variables are the
// common ones of service.LoadConfig.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.New(getenv)
	cfg := Config{Service: service.LoadConfig(r, Name)}
	if err := r.Err(); err != nil {
		return Config{}, fmt.Errorf("expiration config: %w", err)
	}
	return cfg, nil
}

// App is a wired expiration service.
type App struct {
	svc *service.Service
}

// New wires the service without starting it. It does not wait for MongoDB
// or NATS: Start runs everything in the background and /readyz tells.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	svc, err := service.Open(ctx, cfg.Service, log)
	if err != nil {
		return nil, err
	}
	relay := svc.Outbox(store.SettledCollections(svc.DB)...)
	st := store.New(svc.DB, svc.Writer, relay)
	followUp := func(orderID string) { relay.Notify(st.SettledFor(orderID), orderID) }
	// svc.Log: the lines logged with a firing's context carry the
	// purchase's correlation id.
	sched := scheduler.New(st, followUp, svc.Log, scheduler.Options{Metrics: newDomainMetrics(svc.Metrics)})
	for _, l := range listeners.Listeners(sched) {
		svc.Bus.Listen(l)
	}
	svc.Go(func(ctx context.Context) {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := st.Ensure(ectx); err != nil && ctx.Err() == nil {
			log.Warn("create collections; they will be created on first use", "err", err)
		}
	})
	svc.Go(sched.Run)
	return &App{svc: svc}, nil
}

// Handler serves /healthz and /readyz.
func (a *App) Handler() http.Handler { return a.svc.Echo }

// Start connects to NATS, creates the store's collections, starts the
// outbox relay and the scheduler (which loads the pending deadlines and
// fires overdue ones at once), all in the background until Close.
func (a *App) Start() { a.svc.Start() }

// Close stops the scheduler (firings in progress finish), then the relay,
// the listeners and the database connection. Pending deadlines stay in the
// database for the next start.
func (a *App) Close(ctx context.Context) error { return a.svc.Close(ctx) }

// Run starts the service, serves the probes on the configured address until
// ctx ends, then shuts down.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting", "config", cfg.Service)
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.svc.Run(ctx)
}
