package web_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/web"
)

// A request's correlation id is the caller's (when valid) or its own
// request id; handlers find it in the context, the response and the access
// log carry it.
func TestCorrelate(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := web.New(slog.New(slog.NewJSONHandler(&logs, nil)), web.Options{})
	e.GET("/id", func(c echo.Context) error { return c.String(http.StatusOK, correlation.ID(c.Request().Context())) })
	serve := func(header string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/id", nil)
		if header != "" {
			req.Header.Set(correlation.Header, header)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}

	rec := serve("purchase-42")
	if rec.Body.String() != "purchase-42" || rec.Header().Get(correlation.Header) != "purchase-42" {
		t.Fatalf("with a caller's id: body %q, header %q", rec.Body, rec.Header().Get(correlation.Header))
	}
	if !strings.Contains(logs.String(), `"correlation_id":"purchase-42"`) {
		t.Fatalf("access log without the id: %s", logs.String())
	}
	for _, header := range []string{"", "two words\n"} {
		rec := serve(header)
		rid := rec.Header().Get(echo.HeaderXRequestID)
		if rid == "" || rec.Body.String() != rid || rec.Header().Get(correlation.Header) != rid {
			t.Fatalf("header %q: body %q, request id %q", header, rec.Body, rid)
		}
	}

	// A caller's request id becomes the correlation id only when valid.
	for _, rid := range []string{strings.Repeat("x", 10_000), "a b"} {
		req := httptest.NewRequest(http.MethodGet, "/id", nil)
		req.Header.Set(echo.HeaderXRequestID, rid)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		got := rec.Header().Get(echo.HeaderXRequestID)
		if got == rid || !correlation.Valid(got) || rec.Body.String() != got {
			t.Fatalf("X-Request-Id of %d bytes: answered %.40q, correlation id %.40q", len(rid), got, rec.Body.String())
		}
	}
}
