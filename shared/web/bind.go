package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Validator is implemented by request structs that check their own fields,
// returning a *errs.RequestValidationError (see package validate).
type Validator interface {
	Validate() error
}

// Bind decodes the JSON body into dst strictly and validates it. Wrong JSON
// types (an object such as {"$ne":null} where a string is expected, a float
// where an integer is), unknown fields, trailing data and malformed JSON give
// a 400; a body over the limit gives 413; a body that is not declared JSON
// (another Content-Type, or none) gives 415.
// Nothing the client sends can reach a query except through dst's typed
// fields.
func Bind(c echo.Context, dst any) error {
	req := c.Request()
	// A body without a Content-Type is refused too: a browser sends one
	// cross-site without asking first (a "simple" request), so accepting
	// it would let another site's page post with the user's cookie.
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return &errs.HTTPError{Status: http.StatusUnsupportedMediaType, Message: "Content-Type must be application/json"}
	}
	if err := Decode(req.Body, dst); err != nil {
		return err
	}
	if v, ok := dst.(Validator); ok {
		return v.Validate()
	}
	return nil
}

// Decode reads one JSON value from r into dst with the rules of Bind, without
// validation.
func Decode(r io.Reader, dst any) error {
	if r == nil {
		return errs.BadRequest("Request body must be a JSON object")
	}
	body, err := io.ReadAll(r)
	if err != nil {
		if tooLarge(err) {
			return &errs.HTTPError{Status: http.StatusRequestEntityTooLarge, Message: "Request body too large"}
		}
		return errs.BadRequest("Could not read request body")
	}
	trimmed := bytes.TrimSpace(body)
	// A bare null would decode into dst as a no-op and let a zero request
	// through to validation as if the client had sent {}.
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return errs.BadRequest("Request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	// Decoder.More is not enough: it reports false for a stray '}' or ']'
	// after the value, so check that only white space follows it.
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return errs.BadRequest("Request body must hold a single JSON object")
	}
	return nil
}

// tooLarge reports whether reading the body failed on a size limit: Echo's
// BodyLimit middleware (a body without Content-Length, or one longer than it
// claimed) or http.MaxBytesReader.
func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	var he *echo.HTTPError
	return errors.As(err, &mbe) || (errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge)
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return errs.BadRequest("Request body must be a JSON object")
		}
		return errs.Invalid(typeErr.Field, typeName(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return errs.BadRequest("Malformed JSON")
	}
	// encoding/json has no typed error for unknown fields; its message is the
	// only place the field name is (stable since Go 1.10).
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if f, uerr := strconv.Unquote(name); uerr == nil {
			name = f
		}
		return errs.Invalid(name, "Unknown field")
	}
	return errs.BadRequest("Malformed JSON")
}

func typeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "Must be an integer"
	case kind == "string":
		return "Must be a string"
	case kind == "bool":
		return "Must be true or false"
	case strings.HasPrefix(kind, "float"):
		return "Must be a number"
	default:
		return "Has the wrong type"
	}
}

// QueryInt reads an optional integer query parameter within [min, max],
// returning def when it is absent. Anything else is a 400 on that field;
// a parameter such as page[$gt]=1 is simply not "page" and is ignored.
func QueryInt(c echo.Context, name string, def, min, max int) (int, error) {
	raw := c.QueryParam(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min || n > max {
		return 0, errs.Invalid(name, "Must be an integer from "+strconv.Itoa(min)+" to "+strconv.Itoa(max))
	}
	return n, nil
}
