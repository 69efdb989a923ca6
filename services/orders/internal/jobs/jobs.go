// Package jobs runs the orders service's periodic background work: the
// sweep that cancels orders left created past their deadline, and the
// pruning of what the service no longer needs to keep. Each job calls the
// orders domain, which holds the rules; this package only repeats it,
// logs what it did and tries again at the next tick when it fails.
package jobs

import (
	"context"
	"log/slog"
	"time"
)

// Job is one periodic piece of work.
type Job struct {
	// Name says what it does, in the logs.
	Name string
	// Every is the pause between two runs; the first run is one pause after
	// the start (the database may not answer at once).
	Every time.Duration
	// Do does the work once and returns how many things it changed.
	Do func(ctx context.Context) (int, error)
}

// Run runs j every j.Every until ctx ends. A failed run is logged and the
// work tried again at the next tick: every job is idempotent.
func Run(ctx context.Context, log *slog.Logger, j Job) {
	t := time.NewTicker(j.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := j.Do(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn(j.Name+": failed; will run again", "changed", n, "err", err)
		case n > 0:
			log.Info(j.Name, "changed", n)
		}
	}
}
