package handlers

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/stuffmart/stuffmart/client/internal/api"
)

// Sellers' display names, for the stuff pages ("Sold by …") and the seller
// pages. A name is one call to auth (GET /api/users/:id), kept here for
// nameTTL (auth lets anyone keep it that long), so that a stuff page costs
// no call to auth for a seller seen in the last minute. A name that cannot
// be fetched (auth down or slow) is tried again after nameRetry, and never
// holds a page longer than nameWait: the page then shows a neutral label.

const (
	// nameTTL is how long a name (or "no such user") is kept: auth's own
	// Cache-Control max-age of the answer.
	nameTTL = time.Minute
	// nameRetry is how long a failure to fetch a name is remembered: a
	// down auth costs one call per seller per nameRetry, not one per page.
	nameRetry = 5 * time.Second
	// nameWait bounds the wait for auth on a page: a slow auth must not
	// slow the stuff pages, which show a neutral label instead. The fetch
	// goes on (up to nameFetch) and a late name serves the next pages.
	nameWait  = 500 * time.Millisecond
	nameFetch = 5 * time.Second
	// namesMax bounds the names kept.
	namesMax = 20_000
)

// sellerName is what the storefront knows of a seller's name.
type sellerName struct {
	// name is the display name; "" when unknown or not fetched.
	name string
	// missing: auth does not know the user (or it is banned).
	missing bool
	// failed: auth did not answer; the name is unknown for now.
	failed bool
}

type nameEntry struct {
	sellerName
	at time.Time
}

// names is the cache of sellers' names.
type names struct {
	fetch  func(ctx context.Context, id string) (api.PublicUser, error)
	now    func() time.Time
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]nameEntry
	swept   time.Time
}

func newNames(fetch func(ctx context.Context, id string) (api.PublicUser, error), now func() time.Time) *names {
	return &names{fetch: fetch, now: now, entries: map[string]nameEntry{}}
}

// get returns seller id's name: from the cache while fresh, else asked of
// auth (once for concurrent callers), waiting at most nameWait for it.
func (n *names) get(ctx context.Context, id string) sellerName {
	now := n.now()
	n.mu.Lock()
	e, ok := n.entries[id]
	n.mu.Unlock()
	if ok {
		ttl := nameTTL
		if e.failed {
			ttl = nameRetry
		}
		if age := now.Sub(e.at); age >= 0 && age < ttl {
			return e.sellerName
		}
	}
	ch := n.flight.DoChan(id, func() (any, error) {
		// Detached from the first caller, so its cancel does not fail the
		// others, and from the page's wait: a slow answer is kept.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nameFetch)
		defer cancel()
		u, err := n.fetch(fctx, id)
		var sn sellerName
		switch {
		case err == nil:
			sn.name = u.Name
		case api.StatusOf(err) == http.StatusNotFound:
			sn.missing = true
		default:
			sn.failed = true
		}
		n.put(id, nameEntry{sellerName: sn, at: n.now()})
		return sn, nil
	})
	wait := time.NewTimer(nameWait)
	defer wait.Stop()
	select {
	case r := <-ch:
		return r.Val.(sellerName)
	case <-wait.C:
		return sellerName{failed: true} // for this page; the fetch goes on
	case <-ctx.Done():
		return sellerName{failed: true}
	}
}

func (n *names) put(id string, e nameEntry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.entries) >= namesMax {
		// Drop what has expired, at most once per nameRetry; then, still
		// full, any: the cache is only a shortcut.
		if now := n.now(); now.Sub(n.swept) >= nameRetry {
			for k, old := range n.entries {
				if now.Sub(old.at) >= nameTTL || (old.failed && now.Sub(old.at) >= nameRetry) {
					delete(n.entries, k)
				}
			}
			n.swept = now
		}
		for k := range n.entries {
			if len(n.entries) < namesMax {
				break
			}
			delete(n.entries, k)
		}
	}
	n.entries[id] = e
}
