// Package store keeps state: the typed cookie session and login transactions (cookies
// built by gorilla/sessions with explicit options, values encoded by the securecookie
// codecs its CookieStore uses — signed and encrypted; see below for why not CookieStore
// itself) and the database of tracked signature requests
// (SQLite by default, PostgreSQL optional). It never imports Echo.
package store

import (
	"bytes"
	"compress/flate"
	"crypto/aes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// Why securecookie directly and not gorilla/sessions' CookieStore (security.md §14):
//   - CookieStore.Save uses securecookie.EncodeMulti, which on an encoding failure of the
//     current key silently falls back to the next (old) key; we encode with the current
//     key only (security.md §6.1.3).
//   - It writes the Set-Cookie at once, so the whole header cannot be measured against the
//     3800-byte budget before anything is written (security.md §6.2.1).
//   - Its Values map is untyped (gob of map[interface{}]interface{}), the opposite of the
//     compact typed struct security.md §6.2.2 asks for, and bigger on the wire.
//   - Its defaults (SameSite=None, HttpOnly=false, 30-day MaxAge) must all be overridden
//     anyway (security.md §14); building the cookie ourselves sets each option once, here.
// The codecs are the same securecookie ones CookieStore would use (AES-256-CTR then
// HMAC-SHA256 over name|timestamp|ciphertext, encrypt-then-MAC), one per SESSION_KEYS entry.

// ErrCookieTooLarge means a Set-Cookie would exceed the 3800-byte budget even after the
// optional ID token was dropped (security.md §6.2).
var ErrCookieTooLarge = errors.New("store: session cookie over budget")

// ErrNoTransaction means the callback's state matches no pending login transaction
// (missing cookie, unknown, expired or already used — security.md §2.1).
var ErrNoTransaction = errors.New("store: no matching login transaction")

const (
	// MaxCookieBytes is the hard budget for one whole Set-Cookie (name, value and
	// attributes): browsers guarantee 4096 bytes per cookie (RFC 6265 §6.1) and a silently
	// dropped cookie shows up as a redirect loop (security.md §6.2.1, §6.2.3).
	MaxCookieBytes = 3800

	// TargetCookieBytes is the size a session cookie keeps to while it carries the optional
	// ID token (issue 4: ≤ 3000 bytes with realistic tokens). The ID token is only used as
	// logout's id_token_hint, so it is the first thing to go (security.md §6.2.3): a
	// session whose cookie would exceed this target with the ID token is stored without it.
	// The required content (identity and token set) may still use up to MaxCookieBytes.
	// Measured (TestSessionSizeBudget, compressed encoding, see deflateJSON): Lumin-style
	// opaque "ory_at_…" tokens plus a 1 KB ID token fit (≈ 2.2 KB); a 1.2 KB JWT access
	// token plus a 1 KB ID token would be ≈ 3.4 KB, so the ID token is dropped and the
	// cookie is ≈ 2.4 KB; a 2 KB access token still fits (≈ 3.4 KB) without it.
	TargetCookieBytes = 3000

	// MinKeyBytes is the shortest SESSION_KEYS entry accepted (security.md §6.1.2).
	MinKeyBytes = 32

	// TxLifetime is how long a pending login transaction stays usable (security.md §1.7).
	TxLifetime = 10 * time.Minute

	// MaxPendingTx is how many login transactions the cookie keeps (parallel tabs;
	// security.md §1.7). The oldest is dropped first.
	MaxPendingTx = 3

	// DefaultIdleTimeout and DefaultAbsoluteTimeout apply when CookieConfig leaves them
	// zero (security.md §6.1, config.yaml defaults).
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour

	// reissueAfter throttles the sliding idle timeout: a session read more than this long
	// after it was written asks to be saved again (NeedsSave), so an active user keeps the
	// session without every response carrying a ~3 KB Set-Cookie.
	reissueAfter = time.Minute

	// Distinct HKDF info labels give independent HMAC and AES keys from one secret
	// (RFC 5869 §3.2; security.md §6.1.2). Bump "v1" to invalidate every cookie.
	hkdfLabelHMAC = "connect-lumin cookie hmac v1"
	hkdfLabelAES  = "connect-lumin cookie aes v1"

	sessionCookieSecure   = "__Host-lumin"
	sessionCookieLoopback = "lumin"
	txCookieSecure        = "__Host-lumin-tx"
	txCookieLoopback      = "lumin-tx"

	// maxCookieCandidates bounds the MAC checks spent on one request carrying several
	// cookies with the same name (e.g. an injected one with another Path).
	maxCookieCandidates = 4
)

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

	// needsSave is set by Load when the cookie should be re-issued: it was encoded under
	// an old key (rotation, security.md §6.1.3) or was written more than reissueAfter ago
	// (sliding idle timeout, security.md §6.3.1).
	needsSave bool
}

// Connected reports whether the session holds a Lumin connection (tokens).
func (s *Session) Connected() bool { return s != nil && s.AccessToken != "" }

// NeedsSave reports whether Load found a cookie that should be re-issued on this response:
// one encoded under an old SESSION_KEYS entry (so it moves to the current key before the
// old one is removed, security.md §6.1.3) or one last written more than a minute ago (so
// the idle timeout slides, security.md §6.3.1). Callers (a middleware) then call Save
// before writing the body. Load itself never writes a valid session back: a handler that
// refreshes tokens saves the same cookie, and Save replaces any earlier Set-Cookie of it.
func (s *Session) NeedsSave() bool { return s != nil && s.needsSave }

// String implements fmt.Stringer: a session holds tokens, so it never prints them
// (security.md §12.3).
func (Session) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer (%#v) with the same redaction.
func (Session) GoString() string { return "[redacted]" }

// Format implements fmt.Formatter so every verb (%v, %+v, %#v, %s, %q) is redacted.
func (Session) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// LogValue implements slog.LogValuer.
func (Session) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Sessions reads and writes session and login-transaction cookies.
type Sessions struct {
	secure   bool
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
	// session and tx codecs differ only in MaxAge; all decode (rotation, security.md
	// §6.1.3). sessEnc/txEnc are the current key's codecs, the only ones that encode;
	// without securecookie's length cap, since our budget check measures the whole header.
	sessCodecs []*securecookie.SecureCookie
	txCodecs   []*securecookie.SecureCookie
	sessEnc    *securecookie.SecureCookie
	txEnc      *securecookie.SecureCookie

	decoded decodedCache
}

// decodedCache remembers recently verified session cookies by the SHA-256 of their exact
// value, so the requests a browser makes with one cookie pay for the MAC, AES, inflate
// and JSON once: decoding was ~40 % of a dashboard view (BenchmarkDashboard). Only a
// byte-identical cookie that already verified under our keys can hit, so nothing is
// trusted that was not verified; every lifetime check in Load still runs per request;
// entries live decodedTTL and the map is emptied when it reaches decodedMax entries.
type decodedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]decodedEntry
}

type decodedEntry struct {
	wire    sessionWire
	key     int // index of the SESSION_KEYS entry that verified it
	expires time.Time
}

const (
	decodedTTL = 30 * time.Second
	decodedMax = 10_000
)

func (c *decodedCache) get(h [sha256.Size]byte, now time.Time) (sessionWire, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[h]
	if !ok || !now.Before(e.expires) {
		return sessionWire{}, -1, false
	}
	return e.wire, e.key, true
}

func (c *decodedCache) put(h [sha256.Size]byte, wire sessionWire, key int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= decodedMax {
		c.m = make(map[[sha256.Size]byte]decodedEntry)
	}
	c.m[h] = decodedEntry{wire: wire, key: key, expires: now.Add(decodedTTL)}
}

// decodeSession is decode for the session cookie, through the decoded cache.
func (s *Sessions) decodeSession(r *http.Request, name string) (wire sessionWire, present bool, keyIndex int) {
	cookies := r.CookiesNamed(name)
	if len(cookies) == 0 {
		return sessionWire{}, false, -1
	}
	// The wall clock, not cfg.Now: the cache is an optimisation bounded in real time,
	// and tests that move cfg.Now must still see every lifetime check.
	now := time.Now()
	h := sha256.Sum256([]byte(cookies[0].Value))
	if w, idx, ok := s.decoded.get(h, now); ok {
		return w, true, idx
	}
	present, idx := decode(s.sessCodecs, r, name, func() any { wire = sessionWire{}; return &wire })
	if idx >= 0 && len(cookies) == 1 {
		s.decoded.put(h, wire, idx, now)
	}
	return wire, present, idx
}

// NewSessions validates cfg and builds the codecs.
func NewSessions(cfg CookieConfig) (*Sessions, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("store: no session keys (SESSION_KEYS)")
	}
	s := &Sessions{
		secure:   cfg.Secure,
		idle:     cfg.IdleTimeout,
		absolute: cfg.AbsoluteTimeout,
		now:      cfg.Now,
	}
	if s.idle == 0 {
		s.idle = DefaultIdleTimeout
	}
	if s.absolute == 0 {
		s.absolute = DefaultAbsoluteTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.idle < time.Second || s.absolute < time.Second {
		return nil, errors.New("store: session timeouts must be at least one second")
	}
	for i, secret := range cfg.Keys {
		// security.md §6.1.2: entries ≥ 32 bytes; the error names the position, never the key.
		if len(secret) < MinKeyBytes {
			return nil, fmt.Errorf("store: SESSION_KEYS entry %d is %d bytes, want at least %d", i+1, len(secret), MinKeyBytes)
		}
		hashKey, blockKey, err := deriveKeys(secret)
		if err != nil {
			return nil, err
		}
		s.sessCodecs = append(s.sessCodecs, newCodec(hashKey, blockKey, s.idle, deflateJSON{}))
		s.txCodecs = append(s.txCodecs, newCodec(hashKey, blockKey, TxLifetime, compactJSON{}))
		if i == 0 {
			s.sessEnc = newCodec(hashKey, blockKey, s.idle, deflateJSON{}).MaxLength(0)
			s.txEnc = newCodec(hashKey, blockKey, TxLifetime, compactJSON{}).MaxLength(0)
		}
	}
	// securecookie reports a bad block key only on first use; fail at start-up instead.
	if _, err := s.sessEnc.Encode("probe", sessionWire{}); err != nil {
		return nil, fmt.Errorf("store: cookie codec: %w", err)
	}
	return s, nil
}

// deriveKeys derives the HMAC-SHA256 key and the AES-256 key of one SESSION_KEYS entry with
// HKDF-SHA256 under distinct info labels (security.md §6.1.2; RFC 5869 §3.2), so neither key
// is the raw secret and compromising one use does not give the other. No salt: the
// secret is already uniformly random and ≥ 32 bytes (RFC 5869 §3.1).
func deriveKeys(secret []byte) (hashKey, blockKey []byte, err error) {
	if hashKey, err = hkdf.Key(sha256.New, secret, nil, hkdfLabelHMAC, 32); err != nil {
		return nil, nil, fmt.Errorf("store: derive hmac key: %w", err)
	}
	if blockKey, err = hkdf.Key(sha256.New, secret, nil, hkdfLabelAES, 32); err != nil {
		return nil, nil, fmt.Errorf("store: derive aes key: %w", err)
	}
	return hashKey, blockKey, nil
}

// newCodec sets every codec option explicitly (security.md §14): HMAC-SHA256, AES-256
// (32-byte block key), our serializer, and MaxAge so the codec itself rejects a cookie
// whose signed timestamp is older than the cookie lifetime (security.md §6.3.1).
// securecookie's timestamp uses the wall clock; our own checks in Load use cfg.Now.
func newCodec(hashKey, blockKey []byte, maxAge time.Duration, sz securecookie.Serializer) *securecookie.SecureCookie {
	sc := securecookie.New(hashKey, blockKey)
	sc.HashFunc(sha256.New)
	sc.BlockFunc(aes.NewCipher)
	sc.SetSerializer(sz)
	sc.MaxAge(int(maxAge / time.Second))
	// securecookie's own 4096-byte cap on the value stays for decoding: it bounds the work
	// spent on an oversized cookie before the MAC check.
	sc.MaxLength(4096)
	return sc
}

// compactJSON is the transaction cookie's serializer. JSON with one-letter field names and
// epoch-second integers measured smaller than gob for our structs (gob re-sends its type
// description with every value: ≈ 100 bytes more per session), and is trivially
// versionable. HTML escaping is off: it would only grow values holding <, > or &.
// The transaction cookie is deliberately not compressed: its return_to is chosen by
// whoever links to /auth/connect, and compressing attacker-chosen text together with the
// other tabs' state/nonce/verifier before encryption would make the cookie's length an
// oracle for them (the CRIME/BREACH pattern).
type compactJSON struct{}

// Serialize implements securecookie.Serializer.
func (compactJSON) Serialize(src interface{}) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(src); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Deserialize implements securecookie.Serializer. It runs only after the MAC verified.
func (compactJSON) Deserialize(src []byte, dst interface{}) error {
	return json.Unmarshal(src, dst)
}

// deflateJSON is the session cookie's serializer: compactJSON, then raw DEFLATE
// (RFC 1951). securecookie base64-encodes twice and adds an IV and a MAC, so each byte of
// plaintext costs ≈ 1.8 bytes of cookie (security.md §6.2.2); tokens are base64url text
// (6 bits per character), which Huffman coding alone shrinks by about a quarter. Measured
// (TestSessionSizeBudget): a session with a 1.2 KB JWT access token is ≈ 2.4 KB instead of
// ≈ 3.1 KB. Compression before encryption is safe here because nothing in the session is
// chosen by an attacker: tokens come from Lumin's token endpoint, name and email from the
// user's own profile, scopes from our configuration (no CRIME/BREACH-style oracle).
// Inflation runs only after the MAC verified, and is capped anyway.
type deflateJSON struct{}

// maxInflated bounds the decompressed session (a cookie is < 4 KB; generous headroom).
const maxInflated = 64 << 10

// Serialize implements securecookie.Serializer.
func (deflateJSON) Serialize(src interface{}) ([]byte, error) {
	j, err := compactJSON{}.Serialize(src)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(j); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// inflaters pools DEFLATE readers: flate.NewReader allocates its ~40 KB window on every
// call, which measured as the largest single cost of decoding a session cookie on each
// request (BenchmarkDashboard); Reset reuses it.
var inflaters sync.Pool

// Deserialize implements securecookie.Serializer.
func (deflateJSON) Deserialize(src []byte, dst interface{}) error {
	zr, _ := inflaters.Get().(io.ReadCloser)
	if zr == nil {
		zr = flate.NewReader(bytes.NewReader(src))
	} else if err := zr.(flate.Resetter).Reset(bytes.NewReader(src), nil); err != nil {
		return err
	}
	defer inflaters.Put(zr)
	j, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil {
		return err
	}
	if len(j) > maxInflated {
		return errors.New("store: session too large when inflated")
	}
	return compactJSON{}.Deserialize(j, dst)
}

// sessionWire is the session as stored in the cookie (security.md §6.2.2: one compact
// typed struct). Times are epoch seconds; zero means unset.
type sessionWire struct {
	ID        string `json:"i"`
	UserKey   string `json:"u"`
	Name      string `json:"n,omitempty"`
	Email     string `json:"e,omitempty"`
	CreatedAt int64  `json:"c"`
	AuthTime  int64  `json:"a,omitempty"`
	Access    string `json:"t,omitempty"`
	Refresh   string `json:"r,omitempty"`
	IDToken   string `json:"d,omitempty"`
	Expiry    int64  `json:"x,omitempty"`
	// Scopes space-separated as on the wire (RFC 6749 §3.3: a scope token has no space).
	Scopes  string `json:"s,omitempty"`
	Profile int64  `json:"p,omitempty"`
	// SavedAt is when this cookie was written, by cfg.Now: the idle timeout is checked
	// against it (securecookie's own timestamp cannot be driven by cfg.Now).
	SavedAt int64 `json:"w"`
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// Secure reports whether cookies carry the Secure flag and the __Host- prefix (an https
// base URL, security.md §6.1.1).
func (s *Sessions) Secure() bool { return s.secure }

// SessionCookieName is "__Host-lumin" over https, "lumin" on loopback http.
func (s *Sessions) SessionCookieName() string {
	if s.secure {
		return sessionCookieSecure
	}
	return sessionCookieLoopback
}

// TxCookieName is "__Host-lumin-tx" over https, "lumin-tx" on loopback http.
func (s *Sessions) TxCookieName() string {
	if s.secure {
		return txCookieSecure
	}
	return txCookieLoopback
}

// AbsoluteExpiry is when sess ends regardless of activity (CreatedAt + the absolute
// timeout): the time a logged-out session id stays on the denylist (security.md §6.3.3).
func (s *Sessions) AbsoluteExpiry(sess *Session) time.Time {
	return sess.CreatedAt.Add(s.absolute)
}

// NewSessionID returns a fresh session id: 32 bytes from crypto/rand, base64url (43
// characters). A new one per login, never carried over (security.md §2.5).
func NewSessionID() string {
	b := make([]byte, 32)
	// crypto/rand.Read never returns an error (Go ≥ 1.24 crashes the program instead).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookie builds a cookie through gorilla/sessions with every option explicit
// (security.md §6.1.1, §14 — the library defaults are SameSite=None, HttpOnly=false and
// a 30-day MaxAge, all wrong here): HttpOnly, Path=/, no Domain, SameSite=Lax (never
// None: the callback is a cross-site top-level GET, which Lax allows), Max-Age always
// set; Secure with an https base URL (the __Host- prefix requires Secure, Path=/ and no
// Domain, RFC 6265bis §4.1.3.2). sessions.NewCookie also sets Expires from MaxAge for
// old browsers; the size budget is measured on the whole line, Expires included.
func (s *Sessions) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	opts := &sessions.Options{
		Path:     "/",
		Domain:   "",
		MaxAge:   -1, // delete now
		Secure:   s.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		opts.MaxAge = int(maxAge / time.Second)
	}
	return sessions.NewCookie(name, value, opts)
}

// setCookie writes c on w, replacing any Set-Cookie for the same name already there, so
// Load/Save/Clear in one request leave exactly one instruction per cookie (the last one).
// It only touches headers: nothing is written to the body.
func setCookie(w http.ResponseWriter, c *http.Cookie) {
	h := w.Header()
	prefix := c.Name + "="
	var keep []string
	for _, v := range h.Values("Set-Cookie") {
		if !strings.HasPrefix(v, prefix) {
			keep = append(keep, v)
		}
	}
	h.Del("Set-Cookie")
	for _, v := range keep {
		h.Add("Set-Cookie", v)
	}
	h.Add("Set-Cookie", c.String())
}

// decode tries each codec (current key first) on the request's cookies named name and
// returns the index of the key that verified, or -1.
func decode(codecs []*securecookie.SecureCookie, r *http.Request, name string, dst func() any) (found bool, keyIndex int) {
	cookies := r.CookiesNamed(name)
	if len(cookies) == 0 {
		return false, -1
	}
	if len(cookies) > maxCookieCandidates {
		cookies = cookies[:maxCookieCandidates]
	}
	for _, c := range cookies {
		for i, codec := range codecs {
			if err := codec.Decode(name, c.Value, dst()); err == nil {
				return true, i
			}
		}
	}
	return true, -1
}

// Load returns the session, or nil when there is none or it cannot be decoded, is past
// its absolute lifetime, etc. A bad cookie is cleared on w (security.md §6.3.2): never an error.
// A request without the cookie gets no Set-Cookie. A valid session is not written back
// here; see Session.NeedsSave for key rotation and the sliding idle timeout.
func (s *Sessions) Load(w http.ResponseWriter, r *http.Request) *Session {
	name := s.SessionCookieName()
	wire, present, idx := s.decodeSession(r, name)
	if !present {
		return nil
	}
	if idx < 0 {
		// Tampered, truncated, expired by the codec's MaxAge or under an unknown key:
		// anonymous, and the browser drops it (security.md §6.3.2; §14 gorilla row).
		s.Clear(w)
		return nil
	}
	now := s.now()
	created := timeOrZero(wire.CreatedAt)
	saved := timeOrZero(wire.SavedAt)
	switch {
	case wire.ID == "" || wire.UserKey == "" || created.IsZero() || saved.IsZero():
		s.Clear(w)
		return nil
	case now.Sub(created) > s.absolute:
		// Absolute lifetime: ASVS 5 7.3.2 (security.md §6.3.1). Sliding re-saves never
		// extend it because CreatedAt is carried over unchanged.
		s.Clear(w)
		return nil
	case now.Sub(saved) > s.idle:
		// Idle timeout by our clock (ASVS 5 7.3.1); the codec MaxAge checks the same by
		// the wall clock.
		s.Clear(w)
		return nil
	}
	sess := &Session{
		ID:               wire.ID,
		UserKey:          wire.UserKey,
		Name:             wire.Name,
		Email:            wire.Email,
		CreatedAt:        created,
		AuthTime:         timeOrZero(wire.AuthTime),
		AccessToken:      wire.Access,
		RefreshToken:     wire.Refresh,
		IDToken:          wire.IDToken,
		Expiry:           timeOrZero(wire.Expiry),
		ProfileFetchedAt: timeOrZero(wire.Profile),
		needsSave:        idx > 0 || now.Sub(saved) >= reissueAfter,
	}
	if wire.Scopes != "" {
		sess.Scopes = strings.Fields(wire.Scopes)
	}
	return sess
}

// Save writes sess (dropping IDToken first if over budget). It must be called before
// any body is written. Returns ErrCookieTooLarge if still over budget.
//
// The ID token is kept only while the whole Set-Cookie stays within TargetCookieBytes;
// without it the cookie may use up to MaxCookieBytes. When it is dropped, sess.IDToken is
// emptied so the caller sees what was stored (logout then omits id_token_hint,
// security.md §6.2.3). On ErrCookieTooLarge (wrapped with the size, safe to log) nothing
// is written. A zero CreatedAt is set to now.
func (s *Sessions) Save(w http.ResponseWriter, sess *Session) error {
	if sess == nil || sess.ID == "" || sess.UserKey == "" {
		return errors.New("store: save: session needs an ID and a UserKey")
	}
	now := s.now()
	if sess.CreatedAt.IsZero() {
		sess.CreatedAt = now
	}
	wire := sessionWire{
		ID:        sess.ID,
		UserKey:   sess.UserKey,
		Name:      sess.Name,
		Email:     sess.Email,
		CreatedAt: unixOrZero(sess.CreatedAt),
		AuthTime:  unixOrZero(sess.AuthTime),
		Access:    sess.AccessToken,
		Refresh:   sess.RefreshToken,
		IDToken:   sess.IDToken,
		Expiry:    unixOrZero(sess.Expiry),
		Scopes:    strings.Join(sess.Scopes, " "),
		Profile:   unixOrZero(sess.ProfileFetchedAt),
		SavedAt:   now.Unix(),
	}
	c, size, err := s.encodeSession(wire)
	if err == nil && wire.IDToken != "" && size > TargetCookieBytes {
		wire.IDToken = ""
		c, size, err = s.encodeSession(wire)
	}
	if err != nil {
		return err
	}
	if size > MaxCookieBytes {
		return fmt.Errorf("%w: %d bytes > %d", ErrCookieTooLarge, size, MaxCookieBytes)
	}
	setCookie(w, c)
	if wire.IDToken == "" {
		sess.IDToken = ""
	}
	sess.needsSave = false
	return nil
}

// encodeSession encodes with the current key only and measures the whole Set-Cookie
// (security.md §6.2.1: measured after encoding, before writing).
func (s *Sessions) encodeSession(wire sessionWire) (*http.Cookie, int, error) {
	name := s.SessionCookieName()
	v, err := s.sessEnc.Encode(name, wire)
	if err != nil {
		return nil, 0, fmt.Errorf("store: encode session: %w", err)
	}
	c := s.cookie(name, v, s.idle)
	return c, len(c.String()), nil
}

// Clear expires the session cookie (same name, path and attributes).
func (s *Sessions) Clear(w http.ResponseWriter) {
	setCookie(w, s.cookie(s.SessionCookieName(), "", 0))
}

// LoginTx is one pending authorization request (security.md §1.7).
type LoginTx struct {
	State     string
	Nonce     string
	Verifier  string
	ReturnTo  string
	CreatedAt time.Time
}

// String implements fmt.Stringer: state, nonce and verifier are never printed
// (security.md §12.1, §12.3).
func (LoginTx) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer (%#v) with the same redaction.
func (LoginTx) GoString() string { return "[redacted]" }

// Format implements fmt.Formatter so every verb is redacted.
func (LoginTx) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// LogValue implements slog.LogValuer.
func (LoginTx) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// txWire is one transaction as stored in the cookie; CreatedAt in epoch seconds.
type txWire struct {
	State     string `json:"s"`
	Nonce     string `json:"n"`
	Verifier  string `json:"v"`
	ReturnTo  string `json:"r,omitempty"`
	CreatedAt int64  `json:"c"`
}

// readTx returns the pending transactions, oldest first, that are younger than
// TxLifetime. present: the request carried the cookie; valid: it decoded; pruned: some
// entries were dropped as expired (so the cookie should be rewritten).
func (s *Sessions) readTx(r *http.Request) (txs []LoginTx, present, valid, pruned bool) {
	var wire []txWire
	present, idx := decode(s.txCodecs, r, s.TxCookieName(), func() any { wire = nil; return &wire })
	if !present || idx < 0 {
		return nil, present, false, false
	}
	now := s.now()
	for _, e := range wire {
		t := LoginTx{State: e.State, Nonce: e.Nonce, Verifier: e.Verifier, ReturnTo: e.ReturnTo, CreatedAt: timeOrZero(e.CreatedAt)}
		// security.md §1.7, §2.1: older than 10 min → gone.
		if e.State == "" || t.CreatedAt.IsZero() || now.Sub(t.CreatedAt) > TxLifetime {
			pruned = true
			continue
		}
		txs = append(txs, t)
	}
	return txs, true, true, pruned
}

// writeTx writes txs (oldest first), dropping the oldest until the Set-Cookie fits
// MaxCookieBytes. The newest (last) must survive: if it alone does not fit, ErrCookieTooLarge and
// nothing is written. An empty list clears the cookie.
func (s *Sessions) writeTx(w http.ResponseWriter, txs []LoginTx) error {
	if len(txs) == 0 {
		s.ClearTx(w)
		return nil
	}
	name := s.TxCookieName()
	for len(txs) > 0 {
		wire := make([]txWire, len(txs))
		for i, t := range txs {
			wire[i] = txWire{State: t.State, Nonce: t.Nonce, Verifier: t.Verifier, ReturnTo: t.ReturnTo, CreatedAt: unixOrZero(t.CreatedAt)}
		}
		v, err := s.txEnc.Encode(name, wire)
		if err != nil {
			return fmt.Errorf("store: encode login transaction: %w", err)
		}
		if c := s.cookie(name, v, TxLifetime); len(c.String()) <= MaxCookieBytes {
			setCookie(w, c)
			return nil
		}
		if len(txs) == 1 {
			break
		}
		txs = txs[1:]
	}
	return fmt.Errorf("%w: login transaction", ErrCookieTooLarge)
}

// AddTx stores tx in the transaction cookie, keeping at most 3 pending (oldest dropped)
// and dropping expired ones (10 min).
// If the pending ones do not all fit MaxCookieBytes (only with several near-512-byte
// return_to paths), older ones are dropped too; tx itself always stays or the call fails
// with ErrCookieTooLarge. An undecodable existing cookie is simply replaced. A zero
// tx.CreatedAt is set to now; an empty State is refused (it would match an empty
// callback state).
func (s *Sessions) AddTx(w http.ResponseWriter, r *http.Request, tx LoginTx) error {
	if tx.State == "" {
		return errors.New("store: login transaction without state")
	}
	if tx.CreatedAt.IsZero() {
		tx.CreatedAt = s.now()
	}
	txs, _, _, _ := s.readTx(r)
	txs = append(txs, tx)
	if len(txs) > MaxPendingTx {
		txs = txs[len(txs)-MaxPendingTx:]
	}
	return s.writeTx(w, txs)
}

// TakeTx finds the transaction whose state equals state (constant-time comparison),
// removes it from the cookie (rewritten on w) and returns it. Missing, unknown or
// expired → ErrNoTransaction.
// The removal happens here, before any token request, so a replayed callback finds
// nothing (security.md §2.1). A cookie that fails to decode is cleared.
func (s *Sessions) TakeTx(w http.ResponseWriter, r *http.Request, state string) (LoginTx, error) {
	txs, present, valid, pruned := s.readTx(r)
	if !present {
		return LoginTx{}, ErrNoTransaction
	}
	if !valid {
		s.ClearTx(w)
		return LoginTx{}, ErrNoTransaction
	}
	match := -1
	if state != "" {
		for i, t := range txs {
			// Every entry is compared, each in constant time (security.md §2.1; issue 4).
			if subtle.ConstantTimeCompare([]byte(t.State), []byte(state)) == 1 && match < 0 {
				match = i
			}
		}
	}
	if match < 0 {
		if pruned {
			if err := s.writeTx(w, txs); err != nil {
				s.ClearTx(w)
			}
		}
		return LoginTx{}, ErrNoTransaction
	}
	found := txs[match]
	rest := append(txs[:match:match], txs[match+1:]...)
	if err := s.writeTx(w, rest); err != nil {
		// What remains was already in the cookie, so this cannot really happen; if it
		// does, losing the other tabs' logins is the safe side.
		s.ClearTx(w)
	}
	return found, nil
}

// ClearTx expires the transaction cookie.
func (s *Sessions) ClearTx(w http.ResponseWriter) {
	setCookie(w, s.cookie(s.TxCookieName(), "", 0))
}
