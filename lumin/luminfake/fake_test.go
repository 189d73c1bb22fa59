package luminfake

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestNewDefaults(t *testing.T) {
	f := New(Options{Issuer: "http://127.0.0.1:9"})
	defer f.Close()
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"issuer", f.Issuer(), "http://127.0.0.1:9"},
		{"API URL", f.APIURL(), "http://127.0.0.1:9/v1"},
		{"users", len(f.Users()), len(DefaultUsers())},
		{"access TTL", f.opts.AccessTokenTTL, time.Hour},
		{"refresh TTL", f.opts.RefreshTokenTTL, 720 * time.Hour},
		{"ID token TTL", f.opts.IDTokenTTL, time.Hour},
		{"code TTL", f.opts.CodeTTL, 10 * time.Minute},
		{"webhook retries", len(f.opts.WebhookRetries), 6},
		{"webhook client timeout", f.opts.WebhookClient.Timeout, 30 * time.Second},
		{"signing keys", len(f.keys), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestUsersReturnsACopy(t *testing.T) {
	f := New(Options{})
	defer f.Close()
	u := f.Users()
	u[0].Email = "changed@example.test"
	if got := f.Users()[0].Email; got == "changed@example.test" {
		t.Errorf("Users: got a slice aliasing internal state")
	}
}

func TestRegisterClientDefaults(t *testing.T) {
	f := New(Options{})
	defer f.Close()
	redirects := []string{"https://a.example.test/cb"}
	f.RegisterClient(Client{ID: "c", Secret: "s", RedirectURIs: redirects})
	redirects[0] = "https://evil.example.test/cb" // the caller's slice must not leak in
	f.mu.Lock()
	c := *f.clients["c"]
	f.mu.Unlock()
	if c.AuthMethod != "client_secret_post" {
		t.Errorf("AuthMethod: got %q, want client_secret_post", c.AuthMethod)
	}
	if c.Name != "c" {
		t.Errorf("Name: got %q, want the client ID", c.Name)
	}
	if len(c.Scopes) != len(supportedScopes) {
		t.Errorf("Scopes: got %v, want every supported scope", c.Scopes)
	}
	if c.RedirectURIs[0] != "https://a.example.test/cb" {
		t.Errorf("RedirectURIs: got %v, want a private copy", c.RedirectURIs)
	}
}

func TestServeHTTPWithoutListener(t *testing.T) {
	// A Fake is a plain http.Handler: usable from httptest without a port.
	f := New(Options{Issuer: "http://sandbox.test"})
	defer f.Close()
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"issuer":"http://sandbox.test"`) {
		t.Errorf("got %d %s, want 200 with the issuer", rec.Code, rec.Body.String())
	}
}

func TestIssuerWithTrailingSlash(t *testing.T) {
	// Older Hydra issuers end in "/" (lumin-api.md §3): the issuer stays exact and the
	// endpoints have no double slash.
	f := New(Options{Issuer: "http://sandbox.test/"})
	defer f.Close()
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `"issuer":"http://sandbox.test/"`) || !strings.Contains(body, `"token_endpoint":"http://sandbox.test/oauth2/token"`) {
		t.Errorf("got %s, want the exact issuer and single-slash endpoints", body)
	}
}

func TestNewServerURL(t *testing.T) {
	s, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || s.Issuer() != s.URL {
		t.Errorf("URL: got %q (issuer %q), want http://127.0.0.1:port for both", s.URL, s.Issuer())
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(s.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := c.Get(s.URL + "/.well-known/jwks.json"); err == nil {
		t.Errorf("after Close: got an answer, want the listener closed")
	}
	s.Fake.Close() // Close is idempotent
}

func TestRevokeUserGrants(t *testing.T) {
	e := newASEnv(t)
	ada := e.connect(t, newFlow())
	fl := newFlow()
	cb := e.authorize(t, fl, 1)
	grace, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.RevokeUserGrants("ADA@sandbox.lumin.test")
	if e.bearerOK(ada.AccessToken) {
		t.Errorf("Ada's token: got accepted, want revoked")
	}
	if !e.bearerOK(grace.AccessToken) {
		t.Errorf("Grace's token: got revoked, want untouched")
	}
}
