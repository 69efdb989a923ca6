package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// MaxAttempts bounds the charge attempts of one order (declines included):
// enough for a buyer who mistypes, not for card testing.
const MaxAttempts = 10

// MaxCouponRedemptions bounds a coupon's use limit.
const MaxCouponRedemptions = 10000

// DefaultChargeTimeout bounds the provider's charge call of a payment. It
// runs detached from the request: a buyer who double-clicks or navigates away
// must not abort a charge whose outcome would then be unknown.
const DefaultChargeTimeout = 90 * time.Second

// bookkeepingTimeout bounds the writes that follow a provider call (record
// or release a charge, record or give back a refund claim). They run on a
// context of their own: a provider call that used up its caller's time must
// not leave a claim taken for nothing (an attempt stuck "charging", a
// refund claim stuck "pending", a coupon slot never given back).
const bookkeepingTimeout = 15 * time.Second

// afterProvider returns the context for the writes that follow a provider
// call made with ctx.
func afterProvider(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
}

// refundStaleAfter is how old a pending refund claim must be before another
// actor takes it over (its holder presumably died). Safe: the provider never
// refunds more than was charged.
const refundStaleAfter = 2 * time.Minute

// Options configures a Service.
type Options struct {
	Currency string // ISO code, lower case; "usd" when empty
	// ChargeTimeout bounds the provider's charge call;
	// DefaultChargeTimeout when zero. Tests shorten it.
	ChargeTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log *slog.Logger
}

// Service pays orders, manages coupons and keeps the order replica.
type Service struct {
	store         Store
	charger       Charger
	currency      string
	chargeTimeout time.Duration
	now           func() time.Time
	log           *slog.Logger
}

// NewService returns a Service over store charging through charger.
func NewService(store Store, charger Charger, opts Options) *Service {
	if opts.Currency == "" {
		opts.Currency = "usd"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ChargeTimeout <= 0 {
		opts.ChargeTimeout = DefaultChargeTimeout
	}
	return &Service{store: store, charger: charger, currency: opts.Currency, chargeTimeout: opts.ChargeTimeout, now: opts.Now, log: opts.Log}
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

// usableCoupon returns the coupon named code if it may be used now.
func (s *Service) usableCoupon(ctx context.Context, code string) (Coupon, error) {
	if !validCode(code) {
		return Coupon{}, ErrCouponUnknown
	}
	c, err := s.store.Coupon(ctx, code)
	if errors.Is(err, errs.ErrNotFound) {
		return Coupon{}, ErrCouponUnknown
	}
	if err != nil {
		return Coupon{}, err
	}
	if c.Expired(s.now()) {
		return Coupon{}, ErrCouponExpired
	}
	return c, nil
}

// redeem takes one use of coupon c for order orderID and returns the
// redemption's id. A limited coupon has slots 1..MaxRedemptions, each taken
// by one unique-index insert, tried in order starting with those that looked
// free; when every insert is refused the coupon is used up. An order that
// already holds a redemption of c keeps it (no second slot).
func (s *Service) redeem(ctx context.Context, c Coupon, orderID string) (string, error) {
	if c.MaxRedemptions == 0 {
		id := c.Code + ":order:" + orderID
		err := s.store.InsertRedemption(ctx, Redemption{ID: id, Code: c.Code, OrderID: orderID, At: s.now()})
		if err != nil && !errors.Is(err, ErrExists) {
			return "", fmt.Errorf("redeem coupon: %w", err)
		}
		return id, nil
	}
	taken, err := s.store.Redemptions(ctx, c.Code)
	if err != nil {
		return "", fmt.Errorf("read redemptions: %w", err)
	}
	used := make(map[int]bool, len(taken))
	for _, r := range taken {
		if r.OrderID == orderID {
			return r.ID, nil
		}
		used[r.Slot] = true
	}
	for slot := 1; slot <= c.MaxRedemptions; slot++ {
		if used[slot] {
			continue
		}
		r := Redemption{ID: fmt.Sprintf("%s:%d", c.Code, slot), Code: c.Code, Slot: slot, OrderID: orderID, At: s.now()}
		err := s.store.InsertRedemption(ctx, r)
		if err == nil {
			return r.ID, nil
		}
		if !errors.Is(err, ErrExists) {
			return "", fmt.Errorf("redeem coupon: %w", err)
		}
	}
	return "", ErrCouponUsedUp
}

// NewCoupon is an admin's request for a coupon.
type NewCoupon struct {
	PercentOff     int
	MaxRedemptions *int       // nil: unlimited
	ExpiresAt      *time.Time // nil: never
}

// CreateCoupon makes a coupon with a random code. Errors: a validation error
// listing every bad field.
func (s *Service) CreateCoupon(ctx context.Context, adminID string, in NewCoupon) (Coupon, error) {
	now := s.now()
	var v validate.Errors
	v.Check(in.PercentOff >= 1 && in.PercentOff <= 100, "percentOff", "Must be an integer from 1 to 100")
	if in.MaxRedemptions != nil {
		v.Check(*in.MaxRedemptions >= 1 && *in.MaxRedemptions <= MaxCouponRedemptions, "maxRedemptions",
			fmt.Sprintf("Must be an integer from 1 to %d", MaxCouponRedemptions))
	}
	if in.ExpiresAt != nil {
		v.Check(in.ExpiresAt.After(now), "expiresAt", "Must be in the future")
		// RFC 3339 allows 9999-12-31T23:59:59-23:59, which is in the year
		// 10000 in UTC: JSON cannot carry it, so listing coupons would fail.
		v.Check(in.ExpiresAt.UTC().Year() <= 9999, "expiresAt", "Must be a date-time before the year 10000")
	}
	if err := v.Err(); err != nil {
		return Coupon{}, err
	}
	c := Coupon{PercentOff: in.PercentOff, CreatedBy: adminID, CreatedAt: now}
	if in.MaxRedemptions != nil {
		c.MaxRedemptions = *in.MaxRedemptions
	}
	if in.ExpiresAt != nil {
		c.ExpiresAt = in.ExpiresAt.UTC()
	}
	for range 3 { // 80 random bits: a clash is a formality
		c.Code = NewCode()
		err := s.store.InsertCoupon(ctx, c)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, ErrExists) {
			return Coupon{}, fmt.Errorf("create coupon: %w", err)
		}
	}
	return Coupon{}, errors.New("create coupon: no free code")
}

// Coupons lists every coupon, newest first, with its redemption count.
func (s *Service) Coupons(ctx context.Context) ([]Coupon, error) {
	return s.store.Coupons(ctx)
}

// OrderCreated adds an order to the replica; a redelivery changes nothing.
func (s *Service) OrderCreated(ctx context.Context, o Order) error {
	if o.Status == "" {
		o.Status = StatusCreated
	}
	err := s.store.InsertOrder(ctx, o)
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// OrderChanged applies version of order id with its new status (cancelled or
// complete). It is applied only on top of version-1; an older or equal
// version is a redelivery and changes nothing; a newer one returns
// ErrOutOfOrder. When the order is cancelled and a payment exists for it, the
// payment is refunded (once), which may return ErrRefundInProgress.
func (s *Service) OrderChanged(ctx context.Context, id string, version int64, status string) error {
	o, err := s.store.Order(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return ErrOutOfOrder
	}
	if err != nil {
		return err
	}
	switch {
	case o.Version >= version:
	case o.Version == version-1:
		if err := s.store.SetOrderStatus(ctx, id, o.Version, version, status); err != nil {
			return err
		}
		o.Status = status
	default:
		return ErrOutOfOrder
	}
	if status != StatusCancelled || o.Status != StatusCancelled {
		return nil
	}
	// Every payment is preceded by the claim of attempt 1: without it no
	// charge was ever tried and there is nothing to refund. That is one
	// read by _id, where looking for a payment by order reads the whole
	// collection on FerretDB; most cancelled orders were never paid for.
	if _, err := s.store.Attempt(ctx, id, 1); errors.Is(err, errs.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	p, err := s.store.PaymentByOrder(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.refund(ctx, p)
}
