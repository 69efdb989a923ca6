package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/auth/app"
)

func TestLoadConfig(t *testing.T) {
	full := map[string]string{
		"MONGO_URI":    "mongodb://localhost:27017",
		"NATS_URL":     "nats://localhost:4222",
		"JWT_KEY":      strings.Repeat("j", 32),
		"SESSION_KEY":  strings.Repeat("s", 32),
		"ADMIN_EMAILS": " Ann@Uni.edu , bob@uni.edu,,",
	}
	with := func(changes map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := changes[k]; ok {
				return v
			}
			return full[k]
		}
	}
	t.Run("complete", func(t *testing.T) {
		cfg, err := app.LoadConfig(with(nil))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Service.Name != "auth" || cfg.Service.MongoDB != "auth" || cfg.Service.AccessTTL != 15*time.Minute {
			t.Fatalf("service config %+v", cfg.Service)
		}
		if strings.Join(cfg.AdminEmails, ",") != "ann@uni.edu,bob@uni.edu" {
			t.Fatalf("admins %q", cfg.AdminEmails)
		}
		if cfg.RefreshGrace != 10*time.Second {
			t.Fatalf("refresh grace %s, want the default 10s", cfg.RefreshGrace)
		}
	})
	t.Run("grace set", func(t *testing.T) {
		cfg, err := app.LoadConfig(with(map[string]string{"REFRESH_GRACE": "3s"}))
		if err != nil || cfg.RefreshGrace != 3*time.Second {
			t.Fatalf("REFRESH_GRACE=3s: %s (err %v)", cfg.RefreshGrace, err)
		}
	})
	tests := []struct {
		name    string
		changes map[string]string
		want    []string // every one must be reported
	}{
		{"nothing set", map[string]string{"MONGO_URI": "", "NATS_URL": "", "JWT_KEY": "", "SESSION_KEY": "", "ADMIN_EMAILS": ""},
			[]string{"MONGO_URI", "NATS_URL", "JWT_KEY", "SESSION_KEY"}},
		{"short keys and a bad admin", map[string]string{"JWT_KEY": "short", "SESSION_KEY": "short", "ADMIN_EMAILS": "ann@uni.edu,not-an-email"},
			[]string{"JWT_KEY", "SESSION_KEY", "not-an-email"}},
		{"bad durations", map[string]string{"ACCESS_TOKEN_TTL": "soon", "REFRESH_TOKEN_TTL": "-1h"},
			[]string{"ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL"}},
		{"bad body limit", map[string]string{"BODY_LIMIT": "lots"}, []string{"BODY_LIMIT"}},
		{"bad grace", map[string]string{"REFRESH_GRACE": "0"}, []string{"REFRESH_GRACE"}},
		{"grace too long", map[string]string{"REFRESH_GRACE": "2m"}, []string{"REFRESH_GRACE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.LoadConfig(with(tc.changes))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}
