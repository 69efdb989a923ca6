package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Checkout is the provider's hosted payment page: the buyer types the card
// there, never here, and the provider tells the outcome by a signed event
// (HandleSessionEvent). One session per attempt, made with the attempt's
// idempotency key, so that a request made again (a second click, a retry
// after a crash) gets the same session.
//
// Errors of both calls: *ProviderError (an outage). NewSession also returns
// *AmountError (below the provider's minimum charge).
type Checkout interface {
	NewSession(ctx context.Context, r SessionRequest) (SessionRef, error)
	// ExpireSession closes an open session so that it can no longer be
	// paid, and tells what it is now: expired (also when it already was,
	// or never existed), or complete (paid), with the PaymentIntent that
	// took the money when the provider tells it.
	ExpireSession(ctx context.Context, id string) (status SessionStatus, intentID string, err error)
	// LookupSession tells what session id is now, as its events would: its
	// status and, once paid, what it took. Stripe calls one it does not
	// know expired; the offline mode, which knows only the sessions its
	// stand-in page paid, calls every other one open.
	LookupSession(ctx context.Context, id string) (SessionState, error)
}

// SessionState is a checkout session as the provider tells it when asked.
type SessionState struct {
	Status SessionStatus
	// Paid: the money was taken (a card session is paid when complete).
	Paid bool
	// IntentID, Amount (in the currency's smallest unit), Currency and
	// Provider ("stripe" or "offline") tell the payment of a paid session.
	IntentID string
	Amount   int64
	Currency string
	Provider string
}

// SessionIDPlaceholder in a session's success URL is replaced by the
// session's id when the provider sends the buyer back (Stripe's template
// variable), so that the page the buyer lands on can confirm the session
// (ConfirmCheckout).
const SessionIDPlaceholder = "{CHECKOUT_SESSION_ID}"

// SessionRequest asks the provider for the checkout session of attempt
// Attempt of an order: one line item (Title at Amount), the buyer sent back
// to SuccessURL or CancelURL, and OrderID, UserID, Attempt and
// CorrelationID in its metadata, so that its events find the attempt (and
// carry the purchase's correlation id). It closes by itself at ExpiresAt.
type SessionRequest struct {
	OrderID        string
	UserID         string
	Attempt        int
	Title          string
	Amount         int64
	Currency       string
	SuccessURL     string
	CancelURL      string
	CorrelationID  string
	ExpiresAt      time.Time
	IdempotencyKey string
}

// SessionRef is a session the provider made: its id and the page the buyer
// pays on.
type SessionRef struct {
	ID  string
	URL string
}

// SessionStatus is where a checkout session is.
type SessionStatus string

// Session statuses, as the provider names them.
const (
	SessionOpen     SessionStatus = "open"
	SessionComplete SessionStatus = "complete"
	SessionExpired  SessionStatus = "expired"
)

// Session is the checkout session of a checkout attempt. What it is made
// with is stored with the attempt before it is made, so that whoever makes
// it again sends the provider the same request under the same key.
type Session struct {
	ID  string // the provider's id, once made
	URL string // where the buyer pays, once made
	// Title, SuccessURL, CancelURL, CorrelationID and ExpiresAt are what
	// it is made with (the amount and coupon are the attempt's).
	Title         string
	SuccessURL    string
	CancelURL     string
	CorrelationID string
	ExpiresAt     time.Time
	// IntentID is the PaymentIntent that took the money, stored as soon as
	// the provider's event tells it (before the payment is recorded).
	IntentID string
}

// CheckoutInput is a buyer's request to pay an order on the provider's page.
type CheckoutInput struct {
	OrderID    string
	Coupon     string // optional code
	SuccessURL string // absolute http(s) URLs (the HTTP layer checks them)
	CancelURL  string
	// PaymentID, when set, is the id the payment gets (minted from the
	// request's Idempotency-Key, as for Pay).
	PaymentID string
	// CorrelationID is the purchase's (the request's): the session's
	// events carry it back.
	CorrelationID string
}

// CheckoutResult is where the buyer goes next: the session's page, or,
// Completed, back to the order (a coupon paid all of it).
type CheckoutResult struct {
	Completed bool
	SessionID string
	URL       string
}

// Refusals of Checkout besides Pay's.
var (
	// ErrOrderNotFound answers an order that is not the caller's as one
	// that does not exist.
	ErrOrderNotFound = &errs.HTTPError{Status: http.StatusNotFound, Message: "Order not found"}
	// errSessionPaid: a session that was to be ended is paid already; its
	// event records the payment.
	errSessionPaid = errors.New("checkout session already paid")
)

// sessionMinLife and sessionMaxLife bound a session's life as the
// provider does (Stripe: from 30 minutes to 24 hours after it is made),
// with a margin for clocks that differ.
const (
	sessionMinLife = 31 * time.Minute
	sessionMaxLife = 23 * time.Hour
	// sessionReuseMargin: a session that closes sooner than this is not
	// handed out again; a new one is made.
	sessionReuseMargin = 2 * time.Minute
)

// Checkout starts (or resumes) the payment of an order of userID on the
// provider's checkout page. The order must be the caller's and payable. A
// coupon that makes it free pays it at once (as Pay does) and answers
// Completed. Otherwise the order's open session is handed out again when it
// was made for the same amount, coupon and return URLs (a second click);
// one made otherwise is expired and replaced; and a new one is made for a
// new attempt, whose coupon slot is taken now (freed if the session ends
// unpaid).
//
// Errors: ErrOrderNotFound, ErrOrderCancelled, ErrOrderExpired,
// ErrAlreadyPaid, ErrInProgress (a session or a charge of the order is
// being paid), ErrTooManyTries, the coupon errors, *AmountError,
// *ProviderError.
func (s *Service) Checkout(ctx context.Context, userID string, in CheckoutInput) (CheckoutResult, error) {
	code := strings.ToUpper(strings.TrimSpace(in.Coupon))
	o, err := s.store.Order(ctx, in.OrderID)
	if errors.Is(err, errs.ErrNotFound) {
		return CheckoutResult{}, ErrOrderNotFound
	}
	if err != nil {
		return CheckoutResult{}, err
	}
	if o.UserID != userID {
		return CheckoutResult{}, ErrOrderNotFound
	}
	if err := s.payable(o); err != nil {
		return CheckoutResult{}, err
	}
	amount := o.Price
	var coupon *Coupon
	if code != "" {
		c, err := s.usableCoupon(ctx, code)
		if err != nil {
			return CheckoutResult{}, err
		}
		coupon = &c
		amount = c.Apply(o.Price)
	}
	if amount == 0 {
		if _, err := s.Pay(ctx, userID, PayInput{OrderID: o.ID, Coupon: code, PaymentID: in.PaymentID}); err != nil {
			return CheckoutResult{}, err
		}
		return CheckoutResult{Completed: true}, nil
	}

	paymentID := in.PaymentID
	if paymentID == "" {
		paymentID = newID()
	}
	title := o.Title
	if title == "" {
		title = "Stuffmart order " + o.ID
	}
	want := Attempt{
		OrderID: o.ID, State: AttemptCheckout, PaymentID: paymentID, UserID: userID,
		Amount: amount, Currency: s.currency, Coupon: code, At: s.now(),
		Session: &Session{Title: title, SuccessURL: in.SuccessURL, CancelURL: in.CancelURL,
			CorrelationID: in.CorrelationID, ExpiresAt: s.sessionExpiry(o)},
	}
	// Each round ends one session (replaced) or returns: MaxAttempts bounds
	// them as it bounds the attempts.
	for range MaxAttempts {
		a, paid, err := s.claimAttempt(ctx, want)
		if err != nil {
			return CheckoutResult{}, err
		}
		if paid != nil {
			return CheckoutResult{Completed: true}, nil
		}
		if a.PaymentID != want.PaymentID && !s.reusable(a, want) {
			err := s.endCheckout(ctx, a, "replaced by a new checkout")
			if errors.Is(err, errSessionPaid) {
				return CheckoutResult{}, ErrInProgress
			}
			if err != nil {
				return CheckoutResult{}, err
			}
			continue
		}
		ready, err := s.openSession(ctx, a, coupon)
		if err != nil {
			return CheckoutResult{}, err
		}
		if ready.Session.ID == "" {
			continue // ended by another actor meanwhile (the order cancelled, say)
		}
		s.log.InfoContext(ctx, "checkout session open", "order_id", a.OrderID, "attempt", a.N, "session", ready.Session.ID,
			"reused", a.PaymentID != want.PaymentID)
		return CheckoutResult{SessionID: ready.Session.ID, URL: ready.Session.URL}, nil
	}
	return CheckoutResult{}, ErrTooManyTries
}

// reusable reports whether open checkout attempt a may be handed out for
// the request want: the same amount, coupon and return URLs, and not about
// to close.
func (s *Service) reusable(a, want Attempt) bool {
	if a.Session == nil {
		return false
	}
	return a.Amount == want.Amount && a.Currency == want.Currency && a.Coupon == want.Coupon &&
		a.Session.SuccessURL == want.Session.SuccessURL && a.Session.CancelURL == want.Session.CancelURL &&
		s.now().Add(sessionReuseMargin).Before(a.Session.ExpiresAt)
}

// sessionExpiry is when a session made now for order o closes by itself:
// after the order's deadline (its cancellation expires it before), within
// the provider's bounds.
func (s *Service) sessionExpiry(o Order) time.Time {
	now := s.now()
	at := o.ExpiresAt.Add(time.Minute)
	if lo := now.Add(sessionMinLife); at.Before(lo) {
		at = lo
	}
	if hi := now.Add(sessionMaxLife); at.After(hi) {
		at = hi
	}
	return at.Truncate(time.Second)
}

// sessionRequest is what the session of checkout attempt a is made with.
func sessionRequest(a Attempt) SessionRequest {
	return SessionRequest{
		OrderID: a.OrderID, UserID: a.UserID, Attempt: a.N, Title: a.Session.Title, Amount: a.Amount,
		Currency: a.Currency, SuccessURL: a.Session.SuccessURL, CancelURL: a.Session.CancelURL,
		CorrelationID: a.Session.CorrelationID, ExpiresAt: a.Session.ExpiresAt, IdempotencyKey: sessionKey(a.OrderID, a.N),
	}
}

// sessionKey is the idempotency key of the session of attempt n of an
// order.
func sessionKey(orderID string, n int) string { return fmt.Sprintf("checkout-%s-%d", orderID, n) }

// openSession makes the session of checkout attempt a unless it has one:
// takes the coupon slot, asks the provider (again, with the same key, if an
// earlier request did not store the answer) and stores the session. It
// returns the attempt with its session; one without (its session ID empty)
// was ended by another actor meanwhile. A refusal the provider keeps for
// the key (an amount under its minimum, an answered failure) ends the
// attempt, so that the next try makes another.
func (s *Service) openSession(ctx context.Context, a Attempt, coupon *Coupon) (Attempt, error) {
	if a.Session.ID != "" {
		return a, nil
	}
	if _, err := s.redeemFor(ctx, a, coupon); err != nil {
		s.releaseCheckout(ctx, a, err.Error())
		return Attempt{}, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.chargeTimeout)
	ref, err := s.checkout.NewSession(cctx, sessionRequest(a))
	cancel()
	if err != nil {
		var amountErr *AmountError
		var pe *ProviderError
		if errors.As(err, &amountErr) || errors.As(err, &pe) && pe.Answered {
			s.releaseCheckout(ctx, a, err.Error())
		}
		if amountErr != nil {
			return Attempt{}, err
		}
		return Attempt{}, providerError(err)
	}
	a.Session.ID, a.Session.URL = ref.ID, ref.URL
	bctx, bcancel := afterProvider(ctx)
	defer bcancel()
	ok, err := s.store.UpdateAttempt(bctx, a, AttemptCheckout)
	if err != nil {
		return Attempt{}, fmt.Errorf("store session %s of attempt %d of order %s: %w", ref.ID, a.N, a.OrderID, err)
	}
	if !ok {
		a.Session.ID, a.Session.URL = "", ""
	}
	return a, nil
}

// endCheckout ends open checkout attempt a so that its session can no
// longer be paid: the provider expires the session (one whose answer was
// never stored is made again with its key to learn its id) and the attempt
// becomes expired (why), its coupon slot freed. It returns errSessionPaid
// when the session is paid already (its event records the payment), a
// *ProviderError when the provider could not be asked.
func (s *Service) endCheckout(ctx context.Context, a Attempt, why string) error {
	if a.Session == nil {
		s.releaseCheckout(ctx, a, why) // nothing was ever asked of the provider
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.chargeTimeout)
	defer cancel()
	id := a.Session.ID
	if id == "" {
		ref, err := s.checkout.NewSession(cctx, sessionRequest(a))
		var amountErr *AmountError
		var pe *ProviderError
		switch {
		case errors.As(err, &amountErr), errors.As(err, &pe) && pe.Answered:
			// The provider keeps that refusal for the key: no session was made.
			s.releaseCheckout(ctx, a, why)
			return nil
		case err != nil:
			return providerError(err)
		}
		id = ref.ID
	}
	status, intent, err := s.checkout.ExpireSession(cctx, id)
	if err != nil {
		return providerError(err)
	}
	if status == SessionComplete {
		s.log.InfoContext(ctx, "checkout session paid before it could be ended; its event records the payment",
			"order_id", a.OrderID, "attempt", a.N, "session", id, "intent", intent, "why", why)
		s.sessionPaidUntold(ctx, a, id, intent)
		return errSessionPaid
	}
	s.releaseCheckout(ctx, a, why)
	return nil
}

// sessionPaidUntold stores the PaymentIntent of checkout attempt a's
// session, found paid while it was to be ended, and leaves the attempt
// unknown: the sweep then records the payment (and refunds it if the order
// was cancelled) by looking the PaymentIntent up, as reconcileSession does
// for an event that could not be recorded. So a payment is never left to
// its event alone, which may not come for days (the webhook failing).
//
// An attempt still open whose PaymentIntent is stored already (its record,
// by the event or by the buyer's return, stopped before the payment) is
// made unknown too: nothing else would finish it, since the sweep looks
// open checkout attempts up only in the last minutes before their order's
// deadline (confirmDueSession). Should that record be running now, the two
// meet in the payment's own claim: it is recorded once.
func (s *Service) sessionPaidUntold(ctx context.Context, a Attempt, sessionID, intent string) {
	if intent == "" || a.State != AttemptCheckout {
		return // moved on already, or the provider did not tell
	}
	ctx, cancel := afterProvider(ctx)
	defer cancel()
	from := a.State
	session := *a.Session
	if session.IntentID == "" {
		session.IntentID = intent
	}
	if session.ID == "" {
		session.ID = sessionID
	}
	a.Session, a.State, a.Message = &session, AttemptUnknown, "session paid before it could be ended"
	if _, err := s.store.UpdateAttempt(ctx, a, from); err != nil {
		s.log.ErrorContext(ctx, "record a paid session's PaymentIntent", "order_id", a.OrderID, "attempt", a.N, "err", err)
	}
}

// releaseCheckout ends open checkout attempt a as expired (why): it took no
// money. Only the actor that moves it frees its coupon slot, so a slot the
// order took again for a later attempt is never freed by a late actor.
func (s *Service) releaseCheckout(ctx context.Context, a Attempt, why string) {
	ctx, cancel := afterProvider(ctx)
	defer cancel()
	from := a.State
	a.State, a.Message = AttemptExpired, why
	ok, err := s.store.UpdateAttempt(ctx, a, from)
	if err != nil {
		s.log.ErrorContext(ctx, "record attempt state", "order_id", a.OrderID, "attempt", a.N, "state", a.State, "err", err)
		return
	}
	if !ok {
		return
	}
	s.metrics.Outcome(AttemptExpired)
	s.log.InfoContext(ctx, "checkout session ended unpaid", "order_id", a.OrderID, "attempt", a.N, "why", why)
	if a.Coupon != "" {
		if err := s.freeRedemption(ctx, a.Coupon, a.OrderID); err != nil {
			s.log.ErrorContext(ctx, "free coupon redemption", "order_id", a.OrderID, "coupon", a.Coupon, "err", err)
		}
	}
}

// reconcileSession finishes checkout attempt a whose payment was told by
// the provider's event but could not be recorded (see settle): the
// session's PaymentIntent is looked up and settled.
func (s *Service) reconcileSession(ctx context.Context, a Attempt, redemption string) error {
	if a.Session.IntentID == "" {
		s.log.WarnContext(ctx, "an open checkout attempt without its payment; its session's event tells", "order_id", a.OrderID, "attempt", a.N)
		return nil
	}
	in, err := s.charger.Intent(ctx, a.Session.IntentID)
	if err != nil {
		return fmt.Errorf("look up intent %s of checkout session %s: %w", a.Session.IntentID, a.Session.ID, err)
	}
	return outcome(s.resolve(ctx, a, in, redemption))
}

// SessionEventKind is what a provider's event says of a checkout session.
type SessionEventKind string

// Session event kinds ("" is an event of no interest).
const (
	// SessionCompleted: the buyer finished on the page; Paid tells whether
	// the money was taken (a card: yes) or will be told later.
	SessionCompleted SessionEventKind = "completed"
	// SessionPaymentSucceeded: a payment told later was taken.
	SessionPaymentSucceeded SessionEventKind = "payment_succeeded"
	// SessionEnded: the session expired unpaid.
	SessionEnded SessionEventKind = "expired"
	// SessionPaymentFailed: a payment told later failed.
	SessionPaymentFailed SessionEventKind = "payment_failed"
)

// SessionEvent is a verified provider event about a checkout session, with
// what the session says.
type SessionEvent struct {
	ID        string // the event's id: each is handled once
	Kind      SessionEventKind
	Provider  string // "stripe" or "offline": the payment's provider
	SessionID string
	// OrderID, UserID, Attempt and CorrelationID are the session's metadata.
	OrderID       string
	UserID        string
	Attempt       int
	CorrelationID string
	Paid          bool
	Amount        int64 // taken (or to take), in the currency's smallest unit
	Currency      string
	IntentID      string // the PaymentIntent that took the money
}

// ProviderEvent is the claim of one provider event: inserted before it is
// handled, Done once it was.
type ProviderEvent struct {
	ID        string
	Kind      SessionEventKind
	SessionID string
	OrderID   string
	Done      bool
	At        time.Time
	DoneAt    time.Time
}

// HandleSessionEvent applies a verified provider event: a session paid
// records the payment through the same path as a charge (settle: the
// payment with its payment:created, the order checked again, the refund
// owed if it was cancelled meanwhile), after the amount and currency are
// checked against the attempt's; a session that ended unpaid releases the
// order. Each event is claimed by its id: one handled already changes
// nothing; one whose handling did not finish (an error, a crash) is handled
// again, which every step allows. Events of sessions that are not this
// service's (no such attempt, another session) are logged and ignored.
//
// An error means the event could not be applied yet: the provider delivers
// it again.
func (s *Service) HandleSessionEvent(ctx context.Context, ev SessionEvent) error {
	if ev.Kind == "" {
		return nil
	}
	err := s.store.InsertEvent(ctx, ProviderEvent{ID: ev.ID, Kind: ev.Kind, SessionID: ev.SessionID, OrderID: ev.OrderID, At: s.now()})
	if errors.Is(err, ErrExists) {
		prev, err := s.store.Event(ctx, ev.ID)
		if err != nil {
			return fmt.Errorf("read event %s: %w", ev.ID, err)
		}
		if prev.Done {
			s.log.InfoContext(ctx, "provider event delivered again; handled already", "event", ev.ID, "kind", ev.Kind, "session", ev.SessionID)
			return nil
		}
	} else if err != nil {
		return fmt.Errorf("claim event %s: %w", ev.ID, err)
	}
	if err := s.applySessionEvent(ctx, ev); err != nil {
		return err
	}
	if err := s.store.FinishEvent(ctx, ev.ID, s.now()); err != nil {
		return fmt.Errorf("record event %s handled: %w", ev.ID, err)
	}
	return nil
}

func (s *Service) applySessionEvent(ctx context.Context, ev SessionEvent) error {
	log := s.log.With("event", ev.ID, "kind", ev.Kind, "session", ev.SessionID, "order_id", ev.OrderID, "attempt", ev.Attempt)
	if ev.OrderID == "" || ev.Attempt < 1 {
		log.InfoContext(ctx, "checkout session event without our metadata; ignored")
		return nil
	}
	a, err := s.store.Attempt(ctx, ev.OrderID, ev.Attempt)
	if errors.Is(err, errs.ErrNotFound) {
		log.WarnContext(ctx, "checkout session event of no attempt of ours; ignored")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read attempt %d of order %s: %w", ev.Attempt, ev.OrderID, err)
	}
	if a.Session == nil || a.Session.ID != "" && a.Session.ID != ev.SessionID {
		log.WarnContext(ctx, "checkout session event of another session than the attempt's; ignored")
		return nil
	}
	switch ev.Kind {
	case SessionCompleted, SessionPaymentSucceeded:
		if !ev.Paid {
			log.InfoContext(ctx, "checkout session completed, its payment is told later")
			return nil
		}
		return s.sessionPaid(ctx, a, ev)
	case SessionEnded, SessionPaymentFailed:
		if a.State == AttemptCheckout {
			why := "checkout session expired"
			if ev.Kind == SessionPaymentFailed {
				why = "checkout payment failed"
			}
			s.releaseCheckout(ctx, a, why)
		}
	}
	return nil
}

// sessionPaid records the payment of checkout attempt a that ev tells.
// Money taken that is not what the attempt asked (another amount or
// currency) does not pay the order: it is refunded, and the order stays
// payable.
func (s *Service) sessionPaid(ctx context.Context, a Attempt, ev SessionEvent) error {
	log := s.log.With("order_id", a.OrderID, "attempt", a.N, "session", ev.SessionID, "intent", ev.IntentID)
	if ev.IntentID == "" {
		log.ErrorContext(ctx, "checkout session paid without a PaymentIntent; ignored")
		return nil
	}
	if ev.Amount != a.Amount || ev.Currency != a.Currency {
		log.ErrorContext(ctx, "checkout session paid another amount than the order's; not completing the order, refunding",
			"paid", ev.Amount, "paid_currency", ev.Currency, "want", a.Amount, "currency", a.Currency)
		if a.State == AttemptCheckout {
			s.releaseCheckout(ctx, a, fmt.Sprintf("paid %d %s, not %d %s: refunded", ev.Amount, ev.Currency, a.Amount, a.Currency))
		}
		r, err := s.oweRefund(ctx, Payment{ID: "session-" + ev.SessionID, OrderID: a.OrderID, Attempt: a.N,
			ProviderID: ev.IntentID, Amount: ev.Amount}, "paid another amount than the order's")
		if err != nil {
			return err
		}
		s.refundNow(ctx, r)
		return nil
	}

	// The PaymentIntent first: an attempt left open by a failure below is
	// looked up by it (reconcileSession).
	for try := 0; a.Session.IntentID != ev.IntentID || a.Session.ID == ""; try++ {
		if try == 3 {
			return fmt.Errorf("store the payment of session %s: attempt %d of order %s keeps changing", ev.SessionID, a.N, a.OrderID)
		}
		from := a.State
		a.Session.IntentID = ev.IntentID
		if a.Session.ID == "" {
			a.Session.ID = ev.SessionID
		}
		ok, err := s.store.UpdateAttempt(ctx, a, from)
		if err != nil {
			return fmt.Errorf("store the payment of session %s: %w", ev.SessionID, err)
		}
		if ok {
			break
		}
		cur, err := s.store.Attempt(ctx, a.OrderID, a.N)
		if err != nil {
			return fmt.Errorf("read attempt %d of order %s: %w", a.N, a.OrderID, err)
		}
		if cur.Session == nil {
			return fmt.Errorf("attempt %d of order %s lost its session", a.N, a.OrderID)
		}
		a = cur
	}

	// Its coupon slot was taken when the session was made; one freed since
	// (the session was ended as it was being paid) is taken again.
	redemption, err := s.redeemFor(ctx, a, nil)
	if errors.Is(err, ErrCouponUsedUp) {
		log.WarnContext(ctx, "checkout session paid with a coupon used up since; the payment stands", "coupon", a.Coupon)
		redemption = ""
	} else if err != nil {
		return err
	}
	p, err := s.settle(ctx, a, s.paymentOf(a, Intent{ID: ev.IntentID, Provider: ev.Provider, Amount: ev.Amount}, redemption))
	switch {
	case err == nil:
		log.InfoContext(ctx, "checkout session paid", "payment_id", p.ID, "amount", p.Amount)
		return nil
	case errors.Is(err, ErrOrderCancelled), errors.Is(err, ErrAlreadyPaid):
		return nil // refunded (settle logged it)
	}
	return err
}

// SessionView is a checkout session as its page shows it (the offline
// stand-in for the provider's page).
type SessionView struct {
	ID         string
	OrderID    string
	Attempt    int
	UserID     string
	Title      string
	Amount     int64
	Currency   string
	SuccessURL string
	CancelURL  string
	// CorrelationID is the purchase's, for the session's events.
	CorrelationID string
	// Status is open while it may be paid, complete once paid, expired
	// once it ended unpaid.
	Status SessionStatus
}

// SessionView returns session sessionID of attempt n of an order for its
// buyer userID, its success URL naming the session (SessionIDPlaceholder
// replaced, as the provider does). Errors: errs.ErrNotFound (no such session, or not the
// caller's).
func (s *Service) SessionView(ctx context.Context, userID, orderID string, n int, sessionID string) (SessionView, error) {
	a, err := s.store.Attempt(ctx, orderID, n)
	if err != nil {
		return SessionView{}, err
	}
	if a.Session == nil || a.Session.ID != sessionID || a.UserID != userID {
		return SessionView{}, errs.ErrNotFound
	}
	v := SessionView{
		ID: a.Session.ID, OrderID: a.OrderID, Attempt: a.N, UserID: a.UserID, Title: a.Session.Title,
		Amount: a.Amount, Currency: a.Currency, SuccessURL: strings.ReplaceAll(a.Session.SuccessURL, SessionIDPlaceholder, a.Session.ID), CancelURL: a.Session.CancelURL,
		CorrelationID: a.Session.CorrelationID, Status: SessionComplete,
	}
	switch {
	case a.State == AttemptCheckout && s.now().Before(a.Session.ExpiresAt):
		v.Status = SessionOpen
	case a.State == AttemptCheckout, a.State == AttemptExpired, a.State == AttemptFailed:
		v.Status = SessionExpired
	}
	return v, nil
}
