package payments

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// MaxAttempts bounds the charge attempts of one order (declines included):
// enough for a buyer who mistypes, not for card testing.
const MaxAttempts = 10

// DefaultChargeTimeout bounds the provider's charge call of a payment. It
// runs detached from the request: a buyer who double-clicks or navigates away
// must not abort a charge whose outcome would then be unknown.
const DefaultChargeTimeout = 90 * time.Second

// Client-facing refusals of Pay.
var (
	ErrOrderCancelled = errs.BadRequest("Cannot pay for a cancelled order")
	ErrOrderExpired   = errs.BadRequest("Cannot pay for an expired order")
	ErrAlreadyPaid    = errs.BadRequest("Order has already been paid")
	ErrInProgress     = errs.BadRequest("A payment for this order is already in progress")
	ErrTooManyTries   = errs.BadRequest("Too many payment attempts for this order")
	ErrCouponUnknown  = &errs.BadRequestError{Message: "Coupon code is not valid", Field: "coupon"}
	ErrCouponExpired  = &errs.BadRequestError{Message: "Coupon has expired", Field: "coupon"}
	ErrCouponUsedUp   = &errs.BadRequestError{Message: "Coupon has been used up", Field: "coupon"}
)

// AttemptState is where a charge attempt is.
type AttemptState string

// Attempt states. Charging is the claim itself; declined and failed release
// the order for another attempt; succeeded and refunded are final.
const (
	AttemptCharging  AttemptState = "charging"
	AttemptDeclined  AttemptState = "declined"
	AttemptFailed    AttemptState = "failed"
	AttemptSucceeded AttemptState = "succeeded"
	AttemptRefunded  AttemptState = "refunded"
)

// Attempt is the claim of the n-th try to pay an order. Inserting attempt n
// is what makes a request the one that may charge; its key "orderId:n" is
// unique, so of two simultaneous requests exactly one gets it.
type Attempt struct {
	OrderID   string
	N         int
	State     AttemptState
	PaymentID string // the id the payment will have if this attempt succeeds
	Message   string // why it was declined or failed
	At        time.Time
}

// PayInput is a buyer's request to pay an order.
type PayInput struct {
	OrderID       string
	PaymentMethod string // required when something is left to charge
	Coupon        string // optional code
}

// Pay charges the order of userID at most once and records the payment with
// its payment:created event.
//
// Errors: errs.ErrNotFound (no such order in the replica), errs.ErrNotAuthorized
// (not the buyer), ErrOrderCancelled, ErrOrderExpired, ErrAlreadyPaid,
// ErrInProgress (another request of this order is charging), the coupon
// errors, a validation error on paymentMethod, *DeclinedError (the order may
// be paid again), *ProviderError. If the order turns out to be cancelled
// while it was being charged, the charge is refunded and ErrOrderCancelled
// returned.
func (s *Service) Pay(ctx context.Context, userID string, in PayInput) (Payment, error) {
	code := strings.ToUpper(strings.TrimSpace(in.Coupon))
	method := strings.TrimSpace(in.PaymentMethod)

	o, err := s.store.Order(ctx, in.OrderID)
	if err != nil {
		return Payment{}, err
	}
	if o.UserID != userID {
		return Payment{}, errs.ErrNotAuthorized
	}
	if err := s.payable(o); err != nil {
		return Payment{}, err
	}
	amount := o.Price
	var coupon *Coupon
	if code != "" {
		c, err := s.usableCoupon(ctx, code)
		if err != nil {
			return Payment{}, err
		}
		coupon = &c
		amount = c.Apply(o.Price)
	}
	if amount > 0 && method == "" {
		return Payment{}, errs.Invalid("paymentMethod", "Payment method is required")
	}

	paymentID := newID()
	n, err := s.claimAttempt(ctx, o.ID, paymentID)
	if err != nil {
		return Payment{}, err
	}
	// From here on this request alone may charge the order: finish what it
	// starts even if the client goes away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.chargeTimeout+bookkeepingTimeout)
	defer cancel()
	return s.charge(ctx, o, n, paymentID, amount, coupon, method)
}

// payable refuses orders that cannot be paid whatever the request.
func (s *Service) payable(o Order) error {
	switch o.Status {
	case StatusCancelled:
		return ErrOrderCancelled
	case StatusComplete:
		return ErrAlreadyPaid
	}
	if !o.ExpiresAt.IsZero() && !s.now().Before(o.ExpiresAt) {
		return ErrOrderExpired
	}
	return nil
}

// claimAttempt takes the next free attempt number of the order by one
// unique-index insert per number, walking past declined and failed
// attempts. It fails when an attempt is charging or has succeeded.
func (s *Service) claimAttempt(ctx context.Context, orderID, paymentID string) (int, error) {
	for n := 1; n <= MaxAttempts; n++ {
		err := s.store.InsertAttempt(ctx, Attempt{OrderID: orderID, N: n, State: AttemptCharging, PaymentID: paymentID, At: s.now()})
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, ErrExists) {
			return 0, fmt.Errorf("claim attempt %d of order %s: %w", n, orderID, err)
		}
		a, err := s.store.Attempt(ctx, orderID, n)
		if err != nil {
			return 0, fmt.Errorf("read attempt %d of order %s: %w", n, orderID, err)
		}
		switch a.State {
		case AttemptDeclined, AttemptFailed:
			continue
		case AttemptCharging:
			return 0, ErrInProgress
		case AttemptRefunded:
			return 0, ErrOrderCancelled
		default:
			return 0, ErrAlreadyPaid
		}
	}
	return 0, ErrTooManyTries
}

// charge runs claimed attempt n: redeem the coupon, charge, record, re-check.
func (s *Service) charge(ctx context.Context, o Order, n int, paymentID string, amount int64, coupon *Coupon, method string) (Payment, error) {
	log := s.log.With("order_id", o.ID, "attempt", n)
	p := Payment{
		ID: paymentID, OrderID: o.ID, UserID: o.UserID, Amount: amount, Currency: s.currency,
		Provider: "coupon", ProviderID: "coupon", Attempt: n,
	}
	// release gives the order (and the coupon slot) back after a charge that
	// certainly took nothing.
	release := func(state AttemptState, cause error) {
		if p.Redemption != "" {
			if err := s.store.DeleteRedemption(ctx, p.Redemption); err != nil {
				log.Error("release coupon redemption", "redemption", p.Redemption, "err", err)
			}
		}
		if err := s.store.SetAttemptState(ctx, o.ID, n, state, cause.Error()); err != nil {
			log.Error("release charge attempt", "err", err)
		}
	}

	if coupon != nil {
		r, err := s.redeem(ctx, *coupon, o.ID)
		if err != nil {
			release(AttemptFailed, err)
			return Payment{}, err
		}
		p.Coupon, p.Redemption = coupon.Code, r
	}
	if amount > 0 {
		// The provider gets chargeTimeout; what follows (release or record)
		// keeps bookkeepingTimeout of ctx even when the provider used all of
		// its time.
		cctx, ccancel := context.WithTimeout(ctx, s.chargeTimeout)
		res, err := s.charger.Charge(cctx, ChargeRequest{
			OrderID: o.ID, Amount: amount, Currency: s.currency,
			PaymentMethod: method, IdempotencyKey: attemptKey(o.ID, n),
		})
		ccancel()
		var declined *DeclinedError
		var invalid *InvalidPaymentMethodError
		var amountErr *AmountError
		switch {
		case errors.As(err, &declined):
			log.Info("card declined", "code", declined.Code)
			release(AttemptDeclined, err)
			return Payment{}, err
		case errors.As(err, &invalid), errors.As(err, &amountErr):
			release(AttemptFailed, err)
			return Payment{}, err
		case err != nil:
			// Unknown outcome: the provider client already retried with the
			// same idempotency key. Release so the buyer can retry (with a new
			// key); a charge that did go through unseen is the residual risk
			// that only provider-side reconciliation (webhooks) closes.
			release(AttemptFailed, err)
			var pe *ProviderError
			if !errors.As(err, &pe) {
				err = &ProviderError{Err: err}
			}
			return Payment{}, err
		}
		p.Provider, p.ProviderID = res.Provider, res.ProviderID
	}
	p.CreatedAt = s.now()

	if err := s.record(ctx, p); err != nil {
		return Payment{}, err
	}
	if err := s.store.SetAttemptState(ctx, o.ID, n, AttemptSucceeded, ""); err != nil {
		log.Error("mark attempt succeeded", "payment_id", p.ID, "err", err)
	}

	// The order may have been cancelled (its deadline passed) while it was
	// being charged. The listener of order:cancelled writes the replica and
	// then looks for a payment; this writes the payment and then reads the
	// replica; so at least one of the two sees the other and refunds.
	cur, err := s.store.Order(ctx, o.ID)
	if err != nil {
		log.Warn("re-check order after payment", "err", err)
		return p, nil
	}
	if cur.Status == StatusCancelled {
		if err := s.refund(ctx, p); err != nil && !errors.Is(err, ErrRefundInProgress) {
			log.Error("refund of a payment for a cancelled order failed; needs follow-up", "payment_id", p.ID, "provider_id", p.ProviderID, "err", err)
		}
		return Payment{}, ErrOrderCancelled
	}
	return p, nil
}

// record inserts the payment (and its event). A payment that cannot be
// recorded is refunded, so that no money is kept for an order that will not
// complete.
func (s *Service) record(ctx context.Context, p Payment) error {
	err := s.store.InsertPayment(ctx, p)
	if err == nil {
		return nil
	}
	log := s.log.With("order_id", p.OrderID, "payment_id", p.ID, "provider_id", p.ProviderID)
	if !errors.Is(err, ErrExists) {
		// The insert may have been applied before the error reached us.
		got, gerr := s.store.PaymentByOrder(ctx, p.OrderID)
		if gerr == nil && got.ID == p.ID {
			return nil
		}
		if gerr != nil && !errors.Is(gerr, errs.ErrNotFound) {
			log.Error("charged but could not record the payment nor check it; needs follow-up", "err", err, "check_err", gerr)
			return fmt.Errorf("record payment %s: %w", p.ID, err)
		}
	}
	// Not recorded, or another payment holds the order: give the money back.
	if rerr := s.giveBack(ctx, p); rerr != nil {
		log.Error("charged, not recorded, refund failed; needs follow-up", "err", err, "refund_err", rerr)
	} else if !errors.Is(err, ErrExists) {
		// Nothing kept: the buyer may try again.
		if serr := s.store.SetAttemptState(ctx, p.OrderID, p.Attempt, AttemptFailed, err.Error()); serr != nil {
			log.Error("release charge attempt", "err", serr)
		}
	}
	if errors.Is(err, ErrExists) {
		return ErrAlreadyPaid
	}
	return fmt.Errorf("record payment %s: %w", p.ID, err)
}

// giveBack refunds a charge that has no payment record and releases its
// coupon slot.
func (s *Service) giveBack(ctx context.Context, p Payment) error {
	if p.Redemption != "" {
		if err := s.store.DeleteRedemption(ctx, p.Redemption); err != nil {
			return err
		}
	}
	if p.Amount == 0 {
		return nil
	}
	_, err := s.charger.Refund(ctx, RefundRequest{ProviderID: p.ProviderID, Amount: p.Amount, IdempotencyKey: "refund-unrecorded-" + p.ID})
	return err
}

// attemptKey is the idempotency key of charge attempt n of an order: the
// same attempt retried by the provider client is answered from the
// provider's idempotency cache, while a new attempt after a decline is not.
func attemptKey(orderID string, n int) string {
	return fmt.Sprintf("payment-%s-%d", orderID, n)
}
