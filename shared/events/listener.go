package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	stan "github.com/nats-io/stan.go"
)

// Msg is one delivered message.
type Msg struct {
	Subject    Subject
	Data       []byte
	Sequence   uint64
	Deliveries int // 1 on first delivery
}

// Handler applies one message. Returning nil acks it. Returning an error
// leaves it unacked so NATS redelivers it after the ack wait: ErrNotYet for an
// event that is ahead of the local replica, any other error for a failure.
// A Permanent error parks the message at once.
type Handler func(ctx context.Context, m Msg) error

// Listener subscribes Handle to Subject in a durable queue group named after
// the service, so replicas share the work and a restart resumes where the
// service left off.
type Listener struct {
	Subject Subject
	// Group is the service's name: queue group and durable name.
	Group  string
	Handle Handler
	// Timeout bounds one handling; default 10s.
	Timeout time.Duration
	// Broadcast delivers every new message to every replica of the service
	// (a plain, non-durable subscription from now on) instead of to one
	// member of the queue group. Read models kept in memory use it; writes
	// belong in queue listeners.
	Broadcast bool
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

func (b *Bus) subscribe(conn stan.Conn, l Listener) (stan.Subscription, error) {
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = defaultHandlerTimeout
	}
	log := b.log.With("subject", string(l.Subject), "group", l.Group)
	handle := func(sm *stan.Msg) {
		if !b.begin() {
			return // closing: not acked, redelivered to a live member
		}
		defer b.end()
		m := Msg{Subject: l.Subject, Data: sm.Data, Sequence: sm.Sequence, Deliveries: int(sm.RedeliveryCount) + 1}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := safeHandle(ctx, l.Handle, m)
		if err == nil {
			ack(log, sm)
			return
		}
		var perm permanentError
		if errors.As(err, &perm) || m.Deliveries >= b.cfg.MaxDeliveries {
			log.Error("parking event", "seq", m.Sequence, "deliveries", m.Deliveries, "err", err)
			// A context of its own: a handler that ran out of time (the
			// usual poison) must not make parking fail and loop forever.
			pctx, pcancel := context.WithTimeout(context.Background(), parkTimeout)
			perr := b.park(pctx, m, err)
			pcancel()
			if perr != nil {
				log.Error("park event failed; will be redelivered", "seq", m.Sequence, "err", perr)
				return
			}
			ack(log, sm)
			return
		}
		if errors.Is(err, ErrNotYet) {
			log.Debug("event ahead of replica; not acked", "seq", m.Sequence)
			return
		}
		log.Warn("event handling failed; will be redelivered", "seq", m.Sequence, "deliveries", m.Deliveries, "err", err)
	}
	if l.Broadcast {
		return conn.Subscribe(b.cfg.Prefix+string(l.Subject), handle,
			stan.SetManualAckMode(),
			stan.AckWait(b.cfg.AckWait),
			stan.MaxInflight(64),
		)
	}
	return conn.QueueSubscribe(b.cfg.Prefix+string(l.Subject), l.Group, handle,
		stan.DurableName(l.Group),
		stan.DeliverAllAvailable(),
		stan.SetManualAckMode(),
		stan.AckWait(b.cfg.AckWait),
		stan.MaxInflight(64),
	)
}

// defaultHandlerTimeout bounds one handling when the Listener sets none.
const defaultHandlerTimeout = 10 * time.Second

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
