package handlers

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/lumin/luminfake"
	"github.com/connectlumin/app/store"
)

const testClientID = "connect-lumin-test"

var testKey = []byte("0123456789abcdef0123456789abcdef-test-key")

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testClock is a settable clock shared by the handlers and the cookie store.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// testEnv is the real router on a loopback httptest server, wired to a luminfake
// sandbox, with a browser-like client (cookie jar, redirects not followed).
type testEnv struct {
	t      testing.TB
	fake   *luminfake.Server
	srv    *Server
	app    *httptest.Server
	base   string
	client *http.Client
	logs   *syncBuffer
	clock  *testClock
	secret string
	bodies []string // every app page body seen, for "no token in any page"
	bodyMu sync.Mutex
	keys   [][]byte
	sess   *store.Sessions
	db     *store.DB
	scopes []string
	rpHook func(*lumin.Config) // adjusts the RP's configuration (withRPConfig)
}

type envOption func(*envConfig)

type envConfig struct {
	db     bool
	rpHook func(*lumin.Config)
}

func withDB() envOption { return func(c *envConfig) { c.db = true } }

// withRPConfig lets a test change the relying party's configuration, e.g. a wrong
// client secret or an HTTP client that stubs the token endpoint.
func withRPConfig(f func(*lumin.Config)) envOption { return func(c *envConfig) { c.rpHook = f } }

// newTestEnv starts the sandbox and the app.
func newTestEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	app := httptest.NewUnstartedServer(nil)
	base := "http://" + app.Listener.Addr().String()
	secret := "test-secret-" + strings.Repeat("x", 20)
	keys := [][]byte{testKey}
	scopes := []string{"openid", "offline_access", "profile.read", "sign:requests"}
	fo := luminfake.Options{Clients: []luminfake.Client{{
		ID: testClientID, Secret: secret, Name: "Connect Lumin (test)",
		RedirectURIs: []string{base + "/auth/callback"},
		Scopes:       append(append([]string(nil), scopes...), "sign:requests.read", "templates"),
		AuthMethod:   "client_secret_post",
	}}}
	fake, err := luminfake.NewServer(fo)
	if err != nil {
		t.Fatalf("luminfake.NewServer: %v", err)
	}
	t.Cleanup(func() { _ = fake.Close() })

	env := &testEnv{t: t, fake: fake, app: app, base: base, logs: &syncBuffer{}, clock: &testClock{}, secret: secret, keys: keys, scopes: scopes, rpHook: cfg.rpHook}
	if cfg.db {
		db, err := store.Open(context.Background(), "sqlite:"+t.TempDir()+"/test.db")
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		env.db = db
	}
	env.srv = env.newServer(base, keys)
	app.Config.Handler = env.srv.Handler()
	app.Start()
	t.Cleanup(app.Close)

	jar, _ := cookiejar.New(nil)
	env.client = &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return env
}

// newServer builds a Server for base over the env's sandbox with the given keys.
func (e *testEnv) newServer(base string, keys [][]byte) *Server {
	e.t.Helper()
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rpc := lumin.Config{
		Issuer: e.fake.Issuer(), ClientID: testClientID, ClientSecret: e.secret,
		RedirectURL: base + "/auth/callback", Scopes: e.scopes, Leeway: time.Minute, Logger: logger,
	}
	if e.rpHook != nil {
		e.rpHook(&rpc)
	}
	rp, err := lumin.NewRP(rpc)
	if err != nil {
		e.t.Fatalf("NewRP: %v", err)
	}
	api, err := lumin.NewAPI(e.fake.APIURL(), nil)
	if err != nil {
		e.t.Fatalf("NewAPI: %v", err)
	}
	sessions, err := store.NewSessions(store.CookieConfig{
		Keys: keys, Secure: strings.HasPrefix(base, "https://"), IdleTimeout: 30 * time.Minute,
		AbsoluteTimeout: 12 * time.Hour, Now: e.clock.Now,
	})
	if err != nil {
		e.t.Fatalf("NewSessions: %v", err)
	}
	e.sess = sessions
	srv, err := New(Deps{
		BaseURL: base, Issuer: e.fake.Issuer(), Sandbox: true, SandboxURL: e.fake.URL,
		RP: rp, API: api, Sessions: sessions, DB: e.db, Logger: logger, Now: e.clock.Now,
	})
	if err != nil {
		e.t.Fatalf("handlers.New: %v", err)
	}
	return srv
}

// do sends a request with the env's client and records the body.
func (e *testEnv) do(req *http.Request) (*http.Response, string) {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(req.URL.String(), e.base) {
		e.bodyMu.Lock()
		e.bodies = append(e.bodies, string(b))
		e.bodyMu.Unlock()
	}
	return resp, string(b)
}

func (e *testEnv) get(u string) (*http.Response, string) {
	e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = e.base + u
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return e.do(req)
}

func (e *testEnv) postForm(u string, form url.Values) (*http.Response, string) {
	e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = e.base + u
	}
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req)
}

// startConnect runs GET /auth/connect and returns the sandbox authorize URL.
func (e *testEnv) startConnect(query string) string {
	e.t.Helper()
	resp, _ := e.get("/auth/connect" + query)
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("GET /auth/connect: got %d, want 303", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, e.fake.URL+"/oauth2/auth?") {
		e.t.Fatalf("connect redirected to %q, want the sandbox authorize endpoint", loc)
	}
	return loc
}

// consent loads the sandbox consent page at authURL, picks user index 0 (Ada) and
// submits action ("allow" or "deny"); it returns the redirect back to the app.
func (e *testEnv) consent(authURL, action string) string {
	e.t.Helper()
	resp, body := e.get(authURL)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("sandbox authorize: got %d, want 200: %.300s", resp.StatusCode, body)
	}
	doc := mustDoc(e.t, body)
	form := doc.Find(`form[data-testid="sandbox-consent"]`)
	if form.Length() != 1 {
		e.t.Fatalf("no sandbox consent form in %.300s", body)
	}
	vals := url.Values{}
	form.Find(`input[type="hidden"]`).Each(func(_ int, s *goquery.Selection) {
		vals.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	vals.Set("user", "0")
	vals.Set("action", action)
	resp, body = e.postForm(e.fake.URL+"/oauth2/auth", vals)
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		e.t.Fatalf("consent submit: got %d: %.300s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, e.base+"/auth/callback?") {
		e.t.Fatalf("consent redirected to %q, want the app callback", loc)
	}
	return loc
}

// connect runs the whole flow and returns the callback response.
func (e *testEnv) connect() *http.Response {
	e.t.Helper()
	cb := e.consent(e.startConnect(""), "allow")
	resp, body := e.get(cb)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		e.t.Fatalf("callback: got %d Location %q, want 303 /dashboard: %.500s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	return resp
}

// mustConnected asserts the dashboard renders with the sandbox user's profile.
func (e *testEnv) mustConnected() *goquery.Document {
	e.t.Helper()
	resp, body := e.get("/dashboard")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /dashboard: got %d, want 200: %.500s", resp.StatusCode, body)
	}
	return mustDoc(e.t, body)
}

// mustNotConnected asserts there is no authenticated session.
func (e *testEnv) mustNotConnected() {
	e.t.Helper()
	resp, _ := e.get("/dashboard")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		e.t.Fatalf("GET /dashboard: got %d %q, want 303 to / (no session)", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// csrfToken reads the _csrf value from the dashboard's logout form.
func (e *testEnv) csrfToken() string {
	e.t.Helper()
	doc := e.mustConnected()
	tok := doc.Find(`form[action="/auth/logout"] input[name="_csrf"]`).AttrOr("value", "")
	if tok == "" {
		e.t.Fatal("no _csrf in the logout form")
	}
	return tok
}

// session decodes the browser's current session cookie with the server's codecs.
func (e *testEnv) session() *store.Session {
	e.t.Helper()
	u, _ := url.Parse(e.base)
	req := httptest.NewRequest(http.MethodGet, e.base+"/", nil)
	for _, c := range e.client.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	return e.sess.Load(httptest.NewRecorder(), req)
}

// countRequests counts sandbox log entries matching path and grant type ("" = any).
func (e *testEnv) countRequests(path, grant string) int {
	n := 0
	for _, r := range e.fake.Requests() {
		if r.Path == path && (grant == "" || r.GrantType == grant) {
			n++
		}
	}
	return n
}

func mustDoc(t testing.TB, body string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing HTML: %v", err)
	}
	return doc
}

// mustErrorPage asserts an error page with the given status.
func mustErrorPage(t *testing.T, resp *http.Response, body string, status int) *goquery.Document {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("got status %d, want %d: %.600s", resp.StatusCode, status, body)
	}
	doc := mustDoc(t, body)
	if doc.Find(`[data-testid="error"]`).Length() != 1 {
		t.Fatalf("no data-testid=error in %.600s", body)
	}
	if doc.Find(`[data-testid="request-id"]`).Text() == "" {
		t.Errorf("error page has no request id")
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	return doc
}

func setParam(raw, k, v string) string {
	u, _ := url.Parse(raw)
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func dropParam(raw, k string) string {
	u, _ := url.Parse(raw)
	q := u.Query()
	q.Del(k)
	u.RawQuery = q.Encode()
	return u.String()
}

// httpsClient registers the test client again with an https redirect URI as well.
func httpsClient(e *testEnv, base string) luminfake.Client {
	return luminfake.Client{
		ID: testClientID, Secret: e.secret, Name: "Connect Lumin (test)",
		RedirectURIs: []string{e.base + "/auth/callback", base + "/auth/callback"},
		Scopes:       append(append([]string(nil), e.scopes...), "sign:requests.read", "templates"),
		AuthMethod:   "client_secret_post",
	}
}

// consentTo is consent for a redirect URI on another base URL.
func (e *testEnv) consentTo(authURL, base string) string {
	e.t.Helper()
	saved := e.base
	e.base = base
	defer func() { e.base = saved }()
	return e.consent(authURL, "allow")
}
