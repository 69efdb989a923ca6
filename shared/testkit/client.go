package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Client is a test's JSON client of one base URL. By default it is a
// browser: it keeps the cookies it is given in a jar of its own.
type Client struct {
	tb testing.TB
	// Base is the URL paths are appended to.
	Base string
	// HTTP does the requests (its Jar holds the cookies).
	HTTP *http.Client
}

// ClientOption changes a new Client.
type ClientOption func(*http.Client)

// WithoutCookies makes a Client that keeps no cookies: each request carries
// only those given to it (WithCookie).
func WithoutCookies() ClientOption { return func(c *http.Client) { c.Jar = nil } }

// sharedTransport keeps connections between the requests of every client of
// a test binary: benchmarks and races send many at once.
var sharedTransport = &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}

// NewClient returns a client of base.
func NewClient(tb testing.TB, base string, opts ...ClientOption) *Client {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	hc := &http.Client{Jar: jar, Transport: sharedTransport, Timeout: 30 * time.Second}
	for _, o := range opts {
		o(hc)
	}
	return &Client{tb: tb, Base: base, HTTP: hc}
}

// RequestOption changes one request.
type RequestOption func(*http.Request)

// WithCookie adds a cookie to the request.
func WithCookie(c *http.Cookie) RequestOption {
	return func(r *http.Request) {
		if c != nil {
			r.AddCookie(c)
		}
	}
}

// WithHeader sets a header of the request.
func WithHeader(key, value string) RequestOption {
	return func(r *http.Request) { r.Header.Set(key, value) }
}

// Raw is a request body sent as it is (not encoded as JSON), with
// Content-Type application/json unless a WithHeader changes it.
type Raw string

// Do sends a request and returns the finished exchange. A body that is not
// nil is sent as JSON (a Raw as it is). A transport error fails the test.
func (c *Client) Do(method, path string, body any, opts ...RequestOption) *Response {
	c.tb.Helper()
	req, err := c.Request(method, path, body, opts...)
	if err != nil {
		c.tb.Fatal(err)
	}
	return c.Send(req)
}

// Try is Do that returns a transport error instead of failing the test (see
// TrySend).
func (c *Client) Try(method, path string, body any, opts ...RequestOption) (*Response, error) {
	req, err := c.Request(method, path, body, opts...)
	if err != nil {
		return nil, err
	}
	return c.TrySend(req)
}

// Send performs req and returns the finished exchange.
func (c *Client) Send(req *http.Request) *Response {
	c.tb.Helper()
	r, err := c.TrySend(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	return r
}

// TrySend is Send that returns a transport error instead of failing the
// test: for goroutines other than the test's own (a race of many clients),
// which must not call Fatal.
func (c *Client) TrySend(req *http.Request) (*Response, error) {
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Path, err)
	}
	return &Response{tb: c.tb, Method: req.Method, Path: req.URL.Path, Status: res.StatusCode, Header: res.Header, Body: raw, Cookies: res.Cookies()}, nil
}

// Request builds a request as Do sends it (body as JSON, or Raw as is).
func (c *Client) Request(method, path string, body any, opts ...RequestOption) (*http.Request, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case Raw:
		r = bytes.NewBufferString(string(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode body: %w", err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.Base+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	return req, nil
}

// Response is a finished HTTP exchange.
type Response struct {
	tb      testing.TB
	Method  string
	Path    string
	Status  int
	Header  http.Header
	Body    []byte
	Cookies []*http.Cookie
}

// Want fails the test unless the status is status; it returns r.
func (r *Response) Want(status int) *Response {
	r.tb.Helper()
	if r.Status != status {
		r.tb.Fatalf("%s %s = %d %s, want %d", r.Method, r.Path, r.Status, r.Body, status)
	}
	return r
}

// Decode decodes the JSON body into v strictly: a field v does not declare
// fails the test (nothing leaks that the API does not promise).
func (r *Response) Decode(v any) {
	r.tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		r.tb.Fatalf("%s %s: decode %s: %v", r.Method, r.Path, r.Body, err)
	}
}

// Errors returns the items of a normalized error body
// ({"errors":[{"message":…,"field":…}]}), failing the test when the body
// has any other shape or is not sent as JSON (HEAD answers have no body).
func (r *Response) Errors() []errs.Item {
	r.tb.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		r.tb.Fatalf("%s %s: error body sent as %q, want application/json: %s", r.Method, r.Path, ct, r.Body)
	}
	return ErrorItems(r.tb, r.Body)
}

// WantError fails the test unless the status is status and the body is the
// normalized error shape with exactly one item: message, on field (empty:
// none).
func (r *Response) WantError(status int, message, field string) {
	r.tb.Helper()
	r.WantErrors(status, errs.Item{Message: message, Field: field})
}

// WantErrors fails the test unless the status is status and the body holds
// exactly the items want, in order.
func (r *Response) WantErrors(status int, want ...errs.Item) {
	r.tb.Helper()
	if r.Status != status {
		r.tb.Fatalf("%s %s = %d %s, want %d", r.Method, r.Path, r.Status, r.Body, status)
	}
	if got := r.Errors(); !slices.Equal(got, want) {
		r.tb.Fatalf("%s %s errors = %+v, want %+v", r.Method, r.Path, got, want)
	}
}

// Cookie returns the response's cookie named name, or nil.
func (r *Response) Cookie(name string) *http.Cookie {
	for _, c := range r.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ErrorItems decodes a normalized error body strictly and returns its items;
// any other shape, or no item, fails the test.
func ErrorItems(tb testing.TB, body []byte) []errs.Item {
	tb.Helper()
	var b errs.Body
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || len(b.Errors) == 0 {
		tb.Fatalf("not a normalized error body: %s (%v)", body, err)
	}
	for _, it := range b.Errors {
		if it.Message == "" {
			tb.Fatalf("error item without a message: %s", body)
		}
	}
	return b.Errors
}
