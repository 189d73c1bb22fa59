package luminfake

// The browser side of GET/POST /oauth2/auth: request validation in Hydra's order and with
// its errors (lumin-api.md §4, §12), then the sandbox's sign-in and consent page, where a
// person picks a seeded test user and allows or denies the app.

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// loginCookie identifies a sandbox sign-in so a second connect skips choosing a
	// user. Cookies ignore ports, so the name must not collide with the app's cookies on
	// the same loopback host.
	loginCookie = "luminfake_login"

	consentCSSPath = "/sandbox/static/consent.css"

	// maxQuery bounds an authorization URL's query; real ones are under 1 KiB.
	maxQuery = 8 << 10
	// pendingTTL is how long a consent page stays usable.
	pendingTTL = 30 * time.Minute
	// maxPending caps unanswered consent pages so a loop of GETs cannot grow memory
	// without bound.
	maxPending = 10000
)

//go:embed consent_templates
var consentFS embed.FS

var consentTmpl = template.Must(template.ParseFS(consentFS, "consent_templates/*.html"))

// scopeText says in plain words what each scope lets the app do (lumin-api.md §13).
var scopeText = map[string]string{
	"openid":             "Know who you are: your name, email address and avatar",
	"offline_access":     "Stay connected when you are not using it",
	"profile.read":       "Read your Lumin profile",
	"profile.settings":   "Manage your account settings",
	"sign:requests.read": "See your signature requests",
	"sign:requests":      "Create, send, update and see your signature requests",
	"templates":          "See and manage your templates",
	"pdf:files.read":     "See your documents",
	"pdf:files":          "See and manage your documents",
	"workspaces.read":    "See the Workspace you authorize",
	"workspaces":         "Manage the Workspace you authorize",
}

// pendingConsent is an authorization request that passed validation and waits for the
// person's answer on the consent page. Keeping it server-side means the form carries
// only a random reference, not request parameters an attacker could edit.
type pendingConsent struct {
	client      *Client
	redirectURI string
	scopes      []string
	state       string
	nonce       string
	challenge   string
	csrf        string
	requestedAt time.Time
	expires     time.Time
}

// handleAuthorize serves GET /oauth2/auth.
func (f *Fake) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	f.logged(f.authorize)(w, r)
}

func (f *Fake) authorize(w http.ResponseWriter, r *http.Request, lr *LoggedRequest) {
	if len(r.URL.RawQuery) > maxQuery {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The authorization request is too long."))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The authorization request query could not be parsed."))
		return
	}
	// RFC 6749 §3.1: parameters MUST NOT be included more than once. Checked before
	// anything is trusted, since which redirect_uri to believe would be ambiguous.
	for k, v := range q {
		if len(v) > 1 {
			f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The parameter '%s' was included more than once.", truncate(k, 64)))
			return
		}
	}
	f.mu.Lock()
	client := f.clients[q.Get("client_id")]
	f.mu.Unlock()
	if client == nil {
		// Without a known client there is no trusted redirect URI: show an error page
		// instead of redirecting (RFC 6749 §4.1.2.1), as Hydra does.
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_client", "The requested OAuth 2.0 Client does not exist."))
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The 'redirect_uri' parameter is required."))
		return
	}
	// Exact string match, no normalization (lumin-api.md §2; RFC 6749 §3.1.2.3): an open
	// redirector otherwise.
	if !slices.Contains(client.RedirectURIs, redirectURI) {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls."))
		return
	}
	state := q.Get("state")
	fail := func(e *oauthError) { redirectError(w, r, redirectURI, state, e) }

	if rt := q.Get("response_type"); rt != "code" {
		fail(oerr("unsupported_response_type", "The client is not allowed to request response_type '%s'.", truncate(rt, 64)))
		return
	}
	if rm := q.Get("response_mode"); rm != "" && rm != "query" {
		fail(oerr("unsupported_response_mode", "The client is not allowed to request response_mode '%s'.", truncate(rm, 64)))
		return
	}
	if len(state) < 8 {
		fail(oerr("invalid_state", "Request parameter 'state' must be at least be 8 characters long to ensure sufficient entropy."))
		return
	}
	var scopes []string
	for _, s := range strings.Fields(q.Get("scope")) {
		if !slices.Contains(client.Scopes, s) {
			fail(oerr("invalid_scope", "The OAuth 2.0 Client is not allowed to request scope '%s'.", truncate(s, 64)))
			return
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if len(scopes) == 0 {
		fail(oerr("invalid_scope", "The request must name at least one scope."))
		return
	}
	nonce := q.Get("nonce")
	if slices.Contains(scopes, "openid") && nonce != "" && len(nonce) < 8 {
		fail(oerr("insufficient_entropy", "Parameter 'nonce' is set but does not satisfy the minimum entropy of 8 characters."))
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method == "":
		// PKCE is optional for confidential clients, as in Hydra.
	case challenge == "":
		fail(oerr("invalid_request", "The 'code_challenge_method' parameter is set but 'code_challenge' is missing."))
		return
	case method == "" || method == "plain":
		fail(oerr("invalid_request", "Clients must use code_challenge_method=S256, plain is not allowed."))
		return
	case method != "S256":
		fail(oerr("invalid_request", "The code_challenge_method is not supported, use S256 instead."))
		return
	case len(challenge) != 43 || strings.IndexFunc(challenge, func(r rune) bool { return !isUnreserved(r) || r == '.' || r == '~' }) >= 0:
		// RFC 7636 §4.2: S256 challenges are base64url(SHA-256), exactly 43 characters.
		fail(oerr("invalid_request", "The 'code_challenge' must be the 43-character base64url SHA-256 of the code verifier."))
		return
	}
	session, _ := f.loginFromCookie(r)
	switch q.Get("prompt") {
	case "none":
		// The sandbox always asks for consent, so prompt=none can never succeed.
		if session == nil {
			fail(oerr("login_required", "Prompt 'none' was requested, but no existing login session was found."))
		} else {
			fail(oerr("consent_required", "Prompt 'none' was requested, but the sandbox always asks for consent."))
		}
		return
	case "login", "select_account":
		session = nil // show every test user
	}

	now := f.now()
	p := &pendingConsent{
		client: client, redirectURI: redirectURI, scopes: scopes, state: state, nonce: nonce,
		challenge: challenge, csrf: randomToken(""), requestedAt: now, expires: now.Add(pendingTTL),
	}
	id := randomToken("")
	f.mu.Lock()
	f.prunePendingLocked(now)
	if len(f.pending) >= maxPending {
		f.mu.Unlock()
		fail(oerr("temporarily_unavailable", "Too many unanswered sign-in pages; try again later."))
		return
	}
	f.pending[id] = p
	f.mu.Unlock()
	f.renderConsent(w, id, p, session)
}

func (f *Fake) prunePendingLocked(now time.Time) {
	for k, p := range f.pending {
		if !now.Before(p.expires) {
			delete(f.pending, k)
		}
	}
	for k, c := range f.codes {
		// Used codes stay until expiry so a replay is still recognized as reuse.
		if now.After(c.expires.Add(time.Hour)) {
			delete(f.codes, k)
		}
	}
}

// handleConsentSubmit serves POST /oauth2/auth, the consent form's answer.
func (f *Fake) handleConsentSubmit(w http.ResponseWriter, r *http.Request) {
	f.logged(f.consentSubmit)(w, r)
}

func (f *Fake) consentSubmit(w http.ResponseWriter, r *http.Request, lr *LoggedRequest) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	if err := r.ParseForm(); err != nil {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "The sign-in form could not be read."))
		return
	}
	id := r.PostForm.Get("consent_challenge")
	f.mu.Lock()
	p := f.pending[id]
	f.mu.Unlock()
	if p == nil || !f.now().Before(p.expires) {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "This sign-in page expired or was already answered. Start again from the app."))
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(p.csrf)) != 1 {
		f.errorPage(w, http.StatusForbidden, oerr("invalid_request", "The sign-in form's anti-forgery token is wrong. Start again from the app."))
		return
	}
	action := r.PostForm.Get("action")
	var user *User
	switch action {
	case "deny":
	case "allow":
		i, err := strconv.Atoi(r.PostForm.Get("user"))
		if err != nil || i < 0 || i >= len(f.opts.Users) {
			f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "Choose one of the test users."))
			return
		}
		user = &f.opts.Users[i]
	default:
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "Choose Allow or Deny."))
		return
	}
	f.mu.Lock()
	_, stillPending := f.pending[id]
	delete(f.pending, id) // single use: a resubmitted form must not mint a second code
	f.mu.Unlock()
	if !stillPending {
		f.errorPage(w, http.StatusBadRequest, oerr("invalid_request", "This sign-in page expired or was already answered. Start again from the app."))
		return
	}
	if action == "deny" {
		redirectError(w, r, p.redirectURI, p.state, oerr("access_denied", ""))
		return
	}

	now := f.now()
	session, key := f.loginFromCookie(r)
	f.mu.Lock()
	if session == nil || session.user.Subject != user.Subject {
		if session != nil {
			delete(f.logins, key) // signing in as someone else ends the old sign-in
		}
		session = &loginSession{user: user, sid: randomUUID(), created: now}
		cookie := randomToken("")
		f.logins[hashToken(cookie)] = session
		// HttpOnly: no script needs it; SameSite=Lax: sent on the top-level GET that
		// starts the next connect, not on cross-site subrequests.
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: cookie, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(f.opts.Issuer, "https://")})
	}
	g := &grant{
		id: randomUUID(), clientID: p.client.ID, user: user, scopes: p.scopes, nonce: p.nonce,
		authTime: session.created, sid: session.sid, requestedAt: p.requestedAt,
	}
	code := randomToken("ory_ac_")
	f.codes[hashToken(code)] = &authCode{grant: g, redirectURI: p.redirectURI, challenge: p.challenge,
		expires: now.Add(f.opts.CodeTTL)}
	// The consent is the authorization (lumin-api.md §21: events go to users who
	// authorized the app), so the demo replay starts here, ahead of the code exchange.
	replay := f.replaySeedLocked(g)
	f.mu.Unlock()
	f.dispatch(replay)

	u, _ := url.Parse(p.redirectURI) // registered, hence parseable
	qv := u.Query()
	qv.Set("code", code)
	qv.Set("scope", strings.Join(p.scopes, " "))
	qv.Set("state", p.state)
	u.RawQuery = qv.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// redirectError sends an authorization error back to the client (RFC 6749 §4.1.2.1),
// with Hydra's error_hint.
func redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *oauthError) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest) // unreachable: URIs are registered
		return
	}
	q := u.Query()
	q.Set("error", e.Code)
	q.Set("error_description", e.Description)
	if e.Hint != "" {
		q.Set("error_hint", e.Hint)
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// loginFromCookie returns the sandbox sign-in the request's cookie refers to, and its
// map key.
func (f *Fake) loginFromCookie(r *http.Request) (*loginSession, string) {
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" {
		return nil, ""
	}
	key := hashToken(c.Value)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins[key], key
}

func clearLoginCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// --- pages ---------------------------------------------------------------------------

type consentUser struct {
	Index       int
	Name        string
	Email       string
	Description string
	Checked     bool
}

type consentScope struct {
	Name string
	Text string
}

type consentPage struct {
	CSS         string
	ClientName  string
	ReturnHost  string
	Challenge   string
	CSRF        string
	Scopes      []consentScope
	SignedIn    *consentUser  // the sandbox sign-in, shown first and preselected
	Others      []consentUser // every other test user ("use another account")
	AllUsers    []consentUser // when nobody is signed in
	ShowAccount bool
}

func (f *Fake) renderConsent(w http.ResponseWriter, id string, p *pendingConsent, session *loginSession) {
	page := consentPage{
		CSS: consentCSSPath, ClientName: p.client.Name, Challenge: id, CSRF: p.csrf,
	}
	if u, err := url.Parse(p.redirectURI); err == nil {
		page.ReturnHost = u.Host
	}
	for _, s := range p.scopes {
		text, ok := scopeText[s]
		if !ok {
			text = "Use the “" + s + "” permission"
		}
		page.Scopes = append(page.Scopes, consentScope{Name: s, Text: text})
	}
	for i, u := range f.opts.Users {
		cu := consentUser{Index: i, Name: u.Name, Email: u.Email, Description: u.Description}
		switch {
		case session == nil:
			cu.Checked = i == 0
			page.AllUsers = append(page.AllUsers, cu)
		case u.Subject == session.user.Subject:
			cu.Checked = true
			page.SignedIn = &cu
		default:
			page.Others = append(page.Others, cu)
		}
	}
	if session != nil && page.SignedIn == nil { // the session's user is no longer seeded
		page.AllUsers, page.Others = page.Others, nil
		if len(page.AllUsers) > 0 {
			page.AllUsers[0].Checked = true
		}
	}
	// Chrome applies form-action to the redirect that follows the POST, so the app's
	// origin must be allowed or the final hop to the redirect URI is blocked.
	formAction := "'self'"
	if u, err := url.Parse(p.redirectURI); err == nil && u.Scheme != "" && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	f.renderHTML(w, http.StatusOK, "consent.html", page, formAction)
}

// messagePage is the sandbox's error and "signed out" page.
type messagePage struct {
	CSS         string
	Title       string
	Heading     string
	Body        string
	ErrorCode   string
	Description string
	Hint        string
	TestID      string
}

// errorPage shows an authorization error that must not be redirected (unknown client,
// unregistered redirect URI, bad logout request).
func (f *Fake) errorPage(w http.ResponseWriter, status int, e *oauthError) {
	f.renderMessage(w, status, messagePage{
		Title:       "Error",
		Heading:     "This request to the Lumin sandbox cannot continue",
		ErrorCode:   e.Code,
		Description: e.Description,
		Hint:        e.Hint,
		TestID:      "sandbox-error",
	})
}

func (f *Fake) renderMessage(w http.ResponseWriter, status int, m messagePage) {
	m.CSS = consentCSSPath
	f.renderHTML(w, status, "message.html", m, "'self'")
}

// renderHTML renders into a buffer first so a template error never leaves half a page.
func (f *Fake) renderHTML(w http.ResponseWriter, status int, name string, data any, formAction string) {
	var buf bytes.Buffer
	if err := consentTmpl.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "sandbox page failed to render", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No scripts at all; styles only from our own stylesheet; no framing (clickjacking
	// on a consent page would let another site click Allow).
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func handleConsentCSS(w http.ResponseWriter, r *http.Request) {
	css, err := consentFS.ReadFile("consent_templates/consent.css")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(css)
}
