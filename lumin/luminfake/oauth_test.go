package luminfake

// Authorization-server tests, driven through real clients: golang.org/x/oauth2 for the
// token endpoint, github.com/coreos/go-oidc/v3 for discovery and ID-token verification,
// and net/http with a cookie jar (plus goquery) for the sign-in and consent page.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const (
	asClientID     = "app-client"
	asClientSecret = "app-secret-0123456789"
	asRedirect     = "https://app.example.test/auth/callback"
	asScopes       = "openid offline_access profile.read sign:requests"
)

// asClock is a settable clock for Options.Now.
type asClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *asClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *asClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// asEnv is a running sandbox plus the clients a relying party would use.
type asEnv struct {
	srv      *Server
	clock    *asClock
	ctx      context.Context // carries httpc for x/oauth2 and go-oidc
	httpc    *http.Client    // back-channel client
	browser  *http.Client    // cookie jar, does not follow redirects
	conf     *oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// newASEnv starts a sandbox with one confidential client (and a second one for
// cross-client tests). mutate may adjust the options before start.
func newASEnv(t *testing.T, mutate ...func(*Options)) *asEnv {
	t.Helper()
	clock := &asClock{t: time.Now()}
	opts := Options{
		Clients: []Client{
			{ID: asClientID, Secret: asClientSecret, Name: "Acme Contracts", RedirectURIs: []string{asRedirect},
				Scopes: strings.Fields(asScopes + " sign:requests.read")},
			{ID: "other-client", Secret: "other-secret", Name: "Other", RedirectURIs: []string{"https://other.example.test/cb"},
				Scopes: strings.Fields(asScopes), PostLogoutRedirectURIs: []string{"https://other.example.test/bye"}},
		},
		Now: clock.Now,
	}
	for _, m := range mutate {
		m(&opts)
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	jar, _ := cookiejar.New(nil)
	e := &asEnv{
		srv:   srv,
		clock: clock,
		httpc: &http.Client{Timeout: 5 * time.Second},
		browser: &http.Client{Timeout: 5 * time.Second, Jar: jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	e.ctx = oidc.ClientContext(context.Background(), e.httpc)
	e.provider, err = oidc.NewProvider(e.ctx, srv.URL)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	e.verifier = e.provider.Verifier(&oidc.Config{ClientID: asClientID, Now: clock.Now})
	ep := e.provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams // Lumin documents client_secret_post (lumin-api.md §5)
	e.conf = &oauth2.Config{ClientID: asClientID, ClientSecret: asClientSecret, Endpoint: ep,
		RedirectURL: asRedirect, Scopes: strings.Fields(asScopes)}
	return e
}

// flow is one authorization request's secrets.
type flow struct {
	state, nonce, verifier string
}

func newFlow() flow {
	return flow{state: randomHex(16), nonce: randomHex(16), verifier: oauth2.GenerateVerifier()}
}

// authURL is the authorization URL for fl with PKCE S256 and a nonce.
func (e *asEnv) authURL(fl flow, extra ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(fl.nonce), oauth2.S256ChallengeOption(fl.verifier)}, extra...)
	return e.conf.AuthCodeURL(fl.state, opts...)
}

// get fetches u in the browser and returns the response and its body.
func (e *asEnv) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := e.browser.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// consentForm loads the consent page at u and returns its form fields.
func (e *asEnv) consentForm(t *testing.T, u string) (*goquery.Document, url.Values) {
	t.Helper()
	resp, body := e.get(t, u)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consent page: got status %d, want 200; body:\n%s", resp.StatusCode, body)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse consent page: %v", err)
	}
	form := doc.Find(`form[data-testid="sandbox-consent"]`)
	if form.Length() != 1 {
		t.Fatalf("consent form: got %d forms, want 1", form.Length())
	}
	v := url.Values{}
	form.Find(`input[type="hidden"]`).Each(func(_ int, s *goquery.Selection) {
		v.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	form.Find(`input[type="radio"][checked]`).Each(func(_ int, s *goquery.Selection) {
		v.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	return doc, v
}

// submit posts the consent form and returns the response (a redirect, normally).
func (e *asEnv) submit(t *testing.T, v url.Values) *http.Response {
	t.Helper()
	resp, err := e.browser.PostForm(e.srv.URL+"/oauth2/auth", v)
	if err != nil {
		t.Fatalf("POST consent: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// authorize runs the browser part for fl as the user with index user (-1: whatever the
// page preselects) and returns the callback query.
func (e *asEnv) authorize(t *testing.T, fl flow, user int, extra ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	_, v := e.consentForm(t, e.authURL(fl, extra...))
	if user >= 0 {
		v.Set("user", itoa(user))
	}
	v.Set("action", "allow")
	return mustCallback(t, e.submit(t, v))
}

func itoa(i int) string { return string(rune('0' + i)) }

// mustCallback checks resp redirects to the registered redirect URI and returns its query.
func mustCallback(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("got status %d, want a redirect", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != asRedirect {
		t.Fatalf("redirect: got %s, want %s", got, asRedirect)
	}
	return loc.Query()
}

// connect runs a whole flow and returns the tokens.
func (e *asEnv) connect(t *testing.T, fl flow) *oauth2.Token {
	t.Helper()
	cb := e.authorize(t, fl, 0)
	if got := cb.Get("state"); got != fl.state {
		t.Fatalf("state: got %q, want %q", got, fl.state)
	}
	tok, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok
}

// userinfoStatus calls /userinfo with the access token and returns the status.
func (e *asEnv) userinfoStatus(t *testing.T, accessToken string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := e.httpc.Do(req)
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// bearerOK reports whether the REST side would accept the access token.
func (e *asEnv) bearerOK(tok string) bool {
	r, _ := http.NewRequest(http.MethodGet, "/v1/user/info", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	_, ok := e.srv.bearer(r)
	return ok
}

// postForm posts a form to path with optional basic credentials and returns status and
// decoded JSON body (nil when empty).
func (e *asEnv) postForm(t *testing.T, path string, v url.Values, basicUser, basicPass string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := e.httpc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("POST %s: body is not JSON: %q", path, b)
		}
	}
	return resp.StatusCode, m, resp.Header
}

// wantOAuthError checks a Hydra error body: exactly error, error_description,
// optional error_hint, status_code.
func wantOAuthError(t *testing.T, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status: got %d, want %d (body %v)", status, wantStatus, body)
	}
	if got := body["error"]; got != wantCode {
		t.Errorf("error: got %v, want %s (body %v)", got, wantCode, body)
	}
	if d, _ := body["error_description"].(string); d == "" {
		t.Errorf("error_description: got empty, want text")
	}
	if got, _ := body["status_code"].(float64); int(got) != wantStatus {
		t.Errorf("status_code: got %v, want %d", body["status_code"], wantStatus)
	}
	for k := range body {
		if !slices.Contains([]string{"error", "error_description", "error_hint", "status_code"}, k) {
			t.Errorf("unexpected key %q in error body", k)
		}
	}
}

func retrieveError(t *testing.T, err error) *oauth2.RetrieveError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want *oauth2.RetrieveError", err)
	}
	return re
}

// jwtPart decodes one part (0 header, 1 claims) of a compact JWT.
func jwtPart(t *testing.T, jwt string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d parts, want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("JWT part %d: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT part %d: %v", i, err)
	}
	return m
}

// --- discovery -------------------------------------------------------------------------

func TestDiscovery(t *testing.T) {
	e := newASEnv(t)
	resp, err := e.httpc.Get(e.srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	u := e.srv.URL
	for _, tc := range []struct {
		field string
		want  any
	}{
		{"issuer", u},
		{"authorization_endpoint", u + "/oauth2/auth"},
		{"token_endpoint", u + "/oauth2/token"},
		{"jwks_uri", u + "/.well-known/jwks.json"},
		{"userinfo_endpoint", u + "/userinfo"},
		{"revocation_endpoint", u + "/oauth2/revoke"},
		{"end_session_endpoint", u + "/oauth2/sessions/logout"},
		{"response_types_supported", []any{"code"}},
		{"code_challenge_methods_supported", []any{"S256"}},
		{"token_endpoint_auth_methods_supported", []any{"client_secret_post", "client_secret_basic"}},
		{"id_token_signing_alg_values_supported", []any{"RS256"}},
		{"subject_types_supported", []any{"public"}},
		{"grant_types_supported", []any{"authorization_code", "refresh_token"}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			got, _ := json.Marshal(doc[tc.field])
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
	scopes, _ := doc["scopes_supported"].([]any)
	for _, s := range strings.Fields(asScopes + " sign:requests.read templates") {
		if !slices.Contains(scopes, any(s)) {
			t.Errorf("scopes_supported: got %v, want it to contain %s", scopes, s)
		}
	}
	claims, _ := doc["claims_supported"].([]any)
	for _, c := range []string{"sub", "email", "name", "nonce", "at_hash", "sid"} {
		if !slices.Contains(claims, any(c)) {
			t.Errorf("claims_supported: got %v, want it to contain %s", claims, c)
		}
	}
	// go-oidc read the same document; its endpoints must agree.
	if got := e.provider.Endpoint().TokenURL; got != u+"/oauth2/token" {
		t.Errorf("provider token URL: got %s, want %s", got, u+"/oauth2/token")
	}
}

func TestJWKS(t *testing.T) {
	e := newASEnv(t)
	resp, err := e.httpc.Get(e.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys: got %d, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	for field, want := range map[string]string{"kty": "RSA", "alg": "RS256", "use": "sig"} {
		if k[field] != want {
			t.Errorf("%s: got %v, want %s", field, k[field], want)
		}
	}
	if kid, _ := k["kid"].(string); kid == "" {
		t.Errorf("kid: got empty, want a key id")
	}
	if _, ok := k["d"]; ok {
		t.Errorf("JWKS publishes the private exponent")
	}
}

// --- the code flow -------------------------------------------------------------------

func TestCodeFlowWithPKCE(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	cb := e.authorize(t, fl, 0)
	if got := cb.Get("scope"); got != asScopes {
		t.Errorf("callback scope: got %q, want %q", got, asScopes)
	}
	tok, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if !strings.HasPrefix(tok.AccessToken, "ory_at_") {
		t.Errorf("access token: got prefix %.7s, want ory_at_", tok.AccessToken)
	}
	if !strings.HasPrefix(tok.RefreshToken, "ory_rt_") {
		t.Errorf("refresh token: got prefix %.7s, want ory_rt_", tok.RefreshToken)
	}
	if tok.TokenType != "bearer" {
		t.Errorf("token_type: got %q, want bearer", tok.TokenType)
	}
	if got := tok.ExpiresIn; got != 3600 {
		t.Errorf("expires_in: got %d, want 3600", got)
	}
	if got, _ := tok.Extra("scope").(string); got != asScopes {
		t.Errorf("scope: got %q, want %q", got, asScopes)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := e.verifier.Verify(e.ctx, raw)
	if err != nil {
		t.Fatalf("Verify ID token: %v", err)
	}
	if idt.Nonce != fl.nonce {
		t.Errorf("nonce: got %q, want %q", idt.Nonce, fl.nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	ada := DefaultUsers()[0]
	if idt.Subject != ada.Subject {
		t.Errorf("sub: got %q, want %q", idt.Subject, ada.Subject)
	}
	claims := jwtPart(t, raw, 1)
	if aud, ok := claims["aud"].([]any); !ok || len(aud) != 1 || aud[0] != asClientID {
		t.Errorf("aud: got %#v, want the JSON array [%q]", claims["aud"], asClientID)
	}
	for field, want := range map[string]any{"email": ada.Email, "name": ada.Name} {
		if claims[field] != want {
			t.Errorf("%s: got %v, want %v", field, claims[field], want)
		}
	}
	for _, field := range []string{"auth_time", "rat", "iat", "exp", "jti", "sid"} {
		if _, ok := claims[field]; !ok {
			t.Errorf("claim %s missing", field)
		}
	}
	if hdr := jwtPart(t, raw, 0); hdr["kid"] == "" || hdr["alg"] != "RS256" {
		t.Errorf("header: got %v, want alg RS256 and a kid", hdr)
	}

	ui, err := e.provider.UserInfo(e.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("UserInfo: %v", err)
	}
	if ui.Subject != ada.Subject || ui.Email != ada.Email {
		t.Errorf("userinfo: got sub %q email %q, want %q %q", ui.Subject, ui.Email, ada.Subject, ada.Email)
	}
	if !e.bearerOK(tok.AccessToken) {
		t.Errorf("REST bearer check: got rejected, want accepted")
	}

	var tokenLog *LoggedRequest
	for _, lr := range e.srv.Requests() {
		if lr.Path == "/oauth2/token" {
			tokenLog = &lr
		}
	}
	if tokenLog == nil {
		t.Fatal("token request not logged")
	}
	if tokenLog.ClientAuth != "client_secret_post" || tokenLog.GrantType != "authorization_code" ||
		tokenLog.CodeVerifier != fl.verifier || tokenLog.Status != http.StatusOK {
		t.Errorf("log: got %+v, want client_secret_post, authorization_code, the verifier, 200", *tokenLog)
	}
}

func TestTokenResponseHeaders(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	cb := e.authorize(t, fl, 0)
	status, body, h := e.postForm(t, "/oauth2/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {asRedirect},
		"client_id": {asClientID}, "client_secret": {asClientSecret}, "code_verifier": {fl.verifier},
	}, "", "")
	if status != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (%v)", status, body)
	}
	for k, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if got := h.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type: got %q, want application/json", got)
	}
}

func TestNoRefreshTokenWithoutOfflineAccess(t *testing.T) {
	e := newASEnv(t)
	e.conf.Scopes = []string{"openid", "profile.read"}
	tok := e.connect(t, newFlow())
	if tok.RefreshToken != "" {
		t.Errorf("refresh_token: got one, want none without offline_access")
	}
	if _, ok := tok.Extra("id_token").(string); !ok {
		t.Errorf("id_token: got none, want one with openid")
	}
}

func TestPKCEFailures(t *testing.T) {
	e := newASEnv(t)
	for _, tc := range []struct {
		name      string
		challenge bool // send a challenge in the authorization request
		verifier  func(fl flow) string
	}{
		{"wrong verifier", true, func(flow) string { return oauth2.GenerateVerifier() }},
		{"missing verifier", true, func(flow) string { return "" }},
		{"short verifier", true, func(fl flow) string { return fl.verifier[:42] }},
		{"verifier without challenge", false, func(fl flow) string { return fl.verifier }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFlow()
			var cb url.Values
			if tc.challenge {
				cb = e.authorize(t, fl, 0)
			} else {
				_, v := e.consentForm(t, e.conf.AuthCodeURL(fl.state, oidc.Nonce(fl.nonce)))
				v.Set("action", "allow")
				cb = mustCallback(t, e.submit(t, v))
			}
			var opts []oauth2.AuthCodeOption
			if v := tc.verifier(fl); v != "" {
				opts = append(opts, oauth2.VerifierOption(v))
			}
			_, err := e.conf.Exchange(e.ctx, cb.Get("code"), opts...)
			if got := retrieveError(t, err).ErrorCode; got != "invalid_grant" {
				t.Errorf("got %s, want invalid_grant", got)
			}
		})
	}
}

func TestAuthorizeErrorPagesDoNotRedirect(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	good, _ := url.Parse(e.authURL(fl))
	for _, tc := range []struct {
		name   string
		mutate func(q url.Values)
		code   string
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, "invalid_client"},
		{"redirect not registered", func(q url.Values) { q.Set("redirect_uri", "https://evil.example.test/cb") }, "invalid_request"},
		{"redirect with trailing slash", func(q url.Values) { q.Set("redirect_uri", asRedirect+"/") }, "invalid_request"},
		{"redirect with extra query", func(q url.Values) { q.Set("redirect_uri", asRedirect+"?x=1") }, "invalid_request"},
		{"redirect missing", func(q url.Values) { q.Del("redirect_uri") }, "invalid_request"},
		{"redirect of another client", func(q url.Values) { q.Set("redirect_uri", "https://other.example.test/cb") }, "invalid_request"},
		{"duplicated redirect_uri", func(q url.Values) { q.Add("redirect_uri", "https://evil.example.test/cb") }, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := good.Query()
			tc.mutate(q)
			u := *good
			u.RawQuery = q.Encode()
			resp, body := e.get(t, u.String())
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status: got %d, want 400", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("Location: got %q, want no redirect", loc)
			}
			doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if got := doc.Find(`[data-testid="sandbox-error-code"]`).Text(); got != tc.code {
				t.Errorf("error code: got %q, want %q", got, tc.code)
			}
		})
	}
}

func TestAuthorizeErrorsRedirect(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	good, _ := url.Parse(e.authURL(fl))
	for _, tc := range []struct {
		name   string
		mutate func(q url.Values)
		code   string
	}{
		{"state shorter than 8", func(q url.Values) { q.Set("state", "abc12") }, "invalid_state"},
		{"state missing", func(q url.Values) { q.Del("state") }, "invalid_state"},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"response_mode fragment", func(q url.Values) { q.Set("response_mode", "fragment") }, "unsupported_response_mode"},
		{"scope not on the client", func(q url.Values) { q.Set("scope", "openid templates") }, "invalid_scope"},
		{"scope missing", func(q url.Values) { q.Del("scope") }, "invalid_scope"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"challenge without method", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"method without challenge", func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{"unknown method", func(q url.Values) { q.Set("code_challenge_method", "S512") }, "invalid_request"},
		{"malformed challenge", func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request"},
		{"short nonce", func(q url.Values) { q.Set("nonce", "n1") }, "insufficient_entropy"},
		{"prompt none", func(q url.Values) { q.Set("prompt", "none") }, "login_required"},
		{"duplicated scope param", func(q url.Values) { q.Add("scope", "openid") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := good.Query()
			tc.mutate(q)
			u := *good
			u.RawQuery = q.Encode()
			resp, _ := e.get(t, u.String())
			if tc.code == "" { // duplicated parameters are refused before anything is trusted
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("status: got %d, want 400", resp.StatusCode)
				}
				return
			}
			cb := mustCallback(t, resp)
			if got := cb.Get("error"); got != tc.code {
				t.Errorf("error: got %q, want %q (hint %q)", got, tc.code, cb.Get("error_hint"))
			}
			if cb.Get("error_description") == "" {
				t.Errorf("error_description: got empty, want text")
			}
			if cb.Get("code") != "" {
				t.Errorf("code: got one with an error")
			}
			if got, want := cb.Get("state"), q.Get("state"); got != want {
				t.Errorf("state: got %q, want %q", got, want)
			}
		})
	}
}

func TestDenyRedirectsAccessDenied(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	_, v := e.consentForm(t, e.authURL(fl))
	v.Set("action", "deny")
	cb := mustCallback(t, e.submit(t, v))
	if got := cb.Get("error"); got != "access_denied" {
		t.Errorf("error: got %q, want access_denied", got)
	}
	if got, want := cb.Get("error_description"), "The resource owner denied the request"; got != want {
		t.Errorf("error_description: got %q, want %q", got, want)
	}
	if got := cb.Get("state"); got != fl.state {
		t.Errorf("state: got %q, want %q", got, fl.state)
	}
	// The page is single use: answering it again must not mint a code.
	v.Set("action", "allow")
	if resp := e.submit(t, v); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second answer: got %d, want 400", resp.StatusCode)
	}
}

func TestConsentPage(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	resp, body := e.get(t, e.authURL(fl))
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Errorf("page contains a script")
	}
	if doc.Find("[style]").Length() != 0 {
		t.Errorf("page has inline style attributes")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP: got %q, want default-src 'none' and frame-ancestors 'none'", csp)
	}
	if got := doc.Find("h1").Text(); !strings.Contains(got, "Acme Contracts") {
		t.Errorf("h1: got %q, want the app name", got)
	}
	if !strings.Contains(doc.Find("header").Text(), "Lumin sandbox") {
		t.Errorf("header: want a Lumin sandbox banner")
	}
	if got := doc.Find(".scopes li").Length(); got != 4 {
		t.Errorf("scopes listed: got %d, want 4", got)
	}
	if !strings.Contains(doc.Find(".scopes").Text(), "signature requests") {
		t.Errorf("scopes: want plain words, got %q", doc.Find(".scopes").Text())
	}
	if doc.Find("fieldset legend").Length() != 1 {
		t.Errorf("want the users in a fieldset with a legend")
	}
	for i, u := range DefaultUsers() {
		in := doc.Find(`input[type="radio"][data-testid="sandbox-user-` + itoa(i) + `"]`)
		if in.Length() != 1 {
			t.Fatalf("user %d radio: got %d, want 1", i, in.Length())
		}
		label := doc.Find(`label[for="` + in.AttrOr("id", "?") + `"]`)
		if !strings.Contains(label.Text(), u.Email) {
			t.Errorf("user %d label: got %q, want it to contain %s", i, label.Text(), u.Email)
		}
		if _, checked := in.Attr("checked"); checked != (i == 0) {
			t.Errorf("user %d checked: got %v, want %v", i, checked, i == 0)
		}
	}
	for _, id := range []string{"consent-allow", "consent-deny"} {
		if doc.Find(`button[type="submit"][data-testid="`+id+`"]`).Length() != 1 {
			t.Errorf("want one %s submit button", id)
		}
	}
	css, err := e.httpc.Get(e.srv.URL + doc.Find(`link[rel="stylesheet"]`).AttrOr("href", ""))
	if err != nil {
		t.Fatal(err)
	}
	css.Body.Close()
	if css.StatusCode != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: got %d %s, want 200 text/css", css.StatusCode, css.Header.Get("Content-Type"))
	}
}

func TestConsentFormTampering(t *testing.T) {
	e := newASEnv(t)
	for _, tc := range []struct {
		name   string
		mutate func(v url.Values)
		want   int
	}{
		{"wrong csrf", func(v url.Values) { v.Set("csrf", "x") }, http.StatusForbidden},
		{"unknown challenge", func(v url.Values) { v.Set("consent_challenge", "x") }, http.StatusBadRequest},
		{"unknown user", func(v url.Values) { v.Set("user", "99") }, http.StatusBadRequest},
		{"user not a number", func(v url.Values) { v.Set("user", "ada") }, http.StatusBadRequest},
		{"no action", func(v url.Values) { v.Del("action") }, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, v := e.consentForm(t, e.authURL(newFlow()))
			v.Set("action", "allow")
			tc.mutate(v)
			if got := e.submit(t, v).StatusCode; got != tc.want {
				t.Errorf("status: got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLoginCookieSkipsSignIn(t *testing.T) {
	e := newASEnv(t)
	first := e.connect(t, newFlow())
	// The second connect remembers Ada: she is preselected, the others are one click away.
	fl := newFlow()
	doc, v := e.consentForm(t, e.authURL(fl))
	if got := doc.Find(`[data-testid="sandbox-signed-in"]`).Text(); !strings.Contains(got, "Ada Lovelace") {
		t.Errorf("signed-in line: got %q, want Ada", got)
	}
	if got := v.Get("user"); got != "0" {
		t.Errorf("preselected user: got %q, want 0", got)
	}
	if doc.Find(`[data-testid="sandbox-other-accounts"] [data-testid="sandbox-user-1"]`).Length() != 1 {
		t.Errorf("want the other user under 'use another account'")
	}
	v.Set("action", "allow")
	cb := mustCallback(t, e.submit(t, v))
	second, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	if err != nil {
		t.Fatal(err)
	}
	c1 := jwtPart(t, first.Extra("id_token").(string), 1)
	c2 := jwtPart(t, second.Extra("id_token").(string), 1)
	if c1["sid"] != c2["sid"] || c1["auth_time"] != c2["auth_time"] {
		t.Errorf("second connect: got sid %v auth_time %v, want the first sign-in's %v %v", c2["sid"], c2["auth_time"], c1["sid"], c1["auth_time"])
	}

	// Choosing another account replaces the sign-in.
	fl = newFlow()
	cb = e.authorize(t, fl, 1)
	third, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	if err != nil {
		t.Fatal(err)
	}
	c3 := jwtPart(t, third.Extra("id_token").(string), 1)
	if c3["sub"] != DefaultUsers()[1].Subject || c3["sid"] == c1["sid"] {
		t.Errorf("switch account: got sub %v sid %v, want Grace with a new sid", c3["sub"], c3["sid"])
	}
}

// --- code and refresh-token rules ------------------------------------------------------

func TestCodeReuseRevokesIssuedTokens(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	cb := e.authorize(t, fl, 0)
	tok, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	if got := retrieveError(t, err).ErrorCode; got != "invalid_grant" {
		t.Errorf("reuse: got %s, want invalid_grant", got)
	}
	if e.bearerOK(tok.AccessToken) {
		t.Errorf("first access token: got accepted by the REST API, want revoked")
	}
	if got := e.userinfoStatus(t, tok.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("userinfo with first access token: got %d, want 401", got)
	}
	_, err = e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if got := retrieveError(t, err).ErrorCode; got != "invalid_grant" {
		t.Errorf("refresh after code reuse: got %s, want invalid_grant", got)
	}
}

func TestCodeBinding(t *testing.T) {
	e := newASEnv(t) // "expired" advances the clock: each case authorizes afresh
	for _, tc := range []struct {
		name     string
		exchange func(e *asEnv, code string, fl flow) (int, map[string]any)
	}{
		{"another client", func(e *asEnv, code string, fl flow) (int, map[string]any) {
			st, b, _ := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {asRedirect}, "client_id": {"other-client"}, "client_secret": {"other-secret"}, "code_verifier": {fl.verifier}}, "", "")
			return st, b
		}},
		{"another redirect_uri", func(e *asEnv, code string, fl flow) (int, map[string]any) {
			st, b, _ := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {asRedirect + "x"}, "client_id": {asClientID}, "client_secret": {asClientSecret}, "code_verifier": {fl.verifier}}, "", "")
			return st, b
		}},
		{"no redirect_uri", func(e *asEnv, code string, fl flow) (int, map[string]any) {
			st, b, _ := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"client_id": {asClientID}, "client_secret": {asClientSecret}, "code_verifier": {fl.verifier}}, "", "")
			return st, b
		}},
		{"expired", func(e *asEnv, code string, fl flow) (int, map[string]any) {
			e.clock.Advance(10*time.Minute + time.Second)
			st, b, _ := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {asRedirect}, "client_id": {asClientID}, "client_secret": {asClientSecret}, "code_verifier": {fl.verifier}}, "", "")
			return st, b
		}},
		{"unknown code", func(e *asEnv, code string, fl flow) (int, map[string]any) {
			st, b, _ := e.postForm(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {"ory_ac_nope"},
				"redirect_uri": {asRedirect}, "client_id": {asClientID}, "client_secret": {asClientSecret}, "code_verifier": {fl.verifier}}, "", "")
			return st, b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFlow()
			cb := e.authorize(t, fl, 0)
			st, body := tc.exchange(e, cb.Get("code"), fl)
			wantOAuthError(t, st, body, http.StatusBadRequest, "invalid_grant")
		})
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newASEnv(t)
	fl := newFlow()
	tok := e.connect(t, fl)
	refresh := func(rt string) (*oauth2.Token, error) {
		return e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	next, err := refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
		t.Fatalf("rotation: got refresh token %q, want a new one", next.RefreshToken)
	}
	if next.AccessToken == tok.AccessToken {
		t.Errorf("rotation: got the same access token")
	}
	idt, err := e.verifier.Verify(e.ctx, next.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("refreshed ID token: %v", err)
	}
	if err := idt.VerifyAccessToken(next.AccessToken); err != nil {
		t.Errorf("refreshed at_hash: %v", err)
	}
	if idt.Nonce != fl.nonce {
		t.Errorf("refreshed nonce: got %q, want the original %q (kept, as Hydra)", idt.Nonce, fl.nonce)
	}
	if e.bearerOK(tok.AccessToken) {
		t.Errorf("old access token: got accepted, want revoked on rotation")
	}
	if !e.bearerOK(next.AccessToken) {
		t.Errorf("new access token: got rejected, want accepted")
	}

	// Reuse of the rotated token: invalid_grant, and the whole chain dies.
	_, err = refresh(tok.RefreshToken)
	re := retrieveError(t, err)
	if re.ErrorCode != "invalid_grant" || re.Response.StatusCode != http.StatusBadRequest {
		t.Errorf("reuse: got %s %d, want invalid_grant 400", re.ErrorCode, re.Response.StatusCode)
	}
	if e.bearerOK(next.AccessToken) {
		t.Errorf("new access token after reuse: got accepted, want revoked")
	}
	if got := e.userinfoStatus(t, next.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("userinfo after reuse: got %d, want 401", got)
	}
	_, err = refresh(next.RefreshToken)
	if got := retrieveError(t, err).ErrorCode; got != "invalid_grant" {
		t.Errorf("new refresh token after reuse: got %s, want invalid_grant", got)
	}
}

func TestRefreshErrors(t *testing.T) {
	e := newASEnv(t) // each case connects afresh, so clock moves and revocations do not leak
	for _, tc := range []struct {
		name  string
		setup func(e *asEnv, tok *oauth2.Token) url.Values
	}{
		{"unknown", func(e *asEnv, tok *oauth2.Token) url.Values {
			return url.Values{"refresh_token": {"ory_rt_unknown"}, "client_id": {asClientID}, "client_secret": {asClientSecret}}
		}},
		{"another client", func(e *asEnv, tok *oauth2.Token) url.Values {
			return url.Values{"refresh_token": {tok.RefreshToken}, "client_id": {"other-client"}, "client_secret": {"other-secret"}}
		}},
		{"expired", func(e *asEnv, tok *oauth2.Token) url.Values {
			e.clock.Advance(721 * time.Hour)
			return url.Values{"refresh_token": {tok.RefreshToken}, "client_id": {asClientID}, "client_secret": {asClientSecret}}
		}},
		{"user removed the app", func(e *asEnv, tok *oauth2.Token) url.Values {
			e.srv.RevokeUserGrants(DefaultUsers()[0].Email)
			return url.Values{"refresh_token": {tok.RefreshToken}, "client_id": {asClientID}, "client_secret": {asClientSecret}}
		}},
		{"scope beyond the grant", func(e *asEnv, tok *oauth2.Token) url.Values {
			return url.Values{"refresh_token": {tok.RefreshToken}, "client_id": {asClientID}, "client_secret": {asClientSecret},
				"scope": {"openid sign:requests.read"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.connect(t, newFlow())
			v := tc.setup(e, tok)
			v.Set("grant_type", "refresh_token")
			st, body, _ := e.postForm(t, "/oauth2/token", v, "", "")
			want := "invalid_grant"
			if tc.name == "scope beyond the grant" {
				want = "invalid_scope"
			}
			wantOAuthError(t, st, body, http.StatusBadRequest, want)
		})
	}
}

// --- client authentication -----------------------------------------------------------

func TestClientAuthentication(t *testing.T) {
	clients := []Client{
		{ID: "c1", Secret: "s1"}, // pinned to client_secret_post by default
		{ID: "c2", Secret: "s2", AuthMethod: "client_secret_basic"},
		{ID: "c:3", Secret: "s %/+3", AuthMethod: "any"},
		{ID: "c4", Secret: "s%zz", AuthMethod: "any"},
	}
	e := newASEnv(t, func(o *Options) { o.Clients = clients })
	for _, tc := range []struct {
		name          string
		form          url.Values // besides grant_type and refresh_token
		basicUser     string
		basicPass     string
		wantStatus    int
		wantError     string // "" → authenticated, so the bogus refresh token fails: invalid_grant
		wantHintHas   string
		wantLogAuth   string
		wantChallenge bool
	}{
		{name: "post accepted", form: url.Values{"client_id": {"c1"}, "client_secret": {"s1"}},
			wantStatus: 400, wantLogAuth: "client_secret_post"},
		{name: "basic refused when pinned to post", basicUser: "c1", basicPass: "s1",
			wantStatus: 401, wantError: "invalid_client", wantHintHas: "client_secret_post", wantLogAuth: "client_secret_basic", wantChallenge: true},
		{name: "wrong secret", form: url.Values{"client_id": {"c1"}, "client_secret": {"nope"}},
			wantStatus: 401, wantError: "invalid_client", wantLogAuth: "client_secret_post"},
		{name: "unknown client", form: url.Values{"client_id": {"zz"}, "client_secret": {"s1"}},
			wantStatus: 401, wantError: "invalid_client", wantLogAuth: "client_secret_post"},
		{name: "no secret", form: url.Values{"client_id": {"c1"}},
			wantStatus: 401, wantError: "invalid_client", wantHintHas: "'none'", wantLogAuth: "none"},
		{name: "no credentials", wantStatus: 400, wantError: "invalid_request", wantLogAuth: "none"},
		{name: "both methods", form: url.Values{"client_secret": {"s1"}}, basicUser: "c1", basicPass: "s1",
			wantStatus: 400, wantError: "invalid_request", wantLogAuth: "client_secret_basic"},
		{name: "basic client refuses post", form: url.Values{"client_id": {"c2"}, "client_secret": {"s2"}},
			wantStatus: 401, wantError: "invalid_client", wantHintHas: "client_secret_basic", wantLogAuth: "client_secret_post"},
		{name: "basic client accepts basic", basicUser: "c2", basicPass: "s2", wantStatus: 400, wantLogAuth: "client_secret_basic"},
		{name: "any accepts basic, url-decoded", basicUser: url.QueryEscape("c:3"), basicPass: url.QueryEscape("s %/+3"),
			wantStatus: 400, wantLogAuth: "client_secret_basic"},
		{name: "any accepts post", form: url.Values{"client_id": {"c:3"}, "client_secret": {"s %/+3"}},
			wantStatus: 400, wantLogAuth: "client_secret_post"},
		{name: "basic not url-encoded is refused", basicUser: "c4", basicPass: "s%zz",
			wantStatus: 400, wantError: "invalid_request", wantLogAuth: "client_secret_basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"ory_rt_bogus"}}
			for k, vs := range tc.form {
				v[k] = vs
			}
			st, body, h := e.postForm(t, "/oauth2/token", v, tc.basicUser, tc.basicPass)
			want := tc.wantError
			if want == "" {
				want = "invalid_grant"
			}
			wantOAuthError(t, st, body, tc.wantStatus, want)
			if hint, _ := body["error_hint"].(string); !strings.Contains(hint, tc.wantHintHas) {
				t.Errorf("error_hint: got %q, want it to mention %q", hint, tc.wantHintHas)
			}
			if got := h.Get("WWW-Authenticate") != ""; got != tc.wantChallenge {
				t.Errorf("WWW-Authenticate present: got %v, want %v", got, tc.wantChallenge)
			}
			log := e.srv.Requests()
			if got := log[len(log)-1].ClientAuth; got != tc.wantLogAuth {
				t.Errorf("logged ClientAuth: got %q, want %q", got, tc.wantLogAuth)
			}
		})
	}
}

func TestBasicAuthThroughOAuth2Client(t *testing.T) {
	e := newASEnv(t)
	e.conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	fl := newFlow()
	cb := e.authorize(t, fl, 0)
	_, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	re := retrieveError(t, err)
	if re.ErrorCode != "invalid_client" || re.Response.StatusCode != http.StatusUnauthorized {
		t.Errorf("got %s %d, want invalid_client 401", re.ErrorCode, re.Response.StatusCode)
	}
}

// --- revocation, userinfo, logout ------------------------------------------------------

func TestRevocation(t *testing.T) {
	e := newASEnv(t) // each case connects afresh
	revoke := func(e *asEnv, tok, hint, id, secret string) (int, map[string]any) {
		v := url.Values{"token": {tok}, "client_id": {id}, "client_secret": {secret}}
		if hint != "" {
			v.Set("token_type_hint", hint)
		}
		st, body, _ := e.postForm(t, "/oauth2/revoke", v, "", "")
		return st, body
	}
	t.Run("refresh token revokes the chain", func(t *testing.T) {
		tok := e.connect(t, newFlow())
		st, body := revoke(e, tok.RefreshToken, "refresh_token", asClientID, asClientSecret)
		if st != http.StatusOK || body != nil {
			t.Fatalf("got %d %v, want 200 with an empty body", st, body)
		}
		if e.bearerOK(tok.AccessToken) {
			t.Errorf("access token: got accepted, want revoked with its refresh token")
		}
		_, err := e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if got := retrieveError(t, err).ErrorCode; got != "invalid_grant" {
			t.Errorf("refresh after revocation: got %s, want invalid_grant", got)
		}
		var lr LoggedRequest
		for _, l := range e.srv.Requests() {
			if l.Path == "/oauth2/revoke" {
				lr = l
			}
		}
		if lr.TokenTypeHint != "refresh_token" || lr.ClientAuth != "client_secret_post" || lr.Status != http.StatusOK {
			t.Errorf("log: got %+v, want /oauth2/revoke with hint, client_secret_post, 200", lr)
		}
	})
	t.Run("access token", func(t *testing.T) {
		tok := e.connect(t, newFlow())
		if st, _ := revoke(e, tok.AccessToken, "", asClientID, asClientSecret); st != http.StatusOK {
			t.Fatalf("got %d, want 200", st)
		}
		if got := e.userinfoStatus(t, tok.AccessToken); got != http.StatusUnauthorized {
			t.Errorf("userinfo: got %d, want 401", got)
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		if st, body := revoke(e, "ory_at_unknown", "access_token", asClientID, asClientSecret); st != http.StatusOK || body != nil {
			t.Errorf("got %d %v, want 200 empty (RFC 7009 §2.2)", st, body)
		}
	})
	t.Run("another client's token", func(t *testing.T) {
		tok := e.connect(t, newFlow())
		st, body := revoke(e, tok.RefreshToken, "", "other-client", "other-secret")
		wantOAuthError(t, st, body, http.StatusBadRequest, "unauthorized_client")
		if !e.bearerOK(tok.AccessToken) {
			t.Errorf("token of another client: got revoked, want untouched")
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		tok := e.connect(t, newFlow())
		st, body := revoke(e, tok.RefreshToken, "", asClientID, "wrong")
		wantOAuthError(t, st, body, http.StatusUnauthorized, "invalid_client")
		if !e.bearerOK(tok.AccessToken) {
			t.Errorf("token: got revoked by an unauthenticated request")
		}
	})
	t.Run("unsupported hint", func(t *testing.T) {
		st, body := revoke(e, "x", "id_token", asClientID, asClientSecret)
		wantOAuthError(t, st, body, http.StatusBadRequest, "unsupported_token_type")
	})
	t.Run("missing token", func(t *testing.T) {
		st, body := revoke(e, "", "", asClientID, asClientSecret)
		wantOAuthError(t, st, body, http.StatusBadRequest, "invalid_request")
	})
}

func TestUserinfo(t *testing.T) {
	e := newASEnv(t)
	tok := e.connect(t, newFlow())
	e.conf.Scopes = []string{"profile.read"}
	noOpenID := e.connect(t, newFlow())
	for _, tc := range []struct {
		name   string
		header string
		want   int
		wwwHas string
	}{
		{"valid", "Bearer " + tok.AccessToken, 200, ""},
		{"lower-case scheme", "bearer " + tok.AccessToken, 200, ""},
		{"missing", "", 401, "invalid_token"},
		{"unknown token", "Bearer ory_at_nope", 401, "invalid_token"},
		{"basic scheme", "Basic " + tok.AccessToken, 401, "invalid_token"},
		{"without openid", "Bearer " + noOpenID.AccessToken, 403, "insufficient_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/userinfo", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := e.httpc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tc.want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tc.wwwHas) || (tc.wwwHas == "") != (got == "") {
				t.Errorf("WWW-Authenticate: got %q, want it to contain %q", got, tc.wwwHas)
			}
			if tc.want == 200 {
				ada := DefaultUsers()[0]
				if body["sub"] != ada.Subject || body["email"] != ada.Email || body["name"] != ada.Name {
					t.Errorf("body: got %v, want Ada's sub, email, name", body)
				}
			}
		})
	}
	e.clock.Advance(time.Hour + time.Second)
	if got := e.userinfoStatus(t, tok.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("expired access token: got %d, want 401", got)
	}
}

func TestLogout(t *testing.T) {
	e := newASEnv(t)
	tok := e.connect(t, newFlow())
	idt := tok.Extra("id_token").(string)
	e.conf.ClientID, e.conf.ClientSecret = "other-client", "other-secret"
	e.conf.RedirectURL = "https://other.example.test/cb"
	otherIDT := func() string { // an ID token of the client that has a post-logout URI
		fl := newFlow()
		_, v := e.consentForm(t, e.authURL(fl))
		v.Set("action", "allow")
		resp := e.submit(t, v)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		tk, err := e.conf.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(fl.verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tk.Extra("id_token").(string)
	}()
	logoutURL := func(q url.Values) string { return e.srv.URL + "/oauth2/sessions/logout?" + q.Encode() }

	for _, tc := range []struct {
		name     string
		q        url.Values
		status   int
		location string
	}{
		{"state without hint", url.Values{"state": {"abcdefgh"}}, 400, ""},
		{"redirect without hint", url.Values{"post_logout_redirect_uri": {"https://other.example.test/bye"}}, 400, ""},
		{"redirect not registered", url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {asRedirect}}, 400, ""},
		{"hint not ours", url.Values{"id_token_hint": {"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}}, 400, ""},
		{"registered redirect with state", url.Values{"id_token_hint": {otherIDT}, "post_logout_redirect_uri": {"https://other.example.test/bye"},
			"state": {"st4te-xyz"}}, 303, "https://other.example.test/bye?state=st4te-xyz"},
		{"hint only", url.Values{"id_token_hint": {idt}}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.get(t, logoutURL(tc.q))
			if resp.StatusCode != tc.status {
				t.Fatalf("status: got %d, want %d\n%s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Location"); got != tc.location {
				t.Errorf("Location: got %q, want %q", got, tc.location)
			}
			if tc.status == 200 && !strings.Contains(body, `data-testid="sandbox-signed-out"`) {
				t.Errorf("want the signed-out page")
			}
		})
	}

	// Signed out: the next consent page asks for a user again; tokens survive logout.
	doc, _ := e.consentForm(t, e.authURL(newFlow()))
	if doc.Find(`[data-testid="sandbox-signed-in"]`).Length() != 0 {
		t.Errorf("after logout: got a signed-in line, want the user choice")
	}
	if !e.bearerOK(tok.AccessToken) {
		t.Errorf("after logout: access token revoked, want it untouched (lumin-api.md §9)")
	}

	// An expired ID token is still a valid hint (OIDC RP-Initiated Logout §2).
	e.clock.Advance(48 * time.Hour)
	if resp, _ := e.get(t, logoutURL(url.Values{"id_token_hint": {idt}})); resp.StatusCode != http.StatusOK {
		t.Errorf("expired hint: got %d, want 200", resp.StatusCode)
	}
}

// --- fault knobs ---------------------------------------------------------------------

func TestFaults(t *testing.T) {
	e := newASEnv(t)
	for _, tc := range []struct {
		name  string
		fault Faults
		check func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow)
	}{
		{"TokenStatus 500", Faults{TokenStatus: 500}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			re := retrieveError(t, err)
			if re.ErrorCode != "server_error" || re.Response.StatusCode != 500 {
				t.Errorf("got %s %d, want server_error 500", re.ErrorCode, re.Response.StatusCode)
			}
		}},
		{"TokenStatus 503", Faults{TokenStatus: 503}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			re := retrieveError(t, err)
			if re.ErrorCode != "temporarily_unavailable" || re.Response.StatusCode != 503 {
				t.Errorf("got %s %d, want temporarily_unavailable 503", re.ErrorCode, re.Response.StatusCode)
			}
		}},
		{"WrongIssuer", Faults{WrongIssuer: true}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			if _, err := e.verifier.Verify(e.ctx, mustIDToken(t, tok, err)); err == nil || !strings.Contains(err.Error(), "issuer") {
				t.Errorf("Verify: got %v, want an issuer error", err)
			}
		}},
		{"WrongAudience", Faults{WrongAudience: true}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			if _, err := e.verifier.Verify(e.ctx, mustIDToken(t, tok, err)); err == nil || !strings.Contains(err.Error(), "audience") {
				t.Errorf("Verify: got %v, want an audience error", err)
			}
		}},
		{"BadSignature", Faults{BadSignature: true}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			if _, err := e.verifier.Verify(e.ctx, mustIDToken(t, tok, err)); err == nil || !strings.Contains(err.Error(), "signature") {
				t.Errorf("Verify: got %v, want a signature error", err)
			}
		}},
		{"WrongNonce", Faults{WrongNonce: true}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			idt, err := e.verifier.Verify(e.ctx, mustIDToken(t, tok, err))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if idt.Nonce == fl.nonce {
				t.Errorf("nonce: got the request's nonce, want a different one")
			}
		}},
		{"ClockSkew", Faults{ClockSkew: -2 * time.Hour}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			if _, err := e.verifier.Verify(e.ctx, mustIDToken(t, tok, err)); err == nil || !strings.Contains(err.Error(), "expired") {
				t.Errorf("Verify: got %v, want an expiry error", err)
			}
		}},
		{"ShortAccessTokenTTL", Faults{ShortAccessTokenTTL: 2 * time.Second}, func(t *testing.T, e *asEnv, tok *oauth2.Token, err error, fl flow) {
			if err != nil {
				t.Fatal(err)
			}
			if tok.ExpiresIn != 2 {
				t.Errorf("expires_in: got %d, want 2", tok.ExpiresIn)
			}
			if !e.bearerOK(tok.AccessToken) {
				t.Errorf("fresh token: got rejected")
			}
			e.clock.Advance(3 * time.Second)
			if e.bearerOK(tok.AccessToken) {
				t.Errorf("token after its TTL: got accepted, want expired")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFlow()
			cb := e.authorize(t, fl, 0)
			e.srv.SetFaults(tc.fault)
			defer e.srv.SetFaults(Faults{})
			tok, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
			tc.check(t, e, tok, err, fl)
		})
	}
}

func mustIDToken(t *testing.T, tok *oauth2.Token, err error) string {
	t.Helper()
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		t.Fatal("no id_token")
	}
	return raw
}

func TestAuthLatencyFault(t *testing.T) {
	e := newASEnv(t)
	e.srv.SetFaults(Faults{Latency: time.Minute, AuthLatency: true})
	// A client with a short timeout must give up; the server stops waiting with it.
	ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	defer cancel()
	_, err := e.conf.Exchange(ctx, "ory_ac_x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the client's deadline to expire", err)
	}
}

func TestKeyRotation(t *testing.T) {
	e := newASEnv(t)
	before := e.connect(t, newFlow())
	e.srv.RotateKeys()
	after := e.connect(t, newFlow())
	oldKid := jwtPart(t, before.Extra("id_token").(string), 0)["kid"]
	newKid := jwtPart(t, after.Extra("id_token").(string), 0)["kid"]
	if oldKid == newKid {
		t.Fatalf("kid: got the same %v after rotation, want a new key", newKid)
	}
	resp, err := e.httpc.Get(e.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&set)
	if len(set.Keys) != 2 || set.Keys[0].Kid != newKid || set.Keys[1].Kid != oldKid {
		t.Errorf("JWKS kids: got %+v, want [%v %v]", set.Keys, newKid, oldKid)
	}
	for name, tok := range map[string]*oauth2.Token{"old key": before, "new key": after} {
		if _, err := e.verifier.Verify(e.ctx, tok.Extra("id_token").(string)); err != nil {
			t.Errorf("%s: Verify: %v", name, err)
		}
	}
}

// --- bad input -----------------------------------------------------------------------

func TestTokenEndpointBadInput(t *testing.T) {
	e := newASEnv(t)
	creds := "&client_id=" + asClientID + "&client_secret=" + asClientSecret
	huge := strings.Repeat("a", 200<<10)
	for _, tc := range []struct {
		name        string
		method      string
		contentType string
		body        string
		wantStatus  int
		wantError   string
	}{
		{"GET", http.MethodGet, "", "", 400, "invalid_request"},
		{"JSON body", http.MethodPost, "application/json", `{"grant_type":"authorization_code"}`, 400, "invalid_request"},
		{"no content type", http.MethodPost, "", "grant_type=refresh_token" + creds, 400, "invalid_request"},
		{"garbage form", http.MethodPost, "application/x-www-form-urlencoded", "%zz&&==;;" + creds, 400, "invalid_request"},
		{"huge body", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=" + huge + creds, 400, "invalid_request"},
		{"duplicate parameter", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=refresh_token&grant_type=authorization_code" + creds, 400, "invalid_request"},
		{"missing grant_type", http.MethodPost, "application/x-www-form-urlencoded", "code=x" + creds, 400, "invalid_request"},
		{"unsupported grant_type", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=client_credentials" + creds, 400, "unsupported_grant_type"},
		{"implicit-ish grant", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=password&username=a&password=b" + creds, 400, "unsupported_grant_type"},
		{"missing code", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=authorization_code" + creds, 400, "invalid_request"},
		{"missing refresh token", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=refresh_token" + creds, 400, "invalid_request"},
		{"binary code", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=authorization_code&code=%00%FF%FE&redirect_uri=x" + creds, 400, "invalid_grant"},
		{"malformed basic header", http.MethodPost, "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=x", 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.srv.URL+"/oauth2/token", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.name == "malformed basic header" {
				req.Header.Set("Authorization", "Basic !!!notbase64")
			}
			resp, err := e.httpc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body: %v", err)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			wantOAuthError(t, resp.StatusCode, body, tc.wantStatus, tc.wantError)
		})
	}
}

func TestBrowserEndpointsBadInput(t *testing.T) {
	e := newASEnv(t)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		want   int
	}{
		{"huge authorize query", http.MethodGet, "/oauth2/auth?client_id=" + strings.Repeat("x", 20000), "", 400},
		{"unparseable authorize query", http.MethodGet, "/oauth2/auth?client_id=%zz", "", 400},
		{"empty authorize", http.MethodGet, "/oauth2/auth", "", 400},
		{"garbage consent post", http.MethodPost, "/oauth2/auth", "%zz=%%&", 400},
		{"huge consent post", http.MethodPost, "/oauth2/auth", "consent_challenge=" + strings.Repeat("x", 100<<10), 400},
		{"empty consent post", http.MethodPost, "/oauth2/auth", "", 400},
		{"garbage logout hint", http.MethodGet, "/oauth2/sessions/logout?id_token_hint=" + strings.Repeat("%41", 100), "", 400},
		{"duplicate logout param", http.MethodGet, "/oauth2/sessions/logout?state=a&state=b", "", 400},
		{"revoke via GET", http.MethodGet, "/oauth2/revoke", "", 400},
		{"revoke garbage", http.MethodPost, "/oauth2/revoke", "%zz", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, strings.NewReader(tc.body))
			if tc.method == http.MethodPost {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := e.browser.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestRequestLogCoversEndpoints(t *testing.T) {
	e := newASEnv(t)
	tok := e.connect(t, newFlow())
	e.userinfoStatus(t, tok.AccessToken)
	e.postForm(t, "/oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {asClientID}, "client_secret": {asClientSecret}}, "", "")
	e.get(t, e.srv.URL+"/oauth2/sessions/logout")
	var got []string
	for _, lr := range e.srv.Requests() {
		got = append(got, lr.Method+" "+lr.Path)
	}
	want := []string{"GET /oauth2/auth", "POST /oauth2/auth", "POST /oauth2/token", "GET /userinfo", "POST /oauth2/revoke", "GET /oauth2/sessions/logout"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("log: got %v, want it to contain %q", got, w)
		}
	}
	for _, lr := range e.srv.Requests() {
		if lr.Status == 0 || lr.Time.IsZero() {
			t.Errorf("log entry %+v: want a status and a time", lr)
		}
	}
}
