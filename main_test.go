package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer safe for the server goroutines and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeLoopbackAddr picks a free loopback port (listen, note, close) so APP_ADDR and
// APP_BASE_URL can agree before run starts.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRunSandboxServesAndShutsDown(t *testing.T) {
	addr := freeLoopbackAddr(t)
	env := map[string]string{
		"APP_ADDR":     addr,
		"APP_BASE_URL": "http://" + addr,
		"DATABASE_URL": "sqlite:" + t.TempDir() + "/app.db",
		"LOG_LEVEL":    "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"connect-lumin", "-config", "config.yaml"}, envFunc(env), out) }()

	hc := &http.Client{Timeout: 2 * time.Second}
	var listening string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := regexp.MustCompile(`Connect Lumin listening on http://(\S+)`).FindStringSubmatch(out.String()); m != nil {
			listening = m[1]
			req, _ := http.NewRequest(http.MethodGet, "http://"+listening+"/healthz", nil)
			if resp, err := hc.Do(req); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && string(body) == "ok" {
					break
				}
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if listening != addr {
		t.Fatalf("listening on %q, want %q; output:\n%s", listening, addr, out.String())
	}
	for _, want := range []string{"Lumin sandbox at http://127.0.0.1:", "ada@sandbox.lumin.test"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The landing page shows the sandbox banner.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `data-testid="sandbox-banner"`) {
		t.Error("no sandbox banner on the landing page")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunBadConfig(t *testing.T) {
	env := map[string]string{
		"LUMIN_CLIENT_ID": "my-app",
		"APP_BASE_URL":    "http://app.example.com/",
		"LUMIN_ISSUER":    "http://auth.example.com",
		"LUMIN_SCOPES":    "profile.read",
		"SESSION_KEYS":    "short",
		"DATABASE_URL":    "mysql://x",
	}
	err := run(context.Background(), []string{"connect-lumin", "-config", "config.yaml"}, envFunc(env), io.Discard)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
	for _, want := range []string{"APP_BASE_URL", "LUMIN_ISSUER", "LUMIN_CLIENT_SECRET", "openid", "SESSION_KEYS entry 1", "DATABASE_URL"} {
		found := false
		for _, p := range ce.Problems {
			if strings.Contains(p, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem mentions %q; got:\n%s", want, ce.Error())
		}
	}
}

func TestRunBadFlag(t *testing.T) {
	err := run(context.Background(), []string{"connect-lumin", "-nope"}, envFunc(nil), io.Discard)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
}
