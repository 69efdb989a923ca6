package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
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
	jwtKey     = "test-jwt-key-0123456789-0123456789-abcdef"
	sessionKey = "test-session-key-0123456789-0123456789-ab"
	stripeKey  = "sk_test_fake_0123456789"
	accessTTL  = 15 * time.Minute
	refreshTTL = 7 * 24 * time.Hour
	waitFor    = 10 * time.Second
)

// stack is one running payments service on its own database and NATS
// prefix, served over real HTTP, with a test bus that publishes order events
// and observes payment:created.
type stack struct {
	tb       testing.TB
	db       *mongo.Database
	clock    *testkit.Clock
	url      string
	hc       *http.Client
	sessions *auth.Sessions
	stripe   *fakeStripe // nil in offline mode
	bus      *events.Bus

	mu       sync.Mutex
	payments []events.PaymentCreatedEvent
}

// newStack starts the service; withStripe points it at a fake Stripe API
// (through the real stripe-go client), otherwise it runs offline.
func newStack(tb testing.TB, withStripe bool) *stack {
	tb.Helper()
	db := testkit.Mongo(tb)
	nc := testkit.NATS(tb)
	clk := testkit.NewClock(time.Now().UTC().Truncate(time.Millisecond))
	svcNATS := nc
	svcNATS.ClientName = "payments"
	cfg := app.Config{
		Service: service.Config{
			Name: "payments", HTTPAddr: "127.0.0.1:0",
			MongoURI: testkit.MongoURI(tb), MongoDB: db.Name(), NATS: svcNATS,
			JWTKey: jwtKey, SessionKey: sessionKey, AccessTTL: accessTTL, RefreshTTL: refreshTTL, BodyLimit: "64K",
		},
		Currency: "usd",
		Now:      clk.Now,
	}
	s := &stack{tb: tb, db: db, clock: clk,
		sessions: auth.NewSessions([]byte(sessionKey), auth.NewTokens([]byte(jwtKey), accessTTL), refreshTTL),
		hc:       &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	if withStripe {
		s.stripe = newFakeStripe(tb)
		cfg.StripeSecretKey = stripeKey
		cfg.StripeAPIURL = s.stripe.srv.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.New(ctx, cfg, testkit.Logger(tb))
	if err != nil {
		tb.Fatalf("app.New: %v", err)
	}
	a.Start()
	srv := httptest.NewServer(a.Handler())
	s.url = srv.URL
	tb.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			tb.Errorf("close app: %v", err)
		}
	})

	// The test's own connection: publishes as orders would, and observes
	// payment:created as orders would, in a group of its own.
	obs := nc
	obs.ClientName = "observer"
	s.bus = events.NewBus(obs, testkit.Logger(tb), nil)
	s.bus.Listen(events.Listener{Subject: events.PaymentCreated, Group: "observer", Handle: func(_ context.Context, m events.Msg) error {
		ev, err := events.Decode[events.PaymentCreatedEvent](m)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.payments = append(s.payments, ev)
		s.mu.Unlock()
		return nil
	}})
	s.bus.Start()
	tb.Cleanup(func() {
		if err := s.bus.Close(); err != nil {
			tb.Errorf("close bus: %v", err)
		}
	})
	if err := s.bus.WaitConnected(ctx); err != nil {
		tb.Fatalf("test bus: %v", err)
	}
	return s
}

// user returns a new signed-in user's session cookie.
func (s *stack) user(role string) (auth.User, *http.Cookie) {
	u := auth.User{ID: testkit.RandomID(s.tb)[:24], Email: testkit.RandomID(s.tb)[:8] + "@uni.edu", Role: role}
	return u, testkit.SessionCookie(s.tb, s.sessions, u, "")
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Body   []byte
}

func (r response) errors(tb testing.TB) []errs.Item {
	tb.Helper()
	var b errs.Body
	if err := json.Unmarshal(r.Body, &b); err != nil || len(b.Errors) == 0 {
		tb.Fatalf("not a normalized error body (%v): %s", err, r.Body)
	}
	return b.Errors
}

// do sends a request as the holder of cookie (nil: anonymous): body nil, a
// raw JSON string or a value to marshal. It may run on any goroutine.
func (s *stack) do(method, path string, cookie *http.Cookie, body any) (response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.url+path, r)
	if err != nil {
		return response{}, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: res.StatusCode, Body: data}, nil
}

func (s *stack) mustDo(method, path string, cookie *http.Cookie, body any) response {
	s.tb.Helper()
	r, err := s.do(method, path, cookie, body)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// pay posts a payment.
func (s *stack) pay(cookie *http.Cookie, body map[string]any) response {
	s.tb.Helper()
	return s.mustDo(http.MethodPost, "/api/payments", cookie, body)
}

func (s *stack) publish(ev events.Event) {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.bus.PublishEvent(ctx, ev); err != nil {
		s.tb.Fatalf("publish %s: %v", ev.Subject(), err)
	}
}

// replica reads the service's replica of an order (status "" when absent).
func (s *stack) replica(id string) (status string, version int64) {
	s.tb.Helper()
	var d struct {
		Status  string `bson:"status"`
		Version int64  `bson:"version"`
	}
	err := s.db.Collection("orders").FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if err == mongo.ErrNoDocuments {
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
	s.publish(events.OrderCreatedEvent{
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
	s.publish(events.OrderCancelledEvent{ID: id, Version: 2, Stuff: events.StuffRef{ID: "stuff"}})
	testkit.Eventually(s.tb, waitFor, func() bool { st, _ := s.replica(id); return st == events.OrderStatusCancelled }, "order %s cancelled in the replica", id)
}

// paymentEvent waits for the payment:created of an order.
func (s *stack) paymentEvent(orderID string) events.PaymentCreatedEvent {
	s.tb.Helper()
	var got events.PaymentCreatedEvent
	testkit.Eventually(s.tb, waitFor, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ev := range s.payments {
			if ev.OrderID == orderID {
				got = ev
				return true
			}
		}
		return false
	}, "payment:created for order %s", orderID)
	return got
}

// refundRecord reads the refund record of a payment.
func (s *stack) refundRecord(paymentID string) (state, providerID string) {
	s.tb.Helper()
	var d struct {
		State      string `bson:"state"`
		ProviderID string `bson:"providerId"`
	}
	err := s.db.Collection("refunds").FindOne(context.Background(), bson.D{{Key: "_id", Value: paymentID}}).Decode(&d)
	if err == mongo.ErrNoDocuments {
		return "", ""
	}
	if err != nil {
		s.tb.Fatalf("read refund: %v", err)
	}
	return d.State, d.ProviderID
}

// createCoupon makes a coupon as admin and returns its code.
func (s *stack) createCoupon(admin *http.Cookie, body map[string]any) couponJSON {
	s.tb.Helper()
	r := s.mustDo(http.MethodPost, "/api/payments/coupons", admin, body)
	if r.Status != http.StatusCreated {
		s.tb.Fatalf("create coupon: %d %s", r.Status, r.Body)
	}
	var c couponJSON
	decode(s.tb, r, &c)
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

func decode(tb testing.TB, r response, dst any) {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

// wantStatus fails unless r has status want.
func wantStatus(tb testing.TB, r response, want int) {
	tb.Helper()
	if r.Status != want {
		tb.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
}

// wantError fails unless r is status with one error item (message, field).
func wantError(tb testing.TB, r response, status int, message, field string) {
	tb.Helper()
	wantStatus(tb, r, status)
	items := r.errors(tb)
	if len(items) != 1 || items[0].Message != message || items[0].Field != field {
		tb.Fatalf("errors %+v, want [{%q %q}]", items, message, field)
	}
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

func (f *fakeStripe) chargeRequests() []stripeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stripeRequest(nil), f.charges...)
}

func (f *fakeStripe) refundRequests() []stripeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stripeRequest(nil), f.refunds...)
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
