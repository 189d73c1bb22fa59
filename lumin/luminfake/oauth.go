package luminfake

// The authorization server half of the sandbox: discovery, JWKS, token, revocation,
// userinfo and logout, behaving like Ory Hydra (lumin-api.md §3–§12). The browser part of
// /oauth2/auth (sign-in and consent) is in consent.go.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	authMethodPost  = "client_secret_post"
	authMethodBasic = "client_secret_basic"
	authMethodAny   = "any"

	// maxTokenBody bounds token/revoke form bodies: a legitimate one is well under 4 KiB.
	maxTokenBody = 64 << 10
)

// supportedScopes is Lumin's scope table (lumin-api.md §13), published in discovery.
var supportedScopes = []string{
	"openid", "offline_access",
	"profile.read", "profile.settings",
	"sign:requests.read", "sign:requests",
	"templates",
	"pdf:files.read", "pdf:files",
	"workspaces.read", "workspaces",
}

// registerOAuth adds the authorization-server routes. Token and revocation take every
// method so a GET gets Hydra's invalid_request JSON rather than the mux's plain 405.
func (f *Fake) registerOAuth(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/openid-configuration", f.handleDiscovery)
	mux.HandleFunc("GET /.well-known/jwks.json", f.handleJWKS)
	mux.HandleFunc("GET /oauth2/auth", f.handleAuthorize)
	mux.HandleFunc("POST /oauth2/auth", f.handleConsentSubmit)
	mux.HandleFunc("/oauth2/token", f.handleToken)
	mux.HandleFunc("/oauth2/revoke", f.handleRevoke)
	mux.HandleFunc("GET /userinfo", f.handleUserinfo)
	mux.HandleFunc("POST /userinfo", f.handleUserinfo)
	mux.HandleFunc("GET /oauth2/sessions/logout", f.handleLogout)
	mux.HandleFunc("POST /oauth2/sessions/logout", f.handleLogout)
	mux.HandleFunc("GET "+consentCSSPath, handleConsentCSS)
	// Browsers ask every origin for /favicon.ico; a 404 is an error in the console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
}

// endpoint joins the issuer and a path; an issuer ending in "/" (older Hydra) does not
// produce "//".
func (f *Fake) endpoint(path string) string {
	return strings.TrimSuffix(f.opts.Issuer, "/") + path
}

// --- errors -----------------------------------------------------------------------

// oauthError is Hydra's (fosite's legacy) error format. error_debug is never sent:
// it can leak internals (lumin-api.md §12).
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
	Hint        string `json:"error_hint,omitempty"`
	Status      int    `json:"status_code"`
}

// Descriptions are fosite's, word for word, so the app sees what production sends.
var oauthDescriptions = map[string]string{
	"invalid_request":           "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.",
	"invalid_client":            "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method).",
	"invalid_grant":             "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
	"unauthorized_client":       "The client is not authorized to request a token using this method.",
	"unsupported_grant_type":    "The authorization grant type is not supported by the authorization server.",
	"unsupported_response_type": "The authorization server does not support obtaining a token using this method.",
	"unsupported_response_mode": "The authorization server does not support obtaining a response using this response mode.",
	"unsupported_token_type":    "The authorization server does not support the revocation of the presented token type. That is, the client tried to revoke an access token on a server not supporting this feature.",
	"invalid_scope":             "The requested scope is invalid, unknown, or malformed.",
	"invalid_state":             "The state is missing or does not have enough characters and is therefore considered too weak.",
	"insufficient_entropy":      "The request used a security parameter (e.g., anti-replay, anti-csrf) with insufficient entropy.",
	"access_denied":             "The resource owner denied the request",
	"login_required":            "The Authorization Server requires End-User authentication.",
	"consent_required":          "The Authorization Server requires End-User consent.",
	"server_error":              "The authorization server encountered an unexpected condition that prevented it from fulfilling the request.",
	"temporarily_unavailable":   "The authorization server is currently unable to handle the request due to a temporary overloading or maintenance of the server.",
	"request_unauthorized":      "The request could not be authorized.",
	"insufficient_scope":        "The request requires higher privileges than provided by the access token.",
}

var oauthStatuses = map[string]int{
	"invalid_client":          http.StatusUnauthorized,
	"server_error":            http.StatusInternalServerError,
	"temporarily_unavailable": http.StatusServiceUnavailable,
	"request_unauthorized":    http.StatusUnauthorized,
	"insufficient_scope":      http.StatusForbidden,
	"access_denied":           http.StatusForbidden,
}

func oerr(code, hint string, args ...any) *oauthError {
	st, ok := oauthStatuses[code]
	if !ok {
		st = http.StatusBadRequest
	}
	if len(args) > 0 {
		hint = fmt.Sprintf(hint, args...)
	}
	return &oauthError{Code: code, Description: oauthDescriptions[code], Hint: hint, Status: st}
}

// writeOAuthJSON writes v as JSON. Token-endpoint answers carry no-store/no-cache
// (RFC 6749 §5.1), errors included, as Hydra does.
func writeOAuthJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	writeOAuthJSON(w, e.Status, e)
}

// oauthWriter remembers the status for the request log.
type oauthWriter struct {
	http.ResponseWriter
	status int
}

func (w *oauthWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *oauthWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logged wraps a handler so the request lands in the request log with its status.
func (f *Fake) logged(h func(w http.ResponseWriter, r *http.Request, lr *LoggedRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ow := &oauthWriter{ResponseWriter: w}
		lr := LoggedRequest{Method: r.Method, Path: r.URL.Path}
		defer func() {
			lr.Status = ow.status
			f.record(lr)
		}()
		h(ow, r, &lr)
	}
}

// sleepFault waits for Faults.Latency when AuthLatency is set, or until the client gives up.
func (f *Fake) sleepFault(r *http.Request) Faults {
	f.mu.Lock()
	fl := f.faults
	f.mu.Unlock()
	if fl.AuthLatency && fl.Latency > 0 {
		t := time.NewTimer(fl.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	return fl
}

// --- discovery and keys --------------------------------------------------------------

// handleDiscovery serves GET /.well-known/openid-configuration (lumin-api.md §3). The
// issuer is always right, even under Faults.WrongIssuer: that fault is in the ID token,
// so what it exercises is the client's iss check.
func (f *Fake) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	doc := map[string]any{
		"issuer":                                f.opts.Issuer,
		"authorization_endpoint":                f.endpoint("/oauth2/auth"),
		"token_endpoint":                        f.endpoint("/oauth2/token"),
		"jwks_uri":                              f.endpoint("/.well-known/jwks.json"),
		"userinfo_endpoint":                     f.endpoint("/userinfo"),
		"revocation_endpoint":                   f.endpoint("/oauth2/revoke"),
		"end_session_endpoint":                  f.endpoint("/oauth2/sessions/logout"),
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{authMethodPost, authMethodBasic},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"subject_types_supported":               []string{"public"},
		"scopes_supported":                      supportedScopes,
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "rat", "jti",
			"nonce", "at_hash", "sid", "email", "name"},
		"request_parameter_supported":     false,
		"request_uri_parameter_supported": false,
		"claims_parameter_supported":      false,
		"frontchannel_logout_supported":   false,
		"backchannel_logout_supported":    false,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}

// handleJWKS serves the public signing keys, newest first; rotated-out keys stay
// published so tokens they signed still verify.
func (f *Fake) handleJWKS(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range f.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

func newSigningKey() *signingKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return &signingKey{kid: randomUUID(), key: k}
}

// randomUUID returns a random (version 4) UUID; Hydra's kids and jtis look like this.
func randomUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// --- client authentication -----------------------------------------------------------

// authenticateClient implements RFC 6749 §2.3.1 as Hydra does: credentials in the
// Authorization header (Basic, each part form-url-decoded) or in the form body, and the
// method must be the one pinned on the client. It returns the method used for the log.
func (f *Fake) authenticateClient(r *http.Request, form url.Values) (*Client, string, *oauthError) {
	postID, postSecret := form.Get("client_id"), form.Get("client_secret")
	var id, secret, method string
	if h := r.Header.Get("Authorization"); h != "" {
		u, p, ok := r.BasicAuth()
		if !ok {
			return nil, "none", oerr("invalid_request", "The Authorization header is not a valid HTTP Basic header.")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(u)
		secret, err2 = url.QueryUnescape(p)
		if err1 != nil || err2 != nil {
			return nil, authMethodBasic, oerr("invalid_request", "The client credentials in the HTTP authorization header could not be decoded from 'application/x-www-form-urlencoded'.")
		}
		method = authMethodBasic
		// RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
		if postSecret != "" {
			return nil, method, oerr("invalid_request", "Client authentication must use exactly one method, but both HTTP Basic and client_secret in the body were sent.")
		}
		if postID != "" && postID != id {
			return nil, method, oerr("invalid_request", "The client_id in the body does not match the one in the HTTP authorization header.")
		}
	} else {
		id, secret = postID, postSecret
		method = authMethodPost
		if secret == "" {
			method = "none"
		}
		if id == "" {
			return nil, method, oerr("invalid_request", "Client credentials missing or malformed in both HTTP Authorization header and HTTP POST body.")
		}
	}
	f.mu.Lock()
	c, ok := f.clients[id]
	f.mu.Unlock()
	if !ok {
		return nil, method, oerr("invalid_client", "The requested OAuth 2.0 Client does not exist.")
	}
	if c.AuthMethod != method && (c.AuthMethod != authMethodAny || method == "none") {
		want := c.AuthMethod
		if want == authMethodAny {
			want = authMethodPost
		}
		return nil, method, oerr("invalid_client",
			"The OAuth 2.0 Client supports client authentication method '%s', but method '%s' was requested. You must configure the OAuth 2.0 client's 'token_endpoint_auth_method' value to accept '%s'.",
			want, method, method)
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return nil, method, oerr("invalid_client", "The provided client secret is invalid.")
	}
	cp := *c
	return &cp, method, nil
}

// parseBackchannelForm reads a token/revocation request: POST, form-encoded, bounded,
// every parameter at most once (RFC 6749 §3.2, §3.1).
func parseBackchannelForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.Method != http.MethodPost {
		return nil, oerr("invalid_request", "HTTP method is '%s', expected 'POST'.", r.Method)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oerr("invalid_request", "The request body must be 'application/x-www-form-urlencoded'.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	if err := r.ParseForm(); err != nil {
		return nil, oerr("invalid_request", "Unable to parse HTTP body, make sure to send a properly formatted form request body.")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, oerr("invalid_request", "The parameter '%s' was included more than once.", k)
		}
	}
	return r.PostForm, nil
}

// basicChallenge adds the WWW-Authenticate header RFC 6749 §5.2 requires on a 401 when
// the client tried HTTP Basic.
func basicChallenge(w http.ResponseWriter, method string, e *oauthError) {
	if e.Status == http.StatusUnauthorized && method == authMethodBasic {
		w.Header().Set("WWW-Authenticate", `Basic realm="Lumin sandbox"`)
	}
}

// --- token endpoint ------------------------------------------------------------------

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token,omitempty"`
}

// handleToken serves POST /oauth2/token (lumin-api.md §5, §7).
func (f *Fake) handleToken(w http.ResponseWriter, r *http.Request) {
	f.logged(f.token)(w, r)
}

func (f *Fake) token(w http.ResponseWriter, r *http.Request, lr *LoggedRequest) {
	lr.ClientAuth = "none"
	form, e := parseBackchannelForm(w, r)
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	lr.GrantType = form.Get("grant_type")
	lr.CodeVerifier = form.Get("code_verifier")
	client, method, e := f.authenticateClient(r, form)
	lr.ClientAuth = method
	fl := f.sleepFault(r)
	if se := statusFault(fl.TokenStatus); se != nil {
		writeOAuthError(w, se)
		return
	}
	if e != nil {
		basicChallenge(w, method, e)
		writeOAuthError(w, e)
		return
	}
	var resp *tokenResponse
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		resp, e = f.exchangeCode(client, form, fl)
	case "refresh_token":
		resp, e = f.refreshGrant(client, form, fl)
	case "":
		e = oerr("invalid_request", "The 'grant_type' parameter is missing.")
	default:
		e = oerr("unsupported_grant_type", "The grant type '%s' is not supported; use 'authorization_code' or 'refresh_token'.", truncate(gt, 64))
	}
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	writeOAuthJSON(w, http.StatusOK, resp)
}

// statusFault is the Hydra error JSON a TokenStatus/RevokeStatus fault answers with
// (nil for 0): 503 → temporarily_unavailable, any other status → server_error.
func statusFault(status int) *oauthError {
	switch status {
	case 0:
		return nil
	case http.StatusServiceUnavailable:
		return oerr("temporarily_unavailable", "")
	}
	se := oerr("server_error", "")
	se.Status = status
	return se
}

// exchangeCode is the authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6).
func (f *Fake) exchangeCode(c *Client, form url.Values, fl Faults) (*tokenResponse, *oauthError) {
	code := form.Get("code")
	if code == "" {
		return nil, oerr("invalid_request", "The 'code' parameter is missing.")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ac, ok := f.codes[hashToken(code)]
	if !ok {
		return nil, oerr("invalid_grant", "The authorization code is unknown.")
	}
	if ac.used {
		// RFC 6749 §4.1.2: a code presented twice may be stolen, so everything issued
		// from it is revoked. The grant is this code's own chain, rotations included.
		ac.grant.revoked = true
		for _, h := range ac.issuedAccess {
			if t := f.access[h]; t != nil {
				t.revoked = true
			}
		}
		for _, h := range ac.issuedRefresh {
			if t := f.refresh[h]; t != nil {
				t.revoked = true
			}
		}
		return nil, oerr("invalid_grant", "The authorization code has already been used.")
	}
	if !f.now().Before(ac.expires) {
		return nil, oerr("invalid_grant", "The authorization code has expired.")
	}
	if ac.grant.clientID != c.ID {
		return nil, oerr("invalid_grant", "The OAuth 2.0 Client ID from this request does not match the one from the authorize request.")
	}
	if form.Get("redirect_uri") != ac.redirectURI {
		return nil, oerr("invalid_grant", "The 'redirect_uri' from this request does not match the one from the authorize request.")
	}
	if e := checkPKCE(ac.challenge, form.Get("code_verifier")); e != nil {
		return nil, e
	}
	if ac.grant.revoked {
		return nil, oerr("invalid_grant", "The authorization grant has been revoked.")
	}
	ac.used = true
	fl.RefreshSubject = "" // that fault bends refreshed ID tokens only
	resp, atHash, rtHash := f.issueLocked(ac.grant, fl)
	ac.issuedAccess = append(ac.issuedAccess, atHash)
	if rtHash != "" {
		ac.issuedRefresh = append(ac.issuedRefresh, rtHash)
	}
	return resp, nil
}

// checkPKCE verifies RFC 7636 §4.6 with fosite's rules: a verifier is required iff the
// authorization request carried a challenge.
func checkPKCE(challenge, verifier string) *oauthError {
	if challenge == "" {
		if verifier != "" {
			return oerr("invalid_grant", "The PKCE code verifier was provided but the code challenge was absent from the authorization request.")
		}
		return nil
	}
	switch {
	case len(verifier) < 43:
		return oerr("invalid_grant", "The PKCE code verifier must be at least 43 characters.")
	case len(verifier) > 128:
		return oerr("invalid_grant", "The PKCE code verifier can not be longer than 128 characters.")
	case strings.IndexFunc(verifier, func(r rune) bool { return !isUnreserved(r) }) >= 0:
		return oerr("invalid_grant", "The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'.")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) != 1 {
		return oerr("invalid_grant", "The PKCE code challenge did not match the code verifier.")
	}
	return nil
}

// isUnreserved is RFC 3986's unreserved set, the PKCE verifier alphabet (RFC 7636 §4.1).
func isUnreserved(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '-' || r == '.' || r == '_' || r == '~'
}

// refreshGrant is the refresh_token grant with Hydra's single-use rotation and reuse
// detection (lumin-api.md §7): no grace period, and requests are serialized by f.mu, so
// a second concurrent refresh with the same token is reuse (the strictest reading).
func (f *Fake) refreshGrant(c *Client, form url.Values, fl Faults) (*tokenResponse, *oauthError) {
	tok := form.Get("refresh_token")
	if tok == "" {
		return nil, oerr("invalid_request", "The 'refresh_token' parameter is missing.")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rt, ok := f.refresh[hashToken(tok)]
	if !ok {
		return nil, oerr("invalid_grant", "The refresh token is unknown.")
	}
	if rt.used {
		// Reuse of a rotated token means one of the two holders is an attacker: revoke
		// the whole chain, as Hydra does.
		rt.grant.revoked = true
		return nil, oerr("invalid_grant", "The refresh token has already been used; all tokens of this grant have been revoked.")
	}
	if rt.revoked || rt.grant.revoked {
		return nil, oerr("invalid_grant", "The refresh token has been revoked.")
	}
	if !f.now().Before(rt.expires) {
		return nil, oerr("invalid_grant", "The refresh token expired.")
	}
	if rt.grant.clientID != c.ID {
		return nil, oerr("invalid_grant", "The OAuth 2.0 Client ID from this request does not match the ID during the initial token issuance.")
	}
	// RFC 6749 §6: a scope parameter may not exceed the original grant. The sandbox
	// does not narrow: new tokens carry the grant's scopes, as older Hydra did.
	for _, s := range strings.Fields(form.Get("scope")) {
		if !rt.grant.hasScope(s) {
			return nil, oerr("invalid_scope", "The requested scope '%s' was not granted originally.", truncate(s, 64))
		}
	}
	rt.used = true
	if at := f.access[rt.access]; at != nil {
		at.revoked = true // Hydra revokes the access token issued with the rotated refresh token
	}
	resp, _, _ := f.issueLocked(rt.grant, fl)
	return resp, nil
}

// issueLocked mints an access token, a refresh token when offline_access was granted
// (lumin-api.md §5) and an ID token when openid was. f.mu must be held.
func (f *Fake) issueLocked(g *grant, fl Faults) (resp *tokenResponse, atHash, rtHash string) {
	now := f.now()
	ttl := f.opts.AccessTokenTTL
	if fl.ShortAccessTokenTTL > 0 {
		ttl = fl.ShortAccessTokenTTL
	}
	at := randomToken("ory_at_") + randomPad(fl.AccessTokenPad)
	atHash = hashToken(at)
	f.access[atHash] = &accessToken{grant: g, expires: now.Add(ttl)}
	resp = &tokenResponse{
		AccessToken: at,
		TokenType:   "bearer",
		// Rounded up so a sub-second test TTL is not sent as 0, which clients read as
		// "no expiry".
		ExpiresIn: int64((ttl + time.Second - 1) / time.Second),
		Scope:     strings.Join(g.scopes, " "),
	}
	if g.hasScope("offline_access") {
		rt := randomToken("ory_rt_")
		rtHash = hashToken(rt)
		f.refresh[rtHash] = &refreshToken{grant: g, expires: now.Add(f.opts.RefreshTokenTTL), access: atHash}
		resp.RefreshToken = rt
	}
	if g.hasScope("openid") {
		resp.IDToken = f.signIDTokenLocked(g, at, now, fl)
	}
	return resp, atHash, rtHash
}

// randomPad returns n random base64url characters (Faults.AccessTokenPad); "" for n ≤ 0.
func randomPad(n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, n*3/4+3)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// idTokenClaims is Hydra's ID token (lumin-api.md §11). aud is always an array.
type idTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time"`
	ReqAt    int64    `json:"rat"`
	ID       string   `json:"jti"`
	Nonce    string   `json:"nonce,omitempty"`
	AtHash   string   `json:"at_hash,omitempty"`
	SID      string   `json:"sid"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
}

// signIDTokenLocked signs an ID token for g. The nonce of the authorization request is
// repeated on refreshed ID tokens too (OIDC Core §12.2 allows it; Hydra keeps it).
// Faults bend exactly one check each. f.mu must be held.
func (f *Fake) signIDTokenLocked(g *grant, accessTok string, now time.Time, fl Faults) string {
	sum := sha256.Sum256([]byte(accessTok))
	skew := fl.ClockSkew
	c := idTokenClaims{
		Issuer:   f.opts.Issuer,
		Subject:  g.user.Subject,
		Audience: []string{g.clientID},
		Expiry:   now.Add(skew + f.opts.IDTokenTTL).Unix(),
		IssuedAt: now.Add(skew).Unix(),
		AuthTime: g.authTime.Add(skew).Unix(),
		ReqAt:    g.requestedAt.Add(skew).Unix(),
		ID:       randomUUID(),
		Nonce:    g.nonce,
		// OIDC Core §3.3.2.11: left half of the SHA-256 of the access token, base64url.
		AtHash: base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]),
		SID:    g.sid,
		Email:  g.user.Email,
		Name:   g.user.Name,
	}
	if fl.WrongIssuer {
		c.Issuer = "https://wrong-issuer.sandbox.lumin.test"
	}
	if fl.WrongAudience {
		c.Audience = []string{"some-other-client"}
	}
	if fl.WrongNonce {
		c.Nonce = randomHex(12)
	}
	if fl.RefreshSubject != "" { // cleared by exchangeCode: only refreshes carry it
		c.Subject = fl.RefreshSubject
	}
	key := f.keys[0]
	if fl.BadSignature {
		if f.rogueKey == nil {
			f.rogueKey = newSigningKey() // only when the fault is used: generation is slow
		}
		// Same kid as the published key, so the client must actually check the signature.
		key = &signingKey{kid: key.kid, key: f.rogueKey.key}
	}
	tok, err := signJWT(key, c)
	if err != nil {
		panic(err) // marshalling a fixed struct with an RSA key cannot fail
	}
	return tok
}

func signJWT(k *signingKey, claims any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// verifyIDTokenHint checks that tok is one of our ID tokens (signature by a published key
// and our issuer). Expiry is deliberately not checked: OIDC RP-Initiated Logout §2 allows
// an expired ID token as a hint.
func (f *Fake) verifyIDTokenHint(tok string) (*idTokenClaims, error) {
	if len(tok) > 16<<10 {
		return nil, errors.New("id_token_hint too long")
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	f.mu.Lock()
	var pub *rsa.PublicKey
	for _, k := range f.keys {
		if k.kid == kid {
			pub = &k.key.PublicKey
		}
	}
	f.mu.Unlock()
	if pub == nil {
		return nil, errors.New("unknown kid")
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, err
	}
	var c idTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	if c.Issuer != f.opts.Issuer || len(c.Audience) == 0 {
		return nil, errors.New("not issued by this sandbox")
	}
	return &c, nil
}

// --- revocation ----------------------------------------------------------------------

// handleRevoke serves POST /oauth2/revoke (RFC 7009, lumin-api.md §8).
//
// As in Hydra (fosite's TokenRevocationHandler), revoking either token of a grant
// revokes the whole chain: its access and refresh tokens. A token issued to another
// client is refused with unauthorized_client, as RFC 7009 §2.1 prescribes ("the request
// is refused and the client is informed of the error") and fosite does; it stays valid.
func (f *Fake) handleRevoke(w http.ResponseWriter, r *http.Request) {
	f.logged(f.revoke)(w, r)
}

func (f *Fake) revoke(w http.ResponseWriter, r *http.Request, lr *LoggedRequest) {
	lr.ClientAuth = "none"
	form, e := parseBackchannelForm(w, r)
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	lr.TokenTypeHint = form.Get("token_type_hint")
	client, method, e := f.authenticateClient(r, form)
	lr.ClientAuth = method
	fl := f.sleepFault(r)
	if se := statusFault(fl.RevokeStatus); se != nil {
		writeOAuthError(w, se) // nothing is revoked: the tokens stay valid
		return
	}
	if e != nil {
		basicChallenge(w, method, e)
		writeOAuthError(w, e)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeOAuthError(w, oerr("invalid_request", "The 'token' parameter is missing."))
		return
	}
	switch hint := form.Get("token_type_hint"); hint {
	case "", "access_token", "refresh_token":
	default:
		writeOAuthError(w, oerr("unsupported_token_type", "The token_type_hint '%s' is not supported.", truncate(hint, 64)))
		return
	}
	h := hashToken(tok)
	f.mu.Lock()
	var g *grant
	if t := f.access[h]; t != nil {
		g = t.grant
	} else if t := f.refresh[h]; t != nil {
		g = t.grant
	}
	if g != nil && g.clientID != client.ID {
		f.mu.Unlock()
		writeOAuthError(w, oerr("unauthorized_client", "The token was not issued to this OAuth 2.0 Client."))
		return
	}
	if g != nil {
		g.revoked = true
		for _, t := range f.access {
			if t.grant == g {
				t.revoked = true
			}
		}
		for _, t := range f.refresh {
			if t.grant == g {
				t.revoked = true
			}
		}
	}
	f.mu.Unlock()
	// RFC 7009 §2.2: 200 whether or not the token was known.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// --- userinfo ------------------------------------------------------------------------

// handleUserinfo serves GET/POST /userinfo (OIDC Core §5.3, lumin-api.md §10): sub plus
// the identity claims the openid scope grants. Errors follow RFC 6750 §3.
func (f *Fake) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	f.logged(func(w http.ResponseWriter, r *http.Request, lr *LoggedRequest) {
		lr.Authorization = r.Header.Get("Authorization") != ""
		f.sleepFault(r)
		g, ok := f.bearer(r)
		if !ok {
			e := oerr("request_unauthorized", "The access token is missing, malformed, expired or revoked.")
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="The access token is missing, malformed, expired or revoked."`)
			writeOAuthError(w, e)
			return
		}
		if !g.hasScope("openid") {
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="openid"`)
			writeOAuthError(w, oerr("insufficient_scope", "The access token was not granted the 'openid' scope."))
			return
		}
		writeOAuthJSON(w, http.StatusOK, map[string]string{
			"sub":   g.user.Subject,
			"email": g.user.Email,
			"name":  g.user.Name,
		})
	})(w, r)
}

// --- logout --------------------------------------------------------------------------

// handleLogout serves /oauth2/sessions/logout (OIDC RP-Initiated Logout, lumin-api.md §9)
// with Hydra's rules: post_logout_redirect_uri and state need an id_token_hint, and the
// URI must be registered on the hint's client. It ends the sandbox sign-in only; tokens
// stay valid (revoke them separately). Unlike Hydra, there is no "really sign out?" step.
func (f *Fake) handleLogout(w http.ResponseWriter, r *http.Request) {
	f.logged(f.logout)(w, r)
}

func (f *Fake) logout(w http.ResponseWriter, r *http.Request, lr *LoggedRequest) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > maxQuery {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The logout request could not be parsed."))
		return
	}
	for _, k := range []string{"id_token_hint", "post_logout_redirect_uri", "state"} {
		if len(r.Form[k]) > 1 {
			f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The parameter '%s' was included more than once.", k))
			return
		}
	}
	hint, plr, state := r.Form.Get("id_token_hint"), r.Form.Get("post_logout_redirect_uri"), r.Form.Get("state")
	if hint == "" && plr != "" {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "Logout failed because query parameter post_logout_redirect_uri is set but id_token_hint is missing."))
		return
	}
	if hint == "" && state != "" {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "Logout failed because query parameter state is set but id_token_hint is missing."))
		return
	}
	var claims *idTokenClaims
	if hint != "" {
		c, err := f.verifyIDTokenHint(hint)
		if err != nil {
			f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The id_token_hint is not a valid ID token of this server."))
			return
		}
		claims = c
	}
	if plr != "" {
		f.mu.Lock()
		c := f.clients[claims.Audience[0]]
		f.mu.Unlock()
		if c == nil || !slices.Contains(c.PostLogoutRedirectURIs, plr) {
			f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "Logout failed because query parameter post_logout_redirect_uri is not a whitelisted as a post_logout_redirect_uri for the client."))
			return
		}
	}
	if s, key := f.loginFromCookie(r); s != nil {
		if claims != nil && claims.Subject != s.user.Subject {
			f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The id_token_hint's subject does not match the subject of the signed-in session."))
			return
		}
		f.mu.Lock()
		delete(f.logins, key)
		f.mu.Unlock()
	}
	clearLoginCookie(w)
	if plr != "" {
		u, _ := url.Parse(plr) // registered, hence parseable
		if state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	f.renderMessage(w, http.StatusOK, messagePage{
		Title:   "Signed out",
		Heading: "You are signed out of the Lumin sandbox",
		Body:    "The next app that connects will ask you to choose a test user again. Apps you connected keep their access until you disconnect them.",
		TestID:  "sandbox-signed-out",
	})
}

// truncate bounds attacker-controlled text echoed in hints.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
