package payments

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RefundState is where a refund is.
type RefundState string

// Refund states: pending is the claim; done is final.
const (
	RefundPending RefundState = "pending"
	RefundDone    RefundState = "done"
)

// Refund is the claim, then the record, of giving a payment's money back. Its
// key is the payment id, so a payment is refunded at most once.
type Refund struct {
	PaymentID  string
	OrderID    string
	Amount     int64
	State      RefundState
	Nonce      string // part of the provider idempotency key of this claim
	ProviderID string // the provider's refund id
	At         time.Time
	DoneAt     time.Time
}

// ErrRefundInProgress is returned when another actor holds the refund claim
// of a payment and has not finished: retry later.
var ErrRefundInProgress = errors.New("refund in progress elsewhere")

// refundStaleAfter is how old a pending refund claim must be before another
// actor takes it over (its holder presumably died). Safe: the provider never
// refunds more than was charged.
const refundStaleAfter = 2 * time.Minute

// refund gives back the money of payment p exactly once: the refund claim
// (key: payment id) decides who does it. It returns ErrRefundInProgress when
// another actor holds a fresh claim.
func (s *Service) refund(ctx context.Context, p Payment) error {
	r := Refund{PaymentID: p.ID, OrderID: p.OrderID, Amount: p.Amount, State: RefundPending, Nonce: newID(), At: s.now()}
	err := s.store.InsertRefund(ctx, r)
	if errors.Is(err, ErrExists) {
		cur, gerr := s.store.Refund(ctx, p.ID)
		if gerr != nil {
			return fmt.Errorf("read refund of payment %s: %w", p.ID, gerr)
		}
		if cur.State == RefundDone {
			return nil
		}
		if s.now().Sub(cur.At) < refundStaleAfter {
			return ErrRefundInProgress
		}
		r = cur // take over a claim whose holder died, with its key
	} else if err != nil {
		return fmt.Errorf("claim refund of payment %s: %w", p.ID, err)
	}

	providerID := "coupon"
	var res RefundResult
	var rerr error
	if p.Amount > 0 {
		res, rerr = s.charger.Refund(ctx, RefundRequest{ProviderID: p.ProviderID, Amount: p.Amount, IdempotencyKey: "refund-" + p.ID + "-" + r.Nonce})
	}
	// The claim is ours: settle it even if the provider used up ctx (a
	// listener's few seconds), or it would block every retry for
	// refundStaleAfter.
	ctx, cancel := afterProvider(ctx)
	defer cancel()
	if rerr != nil {
		// Let the next actor (a redelivered event) claim it afresh.
		if derr := s.store.DeleteRefund(ctx, p.ID); derr != nil {
			rerr = errors.Join(rerr, derr)
		}
		return fmt.Errorf("refund payment %s: %w", p.ID, rerr)
	}
	if p.Amount > 0 {
		providerID = res.ProviderID
	}
	if p.Redemption != "" {
		if err := s.store.DeleteRedemption(ctx, p.Redemption); err != nil {
			s.log.Error("release coupon redemption of refunded payment", "redemption", p.Redemption, "err", err)
		}
	}
	if err := s.store.CompleteRefund(ctx, p.ID, providerID, s.now()); err != nil {
		return fmt.Errorf("record refund of payment %s: %w", p.ID, err)
	}
	if err := s.store.SetAttemptState(ctx, p.OrderID, p.Attempt, AttemptRefunded, "order cancelled"); err != nil {
		s.log.Warn("mark attempt refunded", "order_id", p.OrderID, "err", err)
	}
	s.log.Info("payment refunded: its order was cancelled", "order_id", p.OrderID, "payment_id", p.ID, "amount", p.Amount, "refund_id", providerID)
	return nil
}
