// Package assets serves the storefront's static files (CSS, the countdown
// script, the icon) from memory. Each file is also served under a
// fingerprinted name (app.3f2a9c1b.css) that pages link to and browsers may
// keep for a year; the plain name is cached for five minutes only. Text files
// are served gzip-encoded to clients that accept it.
package assets

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// Prefix is the URL path the files are served under.
const Prefix = "/assets/"

// Cache-Control values.
const (
	immutable = "public, max-age=31536000, immutable"
	plain     = "public, max-age=300"
)

var types = map[string]string{
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".txt":   "text/plain; charset=utf-8",
	".woff2": "font/woff2",
}

var compressible = map[string]bool{".css": true, ".js": true, ".svg": true, ".txt": true}

type file struct {
	body        []byte
	gz          []byte // nil when not worth it
	contentType string
	etag        string
	cache       string
}

// Set is the loaded files.
type Set struct {
	files map[string]*file  // by served name, plain and fingerprinted
	urls  map[string]string // plain name -> fingerprinted URL
}

// Load reads every file of dir (not its subfolders). required names files
// that must be there.
func Load(dir string, required ...string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("assets: %w", err)
	}
	s := &Set{files: map[string]*file{}, urls: map[string]string{}}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := e.Name()
		ext := path.Ext(name)
		ct, ok := types[ext]
		if !ok {
			continue
		}
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("assets: %w", err)
		}
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:4])
		var gz []byte
		if compressible[ext] {
			gz = compress(body)
		}
		finger := strings.TrimSuffix(name, ext) + "." + hash + ext
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		s.files[name] = &file{body: body, gz: gz, contentType: ct, etag: etag, cache: plain}
		s.files[finger] = &file{body: body, gz: gz, contentType: ct, etag: etag, cache: immutable}
		s.urls[name] = Prefix + finger
	}
	for _, r := range required {
		if _, ok := s.urls[r]; !ok {
			return nil, fmt.Errorf("assets: %s is missing from %s", r, dir)
		}
	}
	return s, nil
}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
	if _, err := zw.Write(b); err != nil || zw.Close() != nil {
		return nil
	}
	if buf.Len() >= len(b) {
		return nil
	}
	return buf.Bytes()
}

// URL returns the fingerprinted URL of a file by its plain name, or the
// plain URL if there is no such file.
func (s *Set) URL(name string) string {
	if u, ok := s.urls[name]; ok {
		return u
	}
	return Prefix + name
}

// Handler serves GET and HEAD of Prefix + name.
func (s *Set) Handler(notFound func(echo.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, ok := s.files[strings.TrimPrefix(c.Request().URL.Path, Prefix)]
		if !ok {
			return notFound(c)
		}
		h := c.Response().Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", f.cache)
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if f.gz != nil {
			h.Add("Vary", "Accept-Encoding")
		}
		if match := c.Request().Header.Get("If-None-Match"); match != "" && etagMatch(match, f.etag) {
			return c.NoContent(http.StatusNotModified)
		}
		body := f.body
		if f.gz != nil && AcceptsGzip(c.Request()) {
			h.Set("Content-Encoding", "gzip")
			body = f.gz
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		c.Response().WriteHeader(http.StatusOK)
		if c.Request().Method == http.MethodHead {
			return nil
		}
		_, err := c.Response().Write(body)
		return err
	}
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// AcceptsGzip reports whether the request accepts a gzip-encoded answer:
// it names gzip with a weight above zero ("gzip;q=0", "q=0.0" and "Q=0"
// all refuse it).
func AcceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.ReplaceAll(p, " ", ""), "=")
			if strings.EqualFold(k, "q") && strings.Trim(v, "0.") == "" && v != "" {
				return false
			}
		}
		return true
	}
	return false
}

// Find returns the first folder named "assets" holding marker, looking in
// start and then in each of its parents: the repository's assets/ when the
// storefront runs from anywhere in the repository (make dev, go test).
func Find(start, marker string) (string, error) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for {
		cand := filepath.Join(dir, "assets")
		if _, err := os.Stat(filepath.Join(cand, marker)); err == nil {
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no assets folder with %s in %s or its parents: set ASSETS_DIR", marker, start)
		}
		dir = parent
	}
}
