package handlers

// Test harness of the signature-requests console: the real router over httptest, a
// luminfake sandbox, a real SQLite store, and browser-like clients with cookie jars that
// connect through the sandbox's consent page.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/lumin/luminfake"
	"github.com/connectlumin/app/store"
)

// consoleOpts tweaks the harness.
type consoleOpts struct {
	scopes        []string // LUMIN_SCOPES; nil → the default with sign:requests
	webhookSecret string   // "" → webhooks off (404)
	fake          luminfake.Options
}

// consoleApp is one app + sandbox + store.
type consoleApp struct {
	fake   *luminfake.Server
	app    *httptest.Server
	srv    *Server
	db     *store.DB
	secret []byte
}

var defaultTestScopes = []string{"openid", "offline_access", "profile.read", "sign:requests"}

// newConsoleApp starts the sandbox and the app wired to it.
func newConsoleApp(t testing.TB, o consoleOpts) *consoleApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + ln.Addr().String()
	scopes := o.scopes
	if scopes == nil {
		scopes = defaultTestScopes
	}
	fo := o.fake
	fo.Clients = []luminfake.Client{{
		ID: "console-test", Secret: "console-test-secret-0123456789", Name: "Console test",
		RedirectURIs: []string{appURL + "/auth/callback"}, Scopes: scopes,
	}}
	if o.webhookSecret != "" && fo.WebhookURL == "" {
		fo.WebhookURL = appURL + "/webhooks/lumin"
		fo.WebhookSecret = o.webhookSecret
	}
	fk, err := luminfake.NewServer(fo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fk.Close() })

	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sessions, err := store.NewSessions(store.CookieConfig{Keys: [][]byte{key}})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := lumin.NewRP(lumin.Config{
		Issuer: fk.URL, ClientID: "console-test", ClientSecret: "console-test-secret-0123456789",
		RedirectURL: appURL + "/auth/callback", Scopes: scopes,
	})
	if err != nil {
		t.Fatal(err)
	}
	api, err := lumin.NewAPI(fk.APIURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Deps{
		BaseURL: appURL, Issuer: fk.URL, Sandbox: true, SandboxURL: fk.URL,
		RP: rp, API: api, Sessions: sessions, DB: db,
		WebhookSecret: []byte(o.webhookSecret),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	_ = hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return &consoleApp{fake: fk, app: hs, srv: srv, db: db, secret: []byte(o.webhookSecret)}
}

// consoleUser is one browser: a cookie jar, no automatic redirects.
type consoleUser struct {
	t   testing.TB
	a   *consoleApp
	c   *http.Client
	key string // store user key "iss|sub"
}

// mustConnect signs in as the sandbox user with that index (0 Ada, 1 Grace).
func (a *consoleApp) mustConnect(t testing.TB, userIndex int) *consoleUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u := &consoleUser{t: t, a: a, c: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	// Follow the connect redirects to the sandbox's consent page.
	next := a.app.URL + "/auth/connect"
	var doc *goquery.Document
	for i := 0; i < 5 && doc == nil; i++ {
		resp, err := u.c.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			next = resolve(t, resp.Request.URL, resp.Header.Get("Location"))
			resp.Body.Close()
			continue
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("connect: got %d at %s: %.300s", resp.StatusCode, resp.Request.URL, b)
		}
		doc, err = goquery.NewDocumentFromReader(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	form := url.Values{
		"consent_challenge": {doc.Find(`input[name=consent_challenge]`).AttrOr("value", "")},
		"csrf":              {doc.Find(`input[name=csrf]`).AttrOr("value", "")},
		"action":            {"allow"},
		"user":              {string(rune('0' + userIndex))},
	}
	resp, err := u.c.PostForm(a.fake.URL+"/oauth2/auth", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	next = resolve(t, resp.Request.URL, resp.Header.Get("Location"))
	resp, err = u.c.Get(next) // the app's callback
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: got %d, want 303", resp.StatusCode)
	}
	usr := a.fake.Users()[userIndex]
	u.key = a.fake.URL + "|" + usr.Subject
	return u
}

func resolve(t testing.TB, base *url.URL, loc string) string {
	t.Helper()
	r, err := base.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return r.String()
}

// page is a fetched response with its parsed body.
type page struct {
	status int
	header http.Header
	doc    *goquery.Document
	body   string
}

func (p page) testid(id string) *goquery.Selection {
	return p.doc.Find(`[data-testid="` + id + `"]`)
}

func (p page) location() string { return p.header.Get("Location") }

func (u *consoleUser) do(req *http.Request) page {
	u.t.Helper()
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(b))
	if err != nil {
		u.t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, doc: doc, body: string(b)}
}

// get fetches path on the app.
func (u *consoleUser) get(path string) page {
	u.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u.a.app.URL+path, nil)
	return u.do(req)
}

// csrf returns a valid CSRF token from the dashboard's logout form: every connected user
// sees it whatever their scopes, and loading it makes no Lumin call.
func (u *consoleUser) csrf() string {
	u.t.Helper()
	p := u.get("/dashboard")
	tok := p.doc.Find(`input[name=_csrf]`).First().AttrOr("value", "")
	if tok == "" {
		u.t.Fatalf("no _csrf on /dashboard (status %d)", p.status)
	}
	return tok
}

// post submits a urlencoded form; withCSRF adds a valid token.
func (u *consoleUser) post(path string, form url.Values, withCSRF bool) page {
	u.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if withCSRF {
		form.Set("_csrf", u.csrf())
	}
	req, _ := http.NewRequest(http.MethodPost, u.a.app.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return u.do(req)
}

// postMultipart submits the send form with an optional file.
func (u *consoleUser) postMultipart(path string, form url.Values, fileName string, file []byte, withCSRF bool) page {
	u.t.Helper()
	if withCSRF {
		form.Set("_csrf", u.csrf())
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, vs := range form {
		for _, v := range vs {
			_ = mw.WriteField(k, v)
		}
	}
	if file != nil {
		fw, _ := mw.CreateFormFile("file", fileName)
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, u.a.app.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return u.do(req)
}

// mustTrack adds an id to the user's list through the app.
func (u *consoleUser) mustTrack(id string) {
	u.t.Helper()
	p := u.post("/requests/track", url.Values{"id": {id}}, true)
	if p.status != http.StatusSeeOther {
		u.t.Fatalf("track %s: got %d, want 303", id, p.status)
	}
}

// apiCalls counts sandbox REST calls whose path starts with prefix (and method, if set).
func (a *consoleApp) apiCalls(method, prefix string) int {
	n := 0
	for _, r := range a.fake.Requests() {
		if strings.HasPrefix(r.Path, prefix) && (method == "" || r.Method == method) {
			n++
		}
	}
	return n
}

// signWebhook is the X-Signature Lumin sends (lumin-api.md §21).
func signWebhook(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// postWebhook sends a raw webhook with the given signature header ("" → none).
func (a *consoleApp) postWebhook(t testing.TB, body []byte, sig string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.app.URL+"/webhooks/lumin", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Signature", sig)
	}
	resp, err := webhookTestClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// webhookTestClient plays Lumin's webhook sender (no cookies, a timeout).
var webhookTestClient = &http.Client{Timeout: 10 * time.Second}

// seededID is the sandbox's fixed id of Ada's n-th seeded request (luminfake seed.go):
// 1–2 NEED_TO_SIGN, 3–6 WAITING_FOR_OTHERS (5 created in the UI), 7–8 APPROVED,
// 9 REJECTED, 10 CANCELLED, 11 FAILED, 12 WAITING_FOR_PROCESSING.
func seededID(n int) string { return fmt.Sprintf("66a0f5eed0%014x", n) }

// testPDF is a tiny PDF-looking upload.
var testPDF = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
