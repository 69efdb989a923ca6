package http

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/stuffmart/stuffmart/services/stuff/internal/catalog"
	"github.com/stuffmart/stuffmart/services/stuff/internal/search"
	"github.com/stuffmart/stuffmart/services/stuff/internal/stuff"
)

// stuffRequest is the body of POST and PUT /api/stuff. Decoding is strict
// (web.Bind): unknown fields, wrong types (a float or string price, an
// operator object as title) are 400s before any rule runs. On PUT, an absent
// description or delivery keeps the current one.
type stuffRequest struct {
	Title       string  `json:"title"`
	Description *string `json:"description"`
	Price       int64   `json:"price"`
	Currency    *string `json:"currency"`
	Delivery    *string `json:"delivery"`
}

func (r stuffRequest) input() stuff.Input {
	return stuff.Input{Title: r.Title, Description: r.Description, Price: r.Price, Currency: r.Currency, Delivery: r.Delivery}
}

// stuffJSON is a listing as clients see it: no _id, no outbox, no
// bookkeeping; delivery only for who may see it.
type stuffJSON struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Description string  `json:"description"`
	Price       int64   `json:"price"`
	Currency    string  `json:"currency"`
	UserID      string  `json:"userId"`
	Status      string  `json:"status"`
	OrderID     string  `json:"orderId,omitempty"`
	Version     int64   `json:"version"`
	CreatedAt   string  `json:"createdAt"`
	Delivery    *string `json:"delivery,omitempty"`
}

// Encode returns the JSON of s, with its delivery content when withDelivery
// is set (the caller decides who may see it). It is the catalog's encoder,
// so every response of the service has one shape.
func Encode(s *stuff.Stuff, withDelivery bool) []byte {
	v := stuffJSON{ID: s.ID, Title: s.Title, Description: s.Description, Price: s.Price, Currency: s.Currency,
		UserID: s.UserID, Status: string(s.Status), OrderID: s.OrderID, Version: s.Version,
		CreatedAt: s.CreatedAt.UTC().Format(time.RFC3339Nano)}
	if withDelivery {
		d := s.Delivery
		v.Delivery = &d
	}
	// Strings and integers only: encoding/json cannot fail on them.
	b, _ := json.Marshal(v)
	return b
}

// pageJSON returns the JSON of a page of listings:
// {"stuff":[...],"page":P,"limit":L,"total":N}. A hit with highlights is its
// listing's JSON object with one more member, "highlight":
// {"title":[segment...],"description":[segment...]}, each segment
// {"text":"..."} or {"text":"...","match":true}.
func pageJSON(hits []catalog.Hit, page, limit, total int) []byte {
	size := 64
	for _, h := range hits {
		size += len(h.JSON) + 48
		for _, seg := range h.Title {
			size += len(seg.Text) + 32
		}
		for _, seg := range h.Description {
			size += len(seg.Text) + 32
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"stuff":[`...)
	for i, h := range hits {
		if i > 0 {
			b = append(b, ',')
		}
		if h.Title == nil || len(h.JSON) == 0 || h.JSON[len(h.JSON)-1] != '}' {
			b = append(b, h.JSON...)
			continue
		}
		b = append(b, h.JSON[:len(h.JSON)-1]...)
		b = append(b, `,"highlight":{"title":`...)
		b = appendSegments(b, h.Title)
		b = append(b, `,"description":`...)
		b = appendSegments(b, h.Description)
		b = append(b, "}}"...)
	}
	b = append(b, `],"page":`...)
	b = strconv.AppendInt(b, int64(page), 10)
	b = append(b, `,"limit":`...)
	b = strconv.AppendInt(b, int64(limit), 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	return append(b, '}')
}

func appendSegments(b []byte, segs []search.Segment) []byte {
	b = append(b, '[')
	for i, s := range segs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"text":`...)
		b = appendString(b, s.Text)
		if s.Match {
			b = append(b, `,"match":true`...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

const hex = "0123456789abcdef"

// plain marks the ASCII bytes a JSON string holds as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string, escaped as encoding/json does
// (HTML's <, > and & too, and U+2028, U+2029), so a seller's text stays text
// wherever the JSON ends up.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
