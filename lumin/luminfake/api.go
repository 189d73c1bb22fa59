package luminfake

// The REST API half of the sandbox: Lumin's /v1 endpoints (lumin-api.md §14–§20).
//
// Where Lumin documents nothing, the sandbox makes these choices (all errors use Lumin's 4xx
// body {"error_code", "error_message"}, lumin-api.md §17):
//
//   - 401 unauthorized: missing, unknown, expired or revoked access token. No
//     WWW-Authenticate header: whether Lumin sends one is unknown (lumin-api.md §17), so a
//     client must key on the status alone.
//   - 403 insufficient_scope: the grant lacks the scope. GET /user/info needs openid OR
//     profile.read (lumin-api.md §13 leaves its scope open; "openid profile.read" is the
//     working assumption, and either one grants profile data); reads need sign:requests.read
//     or sign:requests; writes need sign:requests. A signer with "verification" gets 403
//     verification_not_licensed (lumin-api.md §16.3: the sandbox has no Digital Trust licence).
//   - 404 signature_request_not_found: unknown id, malformed id (not 24 lower-case hex
//     digits), or a request owned by another user (Lumin: "outside this Workspace").
//   - 400 validation_error: bad input, with a message naming the field.
//   - 400 invalid_status: PATCH, cancel or remind in a status that does not allow it
//     (lumin-api.md §16.2: expiry changes only in NEED_TO_SIGN / WAITING_FOR_OTHERS; cancel and
//     remind only before a terminal status). 400 rather than 409, because 409 is the documented
//     "not ready yet" answer of the file endpoint and means something else to a client.
//   - 400 cancel_not_allowed: cancelling a request that was not sent through the API
//     (lumin-api.md §16.3 "reportedly only for API-created requests"; strictest reading).
//   - 406 not_acceptable, 409 signature_request_not_approved: file endpoint (lumin-api.md §16.5).
//   - 413 file_too_large: uploads over 20 MB (Lumin's free-plan limit, lumin-api.md §16.3).
//   - 415 unsupported_media_type: send with a body that is neither JSON nor multipart.
//   - Templates (GET /templates, GET /templates/{id}, send-from-template) add
//     400 invalid_api_version, 404 template_not_found and 422 invalid_template_type: see
//     templates.go.
//
// # Send: accepted encodings
//
// application/json: {"file_url", "title", "expires_at", "signing_type", "signers": [{"email_address",
// "name", "group"}], "viewers": [{"email_address", "name"}], "use_text_tags", "custom_email"}.
// expires_at is epoch milliseconds as a JSON number or a numeric string (Lumin's spec types it as
// a string, its examples as a number).
//
// multipart/form-data (Lumin does not document its form encoding, so the sandbox accepts the
// two plausible ones):
//
//	file                         the document; must start with "%PDF-" and be ≤ 20 MB
//	title, expires_at            text values (expires_at: decimal epoch milliseconds)
//	signing_type, use_text_tags  optional text values ("SAME_TIME"|"ORDER"; "true"|"false")
//	signers[0][email_address]    indexed signer fields, indexes 0, 1, 2 … without gaps,
//	signers[0][name]             or instead one field "signers" holding the JSON array of the
//	signers[0][group]            JSON body (mixing both forms is a 400)
//	viewers[0][email_address]    likewise for viewers (or one "viewers" JSON field)
//	viewers[0][name]
//
// The sandbox cannot fetch file_url (it is offline): it checks the URL is https and
// stores a generated placeholder PDF instead.
//
// Sandbox triggers: a title containing "[fail]" ends FAILED with reason "Text tags are
// invalid" (webhook signature_request_invalid); a reminder to an address containing
// "+bounce@" reports email_status BOUNCE.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Signature-request and signer statuses (lumin-api.md §16.2).
const (
	statusProcessing = "WAITING_FOR_PROCESSING"
	statusNeedToSign = "NEED_TO_SIGN"
	statusWaiting    = "WAITING_FOR_OTHERS"
	statusApproved   = "APPROVED"
	statusRejected   = "REJECTED"
	statusCancelled  = "CANCELLED"
	statusFailed     = "FAILED"

	signingSameTime = "SAME_TIME"
	signingOrder    = "ORDER"
)

const (
	maxJSONBody      = 1 << 20
	maxSigners       = 100 // not documented by Lumin; bounds the work a request can cause
	fileLinkTTL      = 30 * time.Minute
	remindDailyLimit = 10 // per signer per day (lumin-api.md §16.3)
	defaultProcess   = time.Second
	failTrigger      = "[fail]"
	failReason       = "Text tags are invalid"
)

// maxUploadBytes is Lumin's free-plan upload limit (lumin-api.md §16.3). A variable only
// so that a test can lower it instead of pushing 20 MB through the race detector.
var maxUploadBytes int64 = 20 << 20

// idPattern is the shape of the sandbox's signature-request ids (24 hex digits, like
// Lumin's). Anything else is answered 404 before a lookup.
var idPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

func terminalStatus(s string) bool {
	switch s {
	case statusApproved, statusRejected, statusCancelled, statusFailed:
		return true
	}
	return false
}

// apiError is one 4xx answer in Lumin's error shape.
type apiError struct {
	status  int
	code    string
	message string
}

func validation(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "validation_error", fmt.Sprintf(format, args...)}
}

var errNotFound = &apiError{http.StatusNotFound, "signature_request_not_found", "signature request not found or not accessible"}

// scopeRule says which scopes an endpoint accepts (lumin-api.md §13).
type scopeRule int

const (
	scopeProfile      scopeRule = iota // openid or profile.read
	scopeRead                          // sign:requests.read or sign:requests
	scopeWrite                         // sign:requests
	scopeTemplates                     // templates (templates.go)
	scopeTemplateSend                  // sign:requests AND templates (templates.go)
)

func (s scopeRule) allows(g *grant) bool {
	switch s {
	case scopeProfile:
		return g.hasScope("openid") || g.hasScope("profile.read")
	case scopeRead:
		return g.hasScope("sign:requests.read") || g.hasScope("sign:requests")
	case scopeTemplates:
		return g.hasScope("templates")
	case scopeTemplateSend:
		return g.hasScope("sign:requests") && g.hasScope("templates")
	default:
		return g.hasScope("sign:requests")
	}
}

func (s scopeRule) String() string {
	switch s {
	case scopeProfile:
		return "openid or profile.read"
	case scopeRead:
		return "sign:requests.read or sign:requests"
	case scopeTemplates:
		return "templates"
	case scopeTemplateSend:
		return "sign:requests and templates"
	default:
		return "sign:requests"
	}
}

// registerAPI registers the REST API under /v1 and the sandbox's browser pages.
func (f *Fake) registerAPI(mux *http.ServeMux) {
	mux.Handle("GET /v1/user/info", f.apiRoute(scopeProfile, f.handleUserInfo))
	mux.Handle("POST /v1/signature_request/send", f.apiRoute(scopeWrite, f.handleSend))
	mux.Handle("GET /v1/signature_request/{id}", f.apiRoute(scopeRead, f.handleGet))
	mux.Handle("PATCH /v1/signature_request/{id}", f.apiRoute(scopeWrite, f.handleUpdateExpiry))
	mux.Handle("PUT /v1/signature_request/cancel/{id}", f.apiRoute(scopeWrite, f.handleCancel))
	mux.Handle("POST /v1/signature_request/remind/{id}", f.apiRoute(scopeWrite, f.handleRemind))
	mux.Handle("GET /v1/signature_request/{id}/file", f.apiRoute(scopeRead, f.handleFile))
	mux.Handle("POST /v1/signature_request/send-from-template", f.apiRoute(scopeTemplateSend, f.handleSendFromTemplate))
	mux.Handle("GET /v1/templates", f.apiRoute(scopeTemplates, f.handleListTemplates))
	mux.Handle("GET /v1/templates/{id}", f.apiRoute(scopeTemplates, f.handleGetTemplate))
	// Everything else under /v1 (unknown paths, wrong methods, the list endpoint Lumin
	// does not have, lumin-api.md §16.4) gets a JSON 404 after authentication, like an API
	// gateway in front of the service.
	mux.Handle("/v1/", f.apiRoute(scopeRule(-1), func(w http.ResponseWriter, r *http.Request, g *grant) {
		writeAPIError(w, &apiError{http.StatusNotFound, "not_found", "no such endpoint: " + r.Method + " " + r.URL.Path})
	}))

	mux.HandleFunc("GET /sandbox/requests/{id}", f.handleDetailsPage)
	mux.HandleFunc("GET /sandbox/sign/{token}", f.handleSignerPage)
	mux.HandleFunc("POST /sandbox/sign/{token}", f.handleSignerPost)
	mux.HandleFunc("GET /sandbox/files/{token}", f.handleSignedFile)
}

// --- request pipeline -----------------------------------------------------------------

// bufferedResponse collects a handler's answer so that faults can rewrite it and the
// client never sees half a body.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// apiRoute wraps a REST handler with, in order: fault latency, the APIStatus fault,
// bearer authentication (RFC 6750 §2.1), the scope check, the MalformedJSON fault and the
// request log. A negative rule skips the scope check (authentication still applies).
func (f *Fake) apiRoute(rule scopeRule, h func(http.ResponseWriter, *http.Request, *grant)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr := LoggedRequest{Method: r.Method, Path: r.URL.Path, Authorization: hasBearer(r)}
		lr.Status = f.serveAPI(w, r, rule, h)
		f.record(lr)
	})
}

func hasBearer(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	return len(h) > len("Bearer ") && strings.EqualFold(h[:len("Bearer ")], "Bearer ")
}

// serveAPI answers one REST call and returns the status sent (0: the client went away
// during injected latency and got nothing).
func (f *Fake) serveAPI(w http.ResponseWriter, r *http.Request, rule scopeRule, h func(http.ResponseWriter, *http.Request, *grant)) int {
	f.mu.Lock()
	latency := f.faults.Latency
	f.mu.Unlock()
	if latency > 0 {
		f.mu.Lock()
		f.sandbox.sleeping++
		f.mu.Unlock()
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
		f.mu.Lock()
		f.sandbox.sleeping--
		f.mu.Unlock()
		if r.Context().Err() != nil {
			return 0
		}
	}

	f.mu.Lock()
	fl := f.faults
	if fl.APIPath != "" && !strings.HasPrefix(r.URL.Path, fl.APIPath) {
		fl.APIStatus = 0 // this call is outside the fault's scope
	}
	if fl.APIStatus != 0 && fl.APIStatusTimes > 0 {
		f.faults.APIStatusTimes--
		if f.faults.APIStatusTimes == 0 {
			f.faults.APIStatus = 0 // the countdown is over: healthy again
		}
	}
	f.mu.Unlock()

	if fl.APIStatus != 0 {
		return writeInjected(w, fl.APIStatus, fl.RetryAfter)
	}

	res := &bufferedResponse{header: make(http.Header)}
	if g, ok := f.bearer(r); !ok {
		writeAPIError(res, &apiError{http.StatusUnauthorized, "unauthorized", "the access token is missing, invalid, expired or revoked"})
	} else if rule >= 0 && !rule.allows(g) {
		writeAPIError(res, &apiError{http.StatusForbidden, "insufficient_scope", "this endpoint needs the scope " + rule.String()})
	} else {
		h(res, r, g)
	}
	if res.status == 0 {
		res.status = http.StatusOK
	}

	body := res.body.Bytes()
	if fl.MalformedJSON && strings.HasPrefix(res.header.Get("Content-Type"), "application/json") && len(body) > 1 {
		// Half a JSON document is never valid JSON (the outermost value is unclosed).
		body = body[:len(body)/2]
		res.status = http.StatusOK
	}
	for k, v := range res.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(res.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return res.status
}

// writeInjected answers with a fault status. 5xx bodies are undocumented and may be HTML
// (lumin-api.md §17), so the sandbox sends an HTML page there: a client must not assume JSON.
func writeInjected(w http.ResponseWriter, status, retryAfter int) int {
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	if status >= 500 {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", status, http.StatusText(status))
		return status
	}
	code := "error"
	if status == http.StatusTooManyRequests {
		code = "rate_limit_exceeded"
	}
	writeAPIError(w, &apiError{status, code, http.StatusText(status)})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own wire types are marshalled; they always encode
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]string{"error_code": e.code, "error_message": e.message})
}

// --- wire shapes ----------------------------------------------------------------------

// wireRequest is the SignatureRequest object (lumin-api.md §16.1). Lumin has been seen
// sending times both as numbers and as numeric strings (§16.1, §20); the sandbox sends
// updated_at as a string and the others as numbers, so a client that is not lenient
// fails its tests.
type wireRequest struct {
	ID          string       `json:"signature_request_id"`
	Title       string       `json:"title"`
	Status      string       `json:"status"`
	Reason      *string      `json:"reason"`
	SigningType string       `json:"signing_type"`
	CreatedAt   int64        `json:"created_at"`
	UpdatedAt   string       `json:"updated_at"`
	ExpiresAt   int64        `json:"expires_at"`
	DetailsURL  string       `json:"details_url"`
	Signers     []wireSigner `json:"signers"`
}

type wireSigner struct {
	EmailAddress string `json:"email_address"`
	Name         string `json:"name"`
	Group        int    `json:"group"`
	IsApproved   bool   `json:"is_approved"`
	Status       string `json:"status"`
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func (f *Fake) detailsURL(id string) string { return f.opts.Issuer + "/sandbox/requests/" + id }

// wireLocked renders sr; the caller holds f.mu.
func (f *Fake) wireLocked(sr *sigRequest) wireRequest {
	w := wireRequest{
		ID:          sr.id,
		Title:       sr.title,
		Status:      sr.status,
		SigningType: sr.signingType,
		CreatedAt:   millis(sr.createdAt),
		UpdatedAt:   strconv.FormatInt(millis(sr.updatedAt), 10),
		ExpiresAt:   millis(sr.expiresAt),
		DetailsURL:  f.detailsURL(sr.id),
		Signers:     make([]wireSigner, 0, len(sr.signers)),
	}
	if f.faults.ForeignURLs {
		w.DetailsURL = foreignOrigin + "/sandbox/requests/" + sr.id
	}
	if (sr.status == statusFailed || sr.status == statusRejected) && sr.reason != "" {
		reason := sr.reason
		w.Reason = &reason
	}
	for _, s := range sr.signers {
		w.Signers = append(w.Signers, wireSigner{s.email, s.name, s.group, s.isApproved, s.status})
	}
	return w
}

// ownedLocked finds id for the grant's user; the caller holds f.mu. Someone else's request
// is indistinguishable from a missing one (lumin-api.md §17: "outside this Workspace").
func (f *Fake) ownedLocked(id string, g *grant) (*sigRequest, *apiError) {
	if !idPattern.MatchString(id) {
		return nil, errNotFound
	}
	sr, ok := f.requests[id]
	if !ok || sr.owner == nil || g.user == nil || sr.owner.ID != g.user.ID {
		return nil, errNotFound
	}
	return sr, nil
}

// --- endpoints --------------------------------------------------------------------------

// handleUserInfo is GET /v1/user/info (lumin-api.md §15).
func (f *Fake) handleUserInfo(w http.ResponseWriter, r *http.Request, g *grant) {
	u := g.user
	writeJSON(w, http.StatusOK, map[string]any{"user": map[string]string{"id": u.ID, "email": u.Email, "name": u.Name}})
}

// handleGet is GET /v1/signature_request/{id} (lumin-api.md §16.3).
func (f *Fake) handleGet(w http.ResponseWriter, r *http.Request, g *grant) {
	f.mu.Lock()
	sr, e := f.ownedLocked(r.PathValue("id"), g)
	var wr wireRequest
	if e == nil {
		wr = f.wireLocked(sr)
	}
	f.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"signature_request": wr})
}

// signerInput is one signer of a send request.
type signerInput struct {
	EmailAddress string          `json:"email_address"`
	Name         string          `json:"name"`
	Group        *int            `json:"group"`
	Verification json.RawMessage `json:"verification"`
}

type viewerInput struct {
	EmailAddress string `json:"email_address"`
	Name         string `json:"name"`
}

// sendForm is a send request after decoding either encoding.
type sendForm struct {
	fileURL     *string
	file        []byte // nil: no upload
	otherFiles  bool   // file_urls / files[] (not supported by the sandbox)
	title       *string
	expiresAt   *string // raw: digits, possibly from a JSON number
	signingType string
	signers     []signerInput
	viewers     []viewerInput
	useTextTags bool
}

// handleSend is POST /v1/signature_request/send (lumin-api.md §16.3).
func (f *Fake) handleSend(w http.ResponseWriter, r *http.Request, g *grant) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var in sendForm
	var e *apiError
	switch {
	case err == nil && mt == "application/json":
		in, e = decodeSendJSON(w, r)
	case err == nil && mt == "multipart/form-data":
		in, e = decodeSendMultipart(w, r)
	default:
		e = &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json or multipart/form-data"}
	}
	if e != nil {
		writeAPIError(w, e)
		return
	}
	now := f.now()
	sr, e := validateSend(in, now)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if sr.file == nil {
		sr.file = makePDF(sr.title, "Sandbox placeholder document.", "The sandbox is offline and does not fetch file_url.")
	}
	f.startRequest(w, sr, g, now)
}

// startRequest stores a validated new request of g's user, answers 201 and schedules the
// asynchronous processing (lumin-api.md §16.3) that ends WAITING_FOR_PROCESSING and sends
// the webhooks. Shared by send and send-from-template, which Lumin answers alike.
func (f *Fake) startRequest(w http.ResponseWriter, sr *sigRequest, g *grant, now time.Time) {
	sr.id = randomHex(12)
	sr.owner = g.user
	sr.createdAt, sr.updatedAt = now, now
	sr.status = statusProcessing
	sr.fromAPI = true
	for _, s := range sr.signers {
		s.status = statusProcessing
		s.token = randomToken("sgn_")
	}

	f.mu.Lock()
	f.requests[sr.id] = sr
	f.afterLocked(f.processingDelay(), func() { f.finishProcessing(sr.id) })
	f.mu.Unlock()

	writeJSON(w, http.StatusCreated, map[string]any{"signature_request": map[string]any{
		"signature_request_id": sr.id,
		"created_at":           millis(now),
		"status":               statusProcessing,
	}})
}

func (f *Fake) processingDelay() time.Duration {
	if f.opts.ProcessingDelay > 0 {
		return f.opts.ProcessingDelay
	}
	return defaultProcess
}

// jsonFieldError turns a decoding error into a message that names the field, not a Go type.
func jsonFieldError(err error) *apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return validation("%s has the wrong type", te.Field)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{http.StatusRequestEntityTooLarge, "payload_too_large", "request body too large"}
	}
	return validation("request body must be a JSON object")
}

// decodeJSONBody decodes a capped JSON object body into v; trailing data is an error.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return validation("request body must be a single JSON object")
	}
	return nil
}

func decodeSendJSON(w http.ResponseWriter, r *http.Request) (sendForm, *apiError) {
	var body struct {
		FileURL     *string         `json:"file_url"`
		FileURLs    json.RawMessage `json:"file_urls"`
		Title       *string         `json:"title"`
		ExpiresAt   json.RawMessage `json:"expires_at"`
		SigningType *string         `json:"signing_type"`
		Signers     []signerInput   `json:"signers"`
		Viewers     []viewerInput   `json:"viewers"`
		UseTextTags *bool           `json:"use_text_tags"`
		CustomEmail json.RawMessage `json:"custom_email"`
	}
	if e := decodeJSONBody(w, r, &body); e != nil {
		return sendForm{}, e
	}
	in := sendForm{
		fileURL:    body.FileURL,
		otherFiles: len(body.FileURLs) > 0 && string(body.FileURLs) != "null",
		title:      body.Title,
		signers:    body.Signers,
		viewers:    body.Viewers,
	}
	if body.SigningType != nil {
		in.signingType = *body.SigningType
	}
	if body.UseTextTags != nil {
		in.useTextTags = *body.UseTextTags
	}
	if raw := bytes.TrimSpace(body.ExpiresAt); len(raw) > 0 && string(raw) != "null" {
		s := string(raw)
		if raw[0] == '"' {
			if err := json.Unmarshal(raw, &s); err != nil {
				return sendForm{}, validation("expires_at must be epoch milliseconds")
			}
		}
		in.expiresAt = &s
	}
	return in, nil
}

var (
	indexedSigner = regexp.MustCompile(`^signers\[(\d{1,3})\]\[([a-z_]+)\]`)
	indexedViewer = regexp.MustCompile(`^viewers\[(\d{1,3})\]\[([a-z_]+)\]`)
)

func decodeSendMultipart(w http.ResponseWriter, r *http.Request) (sendForm, *apiError) {
	// The cap leaves room for the form fields next to a maximal file.
	r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes+1<<20)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return sendForm{}, &apiError{http.StatusRequestEntityTooLarge, "file_too_large", "the file is larger than 20 MB"}
		}
		return sendForm{}, validation("malformed multipart/form-data body")
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	form := r.MultipartForm
	first := func(k string) *string {
		if v := form.Value[k]; len(v) > 0 {
			return &v[0]
		}
		return nil
	}

	var in sendForm
	in.fileURL = first("file_url")
	in.title = first("title")
	in.expiresAt = first("expires_at")
	if v := first("signing_type"); v != nil {
		in.signingType = *v
	}
	if v := first("use_text_tags"); v != nil {
		b, err := strconv.ParseBool(*v)
		if err != nil {
			return sendForm{}, validation("use_text_tags must be true or false")
		}
		in.useTextTags = b
	}
	in.otherFiles = len(form.File["files"])+len(form.File["files[]"])+len(form.Value["file_urls"])+len(form.Value["file_urls[]"]) > 0

	if fhs := form.File["file"]; len(fhs) > 0 {
		if len(fhs) > 1 {
			return sendForm{}, validation("exactly one file is allowed")
		}
		if fhs[0].Size > maxUploadBytes {
			return sendForm{}, &apiError{http.StatusRequestEntityTooLarge, "file_too_large", "the file is larger than 20 MB"}
		}
		fl, err := fhs[0].Open()
		if err != nil {
			return sendForm{}, validation("file could not be read")
		}
		data, err := io.ReadAll(io.LimitReader(fl, maxUploadBytes+1))
		_ = fl.Close()
		if err != nil {
			return sendForm{}, validation("file could not be read")
		}
		in.file = data
		if in.file == nil {
			in.file = []byte{} // present but empty: rejected as "not a PDF", not as "missing"
		}
	} else if first("file") != nil {
		return sendForm{}, validation("file must be sent as a file part, not a text field")
	}

	var e *apiError
	if in.signers, e = multipartSigners(form.Value); e != nil {
		return sendForm{}, e
	}
	if in.viewers, e = multipartViewers(form.Value); e != nil {
		return sendForm{}, e
	}
	return in, nil
}

// indexedFields groups "name[i][field]" values by index; indexes must run from 0
// without gaps.
func indexedFields(values map[string][]string, re *regexp.Regexp, name string) (map[int]map[string]string, *apiError) {
	out := map[int]map[string]string{}
	for k, v := range values {
		m := re.FindStringSubmatch(k)
		if m == nil || len(v) == 0 {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		if i >= maxSigners {
			return nil, validation("too many entries in %s", name)
		}
		if out[i] == nil {
			out[i] = map[string]string{}
		}
		field := m[2]
		if len(k) > len(m[0]) { // nested, e.g. signers[0][verification][method]
			field += "[]"
		}
		out[i][field] = v[0]
	}
	for i := range len(out) {
		if out[i] == nil {
			return nil, validation("indexes of %s must start at 0 and have no gaps", name)
		}
	}
	return out, nil
}

func multipartSigners(values map[string][]string) ([]signerInput, *apiError) {
	idx, e := indexedFields(values, indexedSigner, "signers")
	if e != nil {
		return nil, e
	}
	if js, ok := values["signers"]; ok && len(js) > 0 {
		if len(idx) > 0 {
			return nil, validation("send signers either as a JSON field or as indexed fields, not both")
		}
		var out []signerInput
		if err := json.Unmarshal([]byte(js[0]), &out); err != nil {
			return nil, validation("signers must be a JSON array of signers")
		}
		return out, nil
	}
	out := make([]signerInput, len(idx))
	for i := range out {
		m := idx[i]
		out[i] = signerInput{EmailAddress: m["email_address"], Name: m["name"]}
		if g, ok := m["group"]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(g))
			if err != nil {
				return nil, validation("signers[%d].group must be an integer", i)
			}
			out[i].Group = &n
		}
		if _, ok := m["verification[]"]; ok {
			out[i].Verification = json.RawMessage(`{}`)
		}
	}
	return out, nil
}

func multipartViewers(values map[string][]string) ([]viewerInput, *apiError) {
	idx, e := indexedFields(values, indexedViewer, "viewers")
	if e != nil {
		return nil, e
	}
	if js, ok := values["viewers"]; ok && len(js) > 0 {
		if len(idx) > 0 {
			return nil, validation("send viewers either as a JSON field or as indexed fields, not both")
		}
		var out []viewerInput
		if err := json.Unmarshal([]byte(js[0]), &out); err != nil {
			return nil, validation("viewers must be a JSON array of viewers")
		}
		return out, nil
	}
	out := make([]viewerInput, len(idx))
	for i := range out {
		out[i] = viewerInput{EmailAddress: idx[i]["email_address"], Name: idx[i]["name"]}
	}
	return out, nil
}

// validEmail accepts a bare address (no display name), as Lumin's examples use.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// parseMillis parses a non-negative decimal integer (epoch ms).
func parseMillis(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 16 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// validateSend applies lumin-api.md §16.3's rules and builds the request (without id,
// owner and times).
func validateSend(in sendForm, now time.Time) (*sigRequest, *apiError) {
	switch {
	case in.otherFiles:
		return nil, validation("the sandbox supports file_url or file, not file_urls or files[]")
	case in.fileURL != nil && in.file != nil:
		return nil, validation("exactly one of file_url or file is required, not both")
	case in.fileURL == nil && in.file == nil:
		return nil, validation("exactly one of file_url or file is required")
	}
	if in.fileURL != nil {
		u, err := url.Parse(*in.fileURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, validation("file_url must be an https URL")
		}
	}
	if in.file != nil {
		if int64(len(in.file)) > maxUploadBytes {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "file_too_large", "the file is larger than 20 MB"}
		}
		if !bytes.HasPrefix(in.file, []byte("%PDF-")) {
			return nil, validation("file must be a PDF document")
		}
	}
	if in.title == nil || strings.TrimSpace(*in.title) == "" {
		return nil, validation("title must not be empty")
	}
	if !utf8.ValidString(*in.title) || utf8.RuneCountInString(*in.title) > 255 {
		return nil, validation("title must be 1 to 255 characters")
	}
	if in.expiresAt == nil {
		return nil, validation("expires_at is required")
	}
	ms, ok := parseMillis(*in.expiresAt)
	if !ok {
		return nil, validation("expires_at must be epoch milliseconds")
	}
	expires := time.UnixMilli(ms)
	if !expires.After(now) {
		return nil, validation("expires_at must be in the future")
	}
	st := in.signingType
	if st == "" {
		st = signingSameTime
	}
	if st != signingSameTime && st != signingOrder {
		return nil, validation("signing_type must be SAME_TIME or ORDER")
	}
	if len(in.signers) == 0 {
		return nil, validation("signers must not be empty")
	}
	if len(in.signers) > maxSigners {
		return nil, validation("at most %d signers are allowed", maxSigners)
	}
	sr := &sigRequest{title: *in.title, signingType: st, expiresAt: expires, file: in.file, useTextTags: in.useTextTags}
	seen := map[string]bool{}
	for i, s := range in.signers {
		switch {
		case strings.TrimSpace(s.EmailAddress) == "":
			return nil, validation("signers[%d].email_address must not be empty", i)
		case !validEmail(s.EmailAddress):
			return nil, validation("signers[%d].email_address must be a valid email address", i)
		case strings.TrimSpace(s.Name) == "":
			return nil, validation("signers[%d].name must not be empty", i)
		case seen[strings.ToLower(s.EmailAddress)]:
			return nil, validation("signers[%d].email_address appears more than once", i)
		}
		seen[strings.ToLower(s.EmailAddress)] = true
		if len(s.Verification) > 0 && string(s.Verification) != "null" {
			return nil, &apiError{http.StatusForbidden, "verification_not_licensed", "signer verification needs a Digital Trust licence"}
		}
		group := 1
		if st == signingOrder {
			if s.Group == nil || *s.Group < 1 {
				return nil, validation("signers[%d].group must be an integer >= 1 for ORDER signing", i)
			}
			group = *s.Group
		}
		sr.signers = append(sr.signers, &sigSigner{email: s.EmailAddress, name: s.Name, group: group})
	}
	for i, v := range in.viewers {
		if !validEmail(v.EmailAddress) {
			return nil, validation("viewers[%d].email_address must be a valid email address", i)
		}
		sr.viewers = append(sr.viewers, v.EmailAddress)
	}
	return sr, nil
}

// finishProcessing ends WAITING_FOR_PROCESSING, as Lumin's asynchronous processing does.
func (f *Fake) finishProcessing(id string) {
	f.mu.Lock()
	sr, ok := f.requests[id]
	if !ok || sr.status != statusProcessing {
		f.mu.Unlock()
		return
	}
	sr.updatedAt = f.now()
	var jobs []webhookJob
	if strings.Contains(strings.ToLower(sr.title), failTrigger) {
		sr.status, sr.reason = statusFailed, failReason
		for _, s := range sr.signers {
			s.status = statusFailed // the signing-link status of a failed request (lumin-api.md §16.2)
		}
		jobs = f.eventLocked(sr, "signature_request_invalid")
	} else {
		advanceLocked(sr)
		jobs = f.eventLocked(sr, "signature_request_created")
		f.scheduleAutoSignLocked(sr)
	}
	f.mu.Unlock()
	f.dispatch(jobs)
}

// advanceLocked recomputes signer turns and the request status from who has signed:
// SAME_TIME signers are all due at once; ORDER signers are due group by group.
// NEED_TO_SIGN means the creator (the API caller) is due (lumin-api.md §16.2).
func advanceLocked(sr *sigRequest) {
	current := 0 // lowest group with someone still to sign
	for _, s := range sr.signers {
		if !s.isApproved && (current == 0 || s.group < current) {
			current = s.group
		}
	}
	if current == 0 {
		sr.status = statusApproved
		return
	}
	ownerDue := false
	for _, s := range sr.signers {
		switch {
		case s.isApproved:
			s.status = statusApproved
		case sr.signingType != signingOrder || s.group == current:
			s.status = statusNeedToSign
			if sr.owner != nil && strings.EqualFold(s.email, sr.owner.Email) {
				ownerDue = true
			}
		default:
			s.status = statusWaiting
		}
	}
	if ownerDue {
		sr.status = statusNeedToSign
	} else {
		sr.status = statusWaiting
	}
}

// handleUpdateExpiry is PATCH /v1/signature_request/{id} (lumin-api.md §16.3).
func (f *Fake) handleUpdateExpiry(w http.ResponseWriter, r *http.Request, g *grant) {
	var body struct {
		ExpiresAt json.RawMessage `json:"expires_at"`
	}
	f.mu.Lock()
	_, e := f.ownedLocked(r.PathValue("id"), g)
	f.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := decodeJSONBody(w, r, &body); e != nil {
		writeAPIError(w, e)
		return
	}
	raw := strings.Trim(string(bytes.TrimSpace(body.ExpiresAt)), `"`)
	if raw == "" || raw == "null" {
		writeAPIError(w, validation("expires_at is required"))
		return
	}
	ms, ok := parseMillis(raw)
	if !ok {
		writeAPIError(w, validation("expires_at must be epoch milliseconds"))
		return
	}

	f.mu.Lock()
	sr, e := f.ownedLocked(r.PathValue("id"), g)
	now := f.now()
	switch {
	case e != nil:
	case sr.status != statusNeedToSign && sr.status != statusWaiting:
		e = &apiError{http.StatusBadRequest, "invalid_status", "the expiry can only change while the request is NEED_TO_SIGN or WAITING_FOR_OTHERS, not " + sr.status}
	case !time.UnixMilli(ms).After(now):
		e = validation("expires_at must be in the future")
	}
	var wr wireRequest
	var jobs []webhookJob
	if e == nil {
		sr.expiresAt = time.UnixMilli(ms)
		sr.updatedAt = now
		wr = f.wireLocked(sr)
		jobs = f.eventLocked(sr, "signature_request_due_date_updated")
	}
	f.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	f.dispatch(jobs)
	writeJSON(w, http.StatusOK, map[string]any{"signature_request": wr})
}

// handleCancel is PUT /v1/signature_request/cancel/{id} (lumin-api.md §16.3).
func (f *Fake) handleCancel(w http.ResponseWriter, r *http.Request, g *grant) {
	f.mu.Lock()
	sr, e := f.ownedLocked(r.PathValue("id"), g)
	switch {
	case e != nil:
	case terminalStatus(sr.status):
		e = &apiError{http.StatusBadRequest, "invalid_status", "the request is already " + sr.status + " and cannot be cancelled"}
	case !sr.fromAPI:
		e = &apiError{http.StatusBadRequest, "cancel_not_allowed", "only requests sent through the API can be cancelled through the API"}
	}
	var jobs []webhookJob
	if e == nil {
		sr.status = statusCancelled
		sr.updatedAt = f.now()
		jobs = f.eventLocked(sr, "signature_request_canceled")
	}
	f.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	f.dispatch(jobs)
	writeJSON(w, http.StatusOK, map[string]string{"signature_request_id": sr.id, "status": statusCancelled})
}

type wireReminder struct {
	Email        string `json:"email"`
	SignerStatus string `json:"signer_status"`
	EmailStatus  string `json:"email_status"`
}

// handleRemind is POST /v1/signature_request/remind/{id} (lumin-api.md §16.3): at most
// remindDailyLimit reminders per signer per UTC day.
func (f *Fake) handleRemind(w http.ResponseWriter, r *http.Request, g *grant) {
	var body struct {
		Emails []string `json:"emails"`
	}
	f.mu.Lock()
	_, e := f.ownedLocked(r.PathValue("id"), g)
	f.mu.Unlock()
	if e == nil {
		e = decodeJSONBody(w, r, &body)
	}
	if e == nil && len(body.Emails) == 0 {
		e = validation("emails must not be empty")
	}
	if e == nil && len(body.Emails) > maxSigners {
		e = validation("at most %d emails are allowed", maxSigners)
	}
	if e != nil {
		writeAPIError(w, e)
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	sr, e := f.ownedLocked(r.PathValue("id"), g)
	if e == nil && sr.status != statusNeedToSign && sr.status != statusWaiting {
		e = &apiError{http.StatusBadRequest, "invalid_status", "reminders can only be sent while the request is NEED_TO_SIGN or WAITING_FOR_OTHERS, not " + sr.status}
	}
	var targets []*sigSigner
	for i := 0; e == nil && i < len(body.Emails); i++ {
		s := signerByEmail(sr, body.Emails[i])
		switch {
		case s == nil:
			e = validation("emails[%d] is not a signer of this signature request", i)
		case s.isApproved:
			e = validation("emails[%d] has already signed", i)
		}
		targets = append(targets, s)
	}
	if e != nil {
		writeAPIError(w, e)
		return
	}
	day := f.now().UTC().Format(time.DateOnly)
	reminders := make([]wireReminder, 0, len(targets))
	for _, s := range targets {
		key := sr.id + "|" + strings.ToLower(s.email) + "|" + day
		status := "SENT"
		switch {
		case f.reminds[key] >= remindDailyLimit:
			status = "EXCEED_DAILY_LIMIT"
		case strings.Contains(strings.ToLower(s.email), "+bounce@"):
			f.reminds[key]++
			status = "BOUNCE"
		default:
			f.reminds[key]++
		}
		reminders = append(reminders, wireReminder{s.email, s.status, status})
	}
	writeJSON(w, http.StatusOK, map[string]any{"signature_request": f.wireLocked(sr), "reminders": reminders})
}

func signerByEmail(sr *sigRequest, email string) *sigSigner {
	for _, s := range sr.signers {
		if strings.EqualFold(s.email, strings.TrimSpace(email)) {
			return s
		}
	}
	return nil
}

// fileLink is one signed download URL (lumin-api.md §16.5: it lives 30 minutes).
type fileLink struct {
	kind    string
	expires time.Time
}

// negotiate picks application/json or application/pdf from an Accept header (RFC 9110
// §12.5.1): highest q wins, ties go to the earlier entry; "" means nothing acceptable.
// A missing Accept header means any type; the sandbox then answers JSON.
func negotiate(accept string) string {
	if strings.TrimSpace(accept) == "" {
		return "application/json"
	}
	best, bestQ := "", 0.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		var cand string
		switch mt {
		case "application/json", "application/*", "*/*":
			cand = "application/json"
		case "application/pdf":
			cand = "application/pdf"
		}
		if cand != "" && q > bestQ {
			best, bestQ = cand, q
		}
	}
	return best
}

// handleFile is GET /v1/signature_request/{id}/file?type=agreement|coc|merged
// (lumin-api.md §16.5).
func (f *Fake) handleFile(w http.ResponseWriter, r *http.Request, g *grant) {
	kind := r.URL.Query().Get("type")
	if kind == "" {
		kind = "agreement"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sr, e := f.ownedLocked(r.PathValue("id"), g)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if kind != "agreement" && kind != "coc" && kind != "merged" {
		writeAPIError(w, validation("type must be agreement, coc or merged"))
		return
	}
	ct := negotiate(r.Header.Get("Accept"))
	if ct == "" {
		writeAPIError(w, &apiError{http.StatusNotAcceptable, "not_acceptable", "Accept must allow application/json or application/pdf"})
		return
	}
	if kind != "agreement" && sr.status != statusApproved {
		writeAPIError(w, &apiError{http.StatusConflict, "signature_request_not_approved", "the " + kind + " file exists only once the request is APPROVED"})
		return
	}
	now := f.now()
	if ct == "application/pdf" {
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Disposition", `attachment; filename="`+fileName(sr.title, kind)+`"`)
		_, _ = w.Write(f.documentLocked(sr, kind))
		return
	}
	tok := randomToken("")
	if sr.links == nil {
		sr.links = map[string]fileLink{}
	}
	for k, l := range sr.links {
		if !now.Before(l.expires) {
			delete(sr.links, k)
		}
	}
	exp := now.Add(fileLinkTTL)
	sr.links[hashToken(tok)] = fileLink{kind: kind, expires: exp}
	signed := f.opts.Issuer + "/sandbox/files/" + tok
	if f.faults.ForeignURLs {
		signed = foreignOrigin + "/sandbox/files/" + tok
	}
	writeJSON(w, http.StatusOK, map[string]any{"signed_url": signed, "expires_at": exp.Unix()})
}

// documentLocked returns the PDF of one file type; the caller holds f.mu.
func (f *Fake) documentLocked(sr *sigRequest, kind string) []byte {
	switch kind {
	case "coc":
		return makePDF(certificateLines(sr)...)
	case "merged":
		lines := append([]string{sr.title + " (signed)", ""}, certificateLines(sr)...)
		return makePDF(lines...)
	default:
		return sr.file
	}
}

func certificateLines(sr *sigRequest) []string {
	lines := []string{"Certificate of completion", "Document: " + sr.title, "Signature request: " + sr.id, ""}
	signers := slices.Clone(sr.signers)
	sort.SliceStable(signers, func(i, j int) bool { return signers[i].group < signers[j].group })
	for _, s := range signers {
		lines = append(lines, fmt.Sprintf("%s <%s> signed %s", s.name, s.email, s.signedAt.UTC().Format(time.RFC3339)))
	}
	return lines
}

// fileName is a safe attachment name: ASCII letters, digits, '-' and '_' only, so the
// Content-Disposition header cannot be broken by a title.
func fileName(title, kind string) string {
	var b strings.Builder
	for _, c := range title {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		case c == ' ' && b.Len() > 0:
			b.WriteByte('_')
		}
		if b.Len() >= 60 {
			break
		}
	}
	name := strings.Trim(b.String(), "_")
	if name == "" {
		name = "document"
	}
	if kind != "agreement" {
		name += "-" + kind
	}
	return name + ".pdf"
}

// handleSignedFile is GET /sandbox/files/{token}: the storage behind signed_url. Like a
// pre-signed object URL it needs no bearer token and stops working after 30 minutes.
func (f *Fake) handleSignedFile(w http.ResponseWriter, r *http.Request) {
	h := hashToken(r.PathValue("token"))
	f.mu.Lock()
	var doc []byte
	var name string
	now := f.now()
	for _, sr := range f.requests {
		l, ok := sr.links[h]
		if !ok {
			continue
		}
		if now.Before(l.expires) {
			doc, name = f.documentLocked(sr, l.kind), fileName(sr.title, l.kind)
		} else {
			delete(sr.links, h)
		}
		break
	}
	f.mu.Unlock()
	if doc == nil {
		http.Error(w, "this link does not exist or has expired", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	_, _ = w.Write(doc)
}
