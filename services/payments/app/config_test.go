package app_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/payments/app"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfig(t *testing.T) {
	base := map[string]string{
		"MONGO_URI": "mongodb://db:27017", "NATS_URL": "nats://nats:4222",
		"JWT_KEY": strings.Repeat("j", 32), "SESSION_KEY": strings.Repeat("s", 32),
	}
	cfg, err := app.LoadConfig(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StripeSecretKey != "" || cfg.StripeWebhookSecret != "" || cfg.Currency != "usd" || cfg.Service.Name != "payments" || cfg.Service.MongoDB != "payments" ||
		cfg.ChargeTimeout != 90*time.Second || cfg.SweepEvery != 30*time.Second {
		t.Fatalf("defaults %+v", cfg)
	}

	withKey := map[string]string{"STRIPE_SECRET_KEY": "sk_live_secret123", "CURRENCY": "eur", "CHARGE_TIMEOUT": "5s", "PAYMENT_SWEEP": "1s"}
	for k, v := range base {
		withKey[k] = v
	}
	// A key without the webhook's secret could charge but never learn of a
	// Checkout payment.
	if _, err := app.LoadConfig(env(withKey)); err == nil || !strings.Contains(err.Error(), "STRIPE_WEBHOOK_SECRET") {
		t.Fatalf("a Stripe key without STRIPE_WEBHOOK_SECRET: %v", err)
	}
	withKey["STRIPE_WEBHOOK_SECRET"] = "whsec_secret456"
	cfg, err = app.LoadConfig(env(withKey))
	if err != nil || cfg.StripeSecretKey != "sk_live_secret123" || cfg.StripeWebhookSecret != "whsec_secret456" || cfg.Currency != "eur" ||
		cfg.ChargeTimeout != 5*time.Second || cfg.SweepEvery != time.Second {
		t.Fatalf("%+v, %v", cfg, err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("start", "config", cfg)
	for _, secret := range []string{"sk_live_secret123", "whsec_secret456", strings.Repeat("j", 32), strings.Repeat("s", 32)} {
		if strings.Contains(buf.String(), secret) {
			t.Fatalf("secret logged: %s", buf.String())
		}
	}
	if !strings.Contains(buf.String(), `"currency":"eur"`) {
		t.Fatalf("config not logged: %s", buf.String())
	}

	_, err = app.LoadConfig(env(map[string]string{"CURRENCY": "US Dollars", "CHARGE_TIMEOUT": "soon", "PAYMENT_SWEEP": "-1s"}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"MONGO_URI", "NATS_URL", "JWT_KEY", "SESSION_KEY", "CURRENCY", "CHARGE_TIMEOUT", "PAYMENT_SWEEP"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestLoadConfigPublicURL(t *testing.T) {
	base := map[string]string{
		"MONGO_URI": "mongodb://db:27017", "NATS_URL": "nats://nats:4222",
		"JWT_KEY": strings.Repeat("j", 32), "SESSION_KEY": strings.Repeat("s", 32),
	}
	base["PUBLIC_URL"] = "https://stuffmart.dev"
	if cfg, err := app.LoadConfig(env(base)); err != nil || cfg.PublicURL != "https://stuffmart.dev" {
		t.Fatalf("PUBLIC_URL: %q, %v", cfg.PublicURL, err)
	}
	for _, bad := range []string{"stuffmart.dev", "ftp://stuffmart.dev", "https://"} {
		base["PUBLIC_URL"] = bad
		if _, err := app.LoadConfig(env(base)); err == nil || !strings.Contains(err.Error(), "PUBLIC_URL") {
			t.Errorf("PUBLIC_URL %q: %v, want it refused", bad, err)
		}
	}
}

// TestLoadConfigSweep: PAYMENT_SWEEP may not be so long that a checkout
// session's look-ups before its order's deadline (the last two minutes)
// could be skipped.
func TestLoadConfigSweep(t *testing.T) {
	base := map[string]string{
		"MONGO_URI": "mongodb://db:27017", "NATS_URL": "nats://nats:4222",
		"JWT_KEY": strings.Repeat("j", 32), "SESSION_KEY": strings.Repeat("s", 32),
	}
	for _, ok := range []string{"", "1s", "30s", "1m"} {
		base["PAYMENT_SWEEP"] = ok
		if _, err := app.LoadConfig(env(base)); err != nil {
			t.Errorf("PAYMENT_SWEEP %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"0s", "61s", "5m"} {
		base["PAYMENT_SWEEP"] = bad
		if _, err := app.LoadConfig(env(base)); err == nil || !strings.Contains(err.Error(), "PAYMENT_SWEEP") {
			t.Errorf("PAYMENT_SWEEP %q: %v, want it refused", bad, err)
		}
	}
}
