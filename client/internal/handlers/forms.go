package handlers

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/views/components"
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

// A form that creates something (sell, BUY, pay, a coupon included) carries
// a random key minted with the page (components.IdempotencyField), which the
// handler sends to the service as the create's Idempotency-Key: the page
// submitted twice, by a double click or again after a lost answer, with or
// without JavaScript, creates once, and the second submission leads to the
// same page as the first. A page rendered again (a form with errors) gets a
// new key: it is a new submission.

// keyBytes is the randomness of a key: 128 bits, 22 characters.
const keyBytes = 16

// newKey returns a new submission key.
func newKey() string {
	b := make([]byte, keyBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// submissionKey returns the key of the submitted form, or a new one when
// the form has none or not one the storefront mints (a page rendered
// before keys existed, a hand-made request): that submission is done, it
// is only not recognised if it comes again.
func submissionKey(c echo.Context) string {
	k := c.FormValue(components.IdempotencyField)
	if b, err := base64.RawURLEncoding.DecodeString(k); err != nil || len(b) != keyBytes {
		return newKey()
	}
	return k
}

// apiMessage is the message of a service's error answer, for the visitor.
func apiMessage(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return "Something went wrong."
}
