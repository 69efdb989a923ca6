// Package stack runs the local Stuffmart stack in one process: embedded
// FerretDB and nats-streaming-server, every service's app.Run, and an
// ingress-like gateway in front of them. The dev command and the tests start
// it the same way, through LoadConfig and Run.
package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/service"
)

// minSecretLen is what every service's LoadConfig demands of JWT_KEY and
// SESSION_KEY; checking it here fails before anything starts.
const minSecretLen = 32

// Config is the local stack's settings, read once from the environment.
type Config struct {
	// Port is the gateway's TCP port; 0 picks a free one (tests).
	Port int
	// DataDir is the absolute folder holding secrets.json, ferretdb/ and nats/.
	DataDir string
	// Secrets holds JWT_KEY, SESSION_KEY and STRIPE_WEBHOOK_SECRET when the
	// environment sets them; Run fills the missing ones from
	// DataDir/secrets.json.
	Secrets Secrets
	// AccessTokenTTL is how long an access token is valid (ACCESS_TOKEN_TTL).
	AccessTokenTTL time.Duration
	// OrderHold is how long an order holds its stuff (ORDER_HOLD).
	OrderHold time.Duration
	// StripeSecretKey switches payments from offline test mode to Stripe.
	StripeSecretKey string
	// StripeAPIURL points payments' Stripe client at another API than
	// Stripe's (STRIPE_API_URL): stripe-mock, or a test's fake Stripe.
	StripeAPIURL string
	// RateLimit is false when RATE_LIMIT=off (benchmarks, load tests).
	RateLimit bool
	// MaxOpenOrders is how many orders waiting for payment one buyer may
	// have at once (MAX_OPEN_ORDERS, default 3); benchmarks raise it.
	MaxOpenOrders int
	// DebugAddr, when set (DEBUG_ADDR, a loopback host:port), serves the
	// whole process's profiles (net/http/pprof): every service runs in it.
	DebugAddr string
	// LogLevel is the minimum level logged (LOG_LEVEL).
	LogLevel slog.Level
	// ReadyTimeout bounds how long Run waits for every service's /readyz
	// (60s when zero).
	ReadyTimeout time.Duration
	// StopTimeout bounds each step of the shutdown (10s when zero).
	StopTimeout time.Duration
	// Services are the apps to run: Registry() unless a test says otherwise.
	Services []Service
}

// LoadConfig reads PORT (8080), DATA_DIR (".data", made absolute against the
// current directory), JWT_KEY and SESSION_KEY (optional, 32+ characters when
// set), ACCESS_TOKEN_TTL (15m), ORDER_HOLD (15m), STRIPE_SECRET_KEY,
// STRIPE_WEBHOOK_SECRET (generated unless set; required with
// STRIPE_SECRET_KEY: the Stripe CLI's or the endpoint's, or no webhook
// verifies), STRIPE_API_URL (Stripe's own unless set), RATE_LIMIT (on), MAX_OPEN_ORDERS (3), DEBUG_ADDR (none) and
// LOG_LEVEL (info). It reports every bad variable together. ADMIN_EMAILS is refused, as auth refuses it: admins are granted
// with `go run ./dev admin grant EMAIL` (Admin).
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.New(getenv)
	var problems []error

	port := r.Int("PORT", 8080)
	if port < 0 || port > 65535 {
		problems = append(problems, fmt.Errorf("PORT: %d is not a TCP port", port))
	}
	dataDir, err := filepath.Abs(r.String("DATA_DIR", ".data"))
	if err != nil {
		problems = append(problems, fmt.Errorf("DATA_DIR: %w", err))
	}
	secrets := Secrets{JWTKey: r.String("JWT_KEY", ""), SessionKey: r.String("SESSION_KEY", ""),
		StripeWebhookSecret: r.String("STRIPE_WEBHOOK_SECRET", "")}
	stripeKey := r.String("STRIPE_SECRET_KEY", "")
	if stripeKey != "" && secrets.StripeWebhookSecret == "" {
		problems = append(problems, errors.New("STRIPE_WEBHOOK_SECRET: required with STRIPE_SECRET_KEY: run "+
			"`stripe listen --forward-to localhost:8080/api/payments/webhook` and set it to the whsec_... it prints (README, \"Paying by card\")"))
	}
	for _, s := range []struct{ name, value string }{{"JWT_KEY", secrets.JWTKey}, {"SESSION_KEY", secrets.SessionKey}} {
		if s.value != "" && len(s.value) < minSecretLen {
			problems = append(problems, fmt.Errorf("%s must be at least %d characters (or unset, to use a generated one)", s.name, minSecretLen))
		}
	}
	if r.String("ADMIN_EMAILS", "") != "" {
		problems = append(problems, errors.New("ADMIN_EMAILS is no longer read: unset it, sign up, then run `go run ./dev admin grant EMAIL`"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(r.String("LOG_LEVEL", "info"))); err != nil {
		problems = append(problems, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	cfg := Config{
		Port:            port,
		DataDir:         dataDir,
		Secrets:         secrets,
		AccessTokenTTL:  r.Duration("ACCESS_TOKEN_TTL", 15*time.Minute),
		OrderHold:       r.Duration("ORDER_HOLD", 15*time.Minute),
		StripeSecretKey: stripeKey,
		StripeAPIURL:    r.String("STRIPE_API_URL", ""),
		RateLimit:       rateLimit(r, &problems),
		MaxOpenOrders:   r.Int("MAX_OPEN_ORDERS", 3),
		DebugAddr:       service.DebugAddr(r),
		LogLevel:        level,
		ReadyTimeout:    defaultReadyTimeout,
		StopTimeout:     defaultStopTimeout,
		Services:        Registry(),
	}
	if err := errors.Join(append([]error{r.Err()}, problems...)...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func rateLimit(r *config.Reader, problems *[]error) bool {
	switch v := r.String("RATE_LIMIT", "on"); v {
	case "on":
		return true
	case "off":
		return false
	default:
		*problems = append(*problems, fmt.Errorf("RATE_LIMIT: %q is neither on nor off", v))
		return true
	}
}

// LogValue logs the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	names := make([]string, len(c.Services))
	for i, s := range c.Services {
		names[i] = s.Name
	}
	return slog.GroupValue(
		slog.Int("port", c.Port),
		slog.String("data_dir", c.DataDir),
		slog.String("jwt_key", config.Mask(c.Secrets.JWTKey)),
		slog.String("session_key", config.Mask(c.Secrets.SessionKey)),
		slog.String("stripe_webhook_secret", config.Mask(c.Secrets.StripeWebhookSecret)),
		slog.Duration("access_token_ttl", c.AccessTokenTTL),
		slog.Duration("order_hold", c.OrderHold),
		slog.Bool("stripe", c.StripeSecretKey != ""),
		slog.String("stripe_api_url", c.StripeAPIURL),
		slog.Bool("rate_limit", c.RateLimit),
		slog.Int("max_open_orders", c.MaxOpenOrders),
		slog.String("debug_addr", c.DebugAddr),
		slog.String("log_level", c.LogLevel.String()),
		slog.Any("services", names),
	)
}
