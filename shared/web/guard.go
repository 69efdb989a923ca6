package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
)

// ParsePrefixes reads a comma-separated list of IP ranges (CIDR) or single
// addresses: TRUSTED_PROXIES.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR range", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Loopback is 127.0.0.0/8 and ::1: the trusted proxies of the local stack,
// whose gateway and storefront run in the same process.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// forwardedHeaders are the headers a proxy sets about the client; only a
// trusted proxy may set them.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Ssl",
	"X-Forwarded-Protocol", "X-Url-Scheme", "X-Real-Ip", "Forwarded"}

// trustProxies makes the request's client address and scheme come from the
// forwarded headers of trusted proxies only: a request whose peer is not one
// of them has its forwarded headers removed before anything reads them (the
// client address for rate limits, the scheme for the cookie's Secure flag),
// and the client address is the rightmost one in X-Forwarded-For that no
// trusted proxy added.
func trustProxies(e *echo.Echo, trusted []netip.Prefix) {
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		_, n, err := net.ParseCIDR(p.String())
		if err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	e.Pre(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header
			for _, name := range forwardedHeaders {
				if h.Get(name) != "" {
					c.Set(proxiedKey, true)
					break
				}
			}
			if !fromTrusted(c.Request(), trusted) {
				for _, name := range forwardedHeaders {
					h.Del(name)
				}
			}
			return next(c)
		}
	})
}

// proxiedKey marks a request that arrived with forwarded headers, trusted
// or not (Internal refuses it).
const proxiedKey = "web.proxied"

func fromTrusted(r *http.Request, trusted []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// unsafe reports whether a method changes something.
func unsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// SameOrigin refuses (403) an unsafe request that a browser made from
// another site, a sibling subdomain included: its Sec-Fetch-Site is neither
// same-origin nor none, or (a browser without Fetch Metadata) its Origin is
// not the request's own host. A request with neither header (a
// service, the storefront calling the API, curl) passes: cookies and CSRF
// tokens are what guard it.
func SameOrigin() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if !unsafe(r.Method) {
				return next(c)
			}
			if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
				if site != "same-origin" && site != "none" {
					return errCrossSite
				}
				return next(c)
			}
			if o := r.Header.Get(echo.HeaderOrigin); o != "" {
				// The host only: the scheme a service sees depends on its
				// proxies, and an attacker's page is on another host.
				u, err := url.Parse(o)
				if err != nil || !strings.EqualFold(u.Host, r.Host) {
					return errCrossSite
				}
			}
			return next(c)
		}
	}
}

var errCrossSite = &errs.HTTPError{Status: http.StatusForbidden, Message: "Cross-site requests are refused"}

// RateLimit refuses (429, with Retry-After) a request whose key has no
// token left in l; key names the client (its address, its account). A nil
// limiter lets everything through.
func RateLimit(l *ratelimit.Limiter, key func(echo.Context) string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if l == nil {
			return next
		}
		return func(c echo.Context) error {
			if err := Take(l, key(c)); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// Take takes one request of key from l: a *errs.TooManyRequestsError (a
// 429 with Retry-After) when it has none left. A nil l takes nothing. For a
// limit that applies to some requests of a route only, decided by its
// handler; RateLimit is the middleware for a whole route.
func Take(l *ratelimit.Limiter, key string) error {
	if ok, wait := l.Allow(key); !ok {
		return &errs.TooManyRequestsError{RetryAfter: wait, Limit: l.Name()}
	}
	return nil
}

// ClientIP is the rate limits' key of a client: its address as the trusted
// proxies tell it (see trustProxies); for IPv6 its /64, which one
// subscriber usually has whole (keyed by /128, one machine would have 2^64
// addresses to spread its tries over).
func ClientIP(c echo.Context) string {
	ip := c.RealIP()
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Unmap().Is4() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// limitUnsafe is RateLimit on every unsafe request, by client address.
func limitUnsafe(l *ratelimit.Limiter) echo.MiddlewareFunc {
	limit := RateLimit(l, ClientIP)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		limited := limit(next)
		return func(c echo.Context) error {
			if unsafe(c.Request().Method) {
				return limited(c)
			}
			return next(c)
		}
	}
}
