package handlers

import (
	"errors"
	"net/http"

	"github.com/stuffmart/stuffmart/client/internal/api"
)

// formErrors are a service's 400 answer to a form: messages by field (the
// service's field names are the form's), and the ones of no known field.
type formErrors struct {
	fields  map[string]string
	general []string
}

// formErrorsOf returns the errors of a 400 answer (or 402, a declined card);
// ok is false for any other
// error, which the caller returns as is.
func formErrorsOf(err error, known ...string) (formErrors, bool) {
	var ae *api.Error
	if !errors.As(err, &ae) || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusPaymentRequired) {
		return formErrors{}, false
	}
	fe := formErrors{fields: map[string]string{}}
	for _, it := range ae.Items {
		isKnown := false
		for _, k := range known {
			if it.Field == k {
				isKnown = true
				break
			}
		}
		switch {
		case isKnown && fe.fields[it.Field] == "":
			fe.fields[it.Field] = it.Message
		case isKnown:
			// The first message of a field is enough.
		default:
			fe.general = append(fe.general, it.Message)
		}
	}
	return fe, true
}

// set records a field error found by the storefront itself (one the
// service could not see, such as a price that is not a number).
func (fe *formErrors) set(field, msg string) {
	if fe.fields == nil {
		fe.fields = map[string]string{}
	}
	fe.fields[field] = msg
}

func (fe formErrors) empty() bool { return len(fe.fields) == 0 && len(fe.general) == 0 }

// apiMessage is the message of a service's error answer, for the visitor.
func apiMessage(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return "Something went wrong."
}
