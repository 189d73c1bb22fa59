// Package lumin is the client side of Lumin: the OpenID Connect relying-party glue
// (discovery, authorization request, code exchange, ID token verification, refresh,
// revocation, RP-initiated logout) and a typed client for Lumin's REST API.
//
// It never imports Echo: callers pass context.Context and plain values. The rules it
// implements are cited as "security.md §N" and "lumin-api.md §N" (see ../shared).
package lumin

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Tokens is one token set from Lumin's token endpoint. It redacts itself in every
// formatting path so a stray %v or slog attribute never leaks a token (security.md §12.3).
type Tokens struct {
	AccessToken  string
	RefreshToken string // empty when offline_access was not granted (security.md §3.5)
	IDToken      string // raw ID token, kept only for id_token_hint (security.md §4.10)
	Expiry       time.Time
	Scopes       []string // granted scopes as returned by the token endpoint
}

// String implements fmt.Stringer without revealing any token.
func (Tokens) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing any token.
func (Tokens) GoString() string { return "[redacted]" }

// Format implements fmt.Formatter so every verb (%v, %+v, %#v, %s, %q) is redacted.
func (Tokens) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// LogValue implements slog.LogValuer.
func (Tokens) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON keeps the redaction when a Tokens is nested in a value a JSON logger
// marshals: slog.JSONHandler calls LogValue only on the top-level attribute, and
// encoding/json ignores String and Format (security.md §12.3).
func (Tokens) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// HasScope reports whether scope was granted.
func (t Tokens) HasScope(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Identity is who signed in, from the verified ID token. A user is (Issuer, Subject),
// never the email (security.md §5.1).
type Identity struct {
	Issuer   string
	Subject  string
	Email    string
	Name     string
	AuthTime time.Time
}

// Key is the stable internal user key "iss|sub" used by the store.
func (id Identity) Key() string { return id.Issuer + "|" + id.Subject }

// Sentinel errors. Handlers map them to user messages in handlers/errors.go.
var (
	// ErrDiscoveryUnavailable means the issuer's discovery document or JWKS could not
	// be fetched; sign-in answers 503 and discovery is retried lazily (security.md §13.3).
	ErrDiscoveryUnavailable = errors.New("lumin: discovery unavailable")
	// ErrIssuerMismatch means discovery's issuer differs from the configured one (security.md §1.2).
	ErrIssuerMismatch = errors.New("lumin: issuer mismatch")
	// ErrInvalidGrant means the code or refresh token is dead: start again / reconnect.
	ErrInvalidGrant = errors.New("lumin: invalid_grant")
	// ErrClientConfig means invalid_client / unauthorized_client etc.: our configuration is wrong.
	ErrClientConfig = errors.New("lumin: client configuration rejected")
	// ErrConcurrentRefresh is Hydra's "multiple concurrent requests" refusal (lumin-api.md §7).
	ErrConcurrentRefresh = errors.New("lumin: concurrent refresh refused")
	// ErrUpstream means Lumin failed (5xx, timeout, malformed response).
	ErrUpstream = errors.New("lumin: upstream unavailable")
	// ErrIDToken means the ID token failed validation (signature, iss, aud, exp, iat, nonce, at_hash …).
	ErrIDToken = errors.New("lumin: id token invalid")
	// ErrNoRefreshToken means the session cannot be refreshed (no offline_access).
	ErrNoRefreshToken = errors.New("lumin: no refresh token")
	// ErrDiscoveryInvalid means the discovery document was fetched but is unacceptable
	// (no S256 PKCE, no RS256, no client_secret_post, a non-https endpoint …): a
	// configuration problem at Lumin's side or ours, reported once at start-up
	// (security.md §1.2, §1.4). Errors wrapping it also wrap ErrDiscoveryUnavailable,
	// because sign-in cannot start either way.
	ErrDiscoveryInvalid = errors.New("lumin: discovery document unacceptable")
	// ErrBadCallback means the callback itself is unacceptable before any token request:
	// an RFC 9207 iss mismatch or a missing/oversized code (security.md §2.3, §2.4).
	ErrBadCallback = errors.New("lumin: invalid callback")
	// ErrTokenRejected is any other OAuth error answer (e.g. invalid_request) from the
	// token or revocation endpoint: the request failed and is not retried.
	ErrTokenRejected = errors.New("lumin: token request rejected")

	// ErrReconnect means the REST API still answered 401 after one forced refresh, or
	// the refresh itself failed: the user must reconnect Lumin (security.md §8.4).
	ErrReconnect = errors.New("lumin: reconnect required")
	// ErrResubmit means a non-GET call got 401; the tokens were refreshed but the call is
	// not replayed automatically (it may send emails): ask the user to submit again
	// (security.md §8.4, §8.5).
	ErrResubmit = errors.New("lumin: refreshed, resubmit")
	// ErrForbidden is REST 403: a missing scope or permission; no refresh (RFC 6750 §3.1).
	ErrForbidden = errors.New("lumin: forbidden")
	// ErrNotFound is REST 404: "not found or not accessible".
	ErrNotFound = errors.New("lumin: not found")
	// ErrConflict is REST 409, e.g. signature_request_not_approved ("not ready yet").
	ErrConflict = errors.New("lumin: conflict")
	// ErrInvalidInput is REST 400/422 (a form error) or input this client refused to
	// send (bad id shape, empty title …) — no request was made in the latter case.
	ErrInvalidInput = errors.New("lumin: invalid input")
	// ErrRateLimited is REST 429, or 503 with Retry-After; APIError.RetryAfter says how
	// long to wait.
	ErrRateLimited = errors.New("lumin: rate limited")
)

// IDTokenError says which ID-token check failed; Reason is a log-safe code such as
// "nonce_mismatch", "iss", "aud", "azp", "exp", "iat", "sub", "at_hash", "signature".
// It wraps ErrIDToken.
type IDTokenError struct {
	Reason string
	Err    error
}

// Error returns the log-safe reason only, never token contents.
func (e *IDTokenError) Error() string { return "lumin: id token invalid: " + e.Reason }

// Unwrap returns ErrIDToken so errors.Is(err, ErrIDToken) holds.
func (e *IDTokenError) Unwrap() []error { return []error{ErrIDToken, e.Err} }

// OAuthError is an error response from the token or revocation endpoint (RFC 6749 §5.2).
// Only Code and Status are ever logged; Description may be shown escaped; error_debug is dropped.
// It wraps one sentinel (ErrInvalidGrant, ErrClientConfig, ErrConcurrentRefresh,
// ErrUpstream or ErrTokenRejected) so handlers can use errors.Is.
type OAuthError struct {
	Status      int
	Code        string
	Description string

	kind error // the sentinel this error maps to
}

// Error shows status and code only: the description may echo request details and the
// raw body (error_debug) is never kept (security.md §12.3).
func (e *OAuthError) Error() string { return fmt.Sprintf("lumin: oauth error %d %s", e.Status, e.Code) }

// Unwrap returns the sentinel the error maps to (nil for a hand-built OAuthError).
func (e *OAuthError) Unwrap() error { return e.kind }
