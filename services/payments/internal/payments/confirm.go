package payments

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// ErrSessionNotFound answers a session that is not one of the order's.
var ErrSessionNotFound = &errs.HTTPError{Status: http.StatusNotFound, Message: "Checkout session not found"}

// ConfirmCheckout is the buyer back from the provider's page, with the
// session id its success URL carries (SessionIDPlaceholder): if the
// session's attempt still waits for its webhook event, the provider is asked
// what the session is now, and a paid one is recorded exactly as its event
// would record it (sessionPaid: the amount and currency checked, the order
// completed). So a card payment completes its order even when the webhook is
// late or keeps failing (a rotated signing secret), instead of being found at
// the order's deadline and refunded. This is what Stripe advises: fulfil from
// the webhook and from the success page, whichever comes first; both are
// idempotent. It answers whether a payment of the order is recorded.
//
// One session is asked about at most once every confirmLookupEvery by this
// process (the order page reloads while it waits). Errors: ErrOrderNotFound (no such
// order, or not userID's), ErrSessionNotFound, *ProviderError (the provider
// could not be asked).
func (s *Service) ConfirmCheckout(ctx context.Context, userID, orderID, sessionID string) (bool, error) {
	o, err := s.store.Order(ctx, orderID)
	if errors.Is(err, errs.ErrNotFound) {
		return false, ErrOrderNotFound
	}
	if err != nil {
		return false, err
	}
	if o.UserID != userID {
		return false, ErrOrderNotFound
	}
	chain, err := s.attempts(ctx, orderID)
	if err != nil {
		return false, err
	}
	i := len(chain) - 1
	for i >= 0 && (chain[i].Session == nil || chain[i].Session.ID != sessionID) {
		i--
	}
	if sessionID == "" || i < 0 {
		return false, ErrSessionNotFound
	}
	a := chain[i]
	if a.State == AttemptCheckout && s.lookups.due(sessionID, s.now()) {
		if err := s.confirmSession(ctx, a, "its buyer came back"); err != nil {
			return false, err
		}
	}
	_, err = s.paymentIn(ctx, chain)
	if errors.Is(err, errs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// confirmSession asks the provider about the session of checkout attempt a
// and records its payment if it is paid; why says what asked (logged).
func (s *Service) confirmSession(ctx context.Context, a Attempt, why string) error {
	cctx, cancel := context.WithTimeout(ctx, s.lookupTimeout())
	st, err := s.checkout.LookupSession(cctx, a.Session.ID)
	cancel()
	if err != nil {
		return providerError(err)
	}
	if st.Status != SessionComplete || !st.Paid {
		return nil // not paid (yet): its event tells, or the buyer pays again
	}
	// The provider told that the money was taken: record it even if the
	// buyer goes away now (afterProvider). A record cut short after the
	// PaymentIntent is stored would leave the attempt open with it, which
	// a cancellation takes for its event's and neither records nor refunds.
	ctx, cancel = afterProvider(ctx)
	defer cancel()
	s.log.InfoContext(ctx, "checkout session found paid before its event", "order_id", a.OrderID, "attempt", a.N, "session", a.Session.ID, "why", why)
	// The payment's event carries the purchase's correlation id, as the
	// session's own event would.
	if a.Session.CorrelationID != "" {
		ctx = correlation.With(ctx, a.Session.CorrelationID)
	}
	return s.sessionPaid(ctx, a, SessionEvent{
		Kind: SessionCompleted, Provider: st.Provider, SessionID: a.Session.ID,
		OrderID: a.OrderID, UserID: a.UserID, Attempt: a.N, CorrelationID: a.Session.CorrelationID,
		Paid: true, Amount: st.Amount, Currency: st.Currency, IntentID: st.IntentID,
	})
}

// confirmLookupEvery is how often ConfirmCheckout may ask the provider about
// one session: the order page that waits for the payment reloads every 2 s.
const confirmLookupEvery = 5 * time.Second

// sessionLookups remembers when each session was last asked about (the
// zero value is ready). It forgets what is older than confirmLookupEvery
// whenever it has grown past maxSessionLookups entries.
type sessionLookups struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const maxSessionLookups = 10_000

// due reports whether session id may be asked about at now, and if so
// notes that it is.
func (l *sessionLookups) due(id string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.last[id]; ok && now.Sub(at) < confirmLookupEvery {
		return false
	}
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if len(l.last) >= maxSessionLookups {
		for k, at := range l.last {
			if now.Sub(at) >= confirmLookupEvery {
				delete(l.last, k)
			}
		}
	}
	l.last[id] = now
	return true
}

// sessionCheckBefore is how long before its order's deadline the sweep
// starts looking up an open checkout session (every DefaultSweepEvery, so
// about four times).
const sessionCheckBefore = 2 * time.Minute

// MaxSweepEvery is the longest sweep interval allowed: every open checkout
// session is looked up at least twice in the last sessionCheckBefore before
// its order's deadline.
const MaxSweepEvery = sessionCheckBefore / 2

// confirmDueSession looks up the session of checkout attempt a when its
// order's deadline is less than sessionCheckBefore away, and records it if
// paid (confirmSession). A session paid whose webhook keeps failing and
// whose buyer never came back to the order page is so recorded while the
// order can still complete, rather than found paid at the deadline and
// refunded. One lookup per session per sweep at most, a few in all, and
// spaced apart from one another only: the buyer's own return asks
// regardless (ConfirmCheckout), as the session may have been paid just
// after the sweep asked.
func (s *Service) confirmDueSession(ctx context.Context, a Attempt) (asked bool, err error) {
	if a.Session == nil || a.Session.ID == "" {
		return false, nil // not made yet: its maker is at work
	}
	o, err := s.store.Order(ctx, a.OrderID)
	if errors.Is(err, errs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	now := s.now()
	if o.Status != StatusCreated || now.Before(o.ExpiresAt.Add(-sessionCheckBefore)) || !now.Before(o.ExpiresAt) {
		return false, nil
	}
	if !s.sweepLookups.due(a.Session.ID, now) {
		return false, nil
	}
	return true, s.confirmSession(ctx, a, "its order's deadline is near")
}
