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
