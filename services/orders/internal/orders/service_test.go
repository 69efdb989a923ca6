package orders_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/services/orders/internal/store"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const hold = 15 * time.Minute

// nopNotifier stands in for the outbox relay: these tests read the pending
// events in the documents' outboxes instead.
type nopNotifier struct{}

func (nopNotifier) Notify(*mongo.Collection, any, ...outbox.Pending) {}

type env struct {
	t     *testing.T
	db    *mongo.Database
	store *store.Store
	svc   *orders.Service
	clock *testkit.Clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := testkit.Mongo(t)
	st := store.New(db, mongox.NewWriter(), nopNotifier{})
	c := testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	return &env{t: t, db: db, store: st, clock: c,
		svc: orders.NewService(st, orders.Options{Hold: hold, Now: c.Now, IDs: store.NewID, DerivedIDs: store.DerivedID})}
}

// stuff lists a stuff of seller in the replica and returns its id.
func (e *env) stuff(seller string, price int64) string {
	e.t.Helper()
	id := store.NewID()
	if err := e.svc.ApplyStuffCreated(context.Background(), orders.Stuff{
		ID: id, Version: 1, Title: "Notes " + id[18:], Price: price, Currency: "usd", SellerID: seller, Status: orders.StuffAvailable,
	}); err != nil {
		e.t.Fatalf("list stuff: %v", err)
	}
	return id
}

// order has buyer order a fresh stuff and returns the order.
func (e *env) order(buyer string) orders.Order {
	e.t.Helper()
	o, err := e.svc.Create(context.Background(), buyer, e.stuff(user(), 500), orders.RequestKey{})
	if err != nil {
		e.t.Fatalf("create order: %v", err)
	}
	return o
}

type orderRecord struct {
	Status  string           `bson:"status"`
	Version int64            `bson:"version"`
	Outbox  []outbox.Pending `bson:"outbox"`
}

// record reads an order's document as stored, with its pending events.
func (e *env) record(id string) orderRecord {
	e.t.Helper()
	oid, _ := primitive.ObjectIDFromHex(id)
	var r orderRecord
	if err := e.db.Collection(store.OrdersCollection).FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&r); err != nil {
		e.t.Fatalf("read order %s: %v", id, err)
	}
	return r
}

func subjects(r orderRecord) []string {
	var s []string
	for _, p := range r.Outbox {
		s = append(s, p.Subject)
	}
	return s
}

// holdOf returns the hold of a stuff, or ok false.
func (e *env) holdOf(stuffID string) (orders.Hold, bool) {
	e.t.Helper()
	h, err := e.store.Hold(context.Background(), stuffID)
	if errors.Is(err, orders.ErrNotFound) {
		return orders.Hold{}, false
	}
	if err != nil {
		e.t.Fatalf("read hold: %v", err)
	}
	return h, true
}

func user() string { return store.NewID() }

// paymentOf is a payment of o's full price by card.
func paymentOf(o orders.Order) orders.Payment {
	return orders.Payment{ID: store.NewID(), OrderID: o.ID, Amount: o.Stuff.Price, ProviderID: "pi_" + o.ID}
}

// expire has the deadline of o come: the clock moves there, if it is before,
// and the order is expired.
func (e *env) expire(o orders.Order) error {
	if d := o.ExpiresAt.Sub(e.clock.Now()); d > 0 {
		e.clock.Advance(d)
	}
	return e.svc.Expire(context.Background(), o.ID)
}

func TestReplicaAppliesVersionsInOrderOnce(t *testing.T) {
	t.Parallel()
	type step struct {
		created bool
		version int64
		title   string
		wantErr error
	}
	c := func(v int64, title string, want error) step { return step{true, v, title, want} }
	u := func(v int64, title string, want error) step { return step{false, v, title, want} }
	tests := []struct {
		name      string
		steps     []step
		wantVer   int64
		wantTitle string
	}{
		{"in order", []step{c(1, "a", nil), u(2, "b", nil), u(3, "c", nil)}, 3, "c"},
		{"duplicate created", []step{c(1, "a", nil), c(1, "x", nil)}, 1, "a"},
		{"duplicate update", []step{c(1, "a", nil), u(2, "b", nil), u(2, "x", nil)}, 2, "b"},
		{"old update after a newer one", []step{c(1, "a", nil), u(2, "b", nil), u(3, "c", nil), u(2, "x", nil), u(1, "y", nil)}, 3, "c"},
		{"gap waits for the missing version", []step{c(1, "a", nil), u(3, "c", orders.ErrEventAhead), u(2, "b", nil), u(3, "c", nil)}, 3, "c"},
		{"update before created", []step{u(2, "b", orders.ErrEventAhead), c(1, "a", nil), u(2, "b", nil)}, 2, "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			id, seller := store.NewID(), user()
			for i, s := range tc.steps {
				d := orders.Stuff{ID: id, Version: s.version, Title: s.title, Price: 100 * s.version, SellerID: seller}
				var err error
				if s.created {
					err = e.svc.ApplyStuffCreated(ctx, d)
				} else {
					err = e.svc.ApplyStuffUpdated(ctx, d)
				}
				if !errors.Is(err, s.wantErr) || (s.wantErr == nil && err != nil) {
					t.Fatalf("step %d (v%d): got %v, want %v", i, s.version, err, s.wantErr)
				}
			}
			got, err := e.store.Stuff(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != tc.wantVer || got.Title != tc.wantTitle || got.Price != 100*tc.wantVer || got.SellerID != seller {
				t.Fatalf("replica = %+v, want version %d title %q", got, tc.wantVer, tc.wantTitle)
			}
		})
	}
}

func TestReplicaRefusesMalformedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tests := []struct {
		name string
		st   orders.Stuff
	}{
		{"id not an ObjectID", orders.Stuff{ID: "not-an-id", Version: 1, SellerID: "u"}},
		{"operator-looking id", orders.Stuff{ID: `{"$ne":null}`, Version: 1, SellerID: "u"}},
		{"version 0", orders.Stuff{ID: store.NewID(), Version: 0, SellerID: "u"}},
		{"no seller", orders.Stuff{ID: store.NewID(), Version: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.svc.ApplyStuffCreated(ctx, tc.st); !errors.Is(err, orders.ErrMalformedEvent) {
				t.Errorf("created: got %v, want ErrMalformedEvent", err)
			}
			if err := e.svc.ApplyStuffUpdated(ctx, tc.st); !errors.Is(err, orders.ErrMalformedEvent) {
				t.Errorf("updated: got %v, want ErrMalformedEvent", err)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	seller, buyer := user(), user()
	avail := e.stuff(seller, 1250)
	sold := e.stuff(seller, 900)
	if err := e.svc.ApplyStuffUpdated(ctx, orders.Stuff{ID: sold, Version: 2, Title: "gone", Price: 900, SellerID: seller, Status: orders.StuffSold}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		buyer   string
		stuffID string
		want    error
	}{
		{"malformed id", buyer, "12345", orders.ErrNotFound},
		{"operator as id", buyer, `{"$gt":""}`, orders.ErrNotFound},
		{"unknown stuff", buyer, store.NewID(), orders.ErrNotFound},
		{"own stuff", seller, avail, orders.ErrOwnStuff},
		{"sold stuff", buyer, sold, orders.ErrSold},
		{"available", buyer, avail, nil},
		{"held by that order", user(), avail, orders.ErrHeld},
		{"held, even for its buyer", buyer, avail, orders.ErrHeld},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := e.svc.Create(ctx, tc.buyer, tc.stuffID, orders.RequestKey{})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			now := e.clock.Now()
			want := orders.Order{ID: o.ID, UserID: tc.buyer, Status: orders.StatusCreated,
				Stuff:     orders.StuffRef{ID: avail, Title: "Notes " + avail[18:], Price: 1250, Currency: "usd"},
				ExpiresAt: now.Add(hold), CreatedAt: now, Version: 1}
			if o != want {
				t.Fatalf("order = %+v\nwant    %+v", o, want)
			}
			stored, err := e.svc.Get(ctx, tc.buyer, o.ID)
			if err != nil || stored != want {
				t.Fatalf("stored order = %+v (%v)", stored, err)
			}
			r := e.record(o.ID)
			if len(r.Outbox) != 1 || r.Outbox[0].Subject != string(events.OrderCreated) {
				t.Fatalf("outbox = %v, want one order:created", subjects(r))
			}
			ev, err := events.Decode[events.OrderCreatedEvent](events.Msg{Subject: events.OrderCreated, Data: r.Outbox[0].Data})
			if err != nil {
				t.Fatal(err)
			}
			wantEv := events.OrderCreatedEvent{ID: o.ID, Version: 1, Status: orders.StatusCreated, UserID: tc.buyer,
				ExpiresAt: now.Add(hold), Stuff: events.StuffRef{ID: avail, Title: "Notes " + avail[18:], Price: 1250}}
			if !ev.ExpiresAt.Equal(wantEv.ExpiresAt) {
				t.Fatalf("event expiresAt %v, want %v", ev.ExpiresAt, wantEv.ExpiresAt)
			}
			ev.ExpiresAt = wantEv.ExpiresAt
			if ev != wantEv {
				t.Fatalf("order:created = %+v\nwant          %+v", ev, wantEv)
			}
			h, ok := e.holdOf(avail)
			if !ok || h.OrderID != o.ID || h.UserID != tc.buyer || h.Sold {
				t.Fatalf("hold = %+v (present %v)", h, ok)
			}
		})
	}
}

func TestOrderKeepsThePriceSeenAtPurchase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	seller, buyer := user(), user()
	id := e.stuff(seller, 1000)
	o, err := e.svc.Create(ctx, buyer, id, orders.RequestKey{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ApplyStuffUpdated(ctx, orders.Stuff{ID: id, Version: 2, Title: "renamed", Price: 5000, SellerID: seller}); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Get(ctx, buyer, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stuff.Price != 1000 || got.Stuff.Title != o.Stuff.Title {
		t.Fatalf("order stuff = %+v, want the price and title seen at purchase", got.Stuff)
	}
}

// failingInsert is the real store whose order inserts fail, as when the
// database goes away between the hold and the order.
type failingInsert struct{ *store.Store }

func (failingInsert) InsertOrder(context.Context, orders.Order, time.Time) error {
	return errors.New("connection reset")
}

func TestCreateReleasesTheHoldWhenTheOrderIsNotSaved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.stuff(user(), 700)
	broken := orders.NewService(failingInsert{e.store}, orders.Options{Now: e.clock.Now, IDs: store.NewID})
	_, err := broken.Create(ctx, user(), id, orders.RequestKey{})
	if err == nil {
		t.Fatal("create succeeded with a failing order insert")
	}
	if _, ok := errs.As(err); ok {
		t.Fatalf("got client error %v, want an internal error (500)", err)
	}
	if h, ok := e.holdOf(id); ok {
		t.Fatalf("hold %+v left behind by a failed order", h)
	}
	if _, err := e.svc.Create(ctx, user(), id, orders.RequestKey{}); err != nil {
		t.Fatalf("next buyer: %v", err)
	}
}

func TestOrphanHolds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup leaves a hold on the stuff, made at the clock's time.
		setup func(e *env, stuffID string)
		age   time.Duration
		want  error
	}{
		{"fresh hold without order", holdWithoutOrder, 10 * time.Second, orders.ErrHeld},
		{"stale hold without order", holdWithoutOrder, 2 * time.Minute, nil},
		{"stale hold of a cancelled order", holdOfCancelledOrder, 2 * time.Minute, nil},
		{"stale hold of a created order", holdOfCreatedOrder, 2 * time.Hour, orders.ErrHeld},
		{"stale hold of a completed order", holdOfCompletedOrder, 2 * time.Minute, orders.ErrSold},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.stuff(user(), 300)
			tc.setup(e, id)
			e.clock.Advance(tc.age)
			_, err := e.svc.Create(context.Background(), user(), id, orders.RequestKey{})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == orders.ErrSold {
				if h, ok := e.holdOf(id); !ok || !h.Sold {
					t.Fatalf("hold of the completed order = %+v (present %v), want marked sold", h, ok)
				}
			}
		})
	}
}

func holdWithoutOrder(e *env, stuffID string) {
	if err := e.store.InsertHold(context.Background(), orders.Hold{StuffID: stuffID, OrderID: store.NewID(), UserID: user(), CreatedAt: e.clock.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

func holdOfCreatedOrder(e *env, stuffID string) {
	if _, err := e.svc.Create(context.Background(), user(), stuffID, orders.RequestKey{}); err != nil {
		e.t.Fatal(err)
	}
}

// holdOfCancelledOrder leaves the hold of a cancelled order behind, as a
// process that died between the order's update and the hold's release does.
func holdOfCancelledOrder(e *env, stuffID string) {
	ctx := context.Background()
	o, err := e.svc.Create(ctx, user(), stuffID, orders.RequestKey{})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.svc.Cancel(ctx, o.UserID, o.ID); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.InsertHold(ctx, orders.Hold{StuffID: stuffID, OrderID: o.ID, UserID: o.UserID, CreatedAt: e.clock.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// holdOfCompletedOrder leaves the hold of a completed order unmarked, as a
// process that died before marking it does.
func holdOfCompletedOrder(e *env, stuffID string) {
	ctx := context.Background()
	o, err := e.svc.Create(ctx, user(), stuffID, orders.RequestKey{})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.svc.Complete(ctx, paymentOf(o)); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.ReleaseHold(ctx, stuffID, o.ID); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.InsertHold(ctx, orders.Hold{StuffID: stuffID, OrderID: o.ID, UserID: o.UserID, CreatedAt: e.clock.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

func TestOrderEnds(t *testing.T) {
	t.Parallel()
	type op struct {
		name string
		do   func(e *env, o orders.Order) error
		want error
	}
	expire := func(want error) op {
		return op{"expire", func(e *env, o orders.Order) error { return e.expire(o) }, want}
	}
	complete := func(want error) op {
		return op{"complete", func(e *env, o orders.Order) error { return e.svc.Complete(context.Background(), paymentOf(o)) }, want}
	}
	cancel := func(want error) op {
		return op{"cancel", func(e *env, o orders.Order) error { return e.svc.Cancel(context.Background(), o.UserID, o.ID) }, want}
	}
	cancelByOther := op{"cancel by someone else", func(e *env, o orders.Order) error { return e.svc.Cancel(context.Background(), user(), o.ID) }, errs.ErrNotAuthorized}
	created, cancelled, completed := string(events.OrderCreated), string(events.OrderCancelled), string(events.OrderCompleted)
	tests := []struct {
		name       string
		ops        []op
		wantStatus string
		wantEvents []string
	}{
		{"expire", []op{expire(nil)}, orders.StatusCancelled, []string{created, cancelled}},
		{"complete", []op{complete(nil)}, orders.StatusComplete, []string{created, completed}},
		{"cancel", []op{cancel(nil)}, orders.StatusCancelled, []string{created, cancelled}},
		{"expire twice", []op{expire(nil), expire(nil)}, orders.StatusCancelled, []string{created, cancelled}},
		{"complete twice", []op{complete(nil), complete(nil)}, orders.StatusComplete, []string{created, completed}},
		{"expire after complete", []op{complete(nil), expire(nil)}, orders.StatusComplete, []string{created, completed}},
		{"payment after expiry", []op{expire(nil), complete(orders.ErrOutcomeTaken)}, orders.StatusCancelled, []string{created, cancelled}},
		{"payment after cancel", []op{cancel(nil), complete(orders.ErrOutcomeTaken)}, orders.StatusCancelled, []string{created, cancelled}},
		{"cancel twice", []op{cancel(nil), cancel(orders.ErrNotCancellable)}, orders.StatusCancelled, []string{created, cancelled}},
		{"cancel after complete", []op{complete(nil), cancel(orders.ErrNotCancellable)}, orders.StatusComplete, []string{created, completed}},
		{"cancel by someone else", []op{cancelByOther}, orders.StatusCreated, []string{created}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			o := e.order(user())
			for i, op := range tc.ops {
				err := op.do(e, o)
				if !errors.Is(err, op.want) || (op.want == nil && err != nil) {
					t.Fatalf("op %d %s: got %v, want %v", i, op.name, err, op.want)
				}
			}
			r := e.record(o.ID)
			wantVersion := int64(2)
			if tc.wantStatus == orders.StatusCreated {
				wantVersion = 1
			}
			if r.Status != tc.wantStatus || r.Version != wantVersion || fmt.Sprint(subjects(r)) != fmt.Sprint(tc.wantEvents) {
				t.Fatalf("order %s v%d events %v, want %s v%d events %v", r.Status, r.Version, subjects(r), tc.wantStatus, wantVersion, tc.wantEvents)
			}
			checkEndEvent(t, r, o)
			checkHold(t, e, o, tc.wantStatus)
		})
	}
}

// checkEndEvent checks the payload of an order's terminal event.
func checkEndEvent(t *testing.T, r orderRecord, o orders.Order) {
	t.Helper()
	if len(r.Outbox) < 2 {
		return
	}
	p := r.Outbox[1]
	m := events.Msg{Subject: events.Subject(p.Subject), Data: p.Data}
	switch m.Subject {
	case events.OrderCancelled:
		ev, err := events.Decode[events.OrderCancelledEvent](m)
		if want := (events.OrderCancelledEvent{ID: o.ID, Version: 2, Stuff: events.StuffRef{ID: o.Stuff.ID}}); err != nil || ev != want {
			t.Fatalf("order:cancelled = %+v (%v), want %+v", ev, err, want)
		}
	case events.OrderCompleted:
		ev, err := events.Decode[events.OrderCompletedEvent](m)
		want := events.OrderCompletedEvent{ID: o.ID, Version: 2, UserID: o.UserID, Stuff: events.StuffRef{ID: o.Stuff.ID, Price: o.Stuff.Price}}
		if err != nil || ev != want {
			t.Fatalf("order:completed = %+v (%v), want %+v", ev, err, want)
		}
	default:
		t.Fatalf("terminal event %s", m.Subject)
	}
}

// checkHold checks the hold of an order's stuff against its status: held
// while created, gone when cancelled, kept and marked sold when complete.
func checkHold(t *testing.T, e *env, o orders.Order, status string) {
	t.Helper()
	h, ok := e.holdOf(o.Stuff.ID)
	switch status {
	case orders.StatusCreated:
		if !ok || h.OrderID != o.ID || h.Sold {
			t.Fatalf("hold of a created order = %+v (present %v)", h, ok)
		}
	case orders.StatusCancelled:
		if ok {
			t.Fatalf("hold of a cancelled order still there: %+v", h)
		}
	case orders.StatusComplete:
		if !ok || h.OrderID != o.ID || !h.Sold {
			t.Fatalf("hold of a completed order = %+v (present %v), want kept and sold", h, ok)
		}
	}
}

func TestOrderEndsOfUnknownOrMalformedOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tests := []struct {
		name string
		id   string
		want error
	}{
		{"unknown", store.NewID(), orders.ErrEventAhead},
		{"malformed", "zzz", orders.ErrMalformedEvent},
		{"empty", "", orders.ErrMalformedEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.svc.Expire(ctx, tc.id); !errors.Is(err, tc.want) {
				t.Errorf("expire: got %v, want %v", err, tc.want)
			}
			if err := e.svc.Complete(ctx, orders.Payment{ID: "p", OrderID: tc.id, Amount: 500, ProviderID: "pi_1"}); !errors.Is(err, tc.want) {
				t.Errorf("complete: got %v, want %v", err, tc.want)
			}
		})
	}
}

// A process that died after claiming an outcome, before saving the order,
// leaves the claim: the next attempt of the same outcome finishes the work,
// and the other outcome stays refused.
func TestOrderEndFinishesAClaimLeftHalfWay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	o := e.order(user())
	if _, err := e.store.ClaimOutcome(ctx, o.ID, orders.StatusCancelled, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Complete(ctx, paymentOf(o)); !errors.Is(err, orders.ErrOutcomeTaken) {
		t.Fatalf("complete: got %v, want ErrOutcomeTaken", err)
	}
	if r := e.record(o.ID); r.Status != orders.StatusCreated {
		t.Fatalf("status %s after a lost completion", r.Status)
	}
	if err := e.expire(o); err != nil {
		t.Fatal(err)
	}
	r := e.record(o.ID)
	if r.Status != orders.StatusCancelled || r.Version != 2 || len(r.Outbox) != 2 {
		t.Fatalf("order %s v%d events %v, want cancelled v2 with one order:cancelled", r.Status, r.Version, subjects(r))
	}
	checkHold(t, e, o, orders.StatusCancelled)
}

// cancelAfterClaim is the real store, with the caller's context ending right
// after an outcome is claimed: a buyer who gives up on their cancel request
// (or the storefront's call timing out) at that moment.
type cancelAfterClaim struct {
	*store.Store
	cancel context.CancelFunc
}

func (c cancelAfterClaim) ClaimOutcome(ctx context.Context, orderID, outcome string, at time.Time) (string, error) {
	won, err := c.Store.ClaimOutcome(ctx, orderID, outcome, at)
	c.cancel()
	return won, err
}

// Once an outcome is claimed, the order is brought to it even if the caller
// goes away: a cancel request dropped at that point used to leave the order
// "created" with its stuff held and no order:cancelled (so payments charged
// it as created) until the deadline fired.
func TestOrderEndSurvivesItsCallerGoingAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.order(user())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := orders.NewService(cancelAfterClaim{e.store, cancel}, orders.Options{Hold: hold, Now: e.clock.Now, IDs: store.NewID})
	if err := svc.Cancel(ctx, o.UserID, o.ID); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	r := e.record(o.ID)
	if r.Status != orders.StatusCancelled || r.Version != 2 || len(r.Outbox) != 2 {
		t.Fatalf("order %s v%d events %v, want cancelled v2 with one order:cancelled", r.Status, r.Version, subjects(r))
	}
	checkHold(t, e, o, orders.StatusCancelled)
}

// The owner's cancel, the expiry and the payment of one order, at the same
// instant, many times: each order ends exactly one way, with one event.
func TestOrderEndRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const n = 20
	list := make([]orders.Order, n)
	for i := range list {
		list[i] = e.order(user())
	}
	e.clock.Advance(hold) // every deadline has come
	type result struct{ cancel, expire, complete error }
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, o := range list {
		wg.Add(3)
		go func() { defer wg.Done(); <-start; results[i].cancel = e.svc.Cancel(ctx, o.UserID, o.ID) }()
		go func() { defer wg.Done(); <-start; results[i].expire = e.svc.Expire(ctx, o.ID) }()
		go func() { defer wg.Done(); <-start; results[i].complete = e.svc.Complete(ctx, paymentOf(o)) }()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("race took %v", time.Since(t0))
	seen := map[string]int{}
	for i, o := range list {
		res := results[i]
		r := e.record(o.ID)
		seen[r.Status]++
		if r.Version != 2 || len(r.Outbox) != 2 {
			t.Fatalf("order %d: %s v%d events %v, want v2 with exactly one terminal event", i, r.Status, r.Version, subjects(r))
		}
		checkEndEvent(t, r, o)
		checkHold(t, e, o, r.Status)
		if res.expire != nil {
			t.Fatalf("order %d: expire: %v", i, res.expire)
		}
		switch r.Status {
		case orders.StatusCancelled:
			if !errors.Is(res.complete, orders.ErrOutcomeTaken) {
				t.Fatalf("order %d cancelled, but complete returned %v", i, res.complete)
			}
			if res.cancel != nil && !errors.Is(res.cancel, orders.ErrNotCancellable) {
				t.Fatalf("order %d: cancel: %v", i, res.cancel)
			}
		case orders.StatusComplete:
			if res.complete != nil || !errors.Is(res.cancel, orders.ErrNotCancellable) {
				t.Fatalf("order %d complete, but complete returned %v and cancel %v", i, res.complete, res.cancel)
			}
		default:
			t.Fatalf("order %d ended %s", i, r.Status)
		}
		var claim struct {
			Outcome string `bson:"outcome"`
		}
		oid, _ := primitive.ObjectIDFromHex(o.ID)
		if err := e.db.Collection(store.OutcomesCollection).FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&claim); err != nil || claim.Outcome != r.Status {
			t.Fatalf("order %d: outcome claim %q (%v), status %s", i, claim.Outcome, err, r.Status)
		}
	}
	t.Logf("outcomes: %v", seen)
}

func TestListNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc = orders.NewService(e.store, orders.Options{Hold: hold, MaxOpen: 5, Now: e.clock.Now, IDs: store.NewID})
	ctx := context.Background()
	buyer := user()
	var ids []string
	for range 5 {
		ids = append(ids, e.order(buyer).ID)
		e.order(user()) // someone else's
		e.clock.Advance(time.Second)
	}
	tests := []struct {
		page, limit int
		want        []string
	}{
		{1, 10, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{1, 2, []string{ids[4], ids[3]}},
		{2, 2, []string{ids[2], ids[1]}},
		{3, 2, []string{ids[0]}},
		{4, 2, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("page %d limit %d", tc.page, tc.limit), func(t *testing.T) {
			list, err := e.svc.List(ctx, buyer, tc.page, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range list {
				if o.UserID != buyer {
					t.Fatalf("listed someone else's order %+v", o)
				}
				got = append(got, o.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCompleteRefusesAnOrderThatLostItsStuff: a payment of an order whose
// hold is gone (released, maybe taken by another order) does not complete
// it: the order is cancelled instead, so that payments refunds the money
// instead of the stuff being sold twice, and the other order keeps the stuff.
func TestCompleteRefusesAnOrderThatLostItsStuff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// lose takes o's hold away, and returns the order that holds the
		// stuff afterwards (none: "").
		lose func(e *env, o orders.Order) string
	}{
		{"hold gone", func(e *env, o orders.Order) string {
			if err := e.store.ReleaseHold(context.Background(), o.Stuff.ID, o.ID); err != nil {
				e.t.Fatal(err)
			}
			return ""
		}},
		{"hold taken by another order", func(e *env, o orders.Order) string {
			if err := e.store.ReleaseHold(context.Background(), o.Stuff.ID, o.ID); err != nil {
				e.t.Fatal(err)
			}
			other, err := e.svc.Create(context.Background(), user(), o.Stuff.ID, orders.RequestKey{})
			if err != nil {
				e.t.Fatal(err)
			}
			return other.ID
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			o := e.order(user())
			holder := tc.lose(e, o)
			if err := e.svc.Complete(context.Background(), paymentOf(o)); !errors.Is(err, orders.ErrOutcomeTaken) {
				t.Fatalf("complete: got %v, want ErrOutcomeTaken (the payment is refunded)", err)
			}
			r := e.record(o.ID)
			if r.Status != orders.StatusCancelled || r.Version != 2 || len(r.Outbox) != 2 {
				t.Fatalf("order %s v%d events %v, want cancelled v2 with one order:cancelled", r.Status, r.Version, subjects(r))
			}
			checkEndEvent(t, r, o)
			h, ok := e.holdOf(o.Stuff.ID)
			switch {
			case holder == "" && ok:
				t.Fatalf("hold %+v appeared", h)
			case holder != "" && (!ok || h.OrderID != holder || h.Sold):
				t.Fatalf("hold = %+v (present %v), want order %s's, not sold", h, ok, holder)
			}
			// The payment's redelivery changes nothing.
			if err := e.svc.Complete(context.Background(), paymentOf(o)); !errors.Is(err, orders.ErrOutcomeTaken) {
				t.Fatalf("complete again: got %v, want ErrOutcomeTaken", err)
			}
		})
	}
}

// insertHook is the real store, running before ahead of the first order
// insert (before may insert orders itself: they go straight through).
type insertHook struct {
	*store.Store
	fired  atomic.Bool
	before func(o orders.Order)
}

func (s *insertHook) InsertOrder(ctx context.Context, o orders.Order, now time.Time) error {
	if s.fired.CompareAndSwap(false, true) {
		s.before(o)
	}
	return s.Store.InsertOrder(ctx, o, now)
}

// An order saved after its hold was released as an orphan (its insert came
// after StaleHold, so another buyer found the hold without an order, released
// it and took the stuff) is not answered as placed: it would be payable
// without holding anything. It is cancelled and its buyer told the stuff is
// held; the other buyer keeps it.
func TestOrderSavedAfterItsHoldWasTakenOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	stuffID := e.stuff(user(), 500)
	slow, quick := user(), user()
	hooked := &insertHook{Store: e.store}
	svc := orders.NewService(hooked, orders.Options{Hold: hold, Now: e.clock.Now, IDs: store.NewID})
	var taken orders.Order
	var takenErr error
	hooked.before = func(orders.Order) {
		e.clock.Advance(2 * time.Minute)
		taken, takenErr = svc.Create(ctx, quick, stuffID, orders.RequestKey{})
	}
	_, err := svc.Create(ctx, slow, stuffID, orders.RequestKey{})
	if takenErr != nil {
		t.Fatalf("the buyer who met the orphan hold: %v", takenErr)
	}
	if !errors.Is(err, orders.ErrHeld) {
		t.Fatalf("the slow order: got %v, want ErrHeld", err)
	}
	list, lerr := e.svc.List(ctx, slow, 1, 10)
	if lerr != nil || len(list) != 1 {
		t.Fatalf("orders of the slow buyer: %v (%v)", list, lerr)
	}
	r := e.record(list[0].ID)
	if r.Status != orders.StatusCancelled || r.Version != 2 {
		t.Fatalf("slow order %s v%d events %v, want cancelled", r.Status, r.Version, subjects(r))
	}
	checkHold(t, e, taken, orders.StatusCreated)
}

// TestCreateWithAKey: every try of a request with a key places (at most)
// the one order minted from the key, whatever the earlier try left.
func TestCreateWithAKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// first plays the first try of key's request by buyer for stuffID,
		// as it was left when the retry comes.
		first      func(e *env, buyer, stuffID string, key orders.RequestKey)
		wantErr    error
		wantStatus string // of the retry's order
	}{
		{"first try answered", func(e *env, buyer, stuffID string, key orders.RequestKey) {
			if _, err := e.svc.Create(context.Background(), buyer, stuffID, key); err != nil {
				e.t.Fatal(err)
			}
		}, nil, orders.StatusCreated},
		{"first try's order cancelled since", func(e *env, buyer, stuffID string, key orders.RequestKey) {
			o, err := e.svc.Create(context.Background(), buyer, stuffID, key)
			if err != nil {
				e.t.Fatal(err)
			}
			if err := e.svc.Cancel(context.Background(), buyer, o.ID); err != nil {
				e.t.Fatal(err)
			}
		}, nil, orders.StatusCancelled},
		{"first try died after its hold", func(e *env, buyer, stuffID string, key orders.RequestKey) {
			e.firstHold(buyer, stuffID, key, e.clock.Now())
		}, nil, orders.StatusCreated},
		{"first try's hold, stale", func(e *env, buyer, stuffID string, key orders.RequestKey) {
			e.firstHold(buyer, stuffID, key, e.clock.Now().Add(-time.Hour))
		}, nil, orders.StatusCreated},
		{"first try's stale hold taken by another buyer", func(e *env, buyer, stuffID string, key orders.RequestKey) {
			e.firstHold(buyer, stuffID, key, e.clock.Now().Add(-time.Hour))
			if _, err := e.svc.Create(context.Background(), user(), stuffID, orders.RequestKey{}); err != nil {
				e.t.Fatal(err)
			}
		}, orders.ErrHeld, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			buyer, stuffID := user(), e.stuff(user(), 500)
			key := orders.RequestKey{Key: "buy-" + stuffID, Since: e.clock.Now().Truncate(time.Millisecond)}
			want := store.DerivedID(key.Since, buyer, key.Key)
			tc.first(e, buyer, stuffID, key)
			e.clock.Advance(40 * time.Second) // a retry comes after the first try's claim timed out
			o, err := e.svc.Create(ctx, buyer, stuffID, key)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("retry: got %v, want %v", err, tc.wantErr)
			}
			list, lerr := e.svc.List(ctx, buyer, 1, 10)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tc.wantErr != nil {
				if len(list) != 0 {
					t.Fatalf("orders of the buyer: %+v, want none", list)
				}
				return
			}
			if o.ID != want || o.Status != tc.wantStatus || o.UserID != buyer || o.Stuff.ID != stuffID {
				t.Fatalf("retry answered %+v, want order %s %s", o, want, tc.wantStatus)
			}
			if len(list) != 1 || list[0].ID != want {
				t.Fatalf("orders of the buyer: %+v, want only %s", list, want)
			}
			checkHold(t, e, o, o.Status)
			// And again: the same order, nothing new.
			again, err := e.svc.Create(ctx, buyer, stuffID, key)
			if err != nil || again != o {
				t.Fatalf("third try: %+v (%v), want %+v", again, err, o)
			}
		})
	}
}

// firstHold leaves the hold a first try of key's request took at, as a
// process that died before saving the order does.
func (e *env) firstHold(buyer, stuffID string, key orders.RequestKey, at time.Time) {
	e.t.Helper()
	id := store.DerivedID(key.Since, buyer, key.Key)
	if err := e.store.InsertHold(context.Background(), orders.Hold{StuffID: stuffID, OrderID: id, UserID: buyer, CreatedAt: at}); err != nil {
		e.t.Fatal(err)
	}
}

// TestCancelOverdue: with the expiration service down, an order still
// created Sweep past its deadline is cancelled through the outcome claim; one
// not that late is left to the expiration service; a completion claimed but
// never finished (its process died) is finished, not overturned.
func TestCancelOverdue(t *testing.T) {
	t.Parallel()
	const sweep = 30 * time.Second
	e := newEnv(t)
	ctx := context.Background()
	svc := orders.NewService(e.store, orders.Options{Hold: hold, Sweep: sweep, Now: e.clock.Now, IDs: store.NewID})
	overdue, halfPaid, paid := e.order(user()), e.order(user()), e.order(user())
	if err := e.svc.Complete(ctx, paymentOf(paid)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.ClaimOutcome(ctx, halfPaid.ID, orders.StatusComplete, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Second)
	late := e.order(user()) // its deadline comes 2 s after the others'
	e.clock.Advance(hold + sweep)

	n, err := svc.CancelOverdue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("CancelOverdue ended %d orders, want 2", n)
	}
	tests := []struct {
		name string
		o    orders.Order
		want string
	}{
		{"overdue", overdue, orders.StatusCancelled},
		{"completion claimed, not finished", halfPaid, orders.StatusComplete},
		{"paid", paid, orders.StatusComplete},
		{"past its deadline by less than the sweep", late, orders.StatusCreated},
	}
	for _, tc := range tests {
		r := e.record(tc.o.ID)
		if r.Status != tc.want {
			t.Errorf("%s: order %s v%d events %v, want %s", tc.name, r.Status, r.Version, subjects(r), tc.want)
			continue
		}
		checkEndEvent(t, r, tc.o)
		checkHold(t, e, tc.o, tc.want)
	}
	// A payment of the cancelled order is refused (payments refunds it).
	if err := svc.Complete(ctx, paymentOf(overdue)); !errors.Is(err, orders.ErrOutcomeTaken) {
		t.Fatalf("payment after the sweep: got %v, want ErrOutcomeTaken", err)
	}
}

// claimOf reads the outcome claim of an order, ok false when there is none.
func (e *env) claimOf(id string) (string, bool) {
	e.t.Helper()
	oid, _ := primitive.ObjectIDFromHex(id)
	var d struct {
		Outcome string `bson:"outcome"`
	}
	err := e.db.Collection(store.OutcomesCollection).FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Outcome, true
}

// TestPruneOutcomes: outcome claims do not pile up. A claim made more than
// a day ago whose order shows its outcome is forgotten; a recent one, and
// one whose order was never brought to it (left half-way), are kept. Late
// events about a pruned order still change nothing.
func TestPruneOutcomes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cancelled, completed, halfWay := e.order(user()), e.order(user()), e.order(user())
	if err := e.expire(cancelled); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Complete(ctx, paymentOf(completed)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.ClaimOutcome(ctx, halfWay.ID, orders.StatusCancelled, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(orders.OutcomeRetention)
	recent := e.order(user())
	if err := e.expire(recent); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)

	n, err := e.svc.PruneOutcomes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("pruned %d claims, want 2", n)
	}
	for _, c := range []struct {
		name string
		o    orders.Order
		kept bool
	}{{"cancelled a day ago", cancelled, false}, {"completed a day ago", completed, false}, {"left half-way", halfWay, true}, {"recent", recent, true}} {
		if _, ok := e.claimOf(c.o.ID); ok != c.kept {
			t.Errorf("%s: claim kept %v, want %v", c.name, ok, c.kept)
		}
	}

	// Late events about the pruned orders change nothing.
	if err := e.svc.Complete(ctx, paymentOf(cancelled)); !errors.Is(err, orders.ErrOutcomeTaken) {
		t.Fatalf("payment of the pruned cancelled order: %v, want ErrOutcomeTaken", err)
	}
	if err := e.svc.Expire(ctx, completed.ID); err != nil {
		t.Fatalf("expiry of the pruned completed order: %v", err)
	}
	if err := e.svc.Expire(ctx, cancelled.ID); err != nil {
		t.Fatalf("expiry of the pruned cancelled order again: %v", err)
	}
	for _, c := range []struct {
		o    orders.Order
		want string
	}{{cancelled, orders.StatusCancelled}, {completed, orders.StatusComplete}} {
		r := e.record(c.o.ID)
		if r.Status != c.want || r.Version != 2 || len(r.Outbox) != 2 {
			t.Fatalf("order %s v%d events %v after late events, want %s v2, one terminal event", r.Status, r.Version, subjects(r), c.want)
		}
		checkHold(t, e, c.o, c.want)
	}
}
