package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/services/expiration/app"
	"github.com/stuffmart/stuffmart/services/expiration/internal/scheduler"
	"github.com/stuffmart/stuffmart/services/expiration/internal/store"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// The tests of this file measure time to the millisecond against one
// embedded FerretDB, which stalls every query while any test creates or drops
// a database or collection (one lock over the whole server): they run one
// at a time, so that no test's timing depends on another's setup.

// checkLate fails unless arrived is at or after deadline and at most max
// after it.
//
// How late is the benchmarks' to measure (the README's deadline precision
// rows), not a test's: a loaded machine makes any bound here flaky.
func checkLate(tb testing.TB, id string, deadline, arrived time.Time) time.Duration {
	tb.Helper()
	late := arrived.Sub(deadline)
	if late < 0 {
		tb.Fatalf("%s expired %s before its deadline", id, -late)
	}
	return late
}

// firstReload is when the scheduler first reads the store again after its
// start (its default Reload): a deadline that fires sooner was fired by the
// mechanism a test is about.
const firstReload = 5 * time.Second

func TestOrderExpiresAfterItsDeadline(t *testing.T) {
	c, got := start(t)

	deadline := time.Now().Add(300 * time.Millisecond)
	created(t, c, "o1", deadline)
	late := checkLate(t, "o1", deadline, got.first(t, "o1", 5*time.Second))
	t.Logf("expiration:complete arrived %s after the deadline", late)

	st := store.New(c.DB, mongox.NewWriter(), nil)
	if outcome, err := st.Outcome(context.Background(), "o1"); err != nil || outcome != scheduler.OutcomeExpired {
		t.Fatalf("outcome %q, %v; want expired", outcome, err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		_, err := st.Deadline(context.Background(), "o1")
		return errors.Is(err, errs.ErrNotFound)
	}, "fired deadline not removed")
	// The relay took the sent event out of the claim: no sweep sends it
	// again, and the settlement can be pruned.
	testkit.Eventually(t, 5*time.Second, func() bool {
		n, err := st.SettledFor("o1").CountDocuments(context.Background(), bson.D{
			{Key: "_id", Value: "o1"},
			{Key: outbox.Field + ".0", Value: bson.D{{Key: "$exists", Value: true}}},
		})
		return err == nil && n == 0
	}, "published event left in the claim's outbox")
}

func TestOverdueDeadlineFiresAtRestart(t *testing.T) {
	first, got := start(t)

	deadline := time.Now().Add(1500 * time.Millisecond)
	created(t, first, "o1", deadline)
	st := store.New(first.DB, mongox.NewWriter(), nil)
	testkit.Eventually(t, 5*time.Second, func() bool {
		_, err := st.Deadline(context.Background(), "o1")
		return err == nil
	}, "deadline not persisted")
	first.Stop()
	if time.Now().After(deadline) {
		t.Fatal("test setup too slow: the service stopped after the deadline")
	}
	// Down over the deadline: nothing fires.
	holds(t, deadline.Add(300*time.Millisecond), func() bool { return got.count("o1") == 0 }, "fired while the service was down")

	restart := time.Now()
	replica(t, first)
	arrived := got.first(t, "o1", 5*time.Second)
	// Fired by the load at start, not by the first periodic reload.
	if since := arrived.Sub(restart); since >= firstReload {
		t.Fatalf("overdue deadline fired %s after the restart: not by the load at start", since)
	}
	checkLate(t, "o1", deadline, arrived)
	t.Logf("fired %s after the restart", arrived.Sub(restart))
}

func TestTwoReplicasFireEachDeadlineOnce(t *testing.T) {
	a, got := start(t)
	replica(t, a)

	// Each replica receives some of the order:created events (queue
	// group) and, with its reload 5 s after start, all of the deadlines:
	// both race for every claim.
	const n = 50
	base := time.Now().Add(6 * time.Second)
	deadlines := map[string]time.Time{}
	for i := range n {
		id := fmt.Sprintf("o%02d", i)
		deadlines[id] = base.Add(time.Duration(i) * 40 * time.Millisecond)
		created(t, a, id, deadlines[id])
	}
	testkit.Eventually(t, 15*time.Second, func() bool { orders, _ := got.total(); return orders == n },
		"not every order expired")
	// Quiet period past the last deadline: no second event for any order.
	holds(t, time.Now().Add(time.Second), func() bool { _, evs := got.total(); return evs == n },
		"an order expired twice")
	// Racing for the claims must not cost the precision either.
	var worst time.Duration
	for id, d := range deadlines {
		worst = max(worst, checkLate(t, id, d, got.first(t, id, 0)))
	}
	t.Logf("worst lateness over %d orders on two replicas: %s", n, worst)
}

func TestDuplicateOrderCreatedFiresOnce(t *testing.T) {
	c, got := start(t)

	deadline := time.Now().Add(400 * time.Millisecond)
	created(t, c, "o1", deadline)
	created(t, c, "o1", deadline)
	created(t, c, "o1", deadline.Add(time.Hour)) // a replay cannot move it either
	checkLate(t, "o1", deadline, got.first(t, "o1", 5*time.Second))
	holds(t, time.Now().Add(700*time.Millisecond), func() bool { return got.count("o1") == 1 }, "o1 expired more than once")
	testkit.Eventually(t, 5*time.Second, func() bool {
		ds, err := store.New(c.DB, mongox.NewWriter(), nil).Due(context.Background(), time.Time{})
		return err == nil && len(ds) == 0
	}, "deadline left after firing")
}

func TestCancelledOrCompletedOrderDoesNotFire(t *testing.T) {
	c, got := start(t)
	st := store.New(c.DB, mongox.NewWriter(), nil)
	ctx := context.Background()

	deadline := time.Now().Add(2 * time.Second)
	for _, id := range []string{"cancelled", "completed", "control"} {
		created(t, c, id, deadline)
	}
	testkit.Eventually(t, 5*time.Second, func() bool {
		ds, err := st.Due(ctx, time.Time{})
		return err == nil && len(ds) == 3
	}, "deadlines not persisted")
	c.Peer.Publish(events.OrderCancelledEvent{ID: "cancelled", Version: 1, Stuff: events.StuffRef{ID: "stuff-cancelled"}})
	c.Peer.Publish(events.OrderCompletedEvent{ID: "completed", Version: 1, UserID: "buyer", Stuff: events.StuffRef{ID: "stuff-completed"}})
	for id, want := range map[string]string{"cancelled": scheduler.OutcomeCancelled, "completed": scheduler.OutcomeCompleted} {
		var outcome string
		testkit.Eventually(t, 5*time.Second, func() bool {
			var err error
			outcome, err = st.Outcome(ctx, id)
			_, derr := st.Deadline(ctx, id)
			return err == nil && outcome != "" && errors.Is(derr, errs.ErrNotFound)
		}, "%s: not settled with its deadline removed", id)
		if outcome != want {
			t.Fatalf("%s settled as %q, want %q (settled after %s)", id, outcome, want, time.Until(deadline))
		}
	}
	if time.Now().After(deadline) {
		t.Fatal("test setup too slow: settled after the deadline")
	}
	// The control order, due at the same moment, proves the firing
	// happened; the settled ones stay quiet well past it.
	checkLate(t, "control", deadline, got.first(t, "control", 5*time.Second))
	holds(t, deadline.Add(500*time.Millisecond), func() bool { return got.count("cancelled")+got.count("completed") == 0 },
		"a settled order expired")
}

func TestPastDeadlineFiresAtOnce(t *testing.T) {
	c, got := start(t)

	sent := time.Now()
	created(t, c, "o1", sent.Add(-time.Minute))
	// Fired on its event, not found by the first periodic reload.
	if since := got.first(t, "o1", 5*time.Second).Sub(sent); since >= firstReload {
		t.Fatalf("past deadline fired %s after its event: not on the event", since)
	}
}

func TestBadPayloadIsParked(t *testing.T) {
	c, got := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	bad := map[events.Subject]string{
		events.OrderCreated:   `{"id": 42`,
		events.OrderCancelled: `{"version": 3}`,
	}
	for subject, data := range bad {
		c.Peer.PublishRaw(subject, []byte(data))
	}
	created(t, c, "no-deadline", time.Time{})
	testkit.Eventually(t, 5*time.Second, func() bool {
		n, err := c.DB.Collection("parked_events").CountDocuments(ctx, bson.D{})
		return err == nil && n == 3
	}, "bad payloads not parked")
	// The listener goes on with good events.
	deadline := time.Now().Add(100 * time.Millisecond)
	created(t, c, "o1", deadline)
	checkLate(t, "o1", deadline, got.first(t, "o1", 5*time.Second))
	if got.count("no-deadline") != 0 {
		t.Fatal("an order without a deadline expired")
	}
}

func TestProbesAndNoAPI(t *testing.T) {
	c := testkit.Start(t, app.Name, build)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/readyz", http.StatusOK},
		{http.MethodGet, "/api/expiration", http.StatusNotFound},
		{http.MethodPost, "/api/orders", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			// A client of the subtest's own, so that a failure stops the subtest.
			testkit.NewClient(t, c.URL, testkit.WithoutCookies()).Do(tc.method, tc.path, nil).Want(tc.want)
		})
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	t.Run("reports every missing variable", func(t *testing.T) {
		_, err := app.LoadConfig(func(string) string { return "" })
		if err == nil {
			t.Fatal("no error without configuration")
		}
		for _, name := range []string{"MONGO_URI", "NATS_URL", "JWT_KEY", "SESSION_KEY"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not mention %s", err, name)
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		e := map[string]string{"MONGO_URI": "mongodb://db", "NATS_URL": "nats://nats:4222", "JWT_KEY": testkit.JWTKey, "SESSION_KEY": testkit.SessionKey}
		cfg, err := app.LoadConfig(func(k string) string { return e[k] })
		if err != nil {
			t.Fatal(err)
		}
		s := cfg.Service
		if s.Name != "expiration" || s.MongoDB != "expiration" || s.HTTPAddr != ":3000" || s.NATS.ClusterID != "stuffmart" {
			t.Fatalf("defaults %+v", s)
		}
	})
}
