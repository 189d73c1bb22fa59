package lumin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// defaultExpiresIn is assumed when a token response has no expires_in: never "no expiry",
// which x/oauth2 would make of it (security.md §3.4, §14).
const defaultExpiresIn = 5 * time.Minute

// errSecondRequest is returned by oneShot if anything tries a second token request.
var errSecondRequest = errors.New("lumin: refusing a second token request")

// oneShot is the transport for one token request. It lets exactly one request through
// (a code or refresh token is single use: no retry by any layer, security.md §3.2,
// §13.4) and records the status and Content-Type, which x/oauth2 does not expose on
// success, so we can insist on HTTP 200 JSON (security.md §3.4).
type oneShot struct {
	base http.RoundTripper

	mu          sync.Mutex
	n           int
	status      int
	contentType string
}

// RoundTrip implements http.RoundTripper.
func (o *oneShot) RoundTrip(req *http.Request) (*http.Response, error) {
	o.mu.Lock()
	o.n++
	n := o.n
	o.mu.Unlock()
	if n > 1 {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errSecondRequest
	}
	base := o.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.status, o.contentType = resp.StatusCode, resp.Header.Get("Content-Type")
	o.mu.Unlock()
	return resp, nil
}

// tokenRequest runs do (an x/oauth2 call) with our HTTP client in the context
// (security.md §13.2) and maps every failure to our sentinels without ever including
// RetrieveError.Error(), which embeds the raw response body (security.md §12.3, §14).
func (rp *RP) tokenRequest(ctx context.Context, do func(context.Context) (*oauth2.Token, error), refresh bool) (*oauth2.Token, error) {
	rec := &oneShot{base: rp.hc.Transport}
	c := *rp.hc
	c.Transport = rec
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &c)
	tok, err := do(ctx)
	if err != nil {
		return nil, mapTokenError(err, refresh)
	}
	rec.mu.Lock()
	status, ct := rec.status, rec.contentType
	rec.mu.Unlock()
	// Accept only HTTP 200 JSON (RFC 6749 §5.1; security.md §3.4); x/oauth2 takes any
	// 2xx and form-encoded bodies too.
	if status != http.StatusOK {
		return nil, fmt.Errorf("%w: token endpoint answered %d, want 200", ErrUpstream, status)
	}
	if !isJSON(ct) {
		return nil, fmt.Errorf("%w: token response is not JSON", ErrUpstream)
	}
	return tok, nil
}

// mapTokenError turns an x/oauth2 error into *OAuthError or an ErrUpstream error.
func mapTokenError(err error, refresh bool) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		hint := ""
		if len(re.Body) > 0 {
			var b struct {
				Hint string `json:"error_hint"`
			}
			if json.Unmarshal(re.Body, &b) == nil {
				hint = b.Hint
			}
		}
		return oauthError(status, re.ErrorCode, re.ErrorDescription, hint, refresh)
	}
	return upstreamErr("token request failed", err)
}

// parseOAuthErrorBody reads RFC 6749 §5.2 error members from a JSON error body.
func parseOAuthErrorBody(contentType string, body []byte) (code, desc, hint string) {
	if !isJSON(contentType) {
		return "", "", ""
	}
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Hint        string `json:"error_hint"`
	}
	if json.Unmarshal(body, &b) != nil {
		return "", "", ""
	}
	return b.Error, b.Description, b.Hint
}

// oauthError maps an OAuth error answer to *OAuthError wrapping the sentinel handlers act
// on (security.md §3.6, §7.5–§7.7; lumin-api.md §12). error_debug is never read.
func oauthError(status int, code, desc, hint string, refresh bool) *OAuthError {
	code = safeCode(code)
	e := &OAuthError{Status: status, Code: code, Description: safeText(desc, 200)}
	switch {
	case code == "" || status >= 500 || code == "server_error" || code == "temporarily_unavailable":
		// 5xx, a redirect we refused to follow, or a body that is not an OAuth error.
		e.kind = ErrUpstream
	case code == "invalid_grant":
		e.kind = ErrInvalidGrant
	case code == "invalid_client" || code == "unauthorized_client" || code == "unsupported_grant_type" || code == "invalid_scope":
		e.kind = ErrClientConfig
	case refresh && code == "invalid_request" && strings.Contains(strings.ToLower(desc+" "+hint), "concurrent"):
		// Hydra's "multiple concurrent requests" refusal (lumin-api.md §7; ory/hydra#3604).
		e.kind = ErrConcurrentRefresh
	default:
		e.kind = ErrTokenRejected
	}
	return e
}

// tokensFrom checks a successful token response and converts it. prev is the token set
// being refreshed (nil for a code exchange).
func (rp *RP) tokensFrom(tok *oauth2.Token, prev *Tokens) (Tokens, error) {
	bad := func(what string) (Tokens, error) {
		return Tokens{}, fmt.Errorf("%w: token response rejected: %s", ErrUpstream, what)
	}
	// security.md §3.4 (RFC 6749 §5.1): non-empty access_token, token_type bearer
	// compared case-insensitively (Lumin sends "bearer", lumin-api.md §5).
	if tok.AccessToken == "" {
		return bad("empty access_token")
	}
	if !strings.EqualFold(tok.TokenType, "bearer") {
		return bad("token_type is not bearer")
	}
	// expires_in: missing → 5 min; zero, negative or non-numeric → reject. x/oauth2
	// turns 0 into "never expires", so we read the raw member.
	lifetime := defaultExpiresIn
	switch v := tok.Extra("expires_in").(type) {
	case nil:
	case float64:
		if v <= 0 || v != math.Trunc(v) || v > math.MaxInt32 {
			return bad("expires_in out of range")
		}
		lifetime = time.Duration(v) * time.Second
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || n <= 0 {
			return bad("expires_in not a positive integer")
		}
		lifetime = time.Duration(n) * time.Second
	default:
		return bad("expires_in not a number")
	}

	t := Tokens{
		AccessToken: tok.AccessToken,
		Expiry:      rp.now().Add(lifetime),
	}
	// refresh_token: absent is allowed (no offline_access, security.md §3.5); on refresh
	// an absent one keeps the old one (RFC 6749 §6; security.md §7.2).
	switch v := tok.Extra("refresh_token").(type) {
	case string:
		t.RefreshToken = v
	case nil:
	default:
		return bad("refresh_token not a string")
	}
	if t.RefreshToken == "" && prev != nil {
		t.RefreshToken = prev.RefreshToken
	}
	switch v := tok.Extra("id_token").(type) {
	case string:
		t.IDToken = v
	case nil:
	default:
		return bad("id_token not a string")
	}
	// scope omitted means "as requested" (RFC 6749 §5.1) or, on refresh, unchanged (§6).
	switch v := tok.Extra("scope").(type) {
	case string:
		t.Scopes = strings.Fields(v)
	case nil:
		if prev != nil {
			t.Scopes = slices.Clone(prev.Scopes)
		} else {
			t.Scopes = slices.Clone(rp.cfg.Scopes)
		}
	default:
		return bad("scope not a string")
	}
	return t, nil
}
