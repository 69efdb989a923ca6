package handlers

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stuffmart/stuffmart/client/internal/api"
)

func TestParsePrice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		cents int64
		ok    bool
	}{
		{"4.99", 499, true},
		{"4", 400, true},
		{"4.5", 450, true},
		{"$12.50", 1250, true},
		{" 1,000.00 ", 100000, true},
		{".99", 99, true},
		{"0", 0, true},
		{"10000", 1000000, true},
		{"", 0, false},
		{"abc", 0, false},
		{"4.999", 0, false},
		{"4.", 0, false},
		{"-1", 0, false},
		{"1e3", 0, false},
		{"1234567890", 0, false},
		{"4.9x", 0, false},
	}
	for _, tc := range tests {
		cents, ok := parsePrice(tc.in)
		if cents != tc.cents || ok != tc.ok {
			t.Errorf("parsePrice(%q) = %d, %v; want %d, %v", tc.in, cents, ok, tc.cents, tc.ok)
		}
	}
}

func TestFormatPrice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cents    int64
		currency string
		want     string
	}{
		{1250, "usd", "$12.50"},
		{5, "", "$0.05"},
		{100000000, "usd", "$1,000,000.00"},
		{123456, "eur", "1,234.56 EUR"},
	}
	for _, tc := range tests {
		if got := formatPrice(tc.cents, tc.currency); got != tc.want {
			t.Errorf("formatPrice(%d, %q) = %q, want %q", tc.cents, tc.currency, got, tc.want)
		}
	}
	if got := decimalPrice(1205); got != "12.05" {
		t.Errorf("decimalPrice = %q", got)
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"/orders":              "/orders",
		"/stuff/1?m=x":         "/stuff/1?m=x",
		"":                     "",
		"orders":               "",
		"//evil.example/x":     "",
		"/\\evil.example":      "",
		"https://evil.example": "",
		"/x\r\nSet-Cookie: a":  "",
	}
	for in, want := range tests {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExcerptAndLinks(t *testing.T) {
	t.Parallel()
	if got := excerpt("  one\n two   three ", 100); got != "one two three" {
		t.Errorf("excerpt = %q", got)
	}
	if got := excerpt("alpha beta gamma delta", 12); got != "alpha beta…" {
		t.Errorf("excerpt cut = %q", got)
	}
	for in, want := range map[string]string{
		"https://files.example/a.pdf": "https://files.example/a.pdf",
		"http://x.example":            "http://x.example",
		"javascript:alert(1)":         "",
		"see https://x.example":       "",
		"licence code ABC-123":        "",
	} {
		if got := linkOf(in); got != want {
			t.Errorf("linkOf(%q) = %q, want %q", in, got, want)
		}
	}
	for d, want := range map[time.Duration]string{15 * time.Minute: "15:00", 61500 * time.Millisecond: "1:02", 0: "0:00", -time.Second: "0:00"} {
		if got := formatRemaining(d); got != want {
			t.Errorf("formatRemaining(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestStateOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	order := func(status string, expires time.Time) api.Order {
		return api.Order{Status: status, ExpiresAt: expires}
	}
	tests := []struct {
		name string
		o    api.Order
		kind string
	}{
		{"created, time left", order(api.OrderCreated, now.Add(time.Minute)), "created"},
		{"created, deadline passed", order(api.OrderCreated, now), "expired"},
		{"cancelled before the deadline", order(api.OrderCancelled, now.Add(time.Minute)), "cancelled"},
		{"cancelled at the deadline", order(api.OrderCancelled, now.Add(-time.Second)), "expired"},
		{"complete", order(api.OrderComplete, now.Add(-time.Hour)), "complete"},
	}
	for _, tc := range tests {
		st := stateOf(tc.o, now)
		if st.kind != tc.kind || st.payable != (tc.kind == "created") {
			t.Errorf("%s: %+v, want %s", tc.name, st, tc.kind)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Duration
		want string
	}{
		{15 * time.Minute, "15 minutes"},
		{time.Minute, "1 minute"},
		{time.Second, "1 second"},
		{90 * time.Second, "1 minute 30 seconds"},
		{2*time.Hour + time.Minute, "2 hours 1 minute"},
		{time.Hour, "1 hour"},
		{10*time.Minute + 400*time.Millisecond, "10 minutes"},
		{300 * time.Millisecond, "under a second"},
	}
	for _, tc := range tests {
		if got := formatDuration(tc.in); got != tc.want {
			t.Errorf("formatDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestExcerptAsBefore compares excerpt with the plain way of writing it:
// collapse all of s, then cut.
func TestExcerptAsBefore(t *testing.T) {
	t.Parallel()
	plain := func(s string, n int) string {
		s = strings.Join(strings.Fields(s), " ")
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		r := []rune(s)[:n]
		cut := len(r)
		for i := len(r) - 1; i > n/2; i-- {
			if unicode.IsSpace(r[i]) {
				cut = i
				break
			}
		}
		return strings.TrimRightFunc(string(r[:cut]), func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) }) + "…"
	}
	inputs := []string{"", " ", "word", "  lead and trail  ", "a\n\nb\tc", "Straße café, naïve — déjà vu!",
		strings.Repeat("lorem ipsum dolor ", 40), strings.Repeat("x", 300), "one, two. three; four: five " + strings.Repeat("é", 150)}
	for _, s := range inputs {
		for _, n := range []int{1, 5, 12, 60, 140, 155, 500} {
			if got, want := excerpt(s, n), plain(s, n); got != want {
				t.Errorf("excerpt(%q, %d) = %q, want %q", s, n, got, want)
			}
		}
	}
}
