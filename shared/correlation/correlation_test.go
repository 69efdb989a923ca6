package correlation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/shared/correlation"
)

func TestWithAndID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if correlation.ID(ctx) != "" {
		t.Fatal("an id from nowhere")
	}
	tests := []struct {
		id   string
		kept bool
	}{
		{"XcgXRcOdcSEZautlpZkEZuZOgCSYwsfg", true},
		{"req-1_a.b", true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a\nlevel=ERROR msg=forged", false},
		{"a b", false},
		{"é", false},
	}
	for _, tc := range tests {
		got := correlation.ID(correlation.With(ctx, tc.id))
		if tc.kept && got != tc.id || !tc.kept && got != "" {
			t.Errorf("With(%q): ID = %q, kept %v", tc.id, got, tc.kept)
		}
	}
}

// A line logged with a context carrying an id has it as correlation_id,
// through WithAttrs and WithGroup too; without one it has none.
func TestLogHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(correlation.LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "orders")
	ctx := correlation.With(context.Background(), "abc123")
	log.InfoContext(ctx, "order created", "order_id", "o1")
	log.Info("no context")
	log.WithGroup("g").InfoContext(ctx, "grouped")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines %q", lines)
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first[correlation.LogKey] != "abc123" || first["service"] != "orders" {
		t.Errorf("with an id: %s", lines[0])
	}
	if _, ok := second[correlation.LogKey]; ok {
		t.Errorf("without an id: %s", lines[1])
	}
	if !strings.Contains(lines[2], `"abc123"`) {
		t.Errorf("grouped: %s", lines[2])
	}
	buf.Reset()
	twice := slog.New(correlation.LogHandler(correlation.LogHandler(slog.NewJSONHandler(&buf, nil))))
	twice.InfoContext(ctx, "once")
	if n := strings.Count(buf.String(), correlation.LogKey); n != 1 {
		t.Errorf("wrapped twice, the id is logged %d times: %s", n, buf.String())
	}
}
