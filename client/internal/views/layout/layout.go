// Package layout is the page frame every storefront page shares: the head
// (title, description, canonical URL, Open Graph, structured data, assets)
// and the header with the visitor's links.
package layout

import "github.com/a-h/templ"

// Meta is what a page says about itself to browsers, crawlers and link
// previews. Every page has its own Title and Description.
type Meta struct {
	// Title is the whole <title>, site name included.
	Title       string
	Description string
	// Canonical is the page's absolute URL, without tracking parameters.
	Canonical string
	// OGType is the Open Graph type: "website" or "product".
	OGType string
	// NoIndex keeps the page out of search results (account, order and
	// admin pages, errors): robots "noindex, nofollow".
	NoIndex bool
	// NoIndexFollow keeps the page out of search results but lets crawlers
	// follow its links (search results, sorted and filtered listings):
	// robots "noindex, follow".
	NoIndexFollow bool
	// JSONLD are structured data items (schema.org), each JSON-encoded
	// into a script of its own in the head, with < > & escaped.
	JSONLD []any
	// Scripts are the URLs of scripts to load (deferred).
	Scripts []string
	// Refresh, when positive, reloads the page after that many seconds
	// (a purchase still being finalised), with or without JavaScript.
	Refresh int
}

// Nav keys, for the current page's link.
const (
	NavHome    = "home"
	NavSell    = "sell"
	NavMine    = "mine"
	NavOrders  = "orders"
	NavCoupons = "coupons"
	NavUsers   = "users"
	NavSignIn  = "signin"
	NavSignUp  = "signup"
	NavAccount = "account"
)

// Header is the visitor as the header shows them.
type Header struct {
	SignedIn bool
	Email    string
	Admin    bool
	// CSRF is the token of the sign-out form.
	CSRF string
	// Current is the nav key of the page, marked aria-current.
	Current string
	// Query is the search the header's search box shows (the search
	// page's).
	Query string
}

// Notice is a message shown above the page's content.
type Notice struct {
	// Kind is "ok", "error" or "warn".
	Kind string
	Text string
}

// Page is everything the frame needs.
type Page struct {
	Meta   Meta
	Header Header
	Notice Notice
	// CSS and Icon are asset URLs.
	CSS  string
	Icon string
}

// SiteName is the storefront's name, in titles and Open Graph.
const SiteName = "Stuffmart"

// robots is the content of the page's robots meta; "" for none (index,
// follow).
func (m Meta) robots() string {
	switch {
	case m.NoIndex:
		return "noindex, nofollow"
	case m.NoIndexFollow:
		return "noindex, follow"
	}
	return ""
}

// current marks the link of the page the visitor is on.
func current(h Header, key string) templ.Attributes {
	if h.Current == key {
		return templ.Attributes{"aria-current": "page"}
	}
	return nil
}
