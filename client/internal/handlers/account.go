package handlers

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/api"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/components"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
	"github.com/stuffmart/stuffmart/client/internal/views/pages"
)

// authPage says which of the two account forms is shown.
type authPage struct {
	nav, heading, intro, action, submit, title, description string
	altText, altLink, altPath                               string
	newPassword                                             bool
	welcome                                                 string
}

var (
	signUpPage = authPage{
		nav: layout.NavSignUp, heading: "Create your account", action: "/signup", submit: "Sign up",
		intro:   "Sell your notes, templates and e-books, and buy what fellow students made.",
		title:   "Sign up · Stuffmart",
		altText: "Already have an account?", altLink: "Sign in", altPath: "/signin",
		description: "Create a Stuffmart account to buy and sell digital stuff with fellow students.",
		newPassword: true, welcome: "welcome",
	}
	signInPage = authPage{
		nav: layout.NavSignIn, heading: "Sign in", action: "/signin", submit: "Sign in",
		title:   "Sign in · Stuffmart",
		altText: "New to Stuffmart?", altLink: "Create an account", altPath: "/signup",
		description: "Sign in to Stuffmart to buy and sell digital stuff.",
		welcome:     "signedin",
	}
)

func (h *Handler) renderAuth(c echo.Context, status int, p authPage, email, next string, fe formErrors) error {
	pwHint, pwAuto := "", "current-password"
	if p.newPassword {
		pwHint, pwAuto = "8 to 72 characters.", "new-password"
	}
	alt := p.altPath
	if next != "" {
		alt += "?next=" + urlQueryEscape(next)
	}
	m := pages.AuthForm{
		Heading: p.heading, Intro: p.intro, Action: p.action, Submit: p.submit,
		CSRF: h.csrf.Token(c), Next: next, Errors: fe.general,
		Email: components.Field{ID: "email", Label: "Email", Type: "email", Value: email, Error: fe.fields["email"],
			Autocomplete: "email", Required: true},
		// The password is never sent back to the browser.
		Password: components.Field{ID: "password", Label: "Password", Type: "password", Error: fe.fields["password"],
			Autocomplete: pwAuto, Required: true, Hint: pwHint},
		AltText: p.altText, AltLink: p.altLink, AltURL: alt,
	}
	meta := layout.Meta{Title: p.title, Description: p.description, Canonical: h.baseURL(c) + p.action, NoIndex: true}
	return h.render(c, status, h.frame(c, meta, p.nav, pages.AuthFormPage(m)))
}

// afterSignIn is where a signed-in visitor goes: next, or the home page.
func afterSignIn(next, notice string) string {
	if next = localPath(next); next != "" {
		return next
	}
	return "/?m=" + notice
}

func (h *Handler) authForm(p authPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		next := localPath(c.QueryParam("next"))
		if session.From(c).SignedIn() {
			return c.Redirect(http.StatusSeeOther, afterSignIn(next, p.welcome))
		}
		return h.renderAuth(c, http.StatusOK, p, "", next, formErrors{})
	}
}

func (h *Handler) signUpForm(c echo.Context) error { return h.authForm(signUpPage)(c) }
func (h *Handler) signInForm(c echo.Context) error { return h.authForm(signInPage)(c) }

// signUp: POST /signup. auth creates the account and sets the session
// cookie, which is relayed to the browser.
func (h *Handler) signUp(c echo.Context) error {
	return h.authenticate(c, signUpPage, h.api.Accounts.SignUp)
}

// signIn: POST /signin.
func (h *Handler) signIn(c echo.Context) error {
	return h.authenticate(c, signInPage, h.api.Accounts.SignIn)
}

func (h *Handler) authenticate(c echo.Context, p authPage, do func(ctx context.Context, s api.Session, in api.Credentials) (api.SignedIn, error)) error {
	email, next := c.FormValue("email"), localPath(c.FormValue("next"))
	in, err := do(c.Request().Context(), session.From(c).Session, api.Credentials{Email: email, Password: c.FormValue("password")})
	if err == nil {
		for _, line := range in.SetCookies {
			c.Response().Header().Add("Set-Cookie", line)
		}
		// A new session, a new CSRF cookie: no token of the browser's
		// earlier sessions passes in this one.
		h.csrf.Rotate(c)
		return c.Redirect(http.StatusSeeOther, afterSignIn(next, p.welcome))
	}
	if api.StatusOf(err) == http.StatusUnauthorized {
		// auth answers a banned account's correct password so.
		return h.renderAuth(c, http.StatusForbidden, p, email, next,
			formErrors{general: []string{"This account cannot sign in. It may have been suspended."}})
	}
	fe, ok := formErrorsOf(err, "email", "password")
	if !ok {
		return err
	}
	return h.renderAuth(c, http.StatusBadRequest, p, email, next, fe)
}

// signOut: POST /signout. auth revokes the refresh token and clears the
// cookie; if auth cannot be reached, the cookie is cleared here anyway. The
// storefront forgets the refreshes it remembers for the session, so that a
// copy of the cookie cannot get the session back from that memory, and
// rotates the CSRF cookie, so that the session's form tokens die with it.
func (h *Handler) signOut(c echo.Context) error {
	v := session.From(c)
	h.sessions.Forget(c)
	var lines []string
	if v.Session.Cookie != "" {
		var err error
		if lines, err = h.api.Accounts.SignOut(c.Request().Context(), v.Session); err != nil {
			h.log.WarnContext(c.Request().Context(), "sign out at auth failed; clearing the cookie here", "err", err)
		}
	}
	for _, line := range lines {
		c.Response().Header().Add("Set-Cookie", line)
	}
	if len(lines) == 0 {
		h.sessions.Clear(c.Response(), c.Request())
	}
	// The tokens of the session that ended are refused from now on.
	h.csrf.Rotate(c)
	return c.Redirect(http.StatusSeeOther, "/")
}
