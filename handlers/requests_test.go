package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/lumin/luminfake"
	"github.com/connectlumin/app/store"
)

const sendPath = "/v1/signature_request/send"

func validSendForm() url.Values {
	return url.Values{
		"title":          {"Test NDA"},
		"signer_count":   {"1"},
		"signer_name_0":  {"Charles Babbage"},
		"signer_email_0": {"charles@example.com"},
		"signing_type":   {"SAME_TIME"},
		"expires_at":     {time.Now().UTC().AddDate(0, 0, 7).Format(dateLayout)},
	}
}

func TestRequestsListEmptyState(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	grace := a.mustConnect(t, 1)
	p := grace.get("/requests")
	if p.status != http.StatusOK {
		t.Fatalf("got %d, want 200", p.status)
	}
	if p.testid("requests-empty").Length() != 1 {
		t.Errorf("empty state missing")
	}
	if n := p.testid("request-row").Length(); n != 0 {
		t.Errorf("got %d rows, want 0", n)
	}
	if p.testid("new-request").Length() != 1 {
		t.Errorf("send link missing with sign:requests")
	}
}

func TestTrackListAndDetail(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(3) // WAITING_FOR_OTHERS, ORDER, three signers
	p := ada.post("/requests/track", url.Values{"id": {id}}, true)
	if p.status != http.StatusSeeOther || p.location() != "/requests/"+id+"?done=tracked" {
		t.Fatalf("track: got %d %q, want 303 to the detail", p.status, p.location())
	}
	tr, err := a.db.Get(context.Background(), ada.key, id)
	if err != nil {
		t.Fatalf("stored: %v", err)
	}
	if tr.Source != "tracked" || tr.Status != "WAITING_FOR_OTHERS" {
		t.Errorf("stored source/status: got %q/%q, want tracked/WAITING_FOR_OTHERS", tr.Source, tr.Status)
	}

	d := ada.get(p.location())
	if d.status != http.StatusOK {
		t.Fatalf("detail: got %d", d.status)
	}
	if got := d.testid("request-status").First().Text(); got != "Waiting for others" {
		t.Errorf("status badge: got %q", got)
	}
	if n := d.testid("signer-row").Length(); n != 3 {
		t.Errorf("signer rows: got %d, want 3", n)
	}
	if d.testid("done-notice").Length() != 1 {
		t.Errorf("done notice missing")
	}
	for _, tid := range []string{"action-cancel", "action-remind", "action-expiry", "details-link"} {
		if d.testid(tid).Length() != 1 {
			t.Errorf("%s missing on an actionable request", tid)
		}
	}
	if href := d.testid("details-link").AttrOr("href", ""); !strings.HasPrefix(href, a.fake.URL+"/") {
		t.Errorf("details link: got %q, want the sandbox origin", href)
	}
	if d.testid("download-agreement").Length() != 0 {
		t.Errorf("downloads offered before APPROVED")
	}

	l := ada.get("/requests")
	rows := l.testid("request-row")
	if rows.Length() != 1 {
		t.Fatalf("list rows: got %d, want 1", rows.Length())
	}
	if href := rows.Find(`a`).AttrOr("href", ""); href != "/requests/"+id {
		t.Errorf("row link: got %q", href)
	}
	if rows.Find(`[data-testid="stale-badge"]`).Length() != 0 {
		t.Errorf("stale badge on a fresh row")
	}
}

func TestTrackRejects(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	grace := a.mustConnect(t, 1)
	cases := []struct {
		name   string
		user   *consoleUser
		id     string
		status int
		gets   int // sandbox GETs expected
	}{
		{"malformed", ada, "../../user/info", http.StatusBadRequest, 0},
		{"too long", ada, strings.Repeat("a", 129), http.StatusBadRequest, 0},
		{"empty", ada, "", http.StatusBadRequest, 0},
		{"unknown", ada, "ffffffffffffffffffffffff", http.StatusNotFound, 1},
		{"someone else's", grace, seededID(1), http.StatusNotFound, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.apiCalls(http.MethodGet, "/v1/signature_request/")
			p := tc.user.post("/requests/track", url.Values{"id": {tc.id}}, true)
			if p.status != tc.status {
				t.Fatalf("got %d, want %d", p.status, tc.status)
			}
			if p.testid("field-error").Length() != 1 {
				t.Errorf("no field error shown")
			}
			if got := a.apiCalls(http.MethodGet, "/v1/signature_request/") - before; got != tc.gets {
				t.Errorf("sandbox GETs: got %d, want %d", got, tc.gets)
			}
		})
	}
	if rows := grace.get("/requests").testid("request-row").Length(); rows != 0 {
		t.Errorf("grace sees %d rows, want 0", rows)
	}
}

func TestDetailAccess(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	grace := a.mustConnect(t, 1)
	cases := []struct {
		name   string
		user   *consoleUser
		path   string
		status int
	}{
		{"own, untracked but readable", ada, "/requests/" + seededID(1), http.StatusOK},
		{"someone else's", grace, "/requests/" + seededID(1), http.StatusNotFound},
		{"unknown", ada, "/requests/ffffffffffffffffffffffff", http.StatusNotFound},
		{"malformed", ada, "/requests/bad%20id", http.StatusBadRequest},
		{"malformed file id", ada, "/requests/a.b/file", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.user.get(tc.path)
			if p.status != tc.status {
				t.Fatalf("got %d, want %d", p.status, tc.status)
			}
			if tc.status != http.StatusOK && p.testid("error").Length() != 1 {
				t.Errorf("no error page")
			}
		})
	}
}

func TestDetailReasonAndDownloads(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)

	failed := ada.get("/requests/" + seededID(11))
	if failed.testid("request-reason").Length() != 1 {
		t.Errorf("FAILED: reason missing")
	}
	if failed.testid("action-cancel").Length() != 0 {
		t.Errorf("FAILED: cancel offered")
	}

	approved := ada.get("/requests/" + seededID(7))
	for _, tid := range []string{"download-agreement", "download-coc", "download-merged"} {
		if approved.testid(tid).Length() != 1 {
			t.Errorf("APPROVED: %s missing", tid)
		}
	}
	if approved.testid("action-cancel").Length() != 0 || approved.testid("action-expiry").Length() != 0 {
		t.Errorf("APPROVED: actions offered")
	}
	for _, kind := range []string{"agreement", "coc", "merged"} {
		p := ada.get("/requests/" + seededID(7) + "/file?type=" + kind)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), a.fake.URL+"/") {
			t.Errorf("%s: got %d %q, want 303 to the sandbox", kind, p.status, p.location())
		}
	}
	if p := ada.get("/requests/" + seededID(7) + "/file?type=evil"); p.status != http.StatusBadRequest {
		t.Errorf("bad type: got %d, want 400", p.status)
	}
	nr := ada.get("/requests/" + seededID(3) + "/file?type=coc")
	if nr.status != http.StatusConflict || nr.testid("file-not-ready").Length() != 1 {
		t.Errorf("not approved: got %d, want 409 not-ready page", nr.status)
	}
}

func TestSendWithPDF(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	nf := ada.get("/requests/new")
	for _, tid := range []string{"request-title", "request-file", "request-file-url", "signer-name-0", "signer-email-0", "signer-group-0", "request-signing-type", "request-expiry", "request-submit"} {
		if nf.testid(tid).Length() != 1 {
			t.Errorf("form: %s missing", tid)
		}
	}
	if got, want := nf.testid("request-expiry").AttrOr("value", ""), time.Now().UTC().AddDate(0, 0, 14).Format(dateLayout); got != want {
		t.Errorf("default expiry: got %q, want %q", got, want)
	}

	p := ada.postMultipart("/requests", validSendForm(), "nda.pdf", testPDF, true)
	if p.status != http.StatusSeeOther {
		t.Fatalf("send: got %d, want 303: %s", p.status, p.testid("field-error").Text()+p.testid("form-error").Text())
	}
	id := strings.TrimSuffix(strings.TrimPrefix(p.location(), "/requests/"), "?done=sent")
	tr, err := a.db.Get(context.Background(), ada.key, id)
	if err != nil {
		t.Fatalf("not stored before the redirect: %v", err)
	}
	if tr.Source != "sent" || tr.Title != "Test NDA" {
		t.Errorf("stored: got source %q title %q", tr.Source, tr.Title)
	}
	if st, ok := a.fake.RequestStatus(id); !ok || st == "" {
		t.Errorf("sandbox does not know %s", id)
	}
	if got := a.apiCalls(http.MethodPost, sendPath); got != 1 {
		t.Errorf("send calls: got %d, want 1", got)
	}
	d := ada.get(p.location())
	if d.status != http.StatusOK || d.testid("request-status").Length() == 0 {
		t.Errorf("detail after send: got %d", d.status)
	}
	if rows := ada.get("/requests").testid("request-row").Length(); rows != 1 {
		t.Errorf("list rows: got %d, want 1", rows)
	}
}

func TestSendWithURLAndOrder(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	f := validSendForm()
	f.Set("file_url", "https://example.com/contract.pdf")
	f.Set("signing_type", "ORDER")
	f.Set("signer_group_0", "1")
	f.Set("signer_count", "2")
	f.Set("signer_name_1", "Mary Somerville")
	f.Set("signer_email_1", "mary@example.com")
	f.Set("signer_group_1", "2")
	p := ada.postMultipart("/requests", f, "", nil, true)
	if p.status != http.StatusSeeOther {
		t.Fatalf("got %d, want 303: %s", p.status, p.testid("field-error").Text()+p.testid("form-error").Text())
	}
}

func TestSendValidation(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(dateLayout)
	cases := []struct {
		name string
		edit func(url.Values)
		file []byte
		// field is the data-testid of an element inside the form field (the nearest
		// .field) whose error must show.
		field string
	}{
		{"empty title", func(f url.Values) { f.Set("title", "") }, testPDF, "request-title"},
		{"over-long title", func(f url.Values) { f.Set("title", strings.Repeat("x", 256)) }, testPDF, "request-title"},
		{"not a PDF", func(url.Values) {}, []byte("PK\x03\x04 zip pretending"), "request-file-url"},
		{"no file", func(url.Values) {}, nil, "request-file-url"},
		{"file and URL", func(f url.Values) { f.Set("file_url", "https://example.com/a.pdf") }, testPDF, "request-file-url"},
		{"http URL", func(f url.Values) { f.Set("file_url", "http://example.com/a.pdf") }, nil, "request-file-url"},
		{"javascript URL", func(f url.Values) { f.Set("file_url", "javascript:alert(1)") }, nil, "request-file-url"},
		{"expiry in the past", func(f url.Values) { f.Set("expires_at", yesterday) }, testPDF, "request-expiry"},
		{"expiry garbage", func(f url.Values) { f.Set("expires_at", "soon") }, testPDF, "request-expiry"},
		{"invalid email", func(f url.Values) { f.Set("signer_email_0", "not-an-email") }, testPDF, "signer-email-0"},
		{"display-name email", func(f url.Values) { f.Set("signer_email_0", "Eve <eve@example.com>") }, testPDF, "signer-email-0"},
		{"missing name", func(f url.Values) { f.Set("signer_name_0", "") }, testPDF, "signer-name-0"},
		{"order without group", func(f url.Values) { f.Set("signing_type", "ORDER") }, testPDF, "signer-group-0"},
		{"bad signing type", func(f url.Values) { f.Set("signing_type", "WHENEVER") }, testPDF, "request-signing-type"},
		{"21 signers", func(f url.Values) {
			f.Set("signer_count", "21")
			for i := 0; i < 21; i++ {
				n := string(rune('a'+i%26)) + "x"
				f.Set("signer_name_"+itoa(i), "Signer "+n)
				f.Set("signer_email_"+itoa(i), n+itoa(i)+"@example.com")
			}
		}, testPDF, "signer-fields"}, // the count error heads the signers fieldset
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := validSendForm()
			tc.edit(f)
			name := ""
			if tc.file != nil {
				name = "doc.pdf"
			}
			p := ada.postMultipart("/requests", f, name, tc.file, true)
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("got %d, want 422", p.status)
			}
			if p.testid("field-error").Length() == 0 {
				t.Errorf("no field error")
			}
			el := p.testid(tc.field).First()
			if el.Length() == 0 {
				t.Fatalf("no element %q on the form", tc.field)
			}
			if got := el.Closest(".field").Find(`[data-testid="field-error"]`).Length(); got == 0 {
				t.Errorf("field error on %s: got none, want one (errors: %q)", tc.field, p.testid("field-error").Text())
			}
			if got := p.testid("request-title").AttrOr("value", ""); got != f.Get("title") && len(f.Get("title")) < 256 {
				t.Errorf("title not kept: got %q", got)
			}
			if n := a.apiCalls("", sendPath); n != 0 {
				t.Errorf("sandbox send calls: got %d, want 0", n)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestSendOversized(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	t.Run("file over 20 MiB", func(t *testing.T) {
		big := append(append([]byte(nil), testPDF...), bytes.Repeat([]byte("0"), 21<<20)...)
		p := ada.postMultipart("/requests", validSendForm(), "big.pdf", big, true)
		if p.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d, want 413", p.status)
		}
		if p.testid("error").Length() != 1 {
			t.Errorf("no error page")
		}
	})
	t.Run("body over 25 MiB", func(t *testing.T) {
		big := bytes.Repeat([]byte("0"), 26<<20)
		p := ada.postMultipart("/requests", validSendForm(), "big.pdf", big, true)
		if p.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d, want 413", p.status)
		}
	})
	if n := a.apiCalls("", sendPath); n != 0 {
		t.Errorf("sandbox send calls: got %d, want 0", n)
	}
}

func TestSendAddRemoveSigner(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	f := validSendForm()
	f.Set("add_signer", "1")
	p := ada.postMultipart("/requests", f, "", nil, true)
	if p.status != http.StatusOK {
		t.Fatalf("add: got %d, want 200", p.status)
	}
	if p.testid("signer-name-1").Length() != 1 {
		t.Fatalf("add: second row missing")
	}
	if got := p.testid("signer-email-0").AttrOr("value", ""); got != "charles@example.com" {
		t.Errorf("add: input not kept: got %q", got)
	}
	if p.testid("field-error").Length() != 0 {
		t.Errorf("add: validation errors shown")
	}
	f = validSendForm()
	f.Set("signer_count", "2")
	f.Set("signer_name_1", "Mary")
	f.Set("remove_signer", "0")
	p = ada.postMultipart("/requests", f, "", nil, true)
	if p.status != http.StatusOK || p.testid("signer-name-1").Length() != 0 {
		t.Fatalf("remove: got %d with %d rows", p.status, p.doc.Find(`[data-testid^="signer-name-"]`).Length())
	}
	if got := p.testid("signer-name-0").AttrOr("value", ""); got != "Mary" {
		t.Errorf("remove: got row 0 %q, want Mary", got)
	}
	if n := a.apiCalls("", sendPath); n != 0 {
		t.Errorf("sandbox send calls: got %d, want 0", n)
	}
}

func TestCSRFRequired(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	ada.mustTrack(seededID(1))
	before := len(a.fake.Requests())
	cases := []struct {
		name, path string
		form       url.Values
	}{
		{"send", "/requests", validSendForm()},
		{"track", "/requests/track", url.Values{"id": {seededID(2)}}},
		{"cancel", "/requests/" + seededID(1) + "/cancel", nil},
		{"remind", "/requests/" + seededID(1) + "/remind", url.Values{"email": {"seedCharles.babbage@example.com"}}},
		{"expiry", "/requests/" + seededID(1) + "/expiry", url.Values{"expires_at": {"2099-01-01"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ada.post(tc.path, tc.form, false)
			if p.status != http.StatusForbidden {
				t.Fatalf("got %d, want 403", p.status)
			}
			if p.testid("error").Length() != 1 {
				t.Errorf("no error page")
			}
		})
	}
	for _, r := range a.fake.Requests()[before:] {
		if r.Method != http.MethodGet {
			t.Errorf("sandbox saw %s %s after a CSRF failure", r.Method, r.Path)
		}
	}
}

func TestCancel(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(4)
	ada.mustTrack(id)
	// Irreversible and it notifies the signers: the form asks first (app.js data-confirm).
	if got := ada.get("/requests/"+id).testid("action-cancel").Closest("form").AttrOr("data-confirm", ""); got == "" {
		t.Errorf("cancel form: no data-confirm")
	}
	p := ada.post("/requests/"+id+"/cancel", nil, true)
	if p.status != http.StatusSeeOther || p.location() != "/requests/"+id+"?done=cancelled" {
		t.Fatalf("got %d %q", p.status, p.location())
	}
	if st, _ := a.fake.RequestStatus(id); st != "CANCELLED" {
		t.Errorf("sandbox status: got %q, want CANCELLED", st)
	}
	tr, _ := a.db.Get(context.Background(), ada.key, id)
	if tr.Status != "CANCELLED" {
		t.Errorf("stored status: got %q, want CANCELLED", tr.Status)
	}
	d := ada.get(p.location())
	if d.testid("done-notice").Length() != 1 || d.testid("action-cancel").Length() != 0 {
		t.Errorf("detail after cancel: notice %d, cancel button %d", d.testid("done-notice").Length(), d.testid("action-cancel").Length())
	}
	// The flash is chosen from an allowlist, never reflected.
	x := ada.get("/requests/" + id + "?done=%3Cscript%3Ealert(1)%3C/script%3E")
	if x.testid("done-notice").Length() != 0 || strings.Contains(x.body, "<script>alert") {
		t.Errorf("done parameter reflected")
	}
}

func TestCancelRefusedByLumin(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(5) // created in Lumin's UI: the API refuses to cancel it
	p := ada.post("/requests/"+id+"/cancel", nil, true)
	if p.status < 400 || p.status > 499 {
		t.Fatalf("got %d, want a 4xx", p.status)
	}
	if p.testid("action-error").Length() != 1 {
		t.Errorf("Lumin's refusal not shown")
	}
}

// TestCancelResubmit: a 401 on the cancel PUT is refreshed but never replayed: the page
// asks to try again and Lumin saw exactly one PUT (lumin.ErrResubmit, security.md §8.4,
// §8.5).
func TestCancelResubmit(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(4)
	ada.mustTrack(id)
	f := url.Values{"_csrf": {ada.csrf()}}
	a.fake.SetFaults(luminfake.Faults{APIStatus: 401, APIStatusTimes: 1})
	defer a.fake.SetFaults(luminfake.Faults{})
	before := len(a.fake.Requests())
	p := ada.post("/requests/"+id+"/cancel", f, false)
	if p.status != http.StatusConflict {
		t.Fatalf("got %d, want 409", p.status)
	}
	if got := p.testid("action-error").Text(); !strings.Contains(got, "try again") {
		t.Errorf("action error: got %q, want a request to try again", got)
	}
	puts := 0
	for _, r := range a.fake.Requests()[before:] {
		if r.Method == http.MethodPut {
			puts++
		}
	}
	if puts != 1 {
		t.Errorf("PUTs at the sandbox: got %d, want 1 (never replayed)", puts)
	}
	if st, _ := a.fake.RequestStatus(id); st == "CANCELLED" {
		t.Errorf("sandbox status: got CANCELLED, want unchanged")
	}
}

// TestDetailBusy: Lumin answering 503 with Retry-After (lumin.ErrRateLimited) on the
// detail GET shows the stored request with "try again in N s" (lumin-api.md §19).
func TestDetailBusy(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(3)
	ada.mustTrack(id)
	a.fake.SetFaults(luminfake.Faults{APIStatus: 503, RetryAfter: 30})
	defer a.fake.SetFaults(luminfake.Faults{})
	d := ada.get("/requests/" + id)
	if d.status != http.StatusOK {
		t.Fatalf("got %d, want 200 from the store", d.status)
	}
	if got := d.testid("upstream-notice").Text(); !strings.Contains(got, "try again in 30 s") {
		t.Errorf("notice: got %q, want %q", got, "try again in 30 s")
	}
}

func TestRemind(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(3)
	d := ada.get("/requests/" + id)
	boxes := d.doc.Find(`input[type=checkbox][name=email]`)
	if boxes.Length() == 0 {
		t.Fatalf("no reminder checkboxes")
	}
	email := boxes.First().AttrOr("value", "")
	p := ada.post("/requests/"+id+"/remind", url.Values{"email": {email}}, true)
	if p.status != http.StatusSeeOther {
		t.Fatalf("got %d, want 303", p.status)
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
	if n := a.apiCalls(http.MethodPost, "/v1/signature_request/remind/"); n != 1 {
		t.Errorf("remind calls: got %d, want 1", n)
	}

	t.Run("none chosen", func(t *testing.T) {
		p := ada.post("/requests/"+id+"/remind", url.Values{}, true)
		if p.status != http.StatusUnprocessableEntity || p.testid("action-error").Length() != 1 {
			t.Errorf("got %d, want 422 with a message", p.status)
		}
	})
	t.Run("invalid email", func(t *testing.T) {
		p := ada.post("/requests/"+id+"/remind", url.Values{"email": {"<x>"}}, true)
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("got %d, want 422", p.status)
		}
	})
	t.Run("crafted result link", func(t *testing.T) {
		x := ada.get("/requests/" + id + "?done=reminded&r=0:EVIL,99:SENT,x:SENT")
		if n := x.testid("reminder-result").Length(); n != 0 {
			t.Errorf("got %d results from a crafted link, want 0", n)
		}
	})
	if n := a.apiCalls(http.MethodPost, "/v1/signature_request/remind/"); n != 1 {
		t.Errorf("remind calls after bad input: got %d, want 1", n)
	}
}

func TestChangeExpiry(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(6)
	ada.mustTrack(id)
	want := time.Now().UTC().AddDate(0, 1, 0).Format(dateLayout)
	p := ada.post("/requests/"+id+"/expiry", url.Values{"expires_at": {want}}, true)
	if p.status != http.StatusSeeOther {
		t.Fatalf("got %d, want 303", p.status)
	}
	d := ada.get(p.location())
	if got := d.testid("expiry-input").AttrOr("value", ""); got != want {
		t.Errorf("expiry: got %q, want %q", got, want)
	}
	tr, _ := a.db.Get(context.Background(), ada.key, id)
	if got := tr.ExpiresAt.UTC().Format(dateLayout); got != want {
		t.Errorf("stored expiry: got %q, want %q", got, want)
	}
	for _, bad := range []string{time.Now().UTC().AddDate(0, 0, -1).Format(dateLayout), "31/12/2099", ""} {
		p := ada.post("/requests/"+id+"/expiry", url.Values{"expires_at": {bad}}, true)
		if p.status != http.StatusUnprocessableEntity || p.testid("action-error").Length() != 1 {
			t.Errorf("%q: got %d, want 422 with a message", bad, p.status)
		}
	}
	if n := a.apiCalls(http.MethodPatch, "/v1/signature_request/"); n != 1 {
		t.Errorf("PATCH calls: got %d, want 1", n)
	}
}

func TestReadOnlyScope(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{scopes: []string{"openid", "offline_access", "profile.read", "sign:requests.read"}})
	ada := a.mustConnect(t, 0)
	// Nothing tracked yet: the dashboard's empty state must not offer to send.
	if n := ada.get("/dashboard").doc.Find(`[data-testid="requests-summary"] a[href="/requests/new"]`).Length(); n != 0 {
		t.Errorf("dashboard send links without sign:requests: got %d, want 0", n)
	}
	ada.mustTrack(seededID(3))
	l := ada.get("/requests")
	if l.status != http.StatusOK || l.testid("readonly-notice").Length() != 1 {
		t.Errorf("list: got %d, read-only notice %d", l.status, l.testid("readonly-notice").Length())
	}
	if l.testid("new-request").Length() != 0 {
		t.Errorf("send offered without sign:requests")
	}
	d := ada.get("/requests/" + seededID(3))
	for _, tid := range []string{"action-cancel", "action-remind", "action-expiry"} {
		if d.testid(tid).Length() != 0 {
			t.Errorf("%s offered without sign:requests", tid)
		}
	}
	if d.testid("reconnect-scope").Length() != 1 {
		t.Errorf("no reconnect hint")
	}
	if p := ada.get("/requests/new"); p.status != http.StatusForbidden || p.testid("scope-missing").Length() != 1 {
		t.Errorf("new: got %d, want 403 scope page", p.status)
	}
	before := len(a.fake.Requests())
	for _, path := range []string{"/requests", "/requests/" + seededID(3) + "/cancel", "/requests/" + seededID(3) + "/remind", "/requests/" + seededID(3) + "/expiry"} {
		if p := ada.post(path, url.Values{"expires_at": {"2099-01-01"}}, true); p.status != http.StatusForbidden {
			t.Errorf("POST %s: got %d, want 403", path, p.status)
		}
	}
	for _, r := range a.fake.Requests()[before:] {
		if r.Method != http.MethodGet {
			t.Errorf("sandbox saw %s %s", r.Method, r.Path)
		}
	}
}

func TestNoRequestScope(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{scopes: []string{"openid", "offline_access", "profile.read"}})
	ada := a.mustConnect(t, 0)
	// Every console route, read or write (routes.go requireScope).
	for _, path := range []string{"/requests", "/requests/new", "/requests/" + seededID(1), "/requests/" + seededID(1) + "/file"} {
		p := ada.get(path)
		if p.status != http.StatusForbidden || p.testid("scope-missing").Length() != 1 {
			t.Errorf("GET %s: got %d, want 403 scope page", path, p.status)
		}
	}
	before := len(a.fake.Requests())
	for _, path := range []string{"/requests", "/requests/track", "/requests/" + seededID(1) + "/cancel",
		"/requests/" + seededID(1) + "/remind", "/requests/" + seededID(1) + "/expiry"} {
		p := ada.post(path, url.Values{"id": {seededID(1)}, "expires_at": {"2099-01-01"}}, true)
		if p.status != http.StatusForbidden || p.testid("scope-missing").Length() != 1 {
			t.Errorf("POST %s: got %d, want 403 scope page", path, p.status)
		}
	}
	if n := len(a.fake.Requests()) - before; n != 0 {
		t.Errorf("the sandbox saw %d requests from scope-less POSTs, want 0", n)
	}
	// The dashboard says what is missing, and neither offers to send nor claims there
	// are no requests (it cannot know).
	sec := ada.get("/dashboard").doc.Find(`[data-testid="requests-summary"]`)
	if n := sec.Find(`a[href="/requests/new"]`).Length(); n != 0 {
		t.Errorf("dashboard send links without sign:requests: got %d, want 0", n)
	}
	if n := sec.Find(`[data-testid="requests-empty"]`).Length(); n != 0 {
		t.Errorf("dashboard empty state under the no-access notice: got %d, want 0", n)
	}
}

func TestListFilterAndPagination(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	ctx := context.Background()
	// 30 terminal rows straight into the store (no refresh needed) + 1 waiting.
	for i := 0; i < 30; i++ {
		err := a.db.Upsert(ctx, store.TrackedRequest{UserKey: ada.key, ID: "bulk" + itoa(i), Title: "Bulk " + itoa(i),
			Status: "APPROVED", Source: "tracked", CreatedAt: time.Now().Add(-time.Duration(i) * time.Minute),
			UpdatedAt: time.Now().Add(-time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
	}
	ada.mustTrack(seededID(3))

	p1 := ada.get("/requests")
	if n := p1.testid("request-row").Length(); n != pageSize {
		t.Errorf("page 1 rows: got %d, want %d", n, pageSize)
	}
	if p1.testid("page-next").Length() != 1 {
		t.Errorf("no next link")
	}
	p2 := ada.get("/requests?page=2")
	if n := p2.testid("request-row").Length(); n != 31-pageSize {
		t.Errorf("page 2 rows: got %d, want %d", n, 31-pageSize)
	}
	w := ada.get("/requests?status=WAITING_FOR_OTHERS")
	if n := w.testid("request-row").Length(); n != 1 {
		t.Errorf("filtered rows: got %d, want 1", n)
	}
	for _, q := range []string{"status=EVIL", "status=%3Cscript%3E", "page=0", "page=-1", "page=x", "page=99"} {
		if p := ada.get("/requests?" + q); p.status != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400", q, p.status)
		}
	}
}

func TestListUpstreamFaults(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	// Every view must ask Lumin so each fault is seen: the CSRF helper's list views
	// would otherwise leave the rows inside the freshness window (TestListFreshnessWindow).
	a.srv.listFreshFor = 0
	ada := a.mustConnect(t, 0)
	for _, n := range []int{1, 3, 4, 7} {
		ada.mustTrack(seededID(n))
	}
	cases := []struct {
		name   string
		faults luminfake.Faults
		notice string
	}{
		{"429 with Retry-After", luminfake.Faults{APIStatus: 429, RetryAfter: 7}, "try again in 7 s"},
		{"503", luminfake.Faults{APIStatus: 503, RetryAfter: 9}, "try again in 9 s"},
		{"500", luminfake.Faults{APIStatus: 500}, "could not be reached"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.fake.SetFaults(tc.faults)
			defer a.fake.SetFaults(luminfake.Faults{})
			p := ada.get("/requests")
			if p.status != http.StatusOK {
				t.Fatalf("got %d, want 200", p.status)
			}
			if got := p.testid("upstream-notice").Text(); !strings.Contains(got, tc.notice) {
				t.Errorf("notice: got %q, want %q", got, tc.notice)
			}
			if n := p.testid("request-row").Length(); n != 4 {
				t.Errorf("rows: got %d, want 4", n)
			}
			// The three non-terminal rows could not be refreshed; the APPROVED one is cached.
			if n := p.testid("stale-badge").Length(); n != 3 {
				t.Errorf("stale badges: got %d, want 3", n)
			}
			d := ada.get("/requests/" + seededID(3))
			if d.status != http.StatusOK || d.testid("upstream-notice").Length() != 1 {
				t.Errorf("detail: got %d, notice %d", d.status, d.testid("upstream-notice").Length())
			}
			if d.testid("action-cancel").Length() != 0 {
				t.Errorf("actions offered on a stale detail")
			}
		})
	}
	// Healthy again: no notice, no stale badge.
	p := ada.get("/requests")
	if p.testid("upstream-notice").Length() != 0 || p.testid("stale-badge").Length() != 0 {
		t.Errorf("after recovery: notice %d, stale %d", p.testid("upstream-notice").Length(), p.testid("stale-badge").Length())
	}
}

func TestListRefreshWritesBack(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	id := seededID(1)
	ada.mustTrack(id)
	// Sign as the other signer and as Ada: the request completes in the sandbox.
	for _, sg := range []string{"ada@sandbox.lumin.test"} {
		if err := a.fake.Sign(id, sg); err != nil {
			t.Fatal(err)
		}
	}
	p := ada.get("/requests")
	if got := p.testid("request-status").First().Text(); got != "Completed" {
		t.Errorf("list status: got %q, want Completed", got)
	}
	tr, _ := a.db.Get(context.Background(), ada.key, id)
	if tr.Status != "APPROVED" {
		t.Errorf("stored: got %q, want APPROVED", tr.Status)
	}
	// Terminal now: the next view does not ask Lumin about it.
	before := a.apiCalls(http.MethodGet, "/v1/signature_request/"+id)
	ada.get("/requests")
	if got := a.apiCalls(http.MethodGet, "/v1/signature_request/"+id) - before; got != 0 {
		t.Errorf("terminal row refreshed %d times, want 0", got)
	}
}

func TestDashboardSummary(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	for _, n := range []int{1, 3, 7} {
		ada.mustTrack(seededID(n))
	}
	p := ada.get("/dashboard")
	sec := p.testid("requests-summary")
	if sec.Length() != 1 {
		t.Fatalf("no summary")
	}
	if sec.Find(`[data-testid="requests-empty"]`).Length() != 0 {
		t.Errorf("empty state shown with 3 requests")
	}
	if n := sec.Find(`tbody tr`).Length(); n != 3 {
		t.Errorf("recent rows: got %d, want 3", n)
	}
}

func TestAllowedLuminURL(t *testing.T) {
	s := &Server{sandbox: true, sandboxURL: "http://127.0.0.1:4444"}
	prod := &Server{}
	cases := []struct {
		url           string
		sandbox, prod bool
	}{
		{"https://sign.luminpdf.com/auth?mode=view-contract&token=x", true, true},
		{"https://luminpdf.com/x", true, true},
		{"http://sign.luminpdf.com/x", false, false},
		{"https://sign.luminpdf.com.evil.example/x", false, false},
		{"https://evilluminpdf.com/x", false, false},
		{"https://user@sign.luminpdf.com/x", false, false},
		{"javascript:alert(1)", false, false},
		{"//sign.luminpdf.com/x", false, false},
		{"http://127.0.0.1:4444/sandbox/requests/1", true, false},
		{"http://127.0.0.1:4445/sandbox/requests/1", false, false},
		{"https://127.0.0.1:4444/x", false, false},
		{"", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			if got := s.allowedLuminURL(tc.url); got != tc.sandbox {
				t.Errorf("sandbox mode: got %v, want %v", got, tc.sandbox)
			}
			if got := prod.allowedLuminURL(tc.url); got != tc.prod {
				t.Errorf("production: got %v, want %v", got, tc.prod)
			}
		})
	}
}

// slowGetter answers after a delay and records the peak concurrency.
type slowGetter struct {
	delay       time.Duration
	mu          sync.Mutex
	now, peak   int
	calls       int
	failOnEmpty bool
}

func (g *slowGetter) Get(ctx context.Context, _ lumin.TokenSource, id string) (lumin.SignatureRequest, error) {
	g.mu.Lock()
	g.now++
	g.calls++
	g.peak = max(g.peak, g.now)
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
	select {
	case <-time.After(g.delay):
		return lumin.SignatureRequest{ID: id, Status: "NEED_TO_SIGN"}, nil
	case <-ctx.Done():
		return lumin.SignatureRequest{}, ctx.Err()
	}
}

func TestFetchAllBounded(t *testing.T) {
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = "id" + itoa(i)
	}
	t.Run("concurrency bound", func(t *testing.T) {
		g := &slowGetter{delay: 20 * time.Millisecond}
		outs := fetchAll(context.Background(), g, nil, ids, 4, time.Second, 5*time.Second)
		if g.peak > 4 {
			t.Errorf("peak concurrency: got %d, want ≤ 4", g.peak)
		}
		for i, o := range outs {
			if o.err != nil || o.id != ids[i] || o.sr.ID != ids[i] {
				t.Errorf("outcome %d: got %+v", i, o)
			}
		}
	})
	t.Run("per-call timeout fails rows, not the batch", func(t *testing.T) {
		g := &slowGetter{delay: time.Second}
		outs := fetchAll(context.Background(), g, nil, ids[:3], 3, 10*time.Millisecond, 5*time.Second)
		for i, o := range outs {
			if !errors.Is(o.err, context.DeadlineExceeded) {
				t.Errorf("outcome %d: got %v, want a deadline error", i, o.err)
			}
		}
	})
	t.Run("batch deadline stops the queue", func(t *testing.T) {
		g := &slowGetter{delay: time.Second}
		outs := fetchAll(context.Background(), g, nil, ids, 2, time.Second, 30*time.Millisecond)
		for i, o := range outs {
			if o.err == nil {
				t.Errorf("outcome %d succeeded past the batch deadline", i)
			}
		}
		if g.calls > 2 {
			t.Errorf("calls started after the batch deadline: got %d, want ≤ 2", g.calls)
		}
	})
}

// TestNewUserJourney is the sandbox walk-through: send a PDF to yourself, sign it
// as the sandbox signer, see it APPROVED in the list, download the signed file.
func TestNewUserJourney(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{webhookSecret: testWebhookSecret, fake: luminfake.Options{ProcessingDelay: 50 * time.Millisecond}})
	// The journey checks that the list's own refresh sees a signature made in Lumin
	// seconds after the previous view; within the 20 s freshness window it would show
	// the stored status on purpose (TestListFreshnessWindow covers that).
	a.srv.listFreshFor = 0
	ada := a.mustConnect(t, 0)
	f := validSendForm()
	f.Set("signer_name_0", "Ada Lovelace")
	f.Set("signer_email_0", "ada@sandbox.lumin.test")
	p := ada.postMultipart("/requests", f, "nda.pdf", testPDF, true)
	if p.status != http.StatusSeeOther {
		t.Fatalf("send: got %d", p.status)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(p.location(), "/requests/"), "?done=sent")
	if got := ada.get("/requests").testid("request-status").First().Text(); got == "Completed" {
		t.Fatalf("completed before signing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := a.fake.Sign(id, "ada@sandbox.lumin.test")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sign: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := ada.get("/requests").testid("request-status").First().Text(); got != "Completed" {
		t.Errorf("list after signing: got %q, want Completed", got)
	}
	d := ada.get("/requests/" + id)
	href := d.testid("download-agreement").AttrOr("href", "")
	if href == "" {
		t.Fatalf("no download link")
	}
	r := ada.get(href)
	if r.status != http.StatusSeeOther {
		t.Fatalf("download: got %d, want 303", r.status)
	}
	resp, err := ada.c.Get(r.location())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 5)
	_, _ = io.ReadFull(resp.Body, head)
	if resp.StatusCode != http.StatusOK || string(head) != "%PDF-" {
		t.Errorf("signed file: got %d %q, want a PDF", resp.StatusCode, head)
	}
}

func TestRevokedGrant(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	ada.mustTrack(seededID(1))
	tok := ada.csrf()
	a.fake.RevokeUserGrants("ada@sandbox.lumin.test")
	owned := len(a.fake.RequestIDs("ada@sandbox.lumin.test"))
	f := validSendForm()
	f.Set("_csrf", tok)
	p := ada.postMultipart("/requests", f, "a.pdf", testPDF, false)
	if p.status != http.StatusUnauthorized {
		t.Errorf("send after revocation: got %d, want 401 reconnect page", p.status)
	}
	if got := len(a.fake.RequestIDs("ada@sandbox.lumin.test")); got != owned {
		t.Errorf("requests owned: got %d, want %d (nothing created)", got, owned)
	}
	// The connection was dropped: the console now sends the visitor to connect again.
	l := ada.get("/requests")
	if l.status != http.StatusSeeOther || l.location() != "/" {
		t.Errorf("list after revocation: got %d %q, want 303 to /", l.status, l.location())
	}
}

func TestSendUpstreamAnswers(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	cases := []struct {
		name   string
		faults luminfake.Faults
		status int
		notice string
	}{
		{"Lumin refuses (400)", luminfake.Faults{APIStatus: 400, APIStatusTimes: 1}, http.StatusUnprocessableEntity, "Lumin refused"},
		{"Lumin busy (429)", luminfake.Faults{APIStatus: 429, APIStatusTimes: 1, RetryAfter: 30}, http.StatusServiceUnavailable, "try again in 30 s"},
		{"Lumin down (500)", luminfake.Faults{APIStatus: 500, APIStatusTimes: 1}, http.StatusBadGateway, "did not confirm"},
		// 401 on the POST: the token source refreshed, the send is not replayed, the user
		// resubmits (lumin.ErrResubmit, security.md §8.4).
		{"access renewed (401)", luminfake.Faults{APIStatus: 401, APIStatusTimes: 1}, http.StatusConflict, "submit again"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := validSendForm()
			tok := ada.csrf()
			f.Set("_csrf", tok)
			a.fake.SetFaults(tc.faults)
			defer a.fake.SetFaults(luminfake.Faults{})
			before := a.apiCalls(http.MethodPost, sendPath)
			p := ada.postMultipart("/requests", f, "a.pdf", testPDF, false)
			if p.status != tc.status {
				t.Fatalf("got %d, want %d", p.status, tc.status)
			}
			if got := p.testid("form-error").Text(); !strings.Contains(got, tc.notice) {
				t.Errorf("form error: got %q, want %q", got, tc.notice)
			}
			if got := p.testid("request-title").AttrOr("value", ""); got != f.Get("title") {
				t.Errorf("title not kept: got %q", got)
			}
			if p.testid("file-dropped").Length() != 1 {
				t.Errorf("no hint to choose the file again")
			}
			// Never retried: one send reached the sandbox (security.md §8.5).
			if got := a.apiCalls(http.MethodPost, sendPath) - before; got != 1 {
				t.Errorf("send attempts: got %d, want 1", got)
			}
		})
	}
	if rows := ada.get("/requests").testid("request-row").Length(); rows != 0 {
		t.Errorf("rows after failed sends: got %d, want 0", rows)
	}
}

func TestAPIStringsEscaped(t *testing.T) {
	a := newConsoleApp(t, consoleOpts{})
	ada := a.mustConnect(t, 0)
	f := validSendForm()
	f.Set("title", `<script>alert("t")</script><img src=x onerror=alert(1)>`)
	f.Set("signer_name_0", `<b>Eve</b>`)
	f.Set("file_url", "https://example.com/a.pdf")
	p := ada.postMultipart("/requests", f, "", nil, true)
	if p.status != http.StatusSeeOther {
		t.Fatalf("send: got %d", p.status)
	}
	title := f.Get("title")
	// Each page's element that shows the title: its text content must be the title
	// itself, i.e. the markup arrived as escaped text, not dropped or mangled.
	for _, tc := range []struct{ path, sel string }{
		{p.location(), `[data-testid="request-heading"]`},
		{"/requests", `[data-testid="request-link"]`},
		{"/dashboard", `[data-testid="requests-summary"] table a`},
	} {
		d := ada.get(tc.path)
		if strings.Contains(d.body, "<script>alert") || strings.Contains(d.body, "<img src=x") || strings.Contains(d.body, "<b>Eve") {
			t.Errorf("%s: API string rendered unescaped", tc.path)
		}
		if got := d.doc.Find(tc.sel).First().Text(); got != title {
			t.Errorf("%s: title text: got %q, want %q", tc.path, got, title)
		}
	}
}
