package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connectlumin/app/store"
)

const testWebhookSecret = "whsec-test-0123456789abcdef0123456789"

// webhookBody builds a Lumin app-webhook payload (lumin-api.md §21).
func webhookBody(t testing.TB, eventType, id, status string, eventTime, updated time.Time, signers ...string) []byte {
	t.Helper()
	var ss []map[string]any
	for _, e := range signers {
		ss = append(ss, map[string]any{"email": e, "name": "S", "status": "NEED_TO_SIGN"})
	}
	b, err := json.Marshal(map[string]any{
		"event": map[string]any{"event_time": eventTime.UnixMilli(), "event_type": eventType,
			"event_metadata": map[string]any{"workspace_id": "ws1"}},
		"signature_request": map[string]any{"signature_request_id": id, "title": "Webhook title",
			"status": status, "updated_at": updated.UnixMilli(), "signers": ss},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWebhookDisabledWithoutSecret(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	body := webhookBody(t, "signature_request_signed", "abc", "WAITING_FOR_OTHERS", time.Now(), time.Now())
	if got := a.postWebhook(t, body, signWebhook([]byte("anything"), body)); got != http.StatusNotFound {
		t.Errorf("got %d, want 404", got)
	}
}

func TestWebhookSignature(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret})
	body := webhookBody(t, "signature_request_signed", "sigcheck1", "WAITING_FOR_OTHERS", time.Now(), time.Now())
	good := signWebhook(a.secret, body)
	cases := []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"missing", body, "", http.StatusUnauthorized},
		{"wrong key", body, signWebhook([]byte("other-secret"), body), http.StatusUnauthorized},
		{"not hex", body, "zz" + good[2:], http.StatusUnauthorized},
		{"truncated", body, good[:32], http.StatusUnauthorized},
		{"body changed", append([]byte(" "), body...), good, http.StatusUnauthorized},
		{"valid upper-case hex", body, strings.ToUpper(good), http.StatusOK},
		{"valid", body, good, http.StatusOK},
		{"bad JSON under a valid signature", []byte("{not json"), signWebhook(a.secret, []byte("{not json")), http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.postWebhook(t, tc.body, tc.sig); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestWebhookBodyLimit(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret})
	body := []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	if got := a.postWebhook(t, body, signWebhook(a.secret, body)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d, want 413", got)
	}
}

// TestWebhookOrderingAndDuplicates drives the receiver for a request Ada tracks: the
// status moves forward only, duplicates and stale events change nothing.
func TestWebhookOrderingAndDuplicates(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret})
	ada := a.mustConnect(t, 0)
	id := seededID(3)
	ada.mustTrack(id)
	ctx := context.Background()
	base, _ := a.db.Get(ctx, ada.key, id)
	t0 := time.Now().Add(-time.Minute)
	send := func(ev, status string, at, updated time.Time) int {
		b := webhookBody(t, ev, id, status, at, updated)
		return a.postWebhook(t, b, signWebhook(a.secret, b))
	}
	status := func() string {
		tr, err := a.db.Get(ctx, ada.key, id)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status
	}
	if base.UpdatedAt.After(t0) {
		t.Fatalf("seeded updated_at %v is after the test events", base.UpdatedAt)
	}

	steps := []struct {
		name       string
		ev, status string
		at         time.Time
		updated    time.Time // zero → at
		wantHTTP   int
		wantStatus string
	}{
		{"approved arrives first", "signature_request_approved", "APPROVED", t0.Add(20 * time.Second), time.Time{}, 200, "APPROVED"},
		{"duplicate", "signature_request_approved", "APPROVED", t0.Add(20 * time.Second), time.Time{}, 200, "APPROVED"},
		{"older signed arrives late", "signature_request_signed", "WAITING_FOR_OTHERS", t0.Add(10 * time.Second), time.Time{}, 200, "APPROVED"},
		// The next three would move the status forward if they were applied.
		{"unknown event type", "signature_request_exploded", "CANCELLED", t0.Add(30 * time.Second), time.Time{}, 200, "APPROVED"},
		{"too old", "signature_request_canceled", "CANCELLED", time.Now().Add(-49 * time.Hour), time.Now(), 200, "APPROVED"},
		{"from the future", "signature_request_canceled", "CANCELLED", time.Now().Add(10 * time.Minute), time.Time{}, 200, "APPROVED"},
	}
	for _, st := range steps {
		upd := st.updated
		if upd.IsZero() {
			upd = st.at
		}
		if got := send(st.ev, st.status, st.at, upd); got != st.wantHTTP {
			t.Errorf("%s: HTTP got %d, want %d", st.name, got, st.wantHTTP)
		}
		if got := status(); got != st.wantStatus {
			t.Errorf("%s: status got %q, want %q", st.name, got, st.wantStatus)
		}
	}
	// Duplicates are recognised by the store, not just harmless.
	dup, err := a.db.RecordWebhook(ctx, store.WebhookEvent{EventType: "signature_request_approved", RequestID: id,
		EventTime: t0.Add(20 * time.Second).Truncate(time.Millisecond), Status: "APPROVED", UpdatedAt: t0.Add(20 * time.Second)})
	if err != nil || !dup {
		t.Errorf("replayed event: got duplicate=%v err=%v, want true", dup, err)
	}
}

// TestWebhookLearnedVisibleOnlyToReaders: an id learned from a webhook shows up for the
// user whose token can GET it (here the creator, Ada) and never for another user, even
// one named as a signer in the payload.
func TestWebhookLearnedVisibleOnlyToReaders(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret})
	ada := a.mustConnect(t, 0)
	grace := a.mustConnect(t, 1)
	id := seededID(6)
	now := time.Now()
	b := webhookBody(t, "signature_request_signed", id, "WAITING_FOR_OTHERS", now, now, "grace@sandbox.lumin.test")
	if got := a.postWebhook(t, b, signWebhook(a.secret, b)); got != http.StatusOK {
		t.Fatalf("webhook: got %d", got)
	}

	g := grace.get("/requests")
	if n := g.testid("request-row").Length(); n != 0 {
		t.Errorf("grace sees %d rows, want 0", n)
	}
	if d := grace.get("/requests/" + id); d.status != http.StatusNotFound {
		t.Errorf("grace detail: got %d, want 404", d.status)
	}
	// Checked once for Grace, never again.
	before := a.apiCalls(http.MethodGet, "/v1/signature_request/"+id)
	grace.get("/requests")
	if got := a.apiCalls(http.MethodGet, "/v1/signature_request/"+id) - before; got != 0 {
		t.Errorf("candidate retried for grace: %d GETs", got)
	}

	l := ada.get("/requests")
	rows := l.testid("request-row")
	if rows.Length() != 1 || rows.AttrOr("data-request-id", "") != id {
		t.Fatalf("ada rows: got %d (%q), want the learned %s", rows.Length(), rows.AttrOr("data-request-id", ""), id)
	}
	tr, err := a.db.Get(context.Background(), ada.key, id)
	if err != nil || tr.Source != "webhook" {
		t.Errorf("ada's row: got %+v %v, want source webhook", tr.Source, err)
	}
}

// TestWebhookFromSandbox: the sandbox's own sender, signing as Lumin does, reaches the
// receiver and updates a tracked request (the new-user path: sign, then see APPROVED).
func TestWebhookFromSandbox(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret})
	ada := a.mustConnect(t, 0)
	id := seededID(1)
	ada.mustTrack(id)
	if err := a.fake.Sign(id, "ada@sandbox.lumin.test"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr, _ := a.db.Get(context.Background(), ada.key, id)
		if tr.Status == "APPROVED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after sandbox webhooks: got %q, want APPROVED (deliveries: %d)", tr.Status, len(a.fake.Deliveries()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range a.fake.Deliveries() {
		if d.Status != http.StatusOK {
			t.Errorf("delivery %s: got %d, want 200", d.EventType, d.Status)
		}
	}
}

func TestParseWebhookLenient(t *testing.T) {
	cases := []struct {
		name      string
		body      string
		known     bool
		wantErr   bool
		wantEmail []string
		wantState string
	}{
		{"string time, email_address", `{"event":{"event_time":"1768751225657","event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"a1","status":"WAITING_FOR_OTHERS","signers":[{"email_address":"A@x.com"}]}}`, true, false, []string{"a@x.com"}, "WAITING_FOR_OTHERS"},
		{"status implied by event", `{"event":{"event_time":1768751225657,"event_type":"signature_request_declined"},"signature_request":{"signature_request_id":"a1"}}`, true, false, nil, "REJECTED"},
		{"unknown status ignored", `{"event":{"event_time":1768751225657,"event_type":"signature_request_viewed"},"signature_request":{"signature_request_id":"a1","status":"WEIRD"}}`, true, false, nil, ""},
		{"unknown type", `{"event":{"event_time":1768751225657,"event_type":"document.created"}}`, false, false, nil, ""},
		{"bad id", `{"event":{"event_time":1768751225657,"event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"../x"}}`, true, true, nil, ""},
		{"no time", `{"event":{"event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"a1"}}`, true, true, nil, ""},
		{"not JSON", `<xml/>`, false, true, nil, ""},
		// lumin-api.md §20: a field of an odd type is unknown, not a failed delivery.
		{"numeric title", `{"event":{"event_time":1768751225657,"event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"a1","title":42,"status":"WAITING_FOR_OTHERS"}}`, true, false, nil, "WAITING_FOR_OTHERS"},
		{"numeric status falls back to the event's", `{"event":{"event_time":1768751225657,"event_type":"signature_request_canceled"},"signature_request":{"signature_request_id":"a1","status":3}}`, true, false, nil, "CANCELLED"},
		{"signers not a list", `{"event":{"event_time":1768751225657,"event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"a1","status":"WAITING_FOR_OTHERS","signers":"a@x.com"}}`, true, false, nil, "WAITING_FOR_OTHERS"},
		// An event_time that is not a sane epoch is no time at all.
		{"NaN time", `{"event":{"event_time":"NaN","event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"a1"}}`, true, true, nil, ""},
		{"Inf time", `{"event":{"event_time":"+Inf","event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"a1"}}`, true, true, nil, ""},
		{"huge time", `{"event":{"event_time":1e300,"event_type":"signature_request_signed"},"signature_request":{"signature_request_id":"a1"}}`, true, true, nil, ""},
		{"signature_request null", `{"event":{"event_time":1768751225657,"event_type":"signature_request_signed"},"signature_request":null}`, true, true, nil, ""},
		{"signature_request not an object", `{"event":{"event_time":1768751225657,"event_type":"signature_request_signed"},"signature_request":"a1"}`, true, true, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, known, err := parseWebhook([]byte(tc.body))
			if known != tc.known || (err != nil) != tc.wantErr {
				t.Fatalf("got known=%v err=%v, want known=%v err=%v", known, err, tc.known, tc.wantErr)
			}
			if err != nil || !known {
				return
			}
			if ev.Status != tc.wantState {
				t.Errorf("status: got %q, want %q", ev.Status, tc.wantState)
			}
			if strings.Join(ev.SignerEmails, ",") != strings.Join(tc.wantEmail, ",") {
				t.Errorf("emails: got %v, want %v", ev.SignerEmails, tc.wantEmail)
			}
			if ev.EventTime.UnixMilli() != 1768751225657 {
				t.Errorf("event time: got %v", ev.EventTime)
			}
		})
	}
}

// TestWebhookNumericTitleAccepted: a signed delivery whose title is a number is recorded
// (200) with the status applied, not refused with 400: lumin-api.md §20 leniency applies
// to webhooks as to REST answers, and a 400 would make Lumin retry a payload that can
// never succeed.
func TestWebhookNumericTitleAccepted(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret})
	ada := a.mustConnect(t, 0)
	id := seededID(3)
	ada.mustTrack(id)
	at := time.Now().Add(-time.Second)
	body, err := json.Marshal(map[string]any{
		"event": map[string]any{"event_time": at.UnixMilli(), "event_type": "signature_request_canceled"},
		"signature_request": map[string]any{"signature_request_id": id, "title": 12345, "status": "CANCELLED",
			"updated_at": at.UnixMilli()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.postWebhook(t, body, signWebhook(a.secret, body)); got != http.StatusOK {
		t.Fatalf("got %d, want 200", got)
	}
	tr, err := a.db.Get(context.Background(), ada.key, id)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != "CANCELLED" {
		t.Errorf("status: got %q, want CANCELLED", tr.Status)
	}
}
