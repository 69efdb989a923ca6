package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/stuff/internal/catalog"
	"github.com/stuffmart/stuffmart/services/stuff/internal/store"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type noNotify struct{}

func (noNotify) Notify(*mongo.Collection, any, ...outbox.Pending) {}

// counting is the real store, counting single reads. during, when set, runs
// inside Available, after the query: what happens while a reconcile reads.
type counting struct {
	*store.Store
	gets   atomic.Int64
	during func()
}

func (c *counting) Available(ctx context.Context, limit int, exclude []string) ([]stuff.Stuff, error) {
	ss, err := c.Store.Available(ctx, limit, exclude)
	if c.during != nil {
		c.during()
	}
	return ss, err
}

func (c *counting) Get(ctx context.Context, id string) (stuff.Stuff, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

// enc encodes a listing as "title@version" (+ "#delivery"), easy to assert on.
func enc(s *stuff.Stuff, withDelivery bool) []byte {
	out := fmt.Sprintf("%s@%d", s.Title, s.Version)
	if withDelivery {
		out += "#" + s.Delivery
	}
	return []byte(out)
}

type fixture struct {
	st  *counting
	cat *catalog.Catalog
	t0  time.Time
	n   int
}

func newFixture(t *testing.T, max int) *fixture {
	t.Helper()
	st := &counting{Store: store.New(testkit.Mongo(t), mongox.NewWriter(), noNotify{}, testkit.Logger(t), nil)}
	return &fixture{st: st, cat: catalog.New(st, enc, testkit.Logger(t), catalog.Options{Max: max}),
		t0: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// insert stores a listing behind the catalog's back (no Apply).
func (f *fixture) insert(t *testing.T, title string) stuff.Stuff {
	t.Helper()
	return f.insertBy(t, "seller", title)
}

// insertBy stores a listing of seller behind the catalog's back.
func (f *fixture) insertBy(t *testing.T, seller, title string) stuff.Stuff {
	t.Helper()
	f.n++
	s, err := f.st.Insert(context.Background(), stuff.New("", seller, stuff.Input{Title: title, Price: 1, Delivery: ptr("d-" + title)}, f.t0.Add(time.Duration(f.n)*time.Second)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// update changes a listing behind the catalog's back.
func (f *fixture) update(t *testing.T, id string, fn func(s *stuff.Stuff) (bool, error)) stuff.Stuff {
	t.Helper()
	s, err := f.st.Update(context.Background(), id, fn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) page(t *testing.T, offset, limit int) (string, int) {
	t.Helper()
	items, total, err := f.cat.Page(context.Background(), offset, limit)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, it := range items {
		parts = append(parts, string(it))
	}
	return strings.Join(parts, " "), total
}

func (f *fixture) wantPage(t *testing.T, offset, limit int, want string, wantTotal int) {
	t.Helper()
	got, total := f.page(t, offset, limit)
	if got != want || total != wantTotal {
		t.Fatalf("page(%d,%d) = %q total %d, want %q total %d", offset, limit, got, total, want, wantTotal)
	}
	if err := f.cat.CheckIndex(); err != nil {
		t.Fatalf("after page(%d,%d): search index: %v", offset, limit, err)
	}
}

func ptr(s string) *string { return &s }

func reserve(order string) func(s *stuff.Stuff) (bool, error) {
	return func(s *stuff.Stuff) (bool, error) {
		return s.ApplyOrderCreated(createdRef(order, "buyer", time.Time{}), time.Now())
	}
}

func edit(title string) func(s *stuff.Stuff) (bool, error) {
	return func(s *stuff.Stuff) (bool, error) {
		return s.Edit("seller", stuff.Input{Title: title, Price: 1}, time.Now())
	}
}

func TestReconcileHealsMissedChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100)
	ctx := context.Background()
	a, b, c := f.insert(t, "a"), f.insert(t, "b"), f.insert(t, "c")
	f.wantPage(t, 0, 10, "c@1 b@1 a@1", 3) // not loaded yet: read from the database
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	// Missed: b reserved, c edited, d created.
	f.update(t, b.ID, reserve("o1"))
	f.update(t, c.ID, edit("c2"))
	f.insert(t, "d")
	f.wantPage(t, 0, 10, "c@1 b@1 a@1", 3)
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantPage(t, 0, 10, "d@1 c2@2 a@1", 3)
	if v, err := f.cat.Get(ctx, a.ID); err != nil || string(v.JSON("")) != "a@1" || string(v.JSON("seller")) != "a@1#d-a" {
		t.Fatalf("Get a: %v %v", v, err)
	}
}

func TestApplyIsVersioned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100)
	ctx := context.Background()
	a := f.insert(t, "a")
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	a2 := f.update(t, a.ID, edit("a2"))
	a3 := f.update(t, a.ID, reserve("o1"))
	tests := []struct {
		name  string
		apply stuff.Stuff
		want  string
		total int
		get   string
	}{
		{name: "newer edit", apply: a2, want: "a2@2", total: 1, get: "a2@2"},
		{name: "stale state ignored", apply: a, want: "a2@2", total: 1, get: "a2@2"},
		{name: "reserved leaves the list", apply: a3, want: "", total: 0, get: "a2@3"},
		{name: "stale available does not bring it back", apply: a2, want: "", total: 0, get: "a2@3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.cat.Apply(tc.apply)
			f.wantPage(t, 0, 10, tc.want, tc.total)
			v, err := f.cat.Get(ctx, a.ID)
			if err != nil || string(v.JSON("")) != tc.get {
				t.Fatalf("Get = %q (%v), want %q", v.JSON(""), err, tc.get)
			}
		})
	}
	// The broadcast path: an event no newer than what is known costs no
	// read; a newer one is read from the database.
	before := f.st.gets.Load()
	if err := f.cat.Refresh(ctx, a.ID, 3); err != nil || f.st.gets.Load() != before {
		t.Fatalf("refresh of a known version read the database (%v)", err)
	}
	f.update(t, a.ID, func(s *stuff.Stuff) (bool, error) { return s.ApplyOrderCancelled(cancelledRef("o1"), time.Now()) })
	if err := f.cat.Refresh(ctx, a.ID, 4); err != nil || f.st.gets.Load() != before+1 {
		t.Fatalf("refresh of a newer version: %v, %d reads", err, f.st.gets.Load()-before)
	}
	f.wantPage(t, 0, 10, "a2@4", 1)
}

func TestBoundedList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	ctx := context.Background()
	var all []stuff.Stuff
	for _, title := range []string{"a", "b", "c", "d", "e"} {
		all = append(all, f.insert(t, title))
	}
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantPage(t, 0, 3, "e@1 d@1 c@1", 5)              // memory
	f.wantPage(t, 2, 3, "c@1 b@1 a@1", 5)              // memory, then the database
	f.wantPage(t, 3, 3, "b@1 a@1", 5)                  // the database
	f.cat.Apply(f.update(t, all[3].ID, reserve("o1"))) // d, in memory
	f.wantPage(t, 0, 10, "e@1 c@1 b@1 a@1", 4)
	f.cat.Apply(f.update(t, all[1].ID, reserve("o2"))) // b, past the floor
	f.wantPage(t, 0, 10, "e@1 c@1 a@1", 3)
	// A new listing pushes the oldest in memory past the floor.
	g := f.insert(t, "g")
	f.cat.Apply(g)
	f.cat.Apply(f.insert(t, "h"))
	f.cat.Apply(f.insert(t, "i"))
	f.wantPage(t, 0, 10, "i@1 h@1 g@1 e@1 c@1 a@1", 6)
	f.wantPage(t, 0, 3, "i@1 h@1 g@1", 6)
	// Released past the floor: shown by the database part.
	f.cat.Apply(f.update(t, all[1].ID, func(s *stuff.Stuff) (bool, error) { return s.ApplyOrderCancelled(cancelledRef("o2"), time.Now()) }))
	f.wantPage(t, 0, 10, "i@1 h@1 g@1 e@1 c@1 b@3 a@1", 7)
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantPage(t, 0, 3, "i@1 h@1 g@1", 7)
	f.wantPage(t, 3, 10, "e@1 c@1 b@3 a@1", 7)
}

func TestCacheFollowsReconcile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100)
	ctx := context.Background()
	a, b := f.insert(t, "a"), f.insert(t, "b")
	f.update(t, b.ID, reserve("o1"))
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(id, user, want string, wantReads int64) {
		t.Helper()
		before := f.st.gets.Load()
		v, err := f.cat.Get(ctx, id)
		if err != nil || string(v.JSON(user)) != want {
			t.Fatalf("Get(%s) as %q = %q (%v), want %q", id, user, v.JSON(user), err, want)
		}
		if n := f.st.gets.Load() - before; n != wantReads {
			t.Fatalf("Get(%s) read the database %d times, want %d", id, n, wantReads)
		}
	}
	get(a.ID, "", "a@1", 0)           // available: cached by the reconcile
	get(a.ID, "seller", "a@1#d-a", 0) // the seller sees the delivery
	get(b.ID, "", "b@2", 1)           // reserved: read once...
	get(b.ID, "", "b@2", 0)           // ...then cached
	f.update(t, a.ID, edit("a2"))     // missed changes
	f.update(t, b.ID, func(s *stuff.Stuff) (bool, error) { return s.ApplyOrderCancelled(cancelledRef("o1"), time.Now()) })
	get(a.ID, "", "a@1", 0) // stale until the next reconcile...
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	get(a.ID, "", "a2@2", 0) // ...which refreshes available ones in place
	get(b.ID, "", "b@3", 0)  // b is available again: in the snapshot
	f.update(t, b.ID, reserve("o2"))
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	get(b.ID, "", "b@4", 0) // listed but missing from the snapshot: re-read by the reconcile
	f.update(t, b.ID, func(s *stuff.Stuff) (bool, error) {
		return s.ApplyOrderCompleted(completedRef("o2", "buyer"), time.Now())
	})
	get(b.ID, "buyer", "b@4", 0) // the sale was missed: stale...
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	get(b.ID, "buyer", "b@5#d-b", 1) // ...until the reconcile evicts what it cannot confirm
	for _, id := range []string{"nope", strings.Repeat("a", 24), strings.ToUpper(a.ID)} {
		if _, err := f.cat.Get(ctx, id); err == nil {
			t.Fatalf("Get(%q) found something", id)
		}
	}
}

// TestBannedSellers: a banned seller's listings leave the list at once, in
// memory and past the floor, and answer not found; a reconcile counts
// without them; an unban brings them back, a late ban older than it does
// not; a catalog loaded later reads the stored bans.
func TestBannedSellers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	ctx := context.Background()
	t1 := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	f.insert(t, "a")
	b := f.insertBy(t, "bad", "b") // past the floor
	f.insert(t, "c")
	d := f.insertBy(t, "bad", "d") // in memory
	f.insert(t, "e")
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantPage(t, 0, 10, "e@1 d@1 c@1 b@1 a@1", 5)
	notFound := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := f.cat.Get(ctx, id); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("Get(%s) of a banned seller's listing: %v", id, err)
			}
		}
	}

	f.cat.ApplyBan(stuff.Ban{UserID: "bad", BannedAt: t1})
	f.wantPage(t, 0, 2, "e@1 c@1", 4) // in memory; what is past the floor is counted at the next reconcile
	f.wantPage(t, 0, 10, "e@1 c@1 a@1", 3)
	notFound(b.ID, d.ID)
	g := f.insertBy(t, "bad", "g")
	f.cat.Apply(g)
	f.wantPage(t, 0, 10, "e@1 c@1 a@1", 3)
	notFound(g.ID)
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.wantPage(t, 0, 2, "e@1 c@1", 3)

	f.cat.ApplyBan(stuff.Ban{UserID: "bad", UnbannedAt: t1.Add(time.Second)})
	if err := f.cat.Reconcile(ctx); err != nil { // what the unban triggers
		t.Fatal(err)
	}
	f.wantPage(t, 0, 10, "g@1 e@1 d@1 c@1 b@1 a@1", 6)
	f.cat.ApplyBan(stuff.Ban{UserID: "bad", BannedAt: t1}) // redelivered late
	f.wantPage(t, 0, 10, "g@1 e@1 d@1 c@1 b@1 a@1", 6)
	if _, err := f.cat.Get(ctx, d.ID); err != nil {
		t.Fatal(err)
	}

	// A ban heard while a reconcile reads (its query did not leave the
	// seller out) is not undone by it.
	f.st.during = func() { f.cat.ApplyBan(stuff.Ban{UserID: "bad", BannedAt: t1.Add(time.Hour)}) }
	if err := f.cat.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	f.st.during = nil
	f.wantPage(t, 0, 10, "e@1 c@1 a@1", 3)
	notFound(b.ID, d.ID, g.ID)

	// Stored: a catalog loaded now hides them from the start.
	if _, err := f.st.SaveBan(ctx, stuff.Ban{UserID: "bad", BannedAt: t1.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	later := catalog.New(f.st, enc, testkit.Logger(t), catalog.Options{Max: 3})
	if err := later.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	items, total, err := later.Page(ctx, 0, 10)
	if err != nil || len(items) != 3 || total != 3 {
		t.Fatalf("a catalog loaded after the ban: %q total %d (%v)", items, total, err)
	}
}

// TestBansBeforeLoad: a catalog that could not load yet reads pages and
// listings from the database, and leaves the stored bans' sellers out
// there too.
func TestBansBeforeLoad(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100)
	ctx := context.Background()
	f.insert(t, "a")
	b := f.insertBy(t, "bad", "b")
	if _, err := f.st.SaveBan(ctx, stuff.Ban{UserID: "bad", BannedAt: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	f.wantPage(t, 0, 10, "a@1", 1)
	if _, err := f.cat.Get(ctx, b.ID); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("Get of a banned seller's listing before the load: %v", err)
	}
	if f.cat.Loaded() {
		t.Fatal("the catalog loaded itself")
	}
}

// createdRef, cancelledRef and completedRef are the order events of order
// as the orders service publishes them, for a listing priced 1.
func createdRef(order, buyer string, expiresAt time.Time) stuff.OrderRef {
	return stuff.OrderRef{ID: order, Version: 1, BuyerID: buyer, Price: 1, ExpiresAt: expiresAt}
}

func cancelledRef(order string) stuff.OrderRef { return stuff.OrderRef{ID: order, Version: 2} }

func completedRef(order, buyer string) stuff.OrderRef {
	return stuff.OrderRef{ID: order, Version: 2, BuyerID: buyer, Price: 1}
}
