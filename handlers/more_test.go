package handlers

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
)

func TestProfileCachedForTenMinutes(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	after := env.countRequests("/v1/user/info", "")
	if after != 1 {
		t.Fatalf("user/info calls after sign-in = %d, want 1", after)
	}
	env.mustConnected()
	env.mustConnected()
	if n := env.countRequests("/v1/user/info", ""); n != 1 {
		t.Errorf("user/info calls = %d, want 1: the profile is cached (security.md §5.2)", n)
	}
	env.clock.Advance(11 * time.Minute)
	env.mustConnected()
	if n := env.countRequests("/v1/user/info", ""); n != 2 {
		t.Errorf("user/info calls after 11 min = %d, want 2", n)
	}
}

func TestLogoutDenylistsCopiedCookie(t *testing.T) {
	env := newTestEnv(t, withDB())
	env.connect()
	u, _ := url.Parse(env.base)
	copied := env.client.Jar.Cookies(u)
	tok := env.csrfToken()
	resp, _ := env.postForm("/auth/logout", url.Values{"_csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: got %d", resp.StatusCode)
	}
	// Someone kept a copy of the cookie: it no longer signs anybody in (security.md §6.3.3).
	req := httptest.NewRequest(http.MethodGet, env.base+"/dashboard", nil)
	for _, c := range copied {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	env.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Errorf("copied cookie after logout: got %d %q, want 303 to /", rec.Code, rec.Header().Get("Location"))
	}
}

func TestDiscoveryDownAnswers503(t *testing.T) {
	env := newTestEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	rp, err := lumin.NewRP(lumin.Config{Issuer: dead, ClientID: testClientID, ClientSecret: env.secret,
		RedirectURL: env.base + "/auth/callback", Scopes: env.scopes})
	if err != nil {
		t.Fatal(err)
	}
	api, _ := lumin.NewAPI(dead+"/v1", nil)
	srv, err := New(Deps{BaseURL: env.base, Issuer: dead, RP: rp, API: api, Sessions: env.sess})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, env.base+"/auth/connect", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("connect with discovery down: got %d, want 503", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), `data-testid="error"`) {
		t.Error("no error page")
	}
	// Every Set-Cookie line: Get would return only the first (the CSRF cookie).
	if _, ok := setCookies(t, rec.Header())[env.sess.TxCookieName()]; ok {
		t.Error("a login transaction was stored although no redirect happened")
	}
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, env.base+"/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("healthz with Lumin down: got %d, want 200 (security.md §13.3)", rec.Code)
	}
}

func TestIPExtractor(t *testing.T) {
	_, proxy, _ := net.ParseCIDR("10.1.0.0/16")
	tests := []struct {
		name    string
		proxies []*net.IPNet
		peer    string
		xff     string
		want    string
	}{
		{"no proxies: XFF ignored", nil, "203.0.113.7:1234", "198.51.100.1", "203.0.113.7"},
		{"trusted proxy", []*net.IPNet{proxy}, "10.1.2.3:1234", "198.51.100.1", "198.51.100.1"},
		{"untrusted peer", []*net.IPNet{proxy}, "203.0.113.7:1234", "198.51.100.1", "203.0.113.7"},
		{"private peer not trusted by default", []*net.IPNet{proxy}, "192.168.1.1:1234", "198.51.100.1", "192.168.1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tt.peer
			req.Header.Set(echo.HeaderXForwardedFor, tt.xff)
			if got := ipExtractor(tt.proxies)(req); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCSPFormActionListsEndSession(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	resp, _ := env.get("/dashboard")
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' "+env.fake.URL) {
		t.Errorf("CSP %q: form-action must list the end-session origin %s (security.md §10)", csp, env.fake.URL)
	}
}

// TestCSPFormActionAfterRestart: a browser still connected from before a restart opens
// the dashboard; the handler's discovery runs after the header middleware, and the CSP
// sent must already name the end-session origin, or the logout form's redirect to Lumin
// is blocked (security.md §10).
func TestCSPFormActionAfterRestart(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	restarted := env.newServer(env.base, env.keys) // nothing discovered yet
	u, _ := url.Parse(env.base)
	req := httptest.NewRequest(http.MethodGet, env.base+"/dashboard", nil)
	for _, c := range env.client.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	restarted.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("dashboard after restart: got %d, want 200", rec.Code)
	}
	csps := rec.Header().Values("Content-Security-Policy")
	if len(csps) != 1 || !strings.Contains(csps[0], "form-action 'self' "+env.fake.URL) {
		t.Errorf("got CSP %q, want one policy whose form-action lists %s", csps, env.fake.URL)
	}
}

// TestNewRejectsSchemeMismatch: the session store's Secure and the base URL's scheme
// are one setting; New refuses a disagreement instead of issuing __Host- cookies over
// http or plain ones over https (security.md §6.1).
func TestNewRejectsSchemeMismatch(t *testing.T) {
	env := newTestEnv(t) // env.sess is the loopback-http (not Secure) store
	rp, err := lumin.NewRP(lumin.Config{Issuer: env.fake.Issuer(), ClientID: testClientID, ClientSecret: env.secret,
		RedirectURL: "https://app.example/auth/callback", Scopes: env.scopes})
	if err != nil {
		t.Fatal(err)
	}
	api, _ := lumin.NewAPI(env.fake.APIURL(), nil)
	tests := []struct {
		name string
		base string
		ok   bool
	}{
		{"http base, plain cookies", env.base, true},
		{"https base, plain cookies", "https://app.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Deps{BaseURL: tt.base, Issuer: env.fake.Issuer(), RP: rp, API: api, Sessions: env.sess})
			if got := err == nil; got != tt.ok {
				t.Errorf("New: got err %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestOversizedChunkedFormIs413: a form body over the 64 KiB cap without a
// Content-Length is only noticed while the CSRF middleware parses the form; it is a 413
// page, not a CSRF failure (security.md §10 "Server").
func TestOversizedChunkedFormIs413(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	tok := env.csrfToken()
	form := url.Values{"_csrf": {tok}, "pad": {strings.Repeat("x", 70<<10)}}.Encode()
	// A bare io.Reader (not *strings.Reader) has no known length: the client sends it
	// chunked, without Content-Length.
	req, _ := http.NewRequest(http.MethodPost, env.base+"/auth/logout", struct{ io.Reader }{strings.NewReader(form)})
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if req.ContentLength != 0 {
		// 0 with a body means "unknown" to the client (net/http.Request.ContentLength).
		t.Fatalf("got Content-Length %d, want the length unknown (chunked)", req.ContentLength)
	}
	resp, body := env.do(req)
	doc := mustErrorPage(t, resp, body, http.StatusRequestEntityTooLarge)
	rid := doc.Find(`[data-testid="request-id"]`).Text()
	for _, l := range gapLogLines(env.logs.String(), rid) {
		if strings.Contains(l, "csrf_failed") {
			t.Errorf("logged as a CSRF failure: %s", l)
		}
	}
	if n := env.countRequests("/oauth2/revoke", ""); n != 0 {
		t.Errorf("revocations = %d, want 0: nothing may change", n)
	}
	env.mustConnected()
}
