package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRemindOneRESTCall: the remind action maps Lumin's per-email outcomes to signers
// with the signature_request of the remind answer (lumin-api.md §16.3), so the POST is
// its only REST call — no follow-up GET that could fail and drop the outcomes — and the
// outcome is shown after the 303.
func TestRemindOneRESTCall(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(3)
	d := ada.get("/requests/" + id)
	email := d.doc.Find(`input[type=checkbox][name=email]`).First().AttrOr("value", "")
	if email == "" {
		t.Fatal("no reminder checkbox")
	}
	form := url.Values{"email": {email}, "_csrf": {ada.csrf()}}

	before := a.apiCalls("", "/v1/")
	p := ada.post("/requests/"+id+"/remind", form, false)
	if p.status != http.StatusSeeOther {
		t.Fatalf("got %d, want 303", p.status)
	}
	if got := a.apiCalls("", "/v1/") - before; got != 1 {
		t.Errorf("REST calls for one remind: got %d, want 1", got)
	}
	if got := a.apiCalls(http.MethodPost, "/v1/signature_request/remind/"); got != 1 {
		t.Errorf("remind POSTs: got %d, want 1", got)
	}

	r := ada.get(p.location())
	res := r.testid("reminder-result")
	if res.Length() != 1 {
		t.Fatalf("reminder results: got %d, want 1", res.Length())
	}
	if got := res.AttrOr("data-email-status", ""); got != "SENT" {
		t.Errorf("email status: got %q, want SENT", got)
	}
	if !strings.Contains(res.Text(), email) {
		t.Errorf("result does not name %s: %q", email, res.Text())
	}
}
