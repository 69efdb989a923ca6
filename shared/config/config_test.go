package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestReaderCollectsEveryProblem(t *testing.T) {
	t.Parallel()
	r := config.New(env(map[string]string{
		"JWT_KEY":    "short",
		"ORDER_HOLD": "fifteen minutes",
		"WORKERS":    "4x",
		"PORT":       "8080",
	}))
	r.Required("MONGO_URI")
	r.Required("NATS_URL")
	r.Secret("JWT_KEY", 32)
	r.Secret("SESSION_KEY", 32)
	r.Duration("ORDER_HOLD", 15*time.Minute)
	r.Int("WORKERS", 1)
	r.Int("PORT", 3000)
	err := r.Err()
	if err == nil {
		t.Fatal("Err() = nil with missing and malformed variables")
	}
	msg := err.Error()
	for _, want := range []string{"MONGO_URI", "NATS_URL", "JWT_KEY must be at least 32", "SESSION_KEY is required", "ORDER_HOLD", "WORKERS"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Err() does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "PORT") {
		t.Errorf("Err() mentions PORT, which is valid:\n%s", msg)
	}
	if n := len(strings.Split(msg, "\n")); n != 6 {
		t.Errorf("Err() has %d lines, want one per problem (6):\n%s", n, msg)
	}
	if strings.Contains(msg, "short") {
		t.Errorf("Err() shows a secret's value:\n%s", msg)
	}
}

func TestReaderNoProblems(t *testing.T) {
	t.Parallel()
	r := config.New(env(map[string]string{"MONGO_URI": "mongodb://x", "JWT_KEY": strings.Repeat("k", 32)}))
	if got := r.Required("MONGO_URI"); got != "mongodb://x" {
		t.Fatalf("Required = %q", got)
	}
	if got := r.Secret("JWT_KEY", 32); got != strings.Repeat("k", 32) {
		t.Fatalf("Secret = %q", got)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"unset", "", "def"},
		{"blank", "   ", "def"},
		{"set", "x", "x"},
		{"trimmed", "  x \n", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.New(env(map[string]string{"V": tc.value}))
			if got := r.String("V", "def"); got != tc.want {
				t.Fatalf("String = %q, want %q", got, tc.want)
			}
			if err := r.Err(); err != nil {
				t.Fatalf("Err() = %v", err)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"unset", "", false},
		{"blank", " \t", false},
		{"set", "nats://nats:4222", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.New(env(map[string]string{"NATS_URL": tc.value}))
			got := r.Required("NATS_URL")
			if err := r.Err(); (err == nil) != tc.ok {
				t.Fatalf("Err() = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && got != tc.value {
				t.Fatalf("Required = %q, want %q", got, tc.value)
			}
		})
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, errPart string
	}{
		{"missing", "", "JWT_KEY is required"},
		{"too short", strings.Repeat("k", 31), "JWT_KEY must be at least 32 characters"},
		{"exactly long enough", strings.Repeat("k", 32), ""},
		{"longer", strings.Repeat("k", 64), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.New(env(map[string]string{"JWT_KEY": tc.value}))
			got := r.Secret("JWT_KEY", 32)
			err := r.Err()
			if tc.errPart == "" {
				if err != nil || got != tc.value {
					t.Fatalf("Secret = %q, %v; want the value and no error", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("Err() = %v, want it to contain %q", err, tc.errPart)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Fatalf("one problem reported more than once: %v", err)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		want        time.Duration
		ok          bool
	}{
		{"unset", "", 15 * time.Minute, true},
		{"minutes", "10m", 10 * time.Minute, true},
		{"mixed", "1h30m", 90 * time.Minute, true},
		{"seconds", " 2s ", 2 * time.Second, true},
		{"no unit", "900", 15 * time.Minute, false},
		{"words", "fifteen minutes", 15 * time.Minute, false},
		{"zero", "0s", 15 * time.Minute, false},
		{"negative", "-5m", 15 * time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.New(env(map[string]string{"ORDER_HOLD": tc.value}))
			got := r.Duration("ORDER_HOLD", 15*time.Minute)
			if got != tc.want {
				t.Fatalf("Duration = %s, want %s", got, tc.want)
			}
			err := r.Err()
			if (err == nil) != tc.ok {
				t.Fatalf("Err() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "ORDER_HOLD") {
				t.Fatalf("Err() = %v does not name the variable", err)
			}
		})
	}
}

func TestInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		want        int
		ok          bool
	}{
		{"unset", "", 8080, true},
		{"set", "3000", 3000, true},
		{"spaces", " 42 ", 42, true},
		{"negative", "-1", -1, true},
		{"not a number", "eighty", 8080, false},
		{"float", "1.5", 8080, false},
		{"overflow", "99999999999999999999999", 8080, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.New(env(map[string]string{"PORT": tc.value}))
			if got := r.Int("PORT", 8080); got != tc.want {
				t.Fatalf("Int = %d, want %d", got, tc.want)
			}
			if err := r.Err(); (err == nil) != tc.ok {
				t.Fatalf("Err() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		want        []string
	}{
		{"unset", "", nil},
		{"one", "admin@uni.edu", []string{"admin@uni.edu"}},
		{"several, trimmed", " a@uni.edu , b@uni.edu,c@uni.edu ", []string{"a@uni.edu", "b@uni.edu", "c@uni.edu"}},
		{"empty items dropped", ",a@uni.edu,, ,", []string{"a@uni.edu"}},
		{"only commas", ", ,", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.New(env(map[string]string{"ADMIN_EMAILS": tc.value}))
			if got := r.List("ADMIN_EMAILS"); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("List = %q, want %q", got, tc.want)
			}
			if err := r.Err(); err != nil {
				t.Fatalf("Err() = %v", err)
			}
		})
	}
}

func TestMaskURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"nats://nats:4222", "nats://nats:4222"},
		{"nats://stuffmart:s3cret@nats:4222", "nats://stuffmart:xxxxx@nats:4222"},
		{"mongodb://orders:pa55@orders-mongo:27017/orders?authSource=orders", "mongodb://orders:xxxxx@orders-mongo:27017/orders?authSource=orders"},
		{"nats://u:p@[bad", "<15 chars>"},
	}
	for _, tc := range tests {
		if got := config.MaskURL(tc.url); got != tc.want {
			t.Errorf("MaskURL(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		secret, want string
	}{
		{"", ""},
		{"s3cr3t-jwt-key-that-is-long-enough", "<34 chars>"},
		{"x", "<1 chars>"},
	}
	for _, tc := range tests {
		got := config.Mask(tc.secret)
		if got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.secret, got, tc.want)
		}
		if len(tc.secret) > 1 && strings.Contains(got, tc.secret[:2]) {
			t.Errorf("Mask(%q) = %q shows part of the secret", tc.secret, got)
		}
	}
}
