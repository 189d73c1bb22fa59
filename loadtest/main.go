// Command loadtest measures the dashboard's throughput against a bare Echo handler in the
// same run, so the ratio means something on any machine (issue 4: goal ≥ 0.6).
//
//	go run ./loadtest                  # 3 alternating rounds of 5 s each, 8 workers
//	go run ./loadtest -rounds 5 -duration 10s -concurrency 16
//
// It builds the app, starts it in sandbox mode on a free loopback port with a fresh
// SQLite database, connects as the sandbox user through the real consent page, then
// alternates timed rounds: the bare Echo handler (this program re-executed as a child
// process, so both servers pay the same process and loopback costs) and GET /dashboard
// with the connected session cookie. Every loop is bounded by -duration and -rounds and
// only 127.0.0.1 is ever contacted.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/labstack/echo/v4"
)

func main() {
	bare := flag.String("serve-bare", "", "internal: serve the bare Echo handler on this address")
	duration := flag.Duration("duration", 5*time.Second, "length of one timed round")
	rounds := flag.Int("rounds", 3, "rounds per target (alternating)")
	concurrency := flag.Int("concurrency", 8, "concurrent client workers")
	flag.Parse()
	if *bare != "" {
		serveBare(*bare)
		return
	}
	if err := run(*duration, *rounds, *concurrency); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// barePage is about the size of a rendered dashboard, so both targets move similar bytes.
var barePage = "<!doctype html><title>bare</title><p>" + strings.Repeat("Connect Lumin ", 600) + "</p>"

// serveBare is the baseline: Echo with one route and no middleware.
func serveBare(addr string) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/", func(c echo.Context) error { return c.HTML(http.StatusOK, barePage) })
	if err := e.Start(addr); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(duration time.Duration, rounds, concurrency int) error {
	tmp, err := os.MkdirTemp("", "connect-lumin-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "connect-lumin")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the app: %w", err)
	}

	appAddr, bareAddr := freeAddr(), freeAddr()
	app := exec.Command(bin)
	app.Env = append(os.Environ(),
		"APP_ADDR="+appAddr, "APP_BASE_URL=http://"+appAddr,
		"DATABASE_URL=sqlite:"+filepath.Join(tmp, "app.db"), "LUMIN_CLIENT_ID=")
	logf, err := os.Create(filepath.Join(tmp, "app.log"))
	if err != nil {
		return err
	}
	app.Stdout, app.Stderr = logf, logf
	self, err := os.Executable()
	if err != nil {
		return err
	}
	baseline := exec.Command(self, "-serve-bare", bareAddr)
	for _, p := range []*exec.Cmd{app, baseline} {
		if err := p.Start(); err != nil {
			return err
		}
		defer func() { _ = p.Process.Kill(); _ = p.Wait() }()
	}
	appURL, bareURL := "http://"+appAddr, "http://"+bareAddr+"/"
	if err := waitUp(appURL + "/healthz"); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := waitUp(bareURL); err != nil {
		return fmt.Errorf("bare server: %w", err)
	}

	jar, err := connect(appURL)
	if err != nil {
		return fmt.Errorf("connecting through the sandbox: %w", err)
	}
	dashboard := appURL + "/dashboard"
	cookies := jar.Cookies(mustURL(dashboard))

	fmt.Printf("loadtest: %d rounds × %s per target, %d workers, GOMAXPROCS shared by both processes\n",
		rounds, duration, concurrency)
	var bareRates, dashRates []float64
	for i := 0; i < rounds; i++ {
		b, err := measure(bareURL, nil, duration, concurrency, "")
		if err != nil {
			return err
		}
		d, err := measure(dashboard, cookies, duration, concurrency, `data-testid="user-name"`)
		if err != nil {
			return err
		}
		bareRates, dashRates = append(bareRates, b), append(dashRates, d)
		fmt.Printf("round %d: bare echo %8.0f req/s   dashboard %8.0f req/s   ratio %.2f\n", i+1, b, d, d/b)
	}
	mb, md := median(bareRates), median(dashRates)
	fmt.Printf("median:  bare echo %8.0f req/s   dashboard %8.0f req/s   ratio %.2f (goal ≥ 0.60)\n", mb, md, md/mb)
	return nil
}

// connect drives the sandbox consent page like a browser and returns the cookie jar of
// a connected session.
func connect(appURL string) (*cookiejar.Jar, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	res, err := c.Get(appURL + "/auth/connect")
	if err != nil {
		return nil, err
	}
	doc, err := goquery.NewDocumentFromReader(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	form := doc.Find(`form[data-testid="sandbox-consent"]`)
	if form.Length() == 0 {
		return nil, errors.New("no sandbox consent form")
	}
	vals := url.Values{"user": {"0"}, "action": {"allow"}}
	form.Find(`input[type="hidden"]`).Each(func(_ int, s *goquery.Selection) {
		vals.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	action := res.Request.URL.ResolveReference(mustURL(form.AttrOr("action", "")))
	res, err = c.PostForm(action.String(), vals)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`data-testid="user-name"`)) {
		return nil, fmt.Errorf("expected the dashboard, got %d at %s", res.StatusCode, res.Request.URL.Path)
	}
	return jar, nil
}

// measure runs concurrency workers against target for d and returns successful req/s.
// A response that is not 200 or lacks want counts as a failure and aborts the run, so a
// broken session can never be reported as throughput.
func measure(target string, cookies []*http.Cookie, d time.Duration, concurrency int, want string) (float64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ok atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
				for _, ck := range cookies {
					req.AddCookie(ck)
				}
				res, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						once.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || (want != "" && !bytes.Contains(body, []byte(want))) {
					once.Do(func() { firstErr = fmt.Errorf("%s answered %d", target, res.StatusCode); cancel() })
					return
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(ok.Load()) / time.Since(start).Seconds(), nil
}

func waitUp(u string) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := c.Get(u); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not come up within 30 s", u)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
