package ratelimit_test

import (
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/ratelimit"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestParseRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want ratelimit.Rule
		bad  bool
	}{
		{in: "10/s", want: ratelimit.Rule{Every: 100 * time.Millisecond, Burst: 10}},
		{in: "5/m burst 2", want: ratelimit.Rule{Every: 12 * time.Second, Burst: 2}},
		{in: "120/h", want: ratelimit.Rule{Every: 30 * time.Second, Burst: 120}},
		{in: "0/s", bad: true},
		{in: "10/d", bad: true},
		{in: "ten/s", bad: true},
		{in: "10/s burst", bad: true},
		{in: "10/s burst 0", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range tests {
		got, err := ratelimit.ParseRule(tc.in)
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("ParseRule(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	l := ratelimit.New(ratelimit.Rule{Every: 10 * time.Second, Burst: 3}, clk.Now)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("fourth request: %v, retry after %v; want refused for 10s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key is limited by a's requests")
	}
	clk.Advance(4 * time.Second)
	if ok, wait := l.Allow("a"); ok || wait != 6*time.Second {
		t.Fatalf("after 4s: %v, %v; want refused for 6s more (a refused request takes nothing)", ok, wait)
	}
	clk.Advance(6 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("a token earned after 10s is not granted")
	}
	l.Forget("a")
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("after Forget, request %d refused", i+1)
		}
	}
	var off *ratelimit.Limiter
	if ok, _ := off.Allow("x"); !ok {
		t.Fatal("a nil limiter refused")
	}
}

// Idle keys are dropped: memory follows the recent clients, not all ever
// seen.
func TestLimiterForgetsIdleKeys(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	l := ratelimit.New(ratelimit.Rule{Every: time.Second, Burst: 2}, clk.Now)
	for i := range 999 {
		l.Allow(string(rune('a'+i%26)) + time.Duration(i).String())
	}
	clk.Advance(time.Minute)
	l.Allow("fresh") // the thousandth call sweeps
	if n := l.Len(); n != 1 {
		t.Fatalf("%d buckets after every other key went idle; want 1", n)
	}
}
