package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/store"
)

const (
	maxReturnTo  = 512     // security.md §1.8
	maxCodeBytes = 2 << 10 // security.md §2.4
	revokeBudget = 10 * time.Second
)

// handleConnect is GET /auth/connect[?return_to=/local/path]: start one authorization-code
// flow (security.md §1). Only state goes into the URL; nonce, PKCE verifier and return_to
// stay in the encrypted transaction cookie (§1.7).
func (s *Server) handleConnect(c echo.Context) error {
	noStore(c) // §1.9
	ctx := c.Request().Context()
	returnTo := ""
	if raw := c.QueryParam("return_to"); raw != "" {
		if rt, ok := safeReturnTo(raw); ok {
			returnTo = rt
		} else {
			s.log.Info("return_to rejected", "reason", "return_to_invalid", "request_id", requestIDOf(c))
		}
	}
	// Discovery first: an unreachable Lumin answers 503, never a crash (§1.9, §13.3).
	if _, err := s.discover(ctx); err != nil {
		return err
	}
	ar, err := lumin.NewAuthRequest() // fresh state, nonce, verifier (§1.3, §1.4)
	if err != nil {
		return err
	}
	authURL, err := s.rp.AuthCodeURL(ctx, ar)
	if err != nil {
		return err
	}
	tx := store.LoginTx{State: ar.State, Nonce: ar.Nonce, Verifier: ar.Verifier, ReturnTo: returnTo, CreatedAt: s.now()}
	if err := s.sessions.AddTx(c.Response(), c.Request(), tx); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, authURL)
}

// safeReturnTo accepts only a local path: exactly one leading "/", no scheme or host after
// url.Parse, no backslash or control character (also percent-encoded), ≤ 512 bytes, and
// not an /auth/ route (RFC 6749 §10.15; RFC 9700 §4.11; security.md §1.8). It is checked
// when stored and again when used.
func safeReturnTo(raw string) (string, bool) {
	if raw == "" || len(raw) > maxReturnTo || !utf8.ValidString(raw) {
		return "", false
	}
	check := func(p string) bool {
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
			return false
		}
		for _, r := range p {
			if r == '\\' || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				return false
			}
		}
		return true
	}
	if !check(raw) {
		return "", false
	}
	// Browsers and proxies decode %2F, %5C and %09 in places; judge the decoded form too.
	if dec, err := url.PathUnescape(raw); err != nil || !check(dec) {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if u.Path == "/auth" || strings.HasPrefix(u.Path, "/auth/") {
		return "", false // never bounce into logout, connect or the callback
	}
	return raw, true
}

// stateDiagnosis lists the usual reasons a callback's state matches nothing in this
// browser — shown on the 400 page so a person can fix their setup.
var stateDiagnosis = []string{
	"The sign-in link is older than 10 minutes: start again.",
	"The sign-in was already completed or the page was reloaded: start again.",
	"Cookies are blocked for this site, so the pending sign-in could not be remembered.",
	"The app was opened as localhost but Lumin returned to 127.0.0.1 (or the reverse): always use the address in APP_BASE_URL.",
	"The app was opened over http but returns over https (or the reverse): APP_BASE_URL must match how you open it.",
	"Sign-in started in another browser or a private window.",
}

// authErrorMessages are friendly texts for the authorization response's error codes
// (RFC 6749 §4.1.2.1; lumin-api.md §12). error_description is never shown: it is
// attacker-controllable text in a URL, and error_debug may leak internals.
var authErrorMessages = map[string]struct {
	status  int
	title   string
	message string
}{
	"access_denied":             {403, "You cancelled connecting Lumin", "Lumin was not connected because access was declined. You can connect any time."},
	"invalid_scope":             {400, "Lumin refused the requested access", "This app asked for permissions its Lumin registration does not allow. The operator has to fix LUMIN_SCOPES."},
	"unauthorized_client":       {400, "Lumin refused this app", "This app is not allowed to sign in this way. The operator has to check its Lumin registration."},
	"invalid_request":           {400, "Lumin refused the sign-in request", "Please start again. If it keeps happening, the operator has to check the app's configuration."},
	"invalid_state":             {400, "Lumin refused the sign-in request", "Please start again."},
	"unsupported_response_type": {400, "Lumin refused the sign-in request", "The operator has to check the app's configuration."},
	"login_required":            {400, "Sign-in required", "Please start again and sign in at Lumin."},
	"consent_required":          {400, "Consent required", "Please start again and allow access at Lumin."},
	"server_error":              {502, "Lumin had a problem", "Lumin could not complete the sign-in. Please try again in a moment."},
	"temporarily_unavailable":   {503, "Lumin is temporarily unavailable", "Please try again in a moment."},
}

// handleCallback is GET /auth/callback, the redirect URI. The steps run in security.md
// §2's order; nothing before step 1 looks at the query.
func (s *Server) handleCallback(c echo.Context) error {
	noStore(c) // §2.6
	ctx := c.Request().Context()
	q := c.Request().URL.Query()
	rid := requestIDOf(c)

	// §2.1: find and remove the transaction by state first, so a replay finds nothing
	// and no token request is made for a state this browser did not start.
	tx, err := s.sessions.TakeTx(c.Response(), c.Request(), q.Get("state"))
	if err != nil {
		if !errors.Is(err, store.ErrNoTransaction) {
			return err
		}
		if s.session(c).Connected() && !q.Has("error") {
			// Usually a reloaded or Back-navigated callback after a completed sign-in, so
			// no error page; but a state matching nothing is still a security event
			// (security.md §12.4), logged before the redirect.
			s.log.Warn("callback state matches no sign-in; already connected", "reason", "state_invalid", "request_id", rid)
			return c.Redirect(http.StatusSeeOther, "/dashboard")
		}
		// "Reject" (security.md §2 preamble): the central handler writes the one WARN line
		// with the reason code and request id.
		p := &pageError{status: http.StatusBadRequest, title: "This sign-in link is not valid here",
			message: "The answer from Lumin does not match a sign-in started in this browser, so it was ignored. Please start again.",
			action:  actStartAgain, diagnosis: stateDiagnosis, reason: "state_invalid", level: slog.LevelWarn, err: err}
		if q.Has("error") {
			p.diagnosis = nil // §2.2: without a valid state, a generic message only
		}
		return p
	}

	// §2.2: an error answer with a valid state.
	if q.Has("error") {
		code := q.Get("error")
		msg, ok := authErrorMessages[code]
		if !ok {
			msg.status, msg.title, msg.message = 400, "Lumin could not connect", "Lumin did not complete the sign-in. Please start again."
			code = "other"
		}
		return &pageError{status: msg.status, title: msg.title, message: msg.message, action: actStartAgain,
			reason: "authorization_error_" + code, level: slog.LevelInfo}
	}

	// §2.3: RFC 9207 issuer identification.
	if err := s.rp.CheckCallbackIssuer(ctx, q.Get("iss"), q.Has("iss")); err != nil {
		if errors.Is(err, lumin.ErrDiscoveryUnavailable) {
			return err
		}
		return &pageError{status: 400, title: "Sign-in could not be verified",
			message: "The answer did not come from the expected Lumin server, so it was ignored. Please start again.",
			action:  actStartAgain, reason: "iss_mismatch", level: slog.LevelWarn, err: err}
	}

	// §2.4: a code is required and bounded; the page is errorTable's ErrBadCallback row.
	code := q.Get("code")
	if code == "" || len(code) > maxCodeBytes {
		return fmt.Errorf("%w: code missing or longer than %d bytes", lumin.ErrBadCallback, maxCodeBytes)
	}

	// §3, §4: exactly one token request, then full ID token validation (nonce included).
	toks, id, err := s.rp.Exchange(ctx, code, lumin.AuthRequest{State: tx.State, Nonce: tx.Nonce, Verifier: tx.Verifier})
	if err != nil {
		return exchangeError(err)
	}

	// Only now may the access token be used (§4.6): the profile for the dashboard (§5.2).
	now := s.now()
	sess := &store.Session{
		ID:           store.NewSessionID(), // §2.5: new id, nothing carried over (ASVS 5 7.2.4)
		UserKey:      id.Key(),
		Name:         id.Name,
		Email:        id.Email,
		CreatedAt:    now,
		AuthTime:     id.AuthTime,
		AccessToken:  toks.AccessToken,
		RefreshToken: toks.RefreshToken,
		IDToken:      toks.IDToken,
		Expiry:       toks.Expiry,
		Scopes:       toks.Scopes,
	}
	if u, err := s.api.UserInfo(ctx, staticTokens(toks.AccessToken)); err == nil {
		sess.Name, sess.Email, sess.ProfileFetchedAt = u.Name, u.Email, now
	} else {
		// The ID token's claims stand in; the dashboard retries (§5.3 spirit).
		s.log.Warn("profile unavailable at sign-in", "reason", "profile_unavailable", "request_id", rid, "user", sess.UserKey)
	}
	if err := s.saveSession(c, sess); err != nil {
		if errors.Is(err, store.ErrCookieTooLarge) {
			// §6.2.3: never let the browser drop a cookie silently.
			s.log.Error("session cookie over budget", "reason", "cookie_too_large", "request_id", rid, "err", err.Error())
		}
		return err
	}
	s.log.Info("signed in", "request_id", rid, "user", sess.UserKey)

	dest := "/dashboard"
	if rt, ok := safeReturnTo(tx.ReturnTo); ok { // checked again when used (§1.8)
		dest = rt
	}
	// §2.6: a clean URL, no-store, and no Referer carrying code/state (set by securityHeaders).
	return c.Redirect(http.StatusSeeOther, dest)
}

// exchangeError maps a failed code exchange or ID token validation (security.md §3.6, §4)
// where the sign-in page differs from errorTable's general one; everything else
// (ErrIDToken, ErrTokenRejected, ErrBadCallback, ErrClientConfig …) is classify's.
func exchangeError(err error) error {
	var idErr *lumin.IDTokenError
	switch {
	case errors.As(err, &idErr):
		// errorTable's ErrIDToken page, with the failed check in the log: a nonce
		// mismatch has its own reason code (security.md §12.4), the rest are a hint.
		p := classify(err)
		p.hint = idErr.Reason
		if idErr.Reason == "nonce_mismatch" {
			p.reason = "nonce_mismatch"
		}
		return p
	case errors.Is(err, lumin.ErrInvalidGrant):
		return &pageError{status: 400, title: "Sign-in failed",
			message: "Lumin did not accept this sign-in (it may have expired or been used already). Please start again.",
			action:  actStartAgain, reason: "code_rejected", level: slog.LevelWarn, err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &pageError{status: 504, title: "Lumin is not answering",
			message: "Lumin took too long to complete the sign-in. Please start again.",
			action:  actStartAgain, reason: "token_timeout", level: slog.LevelWarn, err: err}
	case errors.Is(err, lumin.ErrUpstream):
		return &pageError{status: 502, title: "Lumin is unavailable",
			message: "Lumin could not complete the sign-in. Please start again in a moment.",
			action:  actStartAgain, reason: "token_upstream", level: slog.LevelWarn, err: err}
	}
	return err // via errorTable
}

// handleLogout is POST /auth/logout (CSRF-protected): revoke at Lumin, denylist the
// session id, expire our cookies, then RP-initiated logout at Lumin when possible
// (security.md §9.2, §9.4, §9.5).
func (s *Server) handleLogout(c echo.Context) error {
	noStore(c)
	c.Response().Header().Set("Clear-Site-Data", `"cache"`)
	sess := s.session(c)
	dest := "/"
	if sess != nil {
		if sess.Connected() {
			s.revoke(c, sess)
		}
		if s.db != nil && sess.ID != "" {
			if err := s.db.DenySession(c.Request().Context(), sess.ID, s.sessions.AbsoluteExpiry(sess)); err != nil {
				s.log.Warn("denylist write failed", "reason", "denylist_failed", "request_id", requestIDOf(c))
			}
		}
		if sess.IDToken != "" {
			if u, ok := s.rp.EndSessionURL(c.Request().Context(), sess.IDToken); ok {
				dest = u
			}
		}
		s.log.Info("logged out", "request_id", requestIDOf(c), "user", sess.UserKey)
	}
	s.sessions.Clear(c.Response())
	s.sessions.ClearTx(c.Response())
	c.Set(ctxSession, (*store.Session)(nil))
	return c.Redirect(http.StatusSeeOther, dest)
}

// handleDisconnect is POST /auth/disconnect (CSRF-protected): revoke the grant and
// forget the Lumin connection, keeping nothing of it in the session, then 303 to `/`
// (security.md §9.3). The fixed query flag only selects a fixed notice on the landing
// page; nothing is reflected (§9.5).
func (s *Server) handleDisconnect(c echo.Context) error {
	noStore(c)
	sess := s.session(c)
	if sess.Connected() {
		s.revoke(c, sess)
		dropConnection(sess)
		if err := s.saveSession(c, sess); err != nil {
			return err
		}
		s.log.Info("disconnected", "request_id", requestIDOf(c), "user", sess.UserKey)
	}
	return c.Redirect(http.StatusSeeOther, "/?disconnected=1")
}

// revoke revokes the session's grant at Lumin (RFC 7009). It runs detached from the
// request so a closed tab cannot abort it, and a failure never blocks the local logout
// (security.md §9.4).
func (s *Server) revoke(c echo.Context, sess *store.Session) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), revokeBudget)
	defer cancel()
	if err := s.rp.Revoke(ctx, tokensOf(sess)); err != nil {
		s.log.Warn("revocation failed", "reason", "revoke_failed", "request_id", requestIDOf(c), "user", sess.UserKey, "err", errKind(err))
	}
}

// errKind is a log-safe description of an upstream error: its sentinel, never its text.
func errKind(err error) string {
	var oe *lumin.OAuthError
	if errors.As(err, &oe) {
		return oe.Error() // status + code only (security.md §12.3)
	}
	for _, k := range []error{lumin.ErrUpstream, lumin.ErrDiscoveryUnavailable, lumin.ErrClientConfig, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return "other"
}
