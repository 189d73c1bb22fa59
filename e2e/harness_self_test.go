package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// strictCSP is as strict as the app's policy (security.md): no inline script at all.
const strictCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// TestBrowserChecks proves that the checks run on every page of the journeys can fail:
// each page below has exactly one kind of defect (or none), and the harness must report
// exactly that. Without it, a green journey could mean a blind harness.
func TestBrowserChecks(t *testing.T) {
	requireTools(t)
	srv := httptest.NewServer(selfCheckPages())
	t.Cleanup(srv.Close)
	tb := newBrowser(t, nil, journeyTimeout)

	tests := []struct {
		path        string
		wantProblem string // substring of one reported console/CSP/network problem; "" → none
		wantAxe     string // axe rule id reported; "" → none
	}{
		{"/clean", "", ""},
		{"/error-status", "", ""},
		{"/inline-script", "Content Security Policy", ""},
		{"/console-error", "boom from the page", ""},
		{"/exception", "Uncaught", ""},
		{"/missing-css", "404", ""},
		{"/style-attr", "Content Security Policy", ""},
		{"/no-alt", "", "image-alt"},
		{"/low-contrast", "", "color-contrast"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, "/"), func(t *testing.T) {
			tb.step("open "+tt.path, chromedp.Navigate(srv.URL+tt.path))
			vs, err := tb.axe() // as checkPage does: axe first, then the reports
			if err != nil {
				t.Fatalf("axe: %v", err)
			}
			problems := tb.rec.newProblems()
			switch {
			case tt.wantProblem == "" && len(problems) > 0:
				t.Errorf("got problems %q, want none", problems)
			case tt.wantProblem != "" && !containsAny(problems, tt.wantProblem):
				t.Errorf("got problems %q, want one containing %q", problems, tt.wantProblem)
			}
			var ids []string
			for _, v := range vs {
				ids = append(ids, v.ID)
			}
			switch {
			case tt.wantAxe == "" && len(ids) > 0:
				t.Errorf("got axe violations %v (%+v), want none", ids, vs)
			case tt.wantAxe != "" && !containsAny(ids, tt.wantAxe):
				t.Errorf("got axe violations %v, want %s", ids, tt.wantAxe)
			}
		})
	}
}

// TestBrowserDialogs: a confirm() (the app asks before destructive actions) is answered
// OK, as the person in a journey would, instead of blocking the tab.
func TestBrowserDialogs(t *testing.T) {
	requireTools(t)
	srv := httptest.NewServer(selfCheckPages())
	t.Cleanup(srv.Close)
	tb := newBrowser(t, nil, journeyTimeout)
	tb.step("open /confirm", chromedp.Navigate(srv.URL+"/confirm"))
	if got := run(tb, "read title", chromedp.Title()); got != "accepted" {
		t.Errorf("got title %q, want accepted", got)
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// selfCheckPages serves small pages under the strict CSP, each with one defect.
func selfCheckPages() http.Handler {
	page := func(title, head, body string) string {
		return fmt.Sprintf(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>%s</title><link rel="icon" href="/favicon.ico">%s</head>
<body><main><h1>%s</h1>%s</main></body></html>`, title, head, title, body)
	}
	pages := map[string]string{
		"/confirm":       page("Confirm", `<script src="/confirm.js"></script>`, ""),
		"/clean":         page("Clean", `<link rel="stylesheet" href="/site.css">`, `<p>Nothing wrong here.</p>`),
		"/error-status":  page("Not found", "", `<p>A deliberate 404 page.</p>`),
		"/inline-script": page("Inline", "", `<script>document.title = "ran";</script>`),
		"/console-error": page("Console", `<script src="/console.js"></script>`, ""),
		"/exception":     page("Exception", `<script src="/throw.js"></script>`, ""),
		"/missing-css":   page("Missing CSS", `<link rel="stylesheet" href="/nope.css">`, ""),
		"/style-attr":    page("Style attribute", "", `<p style="color: #333">Styled inline</p>`),
		"/no-alt":        page("No alt", "", `<img src="/dot.svg" width="10" height="10">`),
		"/low-contrast":  page("Contrast", `<link rel="stylesheet" href="/site.css">`, `<p class="faint">Barely readable</p>`),
	}
	assets := map[string][2]string{
		"/site.css":    {"text/css", ".faint { color: #eee; background: #fff; }"},
		"/console.js":  {"text/javascript", `console.error("boom from the page");`},
		"/throw.js":    {"text/javascript", `throw new Error("thrown by the page");`},
		"/confirm.js":  {"text/javascript", `document.title = confirm("Sure?") ? "accepted" : "dismissed";`},
		"/dot.svg":     {"image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`},
		"/favicon.ico": {"image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>`},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", strictCSP)
		if a, ok := assets[r.URL.Path]; ok {
			w.Header().Set("Content-Type", a[0])
			fmt.Fprint(w, a[1])
			return
		}
		p, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/error-status" {
			w.WriteHeader(http.StatusNotFound)
		}
		fmt.Fprint(w, p)
	})
}
