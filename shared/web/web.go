// Package web builds the Echo server every Stuffmart service runs: the
// normalized error handler, panic recovery, body limit, request IDs, access
// logs through log/slog, /healthz and /readyz, and graceful shutdown.
package web

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
)

// DefaultBodyLimit caps request bodies: JSON requests of this product are
// small, and a larger body is answered 413 before it is read.
const DefaultBodyLimit = "64K"

// Check is one readiness dependency (a database ping, the NATS connection).
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Options configures New. The zero value is valid.
type Options struct {
	// BodyLimit such as "64K"; DefaultBodyLimit when empty.
	BodyLimit string
	// Ready lists what /readyz checks; /readyz answers 503 when one fails.
	Ready []Check
	// Translate, when set, turns a handler's error into the one answered:
	// the services make "the database is unreachable" a 503 with it.
	Translate func(error) error
	// TrustedProxies may set the forwarded headers (the client's address
	// and scheme); everyone else's are removed. Empty: nobody.
	TrustedProxies []netip.Prefix
	// UnsafeLimit limits every unsafe request (POST, PUT, PATCH, DELETE) by
	// client address; nil: no limit.
	UnsafeLimit *ratelimit.Limiter
	// Metrics, when set, records every request (by route pattern) and every
	// rate-limit refusal, and is served on GET /metrics to callers that did
	// not come through a proxy (see Internal).
	Metrics *metrics.Set
}

// New returns an Echo with the shared middleware and probes installed. Every
// error a handler returns, and Echo's own 404/405/413, is written as
// {"errors":[{"message","field"}]}; unknown errors become a logged 500.
func New(log *slog.Logger, opts Options) *echo.Echo {
	if opts.BodyLimit == "" {
		opts.BodyLimit = DefaultBodyLimit
	}
	log = slog.New(correlation.LogHandler(log.Handler()))
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	trustProxies(e, opts.TrustedProxies)
	handle := errorHandler(log, opts.Metrics)
	if tr := opts.Translate; tr != nil {
		plain := handle
		handle = func(err error, c echo.Context) { plain(tr(err), c) }
	}
	e.HTTPErrorHandler = handle
	e.Use(dropInvalidRequestID, middleware.RequestID())
	e.Use(Correlate)
	e.Use(accessLog(log))
	if opts.Metrics != nil {
		e.Use(observe(opts.Metrics))
	}
	// Errors are answered here, inside the access log, so that it logs the
	// status the client got rather than the 200 of an unwritten response.
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := next(c); err != nil {
				c.Error(err)
			}
			return nil
		}
	})
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		// Keep the stack with the error; ErrorHandler logs both once.
		LogErrorFunc: func(_ echo.Context, err error, stack []byte) error {
			return &panicError{err: err, stack: string(stack)}
		},
	}))
	e.Use(SameOrigin())
	e.Use(limitUnsafe(opts.UnsafeLimit))
	e.Use(middleware.BodyLimit(opts.BodyLimit))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("X-Content-Type-Options", "nosniff")
			return next(c)
		}
	})
	// Probes answer HEAD too (Echo does not route HEAD to GET by itself).
	probe := []string{http.MethodGet, http.MethodHead}
	e.Match(probe, "/healthz", func(c echo.Context) error {
		return probeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
	})
	e.Match(probe, "/readyz", readyz(log, opts.Ready))
	if opts.Metrics != nil {
		h := echo.WrapHandler(opts.Metrics.Handler())
		e.GET("/metrics", h, Internal)
	}
	return e
}

// Correlate puts the request's correlation id in its context (and in the
// X-Correlation-Id response header): the caller's X-Correlation-Id when it
// is a valid one (the storefront passes on its own), else the request id.
// Log lines written with the context carry it; events written with it carry
// it on (see package correlation).
func Correlate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id := r.Header.Get(correlation.Header)
		if !correlation.Valid(id) {
			id = c.Response().Header().Get(echo.HeaderXRequestID)
		}
		c.SetRequest(r.WithContext(correlation.With(r.Context(), id)))
		c.Response().Header().Set(correlation.Header, id)
		return next(c)
	}
}

// dropInvalidRequestID removes a caller's X-Request-Id that is not a valid
// correlation id (correlation.Valid: short, of a safe alphabet), so the
// request id Echo keeps or makes, echoed in the answer, logged and
// carried on as the correlation id, is never an arbitrary string.
func dropInvalidRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !correlation.Valid(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

// observe records each request in m once its answer is written: the route
// pattern Echo matched ("/api/stuff/:id"; "unmatched" for a 404 that matched
// none), the method and the status.
func observe(m *metrics.Set) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			route := c.Path()
			if route == "" || c.Response().Status == http.StatusNotFound && route == "/*" {
				route = "unmatched"
			}
			m.ServedHTTP(route, c.Request().Method, c.Response().Status, time.Since(start))
			return err
		}
	}
}

// Internal refuses (404, as if the route did not exist) a request that came
// through a proxy: the ingress and the local gateway always add
// X-Forwarded-For. It counts the forwarded headers the request arrived with,
// before trustProxies drops an untrusted peer's, so an ingress missing from
// TRUSTED_PROXIES still cannot reach it. What is left are direct callers:
// Prometheus scraping the pod, kubectl port-forward, curl on the machine of
// make dev. Who may reach a pod directly at all is the NetworkPolicies'
// business.
func Internal(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !Direct(c) {
			return echo.ErrNotFound
		}
		return next(c)
	}
}

// Direct reports whether the request came straight from its caller, with
// no forwarded header (see Internal): not through the ingress or the local
// gateway, which always add X-Forwarded-For, but from a pod of the cluster
// (the storefront calling for itself), a scraper, or the machine's own
// shell.
func Direct(c echo.Context) bool {
	h := c.Request().Header
	proxied, _ := c.Get(proxiedKey).(bool)
	return !proxied && h.Get("X-Forwarded-For") == "" && h.Get("Forwarded") == "" && h.Get("X-Real-Ip") == ""
}

// panicError is a recovered panic with the stack of the goroutine that
// panicked; ErrorHandler logs the stack with the cause.
type panicError struct {
	err   error
	stack string
}

func (p *panicError) Error() string { return "panic: " + p.err.Error() }
func (p *panicError) Unwrap() error { return p.err }

func readyz(log *slog.Logger, checks []Check) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		var items []errs.Item
		for _, ch := range checks {
			if err := ch.Func(ctx); err != nil {
				log.DebugContext(ctx, "not ready", "check", ch.Name, "err", err)
				items = append(items, errs.Item{Message: ch.Name + " is not ready"})
			}
		}
		if len(items) > 0 {
			return probeJSON(c, http.StatusServiceUnavailable, errs.Body{Errors: items})
		}
		return probeJSON(c, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// probeJSON answers a probe: the JSON body, or only the status to a HEAD.
func probeJSON(c echo.Context, status int, body any) error {
	if c.Request().Method == http.MethodHead {
		return c.NoContent(status)
	}
	return c.JSON(status, body)
}

func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		Skipper: func(c echo.Context) bool {
			p := c.Path()
			return p == "/healthz" || p == "/readyz"
		},
		LogMethod:    true,
		LogURIPath:   true,
		LogStatus:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("method", v.Method),
				slog.String("path", v.URIPath),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
				slog.String("request_id", v.RequestID),
			)
			return nil
		},
	})
}

// ErrorHandler writes every error in the normalized shape. It is exported so
// that servers not built by New (the gateway) answer the same way.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler { return errorHandler(log, nil) }

// errorHandler is ErrorHandler counting rate-limit refusals in m.
func errorHandler(log *slog.Logger, m *metrics.Set) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		status, body := Classify(err)
		if status >= http.StatusInternalServerError || c.Response().Committed {
			attrs := []any{
				"err", err,
				"method", c.Request().Method,
				"path", c.Request().URL.Path,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			}
			var pe *panicError
			if errors.As(err, &pe) {
				attrs = append(attrs, "stack", pe.stack)
			}
			lvl, msg := slog.LevelError, "request failed"
			if c.Response().Committed {
				// Too late to answer, but the error must not vanish. Often
				// it is only a client that went away, hence a warning.
				lvl, msg = slog.LevelWarn, "request failed after the response was sent"
			}
			log.Log(c.Request().Context(), lvl, msg, attrs...)
		}
		if c.Response().Committed {
			return
		}
		var tmr *errs.TooManyRequestsError
		if errors.As(err, &tmr) {
			c.Response().Header().Set("Retry-After", strconv.Itoa(tmr.Seconds()))
			m.Refused(cmp.Or(tmr.Limit, "unnamed"))
		}
		var werr error
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.JSON(status, body)
		}
		if werr != nil {
			log.WarnContext(c.Request().Context(), "write error response", "err", werr)
		}
	}
}

// Classify maps an error to its status and normalized body: client-facing
// errs.Error values speak for themselves, Echo's HTTP errors keep their
// status with a plain message, everything else is a 500 "Something went wrong".
func Classify(err error) (int, errs.Body) {
	if e, ok := errs.As(err); ok {
		return e.StatusCode(), errs.Body{Errors: e.Serialize()}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) && he.Code < http.StatusInternalServerError {
		return he.Code, errs.Body{Errors: []errs.Item{{Message: echoMessage(he)}}}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, errs.Body{Errors: []errs.Item{{Message: "Request body too large"}}}
	}
	return http.StatusInternalServerError, errs.Internal
}

func echoMessage(he *echo.HTTPError) string {
	switch he.Code {
	case http.StatusNotFound:
		return "Not Found"
	case http.StatusRequestEntityTooLarge:
		return "Request body too large"
	case http.StatusUnauthorized:
		return "Not authorized"
	}
	if s, ok := he.Message.(string); ok && s != "" {
		return s
	}
	return http.StatusText(he.Code)
}

// Serve runs h on addr until ctx is cancelled, then shuts down gracefully,
// giving in-flight requests up to grace to finish.
func Serve(ctx context.Context, log *slog.Logger, addr string, h http.Handler, grace time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, log, ln, h, grace)
}

// ServeListener is Serve on an open listener (tests and the local stack pick
// free ports this way).
func ServeListener(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
