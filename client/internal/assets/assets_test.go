package assets_test

import (
	"net/http"
	"testing"

	"github.com/stuffmart/stuffmart/client/internal/assets"
)

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"br, gzip", true},
		{"gzip;q=0.5", true},
		{"GZIP; q=1", true},
		{"gzip;q=0.001", true},
		{"deflate", false},
		// q=0 means "not acceptable" (RFC 9110 §12.4.2), however written.
		{"gzip;q=0", false},
		{"gzip; q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=0.000", false},
		{"gzip;Q=0", false},
		{"br, gzip;q=0.00", false},
	}
	for _, tc := range tests {
		r, err := http.NewRequest(http.MethodGet, "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.header != "" {
			r.Header.Set("Accept-Encoding", tc.header)
		}
		if got := assets.AcceptsGzip(r); got != tc.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
