package lumin

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// minForcedRefetch is the least time between two JWKS fetches forced by an unknown kid
// (security.md §4.8): go-oidc's RemoteKeySet would re-fetch on every such token.
const minForcedRefetch = time.Minute

// keySet is our oidc.KeySet over the discovered jwks_uri. Unlike go-oidc's RemoteKeySet
// it rate-limits forced re-fetches, keeps the cached keys when a re-fetch fails, parses
// the set entry by entry (skipping what it cannot use), and keeps RSA public keys only.
type keySet struct {
	url string
	hc  *http.Client
	now func() time.Time
	log *slog.Logger

	mu         sync.Mutex
	keys       []jose.JSONWebKey
	lastForced time.Time // last forced (unknown-kid) re-fetch attempt
	sf         singleflight.Group
}

var _ oidc.KeySet = (*keySet)(nil)

func newKeySet(url string, hc *http.Client, now func() time.Time, log *slog.Logger) *keySet {
	return &keySet{url: url, hc: hc, now: now, log: log}
}

// errNoKey is returned when no key from jwks_uri verifies the token.
var errNoKey = errors.New("no key from jwks_uri verifies the token")

// VerifySignature implements oidc.KeySet. The algorithm allowlist was already enforced by
// the oidc.IDTokenVerifier; we enforce it again (RS256 only) because this method parses
// the token itself. Keys come only from jwks_uri: the token's jku, x5u and jwk headers
// are never looked at (security.md §4.1).
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("malformed or disallowed jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("expected exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID

	keys := k.cached()
	if payload, ok := verifyWith(jws, keys, kid); ok {
		return payload, nil
	}
	if hasKid(keys, kid) {
		// A known key (or, without kid, any key) failed: a bad signature, not a rotation.
		return nil, errNoKey
	}
	// Unknown kid: one JWKS re-fetch, at most one per minute (security.md §4.8; OIDC
	// Core §10.1.1). Otherwise reject.
	if !k.mayRefetch() {
		return nil, fmt.Errorf("%w (unknown kid; re-fetch rate-limited)", errNoKey)
	}
	if err := k.fetch(ctx); err != nil {
		return nil, fmt.Errorf("%w (unknown kid; re-fetch failed: %w)", errNoKey, err)
	}
	if payload, ok := verifyWith(jws, k.cached(), kid); ok {
		return payload, nil
	}
	return nil, errNoKey
}

func (k *keySet) cached() []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys
}

// mayRefetch claims the forced re-fetch slot if a minute has passed since the last
// forced one (the initial fetch does not count); claiming it under the lock means two racing unknown-kid tokens cause one fetch.
func (k *keySet) mayRefetch() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if !k.lastForced.IsZero() && now.Sub(k.lastForced) < minForcedRefetch {
		return false
	}
	k.lastForced = now
	return true
}

// hasKid reports whether a cached key answers to kid; a token without kid is matched
// against every key, so "known" then means the set is not empty.
func hasKid(keys []jose.JSONWebKey, kid string) bool {
	for _, key := range keys {
		if kid == "" || key.KeyID == kid {
			return true
		}
	}
	return false
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(key.Key); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// fetch downloads the JWKS once (concurrent callers share the request), replacing the
// cache on success and keeping it on failure (security.md §13.3).
func (k *keySet) fetch(ctx context.Context) error {
	ch := k.sf.DoChan("jwks", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), authTimeout)
		defer cancel()
		keys, err := k.download(fctx)
		if err != nil {
			k.log.Warn("lumin jwks fetch failed", "reason", "jwks_unavailable", "err", err.Error())
			return nil, err
		}
		k.mu.Lock()
		k.keys = keys
		k.mu.Unlock()
		return nil, nil
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r := <-ch:
		return r.Err
	}
}

func (k *keySet) download(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.hc.Do(req)
	if err != nil {
		if isTimeout(err) {
			return nil, errors.New("jwks: timeout")
		}
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: status %d", resp.StatusCode)
	}
	body, err := readCapped(resp.Body, maxBody)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return parseJWKS(body, k.log)
}

// parseJWKS parses a JWK Set entry by entry. go-jose fails the whole set on one key of an
// unknown type; RFC 7517 §5 says implementations SHOULD ignore such keys (security.md
// §4.8, §14). We also drop everything we would never verify with: non-RSA keys (the
// allowlist is RS256), keys for encryption, keys carrying private or symmetric material
// (a JWKS must publish public keys only), and RSA keys under 2048 bits.
func parseJWKS(body []byte, log *slog.Logger) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("jwks: malformed JSON")
	}
	var keys []jose.JSONWebKey
	for i, raw := range set.Keys {
		var meta struct {
			Kty string          `json:"kty"`
			Use string          `json:"use"`
			Alg string          `json:"alg"`
			D   json.RawMessage `json:"d"`
			K   json.RawMessage `json:"k"`
		}
		skip := func(why string) { log.Debug("lumin jwks entry skipped", "index", i, "why", why) }
		if err := json.Unmarshal(raw, &meta); err != nil {
			skip("not an object")
			continue
		}
		switch {
		case meta.Kty != "RSA":
			skip("kty " + safeCode(meta.Kty))
			continue
		case meta.Use != "" && meta.Use != "sig":
			skip("use " + safeCode(meta.Use))
			continue
		case meta.Alg != "" && meta.Alg != string(jose.RS256):
			skip("alg " + safeCode(meta.Alg))
			continue
		case meta.D != nil || meta.K != nil:
			skip("private or symmetric material")
			continue
		}
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil || !key.Valid() {
			skip("unparsable")
			continue
		}
		pub, ok := key.Key.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < 2048 {
			skip("not an RSA public key of at least 2048 bits")
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no usable RS256 key")
	}
	return keys, nil
}
