// Package app wires the payments service: configuration, the shared service
// kit, the store, the charger (Stripe, or the offline test mode without a
// key), the payments domain, the HTTP routes and the event listeners. main,
// the local stack (dev/) and the tests all start the service through it.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	httpapi "github.com/stuffmart/stuffmart/services/payments/internal/http"
	"github.com/stuffmart/stuffmart/services/payments/internal/listeners"
	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/services/payments/internal/store"
	"github.com/stuffmart/stuffmart/services/payments/internal/stripe"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/service"
)

// Config is the payments service's configuration.
type Config struct {
	// Service is the part every service shares (see service.LoadConfig).
	Service service.Config
	// StripeSecretKey (STRIPE_SECRET_KEY) charges through Stripe; empty runs
	// the offline test mode.
	StripeSecretKey string
	// StripeWebhookSecret (STRIPE_WEBHOOK_SECRET) verifies the events
	// Stripe posts to POST /api/payments/webhook: the signing secret of the
	// webhook endpoint (whsec_...; `stripe listen` prints one). Required
	// with StripeSecretKey. In offline test mode the stand-in for the
	// Checkout page signs its events with it; empty there, the process
	// makes one of its own at start.
	StripeWebhookSecret string
	// StripeAPIURL (STRIPE_API_URL) overrides Stripe's API base URL: tests
	// and stripe-mock. Empty is https://api.stripe.com.
	StripeAPIURL string
	// PublicURL (PUBLIC_URL; none by default) is the storefront's public
	// base URL: a checkout's return URLs must lead back to it. Empty (make
	// dev) accepts any origin; they must always lead to the order's page.
	PublicURL string
	// Currency (CURRENCY) of every charge, ISO 4217 lower case; "usd".
	Currency string
	// ChargeTimeout (CHARGE_TIMEOUT) bounds the provider calls of one
	// charge; a charge still unanswered then is looked up instead. Zero is
	// payments.DefaultChargeTimeout (90s).
	ChargeTimeout time.Duration
	// SweepEvery (PAYMENT_SWEEP) is how often unfinished payments (a charge
	// whose outcome is unknown, a process that died mid-payment) and refunds
	// owed are looked at again, and checkout sessions still open in the last
	// two minutes before their order's deadline looked up. Zero is
	// payments.DefaultSweepEvery (30s).
	SweepEvery time.Duration
	// Now is the clock; nil means time.Now. Tests pin it.
	Now func() time.Time
}

// LogValue logs the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("service", c.Service),
		slog.String("stripe_secret_key", config.Mask(c.StripeSecretKey)),
		slog.String("stripe_webhook_secret", config.Mask(c.StripeWebhookSecret)),
		slog.String("stripe_api_url", c.StripeAPIURL),
		slog.String("currency", c.Currency),
		slog.Duration("charge_timeout", c.ChargeTimeout),
		slog.Duration("payment_sweep", c.SweepEvery),
	)
}

// LoadConfig reads the configuration through getenv (os.Getenv in main): the
// shared variables for service "payments", STRIPE_SECRET_KEY (optional),
// STRIPE_WEBHOOK_SECRET (required with STRIPE_SECRET_KEY), STRIPE_API_URL
// (optional), CURRENCY ("usd"), CHARGE_TIMEOUT ("90s": how
// long the provider gets to answer a charge before it is looked up instead)
// and PAYMENT_SWEEP ("30s", at most payments.MaxSweepEvery: how often
// unfinished payments, refunds owed and checkout sessions near their order's
// deadline are taken up again). It reports every missing or malformed
// variable at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.New(getenv)
	cfg := Config{
		Service:             service.LoadConfig(r, "payments"),
		StripeSecretKey:     r.String("STRIPE_SECRET_KEY", ""),
		StripeWebhookSecret: r.String("STRIPE_WEBHOOK_SECRET", ""),
		StripeAPIURL:        r.String("STRIPE_API_URL", ""),
		PublicURL:           r.String("PUBLIC_URL", ""),
		Currency:            r.String("CURRENCY", "usd"),
		ChargeTimeout:       r.Duration("CHARGE_TIMEOUT", payments.DefaultChargeTimeout),
		SweepEvery:          r.Duration("PAYMENT_SWEEP", payments.DefaultSweepEvery),
	}
	problems := []error{r.Err()}
	if cfg.StripeSecretKey != "" && cfg.StripeWebhookSecret == "" {
		problems = append(problems, errors.New("STRIPE_WEBHOOK_SECRET: required with STRIPE_SECRET_KEY, or no card payment's webhook can be verified "+
			"(the endpoint's signing secret, whsec_...; `stripe listen` prints one)"))
	}
	if u, err := url.Parse(cfg.PublicURL); cfg.PublicURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		problems = append(problems, fmt.Errorf("PUBLIC_URL: %q is not an absolute http or https URL such as https://stuffmart.dev", cfg.PublicURL))
	}
	if cfg.SweepEvery <= 0 || cfg.SweepEvery > payments.MaxSweepEvery {
		problems = append(problems, fmt.Errorf("PAYMENT_SWEEP: %s is not a duration from 1ms to %s (open checkout sessions are looked up in the last two minutes before their order's deadline)",
			cfg.SweepEvery, payments.MaxSweepEvery))
	}
	if !validCurrency(cfg.Currency) {
		problems = append(problems, fmt.Errorf("CURRENCY: %q is not a lower-case ISO 4217 code such as usd", cfg.Currency))
	}

	if err := errors.Join(problems...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// App is the payments service, built and ready to Start.
type App struct {
	svc *service.Service
}

// New builds the service: connects to MongoDB (lazily), declares its
// indexes (made once Start runs; /readyz waits for them), picks the charger
// and registers the routes, the listeners and the sweeper. Call Start to
// connect to NATS and run the outbox relay and the sweeper, and Close when
// done.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	svc, err := service.Open(ctx, cfg.Service, log)
	if err != nil {
		return nil, err
	}
	a := &App{svc: svc}
	if err := a.build(ctx, cfg, log); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return nil, errors.Join(err, svc.Close(cctx))
	}
	return a, nil
}

func (a *App) build(ctx context.Context, cfg Config, log *slog.Logger) error {
	svc := a.svc
	if cfg.Currency == "" {
		cfg.Currency = "usd"
	}
	svc.Indexes(store.Indexes()...)
	relay := svc.Outbox(svc.DB.Collection(store.PaymentsCollection))
	st := store.New(svc.DB, svc.Writer, relay)

	var (
		charger  payments.Charger
		checkout payments.Checkout
		offline  *stripe.Offline
		provider = "stripe"
		secret   = cfg.StripeWebhookSecret
	)
	if cfg.StripeSecretKey != "" {
		c := stripe.New(cfg.StripeSecretKey, stripe.Options{URL: cfg.StripeAPIURL, Log: log})
		charger, checkout = c, c
		log.Info("payments: charging through Stripe", "api_url", cfg.StripeAPIURL, "currency", cfg.Currency)
	} else {
		offline = stripe.NewOffline()
		charger, checkout, provider = offline, offline, "offline"
		log.Warn("payments: STRIPE_SECRET_KEY is not set: OFFLINE TEST MODE, no card is really charged and nothing leaves this process; " +
			"pm_card_visa (and Stripe's other success test methods) succeed, pm_card_chargeDeclined and pm_card_insufficientFunds are declined; " +
			"card payments go through a stand-in for Stripe Checkout's page")
		if secret == "" {
			// The stand-in delivers to its own process: a key of its own
			// signs and verifies the same.
			secret = rand.Text()
			log.Warn("payments: STRIPE_WEBHOOK_SECRET is not set: the offline stand-in signs its events with a key made for this process")
		}
	}

	p := payments.NewService(st, charger, checkout, payments.Options{
		Currency: cfg.Currency, ChargeTimeout: cfg.ChargeTimeout, Now: cfg.Now, Log: log, Metrics: newMetrics(svc.Metrics),
	})
	hooks := stripe.NewWebhooks(secret, provider)
	h := httpapi.NewHandler(p, p, p, hooks, log).WithPublicURL(cfg.PublicURL)
	if offline != nil {
		h.WithStandIn(stripe.NewStandIn(offline, hooks, cfg.Now))
	}
	httpapi.Routes(svc.Echo, h, svc.Idempotent())
	for _, l := range listeners.Listeners(p) {
		svc.Bus.Listen(l)
	}
	svc.Go(p.Sweeper(cfg.SweepEvery))
	return nil
}

// Handler is the service's HTTP handler (the Echo instance).
func (a *App) Handler() http.Handler { return a.svc.Echo }

// Start connects to NATS (listeners subscribe) and runs the outbox relay and
// the sweeper in the background.
func (a *App) Start() { a.svc.Start() }

// Close stops the sweeper, the relay and the bus and disconnects from
// MongoDB.
func (a *App) Close(ctx context.Context) error { return a.svc.Close(ctx) }

// Run builds the service and serves HTTP on cfg.Service.HTTPAddr until ctx
// ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting payments", "config", cfg)
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.svc.Run(ctx)
}
