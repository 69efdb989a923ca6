// Package store is the MongoDB implementation of payments.Store. It maps bson
// documents to domain types, duplicate keys to payments.ErrExists and missing
// documents to errs.ErrNotFound. Claims are unique-index inserts; updates of
// existing documents go through the service's one mongox.Writer
// (docs/data-safety.md).
package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
)

// Collection names.
const (
	OrdersCollection      = "orders"        // the replica
	AttemptsCollection    = "charges"       // charge attempt claims, _id "orderId:n"
	PaymentsCollection    = "payments"      // one per order; outbox of payment:created
	RefundsCollection     = "refunds"       // refunds owed and done, _id payment id
	CouponsCollection     = "coupons"       // _id code
	RedemptionsCollection = "redemptions"   // _id "CODE:slot" or "CODE:order:orderId"
	EventsCollection      = "stripe_events" // claims of the provider's webhook events, _id event id
)

// Indexes are the indexes the store relies on; create them before serving.
func Indexes() []mongox.Index {
	return []mongox.Index{
		// At most one payment per order, whatever happens above.
		{Collection: PaymentsCollection, Keys: bson.D{{Key: "orderId", Value: 1}}, Unique: true, Name: "orderId_unique"},
		{Collection: RedemptionsCollection, Keys: bson.D{{Key: "code", Value: 1}}, Name: "code"},
		// The sweeper's scans (MongoDB only: FerretDB reads no secondary index).
		{Collection: AttemptsCollection, Keys: bson.D{{Key: "state", Value: 1}}, Name: "state"},
		{Collection: RefundsCollection, Keys: bson.D{{Key: "state", Value: 1}}, Name: "state"},
	}
}

// Notifier is told about documents whose outbox has a new event;
// *outbox.Relay implements it.
type Notifier interface {
	Notify(coll *mongo.Collection, id any, pending ...outbox.Pending)
}

// Store implements payments.Store.
type Store struct {
	w           *mongox.Writer
	notify      Notifier
	orders      *mongo.Collection
	attempts    *mongo.Collection
	payments    *mongo.Collection
	refunds     *mongo.Collection
	coupons     *mongo.Collection
	redemptions *mongo.Collection
	events      *mongo.Collection
}

// New returns a Store on db. notify may be nil (events then wait for the
// relay's next sweep).
func New(db *mongo.Database, w *mongox.Writer, notify Notifier) *Store {
	return &Store{
		w:           w,
		notify:      notify,
		orders:      db.Collection(OrdersCollection),
		attempts:    db.Collection(AttemptsCollection),
		payments:    db.Collection(PaymentsCollection),
		refunds:     db.Collection(RefundsCollection),
		coupons:     db.Collection(CouponsCollection),
		redemptions: db.Collection(RedemptionsCollection),
		events:      db.Collection(EventsCollection),
	}
}

var _ payments.Store = (*Store)(nil)

func insertErr(what string, err error) error {
	if mongox.IsDuplicate(err) {
		return fmt.Errorf("insert %s: %w", what, payments.ErrExists)
	}
	return fmt.Errorf("insert %s: %w", what, err)
}

func findOne(ctx context.Context, c *mongo.Collection, id string, dst any) error {
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(dst)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return mongox.NotFound(err)
	}
	if err != nil {
		return fmt.Errorf("find %s %s: %w", c.Name(), id, err)
	}
	return nil
}

type orderDoc struct {
	ID        string    `bson:"_id"`
	UserID    string    `bson:"userId"`
	Title     string    `bson:"title,omitempty"`
	Price     int64     `bson:"price"`
	Status    string    `bson:"status"`
	Version   int64     `bson:"version"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// InsertOrder adds an order to the replica.
func (s *Store) InsertOrder(ctx context.Context, o payments.Order) error {
	err := s.w.Insert(ctx, s.orders, orderDoc{ID: o.ID, UserID: o.UserID, Title: o.Title, Price: o.Price, Status: o.Status, Version: o.Version, ExpiresAt: o.ExpiresAt})
	if err != nil {
		return insertErr("order "+o.ID, err)
	}
	return nil
}

// Order reads an order of the replica.
func (s *Store) Order(ctx context.Context, id string) (payments.Order, error) {
	var d orderDoc
	if err := findOne(ctx, s.orders, id, &d); err != nil {
		return payments.Order{}, err
	}
	return payments.Order{ID: d.ID, UserID: d.UserID, Title: d.Title, Price: d.Price, Status: d.Status, Version: d.Version, ExpiresAt: d.ExpiresAt}, nil
}

// SetOrderStatus sets the status and version of an order whose replica is
// at version from; it does nothing otherwise.
func (s *Store) SetOrderStatus(ctx context.Context, id string, from, to int64, status string) error {
	_, err := s.w.UpdateByID(ctx, s.orders, id,
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: status}, {Key: "version", Value: to}}}},
		bson.E{Key: "version", Value: from})
	if err != nil {
		return fmt.Errorf("set order %s to version %d: %w", id, to, err)
	}
	return nil
}

type attemptDoc struct {
	ID            string      `bson:"_id"`
	OrderID       string      `bson:"orderId"`
	N             int         `bson:"n"`
	State         string      `bson:"state"`
	PaymentID     string      `bson:"paymentId"`
	UserID        string      `bson:"userId,omitempty"`
	Amount        int64       `bson:"amount"`
	Currency      string      `bson:"currency,omitempty"`
	PaymentMethod string      `bson:"paymentMethod,omitempty"`
	Coupon        string      `bson:"coupon,omitempty"`
	IntentID      string      `bson:"intentId,omitempty"`
	IntentAttempt int         `bson:"intentAttempt,omitempty"`
	Message       string      `bson:"message,omitempty"`
	Session       *sessionDoc `bson:"session,omitempty"`
	At            time.Time   `bson:"at"`
	UpdatedAt     time.Time   `bson:"updatedAt,omitempty"`
}

// sessionDoc is the checkout session of a checkout attempt.
type sessionDoc struct {
	ID            string    `bson:"id,omitempty"`
	URL           string    `bson:"url,omitempty"`
	Title         string    `bson:"title"`
	SuccessURL    string    `bson:"successUrl"`
	CancelURL     string    `bson:"cancelUrl"`
	CorrelationID string    `bson:"correlationId,omitempty"`
	ExpiresAt     time.Time `bson:"expiresAt"`
	IntentID      string    `bson:"intentId,omitempty"`
}

func toSessionDoc(s *payments.Session) *sessionDoc {
	if s == nil {
		return nil
	}
	return &sessionDoc{ID: s.ID, URL: s.URL, Title: s.Title, SuccessURL: s.SuccessURL, CancelURL: s.CancelURL,
		CorrelationID: s.CorrelationID, ExpiresAt: s.ExpiresAt, IntentID: s.IntentID}
}

func (d *sessionDoc) session() *payments.Session {
	if d == nil {
		return nil
	}
	return &payments.Session{ID: d.ID, URL: d.URL, Title: d.Title, SuccessURL: d.SuccessURL, CancelURL: d.CancelURL,
		CorrelationID: d.CorrelationID, ExpiresAt: d.ExpiresAt, IntentID: d.IntentID}
}

func (d attemptDoc) attempt() payments.Attempt {
	return payments.Attempt{
		OrderID: d.OrderID, N: d.N, State: payments.AttemptState(d.State), PaymentID: d.PaymentID, UserID: d.UserID,
		Amount: d.Amount, Currency: d.Currency, PaymentMethod: d.PaymentMethod, Coupon: d.Coupon,
		IntentID: d.IntentID, IntentAttempt: d.IntentAttempt, Message: d.Message, Session: d.Session.session(), At: d.At,
	}
}

func attemptID(orderID string, n int) string { return orderID + ":" + strconv.Itoa(n) }

// InsertAttempt claims attempt a.N of an order; ErrExists when taken.
func (s *Store) InsertAttempt(ctx context.Context, a payments.Attempt) error {
	err := s.w.Insert(ctx, s.attempts, attemptDoc{
		ID: attemptID(a.OrderID, a.N), OrderID: a.OrderID, N: a.N, State: string(a.State), PaymentID: a.PaymentID,
		UserID: a.UserID, Amount: a.Amount, Currency: a.Currency, PaymentMethod: a.PaymentMethod, Coupon: a.Coupon,
		IntentID: a.IntentID, IntentAttempt: a.IntentAttempt, Message: a.Message, Session: toSessionDoc(a.Session), At: a.At,
	})
	if err != nil {
		return insertErr("charge attempt", err)
	}
	return nil
}

// Attempt reads attempt n of an order.
func (s *Store) Attempt(ctx context.Context, orderID string, n int) (payments.Attempt, error) {
	var d attemptDoc
	if err := findOne(ctx, s.attempts, attemptID(orderID, n), &d); err != nil {
		return payments.Attempt{}, err
	}
	return d.attempt(), nil
}

// UpdateAttempt writes a's state, message, intent and session (when it has
// one) if the stored attempt is still in state from, and reports whether it
// was.
func (s *Store) UpdateAttempt(ctx context.Context, a payments.Attempt, from payments.AttemptState) (bool, error) {
	set := bson.D{
		{Key: "state", Value: string(a.State)}, {Key: "message", Value: a.Message},
		{Key: "intentId", Value: a.IntentID}, {Key: "intentAttempt", Value: a.IntentAttempt},
		{Key: "updatedAt", Value: time.Now()},
	}
	if a.Session != nil {
		set = append(set, bson.E{Key: "session", Value: toSessionDoc(a.Session)})
	}
	ok, err := s.w.UpdateByID(ctx, s.attempts, attemptID(a.OrderID, a.N), bson.D{{Key: "$set", Value: set}},
		bson.E{Key: "state", Value: string(from)})
	if err != nil {
		return false, fmt.Errorf("update attempt %d of order %s: %w", a.N, a.OrderID, err)
	}
	return ok, nil
}

// OpenAttempts lists the attempts charging, unknown or in checkout. It
// reads the whole collection on FerretDB: for the sweeper, not a request's
// path.
func (s *Store) OpenAttempts(ctx context.Context) ([]payments.Attempt, error) {
	cur, err := s.attempts.Find(ctx, bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{
		string(payments.AttemptCharging), string(payments.AttemptUnknown), string(payments.AttemptCheckout),
	}}}}})
	if err != nil {
		return nil, fmt.Errorf("list open attempts: %w", err)
	}
	var docs []attemptDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list open attempts: %w", err)
	}
	out := make([]payments.Attempt, len(docs))
	for i, d := range docs {
		out[i] = d.attempt()
	}
	return out, nil
}

type paymentDoc struct {
	ID         string           `bson:"_id"`
	OrderID    string           `bson:"orderId"`
	UserID     string           `bson:"userId"`
	Amount     int64            `bson:"amount"`
	Currency   string           `bson:"currency"`
	Provider   string           `bson:"provider"`
	ProviderID string           `bson:"providerId"`
	Coupon     string           `bson:"coupon,omitempty"`
	Redemption string           `bson:"redemption,omitempty"`
	Attempt    int              `bson:"attempt"`
	CreatedAt  time.Time        `bson:"createdAt"`
	Outbox     []outbox.Pending `bson:"outbox,omitempty"`
}

func (d paymentDoc) payment() payments.Payment {
	return payments.Payment{
		ID: d.ID, OrderID: d.OrderID, UserID: d.UserID, Amount: d.Amount, Currency: d.Currency,
		Provider: d.Provider, ProviderID: d.ProviderID, Coupon: d.Coupon, Redemption: d.Redemption,
		Attempt: d.Attempt, CreatedAt: d.CreatedAt,
	}
}

// InsertPayment records p with payment:created in its outbox (one write) and
// asks the relay to publish it.
func (s *Store) InsertPayment(ctx context.Context, p payments.Payment) error {
	ev, err := outbox.New(ctx, events.PaymentCreatedEvent{ID: p.ID, OrderID: p.OrderID, Amount: p.Amount, ProviderID: p.ProviderID}, p.CreatedAt)
	if err != nil {
		return err
	}
	err = s.w.Insert(ctx, s.payments, paymentDoc{
		ID: p.ID, OrderID: p.OrderID, UserID: p.UserID, Amount: p.Amount, Currency: p.Currency,
		Provider: p.Provider, ProviderID: p.ProviderID, Coupon: p.Coupon, Redemption: p.Redemption,
		Attempt: p.Attempt, CreatedAt: p.CreatedAt, Outbox: []outbox.Pending{ev},
	})
	if err != nil {
		return insertErr("payment of order "+p.OrderID, err)
	}
	if s.notify != nil {
		s.notify.Notify(s.payments, p.ID, ev)
	}
	return nil
}

// Payment reads a payment by id.
func (s *Store) Payment(ctx context.Context, id string) (payments.Payment, error) {
	var d paymentDoc
	err := s.payments.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "outbox", Value: 0}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return payments.Payment{}, mongox.NotFound(err)
	}
	if err != nil {
		return payments.Payment{}, fmt.Errorf("find payment %s: %w", id, err)
	}
	return d.payment(), nil
}

type refundDoc struct {
	ID         string    `bson:"_id"` // payment id
	OrderID    string    `bson:"orderId"`
	Attempt    int       `bson:"attempt,omitempty"`
	IntentID   string    `bson:"intentId,omitempty"`
	Amount     int64     `bson:"amount"`
	Redemption string    `bson:"redemption,omitempty"`
	State      string    `bson:"state"`
	KeyGen     int       `bson:"keyGen,omitempty"`
	Tries      int       `bson:"tries,omitempty"`
	LastError  string    `bson:"lastError,omitempty"`
	ProviderID string    `bson:"providerId,omitempty"`
	At         time.Time `bson:"at"`
	DoneAt     time.Time `bson:"doneAt,omitempty"`
}

func (d refundDoc) refund() payments.Refund {
	return payments.Refund{
		PaymentID: d.ID, OrderID: d.OrderID, Attempt: d.Attempt, IntentID: d.IntentID, Amount: d.Amount,
		Redemption: d.Redemption, State: payments.RefundState(d.State), KeyGen: d.KeyGen, Tries: d.Tries,
		LastError: d.LastError, ProviderID: d.ProviderID, At: d.At, DoneAt: d.DoneAt,
	}
}

// InsertRefund stores the refund owed for a payment; ErrExists when it is
// owed (or done) already.
func (s *Store) InsertRefund(ctx context.Context, r payments.Refund) error {
	err := s.w.Insert(ctx, s.refunds, refundDoc{
		ID: r.PaymentID, OrderID: r.OrderID, Attempt: r.Attempt, IntentID: r.IntentID, Amount: r.Amount,
		Redemption: r.Redemption, State: string(r.State), KeyGen: r.KeyGen, At: r.At,
	})
	if err != nil {
		return insertErr("refund of payment "+r.PaymentID, err)
	}
	return nil
}

// Refund reads the refund of a payment.
func (s *Store) Refund(ctx context.Context, paymentID string) (payments.Refund, error) {
	var d refundDoc
	if err := findOne(ctx, s.refunds, paymentID, &d); err != nil {
		return payments.Refund{}, err
	}
	return d.refund(), nil
}

// UpdateRefund writes r's state, provider id, key generation, tries, last
// error and completion time if the stored refund is still pending, and
// reports whether it was.
func (s *Store) UpdateRefund(ctx context.Context, r payments.Refund) (bool, error) {
	set := bson.D{
		{Key: "state", Value: string(r.State)}, {Key: "keyGen", Value: r.KeyGen}, {Key: "tries", Value: r.Tries},
		{Key: "lastError", Value: r.LastError}, {Key: "providerId", Value: r.ProviderID},
	}
	if !r.DoneAt.IsZero() {
		set = append(set, bson.E{Key: "doneAt", Value: r.DoneAt})
	}
	ok, err := s.w.UpdateByID(ctx, s.refunds, r.PaymentID, bson.D{{Key: "$set", Value: set}},
		bson.E{Key: "state", Value: string(payments.RefundPending)})
	if err != nil {
		return false, fmt.Errorf("update refund of payment %s: %w", r.PaymentID, err)
	}
	return ok, nil
}

// PendingRefunds lists the refunds owed. It reads the whole collection on
// FerretDB: for the sweeper, not a request's path.
func (s *Store) PendingRefunds(ctx context.Context) ([]payments.Refund, error) {
	cur, err := s.refunds.Find(ctx, bson.D{{Key: "state", Value: string(payments.RefundPending)}})
	if err != nil {
		return nil, fmt.Errorf("list refunds owed: %w", err)
	}
	var docs []refundDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list refunds owed: %w", err)
	}
	out := make([]payments.Refund, len(docs))
	for i, d := range docs {
		out[i] = d.refund()
	}
	return out, nil
}

type eventDoc struct {
	ID        string    `bson:"_id"` // the provider's event id
	Kind      string    `bson:"kind"`
	SessionID string    `bson:"sessionId,omitempty"`
	OrderID   string    `bson:"orderId,omitempty"`
	Done      bool      `bson:"done"`
	At        time.Time `bson:"at"`
	DoneAt    time.Time `bson:"doneAt,omitempty"`
}

// InsertEvent claims a provider event; ErrExists when it was claimed
// before.
func (s *Store) InsertEvent(ctx context.Context, e payments.ProviderEvent) error {
	err := s.w.Insert(ctx, s.events, eventDoc{ID: e.ID, Kind: string(e.Kind), SessionID: e.SessionID, OrderID: e.OrderID, Done: e.Done, At: e.At})
	if err != nil {
		return insertErr("event "+e.ID, err)
	}
	return nil
}

// Event reads the claim of a provider event.
func (s *Store) Event(ctx context.Context, id string) (payments.ProviderEvent, error) {
	var d eventDoc
	if err := findOne(ctx, s.events, id, &d); err != nil {
		return payments.ProviderEvent{}, err
	}
	return payments.ProviderEvent{ID: d.ID, Kind: payments.SessionEventKind(d.Kind), SessionID: d.SessionID, OrderID: d.OrderID,
		Done: d.Done, At: d.At, DoneAt: d.DoneAt}, nil
}

// FinishEvent records that a provider event was handled.
func (s *Store) FinishEvent(ctx context.Context, id string, at time.Time) error {
	if _, err := s.w.UpdateByID(ctx, s.events, id, bson.D{{Key: "$set", Value: bson.D{
		{Key: "done", Value: true}, {Key: "doneAt", Value: at},
	}}}); err != nil {
		return fmt.Errorf("finish event %s: %w", id, err)
	}
	return nil
}

type couponDoc struct {
	Code           string    `bson:"_id"`
	PercentOff     int       `bson:"percentOff"`
	MaxRedemptions int       `bson:"maxRedemptions"`
	ExpiresAt      time.Time `bson:"expiresAt,omitempty"`
	CreatedBy      string    `bson:"createdBy"`
	CreatedAt      time.Time `bson:"createdAt"`
}

func (d couponDoc) coupon() payments.Coupon {
	return payments.Coupon{Code: d.Code, PercentOff: d.PercentOff, MaxRedemptions: d.MaxRedemptions, ExpiresAt: d.ExpiresAt, CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt}
}

// InsertCoupon stores a new coupon; ErrExists when the code is taken.
func (s *Store) InsertCoupon(ctx context.Context, c payments.Coupon) error {
	err := s.w.Insert(ctx, s.coupons, couponDoc{Code: c.Code, PercentOff: c.PercentOff, MaxRedemptions: c.MaxRedemptions, ExpiresAt: c.ExpiresAt, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt})
	if err != nil {
		return insertErr("coupon", err)
	}
	return nil
}

// Coupon reads a coupon by code.
func (s *Store) Coupon(ctx context.Context, code string) (payments.Coupon, error) {
	var d couponDoc
	if err := findOne(ctx, s.coupons, code, &d); err != nil {
		return payments.Coupon{}, err
	}
	return d.coupon(), nil
}

// Coupons lists every coupon, newest first, with its redemption count. It
// reads both collections whole: an admin page, not a hot path.
func (s *Store) Coupons(ctx context.Context) ([]payments.Coupon, error) {
	cur, err := s.coupons.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list coupons: %w", err)
	}
	var docs []couponDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list coupons: %w", err)
	}
	cur, err = s.redemptions.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "code", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("count redemptions: %w", err)
	}
	var reds []struct {
		Code string `bson:"code"`
	}
	if err := cur.All(ctx, &reds); err != nil {
		return nil, fmt.Errorf("count redemptions: %w", err)
	}
	counts := make(map[string]int, len(docs))
	for _, r := range reds {
		counts[r.Code]++
	}
	out := make([]payments.Coupon, 0, len(docs))
	for _, d := range docs {
		c := d.coupon()
		c.Redemptions = counts[c.Code]
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

type redemptionDoc struct {
	ID      string    `bson:"_id"`
	Code    string    `bson:"code"`
	Slot    int       `bson:"slot"`
	OrderID string    `bson:"orderId"`
	At      time.Time `bson:"at"`
}

// Redemptions lists the current redemptions of a coupon.
func (s *Store) Redemptions(ctx context.Context, code string) ([]payments.Redemption, error) {
	cur, err := s.redemptions.Find(ctx, bson.D{{Key: "code", Value: code}})
	if err != nil {
		return nil, fmt.Errorf("list redemptions of %s: %w", code, err)
	}
	var docs []redemptionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list redemptions of %s: %w", code, err)
	}
	out := make([]payments.Redemption, len(docs))
	for i, d := range docs {
		out[i] = payments.Redemption{ID: d.ID, Code: d.Code, Slot: d.Slot, OrderID: d.OrderID, At: d.At}
	}
	return out, nil
}

// InsertRedemption claims a redemption slot; ErrExists when taken.
func (s *Store) InsertRedemption(ctx context.Context, r payments.Redemption) error {
	err := s.w.Insert(ctx, s.redemptions, redemptionDoc{ID: r.ID, Code: r.Code, Slot: r.Slot, OrderID: r.OrderID, At: r.At})
	if err != nil {
		return insertErr("redemption "+r.ID, err)
	}
	return nil
}

// DeleteRedemption frees redemption slot id if order orderID still holds
// it, and reports whether it did: a slot freed once may have been taken by
// another order since, and a retried release must not free that one.
func (s *Store) DeleteRedemption(ctx context.Context, id, orderID string) (bool, error) {
	ok, err := s.w.DeleteByID(ctx, s.redemptions, id, bson.E{Key: "orderId", Value: orderID})
	if err != nil {
		return false, fmt.Errorf("delete redemption %s of order %s: %w", id, orderID, err)
	}
	return ok, nil
}
