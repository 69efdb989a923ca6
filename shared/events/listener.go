package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	stan "github.com/nats-io/stan.go"

	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/metrics"
)

// Msg is one delivered message.
type Msg struct {
	Subject    Subject
	Data       []byte
	Sequence   uint64
	Deliveries int // 1 on first delivery
	// Published is when NATS Streaming stored the message.
	Published time.Time
}

// Handler applies one message. Returning nil acks it. Returning an error
// leaves it unacked so that it is tried again, with backoff, until it is
// older than the bus's RetryFor: ErrNotYet for an event that is ahead of the
// local replica, any other error for a failure. A Permanent error parks the
// message at once.
type Handler func(ctx context.Context, m Msg) error

// Listener subscribes Handle to Subject in a durable queue group named after
// the service, so replicas share the work and a restart resumes where the
// service left off.
type Listener struct {
	Subject Subject
	// Group is the service's name: queue group and durable name.
	Group  string
	Handle Handler
	// Timeout bounds one handling; default the bus's HandlerTimeout.
	Timeout time.Duration
	// Broadcast delivers every new message to every replica of the service
	// (a plain, non-durable subscription from now on) instead of to one
	// member of the queue group. Read models kept in memory use it; writes
	// belong in queue listeners.
	Broadcast bool
	// ReplayFor makes a Broadcast subscription start with the messages
	// published that long before it (re)subscribes, so that state kept in
	// memory for that long (the bans of the last token lifetime) survives a
	// restart or a reconnection.
	ReplayFor time.Duration
	// Workers is how many messages are handled at once (default 8), so a
	// burst of events is not applied one database round trip at a time.
	// Messages about one entity (see envelope) go to the same worker, in
	// the order they arrived; Workers 1 handles everything in order.
	Workers int
}

// ErrNotYet says the event depends on one not yet applied (its version is
// ahead of the replica): do not ack, it will come back.
var ErrNotYet = errors.New("event is ahead of the local state; will retry")

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as one that redelivery cannot fix (a payload that does
// not decode): the message is parked at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Parker stores a message that will not be applied, for a human to look at.
type Parker func(ctx context.Context, m Msg, cause error) error

// subscription is one listener's subscription on one connection, with the
// workers that handle its messages.
type subscription struct {
	stan.Subscription
	quit chan struct{}
}

// close closes the subscription (durable queue groups keep their position)
// and stops its workers; messages they had not handled yet are left unacked,
// so NATS redelivers them.
func (s subscription) close() error {
	close(s.quit)
	return s.Close()
}

func (b *Bus) subscribe(conn stan.Conn, l Listener) (subscription, error) {
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = b.cfg.HandlerTimeout
	}
	// The ack wait outlasts the handler: a message whose handling is still
	// running is never handed out again meanwhile.
	ackWait := max(b.cfg.AckWait, timeout)
	workers := l.Workers
	if workers <= 0 {
		workers = defaultWorkers
	}
	log := b.log.With("subject", string(l.Subject), "group", l.Group)
	handle := func(d delivery) {
		sm := d.msg
		defer b.end()
		m := Msg{Subject: l.Subject, Data: sm.Data, Sequence: sm.Sequence, Deliveries: int(sm.RedeliveryCount) + 1, Published: time.Unix(0, sm.Timestamp)}
		key := retryKey{group: l.Group, subject: l.Subject, broadcast: l.Broadcast, seq: sm.Sequence}
		now := time.Now()
		if !b.retries.due(key, now) {
			// Backing off: not tried, not acked, back after the ack wait.
			b.cfg.Metrics.Handled(string(l.Subject), l.Group, metrics.Skipped, 0)
			return
		}
		ctx, cancel := context.WithTimeout(correlation.With(context.Background(), d.correlation), timeout)
		defer cancel()
		err := safeHandle(ctx, l.Handle, m)
		took := time.Since(now)
		if err == nil {
			b.retries.forget(key)
			ack(log, sm)
			b.cfg.Metrics.Handled(string(l.Subject), l.Group, metrics.Acked, took)
			log.InfoContext(ctx, "event handled", "seq", m.Sequence, "deliveries", m.Deliveries, "took", took)
			return
		}
		age := now.Sub(time.Unix(0, sm.Timestamp))
		var perm permanentError
		if errors.As(err, &perm) || age >= b.cfg.RetryFor {
			log.ErrorContext(ctx, "parking event", "seq", m.Sequence, "deliveries", m.Deliveries, "age", age.Round(time.Second), "err", err)
			// A context of its own: a handler that ran out of time (the
			// usual poison) must not make parking fail and loop forever.
			pctx, pcancel := context.WithTimeout(context.Background(), parkTimeout)
			perr := b.park(pctx, m, err)
			pcancel()
			if perr != nil {
				log.Error("park event failed; will be redelivered", "seq", m.Sequence, "err", perr)
				return
			}
			b.retries.forget(key)
			ack(log, sm)
			b.cfg.Metrics.Handled(string(l.Subject), l.Group, metrics.Parked, took)
			return
		}
		next := b.retries.failed(key, now, ackWait, b.cfg.MaxBackoff)
		if errors.Is(err, ErrNotYet) {
			b.cfg.Metrics.Handled(string(l.Subject), l.Group, metrics.NotYet, took)
			log.DebugContext(ctx, "event ahead of replica; not acked", "seq", m.Sequence, "retry_in", next.Round(time.Millisecond))
			return
		}
		b.cfg.Metrics.Handled(string(l.Subject), l.Group, metrics.Failed, took)
		log.WarnContext(ctx, "event handling failed; will be retried", "seq", m.Sequence, "deliveries", m.Deliveries, "retry_in", next.Round(time.Millisecond), "err", err)
	}

	// stan calls dispatch for one message at a time; the workers handle
	// them, each entity's on one worker in arrival order.
	quit := make(chan struct{})
	queues := make([]chan delivery, workers)
	for i := range queues {
		queues[i] = make(chan delivery, maxInflight)
		go func() {
			for {
				select {
				case d := <-queues[i]:
					handle(d)
				case <-quit:
					for { // left unacked: redelivered
						select {
						case <-queues[i]:
							b.end()
						default:
							return
						}
					}
				}
			}
		}()
	}
	dispatch := func(sm *stan.Msg) {
		if !b.begin() {
			return // closing: not acked, redelivered to a live member
		}
		entity, corr := envelope(l.Subject, sm.Data)
		q := queues[shard(entity, workers)]
		select {
		case q <- delivery{msg: sm, correlation: corr}:
		case <-quit:
			b.end()
		}
	}

	var sub stan.Subscription
	var err error
	if l.Broadcast {
		opts := []stan.SubscriptionOption{stan.SetManualAckMode(), stan.AckWait(ackWait), stan.MaxInflight(maxInflight)}
		if l.ReplayFor > 0 {
			opts = append(opts, stan.StartAtTimeDelta(l.ReplayFor))
		}
		sub, err = conn.Subscribe(b.cfg.Prefix+string(l.Subject), dispatch, opts...)
	} else {
		sub, err = conn.QueueSubscribe(b.cfg.Prefix+string(l.Subject), l.Group, dispatch,
			stan.DurableName(l.Group),
			stan.DeliverAllAvailable(),
			stan.SetManualAckMode(),
			stan.AckWait(ackWait),
			stan.MaxInflight(maxInflight),
		)
	}
	if err != nil {
		close(quit)
		return subscription{}, err
	}
	return subscription{Subscription: sub, quit: quit}, nil
}

// maxInflight is how many unacked messages NATS sends a subscription.
const maxInflight = 64

// defaultWorkers is Listener.Workers when unset.
const defaultWorkers = 8

// delivery is a message on its way to a worker, with its correlation id.
type delivery struct {
	msg         *stan.Msg
	correlation string
}

// envelope reads what the bus needs of a payload: the entity it is about,
// so that a listener handles the messages about one entity in order (the
// stuff of stuff and order events: an order's events, and the orders of one
// stuff, stay in order; the order of an expiry or a payment; the user of a
// ban), and its correlation id (see Encode). A payload that does not decode
// names nothing; its handler parks it.
func envelope(subject Subject, data []byte) (entity, correlationID string) {
	var p struct {
		ID            string   `json:"id"`
		OrderID       string   `json:"orderId"`
		UserID        string   `json:"userId"`
		Stuff         StuffRef `json:"stuff"`
		CorrelationID string   `json:"correlationId"`
	}
	if json.Unmarshal(data, &p) != nil {
		return "", ""
	}
	switch subject {
	case OrderCreated, OrderCancelled, OrderCompleted:
		entity = p.Stuff.ID
	case ExpirationComplete, PaymentCreated:
		entity = p.OrderID
	case UserBanned, UserUnbanned:
		entity = p.UserID
	default:
		entity = p.ID
	}
	return entity, p.CorrelationID
}

func shard(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key)) // never fails
	return int(h.Sum32() % uint32(n))
}

// defaultHandlerTimeout is Config.HandlerTimeout when unset.
const defaultHandlerTimeout = 5 * time.Second

// parkTimeout bounds one call of the Parker.
const parkTimeout = 10 * time.Second

// safeHandle runs h, turning a panic into an error: the message is then
// redelivered and, if it keeps panicking, parked, instead of the panic
// killing the whole service.
func safeHandle(ctx context.Context, h Handler, m Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, m)
}

func ack(log *slog.Logger, sm *stan.Msg) {
	if err := sm.Ack(); err != nil {
		// The message will be redelivered; listeners are idempotent.
		log.Warn("ack failed", "seq", sm.Sequence, "err", err)
	}
}

// retryKey names one message of one listener. A service may have a queue
// listener and a broadcast listener of one subject under one group (the
// shared ban broadcast and a service's own ban listener): their backoffs
// are separate.
type retryKey struct {
	group     string
	subject   Subject
	broadcast bool
	seq       uint64
}

// retries is the backoff of failing messages: when each may be tried next,
// and how many times it failed. NATS Streaming redelivers an unacked message
// every ack wait; a redelivery that comes before the message's time is left
// alone (not handled, not acked), so a message that keeps failing is tried
// after one ack wait, then two, four … up to the cap. State is per process:
// another replica of the group tries a message when NATS hands it there.
type retries struct {
	mu sync.Mutex
	m  map[retryKey]retryState
}

type retryState struct {
	failures int
	next     time.Time
}

func newRetries() *retries { return &retries{m: map[retryKey]retryState{}} }

// due reports whether k may be tried at now.
func (r *retries) due(k retryKey, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.m[k]
	return !ok || !now.Before(st.next)
}

// failed records a failure of k at now and returns the pause before its
// next try: step × 2^(failures-1), at most limit.
func (r *retries) failed(k retryKey, now time.Time, step, limit time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.m[k]
	st.failures++
	pause := step
	for i := 1; i < st.failures && pause < limit; i++ {
		pause *= 2
	}
	pause = min(pause, limit)
	// A redelivery comes every step: aim a little before the try, so that
	// the redelivery that arrives then is handled.
	st.next = now.Add(pause - step/2)
	r.m[k] = st
	r.gc(now, limit)
	return pause
}

// forget drops k (acked or parked).
func (r *retries) forget(k retryKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, k)
}

// gc drops entries long past their time (handled by another replica, or
// never redelivered here); called with r.mu held.
func (r *retries) gc(now time.Time, limit time.Duration) {
	if len(r.m) < 1024 {
		return
	}
	for k, st := range r.m {
		if now.Sub(st.next) > 2*limit {
			delete(r.m, k)
		}
	}
}
