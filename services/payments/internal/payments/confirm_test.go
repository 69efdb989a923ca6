package payments_test

import (
	"context"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/services/payments/internal/store"
	"github.com/stuffmart/stuffmart/services/payments/internal/stripe"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// leavingCheckout is the offline checkout whose session look-up answers
// just as the caller goes away: it ends the caller's context (the buyer
// closed the page while payments asked the provider).
type leavingCheckout struct {
	*stripe.Offline
	leave context.CancelFunc
}

func (c *leavingCheckout) LookupSession(ctx context.Context, id string) (payments.SessionState, error) {
	st, err := c.Offline.LookupSession(ctx, id)
	c.leave()
	return st, err
}

// A paid session the provider has told about is recorded even if the
// buyer's request ends as the answer comes: nobody else may record it (its
// webhook is failing), and a half-done record (the PaymentIntent stored,
// the attempt still open) is one the cancellation would neither record nor
// refund.
func TestConfirmCheckoutOutlivesItsRequest(t *testing.T) {
	t.Parallel()
	offline := stripe.NewOffline()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	clock := testkit.NewClock(time.Now())
	reqCtx, leave := context.WithCancel(context.Background())
	defer leave()
	svc := payments.NewService(st, newCharger(), &leavingCheckout{Offline: offline, leave: leave},
		payments.Options{Log: testkit.Logger(t), Now: clock.Now})
	f := fixture{svc: svc, st: st, clock: clock}
	ctx := context.Background()
	buyer := testkit.RandomID(t)[:24]
	id := f.newOrder(t, buyer, 1500)

	// Paid on the page; its event is never delivered.
	session := f.paidUntold(t, offline, buyer, id)

	_, _ = svc.ConfirmCheckout(reqCtx, buyer, id, session) // its answer went to nobody
	a, err := st.Attempt(ctx, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Payment(ctx, a.PaymentID)
	if err != nil || p.Amount != 1500 || a.State != payments.AttemptSucceeded {
		t.Fatalf("after the buyer left: attempt %s (intent %q), payment %+v (%v); want it recorded", a.State, a.Session.IntentID, p, err)
	}
}

// A checkout attempt whose record stopped halfway (its PaymentIntent
// stored, the payment not recorded: a database error, and the webhook
// failing since) is finished when its order is cancelled: the session found
// paid makes it unknown, and the sweep records the payment and refunds it.
// Before, the stored intent was taken for a sign that its event was being
// handled, and the money was neither recorded nor refunded.
func TestCancelledOrderFinishesAHalfRecordedSession(t *testing.T) {
	t.Parallel()
	f, offline := offlineFixture(t)
	svc, st := f.svc, f.st
	ctx := context.Background()
	buyer := testkit.RandomID(t)[:24]
	id := f.newOrder(t, buyer, 1800)
	paid, err := offline.LookupSession(ctx, f.paidUntold(t, offline, buyer, id))
	if err != nil {
		t.Fatal(err)
	}
	// The record stopped right after storing the PaymentIntent.
	a, err := st.Attempt(ctx, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	half := *a.Session
	half.IntentID = paid.IntentID
	a.Session = &half
	if ok, err := st.UpdateAttempt(ctx, a, payments.AttemptCheckout); err != nil || !ok {
		t.Fatalf("store the intent: %v %v", ok, err)
	}

	if err := svc.OrderChanged(ctx, id, 2, payments.StatusCancelled); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Attempt(ctx, id, 1); a.State != payments.AttemptUnknown {
		t.Fatalf("after the cancellation the attempt is %s, want unknown (for the sweep)", a.State)
	}
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	a, err = st.Attempt(ctx, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Payment(ctx, a.PaymentID)
	if err != nil || p.Amount != 1800 || p.ProviderID != paid.IntentID {
		t.Fatalf("payment %+v (%v), want 1800 by %s", p, err, paid.IntentID)
	}
	f.wantRefundDone(t, p.ID)
	if _, ok := offline.Refunded(paid.IntentID); !ok {
		t.Fatal("the money was not given back")
	}
}

// paidUntold starts the card checkout of order id of buyer and pays its
// session on the offline stand-in page, whose event is never delivered; it
// returns the session's id.
func (f fixture) paidUntold(t *testing.T, offline *stripe.Offline, buyer, id string) string {
	t.Helper()
	ctx := context.Background()
	res, err := f.svc.Checkout(ctx, buyer, payments.CheckoutInput{OrderID: id,
		SuccessURL: "https://shop.test/orders/" + id + "?paid=1&session_id=" + payments.SessionIDPlaceholder,
		CancelURL:  "https://shop.test/orders/" + id})
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.svc.SessionView(ctx, buyer, id, 1, res.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	standIn := stripe.NewStandIn(offline, stripe.NewWebhooks("whsec_confirm_test", "offline"), f.clock.Now)
	if _, _, err := standIn.Pay(v, stripe.CardSucceeds); err != nil {
		t.Fatal(err)
	}
	return res.SessionID
}

// The sweep's look-up of a session near its order's deadline does not use
// up its buyer's: a buyer who pays just after the sweep asked (the session
// was open then) and comes back at once has the payment recorded by that
// return, not five seconds later, when the order may be past its deadline
// and the payment refunded.
func TestSweepLookupLeavesTheBuyersReturn(t *testing.T) {
	t.Parallel()
	f, offline := offlineFixture(t)
	svc, st, clock := f.svc, f.st, f.clock
	ctx := context.Background()
	buyer := testkit.RandomID(t)[:24]
	id := f.newOrder(t, buyer, 1700) // due in an hour
	res, err := svc.Checkout(ctx, buyer, payments.CheckoutInput{OrderID: id,
		SuccessURL: "https://shop.test/orders/" + id + "?paid=1&session_id=" + payments.SessionIDPlaceholder,
		CancelURL:  "https://shop.test/orders/" + id})
	if err != nil {
		t.Fatal(err)
	}

	// A minute before the deadline the sweep finds the session open...
	clock.Advance(59 * time.Minute)
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Attempt(ctx, id, 1); a.State != payments.AttemptCheckout {
		t.Fatalf("attempt %s after the sweep of an unpaid session, want checkout", a.State)
	}
	// ...the buyer pays right after, and is sent back at once.
	v, err := svc.SessionView(ctx, buyer, id, 1, res.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	standIn := stripe.NewStandIn(offline, stripe.NewWebhooks("whsec_confirm_test", "offline"), clock.Now)
	if _, _, err := standIn.Pay(v, stripe.CardSucceeds); err != nil {
		t.Fatal(err)
	}
	paid, err := svc.ConfirmCheckout(ctx, buyer, id, res.SessionID)
	if err != nil || !paid {
		t.Fatalf("the buyer's return right after the sweep's look-up: paid %v (%v), want recorded", paid, err)
	}
}

// offlineFixture is a service charging and checking out in the offline
// test mode, with that mode's provider.
func offlineFixture(t *testing.T) (fixture, *stripe.Offline) {
	t.Helper()
	offline := stripe.NewOffline()
	st := store.New(testkit.Mongo(t), mongox.NewWriter(), nil)
	clock := testkit.NewClock(time.Now())
	svc := payments.NewService(st, offline, offline, payments.Options{Log: testkit.Logger(t), Now: clock.Now})
	return fixture{svc: svc, st: st, clock: clock}, offline
}
