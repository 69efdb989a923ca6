package orders_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/services/orders/internal/store"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// options are the env's service options with at most maxOpen open orders
// per buyer.
func (e *env) options(maxOpen int) orders.Options {
	return orders.Options{Hold: hold, MaxOpen: maxOpen, Now: e.clock.Now, IDs: store.NewID, DerivedIDs: store.DerivedID}
}

// slotsOf returns the slots of userID as stored, by number.
func (e *env) slotsOf(userID string) map[int]orders.Slot {
	e.t.Helper()
	cur, err := e.db.Collection(store.SlotsCollection).Find(context.Background(), bson.D{{Key: "userId", Value: userID}})
	if err != nil {
		e.t.Fatal(err)
	}
	var docs []struct {
		N       int    `bson:"n"`
		OrderID string `bson:"orderId"`
	}
	if err := cur.All(context.Background(), &docs); err != nil {
		e.t.Fatal(err)
	}
	out := map[int]orders.Slot{}
	for _, d := range docs {
		out[d.N] = orders.Slot{UserID: userID, N: d.N, OrderID: d.OrderID}
	}
	return out
}

// wantTooMany fails unless err refuses an order for the cap of max: a 400
// with the message that says so.
func wantTooMany(t *testing.T, err error, max int) {
	t.Helper()
	if !errors.Is(err, orders.ErrTooManyOpen) {
		t.Fatalf("got %v, want ErrTooManyOpen", err)
	}
	e, ok := errs.As(err)
	if !ok || e.StatusCode() != http.StatusBadRequest || len(e.Serialize()) != 1 || e.Serialize()[0].Message != orders.TooManyOpenMessage(max) {
		t.Fatalf("refusal %v answers %v, want 400 %q", err, e, orders.TooManyOpenMessage(max))
	}
}

// countingHolds is the real store, counting hold inserts.
type countingHolds struct {
	*store.Store
	n atomic.Int64
}

func (s *countingHolds) InsertHold(ctx context.Context, h orders.Hold) error {
	s.n.Add(1)
	return s.Store.InsertHold(ctx, h)
}

// TestOpenOrderCap: a buyer with MaxOpen orders waiting for payment is
// refused the next one (400, and the message says why), which takes nothing:
// no hold, not even for a moment, no slot, no order. Every way an order ends
// gives its slot back.
func TestOpenOrderCap(t *testing.T) {
	t.Parallel()
	const max = 2
	ends := []struct {
		name string
		end  func(e *env, o orders.Order) error
	}{
		{"cancelled by the buyer", func(e *env, o orders.Order) error { return e.svc.Cancel(context.Background(), o.UserID, o.ID) }},
		{"expired", func(e *env, o orders.Order) error { return e.expire(o) }},
		{"paid", func(e *env, o orders.Order) error { return e.svc.Complete(context.Background(), paymentOf(o)) }},
		{"cancelled for a ban", func(e *env, o orders.Order) error {
			_, err := e.svc.CancelOrdersOf(context.Background(), o.UserID)
			return err
		}},
		{"cancelled by the sweep", func(e *env, o orders.Order) error {
			e.clock.Advance(hold + orders.DefaultSweep + time.Second)
			_, err := e.svc.Sweep(context.Background())
			return err
		}},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			counted := &countingHolds{Store: e.store}
			e.svc = orders.NewService(counted, e.options(max))
			buyer := user()
			var placed []orders.Order
			for range max {
				o, err := e.svc.Create(ctx, buyer, e.stuff(user(), 500), orders.RequestKey{})
				if err != nil {
					t.Fatal(err)
				}
				placed = append(placed, o)
			}
			if placed[0].Slot != 0 || placed[1].Slot != 1 {
				t.Fatalf("orders took slots %d and %d, want 0 and 1", placed[0].Slot, placed[1].Slot)
			}
			refused := e.stuff(user(), 500)
			holds := counted.n.Load()
			_, err := e.svc.Create(ctx, buyer, refused, orders.RequestKey{})
			wantTooMany(t, err, max)
			if n := counted.n.Load() - holds; n != 0 {
				t.Fatalf("the refused BUY inserted %d holds", n)
			}
			if h, ok := e.holdOf(refused); ok {
				t.Fatalf("the refused BUY left hold %+v", h)
			}
			if got := e.slotsOf(buyer); len(got) != max {
				t.Fatalf("slots after the refusal: %v, want %d", got, max)
			}
			if list, err := e.svc.List(ctx, buyer, 1, 10); err != nil || len(list) != max {
				t.Fatalf("orders of the buyer: %v (%v), want %d", list, err, max)
			}

			ended := placed[0]
			if err := tc.end(e, ended); err != nil {
				t.Fatal(err)
			}
			if r := e.record(ended.ID); r.Status == orders.StatusCreated {
				t.Fatalf("%s: the order is still created", tc.name)
			}
			if sl, ok := e.slotsOf(buyer)[ended.Slot]; ok && sl.OrderID == ended.ID {
				t.Fatalf("%s: the order's slot is still taken", tc.name)
			}
			again, err := e.svc.Create(ctx, buyer, e.stuff(user(), 500), orders.RequestKey{})
			if err != nil {
				t.Fatalf("%s: the next order: %v", tc.name, err)
			}
			if got := e.slotsOf(buyer); len(got) > max || got[again.Slot].OrderID != again.ID {
				t.Fatalf("slots %v: the new order %s does not hold its slot %d", got, again.ID, again.Slot)
			}
		})
	}
}

// TestOpenOrderCapRace: one buyer places orders of 20 stuffs at once, ten
// times over: exactly MaxOpen are placed each time, the others refused; no
// more than MaxOpen slots exist, each held by a placed order.
func TestOpenOrderCapRace(t *testing.T) {
	t.Parallel()
	const max, clicks = 3, 20
	e := newEnv(t)
	ctx := context.Background()
	e.svc = orders.NewService(e.store, e.options(max))
	buyer := user()
	for round := range 10 {
		stuffs := make([]string, clicks)
		for i := range stuffs {
			stuffs[i] = e.stuff(user(), 500)
		}
		placed := make([]orders.Order, clicks)
		results := make([]error, clicks)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, s := range stuffs {
			wg.Go(func() {
				<-start
				placed[i], results[i] = e.svc.Create(ctx, buyer, s, orders.RequestKey{})
			})
		}
		close(start)
		wg.Wait()
		var won []orders.Order
		for i, err := range results {
			switch {
			case err == nil:
				won = append(won, placed[i])
			case !errors.Is(err, orders.ErrTooManyOpen):
				t.Fatalf("round %d, click %d: %v", round, i, err)
			}
		}
		if len(won) != max {
			t.Fatalf("round %d: %d orders placed, want %d", round, len(won), max)
		}
		slots := e.slotsOf(buyer)
		if len(slots) != max {
			t.Fatalf("round %d: slots %v, want %d", round, slots, max)
		}
		for _, o := range won {
			if slots[o.Slot].OrderID != o.ID {
				t.Fatalf("round %d: order %s does not hold its slot %d: %v", round, o.ID, o.Slot, slots)
			}
			if h, ok := e.holdOf(o.Stuff.ID); !ok || h.OrderID != o.ID {
				t.Fatalf("round %d: order %s does not hold its stuff: %+v", round, o.ID, h)
			}
		}
		for i, err := range results {
			if err != nil {
				if h, ok := e.holdOf(stuffs[i]); ok {
					t.Fatalf("round %d: refused click %d left hold %+v", round, i, h)
				}
			}
		}
		for _, o := range won {
			if err := e.svc.Cancel(ctx, buyer, o.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestOrphanSlots: a slot that no longer stands for an order waiting for
// payment (a process died before releasing it, or before saving its order)
// is taken back by its buyer's next order; one that may still stand for an
// order is not.
func TestOrphanSlots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup leaves slot 0 of buyer taken, at the clock's time.
		setup func(e *env, buyer string)
		age   time.Duration
		want  error
	}{
		{"slot of a cancelled order", func(e *env, buyer string) {
			o := e.placeAs(buyer)
			if err := e.svc.Cancel(context.Background(), buyer, o.ID); err != nil {
				e.t.Fatal(err)
			}
			e.putSlot(orders.Slot{UserID: buyer, N: 0, OrderID: o.ID, CreatedAt: e.clock.Now()})
		}, 0, nil},
		{"slot of a completed order", func(e *env, buyer string) {
			o := e.placeAs(buyer)
			if err := e.svc.Complete(context.Background(), paymentOf(o)); err != nil {
				e.t.Fatal(err)
			}
			e.putSlot(orders.Slot{UserID: buyer, N: 0, OrderID: o.ID, CreatedAt: e.clock.Now()})
		}, 0, nil},
		{"fresh slot without order", func(e *env, buyer string) {
			e.putSlot(orders.Slot{UserID: buyer, N: 0, OrderID: store.NewID(), CreatedAt: e.clock.Now()})
		}, 10 * time.Second, orders.ErrTooManyOpen},
		{"stale slot without order", func(e *env, buyer string) {
			e.putSlot(orders.Slot{UserID: buyer, N: 0, OrderID: store.NewID(), CreatedAt: e.clock.Now()})
		}, 2 * time.Minute, nil},
		{"slot of a created order", func(e *env, buyer string) {
			e.placeAs(buyer)
		}, 2 * time.Hour, orders.ErrTooManyOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.svc = orders.NewService(e.store, e.options(1))
			buyer := user()
			tc.setup(e, buyer)
			e.clock.Advance(tc.age)
			o, err := e.svc.Create(context.Background(), buyer, e.stuff(user(), 500), orders.RequestKey{})
			if tc.want != nil {
				wantTooMany(t, err, 1)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.slotsOf(buyer); len(got) != 1 || got[0].OrderID != o.ID || o.Slot != 0 {
				t.Fatalf("slots %v, order in slot %d: want slot 0 taken back by %s", got, o.Slot, o.ID)
			}
		})
	}
}

// placeAs has buyer order a fresh stuff with the env's service.
func (e *env) placeAs(buyer string) orders.Order {
	e.t.Helper()
	o, err := e.svc.Create(context.Background(), buyer, e.stuff(user(), 500), orders.RequestKey{})
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// putSlot writes sl as a process that died would have left it.
func (e *env) putSlot(sl orders.Slot) {
	e.t.Helper()
	if err := e.store.InsertSlot(context.Background(), sl); err != nil {
		e.t.Fatal(err)
	}
}

// TestFreeSlots: the sweep releases the slots older than a hold that no
// longer stand for an order waiting for payment, and only those.
func TestFreeSlots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.svc = orders.NewService(e.store, e.options(5))
	buyer := user()
	live := e.placeAs(buyer)
	cancelled := e.placeAs(buyer)
	if err := e.svc.Cancel(ctx, buyer, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	e.putSlot(orders.Slot{UserID: buyer, N: cancelled.Slot, OrderID: cancelled.ID, CreatedAt: e.clock.Now()})
	neverSaved := orders.Slot{UserID: buyer, N: 3, OrderID: store.NewID(), CreatedAt: e.clock.Now()}
	e.putSlot(neverSaved)
	e.clock.Advance(hold + time.Second)
	young := orders.Slot{UserID: buyer, N: 4, OrderID: store.NewID(), CreatedAt: e.clock.Now().Add(-2 * time.Minute)}
	e.putSlot(young) // a stale orphan too, but younger than a hold: left to a BUY

	n, err := e.svc.FreeSlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("freed %d slots, want 2", n)
	}
	got := e.slotsOf(buyer)
	want := map[int]string{live.Slot: live.ID, young.N: young.OrderID}
	if len(got) != len(want) {
		t.Fatalf("slots left: %v, want those of %v", got, want)
	}
	for n, id := range want {
		if got[n].OrderID != id {
			t.Fatalf("slots left: %v, want those of %v", got, want)
		}
	}
}

// failingSlots is the real store whose slot inserts fail, as when the
// database goes away between the hold and the slot.
type failingSlots struct{ *store.Store }

func (failingSlots) InsertSlot(context.Context, orders.Slot) error {
	return errors.New("connection reset")
}

// TestCreateGivesBackWhatItTook: a BUY that fails after it took the hold,
// or the hold and the slot, leaves neither: the buyer and the stuff are as
// before.
func TestCreateGivesBackWhatItTook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		store func(*store.Store) orders.Store
	}{
		{"slot not taken", func(s *store.Store) orders.Store { return failingSlots{s} }},
		{"order not saved", func(s *store.Store) orders.Store { return failingInsert{s} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			buyer, id := user(), e.stuff(user(), 700)
			broken := orders.NewService(tc.store(e.store), e.options(1))
			_, err := broken.Create(ctx, buyer, id, orders.RequestKey{})
			if err == nil {
				t.Fatal("create succeeded")
			}
			if _, ok := errs.As(err); ok {
				t.Fatalf("got client error %v, want an internal error (500)", err)
			}
			if h, ok := e.holdOf(id); ok {
				t.Fatalf("hold %+v left behind", h)
			}
			if got := e.slotsOf(buyer); len(got) != 0 {
				t.Fatalf("slots %v left behind", got)
			}
			e.svc = orders.NewService(e.store, e.options(1))
			if _, err := e.svc.Create(ctx, buyer, id, orders.RequestKey{}); err != nil {
				t.Fatalf("the same BUY again: %v", err)
			}
		})
	}
}

// An order saved after its slot was taken back as an orphan (its insert
// came after StaleHold, so another BUY of the same buyer found the slot
// without an order and took it) is not answered as placed: it would be one
// order too many. It is cancelled, and its stuff released.
func TestOrderSavedAfterItsSlotWasTakenOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	buyer := user()
	slowStuff, quickStuff := e.stuff(user(), 500), e.stuff(user(), 500)
	hooked := &insertHook{Store: e.store}
	svc := orders.NewService(hooked, e.options(1))
	var quick orders.Order
	var quickErr error
	hooked.before = func(orders.Order) {
		e.clock.Advance(2 * time.Minute)
		quick, quickErr = svc.Create(ctx, buyer, quickStuff, orders.RequestKey{})
	}
	_, err := svc.Create(ctx, buyer, slowStuff, orders.RequestKey{})
	if quickErr != nil {
		t.Fatalf("the BUY that met the orphan slot: %v", quickErr)
	}
	wantTooMany(t, err, 1)
	list, lerr := e.svc.List(ctx, buyer, 1, 10)
	if lerr != nil || len(list) != 2 {
		t.Fatalf("orders of the buyer: %v (%v)", list, lerr)
	}
	for _, o := range list {
		r := e.record(o.ID)
		switch {
		case o.ID == quick.ID && r.Status != orders.StatusCreated:
			t.Fatalf("the quick order is %s", r.Status)
		case o.ID != quick.ID && r.Status != orders.StatusCancelled:
			t.Fatalf("the slow order is %s, want cancelled", r.Status)
		}
	}
	if h, ok := e.holdOf(slowStuff); ok {
		t.Fatalf("the slow order's hold %+v is left", h)
	}
	if got := e.slotsOf(buyer); len(got) != 1 || got[0].OrderID != quick.ID {
		t.Fatalf("slots %v, want only the quick order's", got)
	}
}

// A retry of a request whose first try died after taking its hold and its
// slot finds them its own: a buyer at the cap with that one order is not
// refused their own order.
func TestCreateWithAKeyFindsItsSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.svc = orders.NewService(e.store, e.options(1))
	buyer, stuffID := user(), e.stuff(user(), 500)
	key := orders.RequestKey{Key: "buy-" + stuffID, Since: e.clock.Now().Truncate(time.Millisecond)}
	e.firstHold(buyer, stuffID, key, e.clock.Now())
	e.putSlot(orders.Slot{UserID: buyer, N: 0, OrderID: store.DerivedID(key.Since, buyer, key.Key), CreatedAt: e.clock.Now()})
	e.clock.Advance(40 * time.Second)
	o, err := e.svc.Create(ctx, buyer, stuffID, key)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := e.slotsOf(buyer); len(got) != 1 || got[0].OrderID != o.ID || o.Slot != 0 {
		t.Fatalf("slots %v, order in slot %d", got, o.Slot)
	}
}

// TestCompleteChecksThePayment: a payment completes its order only if it
// can be a payment of it: not more than its price, and nothing exactly when
// a free coupon paid. Otherwise ErrPaymentMismatch, and the order is as it
// was.
func TestCompleteChecksThePayment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		amount   int64
		provider string
		want     error
	}{
		{"the price", 500, "pi_1", nil},
		{"a coupon's part of the price", 125, "pi_1", nil},
		{"a free coupon", 0, orders.FreeCouponProvider, nil},
		{"more than the price", 501, "pi_1", orders.ErrPaymentMismatch},
		{"negative", -500, "pi_1", orders.ErrPaymentMismatch},
		{"nothing, by card", 0, "pi_1", orders.ErrPaymentMismatch},
		{"nothing, from nowhere", 0, "", orders.ErrPaymentMismatch},
		{"money, by coupon", 500, orders.FreeCouponProvider, orders.ErrPaymentMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			o := e.order(user())
			err := e.svc.Complete(context.Background(), orders.Payment{ID: "p1", OrderID: o.ID, Amount: tc.amount, ProviderID: tc.provider})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantStatus := orders.StatusComplete
			if tc.want != nil {
				wantStatus = orders.StatusCreated
				if _, ok := e.claimOf(o.ID); ok {
					t.Fatal("an outcome was claimed for a payment that does not match")
				}
			}
			if r := e.record(o.ID); r.Status != wantStatus {
				t.Fatalf("order %s, want %s", r.Status, wantStatus)
			}
		})
	}
}

// TestExpiryBeforeTheDeadline: an expiry that comes more than a leeway
// before the order's deadline is not applied (ErrEventAhead: it comes back);
// within the leeway or after, it cancels the order.
func TestExpiryBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	o := e.order(user())
	e.clock.Advance(hold - orders.ExpiryLeeway - time.Millisecond)
	err := e.svc.Expire(ctx, o.ID)
	if !errors.Is(err, orders.ErrEventAhead) || !errors.Is(err, orders.ErrBeforeDeadline) {
		t.Fatalf("expiry before the deadline: got %v, want ErrBeforeDeadline (an ErrEventAhead)", err)
	}
	if r := e.record(o.ID); r.Status != orders.StatusCreated {
		t.Fatalf("order %s after an early expiry", r.Status)
	}
	e.clock.Advance(time.Millisecond)
	if err := e.svc.Expire(ctx, o.ID); err != nil {
		t.Fatalf("expiry within the leeway: %v", err)
	}
	if r := e.record(o.ID); r.Status != orders.StatusCancelled {
		t.Fatalf("order %s after its expiry", r.Status)
	}
}
