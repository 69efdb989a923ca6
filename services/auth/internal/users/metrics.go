package users

import (
	"errors"
	"net/http"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Metrics counts what becomes of sign-ins and sign-ups (the app counts them
// in the service's Prometheus registry: auth_signins_total and
// auth_signups_total, see docs/observability.md).
type Metrics interface {
	// SignIn counts one sign-in with its result.
	SignIn(result string)
	// SignUp counts one sign-up with its result.
	SignUp(result string)
}

// The results of a sign-in or a sign-up.
const (
	// Succeeded: the account is signed in.
	Succeeded = "succeeded"
	// Failed: refused for what was sent: a malformed email or password,
	// wrong credentials, a banned account, an email in use.
	Failed = "failed"
	// Refused: refused before anything was checked, by the account's
	// limit or its failed sign-in backoff. (Refusals by client address
	// happen before the request reaches the rules: they are only in
	// ratelimit_refused_total.)
	Refused = "refused"
)

// result is the result err means, and false for an error that is the
// service's own (the database away): neither the user's failure nor a
// refusal.
func result(err error) (string, bool) {
	var tmr *errs.TooManyRequestsError
	switch {
	case err == nil:
		return Succeeded, true
	case errors.As(err, &tmr):
		return Refused, true
	}
	if e, ok := errs.As(err); ok && e.StatusCode() < http.StatusInternalServerError {
		return Failed, true
	}
	return "", false
}

// uncounted is the Metrics of a Service given none.
type uncounted struct{}

func (uncounted) SignIn(string) {}
func (uncounted) SignUp(string) {}
