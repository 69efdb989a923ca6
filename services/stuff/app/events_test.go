package app_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/services/stuff/internal/store"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// waitStuff polls GET /api/stuff/:id as u until cond holds.
func (s *stack) waitStuff(t testing.TB, u user, id string, cond func(stuffJSON) bool, what string) stuffJSON {
	t.Helper()
	var last stuffJSON
	testkit.Eventually(t, 15*time.Second, func() bool {
		last = s.get(t, u, id)
		return cond(last)
	}, "stuff %s: %s (last seen %+v)", id, what, &last)
	return last
}

func created(orderID, buyerID, stuffID string) events.OrderCreatedEvent {
	return events.OrderCreatedEvent{ID: orderID, Version: 1, Status: events.OrderStatusCreated, UserID: buyerID,
		ExpiresAt: time.Now().Add(15 * time.Minute), Stuff: events.StuffRef{ID: stuffID, Price: 100}}
}

func cancelled(orderID, stuffID string) events.OrderCancelledEvent {
	return events.OrderCancelledEvent{ID: orderID, Version: 2, Stuff: events.StuffRef{ID: stuffID}}
}

func completed(orderID, buyerID, stuffID string) events.OrderCompletedEvent {
	return events.OrderCompletedEvent{ID: orderID, Version: 2, UserID: buyerID, Stuff: events.StuffRef{ID: stuffID, Price: 100}}
}

// TestOrderEvents runs the order-event scenarios on one service; each
// scenario has its own stuff, so they run side by side.
func TestOrderEvents(t *testing.T) {
	t.Parallel()
	// An event of an order never seen is parked once the retry budget is
	// spent: a short one here, long enough for the events that only wait.
	nc := testkit.NATS(t)
	nc.RetryFor = 8 * time.Second
	s := newStack(t, observe, testkit.OnNATS(nc))
	b := s.Peer
	seller := s.user()
	reserved := func(order string) func(stuffJSON) bool {
		return func(x stuffJSON) bool { return x.Status == "reserved" && x.OrderID == order }
	}
	available := func(x stuffJSON) bool { return x.Status == "available" && x.OrderID == "" }

	t.Run("created and edited publish increasing versions", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Versions", 100, "secret")
		ev := s.waitVersion(t, st.ID, 1)
		if ev.Subject != events.StuffCreated || ev.Data.Title != "Versions" || ev.Data.Price != 100 || ev.Data.UserID != seller.ID ||
			ev.Data.Status != "available" || ev.Data.Currency != "usd" || ev.Data.OrderID != "" {
			t.Fatalf("stuff:created %+v", ev)
		}
		s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Versions 2","price":150}`).stuff(200)
		s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Versions 3","price":175}`).stuff(200)
		for v, title := range map[int64]string{2: "Versions 2", 3: "Versions 3"} {
			ev := s.waitVersion(t, st.ID, v)
			if ev.Subject != events.StuffUpdated || ev.Data.Title != title {
				t.Fatalf("version %d: %+v", v, ev)
			}
		}
		if n := len(s.of(t, st.ID)); n != 3 {
			t.Fatalf("%d events for 3 versions: %+v", n, s.of(t, st.ID))
		}
	})

	t.Run("order created reserves once, edit refused, listing hides it", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Reserve me", 100, "secret")
		order := newID()
		b.Publish(created(order, newID(), st.ID))
		b.Publish(created(order, newID(), st.ID)) // duplicate delivery
		got := s.waitStuff(t, anon, st.ID, reserved(order), "reserved")
		if got.Version != 2 {
			t.Fatalf("version %d after order:created, want 2", got.Version)
		}
		ev := s.waitVersion(t, st.ID, 2)
		if ev.Subject != events.StuffUpdated || ev.Data.Status != "reserved" || ev.Data.OrderID != order {
			t.Fatalf("stuff:updated %+v", ev)
		}
		s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Changed","price":1}`).
			wantError(400, "Cannot edit a reserved stuff", "")
		if s.list(t, "?limit=100").has(st.ID) {
			t.Fatal("reserved stuff still listed")
		}
		// A later, unrelated event on the same stuff is the sync point that
		// proves the duplicate was applied (or not) before it.
		b.Publish(cancelled(order, st.ID))
		s.waitStuff(t, anon, st.ID, available, "available again")
		s.waitVersion(t, st.ID, 3)
		if evs := s.of(t, st.ID); len(evs) != 3 {
			t.Fatalf("the duplicate order:created changed something: events %+v", evs)
		}
		if got := s.get(t, anon, st.ID); got.Version != 3 || got.Title != "Reserve me" {
			t.Fatalf("after release %+v", got)
		}
		if !s.list(t, "?limit=100").has(st.ID) {
			t.Fatal("released stuff not listed again")
		}
	})

	t.Run("cancel before create comes back and ends available", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Out of order", 100, "")
		order := newID()
		b.Publish(cancelled(order, st.ID))
		b.Publish(created(order, newID(), st.ID))
		s.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.Version == 3 }, "version 3")
		if got := s.get(t, anon, st.ID); !available(got) {
			t.Fatalf("after out-of-order events %+v", got)
		}
		if e2, e3 := s.waitVersion(t, st.ID, 2), s.waitVersion(t, st.ID, 3); e2.Data.Status != "reserved" || e3.Data.Status != "available" {
			t.Fatalf("events %+v %+v", e2, e3)
		}
	})

	t.Run("cancel of another order is ignored", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Second buyer", 100, "")
		o1, o2 := newID(), newID()
		b.Publish(created(o1, newID(), st.ID))
		s.waitStuff(t, anon, st.ID, reserved(o1), "reserved by o1")
		b.Publish(cancelled(o1, st.ID))
		s.waitStuff(t, anon, st.ID, available, "released")
		b.Publish(created(o2, newID(), st.ID))
		s.waitStuff(t, anon, st.ID, reserved(o2), "reserved by o2")
		b.Publish(cancelled(o1, st.ID))      // late redelivery of o1's cancel
		b.Publish(cancelled(newID(), st.ID)) // an order never seen: parked in the end
		testkit.Eventually(t, 30*time.Second, func() bool { return parked(t, s.DB, events.OrderCancelled) >= 1 }, "unknown order's cancel not parked")
		if got := s.get(t, anon, st.ID); !reserved(o2)(got) || got.Version != 4 {
			t.Fatalf("another order's cancel changed the stuff: %+v", got)
		}
	})

	t.Run("second order waits for the first one's cancel", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Queue", 100, "")
		o1, o2 := newID(), newID()
		b.Publish(created(o1, newID(), st.ID))
		s.waitStuff(t, anon, st.ID, reserved(o1), "reserved by o1")
		b.Publish(created(o2, newID(), st.ID)) // o1 still holds: comes back
		b.Publish(cancelled(o1, st.ID))
		got := s.waitStuff(t, anon, st.ID, reserved(o2), "reserved by o2")
		if got.Version != 4 {
			t.Fatalf("version %d, want 4", got.Version)
		}
	})

	t.Run("completed sells and shows the buyer the delivery", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Sell me", 100, "the secret link")
		buyer, stranger := s.user(), s.user()
		order := newID()
		if got := s.get(t, buyer, st.ID); got.Delivery != nil {
			t.Fatal("delivery shown before the purchase")
		}
		b.Publish(completed(order, buyer.ID, st.ID)) // before its order:created
		b.Publish(created(order, buyer.ID, st.ID))
		got := s.waitStuff(t, buyer, st.ID, func(x stuffJSON) bool { return x.Status == "sold" }, "sold")
		if got.Delivery == nil || *got.Delivery != "the secret link" || got.OrderID != order || got.Version != 3 {
			t.Fatalf("buyer sees %+v", got)
		}
		if ev := s.waitVersion(t, st.ID, 3); ev.Data.Status != "sold" || ev.Data.OrderID != order {
			t.Fatalf("stuff:updated %+v", ev)
		}
		for _, u := range []user{stranger, anon} {
			if got := s.get(t, u, st.ID); got.Delivery != nil || got.Status != "sold" {
				t.Fatalf("%q sees %+v", u.ID, got)
			}
		}
		if got := s.get(t, seller, st.ID); got.Delivery == nil {
			t.Fatal("seller does not see the delivery")
		}
		s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Changed","price":1}`).
			wantError(400, "Cannot edit a reserved stuff", "")
		b.Publish(completed(order, buyer.ID, st.ID)) // duplicate
		b.Publish(cancelled(order, st.ID))           // too late: it is paid
		st2 := s.create(t, seller, "Sync point", 100, "")
		b.Publish(created(newID(), buyer.ID, st2.ID))
		s.waitStuff(t, anon, st2.ID, func(x stuffJSON) bool { return x.Status == "reserved" }, "sync point reserved")
		if got := s.get(t, anon, st.ID); got.Status != "sold" || got.Version != 3 {
			t.Fatalf("after duplicates %+v", got)
		}
		if s.list(t, "?limit=100").has(st.ID) {
			t.Fatal("sold stuff listed")
		}
	})

	t.Run("poison message is parked", func(t *testing.T) {
		t.Parallel()
		b.PublishRaw(events.OrderCreated, []byte(`{not json`))
		b.PublishRaw(events.OrderCompleted, []byte(`{"id":"","stuff":{}}`))
		testkit.Eventually(t, 15*time.Second, func() bool {
			return parked(t, s.DB, events.OrderCreated) == 1 && parked(t, s.DB, events.OrderCompleted) == 1
		}, "poison messages not parked")
	})

	t.Run("mine lists reserved and sold stuff too", func(t *testing.T) {
		t.Parallel()
		owner := s.user()
		a := s.create(t, owner, "Mine reserved", 100, "")
		s.create(t, owner, "Mine available", 100, "")
		b.Publish(created(newID(), newID(), a.ID))
		s.waitStuff(t, anon, a.ID, func(x stuffJSON) bool { return x.Status == "reserved" }, "reserved")
		m := s.do(t, owner, http.MethodGet, "/api/stuff/mine", nil).mine()
		if len(m.Stuff) != 2 || m.Stuff[1].ID != a.ID || m.Stuff[1].Status != "reserved" {
			t.Fatalf("mine %+v", m.Stuff)
		}
	})
}

// TestEditRacesOrder: the owner's edit and an order:created for the same
// stuff at the same moment; neither write may be lost. Either the edit came
// first (200, then reserved with the new title, version 3) or the order did
// (400, reserved with the old title, version 2).
func TestEditRacesOrder(t *testing.T) {
	t.Parallel()
	// An event of an order never seen is parked once the retry budget is
	// spent: a short one here, long enough for the events that only wait.
	nc := testkit.NATS(t)
	nc.RetryFor = 8 * time.Second
	s := newStack(t, observe, testkit.OnNATS(nc))
	b := s.Peer
	seller := s.user()
	for i := range 5 {
		st := s.create(t, seller, "Race", 100, "")
		order := newID()
		var wg sync.WaitGroup
		var edit response
		wg.Go(func() {
			edit = s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Edited","price":100,"description":"new"}`)
		})
		wg.Go(func() { b.Publish(created(order, newID(), st.ID)) })
		wg.Wait()
		got := s.waitStuff(t, seller, st.ID, func(x stuffJSON) bool { return x.Status == "reserved" }, "reserved")
		switch edit.Status {
		case 200:
			if got.Title != "Edited" || got.Description != "new" || got.Version != 3 || got.OrderID != order {
				t.Fatalf("round %d: edit won but the result is %+v", i, got)
			}
		case 400:
			if got.Title != "Race" || got.Version != 2 {
				t.Fatalf("round %d: order won but the result is %+v", i, got)
			}
		default:
			t.Fatalf("round %d: edit answered %d %s", i, edit.Status, edit.Body)
		}
		last := s.waitVersion(t, st.ID, got.Version)
		if last.Data.Status != "reserved" || last.Data.Title != got.Title {
			t.Fatalf("round %d: last event %+v for %+v", i, last, got)
		}
	}
}

// TestEventsSurviveNATSOutage: a stuff created while NATS is down is
// published when it is back (the change and its event were saved together).
func TestEventsSurviveNATSOutage(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	s := newStack(t, testkit.OnNATS(srv.Config), observe)
	seller := s.user()
	before := s.create(t, seller, "Before", 100, "")
	s.waitVersion(t, before.ID, 1)

	srv.Stop()
	during := s.create(t, seller, "During the outage", 100, "")
	if got := s.get(t, anon, during.ID); got.Title != "During the outage" {
		t.Fatalf("GET during the outage %+v", got)
	}
	// An outage, not a blip: the service has noticed (its readiness says
	// so) before NATS comes back.
	testkit.Eventually(t, 15*time.Second, func() bool {
		return s.do(t, anon, http.MethodGet, "/readyz", nil).Status == http.StatusServiceUnavailable
	}, "the service did not notice NATS going down")
	srv.Restart()
	ev := s.waitVersion(t, during.ID, 1)
	if ev.Subject != events.StuffCreated || ev.Data.Title != "During the outage" {
		t.Fatalf("after restart %+v", ev)
	}
}

// TestReplicas: two replicas on one database and one NATS; each one's
// listing and single-listing cache follow the other's writes.
func TestReplicas(t *testing.T) {
	t.Parallel()
	a := newStack(t, observe)
	rb := newStack(t, testkit.OnNATS(a.NATS), testkit.OnDB(a.DB))
	b := a.Peer
	seller := a.user()
	listed := func(s *stack, id string, cond func(stuffJSON) bool) func() bool {
		return func() bool {
			for _, it := range s.list(t, "?limit=100").Stuff {
				if it.ID == id {
					return cond(it)
				}
			}
			return false
		}
	}
	any := func(stuffJSON) bool { return true }

	st := a.create(t, seller, "On A", 100, "secret")
	testkit.Eventually(t, 10*time.Second, listed(rb, st.ID, any), "B does not list A's new stuff")
	if got := rb.get(t, anon, st.ID); got.Title != "On A" { // B caches it now
		t.Fatalf("B GET %+v", got)
	}

	a.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Edited on A","price":300}`).stuff(200)
	testkit.Eventually(t, 10*time.Second, listed(rb, st.ID, func(x stuffJSON) bool { return x.Title == "Edited on A" && x.Version == 2 }),
		"B's listing misses A's edit")
	rb.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.Title == "Edited on A" && x.Price == 300 }, "B's cache misses A's edit")

	// The order event is applied by one replica of the queue group; both
	// stop listing the stuff.
	order := newID()
	ev := created(order, newID(), st.ID)
	ev.Stuff.Price = 300 // as edited
	b.Publish(ev)
	for _, s := range []*stack{a, rb} {
		testkit.Eventually(t, 10*time.Second, func() bool { return !s.list(t, "?limit=100").has(st.ID) }, "reserved stuff still listed")
		s.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.Status == "reserved" && x.OrderID == order }, "reserved everywhere")
	}
	b.Publish(cancelled(order, st.ID))
	for _, s := range []*stack{a, rb} {
		testkit.Eventually(t, 10*time.Second, listed(s, st.ID, func(x stuffJSON) bool { return x.Version == 4 }), "released stuff not listed again")
	}

	// Written on B, seen on A; and a third replica started now loads
	// everything from the database.
	st2 := rb.create(t, seller, "On B", 100, "")
	testkit.Eventually(t, 10*time.Second, listed(a, st2.ID, any), "A does not list B's new stuff")
	c := newStack(t, testkit.OnNATS(a.NATS), testkit.OnDB(a.DB))
	if p := c.list(t, ""); p.Total != 2 || p.ids()[0] != st2.ID || p.ids()[1] != st.ID {
		t.Fatalf("new replica lists %+v", p)
	}
}

// TestBoundedReadModel: with room for 5 listings in memory, pages past them
// come from the database, in the same order, with the right total.
func TestBoundedReadModel(t *testing.T) {
	t.Parallel()
	s := newStackWith(t, readModelMax(5), observe)
	b := s.Peer
	u := s.user()
	var newest []string
	for i := range 8 {
		newest = append([]string{s.create(t, u, "Item "+string(rune('A'+i)), 100, "").ID}, newest...)
	}
	check := func(t *testing.T, s *stack, want []string) {
		t.Helper()
		var got []string
		for page := 1; page <= 4; page++ {
			p := s.list(t, "?limit=3&page="+string(rune('0'+page)))
			if p.Total != len(want) {
				t.Fatalf("page %d total %d, want %d", page, p.Total, len(want))
			}
			got = append(got, p.ids()...)
		}
		if len(got) != len(want) {
			t.Fatalf("pages hold %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("pages hold %v, want %v", got, want)
			}
		}
	}
	check(t, s, newest)
	// A replica started now holds only the newest 5 from the start.
	r := newStackWith(t, readModelMax(5), testkit.OnNATS(s.NATS), testkit.OnDB(s.DB))
	check(t, r, newest)
	// Reserving one from the memory part and one from the database part.
	b.Publish(created(newID(), newID(), newest[1]))
	b.Publish(created(newID(), newID(), newest[6]))
	for _, id := range []string{newest[1], newest[6]} {
		s.waitStuff(t, anon, id, func(x stuffJSON) bool { return x.Status == "reserved" }, "reserved")
	}
	want := []string{newest[0], newest[2], newest[3], newest[4], newest[5], newest[7]}
	testkit.Eventually(t, 10*time.Second, func() bool { return !r.list(t, "?limit=3").has(newest[1]) }, "replica still lists the reserved stuff")
	// The in-memory pages count what is past the floor as of the last load,
	// so the total is checked on the deep pages only.
	for _, st := range []*stack{s, r} {
		var got []string
		for page := 1; page <= 3; page++ {
			got = append(got, st.list(t, "?limit=3&page="+string(rune('0'+page))).ids()...)
		}
		if len(got) != len(want) {
			t.Fatalf("pages hold %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("pages hold %v, want %v", got, want)
			}
		}
		if p := st.list(t, "?limit=3&page=3"); p.Total != 6 {
			t.Fatalf("deep page total %d, want 6", p.Total)
		}
	}
}

// TestOrderLoopStaysBounded: a buyer who keeps ordering and cancelling one
// stuff does not grow its document, and a very late redelivery of an order
// the listing no longer remembers does not take the listing back.
func TestOrderLoopStaysBounded(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	b := s.Peer
	st := s.create(t, s.user(), "Loop", 100, "")
	buyer := newID()
	deadline := time.Now().Add(15 * time.Minute)
	const cycles = 40 // more than a listing remembers
	orders := make([]events.OrderCreatedEvent, cycles)
	for i := range orders {
		orders[i] = created(newID(), buyer, st.ID)
		orders[i].ExpiresAt = deadline.Add(time.Duration(i) * time.Second)
		b.Publish(orders[i])
		s.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.OrderID == orders[i].ID }, "reserved")
		b.Publish(cancelled(orders[i].ID, st.ID))
		s.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.Status == "available" && x.Version == int64(3+2*i) }, "released")
	}
	oid, err := primitive.ObjectIDFromHex(st.ID)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Orders []bson.Raw `bson:"orders"`
	}
	if err := s.DB.Collection("stuff").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Orders) > 32 {
		t.Fatalf("after %d orders the listing remembers %d", cycles, len(doc.Orders))
	}

	// The first order's order:created again, very late; then a new order on
	// the same channel: it reserves (the late one took nothing).
	b.Publish(orders[0])
	next := created(newID(), buyer, st.ID)
	next.ExpiresAt = deadline.Add(time.Hour)
	b.Publish(next)
	got := s.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.OrderID == next.ID }, "reserved by the new order")
	if got.Version != int64(2+2*cycles) {
		t.Fatalf("version %d, want %d", got.Version, 2+2*cycles)
	}
}

// TestEditsWhileNATSIsDown: a seller who keeps editing while events cannot
// be published is told to try later once the listing holds store.MaxPending
// unpublished events, and can edit again once they went out.
func TestEditsWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	srv := testkit.StartNATS(t)
	s := newStack(t, testkit.OnNATS(srv.Config), observe)
	seller := s.user()
	st := s.create(t, seller, "Edited offline", 100, "")
	s.waitVersion(t, st.ID, 1)
	srv.Stop()
	testkit.Eventually(t, 15*time.Second, func() bool {
		return s.do(t, anon, http.MethodGet, "/readyz", nil).Status == http.StatusServiceUnavailable
	}, "the service did not notice NATS going down")
	var last response
	for i := range store.MaxPending + 1 {
		last = s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, map[string]any{"title": fmt.Sprint("Edit ", i), "price": 100})
		if last.Status != http.StatusOK {
			break
		}
	}
	last.wantError(http.StatusServiceUnavailable, "Too many changes of this stuff are waiting to be published, try again later", "")
	srv.Restart()
	s.waitVersion(t, st.ID, 1+store.MaxPending) // every accepted edit went out
	testkit.Eventually(t, 15*time.Second, func() bool {
		return s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Back online","price":100}`).Status == http.StatusOK
	}, "edits still refused after NATS came back")
}

// TestForgedOrderEvents: an order event that contradicts what the listing
// knows of the order (another buyer, price or order version, an order that
// is not the one holding it, an order:created the orders service would
// never publish) is acknowledged and ignored: it reserves nothing, releases
// nothing, sells nothing and shows the delivery to no one. The genuine
// events that follow still do what they do.
func TestForgedOrderEvents(t *testing.T) {
	t.Parallel()
	// An event of an order never seen is parked once the retry budget is
	// spent: a short one here.
	nc := testkit.NATS(t)
	nc.RetryFor = 8 * time.Second
	s := newStack(t, observe, testkit.OnNATS(nc))
	b := s.Peer
	seller := s.user()
	reserved := func(order string, version int64) func(stuffJSON) bool {
		return func(x stuffJSON) bool { return x.Status == "reserved" && x.OrderID == order && x.Version == version }
	}
	sees := func(t *testing.T, u user, id string) bool {
		t.Helper()
		return s.get(t, u, id).Delivery != nil
	}

	t.Run("completion of the holding order for another buyer", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Forged buyer", 100, "the secret")
		buyer, attacker := s.user(), s.user()
		order := newID()
		b.Publish(created(order, buyer.ID, st.ID))
		s.waitStuff(t, anon, st.ID, reserved(order, 2), "reserved")
		// The holding order's id is on the public listing; the attacker
		// names it with their own user id.
		b.Publish(completed(order, attacker.ID, st.ID))
		b.Publish(completed(order, buyer.ID, st.ID)) // the genuine one
		got := s.waitStuff(t, buyer, st.ID, func(x stuffJSON) bool { return x.Status == "sold" && x.Delivery != nil }, "sold to the buyer")
		if *got.Delivery != "the secret" || got.OrderID != order || got.Version != 3 {
			t.Fatalf("the buyer sees %+v", got)
		}
		if sees(t, attacker, st.ID) {
			t.Fatal("the forged completion showed the attacker the delivery")
		}
	})

	for _, tc := range []struct {
		name   string
		forged func(order, buyer, stuffID string) events.OrderCompletedEvent
	}{
		{"completion at another price", func(o, b, id string) events.OrderCompletedEvent {
			ev := completed(o, b, id)
			ev.Stuff.Price = 1
			return ev
		}},
		{"completion without a price", func(o, b, id string) events.OrderCompletedEvent {
			ev := completed(o, b, id)
			ev.Stuff.Price = 0
			return ev
		}},
		{"completion without a buyer", func(o, _, id string) events.OrderCompletedEvent { return completed(o, "", id) }},
		{"completion at the order's created version", func(o, b, id string) events.OrderCompletedEvent {
			ev := completed(o, b, id)
			ev.Version = 1
			return ev
		}},
		{"completion without a version", func(o, b, id string) events.OrderCompletedEvent {
			ev := completed(o, b, id)
			ev.Version = 0
			return ev
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := s.create(t, seller, tc.name, 100, "the secret")
			buyer := s.user()
			order := newID()
			b.Publish(created(order, buyer.ID, st.ID))
			s.waitStuff(t, anon, st.ID, reserved(order, 2), "reserved")
			b.Publish(tc.forged(order, buyer.ID, st.ID))
			// The order then ends unpaid: the listing is released, as it
			// would not be had the forged completion sold it.
			b.Publish(cancelled(order, st.ID))
			s.waitStuff(t, anon, st.ID, func(x stuffJSON) bool { return x.Status == "available" && x.Version == 3 }, "released")
			if sees(t, buyer, st.ID) {
				t.Fatal("the forged completion showed the buyer the delivery")
			}
		})
	}

	t.Run("completion of an order the listing never saw", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Never seen", 100, "the secret")
		buyer, attacker := s.user(), s.user()
		// On an available listing it waits for its order:created, which
		// never comes, and is parked in the end, having sold nothing.
		b.Publish(completed(newID(), attacker.ID, st.ID))
		order := newID()
		b.Publish(created(order, buyer.ID, st.ID))
		s.waitStuff(t, anon, st.ID, reserved(order, 2), "reserved by the genuine order")
		testkit.Eventually(t, 30*time.Second, func() bool { return parked(t, s.DB, events.OrderCompleted) >= 1 }, "the unknown order's completion was not parked")
		if got := s.get(t, anon, st.ID); !reserved(order, 2)(got) || sees(t, attacker, st.ID) {
			t.Fatalf("the unknown order's completion changed the listing: %+v", got)
		}
		b.Publish(completed(order, buyer.ID, st.ID)) // the genuine one still sells
		got := s.waitStuff(t, buyer, st.ID, func(x stuffJSON) bool { return x.Status == "sold" && x.Delivery != nil }, "sold to the buyer")
		if got.OrderID != order || got.Version != 3 || sees(t, attacker, st.ID) {
			t.Fatalf("after the genuine completion: %+v", got)
		}
	})

	for _, tc := range []struct {
		name   string
		forged func(buyer, stuffID string) events.OrderCreatedEvent
	}{
		{"order:created by the seller", func(_, id string) events.OrderCreatedEvent { return created(newID(), seller.ID, id) }},
		{"order:created without a buyer", func(_, id string) events.OrderCreatedEvent { return created(newID(), "", id) }},
		{"order:created without a price", func(b, id string) events.OrderCreatedEvent {
			ev := created(newID(), b, id)
			ev.Stuff.Price = 0
			return ev
		}},
		{"order:created of an order not just created", func(b, id string) events.OrderCreatedEvent {
			ev := created(newID(), b, id)
			ev.Status, ev.Version = "complete", 2
			return ev
		}},
		{"order:created without a version", func(b, id string) events.OrderCreatedEvent {
			ev := created(newID(), b, id)
			ev.Version = 0
			return ev
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := s.create(t, seller, tc.name, 100, "the secret")
			attacker, buyer := s.user(), s.user()
			forged := tc.forged(attacker.ID, st.ID)
			b.Publish(forged)
			b.Publish(completed(forged.ID, forged.UserID, st.ID))
			// A genuine order then takes the listing at once: the forged
			// one holds nothing it would wait for.
			order := newID()
			b.Publish(created(order, buyer.ID, st.ID))
			s.waitStuff(t, anon, st.ID, reserved(order, 2), "reserved by the genuine order")
			b.Publish(completed(order, buyer.ID, st.ID))
			got := s.waitStuff(t, buyer, st.ID, func(x stuffJSON) bool { return x.Status == "sold" && x.Delivery != nil }, "sold to the buyer")
			if got.OrderID != order || got.Version != 3 || sees(t, attacker, st.ID) {
				t.Fatalf("after the forged order: %+v", got)
			}
		})
	}

	t.Run("order:created at the price before the seller's edit", func(t *testing.T) {
		t.Parallel()
		// The seller's edit raced the BUY and orders' replica still had the
		// old price: orders decided the sale, and the buyer pays what it
		// charges. The listing follows orders, or a paying buyer would
		// never get the delivery.
		st := s.create(t, seller, "Repriced", 100, "the secret")
		s.do(t, seller, http.MethodPut, "/api/stuff/"+st.ID, `{"title":"Repriced","price":150}`).stuff(http.StatusOK)
		buyer, order := s.user(), newID()
		b.Publish(created(order, buyer.ID, st.ID)) // at 100
		s.waitStuff(t, anon, st.ID, reserved(order, 3), "reserved by the order at the old price")
		b.Publish(completed(order, buyer.ID, st.ID))
		got := s.waitStuff(t, buyer, st.ID, func(x stuffJSON) bool { return x.Status == "sold" && x.Delivery != nil }, "sold to the buyer")
		if got.OrderID != order {
			t.Fatalf("after the order at the old price: %+v", got)
		}
	})

	t.Run("cancellation at the order's created version", func(t *testing.T) {
		t.Parallel()
		st := s.create(t, seller, "Forged cancel", 100, "the secret")
		buyer := s.user()
		order := newID()
		b.Publish(created(order, buyer.ID, st.ID))
		s.waitStuff(t, anon, st.ID, reserved(order, 2), "reserved")
		forged := cancelled(order, st.ID)
		forged.Version = 1
		b.Publish(forged)
		b.Publish(completed(order, buyer.ID, st.ID))
		got := s.waitStuff(t, buyer, st.ID, func(x stuffJSON) bool { return x.Status == "sold" && x.Delivery != nil }, "sold to the buyer")
		if got.OrderID != order || got.Version != 3 {
			t.Fatalf("after the forged cancellation: %+v", got)
		}
	})
}
