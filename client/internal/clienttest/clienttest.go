// Package clienttest starts a whole Stuffmart for the storefront's tests:
// the real auth, stuff, orders and payments services (each its app.New on
// the test kit's embedded FerretDB and NATS Streaming, behind an httptest
// server) and the storefront in front of them. Import it from _test.go
// files only.
package clienttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stuffmart/stuffmart/client/app"
	authapp "github.com/stuffmart/stuffmart/services/auth/app"
	ordersapp "github.com/stuffmart/stuffmart/services/orders/app"
	paymentsapp "github.com/stuffmart/stuffmart/services/payments/app"
	stuffapp "github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// Keys of the test stacks.
const (
	JWTKey     = "client-test-jwt-key-0123456789-abcdef"
	SessionKey = "client-test-session-key-0123456789-abcdef"
)

// Options configures a stack. The zero value is a stack with a 15-minute
// hold, a 1-second page cache, the real clock and no admins.
type Options struct {
	Admins    []string
	OrderHold time.Duration
	// CacheTTL of the storefront; NoCache turns it off.
	CacheTTL time.Duration
	NoCache  bool
	// Now is the storefront's clock.
	Now func() time.Time
}

// Stack is a running Stuffmart.
type Stack struct {
	// URL is the storefront's.
	URL string
	// AuthURL, StuffURL, OrdersURL and PaymentsURL are the services'.
	AuthURL, StuffURL, OrdersURL, PaymentsURL string
	// Sessions reads and forges session cookies (the stack's keys).
	Sessions *auth.Sessions
	// Config is the storefront's configuration.
	Config app.Config

	refreshes *atomic.Int64
}

// Refreshes is how many times the storefront has called auth's
// /api/users/refresh so far.
func (s *Stack) Refreshes() int64 { return s.refreshes.Load() }

// service is a started service app.
type service interface {
	Handler() http.Handler
	Start()
	Close(ctx context.Context) error
}

// Start runs the stack until the test ends.
func Start(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	if opts.OrderHold <= 0 {
		opts.OrderHold = 15 * time.Minute
	}
	nc := testkit.NATS(tb)
	log := testkit.Logger(tb)
	uri := testkit.MongoURI(tb)
	dbs := map[string]string{}
	for _, name := range []string{"auth", "stuff", "orders", "payments"} {
		dbs[name] = testkit.Mongo(tb).Name()
	}
	envFor := func(name string) func(string) string {
		env := map[string]string{
			"HTTP_ADDR":       "127.0.0.1:0",
			"MONGO_URI":       uri,
			"MONGO_DB":        dbs[name],
			"NATS_URL":        nc.URL,
			"NATS_CLUSTER_ID": nc.ClusterID,
			"JWT_KEY":         JWTKey,
			"SESSION_KEY":     SessionKey,
			"ORDER_HOLD":      opts.OrderHold.String(),
		}
		return func(k string) string { return env[k] }
	}
	natsFor := func(c events.Config, name string) events.Config {
		c.Prefix, c.AckWait, c.MaxDeliveries = nc.Prefix, nc.AckWait, nc.MaxDeliveries
		c.ClientName = "client-test-" + name
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	starters := map[string]func() (service, error){
		"auth": func() (service, error) {
			cfg, err := authapp.LoadConfig(envFor("auth"))
			if err != nil {
				return nil, err
			}
			cfg.Service.NATS = natsFor(cfg.Service.NATS, "auth")
			cfg.AdminEmails = opts.Admins
			cfg.PasswordCost = bcrypt.MinCost
			return authapp.New(ctx, cfg, log)
		},
		"stuff": func() (service, error) {
			cfg, err := stuffapp.LoadConfig(envFor("stuff"))
			if err != nil {
				return nil, err
			}
			cfg.Service.NATS = natsFor(cfg.Service.NATS, "stuff")
			return stuffapp.New(ctx, cfg, log)
		},
		"orders": func() (service, error) {
			cfg, err := ordersapp.LoadConfig(envFor("orders"))
			if err != nil {
				return nil, err
			}
			cfg.Service.NATS = natsFor(cfg.Service.NATS, "orders")
			return ordersapp.New(ctx, cfg, log)
		},
		"payments": func() (service, error) {
			cfg, err := paymentsapp.LoadConfig(envFor("payments"))
			if err != nil {
				return nil, err
			}
			cfg.Service.NATS = natsFor(cfg.Service.NATS, "payments")
			return paymentsapp.New(ctx, cfg, log)
		},
	}
	refreshes := new(atomic.Int64)
	var (
		mu   sync.Mutex
		urls = map[string]string{}
		errs []error
		wg   sync.WaitGroup
	)
	for name, start := range starters {
		wg.Go(func() {
			svc, err := start()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				return
			}
			svc.Start()
			h := svc.Handler()
			if name == "auth" {
				inner := h
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost && r.URL.Path == "/api/users/refresh" {
						refreshes.Add(1)
					}
					inner.ServeHTTP(w, r)
				})
			}
			srv := httptest.NewServer(h)
			tb.Cleanup(func() {
				srv.Close()
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer ccancel()
				if err := svc.Close(cctx); err != nil {
					tb.Errorf("close %s: %v", name, err)
				}
			})
			if err := waitReady(ctx, srv.URL+"/readyz"); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
			mu.Lock()
			urls[name] = srv.URL
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("start services: %v", err)
	}

	ttl := time.Second
	if opts.CacheTTL > 0 {
		ttl = opts.CacheTTL
	}
	if opts.NoCache {
		ttl = 0
	}
	cfg := app.Config{
		HTTPAddr:        "127.0.0.1:0",
		AuthURL:         urls["auth"],
		StuffURL:        urls["stuff"],
		OrdersURL:       urls["orders"],
		PaymentsURL:     urls["payments"],
		JWTKey:          JWTKey,
		SessionKey:      SessionKey,
		RefreshTTL:      7 * 24 * time.Hour,
		CacheTTL:        ttl,
		PaymentsOffline: true,
		ServiceTimeout:  10 * time.Second,
		PayTimeout:      30 * time.Second,
		BodyLimit:       "64K",
		OrderHold:       opts.OrderHold,
		Now:             opts.Now,
	}
	clientURL := startClient(tb, cfg)
	return &Stack{
		URL: clientURL, AuthURL: urls["auth"], StuffURL: urls["stuff"], OrdersURL: urls["orders"], PaymentsURL: urls["payments"],
		Sessions:  auth.NewSessions([]byte(SessionKey), auth.NewTokens([]byte(JWTKey), 15*time.Minute), 7*24*time.Hour),
		Config:    cfg,
		refreshes: refreshes,
	}
}

func startClient(tb testing.TB, cfg app.Config) string {
	tb.Helper()
	a, err := app.New(context.Background(), cfg, testkit.Logger(tb))
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	a.Start()
	srv := httptest.NewServer(a.Handler())
	tb.Cleanup(func() {
		srv.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := a.Close(cctx); err != nil {
			tb.Errorf("close client: %v", err)
		}
	})
	return srv.URL
}

// waitReady polls a probe until it answers 200 (/readyz: the service is
// connected to MongoDB and NATS, so its listeners are subscribed).
func waitReady(ctx context.Context, url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
