package chaos_test

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/stuffmart/stuffmart/shared/testkit"
)

// jsonBody encodes v (maps and strings: it cannot fail).
func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// idOf returns the "id" of a JSON answer.
func idOf(t *testing.T, r *testkit.Response) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil || v.ID == "" {
		t.Fatalf("no id in %s (%v)", r.Body, err)
	}
	return v.ID
}
