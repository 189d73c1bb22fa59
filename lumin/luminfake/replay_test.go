package luminfake

import (
	"encoding/json"
	"slices"
	"testing"

	"golang.org/x/oauth2"
)

// TestReplaySeedOnConsent checks the sandbox demo aid: with the option on, Ada's first
// consent makes the webhook sender describe each of her seeded requests once, signed
// and in Lumin's payload shape; later consents, a user without requests and the option
// off send nothing.
func TestReplaySeedOnConsent(t *testing.T) {
	// The expected event for each status, written out independently of the code.
	wantEvent := map[string]string{
		"NEED_TO_SIGN":       "signature_request_created",
		"WAITING_FOR_OTHERS": "signature_request_created",
		"APPROVED":           "signature_request_approved",
		"REJECTED":           "signature_request_declined",
		"CANCELLED":          "signature_request_canceled",
		"FAILED":             "signature_request_invalid",
	}
	tests := []struct {
		name string
		on   bool
		want int // events for Ada's seed: every seeded request but the one still processing
	}{
		{"on", true, len(seedRequests) - 1},
		{"off", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHookReceiver(t)
			e := newASEnv(t, func(o *Options) {
				o.WebhookURL, o.WebhookSecret, o.ReplaySeedOnConsent = h.srv.URL+"/webhooks/lumin", hookSecret, tt.on
			})
			connectAs := func(user int) {
				t.Helper()
				fl := newFlow()
				cb := e.authorize(t, fl, user)
				if _, err := e.conf.Exchange(e.ctx, cb.Get("code"), oauth2.VerifierOption(fl.verifier)); err != nil {
					t.Fatalf("Exchange: %v", err)
				}
			}
			connectAs(0) // Ada
			if tt.want > 0 {
				waitFor(t, "the replayed events", func() bool { return len(h.received()) >= tt.want })
			}
			// A second consent by Ada and one by Grace (no requests) must add nothing. A
			// sentinel event queued after them arrives only once the queue ahead of it
			// was taken, so counting after it sees anything they had queued.
			connectAs(0)
			connectAs(1)
			sentinel := e.srv.RequestIDs(ada)[0]
			if err := e.srv.EmitWebhook("signature_request_viewed", sentinel); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the sentinel event", func() bool {
				return slices.ContainsFunc(h.received(), func(g receivedHook) bool { return g.eventType == "signature_request_viewed" })
			})

			var replayed []receivedHook
			for _, g := range h.received() {
				if g.eventType != "signature_request_viewed" {
					replayed = append(replayed, g)
				}
			}
			if len(replayed) != tt.want {
				t.Fatalf("replayed events: got %d, want %d", len(replayed), tt.want)
			}
			seen := map[string]bool{}
			for _, g := range replayed {
				if !g.signatureOK {
					t.Errorf("%s %s: X-Signature is not the HMAC-SHA256 of the body with the app secret", g.eventType, g.requestID)
				}
				var p struct {
					Event struct {
						EventTime     int64             `json:"event_time"`
						EventType     string            `json:"event_type"`
						EventMetadata map[string]string `json:"event_metadata"`
					} `json:"event"`
					SignatureRequest struct {
						ID      string            `json:"signature_request_id"`
						Title   string            `json:"title"`
						Status  string            `json:"status"`
						Signers []json.RawMessage `json:"signers"`
					} `json:"signature_request"`
					DetailsURL string `json:"details_url"`
				}
				if err := json.Unmarshal(g.body, &p); err != nil {
					t.Fatalf("payload: %v", err)
				}
				sr := p.SignatureRequest
				if got, want := p.Event.EventType, wantEvent[sr.Status]; got != want {
					t.Errorf("%s (%s): got event %q, want %q", sr.ID, sr.Status, got, want)
				}
				if got, want := p.Event.EventTime, e.clock.Now().UnixMilli(); got != want {
					t.Errorf("%s: event_time got %d, want %d (now)", sr.ID, got, want)
				}
				if st, _ := e.srv.RequestStatus(sr.ID); st != sr.Status {
					t.Errorf("%s: payload status got %q, want the current %q", sr.ID, sr.Status, st)
				}
				if sr.Title == "" || len(sr.Signers) == 0 || p.DetailsURL == "" || p.Event.EventMetadata["workspace_id"] == "" {
					t.Errorf("%s: payload misses fields of lumin-api.md §21: %s", sr.ID, g.body)
				}
				if seen[sr.ID] {
					t.Errorf("%s: replayed twice", sr.ID)
				}
				seen[sr.ID] = true
			}
		})
	}
}
