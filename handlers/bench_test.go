package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// BenchmarkDashboard renders GET /dashboard for a connected session with the profile
// cached (no Lumin call per view, security.md §5.2): middleware, cookie decoding, CSRF
// and templ rendering.
func BenchmarkDashboard(b *testing.B) {
	env := newTestEnv(b)
	env.connect()
	u, _ := url.Parse(env.base)
	cookies := env.client.Jar.Cookies(u)
	h := env.srv.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, env.base+"/dashboard", nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("got %d, want 200", rec.Code)
		}
	}
}
