package lumin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Discovery back-off after a failure: 1 s, 2 s, 4 s … capped at 1 min. While it runs,
// callers get the last error at once instead of hammering a failing issuer
// (security.md §13.3).
const (
	discoveryBackoffMin = 1 * time.Second
	discoveryBackoffMax = 1 * time.Minute
)

// state returns the discovered configuration, fetching it lazily the first time and
// again after a failure once the back-off has passed (security.md §13.3). A successful
// discovery is kept for the life of the process: endpoints are stable, and signing keys
// rotate through the JWKS re-fetch (keyset.go), not through discovery.
func (rp *RP) state(ctx context.Context) (*rpState, error) {
	rp.mu.Lock()
	if rp.st != nil {
		st := rp.st
		rp.mu.Unlock()
		return st, nil
	}
	if rp.lastErr != nil && rp.now().Before(rp.nextTry) {
		err := rp.lastErr
		rp.mu.Unlock()
		return nil, err
	}
	rp.mu.Unlock()

	// One fetch at a time; it runs detached from the caller so a closed tab does not
	// poison the cache, with its own deadline (security.md §13.2).
	ch := rp.discSF.DoChan("discover", func() (any, error) {
		rp.mu.Lock()
		if rp.st != nil {
			st := rp.st
			rp.mu.Unlock()
			return st, nil
		}
		rp.mu.Unlock()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), authTimeout)
		defer cancel()
		st, err := rp.load(dctx)
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if err != nil {
			rp.failures++
			wait := min(discoveryBackoffMin<<min(rp.failures-1, 10), discoveryBackoffMax)
			rp.nextTry = rp.now().Add(wait)
			rp.lastErr = err
			rp.log.Warn("lumin discovery failed", "reason", "discovery_unavailable", "err", err.Error(), "retry_in", wait.String())
			return nil, err
		}
		rp.st, rp.lastErr, rp.failures = st, nil, 0
		return st, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrDiscoveryUnavailable, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*rpState), nil
	}
}

// load fetches and checks the discovery document, then the JWKS.
func (rp *RP) load(ctx context.Context) (*rpState, error) {
	// OIDC Discovery §4: issuer + "/.well-known/openid-configuration".
	wellKnown := strings.TrimSuffix(rp.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	md, err := rp.fetchMetadata(ctx, wellKnown)
	if err != nil {
		return nil, err
	}
	algs, err := checkMetadata(rp.cfg.Issuer, md)
	if err != nil {
		return nil, err
	}

	keys := newKeySet(md.JWKSURI, rp.hc, rp.now, rp.log)
	// Cold cache and JWKS down → fail closed (security.md §4.8); the whole discovery is
	// retried after the back-off.
	if err := keys.fetch(ctx); err != nil {
		return nil, fmt.Errorf("%w: jwks: %w", ErrDiscoveryUnavailable, err)
	}

	oc := &oauth2.Config{
		ClientID:     rp.cfg.ClientID,
		ClientSecret: rp.cfg.ClientSecret,
		RedirectURL:  rp.cfg.RedirectURL,
		Scopes:       slices.Clone(rp.cfg.Scopes),
		Endpoint: oauth2.Endpoint{
			AuthURL:  md.AuthorizationEndpoint,
			TokenURL: md.TokenEndpoint,
			// client_secret_post, set explicitly: AuthStyleAutoDetect would resend a
			// failed one-time code or rotated refresh token with the other style
			// (security.md §3.1, §14; lumin-api.md §5).
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
	verifier := oidc.NewVerifier(md.Issuer, keys, &oidc.Config{
		ClientID: rp.cfg.ClientID,
		// RS256 ∩ discovery's list, asymmetric only: never none or HS* (security.md §4.1).
		SupportedSigningAlgs: algs,
		// go-oidc checks exp without leeway; we check it with leeway ourselves, in
		// verifyIDToken, right after Verify (security.md §4.4, §14).
		SkipExpiryCheck: true,
		Now:             rp.now,
	})
	return &rpState{md: *md, oauth: oc, keys: keys, verifier: verifier}, nil
}

func (rp *RP) fetchMetadata(ctx context.Context, wellKnown string) (*Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiscoveryUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := rp.hc.Do(req)
	if err != nil {
		if isTimeout(err) {
			return nil, fmt.Errorf("%w: GET %s: timeout", ErrDiscoveryUnavailable, wellKnown)
		}
		return nil, fmt.Errorf("%w: GET %s: %w", ErrDiscoveryUnavailable, wellKnown, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: status %d", ErrDiscoveryUnavailable, wellKnown, resp.StatusCode)
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		return nil, fmt.Errorf("%w: GET %s: not JSON", ErrDiscoveryUnavailable, wellKnown)
	}
	body, err := readCapped(resp.Body, maxBody)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrDiscoveryUnavailable, wellKnown, err)
	}
	var md Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("%w: GET %s: malformed JSON", ErrDiscoveryUnavailable, wellKnown)
	}
	return &md, nil
}

// checkMetadata applies our rules to a discovery document and returns the ID token
// signing algorithms we will accept.
func checkMetadata(issuer string, md *Metadata) ([]string, error) {
	// security.md §1.2 (OIDC Discovery §4.3): the issuer must equal the configured string
	// byte for byte; the message shows both, since a trailing "/" is the usual culprit.
	if md.Issuer != issuer {
		return nil, fmt.Errorf("%w: configured LUMIN_ISSUER %q, discovery document says %q", ErrIssuerMismatch, issuer, md.Issuer)
	}
	invalid := func(format string, a ...any) error {
		return fmt.Errorf("%w: %w: %s", ErrDiscoveryInvalid, ErrDiscoveryUnavailable, fmt.Sprintf(format, a...))
	}
	required := []struct{ name, v string }{
		{"authorization_endpoint", md.AuthorizationEndpoint},
		{"token_endpoint", md.TokenEndpoint},
		{"jwks_uri", md.JWKSURI},
	}
	for _, f := range required {
		if f.v == "" {
			return nil, invalid("%s missing", f.name)
		}
	}
	// Every endpoint over TLS, http only on loopback (security.md §1.2, §3.3).
	all := append(required, []struct{ name, v string }{
		{"userinfo_endpoint", md.UserinfoEndpoint},
		{"revocation_endpoint", md.RevocationEndpoint},
		{"end_session_endpoint", md.EndSessionEndpoint},
	}...)
	for _, f := range all {
		if f.v == "" {
			continue
		}
		if _, err := checkEndpointURL(f.v); err != nil {
			return nil, invalid("%s %q: %v", f.name, f.v, err)
		}
	}
	// security.md §1.4 (RFC 7636 §4.2, RFC 9700 §2.1.1): a server listing PKCE methods
	// without S256 would downgrade us to plain or nothing: refuse to start.
	if md.CodeChallengeMethodsSupported != nil && !slices.Contains(md.CodeChallengeMethodsSupported, "S256") {
		return nil, invalid("code_challenge_methods_supported %q lacks S256", md.CodeChallengeMethodsSupported)
	}
	// security.md §3.1: Lumin documents client_secret_post; a server not offering it
	// would answer invalid_client to every login.
	if md.TokenEndpointAuthMethodsSupported != nil && !slices.Contains(md.TokenEndpointAuthMethodsSupported, "client_secret_post") {
		return nil, invalid("token_endpoint_auth_methods_supported %q lacks client_secret_post", md.TokenEndpointAuthMethodsSupported)
	}
	// security.md §4.1: allowlist RS256 ∩ id_token_signing_alg_values_supported. An absent
	// list means the OIDC default, RS256.
	if md.IDTokenSigningAlgValuesSupported != nil && !slices.Contains(md.IDTokenSigningAlgValuesSupported, oidc.RS256) {
		return nil, invalid("id_token_signing_alg_values_supported %q lacks RS256", md.IDTokenSigningAlgValuesSupported)
	}
	return []string{oidc.RS256}, nil
}
