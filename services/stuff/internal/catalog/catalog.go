// Package catalog is the stuff service's in-process read model: the
// newest-first list of available listings behind GET /api/stuff and the
// single listings behind GET /api/stuff/:id. The hot reads never touch the
// database: on FerretDB v1 a sorted query scans the collection (≈18
// queries/s at 3,000 documents) and, as measured here, so does a findOne by
// _id (its SQLite index is not used: ≈36 ms at 5,000 documents). Each
// listing's JSON is encoded once, when it changes; a page is a slice of
// those encodings, and a single listing is the same bytes (plus the delivery
// content, encoded per request, for the seller and buyers).
//
// # Consistency
//
// Every state of a listing carries its version, and the catalog applies a
// state only when its version is newer than the one it holds, so the sources
// below may arrive in any order, twice, or concurrently:
//
//   - This replica's own writes are applied as soon as they are saved (a
//     client reads its writes on the replica that served them).
//   - Writes of other replicas arrive as their stuff:created/stuff:updated
//     events, on a broadcast subscription every replica receives; when the
//     event is newer than what the catalog holds, the listing is re-read by
//     _id (the event lacks the description, delivery and buyers). Lag: the
//     outbox relay's publish plus one read, milliseconds to tens of
//     milliseconds.
//   - A reconcile reads every available listing (the newest Max) from the
//     database: at start, after every (re)connection to NATS (broadcast
//     subscriptions are not durable, so what was published while this
//     replica was away never reaches it) and every ReconcileEvery. It
//     refreshes the list and the cached available listings in place, and
//     evicts cached listings it could not confirm (reserved or sold ones not
//     touched by an event since the previous reconcile); those are read
//     again on their next request.
//
// So while NATS delivers, a replica trails the database by milliseconds;
// when events cannot reach it (NATS down, an outbox waiting to be relayed, a
// lost connection) it trails by at most ReconcileEvery plus one reconcile.
// Nothing that decides a sale reads this model: the orders service holds a
// stuff with a unique-index claim.
//
// # Banned sellers
//
// A banned seller's listings are not listed and answer 404. Every replica
// learns a ban or an unban from its broadcast event (ApplyBan), and reads
// every stored ban (the stuff service's queue listener stores them) when it
// loads and reconciles, so a replica started later knows them too. Bans only
// move forward (see stuff.Ban), so these sources may also come in any order.
// A ban takes the seller's listings out of the list at once; an unban
// triggers a reconcile, which reads them back. Until the catalog is loaded,
// each read from the database reads the stored bans first.
//
// # Search
//
// The catalog also keeps its list in price order and in a full-text index
// (package search), changed in the same step as the list, under the same
// lock: Search finds, filters and sorts exactly what is listed, and Changes
// counts the changes of the list so that answers built from a search can be
// kept until the next one.
//
// # Bounds
//
// The list holds at most Max listings: every available listing not after a
// floor in the newest-first order (no floor while all of them fit). Pages
// reaching past the floor are read from the database and their total is
// exact; the total on in-memory pages counts the listings past the floor as
// of the last reconcile or deep page (changes past the floor are not
// tracked one by one). The cache holds at most CacheMax listings; when it
// is full, a new one evicts an arbitrary one.
package catalog

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/internal/search"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// Source is the database the catalog reads from. The queries of available
// listings leave out those of the sellers in exclude (the banned ones).
type Source interface {
	// Available returns up to limit available listings, newest first, with
	// every field a client may see (delivery and buyers included).
	Available(ctx context.Context, limit int, exclude []string) ([]stuff.Stuff, error)
	// CountAvailable counts the available listings.
	CountAvailable(ctx context.Context, exclude []string) (int, error)
	// AvailableAfter pages through the available listings after k (all
	// when nil) and counts them.
	AvailableAfter(ctx context.Context, k *stuff.Key, skip, limit int, exclude []string) ([]stuff.Stuff, int, error)
	// Get returns one listing with every field, or errs.ErrNotFound.
	Get(ctx context.Context, id string) (stuff.Stuff, error)
	// Bans returns every stored ban.
	Bans(ctx context.Context) ([]stuff.Ban, error)
}

// Encoder returns the JSON of a listing as clients see it, with its delivery
// content or without.
type Encoder func(s *stuff.Stuff, withDelivery bool) []byte

// Options bound the catalog. Zero values take the defaults.
type Options struct {
	// Max is how many available listings the list holds (default 10,000).
	Max int
	// CacheMax is how many single listings are cached (default 10,000).
	CacheMax int
	// ReconcileEvery is how often the catalog is checked against the
	// database (default 60s).
	ReconcileEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// View is one listing as GET /api/stuff/:id serves it. It is immutable.
type View struct {
	s      stuff.Stuff // Orders dropped
	public []byte
	enc    Encoder
	at     time.Time // when this state was last confirmed
}

// Version is the listing's version.
func (v *View) Version() int64 { return v.s.Version }

// JSON returns the listing's JSON for userID (empty: anonymous): with the
// delivery content for the seller and buyers whose order completed, without
// it for everyone else. Visibility is decided per request; the returned
// bytes must not be modified.
func (v *View) JSON(userID string) []byte {
	if v.s.CanSeeDelivery(userID) {
		return v.enc(&v.s, true)
	}
	return v.public
}

// entry is one listed listing. It is immutable but for its place in the
// search index (slot, indexed), which changes under mu.
type entry struct {
	key    stuff.Key
	seller string
	price  int64
	title  string
	desc   string
	json   []byte
	// an is the listing's analysed text until it is indexed (nil when
	// analysis is left to index).
	an      *search.Analysis
	slot    uint32
	indexed bool
	mark    uint64 // the reconcile that last listed it
}

// newEntry returns the entry of s with its JSON; analyse runs the text
// analysis now (outside the lock) rather than when it is indexed.
func newEntry(s *stuff.Stuff, json []byte, analyse bool) *entry {
	e := &entry{key: s.Key(), seller: s.UserID, price: s.Price, title: s.Title, desc: s.Description, json: json}
	if analyse {
		a := search.Analyze(s.Title, s.Description)
		e.an = &a
	}
	return e
}

// known is the newest state applied for one listing: its version, when it
// was applied, and its place in the list (nil when not listed).
type known struct {
	version int64
	at      time.Time
	e       *entry
}

// Catalog is the read model. It is safe for concurrent use.
type Catalog struct {
	src  Source
	enc  Encoder
	log  *slog.Logger
	opts Options

	mu      sync.RWMutex
	loaded  bool
	list    []*entry // available listings, newest first, none after floor
	byPrice []*entry // the same, cheapest first, then newest first
	ix      *search.Index
	slots   []*entry // listed entries by their slot in ix
	prices  []int64  // their prices by slot: a search filters without reading them
	gen     uint64   // reconciles so far
	changes uint64   // changes of the list so far (see Changes)
	floor   *stuff.Key
	below   int // available listings after floor, as of the last count
	known   map[string]*known
	cache   map[string]*View
	bans    map[string]stuff.Ban
	hidden  []string // the banned sellers; replaced, never modified

	reconMu sync.Mutex
	trigger chan struct{}
	// found recycles the matches of text searches (*[]found): a common
	// word matches most listings.
	found sync.Pool
}

// New returns an empty catalog over src; Reconcile (or Run) loads it. Until
// then, reads go to the database.
func New(src Source, enc Encoder, log *slog.Logger, opts Options) *Catalog {
	if opts.Max <= 0 {
		opts.Max = 10_000
	}
	if opts.CacheMax <= 0 {
		opts.CacheMax = 10_000
	}
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Catalog{src: src, enc: enc, log: log, opts: opts, ix: search.New(),
		known: map[string]*known{}, cache: map[string]*View{}, bans: map[string]stuff.Ban{},
		trigger: make(chan struct{}, 1)}
}

// Loaded reports whether the catalog has been loaded from the database.
func (c *Catalog) Loaded() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.loaded
}

// Resident reports whether Page serves the page at offset of limit
// listings from memory alone: false before the catalog is loaded, and for a
// page reaching past the newest ReadModelMax listings, which reads the
// database (a scan on FerretDB).
func (c *Catalog) Resident(offset, limit int) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.loaded && (c.floor == nil || offset+limit <= len(c.list))
}

// Page returns the JSON of the available listings from offset to
// offset+limit, newest first, and how many there are in all.
func (c *Catalog) Page(ctx context.Context, offset, limit int) (items [][]byte, total int, err error) {
	c.mu.RLock()
	if !c.loaded {
		c.mu.RUnlock()
		if err := c.loadBans(ctx); err != nil {
			return nil, 0, err
		}
		return c.fromDB(ctx, nil, offset, limit, nil)
	}
	n := len(c.list)
	if c.floor == nil || offset+limit <= n {
		items = make([][]byte, 0, max(0, min(limit, n-offset)))
		for i := offset; i < n && i < offset+limit; i++ {
			items = append(items, c.list[i].json)
		}
		total = n
		if c.floor != nil {
			total += c.below
		}
		c.mu.RUnlock()
		return items, total, nil
	}
	// The page reaches past the floor: what the list has, then the rest
	// from the database.
	floor := *c.floor
	for i := offset; i < n; i++ {
		items = append(items, c.list[i].json)
	}
	c.mu.RUnlock()
	items, past, err := c.fromDB(ctx, &floor, max(0, offset-n), limit-len(items), items)
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	if c.floor != nil && *c.floor == floor {
		c.below = past // exact as of now: what in-memory pages count next
	}
	c.mu.Unlock()
	return items, past + n, nil
}

func (c *Catalog) fromDB(ctx context.Context, after *stuff.Key, skip, limit int, items [][]byte) ([][]byte, int, error) {
	c.mu.RLock()
	hidden := c.hidden
	c.mu.RUnlock()
	ss, total, err := c.src.AvailableAfter(ctx, after, skip, limit, hidden)
	if err != nil {
		return nil, 0, err
	}
	for i := range ss {
		items = append(items, c.enc(&ss[i], false))
	}
	return items, total, nil
}

// Get returns listing id from the cache, or reads it from the database and
// caches it. It returns errs.ErrNotFound for an unknown id and for a listing
// of a banned seller.
func (c *Catalog) Get(ctx context.Context, id string) (*View, error) {
	c.mu.RLock()
	v := c.cache[id]
	hide := v != nil && c.banned(v.s.UserID)
	c.mu.RUnlock()
	if hide {
		return nil, errs.ErrNotFound
	}
	if v != nil {
		return v, nil
	}
	if !c.Loaded() {
		if err := c.loadBans(ctx); err != nil {
			return nil, err
		}
	}
	readAt := c.opts.Now()
	s, err := c.src.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	v = c.view(&s, nil, readAt)
	c.mu.Lock()
	c.putView(v)
	hide = c.banned(s.UserID)
	c.mu.Unlock()
	if hide {
		return nil, errs.ErrNotFound
	}
	return v, nil
}

// view builds the View of s; public is its JSON without delivery when
// already encoded.
func (c *Catalog) view(s *stuff.Stuff, public []byte, at time.Time) *View {
	if public == nil {
		public = c.enc(s, false)
	}
	v := &View{s: *s, public: public, enc: c.enc, at: at}
	v.s.Orders = nil
	return v
}

// putView caches v unless a newer state is cached; the same state only
// renews the confirmation time. Call with mu held.
func (c *Catalog) putView(v *View) {
	id := v.s.ID
	if old := c.cache[id]; old != nil {
		switch {
		case old.s.Version > v.s.Version:
			return
		case old.s.Version == v.s.Version && !v.at.After(old.at):
			return
		}
	} else if len(c.cache) >= c.opts.CacheMax {
		for k := range c.cache { // evict an arbitrary listing
			delete(c.cache, k)
			break
		}
	}
	c.cache[id] = v
}

// Apply takes a saved state of a listing (every field) into the list and the
// cache unless a newer state is known. Writers call it after every save.
func (c *Catalog) Apply(s stuff.Stuff) {
	now := c.opts.Now()
	e := newEntry(&s, c.enc(&s, false), s.Status == stuff.Available)
	v := c.view(&s, e.json, now)
	c.mu.Lock()
	defer c.unlock()
	c.applyList(s.ID, s.Version, s.Status == stuff.Available, e, now)
	c.putView(v)
}

// unlock brings the search index's vocabulary up to date and releases mu:
// every writer of the list unlocks through it.
func (c *Catalog) unlock() {
	c.ix.Flush()
	c.mu.Unlock()
}

// index adds e to the search index. Call with mu held.
func (c *Catalog) index(e *entry) {
	if e.indexed {
		return
	}
	a := e.an
	if a == nil {
		an := search.Analyze(e.title, e.desc)
		a = &an
	}
	e.slot, e.indexed, e.an = c.ix.Add(*a), true, nil
	c.changes++
	if int(e.slot) >= len(c.slots) {
		c.slots = append(c.slots, make([]*entry, int(e.slot)+1-len(c.slots))...)
		c.prices = append(c.prices, make([]int64, int(e.slot)+1-len(c.prices))...)
	}
	c.slots[e.slot] = e
	c.prices[e.slot] = e.price
}

// unindex takes e out of the search index. Call with mu held.
func (c *Catalog) unindex(e *entry) {
	if !e.indexed {
		return
	}
	c.ix.Remove(e.slot)
	c.slots[e.slot] = nil
	e.indexed = false
	c.changes++
}

// cmpPrice orders byPrice: cheapest first, then newest first.
func cmpPrice(a, b *entry) int {
	switch {
	case a.price != b.price:
		return cmp.Compare(a.price, b.price)
	case a.key.Before(b.key):
		return -1
	case b.key.Before(a.key):
		return 1
	}
	return 0
}

// unlist takes e out of byPrice and the index (it has left list). Call with
// mu held.
func (c *Catalog) unlist(e *entry) {
	if i, ok := slices.BinarySearchFunc(c.byPrice, e, cmpPrice); ok && c.byPrice[i] == e {
		c.byPrice = slices.Delete(c.byPrice, i, i+1)
	}
	c.unindex(e)
}

// Refresh makes sure version of listing id is applied: when it is newer than
// what the catalog holds, the listing is re-read from the database (the
// event does not carry every field). It is what the broadcast listeners of
// stuff:created and stuff:updated call.
func (c *Catalog) Refresh(ctx context.Context, id string, version int64) error {
	c.mu.RLock()
	listed, cached := int64(0), int64(1<<62)
	if k := c.known[id]; k != nil {
		listed = k.version
	}
	if v := c.cache[id]; v != nil {
		cached = v.s.Version
	}
	c.mu.RUnlock()
	if listed >= version && cached >= version {
		return nil
	}
	s, err := c.src.Get(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return nil // not ours: nothing to show
	}
	if err != nil {
		return err
	}
	c.Apply(s)
	return nil
}

// applyList moves listing id to where its new state puts it. Call with mu
// held.
func (c *Catalog) applyList(id string, version int64, available bool, e *entry, now time.Time) {
	k := c.known[id]
	if k != nil && k.version >= version {
		return
	}
	if k == nil {
		k = &known{}
		c.known[id] = k
	}
	k.version, k.at = version, now
	if k.e != nil {
		c.remove(k.e)
		k.e = nil
	}
	if !available || c.banned(e.seller) || (c.floor != nil && c.floor.Before(e.key)) {
		return
	}
	i, _ := slices.BinarySearchFunc(c.list, e.key, cmpKey)
	c.list = slices.Insert(c.list, i, e)
	j, _ := slices.BinarySearchFunc(c.byPrice, e, cmpPrice)
	c.byPrice = slices.Insert(c.byPrice, j, e)
	c.index(e)
	k.e = e
	c.truncate()
}

// truncate keeps at most Max listings, raising the floor. Call with mu held.
func (c *Catalog) truncate() {
	for len(c.list) > c.opts.Max {
		last := c.list[len(c.list)-1]
		c.list = c.list[:len(c.list)-1]
		c.unlist(last)
		if k := c.known[last.key.ID]; k != nil && k.e == last {
			k.e = nil
		}
		c.below++
		f := c.list[len(c.list)-1].key
		c.floor = &f
	}
}

func (c *Catalog) remove(e *entry) {
	if i, ok := slices.BinarySearchFunc(c.list, e.key, cmpKey); ok {
		c.list = slices.Delete(c.list, i, i+1)
	}
	c.unlist(e)
}

func cmpKey(e *entry, k stuff.Key) int {
	switch {
	case e.key.Before(k):
		return -1
	case k.Before(e.key):
		return 1
	}
	return 0
}

// ApplyBan takes what b says of a user's bans (an event, or the store). When
// it makes the user banned, their listings leave the list at once; when it
// lifts their ban, a reconcile reads them back. Either way a reconcile
// recounts the listings past the floor.
func (c *Catalog) ApplyBan(b stuff.Ban) {
	c.mu.Lock()
	changed := c.mergeBan(b)
	c.unlock()
	if changed {
		c.Trigger()
	}
}

// mergeBan merges b into the known bans and reports whether that changed
// whether the user is banned; a newly banned seller's listings leave the
// list. Call with mu held.
func (c *Catalog) mergeBan(b stuff.Ban) bool {
	cur, ok := c.bans[b.UserID]
	if !ok {
		cur = stuff.Ban{UserID: b.UserID}
	}
	was := cur.Banned()
	if !cur.Merge(b) {
		return false
	}
	c.bans[b.UserID] = cur
	if cur.Banned() == was {
		return false
	}
	hidden := make([]string, 0, len(c.hidden)+1)
	for _, id := range c.hidden {
		if id != b.UserID {
			hidden = append(hidden, id)
		}
	}
	if cur.Banned() {
		hidden = append(hidden, b.UserID)
		kept := c.list[:0]
		for _, e := range c.list {
			if e.seller != b.UserID {
				kept = append(kept, e)
				continue
			}
			c.unindex(e)
			if k := c.known[e.key.ID]; k != nil && k.e == e {
				k.e = nil
			}
		}
		clear(c.list[len(kept):])
		c.list = kept
		c.byPrice = slices.DeleteFunc(c.byPrice, func(e *entry) bool { return e.seller == b.UserID })
	}
	c.hidden = hidden
	return true
}

// loadBans merges every stored ban. Reconcile calls it; so do reads while
// the catalog is not loaded (they go to the database, and must leave banned
// sellers out there too).
func (c *Catalog) loadBans(ctx context.Context) error {
	bans, err := c.src.Bans(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.unlock()
	for _, b := range bans {
		c.mergeBan(b)
	}
	return nil
}

// banned reports whether seller is banned. Call with mu held.
func (c *Catalog) banned(seller string) bool {
	b, ok := c.bans[seller]
	return ok && b.Banned()
}

// Trigger asks Run for a reconcile now; it never blocks. The service calls
// it on every connection to NATS.
func (c *Catalog) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run loads the catalog if New's caller could not (retrying every second),
// then reconciles on Trigger and every ReconcileEvery until ctx ends.
func (c *Catalog) Run(ctx context.Context) {
	for !c.Loaded() {
		if err := c.Reconcile(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("catalog: load failed; listings are read from the database", "err", err)
		}
		if c.Loaded() {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	t := time.NewTicker(c.opts.ReconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.trigger:
		case <-t.C:
		}
		if err := c.Reconcile(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("catalog: reconcile failed", "err", err)
		}
	}
}

// Reconcile reads the stored bans, then reloads the newest Max available
// listings of sellers not banned from the database and merges them with what
// was applied meanwhile (newer versions win), renews their cached views,
// evicts cached views it cannot confirm, then re-reads listings it lists but
// the database did not return (reserved or sold while this replica missed
// the event, or created after the query). It is how the catalog loads and
// how it heals after missed events.
func (c *Catalog) Reconcile(ctx context.Context) error {
	c.reconMu.Lock()
	defer c.reconMu.Unlock()
	start := c.opts.Now()
	if err := c.loadBans(ctx); err != nil {
		return err
	}
	c.mu.RLock()
	hidden := c.hidden
	c.mu.RUnlock()
	docs, err := c.src.Available(ctx, c.opts.Max+1, hidden)
	if err != nil {
		return err
	}
	complete := len(docs) <= c.opts.Max
	var total int
	if !complete {
		docs = docs[:c.opts.Max]
		if total, err = c.src.CountAvailable(ctx, hidden); err != nil {
			return err
		}
	}
	fresh := make([]*entry, len(docs))
	views := make([]*View, len(docs))
	// A listing listed at the same version keeps its entry, and so its
	// place in the search index; the others are encoded and analysed here,
	// outside the lock.
	c.mu.RLock()
	for i := range docs {
		if k := c.known[docs[i].ID]; k != nil && k.e != nil && k.version == docs[i].Version {
			fresh[i] = k.e
		}
	}
	c.mu.RUnlock()
	for i := range docs {
		if fresh[i] == nil {
			fresh[i] = newEntry(&docs[i], c.enc(&docs[i], false), true)
		}
		views[i] = c.view(&docs[i], fresh[i].json, start)
	}

	c.mu.Lock()
	snap := make(map[string]int64, len(docs))
	list := make([]*entry, 0, len(docs))
	next := make(map[string]*known, len(docs))
	for i := range docs {
		id := docs[i].ID
		snap[id] = docs[i].Version
		if old := c.cache[id]; old != nil || len(c.cache) < c.opts.CacheMax {
			c.putView(views[i])
		}
		if k := c.known[id]; k != nil && k.version > docs[i].Version {
			continue // applied meanwhile: handled with the others below
		}
		if c.banned(docs[i].UserID) { // banned while the query ran
			next[id] = &known{version: docs[i].Version, at: start}
			continue
		}
		list = append(list, fresh[i])
		next[id] = &known{version: docs[i].Version, at: start, e: fresh[i]}
	}
	for id, k := range c.known {
		if next[id] != nil {
			continue
		}
		sv, inSnap := snap[id]
		switch {
		case k.e != nil:
			// Listed here and newer than (or absent from) the snapshot.
			list = append(list, k.e)
			next[id] = k
		case inSnap && k.version > sv, !k.at.Before(start):
			next[id] = k // a newer state than the snapshot's: keep it
		}
	}
	for id, v := range c.cache {
		if _, ok := snap[id]; !ok && v.at.Before(start) && (next[id] == nil || next[id].at.Before(start)) {
			delete(c.cache, id) // not confirmed by this reconcile nor by an event since it began
		}
	}
	slices.SortFunc(list, func(a, b *entry) int { return cmpKey(a, b.key) })
	old := c.list
	c.list, c.known, c.loaded = list, next, true
	c.floor, c.below = nil, 0
	if !complete {
		f := docs[len(docs)-1].Key()
		c.floor = &f
		c.below = total - len(docs)
		for len(c.list) > 0 && f.Before(c.list[len(c.list)-1].key) {
			last := c.list[len(c.list)-1]
			c.list = c.list[:len(c.list)-1]
			if k := c.known[last.key.ID]; k != nil && k.e == last {
				k.e = nil
			}
		}
	}
	c.byPrice = nil // rebuilt below; truncate has nothing to take out of it
	c.truncate()
	// The index follows the new list: out with the entries that left it, in
	// with those that joined it.
	c.gen++
	for _, e := range c.list {
		e.mark = c.gen
	}
	for _, e := range old {
		if e.mark != c.gen {
			c.unindex(e)
		}
	}
	for _, e := range c.list {
		c.index(e)
	}
	c.byPrice = slices.SortedFunc(slices.Values(c.list), cmpPrice)
	// Listed but not in the snapshot: reserved or sold while this replica
	// missed the event, or created after the query. The database says.
	var recheck []string
	for _, e := range c.list {
		if _, ok := snap[e.key.ID]; !ok {
			recheck = append(recheck, e.key.ID)
		}
	}
	c.unlock()

	for _, id := range recheck {
		s, err := c.src.Get(ctx, id)
		if errors.Is(err, errs.ErrNotFound) {
			c.mu.Lock()
			c.applyList(id, 1<<62, false, nil, c.opts.Now())
			delete(c.cache, id)
			c.unlock()
			continue
		}
		if err != nil {
			return err
		}
		c.Apply(s)
	}
	return nil
}
