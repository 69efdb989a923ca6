package stack_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stuffmart/stuffmart/dev/stack"
)

var hexKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

func readSecrets(t *testing.T, path string) stack.Secrets {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var s stack.Secrets
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return s
}

func TestLoadSecretsGeneratesOnceAndReuses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", stack.SecretsFile) // dir created too

	first, err := stack.LoadSecrets(path, stack.Secrets{})
	if err != nil {
		t.Fatalf("first load: %v", err)
	}
	if !hexKey.MatchString(first.JWTKey) || !hexKey.MatchString(first.SessionKey) || !hexKey.MatchString(first.StripeWebhookSecret) {
		t.Fatalf("keys are not 32 random bytes in hex: %+v", first)
	}
	if first.JWTKey == first.SessionKey || first.StripeWebhookSecret == first.JWTKey || first.StripeWebhookSecret == first.SessionKey {
		t.Fatal("two keys are the same")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("secrets file mode = %o, want 600", mode)
	}
	if got := readSecrets(t, path); got != first {
		t.Errorf("file holds %+v, returned %+v", got, first)
	}

	again, err := stack.LoadSecrets(path, stack.Secrets{})
	if err != nil {
		t.Fatalf("second load: %v", err)
	}
	if again != first {
		t.Errorf("second load = %+v, want the first run's %+v", again, first)
	}
}

func TestLoadSecretsEnvironmentWins(t *testing.T) {
	t.Parallel()
	envJWT := "jwt-from-the-environment-0123456789abcdef"
	envSession := "session-from-the-environment-0123456789"
	tests := []struct {
		name string
		file *stack.Secrets // nil: no file before
		env  stack.Secrets
		want func(t *testing.T, got, file stack.Secrets)
	}{
		{
			name: "env sets JWT_KEY over the file's",
			file: &stack.Secrets{JWTKey: "file-jwt", SessionKey: "file-session"},
			env:  stack.Secrets{JWTKey: envJWT},
			want: func(t *testing.T, got, file stack.Secrets) {
				if got.JWTKey != envJWT || got.SessionKey != "file-session" {
					t.Errorf("got %+v", got)
				}
				if file.JWTKey != "file-jwt" {
					t.Errorf("the environment's key was written to the file: %+v", file)
				}
			},
		},
		{
			name: "env sets SESSION_KEY, JWT_KEY is generated and kept",
			env:  stack.Secrets{SessionKey: envSession},
			want: func(t *testing.T, got, file stack.Secrets) {
				if got.SessionKey != envSession || !hexKey.MatchString(got.JWTKey) {
					t.Errorf("got %+v", got)
				}
				if file.JWTKey != got.JWTKey || file.SessionKey == envSession {
					t.Errorf("file = %+v, want the generated JWT_KEY and not the environment's SESSION_KEY", file)
				}
			},
		},
		{
			name: "env sets STRIPE_WEBHOOK_SECRET (the Stripe CLI's): it is never written",
			file: &stack.Secrets{JWTKey: "file-jwt", SessionKey: "file-session"},
			env:  stack.Secrets{StripeWebhookSecret: "whsec_from_stripe_listen"},
			want: func(t *testing.T, got, file stack.Secrets) {
				if got.StripeWebhookSecret != "whsec_from_stripe_listen" || got.JWTKey != "file-jwt" || got.SessionKey != "file-session" {
					t.Errorf("got %+v", got)
				}
				if file.StripeWebhookSecret == got.StripeWebhookSecret || !hexKey.MatchString(file.StripeWebhookSecret) {
					t.Errorf("file = %+v, want a generated STRIPE_WEBHOOK_SECRET of its own", file)
				}
			},
		},
		{
			name: "a key missing from the file is added, the other kept",
			file: &stack.Secrets{JWTKey: "file-jwt"},
			want: func(t *testing.T, got, file stack.Secrets) {
				if got.JWTKey != "file-jwt" || !hexKey.MatchString(got.SessionKey) {
					t.Errorf("got %+v", got)
				}
				if file != got {
					t.Errorf("file = %+v, want %+v", file, got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), stack.SecretsFile)
			if tc.file != nil {
				raw, err := json.Marshal(tc.file)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := stack.LoadSecrets(path, tc.env)
			if err != nil {
				t.Fatalf("LoadSecrets: %v", err)
			}
			tc.want(t, got, readSecrets(t, path))
		})
	}
}

func TestLoadSecretsAllFromEnvironmentLeavesNoFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), stack.SecretsFile)
	env := stack.Secrets{JWTKey: "jwt-0123456789abcdef0123456789abcdef", SessionKey: "s-0123456789abcdef0123456789abcdef",
		StripeWebhookSecret: "whsec_from_stripe_listen"}
	got, err := stack.LoadSecrets(path, env)
	if err != nil {
		t.Fatalf("LoadSecrets: %v", err)
	}
	if got != env {
		t.Errorf("got %+v, want %+v", got, env)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("secrets file exists (err %v), want none", err)
	}
}

func TestLoadSecretsRefusesDamagedFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), stack.SecretsFile)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := stack.LoadSecrets(path, stack.Secrets{}); err == nil {
		t.Fatal("LoadSecrets accepted a damaged file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != "{not json" {
		t.Errorf("damaged file was overwritten: %q", raw)
	}
}
