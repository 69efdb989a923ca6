package stack_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/dev/stack"
)

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := stack.LoadConfig(getenv(nil))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	want, err := filepath.Abs(".data")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8080 || cfg.DataDir != want || cfg.AccessTokenTTL != 15*time.Minute ||
		cfg.OrderHold != 15*time.Minute || cfg.LogLevel != slog.LevelInfo ||
		cfg.Secrets != (stack.Secrets{}) || cfg.StripeSecretKey != "" {
		t.Errorf("defaults = %+v", cfg)
	}
	if len(cfg.Services) == 0 || cfg.Services[0].Name != "auth" || cfg.Services[0].Prefix != "/api/users" {
		t.Errorf("services = %+v, want auth on /api/users first", cfg.Services)
	}
}

func TestLoadConfigOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, err := stack.LoadConfig(getenv(map[string]string{
		"PORT":                  "0",
		"DATA_DIR":              dir,
		"JWT_KEY":               "jwt-0123456789abcdef0123456789abcdef",
		"ACCESS_TOKEN_TTL":      "1m",
		"ORDER_HOLD":            "30s",
		"STRIPE_SECRET_KEY":     "sk_test_x",
		"STRIPE_WEBHOOK_SECRET": "whsec_from_stripe_listen",
		"LOG_LEVEL":             "debug",
	}))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if cfg.Port != 0 || cfg.DataDir != dir || cfg.Secrets.JWTKey != "jwt-0123456789abcdef0123456789abcdef" ||
		cfg.Secrets.SessionKey != "" ||
		cfg.AccessTokenTTL != time.Minute || cfg.OrderHold != 30*time.Second ||
		cfg.StripeSecretKey != "sk_test_x" || cfg.Secrets.StripeWebhookSecret != "whsec_from_stripe_listen" || cfg.LogLevel != slog.LevelDebug {
		t.Errorf("config = %+v", cfg)
	}
	if logged := slog.AnyValue(cfg).Resolve().String(); strings.Contains(logged, "jwt-0123") || strings.Contains(logged, "sk_test_x") ||
		strings.Contains(logged, "whsec_from") {
		t.Errorf("logged config shows a secret: %s", logged)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := stack.LoadConfig(getenv(map[string]string{
		"PORT":             "70000",
		"SESSION_KEY":      "short",
		"ACCESS_TOKEN_TTL": "soon",
		"ORDER_HOLD":       "-1m",
		"LOG_LEVEL":        "loud",
		"ADMIN_EMAILS":     "boss@uni.edu",
		"DEBUG_ADDR":       "0.0.0.0:6060",
		// A Stripe key without the webhook's secret: nothing would verify.
		"STRIPE_SECRET_KEY": "sk_test_x",
	}))
	if err == nil {
		t.Fatal("LoadConfig accepted bad variables")
	}
	for _, name := range []string{"PORT", "SESSION_KEY", "ACCESS_TOKEN_TTL", "ORDER_HOLD", "LOG_LEVEL", "ADMIN_EMAILS", "go run ./dev admin grant", "DEBUG_ADDR",
		"STRIPE_WEBHOOK_SECRET", "stripe listen"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}
