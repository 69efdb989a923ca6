package app_test

import (
	"net/http"
	"testing"
)

// hidden are characters a person does not type into a listing but a page
// shows wrongly, or a terminal or log obeys: control characters and the
// bidirectional overrides, embeddings, isolates and marks that make a title
// read differently from what it holds.
var hidden = []struct {
	name string
	r    string
}{
	{"NUL", "\x00"},
	{"bell", "\a"},
	{"escape", "\x1b"},
	{"vertical tab", "\v"},
	{"form feed", "\f"},
	{"delete", "\x7f"},
	{"C1 next line", "\u0085"},
	{"C1 control sequence introducer", "\u009b"},
	{"left-to-right embedding", "\u202a"},
	{"right-to-left embedding", "\u202b"},
	{"pop directional formatting", "\u202c"},
	{"left-to-right override", "\u202d"},
	{"right-to-left override", "\u202e"},
	{"left-to-right isolate", "\u2066"},
	{"right-to-left isolate", "\u2067"},
	{"first strong isolate", "\u2068"},
	{"pop directional isolate", "\u2069"},
	{"left-to-right mark", "\u200e"},
	{"right-to-left mark", "\u200f"},
	{"Arabic letter mark", "\u061c"},
}

// textFields are the free-text fields of a listing: whether a line break is
// part of what a seller may write there, and the field's message when
// refused.
var textFields = []struct {
	field     string
	multiline bool
	message   string
}{
	{"title", false, "Title must not contain control or text-direction characters"},
	{"description", true, "Description must not contain control or text-direction characters"},
	{"delivery", true, "Delivery must not contain control or text-direction characters"},
}

// body is a valid listing with field set to value.
func body(field, value string) map[string]any {
	b := map[string]any{"title": "Notes", "description": "About the notes", "price": 100, "delivery": "https://x.example/n.pdf"}
	b[field] = value
	return b
}

// TestFreeTextRefusesHiddenCharacters: a title, description or delivery
// holding a control or text-direction character is a 400 naming the field,
// on create and on edit; an edit refused changes nothing. Line breaks are
// refused in a title only (a description or delivery has lines); a tab is
// accepted everywhere.
func TestFreeTextRefusesHiddenCharacters(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller := s.user()
	own := s.create(t, seller, "Before", 100, "the secret")

	for _, f := range textFields {
		refused := hidden
		if !f.multiline {
			refused = append(refused[:len(refused):len(refused)],
				struct{ name, r string }{"line feed", "\n"}, struct{ name, r string }{"carriage return", "\r"})
		}
		for _, c := range refused {
			value := "Linear " + c.r + "algebra"
			t.Run(f.field+"/"+c.name, func(t *testing.T) {
				s.do(t, seller, http.MethodPost, "/api/stuff", body(f.field, value)).wantError(http.StatusBadRequest, f.message, f.field)
				s.do(t, seller, http.MethodPut, "/api/stuff/"+own.ID, body(f.field, value)).wantError(http.StatusBadRequest, f.message, f.field)
			})
		}
	}

	if got := s.get(t, seller, own.ID); got.Title != "Before" || got.Description != "about Before" || *got.Delivery != "the secret" || got.Version != 1 {
		t.Fatalf("refused edits changed the listing: %+v", got)
	}
	if m := s.do(t, seller, http.MethodGet, "/api/stuff/mine", nil).mine(); len(m.Stuff) != 1 {
		t.Fatalf("refused creates stored listings: %d listed", len(m.Stuff))
	}
}

// TestFreeTextAcceptsWhatPeopleWrite: accents, emoji (joined ones too),
// CJK, right-to-left scripts written as they are, and in a description or
// delivery line breaks and tabs, are stored as sent, on create and on edit.
func TestFreeTextAcceptsWhatPeopleWrite(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	seller := s.user()
	tests := []struct {
		name, title, description, delivery string
	}{
		{name: "accents", title: "Café crème: déjà vu, naïve Ångström", description: "Résumé für Übungen", delivery: "Clé: ÀÉÎÕÜ"},
		{name: "emoji", title: "📚 Notes 🎓 👩‍👩‍👧 👍🏽", description: "Great 💯", delivery: "🔑 key"},
		{name: "CJK", title: "线性代数笔记 ノート 노트", description: "全部内容", delivery: "リンク"},
		{name: "right-to-left script", title: "ملاحظات الجبر", description: "סיכום הקורס", delivery: "رابط"},
		{name: "lines and tabs", title: "Notes\tv2", description: "Chapter 1\nChapter 2\r\n\tAppendix", delivery: "Link:\n\thttps://x.example/n.pdf\r\nCode:\tABC-123"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{"title": tc.title, "description": tc.description, "price": 100, "delivery": tc.delivery}
			got := s.do(t, seller, http.MethodPost, "/api/stuff", in).stuff(http.StatusCreated)
			if got.Title != tc.title || got.Description != tc.description || *got.Delivery != tc.delivery {
				t.Fatalf("created %+v, want %q %q %q", got, tc.title, tc.description, tc.delivery)
			}
			plain := s.create(t, seller, "Plain", 100, "plain")
			edited := s.do(t, seller, http.MethodPut, "/api/stuff/"+plain.ID, in).stuff(http.StatusOK)
			if edited.Title != tc.title || edited.Description != tc.description || *edited.Delivery != tc.delivery || edited.Version != 2 {
				t.Fatalf("edited %+v, want %q %q %q", edited, tc.title, tc.description, tc.delivery)
			}
		})
	}
}
