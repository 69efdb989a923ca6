package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/services/expiration/internal/store"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const wait = 5 * time.Second

var errBoom = errors.New("boom")

// recorder is the real store with each Claim and Delete reported, so a test
// knows when a firing has run to its end. failClaims makes the first claims
// fail as if the database were down.
type recorder struct {
	*store.Store
	mu         sync.Mutex
	failClaims int
	claims     chan claim
	deletes    chan string
	// published gets the order of each claim won: where the store hands
	// the claim's event to the outbox relay.
	published chan string
}

type claim struct {
	id      string
	claimed bool
	err     error
}

func newRecorder(st *store.Store) *recorder {
	return &recorder{Store: st, claims: make(chan claim, 1000), deletes: make(chan string, 1000)}
}

func (r *recorder) Claim(ctx context.Context, id string, now time.Time) (bool, error) {
	r.mu.Lock()
	fail := r.failClaims > 0
	if fail {
		r.failClaims--
	}
	r.mu.Unlock()
	if fail {
		r.claims <- claim{id: id, err: errBoom}
		return false, errBoom
	}
	ok, err := r.Store.Claim(ctx, id, now)
	if ok && r.published != nil {
		r.published <- id
	}
	r.claims <- claim{id: id, claimed: ok, err: err}
	return ok, err
}

func (r *recorder) Delete(ctx context.Context, id string) error {
	err := r.Store.Delete(ctx, id)
	r.deletes <- id
	return err
}

type replica struct {
	s        *scheduler.Scheduler
	rec      *recorder
	notified chan string
}

// start runs a scheduler over st on clk until the test ends.
func start(t *testing.T, st *store.Store, clk *fakeClock) *replica {
	t.Helper()
	r := &replica{rec: newRecorder(st), notified: make(chan string, 1000)}
	r.rec.published = r.notified // a claim's event, published
	r.s = scheduler.New(r.rec, func(id string) { r.notified <- id }, testkit.Logger(t), scheduler.Options{
		Now:        clk.Now,
		NewTimer:   clk.NewTimer,
		Reload:     5 * time.Second,
		Horizon:    time.Minute,
		RetryDelay: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.s.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

// loaded waits until the scheduler finished its initial load (it then arms
// its first reload timer).
func loaded(t *testing.T, clk *fakeClock) {
	t.Helper()
	testkit.Eventually(t, wait, func() bool { return clk.Armed(clk.Now().Add(5 * time.Second)) }, "initial load not done")
}

func expectNotified(t *testing.T, r *replica, want string) {
	t.Helper()
	select {
	case got := <-r.notified:
		if got != want {
			t.Fatalf("fired %q, want %q", got, want)
		}
	case <-time.After(wait):
		t.Fatalf("%q did not fire", want)
	}
}

func expectNothingFired(t *testing.T, r *replica) {
	t.Helper()
	select {
	case got := <-r.notified:
		t.Fatalf("%q fired early", got)
	default:
	}
}

func TestFiresInDeadlineOrderAtTheDeadlineNotBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	clk := newFakeClock(t0)
	r := start(t, st, clk)
	for _, ms := range []int{300, 100, 200} {
		if err := r.s.Schedule(ctx, fmt.Sprintf("o%d", ms), t0.Add(time.Duration(ms)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	for i, ms := range []int{100, 200, 300} {
		at := t0.Add(time.Duration(ms) * time.Millisecond)
		testkit.Eventually(t, wait, func() bool { return clk.Armed(at) && r.s.Len() == 3-i }, "no timer armed for the deadline at %dms", ms)
		clk.Advance(at.Sub(clk.Now()) - time.Millisecond)
		// Still asleep until the deadline: nothing was taken off the heap.
		if !clk.Armed(at) || r.s.Len() != 3-i {
			t.Fatalf("deadline at %dms disarmed or taken before it came", ms)
		}
		expectNothingFired(t, r)
		clk.Advance(time.Millisecond)
		expectNotified(t, r, fmt.Sprintf("o%d", ms))
	}
	for _, ms := range []int{100, 200, 300} {
		id := fmt.Sprintf("o%d", ms)
		testkit.Eventually(t, wait, func() bool {
			outcome, err := st.Outcome(ctx, id)
			_, derr := st.Deadline(ctx, id)
			return err == nil && outcome == scheduler.OutcomeExpired && derr != nil
		}, "%s not settled as expired with its deadline removed", id)
	}
	if n := r.s.Len(); n != 0 {
		t.Fatalf("%d deadlines still armed", n)
	}
}

func TestEarlierDeadlineWakesTheTimer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newFakeClock(t0)
	r := start(t, store.New(testkit.Mongo(t), mongox.NewWriter(), nil), clk)
	if err := r.s.Schedule(ctx, "later", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, func() bool { return clk.Armed(t0.Add(time.Hour)) }, "timer not armed for the later deadline")
	if err := r.s.Schedule(ctx, "sooner", t0.Add(10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, func() bool { return clk.Armed(t0.Add(10 * time.Millisecond)) }, "timer not re-armed for the sooner deadline")
	clk.Advance(10 * time.Millisecond)
	expectNotified(t, r, "sooner")
}

func TestOverdueDeadlinesFireAtStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	for _, id := range []string{"a", "b"} {
		if _, err := st.Add(ctx, scheduler.Deadline{OrderID: id, ExpiresAt: t0.Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	r := start(t, st, newFakeClock(t0))
	got := map[string]bool{}
	for range 2 {
		select {
		case id := <-r.notified:
			got[id] = true
		case <-time.After(wait):
			t.Fatalf("overdue deadlines did not fire at start; fired %v", got)
		}
	}
	if !got["a"] || !got["b"] {
		t.Fatalf("fired %v, want a and b", got)
	}
}

func TestReloadArmsDeadlinesScheduledElsewhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	clk := newFakeClock(t0)
	r := start(t, st, clk)
	loaded(t, clk)
	// Another replica persisted these after this one loaded.
	for _, d := range []scheduler.Deadline{
		{OrderID: "near", ExpiresAt: t0.Add(30 * time.Second)},
		{OrderID: "far", ExpiresAt: t0.Add(10 * time.Minute)},
	} {
		if _, err := st.Add(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.s.Len(); n != 0 {
		t.Fatalf("%d deadlines armed before the reload", n)
	}
	clk.Advance(5 * time.Second)
	testkit.Eventually(t, wait, func() bool { return clk.Armed(t0.Add(30 * time.Second)) }, "reload did not arm the near deadline")
	if n := r.s.Len(); n != 1 {
		t.Fatalf("%d deadlines armed after the reload, want 1 (the far one is beyond the horizon)", n)
	}
	clk.Advance(25 * time.Second)
	expectNotified(t, r, "near")
}

func TestSettledDeadlineDoesNotFireOnAnyReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	clk := newFakeClock(t0)
	a := start(t, st, clk)
	if err := a.s.Schedule(ctx, "o", t0.Add(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	b := start(t, st, clk) // loads the deadline at start
	testkit.Eventually(t, wait, func() bool { return b.s.Len() == 1 }, "replica b did not load the deadline")

	if err := a.s.Settle(ctx, "o", scheduler.OutcomeCancelled); err != nil {
		t.Fatal(err)
	}
	if n := a.s.Len(); n != 0 {
		t.Fatalf("replica a still arms %d deadlines", n)
	}
	clk.Advance(100 * time.Millisecond)
	// b still had it in memory: it tries, loses the claim to the
	// cancellation, and publishes nothing.
	select {
	case c := <-b.rec.claims:
		if c.id != "o" || c.claimed || c.err != nil {
			t.Fatalf("claim on b: %+v, want lost without error", c)
		}
	case <-time.After(wait):
		t.Fatal("replica b did not try its deadline")
	}
	select {
	case <-b.rec.deletes:
	case <-time.After(wait):
		t.Fatal("replica b did not finish its firing")
	}
	expectNothingFired(t, a)
	expectNothingFired(t, b)
	if outcome, err := st.Outcome(ctx, "o"); err != nil || outcome != scheduler.OutcomeCancelled {
		t.Fatalf("outcome %q, %v; want cancelled", outcome, err)
	}
	// Scheduling a settled order again (a redelivered order:created) arms
	// nothing.
	if err := a.s.Schedule(ctx, "o", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := a.s.Len(); n != 0 {
		t.Fatalf("a settled order was armed again (%d)", n)
	}
}

func TestReplicasFireEachDeadlineOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	clk := newFakeClock(t0)
	const n = 20
	reps := []*replica{start(t, st, clk)}
	for i := range n {
		if err := reps[0].s.Schedule(ctx, fmt.Sprintf("o%02d", i), t0.Add(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	reps = append(reps, start(t, st, clk), start(t, st, clk))
	for i, r := range reps {
		testkit.Eventually(t, wait, func() bool { return r.s.Len() == n }, "replica %d armed %d of %d", i, r.s.Len(), n)
	}
	clk.Advance(100 * time.Millisecond) // all of them are due at once on every replica

	fired := map[string]int{}
	for _, r := range reps {
		for range n {
			select {
			case <-r.rec.deletes: // the end of one firing
			case <-time.After(wait):
				t.Fatal("a replica did not finish its firings")
			}
		}
		close(r.notified)
		for id := range r.notified {
			fired[id]++
		}
	}
	if len(fired) != n {
		t.Fatalf("%d orders fired, want %d: %v", len(fired), n, fired)
	}
	for id, c := range fired {
		if c != 1 {
			t.Fatalf("%s fired %d times", id, c)
		}
	}
}

func TestLostClaimIsFollowedUpByAFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	// Another replica claimed the order and died before publishing and
	// before deleting the deadline.
	deadline := t0.Add(100 * time.Millisecond)
	if _, err := st.Add(ctx, scheduler.Deadline{OrderID: "o", ExpiresAt: deadline}); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Claim(ctx, "o", deadline); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	clk := newFakeClock(t0)
	r := start(t, st, clk)
	testkit.Eventually(t, wait, func() bool { return clk.Armed(deadline) }, "deadline not loaded")
	clk.Advance(100 * time.Millisecond)
	select {
	case c := <-r.rec.claims:
		if c.claimed || c.err != nil {
			t.Fatalf("claim %+v, want lost", c)
		}
	case <-time.After(wait):
		t.Fatal("deadline not tried")
	}
	followUp := deadline.Add(5 * time.Second)
	testkit.Eventually(t, wait, func() bool { return clk.Armed(followUp) }, "no follow-up armed")
	expectNothingFired(t, r)
	clk.Advance(followUp.Sub(clk.Now()))
	expectNotified(t, r, "o") // the relay publishes the dead replica's event
	if _, err := st.Deadline(ctx, "o"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("deadline left behind: %v", err)
	}
}

func TestFailedClaimIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newFakeClock(t0)
	r := start(t, store.New(testkit.Mongo(t), mongox.NewWriter(), nil), clk)
	r.rec.mu.Lock()
	r.rec.failClaims = 2
	r.rec.mu.Unlock()
	if err := r.s.Schedule(ctx, "o", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, func() bool { return clk.Armed(t0.Add(time.Second)) }, "timer not armed")
	clk.Advance(time.Second)
	// Backoff: 100ms, then 200ms.
	for _, retryAt := range []time.Duration{1100 * time.Millisecond, 1300 * time.Millisecond} {
		testkit.Eventually(t, wait, func() bool { return clk.Armed(t0.Add(retryAt)) }, "retry not armed at %s", retryAt)
		expectNothingFired(t, r)
		clk.Advance(t0.Add(retryAt).Sub(clk.Now()))
	}
	expectNotified(t, r, "o")
}

func TestCeilMillis(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"whole millisecond stays", base.Add(5 * time.Millisecond), base.Add(5 * time.Millisecond)},
		{"a nanosecond more rounds up", base.Add(5*time.Millisecond + 1), base.Add(6 * time.Millisecond)},
		{"other zones become UTC", base.In(time.FixedZone("x", 3600)), base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scheduler.CeilMillis(tc.in)
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("CeilMillis(%v) = %v, want %v UTC", tc.in, got, tc.want)
			}
		})
	}
}
