// Package handlers is the HTTP layer of Connect Lumin and the only package that knows
// Echo. One Server holds the explicit dependencies; routes.go lists every route and
// middleware; every handler returns its error to the one central error handler
// (errors.go), which renders the HTML error page.
package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/static"
	"github.com/connectlumin/app/store"
	"github.com/connectlumin/app/views"
)

// Deps are the Server's explicit dependencies, built by main.
type Deps struct {
	// BaseURL is APP_BASE_URL (scheme://host[:port]); every URL we build starts from it,
	// never from Host or X-Forwarded-* (security.md §10 "Proxy trust", RFC 9700 §4.13).
	BaseURL string
	// Issuer is LUMIN_ISSUER (the identity part of the user key).
	Issuer string
	// Sandbox shows the Sandbox banner; SandboxURL is the sandbox origin, the only one
	// besides luminpdf.com whose links may be shown in sandbox mode (security.md §8.8).
	Sandbox    bool
	SandboxURL string

	RP       *lumin.RP
	API      *lumin.API
	Sessions *store.Sessions
	DB       *store.DB // may be nil in tests that do not need the denylist

	// TrustedProxies are the proxy ranges whose X-Forwarded-For we believe; empty → the
	// TCP peer is the client (security.md §10).
	TrustedProxies []*net.IPNet
	// WebhookSecret is LUMIN_WEBHOOK_SECRET; empty → POST /webhooks/lumin answers 404.
	WebhookSecret []byte

	Logger *slog.Logger     // nil → slog.Default()
	Now    func() time.Time // nil → time.Now
}

// Server is the HTTP application. Build it with New; serve Handler().
type Server struct {
	e *echo.Echo

	baseURL       string
	https         bool // = sessions.Secure(), checked against baseURL in New
	issuer        string
	sandbox       bool
	sandboxURL    string
	rp            *lumin.RP
	api           *lumin.API
	sessions      *store.Sessions
	db            *store.DB
	webhookSecret []byte
	log           *slog.Logger
	now           func() time.Time

	assets     views.Assets
	bodyLimits map[string]int64 // "METHOD /route" → max body bytes; default defaultBodyLimit
	fallback   []byte           // pre-rendered error page used when rendering fails

	// listFreshFor is how long a row the list refresh fetched stays fresh for its user
	// (defaultListFreshFor; lumin-api.md §19). A field so tests and the benchmark can
	// change it before serving; 0 refreshes every non-terminal row on every view.
	listFreshFor time.Duration
	fresh        freshness

	// endSessionOrigin is the origin of Lumin's end_session_endpoint once discovery
	// succeeded; CSP form-action must list it (security.md §10).
	endSessionOrigin atomic.Pointer[string]
}

// New builds the Server and its router. It does no network I/O: discovery is lazy so a
// Lumin outage never stops start-up (security.md §13.3).
func New(d Deps) (*Server, error) {
	if d.RP == nil || d.API == nil || d.Sessions == nil {
		return nil, errors.New("handlers: RP, API and Sessions are required")
	}
	u, err := url.Parse(d.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("handlers: bad base URL %q", d.BaseURL)
	}
	// One notion of "https" for the whole app: the cookie store's. It must agree with the
	// base URL, or the __Host-/Secure cookies, the CSRF cookie and HSTS would disagree
	// with how the browser reaches us (security.md §6.1).
	if d.Sessions.Secure() != (u.Scheme == "https") {
		return nil, fmt.Errorf("handlers: base URL %q is %s but the session store's Secure is %v", d.BaseURL, u.Scheme, d.Sessions.Secure())
	}
	s := &Server{
		baseURL:       strings.TrimSuffix(d.BaseURL, "/"),
		https:         d.Sessions.Secure(),
		issuer:        d.Issuer,
		sandbox:       d.Sandbox,
		sandboxURL:    d.SandboxURL,
		rp:            d.RP,
		api:           d.API,
		sessions:      d.Sessions,
		db:            d.DB,
		webhookSecret: d.WebhookSecret,
		log:           d.Logger,
		now:           d.Now,
		listFreshFor:  defaultListFreshFor,
		assets: views.Assets{
			CSS:  static.Path("css/app.css"),
			JS:   static.Path("js/app.js"),
			Logo: static.Path("img/logo.svg"),
		},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	fb, err := s.renderFallback()
	if err != nil {
		return nil, fmt.Errorf("handlers: pre-rendering the fallback error page: %w", err)
	}
	s.fallback = fb

	e := echo.New()
	e.Debug = false // never internals in responses (security.md §10)
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(d.TrustedProxies)
	s.e = e
	s.routes()
	return s, nil
}

// Handler returns the HTTP handler (the Echo router with all middleware).
func (s *Server) Handler() *echo.Echo { return s.e }

// renderFallback renders, once at start-up, the page served when the error page itself
// cannot be rendered (pkgsite's pattern): static bytes that cannot fail later.
func (s *Server) renderFallback() ([]byte, error) {
	var buf bytes.Buffer
	m := views.ErrorModel{
		Page:    views.Page{Title: "Something went wrong", Sandbox: s.sandbox, Assets: s.assets},
		Status:  500,
		Heading: "Something went wrong",
		Message: "The page could not be shown. Please try again in a moment.",
		Action:  views.Action{Href: "/", Label: "Go to the start page"},
	}
	if err := views.ErrorPage(m).Render(context.Background(), &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ipExtractor trusts X-Forwarded-For only from the configured proxy ranges; by default
// the TCP peer is the client, since Echo's RealIP() would otherwise believe any
// client-sent header (security.md §10, §14).
func ipExtractor(proxies []*net.IPNet) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range proxies {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// discover returns Lumin's metadata (cached by the RP) and remembers the end-session
// origin for the CSP form-action directive.
func (s *Server) discover(ctx context.Context) (*lumin.Metadata, error) {
	md, err := s.rp.Discover(ctx)
	if err != nil {
		return nil, err
	}
	if md.EndSessionEndpoint != "" && s.endSessionOrigin.Load() == nil {
		if u, err := url.Parse(md.EndSessionEndpoint); err == nil && u.Host != "" {
			o := u.Scheme + "://" + u.Host
			s.endSessionOrigin.Store(&o)
		}
	}
	return md, nil
}
