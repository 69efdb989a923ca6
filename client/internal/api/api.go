// Package api holds the storefront's typed clients of the Stuffmart services
// (auth, stuff, orders, payments). They speak the services' JSON APIs over
// pooled, keep-alive HTTP connections with a timeout on every call, forward
// of the browser's request only the session cookie, its address
// (X-Forwarded-For) and the correlation id (X-Correlation-Id), and turn
// every non-2xx answer into an *Error that carries the status and the
// service's {"errors":[...]} items. Every call is counted and timed in the
// metrics (upstream_requests_total). A 404 that
// only means a service's replica has not yet heard of something new (a stuff
// at orders, an order at payments) is retried here, in one place
// (replica.go). A create carries the Idempotency-Key of the form submission
// that asked for it, so that a submission sent twice creates once
// (idempotency.go). Handlers never make raw HTTP calls nor retry: they call
// these.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/metrics"
)

// maxBody bounds what is read of a service's answer: the largest real one
// (a page of 100 listings with 5,000-character descriptions) is ~600 KB.
const maxBody = 4 << 20

// Session is who a call is made for: the browser's sealed session cookie
// (empty for an anonymous call), whether the browser came over HTTPS (auth
// then marks the cookies it sets Secure), the request id for the logs, and
// the browser's address as the services get it (ForwardedFor, see
// ForwardedFor), so that their per-client rate limits count browsers, not
// the storefront.
type Session struct {
	Cookie       string
	HTTPS        bool
	RequestID    string
	ForwardedFor string
}

// ForwardedFor is the X-Forwarded-For a call made for request r carries:
// the one r came with, followed by the address r came from, as every proxy
// appends it. The storefront's trusted proxies (TRUSTED_PROXIES) alone may
// have set the first part: anyone else's is removed before this is read
// (shared/web), so the services, which trust the storefront, find the
// browser's address as the rightmost one that no proxy of theirs added.
func ForwardedFor(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		return strings.Join(prior, ", ") + ", " + peer
	}
	return peer
}

// Error is a service's non-2xx answer. Items are the service's error items
// (never empty: a body that is not the normalized shape becomes one item with
// the status text).
type Error struct {
	Service string
	Status  int
	Items   []errs.Item
	// Replayed is set when the answer is the one the service kept for an
	// earlier request with the same Idempotency-Key.
	Replayed bool
	// RetryAfter is the service's Retry-After (whole seconds) of a 429 or
	// 503; 0 when it sent none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := ""
	if len(e.Items) > 0 {
		msg = e.Items[0].Message
	}
	return fmt.Sprintf("%s answered %d: %s", e.Service, e.Status, msg)
}

// Message is the first item's message: what to tell the user.
func (e *Error) Message() string {
	if len(e.Items) == 0 {
		return http.StatusText(e.Status)
	}
	return e.Items[0].Message
}

// StatusOf returns the status of a service error in err's chain, or 0 when
// err is not one (a timeout, a refused connection, a bad body).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Options configures the clients.
type Options struct {
	// Timeout bounds one call (connection, request and the whole answer).
	// Default 5s. Payments get PayTimeout.
	Timeout time.Duration
	// PayTimeout bounds a payment, which may wait on the card processor.
	// Default 30s.
	PayTimeout time.Duration
	// Metrics, when set, records every call by service, method and status
	// (upstream_requests_total, upstream_request_duration_seconds).
	Metrics *metrics.Set
}

// Clients is one client per service, sharing one connection pool.
type Clients struct {
	Auth     *Auth
	Stuff    *Stuff
	Orders   *Orders
	Payments *Payments
	tr       *http.Transport
}

// New returns clients of the services at the given base URLs
// (http://auth-srv:3000, or the ingress: the paths are the public ones).
func New(authURL, stuffURL, ordersURL, paymentsURL string, opts Options) (*Clients, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.PayTimeout <= 0 {
		opts.PayTimeout = 30 * time.Second
	}
	tr := &http.Transport{
		Proxy: nil, // services are reached directly, never through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		// Enough idle connections per service for 50+ concurrent page
		// renders, so a busy storefront reuses them instead of dialing.
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: opts.PayTimeout,
		ExpectContinueTimeout: time.Second,
		// Bodies are JSON of a few KB: compression would cost more CPU than
		// it saves on a data-centre link.
		DisableCompression: true,
	}
	hc := &http.Client{
		Transport: tr,
		// Redirects are never expected from a JSON API; never follow them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	mk := func(name, raw string) (*base, error) {
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s URL %q: want http(s)://host[:port]", name, raw)
		}
		return &base{name: name, url: u.String(), hc: hc, timeout: opts.Timeout, metrics: opts.Metrics}, nil
	}
	var c Clients
	var err error
	var b [4]*base
	for i, s := range []struct{ name, url string }{{"auth", authURL}, {"stuff", stuffURL}, {"orders", ordersURL}, {"payments", paymentsURL}} {
		if b[i], err = mk(s.name, s.url); err != nil {
			return nil, err
		}
	}
	c.Auth = &Auth{b: b[0]}
	c.Stuff = &Stuff{b: b[1]}
	c.Orders = &Orders{b: b[2], stuff: c.Stuff}
	c.Payments = &Payments{b: b[3], payTimeout: opts.PayTimeout}
	c.tr = tr
	return &c, nil
}

// Close drops idle connections.
func (c *Clients) Close() { c.tr.CloseIdleConnections() }

// base is one service's endpoint.
type base struct {
	name    string
	url     string
	hc      *http.Client
	timeout time.Duration
	metrics *metrics.Set
}

// call is one request: method, path (with query), an optional JSON body,
// and for a create the Idempotency-Key of the submission.
type call struct {
	method  string
	path    string
	body    any
	sess    Session
	timeout time.Duration
	key     string
}

// result is a 2xx answer: its status, body and Set-Cookie lines.
type result struct {
	status     int
	body       []byte
	setCookies []string
}

// do runs c and returns its 2xx answer, or an *Error for any other status,
// or a wrapped transport error.
func (b *base) do(ctx context.Context, c call) (result, error) {
	timeout := c.timeout
	if timeout <= 0 {
		timeout = b.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if c.body != nil {
		buf, err := json.Marshal(c.body)
		if err != nil {
			return result{}, fmt.Errorf("%s %s %s: encode: %w", b.name, c.method, c.path, err)
		}
		body = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, b.url+c.path, body)
	if err != nil {
		return result{}, fmt.Errorf("%s %s %s: %w", b.name, c.method, c.path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Only the session cookie travels to the services, never the browser's
	// other cookies (the CSRF cookie among them).
	if c.sess.Cookie != "" {
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: c.sess.Cookie})
	}
	if c.sess.HTTPS {
		// auth marks the cookies it sets Secure when the browser's request
		// was HTTPS; it sees this hop, so say what the browser used.
		req.Header.Set("X-Forwarded-Proto", "https")
	}
	if c.sess.RequestID != "" {
		req.Header.Set("X-Request-ID", c.sess.RequestID)
	}
	if c.sess.ForwardedFor != "" {
		req.Header.Set("X-Forwarded-For", c.sess.ForwardedFor)
	}
	// The storefront request's correlation id (shared/web puts it in the
	// context): the service logs it and carries it into the events it
	// writes.
	if id := correlation.ID(ctx); id != "" {
		req.Header.Set(correlation.Header, id)
	}
	if c.key != "" {
		req.Header.Set(IdempotencyHeader, c.key)
	}
	start := time.Now()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.metrics.Called(b.name, c.method, 0, time.Since(start))
		return result{}, fmt.Errorf("%s %s %s: %w", b.name, c.method, c.path, err)
	}
	defer resp.Body.Close()
	// Timed to the answer's headers: what the service took, not how fast
	// the storefront reads.
	b.metrics.Called(b.name, c.method, resp.StatusCode, time.Since(start))
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return result{}, fmt.Errorf("%s %s %s: read answer: %w", b.name, c.method, c.path, err)
	}
	if len(data) > maxBody {
		return result{}, fmt.Errorf("%s %s %s: answer larger than %d bytes", b.name, c.method, c.path, maxBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := decodeError(b.name, resp.StatusCode, data)
		e.Replayed = resp.Header.Get(replayedHeader) == "true"
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
		return result{}, e
	}
	return result{status: resp.StatusCode, body: data, setCookies: resp.Header.Values("Set-Cookie")}, nil
}

// into runs c and decodes its 2xx JSON answer into out.
func (b *base) into(ctx context.Context, c call, out any) (result, error) {
	r, err := b.do(ctx, c)
	if err != nil {
		return r, err
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			return r, fmt.Errorf("%s %s %s: decode answer: %w", b.name, c.method, c.path, err)
		}
	}
	return r, nil
}

func decodeError(service string, status int, data []byte) *Error {
	var body errs.Body
	if err := json.Unmarshal(data, &body); err != nil || len(body.Errors) == 0 {
		body.Errors = []errs.Item{{Message: http.StatusText(status)}}
	}
	return &Error{Service: service, Status: status, Items: body.Errors}
}
