package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// apiPrefix is the part of the URL space that belongs to the JSON services:
// a path under it that no running service takes is a JSON 404, never a page
// of the client.
const apiPrefix = "/api"

// Route sends the requests under Prefix to the service Name at Target.
type Route struct {
	Name   string
	Prefix string
	Target *url.URL
}

// Gateway routes requests to the services the way the Kubernetes
// ingress-nginx does: by path prefix, the longest match first, with the
// client taking everything outside /api. It answers /healthz itself. A path
// no running service takes is a 404 and an unreachable service a 502 (504 on
// a timeout), both in the normalized JSON error shape.
type Gateway struct {
	routes    []gatewayRoute
	transport *http.Transport
	log       *slog.Logger
}

type gatewayRoute struct {
	Route
	proxy *httputil.ReverseProxy
}

// NewGateway returns a Gateway over routes. Call Close when it no longer
// serves, to drop its idle upstream connections.
func NewGateway(routes []Route, log *slog.Logger) *Gateway {
	g := &Gateway{
		// One transport for every upstream: connections are kept alive and
		// reused, enough of them for a load test at 50+ connections.
		transport: &http.Transport{
			Proxy: nil, // upstreams are on loopback; never an HTTP_PROXY
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		log: log,
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	for _, r := range routes {
		r.Prefix = normalizePrefix(r.Prefix)
		target := r.Target
		g.routes = append(g.routes, gatewayRoute{
			Route: r,
			proxy: &httputil.ReverseProxy{
				Rewrite:      func(pr *httputil.ProxyRequest) { rewrite(pr, target) },
				Transport:    g.transport,
				ErrorHandler: g.upstreamError(r.Name),
				ErrorLog:     errLog,
			},
		})
	}
	// Longest prefix first, as the ingress matches.
	sort.SliceStable(g.routes, func(i, j int) bool { return len(g.routes[i].Prefix) > len(g.routes[j].Prefix) })
	return g
}

func normalizePrefix(p string) string {
	if p = strings.TrimRight(p, "/"); p == "" {
		return "/"
	}
	return p
}

// under reports whether path is prefix or below it, element by element, like
// the ingress's pathType Prefix: /api/users takes /api/users/x, not /api/usersx.
func under(path, prefix string) bool {
	return prefix == "/" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			if _, err := w.Write([]byte(`{"status":"ok"}` + "\n")); err != nil {
				g.log.Debug("write healthz", "err", err)
			}
		}
		return
	}
	isAPI := under(r.URL.Path, apiPrefix)
	for _, rt := range g.routes {
		if rt.Prefix == "/" && isAPI {
			continue
		}
		if under(r.URL.Path, rt.Prefix) {
			rt.proxy.ServeHTTP(w, r)
			return
		}
	}
	g.writeError(w, r, errs.ErrNotFound)
}

// Close drops idle upstream connections.
func (g *Gateway) Close() { g.transport.CloseIdleConnections() }

// rewrite points the request at target as ingress-nginx does: the Host the
// browser sent is kept (services build absolute URLs from it),
// X-Forwarded-For/-Host/-Proto/-Port and X-Real-IP describe the browser's
// request (whatever it sent in them is dropped, as the ingress does by
// default), and a request without an X-Request-ID gets one, so the services'
// logs of one request share it.
func rewrite(pr *httputil.ProxyRequest, target *url.URL) {
	pr.SetURL(target)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		pr.Out.Header.Set("X-Real-IP", ip)
	}
	if a, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			pr.Out.Header.Set("X-Forwarded-Port", port)
		}
	}
	if pr.Out.Header.Get("X-Request-ID") == "" {
		pr.Out.Header.Set("X-Request-ID", requestID())
	}
}

func requestID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 16)
	}
	return hex.EncodeToString(b)
}

// upstreamError answers a request the service could not: 504 when it timed
// out, 502 otherwise, never the proxy's own text.
func (g *Gateway) upstreamError(name string) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() != nil {
			g.log.Debug("client went away", "service", name, "path", r.URL.Path, "err", err)
			return
		}
		status := http.StatusBadGateway
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			status = http.StatusGatewayTimeout
		}
		g.log.Warn("upstream failed", "service", name, "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		g.writeError(w, r, &errs.HTTPError{Status: status, Message: http.StatusText(status)})
	}
}

// writeError writes e in the normalized shape, as shared/web's error handler
// does for the services.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, e errs.Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.StatusCode())
	if r.Method == http.MethodHead {
		return
	}
	if err := json.NewEncoder(w).Encode(errs.Body{Errors: e.Serialize()}); err != nil {
		g.log.Debug("write error response", "err", err)
	}
}
