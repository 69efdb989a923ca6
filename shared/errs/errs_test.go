package errs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/stuffmart/stuffmart/shared/errs"
)

func TestErrorTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    errs.Error
		status int
		items  []errs.Item
		hidden string // must not appear in Serialize
	}{
		{
			name:   "validation",
			err:    &errs.RequestValidationError{Items: []errs.Item{{Message: "Email must be valid", Field: "email"}, {Message: "Too short", Field: "password"}}},
			status: http.StatusBadRequest,
			items:  []errs.Item{{Message: "Email must be valid", Field: "email"}, {Message: "Too short", Field: "password"}},
		},
		{
			name:   "invalid",
			err:    errs.Invalid("title", "Title is required"),
			status: http.StatusBadRequest,
			items:  []errs.Item{{Message: "Title is required", Field: "title"}},
		},
		{
			name:   "validation without items",
			err:    &errs.RequestValidationError{},
			status: http.StatusBadRequest,
			items:  []errs.Item{{Message: "Invalid request"}},
		},
		{
			name:   "database",
			err:    &errs.DatabaseConnectionError{Err: errors.New("dial tcp 10.0.0.7:27017: connection refused")},
			status: http.StatusServiceUnavailable,
			items:  []errs.Item{{Message: "Failed to connect to database"}},
			hidden: "10.0.0.7",
		},
		{
			name:   "not found",
			err:    errs.ErrNotFound,
			status: http.StatusNotFound,
			items:  []errs.Item{{Message: "Not Found"}},
		},
		{
			name:   "not authorized",
			err:    errs.ErrNotAuthorized,
			status: http.StatusUnauthorized,
			items:  []errs.Item{{Message: "Not authorized"}},
		},
		{
			name:   "bad request",
			err:    errs.BadRequest("Email in use"),
			status: http.StatusBadRequest,
			items:  []errs.Item{{Message: "Email in use"}},
		},
		{
			name:   "bad request with field",
			err:    &errs.BadRequestError{Message: "Cannot edit a reserved stuff", Field: "status"},
			status: http.StatusBadRequest,
			items:  []errs.Item{{Message: "Cannot edit a reserved stuff", Field: "status"}},
		},
		{
			name:   "conflict",
			err:    errs.Conflict("The stuff is being checking out by someone else, please come back later"),
			status: http.StatusConflict,
			items:  []errs.Item{{Message: "The stuff is being checking out by someone else, please come back later"}},
		},
		{
			name:   "http error",
			err:    &errs.HTTPError{Status: http.StatusForbidden, Message: "Invalid CSRF token"},
			status: http.StatusForbidden,
			items:  []errs.Item{{Message: "Invalid CSRF token"}},
		},
		{
			name:   "http error without message",
			err:    &errs.HTTPError{Status: http.StatusTooManyRequests},
			status: http.StatusTooManyRequests,
			items:  []errs.Item{{Message: "Too Many Requests"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.StatusCode(); got != tc.status {
				t.Errorf("StatusCode() = %d, want %d", got, tc.status)
			}
			got := tc.err.Serialize()
			if !reflect.DeepEqual(got, tc.items) {
				t.Errorf("Serialize() = %+v, want %+v", got, tc.items)
			}
			for _, it := range got {
				if it.Message == "" {
					t.Errorf("item with an empty message: %+v", got)
				}
				if tc.hidden != "" && strings.Contains(it.Message, tc.hidden) {
					t.Errorf("Serialize() leaks %q: %+v", tc.hidden, got)
				}
			}
			if tc.err.Error() == "" {
				t.Error("Error() is empty")
			}
			wrapped := fmt.Errorf("handler: %w", tc.err)
			e, ok := errs.As(wrapped)
			if !ok || e != tc.err {
				t.Errorf("errs.As(wrapped) = %v, %v; want the error itself", e, ok)
			}
		})
	}
}

func TestAsIgnoresPlainErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, errors.New("boom"), fmt.Errorf("wrap: %w", errors.New("boom"))} {
		if e, ok := errs.As(err); ok || e != nil {
			t.Errorf("errs.As(%v) = %v, %v; want nil, false", err, e, ok)
		}
	}
}

func TestSentinelsMatchWithIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"not found wrapped", fmt.Errorf("load stuff 1: %w", errs.ErrNotFound), errs.ErrNotFound, true},
		{"fresh not found value", &errs.NotFoundError{}, errs.ErrNotFound, true},
		{"not authorized wrapped", fmt.Errorf("order 1: %w", errs.ErrNotAuthorized), errs.ErrNotAuthorized, true},
		{"fresh not authorized value", &errs.NotAuthorizedError{}, errs.ErrNotAuthorized, true},
		{"not found is not unauthorized", errs.ErrNotFound, errs.ErrNotAuthorized, false},
		{"unauthorized is not not found", errs.ErrNotAuthorized, errs.ErrNotFound, false},
		{"plain error", errors.New("not found"), errs.ErrNotFound, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := errors.Is(tc.err, tc.target); got != tc.want {
				t.Errorf("errors.Is = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDatabaseConnectionErrorUnwraps(t *testing.T) {
	t.Parallel()
	cause := errors.New("server selection timeout")
	err := fmt.Errorf("open auth: %w", &errs.DatabaseConnectionError{Err: cause})
	if !errors.Is(err, cause) {
		t.Fatalf("errors.Is(%v, cause) = false", err)
	}
	if !strings.Contains(err.Error(), "server selection timeout") {
		t.Fatalf("Error() %q lost the cause (logs need it)", err.Error())
	}
}

func TestBodyJSONShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body errs.Body
		want string
	}{
		{"field omitted when empty", errs.Body{Errors: []errs.Item{{Message: "Not Found"}}}, `{"errors":[{"message":"Not Found"}]}`},
		{"field kept", errs.Body{Errors: []errs.Item{{Message: "Email must be valid", Field: "email"}}}, `{"errors":[{"message":"Email must be valid","field":"email"}]}`},
		{"internal", errs.Internal, `{"errors":[{"message":"Something went wrong"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got %s, want %s", b, tc.want)
			}
		})
	}
}
