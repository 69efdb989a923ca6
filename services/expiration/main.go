// Command expiration runs the expiration service: durable timers for order
// deadlines, published as expiration:complete events.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/stuffmart/stuffmart/services/expiration/app"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("service", app.Name)
	cfg, err := app.LoadConfig(os.Getenv)
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}
