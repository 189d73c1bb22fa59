package main

// Durability of webhook writes (issue 5 "Done when"): a process receiving a burst of
// signed webhooks is killed with SIGKILL mid-burst; after a restart on the same SQLite
// database, every event that got a 200 is in the store. The app runs as a child process
// (this test binary re-executed in helper mode, so no separate `go build` is needed).

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connectlumin/app/store"
)

const durabilityChildEnv = "CONNECT_LUMIN_DURABILITY_CHILD"

// TestDurabilityChild is not a test: it is the app process of TestWebhookDurability.
func TestDurabilityChild(t *testing.T) {
	if os.Getenv(durabilityChildEnv) != "1" {
		t.Skip("helper process for TestWebhookDurability")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, []string{"connect-lumin"}, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// appProcess is one child app process.
type appProcess struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

// startApp starts the app on addr with dbURL and secret and waits for /healthz.
func startApp(t *testing.T, addr, dbURL, secret string) *appProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestDurabilityChild$", "-test.count=1")
	cmd.Dir = t.TempDir() // no config.yaml: defaults + environment only
	cmd.Env = append(os.Environ(),
		durabilityChildEnv+"=1",
		"APP_ADDR="+addr,
		"APP_BASE_URL=http://"+addr,
		"DATABASE_URL="+dbURL,
		"LUMIN_WEBHOOK_SECRET="+secret,
		"LUMIN_CLIENT_ID=",
	)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &appProcess{cmd: cmd, out: out}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("app did not become healthy: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// durEvent is one fired webhook.
type durEvent struct {
	id string
	at time.Time
}

func durBody(ev durEvent) []byte {
	b, _ := json.Marshal(map[string]any{
		"event": map[string]any{"event_time": ev.at.UnixMilli(), "event_type": "signature_request_signed"},
		"signature_request": map[string]any{"signature_request_id": ev.id, "title": "Durability",
			"status": "WAITING_FOR_OTHERS", "updated_at": ev.at.UnixMilli(),
			"signers": []map[string]any{{"email": "durability@example.com", "status": "NEED_TO_SIGN"}}},
	})
	return b
}

func TestWebhookDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the app as a child process")
	}
	const secret = "durability-secret-0123456789abcdef"
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "app.db")
	addr := freeLoopbackAddr(t)
	p := startApp(t, addr, dbURL, secret)

	const total, workers, killAfter = 3000, 8, 300
	var (
		mu       sync.Mutex
		accepted []durEvent
		oks      atomic.Int64
		killOnce sync.Once
	)
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	jobs := make(chan durEvent)
	hc := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ev := range jobs {
				body := durBody(ev)
				m := hmac.New(sha256.New, []byte(secret))
				m.Write(body)
				req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/lumin", bytes.NewReader(body))
				req.Header.Set("X-Signature", hex.EncodeToString(m.Sum(nil)))
				resp, err := hc.Do(req)
				if err != nil {
					continue // killed mid-request: no 200, so no promise was made
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					accepted = append(accepted, ev)
					mu.Unlock()
					if oks.Add(1) == killAfter {
						killOnce.Do(func() { _ = p.cmd.Process.Signal(syscall.SIGKILL) })
					}
				}
			}
		})
	}
	for i := range total {
		jobs <- durEvent{id: fmt.Sprintf("dur%06d", i), at: base.Add(time.Duration(i) * time.Millisecond)}
	}
	close(jobs)
	wg.Wait()
	_ = p.cmd.Wait()
	if len(accepted) < killAfter {
		t.Fatalf("only %d events accepted before the kill; output: %s", len(accepted), p.out.String())
	}
	if len(accepted) == total {
		t.Fatalf("all %d events accepted: the process was not killed mid-burst", total)
	}
	t.Logf("%d of %d events got a 200 before SIGKILL", len(accepted), total)

	// Restart on the same database: it must open (WAL recovery) and keep serving.
	p2 := startApp(t, addr, dbURL, secret)
	_ = p2.cmd.Process.Signal(syscall.SIGTERM)
	_ = p2.cmd.Wait()

	db, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	// RecordWebhook reports a duplicate only when the event's idempotency key was
	// committed — in the same transaction as its status and candidate writes — so a
	// duplicate for every acknowledged event proves none was lost.
	missing := 0
	for _, ev := range accepted {
		dup, err := db.RecordWebhook(ctx, store.WebhookEvent{EventType: "signature_request_signed", RequestID: ev.id,
			EventTime: ev.at, Status: "WAITING_FOR_OTHERS", Title: "Durability", UpdatedAt: ev.at,
			SignerEmails: []string{"durability@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if !dup {
			missing++
			if missing <= 5 {
				t.Errorf("event for %s got a 200 but its idempotency key is not stored", ev.id)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged events lost", missing, len(accepted))
	}
}
