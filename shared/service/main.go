package service

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Main is the whole body of a service's main function: a JSON log/slog
// logger on stdout, the configuration read once from the environment by
// load, then run until SIGINT or SIGTERM. It exits with status 1 when the
// configuration is bad or run fails, after logging why.
func Main[C any](name string, load func(getenv func(string) string) (C, error), run func(context.Context, C, *slog.Logger) error) {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("service", name)
	cfg, err := load(os.Getenv)
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}
