package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/store"
	"github.com/connectlumin/app/views"
)

// pageError is an error that knows the page it shows: status, human title, safe message,
// action and the log reason code. Handlers return it (or a sentinel mapped in
// errorTable); only the central handler writes error bodies.
type pageError struct {
	status    int
	title     string
	message   string
	action    views.Action
	diagnosis []string
	reason    string     // log-safe reason code (security.md §12.4)
	hint      string     // operator hint logged with the reason, e.g. which setting to check
	level     slog.Level // WARN for security events, ERROR for our faults
	err       error      // the cause; logged by kind only
}

func (e *pageError) Error() string {
	if e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

func (e *pageError) Unwrap() error { return e.err }

// Actions offered on error pages.
var (
	actStartAgain = views.Action{Href: "/auth/connect", Label: "Start again"}
	actReconnect  = views.Action{Href: "/auth/connect", Label: "Reconnect Lumin"}
	actHome       = views.Action{Href: "/", Label: "Go to the start page"}
	actDashboard  = views.Action{Href: "/dashboard", Label: "Back to the dashboard"}
)

// errReconnect means the Lumin connection has ended (refresh rejected, no refresh
// token, API 401 after a refresh) and was dropped from the session: show "Reconnect
// Lumin" once, never loop (security.md §7.5).
var errReconnect = errors.New("lumin connection ended")

// errCSRF is a failed CSRF check (security.md §10).
var errCSRF = errors.New("csrf check failed")

func csrfFailure(err error) error { return fmt.Errorf("%w: %w", errCSRF, err) }

// errorTable maps sentinels to pages, first match wins. It is the one place user
// messages for failures live (design.md "Errors").
var errorTable = []struct {
	target error
	page   pageError
}{
	{errCSRF, pageError{status: 403, title: "This form has expired",
		message: "The form could not be verified, so nothing was changed. Go back, reload the page and try again.",
		action:  actHome, reason: "csrf_failed", level: slog.LevelWarn}},
	{errReconnect, pageError{status: 401, title: "Reconnect Lumin",
		message: "Your connection to Lumin has ended: it expired or was revoked. Connect again to continue.",
		action:  actReconnect, reason: "reconnect_required", level: slog.LevelInfo}},
	{lumin.ErrConcurrentRefresh, pageError{status: 503, title: "Please reload the page",
		message: "Your Lumin connection was being renewed by another tab at the same moment. Reload this page to continue.",
		action:  actDashboard, reason: "refresh_concurrent", level: slog.LevelWarn}},
	{lumin.ErrDiscoveryUnavailable, pageError{status: 503, title: "Sign-in temporarily unavailable",
		message: "Lumin's sign-in service cannot be reached right now. Please try again in a minute.",
		action:  actStartAgain, reason: "discovery_unavailable", level: slog.LevelWarn}},
	{lumin.ErrIssuerMismatch, pageError{status: 502, title: "Sign-in is misconfigured",
		message: "Lumin's sign-in service identified itself differently from this app's configuration. The operator has to fix LUMIN_ISSUER.",
		action:  actHome, reason: "issuer_mismatch", level: slog.LevelError}},
	{lumin.ErrClientConfig, pageError{status: 502, title: "Lumin rejected this app",
		message: "Lumin did not accept this app's credentials. The operator has to check the app's client id and secret.",
		action:  actHome, reason: "client_config", hint: "check LUMIN_CLIENT_ID and LUMIN_CLIENT_SECRET", level: slog.LevelError}},
	// A missing or oversized code (security.md §2.4): the handler checks it before the
	// exchange, and Exchange refuses it too — either way a 400, never a 500.
	{lumin.ErrBadCallback, pageError{status: 400, title: "Sign-in could not be completed",
		message: "Lumin's answer had no usable authorization code. Please start again.",
		action:  actStartAgain, reason: "code_invalid", level: slog.LevelWarn}},
	{lumin.ErrIDToken, pageError{status: 400, title: "Sign-in could not be verified",
		message: "Lumin's answer did not pass this app's security checks, so you were not signed in. Please start again.",
		action:  actStartAgain, reason: "id_token_invalid", level: slog.LevelWarn}},
	// Any other OAuth error answer (invalid_request, a vendor code …): the request failed
	// and is never retried; a fixed message, never Lumin's text (security.md §3.6, §10).
	{lumin.ErrTokenRejected, pageError{status: 400, title: "Sign-in failed, start again",
		message: "Lumin refused the sign-in request. Please start again.",
		action:  actStartAgain, reason: "token_rejected", level: slog.LevelWarn}},
	{context.DeadlineExceeded, pageError{status: 504, title: "Lumin is not answering",
		message: "Lumin took too long to answer. Please try again in a moment.",
		action:  actHome, reason: "upstream_timeout", level: slog.LevelWarn}},
	{lumin.ErrUpstream, pageError{status: 503, title: "Lumin is temporarily unavailable",
		message: "Lumin could not be reached or answered with an error. Nothing was changed; please try again in a moment.",
		action:  actHome, reason: "upstream_unavailable", level: slog.LevelWarn}},
	{store.ErrCookieTooLarge, pageError{status: 500, title: "Your sign-in could not be stored",
		message: "Lumin's tokens are too large to keep in this app's session cookie, so you were not signed in. The operator has been told.",
		action:  actHome, reason: "cookie_too_large", level: slog.LevelError}},
	{store.ErrNotFound, pageError{status: 404, title: "Not found",
		message: "There is nothing here, or it is not accessible to you.",
		action:  actDashboard, reason: "not_found", level: slog.LevelInfo}},
}

// classify turns any error into the page to show.
func classify(err error) *pageError {
	var pe *pageError
	if errors.As(err, &pe) {
		return pe
	}
	for _, row := range errorTable {
		if errors.Is(err, row.target) {
			p := row.page
			p.err = err
			return &p
		}
	}
	var ae *lumin.APIError
	if errors.As(err, &ae) {
		return apiErrorPage(ae)
	}
	// A body over bodyLimit's cap, wherever it was read (form parsing, CSRF, a handler):
	// the same 413 page as a Content-Length over the cap (security.md §10 "Server").
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		p := httpErrorPage(echo.ErrStatusRequestEntityTooLarge)
		p.err = err
		return p
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return httpErrorPage(he)
	}
	return &pageError{status: 500, title: "Something went wrong",
		message: "The page could not be shown. Please try again in a moment.",
		action:  actHome, reason: "internal", level: slog.LevelError, err: err}
}

// apiErrorPage maps Lumin REST errors (security.md §8.4, lumin-api.md §17).
func apiErrorPage(ae *lumin.APIError) *pageError {
	p := &pageError{status: 502, title: "Lumin answered with an error", action: actDashboard,
		message: "Lumin could not complete this request. Please try again later.",
		reason:  "api_" + strconv.Itoa(ae.Status), level: slog.LevelWarn, err: ae}
	switch {
	case ae.Status == http.StatusUnauthorized:
		p.status, p.title, p.action = 401, "Reconnect Lumin", actReconnect
		p.message = "Lumin no longer accepts this app's access. Connect again to continue."
	case ae.Status == http.StatusForbidden:
		p.status, p.title = 403, "Permission missing"
		p.message = "Lumin says this connection is not allowed to do that. Reconnecting with more permissions may help."
		p.action = actReconnect
	case ae.Status == http.StatusNotFound:
		p.status, p.title = 404, "Not found"
		p.message = "Lumin has no such item, or it is not accessible to your account."
	case ae.Status == http.StatusConflict:
		p.status, p.title = 409, "Not ready yet"
		p.message = "Lumin says this is not ready yet. Try again once the request has progressed."
	case ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable:
		p.status, p.title = 503, "Lumin is busy"
		p.message = "Lumin is busy right now. Please try again in a moment."
		if s := int(ae.RetryAfter.Seconds()); s > 0 {
			p.message = "Lumin is busy right now. Please try again in " + strconv.Itoa(s) + " s."
		}
	case ae.Status >= 400 && ae.Status < 500:
		p.status, p.title = 400, "Lumin refused the request"
		if ae.Message != "" {
			p.message = "Lumin said: " + ae.Message // escaped by templ
		}
	}
	return p
}

// httpErrorPage maps Echo's own errors (404, 405, 413 …) to pages; their messages are
// never shown (they may describe internals).
func httpErrorPage(he *echo.HTTPError) *pageError {
	p := &pageError{status: he.Code, action: actHome, reason: "http_" + strconv.Itoa(he.Code), level: slog.LevelInfo, err: he}
	switch he.Code {
	case http.StatusNotFound:
		p.title, p.message = "Page not found", "There is no page at this address."
	case http.StatusMethodNotAllowed:
		p.title, p.message = "Not allowed", "This address does not accept that kind of request. Nothing was changed."
	case http.StatusRequestEntityTooLarge:
		p.title, p.message = "Too large", "What you sent is larger than this app accepts. Nothing was changed."
	case http.StatusBadRequest:
		p.title, p.message = "Bad request", "The request could not be understood. Nothing was changed."
	case http.StatusUnauthorized, http.StatusForbidden:
		p.title, p.message = "Not allowed", "You are not allowed to do that."
	default:
		if he.Code < 400 || he.Code >= 500 {
			p.status, p.level, p.reason = 500, slog.LevelError, "internal"
			p.title, p.message = "Something went wrong", "The page could not be shown. Please try again in a moment."
		} else {
			p.title, p.message = http.StatusText(he.Code), "The request could not be completed. Nothing was changed."
		}
	}
	return p
}

// handleError is Echo's HTTPErrorHandler: every error — ours and Echo's — becomes the
// HTML error page, never JSON, internal text or a stack (security.md §10, ASVS 5 16.5.1).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return // already handled (the request logger forwards errors here first)
	}
	pe := classify(err)
	rid := requestIDOf(c)
	attrs := []any{"reason", pe.reason, "status", pe.status, "request_id", rid, "route", c.Path()}
	if pe.hint != "" {
		attrs = append(attrs, "hint", pe.hint)
	}
	if pe.level >= slog.LevelError && pe.err != nil {
		// Our own fault: the error text helps the operator. Token-bearing types redact
		// themselves and lumin errors carry codes only (security.md §12.3).
		attrs = append(attrs, "err", pe.err.Error())
	}
	s.log.Log(c.Request().Context(), pe.level, "request failed", attrs...)

	nonce, _ := c.Get(ctxNonce).(string)
	if nonce == "" { // the failure happened before the header middleware ran
		nonce = randomString(18)
		c.Set(ctxNonce, nonce)
		s.setSecurityHeaders(c, nonce)
	}
	noStore(c)
	m := views.ErrorModel{
		Page:      s.pageModel(c, pe.title),
		Status:    pe.status,
		Heading:   pe.title,
		Message:   pe.message,
		Diagnosis: pe.diagnosis,
		Action:    pe.action,
		RequestID: rid,
	}
	if rerr := s.render(c, pe.status, views.ErrorPage(m)); rerr != nil {
		s.log.Error("error page failed", "request_id", rid, "err", rerr.Error())
		if !c.Response().Committed {
			c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
			c.Response().WriteHeader(pe.status)
			_, _ = c.Response().Write(s.fallback)
		}
	}
}
