package payments

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// Coupon is an admin-made discount code.
type Coupon struct {
	Code       string
	PercentOff int
	// MaxRedemptions is how many orders may use it; 0 is unlimited.
	MaxRedemptions int
	// ExpiresAt is when it stops working; zero never.
	ExpiresAt   time.Time
	Redemptions int // filled by listings
	CreatedBy   string
	CreatedAt   time.Time
}

// Expired reports whether the coupon no longer works at now.
func (c Coupon) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// Apply returns what an order of price cents costs with the coupon:
// price × (100 − percentOff) / 100, rounded up to a whole cent, in the
// seller's favour: only a 100 % coupon makes something free (rounded down,
// 99 % off made anything up to 99 cents free).
func (c Coupon) Apply(price int64) int64 {
	return (price*int64(100-c.PercentOff) + 99) / 100
}

// Redemption is the claim of one use of a coupon by one order. For a limited
// coupon its ID is "CODE:slot" with slot in 1..MaxRedemptions, so no more
// than MaxRedemptions can exist; for an unlimited one it is
// "CODE:order:orderId".
type Redemption struct {
	ID      string
	Code    string
	Slot    int // 0 for unlimited coupons
	OrderID string
	At      time.Time
}

// MaxCouponRedemptions bounds a coupon's use limit.
const MaxCouponRedemptions = 10000

// codeEncoding spells coupon codes: upper-case letters and digits 2-7, no
// padding, so codes are easy to read out and type.
var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// CodeLen is the length of a coupon code: 16 base32 characters, 80 random
// bits.
const CodeLen = 16

// NewCode returns a random, unguessable coupon code.
func NewCode() string {
	b := make([]byte, CodeLen*5/8)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return codeEncoding.EncodeToString(b)
}

// validCode reports whether s is spelled like a coupon code (after
// normalization to upper case); anything else is not looked up.
func validCode(s string) bool {
	if len(s) != CodeLen {
		return false
	}
	_, err := codeEncoding.DecodeString(s)
	return err == nil
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

// redeemFor takes (or finds) the coupon slot of attempt a's order, when it
// redeems one; coupon is the coupon if the caller read it (nil: read it).
func (s *Service) redeemFor(ctx context.Context, a Attempt, coupon *Coupon) (string, error) {
	if a.Coupon == "" {
		return "", nil
	}
	if coupon == nil {
		c, err := s.store.Coupon(ctx, a.Coupon)
		if err != nil {
			return "", fmt.Errorf("read coupon of attempt %d of order %s: %w", a.N, a.OrderID, err)
		}
		coupon = &c
	}
	return s.redeem(ctx, *coupon, a.OrderID)
}

// redemptionOf returns the id of the slot of coupon code that order
// orderID holds ("" when none, or no code). It reads the coupon's
// redemptions: attempts that end and refunds use it, not every payment.
func (s *Service) redemptionOf(ctx context.Context, code, orderID string) (string, error) {
	if code == "" {
		return "", nil
	}
	taken, err := s.store.Redemptions(ctx, code)
	if err != nil {
		return "", fmt.Errorf("read redemptions of %s: %w", code, err)
	}
	for _, r := range taken {
		if r.OrderID == orderID {
			return r.ID, nil
		}
	}
	return "", nil
}

// freeRedemption gives back the slot of coupon code that order orderID
// holds, if it holds one: the delete checks the owner, so a slot another
// order took since is never freed.
func (s *Service) freeRedemption(ctx context.Context, code, orderID string) error {
	id, err := s.redemptionOf(ctx, code, orderID)
	if err != nil || id == "" {
		return err
	}
	_, err = s.store.DeleteRedemption(ctx, id, orderID)
	return err
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
