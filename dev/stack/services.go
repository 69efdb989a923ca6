package stack

import (
	"context"
	"fmt"
	"log/slog"

	clientapp "github.com/stuffmart/stuffmart/client/app"
	authapp "github.com/stuffmart/stuffmart/services/auth/app"
	expirationapp "github.com/stuffmart/stuffmart/services/expiration/app"
	ordersapp "github.com/stuffmart/stuffmart/services/orders/app"
	paymentsapp "github.com/stuffmart/stuffmart/services/payments/app"
	stuffapp "github.com/stuffmart/stuffmart/services/stuff/app"
)

// StartFunc runs one service until ctx ends. The service sees only getenv:
// the variables its Kubernetes Deployment sets (HTTP_ADDR, MONGO_URI, …).
type StartFunc func(ctx context.Context, getenv func(string) string, log *slog.Logger) error

// Service is one app the stack runs in-process.
type Service struct {
	// Name is the service's name in logs and its MONGO_DB.
	Name string
	// Prefix is the path the gateway sends to it, as the ingress does
	// ("/api/users" takes /api/users and /api/users/...); "/" takes every
	// path outside /api (the client); "" none (expiration).
	Prefix string
	Start  StartFunc
}

// Registry lists every service the stack runs; adding one is one line.
func Registry() []Service {
	return []Service{
		{Name: "auth", Prefix: "/api/users", Start: App(authapp.LoadConfig, authapp.Run)},
		{Name: "stuff", Prefix: "/api/stuff", Start: App(stuffapp.LoadConfig, stuffapp.Run)},
		{Name: "orders", Prefix: "/api/orders", Start: App(ordersapp.LoadConfig, ordersapp.Run)},
		{Name: "payments", Prefix: "/api/payments", Start: App(paymentsapp.LoadConfig, paymentsapp.Run)},
		{Name: "expiration", Start: App(expirationapp.LoadConfig, expirationapp.Run)},
		{Name: "client", Prefix: "/", Start: App(clientapp.LoadConfig, clientapp.Run)},
	}
}

// App adapts a service's app package (LoadConfig, then Run: the same calls
// its main makes) to a StartFunc.
func App[C any](load func(getenv func(string) string) (C, error), run func(context.Context, C, *slog.Logger) error) StartFunc {
	return func(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
		cfg, err := load(getenv)
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		return run(ctx, cfg, log)
	}
}
