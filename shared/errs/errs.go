// Package errs holds the error types every Stuffmart service returns to HTTP
// clients. Each one knows its status code and how to serialize itself into the
// normalized shape {"errors":[{"message":"...","field":"..."}]}, so a single
// Echo error handler (package web) can answer for all of them.
package errs

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"
)

// Item is one entry of the normalized error body. Field is set only when the
// error is about one input field.
type Item struct {
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Body is the normalized error body written for every non-2xx response.
type Body struct {
	Errors []Item `json:"errors"`
}

// Error is implemented by every error that may be shown to a client: it
// carries its HTTP status and a user-safe serialization. Errors that do not
// implement it are answered with a 500 "Something went wrong".
type Error interface {
	error
	StatusCode() int
	Serialize() []Item
}

// As reports whether err (or an error it wraps) is a client-facing Error.
func As(err error) (Error, bool) {
	var e Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// RequestValidationError reports one item per bad input field (400).
type RequestValidationError struct {
	Items []Item
}

// Invalid returns a RequestValidationError for a single field.
func Invalid(field, message string) *RequestValidationError {
	return &RequestValidationError{Items: []Item{{Message: message, Field: field}}}
}

func (e *RequestValidationError) Error() string {
	if len(e.Items) == 0 {
		return "invalid request"
	}
	return "invalid request: " + e.Items[0].Field + ": " + e.Items[0].Message
}

// StatusCode is 400.
func (e *RequestValidationError) StatusCode() int { return http.StatusBadRequest }

// Serialize returns one item per bad field (a generic one if there are none,
// so the body never has an empty errors list).
func (e *RequestValidationError) Serialize() []Item {
	if len(e.Items) == 0 {
		return []Item{{Message: "Invalid request"}}
	}
	return e.Items
}

// DatabaseConnectionError reports that the service's database cannot be
// reached (503). The cause is kept for logs and never shown to clients.
type DatabaseConnectionError struct {
	Err error
}

func (e *DatabaseConnectionError) Error() string {
	if e.Err == nil {
		return "failed to connect to database"
	}
	return "failed to connect to database: " + e.Err.Error()
}

// Unwrap exposes the cause.
func (e *DatabaseConnectionError) Unwrap() error { return e.Err }

// StatusCode is 503: the service is up but cannot do its work right now.
func (e *DatabaseConnectionError) StatusCode() int { return http.StatusServiceUnavailable }

// Serialize hides the cause.
func (e *DatabaseConnectionError) Serialize() []Item {
	return []Item{{Message: "Failed to connect to database"}}
}

// NotFoundError is a 404 "Not Found".
type NotFoundError struct{}

// ErrNotFound is the shared NotFoundError value; match it with errors.Is or
// errors.As.
var ErrNotFound = &NotFoundError{}

func (e *NotFoundError) Error() string        { return "not found" }
func (e *NotFoundError) StatusCode() int      { return http.StatusNotFound }
func (e *NotFoundError) Serialize() []Item    { return []Item{{Message: "Not Found"}} }
func (e *NotFoundError) Is(target error) bool { _, ok := target.(*NotFoundError); return ok }

// NotAuthorizedError is a 401 "Not authorized": not signed in, not yours, or
// not an admin.
type NotAuthorizedError struct{}

// ErrNotAuthorized is the shared NotAuthorizedError value.
var ErrNotAuthorized = &NotAuthorizedError{}

func (e *NotAuthorizedError) Error() string     { return "not authorized" }
func (e *NotAuthorizedError) StatusCode() int   { return http.StatusUnauthorized }
func (e *NotAuthorizedError) Serialize() []Item { return []Item{{Message: "Not authorized"}} }
func (e *NotAuthorizedError) Is(target error) bool {
	_, ok := target.(*NotAuthorizedError)
	return ok
}

// BadRequestError is a 400 with a message about the request as a whole (or
// one field): "Email in use", "Cannot edit a reserved stuff".
type BadRequestError struct {
	Message string
	Field   string
}

// BadRequest returns a BadRequestError with a message and no field.
func BadRequest(message string) *BadRequestError { return &BadRequestError{Message: message} }

func (e *BadRequestError) Error() string     { return "bad request: " + e.Message }
func (e *BadRequestError) StatusCode() int   { return http.StatusBadRequest }
func (e *BadRequestError) Serialize() []Item { return []Item{{Message: e.Message, Field: e.Field}} }

// ConflictError is a 409: the resource is taken by someone else right now.
type ConflictError struct {
	Message string
}

// Conflict returns a ConflictError with the given message.
func Conflict(message string) *ConflictError { return &ConflictError{Message: message} }

func (e *ConflictError) Error() string     { return "conflict: " + e.Message }
func (e *ConflictError) StatusCode() int   { return http.StatusConflict }
func (e *ConflictError) Serialize() []Item { return []Item{{Message: e.Message}} }

// TooManyRequestsError is a 429: a client went over a rate limit. The
// error handler sends RetryAfter as the Retry-After header (whole seconds,
// rounded up).
type TooManyRequestsError struct {
	RetryAfter time.Duration
	// Limit names the limit that refused (for metrics; never shown).
	Limit string
}

func (e *TooManyRequestsError) Error() string   { return "rate limited for " + e.RetryAfter.String() }
func (e *TooManyRequestsError) StatusCode() int { return http.StatusTooManyRequests }

// Serialize says when to come back.
func (e *TooManyRequestsError) Serialize() []Item {
	return []Item{{Message: fmt.Sprintf("Too many requests: try again in %d seconds", e.Seconds())}}
}

// Seconds is RetryAfter in whole seconds, at least one.
func (e *TooManyRequestsError) Seconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// HTTPError is any other status with a user-safe message, used for the
// framework's own answers (405, 413, 403 CSRF, ...).
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string   { return e.message() }
func (e *HTTPError) StatusCode() int { return e.Status }

// Serialize returns the message, or the status text when it is empty.
func (e *HTTPError) Serialize() []Item { return []Item{{Message: e.message()}} }

func (e *HTTPError) message() string {
	if e.Message == "" {
		return http.StatusText(e.Status)
	}
	return e.Message
}

// Internal is the body of every 500: the cause is logged, never shown.
var Internal = Body{Errors: []Item{{Message: "Something went wrong"}}}
