package validate_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
)

func TestEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		email string
		want  bool
	}{
		{"ann@uni.edu", true},
		{"ANN@UNI.EDU", true},
		{"a@b.co", true},
		{"first.last+tag@mail.uni.edu", true},
		{"o'brien@uni.ie", true},
		{"user_name-1@sub-domain.example.co.uk", true},
		{"josé@uni.edu", true},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + ".edu", true},

		{"", false},
		{"ann", false},
		{"ann@", false},
		{"@uni.edu", false},
		{"ann@uni", false},  // no TLD
		{"ann@uni.", false}, // empty TLD
		{"ann@.uni.edu", false},
		{"ann@uni..edu", false},
		{"ann@-uni.edu", false},
		{"ann@uni-.edu", false},
		{"ann.@uni.edu", false},
		{".ann@uni.edu", false},
		{"ann@@uni.edu", false},
		{"ann@uni@edu.org", false},
		{"Ann <ann@uni.edu>", false},
		{"<ann@uni.edu>", false},
		{`"Ann" <ann@uni.edu>`, false},
		{`"ann"@uni.edu`, false},
		{"ann@[127.0.0.1]", false},
		{"ann(comment)@uni.edu", false},
		{"ann @uni.edu", false},
		{" ann@uni.edu", false},
		{"ann@uni.edu ", false},
		{"ann@uni edu.org", false},
		{"ann@uni.edu\n", false},
		{"ann@uni.edu\r\nBcc: x@y.z", false},
		{"ann\t@uni.edu", false},
		{"ann@uni.edu,bob@uni.edu", false},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".edu", false}, // 255 characters
		{"ann@" + strings.Repeat("b", 64) + ".edu", false},                         // label over 63
	}
	for _, tc := range tests {
		t.Run(tc.email, func(t *testing.T) {
			t.Parallel()
			if got := validate.Email(tc.email); got != tc.want {
				t.Errorf("Email(%q) = %v, want %v", tc.email, got, tc.want)
			}
		})
	}
}

func TestLenCountsCharacters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"héllo", 5},
		{"日本語", 3},
		{"👍🏽", 2},
	}
	for _, tc := range tests {
		if got := validate.Len(tc.s); got != tc.want {
			t.Errorf("Len(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func(v *validate.Errors)
		want  []errs.Item // nil: Err() is nil
	}{
		{name: "nothing recorded", build: func(*validate.Errors) {}},
		{name: "passing checks", build: func(v *validate.Errors) {
			v.Check(true, "email", "Email must be valid")
			v.Check(true, "password", "Too short")
		}},
		{name: "one failure", build: func(v *validate.Errors) {
			v.Check(false, "email", "Email must be valid")
		}, want: []errs.Item{{Message: "Email must be valid", Field: "email"}}},
		{name: "first error per field wins", build: func(v *validate.Errors) {
			v.Check(false, "password", "Password is required")
			v.Check(false, "password", "Password must be at least 8 characters")
			v.Add("password", "Password must be at most 72 characters")
		}, want: []errs.Item{{Message: "Password is required", Field: "password"}}},
		{name: "one item per field in order", build: func(v *validate.Errors) {
			v.Check(false, "title", "Title is required")
			v.Check(true, "description", "Description is too long")
			v.Add("price", "Price must be from 1 to 1000000 cents")
			v.Check(false, "title", "Title is too long")
		}, want: []errs.Item{
			{Message: "Title is required", Field: "title"},
			{Message: "Price must be from 1 to 1000000 cents", Field: "price"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var v validate.Errors
			tc.build(&v)
			err := v.Err()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Err() = %v, want nil", err)
				}
				return
			}
			var rv *errs.RequestValidationError
			if !errors.As(err, &rv) {
				t.Fatalf("Err() = %T %v, want *errs.RequestValidationError", err, err)
			}
			if rv.StatusCode() != 400 {
				t.Fatalf("status %d, want 400", rv.StatusCode())
			}
			if !reflect.DeepEqual(rv.Serialize(), tc.want) {
				t.Fatalf("items %+v, want %+v", rv.Serialize(), tc.want)
			}
		})
	}
}

func TestErrorsErrIsASnapshot(t *testing.T) {
	t.Parallel()
	var v validate.Errors
	v.Add("a", "A is bad")
	v.Add("b", "B is bad")
	err := v.Err()
	first := append([]errs.Item(nil), err.(*errs.RequestValidationError).Items...)
	v.Add("c", "C is bad")
	if got := err.(*errs.RequestValidationError).Items; !reflect.DeepEqual(got, first) {
		t.Fatalf("an error already returned changed after a later Add: %+v", got)
	}
}

func TestPlainText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		s         string
		multiline bool
		ok        bool
	}{
		{"words", "Linear algebra notes", false, true},
		{"accents and emoji", "Notes de cours — été 📚", false, true},
		{"a tab", "Week\t1", false, true},
		{"a line break in a title", "Notes\nfree", false, false},
		{"line breaks in a description", "Line one\r\nLine two\n", true, true},
		{"a NUL", "Notes\x00", true, false},
		{"an escape sequence", "Notes \x1b[31mred", true, false},
		{"a DEL", "Notes\x7f", true, false},
		{"a C1 control", "Notes\u0085", true, false},
		{"a right-to-left override", "invoice\u202eexe.txt", false, false},
		{"a directional isolate", "a\u2066b\u2069", true, false},
		{"a right-to-left mark", "a\u200fb", false, false},
		{"invalid UTF-8", "a\xffb", false, false},
	}
	for _, tc := range tests {
		if got := validate.PlainText(tc.s, tc.multiline); got != tc.ok {
			t.Errorf("%s: PlainText(%q, %v) = %v, want %v", tc.name, tc.s, tc.multiline, got, tc.ok)
		}
	}
}
