package api

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// The services keep replicas of one another's data, filled from events
// (docs/events.md): orders learns of a stuff from stuff:created, payments of
// an order from order:created. An event trails the write that caused it by
// a few milliseconds, so a call made right after that write may be answered
// 404 by a replica that has not heard of it yet. The clients retry such a
// call briefly (awaitReplica), so that handlers never retry and a visitor
// is never told that what they just listed or ordered does not exist.

// replicaWait bounds how long a call is retried while a replica catches up.
const replicaWait = 3 * time.Second

// The pause between retries starts at replicaFirstWait and doubles up to
// replicaMaxWait: most replicas catch up within milliseconds, and a slow one
// is not asked more than a few times a second.
const (
	replicaFirstWait = 25 * time.Millisecond
	replicaMaxWait   = 400 * time.Millisecond
)

// awaitReplica returns call's first answer that is not a 404, calling it
// again for up to replicaWait after the first 404; call is told the number
// of its attempt, from 0 (a create derives each attempt's key from it:
// attemptKey). known, when not nil, is asked once after that first 404
// whether the thing exists at its source: when it does not, the 404 is
// final at once. When ctx ends meanwhile, the last answer is returned with
// ctx's error joined to its error.
func awaitReplica[T any](ctx context.Context, call func(attempt int) (T, error), known func() bool) (T, error) {
	v, err := call(0)
	if StatusOf(err) != http.StatusNotFound || (known != nil && !known()) {
		return v, err
	}
	deadline := time.Now().Add(replicaWait)
	attempt := 0
	for wait := replicaFirstWait; StatusOf(err) == http.StatusNotFound && time.Now().Add(wait).Before(deadline); wait = min(2*wait, replicaMaxWait) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, errors.Join(err, ctx.Err())
		case <-t.C:
		}
		attempt++
		v, err = call(attempt)
	}
	return v, err
}
