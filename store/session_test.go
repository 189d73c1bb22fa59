package store

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

// testClock is a settable cfg.Now.
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time          { return c.t }
func (c *testClock) Advance(d time.Duration) { c.t = c.t.Add(d) }
func newTestClock() *testClock               { return &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }
func testKey(b byte) []byte                  { return bytes.Repeat([]byte{b}, 32) }

func newTestSessions(t *testing.T, secure bool, clock *testClock, keys ...[]byte) *Sessions {
	t.Helper()
	if len(keys) == 0 {
		keys = [][]byte{testKey('k')}
	}
	s, err := NewSessions(CookieConfig{Keys: keys, Secure: secure, Now: clock.Now})
	if err != nil {
		t.Fatalf("NewSessions: %v", err)
	}
	return s
}

// randB64 returns n base64url characters of random data (tokens are high-entropy).
func randB64(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// jwtLike builds a JWT-shaped token of exactly size bytes: a real RS256 header, a claims
// payload and a 256-byte signature, each base64url — what an access or ID token that
// happens to be a JWT looks like (lumin-api.md §5, §11).
func jwtLike(t *testing.T, size int) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"RS256","kid":"public:5e9f8a4c-1d2b-4c3a-9e8f-7a6b5c4d3e2f","typ":"JWT"}`))
	sig := randB64(t, 342)
	claims := map[string]any{
		"iss": "https://auth.luminpdf.com", "sub": "5f8d0c2e-1234-4a5b-9c7d-0123456789ab",
		"aud": []string{"c0ffee00-1111-2222-3333-444455556666"}, "exp": 1772359200, "iat": 1772355600,
		"jti": randB64(t, 36), "scp": []string{"openid", "offline_access", "profile.read", "sign:requests"},
		"ext": randB64(t, size), // padding with token-like entropy, cut below
	}
	payload, _ := json.Marshal(claims)
	tok := header + "." + enc(payload)
	tok = tok[:size-len(sig)-1] + "." + sig
	if len(tok) != size {
		t.Fatalf("jwtLike: got %d bytes, want %d", len(tok), size)
	}
	return tok
}

// realisticSession is issue 4's size case: a 1.2 KB JWT access token, a ~100-byte refresh
// token, a 1 KB ID token, name, email and scopes.
func realisticSession(t *testing.T, clock *testClock) *Session {
	t.Helper()
	return &Session{
		ID:               NewSessionID(),
		UserKey:          "https://auth.luminpdf.com|5f8d0c2e-1234-4a5b-9c7d-0123456789ab",
		Name:             "Ada Lovelace-Byron",
		Email:            "ada.lovelace@analytical-engines.example.com",
		CreatedAt:        clock.Now(),
		AuthTime:         clock.Now().Add(-time.Minute),
		AccessToken:      jwtLike(t, 1200),
		RefreshToken:     "ory_rt_" + randB64(t, 93),
		IDToken:          jwtLike(t, 1000),
		Expiry:           clock.Now().Add(time.Hour),
		Scopes:           []string{"openid", "offline_access", "profile.read", "sign:requests"},
		ProfileFetchedAt: clock.Now(),
	}
}

// setCookies returns the response's Set-Cookie headers parsed with http.ParseSetCookie.
func setCookies(t *testing.T, rec *httptest.ResponseRecorder) []*http.Cookie {
	t.Helper()
	var out []*http.Cookie
	for _, line := range rec.Header().Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("ParseSetCookie(%q): %v", line, err)
		}
		out = append(out, c)
	}
	return out
}

// onlyCookie returns the single Set-Cookie named name, failing otherwise.
func onlyCookie(t *testing.T, rec *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	var found []*http.Cookie
	for _, c := range setCookies(t, rec) {
		if c.Name == name {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("got %d Set-Cookie %q, want 1 (all: %q)", len(found), name, rec.Header().Values("Set-Cookie"))
	}
	return found[0]
}

// jar is a minimal browser: it keeps cookies by name and applies Set-Cookie deletions.
type jar map[string]string

func (j jar) update(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for _, c := range setCookies(t, rec) {
		if c.MaxAge < 0 {
			delete(j, c.Name)
		} else {
			j[c.Name] = c.Value
		}
	}
}

func (j jar) request() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for name, v := range j {
		r.AddCookie(&http.Cookie{Name: name, Value: v})
	}
	return r
}

func mustSave(t *testing.T, s *Sessions, sess *Session) (*httptest.ResponseRecorder, *http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := s.Save(rec, sess); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return rec, onlyCookie(t, rec, s.SessionCookieName())
}

func requestWith(c *http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	return r
}

// assertCleared checks the response deletes cookie name with the same attributes.
func assertCleared(t *testing.T, rec *httptest.ResponseRecorder, name string) {
	t.Helper()
	c := onlyCookie(t, rec, name)
	if c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("cookie %s: got MaxAge %d value %q, want a deletion", name, c.MaxAge, c.Value)
	}
}

func TestNewSessionsKeys(t *testing.T) {
	tests := []struct {
		name    string
		keys    [][]byte
		wantErr bool
	}{
		{"none", nil, true},
		{"short", [][]byte{bytes.Repeat([]byte("s"), 31)}, true},
		{"second short", [][]byte{testKey('a'), []byte("old-and-short")}, true},
		{"32 bytes", [][]byte{testKey('a')}, false},
		{"rotation", [][]byte{testKey('a'), testKey('b')}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSessions(CookieConfig{Keys: tt.keys})
			if (err != nil) != tt.wantErr {
				t.Fatalf("got err %v, want error %v", err, tt.wantErr)
			}
			// The message may name the entry but never the secret (security.md §12.1).
			if err != nil && strings.Contains(err.Error(), "old-and-short") {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

// TestKeyDerivation pins the derivation: the cookie decodes with the HKDF-derived keys
// under the documented labels, not with the raw secret (security.md §6.1.2).
func TestKeyDerivation(t *testing.T) {
	clock := newTestClock()
	secret := testKey('z')
	s := newTestSessions(t, true, clock, secret)
	_, c := mustSave(t, s, &Session{ID: "id", UserKey: "iss|sub", CreatedAt: clock.Now()})

	hk, err := hkdf.Key(sha256.New, secret, nil, "connect-lumin cookie hmac v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := hkdf.Key(sha256.New, secret, nil, "connect-lumin cookie aes v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(hk, bk) {
		t.Fatal("HMAC and AES keys are equal")
	}
	var w sessionWire
	derived := securecookie.New(hk, bk).SetSerializer(deflateJSON{})
	if err := derived.Decode(c.Name, c.Value, &w); err != nil || w.ID != "id" {
		t.Errorf("decode with derived keys: got %v (id %q), want the session", err, w.ID)
	}
	raw := securecookie.New(secret, secret).SetSerializer(deflateJSON{})
	if err := raw.Decode(c.Name, c.Value, &w); err == nil {
		t.Error("decode with the raw secret succeeded, want failure")
	}
}

func TestCookieAttributes(t *testing.T) {
	modes := []struct {
		name       string
		secure     bool
		session    string
		tx         string
		wantSecure bool
	}{
		{"https", true, "__Host-lumin", "__Host-lumin-tx", true},
		{"loopback http", false, "lumin", "lumin-tx", false},
	}
	for _, m := range modes {
		clock := newTestClock()
		s := newTestSessions(t, m.secure, clock)
		if got := s.SessionCookieName(); got != m.session {
			t.Errorf("%s: SessionCookieName got %q, want %q", m.name, got, m.session)
		}
		if got := s.TxCookieName(); got != m.tx {
			t.Errorf("%s: TxCookieName got %q, want %q", m.name, got, m.tx)
		}
		if got := s.Secure(); got != m.wantSecure {
			t.Errorf("%s: Secure got %v, want %v", m.name, got, m.wantSecure)
		}
		writes := []struct {
			name       string
			cookie     string
			write      func(w http.ResponseWriter) error
			wantMaxAge int
		}{
			{"session save", m.session, func(w http.ResponseWriter) error {
				return s.Save(w, &Session{ID: NewSessionID(), UserKey: "iss|sub", CreatedAt: clock.Now()})
			}, 1800},
			{"session clear", m.session, func(w http.ResponseWriter) error { s.Clear(w); return nil }, -1},
			{"tx add", m.tx, func(w http.ResponseWriter) error {
				return s.AddTx(w, httptest.NewRequest(http.MethodGet, "/", nil), LoginTx{State: "st", Nonce: "n", Verifier: "v"})
			}, 600},
			{"tx clear", m.tx, func(w http.ResponseWriter) error { s.ClearTx(w); return nil }, -1},
		}
		for _, wr := range writes {
			t.Run(m.name+"/"+wr.name, func(t *testing.T) {
				rec := httptest.NewRecorder()
				if err := wr.write(rec); err != nil {
					t.Fatal(err)
				}
				if rec.Body.Len() != 0 {
					t.Errorf("body: got %d bytes, want none", rec.Body.Len())
				}
				c := onlyCookie(t, rec, wr.cookie)
				raw := rec.Header().Get("Set-Cookie")
				// security.md §6.1.1: HttpOnly, Path=/, no Domain, explicit SameSite=Lax,
				// explicit Max-Age, Secure exactly for https.
				checks := []struct {
					what      string
					got, want any
				}{
					{"Path", c.Path, "/"},
					{"Domain", c.Domain, ""},
					{"HttpOnly", c.HttpOnly, true},
					{"Secure", c.Secure, m.wantSecure},
					{"SameSite", c.SameSite, http.SameSiteLaxMode},
					{"explicit SameSite=Lax", strings.Contains(raw, "; SameSite=Lax"), true},
					{"MaxAge", c.MaxAge, wr.wantMaxAge},
					{"explicit Max-Age", strings.Contains(raw, "; Max-Age="), true},
					{"Partitioned", c.Partitioned, false},
				}
				for _, ch := range checks {
					if ch.got != ch.want {
						t.Errorf("%s: got %v, want %v (Set-Cookie %.80q…)", ch.what, ch.got, ch.want, raw)
					}
				}
			})
		}
	}
}

func TestSessionRoundTrip(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, true, clock)
	in := &Session{
		ID: NewSessionID(), UserKey: "https://issuer.example|sub-1", Name: "Zoë <Admin> & Co", Email: "z@example.com",
		CreatedAt: clock.Now(), AuthTime: clock.Now().Add(-time.Minute),
		AccessToken: "ory_at_" + randB64(t, 80), RefreshToken: "ory_rt_" + randB64(t, 80), IDToken: jwtLike(t, 900),
		Expiry: clock.Now().Add(time.Hour), Scopes: []string{"openid", "sign:requests"}, ProfileFetchedAt: clock.Now(),
	}
	_, c := mustSave(t, s, in)
	if strings.Contains(c.Value, "ory_at_") || strings.Contains(c.Value, "sign:requests") {
		t.Fatal("cookie value carries plaintext")
	}
	clock.Advance(10 * time.Second)
	rec := httptest.NewRecorder()
	got := s.Load(rec, requestWith(c))
	if got == nil {
		t.Fatal("Load: got nil, want the session")
	}
	if n := len(rec.Header().Values("Set-Cookie")); n != 0 {
		t.Errorf("Load of a fresh valid session wrote %d Set-Cookie, want 0", n)
	}
	if got.NeedsSave() {
		t.Error("NeedsSave: got true right after Save, want false")
	}
	fields := []struct {
		name      string
		got, want any
	}{
		{"ID", got.ID, in.ID}, {"UserKey", got.UserKey, in.UserKey}, {"Name", got.Name, in.Name},
		{"Email", got.Email, in.Email}, {"AccessToken", got.AccessToken, in.AccessToken},
		{"RefreshToken", got.RefreshToken, in.RefreshToken}, {"IDToken", got.IDToken, in.IDToken},
		{"Scopes", strings.Join(got.Scopes, " "), "openid sign:requests"},
		{"CreatedAt", got.CreatedAt.Equal(in.CreatedAt), true}, {"AuthTime", got.AuthTime.Equal(in.AuthTime), true},
		{"Expiry", got.Expiry.Equal(in.Expiry), true}, {"ProfileFetchedAt", got.ProfileFetchedAt.Equal(in.ProfileFetchedAt), true},
		{"Connected", got.Connected(), true},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s: got %v, want %v", f.name, f.got, f.want)
		}
	}
}

func TestLoadBadCookie(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, false, clock)
	other := newTestSessions(t, false, clock, testKey('o'))
	_, good := mustSave(t, s, &Session{ID: "id", UserKey: "iss|sub", CreatedAt: clock.Now()})
	_, foreign := mustSave(t, other, &Session{ID: "id", UserKey: "iss|sub", CreatedAt: clock.Now()})
	// A valid tx cookie value under the session name: the MAC covers the name.
	txRec := httptest.NewRecorder()
	if err := s.AddTx(txRec, httptest.NewRequest(http.MethodGet, "/", nil), LoginTx{State: "s"}); err != nil {
		t.Fatal(err)
	}
	txValue := onlyCookie(t, txRec, s.TxCookieName()).Value

	flip := func(v string, i int) string {
		b := []byte(v)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name  string
		value string
	}{
		{"tampered start", flip(good.Value, 3)},
		{"tampered middle", flip(good.Value, len(good.Value)/2)},
		{"tampered end", flip(good.Value, len(good.Value)-2)},
		{"truncated", good.Value[:len(good.Value)-10]},
		{"empty", ""},
		{"garbage", "not-a-cookie"},
		{"unknown key", foreign.Value},
		{"other cookie's value", txValue},
		{"oversized", strings.Repeat("A", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Cookie", s.SessionCookieName()+"="+tt.value)
			rec := httptest.NewRecorder()
			if got := s.Load(rec, r); got != nil {
				t.Fatalf("Load: got a session, want nil")
			}
			// security.md §6.3.2: anonymous and cleared.
			assertCleared(t, rec, s.SessionCookieName())
		})
	}
	t.Run("missing", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if got := s.Load(rec, httptest.NewRequest(http.MethodGet, "/", nil)); got != nil {
			t.Fatal("Load: got a session, want nil")
		}
		if n := len(rec.Header().Values("Set-Cookie")); n != 0 {
			t.Errorf("got %d Set-Cookie for a request without cookie, want 0", n)
		}
	})
	t.Run("bad then good duplicate", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", s.SessionCookieName()+"=junk; "+s.SessionCookieName()+"="+good.Value)
		if got := s.Load(httptest.NewRecorder(), r); got == nil {
			t.Error("Load: got nil, want the valid duplicate")
		}
	})
}

func TestKeyRotation(t *testing.T) {
	clock := newTestClock()
	oldKey, newKey := testKey('1'), testKey('2')
	before := newTestSessions(t, true, clock, oldKey)
	after := newTestSessions(t, true, clock, newKey, oldKey)
	onlyNew := newTestSessions(t, true, clock, newKey)

	_, oldCookie := mustSave(t, before, &Session{ID: "sid", UserKey: "iss|sub", CreatedAt: clock.Now(), AccessToken: "at"})

	// SESSION_KEYS=new,old: the old cookie still reads (security.md §6.1.3) …
	sess := after.Load(httptest.NewRecorder(), requestWith(oldCookie))
	if sess == nil {
		t.Fatal("Load under rotated keys: got nil, want the session")
	}
	if !sess.NeedsSave() {
		t.Error("NeedsSave: got false for an old-key cookie, want true")
	}
	// … and is re-issued under the new key.
	_, reissued := mustSave(t, after, sess)
	if got := onlyNew.Load(httptest.NewRecorder(), requestWith(reissued)); got == nil || got.ID != "sid" || got.AccessToken != "at" {
		t.Errorf("re-issued cookie under the new key alone: got %v, want session sid", got != nil)
	}
	if got := before.Load(httptest.NewRecorder(), requestWith(reissued)); got != nil {
		t.Error("re-issued cookie still decodes with the old key alone, want the new key")
	}
	// Once the old key is removed, an old cookie is anonymous (and cleared).
	rec := httptest.NewRecorder()
	if got := onlyNew.Load(rec, requestWith(oldCookie)); got != nil {
		t.Error("old cookie after key removal: got a session, want nil")
	}
	assertCleared(t, rec, onlyNew.SessionCookieName())
}

func TestSessionTimeouts(t *testing.T) {
	tests := []struct {
		name  string
		steps []time.Duration // advance, then (re-)save, except after the last: load
		valid bool
		needs bool
	}{
		{"within idle", []time.Duration{29 * time.Minute}, true, true},
		{"fresh: no reissue", []time.Duration{30 * time.Second}, true, false},
		{"idle expired", []time.Duration{31 * time.Minute}, false, false},
		{"sliding: resave keeps it", []time.Duration{25 * time.Minute, 25 * time.Minute}, true, true},
		{"absolute reached despite activity", repeat(25*time.Minute, 29), false, false},
		{"just inside absolute", append(repeat(24*time.Minute, 30), 0), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			s := newTestSessions(t, false, clock)
			sess := &Session{ID: "sid", UserKey: "iss|sub", CreatedAt: clock.Now()}
			_, c := mustSave(t, s, sess)
			for i, d := range tt.steps {
				clock.Advance(d)
				if i == len(tt.steps)-1 {
					break
				}
				loaded := s.Load(httptest.NewRecorder(), requestWith(c))
				if loaded == nil {
					t.Fatalf("step %d: session lost early", i)
				}
				_, c = mustSave(t, s, loaded)
			}
			rec := httptest.NewRecorder()
			got := s.Load(rec, requestWith(c))
			if (got != nil) != tt.valid {
				t.Fatalf("Load after %v: got session %v, want %v", clock.t.Sub(newTestClock().t), got != nil, tt.valid)
			}
			if !tt.valid {
				assertCleared(t, rec, s.SessionCookieName())
				return
			}
			if got.NeedsSave() != tt.needs {
				t.Errorf("NeedsSave: got %v, want %v", got.NeedsSave(), tt.needs)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// TestSessionSizeBudget is the deliberate size strategy (security.md §6.2; issue 4):
// compact JSON, the optional ID token kept only within TargetCookieBytes, the whole
// Set-Cookie never over MaxCookieBytes.
func TestSessionSizeBudget(t *testing.T) {
	clock := newTestClock()
	tests := []struct {
		name        string
		mutate      func(*Session)
		wantIDToken bool
		wantErr     bool
		maxBytes    int
	}{
		{"opaque Lumin tokens keep the ID token", func(s *Session) {
			s.AccessToken = "ory_at_" + randB64(t, 80)
			s.RefreshToken = "ory_rt_" + randB64(t, 80)
		}, true, false, TargetCookieBytes},
		{"realistic JWT access token", func(*Session) {}, false, false, TargetCookieBytes},
		{"huge access token drops the ID token", func(s *Session) { s.AccessToken = jwtLike(t, 2000) }, false, false, MaxCookieBytes},
		{"bigger still is refused", func(s *Session) { s.AccessToken = jwtLike(t, 3000) }, true, true, 0},
	}
	for _, secure := range []bool{true, false} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/secure=%v", tt.name, secure), func(t *testing.T) {
				s := newTestSessions(t, secure, clock)
				sess := realisticSession(t, clock)
				tt.mutate(sess)
				idToken := sess.IDToken
				rec := httptest.NewRecorder()
				err := s.Save(rec, sess)
				if tt.wantErr {
					if !errors.Is(err, ErrCookieTooLarge) {
						t.Fatalf("Save: got %v, want ErrCookieTooLarge", err)
					}
					if n := len(rec.Header().Values("Set-Cookie")); n != 0 {
						t.Errorf("got %d Set-Cookie after ErrCookieTooLarge, want none", n)
					}
					if sess.IDToken != idToken {
						t.Error("failed Save changed the session")
					}
					return
				}
				if err != nil {
					t.Fatalf("Save: %v", err)
				}
				for _, line := range rec.Header().Values("Set-Cookie") {
					if len(line) > tt.maxBytes {
						t.Errorf("Set-Cookie: got %d bytes, want ≤ %d", len(line), tt.maxBytes)
					}
					t.Logf("Set-Cookie %d bytes (access token %d, ID token kept %v)", len(line), len(sess.AccessToken), sess.IDToken != "")
				}
				loaded := s.Load(httptest.NewRecorder(), requestWith(onlyCookie(t, rec, s.SessionCookieName())))
				if loaded == nil {
					t.Fatal("Load: got nil")
				}
				if got := loaded.IDToken != ""; got != tt.wantIDToken {
					t.Errorf("ID token stored: got %v, want %v", got, tt.wantIDToken)
				}
				if got := sess.IDToken != ""; got != tt.wantIDToken {
					t.Errorf("ID token left on the saved struct: got %v, want %v", got, tt.wantIDToken)
				}
				if loaded.AccessToken != sess.AccessToken || loaded.RefreshToken != sess.RefreshToken {
					t.Error("tokens did not round-trip")
				}
			})
		}
	}
	// The drop in the realistic case is needed, not incidental: with the ID token the
	// cookie would be over the 3000-byte target.
	s := newTestSessions(t, true, clock)
	sess := realisticSession(t, clock)
	_, size, err := s.encodeSession(sessionWire{ID: sess.ID, UserKey: sess.UserKey, Name: sess.Name, Email: sess.Email,
		CreatedAt: 1, Access: sess.AccessToken, Refresh: sess.RefreshToken, IDToken: sess.IDToken, SavedAt: 1,
		Scopes: strings.Join(sess.Scopes, " ")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("realistic session with its ID token would be %d bytes", size)
	if size <= TargetCookieBytes {
		t.Errorf("realistic session with ID token: got %d bytes, expected it over %d", size, TargetCookieBytes)
	}
}

func TestSaveReplacesEarlierSetCookie(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, true, clock)
	rec := httptest.NewRecorder()
	rec.Header().Add("Set-Cookie", "__Host-csrf=tok; Path=/")
	sess := &Session{ID: "a", UserKey: "iss|sub", CreatedAt: clock.Now(), AccessToken: "old"}
	if err := s.Save(rec, sess); err != nil {
		t.Fatal(err)
	}
	sess.AccessToken = "new"
	if err := s.Save(rec, sess); err != nil {
		t.Fatal(err)
	}
	c := onlyCookie(t, rec, s.SessionCookieName())
	if got := s.Load(httptest.NewRecorder(), requestWith(c)); got == nil || got.AccessToken != "new" {
		t.Error("second Save did not win")
	}
	s.Clear(rec)
	assertCleared(t, rec, s.SessionCookieName())
	onlyCookie(t, rec, "__Host-csrf")
}

func TestSaveValidates(t *testing.T) {
	s := newTestSessions(t, false, newTestClock())
	for _, sess := range []*Session{nil, {UserKey: "k"}, {ID: "i"}} {
		rec := httptest.NewRecorder()
		if err := s.Save(rec, sess); err == nil {
			t.Errorf("Save(%#v): got nil error, want one", sess)
		}
		if n := len(rec.Header().Values("Set-Cookie")); n != 0 {
			t.Errorf("got %d Set-Cookie, want 0", n)
		}
	}
}

func TestNewSessionID(t *testing.T) {
	a, b := NewSessionID(), NewSessionID()
	if a == b {
		t.Fatal("two ids are equal")
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 || len(a) != 43 {
		t.Errorf("got %q (%d bytes, %v), want 43 base64url chars of 32 bytes", a, len(raw), err)
	}
}

func TestRedaction(t *testing.T) {
	sess := &Session{ID: "sid-secret", AccessToken: "at-secret", RefreshToken: "rt-secret", IDToken: "idt-secret", Email: "e@x"}
	tx := LoginTx{State: "state-secret", Nonce: "nonce-secret", Verifier: "verifier-secret"}
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "session", sess, "sessval", *sess, "tx", tx)
	out := fmt.Sprintf("%v %+v %#v %s %q %v %+v %#v", sess, *sess, sess, sess, sess, tx, tx, &tx) + logBuf.String()
	for _, secret := range []string{"secret", "e@x"} {
		if strings.Contains(out, secret) {
			t.Errorf("output contains %q: %s", secret, out)
		}
	}
}

// --- login transactions ---

func addTx(t *testing.T, s *Sessions, j jar, tx LoginTx) {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := s.AddTx(rec, j.request(), tx); err != nil {
		t.Fatalf("AddTx: %v", err)
	}
	if rec.Body.Len() != 0 {
		t.Error("AddTx wrote a body")
	}
	j.update(t, rec)
}

func takeTx(t *testing.T, s *Sessions, j jar, state string) (LoginTx, error, *httptest.ResponseRecorder) {
	t.Helper()
	rec := httptest.NewRecorder()
	tx, err := s.TakeTx(rec, j.request(), state)
	j.update(t, rec)
	return tx, err, rec
}

func newTx(i int) LoginTx {
	return LoginTx{State: fmt.Sprintf("state-%d-%s", i, strings.Repeat("s", 34)), Nonce: fmt.Sprintf("nonce-%d", i),
		Verifier: fmt.Sprintf("verifier-%d", i), ReturnTo: fmt.Sprintf("/requests/%d", i)}
}

func TestTxTakeAndReplay(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, true, clock)
	j := jar{}
	in := newTx(1)
	addTx(t, s, j, in)
	got, err, rec := takeTx(t, s, j, in.State)
	if err != nil {
		t.Fatalf("TakeTx: %v", err)
	}
	if got.State != in.State || got.Nonce != in.Nonce || got.Verifier != in.Verifier || got.ReturnTo != in.ReturnTo || !got.CreatedAt.Equal(clock.Now()) {
		t.Errorf("got a different transaction back")
	}
	// The only entry was used: the cookie is cleared.
	assertCleared(t, rec, s.TxCookieName())
	// security.md §2.1: a replayed callback finds nothing.
	if _, err, _ := takeTx(t, s, j, in.State); !errors.Is(err, ErrNoTransaction) {
		t.Errorf("replay: got %v, want ErrNoTransaction", err)
	}
}

func TestTxReplayWithStaleCookie(t *testing.T) {
	// A replay that presents the cookie as it was before the first callback (e.g. the
	// response setting the new cookie was lost) is outside what a cookie can prevent; the
	// authorization code is single use at the server (RFC 6749 §4.1.2). Here we only pin
	// that the first response removes the entry.
	clock := newTestClock()
	s := newTestSessions(t, false, clock)
	j := jar{}
	addTx(t, s, j, newTx(1))
	addTx(t, s, j, newTx(2))
	_, err, rec := takeTx(t, s, j, newTx(1).State)
	if err != nil {
		t.Fatal(err)
	}
	c := onlyCookie(t, rec, s.TxCookieName())
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(c)
	if _, err := s.TakeTx(httptest.NewRecorder(), r, newTx(1).State); !errors.Is(err, ErrNoTransaction) {
		t.Errorf("rewritten cookie still holds the used state: got %v", err)
	}
}

func TestTxCapAndTabs(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, false, clock)
	j := jar{}
	for i := 1; i <= 4; i++ {
		addTx(t, s, j, newTx(i))
		clock.Advance(time.Second)
	}
	// Cap 3: the oldest was dropped (security.md §1.7).
	if _, err, _ := takeTx(t, s, j, newTx(1).State); !errors.Is(err, ErrNoTransaction) {
		t.Errorf("oldest of 4: got %v, want ErrNoTransaction", err)
	}
	// Parallel tabs, callbacks in reverse order: each finds its own.
	for _, i := range []int{4, 2, 3} {
		got, err, _ := takeTx(t, s, j, newTx(i).State)
		if err != nil || got.Nonce != newTx(i).Nonce {
			t.Errorf("tab %d: got %q, %v; want its nonce", i, got.Nonce, err)
		}
	}
	if _, ok := j[s.TxCookieName()]; ok {
		t.Error("cookie left after the last transaction was taken")
	}
}

func TestTxExpiry(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, true, clock)
	j := jar{}
	addTx(t, s, j, newTx(1))
	clock.Advance(6 * time.Minute)
	addTx(t, s, j, newTx(2))
	clock.Advance(4*time.Minute + time.Second) // tx 1 is now 10 min 1 s old

	_, err, rec := takeTx(t, s, j, newTx(1).State)
	if !errors.Is(err, ErrNoTransaction) {
		t.Fatalf("expired: got %v, want ErrNoTransaction", err)
	}
	// The rewrite drops the expired entry and keeps the live one.
	onlyCookie(t, rec, s.TxCookieName())
	clock.Advance(-7 * time.Minute) // even back in time, tx 1 is gone from the cookie
	if _, err, _ := takeTx(t, s, j, newTx(1).State); !errors.Is(err, ErrNoTransaction) {
		t.Errorf("pruned entry: got %v, want ErrNoTransaction", err)
	}
	clock.Advance(7 * time.Minute)
	if got, err, _ := takeTx(t, s, j, newTx(2).State); err != nil || got.Nonce != newTx(2).Nonce {
		t.Errorf("live entry: got %v, want it", err)
	}
	// Everything expired: the cookie is cleared.
	addTx(t, s, j, newTx(3))
	clock.Advance(11 * time.Minute)
	_, err, rec = takeTx(t, s, j, newTx(3).State)
	if !errors.Is(err, ErrNoTransaction) {
		t.Errorf("all expired: got %v, want ErrNoTransaction", err)
	}
	assertCleared(t, rec, s.TxCookieName())
}

func TestTxBadInput(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, false, clock)
	t.Run("missing cookie", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if _, err := s.TakeTx(rec, httptest.NewRequest(http.MethodGet, "/", nil), "x"); !errors.Is(err, ErrNoTransaction) {
			t.Errorf("got %v, want ErrNoTransaction", err)
		}
		if n := len(rec.Header().Values("Set-Cookie")); n != 0 {
			t.Errorf("got %d Set-Cookie, want 0", n)
		}
	})
	t.Run("tampered cookie", func(t *testing.T) {
		j := jar{}
		addTx(t, s, j, newTx(1))
		v := []byte(j[s.TxCookieName()])
		v[len(v)/2] ^= 1
		j[s.TxCookieName()] = string(v)
		_, err, rec := takeTx(t, s, j, newTx(1).State)
		if !errors.Is(err, ErrNoTransaction) {
			t.Errorf("got %v, want ErrNoTransaction", err)
		}
		assertCleared(t, rec, s.TxCookieName())
	})
	t.Run("empty and unknown state", func(t *testing.T) {
		j := jar{}
		addTx(t, s, j, newTx(1))
		for _, st := range []string{"", "nope", newTx(1).State + "x", newTx(1).State[:10]} {
			if _, err, _ := takeTx(t, s, j, st); !errors.Is(err, ErrNoTransaction) {
				t.Errorf("state %q: got %v, want ErrNoTransaction", st, err)
			}
		}
		if _, err, _ := takeTx(t, s, j, newTx(1).State); err != nil {
			t.Errorf("wrong states consumed the entry: %v", err)
		}
	})
	t.Run("empty state refused at add", func(t *testing.T) {
		if err := s.AddTx(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), LoginTx{}); err == nil {
			t.Error("got nil error, want one")
		}
	})
}

func TestTxSizeBudget(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, true, clock)
	j := jar{}
	var last LoginTx
	for i := 0; i < 3; i++ {
		// Worst case allowed by security.md §1.8: a 512-byte return_to, 43-char secrets.
		last = LoginTx{State: randB64(t, 43), Nonce: randB64(t, 43), Verifier: randB64(t, 43), ReturnTo: "/" + strings.Repeat("r", 511)}
		rec := httptest.NewRecorder()
		if err := s.AddTx(rec, j.request(), last); err != nil {
			t.Fatalf("AddTx: %v", err)
		}
		line := rec.Header().Get("Set-Cookie")
		if len(line) > MaxCookieBytes {
			t.Errorf("tx Set-Cookie: got %d bytes, want ≤ %d", len(line), MaxCookieBytes)
		}
		t.Logf("tx cookie with %d worst-case entries: %d bytes", i+1, len(line))
		j.update(t, rec)
	}
	if _, err, _ := takeTx(t, s, j, last.State); err != nil {
		t.Errorf("newest transaction lost to the budget: %v", err)
	}
	rec := httptest.NewRecorder()
	err := s.AddTx(rec, j.request(), LoginTx{State: "s", ReturnTo: "/" + strings.Repeat("r", 4000)})
	if !errors.Is(err, ErrCookieTooLarge) {
		t.Errorf("oversized transaction: got %v, want ErrCookieTooLarge", err)
	}
	if n := len(rec.Header().Values("Set-Cookie")); n != 0 {
		t.Errorf("got %d Set-Cookie after ErrCookieTooLarge, want 0", n)
	}
}

// --- fuzz targets (go test -fuzz=FuzzLoadSession ./store) ---

func FuzzLoadSession(f *testing.F) {
	clock := newTestClock()
	s, err := NewSessions(CookieConfig{Keys: [][]byte{testKey('k')}, Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: real cookies under another key (valid structure, wrong MAC), their truncations
	// and mutations, and junk.
	other, _ := NewSessions(CookieConfig{Keys: [][]byte{testKey('o')}, Now: clock.Now})
	rec := httptest.NewRecorder()
	_ = other.Save(rec, &Session{ID: "id", UserKey: "iss|sub", CreatedAt: clock.Now(), AccessToken: "at"})
	for _, c := range rec.Result().Cookies() {
		f.Add(c.Value)
		f.Add(c.Value[:len(c.Value)/2])
		f.Add(strings.ToLower(c.Value))
	}
	for _, v := range []string{"", "=", "a|b|c", "MTIzfGFiY3xkZWY=", "\"quoted\"", "%00", strings.Repeat("A", 4097)} {
		f.Add(v)
	}
	name := s.SessionCookieName()
	f.Fuzz(func(t *testing.T, value string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", name+"="+value)
		if got := s.Load(httptest.NewRecorder(), r); got != nil {
			t.Fatalf("Load(%q) returned a session", value)
		}
	})
}

func FuzzTakeTx(f *testing.F) {
	clock := newTestClock()
	s, err := NewSessions(CookieConfig{Keys: [][]byte{testKey('k')}, Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	other, _ := NewSessions(CookieConfig{Keys: [][]byte{testKey('o')}, Now: clock.Now})
	rec := httptest.NewRecorder()
	_ = other.AddTx(rec, httptest.NewRequest(http.MethodGet, "/", nil), LoginTx{State: "st", Nonce: "n", Verifier: "v"})
	for _, c := range rec.Result().Cookies() {
		f.Add(c.Value, "st")
		f.Add(c.Value[:len(c.Value)-4], "st")
	}
	f.Add("", "")
	f.Add("junk", "st")
	name := s.TxCookieName()
	f.Fuzz(func(t *testing.T, value, state string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", name+"="+value)
		tx, err := s.TakeTx(httptest.NewRecorder(), r, state)
		if !errors.Is(err, ErrNoTransaction) || tx != (LoginTx{}) {
			t.Fatalf("TakeTx(%q, %q): got %v, %v; want ErrNoTransaction", value, state, tx.State != "", err)
		}
	})
}

// TestDecodedCacheKeepsEveryCheck: a cookie served from the decoded cache must still go
// through every lifetime check, and a modified copy of a cached cookie must never hit.
func TestDecodedCacheKeepsEveryCheck(t *testing.T) {
	clock := newTestClock()
	s := newTestSessions(t, false, clock)
	in := &Session{ID: NewSessionID(), UserKey: "iss|sub", CreatedAt: clock.Now(), AccessToken: "ory_at_x", Scopes: []string{"openid"}}
	_, c := mustSave(t, s, in)

	for i := range 2 { // the second load is a cache hit
		got := s.Load(httptest.NewRecorder(), requestWith(c))
		if got == nil || got.ID != in.ID {
			t.Fatalf("load %d: got %v, want the session", i, got)
		}
		got.Scopes[0] = "mutated" // callers own their copy
	}
	if got := s.Load(httptest.NewRecorder(), requestWith(c)); got.Scopes[0] != "openid" {
		t.Errorf("Scopes after a caller's mutation: got %q, want openid", got.Scopes[0])
	}

	tampered := *c
	tampered.Value = c.Value[:len(c.Value)-2] + "AA"
	if got := s.Load(httptest.NewRecorder(), requestWith(&tampered)); got != nil {
		t.Error("tampered copy of a cached cookie: got a session, want nil")
	}

	clock.Advance(s.idle + time.Second) // cached, but idle by cfg.Now
	if got := s.Load(httptest.NewRecorder(), requestWith(c)); got != nil {
		t.Error("idle-expired cookie served from the cache: got a session, want nil")
	}
}
