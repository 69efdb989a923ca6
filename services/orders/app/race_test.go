package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

const buyers = 200

type raceResult struct {
	codes   []int
	bodies  [][]byte
	elapsed time.Duration
}

// race has every holder of cookies POST an order of stuffID at the same
// instant, through real HTTP, and returns every answer and the wall time
// from the release until the last one.
func (h *harness) race(stuffID string, cookies []*http.Cookie) raceResult {
	h.tb.Helper()
	reqs := make([]*http.Request, len(cookies))
	for i, c := range cookies {
		reqs[i] = h.request(http.MethodPost, "/api/orders", `{"stuffId":"`+stuffID+`"}`, c)
	}
	client := h.HTTP.HTTP
	res := raceResult{codes: make([]int, len(cookies)), bodies: make([][]byte, len(cookies))}
	failures := make([]error, len(cookies))
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	for i, req := range reqs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-release
			r, err := client.Do(req)
			if err != nil {
				failures[i] = err
				return
			}
			defer r.Body.Close()
			var b json.RawMessage
			failures[i] = json.NewDecoder(r.Body).Decode(&b)
			res.codes[i], res.bodies[i] = r.StatusCode, b
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(release)
	done.Wait()
	res.elapsed = time.Since(t0)
	for i, err := range failures {
		if err != nil {
			h.tb.Fatalf("buyer %d: %v", i, err)
		}
	}
	return res
}

// request builds a request of the service, sent off the test's goroutine
// (where a testkit.Client, which fails the test, may not be used), with a
// JSON body (when not empty) and a cookie (when not nil).
func (h *harness) request(method, path, body string, c *http.Cookie) *http.Request {
	h.tb.Helper()
	req, err := http.NewRequest(method, h.URL+path, bytes.NewBufferString(body))
	if err != nil {
		h.tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c != nil {
		req.AddCookie(c)
	}
	return req
}

// publisher is a bus of the test's own on the service's NATS, to publish
// from many goroutines at once: the Peer's Publish fails the test, which
// only the test's goroutine may do.
func (h *harness) publisher() *events.Bus {
	h.tb.Helper()
	nc := h.NATS
	nc.ClientName = "test-publisher"
	bus := events.NewBus(nc, testkit.Logger(h.tb), nil)
	bus.Start()
	h.tb.Cleanup(func() {
		if err := bus.Close(); err != nil {
			h.tb.Errorf("close publisher: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.WaitConnected(ctx); err != nil {
		h.tb.Fatalf("publisher: %v", err)
	}
	return bus
}

// check wants exactly one 201 and 409s with the exact message for the
// rest, and returns the winner's order.
func (r raceResult) check(tb testing.TB) (int, orderJSON) {
	tb.Helper()
	winner := -1
	for i, code := range r.codes {
		switch code {
		case http.StatusCreated:
			if winner >= 0 {
				tb.Fatalf("two buyers won: %d and %d", winner, i)
			}
			winner = i
		case http.StatusConflict:
			if got := testkit.ErrorItems(tb, r.bodies[i]); !slices.Equal(got, []errs.Item{{Message: heldMsg}}) {
				tb.Fatalf("buyer %d: 409 body %s", i, r.bodies[i])
			}
		default:
			tb.Fatalf("buyer %d: %d %s", i, code, r.bodies[i])
		}
	}
	if winner < 0 {
		tb.Fatal("no buyer won")
	}
	var o orderJSON
	if err := json.Unmarshal(r.bodies[winner], &o); err != nil {
		tb.Fatal(err)
	}
	return winner, o
}

// buyers returns the ids and session cookies of n new signed-in users.
func (h *harness) buyers(n int) ([]string, []*http.Cookie) {
	ids, cookies := make([]string, n), make([]*http.Cookie, n)
	for i := range ids {
		u, c := h.User("")
		ids[i], cookies[i] = u.ID, c
	}
	return ids, cookies
}

// ordersOf counts the orders placed on a stuff.
func (h *harness) ordersOf(stuffID string) int64 {
	h.tb.Helper()
	n, err := h.DB.Collection("orders").CountDocuments(context.Background(), bson.D{{Key: "stuff.id", Value: stuffID}})
	if err != nil {
		h.tb.Fatal(err)
	}
	return n
}

// TestPurchaseRace: 200 distinct signed-in buyers click BUY on one stuff at
// the same instant, five times over: exactly one order each time, 199 × 409
// with the customer's message, no 5xx. Then the winner of the first cancels,
// and the same race on that stuff again has exactly one winner. (One buyer
// may win every round: the cap of open orders is lifted.)
func TestPurchaseRace(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, buildWith(func(c *app.Config) { c.MaxOpenOrders = buyers }))
	seller := newID()
	stuffs := make([]string, 5)
	for i := range stuffs {
		stuffs[i] = h.listAsync(seller, int64(100+i))
	}
	for _, s := range stuffs {
		h.waitReplica(s, 1)
	}
	ids, cookies := h.buyers(buyers)
	var first orderJSON
	var firstWinner int
	for round, s := range stuffs {
		res := h.race(s, cookies)
		w, o := res.check(t)
		t.Logf("round %d: %d buyers answered in %v", round, buyers, res.elapsed)
		if o.UserID != ids[w] || o.Stuff.ID != s || o.Status != "created" {
			t.Fatalf("round %d: winning order %+v, winner %s", round, o, ids[w])
		}
		if n := h.ordersOf(s); n != 1 {
			t.Fatalf("round %d: %d orders saved for the stuff", round, n)
		}
		if round == 0 {
			first, firstWinner = o, w
		}
	}

	h.do(http.MethodDelete, "/api/orders/"+first.ID, "", cookies[firstWinner]).Want(http.StatusNoContent)
	_, others := h.buyers(buyers)
	res := h.race(stuffs[0], others)
	_, again := res.check(t)
	if again.ID == first.ID || again.UserID == ids[firstWinner] {
		t.Fatalf("second sale %+v repeats the first %+v", again, first)
	}
	if n := h.ordersOf(stuffs[0]); n != 2 {
		t.Fatalf("%d orders on the stuff after a cancel and a resale, want 2", n)
	}
	h.wait(events.OrderCancelled, first.ID)
	h.wait(events.OrderCreated, again.ID)
}

// TestCompletionCancellationRace: for many orders at once, the owner's
// DELETE, the expiry and the payment arrive together. Each order ends one
// way only, with exactly one terminal event, consistent with the API.
func TestCompletionCancellationRace(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	h := newHarnessWith(t, buildWith(func(c *app.Config) { c.Now = clock.Now }))
	const n = 16
	type placed struct {
		order  orderJSON
		cookie *http.Cookie
	}
	list := make([]placed, n)
	seller := newID()
	stuffs := make([]string, n)
	for i := range stuffs {
		stuffs[i] = h.listAsync(seller, 300)
	}
	for i, s := range stuffs {
		h.waitReplica(s, 1)
		c := h.buyer()
		list[i] = placed{h.buy(c, s), c}
	}
	// Sentinels: once these are applied, every event published before them
	// on the same subjects has been handled.
	sentinelPaid := h.buy(h.buyer(), h.list(seller, 1))
	sentinelExpired := h.buy(h.buyer(), h.list(seller, 1))
	clock.Advance(orderHold) // the deadlines have come
	deletes := make([]int, n)
	failures := make([]error, 3*n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	bus := h.publisher()
	publish := func(ev events.Event) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return bus.PublishEvent(ctx, ev)
	}
	client := h.HTTP.HTTP
	for i, p := range list {
		req := h.request(http.MethodDelete, "/api/orders/"+p.order.ID, "", p.cookie)
		wg.Add(3)
		go func() {
			defer wg.Done()
			<-release
			if i%2 == 1 {
				// Half the orders race the payment against the expiry
				// alone: HTTP is quicker than NATS and would win them all.
				return
			}
			res, err := client.Do(req)
			if err != nil {
				failures[3*i] = err
				return
			}
			deletes[i] = res.StatusCode
			failures[3*i] = res.Body.Close()
		}()
		go func() {
			defer wg.Done()
			<-release
			failures[3*i+1] = publish(events.PaymentCreatedEvent{ID: newID(), OrderID: p.order.ID, Amount: 300, ProviderID: "pi_test"})
		}()
		go func() {
			defer wg.Done()
			<-release
			failures[3*i+2] = publish(events.ExpirationCompleteEvent{OrderID: p.order.ID})
		}()
	}
	close(release)
	wg.Wait()
	for _, err := range failures {
		if err != nil {
			t.Fatal(err)
		}
	}

	h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: sentinelPaid.ID, Amount: 1, ProviderID: "pi_sentinel"})
	h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: sentinelExpired.ID})
	h.wait(events.OrderCompleted, sentinelPaid.ID)
	h.wait(events.OrderCancelled, sentinelExpired.ID)

	tally := map[string]int{}
	for i, p := range list {
		o := h.order(p.cookie, p.order.ID)
		cancelled, completed := h.seen(events.OrderCancelled, o.ID), h.seen(events.OrderCompleted, o.ID)
		tally[o.Status]++
		switch o.Status {
		case "cancelled":
			if len(cancelled) != 1 || len(completed) != 0 || cancelled[0].Version != 2 {
				t.Errorf("order %d cancelled: cancelled events %+v, completed events %+v", i, cancelled, completed)
			}
			if i%2 == 0 && deletes[i] != http.StatusNoContent && deletes[i] != http.StatusBadRequest {
				t.Errorf("order %d: DELETE answered %d", i, deletes[i])
			}
		case "complete":
			if len(completed) != 1 || len(cancelled) != 0 || completed[0].Version != 2 || completed[0].UserID != o.UserID {
				t.Errorf("order %d complete: completed events %+v, cancelled events %+v", i, completed, cancelled)
			}
			if i%2 == 0 && deletes[i] != http.StatusBadRequest {
				t.Errorf("order %d completed, but DELETE answered %d", i, deletes[i])
			}
		default:
			t.Errorf("order %d ended %s", i, o.Status)
		}
		if o.Version != 2 {
			t.Errorf("order %d at version %d, want 2", i, o.Version)
		}
	}
	t.Logf("outcomes: %v", tally)

	// A completed order's stuff is sold; a cancelled order's is for sale.
	for i, p := range list {
		want := http.StatusCreated
		if h.order(p.cookie, p.order.ID).Status == "complete" {
			want = http.StatusBadRequest
		}
		if res := h.do(http.MethodPost, "/api/orders", fmt.Sprintf(`{"stuffId":%q}`, stuffs[i]), h.buyer()); res.Status != want {
			t.Errorf("stuff %d after the race: %d %s, want %d", i, res.Status, res.Body, want)
		}
	}
}

// TestOrderCreatedSurvivesNATSOutage: an order saved while NATS is down is
// published when it is back.
func TestOrderCreatedSurvivesNATSOutage(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	h := newHarness(t, testkit.OnNATS(srv.Config))
	stuff := h.list(newID(), 400)

	srv.Stop()
	testkit.Eventually(t, 20*time.Second, func() bool {
		return h.do(http.MethodGet, "/readyz", "", nil).Status == http.StatusServiceUnavailable
	}, "readyz still reports NATS as up")
	o := h.buy(h.buyer(), stuff)
	if got := h.seen(events.OrderCreated, o.ID); len(got) != 0 {
		t.Fatalf("order:created seen while NATS was down: %+v", got)
	}

	srv.Restart()
	ev := h.wait(events.OrderCreated, o.ID)
	if ev.Version != 1 || ev.Stuff.ID != stuff {
		t.Fatalf("order:created = %+v", ev)
	}
	h.waitOutboxesEmpty()
	if n := len(h.seen(events.OrderCreated, o.ID)); n != 1 {
		t.Fatalf("order:created seen %d times", n)
	}
}
