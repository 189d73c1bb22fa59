package lumin

import (
	"context"
	"log/slog"
	"net/http"
	"time"
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

// NewAuthRequest draws fresh state, nonce and PKCE verifier from crypto/rand.
func NewAuthRequest() (AuthRequest, error) { panic("TODO") }

// RP is the OpenID Connect relying party for one Lumin private app. Safe for concurrent use.
type RP struct { /* unexported */
}

// NewRP returns a relying party. It does no I/O: discovery happens lazily on first
// use (and can be forced with Discover), so a Lumin outage never stops start-up.
func NewRP(cfg Config) (*RP, error) { panic("TODO") }

// Discover fetches (or returns the cached) discovery document and JWKS, retrying with
// back-off after failures. Errors wrap ErrDiscoveryUnavailable or ErrIssuerMismatch.
func (rp *RP) Discover(ctx context.Context) (*Metadata, error) { panic("TODO") }

// AuthCodeURL builds the authorization request URL (security.md §1).
func (rp *RP) AuthCodeURL(ctx context.Context, ar AuthRequest) (string, error) { panic("TODO") }

// CheckCallbackIssuer applies RFC 9207 to the callback's iss parameter (security.md §2.3).
func (rp *RP) CheckCallbackIssuer(ctx context.Context, iss string, present bool) error {
	panic("TODO")
}

// Exchange redeems code exactly once (no retries, AuthStyleInParams, PKCE verifier),
// then fully verifies the ID token against ar.Nonce (security.md §3, §4).
func (rp *RP) Exchange(ctx context.Context, code string, ar AuthRequest) (Tokens, Identity, error) {
	panic("TODO")
}

// Refresh rotates old (security.md §7): single-flight per refresh token on a detached
// context, a 60 s map of just-rotated tokens, ID token re-checked against prev.
// Errors wrap ErrInvalidGrant, ErrConcurrentRefresh, ErrUpstream or ErrNoRefreshToken.
func (rp *RP) Refresh(ctx context.Context, old Tokens, prev Identity) (Tokens, error) {
	panic("TODO")
}

// NeedsRefresh reports whether t expires within 60 s (security.md §7.1).
func (rp *RP) NeedsRefresh(t Tokens) bool { panic("TODO") }

// Revoke revokes t's refresh token (or its access token if there is none) per RFC 7009.
// A missing revocation_endpoint is not an error.
func (rp *RP) Revoke(ctx context.Context, t Tokens) error { panic("TODO") }

// EndSessionURL returns end_session_endpoint?id_token_hint=… when both exist (lumin-api.md §9).
func (rp *RP) EndSessionURL(ctx context.Context, idToken string) (string, bool) { panic("TODO") }
