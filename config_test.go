package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/lumin/luminfake"
)

const goodKey = "0123456789abcdef0123456789abcdef"

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShippedConfigMatchesDefaults(t *testing.T) {
	cfg, err := loadConfig("config.yaml", false, envFunc(nil))
	if err != nil {
		t.Fatalf("loading the shipped config.yaml: %v", err)
	}
	want := defaultConfig()
	if cfg.App.Addr != want.App.Addr || cfg.App.BaseURL != want.App.BaseURL || len(cfg.App.TrustedProxies) != 0 {
		t.Errorf("app section = %+v, want %+v", cfg.App, want.App)
	}
	if cfg.Lumin != want.Lumin || cfg.Session != want.Session || cfg.Database != want.Database || cfg.Log != want.Log || cfg.Sandbox != want.Sandbox {
		t.Errorf("config.yaml differs from design.md defaults:\ngot  %+v\nwant %+v", cfg, want)
	}
	// Every key in config.yaml carries a comment.
	data, _ := os.ReadFile("config.yaml")
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		trim := strings.TrimSpace(l)
		if trim == "" || strings.HasPrefix(trim, "#") || !strings.HasPrefix(l, "  ") {
			continue
		}
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("config.yaml line %d %q has no comment above it", i+1, trim)
		}
	}
}

func TestLoadConfigEnvOverridesEveryKey(t *testing.T) {
	env := map[string]string{
		"APP_ADDR": "127.0.0.1:9", "APP_BASE_URL": "https://app.example.com", "APP_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16",
		"LUMIN_CLIENT_ID": "id", "LUMIN_ISSUER": "https://issuer.example", "LUMIN_API_URL": "https://api.example/v1",
		"LUMIN_SCOPES": "openid sign:requests", "LUMIN_ID_TOKEN_LEEWAY": "30s",
		"SESSION_IDLE_TIMEOUT": "10m", "SESSION_ABSOLUTE_TIMEOUT": "2h", "DATABASE_URL": "postgres://u@h/db",
		"LOG_FORMAT": "json", "LOG_LEVEL": "debug", "SANDBOX_PROCESSING_DELAY": "2s", "SANDBOX_AUTO_SIGN_AFTER": "5s",
		"SANDBOX_ACCESS_TOKEN_TTL": "3s", "SANDBOX_FAULTS": "api_status=503",
		"LUMIN_CLIENT_SECRET": "s3cret", "LUMIN_WEBHOOK_SECRET": "whsec", "SESSION_KEYS": goodKey + "," + goodKey + "x",
	}
	cfg, err := loadConfig("config.yaml", false, envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"addr", cfg.App.Addr, "127.0.0.1:9"},
		{"base", cfg.App.BaseURL, "https://app.example.com"},
		{"proxies", strings.Join(cfg.App.TrustedProxies, ","), "10.0.0.0/8,192.168.0.0/16"},
		{"client id", cfg.Lumin.ClientID, "id"},
		{"issuer", cfg.Lumin.Issuer, "https://issuer.example"},
		{"api", cfg.Lumin.APIURL, "https://api.example/v1"},
		{"scopes", cfg.Lumin.Scopes, "openid sign:requests"},
		{"leeway", cfg.Lumin.IDTokenLeeway, 30 * time.Second},
		{"idle", cfg.Session.IdleTimeout, 10 * time.Minute},
		{"absolute", cfg.Session.AbsoluteTimeout, 2 * time.Hour},
		{"db", cfg.Database.URL, "postgres://u@h/db"},
		{"log format", cfg.Log.Format, "json"},
		{"log level", cfg.Log.Level, "debug"},
		{"processing", cfg.Sandbox.ProcessingDelay, 2 * time.Second},
		{"autosign", cfg.Sandbox.AutoSignAfter, 5 * time.Second},
		{"token ttl", cfg.Sandbox.AccessTokenTTL, 3 * time.Second},
		{"faults", cfg.Sandbox.Faults, "api_status=503"},
		{"secret", cfg.ClientSecret, "s3cret"},
		{"webhook", cfg.WebhookSecret, "whsec"},
		{"keys", len(cfg.SessionKeys), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := cfg.validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	if len(envVars) != len(checks) {
		t.Errorf("envVars has %d entries, the test checks %d: add the new variable here", len(envVars), len(checks))
	}
}

func TestLoadConfigRejectsUnknownAndSecretKeys(t *testing.T) {
	for name, body := range map[string]string{
		"typo":          "app:\n  adr: 1.2.3.4:80\n",
		"client secret": "lumin:\n  client_secret: hunter2\n",
		"top-level":     "session_keys: abc\n",
		"bad duration":  "session:\n  idle_timeout: soon\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, body), false, envFunc(nil))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
		})
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.yaml"), false, envFunc(nil)); err == nil {
		t.Error("an explicit missing -config file must be an error")
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.yaml"), true, envFunc(nil)); err != nil {
		t.Errorf("the optional default config.yaml may be missing: %v", err)
	}
	_, err := loadConfig("config.yaml", false, envFunc(map[string]string{"SESSION_IDLE_TIMEOUT": "forever"}))
	if err == nil || !strings.Contains(err.Error(), "SESSION_IDLE_TIMEOUT") {
		t.Errorf("bad env duration: got %v", err)
	}
}

func TestValidate(t *testing.T) {
	base := func() Config {
		c := defaultConfig()
		c.Lumin.ClientID, c.ClientSecret, c.SessionKeys = "id", "secret", []string{goodKey}
		c.App.BaseURL = "https://app.example.com"
		return c
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		problem string // "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"loopback http base", func(c *Config) { c.App.BaseURL = "http://localhost:8080" }, ""},
		{"127.0.0.1 http base", func(c *Config) { c.App.BaseURL = "http://127.0.0.1:8080" }, ""},
		{"ipv6 loopback", func(c *Config) { c.App.BaseURL = "http://[::1]:8080" }, ""},
		{"http base not loopback", func(c *Config) { c.App.BaseURL = "http://app.example.com" }, "APP_BASE_URL"},
		{"base trailing slash", func(c *Config) { c.App.BaseURL = "https://app.example.com/" }, "APP_BASE_URL"},
		{"base with path", func(c *Config) { c.App.BaseURL = "https://app.example.com/app" }, "APP_BASE_URL"},
		{"base with query", func(c *Config) { c.App.BaseURL = "https://app.example.com?x=1" }, "APP_BASE_URL"},
		{"base not a URL", func(c *Config) { c.App.BaseURL = "app.example.com" }, "APP_BASE_URL"},
		{"http issuer", func(c *Config) { c.Lumin.Issuer = "http://auth.luminpdf.com" }, "LUMIN_ISSUER"},
		{"http api", func(c *Config) { c.Lumin.APIURL = "http://api.luminpdf.com/v1" }, "LUMIN_API_URL"},
		{"id without secret", func(c *Config) { c.ClientSecret = "" }, "LUMIN_CLIENT_SECRET"},
		{"no openid", func(c *Config) { c.Lumin.Scopes = "offline_access sign:requests" }, "openid"},
		{"no session keys", func(c *Config) { c.SessionKeys = nil }, "SESSION_KEYS is required"},
		{"no session keys in sandbox", func(c *Config) { c.SessionKeys = nil; c.SandboxMode = true }, ""},
		{"short session key", func(c *Config) { c.SessionKeys = []string{goodKey, "short"} }, "SESSION_KEYS entry 2"},
		{"database scheme", func(c *Config) { c.Database.URL = "mysql://x" }, "DATABASE_URL"},
		{"bad addr", func(c *Config) { c.App.Addr = "8080" }, "APP_ADDR"},
		{"bad proxy", func(c *Config) { c.App.TrustedProxies = []string{"10.0.0.1"} }, "APP_TRUSTED_PROXIES"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "LOG_FORMAT"},
		{"leeway", func(c *Config) { c.Lumin.IDTokenLeeway = time.Hour }, "LEEWAY"},
		{"zero leeway", func(c *Config) { c.Lumin.IDTokenLeeway = 0 }, "LEEWAY"}, // lumin would read 0 as 60 s
		{"timeouts", func(c *Config) { c.Session.AbsoluteTimeout = time.Minute }, "absolute_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			err := c.validate()
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError mentioning %q", err, tt.problem)
			}
			if !slices.ContainsFunc(ce.Problems, func(p string) bool { return strings.Contains(p, tt.problem) }) {
				t.Errorf("problems %q do not mention %q", ce.Problems, tt.problem)
			}
		})
	}
	// Several problems are reported together, one line each.
	c := base()
	c.ClientSecret, c.SessionKeys, c.Lumin.Scopes = "", nil, "profile.read"
	var ce *ConfigError
	if err := c.validate(); !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Errorf("got %v, want exactly 3 problems", err)
	}
}

func TestDoctor(t *testing.T) {
	fake, err := luminfake.NewServer(luminfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	hc := lumin.NewHTTPClient(5 * time.Second)
	newRP := func(issuer string) *lumin.RP {
		rp, err := lumin.NewRP(lumin.Config{Issuer: issuer, ClientID: "x", ClientSecret: "y", RedirectURL: "http://localhost/auth/callback", Scopes: []string{"openid"}})
		if err != nil {
			t.Fatal(err)
		}
		return rp
	}
	cfg := defaultConfig()

	t.Run("healthy", func(t *testing.T) {
		var warnings []string
		cfg.Lumin.Issuer = fake.URL
		if err := doctor(context.Background(), cfg, newRP(fake.URL), hc, time.Now, func(s string) { warnings = append(warnings, s) }); err != nil {
			t.Fatalf("doctor: %v", err)
		}
		if len(warnings) != 0 {
			t.Errorf("warnings: %q", warnings)
		}
	})
	t.Run("issuer mismatch is fatal", func(t *testing.T) {
		cfg.Lumin.Issuer = fake.URL + "/"
		err := doctor(context.Background(), cfg, newRP(fake.URL+"/"), hc, time.Now, func(string) {})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "LUMIN_ISSUER") {
			t.Fatalf("got %v, want a ConfigError naming LUMIN_ISSUER", err)
		}
	})
	t.Run("unreachable is a warning", func(t *testing.T) {
		dead := "http://" + freeLoopbackAddr(t)
		cfg.Lumin.Issuer = dead
		var warnings []string
		if err := doctor(context.Background(), cfg, newRP(dead), hc, time.Now, func(s string) { warnings = append(warnings, s) }); err != nil {
			t.Fatalf("got %v, want start anyway (security.md §13.3)", err)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "unreachable") {
			t.Errorf("warnings = %q, want one about reachability", warnings)
		}
	})
	t.Run("PKCE without S256 is fatal", func(t *testing.T) {
		// security.md §1.4: a discovery document that answers but offers only "plain"
		// must stop start-up, not pass as "unreachable".
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Path != "/.well-known/openid-configuration" {
				_, _ = w.Write([]byte(`{"keys":[]}`))
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer": srv.URL, "authorization_endpoint": srv.URL + "/oauth2/auth",
				"token_endpoint": srv.URL + "/oauth2/token", "jwks_uri": srv.URL + "/jwks",
				"id_token_signing_alg_values_supported": []string{"RS256"},
				"code_challenge_methods_supported":      []string{"plain"},
			})
		}))
		defer srv.Close()
		cfg.Lumin.Issuer = srv.URL
		var warnings []string
		err := doctor(context.Background(), cfg, newRP(srv.URL), hc, time.Now, func(s string) { warnings = append(warnings, s) })
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "not acceptable") {
			t.Fatalf("got %v (warnings %q), want a ConfigError saying the document is not acceptable", err, warnings)
		}
	})
	t.Run("clock skew is a warning", func(t *testing.T) {
		cfg.Lumin.Issuer = fake.URL
		var warnings []string
		skewed := func() time.Time { return time.Now().Add(5 * time.Minute) }
		if err := doctor(context.Background(), cfg, newRP(fake.URL), hc, skewed, func(s string) { warnings = append(warnings, s) }); err != nil {
			t.Fatal(err)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "clock") {
			t.Errorf("warnings = %q, want one about the clock", warnings)
		}
	})
}

// FuzzLoadConfig: arbitrary config.yaml content never panics; it loads or errors, and
// whatever loads can be validated.
func FuzzLoadConfig(f *testing.F) {
	shipped, _ := os.ReadFile("config.yaml")
	for _, seed := range []string{
		string(shipped),
		"",
		"app: {addr: ':0'}",
		"app:\n  trusted_proxies: [10.0.0.0/8, x]\n",
		"lumin:\n  id_token_leeway: -5s\n",
		"session: [1, 2]",
		"{{{{",
		"&a [*a, *a]",
		"lumin: !!binary aGVsbG8=",
		"app:\n  addr: 1\n  addr: 2\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatalf("writing the fuzz input: %v", err)
		}
		cfg, err := loadConfig(p, false, envFunc(nil))
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			return
		}
		_ = cfg.validate()
	})
}
