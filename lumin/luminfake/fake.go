// Package luminfake is the Lumin sandbox: a faithful, in-memory fake of Lumin's
// authorization server (Ory Hydra) and REST API, plus the app-webhook sender.
//
// It speaks the wire formats of ../shared/lumin-api.md, and where a fact is only
// inferred it takes the strictest reading (e.g. refresh tokens rotate with no grace
// period, and reuse revokes the whole chain). It deliberately does not import the app's
// client package (lumin), so a drift between our client and the wire format fails a test
// instead of being shared by both sides.
//
// State is in memory and lost on restart; that is fine for tests and the offline demo.
package luminfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Client is a registered private app (confidential client).
type Client struct {
	ID           string
	Secret       string
	Name         string   // shown on the consent page
	RedirectURIs []string // exact-match list (lumin-api.md §2)
	Scopes       []string // the scopes fixed on the app; requests must be a subset
	// AuthMethod pins token-endpoint authentication as Hydra does: "client_secret_post"
	// (Lumin's documented method, the default), "client_secret_basic", or "any".
	AuthMethod string
	// PostLogoutRedirectURIs are the exact URIs /oauth2/sessions/logout may send the
	// browser back to. Lumin's app settings have no such field (lumin-api.md §2, §9), so
	// the realistic value is none: a post_logout_redirect_uri is then an error.
	PostLogoutRedirectURIs []string
}

// User is a seeded sandbox user.
type User struct {
	ID      string // REST user.id: 24 hex digits like Lumin's
	Subject string // OIDC sub
	Email   string
	Name    string
	// Description is a one-line hint shown on the sandbox sign-in page, e.g. what
	// signature requests the user has.
	Description string
}

// Options configures a Fake. Zero values get the documented defaults.
type Options struct {
	// Issuer is the exact issuer URL (no trailing slash), e.g. "http://127.0.0.1:4444".
	// The REST API is served under Issuer + "/v1".
	Issuer  string
	Clients []Client
	Users   []User // nil → DefaultUsers()

	AccessTokenTTL  time.Duration // default 3600 s (lumin-api.md §6)
	RefreshTokenTTL time.Duration // default 720 h
	IDTokenTTL      time.Duration // default 1 h
	CodeTTL         time.Duration // default 10 min

	// ProcessingDelay is how long a new signature request stays WAITING_FOR_PROCESSING
	// before moving on (asynchronous, as in Lumin). Default 1 s.
	ProcessingDelay time.Duration
	// AutoSignAfter, when > 0, makes every signer sign automatically after that delay.
	AutoSignAfter time.Duration

	// WebhookURL and WebhookSecret: where app webhooks go and the app signing secret.
	WebhookURL    string
	WebhookSecret string
	// WebhookRetries is the back-off schedule after a non-200 (Lumin: 5m, 15m, 45m, 2h15m,
	// 6h45m, 20h15m). Default: the same ratios compressed to 100ms, 300ms, 900ms, 2.7s, 8.1s, 24.3s.
	WebhookRetries []time.Duration
	// WebhookClient sends webhooks; nil → a client with a 30 s timeout.
	WebhookClient *http.Client
	// ReplaySeedOnConsent is a sandbox-only demo aid with no counterpart in Lumin. Lumin
	// has no list endpoint (lumin-api.md §16.4), so an app only learns of requests that
	// existed before it was authorized if something tells it. With this set, the first
	// time a user grants a client a signature-request scope (sign:requests or
	// sign:requests.read), the sandbox sends, through the normal app-webhook sender, one
	// event per seeded request of that user describing its current state:
	// signature_request_created for NEED_TO_SIGN and WAITING_FOR_OTHERS, _approved for
	// APPROVED, _declined for REJECTED, _canceled for CANCELLED, _invalid for FAILED, and
	// nothing for WAITING_FOR_PROCESSING (Lumin sends created only once processing is
	// done). Each event has event_time = now, Lumin's exact payload shape (lumin-api.md
	// §21) and is signed like any other. It happens once per user per Fake, not on every
	// consent, and only when WebhookURL is set.
	ReplaySeedOnConsent bool

	Now func() time.Time // nil → time.Now
}

// Faults are knobs that make the sandbox misbehave the way production can.
// Set them with (*Fake).SetFaults; the zero value is a healthy server.
type Faults struct {
	// Latency is added before every REST API answer (and token answers if AuthLatency).
	Latency     time.Duration
	AuthLatency bool
	// APIStatus, when non-zero, answers the next APIStatusTimes REST calls (all of them when
	// APIStatusTimes is 0) with that status: 429/503 carry Retry-After: RetryAfter seconds.
	APIStatus      int
	APIStatusTimes int
	// APIPath, when set, limits APIStatus to REST calls whose path starts with it
	// (e.g. "/v1/signature_request": signing in and the profile keep working).
	APIPath    string
	RetryAfter int
	// MalformedJSON makes REST answers send a truncated JSON body with status 200.
	MalformedJSON bool
	// TokenStatus, when non-zero, makes the token endpoint answer that status with
	// Hydra's error JSON (500 → server_error, 503 → temporarily_unavailable).
	TokenStatus int
	// WrongIssuer makes ID tokens carry a different iss; WrongAudience a different aud.
	WrongIssuer   bool
	WrongAudience bool
	// BadSignature signs ID tokens with a key that is not in the JWKS.
	BadSignature bool
	// WrongNonce replaces the ID token's nonce.
	WrongNonce bool
	// ClockSkew shifts iat/exp/auth_time of ID tokens (negative: tokens look old/expired).
	ClockSkew time.Duration
	// ShortAccessTokenTTL, when non-zero, overrides AccessTokenTTL for new tokens.
	ShortAccessTokenTTL time.Duration
	// BadWebhookSignature makes the webhook sender sign with a wrong key.
	BadWebhookSignature bool
	// RevokeStatus, when non-zero, makes the revocation endpoint answer that status with
	// Hydra's error JSON (as TokenStatus: 503 → temporarily_unavailable, else
	// server_error) without revoking anything: a relying party must still log out
	// locally (security.md §9.4).
	RevokeStatus int
	// RefreshSubject, when set, is the sub of ID tokens issued by the refresh_token grant
	// (the code exchange is unaffected): a refresh that names a different user, which the
	// relying party must answer by ending the session (OIDC Core §12.2, security.md §4.9).
	// The token is otherwise valid (signature, iss, aud, at_hash).
	RefreshSubject string
	// ForeignURLs makes REST answers carry a details_url, and the file endpoint a
	// signed_url, on https://evil.example/ instead of the sandbox origin, to test that the
	// app only follows links under luminpdf.com or the sandbox (security.md §8.8, §8.9).
	// Webhook payloads are unaffected.
	ForeignURLs bool
	// AccessTokenPad appends that many random base64url characters to every new access
	// token: realistic large (JWT-like) tokens for the cookie budget (security.md §6.2).
	// at_hash in the ID token covers the padded token.
	AccessTokenPad int
}

// foreignOrigin is where Faults.ForeignURLs points links: outside every allowed origin.
const foreignOrigin = "https://evil.example"

// LoggedRequest is what the sandbox saw of one request, for tests to assert what the
// app did. Secrets are kept as received: this is a test double, never production.
type LoggedRequest struct {
	Time          time.Time
	Method        string
	Path          string
	ClientAuth    string // token/revoke: "client_secret_post", "client_secret_basic" or "none"
	GrantType     string // token endpoint
	CodeVerifier  string // token endpoint, authorization_code grant
	TokenTypeHint string // revocation
	Authorization bool   // REST: a Bearer header was present
	Status        int
}

// Fake is the sandbox. It is an http.Handler serving the authorization server at the
// root and the REST API under /v1. Safe for concurrent use.
type Fake struct {
	opts Options
	now  func() time.Time
	mux  *http.ServeMux

	mu       sync.Mutex
	faults   Faults
	log      []LoggedRequest
	keys     []*signingKey // keys[0] signs; all are published in the JWKS
	rogueKey *signingKey   // signs when Faults.BadSignature; never published

	codes    map[string]*authCode     // by sha256(code)
	access   map[string]*accessToken  // by sha256(token)
	refresh  map[string]*refreshToken // by sha256(token)
	logins   map[string]*loginSession // sandbox login cookie → who signed in (skip sign-in)
	requests map[string]*sigRequest   // by signature_request_id
	reminds  map[string]int           // "id|email|yyyy-mm-dd" → reminders sent (10 per day)
	events   chan webhookJob          // webhook queue

	clients   map[string]*Client         // by client_id (RegisterClient)
	replayed  map[string]bool            // user IDs whose seed was replayed (ReplaySeedOnConsent)
	pending   map[string]*pendingConsent // sign-in/consent pages awaiting a POST, by id
	closeOnce sync.Once

	// sandbox is the REST/signer/webhook half's background state (timers, webhook workers,
	// delivery log); its zero value is ready, and it is guarded by mu (see webhooks.go).
	sandbox sandboxState
}

type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

// grant is one authorization (consent) of one user to one client: the chain that
// Hydra revokes as a whole on refresh-token reuse.
type grant struct {
	id       string
	clientID string
	user     *User
	scopes   []string
	nonce    string
	authTime time.Time
	sid      string
	revoked  bool
	// requestedAt is when the authorization request arrived (the ID token's rat).
	requestedAt time.Time
}

type authCode struct {
	grant         *grant
	redirectURI   string
	challenge     string // S256 code_challenge; "" when the request sent none
	expires       time.Time
	used          bool
	issuedAccess  []string // hashes, revoked on code reuse
	issuedRefresh []string
}

type accessToken struct {
	grant   *grant
	expires time.Time
	revoked bool
}

type refreshToken struct {
	grant   *grant
	expires time.Time
	used    bool // rotated: presenting it again is reuse → revoke the chain
	revoked bool
	access  string // hash of the access token issued with it (revoked on rotation)
}

type loginSession struct {
	user    *User
	sid     string
	created time.Time
}

type webhookJob struct {
	body    []byte
	attempt int
}

// DefaultUsers returns the seeded sandbox users: Ada has signature requests in every
// status, Grace has none.
func DefaultUsers() []User {
	return []User{
		{ID: "65a1f0c2e4b0a1b2c3d4e5f6", Subject: "65a1f0c2e4b0a1b2c3d4e5f6", Email: "ada@sandbox.lumin.test", Name: "Ada Lovelace",
			Description: "Has signature requests in every status"},
		{ID: "65a1f0c2e4b0a1b2c3d4e5f7", Subject: "65a1f0c2e4b0a1b2c3d4e5f7", Email: "grace@sandbox.lumin.test", Name: "Grace Hopper",
			Description: "Has no signature requests yet"},
	}
}

// New builds a sandbox from opts (see Options for defaults). It generates RSA keys,
// seeds users and their signature requests, and starts the webhook sender.
// Call Close to stop background work.
func New(opts Options) *Fake {
	if opts.Issuer == "" {
		opts.Issuer = "http://127.0.0.1:4444" // Hydra's public port; NewServer sets the real one
	}
	if opts.Users == nil {
		opts.Users = DefaultUsers()
	} else {
		opts.Users = append([]User(nil), opts.Users...)
	}
	setDefault(&opts.AccessTokenTTL, time.Hour)      // lumin-api.md §6
	setDefault(&opts.RefreshTokenTTL, 720*time.Hour) // Hydra default
	setDefault(&opts.IDTokenTTL, time.Hour)          // Hydra default
	setDefault(&opts.CodeTTL, 10*time.Minute)        // Hydra default
	setDefault(&opts.ProcessingDelay, time.Second)   // see Options
	if opts.WebhookRetries == nil {
		opts.WebhookRetries = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond,
			900 * time.Millisecond, 2700 * time.Millisecond, 8100 * time.Millisecond, 24300 * time.Millisecond}
	}
	if opts.WebhookClient == nil {
		// Lumin waits 30 s for a 200, and only a direct 200 counts: a redirect is not
		// followed (the strict reading of lumin-api.md §21).
		opts.WebhookClient = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	f := &Fake{
		opts:     opts,
		now:      now,
		mux:      http.NewServeMux(),
		keys:     []*signingKey{newSigningKey()},
		codes:    map[string]*authCode{},
		access:   map[string]*accessToken{},
		refresh:  map[string]*refreshToken{},
		logins:   map[string]*loginSession{},
		requests: map[string]*sigRequest{},
		reminds:  map[string]int{},
		events:   make(chan webhookJob, 1024),
		clients:  map[string]*Client{},
		pending:  map[string]*pendingConsent{},
		replayed: map[string]bool{},
	}
	for _, c := range opts.Clients {
		f.RegisterClient(c)
	}
	f.registerOAuth(f.mux)
	f.registerAPI(f.mux)
	f.seed()
	f.startWebhooks()
	return f
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// Close stops the webhook sender and timers.
func (f *Fake) Close() { f.closeOnce.Do(f.stopWebhooks) }

// Issuer returns the exact issuer string.
func (f *Fake) Issuer() string { return f.opts.Issuer }

// APIURL returns the REST API base, Issuer + "/v1".
func (f *Fake) APIURL() string { return f.endpoint("/v1") }

// Users returns the seeded users.
func (f *Fake) Users() []User { return append([]User(nil), f.opts.Users...) }

// SetFaults replaces the fault knobs.
func (f *Fake) SetFaults(fl Faults) { f.mu.Lock(); f.faults = fl; f.mu.Unlock() }

// Requests returns a copy of the request log.
func (f *Fake) Requests() []LoggedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]LoggedRequest(nil), f.log...)
}

// RegisterClient adds (or replaces) a client, e.g. the app's redirect URI in sandbox mode.
// Zero fields get defaults: AuthMethod "client_secret_post" (Lumin's documented method),
// Name the client ID, Scopes every scope Lumin lists (lumin-api.md §13).
func (f *Fake) RegisterClient(c Client) {
	if c.AuthMethod == "" {
		c.AuthMethod = authMethodPost
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.Scopes == nil {
		c.Scopes = supportedScopes
	}
	c.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	c.Scopes = append([]string(nil), c.Scopes...)
	c.PostLogoutRedirectURIs = append([]string(nil), c.PostLogoutRedirectURIs...)
	f.mu.Lock()
	f.clients[c.ID] = &c
	f.mu.Unlock()
}

// RotateKeys adds a new signing key (published first, used for new ID tokens) and keeps
// the old ones in the JWKS.
func (f *Fake) RotateKeys() {
	k := newSigningKey() // outside the lock: RSA generation takes tens of milliseconds
	f.mu.Lock()
	f.keys = append([]*signingKey{k}, f.keys...)
	f.mu.Unlock()
}

// RevokeUserGrants revokes every grant (all tokens) of the user with that email, as if
// the user removed the app in Lumin ("revoked grant" fault).
func (f *Fake) RevokeUserGrants(email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	revoke := func(g *grant) {
		if strings.EqualFold(g.user.Email, email) {
			g.revoked = true
		}
	}
	for _, c := range f.codes {
		revoke(c.grant)
	}
	for _, t := range f.access {
		revoke(t.grant)
	}
	for _, t := range f.refresh {
		revoke(t.grant)
	}
}

// Server is a Fake listening on a loopback port.
type Server struct {
	*Fake
	URL string // == Issuer
	srv *http.Server
	ln  net.Listener
}

// NewServer listens on 127.0.0.1:0 (or opts.Issuer's host:port if set), sets
// opts.Issuer to the listening URL and serves the fake.
// An Issuer without an explicit port (e.g. the production URL) is replaced.
func NewServer(opts Options) (*Server, error) {
	addr := "127.0.0.1:0"
	keepIssuer := false
	if opts.Issuer != "" {
		if u, err := url.Parse(opts.Issuer); err == nil && u.Port() != "" {
			addr, keepIssuer = u.Host, true
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if !keepIssuer {
		opts.Issuer = "http://" + ln.Addr().String()
	}
	f := New(opts)
	s := &Server{
		Fake: f,
		URL:  opts.Issuer,
		ln:   ln,
		// Timeouts so a stuck test client cannot pin a goroutine forever.
		srv: &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close shuts the server and the fake down.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.Fake.Close()
	return err
}

// --- small shared helpers -------------------------------------------------------

// randomToken returns prefix + 32 random bytes, base64url (crypto/rand).
func randomToken(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// randomHex returns n random bytes as hex (used for 24-hex ids).
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// hashToken keys token maps by SHA-256 so the maps never hold tokens in the clear.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func (f *Fake) record(lr LoggedRequest) {
	f.mu.Lock()
	lr.Time = f.now()
	f.log = append(f.log, lr)
	f.mu.Unlock()
}

var _ = url.Values{} // url is used by the endpoint files

// sigRequest is a stored signature request. The API half (api.go) owns its behaviour.
type sigRequest struct {
	id          string
	owner       *User // the creator; only tokens of this user (same Workspace) may read it
	title       string
	status      string
	reason      string
	signingType string
	createdAt   time.Time
	updatedAt   time.Time
	expiresAt   time.Time
	signers     []*sigSigner
	viewers     []string
	file        []byte // the uploaded or generated PDF
	fromAPI     bool   // cancel is reportedly only for API-created requests
	seeded      bool   // made by seed(), not sent through the API (ReplaySeedOnConsent)
	useTextTags bool
	links       map[string]fileLink // signed file URLs by hashToken(token) (api.go)
}

type sigSigner struct {
	email      string
	name       string
	group      int
	status     string // NEED_TO_SIGN, WAITING_FOR_OTHERS, APPROVED, REJECTED
	isApproved bool
	token      string    // sandbox signer-page secret
	viewed     bool      // signature_request_viewed already sent
	signedAt   time.Time // when the signer signed or declined
	formTokens []string  // recent anti-CSRF tokens of the signer page (signer.go)
}

// bearer authenticates a REST call (RFC 6750 §2.1): the access token must exist, be
// unexpired, unrevoked, and its grant alive. It returns the token's grant.
func (f *Fake) bearer(r *http.Request) (*grant, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.access[hashToken(h[len(p):])]
	if !ok || at.revoked || at.grant.revoked || !f.now().Before(at.expires) {
		return nil, false
	}
	return at.grant, true
}

// hasScope reports whether g was granted scope.
func (g *grant) hasScope(scope string) bool {
	for _, s := range g.scopes {
		if s == scope {
			return true
		}
	}
	return false
}
