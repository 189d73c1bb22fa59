package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The sandbox's first seeded user (luminfake.DefaultUsers), whom the journeys sign in as.
const (
	adaName  = "Ada Lovelace"
	adaEmail = "ada@sandbox.lumin.test"
)

// TestJourneys drives every user journey of issue 6 in Chromium. Each journey gets its
// own app process (fresh database, its own sandbox and fault knobs) and its own browser
// profile, so no journey can pass because of another's cookies or data. They run one
// after the other: the machine has 2 cores and Chromium wants them.
func TestJourneys(t *testing.T) {
	requireTools(t)
	if appBinary == "" {
		t.Fatalf("e2e: the app did not build: %v", buildErr)
	}
	journeys := []struct {
		name string
		env  []string // extra app environment (sandbox knobs)
		run  func(tb *tab)
	}{
		{"connect", nil, journeyConnect},
		{"deny-then-retry", nil, journeyDenyThenRetry},
		{"two-tabs-connecting", nil, journeyTwoTabs},
		{"callback-reload", nil, journeyCallbackReload},
		{"logout", nil, journeyLogout},
		{"disconnect", nil, journeyDisconnect},
		{"send-sign-download", nil, journeySendSignDownload},
		// The sandbox issues 3-second access tokens, so the token expires mid-visit.
		{"token-expiry-mid-visit", []string{"SANDBOX_ACCESS_TOKEN_TTL=3s"}, journeyTokenExpiry},
		// Faults scoped to the signature-request API: signing in (user info) still works.
		{"upstream-429", []string{"SANDBOX_FAULTS=api_status=429,retry_after=7,path=/v1/signature_request"}, journeyUpstream429},
		{"upstream-503", []string{"SANDBOX_FAULTS=api_status=503,path=/v1/signature_request"}, journeyUpstream503},
	}
	// go test ./... prints nothing per subtest for a passing package, so the suite
	// writes its own one-line-per-journey summary, which .ci/run prints: CI output then
	// names every journey and its result, and shows none was skipped.
	var summary strings.Builder
	for _, j := range journeys {
		start := time.Now()
		t.Run(j.name, func(t *testing.T) {
			t.Cleanup(func() {
				result := "PASS"
				switch {
				case t.Skipped():
					result = "SKIP"
				case t.Failed():
					result = "FAIL"
				}
				fmt.Fprintf(&summary, "%s  %-24s %5.1fs\n", result, j.name, time.Since(start).Seconds())
			})
			a := startApp(t, j.env...)
			tb := newBrowser(t, a, journeyTimeout)
			j.run(tb)
			tb.checkConsole("end of journey")
		})
	}
	writeSummary(t, summary.String())
}

// writeSummary saves the per-journey results as e2e/artifacts/journeys.txt.
func writeSummary(t *testing.T, text string) {
	dir := filepath.Join(e2eDir, "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("journey summary: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "journeys.txt"), []byte(text), 0o644); err != nil {
		t.Errorf("journey summary: %v", err)
	}
}

// ---- building blocks -----------------------------------------------------------

// connect goes from the landing page through the sandbox's sign-in and consent to the
// dashboard, as Ada. With shots it saves the landing, consent and dashboard pictures.
func (tb *tab) connect(shots bool) {
	tb.t.Helper()
	tb.open("/")
	tb.waitFor("connect-lumin")
	if shots {
		tb.screenshot("landing")
	}
	tb.clickNav("connect-lumin")
	tb.waitFor("sandbox-consent")
	if shots {
		tb.screenshot("consent")
	}
	tb.allow()
	tb.expectDashboard()
	if shots {
		tb.screenshot("dashboard")
	}
}

// allow signs in as Ada (when the sandbox asks who you are) and allows access.
func (tb *tab) allow() {
	tb.t.Helper()
	tb.waitFor("sandbox-consent")
	// The sandbox remembers who signed in (like Lumin's login session), so the choice
	// of user is only there the first time.
	if tb.has("sandbox-user-0") {
		tb.click("sandbox-user-0")
	}
	tb.clickNav("consent-allow")
}

// expectDashboard asserts that the tab shows Ada's dashboard.
func (tb *tab) expectDashboard() {
	tb.t.Helper()
	tb.waitFor("user-email")
	if got := tb.location().Path; got != "/dashboard" {
		tb.fatalf("got path %q, want /dashboard", got)
	}
	if got := tb.text("user-name"); got != adaName {
		tb.fatalf("user-name: got %q, want %q", got, adaName)
	}
	if got := tb.text("user-email"); got != adaEmail {
		tb.fatalf("user-email: got %q, want %q", got, adaEmail)
	}
}

// expectSignedOut asserts that the tab shows no personal data and offers to connect.
func (tb *tab) expectSignedOut(where string) {
	tb.t.Helper()
	if tb.has("user-email") || tb.has("user-name") {
		tb.fatalf("%s: the page still shows the profile", where)
	}
	if body := tb.bodyText(); strings.Contains(body, adaEmail) || strings.Contains(body, adaName) {
		tb.fatalf("%s: the page still shows personal data (%s or %s)", where, adaName, adaEmail)
	}
}

// expectRedirectHome asserts that /dashboard now sends the visitor to the landing page.
func (tb *tab) expectRedirectHome() {
	tb.t.Helper()
	tb.open("/dashboard")
	if got := tb.location().Path; got != "/" {
		tb.fatalf("GET /dashboard ended at %q, want / (not connected → 303 to /)", got)
	}
	tb.waitFor("connect-lumin")
	tb.expectSignedOut("/dashboard after signing out")
}

// ---- the journeys ---------------------------------------------------------------

// journeyConnect: landing → Connect Lumin → sandbox consent as Ada → dashboard.
func journeyConnect(tb *tab) {
	tb.connect(true)
}

// journeyDenyThenRetry: denying consent lands on a friendly page whose retry action
// starts over, and allowing then connects.
func journeyDenyThenRetry(tb *tab) {
	tb.open("/")
	tb.clickNav("connect-lumin")
	tb.waitFor("sandbox-consent")
	tb.clickNav("consent-deny")
	tb.waitFor("error")
	tb.expectSignedOut("denied consent")
	tb.waitFor("error-action")
	tb.screenshot("error")
	tb.clickNav("error-action")
	tb.allow()
	tb.expectDashboard()
}

// journeyTwoTabs: two tabs of one browser start connecting before either finishes;
// each has its own login transaction, so finishing them in reverse order works.
func journeyTwoTabs(tb *tab) {
	tab2 := tb.newTab("tab 2")
	tb.open("/auth/connect")
	tb.waitFor("sandbox-consent")
	tab2.open("/auth/connect")
	tab2.waitFor("sandbox-consent")

	tab2.allow()
	tab2.expectDashboard()
	tb.allow()
	tb.expectDashboard()
	tab2.checkConsole("end of journey")
}

// journeyCallbackReload: opening the callback URL again (reload, Back, a bookmarked
// history entry) when already connected shows the dashboard, not an error.
func journeyCallbackReload(tb *tab) {
	tb.connect(false)
	cb, ok := tb.rec.lastDoc("/auth/callback")
	if !ok {
		tb.fatalf("no request to /auth/callback was seen while connecting")
	}
	if !strings.Contains(cb.URL, "code=") || !strings.Contains(cb.URL, "state=") {
		tb.fatalf("callback URL %q has no code and state", cb.URL)
	}
	tb.open(cb.URL)
	if tb.has("error") {
		tb.fatalf("reopening the callback URL shows an error page")
	}
	tb.expectDashboard()
}

// journeyLogout: Logout (a POST) signs out, and the Back button shows no personal data.
func journeyLogout(tb *tab) {
	tb.connect(false)
	tb.clickNav("logout")
	// RP-initiated logout may pass through Lumin's (the sandbox's) signed-out page or
	// come straight back to the landing page; either way the user is signed out.
	if err := tb.poll(stepTimeout, 100*time.Millisecond, func() bool {
		return tb.has("connect-lumin") || tb.has("sandbox-signed-out")
	}); err != nil {
		tb.fatalf("after logout: neither the landing page (connect-lumin) nor the sandbox's signed-out page (sandbox-signed-out)")
	}
	tb.expectSignedOut("after logout")

	// Back must not show the dashboard from a cache (Cache-Control: no-store on
	// personal pages). A page restored from the back/forward cache fires no load event,
	// so a time-out of the wait is not itself a failure: what the page shows is.
	ctx, cancel := tb.stepContext()
	err := chromedp.Do(ctx, chromedp.NavigateBack())
	cancel()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		tb.fatalf("navigate back: %v", err)
	}
	// The server answers the dashboard's URL with a redirect home now; a page that a
	// script reloads on restore lands there too. Wait for that, then look.
	_ = tb.poll(stepTimeout, 200*time.Millisecond, func() bool { return tb.has("connect-lumin") })
	tb.checkConsole("back after logout")
	tb.expectSignedOut("back after logout")

	tb.expectRedirectHome()
}

// journeyDisconnect: Disconnect forgets the Lumin connection.
func journeyDisconnect(tb *tab) {
	tb.connect(false)
	tb.clickNav("disconnect")
	tb.waitFor("disconnected")
	tb.expectSignedOut("disconnected page")
	tb.expectRedirectHome()
}

// journeySendSignDownload: send a PDF for signature, find it in the list, sign it as
// the sandbox signer on the sandbox's pages, watch it become APPROVED and download it.
func journeySendSignDownload(tb *tab) {
	tb.connect(false)
	title := "Mutual NDA with Grace Hopper"
	tb.sendRequest(title)

	tb.open("/requests")
	row := rowWith(title)
	tb.step("wait for the new request's row", chromedp.WaitVisible(row))
	tb.screenshot("requests")
	tb.clickNavSel("open the request's detail", chromedp.Click(rowLink(title), chromedp.NodeVisible))
	tb.waitFor("request-status")
	detail := tb.location().String()

	// "Open in Lumin": the sandbox's own page for the request stands in for Lumin's.
	href := tb.attr("details-link", "href")
	tb.open(href)
	// The sandbox processes a new request asynchronously (WAITING_FOR_PROCESSING), so
	// the signers' links appear after a moment.
	// Each signer's row links to their signing page (Lumin e-mails that link).
	const signerLinks = `[data-testid^="sandbox-signer-link"], a[href*="/sandbox/sign/"]`
	signer := chromedp.CSS(signerLinks)
	if err := tb.poll(10*time.Second, 500*time.Millisecond, func() bool {
		if tb.count(signerLinks) > 0 {
			return true
		}
		tb.reload()
		return false
	}); err != nil {
		tb.fatalf("the sandbox request page shows no link to a signer's page")
	}
	tb.clickNavSel("open the signer's page", chromedp.Click(signer, chromedp.NodeVisible))
	tb.waitFor("sandbox-sign")
	tb.clickNav("sandbox-sign")

	// Back in the app, the status follows (webhook or live refresh).
	tb.open(detail)
	var status string
	if err := tb.poll(20*time.Second, time.Second, func() bool {
		if status = tb.status(); status == "APPROVED" {
			return true
		}
		tb.reload()
		return false
	}); err != nil {
		tb.fatalf("request-status: got %q after 20 s, want APPROVED", status)
	}
	tb.waitFor("download-agreement")
	tb.screenshot("request-detail")

	// The download link answers 303 to a short-lived signed URL that serves the PDF.
	download := tb.attr("download-agreement", "href")
	docs, responses := tb.rec.counts()
	ctx, cancel := tb.stepContext()
	_ = chromedp.Do(ctx, chromedp.Navigate(download)) // a PDF may end as an aborted load or a download
	cancel()
	if err := tb.poll(10*time.Second, 200*time.Millisecond, func() bool {
		for _, r := range tb.rec.responsesSince(responses) {
			if r.Status == 200 && r.MimeType == "application/pdf" {
				return true
			}
		}
		return false
	}); err != nil {
		tb.fatalf("following %s: no 200 application/pdf response; pages requested: %+v", download, tb.rec.docsSince(docs))
	}
	redirected := false
	for _, d := range tb.rec.docsSince(docs) {
		if d.RedirectFrom == download && d.RedirectStatus == 303 {
			redirected = true
		}
	}
	if !redirected {
		tb.t.Errorf("got no 303 from %s to the signed URL; pages requested: %+v", download, tb.rec.docsSince(docs))
	}
	tb.checkConsole("download")
}

// journeyTokenExpiry: the access token expires while the user looks at the dashboard;
// the next pages work without the user seeing anything (refresh_token grant behind
// the scenes), and the dashboard's "Access valid until" moves forward.
func journeyTokenExpiry(tb *tab) {
	tb.connect(false)
	first := tb.tokenExpiry()
	// Without the short-TTL knob this journey would prove nothing: say so.
	if left := time.Until(first); left > 30*time.Second {
		tb.fatalf("the access token is valid for %v more: SANDBOX_ACCESS_TOKEN_TTL=3s was not applied", left.Round(time.Second))
	}
	tb.sleep(time.Until(first) + 1500*time.Millisecond) // now it has expired
	tb.reload()
	tb.expectDashboard()
	// A page that calls Lumin's API with the token.
	tb.sendRequest("Sent after the token expired")
	tb.open("/dashboard")
	tb.expectDashboard()
	if later := tb.tokenExpiry(); !later.After(first) {
		tb.fatalf("token expiry: got %v after the token expired and the API was used, want later than %v (a refresh)", later, first)
	}
}

// tokenExpiry reads the dashboard's "Access valid until" (its <time datetime>).
func (tb *tab) tokenExpiry() time.Time {
	tb.t.Helper()
	tb.waitFor("token-expiry")
	v := run(tb, "read token-expiry", chromedp.Evaluate[string](
		`(t => t ? t.getAttribute("datetime") || "" : "")(document.querySelector('[data-testid="token-expiry"] time'))`))
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		tb.fatalf("token-expiry: got datetime %q, want RFC 3339: %v", v, err)
	}
	return at
}

// journeyUpstream429: Lumin answers 429 with Retry-After: 7 → the page says Lumin is
// busy and when to try again (issue 5: honour Retry-After), instead of failing.
func journeyUpstream429(tb *tab) {
	body := tb.upstreamFault()
	if !strings.Contains(body, "7") {
		tb.fatalf("the friendly state does not tell when to retry (Retry-After: 7): %q", body)
	}
}

// journeyUpstream503: Lumin answers 503 → a friendly state, not a crash.
func journeyUpstream503(tb *tab) {
	tb.upstreamFault()
}

// upstreamFault connects, tries to send a request while the sandbox's signature-request
// API fails, and returns the text of the friendly state the app shows.
func (tb *tab) upstreamFault() string {
	tb.t.Helper()
	tb.connect(false)
	tb.fillRequest("Sent while Lumin is failing")
	tb.clickNav("request-submit")
	var id string
	if err := tb.poll(stepTimeout, 100*time.Millisecond, func() bool {
		// The form shown again with its error, a notice on the page, or the error page.
		for _, c := range []string{"form-error", "upstream-notice", "error"} {
			if tb.has(c) {
				id = c
				return true
			}
		}
		return false
	}); err != nil {
		tb.fatalf("an upstream failure shows none of form-error, upstream-notice or the error page")
	}
	if strings.Contains(tb.bodyText(), "panic") {
		tb.fatalf("the page shows a panic")
	}
	return tb.text(id)
}

// ---- signature requests ----------------------------------------------------------

// fillRequest fills /requests/new: a title, a small PDF, one signer and an expiry in
// two weeks.
func (tb *tab) fillRequest(title string) {
	tb.t.Helper()
	tb.open("/requests/new")
	pdf := filepath.Join(tb.t.TempDir(), "agreement.pdf")
	if err := os.WriteFile(pdf, tinyPDF(title), 0o600); err != nil {
		tb.t.Fatal(err)
	}
	expiry := time.Now().AddDate(0, 0, 14)
	value := expiry.Format("2006-01-02")
	if typ := tb.attr("request-expiry", "type"); typ == "datetime-local" {
		value = expiry.Format("2006-01-02T15:04")
	}
	tb.step("fill the new request form",
		chromedp.SendKeys(testID("request-title"), title),
		chromedp.SetUploadFiles(testID("request-file"), []string{pdf}, chromedp.NodeReady),
		chromedp.SendKeys(testID("signer-name-0"), "Grace Hopper"),
		chromedp.SendKeys(testID("signer-email-0"), "grace@sandbox.lumin.test"),
		// A date input takes its value in ISO form whatever the locale shows.
		chromedp.SetValue(testID("request-expiry"), value),
	)
}

// sendRequest fills and submits the form, and expects the request's page (or the list
// with it) with no error.
func (tb *tab) sendRequest(title string) {
	tb.t.Helper()
	tb.fillRequest(title)
	tb.clickNav("request-submit")
	if tb.has("error") {
		tb.fatalf("sending the request failed: %s", tb.text("error"))
	}
	if !strings.Contains(tb.bodyText(), title) {
		tb.fatalf("after sending, the page does not show the request %q", title)
	}
}

// status returns the request's status as Lumin names it: the badge shows words for
// people ("Completed"), so the machine value is its data-status attribute.
func (tb *tab) status() string {
	tb.t.Helper()
	if s := tb.attr("request-status", "data-status"); s != "" {
		return s
	}
	tb.fatalf("request-status has no data-status attribute (the raw Lumin status, e.g. APPROVED); it shows %q", tb.text("request-status"))
	return ""
}

// rowWith selects the list row that shows title (JavaScript selectors run through the
// DevTools protocol, not the page's CSP).
func rowWith(title string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(
		`[...document.querySelectorAll('[data-testid="request-row"]')].find(r => r.textContent.includes(%q))`, title))
}

// rowLink selects the link to the detail page in the row that shows title.
func rowLink(title string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(
		`[...document.querySelectorAll('[data-testid="request-row"]')].find(r => r.textContent.includes(%q)).querySelector('[data-testid="request-link"]')`, title))
}

// attr returns an attribute of the element with that data-testid; for href it is the
// resolved absolute URL.
func (tb *tab) attr(id, name string) string {
	tb.t.Helper()
	tb.waitFor(id)
	return run(tb, "read "+id+"."+name, chromedp.Evaluate[string](fmt.Sprintf(
		`(e => %q === "href" ? e.href : (e.getAttribute(%q) || ""))(document.querySelector('[data-testid=%q]'))`,
		name, name, id)))
}

// count returns how many elements match a CSS selector now.
func (tb *tab) count(css string) int {
	tb.t.Helper()
	return run(tb, "count "+css, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, css)))
}

// tinyPDF returns a valid one-page PDF 1.4 that shows text, with a correct xref table.
func tinyPDF(text string) []byte {
	text = strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(text)
	stream := fmt.Sprintf("BT /F1 18 Tf 72 720 Td (%s) Tj ET", text)
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}

// TestTinyPDF checks the upload fixture itself: every xref entry must point at its
// object, or a strict PDF parser in the sandbox would reject the upload.
func TestTinyPDF(t *testing.T) {
	pdf := tinyPDF("Agreement (draft) \\ v1")
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(pdf, []byte("%%EOF\n")) {
		t.Fatalf("got %q…, want a %%PDF-1.4 header and an %%%%EOF trailer", pdf[:20])
	}
	i := bytes.LastIndex(pdf, []byte("startxref\n"))
	var xref int
	if _, err := fmt.Sscanf(string(pdf[i+len("startxref\n"):]), "%d", &xref); err != nil {
		t.Fatalf("startxref: %v", err)
	}
	if !bytes.HasPrefix(pdf[xref:], []byte("xref\n0 6\n")) {
		t.Fatalf("startxref %d points at %q, want the xref table", xref, pdf[xref:xref+10])
	}
	lines := strings.Split(string(pdf[xref:]), "\n")[3:8]
	for n, line := range lines {
		var off int
		if _, err := fmt.Sscanf(line, "%010d", &off); err != nil {
			t.Fatalf("xref line %q: %v", line, err)
		}
		if want := fmt.Sprintf("%d 0 obj\n", n+1); !bytes.HasPrefix(pdf[off:], []byte(want)) {
			t.Errorf("object %d: got %q at offset %d, want %q", n+1, pdf[off:off+8], off, want)
		}
	}
}
