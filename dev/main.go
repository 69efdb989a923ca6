// Command dev runs the whole Stuffmart stack on one machine: what `make dev`
// runs, as `go run ./dev` from the repository root. It needs nothing but Go:
// MongoDB is an embedded FerretDB (SQLite files) and NATS Streaming an
// embedded nats-streaming-server (file store), both kept under DATA_DIR, so a
// second run finds the users, listings and orders of the first.
//
// Every service runs in-process on its own 127.0.0.1 port, configured through
// the same variables its Kubernetes Deployment sets, behind a gateway on PORT
// that routes like the ingress (/api/users → auth, …, everything else →
// client).
//
// Environment (all optional):
//
//	PORT               gateway port (default 8080; 0 picks a free one)
//	DATA_DIR           local data (default .data). A relative path is relative
//	                   to the current directory, which for `make dev` is the
//	                   repository root; a Makefile that cds into dev/ must pass
//	                   DATA_DIR=$(CURDIR)/.data.
//	JWT_KEY            access-token key, SESSION_KEY cookie key: generated on
//	SESSION_KEY        first run and kept in DATA_DIR/secrets.json (mode 0600)
//	                   so sessions survive a restart; a variable that is set wins.
//	ACCESS_TOKEN_TTL   default 15m
//	ORDER_HOLD         default 15m
//	STRIPE_SECRET_KEY  unset: payments run in offline test mode, card payments
//	                   on a stand-in for Stripe Checkout's page
//	STRIPE_WEBHOOK_SECRET  signs card payments' webhook events: generated
//	                   into DATA_DIR/secrets.json unless set; with
//	                   STRIPE_SECRET_KEY it must be set (the whsec_ of
//	                   `stripe listen --forward-to localhost:8080/api/payments/webhook`)
//	STRIPE_API_URL     another Stripe API base (stripe-mock); unset: Stripe's own
//	RATE_LIMIT         on (default) or off (load tests)
//	DEBUG_ADDR         a loopback host:port serving the process's profiles
//	                   (net/http/pprof); unset: none
//	LOG_LEVEL          debug, info (default), warn or error
//
// Ctrl-C stops everything in reverse order (gateway, services, NATS,
// FerretDB); a second Ctrl-C kills the process at once.
//
// Admins are made by the operator, from accounts that exist: sign up, then
//
//	go run ./dev admin grant EMAIL    make the account an admin
//	go run ./dev admin revoke EMAIL   make it a user again, ending its sessions
//	go run ./dev admin list           list the admins
//
// on the same DATA_DIR, whether the stack runs or not (stack.Admin). A
// session shows a new role at its next refresh, or at once after signing in
// again.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stuffmart/stuffmart/dev/stack"
	authapp "github.com/stuffmart/stuffmart/services/auth/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "admin" {
		os.Exit(admin(os.Args[2:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := stack.LoadConfig(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default handling so that a second
	// Ctrl-C ends a shutdown that hangs.
	context.AfterFunc(ctx, stop)

	return stack.Run(ctx, cfg, log, func(info stack.Info) {
		if _, err := os.Stdout.WriteString(banner(info)); err != nil {
			log.Warn("print banner", "err", err)
		}
	})
}

// admin runs `go run ./dev admin ARGS...` and returns the exit status: 0
// done, 1 failed, 2 bad arguments.
func admin(args []string) int {
	cfg, err := stack.LoadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev admin: configuration:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stack.Admin(ctx, cfg, log, args, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dev admin:", err)
		if errors.Is(err, authapp.ErrUsage) {
			fmt.Fprintln(os.Stderr, "usage: go run ./dev admin grant EMAIL | revoke EMAIL | list")
			return 2
		}
		return 1
	}
	return 0
}

func banner(info stack.Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nStuffmart is running at %s\n\n", info.URL)
	for _, s := range info.Services {
		route := s.Prefix
		if route == "" {
			route = "(no routes)"
		}
		fmt.Fprintf(&b, "  %-11s %-15s %s\n", s.Name, route, s.URL)
	}
	fmt.Fprintf(&b, "  %-11s %-15s %s\n", "ferretdb", "", info.MongoURI)
	fmt.Fprintf(&b, "  %-11s %-15s %s\n", "nats", "", info.NATSURL)
	fmt.Fprintf(&b, "\n  metrics     each URL above + /metrics (not through %s)\n", info.URL)
	fmt.Fprintf(&b, "              prometheus --config.file=dev/prometheus.yml (targets: %s)\n", info.Targets)
	if info.DebugURL != "" {
		fmt.Fprintf(&b, "  profiles    %s\n", info.DebugURL)
	}
	fmt.Fprintf(&b, "\n  data in %s — Ctrl-C to stop\n\n", info.DataDir)
	return b.String()
}
