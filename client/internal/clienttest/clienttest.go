// Package clienttest starts a whole Stuffmart for the storefront's tests:
// the real auth, stuff, orders and payments services (each its app.New,
// started by testkit.Start on a database of its own, all four on one NATS
// subject prefix so that they hear one another's events) and the storefront
// in front of them, with the services' APIs on the storefront's origin as
// the local gateway and the ingress serve them. Import it from _test.go
// files only.
package clienttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
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
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
	"github.com/stuffmart/stuffmart/shared/web"
)

// Options configures a stack. The zero value is a stack with a 15-minute
// hold, a 1-second page cache, the real clock and no admins.
type Options struct {
	// Admins are made admins as soon as they sign up: the stack runs the
	// operator's command (auth admin grant) right after auth created the
	// account, before the sign-up is answered. The session of the sign-up
	// itself still says user; the next sign-in or refresh says admin.
	Admins []string
	// OrderHold is the hold of the orders service and of the storefront's
	// text alike.
	OrderHold time.Duration
	// CacheTTL of the storefront; NoCache turns it off.
	CacheTTL time.Duration
	NoCache  bool
	// Now is the storefront's clock.
	Now func() time.Time
	// AuthLimits, when set, are auth's rate limits (RATE_LIMIT on; every
	// rule left zero does not limit). Without them the services run with
	// no limit: every client of a test comes from loopback.
	AuthLimits *authapp.Limits
	// Auth, when set, wraps the auth service's handler: a test makes auth
	// fail a call (as when it is down) or sees what the storefront asks.
	Auth func(http.Handler) http.Handler
	// Payments, when set, wraps the payments service's handler: a test
	// sees what the storefront asks of payments, or answers a call itself
	// (an answer the real service gives only under a race or a load).
	Payments func(http.Handler) http.Handler
}

// Stack is a running Stuffmart.
type Stack struct {
	// URL is the storefront's.
	URL string
	// AuthURL, StuffURL, OrdersURL and PaymentsURL are the services'.
	AuthURL, StuffURL, OrdersURL, PaymentsURL string
	// Sessions reads and forges session cookies (the test kit's keys, which
	// the services and the storefront run with).
	Sessions *auth.Sessions
	// Config is the storefront's configuration.
	Config app.Config

	refreshes *atomic.Int64
}

// Refreshes is how many times the storefront has called auth's
// /api/users/refresh so far.
func (s *Stack) Refreshes() int64 { return s.refreshes.Load() }

// Start runs the stack until the test ends.
func Start(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	if opts.OrderHold <= 0 {
		opts.OrderHold = 15 * time.Minute
	}
	refreshes := new(atomic.Int64)
	services := []struct {
		name  string
		build testkit.Build
	}{
		{"auth", func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
			acfg := authapp.Config{Service: cfg, PasswordCost: bcrypt.MinCost}
			if opts.AuthLimits != nil {
				acfg.Service.Limits.On = true
				acfg.Limits = *opts.AuthLimits
			}
			a, err := authapp.New(ctx, acfg, log)
			if err != nil {
				return nil, err
			}
			hooked := authHooks{App: a, refreshes: refreshes, admins: admins(opts.Admins), cfg: acfg}
			if opts.Auth != nil {
				return wrapped{App: hooked, wrap: opts.Auth}, nil
			}
			return hooked, nil
		}},
		{"stuff", func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
			return stuffapp.New(ctx, stuffapp.Config{Service: cfg}, log)
		}},
		{"orders", func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
			return ordersapp.New(ctx, ordersapp.Config{Service: cfg, OrderHold: opts.OrderHold}, log)
		}},
		{"payments", func(ctx context.Context, cfg service.Config, log *slog.Logger) (testkit.App, error) {
			a, err := paymentsapp.New(ctx, paymentsapp.Config{Service: cfg}, log)
			if err != nil || opts.Payments == nil {
				return a, err
			}
			return wrapped{App: a, wrap: opts.Payments}, nil
		}},
	}
	// Started one after the other without waiting, then waited for
	// together: their connections to MongoDB and NATS come up meanwhile.
	bus := testkit.OnNATS(testkit.NATS(tb))
	urls := map[string]string{}
	for _, s := range services {
		urls[s.name] = testkit.Start(tb, s.name, s.build, bus, testkit.NotReady()).URL
	}
	for _, u := range urls {
		testkit.WaitReady(tb, u)
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
		JWTKey:          testkit.JWTKey,
		SessionKey:      testkit.SessionKey,
		RefreshTTL:      testkit.RefreshTTL,
		CacheTTL:        ttl,
		PaymentsOffline: true,
		ServiceTimeout:  10 * time.Second,
		PayTimeout:      30 * time.Second,
		BodyLimit:       testkit.BodyLimit,
		OrderHold:       opts.OrderHold,
		Now:             opts.Now,
		// The test plays the ingress in front of the storefront (a
		// browser's address in X-Forwarded-For), as in front of the
		// services.
		TrustedProxies: web.Loopback,
	}
	return &Stack{
		URL: startClient(tb, cfg, urls), AuthURL: urls["auth"], StuffURL: urls["stuff"], OrdersURL: urls["orders"], PaymentsURL: urls["payments"],
		Sessions:  testkit.NewSessions(),
		Config:    cfg,
		refreshes: refreshes,
	}
}

// authHooks is auth counting the calls to /api/users/refresh and granting
// the admin role to the Options.Admins who sign up.
type authHooks struct {
	testkit.App
	refreshes *atomic.Int64
	admins    map[string]bool
	cfg       authapp.Config
}

// admins is the set of emails, normalized as auth stores them.
func admins(emails []string) map[string]bool {
	set := map[string]bool{}
	for _, e := range emails {
		set[strings.ToLower(strings.TrimSpace(e))] = true
	}
	return set
}

// Handler is auth's handler, with the hooks on the way.
func (h authHooks) Handler() http.Handler {
	inner := h.App.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/users/refresh":
			h.refreshes.Add(1)
		case r.Method == http.MethodPost && r.URL.Path == "/api/users/signup" && len(h.admins) > 0:
			h.signUp(w, r, inner)
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// signUp serves a sign-up and, when it created the account of one of the
// admins, grants it the role with auth's operator command before answering.
func (h authHooks) signUp(w http.ResponseWriter, r *http.Request, inner http.Handler) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, r)
	var req struct {
		Email string `json:"email"`
	}
	if rec.Code == http.StatusCreated && json.Unmarshal(body, &req) == nil && h.admins[strings.ToLower(strings.TrimSpace(req.Email))] {
		if err := authapp.Admin(r.Context(), h.cfg, []string{"grant", req.Email}, io.Discard); err != nil {
			http.Error(w, "clienttest: grant admin: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes()) // the client hung up: nothing to tell it
}

// wrapped is a service whose handler a test wraps.
type wrapped struct {
	testkit.App
	wrap func(http.Handler) http.Handler
}

// Handler is the service's handler inside the test's wrapper.
func (w wrapped) Handler() http.Handler { return w.wrap(w.App.Handler()) }

// apiPrefixes are the paths of each service's API, as the gateway and the
// ingress route them.
var apiPrefixes = map[string]string{"auth": "/api/users", "stuff": "/api/stuff", "orders": "/api/orders", "payments": "/api/payments"}

// startClient serves the storefront until the test ends, with the services
// at urls reachable under their API paths on its origin, as the gateway and
// the ingress route them: a browser reaches the pages a service serves
// itself there (payments' offline stand-in of the card processor's page,
// on the origin of the checkout's return URLs). It needs nothing to be
// ready: its /readyz checks only the process.
func startClient(tb testing.TB, cfg app.Config, urls map[string]string) string {
	tb.Helper()
	a, err := app.New(context.Background(), cfg, testkit.Logger(tb))
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	a.Start()
	tr := &http.Transport{Proxy: nil} // loopback upstreams; never an HTTP_PROXY
	routes := map[string]http.Handler{}
	for name, prefix := range apiPrefixes {
		target, err := url.Parse(urls[name])
		if err != nil {
			tb.Fatalf("%s URL: %v", name, err)
		}
		routes[prefix] = &httputil.ReverseProxy{
			// As the gateway and the ingress do: the browser's Host is kept
			// (a service checks a form's Origin against it) and the
			// X-Forwarded headers describe the browser's request.
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host
				pr.SetXForwarded()
			},
			Transport: tr,
			ErrorLog:  slog.NewLogLogger(testkit.Logger(tb).Handler(), slog.LevelWarn),
		}
	}
	storefront := a.Handler()
	// The paths are matched as the ingress matches them, element by
	// element; everything else is the storefront's, untouched.
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for prefix, h := range routes {
			if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, prefix+"/") {
				h.ServeHTTP(w, r)
				return
			}
		}
		storefront.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(front)
	tb.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			tb.Errorf("close client: %v", err)
		}
	})
	return srv.URL
}
