package app_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/services/payments/internal/store"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// BenchmarkPayOffline measures payments per second in offline mode through
// real HTTP: each operation pays a distinct order (claim, charge, record
// with its outbox event, re-check), with the relay publishing
// payment:created to NATS meanwhile. The replicas are seeded directly in the
// database before the timer starts.
func BenchmarkPayOffline(b *testing.B) {
	s := newStack(b, false)
	buyer, cookie := s.User(auth.RoleUser)
	st := store.New(s.DB, mongox.NewWriter(), nil)
	ctx := context.Background()
	prefix := testkit.RandomID(b)[:12]
	for i := range b.N {
		err := st.InsertOrder(ctx, payments.Order{
			ID: fmt.Sprintf("%s%012d", prefix, i), UserID: buyer.ID, Price: 1000,
			Status: payments.StatusCreated, Version: 1, ExpiresAt: time.Now().Add(time.Hour),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(4) // 4×GOMAXPROCS concurrent buyers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("%s%012d", prefix, next.Add(1)-1)
			r, err := s.tryPay(cookie, map[string]any{"orderId": id, "paymentMethod": "pm_card_visa"})
			if err != nil {
				b.Error(err)
				return
			}
			if r.Status != http.StatusCreated {
				b.Errorf("status %d: %s", r.Status, r.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}
