// Package config reads a service's settings from the environment once, in
// main, and reports every missing or malformed variable together.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables through Getenv (os.Getenv in main, a map in tests)
// and remembers every problem so that Err reports them all at once.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// New returns a Reader over getenv.
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// String returns the variable or def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset.
func (r *Reader) Required(name string) string {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		r.errs = append(r.errs, fmt.Errorf("%s is required", name))
	}
	return v
}

// Secret returns a required variable that must be at least minLen bytes long.
func (r *Reader) Secret(name string, minLen int) string {
	v := r.Required(name)
	if v != "" && len(v) < minLen {
		r.errs = append(r.errs, fmt.Errorf("%s must be at least %d characters", name, minLen))
	}
	return v
}

// Duration returns a Go duration ("15m", "2s") or def when unset.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a positive Go duration", name, v))
		return def
	}
	return d
}

// Int returns an integer variable or def when unset.
func (r *Reader) Int(name string, def int) int {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not an integer", name, v))
		return def
	}
	return n
}

// List returns a comma-separated variable as trimmed, non-empty items.
func (r *Reader) List(name string) []string {
	var out []string
	for _, s := range strings.Split(r.getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Fail records a problem found by a check of the caller's own.
func (r *Reader) Fail(err error) { r.errs = append(r.errs, err) }

// Err returns every problem seen so far, joined, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// MaskURL hides the password of a URL for logging (nats://user:pass@host
// becomes nats://user:xxxxx@host). A URL that does not parse is hidden whole,
// since it may hold a password where the parser did not expect one.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Mask(raw)
	}
	return u.Redacted()
}

// Mask hides a secret for logging: its length and nothing else.
func Mask(secret string) string {
	if secret == "" {
		return ""
	}
	return fmt.Sprintf("<%d chars>", len(secret))
}
