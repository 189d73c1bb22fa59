package lumin_test

// Integration tests against the Lumin sandbox (lumin/luminfake), which shares no code
// with this package: a drift between our client and the wire format fails here.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/lumin/luminfake"
)

const (
	itClientID     = "it-client"
	itClientSecret = "it-secret-0123456789abcdef"
	itRedirect     = "http://127.0.0.1:8080/auth/callback"
	itScopes       = "openid offline_access profile.read sign:requests"
)

type itClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *itClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *itClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type itEnv struct {
	srv *luminfake.Server
	rp  *lumin.RP
	api *lumin.API
	clk *itClock // the RP's clock (the sandbox runs on real time)
}

func newITEnv(t *testing.T) *itEnv {
	t.Helper()
	srv, err := luminfake.NewServer(luminfake.Options{
		Clients: []luminfake.Client{{ID: itClientID, Secret: itClientSecret, Name: "Connect Lumin",
			RedirectURIs: []string{itRedirect}, Scopes: strings.Fields(itScopes)}},
		ProcessingDelay: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("luminfake.NewServer: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	clk := &itClock{t: time.Now()}
	rp, err := lumin.NewRP(lumin.Config{
		Issuer: srv.URL, ClientID: itClientID, ClientSecret: itClientSecret,
		RedirectURL: itRedirect, Scopes: strings.Fields(itScopes), Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	api, err := lumin.NewAPI(srv.APIURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &itEnv{srv: srv, rp: rp, api: api, clk: clk}
}

// authorize runs the browser part against the sandbox's consent page as the first user
// and returns the callback query and the transaction.
func (e *itEnv) authorize(t *testing.T) (url.Values, lumin.AuthRequest) {
	t.Helper()
	ar, err := lumin.NewAuthRequest()
	if err != nil {
		t.Fatal(err)
	}
	authURL, err := e.rp.AuthCodeURL(context.Background(), ar)
	if err != nil {
		t.Fatalf("AuthCodeURL: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Timeout: 5 * time.Second, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := goquery.NewDocumentFromReader(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("consent page: status %d, %v", resp.StatusCode, err)
	}
	form := url.Values{}
	doc.Find(`form[data-testid="sandbox-consent"] input[type="hidden"]`).Each(func(_ int, s *goquery.Selection) {
		form.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	form.Set("user", "0")
	form.Set("action", "allow")
	resp, err = browser.PostForm(e.srv.URL+"/oauth2/auth", form)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), itRedirect+"?") {
		t.Fatalf("callback redirect: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("state") != ar.State {
		t.Fatalf("state: got %q, want ours", q.Get("state"))
	}
	return q, ar
}

// connect runs a whole login: authorize, RFC 9207 check, exchange.
func (e *itEnv) connect(t *testing.T) (lumin.Tokens, lumin.Identity, lumin.AuthRequest) {
	t.Helper()
	ctx := context.Background()
	q, ar := e.authorize(t)
	if err := e.rp.CheckCallbackIssuer(ctx, q.Get("iss"), q.Has("iss")); err != nil {
		t.Fatalf("CheckCallbackIssuer: %v", err)
	}
	tok, id, err := e.rp.Exchange(ctx, q.Get("code"), ar)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok, id, ar
}

// sessionTS is a TokenSource over an in-memory "session", as the handlers build one
// over the cookie.
type sessionTS struct {
	mu  sync.Mutex
	rp  *lumin.RP
	tok lumin.Tokens
	id  lumin.Identity
}

func (s *sessionTS) AccessToken(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rp.NeedsRefresh(s.tok) {
		t, err := s.rp.Refresh(ctx, s.tok, s.id)
		if err != nil {
			return "", err
		}
		s.tok = t
	}
	return s.tok.AccessToken, nil
}

func (s *sessionTS) Refreshed(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.AccessToken != stale {
		return s.tok.AccessToken, nil
	}
	t, err := s.rp.Refresh(ctx, s.tok, s.id)
	if err != nil {
		return "", err
	}
	s.tok = t
	return t.AccessToken, nil
}

func countLogged(reqs []luminfake.LoggedRequest, match func(luminfake.LoggedRequest) bool) int {
	n := 0
	for _, r := range reqs {
		if match(r) {
			n++
		}
	}
	return n
}

func TestIntegrationLoginAPIRefreshRevoke(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	tok, id, ar := e.connect(t)
	ada := e.srv.Users()[0]

	if id.Issuer != e.srv.URL || id.Subject != ada.Subject || id.Email != ada.Email {
		t.Errorf("identity: got %+v, want Ada", id)
	}
	if tok.RefreshToken == "" || tok.IDToken == "" || !tok.HasScope("sign:requests") {
		t.Errorf("token set incomplete: refresh %v, id token %v, scopes %q", tok.RefreshToken != "", tok.IDToken != "", tok.Scopes)
	}
	// PKCE and client_secret_post observed at the sandbox (security.md §1.4, §3.1).
	var exch []luminfake.LoggedRequest
	for _, r := range e.srv.Requests() {
		if r.GrantType == "authorization_code" {
			exch = append(exch, r)
		}
	}
	if len(exch) != 1 || exch[0].ClientAuth != "client_secret_post" || exch[0].CodeVerifier != ar.Verifier {
		t.Errorf("code exchange at the sandbox: got %+v, want one client_secret_post request with our verifier", exch)
	}

	ts := &sessionTS{rp: e.rp, tok: tok, id: id}
	u, err := e.api.UserInfo(ctx, ts)
	if err != nil || u.ID != ada.ID || u.Email != ada.Email || u.Name != ada.Name {
		t.Fatalf("UserInfo: got %+v, %v", u, err)
	}
	ids := e.srv.RequestIDs(ada.Email)
	if len(ids) == 0 {
		t.Fatal("sandbox seeded no requests for Ada")
	}
	var approved string
	for _, rid := range ids {
		sr, err := e.api.Get(ctx, ts, rid)
		if err != nil {
			t.Fatalf("Get %s: %v", rid, err)
		}
		if sr.ID != rid || sr.Status == "" || sr.CreatedAt.IsZero() || len(sr.Signers) == 0 || sr.Signers[0].Email == "" {
			t.Errorf("Get %s: incomplete %+v", rid, sr)
		}
		if sr.Status == "APPROVED" && approved == "" {
			approved = rid
		}
	}
	if approved == "" {
		t.Fatal("the sandbox seeds Ada with a request in every status; no APPROVED one found")
	}
	f, err := e.api.File(ctx, ts, approved, lumin.FileCOC)
	if err != nil || f.URL == "" || f.ExpiresAt.Before(time.Now()) || f.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("File: got %+v, %v (expires_at is epoch seconds, ~30 min ahead)", f, err)
	}
	if _, err := e.api.Get(ctx, ts, "000000000000000000000000"); !errors.Is(err, lumin.ErrNotFound) {
		t.Errorf("Get unknown: got %v, want ErrNotFound", err)
	}

	// Refresh: 20 concurrent callers, one refresh-token request at the sandbox
	// (security.md §7.3), which rotates the refresh token.
	before := countLogged(e.srv.Requests(), func(r luminfake.LoggedRequest) bool { return r.GrantType == "refresh_token" })
	var wg sync.WaitGroup
	results := make([]lumin.Tokens, 20)
	errs := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], errs[i] = e.rp.Refresh(ctx, tok, id) }()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i].RefreshToken != results[0].RefreshToken {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
	}
	if n := countLogged(e.srv.Requests(), func(r luminfake.LoggedRequest) bool { return r.GrantType == "refresh_token" }) - before; n != 1 {
		t.Errorf("refresh requests at the sandbox: got %d, want 1", n)
	}
	newTok := results[0]
	if newTok.RefreshToken == tok.RefreshToken || newTok.AccessToken == tok.AccessToken {
		t.Error("refresh did not rotate")
	}
	ts = &sessionTS{rp: e.rp, tok: newTok, id: id}
	if _, err := e.api.UserInfo(ctx, ts); err != nil {
		t.Errorf("UserInfo with the rotated token: %v", err)
	}

	// End session URL from discovery, id_token_hint only (lumin-api.md §9).
	if u, ok := e.rp.EndSessionURL(ctx, newTok.IDToken); !ok || !strings.Contains(u, "/oauth2/sessions/logout?id_token_hint=") || strings.Contains(u, "post_logout") {
		t.Errorf("EndSessionURL: got %q %v", u, ok)
	}

	// Revoke the refresh token (RFC 7009): the grant is gone; the API answers 401, the
	// forced refresh fails with invalid_grant → reconnect (security.md §8.4, §9.2).
	if err := e.rp.Revoke(ctx, newTok); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if n := countLogged(e.srv.Requests(), func(r luminfake.LoggedRequest) bool {
		return r.TokenTypeHint == "refresh_token" && r.ClientAuth == "client_secret_post"
	}); n != 1 {
		t.Errorf("revocations at the sandbox: got %d, want 1 with hint refresh_token and client_secret_post", n)
	}
	_, err = e.api.UserInfo(ctx, ts)
	if !errors.Is(err, lumin.ErrReconnect) || !errors.Is(err, lumin.ErrInvalidGrant) || !lumin.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("after revoke: got %v, want 401 ErrReconnect wrapping ErrInvalidGrant", err)
	}
}

// TestIntegrationRefreshReuse: once the 60 s map has forgotten a rotation, replaying the
// old refresh token is reuse; the sandbox (like Hydra) answers invalid_grant and kills the
// chain (lumin-api.md §7).
func TestIntegrationRefreshReuse(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	tok, id, _ := e.connect(t)
	newTok, err := e.rp.Refresh(ctx, tok, id)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := e.rp.Refresh(ctx, tok, id); err != nil || again.RefreshToken != newTok.RefreshToken {
		t.Fatalf("within 60 s: got %v, want the rotated set from the map", err)
	}
	e.clk.Advance(61 * time.Second)
	if _, err := e.rp.Refresh(ctx, tok, id); !errors.Is(err, lumin.ErrInvalidGrant) {
		t.Fatalf("replay after 60 s: got %v, want ErrInvalidGrant", err)
	}
	if _, err := e.rp.Refresh(ctx, newTok, id); !errors.Is(err, lumin.ErrInvalidGrant) {
		t.Errorf("chain after reuse: got %v, want ErrInvalidGrant (whole chain revoked)", err)
	}
}

func TestIntegrationSendAndFaults(t *testing.T) {
	e := newITEnv(t)
	ctx := context.Background()
	tok, id, _ := e.connect(t)
	ts := &sessionTS{rp: e.rp, tok: tok, id: id}
	exp := time.Now().Add(7 * 24 * time.Hour)
	signers := []lumin.Signer{{Email: "bob@example.com", Name: "Bob", Group: 1}, {Email: "eve@example.com", Name: "Eve", Group: 2}}

	for name, in := range map[string]lumin.SendInput{
		"multipart": {Title: "NDA upload", File: []byte("%PDF-1.4\n%sandbox\n"), FileName: "nda.pdf", Signers: signers, SigningType: "ORDER", ExpiresAt: exp},
		"file URL":  {Title: "NDA by URL", FileURL: "https://example.com/nda.pdf", Signers: signers, SigningType: "SAME_TIME", ExpiresAt: exp},
	} {
		t.Run(name, func(t *testing.T) {
			sr, err := e.api.Send(ctx, ts, in)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if !lumin.ValidID(sr.ID) || sr.Status == "" {
				t.Fatalf("Send: got %+v", sr)
			}
			got, err := e.api.Get(ctx, ts, sr.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.Title != in.Title || len(got.Signers) != 2 || got.Signers[1].Email != "eve@example.com" || got.ExpiresAt.Unix() != exp.Unix() {
				t.Errorf("Get after Send: got %+v", got)
			}
		})
	}

	rid := e.srv.RequestIDs(e.srv.Users()[0].Email)[0]
	// One 500 on a GET: retried with back-off, then fine (security.md §8.4).
	e.srv.SetFaults(luminfake.Faults{APIStatus: http.StatusInternalServerError, APIStatusTimes: 1})
	if _, err := e.api.Get(ctx, ts, rid); err != nil {
		t.Errorf("GET after one 500: %v", err)
	}
	// A 500 on a POST is never retried (security.md §8.5).
	e.srv.SetFaults(luminfake.Faults{APIStatus: http.StatusInternalServerError, APIStatusTimes: 1})
	if _, _, err := e.api.Remind(ctx, ts, rid, []string{"x@example.com"}); !errors.Is(err, lumin.ErrUpstream) {
		t.Errorf("POST with a 500: got %v, want ErrUpstream", err)
	}
	// 429 with a long Retry-After: surfaced, not waited for.
	e.srv.SetFaults(luminfake.Faults{APIStatus: http.StatusTooManyRequests, APIStatusTimes: 1, RetryAfter: 30})
	if _, err := e.api.Get(ctx, ts, rid); !errors.Is(err, lumin.ErrRateLimited) || lumin.RetryAfter(err) != 30*time.Second {
		t.Errorf("429: got %v (retry after %v), want ErrRateLimited after 30s", err, lumin.RetryAfter(err))
	}
	// Token endpoint down: refresh → ErrUpstream, session kept.
	e.srv.SetFaults(luminfake.Faults{TokenStatus: http.StatusServiceUnavailable})
	if _, err := e.rp.Refresh(ctx, tok, id); !errors.Is(err, lumin.ErrUpstream) {
		t.Errorf("refresh with the token endpoint down: got %v, want ErrUpstream", err)
	}
	e.srv.SetFaults(luminfake.Faults{})
}

// TestIntegrationIDTokenFaults: the sandbox's ID-token faults are rejected at Exchange.
func TestIntegrationIDTokenFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults luminfake.Faults
		reason string
	}{
		{"bad signature", luminfake.Faults{BadSignature: true}, "signature"},
		{"wrong issuer", luminfake.Faults{WrongIssuer: true}, "iss"},
		{"wrong audience", luminfake.Faults{WrongAudience: true}, "aud"},
		{"wrong nonce", luminfake.Faults{WrongNonce: true}, "nonce_mismatch"},
		{"expired", luminfake.Faults{ClockSkew: -2 * time.Hour}, "exp"},
	}
	e := newITEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.srv.SetFaults(tt.faults)
			defer e.srv.SetFaults(luminfake.Faults{})
			q, ar := e.authorize(t)
			_, _, err := e.rp.Exchange(context.Background(), q.Get("code"), ar)
			var ie *lumin.IDTokenError
			if !errors.As(err, &ie) || ie.Reason != tt.reason {
				t.Errorf("got %v, want IDTokenError %q", err, tt.reason)
			}
		})
	}
}
