package testkit

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/web"
)

// The keys, lifetimes and limits every component test runs a service with.
// Sessions of a Component signs cookies with the same keys.
const (
	JWTKey     = "test-jwt-key-0123456789-0123456789-abcdef"
	SessionKey = "test-session-key-0123456789-0123456789-ab"
	AccessTTL  = 15 * time.Minute
	RefreshTTL = 7 * 24 * time.Hour
	BodyLimit  = "64K"
)

// App is what a service's app package builds: its HTTP handler, and the
// background work (bus, relay, listeners) that Start starts and Close stops.
type App interface {
	Handler() http.Handler
	Start()
	Close(ctx context.Context) error
}

// Build makes a service's App from the common configuration a component
// test gives it (the test's own database and NATS subject prefix, the test
// keys), adding what is particular to the service: its Config's other
// fields, a clock, a fake Stripe. It is the same call main makes, minus the
// environment.
type Build func(ctx context.Context, cfg service.Config, log *slog.Logger) (App, error)

// Component is one service under test, in the spirit of a component test:
// its real app package on the embedded FerretDB and NATS Streaming, served
// over real HTTP, with a Peer on the bus playing every other service.
type Component struct {
	tb testing.TB
	// URL is where the service's HTTP handler is served.
	URL string
	// Config is the common configuration the service was built with.
	Config service.Config
	// DB is the service's own database.
	DB *mongo.Database
	// NATS reaches the service's bus (its subject prefix included).
	NATS events.Config
	// Sessions reads and signs session cookies as the service does.
	Sessions *auth.Sessions
	// Peer publishes what other services would and records what this one
	// publishes on the subjects the test observes.
	Peer *Peer
	// HTTP calls the service; it keeps no cookies (pass them per request).
	HTTP *Client

	stopOnce sync.Once
	stop     func()
}

// Option changes how Start runs a component.
type Option func(*options)

type options struct {
	db       *mongo.Database
	nats     *events.Config
	observe  []events.Subject
	noReady  bool
	clientID string
}

// OnDB runs the service on db instead of a fresh database (a restart on
// the data an earlier run left).
func OnDB(db *mongo.Database) Option { return func(o *options) { o.db = db } }

// OnNATS runs the service on nc instead of a fresh subject prefix of the
// binary's shared server (a server a test stops and starts, say).
func OnNATS(nc events.Config) Option { return func(o *options) { o.nats = &nc } }

// Observe has the Peer record what the service publishes on subjects.
func Observe(subjects ...events.Subject) Option {
	return func(o *options) { o.observe = append(o.observe, subjects...) }
}

// NotReady returns as soon as the service serves, without waiting for
// /readyz (a test of readiness itself, or of a service whose NATS is down).
func NotReady() Option { return func(o *options) { o.noReady = true } }

// Start builds the service named name with build, starts it, serves it on
// an httptest server and waits until its /readyz answers 200. Everything is
// stopped at cleanup (or by Stop).
func Start(tb testing.TB, name string, build Build, opts ...Option) *Component {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	db := o.db
	if db == nil {
		db = Mongo(tb)
	}
	nc := NATS(tb)
	if o.nats != nil {
		nc = *o.nats
	}
	svcNATS := nc
	svcNATS.ClientName = name
	cfg := service.Config{
		Name:       name,
		HTTPAddr:   "127.0.0.1:0",
		MongoURI:   MongoURI(tb),
		MongoDB:    db.Name(),
		NATS:       svcNATS,
		JWTKey:     JWTKey,
		SessionKey: SessionKey,
		AccessTTL:  AccessTTL,
		RefreshTTL: RefreshTTL,
		BodyLimit:  BodyLimit,
		// The test plays the ingress in front of the service (a request
		// forwarded as HTTPS, say); the rate limits are off (every client
		// of a test comes from loopback).
		TrustedProxies: web.Loopback,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := build(ctx, cfg, Logger(tb))
	if err != nil {
		tb.Fatalf("build %s: %v", name, err)
	}
	a.Start()
	srv := httptest.NewServer(a.Handler())
	c := &Component{
		tb:       tb,
		URL:      srv.URL,
		Config:   cfg,
		DB:       db,
		NATS:     nc,
		Sessions: NewSessions(),
		HTTP:     NewClient(tb, srv.URL, WithoutCookies()),
	}
	c.stop = func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			tb.Errorf("close %s: %v", name, err)
		}
	}
	tb.Cleanup(c.Stop)
	c.Peer = NewPeer(tb, nc, o.observe...)
	if !o.noReady {
		WaitReady(tb, srv.URL)
	}
	return c
}

// Stop stops the service now (a test that restarts it); cleanup does it
// otherwise. Calling it again does nothing.
func (c *Component) Stop() { c.stopOnce.Do(c.stop) }

// Cookie returns the session cookie of a signed-in u.
func (c *Component) Cookie(u auth.User) *http.Cookie {
	c.tb.Helper()
	return SessionCookie(c.tb, c.Sessions, u, "")
}

// User returns a new signed-in user with role (auth.RoleUser when empty)
// and its session cookie.
func (c *Component) User(role string) (auth.User, *http.Cookie) {
	c.tb.Helper()
	if role == "" {
		role = auth.RoleUser
	}
	u := auth.User{ID: RandomID(c.tb)[:24], Email: RandomID(c.tb)[:8] + "@uni.edu", Role: role}
	return u, c.Cookie(u)
}

// NewSessions returns sessions with the keys and lifetimes every component
// runs with: they read and sign the cookies the services read and sign.
func NewSessions() *auth.Sessions {
	return auth.NewSessions([]byte(SessionKey), auth.NewTokens([]byte(JWTKey), AccessTTL), RefreshTTL)
}

// WaitReady polls base's /readyz until it answers 200, failing the test
// after 30 s.
func WaitReady(tb testing.TB, base string) {
	tb.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	Eventually(tb, 30*time.Second, func() bool {
		res, err := hc.Get(base + "/readyz")
		if err != nil {
			return false
		}
		_ = res.Body.Close() // only the status matters
		return res.StatusCode == http.StatusOK
	}, "%s/readyz never answered 200", base)
}

// Peer is a test's own connection to a service's bus: it publishes events as
// the services that own them would, and records what is published on the
// subjects it observes (in a queue group of its own, so the services'
// groups are not disturbed).
type Peer struct {
	tb  testing.TB
	bus *events.Bus

	mu  sync.Mutex
	got map[events.Subject][]events.Msg
}

// NewPeer connects to nc and observes subjects, until the test ends.
func NewPeer(tb testing.TB, nc events.Config, subjects ...events.Subject) *Peer {
	tb.Helper()
	pc := nc
	pc.ClientName = "test-peer"
	p := &Peer{tb: tb, bus: events.NewBus(pc, Logger(tb), nil), got: map[events.Subject][]events.Msg{}}
	for _, s := range subjects {
		p.bus.Listen(events.Listener{Subject: s, Group: "test-observer", Workers: 1, Handle: p.record})
	}
	p.bus.Start()
	tb.Cleanup(func() {
		if err := p.bus.Close(); err != nil {
			tb.Errorf("close test peer: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.bus.WaitConnected(ctx); err != nil {
		tb.Fatalf("test peer: %v", err)
	}
	return p
}

func (p *Peer) record(_ context.Context, m events.Msg) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got[m.Subject] = append(p.got[m.Subject], m)
	return nil
}

// Publish sends ev as the service that owns it would.
func (p *Peer) Publish(ev events.Event) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.bus.PublishEvent(ctx, ev); err != nil {
		p.tb.Fatalf("publish %s: %v", ev.Subject(), err)
	}
}

// PublishRaw sends data, which may not decode, on subject.
func (p *Peer) PublishRaw(subject events.Subject, data []byte) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.bus.Publish(ctx, subject, data); err != nil {
		p.tb.Fatalf("publish %s: %v", subject, err)
	}
}

// Received returns the messages recorded on subject so far, in order.
func (p *Peer) Received(subject events.Subject) []events.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got[subject])
}

// Wait waits (15 s at most) for a message on subject that match accepts and
// returns the first such one.
func (p *Peer) Wait(subject events.Subject, match func(events.Msg) bool) events.Msg {
	p.tb.Helper()
	var found events.Msg
	Eventually(p.tb, 15*time.Second, func() bool {
		for _, m := range p.Received(subject) {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	}, "no matching %s received", subject)
	return found
}
