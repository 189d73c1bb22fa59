package handlers

import (
	"bytes"
	"sync"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/views"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render renders page completely into a buffer and only then writes status and body,
// so a failing template never leaves half a page (design.md). The context carries the
// CSP nonce and the CSRF token, nothing else. Every HTML page depends on the session
// (header, forms), so none may be cached (security.md §6.3.4).
func (s *Server) render(c echo.Context, status int, page templ.Component) error {
	ctx := c.Request().Context()
	if nonce, _ := c.Get(ctxNonce).(string); nonce != "" {
		ctx = templ.WithNonce(ctx, nonce)
	}
	if tok, _ := c.Get(ctxCSRF).(string); tok != "" {
		ctx = views.WithCSRFToken(ctx, tok)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := page.Render(ctx, buf); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	h.Set("Cache-Control", "no-store")
	// The CSP is set by securityHeaders when the response starts, so it already names an
	// end-session origin discovered during this request.
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(buf.Bytes())
	return err
}

// pageModel is the base view model every page embeds.
func (s *Server) pageModel(c echo.Context, title string) views.Page {
	sess := s.session(c)
	p := views.Page{Title: title, Sandbox: s.sandbox, Assets: s.assets}
	if sess.Connected() {
		p.Connected = true
		p.UserName = sess.Name
	}
	return p
}
