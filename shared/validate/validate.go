// Package validate collects field errors for a request so that a client sees
// every bad field at once, as one errs.RequestValidationError.
package validate

import (
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Errors accumulates field errors. The zero value is ready to use.
type Errors struct {
	items []errs.Item
}

// Add records a field error unless the field already has one: the first
// failure of a field is the one the user needs to fix first.
func (v *Errors) Add(field, message string) {
	for _, it := range v.items {
		if it.Field == field {
			return
		}
	}
	v.items = append(v.items, errs.Item{Field: field, Message: message})
}

// Check records message for field when ok is false.
func (v *Errors) Check(ok bool, field, message string) {
	if !ok {
		v.Add(field, message)
	}
}

// Err returns nil when nothing was recorded, else a *errs.RequestValidationError.
func (v *Errors) Err() error {
	if len(v.items) == 0 {
		return nil
	}
	return &errs.RequestValidationError{Items: slices.Clone(v.items)}
}

// Len returns the number of characters (runes) in s: limits are stated to
// users in characters, not bytes.
func Len(s string) int { return utf8.RuneCountInString(s) }

// Email reports whether s is a plain address such as "ann@uni.edu": no display
// name, no angle brackets, no quoted local part or [address literal], a
// host name with a dot in the domain, at most 254 characters.
func Email(s string) bool {
	if s == "" || len(s) > 254 || strings.ContainsAny(s, " <>\"[]\r\n\t") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return false
	}
	labels := strings.Split(s[at+1:], ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
	}
	return true
}

// PlainText reports whether s is text a person typed: no control characters
// (a tab, and in multiline text a line break, excepted) and no bidirectional
// overrides or isolates, which make text shown on a page read differently
// from what it holds (a title that displays "txt.exe" as "exe.txt").
func PlainText(s string, multiline bool) bool {
	for _, r := range s {
		switch {
		case r == '\t':
		case multiline && (r == '\n' || r == '\r'):
		case unicode.IsControl(r):
			return false
		case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\u061c':
			return false
		case r == utf8.RuneError:
			return false
		}
	}
	return true
}
