package stack_test

// Benchmarks of the whole local stack (the same code `make dev` runs: embedded
// FerretDB and NATS Streaming, every service, the gateway), driven over HTTP
// through the gateway as a benchUser's scripts would. Each runs its scenario once
// per iteration; run them one at a time, e.g.
//
//	go test -run '^$' -bench 'Stack/seed' -benchtime 1x ./stack
//
// The figures are reported as metrics (creates/s, p99-ms, …); the README
// lists what they measured on this repo's machine.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/dev/stack"
	expirationapp "github.com/stuffmart/stuffmart/services/expiration/app"
	ordersapp "github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// benchSecret is JWT_KEY and SESSION_KEY of benchmark stacks, so that a
// service started outside the stack (expiration, restarted) shares them.
const benchSecret = "bench-secret-bench-secret-bench-secret-0123456789"

// freezable is a clock that can be stopped: while it is frozen at t with a
// step, its n-th reading is t + n·step, so the orders created meanwhile get
// deadlines exactly step apart (all the same one when step is 0).
type freezable struct {
	mu     sync.Mutex
	frozen time.Time
	step   time.Duration
}

func (c *freezable) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen.IsZero() {
		return time.Now()
	}
	t := c.frozen
	c.frozen = c.frozen.Add(c.step)
	return t
}

func (c *freezable) Freeze(t time.Time, step time.Duration) {
	c.mu.Lock()
	c.frozen, c.step = t, step
	c.mu.Unlock()
}

func (c *freezable) Thaw() { c.mu.Lock(); c.frozen = time.Time{}; c.mu.Unlock() }

// benchStack is a running stack plus what a benchmark needs to look inside.
type benchStack struct {
	b      *testing.B
	info   stack.Info
	mongo  *mongo.Client
	orders *freezable
	env    map[string]string // what the stack's services see, for one run outside it
}

type benchOptions struct {
	env               map[string]string
	withoutExpiration bool // the benchmark runs expiration itself
}

func startBench(b *testing.B, o benchOptions) *benchStack {
	b.Helper()
	env := map[string]string{"PORT": "0", "DATA_DIR": b.TempDir(), "JWT_KEY": benchSecret, "SESSION_KEY": benchSecret, "LOG_LEVEL": "error", "RATE_LIMIT": "off",
		// Benchmark buyers place many orders each.
		"MAX_OPEN_ORDERS": "100000"}
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := stack.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	clock := &freezable{}
	var svcs []stack.Service
	for _, s := range cfg.Services {
		switch {
		case s.Name == "expiration" && o.withoutExpiration:
			continue
		case s.Name == "orders":
			s.Start = stack.App(func(getenv func(string) string) (ordersapp.Config, error) {
				c, err := ordersapp.LoadConfig(getenv)
				c.Now = clock.Now
				return c, err
			}, ordersapp.Run)
		}
		svcs = append(svcs, s)
	}
	cfg.Services = svcs
	ctx, cancel := context.WithCancel(context.Background())
	infoc, errc := make(chan stack.Info, 1), make(chan error, 1)
	go func() { errc <- stack.Run(ctx, cfg, testkit.Logger(b), func(i stack.Info) { infoc <- i }) }()
	b.Cleanup(func() {
		benchTransport.CloseIdleConnections()
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				b.Errorf("stack: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Error("stack did not stop")
		}
	})
	var info stack.Info
	select {
	case info = <-infoc:
	case err := <-errc:
		b.Fatalf("stack: %v", err)
	case <-time.After(2 * time.Minute):
		b.Fatal("stack not ready")
	}
	mc, err := mongo.Connect(context.Background(), options.Client().ApplyURI(info.MongoURI))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mc.Disconnect(context.Background()) }) // the stack stops next
	return &benchStack{b: b, info: info, mongo: mc, orders: clock, env: map[string]string{
		"MONGO_URI": info.MongoURI, "NATS_URL": info.NATSURL, "NATS_CLUSTER_ID": stack.ClusterID,
		"JWT_KEY": benchSecret, "SESSION_KEY": benchSecret, "HTTP_ADDR": "127.0.0.1:0",
	}}
}

// benchUser is a signed-in account of the benchmark (one cookie jar).
type benchUser struct {
	b    *testing.B
	base string
	http *http.Client
}

var benchTransport = &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}

func (s *benchStack) signup(email string) *benchUser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		s.b.Fatal(err)
	}
	u := &benchUser{b: s.b, base: s.info.URL, http: &http.Client{Jar: jar, Transport: benchTransport, Timeout: time.Minute}}
	if status, raw := u.call(http.MethodPost, "/api/users/signup", map[string]string{"email": email, "password": "password123"}); status != http.StatusCreated {
		s.b.Fatalf("signup %s = %d %s", email, status, raw)
	}
	return u
}

// signupMany signs up n users, prefix0@bench.dev and on, 8 at a time
// (each signup hashes a password).
func (s *benchStack) signupMany(n int, prefix string) []*benchUser {
	people := make([]*benchUser, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				people[i] = s.signup(fmt.Sprintf("%s%d@bench.dev", prefix, i))
			}
		})
	}
	wg.Wait()
	return people
}

// call sends a JSON request and returns the status and body; transport
// errors fail the benchmark.
func (u *benchUser) call(method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			u.b.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u.base+path, r)
	if err != nil {
		u.b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := u.http.Do(req)
	if err != nil {
		u.b.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		u.b.Fatal(err)
	}
	return resp.StatusCode, raw
}

// sell lists one stuff and returns its id.
func (u *benchUser) sell(title string) string {
	status, raw := u.call(http.MethodPost, "/api/stuff", map[string]any{"title": title, "description": "bench notes", "price": 500, "delivery": "https://files.example/" + title})
	if status != http.StatusCreated {
		u.b.Fatalf("POST /api/stuff = %d %s", status, raw)
	}
	var s struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		u.b.Fatal(err)
	}
	return s.ID
}

// sellMany lists n stuffs from `workers` goroutines and returns their ids
// and how long it took.
func (u *benchUser) sellMany(n, workers int, prefix string) ([]string, time.Duration) {
	ids := make([]string, n)
	var next atomic.Int64
	begin := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ids[i] = u.sell(prefix + strconv.Itoa(i))
			}
		})
	}
	wg.Wait()
	return ids, time.Since(begin)
}

// backlog counts the listings whose stuff:created or stuff:updated is still
// waiting in their outbox.
func (s *benchStack) backlog() int64 {
	n, err := s.mongo.Database("stuff").Collection("stuff").CountDocuments(context.Background(),
		bson.D{{Key: "outbox.0", Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil {
		s.b.Fatal(err)
	}
	return n
}

// inOrdersReplica reports whether the orders service's replica has stuff id.
func (s *benchStack) inOrdersReplica(id string) bool {
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		s.b.Fatal(err)
	}
	err = s.mongo.Database("orders").Collection("stuff").FindOne(context.Background(), bson.D{{Key: "_id", Value: oid}}).Err()
	if err == mongo.ErrNoDocuments {
		return false
	}
	if err != nil {
		s.b.Fatal(err)
	}
	return true
}

// watcher records when each event of a subject reached a plain subscriber
// of the stack's NATS Streaming, by the id its payload names (key).
type watcher struct {
	mu   sync.Mutex
	seen map[string]time.Time
	n    int
}

// watch subscribes to subject (new messages only) until the benchmark ends;
// keep tells which messages count, and by which id.
func (s *benchStack) watch(subject string, keep func(data []byte) (string, bool)) *watcher {
	s.b.Helper()
	sc, err := stan.Connect(stack.ClusterID, "bench-"+strings.ReplaceAll(subject, ":", "-")+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), stan.NatsURL(s.info.NATSURL))
	if err != nil {
		s.b.Fatal(err)
	}
	w := &watcher{seen: map[string]time.Time{}}
	sub, err := sc.Subscribe(subject, func(m *stan.Msg) {
		id, ok := keep(m.Data)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, dup := w.seen[id]; !dup {
			w.seen[id] = time.Now()
			w.n++
		}
	})
	if err != nil {
		s.b.Fatal(err)
	}
	s.b.Cleanup(func() {
		_ = sub.Close() // the stack stops next
		_ = sc.Close()
	})
	return w
}

// count is how many distinct ids were seen.
func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// at is when id was first seen (false if not yet).
func (w *watcher) at(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[id]
	return t, ok
}

// byID keeps every message and names it by its payload's id.
func byID(data []byte) (string, bool) {
	var ev struct {
		ID string `json:"id"`
	}
	return ev.ID, json.Unmarshal(data, &ev) == nil && ev.ID != ""
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct returns the p-th percentile (0..1) of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// BenchmarkStackSeed lists 5,000 stuffs through the API at concurrency 8,
// then measures how long the outbox takes to empty after the last create and
// how long a stuff listed right after the seed takes to become orderable.
func BenchmarkStackSeed(b *testing.B) {
	const listings, workers = 5000, 8
	for range b.N {
		s := startBench(b, benchOptions{})
		seller, buyer := s.signup("seller@bench.dev"), s.signup("buyer@bench.dev")
		created := s.watch("stuff:created", byID)
		_, took := seller.sellMany(listings, workers, "notes ")
		last := time.Now()
		// Every event out (seen by a subscriber), then the store confirms
		// that nothing waits: polling the store all along would scan it
		// again and again and slow down what is measured.
		for created.count() < listings {
			time.Sleep(time.Millisecond)
		}
		for s.backlog() > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		drained := time.Since(last)

		id := seller.sell("right after the seed")
		listed := time.Now()
		for {
			status, raw := buyer.call(http.MethodPost, "/api/orders", map[string]string{"stuffId": id})
			if status == http.StatusCreated {
				break
			}
			if status != http.StatusNotFound {
				b.Fatalf("POST /api/orders = %d %s", status, raw)
			}
			if time.Since(listed) > time.Minute {
				b.Fatal("the new stuff never became orderable")
			}
			time.Sleep(5 * time.Millisecond)
		}
		orderable := time.Since(listed)
		b.ReportMetric(float64(listings)/took.Seconds(), "creates/s")
		b.ReportMetric(ms(drained), "backlog-empty-ms")
		b.ReportMetric(ms(orderable), "orderable-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStackSustainedCreates lists stuff at a steady 150 a second for a
// minute and samples, for every fifth one, the time from its 201 until the
// orders service's replica has it. The backlog, sampled every second, is how
// many answered creates have not had their stuff:created published yet.
func BenchmarkStackSustainedCreates(b *testing.B) {
	const rate, span, sampleEvery = 150, 60 * time.Second, 5
	for range b.N {
		s := startBench(b, benchOptions{})
		seller := s.signup("seller@bench.dev")
		published := s.watch("stuff:created", byID)
		var answered atomic.Int64

		type sample struct {
			id   string
			at   time.Time
			seen time.Duration
		}
		var (
			mu      sync.Mutex
			pending []*sample
			lat     []time.Duration
			backlog []int64
		)
		stop := make(chan struct{})
		var watchers sync.WaitGroup
		watchers.Go(func() { // the orders replica, for the sampled creates
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				mu.Lock()
				batch := slices.Clone(pending)
				mu.Unlock()
				for _, p := range batch {
					if s.inOrdersReplica(p.id) {
						d := time.Since(p.at)
						mu.Lock()
						lat = append(lat, d)
						pending = slices.DeleteFunc(pending, func(q *sample) bool { return q == p })
						mu.Unlock()
					}
				}
			}
		})
		watchers.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
				n := answered.Load() - int64(published.count())
				mu.Lock()
				backlog = append(backlog, n)
				mu.Unlock()
			}
		})

		tick := time.NewTicker(time.Second / rate)
		var sent atomic.Int64
		var creators sync.WaitGroup
		begin := time.Now()
		for i := 0; time.Since(begin) < span; i++ {
			<-tick.C
			creators.Go(func() {
				id := seller.sell("steady " + strconv.Itoa(i))
				sent.Add(1)
				answered.Add(1)
				if i%sampleEvery == 0 {
					mu.Lock()
					pending = append(pending, &sample{id: id, at: time.Now()})
					mu.Unlock()
				}
			})
		}
		tick.Stop()
		creators.Wait()
		achieved := float64(sent.Load()) / time.Since(begin).Seconds()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			left := len(pending)
			mu.Unlock()
			if left == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
		watchers.Wait()
		if len(pending) > 0 {
			b.Fatalf("%d sampled stuffs never reached the orders replica", len(pending))
		}
		slices.Sort(lat)
		b.ReportMetric(achieved, "creates/s")
		b.ReportMetric(ms(pct(lat, 0.50)), "p50-ms")
		b.ReportMetric(ms(pct(lat, 0.99)), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		b.ReportMetric(float64(slices.Max(backlog)), "backlog-max")
		b.ReportMetric(float64(backlog[len(backlog)-1]), "backlog-end")
	}
	b.ReportMetric(0, "ns/op")
}

// runExpiration runs the expiration service outside the stack (so it can be
// restarted) until the returned stop is called.
func (s *benchStack) runExpiration() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := s.env
	go func() {
		done <- stack.App(expirationapp.LoadConfig, expirationapp.Run)(ctx, func(k string) string {
			if k == "MONGO_DB" {
				return "expiration"
			}
			return env[k]
		}, testkit.Logger(s.b))
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			s.b.Errorf("expiration: %v", err)
		}
	}
}

// BenchmarkStackExpiries places 1,000 orders whose deadlines fall on the
// same instant ("burst") or a steady number a second apart (the orders
// service's clock is frozen and stepped while they are placed), restarts the
// expiration service shortly before the first deadline, and measures how late
// after its deadline each order's expiration:complete, its order:cancelled
// and its stuff's stuff:updated (available again) are published.
func BenchmarkStackExpiries(b *testing.B) {
	for _, bc := range []struct {
		name string
		step time.Duration // between consecutive deadlines
	}{
		{"burst", 0},
		{"rate=100/s", 10 * time.Millisecond},
		{"rate=200/s", 5 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) { benchExpiries(b, bc.step) })
	}
}

func benchExpiries(b *testing.B, step time.Duration) {
	// Each buyer places orders/buyers orders: a buyer's k-th order finds
	// k-1 of their slots taken before a free one (MAX_OPEN_ORDERS).
	const orders, buyers = 1000, 200
	workers := 8
	if step > 0 {
		workers = 1 // the clock's readings go to the orders in turn
	}
	const hold = 40 * time.Second
	for range b.N {
		s := startBench(b, benchOptions{withoutExpiration: true, env: map[string]string{"ORDER_HOLD": hold.String()}})
		stopExpiration := s.runExpiration()
		seller := s.signup("seller@bench.dev")
		ids, _ := seller.sellMany(orders, workers, "burst ")
		for _, id := range ids[len(ids)-10:] {
			for !s.inOrdersReplica(id) {
				time.Sleep(5 * time.Millisecond)
			}
		}
		people := s.signupMany(buyers, "buyer")

		t0 := time.Now().Truncate(time.Second).Add(time.Second)
		first := t0.Add(hold)
		s.orders.Freeze(t0, step)
		type placed struct {
			id       string
			deadline time.Time
		}
		orderOf := make(map[string]placed, orders) // by stuff id
		var mu sync.Mutex
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= orders {
						return
					}
					status, raw := people[i%buyers].call(http.MethodPost, "/api/orders", map[string]string{"stuffId": ids[i]})
					if status != http.StatusCreated {
						b.Errorf("POST /api/orders = %d %s", status, raw)
						return
					}
					var o struct {
						ID        string    `json:"id"`
						ExpiresAt time.Time `json:"expiresAt"`
					}
					if err := json.Unmarshal(raw, &o); err != nil || (step == 0 && !o.ExpiresAt.Equal(first)) {
						b.Errorf("order %s expires at %v (%v), want %v", raw, o.ExpiresAt, err, first)
						return
					}
					mu.Lock()
					orderOf[ids[i]] = placed{o.ID, o.ExpiresAt}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		s.orders.Thaw()
		if b.Failed() {
			b.FailNow()
		}
		if left := time.Until(first); left < 5*time.Second {
			b.Fatalf("placing the orders took too long: %s left before the deadline", left)
		}

		// Watch the outcome as a subscriber of the stack's NATS would.
		sc, err := stan.Connect(stack.ClusterID, "bench-watch", stan.NatsURL(s.info.NATSURL))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = sc.Close() }() // the stack stops next
		var wmu sync.Mutex
		cancelledAt := map[string]time.Time{}
		releasedAt := map[string]time.Time{}
		subC, err := sc.Subscribe("order:cancelled", func(m *stan.Msg) {
			var ev struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Data, &ev) == nil {
				wmu.Lock()
				if _, ok := cancelledAt[ev.ID]; !ok {
					cancelledAt[ev.ID] = time.Now()
				}
				wmu.Unlock()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = subC.Close() }()
		subR, err := sc.Subscribe("stuff:updated", func(m *stan.Msg) {
			var ev struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if json.Unmarshal(m.Data, &ev) == nil && ev.Status == "available" {
				wmu.Lock()
				if _, ok := releasedAt[ev.ID]; !ok {
					releasedAt[ev.ID] = time.Now()
				}
				wmu.Unlock()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = subR.Close() }()

		expired := s.watch("expiration:complete", func(data []byte) (string, bool) {
			var ev struct {
				OrderID string `json:"orderId"`
			}
			return ev.OrderID, json.Unmarshal(data, &ev) == nil && ev.OrderID != ""
		})

		// Restart expiration 3 s before the first deadline.
		time.Sleep(time.Until(first.Add(-3 * time.Second)))
		stopExpiration()
		stopExpiration = s.runExpiration()
		defer stopExpiration()

		for {
			wmu.Lock()
			done := len(cancelledAt) >= orders && len(releasedAt) >= orders
			wmu.Unlock()
			if done || time.Since(first) > time.Minute+time.Duration(orders)*step {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		wmu.Lock()
		var cancelLate, releaseLate, expireLate []time.Duration
		for stuffID, o := range orderOf {
			if at, ok := expired.at(o.id); ok {
				expireLate = append(expireLate, at.Sub(o.deadline))
			}
			if at, ok := cancelledAt[o.id]; ok {
				cancelLate = append(cancelLate, at.Sub(o.deadline))
			}
			if at, ok := releasedAt[stuffID]; ok {
				releaseLate = append(releaseLate, at.Sub(o.deadline))
			}
		}
		wmu.Unlock()
		if len(cancelLate) != orders || len(releaseLate) != orders {
			b.Fatalf("within a minute: %d orders cancelled, %d stuffs released, of %d", len(cancelLate), len(releaseLate), orders)
		}
		slices.Sort(cancelLate)
		slices.Sort(releaseLate)
		slices.Sort(expireLate)
		b.ReportMetric(ms(pct(expireLate, 0.50)), "expired-p50-ms")
		b.ReportMetric(ms(pct(expireLate, 0.99)), "expired-p99-ms")
		b.ReportMetric(ms(pct(cancelLate, 0.50)), "cancelled-p50-ms")
		b.ReportMetric(ms(pct(cancelLate, 0.99)), "cancelled-p99-ms")
		b.ReportMetric(ms(pct(releaseLate, 0.50)), "released-p50-ms")
		b.ReportMetric(ms(pct(releaseLate, 0.99)), "released-p99-ms")
		b.ReportMetric(ms(releaseLate[len(releaseLate)-1]), "released-max-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStackPurchaseRace: 200 signed-in buyers click BUY on one stuff at
// the same instant through the gateway. Exactly one gets the order; the
// metrics are the slowest answer and the wall time of the race.
func BenchmarkStackPurchaseRace(b *testing.B) {
	const buyers = 200
	s := startBench(b, benchOptions{})
	seller := s.signup("seller@bench.dev")
	people := s.signupMany(buyers, "buyer")
	var worst, wall time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		id := seller.sell("raced")
		for !s.inOrdersReplica(id) {
			time.Sleep(5 * time.Millisecond)
		}
		b.StartTimer()
		start := make(chan struct{})
		statuses := make([]int, buyers)
		took := make([]time.Duration, buyers)
		var race sync.WaitGroup
		for i, p := range people {
			race.Go(func() {
				<-start
				t := time.Now()
				statuses[i], _ = p.call(http.MethodPost, "/api/orders", map[string]string{"stuffId": id})
				took[i] = time.Since(t)
			})
		}
		begin := time.Now()
		close(start)
		race.Wait()
		wall = max(wall, time.Since(begin))
		created := 0
		for i, st := range statuses {
			switch st {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
			default:
				b.Fatalf("buyer %d got %d", i, st)
			}
		}
		if created != 1 {
			b.Fatalf("%d orders for one stuff", created)
		}
		worst = max(worst, slices.Max(took))
	}
	b.ReportMetric(ms(worst), "slowest-answer-ms")
	b.ReportMetric(ms(wall), "race-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStackSearchFreshness: how soon a new listing is found by search
// (from its create's answer), how soon a BUY hides it (from the order's
// 201), and how soon a cancel brings it back (from the cancel's 204),
// through the gateway on one stuff replica; search's target is within a
// second each.
func BenchmarkStackSearchFreshness(b *testing.B) {
	const n = 100
	s := startBench(b, benchOptions{})
	seller, buyer := s.signup("seller@bench.dev"), s.signup("buyer@bench.dev")
	found := func(word string) bool {
		status, raw := buyer.call(http.MethodGet, "/api/stuff?q="+word, nil)
		if status != http.StatusOK {
			b.Fatalf("search %s = %d %s", word, status, raw)
		}
		var page struct {
			Total int `json:"total"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			b.Fatal(err)
		}
		return page.Total > 0
	}
	// wait polls until found(word) is want, and returns how long since from.
	wait := func(word string, want bool, from time.Time) time.Duration {
		deadline := from.Add(30 * time.Second)
		for found(word) != want {
			if time.Now().After(deadline) {
				_, raw := buyer.call(http.MethodGet, "/api/stuff?q="+word, nil)
				b.Fatalf("search %q: still %v after 30s: %s", word, !want, raw)
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(from)
	}
	var created, held, released []time.Duration
	for range b.N {
		for range n {
			// Random letters: words a typo or two apart would match each other.
			letters := make([]byte, 12)
			for j := range letters {
				letters[j] = byte('a' + rand.IntN(26))
			}
			word := string(letters)
			id := seller.sell(word)
			created = append(created, wait(word, true, time.Now()))
			for !s.inOrdersReplica(id) {
				time.Sleep(time.Millisecond)
			}
			status, raw := buyer.call(http.MethodPost, "/api/orders", map[string]string{"stuffId": id})
			at := time.Now()
			if status != http.StatusCreated {
				b.Fatalf("BUY = %d %s", status, raw)
			}
			held = append(held, wait(word, false, at))
			var order struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &order); err != nil {
				b.Fatal(err)
			}
			if status, raw := buyer.call(http.MethodDelete, "/api/orders/"+order.ID, nil); status != http.StatusNoContent {
				b.Fatalf("cancel = %d %s", status, raw)
			}
			released = append(released, wait(word, true, time.Now()))
		}
	}
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"found", created}, {"hidden", held}, {"back", released}} {
		slices.Sort(m.ds)
		b.ReportMetric(ms(pct(m.ds, 0.5)), m.name+"-p50-ms")
		b.ReportMetric(ms(pct(m.ds, 0.99)), m.name+"-p99-ms")
	}
	b.ReportMetric(0, "ns/op")
}
