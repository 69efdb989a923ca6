// Command payments runs the Stuffmart payments service: charges (Stripe, or
// an offline test mode), coupons and refunds under /api/payments.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/stuffmart/stuffmart/services/payments/app"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := app.LoadConfig(os.Getenv)
	if err != nil {
		log.Error("configuration", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("payments stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
