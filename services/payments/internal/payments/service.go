package payments

import (
	"context"
	"log/slog"
	"time"
)

// bookkeepingTimeout bounds the writes that follow a provider call (record
// or release a charge, record a refund). They run on a context of their
// own: a provider call that used up its caller's time must not leave its
// outcome unrecorded (what it cannot record is finished by the sweeper).
const bookkeepingTimeout = 15 * time.Second

// afterProvider returns the context for the writes that follow a provider
// call made with ctx.
func afterProvider(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
}

// Metrics counts what the Service does, for dashboards and alerts (the app
// keeps them in Prometheus: docs/observability.md).
type Metrics interface {
	// Outcome counts an attempt that reached state.
	Outcome(state AttemptState)
	// CouponRedeemed counts a payment recorded with a coupon.
	CouponRedeemed()
	// RefundsPending is how many refunds are owed and not made after a
	// sweep; -1 when they could not be listed.
	RefundsPending(n int)
}

type noMetrics struct{}

func (noMetrics) Outcome(AttemptState) {}
func (noMetrics) CouponRedeemed()      {}
func (noMetrics) RefundsPending(int)   {}

// Options configures a Service.
type Options struct {
	Currency string // ISO code, lower case; "usd" when empty
	// ChargeTimeout bounds the provider's charge call;
	// DefaultChargeTimeout when zero. Tests shorten it.
	ChargeTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log *slog.Logger
	// Metrics counts outcomes; nothing when nil.
	Metrics Metrics
}

// Service pays orders (by payment method, or on the provider's checkout
// page), manages coupons and keeps the order replica.
type Service struct {
	store         Store
	charger       Charger
	checkout      Checkout
	metrics       Metrics
	currency      string
	chargeTimeout time.Duration
	now           func() time.Time
	log           *slog.Logger
	// lookups spaces out ConfirmCheckout's questions about one session;
	// sweepLookups the sweep's (confirmDueSession), kept apart so that a
	// sweep that found a session open does not hold up its buyer's return
	// just after paying it.
	lookups      sessionLookups
	sweepLookups sessionLookups
}

// NewService returns a Service over store charging through charger and
// hosting card payments through checkout.
func NewService(store Store, charger Charger, checkout Checkout, opts Options) *Service {
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
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	return &Service{store: store, charger: charger, checkout: checkout, metrics: opts.Metrics, currency: opts.Currency,
		chargeTimeout: opts.ChargeTimeout, now: opts.Now, log: opts.Log}
}
