package handlers

import (
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// formatPrice shows cents in the currency: $1,234.50 for usd, "12.00 EUR"
// for another.
func formatPrice(cents int64, currency string) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = whole[:i] + "," + whole[i:]
	}
	s := whole + "." + pad2(cents%100)
	if currency == "" || strings.EqualFold(currency, "usd") {
		s = "$" + s
	} else {
		s += " " + strings.ToUpper(currency)
	}
	if neg {
		s = "-" + s
	}
	return s
}

// decimalPrice is the price as schema.org wants it: "1234.50".
func decimalPrice(cents int64) string {
	return strconv.FormatInt(cents/100, 10) + "." + pad2(cents%100)
}

func pad2(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// maxPriceDigits bounds the dollars a price may have before it is refused
// without arithmetic (no overflow).
const maxPriceDigits = 9

// parsePrice reads a price typed in dollars ("4", "4.5", "$4.99",
// "1,000.00") into cents. ok is false for anything else.
func parsePrice(s string) (cents int64, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$")
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" && !hasFrac {
		return 0, false
	}
	if whole == "" {
		whole = "0"
	}
	if len(whole) > maxPriceDigits || !digits(whole) || (hasFrac && (len(frac) < 1 || len(frac) > 2 || !digits(frac))) {
		return 0, false
	}
	w, _ := strconv.ParseInt(whole, 10, 64) // digits only, at most 9: no error
	var f int64
	if hasFrac {
		f, _ = strconv.ParseInt(frac, 10, 64)
		if len(frac) == 1 {
			f *= 10
		}
	}
	return w*100 + f, true
}

// inputPrice shows cents for an input field: "4.99".
func inputPrice(cents int64) string {
	if cents <= 0 {
		return ""
	}
	return decimalPrice(cents)
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// formatTime shows a time to people: "2 Jan 2026, 15:04 UTC".
func formatTime(t time.Time) string {
	return t.UTC().Format("2 Jan 2006, 15:04 MST")
}

// formatClock shows a time of day with seconds: "15:04:05 UTC".
func formatClock(t time.Time) string {
	return t.UTC().Format("2 Jan 2006, 15:04:05 MST")
}

// isoTime is the machine-readable form for <time datetime>.
func isoTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// formatRemaining shows a duration as m:ss, rounding up (the countdown
// script does the same).
func formatRemaining(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(s/60, 10) + ":" + pad2(s%60)
}

// formatDuration says a duration in words, to the second: "15 minutes",
// "1 hour 30 minutes", "1 second"; "under a second" below half a second.
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	var parts []string
	for _, u := range []struct {
		size time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		n := int64(d / u.size)
		d -= time.Duration(n) * u.size
		switch {
		case n == 1:
			parts = append(parts, "1 "+u.name)
		case n > 1:
			parts = append(parts, strconv.FormatInt(n, 10)+" "+u.name+"s")
		}
	}
	if len(parts) == 0 {
		return "under a second"
	}
	return strings.Join(parts, " ")
}

// excerpt is s on one line, cut to at most n characters at a word boundary.
// It reads no more of s than it needs: a card shows the start of a
// description that may be 5,000 characters long.
func excerpt(s string, n int) string {
	// The first n+1 characters of s with its runs of white space made one
	// space (none leading), enough to know whether s goes on past n.
	r := make([]rune, 0, n+1)
	pending := false
	for _, c := range s {
		if unicode.IsSpace(c) {
			pending = len(r) > 0
			continue
		}
		if pending {
			r = append(r, ' ')
			pending = false
		}
		if len(r) > n {
			break
		}
		r = append(r, c)
	}
	if len(r) <= n {
		return string(r)
	}
	r = r[:n]
	cut := len(r)
	for i := len(r) - 1; i > n/2; i-- {
		if unicode.IsSpace(r[i]) {
			cut = i
			break
		}
	}
	return strings.TrimRightFunc(string(r[:cut]), func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) }) + "…"
}

// linkOf returns s when it is one absolute http(s) URL, to show delivery
// content as a link too; "" otherwise.
func linkOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.String()
}

// localPath returns next when it is a path on this site ("/orders/1"), so
// that a sign-in link cannot send the visitor to another site; "" else.
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return u.RequestURI()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// pathTo builds a path from a fixed prefix and an id from a service.
func pathTo(prefix, id string, suffix ...string) string {
	return prefix + url.PathEscape(id) + strings.Join(suffix, "")
}

func upper(s string) string { return strings.ToUpper(s) }
