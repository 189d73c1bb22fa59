package lumin

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// TokenSource hands the REST client a valid access token. The handlers implement it over
// the cookie session so that a refresh is persisted before the new token is used
// (security.md §7.2).
type TokenSource interface {
	// AccessToken returns a token valid for at least 60 s, refreshing first if needed.
	AccessToken(ctx context.Context) (string, error)
	// Refreshed forces one refresh after the API answered 401 with stale (security.md §8.4).
	Refreshed(ctx context.Context, stale string) (string, error)
}

// APIError is a non-2xx answer from Lumin's REST API (lumin-api.md §17).
type APIError struct {
	Status     int
	Code       string        // error_code, when the body had one
	Message    string        // error_message, safe to show escaped
	RetryAfter time.Duration // parsed Retry-After on 429/503 (seconds or HTTP date)
}

func (e *APIError) Error() string { return fmt.Sprintf("lumin api: %d %s", e.Status, e.Code) }

// User is GET /user/info's user (lumin-api.md §15).
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Signer is one signer of a signature request; Email is filled from email_address or email.
type Signer struct {
	Email      string
	Name       string
	Group      int
	IsApproved bool
	Status     string
}

// SignatureRequest is Lumin's SignatureRequest object (lumin-api.md §16.1). Times are
// zero when Lumin sent nothing parseable.
type SignatureRequest struct {
	ID          string
	Title       string
	Status      string
	Reason      string
	SigningType string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ExpiresAt   time.Time
	DetailsURL  string
	Signers     []Signer
}

// SendInput is POST /signature_request/send. Exactly one of FileURL or File is set.
type SendInput struct {
	Title       string
	FileURL     string
	FileName    string
	File        []byte // multipart upload when non-nil
	Signers     []Signer
	SigningType string // SAME_TIME or ORDER
	ExpiresAt   time.Time
}

// Reminder is one entry of a remind response.
type Reminder struct {
	Email        string
	SignerStatus string
	EmailStatus  string // SENT, EXCEED_DAILY_LIMIT, BOUNCE
}

// SignedFile is the JSON answer of GET /signature_request/{id}/file.
type SignedFile struct {
	URL       string
	ExpiresAt time.Time // from epoch seconds
}

// API is the typed REST client. It sets Authorization itself, follows no redirects and
// sends the token only to the configured API origin (security.md §8.1).
type API struct { /* unexported */
}

// NewAPI returns a REST client for baseURL (LUMIN_API_URL). hc nil → NewHTTPClient(15*time.Second).
func NewAPI(baseURL string, hc *http.Client) (*API, error) { panic("TODO") }

// UserInfo is GET /user/info.
func (a *API) UserInfo(ctx context.Context, ts TokenSource) (User, error) { panic("TODO") }

// Get is GET /signature_request/{id}.
func (a *API) Get(ctx context.Context, ts TokenSource, id string) (SignatureRequest, error) {
	panic("TODO")
}

// Send is POST /signature_request/send (never retried: it sends real emails).
func (a *API) Send(ctx context.Context, ts TokenSource, in SendInput) (SignatureRequest, error) {
	panic("TODO")
}

// Cancel is PUT /signature_request/cancel/{id}.
func (a *API) Cancel(ctx context.Context, ts TokenSource, id string) error { panic("TODO") }

// Remind is POST /signature_request/remind/{id}.
func (a *API) Remind(ctx context.Context, ts TokenSource, id string, emails []string) ([]Reminder, error) {
	panic("TODO")
}

// UpdateExpiry is PATCH /signature_request/{id}.
func (a *API) UpdateExpiry(ctx context.Context, ts TokenSource, id string, at time.Time) (SignatureRequest, error) {
	panic("TODO")
}

// File is GET /signature_request/{id}/file?type=kind with Accept: application/json.
func (a *API) File(ctx context.Context, ts TokenSource, id, kind string) (SignedFile, error) {
	panic("TODO")
}

// ValidID reports whether id has the shape allowed in a path (security.md §8.2).
func ValidID(id string) bool { panic("TODO") }

// NewHTTPClient returns a client with the given overall timeout, dial/TLS/response-header
// timeouts, certificate checks on, and no redirect following (security.md §13.1).
func NewHTTPClient(timeout time.Duration) *http.Client { panic("TODO") }
