package luminfake

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
)

// browser is a client that does not follow redirects, like a test looking at each hop.
func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Timeout: 5 * time.Second, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// page GETs an HTML page and parses it.
func page(t *testing.T, c *http.Client, u string) (*http.Response, *goquery.Document) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, err := goquery.NewDocumentFromReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, doc
}

// sendOrder sends an ORDER request from Ada with signers a (group 1) and b (group 2).
func sendOrder(t *testing.T, s *Server, tok string) string {
	t.Helper()
	body := validSend("Two-step contract")
	body["signing_type"] = "ORDER"
	body["signers"] = []map[string]any{
		{"email_address": "first@example.com", "name": "First <Signer>", "group": 1},
		{"email_address": "second@example.com", "name": "Second", "group": 2},
	}
	id := mustSend(t, s, tok, body)
	waitStatus(t, s.Fake, id, "WAITING_FOR_OTHERS")
	return id
}

func signerStatuses(t *testing.T, s *Server, tok, id string) string {
	t.Helper()
	var out []string
	for _, sg := range getRequest(t, s, tok, id)["signers"].([]any) {
		out = append(out, sg.(map[string]any)["status"].(string))
	}
	return strings.Join(out, " ")
}

func TestSignerPagesOrderFlow(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	id := sendOrder(t, s, tok)
	c := browser()

	// The details page (details_url) lists the signers and links each signing page.
	resp, doc := page(t, c, getRequest(t, s, tok, id)["details_url"].(string))
	if resp.StatusCode != 200 || doc.Find(`[data-testid="sandbox-request-page"]`).Length() != 1 {
		t.Fatalf("details page: got %d, want 200 with sandbox-request-page", resp.StatusCode)
	}
	if got := doc.Find("tbody tr").Length(); got != 2 {
		t.Errorf("details page signers: got %d rows, want 2", got)
	}
	// The CSP allows the page's one style block by hash and nothing else.
	sum := sha256.Sum256([]byte(doc.Find("style").Text()))
	styleHash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "style-src "+styleHash) {
		t.Errorf("CSP: got %q, want default-src 'none' and style-src %s", csp, styleHash)
	}
	if !strings.Contains(doc.Text(), "<Signer>") || doc.Find("Signer").Length() != 0 {
		t.Errorf("signer names must be escaped text, got %q", doc.Find("tbody").Text())
	}

	first, _ := s.SignerURL(id, "first@example.com")
	second, ok := s.SignerURL(id, "SECOND@example.com")
	if !ok || !strings.HasPrefix(first, s.URL+"/sandbox/sign/sgn_") {
		t.Fatalf("SignerURL: got %q %v", first, ok)
	}

	// Group 2 cannot act before group 1.
	_, doc = page(t, c, second)
	if doc.Find(`[data-testid="sandbox-signer-page"]`).Length() != 1 || doc.Find(`[data-testid="sandbox-sign"]`).Length() != 0 {
		t.Fatalf("second signer's page: want the page without a Sign button before group 1 signed")
	}
	if err := s.Sign(id, "second@example.com"); !errors.Is(err, ErrNotYourTurn) {
		t.Errorf("Sign out of order: got %v, want ErrNotYourTurn", err)
	}

	// Group 1 signs through the form.
	_, doc = page(t, c, first)
	form := doc.Find("form")
	if doc.Find(`[data-testid="sandbox-sign"]`).Length() != 1 || doc.Find(`[data-testid="sandbox-decline"]`).Length() != 1 {
		t.Fatal("first signer's page: want Sign and Decline buttons")
	}
	ftok, _ := form.Find(`input[name="form_token"]`).Attr("value")
	action, _ := form.Attr("action")
	post := func(v url.Values) *http.Response {
		t.Helper()
		resp, err := c.PostForm(s.URL+action, v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(url.Values{"action": {"sign"}, "form_token": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged form token: got %d, want 403", resp.StatusCode)
	}
	if got := signerStatuses(t, s, tok, id); got != "NEED_TO_SIGN WAITING_FOR_OTHERS" {
		t.Fatalf("after a forged post: got %s, want nothing signed", got)
	}
	resp = post(url.Values{"action": {"sign"}, "form_token": {ftok}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "?done=signed") {
		t.Fatalf("sign: got %d %q, want 303 to ?done=signed", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := post(url.Values{"action": {"decline"}, "form_token": {ftok}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replayed form token: got %d, want 403", resp.StatusCode)
	}
	if got := signerStatuses(t, s, tok, id); got != "APPROVED NEED_TO_SIGN" {
		t.Fatalf("after group 1: got %s, want APPROVED NEED_TO_SIGN", got)
	}
	_, doc = page(t, c, first)
	if doc.Find(`[data-testid="sandbox-sign"]`).Length() != 0 || doc.Find(`[data-testid="sandbox-signer-status"]`).Text() != "APPROVED" {
		t.Error("first signer's page after signing: want no Sign button and status APPROVED")
	}

	// Group 2 signs through the Go API: the request is APPROVED.
	if err := s.Sign(id, "second@example.com"); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if st, _ := s.RequestStatus(id); st != "APPROVED" {
		t.Errorf("status: got %s, want APPROVED", st)
	}
	if err := s.Sign(id, "second@example.com"); !errors.Is(err, ErrNotSignable) {
		t.Errorf("Sign after approval: got %v, want ErrNotSignable", err)
	}
}

func TestSignerDecline(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	id := sendOrder(t, s, tok)
	c := browser()
	u, _ := s.SignerURL(id, "first@example.com")
	_, doc := page(t, c, u)
	ftok, _ := doc.Find(`input[name="form_token"]`).Attr("value")
	resp, err := c.PostForm(u, url.Values{"action": {"decline"}, "form_token": {ftok}, "reason": {"Wrong address"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("decline: got %d, want 303", resp.StatusCode)
	}
	sr := getRequest(t, s, tok, id)
	if sr["status"] != "REJECTED" || sr["reason"] != "Declined by first@example.com: Wrong address" {
		t.Errorf("after decline: got %v / %v, want REJECTED / Declined by first@example.com: Wrong address", sr["status"], sr["reason"])
	}
	if got := signerStatuses(t, s, tok, id); got != "REJECTED WAITING_FOR_OTHERS" {
		t.Errorf("signers: got %s", got)
	}
}

func TestSignDeclineErrors(t *testing.T) {
	s := newTestServer(t, Options{})
	open := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	tests := []struct {
		name, id, email string
		decline         bool
		want            error
	}{
		{"unknown request", "ffffffffffffffffffffffff", ada, false, ErrUnknownRequest},
		{"not a signer", open, "nobody@example.com", false, ErrUnknownSigner},
		{"already signed", open, "charles.babbage@example.com", false, ErrNotYourTurn},
		{"processing", seededID(t, s.Fake, "Invoice approval — July"), ada, true, ErrNotSignable},
		{"cancelled", seededID(t, s.Fake, "Equipment purchase order"), ada, false, ErrNotSignable},
		{"later group", seededID(t, s.Fake, "Research grant application"), ada, true, ErrNotYourTurn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.decline {
				err = s.Decline(tt.id, tt.email, "")
			} else {
				err = s.Sign(tt.id, tt.email)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if err := s.Decline(open, ada, ""); err != nil {
		t.Fatalf("Decline: %v", err)
	}
	if st, _ := s.RequestStatus(open); st != "REJECTED" {
		t.Errorf("status: got %s, want REJECTED", st)
	}
	if _, ok := s.RequestStatus("nope"); ok {
		t.Error("RequestStatus of an unknown id: got ok")
	}
	if _, ok := s.SignerURL(open, "nobody@example.com"); ok {
		t.Error("SignerURL of a non-signer: got ok")
	}
}

func TestExpiredRequestCannotBeSigned(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now})
	id := seededID(t, s.Fake, "Contractor onboarding pack") // expires in 20 h
	clock.Add(21 * time.Hour)
	if err := s.Sign(id, "mary.somerville@example.com"); !errors.Is(err, ErrNotSignable) {
		t.Errorf("got %v, want ErrNotSignable", err)
	}
}

func TestSandboxPagesBadInput(t *testing.T) {
	s := newTestServer(t, Options{})
	c := browser()
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/sandbox/requests/ffffffffffffffffffffffff", 404},
		{"GET", "/sandbox/requests/..%2f..%2fetc", 404},
		{"GET", "/sandbox/sign/sgn_unknown", 404},
		{"GET", "/sandbox/sign/%3Cscript%3E", 404},
		{"POST", "/sandbox/sign/sgn_unknown", 404},
		{"GET", "/sandbox/files/", 404},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.URL+tt.path, strings.NewReader("action=sign"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}

	t.Run("post without a valid action", func(t *testing.T) {
		u, _ := s.SignerURL(seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd"), ada)
		_, doc := page(t, c, u)
		ftok, _ := doc.Find(`input[name="form_token"]`).Attr("value")
		resp, err := c.PostForm(u, url.Values{"action": {"approve-all"}, "form_token": {ftok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("got %d, want 400", resp.StatusCode)
		}
	})
}

func TestAutoSign(t *testing.T) {
	s := newTestServer(t, Options{AutoSignAfter: time.Millisecond})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	body := validSend("Auto")
	body["signing_type"] = "ORDER"
	body["signers"] = []map[string]any{
		{"email_address": ada, "name": "Ada", "group": 2},
		{"email_address": "b@example.com", "name": "B", "group": 1},
	}
	id := mustSend(t, s, tok, body)
	waitStatus(t, s.Fake, id, "APPROVED")
	if got := signerStatuses(t, s, tok, id); got != "APPROVED APPROVED" {
		t.Errorf("signers: got %s", got)
	}
	// Seeded requests are not touched: auto-signing starts with processing.
	if st, _ := s.RequestStatus(seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")); st != "NEED_TO_SIGN" {
		t.Errorf("seeded request: got %s, want NEED_TO_SIGN", st)
	}
}
