package app_test

import (
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

// capMsg is the answer to a buyer who already has the default
// MAX_OPEN_ORDERS (3) orders waiting for payment.
const capMsg = "You already have 3 orders waiting for payment: pay or cancel one first"

// openOrdersOf counts the orders of userID still created, in the database.
func (h *harness) openOrdersOf(userID string) int64 {
	h.tb.Helper()
	n, err := h.DB.Collection("orders").CountDocuments(context.Background(),
		bson.D{{Key: "userId", Value: userID}, {Key: "status", Value: "created"}})
	if err != nil {
		h.tb.Fatal(err)
	}
	return n
}

// slotOf returns the open-order slot that names order id, as stored; ok
// false when there is none.
func (h *harness) slotOf(id string) (bson.M, bool) {
	h.tb.Helper()
	cur, err := h.DB.Collection("slots").Find(context.Background(), bson.D{{Key: "orderId", Value: id}})
	if err != nil {
		h.tb.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(context.Background(), &docs); err != nil {
		h.tb.Fatal(err)
	}
	if len(docs) == 0 {
		return nil, false
	}
	return docs[0], true
}

// TestOpenOrderCap: a buyer may have 3 orders waiting for payment (the
// default MAX_OPEN_ORDERS). The 4th BUY is refused with a 400 that says why
// and holds nothing: the buyer has no 4th order, and another buyer can buy
// that stuff at once. Every way an order ends gives its place back: the
// buyer's DELETE, a payment, the deadline.
func TestOpenOrderCap(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	h := newHarnessWith(t, buildWith(func(c *app.Config) { c.Now = clock.Now }))
	seller := newID()
	buyer, bc := h.User("")
	buy := func(stuff string) *testkit.Response {
		t.Helper()
		return h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+stuff+`"}`, bc)
	}
	var placed []orderJSON
	for i := range 3 {
		placed = append(placed, h.buy(bc, h.list(seller, int64(100+i))))
	}
	fourth := h.list(seller, 400)
	buy(fourth).WantError(http.StatusBadRequest, capMsg, "")
	if n := h.openOrdersOf(buyer.ID); n != 3 {
		t.Fatalf("the buyer has %d open orders, want 3", n)
	}
	if n := h.ordersOf(fourth); n != 0 {
		t.Fatalf("%d orders of the refused stuff saved", n)
	}
	h.buy(h.buyer(), fourth) // the refused BUY held nothing

	ends := []struct {
		name string
		end  func(o orderJSON)
	}{
		{"cancelled by the buyer", func(o orderJSON) {
			h.do(http.MethodDelete, "/api/orders/"+o.ID, "", bc).Want(http.StatusNoContent)
		}},
		{"paid", func(o orderJSON) {
			h.Peer.Publish(events.PaymentCreatedEvent{ID: newID(), OrderID: o.ID, Amount: o.Stuff.Price, ProviderID: "pi_cap"})
			h.wait(events.OrderCompleted, o.ID)
		}},
		{"expired", func(o orderJSON) {
			clock.Advance(o.ExpiresAt.Sub(clock.Now()) + time.Second)
			h.Peer.Publish(events.ExpirationCompleteEvent{OrderID: o.ID})
			h.wait(events.OrderCancelled, o.ID)
		}},
	}
	for i, e := range ends {
		e.end(placed[i])
		h.buy(bc, h.list(seller, 500)) // the place it gave back
		buy(h.list(seller, 600)).WantError(http.StatusBadRequest, capMsg, "")
		if n := h.openOrdersOf(buyer.ID); n != 3 {
			t.Fatalf("after an order %s: the buyer has %d open orders, want 3", e.name, n)
		}
	}
}

// TestOpenOrderCapUnderConcurrentClicks: one buyer clicks BUY on 20
// listings at the same instant, over real HTTP: 3 orders are placed and the
// 17 others refused with the cap's message, nothing else. Three rounds, the
// buyer cancelling the round's orders in between.
func TestOpenOrderCapUnderConcurrentClicks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const clicks = 20
	seller := newID()
	buyer, bc := h.User("")
	for round := range 3 {
		stuffs := make([]string, clicks)
		for i := range stuffs {
			stuffs[i] = h.listAsync(seller, int64(100+i))
		}
		for _, s := range stuffs {
			h.waitReplica(s, 1)
		}
		codes, bodies := h.clickAll(bc, stuffs)
		var won []orderJSON
		for i, code := range codes {
			switch code {
			case http.StatusCreated:
				var o orderJSON
				if err := json.Unmarshal(bodies[i], &o); err != nil {
					t.Fatal(err)
				}
				won = append(won, o)
			case http.StatusBadRequest:
				if got := testkit.ErrorItems(t, bodies[i]); !slices.Equal(got, []errs.Item{{Message: capMsg}}) {
					t.Fatalf("round %d, click %d: 400 body %s", round, i, bodies[i])
				}
			default:
				t.Fatalf("round %d, click %d: %d %s", round, i, code, bodies[i])
			}
		}
		if len(won) != 3 {
			t.Fatalf("round %d: %d orders placed, want 3", round, len(won))
		}
		if n := h.openOrdersOf(buyer.ID); n != 3 {
			t.Fatalf("round %d: %d open orders in the database, want 3", round, n)
		}
		for _, o := range won {
			h.do(http.MethodDelete, "/api/orders/"+o.ID, "", bc).Want(http.StatusNoContent)
		}
	}
}

// clickAll has the holder of cookie c POST an order of every stuff at the
// same instant and returns the answers, in the order of stuffs.
func (h *harness) clickAll(c *http.Cookie, stuffs []string) ([]int, [][]byte) {
	h.tb.Helper()
	reqs := make([]*http.Request, len(stuffs))
	for i, s := range stuffs {
		reqs[i] = h.request(http.MethodPost, "/api/orders", `{"stuffId":"`+s+`"}`, c)
	}
	codes, bodies, failures := make([]int, len(reqs)), make([][]byte, len(reqs)), make([]error, len(reqs))
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			<-release
			r, err := h.HTTP.HTTP.Do(req)
			if err != nil {
				failures[i] = err
				return
			}
			defer r.Body.Close()
			var b json.RawMessage
			failures[i] = json.NewDecoder(r.Body).Decode(&b)
			codes[i], bodies[i] = r.StatusCode, b
		})
	}
	close(release)
	wg.Wait()
	for i, err := range failures {
		if err != nil {
			h.tb.Fatalf("click %d: %v", i, err)
		}
	}
	return codes, bodies
}

// TestOpenOrderSlotsLeftByACrash: the place an order takes among its
// buyer's open orders is a document of its own, freed when the order ends.
// One left behind by a process that died after the order ended (or before
// the order was saved) does not count for long: the buyer's next BUY takes
// it back, and the sweep frees it without any BUY.
func TestOpenOrderSlotsLeftByACrash(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	h := newHarnessWith(t, buildWith(func(c *app.Config) { c.OrderSweep, c.Now = 200*time.Millisecond, clock.Now }))
	seller := newID()
	_, bc := h.User("")
	var placed []orderJSON
	for i := range 3 {
		placed = append(placed, h.buy(bc, h.list(seller, int64(100+i))))
	}
	// The first order is cancelled, and its slot written back, as a
	// process that died between the two leaves them.
	leftover, ok := h.slotOf(placed[0].ID)
	if !ok {
		t.Fatalf("no slot names order %s", placed[0].ID)
	}
	h.do(http.MethodDelete, "/api/orders/"+placed[0].ID, "", bc).Want(http.StatusNoContent)
	if _, ok := h.slotOf(placed[0].ID); ok {
		t.Fatal("the slot of a cancelled order is still there")
	}
	if _, err := h.DB.Collection("slots").InsertOne(context.Background(), leftover); err != nil {
		t.Fatal(err)
	}
	next := h.buy(bc, h.list(seller, 500)) // takes it back
	if s, ok := h.slotOf(next.ID); !ok || s["_id"] != leftover["_id"] {
		t.Fatalf("the new order's slot is %v (%v), want the leftover %v", s, ok, leftover["_id"])
	}
	h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+h.list(seller, 600)+`"}`, bc).WantError(http.StatusBadRequest, capMsg, "")

	// The sweep frees a leftover on its own.
	leftover, ok = h.slotOf(placed[1].ID)
	if !ok {
		t.Fatalf("no slot names order %s", placed[1].ID)
	}
	h.do(http.MethodDelete, "/api/orders/"+placed[1].ID, "", bc).Want(http.StatusNoContent)
	leftover["createdAt"] = clock.Now().Add(-2 * orderHold) // the sweep looks at slots older than a hold
	if _, err := h.DB.Collection("slots").InsertOne(context.Background(), leftover); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() bool {
		_, ok := h.slotOf(placed[1].ID)
		return !ok
	}, "the sweep never freed the slot of cancelled order %s", placed[1].ID)
	if s, ok := h.slotOf(placed[2].ID); !ok || fmt.Sprint(s["orderId"]) != placed[2].ID {
		t.Fatalf("the sweep freed the slot of created order %s: %v", placed[2].ID, s)
	}
	h.buy(bc, h.list(seller, 700))
}
