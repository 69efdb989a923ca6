// Package correlation carries one id through everything a purchase causes:
// the storefront request that began it, the calls it made to the services,
// the events those wrote and the events their listeners wrote in turn. It
// rides in the context, in the X-Correlation-Id header between processes
// and in the "correlationId" field of every event payload (NATS Streaming
// has no headers), and every log line written with that context carries it
// as correlation_id, so that grep of one id tells the whole story.
package correlation

import (
	"context"
	"log/slog"
)

// Header carries the id on HTTP requests between Stuffmart processes.
const Header = "X-Correlation-Id"

// LogKey is the attribute every log line written with a context that has an
// id carries.
const LogKey = "correlation_id"

type key struct{}

// With returns ctx carrying id (ctx itself when id is not Valid).
func With(ctx context.Context, id string) context.Context {
	if !Valid(id) {
		return ctx
	}
	return context.WithValue(ctx, key{}, id)
}

// ID is the id ctx carries, or "".
func ID(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// Valid reports whether id may be used: 1 to 64 letters, digits, '-', '_'
// or '.', so that an id taken from a request cannot forge log lines or grow
// without bound.
func Valid(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// LogHandler wraps h so that a record logged with a context carrying an id
// gets it as correlation_id.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(handler); ok {
		return h
	}
	return handler{h}
}

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := ID(ctx); id != "" {
		r.AddAttrs(slog.String(LogKey, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs)}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{h.Handler.WithGroup(name)}
}
