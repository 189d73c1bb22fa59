package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin/luminfake"
)

func TestConnectHappyPath(t *testing.T) {
	env := newTestEnv(t)
	resp := env.connect()
	if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("callback Referrer-Policy = %q, want no-referrer (security.md §2.6)", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("callback Cache-Control = %q, want no-store", got)
	}
	doc := env.mustConnected()
	want := luminfake.DefaultUsers()[0]
	if got := strings.TrimSpace(doc.Find(`[data-testid="user-name"]`).Text()); got != want.Name {
		t.Errorf("user-name = %q, want %q", got, want.Name)
	}
	if got := strings.TrimSpace(doc.Find(`[data-testid="user-email"]`).Text()); got != want.Email {
		t.Errorf("user-email = %q, want %q", got, want.Email)
	}
	if doc.Find(`[data-testid="scopes"] li`).Length() == 0 {
		t.Error("dashboard lists no granted scopes")
	}
	if doc.Find(`[data-testid="requests-summary"]`).Length() != 1 {
		t.Error("dashboard has no requests-summary section")
	}
	if doc.Find(`[data-testid="sandbox-banner"]`).Length() != 1 {
		t.Error("sandbox banner missing")
	}

	// The landing page now offers the dashboard instead of Connect.
	_, body := env.get("/")
	home := mustDoc(t, body)
	if home.Find(`[data-testid="go-dashboard"]`).Length() != 1 || home.Find(`[data-testid="connect-lumin"]`).Length() != 0 {
		t.Error("connected landing page should link to the dashboard, not Connect")
	}

	// PKCE and client_secret_post at the token endpoint (security.md §1.4, §3.1).
	var sawCode bool
	for _, r := range env.fake.Requests() {
		if r.Path == "/oauth2/token" && r.GrantType == "authorization_code" {
			sawCode = true
			if r.ClientAuth != "client_secret_post" {
				t.Errorf("token request client auth = %q, want client_secret_post", r.ClientAuth)
			}
			if r.CodeVerifier == "" {
				t.Error("token request had no code_verifier (PKCE)")
			}
		}
	}
	if !sawCode {
		t.Fatal("no authorization_code token request seen by the sandbox")
	}
}

func TestConnectAuthorizeRequest(t *testing.T) {
	env := newTestEnv(t)
	loc := env.startConnect("?return_to=/dashboard")
	u, _ := url.Parse(loc)
	q := u.Query()
	checks := map[string]string{
		"response_type":         "code",
		"client_id":             testClientID,
		"redirect_uri":          env.base + "/auth/callback",
		"code_challenge_method": "S256",
	}
	for k, want := range checks {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(q.Get("state")) < 43 || len(q.Get("nonce")) < 43 || q.Get("code_challenge") == "" {
		t.Errorf("state/nonce/code_challenge too short or missing: %q", u.RawQuery)
	}
	if q.Has("code_verifier") || q.Has("return_to") || q.Has("response_mode") {
		t.Errorf("authorize URL leaks transaction data: %q", u.RawQuery)
	}
	if !strings.Contains(" "+q.Get("scope")+" ", " openid ") {
		t.Errorf("scope %q lacks openid", q.Get("scope"))
	}
}

func TestReturnToIsUsed(t *testing.T) {
	env := newTestEnv(t)
	cb := env.consent(env.startConnect("?return_to="+url.QueryEscape("/dashboard?tab=1")), "allow")
	resp, _ := env.get(cb)
	if got := resp.Header.Get("Location"); got != "/dashboard?tab=1" {
		t.Errorf("Location = %q, want /dashboard?tab=1", got)
	}
	env2 := newTestEnv(t)
	cb = env2.consent(env2.startConnect("?return_to="+url.QueryEscape("//evil.example/x")), "allow")
	resp, _ = env2.get(cb)
	if got := resp.Header.Get("Location"); got != "/dashboard" {
		t.Errorf("Location = %q, want /dashboard for a rejected return_to", got)
	}
}

func TestSafeReturnTo(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"/dashboard", true},
		{"/requests/abc?x=1#y", true},
		{"/", true},
		{"", false},
		{"//evil.example", false},
		{"/\\evil.example", false},
		{"\\\\evil.example", false},
		{"https://evil.example/", false},
		{"javascript:alert(1)", false},
		{"evil.example", false},
		{"/a\\b", false},
		{"/a\nb", false},
		{"/a\tb", false},
		{"/a\x7fb", false},
		{"/%2F%2Fevil.example", false},
		{"/%5Cevil.example", false},
		{"/%0d%0aSet-Cookie:x", false},
		{"/%zz", false},
		{"/auth/logout", false},
		{"/auth", false},
		{"/" + strings.Repeat("a", 511), true},
		{"/" + strings.Repeat("a", 512), false},
		{"/\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := safeReturnTo(tt.in)
			if ok != tt.ok {
				t.Fatalf("safeReturnTo(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if ok && got != tt.in {
				t.Errorf("got %q, want %q", got, tt.in)
			}
		})
	}
}

func TestCallbackFailures(t *testing.T) {
	tests := []struct {
		name       string
		faults     luminfake.Faults
		mutate     func(env *testEnv, cb string) string // returns the callback URL to hit
		status     int
		reason     string
		noTokenReq bool
	}{
		{name: "denied", mutate: func(env *testEnv, _ string) string {
			return env.consent(env.startConnect(""), "deny")
		}, status: 403, reason: "authorization_error_access_denied", noTokenReq: true},
		{name: "state missing", mutate: func(_ *testEnv, cb string) string {
			return dropParam(cb, "state")
		}, status: 400, reason: "state_invalid", noTokenReq: true},
		{name: "state mismatched", mutate: func(_ *testEnv, cb string) string {
			return setParam(cb, "state", strings.Repeat("A", 43))
		}, status: 400, reason: "state_invalid", noTokenReq: true},
		{name: "state expired", mutate: func(env *testEnv, cb string) string {
			env.clock.Advance(11 * time.Minute)
			return cb
		}, status: 400, reason: "state_invalid", noTokenReq: true},
		{name: "wrong iss parameter", mutate: func(_ *testEnv, cb string) string {
			return setParam(cb, "iss", "https://evil.example")
		}, status: 400, reason: "iss_mismatch", noTokenReq: true},
		{name: "code missing", mutate: func(_ *testEnv, cb string) string {
			return dropParam(cb, "code")
		}, status: 400, reason: "code_invalid", noTokenReq: true},
		{name: "code too long", mutate: func(_ *testEnv, cb string) string {
			return setParam(cb, "code", strings.Repeat("c", 3000))
		}, status: 400, reason: "code_invalid", noTokenReq: true},
		{name: "nonce mismatch", faults: luminfake.Faults{WrongNonce: true}, status: 400, reason: "nonce_mismatch"},
		{name: "bad id token signature", faults: luminfake.Faults{BadSignature: true}, status: 400, reason: "id_token_invalid"},
		{name: "wrong issuer in id token", faults: luminfake.Faults{WrongIssuer: true}, status: 400, reason: "id_token_invalid"},
		{name: "wrong audience", faults: luminfake.Faults{WrongAudience: true}, status: 400, reason: "id_token_invalid"},
		{name: "expired id token", faults: luminfake.Faults{ClockSkew: -3 * time.Hour}, status: 400, reason: "id_token_invalid"},
		{name: "token endpoint 500", faults: luminfake.Faults{TokenStatus: 500}, status: 502, reason: "token_upstream"},
		{name: "token endpoint 503", faults: luminfake.Faults{TokenStatus: 503}, status: 502, reason: "token_upstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			cb := env.consent(env.startConnect(""), "allow")
			if tt.mutate != nil {
				cb = tt.mutate(env, cb)
			}
			env.fake.SetFaults(tt.faults)
			before := env.countRequests("/oauth2/token", "")
			resp, body := env.get(cb)
			mustErrorPage(t, resp, body, tt.status)
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if !strings.Contains(env.logs.String(), "reason="+tt.reason) {
				t.Errorf("log has no reason=%s:\n%s", tt.reason, env.logs.String())
			}
			if tt.noTokenReq {
				if n := env.countRequests("/oauth2/token", "") - before; n != 0 {
					t.Errorf("%d token requests, want none (security.md §2.1)", n)
				}
			}
			env.fake.SetFaults(luminfake.Faults{})
			env.mustNotConnected()
		})
	}
}

func TestCallbackReplay(t *testing.T) {
	env := newTestEnv(t)
	cb := env.consent(env.startConnect(""), "allow")
	env.fake.SetFaults(luminfake.Faults{TokenStatus: 500})
	resp, body := env.get(cb)
	mustErrorPage(t, resp, body, 502)
	env.fake.SetFaults(luminfake.Faults{})
	before := env.countRequests("/oauth2/token", "")

	// The transaction was removed before the exchange: a replay finds nothing and makes
	// no token request (security.md §2.1, §3.2: a code is exchanged once).
	resp, body = env.get(cb)
	mustErrorPage(t, resp, body, 400)
	if n := env.countRequests("/oauth2/token", "") - before; n != 0 {
		t.Errorf("replay made %d token requests, want 0", n)
	}
	env.mustNotConnected()
}

func TestCallbackReloadWhenConnected(t *testing.T) {
	env := newTestEnv(t)
	cb := env.consent(env.startConnect(""), "allow")
	resp, _ := env.get(cb)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: got %d", resp.StatusCode)
	}
	before := env.countRequests("/oauth2/token", "")
	resp, _ = env.get(cb) // Back or reload
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		t.Errorf("reloaded callback: got %d %q, want 303 /dashboard", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Still a state matching nothing: one WARN for the operator (security.md §12.4).
	if rid := resp.Header.Get(echo.HeaderXRequestID); !logHas(env.logs.String(), rid, "level=WARN", "reason=state_invalid") {
		t.Errorf("no WARN reason=state_invalid with request_id=%s:\n%s", rid, env.logs.String())
	}
	if n := env.countRequests("/oauth2/token", "") - before; n != 0 {
		t.Errorf("reloaded callback made %d token requests, want 0", n)
	}
	env.mustConnected()
}

func TestTwoTabsReverseOrder(t *testing.T) {
	env := newTestEnv(t)
	auth1 := env.startConnect("?return_to=/dashboard?tab=1")
	auth2 := env.startConnect("?return_to=/dashboard?tab=2")
	cb1 := env.consent(auth1, "allow")
	cb2 := env.consent(auth2, "allow")
	for _, tc := range []struct{ cb, want string }{{cb2, "/dashboard?tab=2"}, {cb1, "/dashboard?tab=1"}} {
		resp, body := env.get(tc.cb)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
			t.Fatalf("callback: got %d %q, want 303 %s: %.300s", resp.StatusCode, resp.Header.Get("Location"), tc.want, body)
		}
	}
	env.mustConnected()
}

func TestNewSessionOnLogin(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	first := env.session()
	env.connect()
	second := env.session()
	if first == nil || second == nil {
		t.Fatal("no session after connecting")
	}
	if first.ID == second.ID {
		t.Error("session id carried over across logins (security.md §2.5)")
	}
}

func TestLogout(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	tok := env.csrfToken()

	// GET changes nothing (security.md §9.1).
	resp, body := env.get("/auth/logout")
	mustErrorPage(t, resp, body, http.StatusMethodNotAllowed)
	if n := env.countRequests("/oauth2/revoke", ""); n != 0 {
		t.Errorf("GET logout revoked %d tokens, want 0", n)
	}
	env.mustConnected()

	resp, _ = env.postForm("/auth/logout", url.Values{"_csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: got %d, want 303", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if !strings.HasPrefix(loc.String(), env.fake.URL+"/oauth2/sessions/logout") || loc.Query().Get("id_token_hint") == "" {
		t.Errorf("logout Location = %q, want the end-session endpoint with id_token_hint", loc)
	}
	if loc.Query().Has("post_logout_redirect_uri") || loc.Query().Has("state") {
		t.Errorf("logout sent post_logout_redirect_uri/state, which Lumin cannot register (lumin-api.md §9)")
	}
	var hint string
	for _, r := range env.fake.Requests() {
		if r.Path == "/oauth2/revoke" {
			hint = r.TokenTypeHint
		}
	}
	if hint != "refresh_token" {
		t.Errorf("revocation token_type_hint = %q, want refresh_token (security.md §9.2)", hint)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	env.mustNotConnected()
}

func TestDisconnect(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	tok := env.csrfToken()
	resp, _ := env.get("/auth/disconnect")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET disconnect: got %d, want 405", resp.StatusCode)
	}
	resp, _ = env.postForm("/auth/disconnect", url.Values{"_csrf": {tok}})
	// security.md §9.3: 303 to `/`; the fixed flag selects the landing page's notice.
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?disconnected=1" {
		t.Fatalf("disconnect: got %d %q, want 303 /?disconnected=1", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := env.countRequests("/oauth2/revoke", ""); n != 1 {
		t.Errorf("revocations = %d, want 1", n)
	}
	_, body := env.get("/?disconnected=1")
	home := mustDoc(t, body)
	if home.Find(`[data-testid="disconnected"]`).Length() != 1 {
		t.Error("no data-testid=disconnected on /?disconnected=1")
	}
	if home.Find(`[data-testid="connect-lumin"]`).Length() != 1 {
		t.Error("the landing page after disconnect offers no Connect Lumin")
	}
	// Only the exact value shows the notice, and nothing of the query is reflected (§9.5).
	for _, q := range []string{"", "?disconnected=0", "?disconnected=1x", "?disconnected=%3Cb%3Ereflected"} {
		_, body := env.get("/" + q)
		if mustDoc(t, body).Find(`[data-testid="disconnected"]`).Length() != 0 {
			t.Errorf("GET /%s shows the disconnected notice", q)
		}
		if strings.Contains(body, "reflected") {
			t.Errorf("GET /%s reflects the query", q)
		}
	}
	if resp, _ := env.get("/disconnected"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /disconnected: got %d, want 404 (the route is gone)", resp.StatusCode)
	}
	env.mustNotConnected()
	if s := env.session(); s != nil && (s.AccessToken != "" || s.RefreshToken != "" || s.Email != "") {
		t.Error("tokens or profile left in the session after disconnect")
	}
}

func TestCSRFMissing(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	for _, form := range []url.Values{{}, {"_csrf": {"wrong"}}} {
		resp, body := env.postForm("/auth/logout", form)
		mustErrorPage(t, resp, body, http.StatusForbidden)
	}
	if !strings.Contains(env.logs.String(), "reason=csrf_failed") {
		t.Error("no WARN reason=csrf_failed logged")
	}
	if n := env.countRequests("/oauth2/revoke", ""); n != 0 {
		t.Errorf("revocations = %d, want 0", n)
	}
	env.mustConnected()

	// Sec-Fetch-Site (Echo ≥ 4.15): cross-site is refused even with a valid token;
	// same-site falls back to the token, so without one it is refused too.
	tok := env.csrfToken()
	tests := []struct {
		name  string
		site  string
		token string
	}{
		{"cross-site with a valid token", "cross-site", tok},
		{"same-site without a token", "same-site", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{}
			if tt.token != "" {
				form.Set("_csrf", tt.token)
			}
			req, _ := http.NewRequest(http.MethodPost, env.base+"/auth/logout", strings.NewReader(form.Encode()))
			req.Header.Set("Sec-Fetch-Site", tt.site)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, body := env.do(req)
			mustErrorPage(t, resp, body, http.StatusForbidden)
			rid := resp.Header.Get(echo.HeaderXRequestID)
			if !logHas(env.logs.String(), rid, "level=WARN", "reason=csrf_failed") {
				t.Errorf("no WARN reason=csrf_failed with request_id=%s:\n%s", rid, env.logs.String())
			}
			env.mustConnected()
		})
	}
	if n := env.countRequests("/oauth2/revoke", ""); n != 0 {
		t.Errorf("revocations = %d, want 0", n)
	}
}

// logHas reports whether one log line carries request id rid and every one of parts.
func logHas(logs, rid string, parts ...string) bool {
	for _, l := range strings.Split(logs, "\n") {
		if rid == "" || !strings.Contains(l, "request_id="+rid) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

func TestRefreshRotationPersisted(t *testing.T) {
	env := newTestEnv(t)
	// Tokens that are always within the 60 s refresh window: every API use refreshes.
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second})
	env.connect()
	for i := 1; i <= 2; i++ {
		env.clock.Advance(11 * time.Minute) // profile cache stale → an API call
		before := env.session().RefreshToken
		doc := env.mustConnected()
		if doc.Find(`[data-testid="profile-stale"]`).Length() != 0 {
			t.Fatalf("expiry %d: profile marked stale; the refresh failed:\n%s", i, env.logs.String())
		}
		after := env.session().RefreshToken
		if after == "" || after == before {
			t.Fatalf("expiry %d: refresh token not rotated in the cookie", i)
		}
	}
	if n := env.countRequests("/oauth2/token", "refresh_token"); n != 2 {
		t.Errorf("refresh requests = %d, want 2", n)
	}
}

func TestConcurrentRequestsRefreshOnce(t *testing.T) {
	env := newTestEnv(t)
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second})
	env.connect()
	env.clock.Advance(11 * time.Minute)
	u, _ := url.Parse(env.base)
	cookies := env.client.Jar.Cookies(u)

	const n = 100
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, env.base+"/dashboard", nil)
			for _, c := range cookies {
				req.AddCookie(c)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("request %d: got %d, want 200", i, s)
		}
	}
	if got := env.countRequests("/oauth2/token", "refresh_token"); got != 1 {
		t.Errorf("refresh requests = %d, want exactly 1 (security.md §7.3)", got)
	}
}

func TestRefreshRejectedAsksToReconnect(t *testing.T) {
	env := newTestEnv(t)
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second})
	env.connect()
	env.fake.RevokeUserGrants(luminfake.DefaultUsers()[0].Email)
	env.clock.Advance(11 * time.Minute)
	resp, body := env.get("/dashboard")
	doc := mustErrorPage(t, resp, body, http.StatusUnauthorized)
	if href := doc.Find(`[data-testid="error-action"]`).AttrOr("href", ""); href != "/auth/connect" {
		t.Errorf("error action = %q, want /auth/connect", href)
	}
	if !strings.Contains(env.logs.String(), "reason=refresh_rejected") {
		t.Error("no WARN refresh_rejected")
	}
	// Once, no loop: the connection is gone, the dashboard now sends home.
	env.mustNotConnected()
}
