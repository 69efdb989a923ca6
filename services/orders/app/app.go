// Package app wires the orders service: configuration, the shared service
// kit, the store, the rules, the HTTP routes, the listeners and the
// background jobs (the sweep that cancels overdue orders and frees the
// open-order slots a dying process left, the pruning of outcome claims).
// main, the local stack (dev/) and the tests start the service the same
// way, through LoadConfig and New (or Run).
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	httpapi "github.com/stuffmart/stuffmart/services/orders/internal/http"
	"github.com/stuffmart/stuffmart/services/orders/internal/jobs"
	"github.com/stuffmart/stuffmart/services/orders/internal/listeners"
	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/services/orders/internal/store"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/service"
)

// Name is the service's name: its default database, NATS client name and
// queue group.
const Name = listeners.Group

// pruneEvery is how often the outcome claims of orders ended long ago are
// forgotten (orders.Service.PruneOutcomes).
const pruneEvery = time.Hour

// Config is the orders service's configuration.
type Config struct {
	Service service.Config
	// OrderHold is how long an order holds its stuff (ORDER_HOLD, default
	// 15m).
	OrderHold time.Duration
	// OrderSweep is how often the orders service looks for orders still
	// created past their deadline, and how long past it they must be, to
	// cancel them itself (ORDER_SWEEP, default 30s): the expiration
	// service, which cancels them at the deadline, may be down.
	OrderSweep time.Duration
	// MaxOpenOrders is how many orders waiting for payment (created) one
	// buyer may have at once (MAX_OPEN_ORDERS, default 3, at least 1); 0
	// means the default.
	MaxOpenOrders int
	// Now is the clock of the rules (time.Now when nil). It is not read
	// from the environment: benchmarks set it to make deadlines coincide.
	Now func() time.Time
}

// LoadConfig reads the shared service variables (see service.LoadConfig),
// ORDER_HOLD (how long an order holds its stuff, default 15m) and
// ORDER_SWEEP (how often, and how long past its deadline, an order still
// created is cancelled by the orders service itself, and how often the
// open-order slots of ended orders are freed, default 30s), both Go
// durations, and MAX_OPEN_ORDERS (how many orders waiting for payment one
// buyer may have at once, an integer of at least 1, default 3: a buyer at
// the cap who clicks BUY is answered 400), reporting every problem
// together.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.New(getenv)
	cfg := Config{
		Service:       service.LoadConfig(r, Name),
		OrderHold:     r.Duration("ORDER_HOLD", orders.DefaultHold),
		OrderSweep:    r.Duration("ORDER_SWEEP", orders.DefaultSweep),
		MaxOpenOrders: r.Int("MAX_OPEN_ORDERS", orders.DefaultMaxOpen),
	}
	if cfg.MaxOpenOrders < 1 {
		r.Fail(fmt.Errorf("MAX_OPEN_ORDERS: %d is not a number of orders of at least 1", cfg.MaxOpenOrders))
	}
	if err := r.Err(); err != nil {
		return Config{}, fmt.Errorf("orders configuration: %w", err)
	}
	return cfg, nil
}

// LogValue logs the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("service", c.Service),
		slog.Duration("order_hold", c.OrderHold),
		slog.Duration("order_sweep", c.OrderSweep),
		slog.Int("max_open_orders", c.MaxOpenOrders),
	)
}

// App is a wired orders service.
type App struct {
	svc *service.Service
}

// New wires the service. It does not wait for MongoDB or NATS: Start
// connects in the background and /readyz tells when both are there.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	svc, err := service.Open(ctx, cfg.Service, log)
	if err != nil {
		return nil, err
	}
	ordersColl := svc.DB.Collection(store.OrdersCollection)
	relay := svc.Outbox(ordersColl)
	st := store.New(svc.DB, svc.Writer, relay)
	sweep := cfg.OrderSweep
	if sweep <= 0 {
		sweep = orders.DefaultSweep
	}
	rules := orders.NewService(st, orders.Options{Hold: cfg.OrderHold, Sweep: sweep, MaxOpen: cfg.MaxOpenOrders,
		IDs: store.NewID, DerivedIDs: store.DerivedID, Now: cfg.Now, Metrics: newDomainMetrics(svc.Metrics)})
	httpapi.Routes(svc.Echo, httpapi.NewHandler(rules, rules), svc.Idempotent())
	for _, l := range listeners.Listeners(rules, rules, rules, log) {
		svc.Bus.Listen(l)
	}
	svc.Indexes(store.Indexes()...)
	svc.Go(func(ctx context.Context) {
		jobs.Run(ctx, log, jobs.Job{Name: "sweep: cancel overdue orders, free the slots of ended ones", Every: sweep, Do: rules.Sweep})
	})
	svc.Go(func(ctx context.Context) {
		jobs.Run(ctx, log, jobs.Job{Name: "prune outcome claims", Every: pruneEvery, Do: rules.PruneOutcomes})
	})
	return &App{svc: svc}, nil
}

// Handler is the service's HTTP handler (routes, probes, middleware).
func (a *App) Handler() http.Handler { return a.svc.Echo }

// Start connects to NATS, subscribes the listeners and runs the outbox
// relay, all in the background, and creates the indexes once MongoDB
// answers. Call Close to stop.
func (a *App) Start() { a.svc.Start() }

// Close stops the background work and disconnects. HTTP serving is the
// caller's (Run's) to stop first.
func (a *App) Close(ctx context.Context) error { return a.svc.Close(ctx) }

// Run starts the service, serves HTTP on cfg.Service.HTTPAddr until ctx
// ends, then shuts down in order: HTTP (in-flight requests finish), events,
// database.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("starting", "config", cfg)
	return a.svc.Run(ctx)
}
