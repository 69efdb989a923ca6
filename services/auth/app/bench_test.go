package app_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/auth/internal/store"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

const (
	benchUsers   = 5000
	benchClients = 50
)

type noNotify struct{}

func (noNotify) Notify(*mongo.Collection, any, ...outbox.Pending) {}

// BenchmarkPublicUser: GET /api/users/:id (the seller pages' read of a
// display name) over 5,000 accounts in turn, half of them named, 50
// concurrent clients over loopback; every answer must be a 200.
func BenchmarkPublicUser(b *testing.B) {
	db := testkit.Mongo(b)
	us := store.NewUsers(db, mongox.NewWriter(), noNotify{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := make([]string, benchUsers)
	for i := range ids {
		u := users.User{Email: "u" + strconv.Itoa(i) + "@uni.edu", PasswordHash: []byte("x"), Role: users.RoleUser, CreatedAt: time.Now()}
		if i%2 == 0 {
			u.Name = "Seller " + strconv.Itoa(i)
		}
		if err := us.Create(ctx, &u); err != nil {
			b.Fatal(err)
		}
		ids[i] = u.ID
	}
	s := start(b, nil, testkit.OnDB(db))

	tr := &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	jobs := make(chan string, benchClients)
	lat := make([][]time.Duration, benchClients)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fails int
	)
	for w := range benchClients {
		wg.Go(func() {
			for path := range jobs {
				t0 := time.Now()
				res, err := hc.Get(s.URL + path)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil || res.StatusCode != http.StatusOK {
					mu.Lock()
					fails++
					mu.Unlock()
				}
			}
		})
	}
	begin := time.Now()
	i := 0
	for b.Loop() {
		jobs <- "/api/users/" + ids[i%len(ids)]
		i++
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(begin)
	if fails > 0 {
		b.Fatalf("%d of %d reads failed", fails, i)
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	pct := func(q float64) float64 { return float64(testkit.Percentile(all, q).Microseconds()) / 1000 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
