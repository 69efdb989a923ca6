package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/payments/app"
	"github.com/stuffmart/stuffmart/services/payments/stripetest"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const waitFor = 10 * time.Second

// webhookSecret is the signing secret of the webhook endpoint the tests
// sign their Stripe events with (STRIPE_WEBHOOK_SECRET).
const webhookSecret = "whsec_test_stuffmart_0123456789"

// stack is one running payments service (see testkit.Start) with its clock
// and, when it charges through Stripe, the fake Stripe it talks to. Its Peer
// publishes order events as orders would and observes payment:created.
type stack struct {
	*testkit.Component
	tb     testing.TB
	clock  *testkit.Clock
	stripe *stripetest.Server // nil in offline mode
}

// newStack starts the service; withStripe points it at a fake Stripe API
// (through the real stripe-go client), otherwise it runs offline. change,
// if any, adjusts the configuration first.
func newStack(tb testing.TB, withStripe bool, change ...func(*app.Config)) *stack {
	tb.Helper()
	s := &stack{tb: tb, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Millisecond))}
	cfg := app.Config{Currency: "usd", Now: s.clock.Now, SweepEvery: 50 * time.Millisecond, StripeWebhookSecret: webhookSecret}
	if withStripe {
		s.stripe = stripetest.New(tb)
		cfg.StripeSecretKey = stripetest.Key
		cfg.StripeAPIURL = s.stripe.URL
	}
	for _, c := range change {
		c(&cfg)
	}
	build := func(ctx context.Context, sc service.Config, log *slog.Logger) (testkit.App, error) {
		cfg.Service = sc
		a, err := app.New(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	s.Component = testkit.Start(tb, "payments", build, testkit.Observe(events.PaymentCreated))
	return s
}

// pay posts a payment as the holder of cookie (nil: anonymous).
func (s *stack) pay(cookie *http.Cookie, body map[string]any) *testkit.Response {
	s.tb.Helper()
	return s.HTTP.Do(http.MethodPost, "/api/payments", body, testkit.WithCookie(cookie))
}

// result is a payment answered on a goroutine of its own (see tryPay).
type result struct {
	Status int
	Body   []byte
}

// tryPay posts a payment like pay but returns a transport error instead of
// failing the test: the testkit client may fail a test only from the test's
// own goroutine, and the races send from many.
func (s *stack) tryPay(cookie *http.Cookie, body map[string]any) (result, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return result{}, err
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/payments", bytes.NewReader(raw))
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res, err := s.HTTP.HTTP.Do(req)
	if err != nil {
		return result{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return result{Status: res.StatusCode, Body: data}, err
}

// wantError fails unless r is status with exactly one error item (message,
// field), as testkit's Response.WantError does.
func (r result) wantError(tb testing.TB, status int, message, field string) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if got, want := testkit.ErrorItems(tb, r.Body), []errs.Item{{Message: message, Field: field}}; !slices.Equal(got, want) {
		tb.Fatalf("errors %+v, want %+v", got, want)
	}
}

// replica reads the service's replica of an order (status "" when absent).
func (s *stack) replica(id string) (status string, version int64) {
	s.tb.Helper()
	var d struct {
		Status  string `bson:"status"`
		Version int64  `bson:"version"`
	}
	err := s.DB.Collection("orders").FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", 0
	}
	if err != nil {
		s.tb.Fatalf("read replica: %v", err)
	}
	return d.Status, d.Version
}

// order publishes order:created for buyer at price and waits for the
// replica.
func (s *stack) order(buyer auth.User, price int64) string {
	s.tb.Helper()
	return s.titledOrder(buyer, price, "")
}

// titledOrder is order of a stuff titled title.
func (s *stack) titledOrder(buyer auth.User, price int64, title string) string {
	s.tb.Helper()
	id := testkit.RandomID(s.tb)[:24]
	s.Peer.Publish(events.OrderCreatedEvent{
		ID: id, Version: 1, Status: events.OrderStatusCreated, UserID: buyer.ID,
		ExpiresAt: s.clock.Now().Add(15 * time.Minute),
		Stuff:     events.StuffRef{ID: testkit.RandomID(s.tb)[:24], Title: title, Price: price},
	})
	testkit.Eventually(s.tb, waitFor, func() bool { st, _ := s.replica(id); return st != "" }, "replica of order %s", id)
	return id
}

// cancel publishes order:cancelled (version 2) and waits for the replica.
func (s *stack) cancel(id string) {
	s.tb.Helper()
	s.Peer.Publish(events.OrderCancelledEvent{ID: id, Version: 2, Stuff: events.StuffRef{ID: "stuff"}})
	testkit.Eventually(s.tb, waitFor, func() bool { st, _ := s.replica(id); return st == events.OrderStatusCancelled }, "order %s cancelled in the replica", id)
}

// paymentEvent waits for the payment:created of an order.
func (s *stack) paymentEvent(orderID string) events.PaymentCreatedEvent {
	s.tb.Helper()
	var got events.PaymentCreatedEvent
	s.Peer.Wait(events.PaymentCreated, func(m events.Msg) bool {
		ev, err := events.Decode[events.PaymentCreatedEvent](m)
		if err != nil || ev.OrderID != orderID {
			return false
		}
		got = ev
		return true
	})
	return got
}

// refundRecord reads the refund record of a payment.
func (s *stack) refundRecord(paymentID string) (state, providerID string) {
	s.tb.Helper()
	var d struct {
		State      string `bson:"state"`
		ProviderID string `bson:"providerId"`
	}
	err := s.DB.Collection("refunds").FindOne(context.Background(), bson.D{{Key: "_id", Value: paymentID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ""
	}
	if err != nil {
		s.tb.Fatalf("read refund: %v", err)
	}
	return d.State, d.ProviderID
}

// createCoupon makes a coupon as admin.
func (s *stack) createCoupon(admin *http.Cookie, body map[string]any) couponJSON {
	s.tb.Helper()
	var c couponJSON
	s.HTTP.Do(http.MethodPost, "/api/payments/coupons", body, testkit.WithCookie(admin)).Want(http.StatusCreated).Decode(&c)
	return c
}

type couponJSON struct {
	Code           string     `json:"code"`
	PercentOff     int        `json:"percentOff"`
	MaxRedemptions *int       `json:"maxRedemptions"`
	ExpiresAt      *time.Time `json:"expiresAt"`
	Redemptions    int        `json:"redemptions"`
}

type paymentJSON struct {
	ID      string `json:"id"`
	OrderID string `json:"orderId"`
	Amount  int64  `json:"amount"`
}

// paymentEvents returns the payment:created events of an order received so
// far.
func (s *stack) paymentEvents(orderID string) []events.PaymentCreatedEvent {
	var out []events.PaymentCreatedEvent
	for _, m := range s.Peer.Received(events.PaymentCreated) {
		if ev, err := events.Decode[events.PaymentCreatedEvent](m); err == nil && ev.OrderID == orderID {
			out = append(out, ev)
		}
	}
	return out
}

// settled waits until every event published before it was handled: it
// publishes a marker order through the same listeners and waits for it.
func (s *stack) settled(buyer auth.User) {
	s.tb.Helper()
	s.cancel(s.order(buyer, 100))
}

// wantChargedOnce fails unless Stripe took money for the order exactly once
// and the service published exactly one payment:created for it, with that
// charge; it returns the charge.
func (s *stack) wantChargedOnce(orderID string) stripetest.Intent {
	s.tb.Helper()
	ev := s.paymentEvent(orderID)
	charged := s.stripe.Charged(orderID)
	if len(charged) != 1 {
		s.tb.Fatalf("Stripe charged order %s %d times, want once: %+v", orderID, len(charged), charged)
	}
	if ev.ProviderID != charged[0].ID || ev.Amount != charged[0].AmountReceived {
		s.tb.Fatalf("payment:created %+v, Stripe charged %+v", ev, charged[0])
	}
	if n := len(s.paymentEvents(orderID)); n != 1 {
		s.tb.Fatalf("%d payment:created for order %s, want 1", n, orderID)
	}
	return charged[0]
}

// wantRefundedOnce waits until the refund of a payment is recorded done and
// checks that Stripe refunded its charge exactly once, in full.
func (s *stack) wantRefundedOnce(paymentID string, charge stripetest.Intent) {
	s.tb.Helper()
	testkit.Eventually(s.tb, waitFor, func() bool { st, _ := s.refundRecord(paymentID); return st == "done" }, "refund of %s recorded", paymentID)
	refunds := s.stripe.Refunds(charge.ID)
	if len(refunds) != 1 || refunds[0].Amount != charge.AmountReceived {
		s.tb.Fatalf("refunds of %s: %+v, want one of %d", charge.ID, refunds, charge.AmountReceived)
	}
	if _, provider := s.refundRecord(paymentID); provider != refunds[0].ID {
		s.tb.Fatalf("refund recorded as %q, Stripe answered %q", provider, refunds[0].ID)
	}
	if refunds[0].Key == "" {
		s.tb.Fatal("refund sent without an idempotency key")
	}
}

// put writes a document into the service's database as it is (what a
// process that died half-way left behind).
func (s *stack) put(coll string, doc bson.M) {
	s.tb.Helper()
	if _, err := s.DB.Collection(coll).InsertOne(context.Background(), doc); err != nil {
		s.tb.Fatalf("insert into %s: %v", coll, err)
	}
}

// set updates fields of a document of the service's database directly.
func (s *stack) set(coll string, id any, fields bson.M) {
	s.tb.Helper()
	if _, err := s.DB.Collection(coll).UpdateOne(context.Background(), bson.M{"_id": id}, bson.M{"$set": fields}); err != nil {
		s.tb.Fatalf("update %s %v: %v", coll, id, err)
	}
}

// returnURLs are the checkout body's success and cancel URLs for an order,
// as the storefront makes them.
func returnURLs(orderID string) (success, cancel string) {
	return "https://shop.test/orders/" + orderID + "?paid=1&session_id={CHECKOUT_SESSION_ID}", "https://shop.test/orders/" + orderID
}

// checkout posts POST /api/payments/checkout for an order (with the
// storefront's return URLs) as the holder of cookie; more adds to or
// overrides the body.
func (s *stack) checkout(cookie *http.Cookie, orderID string, more map[string]any, opts ...testkit.RequestOption) *testkit.Response {
	s.tb.Helper()
	success, cancel := returnURLs(orderID)
	body := map[string]any{"orderId": orderID, "successUrl": success, "cancelUrl": cancel}
	for k, v := range more {
		body[k] = v
	}
	return s.HTTP.Do(http.MethodPost, "/api/payments/checkout", body, append([]testkit.RequestOption{testkit.WithCookie(cookie)}, opts...)...)
}

// sessionJSON is the answer of a checkout that made (or reused) a session.
type sessionJSON struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// startCheckout checkouts an order and returns its session.
func (s *stack) startCheckout(cookie *http.Cookie, orderID string, opts ...testkit.RequestOption) sessionJSON {
	s.tb.Helper()
	var sess sessionJSON
	s.checkout(cookie, orderID, nil, opts...).Want(http.StatusCreated).Decode(&sess)
	if sess.ID == "" || sess.URL == "" {
		s.tb.Fatalf("checkout answered %+v", sess)
	}
	return sess
}

// sign returns payload's Stripe-Signature, made as Stripe makes it with the
// endpoint's secret.
func sign(payload []byte) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: webhookSecret}).Header
}

// postEvent posts a webhook delivery with signature (none when empty).
func (s *stack) postEvent(payload []byte, signature string) *testkit.Response {
	s.tb.Helper()
	var opts []testkit.RequestOption
	if signature != "" {
		opts = append(opts, testkit.WithHeader("Stripe-Signature", signature))
	}
	return s.HTTP.Do(http.MethodPost, "/api/payments/webhook", testkit.Raw(payload), opts...)
}

// deliver posts a Stripe event correctly signed and wants it taken.
func (s *stack) deliver(payload []byte) {
	s.tb.Helper()
	s.postEvent(payload, sign(payload)).Want(http.StatusOK)
}

// attempt reads attempt n of an order: its state and its session's id.
func (s *stack) attempt(orderID string, n int) (state, sessionID string) {
	s.tb.Helper()
	var d struct {
		State   string `bson:"state"`
		Session struct {
			ID string `bson:"id"`
		} `bson:"session"`
	}
	err := s.DB.Collection("charges").FindOne(context.Background(), bson.D{{Key: "_id", Value: fmt.Sprintf("%s:%d", orderID, n)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ""
	}
	if err != nil {
		s.tb.Fatalf("read attempt: %v", err)
	}
	return d.State, d.Session.ID
}

// metrics scrapes the service's /metrics.
func (s *stack) metrics() testkit.Metrics {
	s.tb.Helper()
	return testkit.Scrape(s.tb, s.URL+"/metrics")
}

// sweptOnce returns once a whole sweep has run that started after it was
// called. Its mark is an order of buyer due in a minute with a checkout
// session (by cookie), which each sweep looks up at most once every 5 s:
// the sweep that looks it up first listed the open attempts after now, and
// it is over once another sweep has looked the mark up again. The mark is
// then cancelled. It moves the clock on by 5 s.
func (s *stack) sweptOnce(buyer auth.User, cookie *http.Cookie) {
	s.tb.Helper()
	id := testkit.RandomID(s.tb)[:24]
	s.Peer.Publish(events.OrderCreatedEvent{
		ID: id, Version: 1, Status: events.OrderStatusCreated, UserID: buyer.ID,
		ExpiresAt: s.clock.Now().Add(time.Minute),
		Stuff:     events.StuffRef{ID: testkit.RandomID(s.tb)[:24], Title: "sweep mark", Price: 100},
	})
	testkit.Eventually(s.tb, waitFor, func() bool { st, _ := s.replica(id); return st != "" }, "replica of order %s", id)
	mark := s.startCheckout(cookie, id)
	lookups := func() int { return s.sessionLookups(mark.ID) }
	testkit.Eventually(s.tb, waitFor, func() bool { return lookups() >= 1 }, "a sweep looks up the mark")
	s.clock.Advance(5 * time.Second)
	testkit.Eventually(s.tb, waitFor, func() bool { return lookups() >= 2 }, "the next sweep looks up the mark")
	s.cancel(id)
}

// sessionLookups is how many times payments retrieved Checkout Session id
// from the fake Stripe.
func (s *stack) sessionLookups(id string) int {
	n := 0
	for _, r := range s.stripe.Requests("/v1/checkout/sessions/" + id) {
		if r.Method == http.MethodGet {
			n++
		}
	}
	return n
}
