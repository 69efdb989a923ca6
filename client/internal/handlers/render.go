package handlers

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/client/internal/assets"
	"github.com/stuffmart/stuffmart/client/internal/pagecache"
	"github.com/stuffmart/stuffmart/client/internal/session"
	"github.com/stuffmart/stuffmart/client/internal/views/layout"
)

// gzipMin is the smallest body worth compressing.
const gzipMin = 1024

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render writes comp as the whole answer with status: buffered (so a
// failed render is an error page, not half a page), gzip-encoded when the
// browser accepts it, and never stored by a shared cache (pages rendered
// here may show who is signed in or carry a CSRF token).
func (h *Handler) render(c echo.Context, status int, comp templ.Component) error {
	buf := buffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer buffers.Put(buf)
	if err := comp.Render(c.Request().Context(), buf); err != nil {
		return err
	}
	hd := c.Response().Header()
	hd.Set("Cache-Control", "private, no-store")
	return writeHTML(c, status, buf.Bytes(), nil)
}

// renderBytes renders comp into a new byte slice (for the page cache).
func renderBytes(ctx context.Context, comp templ.Component) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(16 << 10)
	if err := comp.Render(ctx, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeHTML writes an HTML body, gzip-encoded when accepted and worth it.
// gz is the body already compressed, or nil to compress here.
func writeHTML(c echo.Context, status int, body []byte, gz func() []byte) error {
	hd := c.Response().Header()
	hd.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	out := body
	if len(body) >= gzipMin {
		hd.Add("Vary", "Accept-Encoding")
		if assets.AcceptsGzip(c.Request()) {
			if gz != nil {
				out = gz()
			} else {
				out = pagecache.Gzip(body)
			}
			if out == nil {
				out = body
			} else {
				hd.Set(echo.HeaderContentEncoding, "gzip")
			}
		}
	}
	hd.Set(echo.HeaderContentLength, strconv.Itoa(len(out)))
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(out)
	return err
}

// serveCached answers an anonymous visitor's page from the page cache,
// rendering it with fill on a miss. Cached pages carry a weak ETag, so a
// crawler's conditional request is a 304 with no body.
func (h *Handler) serveCached(c echo.Context, key string, fill pagecache.Fill) error {
	p, err := h.cache.Get(c.Request().Context(), key, fill)
	if err != nil {
		return err
	}
	hd := c.Response().Header()
	// Shared caches must ask again (and keep signed-in visitors apart). An
	// answer that sets a cookie (the session middleware signing out a
	// browser whose refresh was refused) is that browser's alone.
	if len(hd.Values("Set-Cookie")) > 0 {
		hd.Set("Cache-Control", "private, no-cache")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	hd.Add("Vary", "Cookie")
	hd.Set("ETag", p.ETag)
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && inm == p.ETag {
		return c.NoContent(http.StatusNotModified)
	}
	if !h.cache.Enabled() {
		// Rendered for this request only: compress it the fast way.
		return writeHTML(c, p.Status, p.Body, nil)
	}
	return writeHTML(c, p.Status, p.Body, p.Gzipped)
}

// frame puts content in the page frame for the request's visitor.
func (h *Handler) frame(c echo.Context, meta layout.Meta, nav string, content templ.Component) templ.Component {
	return h.searchFrame(c, meta, nav, "", content)
}

// searchFrame is frame with q in the header's search box.
func (h *Handler) searchFrame(c echo.Context, meta layout.Meta, nav, q string, content templ.Component) templ.Component {
	v := session.From(c)
	hdr := layout.Header{Current: nav, Query: q}
	if v.SignedIn() {
		hdr.SignedIn = true
		hdr.Email = v.User.Email
		hdr.Admin = v.IsAdmin()
		hdr.CSRF = h.csrf.Token(c)
	}
	return layout.Base(h.pageFrame(meta, hdr, notice(c)), content)
}

// anonFrame is frame for an anonymous visitor, independent of the request
// (cached pages).
func (h *Handler) anonFrame(meta layout.Meta, nav string, content templ.Component) templ.Component {
	return h.anonSearchFrame(meta, nav, "", content)
}

// anonSearchFrame is anonFrame with q in the header's search box.
func (h *Handler) anonSearchFrame(meta layout.Meta, nav, q string, content templ.Component) templ.Component {
	return layout.Base(h.pageFrame(meta, layout.Header{Current: nav, Query: q}, layout.Notice{}), content)
}

func (h *Handler) pageFrame(meta layout.Meta, hdr layout.Header, n layout.Notice) layout.Page {
	if meta.OGType == "" {
		meta.OGType = "website"
	}
	return layout.Page{Meta: meta, Header: hdr, Notice: n, CSS: h.assets.URL("app.css"), Icon: h.assets.URL("favicon.svg")}
}

// notices are the messages a redirect may ask the next page to show, by
// key (?m=listed): fixed texts, nothing of the URL is shown.
var notices = map[string]layout.Notice{
	"listed":    {Kind: "ok", Text: "Your stuff is listed."},
	"updated":   {Kind: "ok", Text: "Your changes are saved."},
	"renamed":   {Kind: "ok", Text: "Your display name is saved."},
	"welcome":   {Kind: "ok", Text: "Welcome to Stuffmart! You are signed in."},
	"signedin":  {Kind: "ok", Text: "You are signed in."},
	"signedout": {Kind: "ok", Text: "You are signed out."},
	"cancelled": {Kind: "ok", Text: "You cancelled this order. The stuff is back on sale."},
	"banned":    {Kind: "ok", Text: "The user is banned."},
	"unbanned":  {Kind: "ok", Text: "The user is no longer banned."},
}

func notice(c echo.Context) layout.Notice {
	return notices[c.QueryParam("m")]
}

// baseURL is the storefront's public base URL: PublicURL, or the scheme and
// host the request came with.
func (h *Handler) baseURL(c echo.Context) string {
	if h.opts.PublicURL != "" {
		return h.opts.PublicURL
	}
	scheme := "http"
	if c.Scheme() == "https" {
		scheme = "https"
	}
	return scheme + "://" + c.Request().Host
}
