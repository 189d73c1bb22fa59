package lumin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestIDTokenChecks drives every check of security.md §4 through Exchange, with ID
// tokens minted by the test (OIDC Core §3.1.3.7).
func TestIDTokenChecks(t *testing.T) {
	var jkuHits atomic.Int32
	jku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { jkuHits.Add(1) }))
	defer jku.Close()

	type mintFn func(t *testing.T, p *testIdP, c map[string]any) string
	rs := func(t *testing.T, p *testIdP, c map[string]any) string { return mint(t, c, testKey1, "k1", nil) }
	tests := []struct {
		name   string
		mutate func(c map[string]any, now time.Time)
		mint   mintFn
		reason string // "" → accepted
	}{
		{"valid", nil, rs, ""},
		{"aud as a single string", func(c map[string]any, _ time.Time) { c["aud"] = testClientID }, rs, ""},
		{"azp equal to client id", func(c map[string]any, _ time.Time) { c["azp"] = testClientID }, rs, ""},
		{"no at_hash", func(c map[string]any, _ time.Time) { delete(c, "at_hash") }, rs, ""},
		{"exp within leeway", func(c map[string]any, now time.Time) { c["exp"] = now.Add(-30 * time.Second).Unix() }, rs, ""},
		{"iat ahead within leeway", func(c map[string]any, now time.Time) { c["iat"] = now.Add(30 * time.Second).Unix() }, rs, ""},

		{"bad signature (unpublished key, known kid)", nil, func(t *testing.T, p *testIdP, c map[string]any) string {
			return mint(t, c, rogueKey, "k1", nil)
		}, "signature"},
		{"tampered payload", nil, func(t *testing.T, p *testIdP, c map[string]any) string {
			tok := mint(t, c, testKey1, "k1", nil)
			parts := strings.Split(tok, ".")
			c["sub"] = "admin"
			b, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}, "signature"},
		{"alg none", nil, func(t *testing.T, p *testIdP, c map[string]any) string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`))
			b, _ := json.Marshal(c)
			return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
		}, "signature"},
		{"HS256 with the client secret", nil, func(t *testing.T, p *testIdP, c map[string]any) string {
			key := []byte(testClientSecret + testClientSecret + testClientSecret)
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
			if err != nil {
				t.Fatal(err)
			}
			return signPayload(t, s, c)
		}, "signature"},
		{"jku header ignored", nil, func(t *testing.T, p *testIdP, c map[string]any) string {
			return mint(t, c, rogueKey, "rogue", map[jose.HeaderKey]any{"jku": jku.URL + "/jwks"})
		}, "signature"},
		{"wrong iss", func(c map[string]any, _ time.Time) { c["iss"] = "https://evil.example" }, rs, "iss"},
		{"iss with trailing slash", func(c map[string]any, _ time.Time) { c["iss"] = c["iss"].(string) + "/" }, rs, "iss"},
		{"aud with an extra value", func(c map[string]any, _ time.Time) { c["aud"] = []string{testClientID, "other-client"} }, rs, "aud"},
		{"aud without us", func(c map[string]any, _ time.Time) { c["aud"] = []string{"other-client"} }, rs, "aud"},
		{"azp mismatch", func(c map[string]any, _ time.Time) { c["azp"] = "other-client" }, rs, "azp"},
		{"expired beyond leeway", func(c map[string]any, now time.Time) { c["exp"] = now.Add(-61 * time.Second).Unix() }, rs, "exp"},
		{"exp missing", func(c map[string]any, _ time.Time) { delete(c, "exp") }, rs, "exp"},
		{"iat in the future", func(c map[string]any, now time.Time) { c["iat"] = now.Add(2 * time.Minute).Unix() }, rs, "iat"},
		{"iat too old", func(c map[string]any, now time.Time) { c["iat"] = now.Add(-11 * time.Minute).Unix() }, rs, "iat"},
		{"iat missing", func(c map[string]any, _ time.Time) { delete(c, "iat") }, rs, "iat"},
		{"sub missing", func(c map[string]any, _ time.Time) { delete(c, "sub") }, rs, "sub"},
		{"sub too long", func(c map[string]any, _ time.Time) { c["sub"] = strings.Repeat("a", 256) }, rs, "sub"},
		{"sub not ASCII", func(c map[string]any, _ time.Time) { c["sub"] = "usér" }, rs, "sub"},
		{"nonce mismatch", func(c map[string]any, _ time.Time) { c["nonce"] = "another-nonce" }, rs, "nonce_mismatch"},
		{"nonce missing", func(c map[string]any, _ time.Time) { delete(c, "nonce") }, rs, "nonce_mismatch"},
		{"at_hash mismatch", func(c map[string]any, _ time.Time) { c["at_hash"] = atHash("other-token") }, rs, "at_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, newClock())
			rp := newTestRP(t, p)
			ar := mustAuthRequest(t)
			c := p.claims(ar.Nonce, "at-1")
			if tt.mutate != nil {
				tt.mutate(c, p.clk.Now())
			}
			idt := tt.mint(t, p, c)
			p.set(func(p *testIdP) {
				p.token = func(w http.ResponseWriter, r *http.Request) {
					tokenJSON(w, 200, map[string]any{"access_token": "at-1", "token_type": "bearer", "expires_in": 3600, "id_token": idt})
				}
			})
			_, id, err := rp.Exchange(ctxT(t), "code-1", ar)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if id.Subject != "user-1" {
					t.Errorf("subject: got %q, want user-1", id.Subject)
				}
				return
			}
			var ie *IDTokenError
			if !errors.As(err, &ie) || !errors.Is(err, ErrIDToken) {
				t.Fatalf("got %v, want *IDTokenError wrapping ErrIDToken", err)
			}
			if ie.Reason != tt.reason {
				t.Errorf("reason: got %q, want %q", ie.Reason, tt.reason)
			}
			assertNoSecrets(t, err.Error(), idt, ar.Nonce, "at-1")
		})
	}
	if n := jkuHits.Load(); n != 0 {
		t.Errorf("jku URL fetched %d times, want 0", n)
	}
}

// TestUnknownKidRefetch: an unknown kid causes one JWKS re-fetch, at most one per minute
// (security.md §4.8).
func TestUnknownKidRefetch(t *testing.T) {
	clk := newClock()
	p := newTestIdP(t, clk)
	rp := newTestRP(t, p)
	if _, err := rp.Discover(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := p.count("jwks"); n != 1 {
		t.Fatalf("jwks fetches after discovery: got %d, want 1", n)
	}
	exchange := func(key string) error {
		t.Helper()
		ar := mustAuthRequest(t)
		idt := mint(t, p.claims(ar.Nonce, "at-1"), map[string]*rsaKey{"k1": testKey1, "k2": testKey2, "k3": rogueKey}[key], key, nil)
		p.set(func(p *testIdP) {
			p.token = func(w http.ResponseWriter, r *http.Request) {
				tokenJSON(w, 200, map[string]any{"access_token": "at-1", "token_type": "bearer", "expires_in": 3600, "id_token": idt})
			}
		})
		_, _, err := rp.Exchange(ctxT(t), "code", ar)
		return err
	}

	// Rotation at the provider: k2 is published; a token signed with it is accepted
	// after one re-fetch.
	p.set(func(p *testIdP) { p.jwksKeys["k2"] = testKey2 })
	if err := exchange("k2"); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := p.count("jwks"); n != 2 {
		t.Errorf("jwks fetches: got %d, want 2", n)
	}
	// Known kid again: no fetch.
	if err := exchange("k1"); err != nil {
		t.Fatal(err)
	}
	// Another unknown kid within the minute: rejected without a fetch.
	if err := exchange("k3"); err == nil {
		t.Fatal("unknown kid k3 accepted")
	}
	if n := p.count("jwks"); n != 2 {
		t.Errorf("jwks fetches within the minute: got %d, want 2", n)
	}
	// After a minute one more fetch is allowed; the JWKS being down then keeps the
	// cached keys in use (security.md §13.3).
	clk.Advance(61 * time.Second)
	p.set(func(p *testIdP) { p.jwksStatus = http.StatusInternalServerError })
	if err := exchange("k3"); err == nil {
		t.Fatal("unknown kid k3 accepted")
	}
	if n := p.count("jwks"); n != 3 {
		t.Errorf("jwks fetches after a minute: got %d, want 3", n)
	}
	if err := exchange("k2"); err != nil {
		t.Errorf("cached key after a failed re-fetch: %v", err)
	}
}

func TestJWKSSkipsUnusableEntries(t *testing.T) {
	p := newTestIdP(t, newClock())
	p.set(func(p *testIdP) {
		p.jwksExtra = []json.RawMessage{
			json.RawMessage(`{"kty":"OKP","crv":"Ed448","x":"AAAA","kid":"ed448"}`),
			json.RawMessage(`{"kty":"XYZ","kid":"future"}`),
			json.RawMessage(`{"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"}`),
			json.RawMessage(`{"kty":"oct","kid":"sym","k":"c2VjcmV0"}`),
			json.RawMessage(`"not an object"`),
		}
	})
	rp := newTestRP(t, p)
	ar := mustAuthRequest(t)
	p.set(func(p *testIdP) { p.token = okTokens(t, "at-1", "", p.claims(ar.Nonce, "at-1")) })
	if _, _, err := rp.Exchange(ctxT(t), "code", ar); err != nil {
		t.Fatalf("got %v, want the usable RSA key to verify", err)
	}
	st, _ := rp.state(ctxT(t))
	if got := len(st.keys.cached()); got != 1 {
		t.Errorf("cached keys: got %d, want 1", got)
	}
}

func TestParseJWKSNoUsableKey(t *testing.T) {
	_, err := parseJWKS([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`), discardLogger())
	if err == nil {
		t.Error("got nil, want an error for a set without RS256 keys")
	}
}

func TestValidSubject(t *testing.T) {
	tests := []struct {
		sub string
		ok  bool
	}{
		{"65a1f0c2e4b0a1b2c3d4e5f6", true},
		{"a b", true},
		{strings.Repeat("x", 255), true},
		{"", false},
		{strings.Repeat("x", 256), false},
		{"tab\there", false},
		{"ünicode", false},
	}
	for _, tt := range tests {
		if got := validSubject(tt.sub); got != tt.ok {
			t.Errorf("validSubject(%q): got %v, want %v", tt.sub, got, tt.ok)
		}
	}
}

// TestIDTokenConfiguredLeeway: Config.Leeway replaces the 60 s default on exp
// (security.md §4.4): 30 s past exp is rejected with 5 s of leeway, 3 s past is
// accepted and logged as a clock-skew acceptance.
func TestIDTokenConfiguredLeeway(t *testing.T) {
	tests := []struct {
		name    string
		expAgo  time.Duration
		reason  string // "" → accepted
		wantLog bool
	}{
		{"beyond the configured leeway", 30 * time.Second, "exp", false},
		{"within the configured leeway", 3 * time.Second, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			p := newTestIdP(t, newClock())
			rp := newTestRP(t, p, func(c *Config) {
				c.Leeway = 5 * time.Second
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			ar := mustAuthRequest(t)
			c := p.claims(ar.Nonce, "at-1")
			c["exp"] = p.clk.Now().Add(-tt.expAgo).Unix()
			p.set(func(p *testIdP) { p.token = okTokens(t, "at-1", "", c) })
			_, _, err := rp.Exchange(ctxT(t), "code-1", ar)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
			} else {
				var ie *IDTokenError
				if !errors.As(err, &ie) || ie.Reason != tt.reason {
					t.Fatalf("got %v, want an *IDTokenError with reason %q", err, tt.reason)
				}
			}
			const line = "lumin id token accepted within clock-skew leeway"
			if got := strings.Contains(logs.String(), line) && strings.Contains(logs.String(), "check=exp"); got != tt.wantLog {
				t.Errorf("leeway log line present: got %v, want %v\n%s", got, tt.wantLog, logs.String())
			}
		})
	}
}
