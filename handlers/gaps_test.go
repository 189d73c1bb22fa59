package handlers

// Tests for the audit's gaps (notes/threats.md §2): each fails if the check it names is
// removed.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/lumin/luminfake"
	"github.com/connectlumin/app/store"
)

// gapTokenStub is a transport in front of the sandbox that, while armed, answers the
// token endpoint itself with a 400 OAuth error whose code luminfake cannot produce.
type gapTokenStub struct {
	next  http.RoundTripper
	armed atomic.Bool
	code  string
}

func (s *gapTokenStub) RoundTrip(r *http.Request) (*http.Response, error) {
	if !s.armed.Load() || r.URL.Path != "/oauth2/token" {
		return s.next.RoundTrip(r)
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	body := `{"error":"` + s.code + `","error_description":"GAP-SECRET-DESCRIPTION"}`
	return &http.Response{
		StatusCode:    http.StatusBadRequest,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// withGapTokenStub routes the RP's auth-server calls through stub.
func withGapTokenStub(stub *gapTokenStub) envOption {
	return withRPConfig(func(c *lumin.Config) {
		hc := lumin.NewHTTPClient(10 * time.Second)
		stub.next = hc.Transport
		hc.Transport = stub
		c.HTTPClient = hc
	})
}

// gapLogLines returns the log lines of one request id, without the access-log line.
func gapLogLines(logs, rid string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "request_id="+rid) && !strings.Contains(l, "msg=request ") {
			out = append(out, l)
		}
	}
	return out
}

// TestTokenRejected: an OAuth error code the app does not map (invalid_request) is a
// 400 "start again" page with WARN token_rejected — not a 500 (security.md §3.6, §10).
func TestTokenRejected(t *testing.T) {
	t.Run("callback", func(t *testing.T) {
		stub := &gapTokenStub{code: "invalid_request"}
		env := newTestEnv(t, withGapTokenStub(stub))
		cb := env.consent(env.startConnect(""), "allow")
		stub.armed.Store(true)
		resp, body := env.get(cb)
		doc := mustErrorPage(t, resp, body, http.StatusBadRequest)
		if href := doc.Find(`[data-testid="error-action"]`).AttrOr("href", ""); href != "/auth/connect" {
			t.Errorf("error action = %q, want /auth/connect (start again)", href)
		}
		if strings.Contains(body, "GAP-SECRET-DESCRIPTION") {
			t.Error("the page shows the token endpoint's error_description")
		}
		logs := env.logs.String()
		if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "reason=token_rejected") {
			t.Errorf("no WARN reason=token_rejected:\n%s", logs)
		}
		if strings.Contains(logs, "level=ERROR") {
			t.Errorf("an ERROR was logged:\n%s", logs)
		}
		stub.armed.Store(false)
		env.mustNotConnected()
	})
	t.Run("refresh", func(t *testing.T) {
		stub := &gapTokenStub{code: "invalid_request"} // without "concurrent": not Hydra's race answer
		env := newTestEnv(t, withGapTokenStub(stub), withDB())
		env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second})
		env.connect()
		stub.armed.Store(true)
		resp, body := env.get("/requests/" + seededID(1))
		mustErrorPage(t, resp, body, http.StatusBadRequest)
		if !strings.Contains(env.logs.String(), "reason=token_rejected") {
			t.Errorf("no reason=token_rejected:\n%s", env.logs.String())
		}
	})
}

// TestStaleCookieNotReSaved: a request that did not refresh, arriving with a cookie
// whose refresh token another request already rotated, must not write the spent
// token back to the browser (security.md §7.4; threats.md A2).
func TestStaleCookieNotReSaved(t *testing.T) {
	env := newTestEnv(t)
	// Tokens always inside the 60 s window: the next API use rotates them.
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second})
	env.connect()
	u, _ := url.Parse(env.base)
	oldCookies := env.client.Jar.Cookies(u)
	v1 := env.session().RefreshToken

	// Request A: the profile cache is stale, so the dashboard calls Lumin and rotates.
	env.clock.Advance(11 * time.Minute)
	env.mustConnected()
	v2 := env.session().RefreshToken
	if v2 == "" || v2 == v1 {
		t.Fatalf("request A did not rotate the refresh token")
	}

	// Request B: the old cookie, more than a minute after its last save (so the
	// sliding re-save is due), on a page that makes no API call.
	before := env.countRequests("/oauth2/token", "refresh_token")
	req, _ := http.NewRequest(http.MethodGet, env.base+"/", nil)
	for _, c := range oldCookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: got %d, want 200", resp.StatusCode)
	}
	line, ok := setCookies(t, resp.Header)["lumin"]
	if ok {
		c, _ := http.ParseSetCookie(line)
		r := httptest.NewRequest(http.MethodGet, env.base+"/", nil)
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		sess := env.sess.Load(httptest.NewRecorder(), r)
		if sess == nil {
			t.Fatal("request B's session cookie does not decode")
		}
		if sess.RefreshToken == v1 {
			t.Error("request B re-saved the spent refresh token (security.md §7.4)")
		} else if sess.RefreshToken != v2 {
			t.Error("request B saved neither the spent nor the rotated refresh token")
		}
	}
	if n := env.countRequests("/oauth2/token", "refresh_token") - before; n != 0 {
		t.Errorf("request B made %d refresh requests, want 0", n)
	}
}

// TestDetailHiddenWhenLuminRefuses: a stored row is not shown once Lumin answers
// 403/404 for this user's token (security.md §8.7; threats.md A5); the row is kept.
func TestDetailHiddenWhenLuminRefuses(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	grace := a.mustConnect(t, 1)
	id := seededID(1) // Ada's request: Lumin does not show it to Grace
	now := time.Now()
	row := store.TrackedRequest{
		UserKey: grace.key, ID: id, Title: "Gap stored title", Status: "NEED_TO_SIGN",
		Signers:   []store.TrackedSigner{{Email: "gap-stored-signer@example.test", Name: "Gap Signer", Status: "NEED_TO_SIGN"}},
		CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour), Source: "tracked", CheckedAt: now.Add(-time.Hour),
	}
	if err := a.db.Upsert(context.Background(), row); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	p := grace.get("/requests/" + id)
	if p.status != http.StatusNotFound || p.testid("error").Length() != 1 {
		t.Fatalf("got %d (error page: %v), want the 404 error page", p.status, p.testid("error").Length() == 1)
	}
	for _, s := range []string{row.Title, row.Signers[0].Email, row.Signers[0].Name} {
		if strings.Contains(p.body, s) {
			t.Errorf("the page shows the stored %q", s)
		}
	}
	if !strings.Contains(p.body, "not found or not accessible") {
		t.Error(`the page does not say "not found or not accessible"`)
	}
	if _, err := a.db.Get(context.Background(), grace.key, id); err != nil {
		t.Errorf("the stored row was removed: %v", err)
	}
}

// TestRejectLogsOneWarn: a bad state is one WARN line with the reason code, not a WARN
// plus an INFO (security.md §2 "Reject"; threats.md A23).
func TestRejectLogsOneWarn(t *testing.T) {
	env := newTestEnv(t)
	cb := env.consent(env.startConnect(""), "allow")
	resp, body := env.get(setParam(cb, "state", strings.Repeat("A", 43)))
	doc := mustErrorPage(t, resp, body, http.StatusBadRequest)
	rid := doc.Find(`[data-testid="request-id"]`).Text()
	lines := gapLogLines(env.logs.String(), rid)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines for the request, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "reason=state_invalid") {
		t.Errorf("got %q, want a WARN with reason=state_invalid", lines[0])
	}
}

// TestIDTokenRejectLogsOneWarn: an ID-token reject is one WARN line in the whole log —
// the handler's, with the request id — not a second one from package lumin (which
// logs its detail at debug).
func TestIDTokenRejectLogsOneWarn(t *testing.T) {
	for _, fl := range []luminfake.Faults{{WrongNonce: true}, {BadSignature: true}, {WrongAudience: true}} {
		t.Run(fmt.Sprintf("%+v", fl), func(t *testing.T) {
			env := newTestEnv(t)
			env.fake.SetFaults(fl)
			resp, body := env.get(env.consent(env.startConnect(""), "allow"))
			mustErrorPage(t, resp, body, http.StatusBadRequest)
			var warns []string
			for _, l := range strings.Split(env.logs.String(), "\n") {
				if strings.Contains(l, "level=WARN") {
					warns = append(warns, l)
				}
			}
			if len(warns) != 1 || !strings.Contains(warns[0], "request_id=") {
				t.Errorf("got %d WARN lines, want 1 with the request id:\n%s", len(warns), strings.Join(warns, "\n"))
			}
		})
	}
}

// TestCallbackErrorTextNeverShown: error_description and error_debug are never shown;
// without a valid state only a generic message (security.md §2.2).
func TestCallbackErrorTextNeverShown(t *testing.T) {
	const desc, debug = "GAP-DESC-<b>injected</b>", "GAP-DEBUG-internal"
	tests := []struct {
		name      string
		badState  bool
		code      string
		status    int
		reason    string
		diagnosis bool
	}{
		{name: "known code, valid state", code: "access_denied", status: 403, reason: "authorization_error_access_denied"},
		{name: "unknown code, valid state", code: "vendor_weird", status: 400, reason: "authorization_error_other"},
		{name: "known code, bad state", badState: true, code: "access_denied", status: 400, reason: "state_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			cb := env.consent(env.startConnect(""), "deny")
			cb = setParam(setParam(setParam(cb, "error", tt.code), "error_description", desc), "error_debug", debug)
			if tt.badState {
				cb = setParam(cb, "state", strings.Repeat("B", 43))
			}
			resp, body := env.get(cb)
			mustErrorPage(t, resp, body, tt.status)
			for _, s := range []string{"GAP-DESC", "injected", debug} {
				if strings.Contains(body, s) {
					t.Errorf("the page shows %q", s)
				}
			}
			if strings.Contains(env.logs.String(), "GAP-DESC") || strings.Contains(env.logs.String(), debug) {
				t.Error("the logs contain the error text")
			}
			if tt.badState {
				for _, d := range stateDiagnosis {
					if strings.Contains(body, d) {
						t.Errorf("without a valid state the page shows the diagnosis %q", d)
					}
				}
			}
			if !strings.Contains(env.logs.String(), "reason="+tt.reason) {
				t.Errorf("no reason=%s logged", tt.reason)
			}
			if n := env.countRequests("/oauth2/token", ""); n != 0 {
				t.Errorf("%d token requests, want 0", n)
			}
		})
	}
}

// TestExchangeErrorMapping: security.md §3.6 at the handler: invalid_grant → 400 start
// again; invalid_client → 502 with an ERROR naming the settings; timeout → 504.
func TestExchangeErrorMapping(t *testing.T) {
	tests := []struct {
		name    string
		opts    []envOption
		faults  luminfake.Faults
		mutate  func(string) string
		status  int
		reason  string
		logWant []string
	}{
		{name: "invalid_grant", mutate: func(cb string) string { return setParam(cb, "code", "gap-unknown-code") },
			status: 400, reason: "code_rejected", logWant: []string{"level=WARN"}},
		{name: "invalid_client",
			opts:   []envOption{withRPConfig(func(c *lumin.Config) { c.ClientSecret = "gap-wrong-client-secret-0123456789" })},
			status: 502, reason: "client_config", logWant: []string{"level=ERROR", "LUMIN_CLIENT_ID", "LUMIN_CLIENT_SECRET"}},
		{name: "timeout",
			opts:   []envOption{withRPConfig(func(c *lumin.Config) { c.HTTPClient = lumin.NewHTTPClient(300 * time.Millisecond) })},
			faults: luminfake.Faults{Latency: 5 * time.Second, AuthLatency: true},
			status: 504, reason: "token_timeout", logWant: []string{"level=WARN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, tt.opts...)
			cb := env.consent(env.startConnect(""), "allow")
			if tt.mutate != nil {
				cb = tt.mutate(cb)
			}
			env.fake.SetFaults(tt.faults)
			resp, body := env.get(cb)
			env.fake.SetFaults(luminfake.Faults{})
			doc := mustErrorPage(t, resp, body, tt.status)
			if href := doc.Find(`[data-testid="error-action"]`).AttrOr("href", ""); href == "" {
				t.Error("the error page offers no action")
			}
			rid := doc.Find(`[data-testid="request-id"]`).Text()
			var line string
			for _, l := range gapLogLines(env.logs.String(), rid) {
				if strings.Contains(l, "reason="+tt.reason) {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no reason=%s line:\n%s", tt.reason, env.logs.String())
			}
			for _, w := range tt.logWant {
				if !strings.Contains(line, w) {
					t.Errorf("log line lacks %q: %s", w, line)
				}
			}
			if n := env.countRequests("/oauth2/token", "authorization_code"); tt.name != "timeout" && n != 1 {
				t.Errorf("token requests = %d, want exactly 1 (no retry, security.md §3.2)", n)
			}
			env.mustNotConnected()
		})
	}
}

// TestRefreshUpstreamErrorKeepsSession: a refresh answered 500 keeps the session, shows
// "temporarily unavailable" and is not resent (security.md §7.7).
func TestRefreshUpstreamErrorKeepsSession(t *testing.T) {
	env := newTestEnv(t, withDB())
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second})
	env.connect()
	rt := env.session().RefreshToken
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second, TokenStatus: 500})
	before := env.countRequests("/oauth2/token", "refresh_token")
	resp, body := env.get("/requests/" + seededID(1))
	doc := mustErrorPage(t, resp, body, http.StatusServiceUnavailable)
	if !strings.Contains(doc.Find(`[data-testid="error"]`).Text(), "temporarily unavailable") {
		t.Errorf("the page does not say temporarily unavailable: %.400s", body)
	}
	if n := env.countRequests("/oauth2/token", "refresh_token") - before; n != 1 {
		t.Errorf("refresh requests = %d, want exactly 1", n)
	}
	sess := env.session()
	if sess == nil || !sess.Connected() || sess.RefreshToken != rt {
		t.Fatal("the session or its refresh token was lost after a 5xx refresh")
	}
	env.fake.SetFaults(luminfake.Faults{})
	env.mustConnected()
}

// TestLogoutExpiresBothCookies: logout expires the session and the transaction cookie
// with the same attributes (security.md §9.2).
func TestLogoutExpiresBothCookies(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	tok := env.csrfToken()
	env.startConnect("") // a pending login: the browser now holds lumin-tx
	resp, _ := env.postForm("/auth/logout", url.Values{"_csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: got %d, want 303", resp.StatusCode)
	}
	sc := setCookies(t, resp.Header)
	for _, name := range []string{"lumin", "lumin-tx"} {
		line, ok := sc[name]
		if !ok {
			t.Errorf("logout did not expire %s", name)
			continue
		}
		checkCookie(t, line, false)
		if c, _ := http.ParseSetCookie(line); c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("%s: Max-Age %d value %q, want an expired empty cookie", name, c.MaxAge, c.Value)
		}
	}
	u, _ := url.Parse(env.base)
	for _, c := range env.client.Jar.Cookies(u) {
		if c.Name == "lumin" || c.Name == "lumin-tx" {
			t.Errorf("the browser still holds %s", c.Name)
		}
	}
}

// TestPanicRendersErrorPage: a panicking handler gives the HTML 500 page without the
// panic text or a stack, and the stack goes to the log (security.md §10).
func TestPanicRendersErrorPage(t *testing.T) {
	env := newTestEnv(t)
	srv := env.newServer(env.base, env.keys) // a private router: the route exists only here
	srv.Handler().GET("/gap-boom", func(echo.Context) error { panic("gap-panic-detail") })
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, env.base+"/gap-boom", nil))
	resp := rec.Result()
	body := rec.Body.String()
	mustErrorPage(t, resp, body, http.StatusInternalServerError)
	for _, s := range []string{"gap-panic-detail", "goroutine", ".go:"} {
		if strings.Contains(body, s) {
			t.Errorf("the page contains %q", s)
		}
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if logs := env.logs.String(); !strings.Contains(logs, "msg=panic") || !strings.Contains(logs, "gap-panic-detail") {
		t.Errorf("the panic was not logged:\n%s", logs)
	}
	rid := resp.Header.Get(echo.HeaderXRequestID)
	var access, panicLine string
	for _, l := range strings.Split(env.logs.String(), "\n") {
		if !strings.Contains(l, "request_id="+rid) {
			continue
		}
		if strings.Contains(l, "msg=request ") {
			access = l
		}
		if strings.Contains(l, "msg=panic ") {
			panicLine = l
		}
	}
	// The access log still records the request (security.md §12.2).
	if !strings.Contains(access, "status=500") || !strings.Contains(access, "route=/gap-boom") {
		t.Errorf("got access log line %q, want msg=request route=/gap-boom status=500", access)
	}
	// Only the panicking goroutine's stack: other goroutines are other requests.
	if n := len(regexp.MustCompile(`goroutine \d+ \[`).FindAllString(panicLine, -1)); n != 1 {
		t.Errorf("the logged stack has %d goroutines, want 1:\n%s", n, panicLine)
	}
}

// TestSpoofedHostHeaders: Host, X-Forwarded-Host and X-Forwarded-Proto change no URL
// the app builds (security.md §1.5, §10 "Proxy trust").
func TestSpoofedHostHeaders(t *testing.T) {
	env := newTestEnv(t)
	u, _ := url.Parse(env.base)
	// send is the env's browser with spoofed headers. The cookie jar would file cookies
	// under the spoofed Host, so they are carried by hand for the real origin.
	send := func(method, target string, form url.Values) *http.Response {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, target, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Host = "evil.example"
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		for _, c := range env.client.Jar.Cookies(u) {
			req.AddCookie(c)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		env.client.Jar.SetCookies(u, resp.Cookies())
		return resp
	}

	resp := send(http.MethodGet, env.base+"/auth/connect", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("connect: got %d, want 303", resp.StatusCode)
	}
	authURL := resp.Header.Get("Location")
	if got := mustQuery(t, authURL).Get("redirect_uri"); got != env.base+"/auth/callback" {
		t.Errorf("redirect_uri = %q, want %q", got, env.base+"/auth/callback")
	}

	resp = send(http.MethodGet, env.consent(authURL, "allow"), nil)
	if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != "/dashboard" {
		t.Fatalf("callback: got %d %q, want 303 /dashboard", resp.StatusCode, got)
	}

	tok := env.csrfToken()
	resp = send(http.MethodPost, env.base+"/auth/logout", url.Values{"_csrf": {tok}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, env.fake.URL+"/oauth2/sessions/logout?") {
		t.Errorf("logout: got %d %q, want 303 to the sandbox end-session endpoint", resp.StatusCode, loc)
	}
	if strings.Contains(loc, "evil.example") {
		t.Errorf("logout Location uses the spoofed host: %q", loc)
	}
	// Signed out now: logout answers with the local landing page, still not the spoofed host.
	resp = send(http.MethodPost, env.base+"/auth/logout", url.Values{"_csrf": {tok}})
	if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != "/" {
		t.Errorf("signed-out logout: got %d %q, want 303 /", resp.StatusCode, got)
	}
}

// TestNoStoreOnAuthenticatedPages: security.md §1.9 and §6.3.4 on the connect redirect
// and the pages that show account data.
func TestNoStoreOnAuthenticatedPages(t *testing.T) {
	env := newTestEnv(t, withDB())
	resp, _ := env.get("/auth/connect")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/auth/connect: got %d Cache-Control %q, want 303 no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	env.connect()
	for _, p := range []string{"/dashboard", "/requests", "/requests/" + seededID(1)} {
		resp, _ := env.get(p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", p, resp.StatusCode)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s: Cache-Control = %q, want no-store", p, got)
		}
	}
}

// TestIDTokenFailureMakesNoAPICall: until the ID token has passed every check, no
// UserInfo or API call is made (security.md §4.6, §2.4).
func TestIDTokenFailureMakesNoAPICall(t *testing.T) {
	tests := []struct {
		name   string
		faults luminfake.Faults
	}{
		{"nonce mismatch", luminfake.Faults{WrongNonce: true}},
		{"bad signature", luminfake.Faults{BadSignature: true}},
		{"wrong issuer", luminfake.Faults{WrongIssuer: true}},
		{"wrong audience", luminfake.Faults{WrongAudience: true}},
		{"expired", luminfake.Faults{ClockSkew: -3 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			cb := env.consent(env.startConnect(""), "allow")
			env.fake.SetFaults(tt.faults)
			resp, body := env.get(cb)
			mustErrorPage(t, resp, body, http.StatusBadRequest)
			for _, r := range env.fake.Requests() {
				if strings.HasPrefix(r.Path, "/v1/") {
					t.Errorf("API call %s %s after a failed ID token", r.Method, r.Path)
				}
			}
		})
	}
}

// TestWebhookNoCookiesAndWarn: the webhook route sets no cookie even for a request
// that carries a session due for re-issue, and a bad signature is one WARN
// webhook_signature_invalid (security.md §11.1, §11.2, §12.4).
func TestWebhookNoCookiesAndWarn(t *testing.T) {
	env := newTestEnv(t, withDB())
	env.connect()
	env.clock.Advance(2 * time.Minute) // a normal route would re-issue this session cookie
	srv := env.newServer(env.base, env.keys)
	srv.webhookSecret = []byte(testWebhookSecret)
	u, _ := url.Parse(env.base)
	cookies := env.client.Jar.Cookies(u)

	body := webhookBody(t, "signature_request_signed", "gapwebhook1", "WAITING_FOR_OTHERS", time.Now(), time.Now())
	tests := []struct {
		name string
		sig  string
		want int
	}{
		{"bad signature", signWebhook([]byte("gap-other-secret"), body), http.StatusUnauthorized},
		{"valid", signWebhook([]byte(testWebhookSecret), body), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, env.base+"/webhooks/lumin", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Signature", tt.sig)
			for _, c := range cookies {
				req.AddCookie(c)
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d", rec.Code, tt.want)
			}
			if sc := rec.Header().Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("the webhook response sets cookies: %q", sc)
			}
		})
	}
	var warns int
	for _, l := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(l, "reason=webhook_signature_invalid") {
			warns++
			if !strings.Contains(l, "level=WARN") {
				t.Errorf("not a WARN: %s", l)
			}
		}
	}
	if warns != 1 {
		t.Errorf("webhook_signature_invalid lines = %d, want 1:\n%s", warns, env.logs.String())
	}
	if strings.Contains(env.logs.String(), testWebhookSecret) {
		t.Error("the webhook secret appears in the logs")
	}
}

// TestExchangeErrorPages: the sign-in failures map to 400 "start again" pages with their
// reason codes; a bad callback from the lumin package (Exchange's own code check) is a
// 400, never a 500 (security.md §2.4, §3.6, §4).
func TestExchangeErrorPages(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		reason string
		hint   string
	}{
		{"code refused by Exchange", fmt.Errorf("%w: code missing", lumin.ErrBadCallback), 400, "code_invalid", ""},
		{"nonce mismatch", &lumin.IDTokenError{Reason: "nonce_mismatch"}, 400, "nonce_mismatch", "nonce_mismatch"},
		{"other id token check", &lumin.IDTokenError{Reason: "aud"}, 400, "id_token_invalid", "aud"},
		{"bare ErrIDToken", fmt.Errorf("%w: no id_token", lumin.ErrIDToken), 400, "id_token_invalid", ""},
		{"unmapped OAuth error", fmt.Errorf("%w: invalid_request", lumin.ErrTokenRejected), 400, "token_rejected", ""},
		{"invalid_grant", fmt.Errorf("%w: used", lumin.ErrInvalidGrant), 400, "code_rejected", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := classify(exchangeError(tt.err))
			if p.status != tt.status || p.reason != tt.reason || p.hint != tt.hint {
				t.Errorf("got %d %s hint %q, want %d %s hint %q", p.status, p.reason, p.hint, tt.status, tt.reason, tt.hint)
			}
			if p.action != actStartAgain {
				t.Errorf("got action %v, want %v", p.action, actStartAgain)
			}
		})
	}
}
