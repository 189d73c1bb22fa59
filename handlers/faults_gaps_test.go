package handlers

// Handler-level tests for rules whose enforcement was only tested one layer down
// (threats.md GAPS B9, B11, B13, B20), driven through the sandbox's fault knobs.

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connectlumin/app/lumin/luminfake"
)

// sessionCookieLines returns every Set-Cookie line of resp for the session cookie.
func (e *testEnv) sessionCookieLines(t *testing.T, resp *http.Response) []string {
	t.Helper()
	name := e.sess.SessionCookieName()
	var out []string
	for _, line := range resp.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("bad Set-Cookie %q: %v", line, err)
		}
		if c.Name == name {
			out = append(out, line)
		}
	}
	return out
}

// apiCallCount counts the sandbox's REST calls (/v1/…).
func (e *testEnv) apiCallCount() int {
	n := 0
	for _, r := range e.fake.Requests() {
		if strings.HasPrefix(r.Path, "/v1/") {
			n++
		}
	}
	return n
}

// logLine returns the first log line containing every one of parts, or "".
func (e *testEnv) logLine(parts ...string) string {
	for _, line := range strings.Split(e.logs.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line
		}
	}
	return ""
}

// B9, security.md §4.9 (OIDC Core §12.2): a refreshed ID token naming another subject
// ends the session, and the new access token is never used.
func TestFaultGapsRefreshOtherSubjectEndsSession(t *testing.T) {
	env := newTestEnv(t)
	// Access tokens that expire within the 60 s refresh window (security.md §7.1), so
	// the first API call of the next page refreshes first.
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second})
	env.connect()
	if s := env.session(); s == nil || s.RefreshToken == "" {
		t.Fatalf("after connect: got session %v, want one with a refresh token", s)
	}
	env.fake.SetFaults(luminfake.Faults{ShortAccessTokenTTL: 30 * time.Second, RefreshSubject: "someone-else"})
	// The cached profile is older than 10 min (§5.2), so the dashboard calls the API.
	env.clock.Advance(11 * time.Minute)
	apiBefore := env.apiCallCount()

	resp, body := env.get("/dashboard")
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		mustErrorPage(t, resp, body, http.StatusUnauthorized)
	case http.StatusSeeOther:
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Fatalf("got 303 to %q, want / or a 401 reconnect page", loc)
		}
	default:
		t.Fatalf("GET /dashboard: got %d, want 401 reconnect page or 303 to /: %.500s", resp.StatusCode, body)
	}
	if n := env.countRequests("/oauth2/token", "refresh_token"); n != 1 {
		t.Fatalf("refresh requests: got %d, want 1 (the fault was not exercised)", n)
	}
	if n := env.apiCallCount() - apiBefore; n != 0 {
		t.Errorf("REST calls after the mismatched refresh: got %d, want 0", n)
	}
	// The old refresh token is spent, so the new grant is revoked rather than left alive.
	if n := env.countRequests("/oauth2/revoke", ""); n != 1 {
		t.Errorf("revocations of the new grant: got %d, want 1", n)
	}
	if s := env.session(); s != nil {
		t.Errorf("session after the mismatch: got user %q, want none", s.UserKey)
	}
	env.mustNotConnected()
}

// B11, security.md §9.4: a failed revocation never blocks the local logout.
func TestFaultGapsLogoutRevokeFails(t *testing.T) {
	env := newTestEnv(t)
	env.connect()
	csrf := env.csrfToken()
	env.fake.SetFaults(luminfake.Faults{RevokeStatus: http.StatusServiceUnavailable})

	resp, body := env.postForm("/auth/logout", url.Values{"_csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /auth/logout: got %d, want 303: %.500s", resp.StatusCode, body)
	}
	var revokes []luminfake.LoggedRequest
	for _, r := range env.fake.Requests() {
		if r.Path == "/oauth2/revoke" {
			revokes = append(revokes, r)
		}
	}
	if len(revokes) != 1 || revokes[0].Status != http.StatusServiceUnavailable {
		t.Fatalf("revocation requests: got %+v, want one answered 503", revokes)
	}
	lines := env.sessionCookieLines(t, resp)
	if len(lines) == 0 {
		t.Fatal("logout set no session cookie, want it expired")
	}
	if c, _ := http.ParseSetCookie(lines[len(lines)-1]); c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("session Set-Cookie: got %q, want it expired (empty, Max-Age<0)", lines[len(lines)-1])
	}
	if line := env.logLine("level=WARN", "reason=revoke_failed"); line == "" {
		t.Errorf("no WARN with reason=revoke_failed in the logs:\n%s", env.logs.String())
	}
	if s := env.session(); s != nil {
		t.Errorf("session after logout: got user %q, want none", s.UserKey)
	}
	env.mustNotConnected()
}

// B13, security.md §8.8, §8.9: links from Lumin outside luminpdf.com (here: the sandbox
// origin) are neither shown nor followed.
func TestFaultGapsForeignURLsRefused(t *testing.T) {
	env := newTestEnv(t, withDB())
	env.connect()
	id := seededID(1) // Ada's, NEED_TO_SIGN
	detail := "/requests/" + id
	file := detail + "/file?type=agreement"

	// Control: the sandbox's own links are used, so the checks below can fail.
	resp, body := env.get(detail)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200: %.500s", detail, resp.StatusCode, body)
	}
	if href := mustDoc(t, body).Find(`[data-testid="details-link"]`).AttrOr("href", ""); !strings.HasPrefix(href, env.fake.URL+"/") {
		t.Fatalf("healthy details-link: got %q, want a sandbox URL", href)
	}
	resp, _ = env.get(file)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, env.fake.URL+"/") {
		t.Fatalf("healthy file: got %d Location %q, want 303 to the sandbox", resp.StatusCode, loc)
	}

	env.fake.SetFaults(luminfake.Faults{ForeignURLs: true})
	resp, body = env.get(detail)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s with foreign URLs: got %d, want 200: %.500s", detail, resp.StatusCode, body)
	}
	if n := mustDoc(t, body).Find(`[data-testid="details-link"]`).Length(); n != 0 {
		t.Errorf("details-link with a foreign details_url: got %d, want none", n)
	}
	if strings.Contains(body, "evil.example") {
		t.Errorf("detail page mentions evil.example")
	}

	resp, body = env.get(file)
	if resp.StatusCode < 400 {
		t.Fatalf("file with a foreign signed_url: got %d Location %q, want an error page", resp.StatusCode, resp.Header.Get("Location"))
	}
	mustErrorPage(t, resp, body, resp.StatusCode)
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("file with a foreign signed_url: got Location %q, want none", loc)
	}
	if strings.Contains(body, "evil.example") {
		t.Errorf("error page mentions evil.example")
	}
}

// bytesInLog matches a byte count such as "5123 bytes".
var bytesInLog = regexp.MustCompile(`\d{4,} bytes`)

// B20, security.md §6.2: a session cookie over budget even without the ID token gives a
// clear error page and an ERROR log with the size, never a silently dropped cookie; a
// smaller overflow drops the ID token and logout then omits id_token_hint.
func TestFaultGapsCookieBudget(t *testing.T) {
	t.Run("over budget without the ID token", func(t *testing.T) {
		env := newTestEnv(t)
		env.fake.SetFaults(luminfake.Faults{AccessTokenPad: 4000})
		cb := env.consent(env.startConnect(""), "allow")
		resp, body := env.get(cb)
		if resp.StatusCode < 400 {
			t.Fatalf("callback: got %d Location %q, want an error page", resp.StatusCode, resp.Header.Get("Location"))
		}
		mustErrorPage(t, resp, body, resp.StatusCode)
		for _, line := range env.sessionCookieLines(t, resp) {
			if c, _ := http.ParseSetCookie(line); c.Value != "" && c.MaxAge >= 0 {
				t.Errorf("callback set a session cookie (%d bytes), want none", len(line))
			}
		}
		line := env.logLine("level=ERROR", "cookie_too_large")
		if line == "" {
			t.Fatalf("no ERROR log with cookie_too_large:\n%s", env.logs.String())
		}
		if !bytesInLog.MatchString(line) {
			t.Errorf("ERROR log has no size: %s", line)
		}
		if s := env.session(); s != nil {
			t.Errorf("session after the failed sign-in: got user %q, want none", s.UserKey)
		}
		env.mustNotConnected()
	})

	t.Run("ID token dropped first", func(t *testing.T) {
		env := newTestEnv(t)
		// 1700 extra characters: the cookie is ≈ 3.1 KB without the ID token and ≈ 4.4 KB
		// with it, so any store within the 3800-byte budget must drop the ID token.
		env.fake.SetFaults(luminfake.Faults{AccessTokenPad: 1700})
		resp := env.connect()
		lines := env.sessionCookieLines(t, resp)
		if len(lines) == 0 {
			t.Fatal("callback set no session cookie")
		}
		for _, line := range lines {
			if len(line) > 3800 {
				t.Errorf("session Set-Cookie: got %d bytes, want ≤ 3800", len(line))
			}
		}
		s := env.session()
		if s == nil || len(s.AccessToken) < 1700 {
			t.Fatalf("session: got %v, want one holding the padded access token", s)
		}
		if s.IDToken != "" {
			t.Fatalf("session kept the ID token (cookie %d bytes), want it dropped to stay within budget (security.md §6.2.3)", len(lines[len(lines)-1]))
		}
		csrf := env.csrfToken() // the dashboard works with the big token

		resp, body := env.postForm("/auth/logout", url.Values{"_csrf": {csrf}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /auth/logout: got %d, want 303: %.500s", resp.StatusCode, body)
		}
		if loc := resp.Header.Get("Location"); loc != "/" || strings.Contains(loc, "id_token_hint") {
			t.Errorf("logout Location: got %q, want / (no ID token, so no id_token_hint)", loc)
		}
		env.mustNotConnected()
	})
}
