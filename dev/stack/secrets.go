package stack

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SecretsFile is the name of the file in DATA_DIR that keeps generated keys.
const SecretsFile = "secrets.json"

// Secrets are the keys of the stack: JWT_KEY signs access tokens and
// SESSION_KEY signs and encrypts the session cookie (every service);
// STRIPE_WEBHOOK_SECRET signs the webhook events of card payments (payments:
// offline, its stand-in for Stripe Checkout signs with it; with a Stripe key
// it must be the endpoint's, which LoadConfig demands from the environment).
type Secrets struct {
	JWTKey              string `json:"JWT_KEY,omitempty"`
	SessionKey          string `json:"SESSION_KEY,omitempty"`
	StripeWebhookSecret string `json:"STRIPE_WEBHOOK_SECRET,omitempty"`
}

// LoadSecrets returns env's keys, taking each one env lacks from the JSON file
// at path and generating (32 random bytes, hex) and saving there, with mode
// 0600, each one the file lacks too. Keys therefore stay the same from one run
// to the next, and so do the sessions signed with them. A key env sets is
// never written to the file. When env sets them all, the file is not touched. A
// file that is not valid JSON is an error rather than silently replaced:
// delete it to start over (every session then ends).
func LoadSecrets(path string, env Secrets) (Secrets, error) {
	if env.JWTKey != "" && env.SessionKey != "" && env.StripeWebhookSecret != "" {
		return env, nil
	}
	var file Secrets
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Secrets{}, fmt.Errorf("read secrets: %w", err)
	default:
		if err := json.Unmarshal(raw, &file); err != nil {
			return Secrets{}, fmt.Errorf("secrets file %s is damaged (delete it to generate new keys): %w", path, err)
		}
	}

	changed := false
	for _, key := range []*string{&file.JWTKey, &file.SessionKey, &file.StripeWebhookSecret} {
		if *key == "" {
			if *key, err = randomKey(); err != nil {
				return Secrets{}, err
			}
			changed = true
		}
	}
	// Only keys the environment does not set are needed from the file, but a
	// key generated once is kept there for the runs that do not set it.
	if changed {
		if err := writeSecrets(path, file); err != nil {
			return Secrets{}, err
		}
	}

	out := file
	if env.JWTKey != "" {
		out.JWTKey = env.JWTKey
	}
	if env.SessionKey != "" {
		out.SessionKey = env.SessionKey
	}
	if env.StripeWebhookSecret != "" {
		out.StripeWebhookSecret = env.StripeWebhookSecret
	}
	return out, nil
}

func randomKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writeSecrets replaces path atomically, so a crash never leaves half a file
// (and with it every session unreadable).
func writeSecrets(path string, s Secrets) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode secrets: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secrets dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secrets-*.json") // created with mode 0600
	if err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	_, werr := tmp.Write(append(raw, '\n'))
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o600)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			werr = errors.Join(werr, rerr)
		}
		return fmt.Errorf("write secrets: %w", werr)
	}
	return nil
}
