package lumin

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// maxIATAge is how old an ID token's iat may be (security.md §4.4).
const maxIATAge = 10 * time.Minute

// idClaims are the claims go-oidc's IDToken does not expose as fields.
type idClaims struct {
	AuthorizedParty string  `json:"azp"`
	Email           lstring `json:"email"`
	Name            lstring `json:"name"`
	AuthTime        ltime   `json:"auth_time"`
}

// verifyIDToken runs every check of security.md §4 (OIDC Core §3.1.3.7) in one place.
// nonce == "" skips the nonce check (refresh, see Refresh); prev != nil adds the
// refresh rules of security.md §4.9 (OIDC Core §12.2).
func (rp *RP) verifyIDToken(ctx context.Context, st *rpState, raw, accessToken, nonce string, prev *Identity) (Identity, error) {
	fail := func(reason string, err error) (Identity, error) {
		// Debug, not WARN: every caller reports the reject as the one WARN line with the
		// request id (security.md §2 "Reject"), naming this check as its hint.
		rp.log.Debug("lumin id token rejected", "reason", "id_token_invalid", "check", reason)
		return Identity{}, &IDTokenError{Reason: reason, Err: err}
	}

	// §4.1–§4.3 via go-oidc: signature with keys from jwks_uri only (our keySet), alg
	// allowlist RS256, iss exact, aud contains client_id. Expiry is skipped there and
	// checked below with leeway (go-oidc has none on exp, security.md §14).
	tok, err := st.verifier.Verify(ctx, raw)
	if err != nil {
		return fail(classifyVerifyFailure(raw, st.md.Issuer, rp.cfg.ClientID), err)
	}
	// §4.2: iss exactly the issuer (again, so this function states every rule).
	if tok.Issuer != st.md.Issuer {
		return fail("iss", nil)
	}
	// §4.3: aud holds our client id and no other value (our rule; Hydra sends a
	// one-element array, lumin-api.md §11).
	if len(tok.Audience) != 1 || tok.Audience[0] != rp.cfg.ClientID {
		return fail("aud", nil)
	}
	var c idClaims
	if err := tok.Claims(&c); err != nil {
		return fail("signature", err) // verified payload that is not a claims object
	}
	// §4.3: azp, if present, equals our client id (OIDC Core §3.1.3.7 steps 4–5).
	if c.AuthorizedParty != "" && c.AuthorizedParty != rp.cfg.ClientID {
		return fail("azp", nil)
	}

	now := rp.now()
	// §4.4: exp later than now − leeway (OIDC Core §3.1.3.7 step 9). A missing exp is the
	// zero time and fails here.
	if !tok.Expiry.After(now.Add(-rp.leeway)) {
		return fail("exp", nil)
	}
	if !tok.Expiry.After(now) {
		rp.log.Info("lumin id token accepted within clock-skew leeway", "check", "exp", "skew", now.Sub(tok.Expiry).String())
	}
	// §4.4: iat present, not after now + leeway, not before now − 10 min (step 10).
	if tok.IssuedAt.IsZero() || tok.IssuedAt.After(now.Add(rp.leeway)) || tok.IssuedAt.Before(now.Add(-maxIATAge)) {
		return fail("iat", nil)
	}
	if tok.IssuedAt.After(now) {
		rp.log.Info("lumin id token accepted within clock-skew leeway", "check", "iat", "skew", tok.IssuedAt.Sub(now).String())
	}
	// §4.5: sub present, ≤ 255 ASCII characters (OIDC Core §2).
	if !validSubject(tok.Subject) {
		return fail("sub", nil)
	}
	// §4.6: nonce present and equal to the transaction's, in constant time (step 11;
	// RFC 9700 §4.5.3.2).
	if nonce != "" {
		if tok.Nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
			return fail("nonce_mismatch", nil)
		}
	}
	// §4.7: at_hash, if present, matches the access token (OIDC Core §3.1.3.8).
	if tok.AccessTokenHash != "" {
		if err := tok.VerifyAccessToken(accessToken); err != nil {
			return fail("at_hash", err)
		}
	}
	// §4.9: a refreshed ID token must name the same issuer and subject as the original
	// (OIDC Core §12.2); aud equality follows from the exclusive aud check above.
	if prev != nil {
		if prev.Issuer != tok.Issuer {
			return fail("iss", nil)
		}
		if prev.Subject != tok.Subject {
			return fail("sub", nil)
		}
	}
	return Identity{
		Issuer:   tok.Issuer,
		Subject:  tok.Subject,
		Email:    string(c.Email),
		Name:     string(c.Name),
		AuthTime: time.Time(c.AuthTime),
	}, nil
}

// validSubject: present, at most 255 printable ASCII characters (security.md §4.5).
func validSubject(sub string) bool {
	if sub == "" || len(sub) > 255 {
		return false
	}
	for i := 0; i < len(sub); i++ {
		if sub[i] < 0x20 || sub[i] > 0x7e {
			return false
		}
	}
	return true
}

// classifyVerifyFailure names the check go-oidc's Verify failed, for the log-safe
// IDTokenError.Reason. It peeks at the unverified payload only to choose the reason
// code; the token is rejected whatever it says.
func classifyVerifyFailure(raw, issuer, clientID string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "signature"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "signature"
	}
	var c struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return "signature"
	}
	if c.Iss != issuer {
		return "iss"
	}
	var one string
	var many []string
	if json.Unmarshal(c.Aud, &one) == nil {
		many = []string{one}
	} else if json.Unmarshal(c.Aud, &many) != nil {
		return "aud"
	}
	if !slices.Contains(many, clientID) {
		return "aud"
	}
	return "signature"
}
