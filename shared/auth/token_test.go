package auth_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stuffmart/stuffmart/shared/auth"
)

var (
	jwtKey = []byte("a-jwt-key-of-at-least-32-characters!")
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ann    = auth.User{ID: "u-ann", Email: "ann@uni.edu", Role: auth.RoleUser}
	root   = auth.User{ID: "u-root", Email: "root@uni.edu", Role: auth.RoleAdmin}
)

// pinned returns Tokens whose clock reads at.
func pinned(key []byte, at time.Time) *auth.Tokens {
	tk := auth.NewTokens(key, 15*time.Minute)
	tk.Now = func() time.Time { return at }
	return tk
}

func claims(sub, role string, exp time.Time) jwt.MapClaims {
	c := jwt.MapClaims{"email": "ann@uni.edu", "iat": t0.Unix()}
	if sub != "" {
		c["sub"] = sub
	}
	if role != "" {
		c["role"] = role
	}
	if !exp.IsZero() {
		c["exp"] = exp.Unix()
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, c jwt.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hmacWithHeader signs claims with HMAC-SHA256 under key but declares header
// as its algorithm: the classic algorithm-confusion forgery.
func hmacWithHeader(t *testing.T, header map[string]string, c jwt.MapClaims, key []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(c)
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return input + "." + enc.EncodeToString(m.Sum(nil))
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, u := range []auth.User{ann, root} {
		t.Run(u.Role, func(t *testing.T) {
			t.Parallel()
			tk := pinned(jwtKey, t0)
			s, err := tk.Issue(u)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tk.Verify(s)
			if err != nil {
				t.Fatalf("Verify(own token) = %v", err)
			}
			want := u
			want.IssuedAt = t0 // the token says when it was issued
			if got != want {
				t.Fatalf("Verify = %+v, want %+v", got, want)
			}
			if got.IsAdmin() != (u.Role == auth.RoleAdmin) {
				t.Fatalf("IsAdmin = %v for role %s", got.IsAdmin(), u.Role)
			}
			// What is inside: HS256, exp = iat + TTL.
			var c jwt.RegisteredClaims
			tok, _, err := jwt.NewParser().ParseUnverified(s, &c)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Method.Alg() != "HS256" {
				t.Fatalf("alg %s, want HS256", tok.Method.Alg())
			}
			if !c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(t0.Add(tk.TTL())) || c.Subject != u.ID {
				t.Fatalf("claims %+v: want sub %s, iat %s, exp %s", c, u.ID, t0, t0.Add(tk.TTL()))
			}
		})
	}
}

func TestVerifyExpiry(t *testing.T) {
	t.Parallel()
	s, err := pinned(jwtKey, t0).Issue(ann)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"just issued", t0, true},
		{"14 minutes later", t0.Add(14 * time.Minute), true},
		{"16 minutes later", t0.Add(16 * time.Minute), false},
		{"a day later", t0.Add(24 * time.Hour), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := pinned(jwtKey, tc.at).Verify(s)
			if tc.ok && err != nil {
				t.Fatalf("Verify = %v, want valid", err)
			}
			if !tc.ok && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(10 * time.Minute)
	valid := sign(t, jwt.SigningMethodHS256, claims("u-ann", "user", exp), jwtKey)
	parts := strings.Split(valid, ".")
	adminPayload, _ := json.Marshal(claims("u-ann", "admin", exp))
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"garbage", "garbage"},
		{"three garbage parts", "a.b.c"},
		{"two parts", parts[0] + "." + parts[1]},
		{"signature cut", parts[0] + "." + parts[1] + "."},
		{"signature changed", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))},
		{"payload swapped for admin", parts[0] + "." + base64.RawURLEncoding.EncodeToString(adminPayload) + "." + parts[2]},
		{"padded base64", valid + "="},
		{"no exp", sign(t, jwt.SigningMethodHS256, claims("u-ann", "user", time.Time{}), jwtKey)},
		{"expired", sign(t, jwt.SigningMethodHS256, claims("u-ann", "user", t0.Add(-time.Second)), jwtKey)},
		{"not valid yet", sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u-ann", "role": "user", "exp": exp.Unix(), "nbf": t0.Add(5 * time.Minute).Unix()}, jwtKey)},
		{"alg none", sign(t, jwt.SigningMethodNone, claims("u-ann", "user", exp), jwt.UnsafeAllowNoneSignatureType)},
		{"alg none by hand", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."},
		{"HS384 with the same key", sign(t, jwt.SigningMethodHS384, claims("u-ann", "user", exp), jwtKey)},
		{"HS512 with the same key", sign(t, jwt.SigningMethodHS512, claims("u-ann", "user", exp), jwtKey)},
		{"RS256 header, HMAC signature", hmacWithHeader(t, map[string]string{"alg": "RS256", "typ": "JWT"}, claims("u-ann", "admin", exp), jwtKey)},
		{"hs256 header in lower case", hmacWithHeader(t, map[string]string{"alg": "hs256", "typ": "JWT"}, claims("u-ann", "user", exp), jwtKey)},
		{"real RS256", sign(t, jwt.SigningMethodRS256, claims("u-ann", "user", exp), rsaKey)},
		{"wrong key", sign(t, jwt.SigningMethodHS256, claims("u-ann", "user", exp), []byte("another-key-of-at-least-32-characters"))},
		{"missing sub", sign(t, jwt.SigningMethodHS256, claims("", "user", exp), jwtKey)},
		{"missing role", sign(t, jwt.SigningMethodHS256, claims("u-ann", "", exp), jwtKey)},
		{"unknown role", sign(t, jwt.SigningMethodHS256, claims("u-ann", "superuser", exp), jwtKey)},
		{"role of the wrong type", sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u-ann", "role": []string{"admin"}, "exp": exp.Unix()}, jwtKey)},
	}
	// The control: the untouched token is accepted by the same verifier.
	tk := pinned(jwtKey, t0)
	if u, err := tk.Verify(valid); err != nil || u.ID != "u-ann" {
		t.Fatalf("control token rejected: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, err := pinned(jwtKey, t0).Verify(tc.token)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", u, err)
			}
			if u != (auth.User{}) {
				t.Fatalf("Verify returned a user %+v with an error", u)
			}
		})
	}
}
