package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/connectlumin/app/store"
)

// Context keys for values the middleware hands to handlers.
const (
	ctxNonce      = "cl.nonce"
	ctxSession    = "cl.session"
	ctxTokens     = "cl.tokens"
	ctxRotated    = "cl.rotated" // the session's tokens came from the rotation map (tokens.go)
	ctxCSRF       = "csrf"       // Echo's CSRF ContextKey
	ctxCSRFPassed = "cl.csrf_passed"
	ctxBody       = "cl.body" // the request body behind http.MaxBytesReader (bodyLimit)
)

// defaultBodyLimit caps every request body without a per-route limit: forms are small
// (security.md §10 "Server").
const defaultBodyLimit = 64 << 10

// randomString returns n bytes from crypto/rand, base64url without padding.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// recoverer turns a panic into an error for the central handler, logging the stack —
// never showing it (security.md §10, ASVS 5 16.5.1). Only the panicking goroutine's
// stack: Echo's default dumps every goroutine, i.e. other requests' frames and arguments.
func (s *Server) recoverer() echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic", "request_id", requestIDOf(c), "route", c.Path(), "err", err.Error(), "stack", string(stack))
			return err
		},
	})
}

// requestID gives every request a fresh id. A client-sent X-Request-Id is replaced, not
// trusted: it ends up in logs and on error pages.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		b := make([]byte, 10)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		id := hex.EncodeToString(b)
		c.Request().Header.Set(echo.HeaderXRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestIDOf(c echo.Context) string { return c.Response().Header().Get(echo.HeaderXRequestID) }

// requestLogger logs method, path without query (the callback's query holds the code
// and state), route, status, latency, request id and client IP (security.md §12.1–12.2).
func (s *Server) requestLogger() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError:  true, // status comes from the central error handler
		LogMethod:    true,
		LogURIPath:   true,
		LogRoutePath: true,
		LogStatus:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogRemoteIP:  true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			s.log.LogAttrs(context.Background(), slog.LevelInfo, "request",
				slog.String("method", v.Method),
				slog.String("path", v.URIPath),
				slog.String("route", v.RoutePath),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
				slog.String("request_id", v.RequestID),
				slog.String("ip", v.RemoteIP),
			)
			return nil
		},
	})
}

// securityHeaders sets security.md §10's headers with a fresh CSP nonce per response.
// Echo's Secure middleware is not used: its defaults are wrong or missing (§14).
// The CSP itself is computed when the response starts (Response.Before), once: a
// handler may run discovery after this middleware, and form-action must then already
// name the end-session origin.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		nonce := randomString(18) // ≥ 16 random bytes (security.md §10)
		c.Set(ctxNonce, nonce)
		s.setSecurityHeaders(c, nonce)
		return next(c)
	}
}

func (s *Server) setSecurityHeaders(c echo.Context, nonce string) {
	h := c.Response().Header()
	c.Response().Before(func() { h.Set("Content-Security-Policy", s.csp(nonce)) })
	if s.https {
		// HSTS only for an https base URL: on loopback http it would be ignored or,
		// worse, pin localhost to https for every other local project.
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-XSS-Protection", "0") // the legacy filter is itself an XS-leak vector
	path := c.Request().URL.Path
	if path == "/auth/callback" {
		// The callback URL carries code and state: never send it onward (RFC 9700 §4.2.4).
		h.Set("Referrer-Policy", "no-referrer")
	} else {
		h.Set("Referrer-Policy", "same-origin")
	}
	if strings.HasPrefix(path, "/auth/") {
		noStore(c) // security.md §6.3.4: every /auth/* response
	}
}

// csp is security.md §10's policy. form-action lists Lumin's end-session origin because
// Chromium applies form-action to the redirect that follows the logout POST.
func (s *Server) csp(nonce string) string {
	formAction := "'self'"
	if o := s.endSessionOrigin.Load(); o != nil {
		formAction += " " + *o
	}
	return "default-src 'self'; script-src 'self' 'nonce-" + nonce + "'; style-src 'self'; img-src 'self' data:; " +
		"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action " + formAction
}

func noStore(c echo.Context) {
	c.Response().Header().Set("Cache-Control", "no-store")
}

// bodyLimit enforces the per-route body caps in s.bodyLimits (security.md §10).
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		limit, ok := s.bodyLimits[r.Method+" "+c.Path()]
		if !ok {
			limit = defaultBodyLimit
		}
		if r.ContentLength > limit {
			return echo.ErrStatusRequestEntityTooLarge
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		c.Set(ctxBody, r.Body)
		return next(c)
	}
}

// csrfCookieName follows security.md §6.1: __Host- and Secure over https only.
func (s *Server) csrfCookieName() string {
	if s.https {
		return "__Host-csrf"
	}
	return "csrf"
}

const csrfMaxAge = 86400 // Echo's default lifetime, made explicit (security.md §6.1.1)

// sessionFree reports the routes that carry no cookies: no CSRF check and no session.
// The webhook is a server-to-server POST authenticated by HMAC (security.md §11.1);
// health checks and static files change nothing and need no cookie.
func sessionFree(c echo.Context) bool {
	p := c.Path()
	return p == "/webhooks/lumin" || p == "/healthz" || p == "/static/*"
}

// csrf is Echo's CSRF middleware configured per security.md §10, wrapped so that every
// refusal before the handler runs — a missing or bad token, Echo's Sec-Fetch-Site
// block — becomes errCSRF (403 page, WARN csrf_failed). One exception: a form body
// over the limit is a 413, not a CSRF failure (Echo's form extractor swallows the
// *http.MaxBytesError and reports a missing token).
func (s *Server) csrf() echo.MiddlewareFunc {
	name := s.csrfCookieName()
	mw := middleware.CSRFWithConfig(middleware.CSRFConfig{
		Skipper:        sessionFree,
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		ContextKey:     ctxCSRF,
		CookieName:     name,
		CookiePath:     "/",
		CookieMaxAge:   csrfMaxAge,
		CookieHTTPOnly: true,
		CookieSecure:   s.https,
		CookieSameSite: http.SameSiteLaxMode,
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := mw(func(c echo.Context) error {
			c.Set(ctxCSRFPassed, true)
			addCookieMaxAge(c, name, csrfMaxAge)
			return next(c)
		})
		return func(c echo.Context) error {
			err := h(c)
			if err != nil && c.Get(ctxCSRFPassed) == nil {
				if tooLarge := bodyOverLimit(c); tooLarge != nil {
					return tooLarge
				}
				return csrfFailure(err)
			}
			return err
		}
	}
}

// bodyOverLimit returns the *http.MaxBytesError if reading this request's body hit the
// bodyLimit cap. MaxBytesReader's error is sticky and a zero-length Read returns it
// without reading anything, so this never consumes or waits for the body.
func bodyOverLimit(c echo.Context) error {
	body, ok := c.Get(ctxBody).(io.Reader)
	if !ok {
		return nil
	}
	var mbe *http.MaxBytesError
	if _, err := body.Read(nil); errors.As(err, &mbe) {
		return err
	}
	return nil
}

// addCookieMaxAge gives Echo's CSRF cookie the explicit Max-Age security.md §6.1.1 asks
// for (Echo sets only Expires).
func addCookieMaxAge(c echo.Context, name string, maxAge int) {
	h := c.Response().Header()
	lines := h.Values("Set-Cookie")
	for i, l := range lines {
		if strings.HasPrefix(l, name+"=") && !strings.Contains(l, "Max-Age=") {
			lines[i] = l + "; Max-Age=" + strconv.Itoa(maxAge)
		}
	}
}

// loadSession decodes the session cookie once per request. A bad cookie reads as signed
// out (the store clears it, security.md §6.3.2); a logged-out session id on the
// denylist is cleared too (security.md §6.3.3).
func (s *Server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sessionFree(c) {
			return next(c) // no cookies on these routes (security.md §11.1)
		}
		sess := s.sessions.Load(c.Response(), c.Request())
		if sess != nil && s.db != nil && sess.ID != "" {
			denied, err := s.db.SessionDenied(c.Request().Context(), sess.ID)
			if err != nil {
				// Fail closed: without the denylist we cannot tell a logged-out copy of
				// this cookie from the real one.
				return fmt.Errorf("session denylist: %w", err)
			}
			if denied {
				s.sessions.Clear(c.Response())
				sess = nil
			}
		}
		// security.md §7.4 "never write stale tokens": if another request rotated this
		// cookie's refresh token in the last 60 s, this request carries a spent token.
		// Take the newest set before anything uses or re-saves it; otherwise the re-save
		// below would hand the browser the spent token back, and its next refresh would
		// look like reuse to Lumin (lumin-api.md §7).
		rotated := false
		if sess.Connected() {
			if nt, ok := s.rp.Latest(tokensOf(sess)); ok {
				applyTokens(sess, nt)
				rotated = true
				c.Set(ctxRotated, true)
			}
		}
		if sess.NeedsSave() || rotated {
			// Re-issue now, before any body: moves an old-key cookie to the current key
			// (security.md §6.1.3) and slides the idle timeout (§6.3.1). A handler that
			// refreshes tokens later in this request replaces this Set-Cookie.
			if err := s.sessions.Save(c.Response(), sess); err != nil {
				return err
			}
		}
		c.Set(ctxSession, sess)
		return next(c)
	}
}

// requireConnected sends visitors without a Lumin connection to the landing page.
func (s *Server) requireConnected(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.session(c).Connected() {
			noStore(c)
			return c.Redirect(http.StatusSeeOther, "/")
		}
		return next(c)
	}
}

// session returns this request's session, or nil when signed out. Seam for the
// signature-request pages: read and modify it, then s.saveSession before writing.
func (s *Server) session(c echo.Context) *store.Session {
	sess, _ := c.Get(ctxSession).(*store.Session)
	return sess
}

// saveSession writes sess to the cookie. It must run before any body is written
// (security.md §6.3.4).
func (s *Server) saveSession(c echo.Context, sess *store.Session) error {
	if c.Response().Committed {
		return fmt.Errorf("handlers: session saved after the response started")
	}
	// Save replaces any earlier Set-Cookie of the session in this response, so the
	// browser never sees two versions.
	if err := s.sessions.Save(c.Response(), sess); err != nil {
		return err
	}
	c.Set(ctxSession, sess)
	return nil
}
