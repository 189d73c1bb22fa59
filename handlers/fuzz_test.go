package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzCallbackQuery: no query string makes /auth/callback answer 5xx — bad input from a
// browser or an attacker is a 4xx page (design.md), and never a panic.
func FuzzCallbackQuery(f *testing.F) {
	env := newTestEnv(f)
	for _, seed := range []string{
		"",
		"code=abc&state=def",
		"state=" + url.QueryEscape("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") + "&code=x",
		"error=access_denied&state=zzz&error_description=%3Cscript%3E",
		"error=server_error",
		"iss=https%3A%2F%2Fevil.example&code=1&state=2",
		"code=%00%ff&state=%",
		"state=a&state=b&code=c&code=d",
		";;;&&&===",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	// One real pending transaction so the fuzzer can reach past the state check.
	authURL := env.startConnect("")
	state := mustQuery(f, authURL).Get("state")
	f.Add("state="+state+"&code=fuzz", true)
	f.Add("state="+state+"&error=access_denied", true)
	u, _ := url.Parse(env.base)
	cookies := env.client.Jar.Cookies(u)

	f.Fuzz(func(t *testing.T, rawQuery string, withCookies bool) {
		req := httptest.NewRequest(http.MethodGet, env.base+"/auth/callback", nil)
		req.URL.RawQuery = rawQuery
		if withCookies {
			for _, c := range cookies {
				req.AddCookie(c)
			}
		}
		rec := httptest.NewRecorder()
		env.srv.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusBadGateway && rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("query %q: got %d, want < 500", rawQuery, rec.Code)
		}
	})
}
