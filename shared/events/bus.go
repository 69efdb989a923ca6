package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	stan "github.com/nats-io/stan.go"

	"github.com/stuffmart/stuffmart/shared/config"
	"github.com/stuffmart/stuffmart/shared/metrics"
)

// ErrNotConnected is returned by Publish while NATS is unreachable; the
// outbox keeps the event and retries.
var ErrNotConnected = errors.New("nats streaming: not connected")

// Config says how to reach NATS Streaming.
type Config struct {
	URL       string // nats://host:4222
	ClusterID string // the cluster id the server runs with
	// ClientName prefixes the client id; each connection adds a unique
	// suffix, so replicas and restarts never clash.
	ClientName string
	// Prefix is prepended to every subject; tests use it to share one server.
	Prefix string
	// AckWait is how long a delivered message waits for its ack before it is
	// redelivered (stan minimum 1s): the pause before a failed message is
	// tried again. Default 5s. A subscription's ack wait is never shorter
	// than its handler's timeout, so a slow handler is not redelivered while
	// it still runs.
	AckWait time.Duration
	// HandlerTimeout bounds one handling when the Listener sets none.
	// Default 5s.
	HandlerTimeout time.Duration
	// RetryFor is how long a message that fails (or is not yet applicable:
	// ErrNotYet) is retried before it is parked, counted from when it was
	// published. Default 6h: an event that waits for another, or for a
	// dependency that is down, is not poison. Only a Permanent error parks
	// a message at once.
	RetryFor time.Duration
	// MaxBackoff caps the pause between two tries of a failing message;
	// tries are spaced AckWait, 2×AckWait, 4×AckWait … up to it. Default
	// 5m.
	MaxBackoff time.Duration
	// Metrics counts publishes and handled deliveries; nil counts nothing.
	Metrics *metrics.Set
}

// Bus is a NATS Streaming connection that connects and reconnects in the
// background, so a service starts and serves while NATS is still down, and
// that resubscribes its listeners on every new connection.
type Bus struct {
	cfg  Config
	log  *slog.Logger
	park Parker

	mu        sync.Mutex
	conn      stan.Conn
	subs      []subscription // of conn, closed with it
	listeners []Listener
	onConnect []func()
	lost      chan struct{}
	connected chan struct{} // closed on first connection

	stop    context.CancelFunc
	stopped chan struct{}

	// retries remembers when each failing message may be tried again.
	retries *retries

	// Handlers in flight, so that Close lets them finish (and ack) before
	// the subscriptions close; once closing is set, messages that arrive are
	// left unacked for a live member of the group.
	hmu      sync.Mutex
	inflight int
	closing  bool
	idle     chan struct{} // closed when inflight drops to 0 while closing
}

// NewBus returns a Bus; call Start to connect. park is called with messages
// that will not be applied: Permanent failures, and failures older than
// RetryFor (nil: log only).
func NewBus(cfg Config, log *slog.Logger, park Parker) *Bus {
	if cfg.AckWait == 0 {
		cfg.AckWait = 5 * time.Second
	}
	if cfg.HandlerTimeout == 0 {
		cfg.HandlerTimeout = defaultHandlerTimeout
	}
	if cfg.RetryFor == 0 {
		cfg.RetryFor = 6 * time.Hour
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if park == nil {
		park = func(context.Context, Msg, error) error { return nil }
	}
	return &Bus{cfg: cfg, log: log, park: park, connected: make(chan struct{}), stopped: make(chan struct{}),
		retries: newRetries()}
}

// Listen registers a listener. Listeners registered before Start are
// subscribed on the first connection; all are resubscribed after reconnects.
func (b *Bus) Listen(l Listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.listeners = append(b.listeners, l)
	if b.conn != nil {
		s, err := b.subscribe(b.conn, l)
		if err != nil {
			// The connection is failing; the next one subscribes it.
			b.log.Error("subscribe", "subject", l.Subject, "err", err)
			return
		}
		b.subs = append(b.subs, s)
	}
}

// OnConnect registers fn to run (in its own goroutine) after every successful
// connection: the outbox relay flushes what piled up while NATS was down.
func (b *Bus) OnConnect(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onConnect = append(b.onConnect, fn)
}

// Start connects in the background until Close. Calling it again does
// nothing.
func (b *Bus) Start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	go b.run(ctx)
}

// Ready reports nil while connected; it is a readiness check.
func (b *Bus) Ready(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return ErrNotConnected
	}
	return nil
}

// WaitConnected blocks until the first connection or ctx ends.
func (b *Bus) WaitConnected(ctx context.Context) error {
	select {
	case <-b.connected:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publish sends data on subject and waits for the server's ack. It returns
// ErrNotConnected (wrapped) while NATS is unreachable.
func (b *Bus) Publish(ctx context.Context, subject Subject, data []byte) error {
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	done := make(chan error, 1)
	go func() { done <- c.Publish(b.cfg.Prefix+string(subject), data) }()
	select {
	case err := <-done:
		b.cfg.Metrics.Published(string(subject), err)
		if err != nil {
			return fmt.Errorf("publish %s: %w", subject, errors.Join(ErrNotConnected, err))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishEvent encodes ev and publishes it.
func (b *Bus) PublishEvent(ctx context.Context, ev Event) error {
	data, err := Encode(ctx, ev)
	if err != nil {
		return err
	}
	return b.Publish(ctx, ev.Subject(), data)
}

// Close waits for the handlers in flight to finish (each is bounded by its
// listener's Timeout) so their acks go out, stops reconnecting, closes every
// subscription with Close (durable queue groups keep their position) and
// closes the connection. Do not call it from a handler.
func (b *Bus) Close() error {
	b.mu.Lock()
	stop := b.stop
	b.mu.Unlock()
	if stop == nil {
		return nil
	}
	b.drain()
	stop()
	<-b.stopped
	return nil
}

// drain stops handling new messages and waits for the handlers in flight,
// at most for the longest listener timeout plus the time parking may take,
// so that a handler that ignores its context cannot hold Close forever.
func (b *Bus) drain() {
	b.mu.Lock()
	wait := b.cfg.HandlerTimeout
	for _, l := range b.listeners {
		wait = max(wait, l.Timeout)
	}
	b.mu.Unlock()
	b.hmu.Lock()
	b.closing = true
	idle := b.idle
	if idle == nil {
		idle = make(chan struct{})
		b.idle = idle
		if b.inflight == 0 {
			close(idle)
		}
	}
	b.hmu.Unlock()
	t := time.NewTimer(wait + parkTimeout)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
		b.log.Warn("closing with event handlers still running; their messages will be redelivered")
	}
}

// begin registers a handler in flight; it reports false once Close began.
func (b *Bus) begin() bool {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	if b.closing {
		return false
	}
	b.inflight++
	return true
}

func (b *Bus) end() {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	b.inflight--
	if b.inflight == 0 && b.closing {
		close(b.idle)
	}
}

func (b *Bus) run(ctx context.Context) {
	defer close(b.stopped)
	delay := 100 * time.Millisecond
	firstFailure := true
	for {
		conn, lost, err := b.connect()
		if err != nil {
			if firstFailure {
				b.log.Warn("nats streaming unreachable; retrying in the background", "url", config.MaskURL(b.cfg.URL), "err", err)
				firstFailure = false
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 2*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		firstFailure = true
		b.log.Info("nats streaming connected", "url", config.MaskURL(b.cfg.URL), "cluster", b.cfg.ClusterID)
		select {
		case <-ctx.Done():
			b.disconnect(conn)
			return
		case <-lost:
			b.log.Warn("nats streaming connection lost; reconnecting")
			b.disconnect(conn)
		}
	}
}

func (b *Bus) connect() (stan.Conn, chan struct{}, error) {
	lost := make(chan struct{})
	var once sync.Once
	clientID := b.cfg.ClientName + "-" + nuid.Next()
	conn, err := stan.Connect(b.cfg.ClusterID, clientID,
		stan.NatsURL(b.cfg.URL),
		stan.ConnectWait(2*time.Second),
		stan.PubAckWait(5*time.Second),
		stan.Pings(1, 3),
		stan.SetConnectionLostHandler(func(stan.Conn, error) { once.Do(func() { close(lost) }) }),
		// When NATS comes back within the ping window, nats.go reconnects
		// quietly and stan reports nothing: run the hooks (outbox sweep,
		// read-model reconcile) then too.
		stan.NatsOptions(nats.ReconnectHandler(func(*nats.Conn) { b.runHooks() })),
	)
	if err != nil {
		return nil, nil, err
	}
	b.mu.Lock()
	var subs []subscription
	for _, l := range b.listeners {
		s, err := b.subscribe(conn, l)
		if err != nil {
			b.mu.Unlock()
			for _, s := range subs {
				_ = s.close() // the connection is closed next; nothing else to do
			}
			return nil, nil, errors.Join(err, conn.Close())
		}
		subs = append(subs, s)
	}
	b.conn = conn
	b.subs = subs
	b.mu.Unlock()
	select {
	case <-b.connected:
	default:
		close(b.connected)
	}
	b.runHooks()
	return conn, lost, nil
}

func (b *Bus) disconnect(conn stan.Conn) {
	b.mu.Lock()
	b.conn = nil
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()
	for _, s := range subs {
		if err := s.close(); err != nil {
			b.log.Debug("close subscription", "err", err)
		}
	}
	if err := conn.Close(); err != nil {
		b.log.Debug("close nats streaming connection", "err", err)
	}
}

// runHooks runs every OnConnect hook in its own goroutine.
func (b *Bus) runHooks() {
	b.mu.Lock()
	hooks := append([]func(){}, b.onConnect...)
	b.mu.Unlock()
	for _, h := range hooks {
		go h()
	}
}
