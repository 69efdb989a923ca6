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
	// withName asks for a display name (sign-up).
	withName bool
	welcome  string
}

// authInput is what the visitor typed that comes back with the form (never
// the password).
type authInput struct {
	email, name string
}

var (
	signUpPage = authPage{
		nav: layout.NavSignUp, heading: "Create your account", action: "/signup", submit: "Sign up",
		intro:   "Sell your notes, templates and e-books, and buy what fellow students made.",
		title:   "Sign up · Stuffmart",
		altText: "Already have an account?", altLink: "Sign in", altPath: "/signin",
		description: "Create a Stuffmart account to buy and sell digital stuff with fellow students.",
		newPassword: true, withName: true, welcome: "welcome",
	}
	signInPage = authPage{
		nav: layout.NavSignIn, heading: "Sign in", action: "/signin", submit: "Sign in",
		title:   "Sign in · Stuffmart",
		altText: "New to Stuffmart?", altLink: "Create an account", altPath: "/signup",
		description: "Sign in to Stuffmart to buy and sell digital stuff.",
		welcome:     "signedin",
	}
)

func (h *Handler) renderAuth(c echo.Context, status int, p authPage, in authInput, next string, fe formErrors) error {
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
		Email: components.Field{ID: "email", Label: "Email", Type: "email", Value: in.email, Error: fe.fields["email"],
			Autocomplete: "email", Required: true},
		// The password is never sent back to the browser.
		Password: components.Field{ID: "password", Label: "Password", Type: "password", Error: fe.fields["password"],
			Autocomplete: pwAuto, Required: true, Hint: pwHint},
		AltText: p.altText, AltLink: p.altLink, AltURL: alt,
	}
	if p.withName {
		f := nameField(in.name, fe.fields["name"])
		m.Name = &f
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
		return h.renderAuth(c, http.StatusOK, p, authInput{}, next, formErrors{})
	}
}

func (h *Handler) signUpForm(c echo.Context) error { return h.authForm(signUpPage)(c) }
func (h *Handler) signInForm(c echo.Context) error { return h.authForm(signInPage)(c) }

// signUp: POST /signup. auth creates the account and sets the session
// cookie, which is relayed to the browser. The display name is always sent:
// auth refuses an empty one with the message shown next to the field.
func (h *Handler) signUp(c echo.Context) error {
	in := authInput{email: c.FormValue("email"), name: c.FormValue("name")}
	return h.authenticate(c, signUpPage, in, func(ctx context.Context, s api.Session) (api.SignedIn, error) {
		return h.api.Accounts.SignUp(ctx, s, api.NewAccount{Email: in.email, Password: c.FormValue("password"), Name: in.name})
	})
}

// signIn: POST /signin.
func (h *Handler) signIn(c echo.Context) error {
	in := authInput{email: c.FormValue("email")}
	return h.authenticate(c, signInPage, in, func(ctx context.Context, s api.Session) (api.SignedIn, error) {
		return h.api.Accounts.SignIn(ctx, s, api.Credentials{Email: in.email, Password: c.FormValue("password")})
	})
}

func (h *Handler) authenticate(c echo.Context, p authPage, in authInput, do func(ctx context.Context, s api.Session) (api.SignedIn, error)) error {
	next := localPath(c.FormValue("next"))
	out, err := do(c.Request().Context(), session.From(c).Session)
	if err == nil {
		for _, line := range out.SetCookies {
			c.Response().Header().Add("Set-Cookie", line)
		}
		// A new session, a new CSRF cookie: no token of the browser's
		// earlier sessions passes in this one.
		h.csrf.Rotate(c)
		return c.Redirect(http.StatusSeeOther, afterSignIn(next, p.welcome))
	}
	if api.StatusOf(err) == http.StatusUnauthorized {
		// auth answers a banned account's correct password so.
		return h.renderAuth(c, http.StatusForbidden, p, in, next,
			formErrors{general: []string{"This account cannot sign in. It may have been suspended."}})
	}
	fe, ok := formErrorsOf(err, "email", "password", "name")
	if !ok {
		return err
	}
	return h.renderAuth(c, http.StatusBadRequest, p, in, next, fe)
}

// nameField is the display-name input of the sign-up and account forms.
func nameField(value, errMsg string) components.Field {
	return components.Field{ID: "name", Label: "Display name", Value: value, Error: errMsg,
		Autocomplete: "nickname", Required: true, MaxLength: 40,
		Hint: "Shown to other students on your listings instead of your email. 2 to 40 characters."}
}

// renderAccount shows the account page: the email (for the owner only) and
// the display-name form, with name as typed and its error.
func (h *Handler) renderAccount(c echo.Context, status int, email, name string, fe formErrors) error {
	m := pages.AccountForm{CSRF: h.csrf.Token(c), Errors: fe.general, Email: email, Name: nameField(name, fe.fields["name"])}
	meta := layout.Meta{Title: "Your account · Stuffmart", Description: "Your Stuffmart account: the name other students see.",
		Canonical: h.baseURL(c) + "/account", NoIndex: true}
	return h.render(c, status, h.frame(c, meta, layout.NavAccount, pages.AccountPage(m)))
}

// account: GET /account, signed in: the display name, ready to edit.
func (h *Handler) account(c echo.Context) error {
	v := session.From(c)
	u, ok, err := h.api.Account.CurrentUser(c.Request().Context(), v.Session)
	if err != nil {
		return err
	}
	if !ok {
		// The session ended between the storefront's check and auth's.
		return c.Redirect(http.StatusSeeOther, signInURL(c))
	}
	return h.renderAccount(c, http.StatusOK, u.Email, u.Name, formErrors{})
}

// saveAccount: POST /account, signed in: a new display name, then the
// account page again; the form with its error (and the name as typed) when
// auth refuses it.
func (h *Handler) saveAccount(c echo.Context) error {
	v := session.From(c)
	name := c.FormValue("name")
	_, err := h.api.Account.SetName(c.Request().Context(), v.Session, name)
	if err == nil {
		return c.Redirect(http.StatusSeeOther, "/account?m=renamed")
	}
	fe, ok := formErrorsOf(err, "name")
	if !ok {
		return err
	}
	return h.renderAccount(c, http.StatusBadRequest, v.User.Email, name, fe)
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
