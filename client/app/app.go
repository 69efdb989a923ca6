// Package app wires the storefront: configuration, the service clients, the
// session and CSRF middleware, the page cache, the static assets and the
// handlers on an Echo server with the shared probes. main, the local stack
// (dev/) and the tests all start it the same way, as a service.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/gommon/bytes"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/assets"
	"github.com/stuffmart/stuffmart/client/internal/csrf"
	"github.com/stuffmart/stuffmart/client/internal/handlers"
	"github.com/stuffmart/stuffmart/client/internal/pagecache"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/web"
)

// requiredAssets must be in the assets folder.
var requiredAssets = []string{"app.css", "countdown.js", "favicon.svg"}

// Config is the storefront's configuration.
type Config struct {
	// HTTPAddr (HTTP_ADDR, ":3000") is where it listens.
	HTTPAddr string
	// AuthURL, StuffURL, OrdersURL, PaymentsURL (AUTH_URL, STUFF_URL,
	// ORDERS_URL, PAYMENTS_URL) are the services' base URLs; each defaults
	// to API_URL (the ingress, or the local gateway), and is required when
	// API_URL is unset.
	AuthURL, StuffURL, OrdersURL, PaymentsURL string
	// JWTKey and SessionKey (JWT_KEY, SESSION_KEY: required, 32+
	// characters, the services' own) let the storefront read the session
	// cookie and verify the access token locally.
	JWTKey, SessionKey string
	// RefreshTTL (REFRESH_TOKEN_TTL, "168h") is the cookie lifetime the
	// storefront uses when it clears the cookie (as auth does).
	RefreshTTL time.Duration
	// PublicURL (PUBLIC_URL, optional) is the public base URL for canonical
	// links, Open Graph and the sitemap; empty: each request's own host.
	PublicURL string
	// AssetsDir (ASSETS_DIR) holds app.css, countdown.js and favicon.svg;
	// default: the first "assets" folder found from the working directory
	// up (the repository's assets/).
	AssetsDir string
	// CacheTTL (CACHE_TTL, "1s", at most 1s, "0" turns it off) is how long
	// anonymous renders of the home and stuff pages are kept.
	CacheTTL time.Duration
	// PaymentsOffline (PAYMENTS_OFFLINE, true) offers Stripe's test cards
	// on the payment form; false asks for a payment method id.
	PaymentsOffline bool
	// ServiceTimeout (SERVICE_TIMEOUT, "5s") bounds one call to a service;
	// PayTimeout (PAY_TIMEOUT, "30s") bounds a payment.
	ServiceTimeout, PayTimeout time.Duration
	// BodyLimit (BODY_LIMIT, "256K") caps form bodies: a listing of 5,000
	// characters of any script, URL-encoded, fits.
	BodyLimit string
	// OrderHold (ORDER_HOLD, "15m") is how long an order holds its stuff:
	// the orders service's own ORDER_HOLD, which the stuff page tells a
	// buyer next to BUY. 0 means 15 minutes.
	OrderHold time.Duration
	// TrustedProxies (TRUSTED_PROXIES, none by default) may tell the
	// browser's address and scheme in forwarded headers: the ingress (in
	// Kubernetes the private ranges, in make dev loopback). Everyone else's
	// forwarded headers are dropped. The browser's address is passed on to
	// the services (X-Forwarded-For) for their per-client limits, and a
	// request that came through one of them is refused /metrics.
	TrustedProxies []netip.Prefix
	// Limits (RATE_LIMIT "on" or "off", RATE_LIMIT_UNSAFE "600/m burst
	// 100") limit every form POST per browser address, as the services
	// limit their unsafe requests.
	Limits service.Limits
	// SearchLimit (RATE_LIMIT_SEARCH, service.DefaultSearchLimit) limits
	// per browser address, while Limits are on, the pages whose listing is
	// computed for the request (search, seller, sorted or ranged home), as
	// stuff limits those listings; the zero Rule limits nothing.
	SearchLimit ratelimit.Rule
	// DebugAddr (DEBUG_ADDR, none by default; a loopback host:port) serves
	// net/http/pprof on a listener of its own.
	DebugAddr string
	// Now is the clock (countdowns, expiry, the rate limit); nil means
	// time.Now. Tests pin it; not read from the environment.
	Now func() time.Time
	// NoMetrics leaves the metrics out (no /metrics, nothing counted). Not
	// read from the environment: the benchmarks set it to measure what the
	// metrics cost.
	NoMetrics bool
}

// LoadConfig reads the configuration through getenv (os.Getenv in main),
// reporting every missing or malformed variable at once: HTTP_ADDR, API_URL
// or AUTH_URL, STUFF_URL, ORDERS_URL and PAYMENTS_URL, JWT_KEY and
// SESSION_KEY (required), REFRESH_TOKEN_TTL, PUBLIC_URL, ASSETS_DIR,
// CACHE_TTL, PAYMENTS_OFFLINE, SERVICE_TIMEOUT, PAY_TIMEOUT, BODY_LIMIT,
// ORDER_HOLD (a positive Go duration, default 15m: set it to the orders
// service's value, so that the hold the stuff page promises is the one
// orders applies), TRUSTED_PROXIES, RATE_LIMIT, RATE_LIMIT_UNSAFE,
// RATE_LIMIT_SEARCH and DEBUG_ADDR (read as every service reads them). Each field of Config
// gives its variable's meaning and default.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.New(getenv)
	proxies, err := web.ParsePrefixes(r.List("TRUSTED_PROXIES"))
	if err != nil {
		r.Fail(fmt.Errorf("TRUSTED_PROXIES: %w", err))
	}
	apiURL := r.String("API_URL", "")
	svc := func(name string) string {
		if apiURL != "" {
			return r.String(name, apiURL)
		}
		return r.Required(name)
	}
	cfg := Config{
		HTTPAddr:       r.String("HTTP_ADDR", ":3000"),
		AuthURL:        svc("AUTH_URL"),
		StuffURL:       svc("STUFF_URL"),
		OrdersURL:      svc("ORDERS_URL"),
		PaymentsURL:    svc("PAYMENTS_URL"),
		JWTKey:         r.Secret("JWT_KEY", 32),
		SessionKey:     r.Secret("SESSION_KEY", 32),
		RefreshTTL:     r.Duration("REFRESH_TOKEN_TTL", 7*24*time.Hour),
		PublicURL:      strings.TrimRight(r.String("PUBLIC_URL", ""), "/"),
		AssetsDir:      r.String("ASSETS_DIR", ""),
		ServiceTimeout: r.Duration("SERVICE_TIMEOUT", 5*time.Second),
		PayTimeout:     r.Duration("PAY_TIMEOUT", 30*time.Second),
		BodyLimit:      r.String("BODY_LIMIT", "256K"),
		OrderHold:      r.Duration("ORDER_HOLD", handlers.DefaultOrderHold),
		TrustedProxies: proxies,
		Limits:         service.LoadLimits(r),
		SearchLimit:    service.SearchRule(r),
		DebugAddr:      service.DebugAddr(r),
	}
	problems := []error{r.Err()}
	ttl := strings.TrimSpace(getenv("CACHE_TTL"))
	switch ttl {
	case "":
		cfg.CacheTTL = time.Second
	case "0":
		cfg.CacheTTL = 0
	default:
		d, err := time.ParseDuration(ttl)
		if err != nil || d < 0 || d > pagecache.MaxTTL {
			problems = append(problems, fmt.Errorf("CACHE_TTL: %q must be a Go duration from 0 to 1s", ttl))
		}
		cfg.CacheTTL = d
	}
	cfg.PaymentsOffline = true
	if v := strings.TrimSpace(getenv("PAYMENTS_OFFLINE")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("PAYMENTS_OFFLINE: %q is not true or false", v))
		}
		cfg.PaymentsOffline = b
	}
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			problems = append(problems, fmt.Errorf("PUBLIC_URL: %q must be a base URL such as https://shop.example", cfg.PublicURL))
		}
	}
	if _, err := bytes.Parse(cfg.BodyLimit); err != nil {
		problems = append(problems, fmt.Errorf("BODY_LIMIT: %q is not a size such as 64K", cfg.BodyLimit))
	}
	if err := errors.Join(problems...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LogValue logs the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("auth_url", c.AuthURL),
		slog.String("stuff_url", c.StuffURL),
		slog.String("orders_url", c.OrdersURL),
		slog.String("payments_url", c.PaymentsURL),
		slog.String("jwt_key", config.Mask(c.JWTKey)),
		slog.String("session_key", config.Mask(c.SessionKey)),
		slog.String("public_url", c.PublicURL),
		slog.String("assets_dir", c.AssetsDir),
		slog.Duration("cache_ttl", c.CacheTTL),
		slog.Bool("payments_offline", c.PaymentsOffline),
		slog.Duration("service_timeout", c.ServiceTimeout),
		slog.Duration("order_hold", c.OrderHold),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.Bool("rate_limit", c.Limits.On),
		slog.String("rate_limit_unsafe", c.Limits.Unsafe.String()),
		slog.String("rate_limit_search", c.SearchLimit.String()),
		slog.String("debug_addr", c.DebugAddr),
	)
}

// App is the storefront, built and ready to serve.
type App struct {
	echo    *echo.Echo
	clients *api.Clients
	cache   *pagecache.Cache
}

// New builds the storefront. It fails on a bad service URL, a cache TTL
// over a second, or missing assets; it does not wait for the services,
// which may start later.
func New(_ context.Context, cfg Config, log *slog.Logger) (*App, error) {
	// Lines logged with a request's context carry its correlation id, which
	// every call to a service passes on.
	log = slog.New(correlation.LogHandler(log.Handler()))
	reg := metrics.New()
	if cfg.NoMetrics {
		reg = nil // every use of a Set is nil-safe
	}
	dir := cfg.AssetsDir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("assets: %w", err)
		}
		if dir, err = assets.Find(wd, requiredAssets[0]); err != nil {
			return nil, err
		}
	}
	set, err := assets.Load(dir, requiredAssets...)
	if err != nil {
		return nil, err
	}
	clients, err := api.New(cfg.AuthURL, cfg.StuffURL, cfg.OrdersURL, cfg.PaymentsURL,
		api.Options{Timeout: cfg.ServiceTimeout, PayTimeout: cfg.PayTimeout, Metrics: reg})
	if err != nil {
		return nil, err
	}
	cache, err := pagecache.New(cfg.CacheTTL, 2_000, nil)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		cache.Instrument(reg)
	}
	refreshTTL := cfg.RefreshTTL
	if refreshTTL <= 0 {
		refreshTTL = 7 * 24 * time.Hour
	}
	// Access tokens are checked on the real clock, as every service does.
	tokens := auth.NewTokens([]byte(cfg.JWTKey), 15*time.Minute)
	sessions := session.New(auth.NewSessions([]byte(cfg.SessionKey), tokens, refreshTTL), clients.Auth, log, nil)
	guard := csrf.New([]byte(cfg.SessionKey), func(c echo.Context) string { return session.From(c).UserID() }, refreshTTL)
	svc := handlers.Services{
		Listings: clients.Stuff, Selling: clients.Stuff,
		Buying: clients.Orders, Orders: clients.Orders,
		Paying: clients.Payments, Coupons: clients.Payments,
		Accounts: clients.Auth, Account: clients.Auth, Users: clients.Auth, Profiles: clients.Auth,
	}
	var unsafeLimit, searchLimit *ratelimit.Limiter
	if cfg.Limits.On {
		unsafeLimit = ratelimit.New(cfg.Limits.Unsafe, cfg.Now)
		searchLimit = ratelimit.New(cfg.SearchLimit, cfg.Now)
	}
	h := handlers.New(svc, sessions, guard, cache, set, log, handlers.Options{
		PublicURL:       cfg.PublicURL,
		PaymentsOffline: cfg.PaymentsOffline,
		OrderHold:       cfg.OrderHold,
		Now:             cfg.Now,
		Metrics:         reg,
		SearchLimit:     searchLimit,
	})
	// /readyz checks nothing beyond the process: a storefront that is up
	// serves its error pages while a service is down, and readiness that
	// followed the services would take every replica out at once. The
	// shared middleware refuses another site's form posts (403) and a
	// browser over RATE_LIMIT_UNSAFE (429) before any page code runs, and
	// serves /metrics to direct callers only (web.Internal).
	e := web.New(log, web.Options{
		BodyLimit:      cfg.BodyLimit,
		TrustedProxies: cfg.TrustedProxies,
		UnsafeLimit:    unsafeLimit,
		Metrics:        reg,
	})
	// The storefront begins the story of a request: its correlation id is
	// its own request id, never one a browser sent (web.Correlate would
	// take a caller's, as the services take the storefront's).
	e.Pre(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Request().Header.Del(correlation.Header)
			c.Request().Header.Del(echo.HeaderXRequestID) // Correlate's fallback
			return next(c)
		}
	})
	h.Routes(e)
	return &App{echo: e, clients: clients, cache: cache}, nil
}

// Handler is the storefront's HTTP handler (the Echo instance).
func (a *App) Handler() http.Handler { return a.echo }

// Start starts nothing in the background (the page cache revalidates on
// demand); it is here so the storefront starts like every service.
func (a *App) Start() {}

// Close stops background page renders and drops idle connections to the
// services.
func (a *App) Close(context.Context) error {
	a.cache.Close()
	a.clients.Close()
	return nil
}

// Run builds the storefront and serves HTTP on cfg.HTTPAddr until ctx ends,
// then shuts down gracefully.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting client", "config", cfg)
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	a.Start()
	if cfg.DebugAddr != "" {
		go func() {
			if err := web.Serve(ctx, log, cfg.DebugAddr, web.Profiles(), time.Second); err != nil {
				log.Error("profiles listener", "addr", cfg.DebugAddr, "err", err)
			}
		}()
	}
	serveErr := web.Serve(ctx, log, cfg.HTTPAddr, a.Handler(), 10*time.Second)
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(serveErr, a.Close(cctx))
}
