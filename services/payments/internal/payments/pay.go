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

// DefaultChargeTimeout bounds the provider calls of a payment (make or
// reprice the order's intent, confirm it). They run detached from the
// request: a buyer who double-clicks or navigates away must not abort a
// charge whose outcome would then be unknown.
const DefaultChargeTimeout = 90 * time.Second

// lookupTimeout bounds the look-up of an intent after a confirm that got no
// answer (at most the charge timeout).
const lookupTimeout = 10 * time.Second

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

// ErrPaymentPending says that the charge's outcome is not known yet (the
// provider is processing it, or its answer was lost and the provider could
// not be asked): nothing more is charged meanwhile, and the payment is
// recorded, or the order freed for another try, as soon as it is known.
var ErrPaymentPending = errors.New("payment outcome not known yet")

// AttemptState is where a charge attempt is.
type AttemptState string

// Attempt states. Charging is the claim itself, worked on by its holder;
// unknown is a charge whose outcome its holder could not learn (it must be
// looked up before anything else is charged); declined and failed took no
// money and release the order for another attempt; succeeded (the payment
// recorded and the order checked again) and refunded are final.
//
// A checkout attempt (the buyer pays on the provider's hosted page, see
// checkout.go) is checkout while its session is open; expired when the
// session ended without a payment (it expired, was replaced, or its payment
// failed), which releases the order like a decline; and from the payment on
// like any other attempt.
const (
	AttemptCharging  AttemptState = "charging"
	AttemptUnknown   AttemptState = "unknown"
	AttemptDeclined  AttemptState = "declined"
	AttemptFailed    AttemptState = "failed"
	AttemptSucceeded AttemptState = "succeeded"
	AttemptRefunded  AttemptState = "refunded"
	AttemptCheckout  AttemptState = "checkout"
	AttemptExpired   AttemptState = "expired"
)

// Attempt is the claim of the n-th try to pay an order. Inserting attempt n
// is what makes a request the one that may charge; its key "orderId:n" is
// unique, so of two simultaneous requests exactly one gets it. It carries
// everything needed to finish it (or find out what became of it) without
// its request: what to charge, how, and the order's intent.
type Attempt struct {
	OrderID   string
	N         int
	State     AttemptState
	PaymentID string // the id the payment has if this attempt succeeds
	UserID    string
	Amount    int64 // cents to charge; 0 when a coupon waives it all
	Currency  string
	// PaymentMethod is the provider's payment method to charge.
	PaymentMethod string
	Coupon        string // the code redeemed, if any
	// IntentID is the order's PaymentIntent (made by attempt IntentAttempt,
	// this one or an earlier one); it is stored before it is confirmed.
	IntentID      string
	IntentAttempt int
	Message       string // why it was declined, failed or is unknown
	At            time.Time
	// Session is the provider's checkout session of a checkout attempt
	// (nil for a payment by payment method).
	Session *Session
}

// PayInput is a buyer's request to pay an order.
type PayInput struct {
	OrderID       string
	PaymentMethod string // required when something is left to charge
	Coupon        string // optional code
	// PaymentID, when set, is the id the payment gets: minted from the
	// request's Idempotency-Key, so that a retry of a request whose first try
	// died finds and finishes that try's attempt instead of starting another.
	PaymentID string
}

// Pay charges the order of userID at most once and records the payment with
// its payment:created event.
//
// Errors: errs.ErrNotFound (no such order in the replica), errs.ErrNotAuthorized
// (not the buyer), ErrOrderCancelled, ErrOrderExpired, ErrAlreadyPaid,
// ErrInProgress (another request of this order is charging, or its outcome is
// not known yet), the coupon errors, a validation error on paymentMethod,
// *DeclinedError and *InvalidPaymentMethodError (the order may be paid
// again), *AmountError, ErrPaymentPending (charged or not: not known yet),
// *ProviderError (nothing charged, or the outcome could not be learnt: a
// retry looks it up first). If the order turns out to be cancelled while it
// was being charged, the refund of the charge is owed and ErrOrderCancelled
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
	if amount == 0 {
		method = ""
	}
	paymentID := in.PaymentID
	if paymentID == "" {
		paymentID = newID()
	}

	a, paid, err := s.claimAttempt(ctx, Attempt{
		OrderID: o.ID, State: AttemptCharging, PaymentID: paymentID, UserID: userID,
		Amount: amount, Currency: s.currency, PaymentMethod: method, Coupon: code, At: s.now(),
	})
	if err != nil || paid != nil {
		if paid != nil {
			return *paid, nil
		}
		return Payment{}, err
	}
	// From here on this request alone may charge the order: finish what it
	// starts even if the client goes away, within the holder's time (see
	// abandoned).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.chargeTimeout+s.lookupTimeout())
	defer cancel()
	return s.run(ctx, a, coupon)
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
// unique-index insert per number, walking past declined and failed attempts
// and carrying the order's intent over to the new one. An earlier attempt
// whose outcome is unknown (its holder gave up, or died) is looked up first:
// nothing new is charged while an earlier charge may have gone through.
//
// An open checkout session of the order is ended first (expired at the
// provider) when the caller pays otherwise; a checkout caller (want has a
// Session) gets it back to reuse or replace.
//
// It returns the attempt to run; or, for a retry of the same request (the
// same payment id) whose payment is recorded, that payment; or a refusal.
// An attempt of the same request that is still open is returned to be
// finished: its provider calls are made again with the same idempotency
// keys, which the provider answers as the first time.
func (s *Service) claimAttempt(ctx context.Context, want Attempt) (Attempt, *Payment, error) {
	var carried Attempt // the latest earlier attempt with the order's intent
	for n := 1; n <= MaxAttempts; n++ {
		a := want
		a.N, a.IntentID, a.IntentAttempt = n, carried.IntentID, carried.IntentAttempt
		if want.Session != nil {
			sess := *want.Session // the caller fills in its own copy
			a.Session = &sess
		}
		err := s.store.InsertAttempt(ctx, a)
		if err == nil {
			return a, nil, nil
		}
		if !errors.Is(err, ErrExists) {
			return Attempt{}, nil, fmt.Errorf("claim attempt %d of order %s: %w", n, want.OrderID, err)
		}
		cur, err := s.store.Attempt(ctx, want.OrderID, n)
		if err != nil {
			return Attempt{}, nil, fmt.Errorf("read attempt %d of order %s: %w", n, want.OrderID, err)
		}
		own := cur.PaymentID == want.PaymentID
		if (cur.State == AttemptCharging || cur.State == AttemptUnknown) && !own && s.abandoned(cur) {
			if err := s.reconcile(ctx, cur); err != nil {
				s.log.Warn("look up an earlier charge", "order_id", cur.OrderID, "attempt", cur.N, "err", err)
				return Attempt{}, nil, ErrInProgress
			}
			if cur, err = s.store.Attempt(ctx, want.OrderID, n); err != nil {
				return Attempt{}, nil, fmt.Errorf("read attempt %d of order %s: %w", n, want.OrderID, err)
			}
		}
		if cur.IntentID != "" {
			carried = cur
		}
		switch cur.State {
		case AttemptDeclined, AttemptFailed, AttemptExpired:
			continue
		case AttemptCheckout:
			if want.Session != nil {
				return cur, nil, nil // Checkout reuses or replaces it
			}
			// Paying otherwise: the open session must not take the money too.
			err := s.endCheckout(ctx, cur, "replaced by a payment with a payment method")
			if errors.Is(err, errSessionPaid) {
				return Attempt{}, nil, ErrInProgress
			}
			if err != nil {
				return Attempt{}, nil, err
			}
			continue
		case AttemptCharging, AttemptUnknown:
			if own {
				return cur, nil, nil
			}
			return Attempt{}, nil, ErrInProgress
		case AttemptRefunded:
			return Attempt{}, nil, ErrOrderCancelled
		default:
			if own {
				if p, err := s.store.Payment(ctx, cur.PaymentID); err == nil {
					return cur, &p, nil
				}
			}
			return Attempt{}, nil, ErrAlreadyPaid
		}
	}
	return Attempt{}, nil, ErrTooManyTries
}

// abandoned reports whether attempt a has no live holder: it is unknown
// (its holder gave up), or still charging after all the time its holder
// had (see Pay and settle).
func (s *Service) abandoned(a Attempt) bool {
	if a.State == AttemptUnknown {
		return true
	}
	return !s.now().Before(a.At.Add(s.holdFor()))
}

// holdFor is the most time the holder of an attempt works on it: its
// provider calls, one look-up, and the writes that follow.
func (s *Service) holdFor() time.Duration {
	return s.chargeTimeout + s.lookupTimeout() + bookkeepingTimeout
}

func (s *Service) lookupTimeout() time.Duration { return min(lookupTimeout, s.chargeTimeout) }

// run works on claimed attempt a: redeem the coupon, make (or reprice) the
// order's intent and store it, confirm it, and settle what came of it.
// coupon is the coupon read by the request (nil: read again).
func (s *Service) run(ctx context.Context, a Attempt, coupon *Coupon) (Payment, error) {
	redemption, err := s.redeemFor(ctx, a, coupon)
	if err != nil {
		s.release(ctx, a, AttemptFailed, err.Error())
		return Payment{}, err
	}
	if a.Amount == 0 {
		if a.IntentID != "" {
			// An earlier card attempt's intent must not charge too: close it,
			// and if a charge of it went through after all, that is the payment.
			in, err := s.closeIntent(ctx, a.IntentID)
			if err != nil && !errors.Is(err, ErrNoSuchIntent) {
				s.release(ctx, a, AttemptFailed, err.Error())
				return Payment{}, providerError(err)
			}
			if in.Status == IntentSucceeded || in.Status == IntentProcessing {
				return s.resolve(ctx, a, in, redemption)
			}
		}
		return s.settle(ctx, a, s.paymentOf(a, Intent{}, redemption))
	}

	cctx, cancel := context.WithTimeout(ctx, s.chargeTimeout)
	defer cancel()
	switch {
	case a.IntentID == "":
		in, err := s.charger.NewIntent(cctx, IntentRequest{OrderID: a.OrderID, Amount: a.Amount, Currency: a.Currency, IdempotencyKey: intentKey(a.OrderID, a.N)})
		if err != nil {
			return Payment{}, s.notCharged(ctx, a, err)
		}
		from := a.State
		a.IntentID, a.IntentAttempt = in.ID, a.N
		// Stored before it is confirmed: whatever becomes of the confirm's
		// answer, the intent can be looked up.
		bctx, bcancel := afterProvider(ctx)
		ok, err := s.store.UpdateAttempt(bctx, a, from)
		bcancel()
		if err != nil || !ok {
			if err == nil {
				err = errors.New("the attempt was taken over")
			}
			s.release(ctx, a, AttemptFailed, "store the intent: "+err.Error())
			return Payment{}, fmt.Errorf("store intent %s of attempt %d of order %s: %w", in.ID, a.N, a.OrderID, err)
		}
	case a.IntentAttempt != a.N:
		// The order's intent, made by an earlier attempt: it takes this
		// attempt's amount (a coupon may have come or gone).
		err := s.charger.SetAmount(cctx, a.IntentID, a.Amount, amountKey(a.OrderID, a.N))
		if errors.Is(err, ErrIntentNotOpen) {
			return s.lookUp(ctx, a, redemption, err)
		}
		if err != nil {
			return Payment{}, s.notCharged(ctx, a, err)
		}
	}

	in, err := s.charger.Confirm(cctx, ConfirmRequest{IntentID: a.IntentID, PaymentMethod: a.PaymentMethod, IdempotencyKey: attemptKey(a.OrderID, a.N)})
	var declined *DeclinedError
	var invalid *InvalidPaymentMethodError
	var amountErr *AmountError
	switch {
	case errors.As(err, &declined):
		s.log.Info("card declined", "order_id", a.OrderID, "attempt", a.N, "code", declined.Code)
		s.release(ctx, a, AttemptDeclined, err.Error())
		return Payment{}, err
	case errors.As(err, &invalid), errors.As(err, &amountErr):
		s.release(ctx, a, AttemptFailed, err.Error())
		return Payment{}, err
	case err != nil:
		// Charged or not: ask the provider what became of the intent.
		return s.lookUp(ctx, a, redemption, err)
	}
	return s.resolve(ctx, a, in, redemption)
}

// lookUp asks the provider what became of attempt a's intent after a call
// that got no usable answer (cause), and settles it. If the provider cannot
// say either, the attempt is left unknown: it is looked up again before
// anything else is charged for the order, and by the sweeper.
func (s *Service) lookUp(ctx context.Context, a Attempt, redemption string, cause error) (Payment, error) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lookupTimeout())
	in, err := s.charger.Intent(lctx, a.IntentID)
	cancel()
	if err != nil {
		s.log.Warn("charge outcome unknown; it will be looked up again", "order_id", a.OrderID, "attempt", a.N, "intent", a.IntentID, "err", cause, "lookup_err", err)
		s.setState(ctx, a, AttemptUnknown, cause.Error())
		return Payment{}, providerError(cause)
	}
	return s.resolve(ctx, a, in, redemption)
}

// resolve settles attempt a by what its intent became: succeeded is the
// payment; processing leaves it unknown; open or canceled took nothing.
func (s *Service) resolve(ctx context.Context, a Attempt, in Intent, redemption string) (Payment, error) {
	switch in.Status {
	case IntentSucceeded:
		return s.settle(ctx, a, s.paymentOf(a, in, redemption))
	case IntentProcessing:
		if a.State != AttemptUnknown {
			s.log.Info("charge processing; recorded when the provider decides", "order_id", a.OrderID, "attempt", a.N, "intent", in.ID)
		}
		s.setState(ctx, a, AttemptUnknown, "processing")
		return Payment{}, ErrPaymentPending
	case IntentCanceled:
		s.release(ctx, a, AttemptFailed, "payment intent canceled")
		return Payment{}, ErrOrderCancelled
	}
	if in.Declined != nil {
		s.release(ctx, a, AttemptDeclined, in.Declined.Error())
		return Payment{}, in.Declined
	}
	s.release(ctx, a, AttemptFailed, "not charged")
	return Payment{}, &ProviderError{Err: fmt.Errorf("intent %s was not charged", in.ID)}
}

// notCharged ends attempt a after a provider call that charged nothing
// (making or repricing the intent) failed with err.
func (s *Service) notCharged(ctx context.Context, a Attempt, err error) error {
	s.release(ctx, a, AttemptFailed, err.Error())
	var amountErr *AmountError
	if errors.As(err, &amountErr) {
		return err
	}
	return providerError(err)
}

// settle records payment p of attempt a (money taken, or nothing to take)
// and looks at the order again: cancelled meanwhile means the refund is
// owed. The attempt is final (succeeded) only once that is decided; until
// then it stays open and is finished by the next try of the order or by
// the sweeper, so a crash or a failed read here forgets nothing. It is
// idempotent: any actor may settle an attempt again.
func (s *Service) settle(ctx context.Context, a Attempt, p Payment) (Payment, error) {
	ctx, cancel := afterProvider(ctx)
	defer cancel()
	log := s.log.With("order_id", p.OrderID, "payment_id", p.ID, "provider_id", p.ProviderID)
	if err := s.store.InsertPayment(ctx, p); err == nil {
		if p.Coupon != "" {
			s.metrics.CouponRedeemed()
		}
	} else {
		if !errors.Is(err, ErrExists) {
			log.Error("charged, payment not recorded yet; the sweeper records it", "err", err)
			s.setState(ctx, a, AttemptUnknown, "record payment: "+err.Error())
			return Payment{}, fmt.Errorf("%w: record payment %s: %w", ErrPaymentPending, p.ID, err)
		}
		if _, err := s.store.Payment(ctx, p.ID); err != nil {
			return s.otherPayment(ctx, a, p, err)
		}
	}

	// The order may have been cancelled (its deadline passed) while it was
	// being charged. The listener of order:cancelled writes the replica and
	// then looks for payments; this wrote the payment and now reads the
	// replica: at least one of the two sees the other and owes the refund.
	o, err := s.store.Order(ctx, a.OrderID)
	if err != nil {
		log.Warn("re-check the order after the payment; the sweeper does it again", "err", err)
		s.setState(ctx, a, AttemptUnknown, "re-check the order: "+err.Error())
		return p, nil
	}
	if o.Status != StatusCancelled {
		s.setState(ctx, a, AttemptSucceeded, "")
		return p, nil
	}
	r, err := s.oweRefund(ctx, p, "the order was cancelled")
	if err != nil {
		log.Error("payment for a cancelled order; the refund could not be stored yet, the sweeper does it", "err", err)
		s.setState(ctx, a, AttemptUnknown, "owe the refund: "+err.Error())
		return Payment{}, ErrOrderCancelled
	}
	final := AttemptSucceeded
	if r.State == RefundDone {
		final = AttemptRefunded
	}
	s.setState(ctx, a, final, "order cancelled")
	s.refundNow(ctx, r)
	return Payment{}, ErrOrderCancelled
}

// otherPayment handles a payment refused because the order has another one
// (lookupErr: reading p itself failed). The same charge recorded by another
// attempt is that payment; a second charge is given back.
func (s *Service) otherPayment(ctx context.Context, a Attempt, p Payment, lookupErr error) (Payment, error) {
	if !errors.Is(lookupErr, errs.ErrNotFound) {
		s.setState(ctx, a, AttemptUnknown, "read payment: "+lookupErr.Error())
		return Payment{}, fmt.Errorf("%w: read payment %s: %w", ErrPaymentPending, p.ID, lookupErr)
	}
	other, err := s.orderPayment(ctx, a.OrderID)
	if err != nil {
		s.setState(ctx, a, AttemptUnknown, "find the order's payment: "+err.Error())
		return Payment{}, fmt.Errorf("%w: find the payment of order %s: %w", ErrPaymentPending, a.OrderID, err)
	}
	s.setState(ctx, a, AttemptSucceeded, "recorded as payment "+other.ID)
	if other.ProviderID == p.ProviderID {
		return other, nil
	}
	s.log.Error("a second charge for a paid order; it is refunded", "order_id", a.OrderID, "payment_id", p.ID, "provider_id", p.ProviderID, "paid_by", other.ID)
	r, err := s.oweRefund(ctx, p, "a second charge for a paid order")
	if err != nil {
		s.setState(ctx, a, AttemptUnknown, "owe the refund: "+err.Error())
		return Payment{}, ErrAlreadyPaid
	}
	s.refundNow(ctx, r)
	return Payment{}, ErrAlreadyPaid
}

// release ends attempt a as state (declined or failed: it took no money)
// and frees its coupon slot.
func (s *Service) release(ctx context.Context, a Attempt, state AttemptState, message string) {
	ctx, cancel := afterProvider(ctx)
	defer cancel()
	if a.Coupon != "" {
		if err := s.freeRedemption(ctx, a.Coupon, a.OrderID); err != nil {
			s.log.Error("free coupon redemption", "order_id", a.OrderID, "coupon", a.Coupon, "err", err)
		}
	}
	s.setState(ctx, a, state, message)
}

// setState moves attempt a from the state it was read in to state; a move
// refused because another actor moved it first is not an error.
func (s *Service) setState(ctx context.Context, a Attempt, state AttemptState, message string) {
	if a.State == state {
		return
	}
	ctx, cancel := afterProvider(ctx)
	defer cancel()
	from := a.State
	a.State, a.Message = state, message
	ok, err := s.store.UpdateAttempt(ctx, a, from)
	if err != nil {
		s.log.ErrorContext(ctx, "record attempt state", "order_id", a.OrderID, "attempt", a.N, "state", state, "err", err)
		return
	}
	if ok {
		s.metrics.Outcome(state)
	}
}

// paymentOf is the payment attempt a makes with intent in (none: waived by
// a coupon).
func (s *Service) paymentOf(a Attempt, in Intent, redemption string) Payment {
	p := Payment{
		ID: a.PaymentID, OrderID: a.OrderID, UserID: a.UserID, Amount: a.Amount, Currency: a.Currency,
		Provider: "coupon", ProviderID: "coupon", Coupon: a.Coupon, Redemption: redemption, Attempt: a.N,
		CreatedAt: s.now(),
	}
	if in.ID != "" {
		p.Provider, p.ProviderID, p.Amount = in.Provider, in.ID, in.Amount
	}
	return p
}

// providerError wraps err as a *ProviderError unless it is one.
func providerError(err error) error {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return err
	}
	return &ProviderError{Err: err}
}

// The idempotency keys of an order's provider calls: attempt n makes the
// order's intent (when no earlier attempt did), reprices it (when one did),
// and confirms it. A call made again for the same attempt (by the provider
// client, a retry of the same request, the sweeper) is answered from the
// provider's idempotency cache; a new attempt after a decline is not.
func intentKey(orderID string, n int) string  { return fmt.Sprintf("intent-%s-%d", orderID, n) }
func amountKey(orderID string, n int) string  { return fmt.Sprintf("amount-%s-%d", orderID, n) }
func attemptKey(orderID string, n int) string { return fmt.Sprintf("payment-%s-%d", orderID, n) }
