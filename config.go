package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/store"
)

// Config is the whole runtime configuration: non-secret settings from config.yaml,
// every one overridable from the environment, and secrets from the environment only
// (security.md §3.7: the client secret never lives in code or config.yaml).
type Config struct {
	App      AppConfig      `yaml:"app"`
	Lumin    LuminConfig    `yaml:"lumin"`
	Session  SessionConfig  `yaml:"session"`
	Database DatabaseConfig `yaml:"database"`
	Log      LogConfig      `yaml:"log"`
	Sandbox  SandboxConfig  `yaml:"sandbox"`

	// Secrets: never yaml keys (`yaml:"-"`), so a secret pasted into config.yaml is an
	// unknown-key error instead of a silently committed credential.
	ClientSecret  string   `yaml:"-"` // LUMIN_CLIENT_SECRET
	WebhookSecret string   `yaml:"-"` // LUMIN_WEBHOOK_SECRET
	SessionKeys   []string `yaml:"-"` // SESSION_KEYS, current first

	// SandboxMode is decided by run: no client id, or the -sandbox flag.
	SandboxMode bool `yaml:"-"`
}

// AppConfig is the "app" section of config.yaml.
type AppConfig struct {
	Addr           string   `yaml:"addr"`            // APP_ADDR
	BaseURL        string   `yaml:"base_url"`        // APP_BASE_URL
	TrustedProxies []string `yaml:"trusted_proxies"` // APP_TRUSTED_PROXIES (comma-separated CIDRs)
}

// LuminConfig is the "lumin" section of config.yaml.
type LuminConfig struct {
	ClientID      string        `yaml:"client_id"`       // LUMIN_CLIENT_ID; empty → sandbox mode
	Issuer        string        `yaml:"issuer"`          // LUMIN_ISSUER
	APIURL        string        `yaml:"api_url"`         // LUMIN_API_URL
	Scopes        string        `yaml:"scopes"`          // LUMIN_SCOPES, space-separated
	IDTokenLeeway time.Duration `yaml:"id_token_leeway"` // LUMIN_ID_TOKEN_LEEWAY
}

// SessionConfig is the "session" section of config.yaml.
type SessionConfig struct {
	IdleTimeout     time.Duration `yaml:"idle_timeout"`     // SESSION_IDLE_TIMEOUT
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"` // SESSION_ABSOLUTE_TIMEOUT
}

// DatabaseConfig is the "database" section of config.yaml.
type DatabaseConfig struct {
	URL string `yaml:"url"` // DATABASE_URL
}

// LogConfig is the "log" section of config.yaml.
type LogConfig struct {
	Format string `yaml:"format"` // LOG_FORMAT: text | json
	Level  string `yaml:"level"`  // LOG_LEVEL: debug | info | warn | error
}

// SandboxConfig is the "sandbox" section of config.yaml (used in sandbox mode only).
type SandboxConfig struct {
	ProcessingDelay time.Duration `yaml:"processing_delay"` // SANDBOX_PROCESSING_DELAY
	AutoSignAfter   time.Duration `yaml:"auto_sign_after"`  // SANDBOX_AUTO_SIGN_AFTER; 0 = off
	AccessTokenTTL  time.Duration `yaml:"access_token_ttl"` // SANDBOX_ACCESS_TOKEN_TTL; 0 = 1 h
	Faults          string        `yaml:"faults"`           // SANDBOX_FAULTS, e.g. api_status=429,retry_after=7,path=/v1/signature_request
}

// ConfigError lists every configuration problem found, one per line, so a person can
// fix them all at once. run returns it and main exits with status 2.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "invalid configuration:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// defaultConfig is design.md's configuration table.
func defaultConfig() Config {
	return Config{
		App: AppConfig{Addr: "127.0.0.1:8080", BaseURL: "http://localhost:8080"},
		Lumin: LuminConfig{
			Issuer:        "https://auth.luminpdf.com",
			APIURL:        "https://api.luminpdf.com/v1",
			Scopes:        "openid offline_access profile.read sign:requests",
			IDTokenLeeway: 60 * time.Second,
		},
		Session:  SessionConfig{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour},
		Database: DatabaseConfig{URL: "sqlite:data/app.db"},
		Log:      LogConfig{Format: "text", Level: "info"},
		Sandbox:  SandboxConfig{ProcessingDelay: time.Second},
	}
}

// envVar binds one environment variable to one field. Keeping the list in one table
// makes "every key can be overridden" checkable at a glance (design.md).
type envVar struct {
	name string
	set  func(c *Config, v string) error
}

func setString(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func setDuration(p func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("not a duration such as 30m or 60s")
		}
		*p(c) = d
		return nil
	}
}

func splitList(v, sep string) []string {
	var out []string
	for _, s := range strings.Split(v, sep) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

var envVars = []envVar{
	{"APP_ADDR", setString(func(c *Config) *string { return &c.App.Addr })},
	{"APP_BASE_URL", setString(func(c *Config) *string { return &c.App.BaseURL })},
	{"APP_TRUSTED_PROXIES", func(c *Config, v string) error { c.App.TrustedProxies = splitList(v, ","); return nil }},
	{"LUMIN_CLIENT_ID", setString(func(c *Config) *string { return &c.Lumin.ClientID })},
	{"LUMIN_ISSUER", setString(func(c *Config) *string { return &c.Lumin.Issuer })},
	{"LUMIN_API_URL", setString(func(c *Config) *string { return &c.Lumin.APIURL })},
	{"LUMIN_SCOPES", setString(func(c *Config) *string { return &c.Lumin.Scopes })},
	{"LUMIN_ID_TOKEN_LEEWAY", setDuration(func(c *Config) *time.Duration { return &c.Lumin.IDTokenLeeway })},
	{"SESSION_IDLE_TIMEOUT", setDuration(func(c *Config) *time.Duration { return &c.Session.IdleTimeout })},
	{"SESSION_ABSOLUTE_TIMEOUT", setDuration(func(c *Config) *time.Duration { return &c.Session.AbsoluteTimeout })},
	{"DATABASE_URL", setString(func(c *Config) *string { return &c.Database.URL })},
	{"LOG_FORMAT", setString(func(c *Config) *string { return &c.Log.Format })},
	{"LOG_LEVEL", setString(func(c *Config) *string { return &c.Log.Level })},
	{"SANDBOX_PROCESSING_DELAY", setDuration(func(c *Config) *time.Duration { return &c.Sandbox.ProcessingDelay })},
	{"SANDBOX_AUTO_SIGN_AFTER", setDuration(func(c *Config) *time.Duration { return &c.Sandbox.AutoSignAfter })},
	{"SANDBOX_ACCESS_TOKEN_TTL", setDuration(func(c *Config) *time.Duration { return &c.Sandbox.AccessTokenTTL })},
	{"SANDBOX_FAULTS", setString(func(c *Config) *string { return &c.Sandbox.Faults })},
	// Secrets: environment only (security.md §3.7, §6.1.2).
	{"LUMIN_CLIENT_SECRET", setString(func(c *Config) *string { return &c.ClientSecret })},
	{"LUMIN_WEBHOOK_SECRET", setString(func(c *Config) *string { return &c.WebhookSecret })},
	{"SESSION_KEYS", func(c *Config, v string) error { c.SessionKeys = splitList(v, ","); return nil }},
}

// maxConfigBytes bounds config.yaml; anything larger is not a hand-written config.
const maxConfigBytes = 1 << 20

// loadConfig reads path (a missing file is fine when optional is true: the defaults
// apply) and then the environment through getenv. It does not validate; call validate.
func loadConfig(path string, optional bool, getenv func(string) string) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		data, err := readLimited(path)
		switch {
		case err == nil:
			if err := decodeYAML(data, &cfg); err != nil {
				return cfg, &ConfigError{Problems: []string{fmt.Sprintf("%s: %v", path, err)}}
			}
		case optional && errors.Is(err, os.ErrNotExist):
		default:
			return cfg, &ConfigError{Problems: []string{fmt.Sprintf("cannot read config file: %v", err)}}
		}
	}
	var problems []string
	for _, ev := range envVars {
		if v, ok := lookup(getenv, ev.name); ok {
			if err := ev.set(&cfg, v); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", ev.name, err))
			}
		}
	}
	if len(problems) > 0 {
		return cfg, &ConfigError{Problems: problems}
	}
	return cfg, nil
}

// lookup treats an empty variable as unset, as shells and container runtimes commonly
// export empty values for "not configured".
func lookup(getenv func(string) string, name string) (string, bool) {
	v := strings.TrimSpace(getenv(name))
	return v, v != ""
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxConfigBytes)
	}
	return data, nil
}

// decodeYAML decodes with KnownFields so a typo (or a secret pasted in) is an error,
// not a silently ignored key (design.md "config").
func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// RedirectURL is the one redirect URI: APP_BASE_URL + "/auth/callback", never derived
// from request headers (security.md §1.5, RFC 6749 §3.1.2).
func (c Config) RedirectURL() string { return c.App.BaseURL + "/auth/callback" }

// ScopeList returns LUMIN_SCOPES split on spaces.
func (c Config) ScopeList() []string { return strings.Fields(c.Lumin.Scopes) }

// HTTPS reports whether the public base URL is https (Secure cookies, __Host-, HSTS).
func (c Config) HTTPS() bool { return strings.HasPrefix(c.App.BaseURL, "https://") }

// validate returns a *ConfigError listing every problem it finds, or nil. It needs no
// network; the network checks are in doctor.
func (c Config) validate() error {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	if _, _, err := net.SplitHostPort(c.App.Addr); err != nil {
		add("APP_ADDR %q is not host:port", c.App.Addr)
	}
	if err := checkBaseURL(c.App.BaseURL); err != nil {
		add("APP_BASE_URL %v", err)
	}
	if !c.SandboxMode {
		// In sandbox mode run points these at the loopback sandbox itself.
		if err := checkServiceURL(c.Lumin.Issuer); err != nil {
			add("LUMIN_ISSUER %v", err)
		}
		if err := checkServiceURL(c.Lumin.APIURL); err != nil {
			add("LUMIN_API_URL %v", err)
		}
		if c.Lumin.ClientID != "" && c.ClientSecret == "" {
			add("LUMIN_CLIENT_SECRET is required when LUMIN_CLIENT_ID is set (private apps authenticate with it, lumin-api.md §5)")
		}
	}
	scopes := c.ScopeList()
	if !slices.Contains(scopes, "openid") {
		// security.md §1.6: the ID token is how we know who signed in.
		add("LUMIN_SCOPES %q must contain openid", c.Lumin.Scopes)
	}
	if len(c.SessionKeys) == 0 && !c.SandboxMode {
		add("SESSION_KEYS is required outside sandbox mode: one or more comma-separated secrets of at least 32 bytes, current first (security.md §6.1.2)")
	}
	for i, k := range c.SessionKeys {
		if len(k) < store.MinKeyBytes {
			add("SESSION_KEYS entry %d is %d bytes; each must be at least 32 bytes (security.md §6.1.2)", i+1, len(k))
		}
	}
	if u := c.Database.URL; !strings.HasPrefix(u, "sqlite:") && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		add("DATABASE_URL must start with sqlite: or postgres://")
	}
	if c.Session.IdleTimeout <= 0 {
		add("session.idle_timeout must be positive")
	}
	if c.Session.AbsoluteTimeout <= 0 || c.Session.AbsoluteTimeout < c.Session.IdleTimeout {
		add("session.absolute_timeout must be positive and at least session.idle_timeout")
	}
	// 0 is refused rather than silently replaced: lumin.NewRP reads a zero leeway as
	// "use the 60 s default".
	if c.Lumin.IDTokenLeeway < time.Second || c.Lumin.IDTokenLeeway > 5*time.Minute {
		add("LUMIN_ID_TOKEN_LEEWAY must be between 1s and 5m (security.md §4.4)")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add("LOG_FORMAT must be text or json")
	}
	if _, ok := logLevels[strings.ToLower(c.Log.Level)]; !ok {
		add("LOG_LEVEL must be debug, info, warn or error")
	}
	for _, cidr := range c.App.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			add("APP_TRUSTED_PROXIES entry %q is not a CIDR such as 10.0.0.0/8", cidr)
		}
	}
	if c.Sandbox.ProcessingDelay < 0 || c.Sandbox.AutoSignAfter < 0 {
		add("sandbox delays must not be negative")
	}
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}

// checkBaseURL: https, or http on a loopback host; origin only, so that
// base + "/auth/callback" is exactly the registered redirect URI (security.md §1.5).
func checkBaseURL(raw string) error {
	u, err := checkURL(raw)
	if err != nil {
		return err
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "/") || u.User != nil {
		return fmt.Errorf("%q must be scheme://host[:port] with no trailing slash, path, query or user info", raw)
	}
	return nil
}

// checkServiceURL: the issuer and API URLs are https, or http on loopback (design.md).
func checkServiceURL(raw string) error {
	_, err := checkURL(raw)
	return err
}

func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%q must use https:// (http:// is accepted only for loopback hosts such as localhost or 127.0.0.1)", raw)
	}
	return u, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// doctor runs the start-up checks that need the network (real mode only). Problems
// that make sign-in impossible are returned as a *ConfigError; a Lumin that is merely
// unreachable is a warning, because the app must start anyway and retry lazily
// (security.md §13.3).
func doctor(ctx context.Context, cfg Config, rp *lumin.RP, hc *http.Client, now func() time.Time, warn func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var problems []string

	_, err := rp.Discover(ctx)
	switch {
	case errors.Is(err, lumin.ErrIssuerMismatch):
		// security.md §1.2: show both strings so a trailing "/" is easy to spot.
		problems = append(problems, fmt.Sprintf("LUMIN_ISSUER %q does not match the discovery document's issuer exactly (%v); set LUMIN_ISSUER to the published string", cfg.Lumin.Issuer, err))
	case errors.Is(err, lumin.ErrDiscoveryInvalid):
		// The issuer answered, with a document we must refuse (e.g. PKCE without S256,
		// security.md §1.4; no RS256; no client_secret_post): sign-in could never work, so
		// this is not the "unreachable, start anyway" case. lumin.checkMetadata is the one
		// place these rules live.
		problems = append(problems, fmt.Sprintf("the discovery document of %s is not acceptable: %v", cfg.Lumin.Issuer, err))
	case err != nil:
		warn(fmt.Sprintf("warning: Lumin discovery at %s is unreachable (%v); starting anyway, sign-in answers 503 until it is back", cfg.Lumin.Issuer, err))
	}
	if err == nil {
		if skew, ok := clockSkew(ctx, hc, cfg.Lumin.Issuer, now); ok && (skew > time.Minute || skew < -time.Minute) {
			// ID token exp/iat checks allow only LUMIN_ID_TOKEN_LEEWAY (security.md §4.4).
			warn(fmt.Sprintf("warning: this machine's clock differs from the issuer's by %s; ID token checks allow %s — fix the clock (NTP)", skew.Round(time.Second), cfg.Lumin.IDTokenLeeway))
		}
	}
	if len(problems) > 0 {
		return &ConfigError{Problems: problems}
	}
	return nil
}

// clockSkew compares our clock with the issuer's Date header (issuer time − ours).
func clockSkew(ctx context.Context, hc *http.Client, issuer string, now func() time.Time) (time.Duration, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return 0, false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, false
	}
	return d.Sub(now()), true
}

var logLevels = map[string]int{"debug": -4, "info": 0, "warn": 4, "error": 8}

// String renders a Config for start-up output without any secret.
func (c Config) String() string {
	return "Config{addr=" + c.App.Addr + " base_url=" + c.App.BaseURL + " issuer=" + c.Lumin.Issuer +
		" sandbox=" + strconv.FormatBool(c.SandboxMode) + " secrets=[redacted]}"
}

// GoString implements fmt.GoStringer: %#v would otherwise print ClientSecret,
// WebhookSecret and SessionKeys (security.md §12.1, §12.3).
func (c Config) GoString() string { return c.String() }

// Format implements fmt.Formatter so every verb (%v, %+v, %#v, %s, %q) is redacted.
func (c Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// MarshalJSON keeps the redaction when a Config is nested in a value a JSON logger
// marshals (slog only asks the top-level value for LogValue).
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// LogValue implements slog.LogValuer: the non-secret settings as a group.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.App.Addr),
		slog.String("base_url", c.App.BaseURL),
		slog.String("issuer", c.Lumin.Issuer),
		slog.Bool("sandbox", c.SandboxMode),
		slog.String("secrets", "[redacted]"),
	)
}
