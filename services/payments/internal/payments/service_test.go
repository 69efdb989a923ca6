package payments_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/services/payments/internal/store"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// stallingCharger stands in for Stripe: it charges and refunds at once, or,
// while stalled, answers only when the caller's context ends (a provider
// that does not answer in time).
type stallingCharger struct {
	mu                         sync.Mutex
	stallCharges, stallRefunds bool
	refunded                   int // refunds that went through
}

func (c *stallingCharger) stall(charges, refunds bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stallCharges, c.stallRefunds = charges, refunds
}

func (c *stallingCharger) Charge(ctx context.Context, r payments.ChargeRequest) (payments.ChargeResult, error) {
	c.mu.Lock()
	stall := c.stallCharges
	c.mu.Unlock()
	if stall {
		<-ctx.Done()
		return payments.ChargeResult{}, ctx.Err()
	}
	return payments.ChargeResult{Provider: "fake", ProviderID: "pi_" + r.IdempotencyKey}, nil
}

func (c *stallingCharger) Refund(ctx context.Context, r payments.RefundRequest) (payments.RefundResult, error) {
	c.mu.Lock()
	stall := c.stallRefunds
	c.mu.Unlock()
	if stall {
		<-ctx.Done()
		return payments.RefundResult{}, ctx.Err()
	}
	c.mu.Lock()
	c.refunded++
	c.mu.Unlock()
	return payments.RefundResult{ProviderID: "re_" + r.ProviderID}, nil
}

func newService(t *testing.T, ch payments.Charger, opts payments.Options) (*payments.Service, *store.Store) {
	t.Helper()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	opts.Log = testkit.Logger(t)
	return payments.NewService(st, ch, opts), st
}

// newOrder puts an order of buyer at price in the replica and returns its id.
func newOrder(t *testing.T, svc *payments.Service, buyer string, price int64) string {
	t.Helper()
	id := testkit.RandomID(t)[:24]
	err := svc.OrderCreated(context.Background(), payments.Order{
		ID: id, UserID: buyer, Price: price, Status: payments.StatusCreated, Version: 1, ExpiresAt: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPayAfterChargeTimedOut: when the provider does not answer within the
// charge timeout, the attempt must be released (the buyer may try again)
// even though the context of the charge is spent by then. It used to be
// released with that spent context, which failed, so the attempt stayed
// "charging" and every retry answered "already in progress" until the
// order expired.
func TestPayAfterChargeTimedOut(t *testing.T) {
	t.Parallel()
	ch := &stallingCharger{}
	svc, _ := newService(t, ch, payments.Options{ChargeTimeout: 200 * time.Millisecond})
	buyer := testkit.RandomID(t)[:24]
	order := newOrder(t, svc, buyer, 1000)
	in := payments.PayInput{OrderID: order, PaymentMethod: "pm_card_visa"}

	ch.stall(true, false)
	_, err := svc.Pay(context.Background(), buyer, in)
	var pe *payments.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("pay with a provider that does not answer: %v, want a ProviderError", err)
	}

	ch.stall(false, false)
	p, err := svc.Pay(context.Background(), buyer, in)
	if err != nil {
		t.Fatalf("retry after the timed-out charge: %v", err)
	}
	if p.OrderID != order || p.Amount != 1000 || p.Attempt != 2 {
		t.Fatalf("payment %+v", p)
	}
}

// TestRefundAfterRefundTimedOut: a listener whose context ends while the
// provider refunds (a slow provider) must give the refund claim back, so
// that the redelivered event refunds. The claim used to be deleted with
// the spent context, which failed, so every redelivery answered "refund in
// progress" for refundStaleAfter (2 minutes), longer than the bus
// redelivers an event before parking it: the money was never refunded.
func TestRefundAfterRefundTimedOut(t *testing.T) {
	t.Parallel()
	ch := &stallingCharger{}
	svc, st := newService(t, ch, payments.Options{})
	buyer := testkit.RandomID(t)[:24]
	order := newOrder(t, svc, buyer, 1000)
	p, err := svc.Pay(context.Background(), buyer, payments.PayInput{OrderID: order, PaymentMethod: "pm_card_visa"})
	if err != nil {
		t.Fatal(err)
	}

	ch.stall(false, true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := svc.OrderChanged(ctx, order, 2, payments.StatusCancelled); err == nil {
		t.Fatal("cancellation handled while the provider did not answer; want an error (redelivery)")
	}

	ch.stall(false, false)
	if err := svc.OrderChanged(context.Background(), order, 2, payments.StatusCancelled); err != nil {
		t.Fatalf("redelivered cancellation: %v", err)
	}
	r, err := st.Refund(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	ch.mu.Lock()
	refunded := ch.refunded
	ch.mu.Unlock()
	if r.State != payments.RefundDone || refunded != 1 {
		t.Fatalf("refund %+v after %d provider refunds, want done after 1", r, refunded)
	}
}
