package lumin

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLatest: a token set whose refresh token was rotated within 60 s resolves to the
// newest rotation, following a chain, so a late request never re-saves or replays a
// spent refresh token (security.md §7.4).
func TestLatest(t *testing.T) {
	clk := newClock()
	rp := newTestRP(t, newTestIdP(t, clk))
	v1 := Tokens{AccessToken: "at-1", RefreshToken: "rt-1"}
	if _, ok := rp.Latest(v1); ok {
		t.Fatal("Latest found a rotation before any happened")
	}
	rp.remember(tokenHash("rt-1"), Tokens{AccessToken: "at-2", RefreshToken: "rt-2"})
	rp.remember(tokenHash("rt-2"), Tokens{AccessToken: "at-3", RefreshToken: "rt-3"})
	// A rotation whose response had no new refresh token keeps the old one (§7.2).
	rp.remember(tokenHash("rt-3"), Tokens{AccessToken: "at-4"})

	tests := []struct {
		name       string
		in         Tokens
		wantOK     bool
		wantAT     string
		wantRT     string
		advanceFor time.Duration
	}{
		{name: "first rotation followed to the newest", in: v1, wantOK: true, wantAT: "at-4", wantRT: "rt-3"},
		{name: "middle of the chain", in: Tokens{RefreshToken: "rt-2"}, wantOK: true, wantAT: "at-4", wantRT: "rt-3"},
		{name: "no refresh token", in: Tokens{AccessToken: "at-1"}, wantOK: false},
		{name: "unknown token", in: Tokens{RefreshToken: "rt-9"}, wantOK: false},
		{name: "forgotten after 60 s", in: v1, wantOK: false, advanceFor: 61 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.advanceFor)
			got, ok := rp.Latest(tt.in)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && (got.AccessToken != tt.wantAT || got.RefreshToken != tt.wantRT) {
				t.Errorf("got access %q refresh %q, want %q %q", got.AccessToken, got.RefreshToken, tt.wantAT, tt.wantRT)
			}
		})
	}
}

// TestSecretTypesRedact: types holding login secrets, tokens or the client secret print
// none of them through fmt or slog, also when nested in a struct that slog's JSON handler
// marshals with encoding/json (security.md §12.1, §12.3).
func TestSecretTypesRedact(t *testing.T) {
	ar, err := NewAuthRequest()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Issuer: "https://auth.example.test", ClientID: "client-1", ClientSecret: "s3cr3t-client-secret-value",
		RedirectURL: "https://app.example.test/auth/callback", Scopes: []string{"openid"}}
	tok := Tokens{AccessToken: "at-s3cr3t-access", RefreshToken: "rt-s3cr3t-refresh", IDToken: "eyJ-s3cr3t-id-token",
		Expiry: time.Now().Add(time.Hour), Scopes: []string{"openid"}}
	tests := []struct {
		name    string
		v       any
		secrets []string
		want    string // a non-secret that should still be shown ("" = none)
	}{
		{"AuthRequest", ar, []string{ar.State, ar.Nonce, ar.Verifier}, ""},
		{"*AuthRequest", &ar, []string{ar.State, ar.Nonce, ar.Verifier}, ""},
		{"Config", cfg, []string{cfg.ClientSecret}, "client-1"},
		{"*Config", &cfg, []string{cfg.ClientSecret}, "client-1"},
		{"struct holding an AuthRequest", struct{ A AuthRequest }{ar}, []string{ar.State, ar.Nonce, ar.Verifier}, ""},
		{"struct holding a Config", struct{ C Config }{Config{ClientID: "client-1", ClientSecret: cfg.ClientSecret}},
			[]string{cfg.ClientSecret}, "client-1"},
		{"Tokens", tok, []string{tok.AccessToken, tok.RefreshToken, tok.IDToken}, ""},
		{"*Tokens", &tok, []string{tok.AccessToken, tok.RefreshToken, tok.IDToken}, ""},
		{"struct holding Tokens", struct{ T Tokens }{tok}, []string{tok.AccessToken, tok.RefreshToken, tok.IDToken}, ""},
		{"struct holding both", struct {
			A AuthRequest
			C Config
		}{ar, cfg}, []string{ar.State, ar.Nonce, ar.Verifier, cfg.ClientSecret}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "v", tt.v)
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", tt.v)
			out := fmt.Sprintf("%v %+v %#v %s %q", tt.v, tt.v, tt.v, tt.v, tt.v) + buf.String()
			for _, s := range tt.secrets {
				if strings.Contains(out, s) {
					t.Errorf("output contains the secret %q:\n%s", s, out)
				}
			}
			if tt.want != "" && !strings.Contains(out, tt.want) {
				t.Errorf("output lacks the non-secret %q:\n%s", tt.want, out)
			}
		})
	}
}
