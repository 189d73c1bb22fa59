package luminfake

// Tests of the fault knobs that exist for the app's security tests: RevokeStatus,
// RefreshSubject, ForeignURLs and AccessTokenPad.

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

func TestRevokeStatusFault(t *testing.T) {
	e := newASEnv(t)
	for _, tc := range []struct {
		status int
		code   string
	}{
		{http.StatusServiceUnavailable, "temporarily_unavailable"},
		{http.StatusInternalServerError, "server_error"},
		{http.StatusBadGateway, "server_error"},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			tok := e.connect(t, newFlow())
			e.srv.SetFaults(Faults{RevokeStatus: tc.status})
			defer e.srv.SetFaults(Faults{})
			v := url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"},
				"client_id": {asClientID}, "client_secret": {asClientSecret}}
			st, body, h := e.postForm(t, "/oauth2/revoke", v, "", "")
			wantOAuthError(t, st, body, tc.status, tc.code)
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control: got %q, want no-store", got)
			}
			// Nothing was revoked: both tokens still work.
			if !e.bearerOK(tok.AccessToken) {
				t.Errorf("access token: got revoked, want untouched by a failed revocation")
			}
			e.srv.SetFaults(Faults{})
			if _, err := e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
				t.Errorf("refresh after the failed revocation: got %v, want success", err)
			}
		})
	}
	t.Run("token endpoint unaffected", func(t *testing.T) {
		e.srv.SetFaults(Faults{RevokeStatus: http.StatusServiceUnavailable})
		defer e.srv.SetFaults(Faults{})
		if tok := e.connect(t, newFlow()); tok.AccessToken == "" {
			t.Fatal("got no access token")
		}
	})
}

func TestRefreshSubjectFault(t *testing.T) {
	e := newASEnv(t)
	e.srv.SetFaults(Faults{RefreshSubject: "someone-else"})
	defer e.srv.SetFaults(Faults{})
	tok := e.connect(t, newFlow())
	want := e.srv.Users()[0].Subject

	// The code exchange keeps the real subject.
	idt, err := e.verifier.Verify(e.ctx, mustIDToken(t, tok, nil))
	if err != nil {
		t.Fatalf("exchange ID token: %v", err)
	}
	if idt.Subject != want {
		t.Errorf("exchange sub: got %q, want %q", idt.Subject, want)
	}

	// A refresh names someone else, in an otherwise valid ID token.
	next, err := e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	idt, err = e.verifier.Verify(e.ctx, mustIDToken(t, next, nil))
	if err != nil {
		t.Fatalf("refreshed ID token: %v", err)
	}
	if idt.Subject != "someone-else" {
		t.Errorf("refreshed sub: got %q, want someone-else", idt.Subject)
	}
	if err := idt.VerifyAccessToken(next.AccessToken); err != nil {
		t.Errorf("refreshed at_hash: %v", err)
	}
	if !e.bearerOK(next.AccessToken) {
		t.Errorf("refreshed access token: got rejected, want accepted")
	}
}

var base64URLChars = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestAccessTokenPadFault(t *testing.T) {
	e := newASEnv(t)
	plain := e.connect(t, newFlow())
	for _, pad := range []int{1, 2, 3, 4000} {
		t.Run("pad "+strconv.Itoa(pad), func(t *testing.T) {
			e.srv.SetFaults(Faults{AccessTokenPad: pad})
			defer e.srv.SetFaults(Faults{})
			tok := e.connect(t, newFlow())
			if got, want := len(tok.AccessToken), len(plain.AccessToken)+pad; got != want {
				t.Errorf("length: got %d, want %d", got, want)
			}
			if !strings.HasPrefix(tok.AccessToken, "ory_at_") || !base64URLChars.MatchString(strings.TrimPrefix(tok.AccessToken, "ory_at_")) {
				t.Errorf("token %.40q…: want ory_at_ and base64url characters only", tok.AccessToken)
			}
			if !e.bearerOK(tok.AccessToken) {
				t.Errorf("padded token: got rejected by the REST side, want accepted")
			}
			idt, err := e.verifier.Verify(e.ctx, mustIDToken(t, tok, nil))
			if err != nil {
				t.Fatalf("ID token: %v", err)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash over the padded token: %v", err)
			}
			// Refreshed tokens are padded too.
			next, err := e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if got, want := len(next.AccessToken), len(plain.AccessToken)+pad; got != want {
				t.Errorf("refreshed length: got %d, want %d", got, want)
			}
		})
	}
	if got := randomPad(0) + randomPad(-5); got != "" {
		t.Errorf("randomPad(0), randomPad(-5): got %q, want empty", got)
	}
}

func TestForeignURLsFault(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests.read")
	id := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	fileURL := s.APIURL() + "/signature_request/" + id + "/file?type=agreement"

	for _, tc := range []struct {
		name   string
		faults Faults
		origin string
	}{
		{"healthy", Faults{}, s.URL},
		{"foreign", Faults{ForeignURLs: true}, "https://evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.SetFaults(tc.faults)
			defer s.SetFaults(Faults{})
			sr := getRequest(t, s, tok, id)
			if got, want := sr["details_url"], tc.origin+"/sandbox/requests/"+id; got != want {
				t.Errorf("details_url: got %v, want %v", got, want)
			}
			resp, m := call(t, "GET", fileURL, tok, nil, "Accept", "application/json")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("file: got %d %v, want 200", resp.StatusCode, m)
			}
			if u, _ := m["signed_url"].(string); !strings.HasPrefix(u, tc.origin+"/sandbox/files/") {
				t.Errorf("signed_url: got %v, want it under %s/sandbox/files/", m["signed_url"], tc.origin)
			}
		})
	}
}
