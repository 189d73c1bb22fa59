package lumin

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestNewHTTPClient(t *testing.T) {
	var hit atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer target.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	defer redir.Close()

	c := NewHTTPClient(3 * time.Second)
	if c.Timeout != 3*time.Second {
		t.Errorf("Timeout: got %v, want 3s", c.Timeout)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport: got %T, want *http.Transport", c.Transport)
	}
	if tr.TLSHandshakeTimeout <= 0 || tr.ResponseHeaderTimeout <= 0 || tr.IdleConnTimeout <= 0 {
		t.Errorf("transport timeouts not all set: %v %v %v", tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout, tr.IdleConnTimeout)
	}
	if tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("certificate checks disabled")
	}
	if got := NewHTTPClient(0).Timeout; got <= 0 {
		t.Errorf("NewHTTPClient(0).Timeout: got %v, want a positive default", got)
	}

	// security.md §3.3, §8.1: a 307 would replay body and credentials; never follow.
	req, _ := http.NewRequest(http.MethodPost, redir.URL, strings.NewReader("code=x&client_secret=y"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status: got %d, want 307 returned as is", resp.StatusCode)
	}
	if n := hit.Load(); n != 0 {
		t.Errorf("redirect target hit %d times, want 0", n)
	}

	// A caller-supplied client that follows redirects is tamed too: both the copy
	// ownClient makes and the one an RP keeps from Config.HTTPClient return the 307
	// instead of replaying the request (security.md §3.3).
	own := ownClient(&http.Client{}, time.Second)
	if own.CheckRedirect == nil || own.Timeout != time.Second {
		t.Errorf("ownClient: CheckRedirect %v, Timeout %v", own.CheckRedirect != nil, own.Timeout)
	}
	rp, err := NewRP(Config{Issuer: redir.URL, ClientID: "c", ClientSecret: "s", RedirectURL: "http://127.0.0.1/cb",
		Scopes: []string{"openid"}, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	for name, hc := range map[string]*http.Client{"ownClient": own, "RP client": rp.hc} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, redir.URL, strings.NewReader("code=x&client_secret=y"))
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTemporaryRedirect {
				t.Errorf("status: got %d, want 307 returned as is", resp.StatusCode)
			}
			if n := hit.Load(); n != 0 {
				t.Errorf("redirect target hit %d times, want 0", n)
			}
		})
	}
}

func TestCheckEndpointURL(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"https://auth.luminpdf.com", true},
		{"https://auth.luminpdf.com/oauth2/token", true},
		{"http://127.0.0.1:4444/token", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080/x", true},
		{"http://auth.luminpdf.com/token", false},
		{"http://127.0.0.1.evil.example/x", false},
		{"ftp://auth.luminpdf.com", false},
		{"/relative", false},
		{"https://user:pw@auth.luminpdf.com", false},
		{"https://auth.luminpdf.com/#frag", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := checkEndpointURL(tt.in)
			if got := err == nil; got != tt.ok {
				t.Errorf("got ok=%v (%v), want %v", got, err, tt.ok)
			}
		})
	}
}

func TestNewRPValidatesConfig(t *testing.T) {
	base := Config{Issuer: "https://auth.luminpdf.com", ClientID: "c", ClientSecret: "s3cret-value", RedirectURL: "https://app.example/auth/callback", Scopes: []string{"openid"}}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"http issuer not loopback", func(c *Config) { c.Issuer = "http://auth.luminpdf.com" }, false},
		{"loopback http issuer", func(c *Config) { c.Issuer = "http://127.0.0.1:4444" }, true},
		{"no client id", func(c *Config) { c.ClientID = "" }, false},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, false},
		{"no openid", func(c *Config) { c.Scopes = []string{"profile.read"} }, false},
		{"relative redirect", func(c *Config) { c.RedirectURL = "/auth/callback" }, false},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }, false},
		{"bad post-logout URL", func(c *Config) { c.PostLogoutRedirectURL = "http://evil.example/" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mutate(&cfg)
			_, err := NewRP(cfg)
			if got := err == nil; got != tt.ok {
				t.Errorf("got ok=%v (%v), want %v", got, err, tt.ok)
			}
			if err != nil {
				assertNoSecrets(t, err.Error(), "s3cret-value")
			}
		})
	}
}

func TestNewAuthRequest(t *testing.T) {
	a, b := mustAuthRequest(t), mustAuthRequest(t)
	for name, v := range map[string]string{"state": a.State, "nonce": a.Nonce, "verifier": a.Verifier} {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(raw) != 32 {
			t.Errorf("%s: got %d bytes (%v), want 32 base64url bytes", name, len(raw), err)
		}
	}
	if a.State == b.State || a.Nonce == b.Nonce || a.Verifier == b.Verifier || a.State == a.Nonce {
		t.Error("values repeat between or within transactions")
	}
}

func TestDiscovery(t *testing.T) {
	t.Run("issuer mismatch shows both strings", func(t *testing.T) {
		p := newTestIdP(t, newClock())
		p.set(func(p *testIdP) { p.discovery["issuer"] = p.issuer + "/" })
		rp := newTestRP(t, p)
		_, err := rp.Discover(ctxT(t))
		if !errors.Is(err, ErrIssuerMismatch) {
			t.Fatalf("got %v, want ErrIssuerMismatch", err)
		}
		if msg := err.Error(); !strings.Contains(msg, `"`+p.issuer+`"`) || !strings.Contains(msg, `"`+p.issuer+`/"`) {
			t.Errorf("message %q does not show both issuers", msg)
		}
	})

	invalid := []struct {
		name string
		set  func(d map[string]any)
	}{
		{"PKCE methods without S256", func(d map[string]any) { d["code_challenge_methods_supported"] = []string{"plain"} }},
		{"PKCE methods empty", func(d map[string]any) { d["code_challenge_methods_supported"] = []string{} }},
		{"no RS256", func(d map[string]any) { d["id_token_signing_alg_values_supported"] = []string{"HS256", "none"} }},
		{"no client_secret_post", func(d map[string]any) { d["token_endpoint_auth_methods_supported"] = []string{"client_secret_basic"} }},
		{"http token endpoint", func(d map[string]any) { d["token_endpoint"] = "http://auth.example/token" }},
		{"http end session endpoint", func(d map[string]any) { d["end_session_endpoint"] = "http://auth.example/logout" }},
		{"no jwks_uri", func(d map[string]any) { delete(d, "jwks_uri") }},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, newClock())
			p.set(func(p *testIdP) { tt.set(p.discovery) })
			rp := newTestRP(t, p)
			_, err := rp.Discover(ctxT(t))
			if !errors.Is(err, ErrDiscoveryInvalid) || !errors.Is(err, ErrDiscoveryUnavailable) {
				t.Errorf("got %v, want ErrDiscoveryInvalid and ErrDiscoveryUnavailable", err)
			}
		})
	}

	t.Run("PKCE field absent is accepted", func(t *testing.T) {
		p := newTestIdP(t, newClock())
		p.set(func(p *testIdP) {
			delete(p.discovery, "code_challenge_methods_supported")
			delete(p.discovery, "id_token_signing_alg_values_supported")
		})
		if _, err := newTestRP(t, p).Discover(ctxT(t)); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})

	t.Run("down then up with back-off, then cached", func(t *testing.T) {
		clk := newClock()
		p := newTestIdP(t, clk)
		p.set(func(p *testIdP) { p.discoveryStatus = http.StatusServiceUnavailable })
		rp := newTestRP(t, p)
		ctx := ctxT(t)
		if _, err := rp.Discover(ctx); !errors.Is(err, ErrDiscoveryUnavailable) {
			t.Fatalf("got %v, want ErrDiscoveryUnavailable", err)
		}
		// Within the back-off: the cached error, no new request (security.md §13.3).
		if _, err := rp.Discover(ctx); !errors.Is(err, ErrDiscoveryUnavailable) {
			t.Fatalf("got %v, want ErrDiscoveryUnavailable", err)
		}
		if got := p.count("discovery"); got != 1 {
			t.Errorf("discovery requests during back-off: got %d, want 1", got)
		}
		p.set(func(p *testIdP) { p.discoveryStatus = 0 })
		clk.Advance(2 * time.Second)
		md, err := rp.Discover(ctx)
		if err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		if md.TokenEndpoint != p.issuer+"/token" {
			t.Errorf("token endpoint: got %q", md.TokenEndpoint)
		}
		if _, err := rp.Discover(ctx); err != nil {
			t.Fatal(err)
		}
		if got := p.count("discovery"); got != 2 {
			t.Errorf("discovery requests: got %d, want 2 (cached after success)", got)
		}
	})

	t.Run("JWKS down on a cold cache fails closed", func(t *testing.T) {
		p := newTestIdP(t, newClock())
		p.set(func(p *testIdP) { p.jwksStatus = http.StatusInternalServerError })
		if _, err := newTestRP(t, p).Discover(ctxT(t)); !errors.Is(err, ErrDiscoveryUnavailable) {
			t.Errorf("got %v, want ErrDiscoveryUnavailable", err)
		}
	})
}

func TestAuthCodeURL(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	ar := mustAuthRequest(t)
	raw, err := rp.AuthCodeURL(ctxT(t), ar)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != p.issuer+"/auth" {
		t.Errorf("endpoint: got %q, want %q", got, p.issuer+"/auth")
	}
	want := url.Values{
		"response_type":         {"code"},
		"client_id":             {testClientID},
		"redirect_uri":          {testRedirect},
		"scope":                 {"openid offline_access sign:requests"},
		"state":                 {ar.State},
		"nonce":                 {ar.Nonce},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(ar.Verifier)},
		"code_challenge_method": {"S256"},
	}
	q := u.Query()
	for k, v := range want {
		if got := q[k]; len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s: got %q, want %q", k, got, v[0])
		}
	}
	for k := range q {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected parameter %q", k)
		}
	}
	if strings.Contains(raw, ar.Verifier) {
		t.Error("the verifier itself is in the URL")
	}
	if _, err := rp.AuthCodeURL(ctxT(t), AuthRequest{State: "x"}); err == nil {
		t.Error("AuthCodeURL without nonce/verifier: got nil error")
	}
}

func TestCheckCallbackIssuer(t *testing.T) {
	tests := []struct {
		name      string
		advertise bool
		iss       string
		present   bool
		ok        bool
	}{
		{"absent, not advertised", false, "", false, true},
		{"absent but advertised", true, "", false, false},
		{"present and equal", true, "ISSUER", true, true},
		{"present and equal, not advertised", false, "ISSUER", true, true},
		{"present and different", false, "https://evil.example", true, false},
		{"present with trailing slash", true, "ISSUER/", true, false},
		{"present but empty", false, "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, newClock())
			p.set(func(p *testIdP) { p.discovery["authorization_response_iss_parameter_supported"] = tt.advertise })
			rp := newTestRP(t, p)
			iss := strings.ReplaceAll(tt.iss, "ISSUER", p.issuer)
			err := rp.CheckCallbackIssuer(ctxT(t), iss, tt.present)
			if got := err == nil; got != tt.ok {
				t.Errorf("got ok=%v (%v), want %v", got, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadCallback) {
				t.Errorf("got %v, want ErrBadCallback", err)
			}
		})
	}
}

func TestExchangeHappyPath(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	ar := mustAuthRequest(t)
	p.set(func(p *testIdP) { p.token = okTokens(t, "at-1", "rt-1", p.claims(ar.Nonce, "at-1")) })

	tok, id, err := rp.Exchange(ctxT(t), "code-1", ar)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.AccessToken != "at-1" || tok.RefreshToken != "rt-1" || tok.IDToken == "" {
		t.Errorf("tokens not filled")
	}
	if want := p.clk.Now().Add(time.Hour); !tok.Expiry.Equal(want) {
		t.Errorf("expiry: got %v, want %v", tok.Expiry, want)
	}
	if !tok.HasScope("sign:requests") {
		t.Errorf("scopes: got %q", tok.Scopes)
	}
	want := Identity{Issuer: p.issuer, Subject: "user-1", Email: "ada@example.com", Name: "Ada Lovelace", AuthTime: p.clk.Now().Add(-time.Minute).UTC()}
	if id != want {
		t.Errorf("identity: got %+v, want %+v", id, want)
	}

	// security.md §3.1–§3.2: exactly one request, client_secret_post, PKCE verifier,
	// identical redirect_uri.
	if n := p.count("token"); n != 1 {
		t.Fatalf("token requests: got %d, want 1", n)
	}
	form, hdr := p.tokenForms[0], p.tokenHeaders[0]
	wantForm := map[string]string{
		"grant_type":    "authorization_code",
		"code":          "code-1",
		"redirect_uri":  testRedirect,
		"code_verifier": ar.Verifier,
		"client_id":     testClientID,
		"client_secret": testClientSecret,
	}
	for k, v := range wantForm {
		if got := form.Get(k); got != v {
			t.Errorf("form %s: got %q, want %q", k, got, v)
		}
	}
	if h := hdr.Get("Authorization"); h != "" {
		t.Errorf("Authorization header: got %q, want none (AuthStyleInParams)", h)
	}
}

func TestExchangeResponses(t *testing.T) {
	body := func(mut func(m map[string]any)) func(p *testIdP, nonce string) http.HandlerFunc {
		return func(p *testIdP, nonce string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				m := map[string]any{
					"access_token": "at-1", "token_type": "bearer", "expires_in": 3600,
					"id_token": mint(t, p.claims(nonce, "at-1"), testKey1, "k1", nil),
				}
				mut(m)
				tokenJSON(w, http.StatusOK, m)
			}
		}
	}
	raw := func(status int, ct, b string) func(*testIdP, string) http.HandlerFunc {
		return func(*testIdP, string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if ct != "" {
					w.Header().Set("Content-Type", ct)
				}
				w.WriteHeader(status)
				_, _ = w.Write([]byte(b))
			}
		}
	}
	const leak = "LEAKY-UPSTREAM-BODY"
	tests := []struct {
		name       string
		handler    func(p *testIdP, nonce string) http.HandlerFunc
		want       error // nil → success
		wantExpiry time.Duration
		oauth      *OAuthError
	}{
		{"ok", body(func(map[string]any) {}), nil, time.Hour, nil},
		{"token_type Bearer", body(func(m map[string]any) { m["token_type"] = "Bearer" }), nil, time.Hour, nil},
		{"expires_in missing → 5 min", body(func(m map[string]any) { delete(m, "expires_in") }), nil, 5 * time.Minute, nil},
		{"expires_in numeric string", body(func(m map[string]any) { m["expires_in"] = "120" }), nil, 2 * time.Minute, nil},
		{"expires_in zero", body(func(m map[string]any) { m["expires_in"] = 0 }), ErrUpstream, 0, nil},
		{"expires_in negative", body(func(m map[string]any) { m["expires_in"] = -5 }), ErrUpstream, 0, nil},
		{"expires_in non-numeric", body(func(m map[string]any) { m["expires_in"] = "soon" }), ErrUpstream, 0, nil},
		{"expires_in bool", body(func(m map[string]any) { m["expires_in"] = true }), ErrUpstream, 0, nil},
		{"token_type mac", body(func(m map[string]any) { m["token_type"] = "mac" }), ErrUpstream, 0, nil},
		{"token_type missing", body(func(m map[string]any) { delete(m, "token_type") }), ErrUpstream, 0, nil},
		{"access_token empty", body(func(m map[string]any) { m["access_token"] = "" }), ErrUpstream, 0, nil},
		{"id_token missing", body(func(m map[string]any) { delete(m, "id_token") }), ErrUpstream, 0, nil},
		{"error member with 200", body(func(m map[string]any) { m["error"] = "invalid_grant" }), ErrInvalidGrant, 0, nil},
		{"invalid_grant", raw(400, "application/json", `{"error":"invalid_grant","error_description":"code used","error_debug":"`+leak+`"}`), ErrInvalidGrant, 0,
			&OAuthError{Status: 400, Code: "invalid_grant", Description: "code used"}},
		{"invalid_client", raw(401, "application/json", `{"error":"invalid_client","error_hint":"`+leak+`"}`), ErrClientConfig, 0, nil},
		{"unauthorized_client", raw(400, "application/json", `{"error":"unauthorized_client"}`), ErrClientConfig, 0, nil},
		{"invalid_scope", raw(400, "application/json", `{"error":"invalid_scope"}`), ErrClientConfig, 0, nil},
		{"unsupported_grant_type", raw(400, "application/json", `{"error":"unsupported_grant_type"}`), ErrClientConfig, 0, nil},
		{"invalid_request", raw(400, "application/json", `{"error":"invalid_request"}`), ErrTokenRejected, 0, nil},
		{"500 html", raw(500, "text/html", "<h1>"+leak+"</h1>"), ErrUpstream, 0, nil},
		{"502 empty", raw(502, "", ""), ErrUpstream, 0, nil},
		{"200 garbage", raw(200, "application/json", "{"+leak), ErrUpstream, 0, nil},
		{"200 form-encoded", raw(200, "application/x-www-form-urlencoded", "access_token=at&token_type=bearer&expires_in=60"), ErrUpstream, 0, nil},
		{"201 JSON", func(p *testIdP, nonce string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				tokenJSON(w, http.StatusCreated, map[string]any{"access_token": "at-1", "token_type": "bearer", "expires_in": 60,
					"id_token": mint(t, p.claims(nonce, "at-1"), testKey1, "k1", nil)})
			}
		}, ErrUpstream, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, newClock())
			rp := newTestRP(t, p)
			ar := mustAuthRequest(t)
			p.set(func(p *testIdP) { p.token = tt.handler(p, ar.Nonce) })
			tok, _, err := rp.Exchange(ctxT(t), "code-1", ar)
			if n := p.count("token"); n != 1 {
				t.Errorf("token requests: got %d, want exactly 1 (no retry, no auth-style probing)", n)
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if want := p.clk.Now().Add(tt.wantExpiry); !tok.Expiry.Equal(want) {
					t.Errorf("expiry: got %v, want %v", tok.Expiry, want)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			assertNoSecrets(t, err.Error(), leak, "code-1", testClientSecret, ar.Verifier, "at-1")
			if tt.oauth != nil {
				var oe *OAuthError
				if !errors.As(err, &oe) {
					t.Fatalf("got %T, want *OAuthError", err)
				}
				if oe.Status != tt.oauth.Status || oe.Code != tt.oauth.Code || oe.Description != tt.oauth.Description {
					t.Errorf("got %+v, want %+v", oe, tt.oauth)
				}
			}
		})
	}
}

func TestExchangeDoesNotFollowRedirect(t *testing.T) {
	var stolen atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	defer evil.Close()
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	p.set(func(p *testIdP) {
		p.token = func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, evil.URL+"/token", http.StatusTemporaryRedirect)
		}
	})
	_, _, err := rp.Exchange(ctxT(t), "code-1", mustAuthRequest(t))
	if !errors.Is(err, ErrUpstream) {
		t.Errorf("got %v, want ErrUpstream", err)
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("redirect followed %d times: code and secret replayed", n)
	}
}

func TestExchangeTimeout(t *testing.T) {
	p := newTestIdP(t, newClock())
	release := make(chan struct{})
	defer close(release)
	p.set(func(p *testIdP) {
		p.token = func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	rp := newTestRP(t, p)
	if _, err := rp.Discover(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, _, err := rp.Exchange(ctx, "code-1", mustAuthRequest(t))
	if !errors.Is(err, ErrUpstream) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want ErrUpstream and DeadlineExceeded", err)
	}
	if n := p.count("token"); n != 1 {
		t.Errorf("token requests: got %d, want 1", n)
	}
}

func TestExchangeRejectsBadCode(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	for name, code := range map[string]string{"empty": "", "over 2 KiB": strings.Repeat("a", 2049)} {
		t.Run(name, func(t *testing.T) {
			_, _, err := rp.Exchange(ctxT(t), code, mustAuthRequest(t))
			if !errors.Is(err, ErrBadCallback) {
				t.Errorf("got %v, want ErrBadCallback", err)
			}
		})
	}
	if n := p.count("token"); n != 0 {
		t.Errorf("token requests: got %d, want 0", n)
	}
}

func TestRevoke(t *testing.T) {
	tests := []struct {
		name     string
		tokens   Tokens
		handler  http.HandlerFunc
		noEP     bool
		want     error
		requests int
		token    string
		hint     string
	}{
		{"refresh token", Tokens{AccessToken: "at", RefreshToken: "rt"}, nil, false, nil, 1, "rt", "refresh_token"},
		{"access token fallback", Tokens{AccessToken: "at"}, nil, false, nil, 1, "at", "access_token"},
		{"nothing to revoke", Tokens{}, nil, false, nil, 0, "", ""},
		{"no endpoint", Tokens{RefreshToken: "rt"}, nil, true, nil, 0, "", ""},
		{"503", Tokens{RefreshToken: "rt"}, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", 503) }, false, ErrUpstream, 1, "rt", "refresh_token"},
		{"invalid_client", Tokens{RefreshToken: "rt"}, func(w http.ResponseWriter, r *http.Request) {
			tokenJSON(w, 401, map[string]any{"error": "invalid_client"})
		}, false, ErrClientConfig, 1, "rt", "refresh_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, newClock())
			p.set(func(p *testIdP) {
				if tt.handler != nil {
					p.revoke = tt.handler
				}
				if tt.noEP {
					delete(p.discovery, "revocation_endpoint")
				}
			})
			rp := newTestRP(t, p)
			err := rp.Revoke(ctxT(t), tt.tokens)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if n := p.count("revoke"); n != tt.requests {
				t.Fatalf("revoke requests: got %d, want %d", n, tt.requests)
			}
			if tt.requests == 0 {
				return
			}
			// RFC 7009 §2.1; client credentials in the body (security.md §9.2).
			f, h := p.revokeForms[0], p.revokeHeaders[0]
			for k, v := range map[string]string{"token": tt.token, "token_type_hint": tt.hint, "client_id": testClientID, "client_secret": testClientSecret} {
				if got := f.Get(k); got != v {
					t.Errorf("form %s: got %q, want %q", k, got, v)
				}
			}
			if h.Get("Authorization") != "" {
				t.Error("Authorization header sent")
			}
			if err != nil {
				assertNoSecrets(t, err.Error(), tt.token, testClientSecret)
			}
		})
	}
}

func TestEndSessionURL(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	got, ok := rp.EndSessionURL(ctxT(t), "idt")
	if !ok || got != p.issuer+"/logout?id_token_hint=idt" {
		t.Errorf("got %q %v, want only id_token_hint (lumin-api.md §9)", got, ok)
	}
	if _, ok := rp.EndSessionURL(ctxT(t), ""); ok {
		t.Error("without an ID token: got ok, want false")
	}

	rp2 := newTestRP(t, p, func(c *Config) { c.PostLogoutRedirectURL = "http://127.0.0.1:8080/" })
	got, _ = rp2.EndSessionURL(ctxT(t), "idt")
	u, _ := url.Parse(got)
	if q := u.Query(); q.Get("post_logout_redirect_uri") != "http://127.0.0.1:8080/" || q.Get("id_token_hint") != "idt" || q.Has("state") {
		t.Errorf("with PostLogoutRedirectURL: got %q", got)
	}

	p3 := newTestIdP(t, newClock())
	p3.set(func(p *testIdP) { delete(p.discovery, "end_session_endpoint") })
	if _, ok := newTestRP(t, p3).EndSessionURL(ctxT(t), "idt"); ok {
		t.Error("without end_session_endpoint: got ok, want false")
	}
}

// TestDiscoveryBackoffLogMatchesWait: the retry_in logged after a failed discovery is the
// wait actually applied, 1 s doubling up to the 1 min cap (security.md §13.3): a retry
// happens once the logged time has passed, never earlier and never later.
func TestDiscoveryBackoffLogMatchesWait(t *testing.T) {
	clk := newClock()
	p := newTestIdP(t, clk)
	p.set(func(p *testIdP) { p.discoveryStatus = http.StatusServiceUnavailable })
	var logs bytes.Buffer
	rp := newTestRP(t, p, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	ctx := ctxT(t)
	for i := 1; i <= 8; i++ {
		logs.Reset()
		if _, err := rp.Discover(ctx); !errors.Is(err, ErrDiscoveryUnavailable) {
			t.Fatalf("attempt %d: got %v, want ErrDiscoveryUnavailable", i, err)
		}
		if got := p.count("discovery"); got != i {
			t.Fatalf("attempt %d: discovery requests: got %d, want %d", i, got, i)
		}
		want := min(time.Second<<(i-1), time.Minute)
		if !strings.Contains(logs.String(), "retry_in="+want.String()) {
			t.Errorf("attempt %d: log %q lacks retry_in=%s", i, logs.String(), want)
		}
		// Just before the logged time: still backing off, no request.
		clk.Advance(want - time.Millisecond)
		if _, err := rp.Discover(ctx); !errors.Is(err, ErrDiscoveryUnavailable) || p.count("discovery") != i {
			t.Fatalf("attempt %d: retried before the logged %s", i, want)
		}
		clk.Advance(time.Millisecond)
	}
}
