package handlers

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/components"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
)

// couponInput is the coupon form as typed.
type couponInput struct {
	percentOff, maxRedemptions, expiresAt string
}

// datetimeLocal is the value format of <input type="datetime-local">; the
// form's times are UTC.
const datetimeLocal = "2006-01-02T15:04"

// createdCookie carries the code of the coupon just created from the POST
// to the page it redirects to: a one-time flash, not the query string,
// which access logs, browser history and Referer headers keep.
const createdCookie = "coupon_created"

// flashCreated remembers the new coupon's code for the next page of the
// coupons (one minute at most).
func flashCreated(c echo.Context, code string) {
	http.SetCookie(c.Response(), &http.Cookie{
		Name: createdCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(code)),
		Path: "/admin/coupons", MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
	})
}

// takeCreated returns the code flashCreated remembered ("" if none) and
// forgets it, so that a reload does not announce it again.
func takeCreated(c echo.Context) string {
	ck, err := c.Cookie(createdCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(c.Response(), &http.Cookie{Name: createdCookie, Path: "/admin/coupons", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https"})
	code, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return ""
	}
	return string(code)
}

// renderCoupons renders the coupons page; created is the code of a coupon
// just created, announced if it is in the list.
func (h *Handler) renderCoupons(c echo.Context, status int, in couponInput, fe formErrors, created string) error {
	list, err := h.api.Coupons.Coupons(c.Request().Context(), session.From(c).Session)
	if err != nil {
		return err
	}
	m := pages.Coupons{
		CSRF:   h.csrf.Token(c),
		Errors: fe.general,
		PercentOff: components.Field{ID: "percentOff", Label: "Percent off", Type: "number", Value: in.percentOff,
			Error: fe.fields["percentOff"], Required: true, Min: "1", Max: "100", InputMode: "numeric",
			Hint: "From 1 to 100. A 100% coupon makes the order free."},
		MaxRedemptions: components.Field{ID: "maxRedemptions", Label: "Use limit (optional)", Type: "number", Value: in.maxRedemptions,
			Error: fe.fields["maxRedemptions"], Min: "1", InputMode: "numeric", Hint: "How many orders may use it. Empty: no limit."},
		ExpiresAt: components.Field{ID: "expiresAt", Label: "Expires at, UTC (optional)", Type: "datetime-local", Value: in.expiresAt,
			Error: fe.fields["expiresAt"], Hint: "Empty: never expires."},
	}
	for _, cp := range list {
		r := pages.CouponRow{Code: cp.Code, PercentOff: strconv.Itoa(cp.PercentOff) + "%", Redemptions: strconv.Itoa(cp.Redemptions), Expires: "Never"}
		if cp.MaxRedemptions != nil {
			r.Redemptions += " of " + strconv.Itoa(*cp.MaxRedemptions)
		}
		if cp.ExpiresAt != nil {
			r.Expires = formatTime(*cp.ExpiresAt)
		}
		// Only a code that exists is named in the notice (the cookie is
		// the browser's to change).
		if created != "" && cp.Code == created {
			m.Created = cp.Code
		}
		m.Rows = append(m.Rows, r)
	}
	meta := layout.Meta{Title: "Coupons · Stuffmart admin", Description: "Create and list Stuffmart coupons.",
		Canonical: h.baseURL(c) + "/admin/coupons", NoIndex: true}
	return h.render(c, status, h.frame(c, meta, layout.NavCoupons, pages.CouponsPage(m)))
}

// coupons: GET /admin/coupons, with the notice of a coupon just created.
func (h *Handler) coupons(c echo.Context) error {
	return h.renderCoupons(c, http.StatusOK, couponInput{}, formErrors{}, takeCreated(c))
}

// createCoupon: POST /admin/coupons, then the list with the new code
// (carried by a flash cookie, see createdCookie).
func (h *Handler) createCoupon(c echo.Context) error {
	in := couponInput{percentOff: strings.TrimSpace(c.FormValue("percentOff")),
		maxRedemptions: strings.TrimSpace(c.FormValue("maxRedemptions")), expiresAt: strings.TrimSpace(c.FormValue("expiresAt"))}
	var fe formErrors
	var req api.NewCoupon
	if n, err := strconv.Atoi(in.percentOff); err != nil {
		fe.set("percentOff", "Enter a whole number from 1 to 100.")
	} else {
		req.PercentOff = n
	}
	if in.maxRedemptions != "" {
		if n, err := strconv.Atoi(in.maxRedemptions); err != nil || n < 1 {
			fe.set("maxRedemptions", "Enter a whole number of at least 1, or leave it empty.")
		} else {
			req.MaxRedemptions = &n
		}
	}
	if in.expiresAt != "" {
		t, err := time.Parse(datetimeLocal, in.expiresAt)
		if err != nil {
			t, err = time.Parse(time.RFC3339, in.expiresAt)
		}
		if err != nil {
			fe.set("expiresAt", "Enter a date and time such as 2030-01-31T23:59.")
		} else {
			s := t.UTC().Format(time.RFC3339)
			req.ExpiresAt = &s
		}
	}
	if !fe.empty() {
		return h.renderCoupons(c, http.StatusBadRequest, in, fe, "")
	}
	cp, err := h.api.Coupons.CreateCoupon(c.Request().Context(), session.From(c).Session, req)
	if err == nil {
		flashCreated(c, cp.Code)
		return c.Redirect(http.StatusSeeOther, "/admin/coupons")
	}
	fe, ok := formErrorsOf(err, "percentOff", "maxRedemptions", "expiresAt")
	if !ok {
		return err
	}
	return h.renderCoupons(c, http.StatusBadRequest, in, fe, "")
}

// usersPageSize is the number of accounts on a page of the admin list.
const usersPageSize = 50

// users: GET /admin/users?page=N.
func (h *Handler) users(c echo.Context) error {
	n, ok := pageParam(c.QueryParam("page"))
	if !ok {
		return errNotFound
	}
	v := session.From(c)
	list, err := h.api.Users.Users(c.Request().Context(), v.Session, n, usersPageSize)
	if err != nil {
		return err
	}
	last := max(1, int((list.Total+usersPageSize-1)/usersPageSize))
	m := pages.Users{CSRF: h.csrf.Token(c), Total: strconv.FormatInt(list.Total, 10) + " accounts"}
	for _, u := range list.Users {
		r := pages.UserRow{Email: u.Email, Name: u.Name, Role: u.Role, Banned: u.Banned, Self: u.ID == v.UserID(),
			BanURL: pathTo("/admin/users/", u.ID, "/ban?page="+strconv.Itoa(n)), UnbanURL: pathTo("/admin/users/", u.ID, "/unban?page="+strconv.Itoa(n)),
			BadgeKind: "available", BadgeText: "Active"}
		if u.Banned {
			r.BadgeKind, r.BadgeText = "cancelled", "Banned"
		}
		m.Rows = append(m.Rows, r)
	}
	usersURL := func(p int) string { return "/admin/users?page=" + strconv.Itoa(p) }
	if n > 1 {
		m.Pager.PrevURL = usersURL(n - 1)
	}
	if n < last {
		m.Pager.NextURL = usersURL(n + 1)
	}
	m.Pager.Label = "Page " + strconv.Itoa(n) + " of " + strconv.Itoa(last)
	meta := layout.Meta{Title: "Users · Stuffmart admin", Description: "Stuffmart accounts, with bans.",
		Canonical: h.baseURL(c) + "/admin/users", NoIndex: true}
	return h.render(c, http.StatusOK, h.frame(c, meta, layout.NavUsers, pages.UsersPage(m)))
}

// ban: POST /admin/users/:id/ban, then the list.
func (h *Handler) ban(c echo.Context) error {
	return h.setBan(c, h.api.Users.Ban, "banned")
}

// unban: POST /admin/users/:id/unban, then the list.
func (h *Handler) unban(c echo.Context) error {
	return h.setBan(c, h.api.Users.Unban, "unbanned")
}

func (h *Handler) setBan(c echo.Context, do func(ctx context.Context, s api.Session, id string) (api.User, error), done string) error {
	n, ok := pageParam(c.QueryParam("page"))
	if !ok {
		n = 1
	}
	back := "/admin/users?page=" + strconv.Itoa(n)
	_, err := do(c.Request().Context(), session.From(c).Session, c.Param("id"))
	switch api.StatusOf(err) {
	case 0:
		if err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, back+"&m="+done)
	case http.StatusNotFound:
		return errNotFound
	case http.StatusBadRequest:
		return badRequest(apiMessage(err), back, "Back to the users")
	}
	return err
}
