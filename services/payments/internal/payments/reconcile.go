package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// DefaultSweepEvery is how often the sweeper looks for unfinished work.
const DefaultSweepEvery = 30 * time.Second

// reconcile finds out what became of attempt a, whose holder is gone (it
// died, or gave up with the outcome unknown), and finishes it: a payment
// recorded, or a charge that went through, is settled (recorded, the order
// checked again, the refund owed if it was cancelled); an attempt that took
// nothing is released. It never charges: it only looks up. A charge still
// processing leaves the attempt unknown. It returns an error when it could
// not find out (the attempt stays as it was).
func (s *Service) reconcile(ctx context.Context, a Attempt) error {
	redemption := ""
	if a.Coupon != "" {
		r, err := s.redemptionOf(ctx, a.Coupon, a.OrderID)
		if err != nil {
			return err
		}
		redemption = r
	}
	// Recorded already: the money was taken (or waived); the holder died
	// before the re-check.
	p, err := s.store.Payment(ctx, a.PaymentID)
	if err == nil {
		return outcome(s.settle(ctx, a, p))
	}
	if !errors.Is(err, errs.ErrNotFound) {
		return fmt.Errorf("read payment %s: %w", a.PaymentID, err)
	}
	if a.Session != nil {
		// A checkout attempt is open (unknown) only once its session was
		// paid: its PaymentIntent is stored before anything else.
		return s.reconcileSession(ctx, a, redemption)
	}
	if a.IntentID == "" || a.Amount == 0 {
		// Money moves only through an intent stored before it is confirmed,
		// and a coupon-only payment is recorded or nothing: nothing was taken.
		s.release(ctx, a, AttemptFailed, "abandoned before charging")
		return nil
	}
	in, err := s.charger.Intent(ctx, a.IntentID)
	if errors.Is(err, ErrNoSuchIntent) {
		s.log.Warn("the provider does not know an attempt's intent; nothing was charged", "order_id", a.OrderID, "intent", a.IntentID)
		s.release(ctx, a, AttemptFailed, "no such payment intent")
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up intent %s: %w", a.IntentID, err)
	}
	level := slog.LevelInfo
	if in.Status == IntentProcessing {
		level = slog.LevelDebug // looked up again at every sweep until decided
	}
	s.log.Log(ctx, level, "looked up a charge whose outcome was not known", "order_id", a.OrderID, "attempt", a.N, "intent", in.ID, "status", in.Status)
	if in.Status == IntentOpen {
		// Not charged. If the order is cancelled, close the intent so that a
		// confirm still on its way cannot charge it after this.
		if o, err := s.store.Order(ctx, a.OrderID); err == nil && o.Status == StatusCancelled {
			if in, err = s.closeIntent(ctx, a.IntentID); err != nil {
				return err
			}
		}
	}
	return outcome(s.resolve(ctx, a, in, redemption))
}

// outcome keeps, of what resolve or settle answered, the errors that say
// the work could not be done; what the buyer would have been told
// (declined, cancelled, still pending) is not one. (A payment that could
// not be recorded is pending too: settle logged it, and the attempt stays
// open for the next sweep.)
func outcome(_ Payment, err error) error {
	var declined *DeclinedError
	var provider *ProviderError
	switch {
	case err == nil, errors.As(err, &declined), errors.As(err, &provider),
		errors.Is(err, ErrOrderCancelled), errors.Is(err, ErrAlreadyPaid), errors.Is(err, ErrPaymentPending):
		return nil
	}
	return err
}

// closeOrder gives back what an order that was cancelled paid, and makes
// sure nothing charges it any more: a recorded payment is owed its refund;
// otherwise the order's intent is closed, and a charge of it that went
// through unrecorded is recorded and owed its refund. It returns an error
// when the provider could not be asked (the cancellation is handled again).
func (s *Service) closeOrder(ctx context.Context, orderID string) error {
	chain, err := s.attempts(ctx, orderID)
	if err != nil || len(chain) == 0 {
		return err
	}
	// An open checkout session must not take the money any more. One paid
	// already is recorded and refunded by its event (settle sees the order
	// cancelled).
	for _, a := range chain {
		if a.State != AttemptCheckout {
			continue
		}
		if err := s.endCheckout(ctx, a, "order cancelled"); err != nil && !errors.Is(err, errSessionPaid) {
			return fmt.Errorf("expire the checkout session of cancelled order %s: %w", orderID, err)
		}
	}
	p, err := s.paymentIn(ctx, chain)
	if err == nil {
		r, err := s.oweRefund(ctx, p, "the order was cancelled")
		if err != nil {
			return err
		}
		s.refundNow(ctx, r)
		return nil
	}
	if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	var last *Attempt
	for i := range chain {
		if chain[i].IntentID != "" {
			last = &chain[i]
		}
	}
	if last == nil {
		return nil // no card was tried
	}
	in, err := s.closeIntent(ctx, last.IntentID)
	if errors.Is(err, ErrNoSuchIntent) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("close intent %s of cancelled order %s: %w", last.IntentID, orderID, err)
	}
	switch in.Status {
	case IntentSucceeded:
		// Charged, and nobody recorded it yet (its holder may be about to:
		// the payment id is the attempt's, so it is recorded once).
		s.log.Warn("a charge for a cancelled order went through unrecorded; recording and refunding it", "order_id", orderID, "intent", in.ID)
		redemption, err := s.redemptionOf(ctx, last.Coupon, orderID)
		if err != nil {
			return err
		}
		return outcome(s.settle(ctx, *last, s.paymentOf(*last, in, redemption)))
	case IntentProcessing:
		// The provider has not decided: the sweeper looks it up until it has.
		if last.State != AttemptCharging {
			s.setState(ctx, *last, AttemptUnknown, "processing after the order was cancelled")
		}
	}
	return nil
}

// closeIntent cancels an open intent and returns what it is now (it may
// have succeeded, or be processing, instead).
func (s *Service) closeIntent(ctx context.Context, id string) (Intent, error) {
	in, err := s.charger.CancelIntent(ctx, id)
	if errors.Is(err, ErrIntentNotOpen) {
		in, err = s.charger.Intent(ctx, id)
	}
	return in, err
}

// attempts reads the attempts of an order, in order (each by _id).
func (s *Service) attempts(ctx context.Context, orderID string) ([]Attempt, error) {
	var out []Attempt
	for n := 1; n <= MaxAttempts; n++ {
		a, err := s.store.Attempt(ctx, orderID, n)
		if errors.Is(err, errs.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read attempt %d of order %s: %w", n, orderID, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// paymentIn returns the payment recorded by one of chain's attempts, or
// errs.ErrNotFound.
func (s *Service) paymentIn(ctx context.Context, chain []Attempt) (Payment, error) {
	for i := len(chain) - 1; i >= 0; i-- {
		p, err := s.store.Payment(ctx, chain[i].PaymentID)
		if !errors.Is(err, errs.ErrNotFound) {
			return p, err
		}
	}
	return Payment{}, errs.ErrNotFound
}

// orderPayment returns the payment of an order, or errs.ErrNotFound.
func (s *Service) orderPayment(ctx context.Context, orderID string) (Payment, error) {
	chain, err := s.attempts(ctx, orderID)
	if err != nil {
		return Payment{}, err
	}
	return s.paymentIn(ctx, chain)
}

// Sweep finishes the work that its actors left: attempts whose holder died
// or whose outcome is unknown are looked up and settled (see reconcile),
// refunds owed are asked for again, and then open checkout sessions close
// to their order's deadline are looked up (confirmDueSession), at most
// maxSweepLookups of them, after the rest so that a slow provider never
// holds up the money already owed. It returns what it could not do this time; the next
// sweep tries again.
func (s *Service) Sweep(ctx context.Context) error {
	var problems []error
	open, err := s.store.OpenAttempts(ctx)
	if err != nil {
		problems = append(problems, fmt.Errorf("list open attempts: %w", err))
	}
	var sessions []Attempt
	for _, a := range open {
		if a.State == AttemptCheckout {
			sessions = append(sessions, a)
			continue
		}
		if !s.abandoned(a) {
			continue // its holder is at work
		}
		actx, cancel := context.WithTimeout(ctx, s.chargeTimeout+bookkeepingTimeout)
		err := s.reconcile(actx, a)
		cancel()
		if err != nil {
			problems = append(problems, fmt.Errorf("attempt %d of order %s: %w", a.N, a.OrderID, err))
		}
	}
	owed, err := s.store.PendingRefunds(ctx)
	if err != nil {
		problems = append(problems, fmt.Errorf("list refunds owed: %w", err))
	}
	left := 0
	for _, r := range owed {
		if err := s.runRefund(ctx, r); err != nil {
			problems = append(problems, err)
			left++
		}
	}
	if err != nil {
		left = -1 // not known
	}
	s.metrics.RefundsPending(left)
	lookups := 0
	for _, a := range sessions {
		if lookups == maxSweepLookups {
			break // the next sweep, 30 s on, asks about the rest
		}
		asked, err := s.confirmDueSession(ctx, a)
		if asked {
			lookups++
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("checkout session of attempt %d of order %s: %w", a.N, a.OrderID, err))
		}
	}
	return errors.Join(problems...)
}

// maxSweepLookups bounds the checkout sessions one sweep asks the provider
// about (each up to lookupTimeout).
const maxSweepLookups = 50

// Sweeper returns the background worker that sweeps at start and then every
// every (DefaultSweepEvery when not positive) until ctx ends.
func (s *Service) Sweeper(every time.Duration) func(ctx context.Context) {
	if every <= 0 {
		every = DefaultSweepEvery
	}
	return func(ctx context.Context) {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("payments sweep: work left for the next one", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}
