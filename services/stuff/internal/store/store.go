// Package store keeps listings in MongoDB (FerretDB locally): one document
// per listing holding its fields, the orders seen for it (a bounded window),
// its pending events (the outbox, bounded too) and a write counter (rev) for
// optimistic concurrency; and one document per banned user (bans.go). Every
// write goes through the process's mongox.Writer, and a change and its event
// are saved in one write: docs/data-safety.md says why.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
)

// Collection is the name of the listings collection.
const Collection = "stuff"

// maxAttempts bounds the optimistic retries of one Update: a mismatch means
// another process wrote the document between our read and our write.
const maxAttempts = 10

// MaxPending is how many unpublished events one listing may hold. They pile
// up only while NATS is unreachable (or the relay cannot publish this
// listing's); past the bound, a change that would publish one more is
// refused (stuff.ErrBacklog) instead of growing the document without end.
const MaxPending = 100

// ErrContention is returned when an update lost to concurrent writers
// maxAttempts times in a row.
var ErrContention = errors.New("too many concurrent writes")

// Notifier is told about every document whose outbox got a new event: the
// outbox relay publishes it right away.
type Notifier interface {
	Notify(coll *mongo.Collection, id any, pending ...outbox.Pending)
}

// Store is the MongoDB implementation of stuff.Store plus the queries of the
// read model.
type Store struct {
	coll   *mongo.Collection
	bans   *mongo.Collection
	w      *mongox.Writer
	notify Notifier
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Store on db's stuff and banned_sellers collections. Updates go through w (the
// process's one Writer); notify is told about pending events. now is the
// clock of outbox entries (time.Now when nil).
func New(db *mongo.Database, w *mongox.Writer, notify Notifier, log *slog.Logger, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{coll: db.Collection(Collection), bans: db.Collection(BansCollection), w: w, notify: notify, log: log, now: now}
}

// Coll is the listings collection (the outbox relay watches it).
func (st *Store) Coll() *mongo.Collection { return st.coll }

// Indexes are the indexes the queries use: the listing by status and age,
// and a seller's listings. None is unique: the stuff service makes no claim
// (the orders service owns who holds a stuff).
func Indexes() []mongox.Index {
	return []mongox.Index{
		{Collection: Collection, Keys: bson.D{{Key: "status", Value: 1}, {Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}, Name: "status_createdAt"},
		{Collection: Collection, Keys: bson.D{{Key: "userId", Value: 1}, {Key: "createdAt", Value: -1}}, Name: "userId_createdAt"},
	}
}

type orderDoc struct {
	ID        string    `bson:"id"`
	UserID    string    `bson:"userId,omitempty"`
	State     string    `bson:"state"`
	ExpiresAt time.Time `bson:"expiresAt,omitempty"`
	Price     int64     `bson:"price,omitempty"`
	Version   int64     `bson:"version,omitempty"`
}

type doc struct {
	ID          primitive.ObjectID `bson:"_id"`
	Title       string             `bson:"title"`
	Description string             `bson:"description"`
	Price       int64              `bson:"price"`
	Currency    string             `bson:"currency"`
	Delivery    string             `bson:"delivery"`
	UserID      string             `bson:"userId"`
	Status      string             `bson:"status"`
	OrderID     string             `bson:"orderId"`
	Buyers      []string           `bson:"buyers"`
	Orders      []orderDoc         `bson:"orders"`
	Forgotten   time.Time          `bson:"forgotten,omitempty"`
	Version     int64              `bson:"version"`
	Rev         int64              `bson:"rev"`
	CreatedAt   time.Time          `bson:"createdAt"`
	UpdatedAt   time.Time          `bson:"updatedAt"`
	Outbox      []outbox.Pending   `bson:"outbox"`
}

func toDoc(s stuff.Stuff, id primitive.ObjectID) doc {
	d := doc{ID: id, Title: s.Title, Description: s.Description, Price: s.Price, Currency: s.Currency,
		Delivery: s.Delivery, UserID: s.UserID, Status: string(s.Status), OrderID: s.OrderID,
		Buyers: s.Buyers, Forgotten: s.Forgotten, Version: s.Version, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Rev: 1}
	if d.Buyers == nil {
		d.Buyers = []string{}
	}
	d.Orders = ordersDoc(s.Orders)
	d.Outbox = []outbox.Pending{}
	return d
}

func ordersDoc(os []stuff.Order) []orderDoc {
	out := make([]orderDoc, 0, len(os))
	for _, o := range os {
		out = append(out, orderDoc{ID: o.ID, UserID: o.UserID, State: string(o.State), ExpiresAt: o.ExpiresAt, Price: o.Price, Version: o.Version})
	}
	return out
}

func (d doc) domain() stuff.Stuff {
	s := stuff.Stuff{ID: d.ID.Hex(), Title: d.Title, Description: d.Description, Price: d.Price, Currency: d.Currency,
		Delivery: d.Delivery, UserID: d.UserID, Status: stuff.Status(d.Status), OrderID: d.OrderID,
		Buyers: d.Buyers, Version: d.Version, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
	if !d.Forgotten.IsZero() {
		s.Forgotten = d.Forgotten.UTC()
	}
	for _, o := range d.Orders {
		o := stuff.Order{ID: o.ID, UserID: o.UserID, State: stuff.OrderState(o.State), ExpiresAt: o.ExpiresAt, Price: o.Price, Version: o.Version}
		if !o.ExpiresAt.IsZero() {
			o.ExpiresAt = o.ExpiresAt.UTC()
		}
		s.Orders = append(s.Orders, o)
	}
	return s
}

// ObjectID parses a listing id; anything but 24 lowercase hex digits is
// errs.ErrNotFound, so no client string ever reaches a query as such.
func ObjectID(id string) (primitive.ObjectID, error) {
	if len(id) != 24 {
		return primitive.NilObjectID, errs.ErrNotFound
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return primitive.NilObjectID, errs.ErrNotFound
		}
	}
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		return primitive.NilObjectID, errs.ErrNotFound
	}
	return oid, nil
}

var (
	noOutbox = bson.D{{Key: outbox.Field, Value: 0}}
	// visible is what a client may see of a listing (delivery included).
	visible = bson.D{{Key: outbox.Field, Value: 0}, {Key: "orders", Value: 0}, {Key: "forgotten", Value: 0}}
	// public is what a listing page shows: no delivery, no bookkeeping.
	public = bson.D{{Key: outbox.Field, Value: 0}, {Key: "delivery", Value: 0}, {Key: "orders", Value: 0}, {Key: "forgotten", Value: 0}, {Key: "buyers", Value: 0}}
)

// Insert stores a new listing with its stuff:created event in the same
// write, then asks the relay to publish it. With a key, the listing's id is
// mongox.DerivedObjectID(key.Since, seller, key.Key): a later try of the
// same request meets the first one's listing as a duplicate _id and returns
// it instead.
func (st *Store) Insert(ctx context.Context, s stuff.Stuff, key *stuff.IdempotencyKey) (stuff.Stuff, error) {
	oid := primitive.NewObjectIDFromTimestamp(s.CreatedAt)
	if key != nil {
		oid = mongox.DerivedObjectID(key.Since, s.UserID, key.Key)
	}
	s.ID = oid.Hex()
	p, err := outbox.New(ctx, events.StuffCreatedEvent(payload(&s)), st.now())
	if err != nil {
		return stuff.Stuff{}, err
	}
	d := toDoc(s, oid)
	d.Outbox = []outbox.Pending{p}
	err = st.w.Insert(ctx, st.coll, d)
	if key != nil && mongox.IsDuplicate(err) {
		return st.earlierTry(ctx, oid, s.UserID)
	}
	if err != nil {
		return stuff.Stuff{}, fmt.Errorf("insert stuff: %w", err)
	}
	st.notify.Notify(st.coll, oid, p)
	return s, nil
}

// earlierTry returns listing oid, which an earlier try of userID's create
// saved.
func (st *Store) earlierTry(ctx context.Context, oid primitive.ObjectID, userID string) (stuff.Stuff, error) {
	d, err := st.load(ctx, oid)
	if err != nil {
		return stuff.Stuff{}, fmt.Errorf("read the listing of an earlier try: %w", err)
	}
	if d.UserID != userID {
		// Ids minted from a key include the seller: only a hash collision
		// gets here.
		return stuff.Stuff{}, fmt.Errorf("listing %s minted from an idempotency key belongs to another seller", oid.Hex())
	}
	return d.domain(), nil
}

// Get returns listing id with every field; errs.ErrNotFound when unknown
// or malformed.
func (st *Store) Get(ctx context.Context, id string) (stuff.Stuff, error) {
	oid, err := ObjectID(id)
	if err != nil {
		return stuff.Stuff{}, err
	}
	d, err := st.load(ctx, oid)
	if err != nil {
		return stuff.Stuff{}, err
	}
	return d.domain(), nil
}

func (st *Store) load(ctx context.Context, oid primitive.ObjectID) (doc, error) {
	var d doc
	err := st.coll.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}, options.FindOne().SetProjection(noOutbox)).Decode(&d)
	if err != nil {
		return doc{}, fmt.Errorf("load stuff %s: %w", oid.Hex(), mongox.NotFound(err))
	}
	return d, nil
}

// loadAll reads listing oid with its pending events.
func (st *Store) loadAll(ctx context.Context, oid primitive.ObjectID) (doc, error) {
	var d doc
	if err := st.coll.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		return doc{}, fmt.Errorf("load stuff %s: %w", oid.Hex(), mongox.NotFound(err))
	}
	return d, nil
}

// Update implements stuff.Store.Update. Within this process the Writer's lock
// serializes every write of the document (FerretDB loses concurrent
// updates); across processes the update's filter requires the rev that was
// read, so a write of another replica in between makes this one match
// nothing and fn runs again on the fresh document. The change and its
// stuff:updated event (when the version grew) are one single-document update.
func (st *Store) Update(ctx context.Context, id string, fn func(s *stuff.Stuff) (bool, error)) (stuff.Stuff, error) {
	oid, err := ObjectID(id)
	if err != nil {
		return stuff.Stuff{}, err
	}
	for range maxAttempts {
		var (
			out    stuff.Stuff
			saved  bool
			pushed []outbox.Pending
		)
		err := st.w.Lock(ctx, st.coll, oid, func(ctx context.Context) error {
			d, err := st.loadAll(ctx, oid)
			if err != nil {
				return err
			}
			s := d.domain()
			before := s.Version
			changed, err := fn(&s)
			if err != nil {
				return err
			}
			out = s
			if !changed {
				saved = true
				return nil
			}
			update := bson.D{{Key: "$set", Value: bson.D{
				{Key: "title", Value: s.Title},
				{Key: "description", Value: s.Description},
				{Key: "price", Value: s.Price},
				{Key: "delivery", Value: s.Delivery},
				{Key: "status", Value: string(s.Status)},
				{Key: "orderId", Value: s.OrderID},
				{Key: "buyers", Value: nonNil(s.Buyers)},
				{Key: "orders", Value: ordersDoc(s.Orders)},
				{Key: "forgotten", Value: s.Forgotten},
				{Key: "version", Value: s.Version},
				{Key: "rev", Value: d.Rev + 1},
				{Key: "updatedAt", Value: s.UpdatedAt},
			}}}
			if s.Version != before {
				if len(d.Outbox) >= MaxPending {
					return fmt.Errorf("save stuff %s: %d events not published yet: %w", id, len(d.Outbox), stuff.ErrBacklog)
				}
				p, err := outbox.New(ctx, events.StuffUpdatedEvent(payload(&s)), st.now())
				if err != nil {
					return err
				}
				update = append(update, outbox.Push(p))
				pushed = []outbox.Pending{p}
			}
			saved, err = st.w.UpdateLocked(ctx, st.coll, oid, update, bson.E{Key: "rev", Value: d.Rev})
			if err != nil {
				return fmt.Errorf("save stuff %s: %w", id, err)
			}
			return nil
		})
		if err != nil {
			return stuff.Stuff{}, err
		}
		if saved {
			if pushed != nil {
				st.notify.Notify(st.coll, oid, pushed...)
			}
			return out, nil
		}
		st.log.Debug("stuff changed by another writer; retrying", "stuff_id", id)
	}
	return stuff.Stuff{}, fmt.Errorf("save stuff %s: %w", id, ErrContention)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ListByUser returns userID's listings in any status, newest first.
func (st *Store) ListByUser(ctx context.Context, userID string) ([]stuff.Stuff, error) {
	return st.find(ctx, bson.D{{Key: "userId", Value: userID}}, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetProjection(noOutbox))
}

// availableOf is the filter of the available listings of every seller but
// those in exclude (banned ones).
func availableOf(exclude []string) bson.D {
	f := bson.D{{Key: "status", Value: string(stuff.Available)}}
	if len(exclude) > 0 {
		f = append(f, bson.E{Key: "userId", Value: bson.D{{Key: "$nin", Value: exclude}}})
	}
	return f
}

// Available returns up to limit available listings of sellers not in
// exclude, newest first, with every field a client may see (the read model
// caches single listings from it too), without the order bookkeeping.
func (st *Store) Available(ctx context.Context, limit int, exclude []string) ([]stuff.Stuff, error) {
	return st.find(ctx, availableOf(exclude), options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(limit)).
		SetProjection(visible))
}

// AvailableAfter returns available listings of sellers not in exclude that
// come after k in the newest-first order (all of them when k is nil),
// skipping skip of them and returning at most limit, with the count of all
// that come after k.
func (st *Store) AvailableAfter(ctx context.Context, k *stuff.Key, skip, limit int, exclude []string) ([]stuff.Stuff, int, error) {
	filter := availableOf(exclude)
	if k != nil {
		oid, err := ObjectID(k.ID)
		if err != nil {
			return nil, 0, err
		}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: k.CreatedAt}}}},
			bson.D{{Key: "createdAt", Value: k.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: oid}}}},
		}})
	}
	n, err := st.coll.CountDocuments(ctx, filter)
	if err != nil {
		return nil, 0, fmt.Errorf("count available stuff: %w", err)
	}
	ss, err := st.find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetSkip(int64(skip)).SetLimit(int64(limit)).
		SetProjection(public))
	return ss, int(n), err
}

// CountAvailable counts the available listings of sellers not in exclude.
func (st *Store) CountAvailable(ctx context.Context, exclude []string) (int, error) {
	n, err := st.coll.CountDocuments(ctx, availableOf(exclude))
	if err != nil {
		return 0, fmt.Errorf("count available stuff: %w", err)
	}
	return int(n), nil
}

func (st *Store) find(ctx context.Context, filter bson.D, opts *options.FindOptions) ([]stuff.Stuff, error) {
	cur, err := st.coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find stuff: %w", err)
	}
	var ds []doc
	if err := cur.All(ctx, &ds); err != nil {
		return nil, fmt.Errorf("read stuff: %w", err)
	}
	out := make([]stuff.Stuff, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.domain())
	}
	return out, nil
}

// Seed inserts listings in bulk without publishing any event: for
// benchmarks and fixtures only, never on the request path. IDs are assigned
// from each listing's CreatedAt.
func (st *Store) Seed(ctx context.Context, ss []stuff.Stuff) error {
	docs := make([]any, 0, len(ss))
	for _, s := range ss {
		docs = append(docs, toDoc(s, primitive.NewObjectIDFromTimestamp(s.CreatedAt)))
	}
	if err := st.w.InsertMany(ctx, st.coll, docs); err != nil {
		return fmt.Errorf("seed stuff: %w", err)
	}
	return nil
}

// payload is the stuff:created / stuff:updated payload of s's current
// version: what every replica and the orders service learn of a listing.
func payload(s *stuff.Stuff) events.StuffData {
	return events.StuffData{ID: s.ID, Version: s.Version, Title: s.Title, Price: s.Price, Currency: s.Currency,
		UserID: s.UserID, OrderID: s.OrderID, Status: string(s.Status)}
}
