package app_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

var codeShape = regexp.MustCompile(`^[A-Z2-7]{16}$`)

func TestCouponRoutes(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	_, admin := s.User(auth.RoleAdmin)
	_, user := s.User(auth.RoleUser)

	t.Run("admins only", func(t *testing.T) {
		body := map[string]any{"percentOff": 10}
		for name, c := range map[string]*http.Cookie{"anonymous": nil, "user": user} {
			s.HTTP.Do(http.MethodPost, "/api/payments/coupons", body, testkit.WithCookie(c)).WantError(http.StatusUnauthorized, "Not authorized", "")
			s.HTTP.Do(http.MethodGet, "/api/payments/coupons", nil, testkit.WithCookie(c)).WantError(http.StatusUnauthorized, "Not authorized", "")
			_ = name
		}
	})

	t.Run("create and list", func(t *testing.T) {
		exp := s.clock.Now().Add(48 * time.Hour).Truncate(time.Second)
		a := s.createCoupon(admin, map[string]any{"percentOff": 100, "maxRedemptions": 3, "expiresAt": exp.Format(time.RFC3339)})
		b := s.createCoupon(admin, map[string]any{"percentOff": 25})
		if !codeShape.MatchString(a.Code) || !codeShape.MatchString(b.Code) || a.Code == b.Code {
			t.Fatalf("codes %q %q", a.Code, b.Code)
		}
		if a.PercentOff != 100 || a.MaxRedemptions == nil || *a.MaxRedemptions != 3 || a.ExpiresAt == nil || !a.ExpiresAt.Equal(exp) || a.Redemptions != 0 {
			t.Fatalf("coupon %+v", a)
		}
		if b.MaxRedemptions != nil || b.ExpiresAt != nil {
			t.Fatalf("unlimited coupon %+v", b)
		}
		var list []couponJSON
		s.HTTP.Do(http.MethodGet, "/api/payments/coupons", nil, testkit.WithCookie(admin)).Want(http.StatusOK).Decode(&list)
		found := map[string]bool{}
		for _, c := range list {
			found[c.Code] = true
		}
		if !found[a.Code] || !found[b.Code] {
			t.Fatalf("list %+v misses %s or %s", list, a.Code, b.Code)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		tests := []struct {
			name, body string
			message    string
			field      string
		}{
			{"percentOff 0", `{"percentOff":0}`, "Must be an integer from 1 to 100", "percentOff"},
			{"percentOff 101", `{"percentOff":101}`, "Must be an integer from 1 to 100", "percentOff"},
			{"percentOff float", `{"percentOff":50.5}`, "Must be an integer", "percentOff"},
			{"percentOff string", `{"percentOff":"50"}`, "Must be an integer", "percentOff"},
			{"percentOff operator", `{"percentOff":{"$gt":0}}`, "Must be an integer", "percentOff"},
			{"percentOff missing", `{"maxRedemptions":2}`, "Must be an integer from 1 to 100", "percentOff"},
			{"maxRedemptions 0", `{"percentOff":10,"maxRedemptions":0}`, "Must be an integer from 1 to 10000", "maxRedemptions"},
			{"maxRedemptions float", `{"percentOff":10,"maxRedemptions":1.5}`, "Must be an integer", "maxRedemptions"},
			{"expiresAt in the past", `{"percentOff":10,"expiresAt":"2001-01-01T00:00:00Z"}`, "Must be in the future", "expiresAt"},
			{"expiresAt not a date", `{"percentOff":10,"expiresAt":"tomorrow"}`, "Must be a date-time such as 2030-01-31T23:59:00Z", "expiresAt"},
			{"expiresAt number", `{"percentOff":10,"expiresAt":12}`, "Must be a string", "expiresAt"},
			{"unknown field", `{"percentOff":10,"code":"FREEFREEFREEFREE"}`, "Unknown field", "code"},
			{"array", `[{"percentOff":10}]`, "Request body must be a JSON object", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s.HTTP.Do(http.MethodPost, "/api/payments/coupons", testkit.Raw(tc.body), testkit.WithCookie(admin)).WantError(http.StatusBadRequest, tc.message, tc.field)
			})
		}
	})
}

func TestPayWithCoupon(t *testing.T) {
	t.Parallel()
	s := newStack(t, true)
	_, admin := s.User(auth.RoleAdmin)
	buyer, cookie := s.User(auth.RoleUser)

	t.Run("100 % completes with no card and no charge", func(t *testing.T) {
		c := s.createCoupon(admin, map[string]any{"percentOff": 100, "maxRedemptions": 5})
		id := s.order(buyer, 5000)
		r := s.pay(cookie, map[string]any{"orderId": id, "coupon": c.Code})
		r.Want(http.StatusCreated)
		var p paymentJSON
		r.Decode(&p)
		if p.Amount != 0 || p.OrderID != id {
			t.Fatalf("payment %+v", p)
		}
		if ev := s.paymentEvent(id); ev.Amount != 0 || ev.ProviderID != "coupon" || ev.ID != p.ID {
			t.Fatalf("payment:created %+v", ev)
		}
		if n := len(s.stripe.ChargeRequests(id)); n != 0 {
			t.Fatalf("%d charges reached Stripe", n)
		}
		if got := couponByCode(t, s, admin, c.Code); got.Redemptions != 1 {
			t.Fatalf("redemptions %d, want 1", got.Redemptions)
		}
	})

	t.Run("50 % charges half, rounded up to the cent", func(t *testing.T) {
		c := s.createCoupon(admin, map[string]any{"percentOff": 50})
		id := s.order(buyer, 2001)
		r := s.pay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa", "coupon": " " + strings.ToLower(c.Code) + " "})
		r.Want(http.StatusCreated)
		var p paymentJSON
		r.Decode(&p)
		charged := s.stripe.Charged(id)
		if p.Amount != 1001 || len(charged) != 1 || charged[0].AmountReceived != 1001 {
			t.Fatalf("payment %+v, charged %+v", p, charged)
		}
	})

	t.Run("a declined card gives the coupon slot back", func(t *testing.T) {
		c := s.createCoupon(admin, map[string]any{"percentOff": 50, "maxRedemptions": 1})
		a, b := s.order(buyer, 3000), s.order(buyer, 3000)
		s.pay(cookie, map[string]any{"orderId": a, "paymentMethod": "pm_card_chargeDeclined", "coupon": c.Code}).WantError(http.StatusPaymentRequired, "Your card was declined.", "paymentMethod")
		if got := couponByCode(t, s, admin, c.Code); got.Redemptions != 0 {
			t.Fatalf("redemptions after a decline %d, want 0", got.Redemptions)
		}
		s.pay(cookie, map[string]any{"orderId": b, "paymentMethod": "pm_card_visa", "coupon": c.Code}).Want(http.StatusCreated)
		s.pay(cookie, map[string]any{"orderId": a, "paymentMethod": "pm_card_visa", "coupon": c.Code}).WantError(http.StatusBadRequest, "Coupon has been used up", "coupon")
		// Without the coupon it can still be paid.
		s.pay(cookie, map[string]any{"orderId": a, "paymentMethod": "pm_card_visa"}).Want(http.StatusCreated)
	})

	t.Run("unknown, expired and used-up codes", func(t *testing.T) {
		id := s.order(buyer, 1000)
		s.pay(cookie, map[string]any{"orderId": id, "coupon": "AAAAAAAAAAAAAAAA"}).WantError(http.StatusBadRequest, "Coupon code is not valid", "coupon")

		used := s.createCoupon(admin, map[string]any{"percentOff": 100, "maxRedemptions": 1})
		s.pay(cookie, map[string]any{"orderId": s.order(buyer, 1000), "coupon": used.Code}).Want(http.StatusCreated)
		s.pay(cookie, map[string]any{"orderId": id, "coupon": used.Code}).WantError(http.StatusBadRequest, "Coupon has been used up", "coupon")

		exp := s.createCoupon(admin, map[string]any{"percentOff": 100, "expiresAt": s.clock.Now().Add(time.Minute).Format(time.RFC3339)})
		s.clock.Advance(time.Minute) // the order (15 min hold) is still payable
		s.pay(cookie, map[string]any{"orderId": id, "coupon": exp.Code}).WantError(http.StatusBadRequest, "Coupon has expired", "coupon")
		if n := len(s.stripe.ChargeRequests(id)); n != 0 {
			t.Fatalf("%d charges reached Stripe", n)
		}
	})
}

// TestCouponRace: 20 orders redeem a one-use coupon at once; one wins.
func TestCouponRace(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	_, admin := s.User(auth.RoleAdmin)
	buyer, cookie := s.User(auth.RoleUser)
	c := s.createCoupon(admin, map[string]any{"percentOff": 100, "maxRedemptions": 1})
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.order(buyer, 1000)
	}
	results := make(chan result, n)
	for _, id := range ids {
		go func() {
			r, err := s.tryPay(cookie, map[string]any{"orderId": id, "coupon": c.Code})
			if err != nil {
				t.Error(err)
			}
			results <- r
		}()
	}
	created := 0
	for range n {
		r := <-results
		switch r.Status {
		case http.StatusCreated:
			created++
		case http.StatusBadRequest:
			if it := testkit.ErrorItems(t, r.Body)[0]; it.Message != "Coupon has been used up" || it.Field != "coupon" {
				t.Errorf("refusal %+v", it)
			}
		default:
			t.Errorf("status %d: %s", r.Status, r.Body)
		}
	}
	if created != 1 {
		t.Fatalf("%d redemptions of a one-use coupon succeeded", created)
	}
	if got := couponByCode(t, s, admin, c.Code); got.Redemptions != 1 {
		t.Fatalf("redemptions %d, want 1", got.Redemptions)
	}
}

func couponByCode(t *testing.T, s *stack, admin *http.Cookie, code string) couponJSON {
	t.Helper()
	var list []couponJSON
	s.HTTP.Do(http.MethodGet, "/api/payments/coupons", nil, testkit.WithCookie(admin)).Want(http.StatusOK).Decode(&list)
	for _, c := range list {
		if c.Code == code {
			return c
		}
	}
	t.Fatalf("coupon %s not listed", code)
	return couponJSON{}
}

// TestCouponExpiryOutOfRange: an expiry whose offset puts it past year 9999
// in UTC parses as RFC 3339 but cannot be written as JSON. It must be a 400
// on its field, and must not be stored: a stored one made every later
// GET /api/payments/coupons a 500.
func TestCouponExpiryOutOfRange(t *testing.T) {
	t.Parallel()
	s := newStack(t, false)
	_, admin := s.User(auth.RoleAdmin)
	for _, exp := range []string{"9999-12-31T23:59:59-23:59", "9999-12-31T23:00:00-01:00"} {
		r := s.HTTP.Do(http.MethodPost, "/api/payments/coupons", map[string]any{"percentOff": 10, "expiresAt": exp}, testkit.WithCookie(admin))
		r.WantError(http.StatusBadRequest, "Must be a date-time before the year 10000", "expiresAt")
	}
	s.createCoupon(admin, map[string]any{"percentOff": 10, "expiresAt": "9999-12-31T23:59:59Z"})
	s.HTTP.Do(http.MethodGet, "/api/payments/coupons", nil, testkit.WithCookie(admin)).Want(http.StatusOK)
}
