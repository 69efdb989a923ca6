package users

import (
	"strings"
	"sync"
	"time"
)

// DefaultProfileTTL is how long a replica of auth answers a public read
// (Profile) from memory: the seller pages ask for the same names again and
// again, and each read by _id costs the embedded FerretDB about half a
// millisecond of its CPU. A rename, ban or unban made through this replica
// shows at once; one made through another replica within this time.
const DefaultProfileTTL = 30 * time.Second

// maxProfiles bounds the memory of the cache: about 100 bytes an entry.
const maxProfiles = 50_000

// profileCache keeps the answers of Profile for a while: the id and display
// name of an account, or that it has no public profile. It never holds the
// email, the password hash or anything else of the account.
//
// Keys are ids in lower case, as MongoDB reads an ObjectID in either case.
// A read that raced with a change (a forget between the read's start and its
// put) is not kept, so a change is never hidden by the read that preceded
// it.
type profileCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]profileEntry
	// gen counts forgets; a put carries the gen its read started at.
	gen uint64
}

type profileEntry struct {
	id    string // the account's id as stored (lower case)
	name  string // the display name; "" when gone
	gone  bool   // unknown, malformed or banned
	until time.Time
}

func newProfileCache(ttl time.Duration) *profileCache {
	return &profileCache{ttl: ttl, m: map[string]profileEntry{}}
}

// get returns the entry of id if it is still fresh at now, and else the
// generation to put the answer of a read with.
func (c *profileCache) get(id string, now time.Time) (profileEntry, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[strings.ToLower(id)]
	if !ok || !now.Before(e.until) {
		return profileEntry{}, c.gen, false
	}
	return e, c.gen, true
}

// put keeps e for id from now, unless something was forgotten since gen
// (from get, before the read). Only ids of an ObjectID's length are kept
// (others are malformed, answered without a database read anyway), and a
// full cache drops what expired, or else arbitrary entries until one fits.
func (c *profileCache) put(id string, e profileEntry, now time.Time, gen uint64) {
	if len(id) != 24 {
		return
	}
	e.until = now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.m) >= maxProfiles {
		for k, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // an arbitrary one, not the popular ones with it
			if len(c.m) < maxProfiles {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[strings.ToLower(id)] = e
}

// forget drops what is kept of id, after a change of its name or ban.
func (c *profileCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, strings.ToLower(id))
}
