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
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/payments/app"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	stripeKey = "sk_test_fake_0123456789"
	waitFor   = 10 * time.Second
)

// stack is one running payments service (see testkit.Start) with its clock
// and, when it charges through Stripe, the fake Stripe it talks to. Its Peer
// publishes order events as orders would and observes payment:created.
type stack struct {
	*testkit.Component
	tb     testing.TB
	clock  *testkit.Clock
	stripe *fakeStripe // nil in offline mode
}

// newStack starts the service; withStripe points it at a fake Stripe API
// (through the real stripe-go client), otherwise it runs offline.
func newStack(tb testing.TB, withStripe bool) *stack {
	tb.Helper()
	s := &stack{tb: tb, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Millisecond))}
	cfg := app.Config{Currency: "usd", Now: s.clock.Now}
	if withStripe {
		s.stripe = newFakeStripe(tb)
		cfg.StripeSecretKey = stripeKey
		cfg.StripeAPIURL = s.stripe.srv.URL
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
	id := testkit.RandomID(s.tb)[:24]
	s.Peer.Publish(events.OrderCreatedEvent{
		ID: id, Version: 1, Status: events.OrderStatusCreated, UserID: buyer.ID,
		ExpiresAt: s.clock.Now().Add(15 * time.Minute),
		Stuff:     events.StuffRef{ID: testkit.RandomID(s.tb)[:24], Price: price},
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

// fakeStripe answers like Stripe's API for the two calls the service makes:
// POST /v1/payment_intents (create+confirm) and POST /v1/refunds. It counts
// what reaches it, server side.
type fakeStripe struct {
	srv *httptest.Server

	mu      sync.Mutex
	charges []stripeRequest
	refunds []stripeRequest
	// hold, when set, makes a charge wait for it to be closed after it has
	// been counted and announced on arrived.
	hold    chan struct{}
	arrived chan struct{}
}

type stripeRequest struct {
	Form           url.Values
	IdempotencyKey string
	ID             string // what the fake answered
}

func newFakeStripe(tb testing.TB) *fakeStripe {
	f := &fakeStripe{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.srv.Close)
	return f
}

func (f *fakeStripe) holdCharges() (arrived <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = make(chan struct{})
	f.arrived = make(chan struct{}, 64)
	h := f.hold
	var once sync.Once
	return f.arrived, func() { once.Do(func() { close(h) }) }
}

// chargesOf returns the charge requests of an order that reached the fake.
func (f *fakeStripe) chargesOf(orderID string) []stripeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []stripeRequest
	for _, c := range f.charges {
		if c.Form.Get("metadata[order_id]") == orderID {
			out = append(out, c)
		}
	}
	return out
}

// refundsOf returns the refund requests of a PaymentIntent that reached the
// fake.
func (f *fakeStripe) refundsOf(intentID string) []stripeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []stripeRequest
	for _, r := range f.refunds {
		if r.Form.Get("payment_intent") == intentID {
			out = append(out, r)
		}
	}
	return out
}

func stripeError(w http.ResponseWriter, status int, typ, code, decline, msg, param string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"type": typ, "code": code, "message": msg}
	if decline != "" {
		e["decline_code"] = decline
	}
	if param != "" {
		e["param"] = param
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e}) // test server: the client sees a broken body
}

func (f *fakeStripe) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+stripeKey {
		stripeError(w, http.StatusUnauthorized, "invalid_request_error", "", "", "Invalid API Key provided", "")
		return
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		stripeError(w, http.StatusBadRequest, "invalid_request_error", "", "", "bad request", "")
		return
	}
	req := stripeRequest{Form: r.PostForm, IdempotencyKey: r.Header.Get("Idempotency-Key")}
	switch r.URL.Path {
	case "/v1/payment_intents":
		f.mu.Lock()
		req.ID = fmt.Sprintf("pi_fake_%d", len(f.charges)+1)
		f.charges = append(f.charges, req)
		hold, arrived := f.hold, f.arrived
		f.mu.Unlock()
		if hold != nil {
			arrived <- struct{}{}
			<-hold
		}
		switch pm := req.Form.Get("payment_method"); pm {
		case "pm_card_chargeDeclined":
			stripeError(w, http.StatusPaymentRequired, "card_error", "card_declined", "generic_decline", "Your card was declined.", "")
			return
		case "pm_card_chargeDeclinedInsufficientFunds":
			stripeError(w, http.StatusPaymentRequired, "card_error", "card_declined", "insufficient_funds", "Your card has insufficient funds.", "")
			return
		case "pm_card_visa", "pm_card_mastercard":
		default:
			stripeError(w, http.StatusBadRequest, "invalid_request_error", "resource_missing", "", "No such PaymentMethod: '"+pm+"'", "payment_method")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{ // test server: the client sees a broken body
			"id": req.ID, "object": "payment_intent", "amount": json.Number(req.Form.Get("amount")),
			"amount_received": json.Number(req.Form.Get("amount")), "currency": req.Form.Get("currency"),
			"status": "succeeded", "payment_method": req.Form.Get("payment_method"), "livemode": false,
			"metadata": map[string]string{"order_id": req.Form.Get("metadata[order_id]")},
		})
	case "/v1/refunds":
		f.mu.Lock()
		req.ID = fmt.Sprintf("re_fake_%d", len(f.refunds)+1)
		f.refunds = append(f.refunds, req)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{ // test server: the client sees a broken body
			"id": req.ID, "object": "refund", "status": "succeeded", "payment_intent": req.Form.Get("payment_intent"),
		})
	default:
		stripeError(w, http.StatusNotFound, "invalid_request_error", "", "", "Unrecognized request URL", "")
	}
}
