package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

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
	res := raceResult{codes: make([]int, len(cookies)), bodies: make([][]byte, len(cookies))}
	errs := make([]error, len(cookies))
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	for i, req := range reqs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-release
			r, err := h.client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer r.Body.Close()
			var b json.RawMessage
			errs[i] = json.NewDecoder(r.Body).Decode(&b)
			res.codes[i], res.bodies[i] = r.StatusCode, b
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(release)
	done.Wait()
	res.elapsed = time.Since(t0)
	for i, err := range errs {
		if err != nil {
			h.tb.Fatalf("buyer %d: %v", i, err)
		}
	}
	return res
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
			e := errorBody(tb, r.bodies[i])
			if len(e.Errors) != 1 || e.Errors[0].Message != heldMsg || e.Errors[0].Field != "" {
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

func (h *harness) buyers(n int) ([]string, []*http.Cookie) {
	ids, cookies := make([]string, n), make([]*http.Cookie, n)
	for i := range ids {
		ids[i] = newID()
		cookies[i] = h.cookie(ids[i])
	}
	return ids, cookies
}

// ordersOf counts the orders placed on a stuff.
func (h *harness) ordersOf(stuffID string) int64 {
	h.tb.Helper()
	n, err := h.db.Collection("orders").CountDocuments(context.Background(), bson.D{{Key: "stuff.id", Value: stuffID}})
	if err != nil {
		h.tb.Fatal(err)
	}
	return n
}

// TestPurchaseRace: 200 distinct signed-in buyers click BUY on one stuff at
// the same instant, five times over: exactly one order each time, 199 × 409
// with the customer's message, no 5xx. Then the winner of the first cancels,
// and the same race on that stuff again has exactly one winner.
func TestPurchaseRace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
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

	if code, body := h.do(http.MethodDelete, "/api/orders/"+first.ID, "", cookies[firstWinner]); code != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", code, body)
	}
	_, others := h.buyers(buyers)
	res := h.race(stuffs[0], others)
	_, again := res.check(t)
	if again.ID == first.ID || again.UserID == ids[firstWinner] {
		t.Fatalf("second sale %+v repeats the first %+v", again, first)
	}
	if n := h.ordersOf(stuffs[0]); n != 2 {
		t.Fatalf("%d orders on the stuff after a cancel and a resale, want 2", n)
	}
	h.obs.wait(t, events.OrderCancelled, first.ID)
	h.obs.wait(t, events.OrderCreated, again.ID)
}

// TestCompletionCancellationRace: for many orders at once, the owner's
// DELETE, the expiry and the payment arrive together. Each order ends one
// way only, with exactly one terminal event, consistent with the API.
func TestCompletionCancellationRace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
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
		c := h.cookie(newID())
		list[i] = placed{h.buy(c, s), c}
	}
	deletes := make([]int, n)
	failures := make([]error, 3*n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	publish := func(ev events.Event) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return h.bus.PublishEvent(ctx, ev)
	}
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
			res, err := h.client.Do(req)
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

	// Sentinels: once these are applied, every event published before them
	// on the same subjects has been handled.
	sentinelPaid := h.buy(h.cookie(newID()), h.list(seller, 1))
	sentinelExpired := h.buy(h.cookie(newID()), h.list(seller, 1))
	h.publish(events.PaymentCreatedEvent{ID: newID(), OrderID: sentinelPaid.ID, Amount: 1})
	h.publish(events.ExpirationCompleteEvent{OrderID: sentinelExpired.ID})
	h.obs.wait(t, events.OrderCompleted, sentinelPaid.ID)
	h.obs.wait(t, events.OrderCancelled, sentinelExpired.ID)

	tally := map[string]int{}
	for i, p := range list {
		o := h.order(p.cookie, p.order.ID)
		cancelled, completed := h.obs.of(events.OrderCancelled, o.ID), h.obs.of(events.OrderCompleted, o.ID)
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
		if code, body := h.do(http.MethodPost, "/api/orders", fmt.Sprintf(`{"stuffId":%q}`, stuffs[i]), h.cookie(newID())); code != want {
			t.Errorf("stuff %d after the race: %d %s, want %d", i, code, body, want)
		}
	}
}

// TestOrderCreatedSurvivesNATSOutage: an order saved while NATS is down is
// published when it is back.
func TestOrderCreatedSurvivesNATSOutage(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	h := start(t, srv.Config)
	stuff := h.list(newID(), 400)

	srv.Stop()
	testkit.Eventually(t, 20*time.Second, func() bool {
		code, _ := h.do(http.MethodGet, "/readyz", "", nil)
		return code == http.StatusServiceUnavailable
	}, "readyz still reports NATS as up")
	o := h.buy(h.cookie(newID()), stuff)
	if got := h.obs.of(events.OrderCreated, o.ID); len(got) != 0 {
		t.Fatalf("order:created seen while NATS was down: %+v", got)
	}

	srv.Restart()
	ev := h.obs.wait(t, events.OrderCreated, o.ID)
	if ev.Version != 1 || ev.Stuff.ID != stuff {
		t.Fatalf("order:created = %+v", ev)
	}
	h.waitOutboxesEmpty()
	if n := len(h.obs.of(events.OrderCreated, o.ID)); n != 1 {
		t.Fatalf("order:created seen %d times", n)
	}
}
