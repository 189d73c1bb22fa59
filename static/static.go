// Package static embeds the app's CSS, images and JavaScript and serves them under
// content-hashed names, so they can be cached forever ("immutable") and a new build is
// picked up at once (design.md: long-cache with content hashes).
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed css img js
var files embed.FS

// Prefix is where the assets are served.
const Prefix = "/static/"

type asset struct {
	name  string // "css/app.css"
	body  []byte
	ctype string
}

var (
	byHashed = map[string]*asset{} // "css/app.3f2a9c1b.css" → asset
	byName   = map[string]string{} // "css/app.css" → "/static/css/app.3f2a9c1b.css"
)

func init() {
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(p)
		hashed := strings.TrimSuffix(p, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		ctype := mime.TypeByExtension(ext)
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		byHashed[hashed] = &asset{name: p, body: b, ctype: ctype}
		byName[p] = Prefix + hashed
		return nil
	})
	if err != nil {
		panic("static: walking embedded files: " + err.Error()) // a broken build, not a runtime condition
	}
}

// Path returns the content-hashed URL of an embedded file, e.g. Path("css/app.css") →
// "/static/css/app.1a2b3c4d5e6f.css". An unknown name panics: it is a programming error
// caught by any test that renders the page.
func Path(name string) string {
	p, ok := byName[name]
	if !ok {
		panic("static: unknown asset " + name)
	}
	return p
}

// Lookup returns the body and content type of a hashed asset path relative to Prefix
// ("css/app.1a2b3c4d5e6f.css"). Unknown names — including the unhashed ones — are not
// found, so a stale URL never gets a year-long cache entry for the wrong bytes.
func Lookup(hashed string) (body []byte, contentType string, ok bool) {
	a, ok := byHashed[hashed]
	if !ok {
		return nil, "", false
	}
	return a.body, a.ctype, true
}

// Serve writes a hashed asset with the long-lived cache headers, or returns false.
func Serve(w http.ResponseWriter, r *http.Request, hashed string) bool {
	body, ctype, ok := Lookup(hashed)
	if !ok {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return true
}
