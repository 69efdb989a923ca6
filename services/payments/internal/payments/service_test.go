package payments_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/services/payments/internal/store"
	"github.com/stuffmart/stuffmart/services/payments/internal/stripe"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// faultyCharger is the offline test mode with faults a test turns on: a
// confirm that never reaches the provider (its caller waits until its
// context ends), a confirm applied whose answer is lost, look-ups that
// fail, refunds that never answer. It counts the charges and refunds that
// went through.
type faultyCharger struct {
	*stripe.Offline
	mu                         sync.Mutex
	stallConfirms, loseAnswers bool
	failLookups, stallRefunds  bool
	beforeIntent               func() // runs (once) before an intent is made
	charged, refunded          int
}

func newCharger() *faultyCharger { return &faultyCharger{Offline: stripe.NewOffline()} }

func (c *faultyCharger) set(f func(c *faultyCharger)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *faultyCharger) counts() (charged, refunded int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.charged, c.refunded
}

func (c *faultyCharger) NewIntent(ctx context.Context, r payments.IntentRequest) (payments.Intent, error) {
	c.mu.Lock()
	hook := c.beforeIntent
	c.beforeIntent = nil
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	return c.Offline.NewIntent(ctx, r)
}

func (c *faultyCharger) Confirm(ctx context.Context, r payments.ConfirmRequest) (payments.Intent, error) {
	c.mu.Lock()
	stall, lose := c.stallConfirms, c.loseAnswers
	c.mu.Unlock()
	if stall {
		<-ctx.Done()
		return payments.Intent{}, &payments.ProviderError{Err: ctx.Err()}
	}
	in, err := c.Offline.Confirm(ctx, r)
	if err == nil {
		c.mu.Lock()
		c.charged++
		c.mu.Unlock()
	}
	if lose {
		return payments.Intent{}, &payments.ProviderError{Err: errors.New("connection reset")}
	}
	return in, err
}

func (c *faultyCharger) Intent(ctx context.Context, id string) (payments.Intent, error) {
	c.mu.Lock()
	fail := c.failLookups
	c.mu.Unlock()
	if fail {
		return payments.Intent{}, &payments.ProviderError{Err: errors.New("connection refused")}
	}
	return c.Offline.Intent(ctx, id)
}

func (c *faultyCharger) Refund(ctx context.Context, r payments.RefundRequest) (payments.RefundResult, error) {
	c.mu.Lock()
	stall := c.stallRefunds
	c.mu.Unlock()
	if stall {
		<-ctx.Done()
		return payments.RefundResult{}, &payments.ProviderError{Err: ctx.Err()}
	}
	res, err := c.Offline.Refund(ctx, r)
	if err == nil {
		c.mu.Lock()
		c.refunded++
		c.mu.Unlock()
	}
	return res, err
}

// flakyStore is the real store whose reads of orders fail while failReads
// is set (the database answering the payment's insert, then not the
// re-check).
type flakyStore struct {
	payments.Store
	mu        sync.Mutex
	failReads bool
}

func (s *flakyStore) Order(ctx context.Context, id string) (payments.Order, error) {
	s.mu.Lock()
	fail := s.failReads
	s.mu.Unlock()
	if fail {
		return payments.Order{}, errors.New("server selection timeout")
	}
	return s.Store.Order(ctx, id)
}

func (s *flakyStore) InsertPayment(ctx context.Context, p payments.Payment) error {
	err := s.Store.InsertPayment(ctx, p)
	s.mu.Lock()
	s.failReads = s.failReads || err == nil
	s.mu.Unlock()
	return err
}

type fixture struct {
	svc   *payments.Service
	st    *store.Store
	clock *testkit.Clock
}

func newFixture(t *testing.T, ch payments.Charger, opts payments.Options) fixture {
	t.Helper()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	clock := testkit.NewClock(time.Now())
	opts.Log, opts.Now = testkit.Logger(t), clock.Now
	return fixture{svc: payments.NewService(st, ch, stripe.NewOffline(), opts), st: st, clock: clock}
}

// newOrder puts an order of buyer at price in the replica and returns its id.
func (f fixture) newOrder(t *testing.T, buyer string, price int64) string {
	t.Helper()
	id := testkit.RandomID(t)[:24]
	err := f.svc.OrderCreated(context.Background(), payments.Order{
		ID: id, UserID: buyer, Price: price, Status: payments.StatusCreated, Version: 1, ExpiresAt: f.clock.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f fixture) wantRefundDone(t *testing.T, paymentID string) {
	t.Helper()
	r, err := f.st.Refund(context.Background(), paymentID)
	if err != nil || r.State != payments.RefundDone {
		t.Fatalf("refund of %s: %+v, %v; want done", paymentID, r, err)
	}
}

// A charge that never reached the provider within the timeout took nothing:
// the attempt is released (once looked up), and the buyer's retry pays.
func TestPayAfterChargeTimedOut(t *testing.T) {
	t.Parallel()
	ch := newCharger()
	f := newFixture(t, ch, payments.Options{ChargeTimeout: 200 * time.Millisecond})
	buyer := testkit.RandomID(t)[:24]
	order := f.newOrder(t, buyer, 1000)
	in := payments.PayInput{OrderID: order, PaymentMethod: "pm_card_visa"}

	ch.set(func(c *faultyCharger) { c.stallConfirms = true })
	_, err := f.svc.Pay(context.Background(), buyer, in)
	var pe *payments.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("pay with a provider that does not answer: %v, want a ProviderError", err)
	}

	ch.set(func(c *faultyCharger) { c.stallConfirms = false })
	p, err := f.svc.Pay(context.Background(), buyer, in)
	if err != nil {
		t.Fatalf("retry after the timed-out charge: %v", err)
	}
	if p.OrderID != order || p.Amount != 1000 || p.Attempt != 2 {
		t.Fatalf("payment %+v", p)
	}
	if charged, _ := ch.counts(); charged != 1 {
		t.Fatalf("%d charges", charged)
	}
}

// A charge applied whose answer was lost is found by the look-up that
// follows; when the look-up fails too, the attempt is left unknown and the
// next try of the order finds the charge instead of making another.
func TestChargeAnswerLost(t *testing.T) {
	t.Parallel()
	ch := newCharger()
	f := newFixture(t, ch, payments.Options{})
	buyer := testkit.RandomID(t)[:24]
	ctx := context.Background()

	order := f.newOrder(t, buyer, 1500)
	ch.set(func(c *faultyCharger) { c.loseAnswers = true })
	p, err := f.svc.Pay(ctx, buyer, payments.PayInput{OrderID: order, PaymentMethod: "pm_card_visa"})
	if err != nil || p.Amount != 1500 {
		t.Fatalf("pay whose answer was lost: %+v, %v; want the payment, found by a look-up", p, err)
	}

	other := f.newOrder(t, buyer, 1600)
	ch.set(func(c *faultyCharger) { c.failLookups = true })
	_, err = f.svc.Pay(ctx, buyer, payments.PayInput{OrderID: other, PaymentMethod: "pm_card_visa"})
	var pe *payments.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("pay with the answer and the look-up lost: %v, want a ProviderError", err)
	}
	if a, err := f.st.Attempt(ctx, other, 1); err != nil || a.State != payments.AttemptUnknown {
		t.Fatalf("attempt %+v, %v; want unknown", a, err)
	}
	ch.set(func(c *faultyCharger) { c.loseAnswers, c.failLookups = false, false })
	if _, err := f.svc.Pay(ctx, buyer, payments.PayInput{OrderID: other, PaymentMethod: "pm_card_mastercard"}); !errors.Is(err, payments.ErrAlreadyPaid) {
		t.Fatalf("retry: %v, want ErrAlreadyPaid (the first charge went through)", err)
	}
	if charged, _ := ch.counts(); charged != 2 {
		t.Fatalf("%d charges for 2 orders", charged)
	}
	if a, err := f.st.Attempt(ctx, other, 1); err != nil || a.State != payments.AttemptSucceeded {
		t.Fatalf("attempt %+v, %v; want succeeded", a, err)
	}
}

// A failed read of the order after the payment does not count as "not
// cancelled": the re-check is done again by the sweeper, which owes and
// makes the refund of an order whose cancellation was handled before the
// payment existed.
func TestRecheckReadFailed(t *testing.T) {
	t.Parallel()
	ch := newCharger()
	st := &flakyStore{Store: store.New(testkit.Mongo(t), mongox.NewWriter(), nil)}
	clock := testkit.NewClock(time.Now())
	svc := payments.NewService(st, ch, stripe.NewOffline(), payments.Options{Log: testkit.Logger(t), Now: clock.Now})
	ctx := context.Background()
	buyer, order := testkit.RandomID(t)[:24], testkit.RandomID(t)[:24]
	if err := svc.OrderCreated(ctx, payments.Order{ID: order, UserID: buyer, Price: 2000, Status: payments.StatusCreated, Version: 1, ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The cancellation is handled after the request read the order and
	// claimed its attempt, before the charge: nothing to refund yet.
	ch.set(func(c *faultyCharger) {
		c.beforeIntent = func() {
			if err := svc.OrderChanged(ctx, order, 2, payments.StatusCancelled); err != nil {
				t.Error(err)
			}
		}
	})
	p, err := svc.Pay(ctx, buyer, payments.PayInput{OrderID: order, PaymentMethod: "pm_card_visa"})
	if err != nil {
		t.Fatalf("pay: %v; want the payment (the charge went through, the re-check failed)", err)
	}
	if _, err := st.Refund(ctx, p.ID); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("refund already owed: %v; the re-check could not read the order", err)
	}
	if a, _ := st.Attempt(ctx, order, 1); a.State != payments.AttemptUnknown {
		t.Fatalf("attempt %s, want unknown: the re-check is not done", a.State)
	}

	st.mu.Lock()
	st.failReads = false
	st.mu.Unlock()
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := st.Refund(ctx, p.ID)
	if err != nil || r.State != payments.RefundDone {
		t.Fatalf("refund %+v, %v; want done", r, err)
	}
	if charged, refunded := ch.counts(); charged != 1 || refunded != 1 {
		t.Fatalf("%d charges, %d refunds; want 1 and 1", charged, refunded)
	}
}

// A refund the provider does not answer stays owed (the cancellation is
// handled: the obligation is stored) and the sweeper asks again until it is
// done, once.
func TestRefundAfterRefundTimedOut(t *testing.T) {
	t.Parallel()
	ch := newCharger()
	f := newFixture(t, ch, payments.Options{ChargeTimeout: 200 * time.Millisecond})
	buyer := testkit.RandomID(t)[:24]
	order := f.newOrder(t, buyer, 1000)
	ctx := context.Background()
	p, err := f.svc.Pay(ctx, buyer, payments.PayInput{OrderID: order, PaymentMethod: "pm_card_visa"})
	if err != nil {
		t.Fatal(err)
	}

	ch.set(func(c *faultyCharger) { c.stallRefunds = true })
	if err := f.svc.OrderChanged(ctx, order, 2, payments.StatusCancelled); err != nil {
		t.Fatalf("cancellation: %v, want it handled (the refund is owed)", err)
	}
	if r, err := f.st.Refund(ctx, p.ID); err != nil || r.State != payments.RefundPending || r.Tries != 1 {
		t.Fatalf("refund %+v, %v; want pending after one try", r, err)
	}
	if err := f.svc.Sweep(ctx); err == nil {
		t.Fatal("sweep while the provider does not answer refunds: no error")
	}

	ch.set(func(c *faultyCharger) { c.stallRefunds = false })
	if err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantRefundDone(t, p.ID)
	if err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, refunded := ch.counts(); refunded != 1 {
		t.Fatalf("%d refunds, want 1", refunded)
	}
	if a, _ := f.st.Attempt(ctx, order, 1); a.State != payments.AttemptRefunded {
		t.Fatalf("attempt %s, want refunded", a.State)
	}
}

// An attempt whose holder died (its process was killed) is finished by the
// sweeper once its holder's time is up, in the offline mode as with Stripe:
// the charge that went through is recorded; one that never started is
// released, and the order can be paid.
func TestSweepAbandonedAttempts(t *testing.T) {
	t.Parallel()
	ch := newCharger()
	f := newFixture(t, ch, payments.Options{ChargeTimeout: time.Second})
	buyer := testkit.RandomID(t)[:24]
	ctx := context.Background()

	charged := f.newOrder(t, buyer, 1200)
	in, err := ch.NewIntent(ctx, payments.IntentRequest{OrderID: charged, Amount: 1200, Currency: "usd", IdempotencyKey: "intent-" + charged + "-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Confirm(ctx, payments.ConfirmRequest{IntentID: in.ID, PaymentMethod: "pm_card_visa", IdempotencyKey: "payment-" + charged + "-1"}); err != nil {
		t.Fatal(err)
	}
	left := payments.Attempt{OrderID: charged, N: 1, State: payments.AttemptCharging, PaymentID: testkit.RandomID(t)[:24], UserID: buyer,
		Amount: 1200, Currency: "usd", PaymentMethod: "pm_card_visa", IntentID: in.ID, IntentAttempt: 1, At: f.clock.Now()}
	if err := f.st.InsertAttempt(ctx, left); err != nil {
		t.Fatal(err)
	}
	never := f.newOrder(t, buyer, 1300)
	if err := f.st.InsertAttempt(ctx, payments.Attempt{OrderID: never, N: 1, State: payments.AttemptCharging, PaymentID: testkit.RandomID(t)[:24],
		UserID: buyer, Amount: 1300, Currency: "usd", PaymentMethod: "pm_card_visa", At: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}

	if _, err := f.svc.Pay(ctx, buyer, payments.PayInput{OrderID: never, PaymentMethod: "pm_card_visa"}); !errors.Is(err, payments.ErrInProgress) {
		t.Fatalf("pay while an attempt's holder may be at work: %v, want ErrInProgress", err)
	}
	if err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.st.Attempt(ctx, charged, 1); a.State != payments.AttemptCharging {
		t.Fatalf("swept an attempt whose holder's time was not up: %s", a.State)
	}

	f.clock.Advance(time.Minute) // the holders' time is up
	if err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := f.st.Payment(ctx, left.PaymentID)
	if err != nil || p.ProviderID != in.ID || p.Amount != 1200 {
		t.Fatalf("payment %+v, %v; want the charge recorded", p, err)
	}
	if a, _ := f.st.Attempt(ctx, charged, 1); a.State != payments.AttemptSucceeded {
		t.Fatalf("attempt %s, want succeeded", a.State)
	}
	if a, _ := f.st.Attempt(ctx, never, 1); a.State != payments.AttemptFailed {
		t.Fatalf("attempt that never charged: %s, want failed", a.State)
	}
	if _, err := f.svc.Pay(ctx, buyer, payments.PayInput{OrderID: never, PaymentMethod: "pm_card_visa"}); err != nil {
		t.Fatalf("pay after the abandoned attempt was released: %v", err)
	}
}
