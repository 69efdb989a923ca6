// Package components holds the small, typed pieces pages are made of: form
// fields with their labels and errors, notices, badges, the CSRF and
// idempotency key fields, the pager and the listing card.
package components

import (
	"strconv"
	"strings"

	"github.com/a-h/templ"
)

// IdempotencyField is the hidden field of a form that creates something
// (sell, BUY, pay): the key of the submission, minted with the page.
const IdempotencyField = "_idempotencyKey"

// Field is one labelled form control with its value (the user's input, kept
// when the form comes back with errors) and its error.
type Field struct {
	// ID is the control's id; Name its form name (ID when empty).
	ID    string
	Name  string
	Label string
	// Type is the input type ("text" when empty); ignored by TextArea.
	Type  string
	Value string
	// Error is shown next to the control, which is then marked invalid.
	Error        string
	Hint         string
	Autocomplete string
	InputMode    string
	Required     bool
	MaxLength    int
	Min, Max     string
}

func (f Field) name() string {
	if f.Name == "" {
		return f.ID
	}
	return f.Name
}

func (f Field) typ() string {
	if f.Type == "" {
		return "text"
	}
	return f.Type
}

// attrs are the control's optional attributes: the hint and error it is
// described by, invalid state, and its constraints.
func (f Field) attrs() templ.Attributes {
	a := templ.Attributes{}
	var by []string
	if f.Hint != "" {
		by = append(by, f.ID+"-hint")
	}
	if f.Error != "" {
		by = append(by, f.ID+"-error")
		a["aria-invalid"] = "true"
	}
	if len(by) > 0 {
		a["aria-describedby"] = strings.Join(by, " ")
	}
	if f.Autocomplete != "" {
		a["autocomplete"] = f.Autocomplete
	}
	if f.InputMode != "" {
		a["inputmode"] = f.InputMode
	}
	if f.Required {
		a["required"] = true
	}
	if f.MaxLength > 0 {
		a["maxlength"] = strconv.Itoa(f.MaxLength)
	}
	if f.Min != "" {
		a["min"] = f.Min
	}
	if f.Max != "" {
		a["max"] = f.Max
	}
	return a
}

// Choice is one radio button of a group.
type Choice struct {
	Value   string
	Label   string
	Hint    string
	Checked bool
}

// Card is a listing in a grid.
type Card struct {
	URL     string
	Title   string
	Excerpt string
	Price   string
	// TitleMarks and ExcerptMarks, when set, are the title and a fragment
	// of the description with a search's matches marked: shown instead of
	// Title and Excerpt.
	TitleMarks   []Segment
	ExcerptMarks []Segment
	// Badge is shown when the listing is not simply available.
	BadgeKind string
	BadgeText string
}

// Segment is a piece of text; Match marks a search's match (shown in
// <mark>). The text is escaped like all text.
type Segment struct {
	Text  string
	Match bool
}

// Pager links to the neighbouring pages of a paginated list.
type Pager struct {
	PrevURL string
	NextURL string
	// PrevText and NextText are the links' words: "← Previous" and
	// "Next →" when empty ("← Newer", "Older →" for a newest-first list).
	PrevText string
	NextText string
	// Label is "Page 2 of 250".
	Label string
}

func (p Pager) prevText() string {
	if p.PrevText == "" {
		return "← Previous"
	}
	return p.PrevText
}

func (p Pager) nextText() string {
	if p.NextText == "" {
		return "Next →"
	}
	return p.NextText
}

// Crumb is one step of a page's breadcrumbs; the last one, the page
// itself, has no URL.
type Crumb struct {
	Name string
	URL  string
}

// Controls is the sort and price-range form of a listing page: a GET form,
// so that each choice is a URL and it works without JavaScript.
type Controls struct {
	// Action is the page's path ("/", "/search").
	Action string
	// Search is whether the page is the search page, whose form carries
	// the search (Query) along.
	Search bool
	Query  string
	// Sorts are the orders offered, the current one Checked.
	Sorts     []Choice
	SortError string
	// Min and Max are the price range's fields, in dollars.
	Min, Max Field
	// ClearURL, when set, is the page without its order and range.
	ClearURL string
}

func itoa(i int) string { return strconv.Itoa(i) }
