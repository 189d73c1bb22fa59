package lumin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody caps every response body we read from Lumin (security.md §3.3, §8.3, §13.2).
const maxBody = 1 << 20

// NewHTTPClient returns a client with the given overall timeout, dial/TLS/response-header
// timeouts, certificate checks on, and no redirect following (security.md §13.1).
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		// Never "no timeout" (security.md §13.1): fall back to the auth-server budget.
		timeout = 10 * time.Second
	}
	// Headers must arrive well inside the overall budget; a streaming body (the 60 s
	// file client) may take the rest.
	header := min(timeout, 15*time.Second)
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		// Certificate verification stays on: no InsecureSkipVerify anywhere (ASVS 5 16.5.2).
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: header,
		ExpectContinueTimeout: 1 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Timeout:       timeout,
		Transport:     tr,
		CheckRedirect: noRedirects,
	}
}

// noRedirects makes the client return the 3xx response itself. Following it would replay
// the code, verifier and client secret (a 307/308 keeps method and body) or the Bearer
// token to whatever host the Location names (security.md §3.3, §8.1; RFC 9700 §4.11).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ownClient copies hc (or builds a default one) and forces our redirect policy and a
// timeout, so a caller-supplied client cannot re-enable redirects (security.md §8.1, §13.1).
func ownClient(hc *http.Client, timeout time.Duration) *http.Client {
	if hc == nil {
		return NewHTTPClient(timeout)
	}
	c := *hc
	c.CheckRedirect = noRedirects
	if c.Timeout <= 0 {
		c.Timeout = timeout
	}
	return &c
}

// isLoopbackHost reports whether host (no port) is localhost or a loopback IP: the only
// hosts for which plain http is accepted (design.md "Configuration contract").
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkEndpointURL accepts an absolute https URL, or http for a loopback host, without
// user info or fragment (security.md §1.2, §3.3; design.md).
func checkEndpointURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, errors.New("not an absolute URL")
	}
	if u.User != nil || u.Fragment != "" {
		return nil, errors.New("user info or fragment not allowed")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, errors.New("http is allowed only for loopback hosts")
		}
	default:
		return nil, fmt.Errorf("scheme %q not allowed", u.Scheme)
	}
	return u, nil
}

// isJSON reports whether a Content-Type names JSON (application/json or +json).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// errBodyTooLarge is returned by readCapped when the body exceeds the cap.
var errBodyTooLarge = errors.New("response body too large")

// readCapped reads at most limit bytes of r; a longer body is an error, never silently
// truncated JSON (security.md §8.3).
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// drain discards (a capped part of) a body so the connection can be reused, then closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// isTimeout reports whether err is a deadline or network timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// upstreamErr wraps ErrUpstream with a log-safe description and, for timeouts, also
// context.DeadlineExceeded so handlers can answer 504 instead of 502. The underlying
// error text is deliberately dropped: x/oauth2 and net/http errors may embed response
// bodies or URLs (security.md §12.1, §12.3).
func upstreamErr(what string, err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%w: %s: timeout: %w", ErrUpstream, what, context.DeadlineExceeded)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %s: %w", ErrUpstream, what, context.Canceled)
	}
	return fmt.Errorf("%w: %s", ErrUpstream, what)
}

// safeText keeps an upstream string short and printable before it goes into an error
// value that may be shown (escaped) or logged (security.md §12.4).
func safeText(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= max {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// safeCode keeps an error code to a short token of [A-Za-z0-9_.-]; anything else is
// replaced, so a hostile server cannot smuggle text into log lines through it.
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
