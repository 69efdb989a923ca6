package http

import (
	"bytes"
	"strconv"
	"testing"
)

// The kept answers stay within their count and their bytes whatever the
// queries, keep nothing over MaxAnswerSize, and never serve a stale one.
func TestAnswersBounded(t *testing.T) {
	a := newAnswers()
	big := bytes.Repeat([]byte("x"), MaxAnswerSize)
	for i := range 4 * MaxAnswers {
		a.put("q"+strconv.Itoa(i), 1, big)
		if a.bytes > MaxAnswerBytes || len(a.m) > MaxAnswers {
			t.Fatalf("after %d puts: %d answers, %d bytes", i+1, len(a.m), a.bytes)
		}
	}
	if got, ok := a.get("q"+strconv.Itoa(4*MaxAnswers-1), 1); !ok || len(got) != len(big) {
		t.Fatal("the newest answer was not kept")
	}
	a.put("huge", 1, append(big, 'x'))
	if _, ok := a.get("huge", 1); ok {
		t.Fatal("an answer over MaxAnswerSize was kept")
	}
	// Kept again under the same key: counted once.
	before := a.bytes
	a.put("q"+strconv.Itoa(4*MaxAnswers-1), 1, big)
	if a.bytes != before {
		t.Fatalf("bytes %d after replacing an answer, want %d", a.bytes, before)
	}
	// A change of the catalog makes every kept answer stale.
	if _, ok := a.get("q"+strconv.Itoa(4*MaxAnswers-1), 2); ok {
		t.Fatal("a stale answer was served")
	}
	small := []byte(`{"stuff":[]}`)
	for i := range MaxAnswers {
		a.put("s"+strconv.Itoa(i), 2, small)
	}
	if want := MaxAnswers * len(small); a.bytes != want || len(a.m) != MaxAnswers {
		t.Fatalf("%d answers, %d bytes; want the %d fresh ones, %d bytes", len(a.m), a.bytes, MaxAnswers, want)
	}
}
