package store

import (
	"context"
	"sync"
	"time"
)

// flight makes concurrent reads of one key share a single query: when 200
// buyers click BUY on one stuff at once, FerretDB (which answers a few
// hundred reads a second) reads the stuff once, not 200 times. A caller that
// joins a read in flight gets a result at most one query old, as if it had
// come a few milliseconds earlier; nothing is cached after the query ends.
type flight[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// flightTimeout bounds the shared query, which does not end when the caller
// who started it gives up (the others still wait for it).
const flightTimeout = 10 * time.Second

func (f *flight[T]) do(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) (T, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]*call[T])
	}
	if c, ok := f.calls[key]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.val, c.err
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
	c := &call[T]{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()

	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
	c.val, c.err = fn(qctx)
	cancel()

	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	close(c.done)
	return c.val, c.err
}
