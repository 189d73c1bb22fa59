package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
)

// setCookies parses a response's Set-Cookie lines by name, keeping the raw line.
func setCookies(t *testing.T, h http.Header) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range h.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("bad Set-Cookie %q: %v", line, err)
		}
		out[c.Name] = line
	}
	return out
}

// checkCookie asserts security.md §6.1.1 and §6.2.1 on one Set-Cookie line.
func checkCookie(t *testing.T, line string, secure bool) {
	t.Helper()
	c, err := http.ParseSetCookie(line)
	if err != nil {
		t.Fatalf("bad Set-Cookie %q: %v", line, err)
	}
	if !c.HttpOnly {
		t.Errorf("%s: not HttpOnly", c.Name)
	}
	if c.Path != "/" {
		t.Errorf("%s: Path = %q, want /", c.Name, c.Path)
	}
	if c.Domain != "" {
		t.Errorf("%s: has Domain %q", c.Name, c.Domain)
	}
	if c.SameSite != http.SameSiteLaxMode {
		t.Errorf("%s: SameSite = %v, want Lax", c.Name, c.SameSite)
	}
	if !strings.Contains(line, "Max-Age=") {
		t.Errorf("%s: no explicit Max-Age", c.Name)
	}
	if c.Secure != secure {
		t.Errorf("%s: Secure = %v, want %v", c.Name, c.Secure, secure)
	}
	if secure != strings.HasPrefix(c.Name, "__Host-") {
		t.Errorf("%s: __Host- prefix must be used exactly when Secure", c.Name)
	}
	if len(line) > 3800 {
		t.Errorf("%s: Set-Cookie is %d bytes, over the 3800-byte budget (security.md §6.2.1)", c.Name, len(line))
	}
}

func TestCookieFlagsLoopback(t *testing.T) {
	env := newTestEnv(t)
	resp, _ := env.get("/")
	checkCookie(t, setCookies(t, resp.Header)["csrf"], false)

	resp, _ = env.get("/auth/connect")
	checkCookie(t, setCookies(t, resp.Header)["lumin-tx"], false)

	cb := env.consent(env.startConnect(""), "allow")
	resp, _ = env.get(cb)
	checkCookie(t, setCookies(t, resp.Header)["lumin"], false)
}

// TestCookieFlagsHTTPS drives the handler directly (httptest.NewRequest) with an https
// base URL: Secure and __Host- on every cookie, and HSTS.
func TestCookieFlagsHTTPS(t *testing.T) {
	env := newTestEnv(t)
	const base = "https://app.example.test"
	env.fake.RegisterClient(httpsClient(env, base))
	srv := env.newServer(base, env.keys)
	h := srv.Handler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, base+"/", nil))
	if got := rec.Header().Get("Strict-Transport-Security"); got != "max-age=31536000; includeSubDomains" {
		t.Errorf("HSTS = %q", got)
	}
	checkCookie(t, setCookies(t, rec.Header())["__Host-csrf"], true)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, base+"/auth/connect", nil))
	txLine := setCookies(t, rec.Header())["__Host-lumin-tx"]
	checkCookie(t, txLine, true)
	authURL := rec.Header().Get("Location")

	// Consent at the sandbox with the normal client, then hand the callback to the handler.
	cb := env.consentTo(authURL, base)
	req := httptest.NewRequest(http.MethodGet, cb, nil)
	tx, _ := http.ParseSetCookie(txLine)
	req.AddCookie(&http.Cookie{Name: tx.Name, Value: tx.Value})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("callback: got %d, want 303: %.500s", rec.Code, rec.Body.String())
	}
	sessLine := setCookies(t, rec.Header())["__Host-lumin"]
	checkCookie(t, sessLine, true)
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS on the callback")
	}
}

func TestNoTokensInPagesOrLogs(t *testing.T) {
	env := newTestEnv(t, withDB())
	resp, _ := env.get("/auth/connect")
	authURL := resp.Header.Get("Location")
	nonce := mustQuery(t, authURL).Get("nonce")
	txCookie := setCookies(t, resp.Header)["lumin-tx"]
	cb := env.consent(authURL, "allow")
	code := mustQuery(t, cb).Get("code")
	state := mustQuery(t, cb).Get("state")
	resp, _ = env.get(cb)
	sessCookie := setCookies(t, resp.Header)["lumin"]
	sess := env.session()
	if sess == nil {
		t.Fatal("no session")
	}
	var verifier string
	for _, r := range env.fake.Requests() {
		if r.Path == "/oauth2/token" && r.CodeVerifier != "" {
			verifier = r.CodeVerifier
		}
	}
	cookieValue := func(line string) string {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Value == "" {
			t.Fatalf("no cookie value in %q", line)
		}
		return c.Value
	}
	u, _ := url.Parse(env.base)
	var csrfCookie string
	for _, c := range env.client.Jar.Cookies(u) {
		if c.Name == "csrf" {
			csrfCookie = c.Value
		}
	}
	env.mustConnected()
	env.get("/")
	env.get("/nope")

	// A webhook-enabled copy of the app logs into the same buffer: the secret and the
	// X-Signature must not reach the logs either.
	wsrv := env.newServer(env.base, env.keys)
	wsrv.webhookSecret = []byte(testWebhookSecret)
	wbody := webhookBody(t, "signature_request_signed", "nosecretlog1", "WAITING_FOR_OTHERS", time.Now(), time.Now())
	goodSig := signWebhook([]byte(testWebhookSecret), wbody)
	badSig := signWebhook([]byte("another-secret"), wbody)
	for _, sig := range []string{badSig, goodSig} {
		req := httptest.NewRequest(http.MethodPost, env.base+"/webhooks/lumin", strings.NewReader(string(wbody)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature", sig)
		wsrv.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}

	secrets := map[string]string{
		"access token":          sess.AccessToken,
		"refresh token":         sess.RefreshToken,
		"id token":              sess.IDToken,
		"code":                  code,
		"state":                 state,
		"nonce":                 nonce,
		"PKCE verifier":         verifier,
		"client secret":         env.secret,
		"session cookie value":  cookieValue(sessCookie),
		"tx cookie value":       cookieValue(txCookie),
		"CSRF cookie value":     csrfCookie,
		"webhook secret":        testWebhookSecret,
		"webhook X-Signature":   goodSig,
		"bad webhook signature": badSig,
	}
	if verifier == "" || csrfCookie == "" {
		t.Fatal("test setup: no PKCE verifier or CSRF cookie captured")
	}
	tok := env.csrfToken()
	env.postForm("/auth/logout", url.Values{"_csrf": {tok}})
	logs := env.logs.String()
	for name, v := range secrets {
		if v == "" {
			t.Errorf("test setup: the %s is empty", name)
			continue
		}
		if strings.Contains(logs, v) {
			t.Errorf("the %s appears in the logs", name)
		}
		switch name {
		case "state", "code", "CSRF cookie value":
			// The callback URL is not a page body; the CSRF token is in forms by design.
			continue
		}
		for _, b := range env.bodies {
			if strings.Contains(b, v) {
				t.Errorf("the %s appears in a page", name)
			}
		}
	}
	if !strings.Contains(logs, "path=/auth/callback") {
		t.Error("the request log has no callback line (want path without query)")
	}
}

func TestKeyRotationKeepsUsersSignedIn(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	newKey := []byte("a-brand-new-session-key-of-32-bytes-or-more")
	rotated := env.newServer(env.base, [][]byte{newKey, testKey})
	env.app.Config.Handler = rotated.Handler()
	doc := env.mustConnected()
	if doc.Find(`[data-testid="user-email"]`).Text() == "" {
		t.Fatal("no profile after key rotation")
	}
	// The cookie was re-issued under the new key: a server with only the new key reads it.
	onlyNew := env.newServer(env.base, [][]byte{newKey})
	env.app.Config.Handler = onlyNew.Handler()
	env.mustConnected()
}

func TestTamperedCookieSignsOut(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	u, _ := url.Parse(env.base)
	var val string
	for _, c := range env.client.Jar.Cookies(u) {
		if c.Name == "lumin" {
			val = c.Value
		}
	}
	if val == "" {
		t.Fatal("no session cookie")
	}
	for name, bad := range map[string]string{
		"flipped":   flip(val),
		"truncated": val[:len(val)/2],
		"garbage":   "not-a-cookie",
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, env.base+"/dashboard", nil)
			req.AddCookie(&http.Cookie{Name: "lumin", Value: bad})
			rec := httptest.NewRecorder()
			env.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
				t.Errorf("got %d %q, want 303 to / (signed out)", rec.Code, rec.Header().Get("Location"))
			}
			c, _ := http.ParseSetCookie(setCookies(t, rec.Header())["lumin"])
			if c == nil || c.MaxAge >= 0 {
				t.Error("the bad cookie was not cleared")
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestSecurityHeaders(t *testing.T) {
	env := newTestEnv(t)
	for _, path := range []string{"/", "/nope", "/auth/callback"} {
		t.Run(path, func(t *testing.T) {
			resp, body := env.get(path)
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			m := regexp.MustCompile(`script-src 'self' 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
			if m == nil || len(m[1]) < 22 {
				t.Fatalf("CSP %q has no nonce of ≥ 16 bytes", csp)
			}
			for _, d := range []string{"default-src 'self'", "style-src 'self'", "img-src 'self' data:", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP lacks %q: %s", d, csp)
				}
			}
			doc := mustDoc(t, body)
			doc.Find("script").Each(func(_ int, s *goquery.Selection) {
				if s.AttrOr("nonce", "") != m[1] {
					t.Errorf("script nonce %q does not match CSP nonce %q", s.AttrOr("nonce", ""), m[1])
				}
			})
			if doc.Find("[style]").Length() != 0 || doc.Find("style").Length() != 0 {
				t.Error("inline style found (CSP style-src 'self')")
			}
			want := map[string]string{
				"X-Content-Type-Options":     "nosniff",
				"X-Frame-Options":            "DENY",
				"X-Xss-Protection":           "0",
				"Cross-Origin-Opener-Policy": "same-origin",
				"Referrer-Policy":            "same-origin",
			}
			if path == "/auth/callback" {
				want["Referrer-Policy"] = "no-referrer"
				want["Cache-Control"] = "no-store"
			}
			for k, v := range want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if h.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS sent on a loopback http base URL")
			}
		})
	}
	// Two responses never share a nonce.
	r1, _ := env.get("/")
	r2, _ := env.get("/")
	if r1.Header.Get("Content-Security-Policy") == r2.Header.Get("Content-Security-Policy") {
		t.Error("CSP nonce repeated across responses")
	}
}

func TestErrorPages(t *testing.T) {
	env := newTestEnv(t)
	resp, body := env.get("/no/such/page")
	mustErrorPage(t, resp, body, http.StatusNotFound)

	resp, body = env.get("/static/css/app.css") // unhashed names are not served
	mustErrorPage(t, resp, body, http.StatusNotFound)

	req, _ := http.NewRequest(http.MethodPost, env.base+"/auth/logout", strings.NewReader(strings.Repeat("a", 70<<10)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body = env.do(req)
	mustErrorPage(t, resp, body, http.StatusRequestEntityTooLarge)

	// Unsafe methods meet the CSRF check first (403); a route exempt from it shows 405.
	req, _ = http.NewRequest(http.MethodPut, env.base+"/", nil)
	resp, body = env.do(req)
	mustErrorPage(t, resp, body, http.StatusForbidden)
	req, _ = http.NewRequest(http.MethodPost, env.base+"/healthz", nil)
	resp, body = env.do(req)
	mustErrorPage(t, resp, body, http.StatusMethodNotAllowed)

	// A client-chosen request id is not trusted.
	req, _ = http.NewRequest(http.MethodGet, env.base+"/nope", nil)
	req.Header.Set("X-Request-Id", "<script>evil</script>")
	resp, body = env.do(req)
	doc := mustErrorPage(t, resp, body, http.StatusNotFound)
	if strings.Contains(doc.Find(`[data-testid="request-id"]`).Text(), "evil") {
		t.Error("client-sent X-Request-Id reflected")
	}
	for _, b := range []string{body} {
		if strings.Contains(b, "goroutine") || strings.Contains(b, "{\"message\"") {
			t.Error("error page leaks internals or JSON")
		}
	}
}

func TestStaticAssets(t *testing.T) {
	env := newTestEnv(t)
	_, body := env.get("/")
	href := mustDoc(t, body).Find(`link[rel="stylesheet"]`).AttrOr("href", "")
	if !regexp.MustCompile(`^/static/css/app\.[0-9a-f]{12}\.css$`).MatchString(href) {
		t.Fatalf("stylesheet href %q is not content-hashed", href)
	}
	resp, css := env.get(href)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("GET %s: %d %s", href, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control = %q", got)
	}
	if !strings.Contains(css, ".badge-approved") {
		t.Error("stylesheet lacks status badges")
	}
	if setCookies(t, resp.Header)["csrf"] != "" {
		t.Error("static asset response sets a CSRF cookie")
	}
}

func TestHealthz(t *testing.T) {
	env := newTestEnv(t)
	resp, body := env.get("/healthz")
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("got %d %q, want 200 ok", resp.StatusCode, body)
	}
}

func TestLandingPage(t *testing.T) {
	env := newTestEnv(t)
	resp, body := env.get("/")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	doc := mustDoc(t, body)
	if doc.Find(`a[data-testid="connect-lumin"][href="/auth/connect"]`).Length() != 1 {
		t.Error("no Connect Lumin link to /auth/connect")
	}
	if doc.Find(`[data-testid="sandbox-banner"]`).Length() != 1 {
		t.Error("no sandbox banner")
	}
	if doc.Find("main#main").Length() != 1 || doc.Find(`a.skip-link[href="#main"]`).Length() != 1 {
		t.Error("no main landmark or skip link")
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("page is cacheable")
	}
}

func mustQuery(t testing.TB, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}
