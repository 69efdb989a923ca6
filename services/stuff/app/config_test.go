package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"MONGO_URI": "mongodb://db:27017", "NATS_URL": "nats://nats:4222",
		"JWT_KEY": strings.Repeat("j", 32), "SESSION_KEY": strings.Repeat("s", 32),
	}
	env := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	tests := []struct {
		name    string
		extra   map[string]string
		wantErr []string
		check   func(t *testing.T, c app.Config)
	}{
		{name: "defaults", check: func(t *testing.T, c app.Config) {
			if c.Service.Name != "stuff" || c.Service.MongoDB != "stuff" || c.ReadModelMax != 10_000 || c.CacheMax != 10_000 ||
				c.ReconcileEvery != time.Minute || c.Service.HTTPAddr != ":3000" ||
				c.SearchLimit != (ratelimit.Rule{Every: 100 * time.Millisecond, Burst: 200, Name: "rate_limit_search"}) {
				t.Fatalf("defaults %+v", c)
			}
		}},
		{name: "overrides", extra: map[string]string{"READ_MODEL_MAX": "50", "STUFF_CACHE_MAX": "7", "READ_MODEL_RECONCILE": "5s", "RATE_LIMIT_SEARCH": "10/s burst 5"},
			check: func(t *testing.T, c app.Config) {
				if c.ReadModelMax != 50 || c.CacheMax != 7 || c.ReconcileEvery != 5*time.Second || c.SearchLimit.Every != 100*time.Millisecond || c.SearchLimit.Burst != 5 {
					t.Fatalf("overrides %+v", c)
				}
			}},
		{name: "every problem at once", extra: map[string]string{"MONGO_URI": "", "JWT_KEY": "short", "READ_MODEL_MAX": "0", "READ_MODEL_RECONCILE": "soon", "BODY_LIMIT": "lots", "RATE_LIMIT_SEARCH": "often"},
			wantErr: []string{"MONGO_URI", "JWT_KEY", "READ_MODEL_MAX", "READ_MODEL_RECONCILE", "BODY_LIMIT", "RATE_LIMIT_SEARCH"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := app.LoadConfig(env(tc.extra))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %s", err, w)
				}
			}
		})
	}
}
