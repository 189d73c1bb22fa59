package lumin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

const (
	// refreshEarly: refresh when the access token expires within 60 s (security.md §7.1);
	// x/oauth2 would wait until 10 s (security.md §14).
	refreshEarly = 60 * time.Second
	// rotatedTTL is how long a rotation is remembered for late requests (security.md §7.4).
	rotatedTTL = 60 * time.Second
	// refreshTimeout is the detached refresh call's own budget (security.md §7.3).
	refreshTimeout = 10 * time.Second
)

type rotatedEntry struct {
	tokens  Tokens
	expires time.Time
}

// NeedsRefresh reports whether t expires within 60 s (security.md §7.1).
func (rp *RP) NeedsRefresh(t Tokens) bool {
	// A zero expiry is never "no expiry" (security.md §3.4): refresh.
	return t.Expiry.IsZero() || !rp.now().Add(refreshEarly).Before(t.Expiry)
}

// Refresh rotates old (security.md §7): single-flight per refresh token on a detached
// context, a 60 s map of just-rotated tokens, ID token re-checked against prev.
// Errors wrap ErrInvalidGrant, ErrConcurrentRefresh, ErrUpstream or ErrNoRefreshToken.
//
// A refreshed ID token is checked like a new one (signature, iss, aud, azp, exp, iat,
// sub, at_hash — security.md §4.9) and must name prev's issuer and subject, but its
// nonce is not compared: the login transaction and its nonce are gone by now, and OIDC
// Core §12.2 does not require a nonce in refreshed ID tokens (Hydra copies the original).
// If it has no ID token the old raw ID token is kept for id_token_hint.
func (rp *RP) Refresh(ctx context.Context, old Tokens, prev Identity) (Tokens, error) {
	if old.RefreshToken == "" {
		return Tokens{}, ErrNoRefreshToken
	}
	key := tokenHash(old.RefreshToken)
	// A late request with the just-rotated token gets the new set instead of replaying
	// the old token, which Hydra treats as reuse and answers by revoking the whole chain
	// (security.md §7.4; lumin-api.md §7).
	if t, ok := rp.rotatedFor(key); ok {
		return t, nil
	}
	// One refresh per refresh token at a time (security.md §7.3). The shared call runs
	// detached from the first caller's request — singleflight would otherwise run it on
	// that caller's context (security.md §14) — with its own 10 s timeout, so a closed
	// tab cannot abort a rotation midway.
	ch := rp.refreshSF.DoChan(key, func() (any, error) {
		if t, ok := rp.rotatedFor(key); ok {
			return t, nil
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		t, err := rp.refresh(dctx, old, prev)
		if err != nil {
			return nil, err
		}
		rp.remember(key, t)
		return t, nil
	})
	var res Tokens
	select {
	case <-ctx.Done():
		// The rotation goes on without us and lands in the map for the next request.
		return Tokens{}, upstreamErr("refresh abandoned by caller", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			if errors.Is(r.Err, ErrConcurrentRefresh) {
				// Another process/tab won the race; if we know its result, use it
				// (security.md §7.6). Never resend the same token.
				if t, ok := rp.rotatedFor(key); ok {
					return t, nil
				}
			}
			return Tokens{}, r.Err
		}
		res = r.Val.(Tokens)
	}
	res.Scopes = slices.Clone(res.Scopes) // callers share the flight's result
	return res, nil
}

// refresh makes the one refresh-token request. It is never retried with the same token:
// the token may already have rotated (security.md §7.6, §7.7, §13.4).
func (rp *RP) refresh(ctx context.Context, old Tokens, prev Identity) (Tokens, error) {
	st, err := rp.state(ctx)
	if err != nil {
		return Tokens{}, err
	}
	tok, err := rp.tokenRequest(ctx, func(ctx context.Context) (*oauth2.Token, error) {
		// An empty access token makes the source refresh at once; x/oauth2 sends
		// grant_type=refresh_token and refresh_token, our AuthStyleInParams adds
		// client_id and client_secret (lumin-api.md §5).
		return st.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: old.RefreshToken}).Token()
	}, true)
	if err != nil {
		if errors.Is(err, ErrInvalidGrant) {
			rp.log.Warn("lumin refresh rejected", "reason", "refresh_rejected")
		}
		return Tokens{}, err
	}
	t, err := rp.tokensFrom(tok, &old)
	if err != nil {
		return Tokens{}, err
	}
	if t.IDToken == "" {
		t.IDToken = old.IDToken
		return t, nil
	}
	if _, err := rp.verifyIDToken(ctx, st, t.IDToken, t.AccessToken, "", &prev); err != nil {
		// OIDC Core §12.2: a mismatch ends the session. The old refresh token is spent,
		// so revoke the new grant rather than leave it alive (best effort).
		_ = rp.Revoke(ctx, t)
		return Tokens{}, err
	}
	return t, nil
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Latest returns the newest token set this process knows for t: when t's refresh token
// was rotated within the last 60 s (by another tab's request, or by a request whose
// cookie write was lost), the rotated set, following later rotations of that set too.
// A request that did not refresh uses it instead of re-saving or using the spent tokens
// it arrived with (security.md §7.4 "never write stale tokens"; lumin-api.md §7: Hydra
// treats a replayed refresh token as reuse and revokes the whole chain).
func (rp *RP) Latest(t Tokens) (Tokens, bool) {
	if t.RefreshToken == "" {
		return Tokens{}, false
	}
	cur, found := t, false
	// Each hop is one rotation inside the 60 s window; the bound only guards against a
	// cycle, which rotation cannot produce.
	for range 16 {
		nt, ok := rp.rotatedFor(tokenHash(cur.RefreshToken))
		if !ok {
			break
		}
		if nt.RefreshToken == "" {
			nt.RefreshToken = cur.RefreshToken // never lose the grant (security.md §7.2)
		}
		same := nt.RefreshToken == cur.RefreshToken
		cur, found = nt, true
		if same {
			break // a response without a new refresh token kept the old one (§7.2)
		}
	}
	return cur, found
}

func (rp *RP) rotatedFor(key string) (Tokens, bool) {
	rp.rotMu.Lock()
	defer rp.rotMu.Unlock()
	e, ok := rp.rotated[key]
	if !ok || !rp.now().Before(e.expires) {
		return Tokens{}, false
	}
	t := e.tokens
	t.Scopes = slices.Clone(t.Scopes)
	return t, true
}

func (rp *RP) remember(key string, t Tokens) {
	rp.rotMu.Lock()
	defer rp.rotMu.Unlock()
	now := rp.now()
	for k, e := range rp.rotated {
		if !now.Before(e.expires) {
			delete(rp.rotated, k)
		}
	}
	rp.rotated[key] = rotatedEntry{tokens: t, expires: now.Add(rotatedTTL)}
}
