// Package app wires the auth service: configuration, the shared service kit,
// the stores, the users service and the HTTP routes. main, the local stack
// (dev/) and the tests all start the service through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	httpapi "github.com/stuffmart/stuffmart/services/auth/internal/http"
	"github.com/stuffmart/stuffmart/services/auth/internal/store"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/service"
)

// Config is the auth service's configuration.
type Config struct {
	// Service is the part every service shares (see service.LoadConfig).
	Service service.Config
	// RefreshGrace (REFRESH_GRACE, default 10s, from 5s to a minute) is how
	// long a just-used refresh token still gives the answer of its first
	// use: a client that lost the answer, or two replicas of the storefront
	// refreshing one cookie, are not taken for a thief. 0 means the default.
	RefreshGrace time.Duration
	// Limits are auth's own rate limits (see Limits); they, and the
	// sign-in backoff, apply only when Service.Limits.On (RATE_LIMIT).
	Limits Limits
	// PruneEvery is how often records refresh rotation no longer needs are
	// deleted; 0 means hourly. Not read from the environment: tests set it
	// short.
	PruneEvery time.Duration
	// PasswordCost is the bcrypt cost; 0 means users.DefaultPasswordCost.
	// Not read from the environment: tests set bcrypt.MinCost to stay fast.
	PasswordCost int
	// Now is the clock for access and refresh tokens; nil means time.Now.
	// Tests pin it.
	Now func() time.Time
}

// Limits are the rate limits of the routes that cost auth the most: sign-in
// and sign-up run bcrypt (about 50 ms of a CPU each), refresh writes two
// documents. A zero Rule does not limit (tests set only the one they test).
type Limits struct {
	// SignIn limits sign-ins per client address (SIGNIN_LIMIT).
	SignIn ratelimit.Rule
	// SignInAccount limits sign-ins per account, by normalized email
	// (SIGNIN_ACCOUNT_LIMIT).
	SignInAccount ratelimit.Rule
	// SignUp limits sign-ups per client address (SIGNUP_LIMIT).
	SignUp ratelimit.Rule
	// Refresh limits refreshes per client address (REFRESH_LIMIT).
	Refresh ratelimit.Rule
	// RefreshAccount limits refreshes per user, whatever the device
	// (REFRESH_ACCOUNT_LIMIT).
	RefreshAccount ratelimit.Rule
}

// maxRefreshGrace bounds REFRESH_GRACE: within the grace a copy of a used
// token is as good as the token, so a long one would blunt reuse detection.
// minRefreshGrace is the storefront's memory of a refresh (5 s), which hands
// the rotated cookie on only while auth itself would.
const (
	maxRefreshGrace = time.Minute
	minRefreshGrace = 5 * time.Second
)

// Defaults of the limits (see Limits; the rules are written as
// ratelimit.ParseRule reads them). They let a busy campus behind one NAT
// address and `make dev` through while holding a script to a few percent of
// auth's one CPU: 20 sign-ins a second saturate it.
const (
	// A person signs in now and then: the refresh token lasts a week.
	defaultSignInLimit = "20/m burst 10"
	// Sixty an hour, ten at once, across every network: the most a guesser
	// with many networks gets (1,440 a day). One network is held apart to
	// twelve an hour by the backoff (users.Backoff), so holding the owner's
	// new sign-ins up takes five networks (5 × 12 = 60).
	defaultSignInAccountLimit = "60/h burst 10"
	// A class signing up together at the start of term.
	defaultSignUpLimit = "10/m burst 10"
	// A refresh costs no bcrypt, and every browser behind a NAT refreshes
	// once an access-token lifetime: above the shared limit of every unsafe
	// request (RATE_LIMIT_UNSAFE), which binds first unless it is raised.
	defaultRefreshLimit = "300/m burst 100"
	// A user's devices refresh once an access-token lifetime each; a
	// script refreshing in a loop writes two documents a time.
	defaultRefreshAccountLimit = "6/m burst 10"
)

// LoadConfig reads the configuration through getenv (os.Getenv in main): the
// shared variables for service "auth" (service.LoadConfig, RATE_LIMIT
// included), REFRESH_GRACE (a Go duration, default 10s, from 5s to 1m) and the
// limits (rules such as "10/m burst 5", see ratelimit.ParseRule):
// SIGNIN_LIMIT (per client address, default "20/m burst 10"),
// SIGNIN_ACCOUNT_LIMIT (per email, "60/h burst 10"), SIGNUP_LIMIT (per
// client address, "10/m burst 10"), REFRESH_LIMIT (per client address,
// "300/m burst 100") and REFRESH_ACCOUNT_LIMIT (per user, "6/m burst 10").
// RATE_LIMIT=off turns them and the sign-in backoff off. It reports every
// missing or malformed variable at once.
//
// ADMIN_EMAILS, which made admins of whoever signed up with a listed
// address, is refused when set: admins are granted with the operator's
// command (Admin) to accounts that exist. Refused rather than ignored, so
// that an operator who upgrades learns it when auth starts (the old
// replicas keep serving meanwhile) instead of believing that the list still
// names the admins, or that removing an address demotes anyone. The admins
// it had promoted stay admins: their role is stored.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.New(getenv)
	cfg := Config{
		Service:      service.LoadConfig(r, "auth"),
		RefreshGrace: r.Duration("REFRESH_GRACE", users.DefaultRefreshGrace),
		Limits: Limits{
			SignIn:         service.Rule(r, "SIGNIN_LIMIT", defaultSignInLimit),
			SignInAccount:  service.Rule(r, "SIGNIN_ACCOUNT_LIMIT", defaultSignInAccountLimit),
			SignUp:         service.Rule(r, "SIGNUP_LIMIT", defaultSignUpLimit),
			Refresh:        service.Rule(r, "REFRESH_LIMIT", defaultRefreshLimit),
			RefreshAccount: service.Rule(r, "REFRESH_ACCOUNT_LIMIT", defaultRefreshAccountLimit),
		},
	}
	problems := []error{r.Err()}
	if cfg.RefreshGrace > maxRefreshGrace {
		problems = append(problems, fmt.Errorf("REFRESH_GRACE: %s is longer than %s", cfg.RefreshGrace, maxRefreshGrace))
	}
	if cfg.RefreshGrace > 0 && cfg.RefreshGrace < minRefreshGrace {
		problems = append(problems, fmt.Errorf("REFRESH_GRACE: %s is shorter than %s, the storefront's memory of a refresh", cfg.RefreshGrace, minRefreshGrace))
	}
	if v := r.String("ADMIN_EMAILS", ""); v != "" {
		problems = append(problems, errors.New("ADMIN_EMAILS is no longer read: unset it, and grant the admin role to an account "+
			"that exists with `auth admin grant EMAIL` (`auth admin list` shows the admins); see the README, \"Admins and accounts\""))
	}
	if err := errors.Join(problems...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// App is the auth service, built and ready to Start.
type App struct {
	svc *service.Service
}

// New builds the service: connects to MongoDB (lazily), declares its
// indexes (made once Start runs; /readyz waits for them) and registers the
// routes. Call Start to connect to NATS and run the outbox relay and the
// pruner of refresh tokens (users.Pruner), and Close when done.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	svc, err := service.Open(ctx, cfg.Service, log)
	if err != nil {
		return nil, err
	}
	a := &App{svc: svc}
	if err := a.build(cfg); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return nil, errors.Join(err, svc.Close(cctx))
	}
	return a, nil
}

func (a *App) build(cfg Config) error {
	svc := a.svc
	if cfg.Now != nil {
		svc.Sessions.Tokens().Now = cfg.Now
	}
	svc.Indexes(store.Indexes()...)
	relay := svc.Outbox(svc.DB.Collection(store.UsersCollection))
	us := store.NewUsers(svc.DB, svc.Writer, relay)
	tokens := store.NewTokens(svc.DB, svc.Writer)
	limit := limiters(cfg)
	accounts, err := users.NewService(us, tokens, users.Options{
		RefreshTTL:   cfg.Service.RefreshTTL,
		RefreshGrace: cfg.RefreshGrace,
		Secret:       []byte(cfg.Service.SessionKey),
		PasswordCost: cfg.PasswordCost,
		SignInLimit:  limit(cfg.Limits.SignInAccount),
		RefreshLimit: limit(cfg.Limits.RefreshAccount),
		Backoff:      backoff(cfg),
		Metrics:      newDomainMetrics(svc.Metrics),
		Now:          cfg.Now,
	})
	if err != nil {
		return err
	}
	httpapi.Routes(svc.Echo, httpapi.NewHandler(accounts, accounts, accounts, accounts, svc.Sessions), httpapi.Limits{
		SignIn:  limit(cfg.Limits.SignIn),
		SignUp:  limit(cfg.Limits.SignUp),
		Refresh: limit(cfg.Limits.Refresh),
	})
	pruner := users.NewPruner(tokens, cfg.Service.RefreshTTL, cfg.Now)
	every := cfg.PruneEvery
	if every <= 0 {
		every = time.Hour
	}
	svc.Go(func(ctx context.Context) { prune(ctx, pruner, every, svc.Log) })
	return nil
}

// limiters returns the constructor of cfg's limiters: nil ones (no limit)
// when RATE_LIMIT is off, otherwise on cfg.Now, the clock tests pin.
// (Service.Limits.Limiter does the same on the wall clock.)
func limiters(cfg Config) func(ratelimit.Rule) *ratelimit.Limiter {
	return func(rule ratelimit.Rule) *ratelimit.Limiter {
		if !cfg.Service.Limits.On {
			return nil
		}
		return ratelimit.New(rule, cfg.Now)
	}
}

// backoff returns the sign-in backoff, nil (none) when RATE_LIMIT is off.
func backoff(cfg Config) *users.Backoff {
	if !cfg.Service.Limits.On {
		return nil
	}
	return users.NewBackoff(cfg.Now)
}

// prune runs p every interval until ctx ends. A failed run (the database
// away) is logged and the next one tries again.
func prune(ctx context.Context, p *users.Pruner, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := p.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("prune refresh tokens", "err", err)
		case n != users.Pruned{}:
			log.Info("pruned refresh tokens", "tokens", n.Tokens, "uses", n.Uses, "revoked_families", n.Revocations)
		}
	}
}

// Handler is the service's HTTP handler (the Echo instance).
func (a *App) Handler() http.Handler { return a.svc.Echo }

// Start connects to NATS and runs the outbox relay and the pruner in the
// background.
func (a *App) Start() { a.svc.Start() }

// Close stops the relay, the pruner and the bus and disconnects from
// MongoDB.
func (a *App) Close(ctx context.Context) error { return a.svc.Close(ctx) }

// Run builds the service and serves HTTP on cfg.Service.HTTPAddr until ctx
// ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting auth", "config", cfg.Service, "refresh_grace", cfg.RefreshGrace,
		"limits_on", cfg.Service.Limits.On, "limits", cfg.Limits)
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.svc.Run(ctx)
}
