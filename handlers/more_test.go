package handlers

import (
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
	if strings.Contains(rec.Header().Get("Set-Cookie"), "lumin-tx") {
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
