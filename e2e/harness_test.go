package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The suite's fixed limits. They bound every wait so that nothing hangs in CI; none of
// them is a timing assertion about the app.
const (
	journeyTimeout = 60 * time.Second // one journey, start of the browser included
	stepTimeout    = 15 * time.Second // one wait for an element or a page load
	healthTimeout  = 30 * time.Second // app start-up until GET /healthz answers 200
	stopTimeout    = 10 * time.Second // SIGTERM until the app has exited
)

// Set once by TestMain.
var (
	moduleRoot string // directory of go.mod
	e2eDir     string // this package's directory (the test's working directory)
	chromePath string // "" when no Chromium was found
	axeSource  string // axe.min.js; "" when axe-core is not installed
	appBinary  string // built app; "" when the build failed or was not needed
	buildErr   error  // why appBinary is ""
)

const (
	msgNoChromium = "e2e: Chromium not found at %s; install Debian's chromium or set CHROMIUM"
	msgNoAxe      = "e2e: axe-core not found in e2e/node_modules; run `npm ci --prefix e2e` (or bash .ci/e2e-deps.sh)"
)

// TestMain finds the tools and builds the app binary once for every journey, outside
// the journeys' own time limits (a cold build with the pure-Go SQLite driver is slow).
func TestMain(m *testing.M) {
	code := func() int {
		var err error
		if e2eDir, err = os.Getwd(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		moduleRoot = findModuleRoot()
		chromePath = findChromium()
		if b, err := os.ReadFile(filepath.Join(e2eDir, "node_modules", "axe-core", "axe.min.js")); err == nil {
			axeSource = string(b)
		}
		tmp, err := os.MkdirTemp("", "connect-lumin-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		// Without a browser every test skips (or fails in CI) before it needs the app.
		if chromePath != "" && axeSource != "" {
			appBinary, buildErr = buildApp(tmp)
		}
		return m.Run()
	}()
	os.Exit(code)
}

func findModuleRoot() string {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if gomod := strings.TrimSpace(string(out)); err == nil && gomod != "" && gomod != os.DevNull {
		return filepath.Dir(gomod)
	}
	return filepath.Dir(e2eDir)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(goruntime.GOROOT(), "bin", "go")
}

// chromiumWanted is where the suite looks for the browser.
func chromiumWanted() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

func findChromium() string {
	p := chromiumWanted()
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p
	}
	return ""
}

func buildApp(dir string) (string, error) {
	bin := filepath.Join(dir, "connect-lumin")
	cmd := exec.Command(goTool(), "build", "-o", bin, ".")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s . (in %s): %w\n%s", bin, moduleRoot, err, out)
	}
	return bin, nil
}

// requireTools skips the test when the browser or axe-core is missing on a laptop, and
// fails it in CI, where a missing browser must never look like a pass.
func requireTools(t *testing.T) {
	t.Helper()
	for _, miss := range []struct {
		missing bool
		msg     string
	}{{chromePath == "", fmt.Sprintf(msgNoChromium, chromiumWanted())}, {axeSource == "", msgNoAxe}} {
		if !miss.missing {
			continue
		}
		if os.Getenv("CI") != "" {
			t.Fatal(miss.msg + " (CI never skips the browser suite)")
		}
		// One clear line for the whole suite; the other tests skip silently.
		skipOnce.Do(func() { t.Log(miss.msg) })
		t.SkipNow()
	}
}

var skipOnce sync.Once

// ---- the app under test -------------------------------------------------------

// app is one running app process in sandbox mode with its own database.
type app struct {
	URL string // base URL, http://127.0.0.1:PORT
	cmd *exec.Cmd
	out *syncBuffer
	// exited is closed when the process has ended; waitErr is then its exit error.
	exited  chan struct{}
	waitErr error
}

// startApp starts the built app in sandbox mode on a free loopback port, with a fresh
// SQLite database, extra environment variables env ("KEY=value"), and waits until GET
// /healthz answers. The app is stopped (SIGTERM, then wait) when the test ends.
func startApp(t *testing.T, env ...string) *app {
	t.Helper()
	if appBinary == "" {
		t.Fatalf("e2e: the app did not build: %v", buildErr)
	}
	port := freePort(t)
	a := &app{URL: "http://127.0.0.1:" + port, out: &syncBuffer{}, exited: make(chan struct{})}
	a.cmd = exec.Command(appBinary)
	// The module root is the working directory, as for `go run .`, so that the app finds
	// its config.yaml.
	a.cmd.Dir = moduleRoot
	a.cmd.Env = append(cleanEnv(),
		"APP_ADDR=127.0.0.1:"+port,
		"APP_BASE_URL="+a.URL,
		"DATABASE_URL=sqlite:"+filepath.Join(t.TempDir(), "app.db"),
	)
	a.cmd.Env = append(a.cmd.Env, env...)
	a.cmd.Stdout = a.out
	a.cmd.Stderr = a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("e2e: start app: %v", err)
	}
	go func() { a.waitErr = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() { a.stop(t) })
	a.waitHealthy(t)
	return a
}

// cleanEnv is the test's environment without anything that would configure the app:
// no LUMIN_CLIENT_ID means sandbox mode, whatever the developer's shell exports.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LUMIN_") || strings.HasPrefix(k, "APP_") || strings.HasPrefix(k, "SANDBOX_") ||
			k == "DATABASE_URL" || k == "SESSION_KEYS" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("e2e: find a free port: %v", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func (a *app) waitHealthy(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(healthTimeout)
	for {
		select {
		case <-a.exited:
			t.Fatalf("e2e: the app exited during start-up (%v); its output:\n%s", a.waitErr, a.out.tail(60))
		default:
		}
		resp, err := client.Get(a.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: GET %s/healthz did not answer 200 within %v (last: %v); app output:\n%s",
				a.URL, healthTimeout, err, a.out.tail(60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the app the way a process manager does (SIGTERM) and expects a graceful
// exit; the app's output is logged when the test failed, to explain the failure.
func (a *app) stop(t *testing.T) {
	t.Helper()
	select {
	case <-a.exited:
		// It ended before the test did: a crash mid-journey, unless start-up already
		// reported it.
		if !t.Failed() {
			t.Errorf("e2e: the app exited before the end of the test: %v; its output:\n%s", a.waitErr, a.out.tail(80))
		}
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
		if a.waitErr != nil {
			t.Errorf("e2e: the app did not exit cleanly after SIGTERM: %v", a.waitErr)
		}
	case <-time.After(stopTimeout):
		_ = a.cmd.Process.Kill()
		<-a.exited
		t.Errorf("e2e: the app did not exit within %v of SIGTERM; killed it", stopTimeout)
	}
	if t.Failed() {
		t.Logf("app output (last lines):\n%s", a.out.tail(80))
	}
}

// syncBuffer collects the app's output from two pipes at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- the browser --------------------------------------------------------------

// tab is one browser tab driven by a journey, with everything it saw recorded.
type tab struct {
	t    *testing.T
	app  *app // nil for the harness's own checks
	ctx  context.Context
	rec  *recorder
	name string // for messages: "tab 1"
	// browserCtx is the context that owns the browser, for opening more tabs.
	browserCtx context.Context
	deadline   time.Time
}

// newBrowser starts a fresh Chromium (own profile directory) and returns its first
// tab. Everything the tab does must finish within timeout, so a broken journey fails
// with the step it was at instead of hanging the suite.
func newBrowser(t *testing.T, a *app, timeout time.Duration) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromePath),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // Chromium's sandbox needs user namespaces that CI containers often lack (root).
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	rec := newRecorder()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithListener(rec.listen))
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first Run binds the browser's life to its context, so start it without the
	// journey's deadline (chromedp docs/API.md §21) and apply the deadline below.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("e2e: start Chromium (%s): %v", chromePath, err)
		}
	case <-time.After(healthTimeout):
		t.Fatalf("e2e: Chromium (%s) did not start within %v", chromePath, healthTimeout)
	}
	// A signed agreement is a PDF: the suite reads its response, it never needs the file.
	if _, err := chromedp.CallBrowser(bctx, browser.SetDownloadBehavior,
		browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorDeny}); err != nil {
		t.Fatalf("e2e: deny downloads: %v", err)
	}
	jctx, cancelJourney := context.WithTimeout(bctx, timeout)
	t.Cleanup(cancelJourney)
	dl, _ := jctx.Deadline()
	acceptDialogs(jctx)
	return &tab{t: t, app: a, ctx: jctx, rec: rec, name: "tab 1", browserCtx: bctx, deadline: dl}
}

// acceptDialogs answers OK to every confirm() the page shows (the app asks before
// destructive actions), as the person in the journey would; an open dialog would
// otherwise block the tab until the journey times out.
func acceptDialogs(ctx context.Context) {
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
}

// newTab opens another tab in the same browser (same cookies), as a person opening
// a second tab does.
func (tb *tab) newTab(name string) *tab {
	tb.t.Helper()
	rec := newRecorder()
	ctx, cancel := chromedp.NewContext(tb.browserCtx, chromedp.WithListener(rec.listen))
	tb.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		tb.t.Fatalf("e2e: open %s: %v", name, err)
	}
	jctx, cancelJourney := context.WithDeadline(ctx, tb.deadline)
	tb.t.Cleanup(cancelJourney)
	acceptDialogs(jctx)
	return &tab{t: tb.t, app: tb.app, ctx: jctx, rec: rec, name: name, browserCtx: tb.browserCtx, deadline: tb.deadline}
}

// ---- what a tab saw -----------------------------------------------------------

// recorder keeps the events a journey asserts on. Its listen func runs on chromedp's
// event loop, so it only appends under a lock and never calls the browser.
type recorder struct {
	mu        sync.Mutex
	problems  []string // console errors and uncaught exceptions, as text
	logErrors []log.Entry
	docs      []docRequest // every document request, redirect hops included
	responses []network.Response
	reported  int // problems[:reported] were already reported
	logSeen   int // logErrors[:logSeen] were already classified
	// axeRunning is set while axe-core runs in the page (see listen).
	axeRunning bool
}

func (r *recorder) setAxeRunning(on bool) {
	r.mu.Lock()
	r.axeRunning = on
	r.mu.Unlock()
}

// docRequest is one request for a page, with the redirect answer that led to it.
type docRequest struct {
	ID             network.RequestID
	URL            string
	RedirectFrom   string // URL whose answer redirected here, or ""
	RedirectStatus int64
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) listen(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			r.problems = append(r.problems, "console."+string(ev.Type)+": "+remoteObjectsText(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + firstLine(d.Exception.Description)
		}
		r.problems = append(r.problems, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, text))
	case *log.EventEntryAdded:
		if ev.Entry == nil || ev.Entry.Level != log.EntryLevelError {
			return
		}
		// axe-core builds probe elements with inline styles; under our CSP that logs a
		// style-src violation with no URL. It is the test tool's, not the page's: a
		// style attribute in the page's own HTML is reported at parse time, with the URL.
		if r.axeRunning && ev.Entry.Source == log.EntrySourceSecurity && ev.Entry.URL == "" &&
			strings.Contains(ev.Entry.Text, "inline style") {
			return
		}
		r.logErrors = append(r.logErrors, *ev.Entry)
	case *network.EventRequestWillBeSent:
		if ev.Type == network.ResourceTypeDocument && ev.Request != nil {
			d := docRequest{ID: ev.RequestID, URL: ev.Request.URL}
			if rr := ev.RedirectResponse; rr != nil {
				d.RedirectFrom, d.RedirectStatus = rr.URL, rr.Status
			}
			r.docs = append(r.docs, d)
		}
	case *network.EventResponseReceived:
		if ev.Response != nil {
			r.responses = append(r.responses, *ev.Response)
		}
	}
}

// newProblems returns the console errors, exceptions, CSP violations and failed
// sub-resource loads seen since the last call.
//
// A page that the server answers with a 4xx/5xx status on purpose (the error pages)
// makes Chromium log "Failed to load resource" for the document itself; that is the
// app's deliberate status code, not a broken page, so network errors about document
// requests are left to the journeys' own assertions. A failed stylesheet, script,
// image or favicon is a problem.
func (r *recorder) newProblems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	isDoc := func(e log.Entry) bool {
		for _, d := range r.docs {
			if (e.NetworkRequestID != "" && d.ID == e.NetworkRequestID) || (e.URL != "" && d.URL == e.URL) {
				return true
			}
		}
		return false
	}
	for _, e := range r.logErrors[r.logSeen:] {
		if e.Source == log.EntrySourceNetwork && isDoc(e) {
			continue
		}
		where := e.URL
		if where == "" {
			where = "(no url)"
		}
		r.problems = append(r.problems, fmt.Sprintf("browser log %s error at %s: %s", e.Source, where, e.Text))
	}
	r.logSeen = len(r.logErrors)
	out := slices.Clone(r.problems[r.reported:])
	r.reported = len(r.problems)
	return out
}

// lastDoc returns the last document request whose URL path is path.
func (r *recorder) lastDoc(path string) (docRequest, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.docs) - 1; i >= 0; i-- {
		if u, err := url.Parse(r.docs[i].URL); err == nil && u.Path == path {
			return r.docs[i], true
		}
	}
	return docRequest{}, false
}

func (r *recorder) docsSince(n int) []docRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.docs[min(n, len(r.docs)):])
}

func (r *recorder) responsesSince(n int) []network.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.responses[min(n, len(r.responses)):])
}

func (r *recorder) counts() (docs, responses int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.docs), len(r.responses)
}

func remoteObjectsText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		switch {
		case a == nil:
		case len(a.Value) > 0:
			parts = append(parts, strings.Trim(string(a.Value), `"`))
		case a.Description != "":
			parts = append(parts, firstLine(a.Description))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// ---- actions ------------------------------------------------------------------

// testID selects the element with that data-testid (design.md: tests select on
// data-testid, never on wording or CSS classes).
func testID(id string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`[data-testid=%q]`, id))
}

// step runs actions with the step time limit and fails the journey with what it was
// doing, where the tab was, and a screenshot when they fail.
func (tb *tab) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fatalf("%s: %v", what, err)
	}
}

// stepContext is the journey's context limited to one step.
func (tb *tab) stepContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(tb.ctx, stepTimeout)
}

// run is step for an action with a value.
func run[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.fatalf("%s: %v", what, err)
	}
	return v
}

// fatalf ends the journey, with the page's address, text and a screenshot in
// e2e/artifacts to explain it.
func (tb *tab) fatalf(format string, args ...any) {
	tb.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(tb.browserCtx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(body) > 1500 {
		body = body[:1500] + "…"
	}
	shot := ""
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		name := "failure-" + strings.NewReplacer("/", "-", " ", "-").Replace(tb.t.Name()) + ".png"
		if err := writeArtifact(name, png); err == nil {
			shot = "\nscreenshot: e2e/artifacts/" + name
		}
	}
	tb.t.Fatalf("%s: %s\n%s at %s; page text:\n%s%s", tb.name, msg, tb.name, loc, body, shot)
}

// abs turns an app path into a URL; absolute URLs pass through.
func (tb *tab) abs(pathOrURL string) string {
	if strings.HasPrefix(pathOrURL, "http://") || strings.HasPrefix(pathOrURL, "https://") {
		return pathOrURL
	}
	return tb.app.URL + pathOrURL
}

// open navigates to an app path or a URL, waits for the load and checks the page.
func (tb *tab) open(pathOrURL string) {
	tb.t.Helper()
	tb.step("open "+pathOrURL, chromedp.Navigate(tb.abs(pathOrURL)))
	tb.checkPage(pathOrURL)
}

// reload reloads the page and checks it.
func (tb *tab) reload() {
	tb.t.Helper()
	tb.step("reload", chromedp.Reload())
	tb.checkPage("reload")
}

// clickNav clicks the element with that data-testid (a link or a form's button),
// waits for the page it leads to and checks that page.
func (tb *tab) clickNav(id string) {
	tb.t.Helper()
	tb.clickNavSel("click "+id, chromedp.Click(testID(id), chromedp.NodeVisible))
}

func (tb *tab) clickNavSel(what string, click chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, click); err != nil {
		tb.fatalf("%s: %v", what, err)
	}
	tb.checkPage(what)
}

// click clicks without waiting for a navigation (radio buttons, checkboxes).
func (tb *tab) click(id string) {
	tb.t.Helper()
	tb.step("click "+id, chromedp.Click(testID(id), chromedp.NodeVisible))
}

// waitFor waits until the element with that data-testid is visible.
func (tb *tab) waitFor(id string) {
	tb.t.Helper()
	tb.step("wait for "+id, chromedp.WaitVisible(testID(id)))
}

// text returns the visible text of the element with that data-testid.
func (tb *tab) text(id string) string {
	tb.t.Helper()
	return strings.TrimSpace(run(tb, "read "+id, chromedp.Text(testID(id), chromedp.NodeVisible)))
}

// has reports whether an element with that data-testid is in the page now, without
// waiting. A page that is still navigating has none (its old document is gone), so an
// evaluation error counts as "not there" unless the journey's time is up.
func (tb *tab) has(id string) bool {
	tb.t.Helper()
	ctx, cancel := tb.stepContext()
	defer cancel()
	found, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		fmt.Sprintf(`document.querySelector('[data-testid=%q]') !== null`, id)))
	if err != nil && tb.ctx.Err() != nil {
		tb.fatalf("look for %s: %v", id, err)
	}
	return err == nil && found
}

// location returns the tab's current URL.
func (tb *tab) location() *url.URL {
	tb.t.Helper()
	s := run(tb, "read location", chromedp.Location())
	u, err := url.Parse(s)
	if err != nil {
		tb.fatalf("parse location %q: %v", s, err)
	}
	return u
}

// bodyText returns the page's visible text.
func (tb *tab) bodyText() string {
	tb.t.Helper()
	return run(tb, "read page text", chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

// sleep waits d, bounded by the journey.
func (tb *tab) sleep(d time.Duration) {
	tb.t.Helper()
	select {
	case <-time.After(d):
	case <-tb.ctx.Done():
		tb.fatalf("journey time is up while waiting %v", d)
	}
}

// ---- checks on every page -----------------------------------------------------

// checkPage fails the journey for console errors, uncaught exceptions and CSP
// violations seen so far, and for serious or critical accessibility violations on the
// page now shown.
func (tb *tab) checkPage(label string) {
	tb.t.Helper()
	// axe first: the browser reports failed sub-resources and CSP violations a little
	// after the load event, and axe's run gives those reports time to arrive.
	vs, err := tb.axe()
	if err != nil {
		tb.fatalf("run axe-core after %q: %v", label, err)
	}
	for _, p := range tb.rec.newProblems() {
		tb.t.Errorf("%s: after %q: %s", tb.name, label, p)
	}
	if len(vs) > 0 {
		loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
		var b strings.Builder
		for _, v := range vs {
			fmt.Fprintf(&b, "\n  %s (%s): %s — %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, " | "))
		}
		tb.t.Errorf("%s: after %q: accessibility violations on %s:%s", tb.name, label, loc, b.String())
	}
}

// checkConsole reports console problems only: for the last page of a journey that
// is not HTML (a PDF), and at the end of a journey.
func (tb *tab) checkConsole(label string) {
	tb.t.Helper()
	for _, p := range tb.rec.newProblems() {
		tb.t.Errorf("%s: after %q: %s", tb.name, label, p)
	}
}

// axeViolation is one failed axe-core rule, reduced to what a report needs.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axeRun runs every axe-core rule on the document and keeps the serious and critical
// violations, with up to five offending nodes each (as CSS selectors).
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
	.filter(v => v.impact === "serious" || v.impact === "critical")
	.map(v => ({id: v.id, impact: v.impact, help: v.help,
		nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " " + (n.html || "").slice(0, 120))})))`

// axe injects axe-core into the page and runs it. Code evaluated through the DevTools
// protocol is not subject to the page's CSP (the self-check TestBrowserChecks proves it
// runs under our strict policy), so the app's CSP never has to allow the test tool.
func (tb *tab) axe() ([]axeViolation, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	tb.rec.setAxeRunning(true)
	defer tb.rec.setAxeRunning(false)
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === "object"`))
	if err != nil {
		return nil, err
	}
	if !loaded {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](axeSource)); err != nil {
			return nil, fmt.Errorf("inject axe.min.js: %w", err)
		}
	}
	return chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](axeRun, chromedp.EvalAwaitPromise))
}

// ---- screenshots --------------------------------------------------------------

// screenshot saves a full-page PNG as e2e/artifacts/NAME.png on every run, and as
// docs/screenshots/NAME.png (the ones the README shows) when UPDATE_SCREENSHOTS=1.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	png := run(tb, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := writeArtifact(name+".png", png); err != nil {
		tb.t.Errorf("e2e: write screenshot: %v", err)
	}
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		dir := filepath.Join(moduleRoot, "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.t.Fatalf("e2e: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			tb.t.Fatalf("e2e: %v", err)
		}
	}
}

func writeArtifact(name string, data []byte) error {
	dir := filepath.Join(e2eDir, "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), data, 0o644)
}

// errDeadline tells a bounded poll that ran out of time.
var errDeadline = errors.New("deadline")

// poll calls f every interval until it returns true, for at most limit.
func (tb *tab) poll(limit, interval time.Duration, f func() bool) error {
	tb.t.Helper()
	end := time.Now().Add(limit)
	for {
		if f() {
			return nil
		}
		if time.Now().After(end) {
			return errDeadline
		}
		tb.sleep(interval)
	}
}
