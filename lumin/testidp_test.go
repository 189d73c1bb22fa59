package lumin

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Test fixtures: a fake OpenID provider on 127.0.0.1 whose every answer a test controls,
// RSA keys to sign ID tokens with, and a settable clock.

const (
	testClientID     = "client-1"
	testClientSecret = "s3cret-client-secret"
	testRedirect     = "http://127.0.0.1:8080/auth/callback"
)

var (
	keysOnce sync.Once
	testKey1 *rsa.PrivateKey // published as kid "k1"
	testKey2 *rsa.PrivateKey // published later as kid "k2" (rotation)
	rogueKey *rsa.PrivateKey // never published
)

func testKeys(t *testing.T) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&testKey1, &testKey2, &rogueKey} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
	})
}

// clock is a settable time source shared by the RP and the fake provider.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testIdP is the fake provider.
type testIdP struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string
	clk    *clock

	mu              sync.Mutex
	discovery       map[string]any // the discovery document served
	discoveryStatus int            // non-zero: answer this instead
	jwksStatus      int
	jwksKeys        map[string]*rsa.PrivateKey // kid → key, published
	jwksExtra       []json.RawMessage          // raw extra entries
	token           http.HandlerFunc           // token endpoint behaviour
	revoke          http.HandlerFunc
	counts          map[string]int
	tokenForms      []url.Values
	tokenHeaders    []http.Header
	revokeForms     []url.Values
	revokeHeaders   []http.Header
}

func newTestIdP(t *testing.T, clk *clock) *testIdP {
	t.Helper()
	testKeys(t)
	p := &testIdP{t: t, clk: clk, counts: map[string]int{}, jwksKeys: map[string]*rsa.PrivateKey{"k1": testKey1}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.serveDiscovery)
	mux.HandleFunc("GET /jwks", p.serveJWKS)
	mux.HandleFunc("POST /token", p.serveToken)
	mux.HandleFunc("POST /revoke", p.serveRevoke)
	p.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL
	p.discovery = map[string]any{
		"issuer":                                         p.issuer,
		"authorization_endpoint":                         p.issuer + "/auth",
		"token_endpoint":                                 p.issuer + "/token",
		"jwks_uri":                                       p.issuer + "/jwks",
		"revocation_endpoint":                            p.issuer + "/revoke",
		"end_session_endpoint":                           p.issuer + "/logout",
		"userinfo_endpoint":                              p.issuer + "/userinfo",
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"code_challenge_methods_supported":               []string{"plain", "S256"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_post", "client_secret_basic"},
		"response_types_supported":                       []string{"code"},
		"authorization_response_iss_parameter_supported": false,
	}
	p.revoke = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }
	return p
}

func (p *testIdP) set(f func(p *testIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *testIdP) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[path]
}

func (p *testIdP) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.counts["discovery"]++
	status := p.discoveryStatus
	doc, _ := json.Marshal(p.discovery)
	p.mu.Unlock()
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

func (p *testIdP) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.counts["jwks"]++
	status := p.jwksStatus
	var keys []json.RawMessage
	for kid, k := range p.jwksKeys {
		b, err := json.Marshal(jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		if err != nil {
			panic(err)
		}
		keys = append(keys, b)
	}
	keys = append(keys, p.jwksExtra...)
	p.mu.Unlock()
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
}

func (p *testIdP) serveToken(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	p.mu.Lock()
	p.counts["token"]++
	p.tokenForms = append(p.tokenForms, r.PostForm)
	p.tokenHeaders = append(p.tokenHeaders, r.Header.Clone())
	h := p.token
	p.mu.Unlock()
	if h == nil {
		http.Error(w, "no token handler", http.StatusInternalServerError)
		return
	}
	h(w, r)
}

func (p *testIdP) serveRevoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	p.mu.Lock()
	p.counts["revoke"]++
	p.revokeForms = append(p.revokeForms, r.PostForm)
	p.revokeHeaders = append(p.revokeHeaders, r.Header.Clone())
	h := p.revoke
	p.mu.Unlock()
	h(w, r)
}

// claims returns valid ID-token claims for nonce and access token at.
func (p *testIdP) claims(nonce, at string) map[string]any {
	now := p.clk.Now()
	c := map[string]any{
		"iss":       p.issuer,
		"sub":       "user-1",
		"aud":       []string{testClientID},
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"auth_time": now.Add(-time.Minute).Unix(),
		"email":     "ada@example.com",
		"name":      "Ada Lovelace",
		"at_hash":   atHash(at),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return c
}

func atHash(at string) string {
	sum := sha256.Sum256([]byte(at))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// mint signs claims with key under kid (RS256), with optional extra headers.
func mint(t *testing.T, claims map[string]any, key *rsa.PrivateKey, kid string, headers map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for k, v := range headers {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return signPayload(t, s, claims)
}

func signPayload(t *testing.T, s jose.Signer, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tokenJSON writes a JSON token response.
func tokenJSON(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// okTokens answers a token request with access token at, refresh token rt and an ID
// token minted from claims.
func okTokens(t *testing.T, at, rt string, claims map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{
			"access_token": at, "token_type": "bearer", "expires_in": 3600,
			"scope": "openid offline_access sign:requests",
		}
		if rt != "" {
			body["refresh_token"] = rt
		}
		if claims != nil {
			body["id_token"] = mint(t, claims, testKey1, "k1", nil)
		}
		tokenJSON(w, http.StatusOK, body)
	}
}

func newTestRP(t *testing.T, p *testIdP, mutate ...func(*Config)) *RP {
	t.Helper()
	cfg := Config{
		Issuer:       p.issuer,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RedirectURL:  testRedirect,
		Scopes:       []string{"openid", "offline_access", "sign:requests"},
		Now:          p.clk.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	rp, err := NewRP(cfg)
	if err != nil {
		t.Fatalf("NewRP: %v", err)
	}
	return rp
}

// mustAuthRequest returns a fresh transaction.
func mustAuthRequest(t *testing.T) AuthRequest {
	t.Helper()
	ar, err := NewAuthRequest()
	if err != nil {
		t.Fatal(err)
	}
	return ar
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// assertNoSecrets fails if s contains any of the secrets.
func assertNoSecrets(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("error text %q contains secret %q", s, sec)
		}
	}
}

type rsaKey = rsa.PrivateKey

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
