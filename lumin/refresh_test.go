package lumin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// loggedIn runs a code exchange and returns the session's tokens and identity.
func loggedIn(t *testing.T, p *testIdP, rp *RP) (Tokens, Identity) {
	t.Helper()
	ar := mustAuthRequest(t)
	p.set(func(p *testIdP) { p.token = okTokens(t, "at-1", "rt-1", p.claims(ar.Nonce, "at-1")) })
	tok, id, err := rp.Exchange(ctxT(t), "code-1", ar)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok, id
}

func TestNeedsRefresh(t *testing.T) {
	clk := newClock()
	rp := newTestRP(t, newTestIdP(t, clk))
	now := clk.Now()
	tests := []struct {
		name   string
		expiry time.Time
		want   bool
	}{
		{"zero expiry", time.Time{}, true},
		{"expired", now.Add(-time.Second), true},
		{"within 60 s", now.Add(59 * time.Second), true},
		{"exactly 60 s", now.Add(60 * time.Second), true},
		{"61 s left", now.Add(61 * time.Second), false},
		{"an hour left", now.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rp.NeedsRefresh(Tokens{Expiry: tt.expiry}); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRefreshSingleFlight: 100 concurrent callers with the same refresh token cause
// exactly one token request and all get the new set (security.md §7.3); a late caller
// with the rotated token gets it from the map without a request (§7.4).
func TestRefreshSingleFlight(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	old, id := loggedIn(t, p, rp)

	gate := make(chan struct{})
	p.set(func(p *testIdP) {
		claims := p.claims("", "at-2")
		ok := okTokens(t, "at-2", "rt-2", claims)
		p.token = func(w http.ResponseWriter, r *http.Request) {
			<-gate // hold the flight until every caller has joined
			ok(w, r)
		}
	})

	const n = 100
	var wg sync.WaitGroup
	var started sync.WaitGroup
	results := make([]Tokens, n)
	errs := make([]error, n)
	started.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			results[i], errs[i] = rp.Refresh(ctxT(t), old, id)
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let the goroutines reach Refresh; not asserted
	close(gate)
	wg.Wait()

	if got := p.count("token"); got != 2 { // 1 exchange + 1 refresh
		t.Fatalf("token requests: got %d, want 2 (one exchange, one refresh)", got)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if results[i].AccessToken != "at-2" || results[i].RefreshToken != "rt-2" {
			t.Fatalf("caller %d: got a different token set", i)
		}
	}
	form := p.tokenForms[1]
	for k, v := range map[string]string{"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": testClientID, "client_secret": testClientSecret} {
		if got := form.Get(k); got != v {
			t.Errorf("form %s: got %q, want %q", k, got, v)
		}
	}

	// A late request with the rotated token: answered from the map, no replay.
	late, err := rp.Refresh(ctxT(t), old, id)
	if err != nil || late.RefreshToken != "rt-2" {
		t.Fatalf("late refresh: got %v, %v", late.RefreshToken == "rt-2", err)
	}
	if got := p.count("token"); got != 2 {
		t.Errorf("token requests after late refresh: got %d, want 2", got)
	}
	// After 60 s the map entry is gone: the old token would now be sent (and rejected).
	p.clk.Advance(61 * time.Second)
	p.set(func(p *testIdP) {
		p.token = func(w http.ResponseWriter, r *http.Request) {
			tokenJSON(w, 400, map[string]any{"error": "invalid_grant"})
		}
	})
	if _, err := rp.Refresh(ctxT(t), old, id); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("after the map expired: got %v, want ErrInvalidGrant", err)
	}
}

func TestRefreshKeepsWhatIsMissing(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	old, id := loggedIn(t, p, rp)
	p.set(func(p *testIdP) {
		p.token = func(w http.ResponseWriter, r *http.Request) {
			tokenJSON(w, 200, map[string]any{"access_token": "at-2", "token_type": "bearer", "expires_in": 60})
		}
	})
	got, err := rp.Refresh(ctxT(t), old, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at-2" || got.RefreshToken != old.RefreshToken || got.IDToken != old.IDToken || !slices.Equal(got.Scopes, old.Scopes) {
		t.Errorf("refresh token, ID token and scopes not kept")
	}
	if want := p.clk.Now().Add(time.Minute); !got.Expiry.Equal(want) {
		t.Errorf("expiry: got %v, want %v", got.Expiry, want)
	}
}

func TestRefreshErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler func(p *testIdP) http.HandlerFunc
		want    error
		reason  string
		revoked int
	}{
		{"invalid_grant", func(p *testIdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				tokenJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "already used"})
			}
		}, ErrInvalidGrant, "", 0},
		{"hydra concurrent refresh", func(p *testIdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				tokenJSON(w, 400, map[string]any{"error": "invalid_request", "error_description": "The request is missing a parameter.",
					"error_hint": "Multiple concurrent requests to refresh the same token were made, retry later."})
			}
		}, ErrConcurrentRefresh, "", 0},
		{"500", func(p *testIdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }
		}, ErrUpstream, "", 0},
		{"invalid_client", func(p *testIdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				tokenJSON(w, 401, map[string]any{"error": "invalid_client"})
			}
		}, ErrClientConfig, "", 0},
		{"new ID token for another subject", func(p *testIdP) http.HandlerFunc {
			c := p.claims("", "at-2")
			c["sub"] = "user-2"
			return okTokens(p.t, "at-2", "rt-2", c)
		}, ErrIDToken, "sub", 1},
		{"new ID token from another issuer", func(p *testIdP) http.HandlerFunc {
			c := p.claims("", "at-2")
			c["iss"] = "https://evil.example"
			return okTokens(p.t, "at-2", "rt-2", c)
		}, ErrIDToken, "iss", 1},
		{"new ID token with stale iat", func(p *testIdP) http.HandlerFunc {
			c := p.claims("", "at-2")
			c["iat"] = p.clk.Now().Add(-time.Hour).Unix()
			return okTokens(p.t, "at-2", "rt-2", c)
		}, ErrIDToken, "iat", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestIdP(t, newClock())
			rp := newTestRP(t, p)
			old, id := loggedIn(t, p, rp)
			p.set(func(p *testIdP) { p.token = tt.handler(p) })
			_, err := rp.Refresh(ctxT(t), old, id)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			assertNoSecrets(t, err.Error(), "rt-1", "at-1", testClientSecret, "already used", "boom")
			if tt.reason != "" {
				var ie *IDTokenError
				if !errors.As(err, &ie) || ie.Reason != tt.reason {
					t.Errorf("reason: got %v, want %q", err, tt.reason)
				}
			}
			if got := p.count("token"); got != 2 {
				t.Errorf("token requests: got %d, want 2 (never retried)", got)
			}
			if got := p.count("revoke"); got != tt.revoked {
				t.Errorf("revocations: got %d, want %d", got, tt.revoked)
			}
		})
	}
}

// TestRefreshConcurrentUsesMap: Hydra refuses our refresh because a parallel one (which
// this process completed) won; the map has the answer (security.md §7.6).
func TestRefreshConcurrentUsesMap(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	old, id := loggedIn(t, p, rp)
	winner := Tokens{AccessToken: "at-w", RefreshToken: "rt-w", Expiry: p.clk.Now().Add(time.Hour)}
	p.set(func(p *testIdP) {
		p.token = func(w http.ResponseWriter, r *http.Request) {
			rp.remember(tokenHash(old.RefreshToken), winner)
			tokenJSON(w, 400, map[string]any{"error": "invalid_request", "error_description": "multiple concurrent requests"})
		}
	})
	got, err := rp.Refresh(ctxT(t), old, id)
	if err != nil || got.RefreshToken != "rt-w" {
		t.Errorf("got %v (winner=%v), want the winner's tokens", err, got.RefreshToken == "rt-w")
	}
}

// TestRefreshDetached: a caller that goes away does not abort the rotation; the result
// lands in the map for the next request (security.md §7.3).
func TestRefreshDetached(t *testing.T) {
	p := newTestIdP(t, newClock())
	rp := newTestRP(t, p)
	old, id := loggedIn(t, p, rp)
	gate := make(chan struct{})
	arrived := make(chan struct{})
	p.set(func(p *testIdP) {
		ok := okTokens(t, "at-2", "rt-2", nil)
		p.token = func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-gate
			ok(w, r)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := rp.Refresh(ctx, old, id); done <- err }()
	<-arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: got %v, want context.Canceled", err)
	}
	close(gate)
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, ok := rp.rotatedFor(tokenHash(old.RefreshToken)); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotation did not complete after the caller left")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, err := rp.Refresh(ctxT(t), old, id)
	if err != nil || got.RefreshToken != "rt-2" {
		t.Errorf("next request: got %v, want the rotated set", err)
	}
	if n := p.count("token"); n != 2 {
		t.Errorf("token requests: got %d, want 2", n)
	}
}

func TestRefreshWithoutRefreshToken(t *testing.T) {
	rp := newTestRP(t, newTestIdP(t, newClock()))
	if _, err := rp.Refresh(ctxT(t), Tokens{AccessToken: "at"}, Identity{}); !errors.Is(err, ErrNoRefreshToken) {
		t.Errorf("got %v, want ErrNoRefreshToken", err)
	}
}
