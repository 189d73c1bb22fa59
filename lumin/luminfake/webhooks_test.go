package luminfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const hookSecret = "whsec_test_0123456789abcdef"

type receivedHook struct {
	body        []byte
	sig, ctype  string
	eventType   string
	requestID   string
	signatureOK bool
}

// hookReceiver is the app's webhook endpoint: it answers the queued statuses in turn,
// then 200, and keeps what it received.
type hookReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []receivedHook
}

func newHookReceiver(t *testing.T, statuses ...int) *hookReceiver {
	t.Helper()
	h := &hookReceiver{statuses: statuses}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		var head struct {
			Event struct {
				EventType string `json:"event_type"`
			} `json:"event"`
			SignatureRequest struct {
				ID string `json:"signature_request_id"`
			} `json:"signature_request"`
		}
		_ = json.Unmarshal(body, &head)
		h.mu.Lock()
		h.got = append(h.got, receivedHook{body, r.Header.Get("X-Signature"), r.Header.Get("Content-Type"),
			head.Event.EventType, head.SignatureRequest.ID, hmac.Equal([]byte(want), []byte(r.Header.Get("X-Signature")))})
		status := http.StatusOK
		if len(h.statuses) > 0 {
			status, h.statuses = h.statuses[0], h.statuses[1:]
		}
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) received() []receivedHook {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// eventsFor returns the sorted event types received for a request.
func (h *hookReceiver) eventsFor(id string) []string {
	var out []string
	for _, g := range h.received() {
		if g.requestID == id {
			out = append(out, g.eventType)
		}
	}
	sort.Strings(out)
	return out
}

func newHookServer(t *testing.T, h *hookReceiver, mutate ...func(*Options)) *Server {
	t.Helper()
	opts := Options{WebhookURL: h.srv.URL + "/webhooks/lumin", WebhookSecret: hookSecret,
		WebhookRetries: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}}
	for _, m := range mutate {
		m(&opts)
	}
	return newTestServer(t, opts)
}

func sorted(s ...string) []string { sort.Strings(s); return s }

// waitEvents waits until the receiver got exactly want (any order: deliveries run in
// parallel, and Lumin promises no order either).
func waitEvents(t *testing.T, h *hookReceiver, id string, want []string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("events %v", want), func() bool { return len(h.eventsFor(id)) >= len(want) })
	if got := h.eventsFor(id); !slices.Equal(got, want) {
		t.Fatalf("events: got %v, want %v", got, want)
	}
}

func TestWebhookPayloadAndSignature(t *testing.T) {
	h := newHookReceiver(t)
	s := newHookServer(t, h)
	tok := mintToken(t, s.Fake, ada, "openid", "sign:requests") // Ada authorized the app
	id := mustSend(t, s, tok, validSend("Webhook contract"))
	waitEvents(t, h, id, []string{"signature_request_created"})
	if err := s.Sign(id, ada); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, h, id, sorted("signature_request_created", "signature_request_viewed", "signature_request_signed",
		"signature_request_approved", "signature_request_downloadable"))

	for _, g := range h.received() {
		if !g.signatureOK || g.sig != strings.ToLower(g.sig) || len(g.sig) != 64 {
			t.Errorf("%s: X-Signature %q is not the lower-case hex HMAC-SHA256 of the body", g.eventType, g.sig)
		}
		if g.ctype != "application/json" {
			t.Errorf("%s: Content-Type: got %q, want application/json", g.eventType, g.ctype)
		}
		var p map[string]any
		if err := json.Unmarshal(g.body, &p); err != nil {
			t.Fatal(err)
		}
		// Field for field (lumin-api.md §21): signers carry `email`, times are numbers.
		checkShape(t, g.eventType, p, map[string]string{"event": "object", "signature_request": "object", "details_url": "string"})
		ev := p["event"].(map[string]any)
		checkShape(t, g.eventType+".event", ev, map[string]string{"event_time": "number", "event_type": "string", "event_metadata": "object"})
		checkShape(t, g.eventType+".event_metadata", ev["event_metadata"].(map[string]any), map[string]string{"workspace_id": "string"})
		sr := p["signature_request"].(map[string]any)
		checkShape(t, g.eventType+".signature_request", sr, map[string]string{
			"signature_request_id": "string", "title": "string", "created_at": "number", "updated_at": "number",
			"expires_at": "number", "status": "string", "signers": "array"})
		sg := sr["signers"].([]any)[0].(map[string]any)
		checkShape(t, g.eventType+".signers[0]", sg, map[string]string{"name": "string", "email": "string", "status": "string", "is_approved": "bool"})
		if p["details_url"] != s.URL+"/sandbox/requests/"+id || sg["email"] != ada {
			t.Errorf("%s: details_url %v, email %v", g.eventType, p["details_url"], sg["email"])
		}
		if ms := ev["event_time"].(float64); ms < 1e12 {
			t.Errorf("%s: event_time %v is not epoch ms", g.eventType, ms)
		}
		// Each body is a snapshot of the moment of the event.
		want := map[string]string{
			"signature_request_created": "NEED_TO_SIGN", "signature_request_viewed": "NEED_TO_SIGN",
			"signature_request_signed": "APPROVED", "signature_request_approved": "APPROVED", "signature_request_downloadable": "APPROVED",
		}[g.eventType]
		if sr["status"] != want {
			t.Errorf("%s: status %v, want %s", g.eventType, sr["status"], want)
		}
	}
}

func checkShape(t *testing.T, what string, m map[string]any, want map[string]string) {
	t.Helper()
	if len(m) != len(want) {
		t.Errorf("%s: got keys %v, want %v", what, m, want)
	}
	for k, typ := range want {
		if got := jsonType(m[k]); got != typ {
			t.Errorf("%s.%s: got %s, want %s", what, k, got, typ)
		}
	}
}

func TestWebhookEvents(t *testing.T) {
	h := newHookReceiver(t)
	s := newHookServer(t, h)
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	patch := func(id string) {
		resp, m := call(t, "PATCH", s.APIURL()+"/signature_request/"+id, tok,
			strings.NewReader(fmt.Sprintf(`{"expires_at":%d}`, future(30*24*time.Hour))), "Content-Type", "application/json")
		if resp.StatusCode != 200 {
			t.Fatalf("PATCH: %d %v", resp.StatusCode, m)
		}
	}
	tests := []struct {
		name   string
		seeded string
		act    func(id string)
		want   []string
	}{
		{"cancel", "Mutual NDA — Analytical Engines Ltd", func(id string) {
			if resp, m := call(t, "PUT", s.APIURL()+"/signature_request/cancel/"+id, tok, nil); resp.StatusCode != 200 {
				t.Fatalf("cancel: %d %v", resp.StatusCode, m)
			}
		}, []string{"signature_request_canceled"}},
		{"expiry", "Consulting agreement Q3", patch, []string{"signature_request_due_date_updated"}},
		{"decline", "Research grant application", func(id string) {
			if err := s.Decline(id, "mary.somerville@example.com", ""); err != nil {
				t.Fatal(err)
			}
		}, sorted("signature_request_viewed", "signature_request_declined")},
		{"sign, others remain", "Office lease renewal — 12 St James's Square", func(id string) {
			if err := s.Sign(id, "augustus.demorgan@example.org"); err != nil {
				t.Fatal(err)
			}
		}, sorted("signature_request_viewed", "signature_request_signed")},
		{"remind sends nothing, view once", "Board resolution 2024-07", func(id string) {
			u, _ := s.SignerURL(id, "augustus.demorgan@example.org")
			page(t, browser(), u)
			page(t, browser(), u)
			call(t, "POST", s.APIURL()+"/signature_request/remind/"+id, tok, strings.NewReader(`{"emails":["augustus.demorgan@example.org"]}`), "Content-Type", "application/json")
			_ = s.EmitWebhook("signature_request_cancel_failed", id) // marker queued after anything the above sent
		}, sorted("signature_request_viewed", "signature_request_cancel_failed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := seededID(t, s.Fake, tt.seeded)
			tt.act(id)
			waitEvents(t, h, id, tt.want)
		})
	}
	t.Run("invalid", func(t *testing.T) {
		id := mustSend(t, s, tok, validSend("Broken [fail]"))
		waitEvents(t, h, id, []string{"signature_request_invalid"})
	})
}

func TestWebhookRetries(t *testing.T) {
	h := newHookReceiver(t, 500, 503, 302)
	s := newHookServer(t, h)
	id := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	if err := s.EmitWebhook("signature_request_signed", id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "4 attempts", func() bool { return len(s.Deliveries()) == 4 })
	var got []string
	for _, d := range s.Deliveries() {
		got = append(got, fmt.Sprintf("%d:%d:%v", d.Attempt, d.Status, d.GaveUp))
	}
	if want := "[1:500:false 2:503:false 3:302:false 4:200:false]"; fmt.Sprint(got) != want {
		t.Errorf("deliveries: got %v, want %s", got, want)
	}
	rec := h.received()
	for i := range rec {
		if string(rec[i].body) != string(rec[0].body) || !rec[i].signatureOK {
			t.Errorf("retry %d: body or signature differs from the first attempt", i)
		}
	}

	t.Run("gives up after the schedule", func(t *testing.T) {
		h := newHookReceiver(t, 500, 500, 500, 500, 500)
		s := newHookServer(t, h, func(o *Options) { o.WebhookRetries = []time.Duration{time.Millisecond, time.Millisecond} })
		if err := s.EmitWebhook("signature_request_created", seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "give-up", func() bool {
			d := s.Deliveries()
			return len(d) > 0 && d[len(d)-1].GaveUp
		})
		if d := s.Deliveries(); len(d) != 3 || d[2].Attempt != 3 {
			t.Errorf("deliveries: got %+v, want 3 attempts", d)
		}
	})
}

func TestWebhookBadSignatureFault(t *testing.T) {
	h := newHookReceiver(t)
	s := newHookServer(t, h)
	s.SetFaults(Faults{BadWebhookSignature: true})
	id := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	if err := s.EmitWebhook("signature_request_viewed", id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return len(h.received()) == 1 })
	if g := h.received()[0]; g.signatureOK || len(g.sig) != 64 {
		t.Errorf("got signature %q valid=%v, want a well-formed but wrong signature", g.sig, g.signatureOK)
	}
}

func TestWebhooksOnlyForAuthorizedUsers(t *testing.T) {
	h := newHookReceiver(t)
	s := newHookServer(t, h)
	id := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	s.mu.Lock()
	sr := s.requests[id]
	s.mu.Unlock()
	events := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.eventLocked(sr, "signature_request_signed"))
	}
	if got := events(); got != 0 {
		t.Errorf("no grant: got %d events, want 0", got)
	}
	mintToken(t, s.Fake, ada, "openid", "profile.read")
	if got := events(); got != 0 {
		t.Errorf("grant without a signature-request scope: got %d events, want 0", got)
	}
	mintToken(t, s.Fake, ada, "sign:requests.read")
	if got := events(); got != 1 {
		t.Errorf("grant with sign:requests.read: got %d events, want 1", got)
	}
	s.RevokeUserGrants(ada)
	if got := events(); got != 0 {
		t.Errorf("revoked grant: got %d events, want 0", got)
	}
}

func TestEmitWebhookErrors(t *testing.T) {
	s := newTestServer(t, Options{})
	id := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	for _, tt := range []struct{ name, event, id string }{
		{"unknown event", "document.signed", id},
		{"unknown request", "signature_request_signed", "ffffffffffffffffffffffff"},
		{"no webhook URL", "signature_request_signed", id},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.EmitWebhook(tt.event, tt.id); err == nil {
				t.Error("got nil, want an error")
			}
		})
	}
}

func TestCloseCancelsDeliveryInFlight(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer recv.Close()
	defer close(release)
	s, err := NewServer(Options{WebhookURL: recv.URL, WebhookSecret: hookSecret})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EmitWebhook("signature_request_created", seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")); err != nil {
		t.Fatal(err)
	}
	<-arrived
	_ = s.Close() // must return although the receiver never answers
	if d := s.Deliveries(); len(d) != 0 {
		t.Errorf("deliveries: got %+v, want none recorded for a cancelled attempt", d)
	}
	if err := s.EmitWebhook("signature_request_created", seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")); err != nil {
		t.Errorf("EmitWebhook after Close: got %v, want a silent drop", err)
	}
}

// TestEndToEndWithRealTokens drives the API and webhooks with tokens from the real
// authorization-code flow (x/oauth2 + go-oidc, see oauth_test.go).
func TestEndToEndWithRealTokens(t *testing.T) {
	h := newHookReceiver(t)
	e := newASEnv(t, func(o *Options) {
		o.WebhookURL, o.WebhookSecret = h.srv.URL, hookSecret
		o.ProcessingDelay = time.Millisecond
	})
	s := e.srv
	tok := e.connect(t, newFlow()).AccessToken

	resp, m := call(t, "GET", s.APIURL()+"/user/info", tok, nil)
	if resp.StatusCode != 200 || m["user"].(map[string]any)["email"] != ada {
		t.Fatalf("user/info: got %d %v", resp.StatusCode, m)
	}
	body := validSend("End to end")
	body["expires_at"] = e.clock.Now().Add(time.Hour).UnixMilli()
	id := mustSend(t, s, tok, body)
	waitEvents(t, h, id, []string{"signature_request_created"})
	if err := s.Sign(id, ada); err != nil {
		t.Fatal(err)
	}
	if st := getRequest(t, s, tok, id)["status"]; st != "APPROVED" {
		t.Errorf("status: got %v, want APPROVED", st)
	}
	resp, _ = call(t, "GET", s.APIURL()+"/signature_request/"+id+"/file?type=coc", tok, nil, "Accept", "application/pdf")
	if resp.StatusCode != 200 {
		t.Errorf("coc: got %d, want 200", resp.StatusCode)
	}
	s.RevokeUserGrants(ada)
	resp, m = call(t, "GET", s.APIURL()+"/signature_request/"+id, tok, nil)
	assertError(t, resp, m, 401, "unauthorized")
}
