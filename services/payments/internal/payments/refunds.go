package payments

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RefundState is where a refund is.
type RefundState string

// Refund states: pending is owed (the obligation); done is final.
const (
	RefundPending RefundState = "pending"
	RefundDone    RefundState = "done"
)

// Refund is the obligation, then the record, of giving a payment's money
// back. Its key is the payment id, so a payment is owed at most one refund;
// it is stored before the provider is asked, and asked again (by the
// sweeper) until the provider confirms: it is never dropped.
type Refund struct {
	PaymentID  string
	OrderID    string
	Attempt    int    // the attempt that made the payment
	IntentID   string // the charge to refund ("coupon": nothing charged)
	Amount     int64
	Redemption string // the payment's coupon slot, freed with the refund
	State      RefundState
	// KeyGen numbers the provider idempotency key: a retry of a request
	// whose outcome is unknown uses the same key; after an answered failure
	// (which the provider keeps for the key) the next try uses the next one.
	// The provider never refunds more than the charge, so the money goes
	// back at most once either way.
	KeyGen     int
	Tries      int
	LastError  string
	ProviderID string // the provider's refund id
	At         time.Time
	DoneAt     time.Time
}

// oweRefund stores the obligation to refund payment p, for the reason why
// (logged), once: an obligation already stored is returned as it is.
func (s *Service) oweRefund(ctx context.Context, p Payment, why string) (Refund, error) {
	r := Refund{
		PaymentID: p.ID, OrderID: p.OrderID, Attempt: p.Attempt, IntentID: p.ProviderID, Amount: p.Amount,
		Redemption: p.Redemption, State: RefundPending, At: s.now(),
	}
	err := s.store.InsertRefund(ctx, r)
	if errors.Is(err, ErrExists) {
		if r, err = s.store.Refund(ctx, p.ID); err != nil {
			return Refund{}, fmt.Errorf("read the refund of payment %s: %w", p.ID, err)
		}
		return r, nil
	}
	if err != nil {
		return Refund{}, fmt.Errorf("owe the refund of payment %s: %w", p.ID, err)
	}
	s.log.InfoContext(ctx, "refund owed", "why", why, "order_id", p.OrderID, "payment_id", p.ID, "amount", p.Amount)
	return r, nil
}

// refundNow asks for an owed refund at once; what fails is left to the
// sweeper (logged).
func (s *Service) refundNow(ctx context.Context, r Refund) {
	if err := s.runRefund(ctx, r); err != nil {
		s.log.Warn("refund not done yet; the sweeper asks again", "order_id", r.OrderID, "payment_id", r.PaymentID, "err", err)
	}
}

// runRefund asks the provider for owed refund r and records it done, frees
// the payment's coupon slot (if the order still holds it) and marks its
// attempt refunded. Several actors may run it at once: they send the same
// idempotency key, and only a pending refund is recorded done.
func (s *Service) runRefund(ctx context.Context, r Refund) error {
	if r.State == RefundDone {
		return nil
	}
	if r.IntentID == "" {
		// Owed before refunds named their charge: it is the payment's.
		p, err := s.store.Payment(ctx, r.PaymentID)
		if err != nil {
			return fmt.Errorf("read payment %s of a refund owed: %w", r.PaymentID, err)
		}
		r.IntentID, r.Redemption = p.ProviderID, p.Redemption
	}
	providerID := "coupon"
	if r.Amount > 0 {
		rctx, cancel := context.WithTimeout(ctx, s.chargeTimeout)
		res, err := s.charger.Refund(rctx, RefundRequest{IntentID: r.IntentID, Amount: r.Amount, IdempotencyKey: refundKey(r)})
		cancel()
		if err != nil {
			bctx, bcancel := afterProvider(ctx)
			defer bcancel()
			r.Tries++
			r.LastError = err.Error()
			var pe *ProviderError
			if errors.As(err, &pe) && pe.Answered {
				r.KeyGen++
			}
			if _, uerr := s.store.UpdateRefund(bctx, r); uerr != nil {
				err = errors.Join(err, uerr)
			}
			return fmt.Errorf("refund payment %s of order %s: %w", r.PaymentID, r.OrderID, err)
		}
		providerID = res.ProviderID
	}
	// The money is back: record it even if the provider used up ctx.
	ctx, cancel := afterProvider(ctx)
	defer cancel()
	if r.Redemption != "" {
		if _, err := s.store.DeleteRedemption(ctx, r.Redemption, r.OrderID); err != nil {
			return fmt.Errorf("free coupon slot %s of refunded payment %s: %w", r.Redemption, r.PaymentID, err)
		}
	}
	r.State, r.ProviderID, r.DoneAt = RefundDone, providerID, s.now()
	done, err := s.store.UpdateRefund(ctx, r)
	if err != nil {
		return fmt.Errorf("record the refund of payment %s: %w", r.PaymentID, err)
	}
	// Marked by whichever actor gets here: the one that recorded the refund
	// may have lost its attempt's state change to a concurrent one.
	s.markRefunded(ctx, r)
	if !done {
		return nil // recorded by another actor
	}
	s.log.InfoContext(ctx, "payment refunded", "order_id", r.OrderID, "payment_id", r.PaymentID, "amount", r.Amount, "refund_id", providerID)
	return nil
}

// markRefunded ends the attempt that made refunded payment r as refunded,
// whatever state a concurrent actor (the charge's own re-check, the
// order:cancelled listener, the sweeper) left it in: each state change is
// conditional on the state read, so a lost race reads again.
func (s *Service) markRefunded(ctx context.Context, r Refund) {
	for range 5 {
		a, err := s.store.Attempt(ctx, r.OrderID, r.Attempt)
		if err != nil || a.PaymentID != r.PaymentID || a.State == AttemptRefunded {
			return
		}
		from := a.State
		a.State, a.Message = AttemptRefunded, "order cancelled"
		ok, err := s.store.UpdateAttempt(ctx, a, from)
		if err != nil {
			s.log.ErrorContext(ctx, "record attempt state", "order_id", a.OrderID, "attempt", a.N, "state", a.State, "err", err)
			return
		}
		if ok {
			s.metrics.Outcome(AttemptRefunded)
			return
		}
	}
}

// refundKey is the provider idempotency key of refund r's current try.
func refundKey(r Refund) string {
	if r.KeyGen == 0 {
		return "refund-" + r.PaymentID
	}
	return fmt.Sprintf("refund-%s-%d", r.PaymentID, r.KeyGen)
}
