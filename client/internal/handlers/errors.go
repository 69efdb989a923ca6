package handlers

import (
	"cmp"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// HeldMessage is the sentence the 409 page shows for stuff that someone
// else is checking out: the customer's own wording, kept verbatim (grammar
// included), as the tests and the customer expect it.
const HeldMessage = "The stuff is being checking out by someone else, please come back later"

// pageError is an error the visitor sees as a page with its status.
type pageError struct {
	status   int
	heading  string
	message  string
	backURL  string
	backText string
}

func (e *pageError) Error() string { return e.heading + ": " + e.message }

var (
	errNotFound = &pageError{status: http.StatusNotFound, heading: "Page not found",
		message: "There is nothing here. The link may be broken, or the stuff may have been taken down."}
	errCSRF = &pageError{status: http.StatusForbidden, heading: "This form has expired",
		message: "The form was not sent from this page of Stuffmart, or it is too old. Go back, reload the page and try again."}
	errAdminsOnly = &pageError{status: http.StatusForbidden, heading: "Admins only",
		message: "This page is for Stuffmart's admins."}
)

// held is the 409 page for stuff someone else is checking out.
func held(stuffURL string) *pageError {
	return &pageError{status: http.StatusConflict, heading: "Being checked out", message: HeldMessage,
		backURL: stuffURL, backText: "Back to the stuff"}
}

// badRequest is a 400 page with the service's message.
func badRequest(msg, backURL, backText string) *pageError {
	return &pageError{status: http.StatusBadRequest, heading: "That did not work", message: msg, backURL: backURL, backText: backText}
}

// ErrorHandler renders every error as an HTML page with its status: the
// page errors as they are, Echo's 404/405/413, the services' 404 and 409,
// a 429 (the storefront's own rate limit or a service's) with when to try
// again, an unsafe request another site sent (403), and anything else as a
// friendly 5xx page (logged with the request id).
func (h *Handler) ErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		h.log.ErrorContext(c.Request().Context(), "request failed after the response was sent", "err", err,
			"path", c.Request().URL.Path, "request_id", requestID(c))
		return
	}
	// Refused before the page middleware ran (shared/web's same-origin
	// check and rate limit come first): the page still gets the headers.
	setSecurityHeaders(c)
	var tmr *errs.TooManyRequestsError
	if errors.As(err, &tmr) {
		h.opts.Metrics.Refused(cmp.Or(tmr.Limit, "unnamed"))
	}
	if secs := retryAfter(err); secs > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	}
	m := h.errorModel(err, c)
	if m.Status >= http.StatusInternalServerError {
		h.log.ErrorContext(c.Request().Context(), "request failed", "err", err, "status", m.Status,
			"method", c.Request().Method, "path", c.Request().URL.Path, "request_id", m.RequestID)
	}
	meta := layout.Meta{Title: m.Heading + " · " + layout.SiteName, Description: m.Message, NoIndex: true}
	if rerr := h.render(c, m.Status, h.frame(c, meta, "", pages.ErrorPage(m))); rerr != nil {
		h.log.ErrorContext(c.Request().Context(), "render error page", "err", rerr, "cause", err)
		if !c.Response().Committed {
			if werr := c.String(m.Status, http.StatusText(m.Status)); werr != nil {
				h.log.DebugContext(c.Request().Context(), "write plain error", "err", werr)
			}
		}
	}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// retryAfter is when a 429 says to come back, in whole seconds (at least
// one); 0 for any other error, or a service's 429 that did not say.
func retryAfter(err error) int {
	var tmr *errs.TooManyRequestsError
	if errors.As(err, &tmr) {
		return tmr.Seconds()
	}
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests && ae.RetryAfter > 0 {
		return max(1, int(math.Ceil(ae.RetryAfter.Seconds())))
	}
	return 0
}

// tooMany is the 429 page.
func tooMany(err error) pages.Error {
	when := "in a moment"
	switch secs := retryAfter(err); secs {
	case 0:
	case 1:
		when = "in 1 second"
	default:
		when = "in " + strconv.Itoa(secs) + " seconds"
	}
	return pages.Error{Status: http.StatusTooManyRequests, Heading: "Too many requests",
		Message: "That was a lot of requests in a short time. Please try again " + when + "."}
}

func (h *Handler) errorModel(err error, c echo.Context) pages.Error {
	var pe *pageError
	if errors.As(err, &pe) {
		return pages.Error{Status: pe.status, Heading: pe.heading, Message: pe.message, BackURL: pe.backURL, BackText: pe.backText}
	}
	if api.StatusOf(err) == http.StatusTooManyRequests {
		return tooMany(err)
	}
	// The shared middleware's refusals (shared/web): its rate limit and its
	// same-origin check of unsafe requests.
	if e, ok := errs.As(err); ok {
		switch e.StatusCode() {
		case http.StatusTooManyRequests:
			return tooMany(err)
		case http.StatusForbidden:
			return pages.Error{Status: http.StatusForbidden, Heading: "Sent from another site",
				Message: "Stuffmart refused this because it came from another website. To do it, go to Stuffmart, open the page and try again there."}
		}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) && he.Code < http.StatusInternalServerError {
		switch he.Code {
		case http.StatusNotFound:
			return h.errorModel(errNotFound, c)
		case http.StatusRequestEntityTooLarge:
			return pages.Error{Status: he.Code, Heading: "Too much text", Message: "What you sent is too long. Please shorten it and try again."}
		case http.StatusMethodNotAllowed:
			return pages.Error{Status: he.Code, Heading: "Not allowed", Message: "This page cannot be used that way."}
		}
		return pages.Error{Status: he.Code, Heading: http.StatusText(he.Code), Message: "The request could not be handled."}
	}
	var mbe *http.MaxBytesError
	// A service's own body limit counts the JSON the storefront sends, which
	// may be several times the form (a "<" is 3 bytes in a form, 6 in
	// JSON): its 413 is the visitor's text, not a failure of ours.
	if errors.As(err, &mbe) || api.StatusOf(err) == http.StatusRequestEntityTooLarge {
		return pages.Error{Status: http.StatusRequestEntityTooLarge, Heading: "Too much text", Message: "What you sent is too long. Please shorten it and try again."}
	}
	switch api.StatusOf(err) {
	case http.StatusNotFound:
		return h.errorModel(errNotFound, c)
	case http.StatusConflict:
		return h.errorModel(held(""), c)
	case http.StatusUnauthorized, http.StatusForbidden:
		return pages.Error{Status: http.StatusForbidden, Heading: "Not allowed", Message: "You are not allowed to do that."}
	case http.StatusBadRequest:
		var ae *api.Error
		errors.As(err, &ae)
		return pages.Error{Status: http.StatusBadRequest, Heading: "That did not work", Message: ae.Message()}
	}
	m := pages.Error{Status: http.StatusInternalServerError, Heading: "Something went wrong",
		Message: "Sorry, something went wrong on our side. Please try again in a moment.", RequestID: requestID(c)}
	var ne net.Error
	if s := api.StatusOf(err); s >= 500 || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) {
		m.Status = http.StatusServiceUnavailable
		m.Heading = "We are having trouble"
		m.Message = "Part of Stuffmart is not answering right now. Please try again in a moment."
	}
	return m
}
