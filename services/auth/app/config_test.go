package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
)

func TestLoadConfig(t *testing.T) {
	full := map[string]string{
		"MONGO_URI":   "mongodb://localhost:27017",
		"NATS_URL":    "nats://localhost:4222",
		"JWT_KEY":     strings.Repeat("j", 32),
		"SESSION_KEY": strings.Repeat("s", 32),
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
		if cfg.RefreshGrace != 10*time.Second {
			t.Fatalf("refresh grace %s, want the default 10s", cfg.RefreshGrace)
		}
	})
	t.Run("limits by default", func(t *testing.T) {
		cfg, err := app.LoadConfig(with(nil))
		if err != nil {
			t.Fatal(err)
		}
		want := app.Limits{
			SignIn:         ratelimit.Rule{Every: 3 * time.Second, Burst: 10, Name: "signin_limit"},
			SignInAccount:  ratelimit.Rule{Every: time.Minute, Burst: 10, Name: "signin_account_limit"},
			SignUp:         ratelimit.Rule{Every: 6 * time.Second, Burst: 10, Name: "signup_limit"},
			Refresh:        ratelimit.Rule{Every: 200 * time.Millisecond, Burst: 100, Name: "refresh_limit"},
			RefreshAccount: ratelimit.Rule{Every: 10 * time.Second, Burst: 10, Name: "refresh_account_limit"},
		}
		if cfg.Limits != want || !cfg.Service.Limits.On {
			t.Fatalf("limits %+v (on %t), want %+v, on", cfg.Limits, cfg.Service.Limits.On, want)
		}
	})
	t.Run("limits set", func(t *testing.T) {
		cfg, err := app.LoadConfig(with(map[string]string{
			"SIGNIN_LIMIT": "1/s", "SIGNIN_ACCOUNT_LIMIT": "2/m burst 1", "SIGNUP_LIMIT": "3/h",
			"REFRESH_LIMIT": "4/s burst 8", "REFRESH_ACCOUNT_LIMIT": "5/m", "RATE_LIMIT": "off",
		}))
		if err != nil {
			t.Fatal(err)
		}
		want := app.Limits{
			SignIn:         ratelimit.Rule{Every: time.Second, Burst: 1, Name: "signin_limit"},
			SignInAccount:  ratelimit.Rule{Every: 30 * time.Second, Burst: 1, Name: "signin_account_limit"},
			SignUp:         ratelimit.Rule{Every: 20 * time.Minute, Burst: 3, Name: "signup_limit"},
			Refresh:        ratelimit.Rule{Every: 250 * time.Millisecond, Burst: 8, Name: "refresh_limit"},
			RefreshAccount: ratelimit.Rule{Every: 12 * time.Second, Burst: 5, Name: "refresh_account_limit"},
		}
		if cfg.Limits != want || cfg.Service.Limits.On {
			t.Fatalf("limits %+v (on %t), want %+v, off", cfg.Limits, cfg.Service.Limits.On, want)
		}
	})
	t.Run("grace set", func(t *testing.T) {
		cfg, err := app.LoadConfig(with(map[string]string{"REFRESH_GRACE": "7s"}))
		if err != nil || cfg.RefreshGrace != 7*time.Second {
			t.Fatalf("REFRESH_GRACE=7s: %s (err %v)", cfg.RefreshGrace, err)
		}
	})
	tests := []struct {
		name    string
		changes map[string]string
		want    []string // every one must be reported
	}{
		{"nothing set", map[string]string{"MONGO_URI": "", "NATS_URL": "", "JWT_KEY": "", "SESSION_KEY": ""},
			[]string{"MONGO_URI", "NATS_URL", "JWT_KEY", "SESSION_KEY"}},
		{"short keys", map[string]string{"JWT_KEY": "short", "SESSION_KEY": "short"},
			[]string{"JWT_KEY", "SESSION_KEY"}},
		// Admins are no longer whoever signs up first with a listed email:
		// an operator who upgrades learns it at once instead of believing
		// the list still names the admins.
		{"admin emails", map[string]string{"ADMIN_EMAILS": "boss@uni.edu"}, []string{"ADMIN_EMAILS", "auth admin grant"}},
		{"bad durations", map[string]string{"ACCESS_TOKEN_TTL": "soon", "REFRESH_TOKEN_TTL": "-1h"},
			[]string{"ACCESS_TOKEN_TTL", "REFRESH_TOKEN_TTL"}},
		{"bad body limit", map[string]string{"BODY_LIMIT": "lots"}, []string{"BODY_LIMIT"}},
		{"bad grace", map[string]string{"REFRESH_GRACE": "0"}, []string{"REFRESH_GRACE"}},
		{"grace too long", map[string]string{"REFRESH_GRACE": "2m"}, []string{"REFRESH_GRACE"}},
		{"grace shorter than the storefront's memory", map[string]string{"REFRESH_GRACE": "3s"}, []string{"REFRESH_GRACE"}},
		{"bad limits", map[string]string{"SIGNIN_LIMIT": "lots", "SIGNIN_ACCOUNT_LIMIT": "5", "SIGNUP_LIMIT": "0/m",
			"REFRESH_LIMIT": "10/d", "REFRESH_ACCOUNT_LIMIT": "1/m burst 0"},
			[]string{"SIGNIN_LIMIT", "SIGNIN_ACCOUNT_LIMIT", "SIGNUP_LIMIT", "REFRESH_LIMIT", "REFRESH_ACCOUNT_LIMIT"}},
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
