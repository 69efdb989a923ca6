// Package store keeps the orders service's data in MongoDB (FerretDB
// locally): the stuff replica, holds, open-order slots, outcome claims and
// orders. It maps
// between BSON documents and the orders domain types and maps driver errors
// to the domain's (ErrNotFound, ErrDuplicate, ErrStale).
//
// Claims (holds, slots, outcomes) are plain inserts keyed by _id, whose unique index
// makes them atomic on FerretDB too. Every update of an existing document
// goes through the service's one mongox.Writer and is conditioned on the
// version it read, so it is also safe across processes on real MongoDB
// (docs/data-safety.md). Each change of an order is saved with the event
// that announces it in the order's outbox, in one write; the store builds
// those payloads from the domain's Order (docs/events.md).
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/services/orders/internal/orders"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
)

// Collection names.
const (
	OrdersCollection   = "orders"
	StuffCollection    = "stuff"
	HoldsCollection    = "holds"
	SlotsCollection    = "slots"
	OutcomesCollection = "outcomes"
)

// Notifier has the pending events of a document published; the outbox
// relay implements it.
type Notifier interface {
	Notify(coll *mongo.Collection, id any, pending ...outbox.Pending)
}

// Store implements orders.Store.
type Store struct {
	w        *mongox.Writer
	relay    Notifier
	orders   *mongo.Collection
	stuff    *mongo.Collection
	holds    *mongo.Collection
	slots    *mongo.Collection
	outcomes *mongo.Collection

	stuffReads flight[orders.Stuff]
	holdReads  flight[orders.Hold]
}

var _ orders.Store = (*Store)(nil)

// New returns a Store over db. w is the service's one Writer; relay
// publishes what InsertOrder and UpdateOrder put in an order's outbox.
func New(db *mongo.Database, w *mongox.Writer, relay Notifier) *Store {
	return &Store{
		w:        w,
		relay:    relay,
		orders:   db.Collection(OrdersCollection),
		stuff:    db.Collection(StuffCollection),
		holds:    db.Collection(HoldsCollection),
		slots:    db.Collection(SlotsCollection),
		outcomes: db.Collection(OutcomesCollection),
	}
}

// Indexes are the indexes the store needs besides _id. None is unique: every
// claim is keyed by _id, whose index always exists.
func Indexes() []mongox.Index {
	return []mongox.Index{
		{Collection: OrdersCollection, Keys: bson.D{{Key: "userId", Value: 1}, {Key: "createdAt", Value: -1}}, Name: "user_newest"},
		{Collection: OrdersCollection, Keys: bson.D{{Key: "status", Value: 1}, {Key: "expiresAt", Value: 1}}, Name: "status_deadline"},
		{Collection: OutcomesCollection, Keys: bson.D{{Key: "at", Value: 1}}, Name: "oldest"},
		{Collection: SlotsCollection, Keys: bson.D{{Key: "createdAt", Value: 1}}, Name: "oldest"},
	}
}

// NewID mints an order id.
func NewID() string { return primitive.NewObjectID().Hex() }

// DerivedID mints the order id of a request with an Idempotency-Key: the
// same since and parts always give the same id (mongox.DerivedObjectID).
func DerivedID(since time.Time, parts ...string) string {
	return mongox.DerivedObjectID(since, parts...).Hex()
}

func objectID(id string) (primitive.ObjectID, bool) {
	oid, err := primitive.ObjectIDFromHex(id)
	return oid, err == nil
}

func notFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return orders.ErrNotFound
	}
	return err
}

func duplicate(err error) error {
	if mongox.IsDuplicate(err) {
		return fmt.Errorf("%w: %v", orders.ErrDuplicate, err)
	}
	return err
}

// --- stuff replica ---

type stuffDoc struct {
	ID       primitive.ObjectID `bson:"_id"`
	Title    string             `bson:"title"`
	Price    int64              `bson:"price"`
	Currency string             `bson:"currency"`
	UserID   string             `bson:"userId"`
	Status   string             `bson:"status"`
	OrderID  string             `bson:"orderId,omitempty"`
	Version  int64              `bson:"version"`
}

func (d stuffDoc) domain() orders.Stuff {
	return orders.Stuff{ID: d.ID.Hex(), Title: d.Title, Price: d.Price, Currency: d.Currency,
		SellerID: d.UserID, Status: d.Status, OrderID: d.OrderID, Version: d.Version}
}

// InsertStuff adds s to the replica; ErrDuplicate if it is there.
func (s *Store) InsertStuff(ctx context.Context, st orders.Stuff) error {
	oid, ok := objectID(st.ID)
	if !ok {
		return fmt.Errorf("stuff id %q: %w", st.ID, orders.ErrMalformedEvent)
	}
	err := s.w.Insert(ctx, s.stuff, stuffDoc{ID: oid, Title: st.Title, Price: st.Price, Currency: st.Currency,
		UserID: st.SellerID, Status: st.Status, OrderID: st.OrderID, Version: st.Version})
	return duplicate(err)
}

// UpdateStuff runs fn on stuff id under its write lock and saves what fn
// changed, on condition that the version is still the one read (ErrStale).
func (s *Store) UpdateStuff(ctx context.Context, id string, fn func(st *orders.Stuff) (bool, error)) error {
	oid, ok := objectID(id)
	if !ok {
		return orders.ErrNotFound
	}
	return s.w.Lock(ctx, s.stuff, oid, func(ctx context.Context) error {
		var d stuffDoc
		if err := s.stuff.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
			return notFound(err)
		}
		st := d.domain()
		changed, err := fn(&st)
		if err != nil || !changed {
			return err
		}
		matched, err := s.w.UpdateLocked(ctx, s.stuff, oid,
			bson.D{{Key: "$set", Value: bson.D{
				{Key: "title", Value: st.Title},
				{Key: "price", Value: st.Price},
				{Key: "currency", Value: st.Currency},
				{Key: "userId", Value: st.SellerID},
				{Key: "status", Value: st.Status},
				{Key: "orderId", Value: st.OrderID},
				{Key: "version", Value: st.Version},
			}}},
			bson.E{Key: "version", Value: d.Version})
		if err != nil {
			return err
		}
		if !matched {
			return orders.ErrStale
		}
		return nil
	})
}

// Stuff reads stuff id. Concurrent reads of one stuff (200 buyers at once)
// share one query.
func (s *Store) Stuff(ctx context.Context, id string) (orders.Stuff, error) {
	oid, ok := objectID(id)
	if !ok {
		return orders.Stuff{}, orders.ErrNotFound
	}
	return s.stuffReads.do(ctx, oid.Hex(), func(ctx context.Context) (orders.Stuff, error) {
		var d stuffDoc
		if err := s.stuff.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
			return orders.Stuff{}, notFound(err)
		}
		return d.domain(), nil
	})
}

// --- holds ---

type holdDoc struct {
	StuffID   primitive.ObjectID `bson:"_id"`
	OrderID   string             `bson:"orderId"`
	UserID    string             `bson:"userId"`
	CreatedAt time.Time          `bson:"createdAt"`
	Sold      bool               `bson:"sold"`
}

// InsertHold claims stuff h.StuffID for order h.OrderID: one insert keyed by
// the stuff id, ErrDuplicate when another order holds it.
func (s *Store) InsertHold(ctx context.Context, h orders.Hold) error {
	oid, ok := objectID(h.StuffID)
	if !ok {
		return orders.ErrNotFound
	}
	err := s.w.Insert(ctx, s.holds, holdDoc{StuffID: oid, OrderID: h.OrderID, UserID: h.UserID, CreatedAt: h.CreatedAt, Sold: h.Sold})
	return duplicate(err)
}

// heldKey marks the context of a caller that holds the write lock of a hold
// (LockHold); its value is the hold's _id.
type heldKey struct{}

// locked reports whether ctx is that of a caller holding the lock of hold
// oid.
func locked(ctx context.Context, oid primitive.ObjectID) bool {
	v, ok := ctx.Value(heldKey{}).(primitive.ObjectID)
	return ok && v == oid
}

// LockHold runs fn holding this process's write lock of the hold of stuffID,
// the lock ReleaseHold and MarkHoldSold take: within the process, fn and
// every release of that hold take turns. With the ctx fn gets, Hold reads
// the hold as it is now, and ReleaseHold and MarkHoldSold write it without
// taking the lock again; a nested LockHold of the same hold runs at once.
func (s *Store) LockHold(ctx context.Context, stuffID string, fn func(ctx context.Context) error) error {
	oid, ok := objectID(stuffID)
	if !ok {
		return orders.ErrNotFound
	}
	if locked(ctx, oid) {
		return fn(ctx)
	}
	return s.w.Lock(ctx, s.holds, oid, func(ctx context.Context) error {
		return fn(context.WithValue(ctx, heldKey{}, oid))
	})
}

// Hold reads the hold of a stuff. Concurrent reads of one hold (199 buyers
// who just lost) share one query, except under LockHold, where the read is
// the hold as it is now.
func (s *Store) Hold(ctx context.Context, stuffID string) (orders.Hold, error) {
	oid, ok := objectID(stuffID)
	if !ok {
		return orders.Hold{}, orders.ErrNotFound
	}
	if locked(ctx, oid) {
		return s.readHold(ctx, oid)
	}
	return s.holdReads.do(ctx, oid.Hex(), func(ctx context.Context) (orders.Hold, error) {
		return s.readHold(ctx, oid)
	})
}

func (s *Store) readHold(ctx context.Context, oid primitive.ObjectID) (orders.Hold, error) {
	var d holdDoc
	if err := s.holds.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		return orders.Hold{}, notFound(err)
	}
	return orders.Hold{StuffID: d.StuffID.Hex(), OrderID: d.OrderID, UserID: d.UserID, CreatedAt: d.CreatedAt, Sold: d.Sold}, nil
}

// ReleaseHold deletes the hold of stuffID if orderID holds it, under the
// hold's lock.
func (s *Store) ReleaseHold(ctx context.Context, stuffID, orderID string) error {
	oid, ok := objectID(stuffID)
	if !ok {
		return orders.ErrNotFound
	}
	guard := bson.E{Key: "orderId", Value: orderID}
	if !locked(ctx, oid) {
		_, err := s.w.DeleteByID(ctx, s.holds, oid, guard)
		return err
	}
	// The caller holds the lock (LockHold): the read below is the check
	// within the process, and the guard in the filter makes the delete
	// atomic on MongoDB, where another replica may write in between. On
	// FerretDB a filter beyond _id reads every hold; this path serves only
	// rare cases (an orphan hold, an order insert that failed).
	cur, err := s.readHold(ctx, oid)
	if errors.Is(err, orders.ErrNotFound) {
		return nil
	}
	if err != nil || cur.OrderID != orderID {
		return err
	}
	_, err = s.w.DeleteMany(ctx, s.holds, bson.D{{Key: "_id", Value: oid}, guard})
	return err
}

// MarkHoldSold marks the hold of stuffID sold if orderID holds it, under the
// hold's lock.
func (s *Store) MarkHoldSold(ctx context.Context, stuffID, orderID string) error {
	oid, ok := objectID(stuffID)
	if !ok {
		return orders.ErrNotFound
	}
	sold := bson.D{{Key: "$set", Value: bson.D{{Key: "sold", Value: true}}}}
	guard := bson.E{Key: "orderId", Value: orderID}
	if !locked(ctx, oid) {
		_, err := s.w.UpdateByID(ctx, s.holds, oid, sold, guard)
		return err
	}
	cur, err := s.readHold(ctx, oid)
	if errors.Is(err, orders.ErrNotFound) {
		return nil
	}
	if err != nil || cur.OrderID != orderID {
		return err
	}
	_, err = s.w.UpdateLocked(ctx, s.holds, oid, sold, guard)
	return err
}

// --- open-order slots ---

type slotDoc struct {
	ID        string    `bson:"_id"` // slotID(userID, n)
	UserID    string    `bson:"userId"`
	N         int       `bson:"n"`
	OrderID   string    `bson:"orderId"`
	CreatedAt time.Time `bson:"createdAt"`
}

// slotID is the _id of slot n of userID: "<userID>#<n>". The unique _id
// index is what lets no more than MaxOpen slots of a user exist.
func slotID(userID string, n int) string { return userID + "#" + strconv.Itoa(n) }

func (d slotDoc) domain() orders.Slot {
	return orders.Slot{UserID: d.UserID, N: d.N, OrderID: d.OrderID, CreatedAt: d.CreatedAt.UTC()}
}

// InsertSlot claims slot sl.N of sl.UserID for order sl.OrderID: one insert
// keyed by the user and the number, ErrDuplicate when another order holds
// it.
func (s *Store) InsertSlot(ctx context.Context, sl orders.Slot) error {
	err := s.w.Insert(ctx, s.slots, slotDoc{ID: slotID(sl.UserID, sl.N), UserID: sl.UserID, N: sl.N, OrderID: sl.OrderID, CreatedAt: sl.CreatedAt})
	return duplicate(err)
}

// slotLockKey marks the context of a caller that holds the write lock of a
// slot (LockSlot); its value is the slot's _id.
type slotLockKey struct{}

func slotLocked(ctx context.Context, id string) bool {
	v, ok := ctx.Value(slotLockKey{}).(string)
	return ok && v == id
}

// LockSlot runs fn holding this process's write lock of slot n of userID,
// the lock ReleaseSlot takes: as LockHold does for a hold, with fn's ctx
// ReleaseSlot writes without taking the lock again.
func (s *Store) LockSlot(ctx context.Context, userID string, n int, fn func(ctx context.Context) error) error {
	id := slotID(userID, n)
	if slotLocked(ctx, id) {
		return fn(ctx)
	}
	return s.w.Lock(ctx, s.slots, id, func(ctx context.Context) error {
		return fn(context.WithValue(ctx, slotLockKey{}, id))
	})
}

// Slot reads slot n of userID.
func (s *Store) Slot(ctx context.Context, userID string, n int) (orders.Slot, error) {
	var d slotDoc
	if err := s.slots.FindOne(ctx, bson.D{{Key: "_id", Value: slotID(userID, n)}}).Decode(&d); err != nil {
		return orders.Slot{}, notFound(err)
	}
	return d.domain(), nil
}

// ReleaseSlot deletes slot n of userID if orderID holds it, under the
// slot's lock.
func (s *Store) ReleaseSlot(ctx context.Context, userID string, n int, orderID string) error {
	id := slotID(userID, n)
	guard := bson.E{Key: "orderId", Value: orderID}
	if !slotLocked(ctx, id) {
		_, err := s.w.DeleteByID(ctx, s.slots, id, guard)
		return err
	}
	// The caller holds the lock (LockSlot) and read the slot under it: as
	// in ReleaseHold, the guard in the filter makes the delete atomic on
	// MongoDB. On FerretDB it reads every slot (one per order waiting for
	// payment); this path serves only orphans.
	_, err := s.w.DeleteMany(ctx, s.slots, bson.D{{Key: "_id", Value: id}, guard})
	return err
}

// SlotsBefore lists up to limit slots taken before before, the oldest
// first. It reads every slot on FerretDB: for the sweep.
func (s *Store) SlotsBefore(ctx context.Context, before time.Time, limit int) ([]orders.Slot, error) {
	cur, err := s.slots.Find(ctx, bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: before}}}},
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []slotDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	list := make([]orders.Slot, len(docs))
	for i, d := range docs {
		list[i] = d.domain()
	}
	return list, nil
}

// --- outcomes ---

type outcomeDoc struct {
	OrderID primitive.ObjectID `bson:"_id"`
	Outcome string             `bson:"outcome"`
	At      time.Time          `bson:"at"`
}

// ClaimOutcome inserts the outcome claim of an order and returns the
// recorded outcome: outcome if this insert won or an identical claim was
// there, the other one otherwise.
func (s *Store) ClaimOutcome(ctx context.Context, orderID, outcome string, at time.Time) (string, error) {
	oid, ok := objectID(orderID)
	if !ok {
		return "", orders.ErrNotFound
	}
	err := s.w.Insert(ctx, s.outcomes, outcomeDoc{OrderID: oid, Outcome: outcome, At: at})
	if err == nil {
		return outcome, nil
	}
	if !mongox.IsDuplicate(err) {
		return "", err
	}
	var d outcomeDoc
	if err := s.outcomes.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		return "", fmt.Errorf("read outcome claim: %w", err)
	}
	return d.Outcome, nil
}

// OutcomesBefore lists up to limit claims made before before, the oldest
// first. It reads every claim on FerretDB: for the pruning job.
func (s *Store) OutcomesBefore(ctx context.Context, before time.Time, limit int) ([]orders.Outcome, error) {
	cur, err := s.outcomes.Find(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: before}}}},
		options.Find().SetSort(bson.D{{Key: "at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []outcomeDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	list := make([]orders.Outcome, len(docs))
	for i, d := range docs {
		list[i] = orders.Outcome{OrderID: d.OrderID.Hex(), Outcome: d.Outcome, At: d.At.UTC()}
	}
	return list, nil
}

// ForgetOutcome deletes the claim of orderID if it is outcome.
func (s *Store) ForgetOutcome(ctx context.Context, orderID, outcome string) error {
	oid, ok := objectID(orderID)
	if !ok {
		return orders.ErrNotFound
	}
	_, err := s.w.DeleteByID(ctx, s.outcomes, oid, bson.E{Key: "outcome", Value: outcome})
	return err
}

// --- orders ---

type orderStuffDoc struct {
	ID       string `bson:"id"`
	Title    string `bson:"title"`
	Price    int64  `bson:"price"`
	Currency string `bson:"currency"`
}

type orderDoc struct {
	ID        primitive.ObjectID `bson:"_id"`
	UserID    string             `bson:"userId"`
	Status    string             `bson:"status"`
	Stuff     orderStuffDoc      `bson:"stuff"`
	ExpiresAt time.Time          `bson:"expiresAt"`
	CreatedAt time.Time          `bson:"createdAt"`
	Version   int64              `bson:"version"`
	Slot      int                `bson:"slot"`
	Outbox    []outbox.Pending   `bson:"outbox,omitempty"`
}

func (d orderDoc) domain() orders.Order {
	return orders.Order{
		ID:        d.ID.Hex(),
		UserID:    d.UserID,
		Status:    d.Status,
		Stuff:     orders.StuffRef{ID: d.Stuff.ID, Title: d.Stuff.Title, Price: d.Stuff.Price, Currency: d.Stuff.Currency},
		ExpiresAt: d.ExpiresAt.UTC(),
		CreatedAt: d.CreatedAt.UTC(),
		Version:   d.Version,
		Slot:      d.Slot,
	}
}

var noOutbox = options.FindOne().SetProjection(bson.D{{Key: outbox.Field, Value: 0}})

// InsertOrder inserts o with its order:created in its outbox and notifies
// the relay.
func (s *Store) InsertOrder(ctx context.Context, o orders.Order, now time.Time) error {
	oid, ok := objectID(o.ID)
	if !ok {
		return fmt.Errorf("order id %q is not an ObjectID", o.ID)
	}
	p, err := outbox.New(ctx, orderCreated(o), now)
	if err != nil {
		return err
	}
	err = s.w.Insert(ctx, s.orders, orderDoc{
		ID:        oid,
		UserID:    o.UserID,
		Status:    o.Status,
		Stuff:     orderStuffDoc{ID: o.Stuff.ID, Title: o.Stuff.Title, Price: o.Stuff.Price, Currency: o.Stuff.Currency},
		ExpiresAt: o.ExpiresAt,
		CreatedAt: o.CreatedAt,
		Version:   o.Version,
		Slot:      o.Slot,
		Outbox:    []outbox.Pending{p},
	})
	if err != nil {
		return duplicate(err)
	}
	s.relay.Notify(s.orders, oid, p)
	return nil
}

// Order reads order id.
func (s *Store) Order(ctx context.Context, id string) (orders.Order, error) {
	oid, ok := objectID(id)
	if !ok {
		return orders.Order{}, orders.ErrNotFound
	}
	var d orderDoc
	if err := s.orders.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}, noOutbox).Decode(&d); err != nil {
		return orders.Order{}, notFound(err)
	}
	return d.domain(), nil
}

// OrdersByUser lists userID's orders, newest first.
func (s *Store) OrdersByUser(ctx context.Context, userID string, skip, limit int) ([]orders.Order, error) {
	return s.findOrders(ctx, bson.D{{Key: "userId", Value: userID}}, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetSkip(int64(skip)).
		SetLimit(int64(limit)))
}

// OpenOrdersOf lists userID's orders still created. On FerretDB it reads
// every order; on MongoDB the user_newest index serves it.
func (s *Store) OpenOrdersOf(ctx context.Context, userID string) ([]orders.Order, error) {
	return s.findOrders(ctx, bson.D{{Key: "userId", Value: userID}, {Key: "status", Value: orders.StatusCreated}}, options.Find())
}

// OverdueOrders lists up to limit created orders whose deadline is before
// before, the earliest first. On FerretDB it reads every order (a background
// job's query); on MongoDB the status_deadline index serves it.
func (s *Store) OverdueOrders(ctx context.Context, before time.Time, limit int) ([]orders.Order, error) {
	return s.findOrders(ctx, bson.D{
		{Key: "status", Value: orders.StatusCreated},
		{Key: "expiresAt", Value: bson.D{{Key: "$lt", Value: before}}},
	}, options.Find().SetSort(bson.D{{Key: "expiresAt", Value: 1}}).SetLimit(int64(limit)))
}

func (s *Store) findOrders(ctx context.Context, filter bson.D, opts *options.FindOptions) ([]orders.Order, error) {
	cur, err := s.orders.Find(ctx, filter, opts.SetProjection(bson.D{{Key: outbox.Field, Value: 0}}))
	if err != nil {
		return nil, err
	}
	var docs []orderDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	list := make([]orders.Order, len(docs))
	for i, d := range docs {
		list[i] = d.domain()
	}
	return list, nil
}

// UpdateOrder runs fn on order id under its write lock. When fn reports a
// change, the order's status and version (the only fields that change after
// creation) are saved with the event of its new status pushed to its outbox,
// in one update conditioned on the version read (ErrStale otherwise), and
// the relay is notified.
func (s *Store) UpdateOrder(ctx context.Context, id string, now time.Time, fn func(o *orders.Order) (bool, error)) (orders.Order, error) {
	oid, ok := objectID(id)
	if !ok {
		return orders.Order{}, orders.ErrNotFound
	}
	var out orders.Order
	var pushed []outbox.Pending
	err := s.w.Lock(ctx, s.orders, oid, func(ctx context.Context) error {
		var d orderDoc
		if err := s.orders.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}, noOutbox).Decode(&d); err != nil {
			return notFound(err)
		}
		o := d.domain()
		changed, err := fn(&o)
		if err != nil {
			return err
		}
		if !changed {
			out = d.domain()
			return nil
		}
		ev, err := orderEnded(o)
		if err != nil {
			return err
		}
		p, err := outbox.New(ctx, ev, now)
		if err != nil {
			return err
		}
		matched, err := s.w.UpdateLocked(ctx, s.orders, oid,
			bson.D{
				{Key: "$set", Value: bson.D{{Key: "status", Value: o.Status}, {Key: "version", Value: o.Version}}},
				outbox.Push(p),
			},
			bson.E{Key: "version", Value: d.Version})
		if err != nil {
			return err
		}
		if !matched {
			return orders.ErrStale
		}
		out, pushed = o, []outbox.Pending{p}
		return nil
	})
	if err != nil {
		return orders.Order{}, err
	}
	if pushed != nil {
		s.relay.Notify(s.orders, oid, pushed...)
	}
	return out, nil
}

// orderCreated is the order:created of a new order.
func orderCreated(o orders.Order) events.OrderCreatedEvent {
	return events.OrderCreatedEvent{
		ID:        o.ID,
		Version:   o.Version,
		Status:    o.Status,
		UserID:    o.UserID,
		ExpiresAt: o.ExpiresAt,
		Stuff:     events.StuffRef{ID: o.Stuff.ID, Title: o.Stuff.Title, Price: o.Stuff.Price},
	}
}

// orderEnded is the event of an order that reached its end: order:completed
// or order:cancelled. An order changed to any other status has none, and is
// not saved.
func orderEnded(o orders.Order) (events.Event, error) {
	switch o.Status {
	case orders.StatusComplete:
		return events.OrderCompletedEvent{ID: o.ID, Version: o.Version, UserID: o.UserID,
			Stuff: events.StuffRef{ID: o.Stuff.ID, Price: o.Stuff.Price}}, nil
	case orders.StatusCancelled:
		return events.OrderCancelledEvent{ID: o.ID, Version: o.Version, Stuff: events.StuffRef{ID: o.Stuff.ID}}, nil
	}
	return nil, fmt.Errorf("order %s changed to status %q, which no event announces", o.ID, o.Status)
}
