package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/connectlumin/app/lumin/luminfake"
)

// startSandbox serves luminfake on a loopback port, registers this app as its client and
// points the configuration at it (issue 3 "Sandbox mode in the app"). Secrets it needs are
// random per run (security.md §6.1.2: GenerateRandomKey-style keys only in sandbox mode).
func startSandbox(cfg *Config) (*luminfake.Server, error) {
	secret := randomSecret()
	if cfg.WebhookSecret == "" {
		cfg.WebhookSecret = randomSecret()
	}
	if len(cfg.SessionKeys) == 0 {
		cfg.SessionKeys = []string{randomSecret()}
	}
	fake, err := luminfake.NewServer(luminfake.Options{
		Clients: []luminfake.Client{{
			ID:           "connect-lumin-sandbox",
			Secret:       secret,
			Name:         "Connect Lumin (sandbox)",
			RedirectURIs: []string{cfg.RedirectURL()},
			Scopes:       sandboxScopes(cfg.ScopeList()),
			AuthMethod:   "client_secret_post",
		}},
		ProcessingDelay: cfg.Sandbox.ProcessingDelay,
		AutoSignAfter:   cfg.Sandbox.AutoSignAfter,
		AccessTokenTTL:  cfg.Sandbox.AccessTokenTTL,
		WebhookURL:      cfg.App.BaseURL + "/webhooks/lumin",
		WebhookSecret:   cfg.WebhookSecret,
		// Lumin has no list endpoint (lumin-api.md §16.4): without this the seeded
		// requests would stay invisible and the offline demo would look empty.
		ReplaySeedOnConsent: true,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the Lumin sandbox: %w", err)
	}
	if cfg.Sandbox.Faults != "" {
		fl, err := parseSandboxFaults(cfg.Sandbox.Faults)
		if err != nil {
			fake.Close()
			return nil, &ConfigError{Problems: []string{"SANDBOX_FAULTS: " + err.Error()}}
		}
		fake.SetFaults(fl)
	}
	cfg.Lumin.ClientID, cfg.ClientSecret = "connect-lumin-sandbox", secret
	cfg.Lumin.Issuer, cfg.Lumin.APIURL = fake.Issuer(), fake.APIURL()
	return fake, nil
}

// sandboxScopes is what the sandbox app registration allows: the default scopes, the
// configured ones, and read-only requests plus templates so every feature can be tried.
func sandboxScopes(configured []string) []string {
	out := strings.Fields(defaultConfig().Lumin.Scopes)
	for _, s := range append(configured, "sign:requests.read", "templates") {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sandboxURL(f *luminfake.Server) string {
	if f == nil {
		return ""
	}
	return f.URL
}

// parseSandboxFaults reads SANDBOX_FAULTS, comma-separated key=value pairs: api_status,
// retry_after (seconds), times (0 = every call) and path (a REST path prefix the fault
// applies to), e.g. "api_status=429,retry_after=7,path=/v1/signature_request".
func parseSandboxFaults(v string) (luminfake.Faults, error) {
	var fl luminfake.Faults
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
		var err error
		switch k {
		case "api_status":
			fl.APIStatus, err = strconv.Atoi(val)
		case "retry_after":
			fl.RetryAfter, err = strconv.Atoi(val)
		case "times":
			fl.APIStatusTimes, err = strconv.Atoi(val)
		case "path":
			fl.APIPath = val
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return luminfake.Faults{}, err
		}
	}
	return fl, nil
}
