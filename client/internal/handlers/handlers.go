// Package handlers is the storefront's HTTP layer: one file per area of
// pages (listings, selling, account, orders, admin), the SEO data (page
// meta, structured data, robots.txt, the sitemap), the page frame and the
// one render helper, the HTML error pages, and the middleware that resolves
// the visitor, checks CSRF tokens and sets the security headers. Handlers
// call the services through the small interfaces of services.go (package
// api implements them, retries included), compute every value a page shows,
// and answer every form POST with a redirect (or the form again, with its
// errors, when it cannot be done).
package handlers

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/assets"
	"github.com/stuffmart/stuffmart/client/internal/csrf"
	"github.com/stuffmart/stuffmart/client/internal/pagecache"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/shared/metrics"
	"github.com/stuffmart/stuffmart/shared/ratelimit"
)

// PageSize is the number of listings on a page of the home page.
const PageSize = 20

// MaxPage is the last page number the home page accepts (the stuff
// service's own limit).
const MaxPage = 10_000

// Options configures the handlers.
type Options struct {
	// PublicURL is the storefront's public base URL (https://shop.example)
	// for canonical links and the sitemap; empty: taken from each request.
	PublicURL string
	// PaymentsOffline offers Stripe's test cards on the payment form (the
	// payments service runs without a Stripe key, or with a test key).
	PaymentsOffline bool
	// OrderHold is how long an order holds its stuff (the orders service's
	// ORDER_HOLD), as the stuff page tells a buyer; 15 minutes when 0.
	OrderHold time.Duration
	// Now is the clock (countdowns, "Order expired"); time.Now when nil.
	Now func() time.Time
	// Metrics counts the storefront's own rate-limit refusals
	// (ratelimit_refused_total); nil counts nothing.
	Metrics *metrics.Set
	// SearchLimit limits per browser address the listings computed for
	// their request (RATE_LIMIT_SEARCH, as stuff limits them): the search
	// page, a seller's page, and the home page sorted or in a price range.
	// nil limits nothing.
	SearchLimit *ratelimit.Limiter
}

// DefaultOrderHold is the hold Options.OrderHold defaults to: the orders
// service's default.
const DefaultOrderHold = 15 * time.Minute

// Handler serves the storefront's pages.
type Handler struct {
	api      Services
	sessions *session.Manager
	csrf     *csrf.Guard
	cache    *pagecache.Cache
	assets   *assets.Set
	log      *slog.Logger
	opts     Options
	// hold is Options.OrderHold in words, for the stuff page.
	hold    string
	sitemap *sitemapCache
	// names are sellers' display names, kept a minute.
	names *names
}

// New returns the handlers over the services. cache holds anonymous
// renders of the listing pages; sessions resolves visitors; guard checks
// CSRF tokens.
func New(svc Services, sessions *session.Manager, guard *csrf.Guard, cache *pagecache.Cache, set *assets.Set, log *slog.Logger, opts Options) *Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OrderHold <= 0 {
		opts.OrderHold = DefaultOrderHold
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	return &Handler{api: svc, sessions: sessions, csrf: guard, cache: cache, assets: set, log: log, opts: opts,
		hold: formatDuration(opts.OrderHold), sitemap: &sitemapCache{ttl: time.Minute}, names: newNames(svc.Profiles.User, opts.Now)}
}

// noSession lists the paths that never need the visitor: static files,
// probes, metrics, robots and sitemap (anonymous by nature, and hit often).
func noSession(path string) bool {
	return strings.HasPrefix(path, assets.Prefix) || path == "/healthz" || path == "/readyz" || path == "/metrics" ||
		path == "/robots.txt" || path == "/sitemap.xml" || path == "/favicon.ico"
}

// Routes registers the pages and their middleware on e, whose shared
// middleware (request ids, logs, recovery, body limit, probes) is in place.
func (h *Handler) Routes(e *echo.Echo) {
	// Errors become pages; shared/web answers them inside its access log,
	// so the log shows the status the visitor got.
	e.HTTPErrorHandler = h.ErrorHandler
	e.Use(securityHeaders)
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		resolve := h.sessions.Middleware()(next)
		return func(c echo.Context) error {
			if noSession(c.Request().URL.Path) {
				return next(c)
			}
			return resolve(c)
		}
	})
	e.Use(h.csrf.Middleware(func(echo.Context) error { return errCSRF }))

	getHead := []string{http.MethodGet, http.MethodHead}
	e.Match(getHead, "/assets/*", h.assets.Handler(func(echo.Context) error { return errNotFound }))
	e.GET("/favicon.ico", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, h.assets.URL("favicon.svg"))
	})
	e.Match(getHead, "/robots.txt", h.robots)
	e.Match(getHead, "/sitemap.xml", h.sitemapXML)

	// Listings.
	e.Match(getHead, "/", h.home)
	e.Match(getHead, "/search", h.search)
	e.Match(getHead, "/sellers/:id", h.seller)
	e.Match(getHead, "/stuff/:id", h.stuff, knownID)
	e.POST("/stuff/:id/buy", h.buy, knownID, h.requireUser)
	e.GET("/sell", h.sellForm, h.requireUser)
	e.POST("/sell", h.sell, h.requireUser)
	e.GET("/stuff/:id/edit", h.editForm, knownID, h.requireUser)
	e.POST("/stuff/:id/edit", h.edit, knownID, h.requireUser)
	e.GET("/mine", h.mine, h.requireUser)

	// Account.
	e.GET("/signup", h.signUpForm)
	e.POST("/signup", h.signUp)
	e.GET("/signin", h.signInForm)
	e.POST("/signin", h.signIn)
	e.POST("/signout", h.signOut)
	e.GET("/account", h.account, h.requireUser)
	e.POST("/account", h.saveAccount, h.requireUser)

	// Orders.
	e.GET("/orders", h.orders, h.requireUser)
	e.GET("/orders/:id", h.order, knownID, h.requireUser)
	e.POST("/orders/:id/pay", h.pay, knownID, h.requireUser)
	e.POST("/orders/:id/checkout", h.checkout, knownID, h.requireUser)
	e.POST("/orders/:id/cancel", h.cancel, knownID, h.requireUser)
	e.GET("/orders/:id/content", h.content, knownID, h.requireUser)

	// Admin.
	e.GET("/admin/coupons", h.coupons, h.requireAdmin)
	e.POST("/admin/coupons", h.createCoupon, h.requireAdmin)
	e.GET("/admin/users", h.users, h.requireAdmin)
	e.POST("/admin/users/:id/ban", h.ban, h.requireAdmin, knownID)
	e.POST("/admin/users/:id/unban", h.unban, h.requireAdmin, knownID)
}

// securityHeaders are on every answer: no inline script or style may run,
// no other site may frame the storefront, referrers stay on the site.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		setSecurityHeaders(c)
		return next(c)
	}
}

// setSecurityHeaders sets the headers of securityHeaders; error pages of
// requests refused before it ran (another site's form, a rate limit) get
// them from the error handler.
func setSecurityHeaders(c echo.Context) {
	h := c.Response().Header()
	// form-action names Stripe's hosted Checkout: browsers hold the redirect
	// that answers a form post (Pay by card's 303) to it too.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"font-src 'self'; connect-src 'self'; form-action 'self' https://checkout.stripe.com; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if c.Request().TLS != nil || c.Scheme() == "https" {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// requireUser sends anonymous visitors to the sign-in page (back here after,
// for a page; to the home page after, for a form).
func (h *Handler) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !session.From(c).SignedIn() {
			return c.Redirect(http.StatusSeeOther, signInURL(c))
		}
		return next(c)
	}
}

// requireAdmin lets admins through; others get the sign-in page or a 403.
func (h *Handler) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		v := session.From(c)
		if !v.SignedIn() {
			return c.Redirect(http.StatusSeeOther, signInURL(c))
		}
		if !v.IsAdmin() {
			return errAdminsOnly
		}
		return next(c)
	}
}

// knownID answers the 404 page for an :id that no service mints (every id
// is a MongoDB ObjectID in hex). Such an id must never reach a service: it
// would become part of the service's path, where "mine" is
// /api/stuff/mine, the seller's own list, not a listing.
func knownID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !validID(c.Param("id")) {
			return errNotFound
		}
		return next(c)
	}
}

// validID reports whether id looks like an id the services mint: 24 hex
// digits.
func validID(id string) bool {
	if len(id) != 24 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func signInURL(c echo.Context) string {
	if c.Request().Method != http.MethodGet {
		return "/signin"
	}
	return "/signin?next=" + urlQueryEscape(c.Request().URL.RequestURI())
}
