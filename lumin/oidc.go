package lumin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// Config configures the relying party. Every field is explicit; nothing is read from
// the environment here.
type Config struct {
	Issuer       string        // LUMIN_ISSUER; discovery's issuer must equal it byte for byte
	ClientID     string        // LUMIN_CLIENT_ID
	ClientSecret string        // LUMIN_CLIENT_SECRET; only ever sent in the form body
	RedirectURL  string        // APP_BASE_URL + "/auth/callback", constant (security.md §1.5)
	Scopes       []string      // LUMIN_SCOPES; must contain "openid"
	Leeway       time.Duration // clock skew allowed on exp/iat (default 60 s, security.md §4.4)
	// HTTPClient is used for every auth-server call (discovery, JWKS, token, revoke,
	// userinfo). nil → NewHTTPClient(10*time.Second). It must not follow redirects.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time // for tests; nil → time.Now

	// PostLogoutRedirectURL is optional and empty by default. Lumin's app registration
	// has no field for post-logout redirect URIs and Hydra rejects an unregistered
	// post_logout_redirect_uri (lumin-api.md §2, §9), so EndSessionURL sends only
	// id_token_hint unless this is set — a deliberate deviation from issue 4's "with
	// post_logout_redirect_uri and state when offered".
	PostLogoutRedirectURL string
}

// String implements fmt.Stringer with the non-secret fields only: ClientSecret never
// appears in any formatting path (security.md §12.1, §12.3).
func (c Config) String() string {
	return fmt.Sprintf("lumin.Config{Issuer:%q ClientID:%q RedirectURL:%q Scopes:%q Leeway:%s ClientSecret:[redacted]}",
		c.Issuer, c.ClientID, c.RedirectURL, c.Scopes, c.Leeway)
}

// GoString implements fmt.GoStringer (%#v) with the same redaction.
func (c Config) GoString() string { return c.String() }

// Format implements fmt.Formatter so every verb (%v, %+v, %#v, %s, %q) is redacted.
func (c Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// MarshalJSON keeps the redaction when a Config is nested in a value a JSON logger
// marshals (slog only asks the top-level value for LogValue).
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// LogValue implements slog.LogValuer: the non-secret fields as a group.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("issuer", c.Issuer),
		slog.String("client_id", c.ClientID),
		slog.String("redirect_url", c.RedirectURL),
		slog.String("scopes", strings.Join(c.Scopes, " ")),
		slog.String("client_secret", "[redacted]"),
	)
}

// Metadata is the subset of the discovery document we use (lumin-api.md §3).
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	AuthorizationResponseISSParameter bool     `json:"authorization_response_iss_parameter_supported"`
}

// AuthRequest is the per-login secret material kept in the transaction cookie.
type AuthRequest struct {
	State    string // 32 random bytes, base64url (security.md §1.3)
	Nonce    string // 32 random bytes, base64url
	Verifier string // PKCE verifier (oauth2.GenerateVerifier)
}

// String implements fmt.Stringer: state, nonce and verifier are login secrets that must
// never reach a log (security.md §12.1, §12.3).
func (AuthRequest) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer (%#v) with the same redaction.
func (AuthRequest) GoString() string { return "[redacted]" }

// Format implements fmt.Formatter so every verb (%v, %+v, %#v, %s, %q) is redacted.
func (AuthRequest) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// LogValue implements slog.LogValuer.
func (AuthRequest) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON keeps the redaction inside values a JSON logger marshals.
func (AuthRequest) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// NewAuthRequest draws fresh state, nonce and PKCE verifier from crypto/rand.
func NewAuthRequest() (AuthRequest, error) {
	// 32 bytes from crypto/rand, base64url: 43 characters, far above Hydra's 8-character
	// minimum and unguessable (security.md §1.3; RFC 6749 §10.12; OIDC Core §15.5.2).
	state, err := randomString()
	if err != nil {
		return AuthRequest{}, err
	}
	nonce, err := randomString()
	if err != nil {
		return AuthRequest{}, err
	}
	// RFC 7636 §4.1: 32 octets, base64url (security.md §1.4).
	return AuthRequest{State: state, Nonce: nonce, Verifier: oauth2.GenerateVerifier()}, nil
}

func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("lumin: crypto/rand: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// maxCodeLen caps the authorization code we accept from the callback (security.md §2.4).
const maxCodeLen = 2048

// authTimeout bounds every auth-server call (security.md §13.1: auth server 10 s).
const authTimeout = 10 * time.Second

// RP is the OpenID Connect relying party for one Lumin private app. Safe for concurrent use.
type RP struct {
	cfg    Config
	hc     *http.Client
	log    *slog.Logger
	now    func() time.Time
	leeway time.Duration

	// discovery state (discovery.go)
	mu       sync.Mutex
	st       *rpState
	lastErr  error
	failures int
	nextTry  time.Time
	discSF   singleflight.Group

	// refresh state (refresh.go)
	refreshSF singleflight.Group
	rotMu     sync.Mutex
	rotated   map[string]rotatedEntry
}

// rpState is everything derived from a successful discovery.
type rpState struct {
	md       Metadata
	oauth    *oauth2.Config
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

// NewRP returns a relying party. It does no I/O: discovery happens lazily on first
// use (and can be forced with Discover), so a Lumin outage never stops start-up.
func NewRP(cfg Config) (*RP, error) {
	var problems []string
	if _, err := checkEndpointURL(cfg.Issuer); err != nil {
		// Endpoints come only from the issuer's discovery document over TLS
		// (security.md §1.2); http is for loopback development only (design.md).
		problems = append(problems, fmt.Sprintf("issuer %q: %v", cfg.Issuer, err))
	}
	if cfg.ClientID == "" {
		problems = append(problems, "client id is empty")
	}
	if cfg.ClientSecret == "" {
		problems = append(problems, "client secret is empty")
	}
	if u, err := checkEndpointURL(cfg.RedirectURL); err != nil {
		problems = append(problems, fmt.Sprintf("redirect URL %q: %v", cfg.RedirectURL, err))
	} else if u.RawQuery != "" {
		problems = append(problems, fmt.Sprintf("redirect URL %q: must not have a query", cfg.RedirectURL))
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		// We rely on the ID token for identity (security.md §1.6).
		problems = append(problems, `scopes must contain "openid"`)
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		problems = append(problems, "leeway must be between 0 and 5 minutes")
	}
	if cfg.PostLogoutRedirectURL != "" {
		if _, err := checkEndpointURL(cfg.PostLogoutRedirectURL); err != nil {
			problems = append(problems, fmt.Sprintf("post-logout redirect URL %q: %v", cfg.PostLogoutRedirectURL, err))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("lumin: invalid relying-party configuration: %s", strings.Join(problems, "; "))
	}
	rp := &RP{
		cfg:     cfg,
		hc:      ownClient(cfg.HTTPClient, authTimeout),
		log:     cfg.Logger,
		now:     cfg.Now,
		leeway:  cfg.Leeway,
		rotated: make(map[string]rotatedEntry),
	}
	rp.cfg.Scopes = slices.Clone(cfg.Scopes)
	if rp.log == nil {
		rp.log = slog.New(slog.DiscardHandler)
	}
	if rp.now == nil {
		rp.now = time.Now
	}
	if rp.leeway == 0 {
		rp.leeway = 60 * time.Second // security.md §4.4 default
	}
	return rp, nil
}

// Discover fetches (or returns the cached) discovery document and JWKS, retrying with
// back-off after failures. Errors wrap ErrDiscoveryUnavailable or ErrIssuerMismatch.
func (rp *RP) Discover(ctx context.Context) (*Metadata, error) {
	st, err := rp.state(ctx)
	if err != nil {
		return nil, err
	}
	md := st.md
	md.IDTokenSigningAlgValuesSupported = slices.Clone(md.IDTokenSigningAlgValuesSupported)
	md.CodeChallengeMethodsSupported = slices.Clone(md.CodeChallengeMethodsSupported)
	md.TokenEndpointAuthMethodsSupported = slices.Clone(md.TokenEndpointAuthMethodsSupported)
	return &md, nil
}

// AuthCodeURL builds the authorization request URL (security.md §1).
func (rp *RP) AuthCodeURL(ctx context.Context, ar AuthRequest) (string, error) {
	if ar.State == "" || ar.Nonce == "" || ar.Verifier == "" {
		return "", errors.New("lumin: AuthCodeURL needs state, nonce and verifier (use NewAuthRequest)")
	}
	st, err := rp.state(ctx)
	if err != nil {
		return "", err
	}
	// oauth2.Config.AuthCodeURL sends response_type=code (code flow only, RFC 9700
	// §2.1.2), client_id, the constant redirect_uri (security.md §1.5), scope and state;
	// we add the nonce (OIDC Core §3.1.2.1) and the S256 challenge — never "plain"
	// (RFC 7636 §4.2; security.md §1.4). No response_mode: form_post is never used.
	return st.oauth.AuthCodeURL(ar.State,
		oidc.Nonce(ar.Nonce),
		oauth2.S256ChallengeOption(ar.Verifier),
	), nil
}

// CheckCallbackIssuer applies RFC 9207 to the callback's iss parameter (security.md §2.3).
func (rp *RP) CheckCallbackIssuer(ctx context.Context, iss string, present bool) error {
	st, err := rp.state(ctx)
	if err != nil {
		return err
	}
	if present {
		// RFC 9207 §2.4: compare by simple string comparison with the issuer we expect.
		if iss != st.md.Issuer {
			return fmt.Errorf("%w: iss parameter does not match the issuer (RFC 9207)", ErrBadCallback)
		}
		return nil
	}
	if st.md.AuthorizationResponseISSParameter {
		// RFC 9207 §2.4: the server promised iss, so its absence is a mix-up signal.
		return fmt.Errorf("%w: iss parameter missing though the issuer advertises it (RFC 9207)", ErrBadCallback)
	}
	return nil
}

// Exchange redeems code exactly once (no retries, AuthStyleInParams, PKCE verifier),
// then fully verifies the ID token against ar.Nonce (security.md §3, §4).
func (rp *RP) Exchange(ctx context.Context, code string, ar AuthRequest) (Tokens, Identity, error) {
	// security.md §2.4: code required and ≤ 2 KiB — checked before any token request.
	if code == "" {
		return Tokens{}, Identity{}, fmt.Errorf("%w: code missing", ErrBadCallback)
	}
	if len(code) > maxCodeLen {
		return Tokens{}, Identity{}, fmt.Errorf("%w: code longer than %d bytes", ErrBadCallback, maxCodeLen)
	}
	if ar.Nonce == "" || ar.Verifier == "" {
		return Tokens{}, Identity{}, errors.New("lumin: Exchange needs the transaction's nonce and verifier")
	}
	st, err := rp.state(ctx)
	if err != nil {
		return Tokens{}, Identity{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()

	// One request, never retried on any failure: a code is single use and a retry
	// would be reuse (security.md §3.2, §13.4; RFC 6749 §4.1.2).
	tok, err := rp.tokenRequest(ctx, func(ctx context.Context) (*oauth2.Token, error) {
		// RFC 7636 §4.5: the verifier; x/oauth2 adds grant_type, code and redirect_uri.
		return st.oauth.Exchange(ctx, code, oauth2.VerifierOption(ar.Verifier))
	}, false)
	if err != nil {
		return Tokens{}, Identity{}, err
	}
	t, err := rp.tokensFrom(tok, nil)
	if err != nil {
		return Tokens{}, Identity{}, err
	}
	if t.IDToken == "" {
		// We asked for openid, so an ID token is required (security.md §3.4).
		return Tokens{}, Identity{}, fmt.Errorf("%w: token response without id_token", ErrUpstream)
	}
	id, err := rp.verifyIDToken(ctx, st, t.IDToken, t.AccessToken, ar.Nonce, nil)
	if err != nil {
		return Tokens{}, Identity{}, err
	}
	return t, id, nil
}

// Revoke revokes t's refresh token (or its access token if there is none) per RFC 7009.
// A missing revocation_endpoint is not an error.
func (rp *RP) Revoke(ctx context.Context, t Tokens) error {
	token, hint := t.RefreshToken, "refresh_token"
	if token == "" {
		token, hint = t.AccessToken, "access_token"
	}
	if token == "" {
		return nil
	}
	st, err := rp.state(ctx)
	if err != nil {
		return err
	}
	if st.md.RevocationEndpoint == "" {
		return nil // optional feature, skipped when not discovered (lumin-api.md §3)
	}
	ctx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()
	// RFC 7009 §2.1: token + token_type_hint; client credentials in the form body as at
	// the token endpoint (client_secret_post, security.md §3.1, §9.2).
	form := url.Values{
		"token":           {token},
		"token_type_hint": {hint},
		"client_id":       {rp.cfg.ClientID},
		"client_secret":   {rp.cfg.ClientSecret},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.md.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("lumin: revoke request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := rp.hc.Do(req)
	if err != nil {
		return upstreamErr("revocation request failed", err)
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusOK {
		// RFC 7009 §2.2: 200 also for unknown or already revoked tokens.
		return nil
	}
	// The body is read only to pick out the error code; it is never put into the error
	// or a log line (security.md §12.1).
	body, _ := readCapped(resp.Body, 64<<10)
	code, desc, hint := parseOAuthErrorBody(resp.Header.Get("Content-Type"), body)
	return oauthError(resp.StatusCode, code, desc, hint, false)
}

// EndSessionURL returns end_session_endpoint?id_token_hint=… when both exist (lumin-api.md §9).
//
// Only id_token_hint is sent: Lumin cannot register a post-logout redirect URI and Hydra
// errors on post_logout_redirect_uri (or state) that is not registered (lumin-api.md §2,
// §9). This deviates on purpose from issue 4's "post_logout_redirect_uri and state when
// offered": post_logout_redirect_uri is added only when Config.PostLogoutRedirectURL is
// set, and state never — a post-logout return route acts on nothing (security.md §9.5),
// so a state value would protect nothing.
func (rp *RP) EndSessionURL(ctx context.Context, idToken string) (string, bool) {
	if idToken == "" {
		return "", false
	}
	st, err := rp.state(ctx)
	if err != nil || st.md.EndSessionEndpoint == "" {
		return "", false
	}
	u, err := url.Parse(st.md.EndSessionEndpoint)
	if err != nil {
		return "", false
	}
	q := u.Query()
	q.Set("id_token_hint", idToken)
	if rp.cfg.PostLogoutRedirectURL != "" {
		q.Set("post_logout_redirect_uri", rp.cfg.PostLogoutRedirectURL)
	}
	u.RawQuery = q.Encode()
	return u.String(), true
}
