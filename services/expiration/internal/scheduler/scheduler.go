// Package scheduler is the expiration service's durable timer: it persists
// every order deadline, keeps the upcoming ones in an in-memory min-heap, and
// at each deadline claims the order's expiry, once across replicas, together
// with its expiration:complete event, which the outbox relay then publishes.
//
// Durability comes from the store: a deadline is written before its event is
// acked, pending deadlines are loaded at start (overdue ones fire at once),
// and every replica reloads the deadlines due soon on a short period, so a
// deadline scheduled by a replica that died still fires on another.
// Precision comes from a single timer goroutine that sleeps until the
// earliest deadline (no polling tick) and hands due deadlines to a few
// workers. docs/flows.md follows an expiry from order:created to the
// released stuff.
package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// Outcomes recorded when an order's deadline is settled. Exactly one is
// recorded per order: the first claim wins.
const (
	OutcomeExpired   = "expired"
	OutcomeCancelled = "cancelled"
	OutcomeCompleted = "completed"
)

// Deadline is an order's hold deadline waiting to fire.
type Deadline struct {
	OrderID   string
	ExpiresAt time.Time
	// CorrelationID is the id of the purchase that created the order
	// (package correlation), "" when it had none: its expiration:complete
	// carries it, so that the expiry shows in the purchase's story.
	CorrelationID string
}

// Store persists deadlines and settles them. Claim and Settle make the one
// decision replicas race on (does this order expire?) and must be a single
// unique-key insert, never a conditional update: a filter-then-update is not
// atomic on FerretDB (docs/data-safety.md, "Two rules").
type Store interface {
	// Add persists d; false when the order already has a deadline.
	Add(ctx context.Context, d Deadline) (bool, error)
	// Due lists the pending deadlines that expire before before (all of them
	// when before is zero).
	Due(ctx context.Context, before time.Time) ([]Deadline, error)
	// Delete forgets the pending deadline of an order (no error if none).
	Delete(ctx context.Context, orderID string) error
	// Claim settles the order as expired together with its pending
	// expiration:complete event, and has the event published; false when
	// it was already settled.
	Claim(ctx context.Context, orderID string, now time.Time) (bool, error)
	// Settle records another outcome, so the deadline never fires; false
	// when the order was already settled.
	Settle(ctx context.Context, orderID, outcome string, now time.Time) (bool, error)
	// IsSettled reports whether the order was already settled.
	IsSettled(ctx context.Context, orderID string) (bool, error)
	// Deadline returns an order's pending deadline, or an error wrapping
	// errs.ErrNotFound.
	Deadline(ctx context.Context, orderID string) (Deadline, error)
	// Prune forgets settlements made before before whose event is out.
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// Timer is what the scheduler sleeps on: a *time.Timer in production, a
// fake one in tests.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Options tunes a Scheduler. The zero value is valid.
type Options struct {
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// NewTimer starts a timer; time.NewTimer by default.
	NewTimer func(d time.Duration) Timer
	// Reload is how often the store is read again for deadlines due within
	// Horizon, so deadlines another replica scheduled fire here too.
	// Defaults: 5s and 1m.
	Reload  time.Duration
	Horizon time.Duration
	// Workers fire due deadlines concurrently; default 4.
	Workers int
	// RetryDelay is the first pause before a failed claim is tried again
	// (doubling up to MaxRetryDelay); defaults 100ms and 5s.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// OpTimeout bounds one store operation of a firing; default 10s.
	OpTimeout time.Duration
	// FollowUp is how long after a lost claim the settlement's outbox is
	// flushed from this replica too; default 5s.
	FollowUp time.Duration
	// Retention is how long a settlement is kept after it is made (and its
	// event published), pruned every PruneEvery; defaults 1h and 1m. It
	// must outlast the hold window, so that an order cancelled early never
	// fires on a replica that still has its deadline in memory.
	Retention  time.Duration
	PruneEvery time.Duration
	// Metrics is told how late each deadline this replica fired was; nil
	// tells nothing.
	Metrics Metrics
}

// Metrics is told about the deadlines fired (the app observes them in the
// service's Prometheus registry: expiration_lateness_seconds, see
// docs/observability.md).
type Metrics interface {
	// Fired is told that a deadline fired late after it: the moment of
	// its claim minus the deadline. Only the replica whose claim won tells.
	Fired(late time.Duration)
}

// unobserved is the Metrics of a Scheduler given none.
type unobserved struct{}

func (unobserved) Fired(time.Duration) {}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewTimer == nil {
		o.NewTimer = func(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }
	}
	if o.Reload <= 0 {
		o.Reload = 5 * time.Second
	}
	if o.Horizon <= 0 {
		o.Horizon = time.Minute
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 100 * time.Millisecond
	}
	if o.MaxRetryDelay <= 0 {
		o.MaxRetryDelay = 5 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.FollowUp <= 0 {
		o.FollowUp = 5 * time.Second
	}
	if o.Retention <= 0 {
		o.Retention = time.Hour
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = time.Minute
	}
	if o.Metrics == nil {
		o.Metrics = unobserved{}
	}
}

// Scheduler schedules, cancels and fires order deadlines. Schedule and Settle
// may be called before and during Run, from any goroutine.
type Scheduler struct {
	store    Store
	followUp func(orderID string)
	log      *slog.Logger
	opts     Options

	mu       sync.Mutex
	q        queue
	byID     map[string]*item
	inflight map[string]bool
	wake     chan struct{}
}

// New returns a Scheduler over store. A claim's event is the store's to hand
// to the outbox relay; followUp asks the relay to publish whatever an order's
// settlement still holds, FollowUp after a claim lost to another replica.
func New(store Store, followUp func(orderID string), log *slog.Logger, opts Options) *Scheduler {
	opts.defaults()
	return &Scheduler{
		store:    store,
		followUp: followUp,
		log:      log,
		opts:     opts,
		byID:     make(map[string]*item),
		inflight: make(map[string]bool),
		wake:     make(chan struct{}, 1),
	}
}

// Schedule persists the deadline of an order and arms it. It is idempotent:
// an order already scheduled keeps one deadline, and an order already
// settled (expired, cancelled or completed) is not scheduled again. The
// correlation id ctx carries is kept with the deadline, for its
// expiration:complete. It returns only store errors; the caller should not
// ack the event then.
func (s *Scheduler) Schedule(ctx context.Context, orderID string, expiresAt time.Time) error {
	settled, err := s.store.IsSettled(ctx, orderID)
	if err != nil {
		return fmt.Errorf("schedule order %s: %w", orderID, err)
	}
	if settled {
		return nil
	}
	d := Deadline{OrderID: orderID, ExpiresAt: CeilMillis(expiresAt), CorrelationID: correlation.ID(ctx)}
	created, err := s.store.Add(ctx, d)
	if err != nil {
		return fmt.Errorf("schedule order %s: %w", orderID, err)
	}
	if !created {
		// Scheduled before (a redelivery, a replay): the stored deadline
		// stands. It may just have fired and gone: then nothing to arm.
		d, err = s.store.Deadline(ctx, orderID)
		if errors.Is(err, errs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("schedule order %s: %w", orderID, err)
		}
	}
	s.add(d)
	return nil
}

// Settle records that an order ended otherwise (cancelled or completed), so
// its deadline never fires, on any replica, and forgets the deadline.
//
// An order already settled (most often: its own expiry, whose firing
// deletes the deadline) costs one read. Should a settlement ever be left with
// its deadline still stored (a replica died in between), the deadline fires
// at the next reload, its claim fails, and the firing deletes it.
func (s *Scheduler) Settle(ctx context.Context, orderID, outcome string) error {
	s.remove(orderID)
	settled, err := s.store.IsSettled(ctx, orderID)
	if err != nil {
		return fmt.Errorf("settle order %s: %w", orderID, err)
	}
	if settled {
		return nil
	}
	if settled, err = s.store.Settle(ctx, orderID, outcome, s.opts.Now()); err != nil {
		return fmt.Errorf("settle order %s: %w", orderID, err)
	}
	if !settled {
		return nil // settled meanwhile, here or on another replica
	}
	if err := s.store.Delete(ctx, orderID); err != nil {
		return fmt.Errorf("settle order %s: %w", orderID, err)
	}
	return nil
}

// Len is the number of deadlines armed in memory (tests and metrics).
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q)
}

// Run loads the pending deadlines and fires them as they come due, until ctx
// ends. Firings in progress finish before Run returns.
func (s *Scheduler) Run(ctx context.Context) {
	jobs := make(chan item)
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Go(func() {
			for it := range jobs {
				s.fire(ctx, it)
			}
		})
	}
	wg.Go(func() { s.reload(ctx) })
	wg.Go(func() { s.prune(ctx) })
	s.loop(ctx, jobs)
	close(jobs)
	wg.Wait()
}

// loop is the single timer goroutine: it sleeps until the earliest deadline
// (or until an earlier one is added) and dispatches due deadlines.
func (s *Scheduler) loop(ctx context.Context, jobs chan<- item) {
	for {
		s.mu.Lock()
		var due *item
		wait := time.Duration(-1)
		if len(s.q) > 0 {
			if d := s.q[0].due.Sub(s.opts.Now()); d > 0 {
				wait = d
			} else {
				due = heap.Pop(&s.q).(*item)
				delete(s.byID, due.id)
				s.inflight[due.id] = true
			}
		}
		s.mu.Unlock()

		if due != nil {
			select {
			case jobs <- *due:
			case <-ctx.Done():
				return
			}
			continue
		}
		var timer Timer
		var fired <-chan time.Time
		if wait >= 0 {
			timer = s.opts.NewTimer(wait)
			fired = timer.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-s.wake:
			if timer != nil {
				timer.Stop()
			}
		case <-fired:
		}
	}
}

// fire claims one due deadline. A failed claim is retried with backoff. A
// claim lost to another replica (or to a cancellation) publishes nothing
// now, but is followed up: FollowUp later the outbox of the settlement is
// flushed from here too, so that an event claimed by a replica that died
// before publishing it goes out within seconds rather than at the next
// sweep. Flushing an outbox already sent is a no-op.
func (s *Scheduler) fire(ctx context.Context, it item) {
	if it.followUp {
		s.followUp(it.id)
		s.mu.Lock()
		delete(s.inflight, it.id)
		s.mu.Unlock()
		return
	}
	// A firing that started finishes even during shutdown: stopping halfway
	// would leave it ambiguous whether the claim was written. The purchase's
	// correlation id goes into the event and onto the log lines.
	octx, cancel := context.WithTimeout(correlation.With(context.WithoutCancel(ctx), it.correlationID), s.opts.OpTimeout)
	defer cancel()
	now := s.opts.Now()
	claimed, err := s.store.Claim(octx, it.id, now)
	if err != nil {
		s.retry(octx, it, err)
		return
	}
	if claimed {
		late := now.Sub(it.at)
		s.opts.Metrics.Fired(late)
		s.log.InfoContext(octx, "deadline fired", "order_id", it.id, "late", late)
	}
	if err := s.store.Delete(octx, it.id); err != nil {
		// The deadline comes back with the next reload; its claim then
		// fails as a duplicate and the delete is tried again.
		s.log.WarnContext(octx, "forget fired deadline", "order_id", it.id, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, it.id)
	if _, armed := s.byID[it.id]; !claimed && !armed {
		s.pushLocked(&item{id: it.id, at: it.at, due: s.opts.Now().Add(s.opts.FollowUp), followUp: true})
	}
}

func (s *Scheduler) retry(ctx context.Context, it item, cause error) {
	delay := s.opts.RetryDelay << min(it.attempts, 16)
	delay = min(delay, s.opts.MaxRetryDelay)
	s.log.WarnContext(ctx, "claim deadline failed; retrying", "order_id", it.id, "in", delay, "err", cause)
	it.attempts++
	it.due = s.opts.Now().Add(delay)
	s.mu.Lock()
	delete(s.inflight, it.id)
	if _, ok := s.byID[it.id]; !ok {
		s.pushLocked(&it)
	}
	s.mu.Unlock()
}

// reload loads every pending deadline at start (retrying until the store
// answers), then those due within Horizon every Reload.
func (s *Scheduler) reload(ctx context.Context) {
	delay := s.opts.RetryDelay
	for {
		n, err := s.load(ctx, time.Time{})
		if err == nil {
			s.log.Info("pending deadlines loaded", "count", n)
			break
		}
		s.log.Warn("load pending deadlines; retrying", "in", delay, "err", err)
		if !s.sleep(ctx, delay) {
			return
		}
		delay = min(2*delay, s.opts.MaxRetryDelay)
	}
	for s.sleep(ctx, s.opts.Reload) {
		if _, err := s.load(ctx, s.opts.Now().Add(s.opts.Horizon)); err != nil {
			s.log.Warn("reload deadlines", "err", err)
		}
	}
}

// prune keeps the settlements few: they are only needed while a replica
// may still try the same deadline.
func (s *Scheduler) prune(ctx context.Context) {
	for s.sleep(ctx, s.opts.PruneEvery) {
		n, err := s.store.Prune(ctx, s.opts.Now().Add(-s.opts.Retention))
		if err != nil {
			s.log.Warn("prune settlements", "err", err)
		}
		if n > 0 {
			s.log.Debug("settlements pruned", "count", n)
		}
	}
}

func (s *Scheduler) load(ctx context.Context, before time.Time) (int, error) {
	ds, err := s.store.Due(ctx, before)
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		s.add(d)
	}
	return len(ds), nil
}

// sleep waits d on the scheduler's clock; false when ctx ended.
func (s *Scheduler) sleep(ctx context.Context, d time.Duration) bool {
	t := s.opts.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// add arms d in memory, once per order.
func (s *Scheduler) add(d Deadline) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[d.OrderID] {
		return
	}
	if it, ok := s.byID[d.OrderID]; ok {
		if it.attempts == 0 && !it.followUp && !it.at.Equal(d.ExpiresAt) {
			it.at, it.due = d.ExpiresAt, d.ExpiresAt
			heap.Fix(&s.q, it.index)
			s.wakeLocked()
		}
		return
	}
	s.pushLocked(&item{id: d.OrderID, at: d.ExpiresAt, due: d.ExpiresAt, correlationID: d.CorrelationID})
}

func (s *Scheduler) pushLocked(it *item) {
	heap.Push(&s.q, it)
	s.byID[it.id] = it
	if it.index == 0 {
		s.wakeLocked()
	}
}

func (s *Scheduler) wakeLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) remove(orderID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.byID[orderID]; ok {
		heap.Remove(&s.q, it.index)
		delete(s.byID, orderID)
	}
}

// CeilMillis rounds t up to the millisecond, in UTC. MongoDB keeps
// milliseconds, so a deadline is stored rounded up: it may fire up to 1 ms
// later than asked, never earlier, and memory and store agree on it.
func CeilMillis(t time.Time) time.Time {
	r := t.Truncate(time.Millisecond)
	if r.Before(t) {
		r = r.Add(time.Millisecond)
	}
	return r.UTC()
}

// item is one armed deadline. due is when to try next: the deadline itself,
// later after a failed claim, or the follow-up of a lost one.
type item struct {
	id            string
	at            time.Time
	due           time.Time
	correlationID string
	attempts      int
	// followUp marks the flush that follows a lost claim.
	followUp bool
	index    int
}

// queue is a min-heap of items by due time.
type queue []*item

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *queue) Push(x any) {
	it := x.(*item)
	it.index = len(*q)
	*q = append(*q, it)
}

func (q *queue) Pop() any {
	old := *q
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	*q = old[:n-1]
	return it
}
