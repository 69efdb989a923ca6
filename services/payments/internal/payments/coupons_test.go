package payments_test

import (
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
)

func TestCouponApply(t *testing.T) {
	tests := []struct {
		percent int
		price   int64
		want    int64
	}{
		{100, 5000, 0},
		{100, 1, 0},
		{50, 2000, 1000},
		{50, 2001, 1001}, // 1000.5 rounds up: the seller never loses the half cent
		{1, 1000000, 990000},
		{33, 100, 67},
		{33, 101, 68}, // 67.67
		{99, 99, 1},   // 0.99: not free
		{99, 1, 1},
		{99, 10000, 100},
	}
	for _, tc := range tests {
		if got := (payments.Coupon{PercentOff: tc.percent}).Apply(tc.price); got != tc.want {
			t.Errorf("%d %% off %d = %d, want %d", tc.percent, tc.price, got, tc.want)
		}
	}
}

func TestCouponExpired(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		exp  time.Time
		want bool
	}{
		{"never", time.Time{}, false},
		{"later", now.Add(time.Second), false},
		{"at the instant", now, true},
		{"earlier", now.Add(-time.Second), true},
	}
	for _, tc := range tests {
		if got := (payments.Coupon{ExpiresAt: tc.exp}).Expired(now); got != tc.want {
			t.Errorf("%s: expired %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewCode(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		c := payments.NewCode()
		if len(c) != payments.CodeLen {
			t.Fatalf("code %q has length %d", c, len(c))
		}
		for _, r := range c {
			if !(r >= 'A' && r <= 'Z' || r >= '2' && r <= '7') {
				t.Fatalf("code %q has %q", c, r)
			}
		}
		if seen[c] {
			t.Fatalf("code %q twice", c)
		}
		seen[c] = true
	}
}
