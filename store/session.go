// Package store keeps state: the typed cookie session and login transactions (over
// gorilla/sessions + securecookie, signed and encrypted) and the database of tracked
// signature requests (SQLite by default, PostgreSQL optional). It never imports Echo.
package store

import (
	"errors"
	"net/http"
	"time"
)

// ErrCookieTooLarge means a Set-Cookie would exceed the 3800-byte budget even after the
// optional ID token was dropped (security.md §6.2).
var ErrCookieTooLarge = errors.New("store: session cookie over budget")

// ErrNoTransaction means the callback's state matches no pending login transaction
// (missing cookie, unknown, expired or already used — security.md §2.1).
var ErrNoTransaction = errors.New("store: no matching login transaction")

// CookieConfig sets every cookie option explicitly (security.md §6.1, §14).
type CookieConfig struct {
	// Keys are the SESSION_KEYS entries, current first; each ≥ 32 bytes. HMAC and AES keys
	// are derived from each with HKDF-SHA256 under distinct labels.
	Keys [][]byte
	// Secure: true for an https base URL (Secure flag + __Host- prefix); false only for
	// loopback http.
	Secure          bool
	IdleTimeout     time.Duration // sliding, default 30 min
	AbsoluteTimeout time.Duration // checked against CreatedAt, default 12 h
	Now             func() time.Time
}

// Session is the typed content of the session cookie. Tokens never reach the browser
// readable: the cookie is AES-encrypted and HMAC-signed.
type Session struct {
	ID        string // random per login (security.md §2.5); used for the denylist
	UserKey   string // "iss|sub"
	Name      string
	Email     string
	CreatedAt time.Time
	AuthTime  time.Time

	AccessToken  string
	RefreshToken string
	IDToken      string // optional; dropped first when over budget
	Expiry       time.Time
	Scopes       []string

	ProfileFetchedAt time.Time // profile cache (≤ 10 min, security.md §5.2)
}

// Connected reports whether the session holds a Lumin connection (tokens).
func (s *Session) Connected() bool { return s != nil && s.AccessToken != "" }

// Sessions reads and writes session and login-transaction cookies.
type Sessions struct { /* unexported */
}

// NewSessions validates cfg and builds the codecs.
func NewSessions(cfg CookieConfig) (*Sessions, error) { panic("TODO") }

// SessionCookieName is "__Host-lumin" over https, "lumin" on loopback http.
func (s *Sessions) SessionCookieName() string { panic("TODO") }

// Load returns the session, or nil when there is none or it cannot be decoded, is past
// its absolute lifetime, etc. A bad cookie is cleared on w (security.md §6.3.2): never an error.
func (s *Sessions) Load(w http.ResponseWriter, r *http.Request) *Session { panic("TODO") }

// Save writes sess (dropping IDToken first if over budget). It must be called before
// any body is written. Returns ErrCookieTooLarge if still over budget.
func (s *Sessions) Save(w http.ResponseWriter, sess *Session) error { panic("TODO") }

// Clear expires the session cookie (same name, path and attributes).
func (s *Sessions) Clear(w http.ResponseWriter) { panic("TODO") }

// LoginTx is one pending authorization request (security.md §1.7).
type LoginTx struct {
	State     string
	Nonce     string
	Verifier  string
	ReturnTo  string
	CreatedAt time.Time
}

// AddTx stores tx in the transaction cookie, keeping at most 3 pending (oldest dropped)
// and dropping expired ones (10 min).
func (s *Sessions) AddTx(w http.ResponseWriter, r *http.Request, tx LoginTx) error { panic("TODO") }

// TakeTx finds the transaction whose state equals state (constant-time comparison),
// removes it from the cookie (rewritten on w) and returns it. Missing, unknown or
// expired → ErrNoTransaction.
func (s *Sessions) TakeTx(w http.ResponseWriter, r *http.Request, state string) (LoginTx, error) {
	panic("TODO")
}

// ClearTx expires the transaction cookie.
func (s *Sessions) ClearTx(w http.ResponseWriter) { panic("TODO") }
