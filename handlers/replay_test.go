package handlers

import (
	"net/http"
	"testing"
	"time"

	"github.com/connectlumin/app/lumin/luminfake"
)

// TestSandboxReplayFillsTheList is the offline demo's first visit: the sandbox replays
// Ada's seeded requests as app webhooks when she connects (luminfake
// Options.ReplaySeedOnConsent); the dashboard says they are being checked without
// calling Lumin, and one visit to /requests shows every one of them. Grace, named by
// none of them, is told the same until her own check finds nothing of hers.
func TestSandboxReplayFillsTheList(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret, fake: luminfake.Options{ReplaySeedOnConsent: true}})
	grace := a.mustConnect(t, 1)
	ada := a.mustConnect(t, 0)
	// Every seeded request but the one still processing (Lumin sends no event for it).
	want := len(a.fake.RequestIDs("ada@sandbox.lumin.test")) - 1
	delivered := func() int {
		n := 0
		for _, d := range a.fake.Deliveries() {
			if d.Status == http.StatusOK {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for delivered() < want {
		if time.Now().After(deadline) {
			t.Fatalf("replayed webhooks accepted: got %d, want %d", delivered(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}

	checkingShown := func(who string, u *consoleUser, want bool) {
		t.Helper()
		before := a.apiCalls(http.MethodGet, "/v1/signature_request")
		sec := u.get("/dashboard").testid("requests-summary")
		if sec.Length() != 1 {
			t.Fatalf("%s: dashboard has no requests-summary section", who)
		}
		if got := a.apiCalls(http.MethodGet, "/v1/signature_request") - before; got != 0 {
			t.Errorf("%s: dashboard asked Lumin about %d requests, want 0", who, got)
		}
		checking := sec.Find(`[data-testid="requests-checking"]`).Length() == 1
		if checking != want {
			t.Errorf("%s: checking notice shown: got %v, want %v", who, checking, want)
		}
		if want && sec.Find(`a[href="/requests"]`).Length() == 0 {
			t.Errorf("%s: checking notice has no link to /requests", who)
		}
		if want && sec.Find(`[data-testid="requests-empty"]`).Length() != 0 {
			t.Errorf("%s: 'no requests' shown while candidates wait to be checked", who)
		}
	}

	checkingShown("ada before /requests", ada, true)
	if got := ada.get("/requests").testid("request-row").Length(); got != want {
		t.Errorf("ada's rows after one visit: got %d, want %d", got, want)
	}
	checkingShown("ada after /requests", ada, false)
	if got := ada.get("/dashboard").testid("requests-summary").Find(`tbody tr`).Length(); got != recentCount {
		t.Errorf("ada's recent rows: got %d, want %d", got, recentCount)
	}

	checkingShown("grace before /requests", grace, true)
	if got := grace.get("/requests").testid("request-row").Length(); got != 0 {
		t.Errorf("grace's rows: got %d, want 0 (none of them is hers)", got)
	}
	checkingShown("grace after /requests", grace, false)
	if grace.get("/dashboard").testid("requests-empty").Length() != 1 {
		t.Error("grace: empty state missing once every candidate was checked")
	}
}
