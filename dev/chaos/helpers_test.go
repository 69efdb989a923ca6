package chaos_test

import (
	"bytes"
	"encoding/json"
	"io"
)

// jsonBody encodes v (maps and strings: it cannot fail).
func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}
