package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/dev/chaos"
	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// bin is where TestMain built the binaries.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stuffmart-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := filepath.Abs("../..")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		err = chaos.Build(ctx, root, dir)
		cancel()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build the binaries:", err)
		os.Exit(1)
	}
	bin = dir
	code := m.Run()
	_ = os.RemoveAll(dir) // temp files of a finished run
	os.Exit(code)
}

// world is a running cluster and what a test needs to drive and inspect it.
type world struct {
	t        *testing.T
	c        *chaos.Cluster
	mongo    *mongo.Client
	sessions *auth.Sessions
}

// start runs the whole system as separate processes until the test ends;
// env adds to every service's environment.
func start(t *testing.T, env map[string]string) *world {
	t.Helper()
	all := map[string]string{"JWT_KEY": testkit.JWTKey, "SESSION_KEY": testkit.SessionKey, "LOG_LEVEL": "info",
		"RATE_LIMIT":      "off",  // the tests send hundreds of writes from one address
		"MAX_OPEN_ORDERS": "1000"} // and a buyer may hold many orders
	for k, v := range env {
		all[k] = v
	}
	c, err := chaos.New(chaos.Options{Bin: bin, Dir: t.TempDir(), Env: all})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the cluster:\n%s", c.Logs(40))
		}
		c.Stop()
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mc, err := mongo.Connect(context.Background(), options.Client().ApplyURI("mongodb://"+c.Mongo.Addr+"/").SetServerSelectionTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) }) // the cluster stops next
	return &world{t: t, c: c, mongo: mc, sessions: testkit.NewSessions()}
}

// client calls service name's API.
func (w *world) client(name string) *testkit.Client {
	return testkit.NewClient(w.t, w.c.Svc[name].URL(), testkit.WithoutCookies())
}

// user returns a signed-in user's cookie (the services verify it with the
// keys the cluster runs with).
func (w *world) user() (auth.User, *http.Cookie) {
	u := auth.User{ID: primitive.NewObjectID().Hex(), Email: testkit.RandomID(w.t)[:8] + "@uni.edu", Role: auth.RoleUser}
	return u, testkit.SessionCookie(w.t, w.sessions, u, "")
}

// sell lists a stuff as the holder of cookie; it returns the id, or "" and
// the status when the service did not answer 201.
func sell(hc *http.Client, base string, cookie *http.Cookie, title string) (string, int, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/api/stuff", jsonBody(map[string]any{"title": title, "description": "notes", "price": 300, "delivery": "https://files.example/" + title}))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(cookie)
	res, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return "", res.StatusCode, nil
	}
	var s struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return "", res.StatusCode, err
	}
	return s.ID, res.StatusCode, nil
}

// inDB reports whether database db's collection coll has document id (an
// ObjectID in hex).
func (w *world) inDB(db, coll, id string) bool {
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = w.mongo.Database(db).Collection(coll).FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Err()
	return err == nil
}

// allReach waits until every id is in the orders service's replica of stuff
// and returns how long that took.
func (w *world) allReach(ids []string, within time.Duration) time.Duration {
	w.t.Helper()
	begin := time.Now()
	left := append([]string(nil), ids...)
	testkit.Eventually(w.t, within, func() bool {
		kept := left[:0]
		for _, id := range left {
			if !w.inDB("orders", "stuff", id) {
				kept = append(kept, id)
			}
		}
		left = kept
		return len(left) == 0
	}, "%d of %d listings never reached the orders replica", len(left), len(ids))
	return time.Since(begin)
}

// NATS Streaming down for 15 s while listings are created: every create is
// answered (the change and its event are saved together), and every
// stuff:created reaches the orders service once NATS is back.
func TestNATSDownDuringWrites(t *testing.T) {
	w := start(t, nil)
	_, cookie := w.user()
	hc := &http.Client{Timeout: 10 * time.Second}
	base := w.c.Svc["stuff"].URL()

	var mu sync.Mutex
	var ids []string
	var failures []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			id, status, err := sell(hc, base, cookie, fmt.Sprintf("outage-%d", i))
			mu.Lock()
			if id != "" {
				ids = append(ids, id)
			} else {
				failures = append(failures, fmt.Sprintf("create %d: %d %v", i, status, err))
			}
			mu.Unlock()
		}
	}()
	// The scenario's timeline: writes, then NATS down for 15 s, then back.
	time.Sleep(2 * time.Second)
	w.c.NATS.Kill()
	time.Sleep(15 * time.Second)
	if err := w.c.NATS.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	time.Sleep(2 * time.Second)
	close(stop)
	<-done

	if len(failures) > 0 {
		t.Fatalf("%d creates were not answered 201 while NATS was down: %v", len(failures), failures)
	}
	if len(ids) < 100 {
		t.Fatalf("only %d listings created; the scenario did not run", len(ids))
	}
	w.allReach(ids, 60*time.Second)
	t.Logf("%d listings created across a 15 s NATS outage; all in the orders replica %s after NATS came back", len(ids), time.Since(back).Round(100*time.Millisecond))
}

// The expiration service is killed before an order's deadline and started
// again after it: the order is cancelled, and its stuff released, once it is
// back.
func TestExpirationKilledAcrossADeadline(t *testing.T) {
	w := start(t, map[string]string{"ORDER_HOLD": "4s"})
	_, seller := w.user()
	_, buyer := w.user()
	stuff := w.client("stuff")
	s := struct{ ID string }{idOf(t, stuff.Do(http.MethodPost, "/api/stuff", map[string]any{"title": "Notes", "price": 500}, testkit.WithCookie(seller)).Want(http.StatusCreated))}
	testkit.Eventually(t, 15*time.Second, func() bool { return w.inDB("orders", "stuff", s.ID) }, "the stuff never reached orders")
	var o struct {
		ID        string    `json:"id"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	orders := w.client("orders")
	r := orders.Do(http.MethodPost, "/api/orders", map[string]string{"stuffId": s.ID}, testkit.WithCookie(buyer)).Want(http.StatusCreated)
	if err := json.Unmarshal(r.Body, &o); err != nil {
		t.Fatal(err)
	}
	// Kill expiration once the order is out (whether it has stored the
	// deadline yet or not: if not, its durable subscription hands it the
	// order again when it is back).
	testkit.Eventually(t, 15*time.Second, func() bool {
		var st struct {
			Status string `json:"status"`
		}
		r := stuff.Do(http.MethodGet, "/api/stuff/"+s.ID, nil)
		return r.Status == http.StatusOK && json.Unmarshal(r.Body, &st) == nil && st.Status == "reserved"
	}, "order:created never reached the stuff service")
	w.c.Svc["expiration"].Kill()
	time.Sleep(time.Until(o.ExpiresAt.Add(2 * time.Second))) // the deadline passes while it is down
	status := func() string {
		var got struct {
			Status string `json:"status"`
		}
		r := orders.Do(http.MethodGet, "/api/orders/"+o.ID, nil, testkit.WithCookie(buyer)).Want(http.StatusOK)
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	if st := status(); st != "created" {
		t.Logf("order %s before the restart: %s", o.ID, st)
	}
	if err := w.c.Svc["expiration"].Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	testkit.Eventually(t, 30*time.Second, func() bool { return status() == "cancelled" }, "the order was never cancelled after expiration came back")
	cancelled := time.Since(restarted)
	testkit.Eventually(t, 15*time.Second, func() bool {
		var st struct {
			Status string `json:"status"`
		}
		r := stuff.Do(http.MethodGet, "/api/stuff/"+s.ID, nil)
		return r.Status == http.StatusOK && json.Unmarshal(r.Body, &st) == nil && st.Status == "available"
	}, "the stuff was never released")
	t.Logf("order cancelled %s after expiration restarted (the deadline had passed %s before)", cancelled.Round(10*time.Millisecond), restarted.Sub(o.ExpiresAt).Round(10*time.Millisecond))
}

// The store (FerretDB) is killed and started again: every service stops
// being ready, requests are answered 503 "Failed to connect to database"
// without hanging, and everything recovers by itself with the data intact.
func TestStoreKilledAndRestarted(t *testing.T) {
	w := start(t, nil)
	_, seller := w.user()
	stuff := w.client("stuff")
	before := struct{ ID string }{idOf(t, stuff.Do(http.MethodPost, "/api/stuff", map[string]any{"title": "Before", "price": 500}, testkit.WithCookie(seller)).Want(http.StatusCreated))}

	w.c.Mongo.Kill()
	probe := &http.Client{Timeout: 5 * time.Second}
	for _, name := range chaos.Services {
		testkit.Eventually(t, 20*time.Second, func() bool {
			st, err := chaos.Ready(probe, w.c.Svc[name])
			return err == nil && st == http.StatusServiceUnavailable
		}, "%s still ready with the store down", name)
	}
	hc := &http.Client{Timeout: 5 * time.Second} // a request that hangs longer fails the test
	for i := range 3 {
		_, status, err := sell(hc, w.c.Svc["stuff"].URL(), seller, fmt.Sprintf("during-%d", i))
		if err != nil {
			t.Fatalf("create with the store down: %v (a request must not hang)", err)
		}
		if status != http.StatusServiceUnavailable {
			t.Fatalf("create with the store down = %d, want 503", status)
		}
	}
	stuff.Do(http.MethodPost, "/api/stuff", map[string]any{"title": "Down", "price": 500}, testkit.WithCookie(seller)).
		WantError(http.StatusServiceUnavailable, "Failed to connect to database", "")

	if err := w.c.Mongo.Start(); err != nil {
		t.Fatal(err)
	}
	for _, name := range chaos.Services {
		testkit.Eventually(t, 30*time.Second, func() bool {
			st, err := chaos.Ready(probe, w.c.Svc[name])
			return err == nil && st == http.StatusOK
		}, "%s not ready again after the store came back", name)
	}
	stuff.Do(http.MethodGet, "/api/stuff/"+before.ID, nil).Want(http.StatusOK)
	after := struct{ ID string }{idOf(t, stuff.Do(http.MethodPost, "/api/stuff", map[string]any{"title": "After", "price": 500}, testkit.WithCookie(seller)).Want(http.StatusCreated))}
	t2 := time.Now()
	w.allReach([]string{before.ID, after.ID}, 30*time.Second)
	t.Logf("both in the orders replica %s after the create", time.Since(t2))
}

// The stuff service is killed in the middle of a burst of creates: every
// create that was answered 201 survives its restart and reaches the orders
// service.
func TestServiceKilledDuringABurst(t *testing.T) {
	w := start(t, nil)
	_, seller := w.user()
	hc := &http.Client{Timeout: 10 * time.Second}
	base := w.c.Svc["stuff"].URL()
	var mu sync.Mutex
	var answered []string
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, _, err := sell(hc, base, seller, fmt.Sprintf("burst-%d", n.Add(1)))
				if id != "" {
					mu.Lock()
					answered = append(answered, id)
					mu.Unlock()
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					time.Sleep(20 * time.Millisecond) // the service is down: do not spin
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond) // the burst is under way
	w.c.Svc["stuff"].Kill()
	close(stop)
	wg.Wait()
	mu.Lock()
	ids := append([]string(nil), answered...)
	mu.Unlock()
	if len(ids) < 20 {
		t.Fatalf("only %d creates answered before the kill; the scenario did not run", len(ids))
	}
	if err := w.c.Svc["stuff"].Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := chaos.WaitReady(ctx, w.c.Svc["stuff"]); err != nil {
		t.Fatal(err)
	}
	stuff := w.client("stuff")
	for _, id := range ids {
		stuff.Do(http.MethodGet, "/api/stuff/"+id, nil).Want(http.StatusOK)
	}
	took := w.allReach(ids, 60*time.Second)
	t.Logf("%d creates answered 201 before stuff was killed; all there after its restart, in the orders replica within %s", len(ids), took.Round(10*time.Millisecond))
}
