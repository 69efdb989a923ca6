package users

import (
	"sync"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Limiter allows a request of key, or says how long until one is allowed.
// *ratelimit.Limiter (shared) implements it, a nil one allowing everything.
type Limiter interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// unlimited is the Limiter of a limit not configured.
type unlimited struct{}

func (unlimited) Allow(string) (bool, time.Duration) { return true, 0 }

// BackoffLimit names the sign-in backoff's refusals in
// ratelimit_refused_total{limit} (the limits go by their setting's name).
const BackoffLimit = "signin_backoff"

// tooMany is the 429 of the limit or the backoff named limit.
func tooMany(wait time.Duration, limit string) error {
	return &errs.TooManyRequestsError{RetryAfter: wait, Limit: limit}
}

// limitName is the name of l's rule when it tells it (*ratelimit.Limiter
// does), for the metrics of its refusals.
func limitName(l Limiter) string {
	if n, ok := l.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}

// The sign-in backoff's schedule (see Backoff).
const (
	// BackoffFree is how many failed sign-ins in a row an account gets
	// without delay: enough for a person who mistypes.
	BackoffFree = 5
	// BackoffFirst is the delay after the BackoffFree-th failure; each
	// further failure doubles it.
	BackoffFirst = 5 * time.Second
	// BackoffMax caps the delay: an attacker who keeps failing from one
	// network is held to a guess every five minutes there, twelve an hour,
	// well under the account's own limit (SIGNIN_ACCOUNT_LIMIT, sixty an
	// hour), so one network alone cannot spend it and hold the owner up.
	BackoffMax = 5 * time.Minute
	// BackoffForget ends a run of failures: one more this long after the
	// last counts as the first.
	BackoffForget = 15 * time.Minute
)

// Backoff slows password guessing against one account from one client
// network (a run's key is backoffKey: the email and the caller's address,
// an IPv6 one by its /64). After BackoffFree failed sign-ins in a row for
// a key, sign-in for it is refused (before any password is checked) for
// BackoffFirst, doubled with each further failure up to BackoffMax; a
// successful sign-in forgets the failures of its key. Unknown emails back
// off alike, so that a refusal does not tell which accounts exist.
//
// Keyed by network as well as by account, the backoff cannot be turned
// against the owner: an attacker who keeps failing holds their own network
// to one guess every BackoffMax (tries sent together included: Wait
// reserves the one it lets through), while the owner, elsewhere, signs in
// as ever. An attacker with many networks gets BackoffFree free guesses and
// one every BackoffMax on each: the per-account rate limit
// (SIGNIN_ACCOUNT_LIMIT, sixty an hour by default, which a try refused here
// does not use up) caps them all together, and only an attack from as many
// networks as that limit allows guesses every BackoffMax (five by default:
// 5 × 12 = 60 an hour) can hold up the owner's new sign-ins (signed-in
// sessions keep working).
//
// State is per process: with several replicas of auth, each counts the
// failures it sees, so an attacker whose requests are spread over n
// replicas gets up to n times BackoffFree free guesses and each replica's
// delay apart; the per-account rate limit bounds the total. A restart
// forgets every run. Memory holds one small entry per email and network
// that failed in the last BackoffForget, which the per-client limits bound.
//
// A nil *Backoff never refuses (limits off). Safe for concurrent use.
type Backoff struct {
	now func() time.Time

	mu      sync.Mutex
	runs    map[string]*run
	calls   int
	tickets uint64 // the last reservation's
}

// backoffKey is the key of the Backoff run of sign-ins for email from
// client (its network, as the rate limits key it).
func backoffKey(email, client string) string { return email + " " + client }

// run is the failures in a row of one key.
type run struct {
	failures int
	last     time.Time // of the last failure
	until    time.Time // refused before it
	// ticket is the reservation of the try Wait let through last (0: none):
	// until was moved as if it had failed; before is until as it was.
	ticket uint64
	before time.Time
}

// NewBackoff returns a Backoff on the clock now (time.Now when nil).
func NewBackoff(now func() time.Time) *Backoff {
	if now == nil {
		now = time.Now
	}
	return &Backoff{now: now, runs: map[string]*run{}}
}

// Wait is how long sign-in for key must wait; 0 means it may go ahead.
// A try that may go ahead once the run is one failure short of backing off
// (or backing off already) is reserved: until it ends (Failed, Succeeded,
// or Released with its ticket when it could not check the password),
// others wait as if it had failed. So tries sent together when a wait ends
// get one guess, not one each. ticket is the reservation (0: none).
func (b *Backoff) Wait(key string) (wait time.Duration, ticket uint64) {
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.runs[key]
	now := b.now()
	if r == nil || now.Sub(r.last) >= BackoffForget && !now.Before(r.until) {
		return 0, 0
	}
	if wait := r.until.Sub(now); wait > 0 {
		return wait, 0
	}
	if r.failures >= BackoffFree-1 {
		b.tickets++
		r.ticket, r.before = b.tickets, r.until
		r.until = now.Add(backoffDelay(r.failures + 1))
		return 0, r.ticket
	}
	return 0, 0
}

// Released ends the try of ticket for key, which could not check the
// password (the database or bcrypt failed): its reservation is lifted, so
// the next try need not wait for a guess never made. A reservation taken
// since by another try stays. A try refused by another limit is not
// released: it counts as made, so a network that keeps trying while the
// account's limit is spent does not get to try again at once.
func (b *Backoff) Released(key string, ticket uint64) {
	if b == nil || ticket == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.runs[key]; r != nil && r.ticket == ticket {
		r.until, r.ticket = r.before, 0
	}
}

// Failed counts a failed sign-in for key.
func (b *Backoff) Failed(key string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.sweep(now)
	r := b.runs[key]
	if r == nil || now.Sub(r.last) >= BackoffForget {
		r = &run{}
		b.runs[key] = r
	}
	r.failures++
	r.last = now
	r.ticket = 0
	if r.failures >= BackoffFree {
		r.until = now.Add(backoffDelay(r.failures))
	}
}

// Succeeded forgets the failures of key.
func (b *Backoff) Succeeded(key string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.runs, key)
}

// backoffDelay is the delay after the n-th failure in a row (n ≥
// BackoffFree).
func backoffDelay(n int) time.Duration {
	d := BackoffFirst
	for i := BackoffFree; i < n && d < BackoffMax; i++ {
		d *= 2
	}
	return min(d, BackoffMax)
}

// sweep drops, every thousand failures, the runs that are over; called
// with b.mu held.
func (b *Backoff) sweep(now time.Time) {
	b.calls++
	if b.calls%1000 != 0 {
		return
	}
	for key, r := range b.runs {
		if now.Sub(r.last) >= BackoffForget && !now.Before(r.until) {
			delete(b.runs, key)
		}
	}
}
