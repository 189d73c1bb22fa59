// Command connect-lumin is the Connect Lumin web app: `go run .` starts it against the
// built-in Lumin sandbox; with LUMIN_CLIENT_ID (and its secret) set it talks to Lumin.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/connectlumin/app/handlers"
	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/lumin/luminfake"
	"github.com/connectlumin/app/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var ce *ConfigError
		if errors.As(err, &ce) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is the whole program; main only adds signals and the exit code. It returns when
// ctx is done (after a graceful shutdown) or on a start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stdout)
	configPath := fs.String("config", "", "path to config.yaml (default: ./config.yaml if present)")
	sandbox := fs.Bool("sandbox", false, "use the built-in Lumin sandbox even if LUMIN_CLIENT_ID is set")
	if err := fs.Parse(args[1:]); err != nil {
		return &ConfigError{Problems: []string{err.Error()}}
	}
	path, optional := *configPath, false
	if path == "" {
		path, optional = "config.yaml", true
	}
	cfg, err := loadConfig(path, optional, getenv)
	if err != nil {
		return err
	}
	cfg.SandboxMode = *sandbox || cfg.Lumin.ClientID == ""
	if err := cfg.validate(); err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stdout)

	var fake *luminfake.Server
	if cfg.SandboxMode {
		if fake, err = startSandbox(&cfg); err != nil {
			return err
		}
		defer fake.Close()
	}

	rp, err := lumin.NewRP(lumin.Config{
		Issuer: cfg.Lumin.Issuer, ClientID: cfg.Lumin.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURL: cfg.RedirectURL(), Scopes: cfg.ScopeList(), Leeway: cfg.Lumin.IDTokenLeeway, Logger: logger,
	})
	if err != nil {
		return &ConfigError{Problems: []string{err.Error()}}
	}
	api, err := lumin.NewAPI(cfg.Lumin.APIURL, nil)
	if err != nil {
		return &ConfigError{Problems: []string{err.Error()}}
	}
	if !cfg.SandboxMode {
		warn := func(s string) { fmt.Fprintln(stdout, s) }
		if err := doctor(ctx, cfg, rp, lumin.NewHTTPClient(10*time.Second), time.Now, warn); err != nil {
			return err
		}
	}

	keys := make([][]byte, len(cfg.SessionKeys))
	for i, k := range cfg.SessionKeys {
		keys[i] = []byte(k)
	}
	sessions, err := store.NewSessions(store.CookieConfig{
		Keys: keys, Secure: cfg.HTTPS(), IdleTimeout: cfg.Session.IdleTimeout, AbsoluteTimeout: cfg.Session.AbsoluteTimeout,
	})
	if err != nil {
		return &ConfigError{Problems: []string{err.Error()}}
	}
	db, err := store.Open(ctx, cfg.Database.URL)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()
	// Stopped and waited for before db.Close (deferred calls run last-in first-out).
	pctx, stopPurge := context.WithCancel(ctx)
	var purging sync.WaitGroup
	purging.Go(func() { purgeLoop(pctx, db, purgeEvery, time.Now, logger) })
	defer func() { stopPurge(); purging.Wait() }()

	srv, err := handlers.New(handlers.Deps{
		BaseURL: cfg.App.BaseURL, Issuer: cfg.Lumin.Issuer, Sandbox: cfg.SandboxMode, SandboxURL: sandboxURL(fake),
		RP: rp, API: api, Sessions: sessions, DB: db,
		TrustedProxies: cfg.trustedProxies(), WebhookSecret: []byte(cfg.WebhookSecret), Logger: logger,
	})
	if err != nil {
		return err
	}
	return serve(ctx, cfg, srv.Handler(), fake, stdout)
}

// serve listens first (so the printed address is real), then serves until ctx is done
// and shuts down gracefully. Timeouts per security.md §10 "Server".
func serve(ctx context.Context, cfg Config, h http.Handler, fake *luminfake.Server, stdout io.Writer) error {
	ln, err := net.Listen("tcp", cfg.App.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.App.Addr, err)
	}
	hs := newHTTPServer(h)
	fmt.Fprintf(stdout, "Connect Lumin listening on http://%s\n", ln.Addr())
	fmt.Fprintf(stdout, "Open %s\n", cfg.App.BaseURL)
	if fake != nil {
		fmt.Fprintf(stdout, "Lumin sandbox at %s — sign in as any of these test users:\n", fake.URL)
		for _, u := range fake.Users() {
			fmt.Fprintf(stdout, "  %s <%s>\n", u.Name, u.Email)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// newHTTPServer is our own http.Server with security.md §10 "Server" limits: slow or
// oversized headers, slow bodies and idle connections cannot pin the process.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // above the outbound budget (security.md §13)
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// purgeEvery is how often expired webhook idempotency keys and denylist rows are
// deleted; both are kept well past their 48 h / session lifetime (security.md §11.4).
const purgeEvery = time.Hour

// purger is the part of *store.DB that purgeLoop uses.
type purger interface {
	PurgeExpired(ctx context.Context, now time.Time) error
}

// purgeLoop calls PurgeExpired at once and then every `every` until ctx is done, so
// the store does not grow without bound. A failure is logged and retried next time.
func purgeLoop(ctx context.Context, db purger, every time.Duration, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := db.PurgeExpired(ctx, now()); err != nil && ctx.Err() == nil {
			log.Warn("purging expired rows failed", "reason", "purge_failed", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// randomSecret is 32 bytes from crypto/rand, base64url (43 characters ≥ 32 bytes).
func randomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func newLogger(lc LogConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(logLevels[strings.ToLower(lc.Level)])}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// trustedProxies parses the validated CIDRs.
func (c Config) trustedProxies() []*net.IPNet {
	var out []*net.IPNet
	for _, s := range c.App.TrustedProxies {
		if _, n, err := net.ParseCIDR(s); err == nil {
			out = append(out, n)
		}
	}
	return out
}
