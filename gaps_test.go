package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNewHTTPServer: security.md §10 "Server" limits on our own http.Server.
func TestNewHTTPServer(t *testing.T) {
	h := http.NewServeMux()
	hs := newHTTPServer(h)
	if hs.Handler != h {
		t.Error("Handler not set")
	}
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{"ReadHeaderTimeout", hs.ReadHeaderTimeout, 5 * time.Second},
		{"ReadTimeout", hs.ReadTimeout, 30 * time.Second},
		{"WriteTimeout", hs.WriteTimeout, 60 * time.Second},
		{"IdleTimeout", hs.IdleTimeout, 120 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if hs.MaxHeaderBytes != 64<<10 {
		t.Errorf("MaxHeaderBytes: got %d, want %d", hs.MaxHeaderBytes, 64<<10)
	}
}

// TestConfigRedacts: the root Config never prints a secret, whatever the verb or
// logger (security.md §12.1, §12.3).
func TestConfigRedacts(t *testing.T) {
	cfg := defaultConfig()
	cfg.ClientSecret = "client-secret-value-0123456789"
	cfg.WebhookSecret = "webhook-secret-value-0123456789"
	cfg.SessionKeys = []string{"session-key-one-0123456789abcdef0123", "session-key-two-0123456789abcdef0123"}
	secrets := []string{cfg.ClientSecret, cfg.WebhookSecret, cfg.SessionKeys[0], cfg.SessionKeys[1]}
	for _, v := range []any{cfg, &cfg, struct{ C Config }{cfg}} {
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "cfg", v)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cfg", v)
		out := fmt.Sprintf("%v %+v %#v %s %q", v, v, v, v, v) + buf.String()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%T output contains a secret:\n%s", v, out)
			}
		}
		if !strings.Contains(out, cfg.App.BaseURL) {
			t.Errorf("%T output lacks the non-secret base URL %q:\n%s", v, cfg.App.BaseURL, out)
		}
	}
}

// fakePurger records PurgeExpired calls.
type fakePurger struct {
	mu    sync.Mutex
	calls int
	err   error
	first chan struct{}
}

func (p *fakePurger) PurgeExpired(context.Context, time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls == 1 {
		close(p.first)
	}
	return p.err
}

// TestPurgeLoop: the store is purged at start (then hourly) and the loop ends with ctx;
// a failure is a WARN, not a crash.
func TestPurgeLoop(t *testing.T) {
	p := &fakePurger{first: make(chan struct{}), err: errors.New("db down")}
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		purgeLoop(ctx, p, time.Hour, time.Now, log)
		close(done)
	}()
	select {
	case <-p.first: // purged at start, without waiting for the first tick
	case <-time.After(10 * time.Second): // a guard against hanging, not a timing check
		cancel()
		t.Fatal("PurgeExpired was not called at start")
	}
	cancel()
	<-done
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if calls != 1 {
		t.Errorf("PurgeExpired calls = %d, want 1", calls)
	}
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "reason=purge_failed") {
		t.Errorf("no WARN purge_failed logged:\n%s", buf.String())
	}
}
