package luminfake

// The signer side of the sandbox: what Lumin's e-mails and signing pages do in
// production. A details page per request (the API's details_url) lists the signers with a
// link to each one's signing page, where they Sign or Decline. Plain HTML, no JavaScript.
//
// These pages need no sign-in: the request id (96 random bits) and the signer token
// (256 random bits) act as capabilities, like the signing links Lumin e-mails. The forms
// carry a per-page random token (one use, constant-time check) so another site cannot
// post them.

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// Errors of Sign and Decline.
var (
	// ErrUnknownRequest: no signature request has that id.
	ErrUnknownRequest = errors.New("luminfake: unknown signature request")
	// ErrUnknownSigner: the email is not a signer of that request.
	ErrUnknownSigner = errors.New("luminfake: not a signer of this signature request")
	// ErrNotSignable: the request is not waiting for signatures (processing or finished) or has expired.
	ErrNotSignable = errors.New("luminfake: the signature request cannot be signed now")
	// ErrNotYourTurn: the signer already acted, or an earlier ORDER group has not signed yet.
	ErrNotYourTurn = errors.New("luminfake: it is not this signer's turn")
)

const maxFormTokens = 8 // open tabs per signer page whose form still works

// RequestStatus returns the status of a signature request.
func (f *Fake) RequestStatus(id string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sr, ok := f.requests[id]
	if !ok {
		return "", false
	}
	return sr.status, true
}

// SignerURL returns the absolute URL of a signer's sandbox signing page.
func (f *Fake) SignerURL(requestID, email string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sr, ok := f.requests[requestID]
	if !ok {
		return "", false
	}
	s := signerByEmail(sr, email)
	if s == nil {
		return "", false
	}
	return f.opts.Issuer + "/sandbox/sign/" + s.token, true
}

// Sign makes the signer sign now, as if they clicked Sign on their page (webhooks
// _viewed if not yet sent, _signed, and _approved + _downloadable when it was the last
// signature).
func (f *Fake) Sign(requestID, email string) error {
	f.mu.Lock()
	sr, s, err := f.findSignerLocked(requestID, email)
	var jobs []webhookJob
	if err == nil {
		jobs, err = f.signLocked(sr, s)
	}
	f.mu.Unlock()
	f.dispatch(jobs)
	return err
}

// Decline makes the signer decline: the request becomes REJECTED with reason
// "Declined by <email>" (plus ": reason" when given); webhook _declined.
func (f *Fake) Decline(requestID, email, reason string) error {
	f.mu.Lock()
	sr, s, err := f.findSignerLocked(requestID, email)
	var jobs []webhookJob
	if err == nil {
		jobs, err = f.declineLocked(sr, s, reason)
	}
	f.mu.Unlock()
	f.dispatch(jobs)
	return err
}

func (f *Fake) findSignerLocked(requestID, email string) (*sigRequest, *sigSigner, error) {
	sr, ok := f.requests[requestID]
	if !ok {
		return nil, nil, ErrUnknownRequest
	}
	s := signerByEmail(sr, email)
	if s == nil {
		return nil, nil, ErrUnknownSigner
	}
	return sr, s, nil
}

// actionableLocked says whether s may sign or decline now.
func (f *Fake) actionableLocked(sr *sigRequest, s *sigSigner) error {
	if (sr.status != statusNeedToSign && sr.status != statusWaiting) || !f.now().Before(sr.expiresAt) {
		return ErrNotSignable
	}
	if s.status != statusNeedToSign {
		return ErrNotYourTurn
	}
	return nil
}

// viewLocked marks s as having opened the document (webhook _viewed, once).
func (f *Fake) viewLocked(sr *sigRequest, s *sigSigner) []webhookJob {
	if s.viewed || (sr.status != statusNeedToSign && sr.status != statusWaiting) {
		return nil
	}
	s.viewed = true
	return f.eventLocked(sr, "signature_request_viewed")
}

func (f *Fake) signLocked(sr *sigRequest, s *sigSigner) ([]webhookJob, error) {
	if err := f.actionableLocked(sr, s); err != nil {
		return nil, err
	}
	jobs := f.viewLocked(sr, s)
	now := f.now()
	s.isApproved, s.status, s.signedAt = true, statusApproved, now
	advanceLocked(sr)
	sr.updatedAt = now
	jobs = append(jobs, f.eventLocked(sr, "signature_request_signed")...)
	if sr.status == statusApproved {
		jobs = append(jobs, f.eventLocked(sr, "signature_request_approved", "signature_request_downloadable")...)
	}
	return jobs, nil
}

func (f *Fake) declineLocked(sr *sigRequest, s *sigSigner, reason string) ([]webhookJob, error) {
	if err := f.actionableLocked(sr, s); err != nil {
		return nil, err
	}
	jobs := f.viewLocked(sr, s)
	now := f.now()
	s.status, s.signedAt = statusRejected, now
	sr.status, sr.reason, sr.updatedAt = statusRejected, "Declined by "+s.email, now
	if r := strings.TrimSpace(reason); r != "" {
		sr.reason += ": " + truncateRunes(r, 500)
	}
	return append(jobs, f.eventLocked(sr, "signature_request_declined")...), nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// scheduleAutoSignLocked implements Options.AutoSignAfter: after the delay, every signer
// whose turn it is signs; ORDER requests repeat that group by group.
func (f *Fake) scheduleAutoSignLocked(sr *sigRequest) {
	if f.opts.AutoSignAfter <= 0 {
		return
	}
	f.afterLocked(f.opts.AutoSignAfter, func() {
		f.mu.Lock()
		var jobs []webhookJob
		for _, s := range sr.signers {
			if j, err := f.signLocked(sr, s); err == nil {
				jobs = append(jobs, j...)
			}
		}
		if sr.status == statusNeedToSign || sr.status == statusWaiting {
			f.scheduleAutoSignLocked(sr)
		}
		f.mu.Unlock()
		f.dispatch(jobs)
	})
}

// --- pages ------------------------------------------------------------------------------

// pageCSS is the only style of the sandbox pages; the CSP allows exactly this block by hash.
const pageCSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1f;background:#f6f6f8}
.banner{background:#7a1f5c;color:#fff;padding:.5rem 1rem;font-weight:600}
main{max-width:48rem;margin:1.5rem auto;padding:1.5rem;background:#fff;border-radius:.5rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}
.status{font-weight:600}.note{padding:.75rem;background:#eef5ff;border-radius:.25rem}
.error{padding:.75rem;background:#fde8e8;border-radius:.25rem}
button{font:inherit;padding:.5rem 1.25rem;margin-right:.5rem;border-radius:.25rem;border:1px solid #444;cursor:pointer}
button.primary{background:#1a56db;color:#fff;border-color:#1a56db}
textarea{width:100%;font:inherit}a{color:#1a56db}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}`

var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

var pageTemplates = template.Must(template.New("layout").Funcs(template.FuncMap{
	"css":  func() template.CSS { return template.CSS(pageCSS) },
	"date": func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.PageTitle}} · Lumin sandbox</title><style>{{css}}</style></head>
<body><div class="banner" role="note">Lumin sandbox: a local stand-in for Lumin Sign. Nothing here is real.</div>
<main {{if .TestID}}data-testid="{{.TestID}}"{{end}}>
{{- if eq .Page "details"}}{{template "details" .}}{{else if eq .Page "sign"}}{{template "sign" .}}{{else}}{{template "notfound" .}}{{end -}}
</main></body></html>
{{define "details"}}
<h1>{{.R.Title}}</h1>
<p>Status: <span class="status" data-testid="sandbox-request-status">{{.R.Status}}</span>{{with .R.Reason}} — {{.}}{{end}}</p>
<p>Signing: {{if eq .R.SigningType "ORDER"}}in order, group by group{{else}}all signers at the same time{{end}}.
Expires {{date .R.Expires}}.</p>
<table><caption>Signers</caption>
<thead><tr><th scope="col">Group</th><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Status</th><th scope="col">Signing page</th></tr></thead>
<tbody>{{range .R.Signers}}<tr><td>{{.Group}}</td><td>{{.Name}}</td><td>{{.Email}}</td><td>{{.Status}}</td>
<td><a href="/sandbox/sign/{{.Token}}">Open as {{.Name}}</a></td></tr>{{end}}</tbody></table>
{{end}}
{{define "sign"}}
<h1>{{.R.Title}}</h1>
<p>Signing as <strong>{{.S.Name}}</strong> ({{.S.Email}}). Request status:
<span class="status" data-testid="sandbox-request-status">{{.R.Status}}</span>; your status:
<span class="status" data-testid="sandbox-signer-status">{{.S.Status}}</span>.</p>
{{with .Flash}}<p class="note" role="status">{{.}}</p>{{end}}
{{with .Error}}<p class="error" role="alert">{{.}}</p>{{end}}
{{if .CanAct}}
<form method="post" action="/sandbox/sign/{{.S.Token}}">
<input type="hidden" name="form_token" value="{{.FormToken}}">
<p><label for="reason">Reason if you decline (optional)</label>
<textarea id="reason" name="reason" rows="2" maxlength="500"></textarea></p>
<button class="primary" type="submit" name="action" value="sign" data-testid="sandbox-sign">Sign</button>
<button type="submit" name="action" value="decline" data-testid="sandbox-decline">Decline</button>
</form>
{{else}}<p class="note">{{.Why}}</p>{{end}}
<p><a href="/sandbox/requests/{{.R.ID}}">All signers of this request</a></p>
{{end}}
{{define "notfound"}}<h1>Not found</h1><p>This sandbox link does not exist.</p>{{end}}
`))

type pageSigner struct {
	Group               int
	Name, Email, Status string
	Token               string
}

type pageRequest struct {
	ID, Title, Status, Reason, SigningType string
	Expires                                time.Time
	Signers                                []pageSigner
}

type pageData struct {
	Page              string // details, sign or notfound
	PageTitle, TestID string
	R                 pageRequest
	S                 pageSigner
	CanAct            bool
	Why               string
	FormToken         string
	Flash, Error      string
}

func (f *Fake) pageRequestLocked(sr *sigRequest) pageRequest {
	p := pageRequest{ID: sr.id, Title: sr.title, Status: sr.status, SigningType: sr.signingType, Expires: sr.expiresAt}
	if sr.status == statusFailed || sr.status == statusRejected {
		p.Reason = sr.reason
	}
	for _, s := range sr.signers {
		p.Signers = append(p.Signers, pageSigner{s.group, s.name, s.email, s.status, s.token})
	}
	return p
}

// renderPage renders into a buffer first so a template error never sends half a page.
func renderPage(w http.ResponseWriter, status int, page string, d pageData) {
	d.Page = page
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, "layout", d); err != nil {
		http.Error(w, "sandbox page error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// The URLs carry capabilities: keep them out of caches and Referer headers.
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func notFoundPage(w http.ResponseWriter) {
	renderPage(w, http.StatusNotFound, "notfound", pageData{PageTitle: "Not found"})
}

// handleDetailsPage is GET /sandbox/requests/{id}: the page behind details_url.
func (f *Fake) handleDetailsPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	sr, ok := f.requests[id]
	var d pageData
	if ok && idPattern.MatchString(id) {
		d = pageData{PageTitle: sr.title, TestID: "sandbox-request-page", R: f.pageRequestLocked(sr)}
	}
	f.mu.Unlock()
	if d.TestID == "" {
		notFoundPage(w)
		return
	}
	renderPage(w, http.StatusOK, "details", d)
}

// signerByTokenLocked finds a signer by page token in constant time per comparison.
func (f *Fake) signerByTokenLocked(tok string) (*sigRequest, *sigSigner) {
	if !strings.HasPrefix(tok, "sgn_") {
		return nil, nil
	}
	for _, sr := range f.requests {
		for _, s := range sr.signers {
			if subtle.ConstantTimeCompare([]byte(s.token), []byte(tok)) == 1 {
				return sr, s
			}
		}
	}
	return nil, nil
}

// signerPageLocked builds the signer page with a fresh form token.
func (f *Fake) signerPageLocked(sr *sigRequest, s *sigSigner) pageData {
	d := pageData{PageTitle: sr.title, TestID: "sandbox-signer-page", R: f.pageRequestLocked(sr),
		S: pageSigner{s.group, s.name, s.email, s.status, s.token}}
	switch err := f.actionableLocked(sr, s); {
	case err == nil:
		d.CanAct = true
		d.FormToken = randomToken("")
		s.formTokens = append(s.formTokens, d.FormToken)
		if len(s.formTokens) > maxFormTokens {
			s.formTokens = s.formTokens[len(s.formTokens)-maxFormTokens:]
		}
	case s.status == statusApproved:
		d.Why = "You have signed this document."
	case s.status == statusRejected:
		d.Why = "You declined this document."
	case sr.status == statusProcessing:
		d.Why = "The document is still being processed. Reload in a moment."
	case terminalStatus(sr.status):
		d.Why = "This signature request is " + sr.status + "; nothing is left to do."
	case errors.Is(err, ErrNotSignable):
		d.Why = "This signature request has expired."
	default:
		d.Why = "Earlier signers have to sign first. You will be able to sign once it is your turn."
	}
	return d
}

// handleSignerPage is GET /sandbox/sign/{token}: one signer's signing page. The first
// view sends signature_request_viewed.
func (f *Fake) handleSignerPage(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	sr, s := f.signerByTokenLocked(r.PathValue("token"))
	var d pageData
	var jobs []webhookJob
	if s != nil {
		jobs = f.viewLocked(sr, s)
		d = f.signerPageLocked(sr, s)
		switch r.URL.Query().Get("done") {
		case "signed":
			d.Flash = "Thank you: your signature was recorded."
		case "declined":
			d.Flash = "You declined; the sender has been told."
		}
	}
	f.mu.Unlock()
	f.dispatch(jobs)
	if s == nil {
		notFoundPage(w)
		return
	}
	renderPage(w, http.StatusOK, "sign", d)
}

// handleSignerPost is POST /sandbox/sign/{token}: Sign or Decline, then 303 back to the
// page (Post/Redirect/Get). The form token is single-use.
func (f *Fake) handleSignerPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	formErr := r.ParseForm()
	tok := r.PathValue("token")

	f.mu.Lock()
	sr, s := f.signerByTokenLocked(tok)
	if s == nil {
		f.mu.Unlock()
		notFoundPage(w)
		return
	}
	valid := false
	if formErr == nil {
		got := []byte(r.PostForm.Get("form_token"))
		for i, ft := range s.formTokens {
			if subtle.ConstantTimeCompare([]byte(ft), got) == 1 {
				s.formTokens = append(s.formTokens[:i:i], s.formTokens[i+1:]...)
				valid = true
				break
			}
		}
	}
	var jobs []webhookJob
	var err error
	status, msg, done := 0, "", ""
	switch action := r.PostForm.Get("action"); {
	case !valid:
		status, msg = http.StatusForbidden, "This form has expired or did not come from this page. Please try again."
	case action == "sign":
		jobs, err = f.signLocked(sr, s)
		done = "signed"
	case action == "decline":
		jobs, err = f.declineLocked(sr, s, r.PostForm.Get("reason"))
		done = "declined"
	default:
		status, msg = http.StatusBadRequest, "Choose Sign or Decline."
	}
	if err != nil {
		status, msg = http.StatusConflict, "This action is no longer possible."
	}
	var d pageData
	if status != 0 {
		d = f.signerPageLocked(sr, s)
		d.Error = msg
	}
	f.mu.Unlock()
	f.dispatch(jobs)
	if status != 0 {
		renderPage(w, status, "sign", d)
		return
	}
	http.Redirect(w, r, "/sandbox/sign/"+tok+"?done="+done, http.StatusSeeOther)
}
