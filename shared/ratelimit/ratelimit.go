// Package ratelimit limits how often one client (an address, an account) may
// do something, with a token bucket per key from golang.org/x/time/rate.
//
// State is per process: with several replicas behind a load balancer a
// client gets up to the limit on each replica it reaches (at most replicas ×
// the limit in all), which still bounds abuse to a small multiple and needs
// no shared store. The buckets of keys not seen for a while are dropped, so
// memory stays bounded by the number of recent clients.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rule is a rate and a burst: Every is the time one more request is earned
// (1/rate), Burst how many may come at once.
type Rule struct {
	Every time.Duration
	Burst int
	// Name names the limit in metrics and logs (service.Rule sets the
	// lower-cased variable name: "rate_limit_unsafe").
	Name string
}

// ParseRule reads a rule written "N/unit" or "N/unit burst B", unit s, m or
// h: "10/s" (ten a second, burst ten), "5/m burst 5", "100/h burst 20".
func ParseRule(s string) (Rule, error) {
	fields := strings.Fields(s)
	if len(fields) != 1 && !(len(fields) == 3 && fields[1] == "burst") {
		return Rule{}, fmt.Errorf("rate %q: want N/s, N/m or N/h, optionally followed by burst B", s)
	}
	n, unit, ok := strings.Cut(fields[0], "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return Rule{}, fmt.Errorf("rate %q: want a positive count before the slash", s)
	}
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if per == 0 {
		return Rule{}, fmt.Errorf("rate %q: the unit is s, m or h", s)
	}
	r := Rule{Every: per / time.Duration(count), Burst: count}
	if len(fields) == 3 {
		b, err := strconv.Atoi(fields[2])
		if err != nil || b < 1 {
			return Rule{}, fmt.Errorf("rate %q: want a positive burst", s)
		}
		r.Burst = b
	}
	return r, nil
}

// String describes the rule for logs.
func (r Rule) String() string {
	return fmt.Sprintf("one per %s, burst %d", r.Every, r.Burst)
}

// Limiter holds one bucket per key. It is safe for concurrent use; a nil
// *Limiter allows everything (limits switched off).
type Limiter struct {
	rule Rule
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

// New returns a limiter applying rule to every key; now is the clock
// (time.Now when nil).
func New(rule Rule, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rule: rule, now: now, buckets: map[string]*bucket{}}
}

// Allow takes one request of key from its bucket. When the bucket is empty
// it takes nothing and returns false with how long until one is earned.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(rate.Every(l.rule.Every), l.rule.Burst)}
		l.buckets[key] = b
	}
	b.seen = now
	l.gc(now)
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		// Up to the millisecond: the bucket's float arithmetic leaves a
		// nanosecond short of the true wait.
		return false, (d + time.Millisecond - 1).Truncate(time.Millisecond)
	}
	return true, 0
}

// Name is the name of the limiter's rule.
func (l *Limiter) Name() string {
	if l == nil {
		return ""
	}
	return l.rule.Name
}

// Forget drops key's bucket (a successful sign-in clears its failures).
func (l *Limiter) Forget(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, key)
}

// gc drops, every thousand calls, the buckets idle long enough to be full
// again; called with l.mu held.
func (l *Limiter) gc(now time.Time) {
	l.calls++
	if l.calls%1000 != 0 {
		return
	}
	full := l.rule.Every * time.Duration(l.rule.Burst)
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
}

// Len is how many keys have a bucket (tests, metrics).
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
