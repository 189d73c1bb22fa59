package lumin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TokenSource hands the REST client a valid access token. The handlers implement it over
// the cookie session so that a refresh is persisted before the new token is used
// (security.md §7.2).
type TokenSource interface {
	// AccessToken returns a token valid for at least 60 s, refreshing first if needed.
	AccessToken(ctx context.Context) (string, error)
	// Refreshed forces one refresh after the API answered 401 with stale (security.md §8.4).
	Refreshed(ctx context.Context, stale string) (string, error)
}

// APIError is a non-2xx answer from Lumin's REST API (lumin-api.md §17).
// It wraps a sentinel for the status (ErrReconnect, ErrResubmit, ErrForbidden,
// ErrNotFound, ErrConflict, ErrInvalidInput, ErrRateLimited, ErrUpstream) so handlers can
// use errors.Is; see also IsStatus.
type APIError struct {
	Status     int
	Code       string        // error_code, when the body had one
	Message    string        // error_message, safe to show escaped
	RetryAfter time.Duration // parsed Retry-After on 429/503 (seconds or HTTP date)

	kind  error // sentinel for Status
	cause error // e.g. the refresh error after a 401
}

// Error shows status and error_code only; Message is for escaped display.
func (e *APIError) Error() string { return fmt.Sprintf("lumin api: %d %s", e.Status, e.Code) }

// Unwrap returns the status sentinel and, after a failed refresh, the refresh error.
func (e *APIError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// IsStatus reports whether err is (or wraps) an *APIError with that HTTP status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// RetryAfter returns the Retry-After delay carried by err (429/503), or 0.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// User is GET /user/info's user (lumin-api.md §15).
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Signer is one signer of a signature request; Email is filled from email_address or email.
type Signer struct {
	Email      string
	Name       string
	Group      int
	IsApproved bool
	Status     string
}

// SignatureRequest is Lumin's SignatureRequest object (lumin-api.md §16.1). Times are
// zero when Lumin sent nothing parseable.
type SignatureRequest struct {
	ID          string
	Title       string
	Status      string
	Reason      string
	SigningType string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ExpiresAt   time.Time
	DetailsURL  string
	Signers     []Signer
}

// SendInput is POST /signature_request/send. Exactly one of FileURL or File is set.
type SendInput struct {
	Title       string
	FileURL     string
	FileName    string
	File        []byte // multipart upload when non-nil
	Signers     []Signer
	SigningType string // SAME_TIME or ORDER
	ExpiresAt   time.Time
}

// Reminder is one entry of a remind response.
type Reminder struct {
	Email        string
	SignerStatus string
	EmailStatus  string // SENT, EXCEED_DAILY_LIMIT, BOUNCE
}

// SignedFile is the JSON answer of GET /signature_request/{id}/file.
type SignedFile struct {
	URL       string
	ExpiresAt time.Time // from epoch seconds
}

// File kinds for API.File (lumin-api.md §16.5).
const (
	FileAgreement = "agreement"
	FileCOC       = "coc"
	FileMerged    = "merged"
)

// apiTimeout is the REST client's per-request timeout (security.md §13.1: API 15 s);
// apiBudget bounds one whole call including its retries, inside the server's 60 s
// WriteTimeout (security.md §10, §13.2).
const (
	apiTimeout = 15 * time.Second
	apiBudget  = 30 * time.Second
	// maxRateWait is the longest Retry-After we wait for on our own (security.md §8.4).
	maxRateWait = 2 * time.Second
	// maxGETRetries bounds retries of a GET after 5xx or a network error (security.md §8.4).
	maxGETRetries = 2
)

// API is the typed REST client. It sets Authorization itself, follows no redirects and
// sends the token only to the configured API origin (security.md §8.1).
type API struct {
	base *url.URL
	hc   *http.Client

	// sleep and backoff are replaced in tests so retries take no wall time.
	sleep   func(ctx context.Context, d time.Duration) error
	backoff func(attempt int) time.Duration
}

// NewAPI returns a REST client for baseURL (LUMIN_API_URL). hc nil → NewHTTPClient(15*time.Second).
func NewAPI(baseURL string, hc *http.Client) (*API, error) {
	u, err := checkEndpointURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("lumin: API base URL %q: %v", baseURL, err)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return nil, fmt.Errorf("lumin: API base URL %q: must not have a query", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return &API{
		base:    u,
		hc:      ownClient(hc, apiTimeout),
		sleep:   sleepCtx,
		backoff: jitteredBackoff,
	}, nil
}

// idPattern is the only id shape we put into a path (security.md §8.2).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidID reports whether id has the shape allowed in a path (security.md §8.2).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// UserInfo is GET /user/info.
func (a *API) UserInfo(ctx context.Context, ts TokenSource) (User, error) {
	var out struct {
		User *struct {
			ID    lstring `json:"id"`
			Email lstring `json:"email"`
			Name  lstring `json:"name"`
		} `json:"user"`
	}
	if err := a.do(ctx, ts, call{method: http.MethodGet, path: "/user/info", out: &out}); err != nil {
		return User{}, err
	}
	if out.User == nil || out.User.ID == "" {
		return User{}, malformed("user missing")
	}
	return User{ID: string(out.User.ID), Email: string(out.User.Email), Name: string(out.User.Name)}, nil
}

// Get is GET /signature_request/{id}.
func (a *API) Get(ctx context.Context, ts TokenSource, id string) (SignatureRequest, error) {
	p, err := idPath("/signature_request/", id, "")
	if err != nil {
		return SignatureRequest{}, err
	}
	return a.requestCall(ctx, ts, call{method: http.MethodGet, path: p})
}

// Send is POST /signature_request/send (never retried: it sends real emails).
//
// A file URL goes as JSON; a file as multipart/form-data with the fields title,
// expires_at (epoch ms), signing_type and the indexed signers[i][email_address],
// signers[i][name], signers[i][group], plus the part "file" (filename, application/pdf).
// Lumin does not document the form encoding; this is the one the sandbox documents
// (luminfake/api.go), which rejects mixing it with a JSON "signers" field. The result is Lumin's answer (id, status,
// created_at) with the fields Lumin did not echo filled from in, ready to be stored
// at once (lumin-api.md §16.4).
func (a *API) Send(ctx context.Context, ts TokenSource, in SendInput) (SignatureRequest, error) {
	if err := checkSendInput(in); err != nil {
		return SignatureRequest{}, err
	}
	c := call{method: http.MethodPost, path: "/signature_request/send"}
	var err error
	if in.File != nil {
		c.body, c.contentType, err = multipartSend(in)
	} else {
		c.body, c.contentType, err = jsonSend(in)
	}
	if err != nil {
		return SignatureRequest{}, err
	}
	sr, err := a.requestCall(ctx, ts, c)
	if err != nil {
		return SignatureRequest{}, err
	}
	if sr.Title == "" {
		sr.Title = in.Title
	}
	if sr.SigningType == "" {
		sr.SigningType = in.SigningType
	}
	if sr.ExpiresAt.IsZero() {
		sr.ExpiresAt = in.ExpiresAt.UTC().Truncate(time.Millisecond)
	}
	if sr.Signers == nil {
		sr.Signers = append([]Signer(nil), in.Signers...)
	}
	return sr, nil
}

// Cancel is PUT /signature_request/cancel/{id}.
func (a *API) Cancel(ctx context.Context, ts TokenSource, id string) error {
	p, err := idPath("/signature_request/cancel/", id, "")
	if err != nil {
		return err
	}
	return a.do(ctx, ts, call{method: http.MethodPut, path: p})
}

// Remind is POST /signature_request/remind/{id}. Lumin answers
// {"signature_request": …, "reminders": [...]} (lumin-api.md §16.3); the request is
// decoded leniently and is the zero SignatureRequest when Lumin sent none, so callers
// can map each reminder to a signer without a second GET.
func (a *API) Remind(ctx context.Context, ts TokenSource, id string, emails []string) (SignatureRequest, []Reminder, error) {
	p, err := idPath("/signature_request/remind/", id, "")
	if err != nil {
		return SignatureRequest{}, nil, err
	}
	body, err := json.Marshal(struct {
		Emails []string `json:"emails,omitempty"`
	}{emails})
	if err != nil {
		return SignatureRequest{}, nil, err
	}
	var out struct {
		SignatureRequest json.RawMessage `json:"signature_request"`
		Reminders        []struct {
			Email        lstring `json:"email"`
			EmailAddress lstring `json:"email_address"`
			SignerStatus lstring `json:"signer_status"`
			EmailStatus  lstring `json:"email_status"`
		} `json:"reminders"`
	}
	if err := a.do(ctx, ts, call{method: http.MethodPost, path: p, body: body, contentType: "application/json", out: &out}); err != nil {
		return SignatureRequest{}, nil, err
	}
	// The reminders are the answer; a signature_request that is not an object must not
	// hide them (lumin-api.md §20), so its decode error is dropped.
	var sr SignatureRequest
	if len(out.SignatureRequest) > 0 {
		sr, _ = DecodeSignatureRequest(out.SignatureRequest)
	}
	rs := make([]Reminder, 0, len(out.Reminders))
	for _, r := range out.Reminders {
		email := string(r.Email)
		if email == "" {
			email = string(r.EmailAddress)
		}
		rs = append(rs, Reminder{Email: email, SignerStatus: string(r.SignerStatus), EmailStatus: string(r.EmailStatus)})
	}
	return sr, rs, nil
}

// UpdateExpiry is PATCH /signature_request/{id}.
func (a *API) UpdateExpiry(ctx context.Context, ts TokenSource, id string, at time.Time) (SignatureRequest, error) {
	p, err := idPath("/signature_request/", id, "")
	if err != nil {
		return SignatureRequest{}, err
	}
	if at.IsZero() {
		return SignatureRequest{}, fmt.Errorf("%w: expiry missing", ErrInvalidInput)
	}
	body, err := json.Marshal(struct {
		ExpiresAt int64 `json:"expires_at"`
	}{at.UnixMilli()})
	if err != nil {
		return SignatureRequest{}, err
	}
	return a.requestCall(ctx, ts, call{method: http.MethodPatch, path: p, body: body, contentType: "application/json"})
}

// File is GET /signature_request/{id}/file?type=kind with Accept: application/json.
// kind is FileAgreement (also for ""), FileCOC or FileMerged.
func (a *API) File(ctx context.Context, ts TokenSource, id, kind string) (SignedFile, error) {
	switch kind {
	case "":
		kind = FileAgreement
	case FileAgreement, FileCOC, FileMerged:
	default:
		return SignedFile{}, fmt.Errorf("%w: unknown file type", ErrInvalidInput)
	}
	p, err := idPath("/signature_request/", id, "/file")
	if err != nil {
		return SignedFile{}, err
	}
	var out struct {
		SignedURL lstring `json:"signed_url"`
		ExpiresAt ltime   `json:"expires_at"` // epoch seconds (lumin-api.md §16.5)
	}
	c := call{method: http.MethodGet, path: p, query: url.Values{"type": {kind}}, out: &out}
	if err := a.do(ctx, ts, c); err != nil {
		return SignedFile{}, err
	}
	if out.SignedURL == "" {
		return SignedFile{}, malformed("signed_url missing")
	}
	return SignedFile{URL: string(out.SignedURL), ExpiresAt: time.Time(out.ExpiresAt)}, nil
}

// --- request plumbing --------------------------------------------------------------

type call struct {
	method      string
	path        string // already escaped, under the base path
	query       url.Values
	body        []byte
	contentType string
	out         any // JSON target for a 2xx answer; nil → body ignored
}

// idPath checks id's shape and escapes it into prefix+id+suffix (security.md §8.2).
func idPath(prefix, id, suffix string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%w: malformed signature request id", ErrInvalidInput)
	}
	return prefix + url.PathEscape(id) + suffix, nil
}

func malformed(what string) error {
	return fmt.Errorf("%w: malformed API response: %s", ErrUpstream, what)
}

// requestCall runs c and decodes {"signature_request": {…}} (lumin-api.md §16.3).
func (a *API) requestCall(ctx context.Context, ts TokenSource, c call) (SignatureRequest, error) {
	var out struct {
		SignatureRequest *wireSignatureRequest `json:"signature_request"`
	}
	c.out = &out
	if err := a.do(ctx, ts, c); err != nil {
		return SignatureRequest{}, err
	}
	if out.SignatureRequest == nil || out.SignatureRequest.ID == "" {
		return SignatureRequest{}, malformed("signature_request missing")
	}
	return out.SignatureRequest.domain(), nil
}

// do runs one API call with the status handling of security.md §8.4–§8.5.
func (a *API) do(ctx context.Context, ts TokenSource, c call) error {
	ctx, cancel := context.WithTimeout(ctx, apiBudget)
	defer cancel()
	get := c.method == http.MethodGet

	tok, err := ts.AccessToken(ctx)
	if err != nil {
		return err
	}
	refreshed, rateRetried, failures := false, false, 0
	for {
		resp, err := a.send(ctx, c, tok)
		if err != nil {
			// Network error: a GET is retried ≤ 2 times with jittered back-off; send,
			// cancel, remind and expiry never are — a duplicate sends real emails
			// (security.md §8.4, §8.5, §13.4).
			if get && failures < maxGETRetries && ctx.Err() == nil {
				failures++
				if a.sleep(ctx, a.backoff(failures)) == nil {
					continue
				}
			}
			return upstreamErr("API request failed", err)
		}
		st := resp.StatusCode
		switch {
		case st >= 200 && st < 300:
			return decodeSuccess(resp, c.out)

		case st == http.StatusUnauthorized:
			ae := apiError(resp) // kind ErrReconnect
			if refreshed {
				// A second 401 after a forced refresh: reconnect (security.md §8.4).
				return ae
			}
			refreshed = true
			// One forced refresh (security.md §7.1, §8.4).
			newTok, rerr := ts.Refreshed(ctx, tok)
			if rerr != nil {
				ae.cause = rerr
				return ae
			}
			if !get {
				// Non-GET: refreshed, but not replayed automatically — the user submits
				// again (security.md §8.4, §8.5).
				ae.kind = ErrResubmit
				return ae
			}
			tok = newTok
			continue

		case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable:
			ra, hasRA := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			ae := apiError(resp)
			ae.RetryAfter = ra
			if hasRA {
				// A 503 that says when to come back is "busy, try again in N s", like a
				// 429 — not a generic outage (security.md §8.4); the kind decides the page.
				ae.kind = ErrRateLimited
			}
			// RFC 6585 §4, RFC 9110 §10.2.3: honour Retry-After; one automatic retry of a
			// GET if it is ≤ 2 s, else tell the user "try again in N s" (security.md §8.4).
			if get && hasRA && ra <= maxRateWait && !rateRetried {
				rateRetried = true
				if a.sleep(ctx, ra) == nil {
					continue
				}
				return ae
			}
			if st == http.StatusServiceUnavailable && !hasRA && get && failures < maxGETRetries {
				failures++
				if a.sleep(ctx, a.backoff(failures)) == nil {
					continue
				}
			}
			return ae

		case st >= 500:
			ae := apiError(resp)
			if get && failures < maxGETRetries {
				failures++
				if a.sleep(ctx, a.backoff(failures)) == nil {
					continue
				}
			}
			return ae

		default:
			return apiError(resp)
		}
	}
}

// send builds and performs one HTTP request. The token goes only to the configured API
// origin, only in the Authorization header, set by us (security.md §5.4, §8.1).
func (a *API) send(ctx context.Context, c call, tok string) (*http.Response, error) {
	u := *a.base
	// c.path holds only ValidID-checked, PathEscape'd ids: no "/", "..", "?" or "%".
	u.Path = a.base.Path + c.path
	u.RawPath = ""
	if c.query != nil {
		u.RawQuery = c.query.Encode()
	}
	// Left an untyped nil without a body: a nil *bytes.Reader in the interface would make
	// NewRequestWithContext call Len on it.
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	return a.hc.Do(req)
}

// decodeSuccess checks Content-Type before decoding a capped body (security.md §8.3).
func decodeSuccess(resp *http.Response, out any) error {
	defer drain(resp)
	if out == nil {
		return nil
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		return malformed("not JSON")
	}
	body, err := readCapped(resp.Body, maxBody)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return malformed("body over 1 MiB")
		}
		return upstreamErr("reading API response", err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return malformed("bad JSON")
	}
	return nil
}

// apiError builds the *APIError for a non-2xx answer. 4xx bodies are
// {"error_code","error_message"} (lumin-api.md §17); 5xx bodies are never read into
// the error (they may be HTML or carry internals).
func apiError(resp *http.Response) *APIError {
	defer drain(resp)
	ae := &APIError{Status: resp.StatusCode, kind: statusKind(resp.StatusCode)}
	if resp.StatusCode >= 500 || !isJSON(resp.Header.Get("Content-Type")) {
		return ae
	}
	body, err := readCapped(resp.Body, 64<<10)
	if err != nil {
		return ae
	}
	var b struct {
		Code    lstring `json:"error_code"`
		Message lstring `json:"error_message"`
	}
	if json.Unmarshal(body, &b) == nil {
		ae.Code = safeCode(string(b.Code))
		ae.Message = safeText(string(b.Message), 300)
	}
	return ae
}

func statusKind(status int) error {
	switch {
	case status < 400:
		// A redirect we refused to follow (security.md §8.1) or an odd 1xx/3xx.
		return ErrUpstream
	case status == http.StatusUnauthorized:
		return ErrReconnect
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status >= 500:
		return ErrUpstream
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return ErrInvalidInput
	default:
		return nil
	}
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 §10.2.3). ok is false
// when the header is absent or unparseable. Negative or past values are 0.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, 86400)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return min(d, 24*time.Hour), true
	}
	return 0, false
}

// jitteredBackoff: 250 ms, 500 ms … times a random factor in [0.5, 1.5) so parallel
// clients do not retry in lock step (security.md §8.4). Not a secret: math/rand is fine.
func jitteredBackoff(attempt int) time.Duration {
	base := 250 * time.Millisecond << min(attempt-1, 4)
	return time.Duration(float64(base) * (0.5 + rand.Float64()))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// --- send encoding -------------------------------------------------------------------

// checkSendInput refuses what Lumin would reject anyway, before any request
// (security.md §8.6). Handlers validate emails, caps and expiry for the form; this is
// the last line.
func checkSendInput(in SendInput) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidInput, what) }
	if n := utf8.RuneCountInString(in.Title); n < 1 || n > 255 {
		return bad("title must be 1–255 characters")
	}
	if (in.File != nil) == (in.FileURL != "") {
		return bad("exactly one of file or file URL")
	}
	if in.FileURL != "" {
		u, err := url.Parse(in.FileURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("file URL must be https://")
		}
	}
	if in.File != nil && len(in.File) == 0 {
		return bad("empty file")
	}
	if len(in.Signers) == 0 {
		return bad("at least one signer")
	}
	for _, s := range in.Signers {
		if s.Email == "" || s.Name == "" {
			return bad("signer email and name required")
		}
	}
	switch in.SigningType {
	case "", "SAME_TIME", "ORDER":
	default:
		return bad("signing type")
	}
	if in.ExpiresAt.IsZero() {
		return bad("expiry missing")
	}
	return nil
}

type wireSendSigner struct {
	EmailAddress string `json:"email_address"`
	Name         string `json:"name"`
	Group        int    `json:"group,omitempty"`
}

func sendSigners(in SendInput) []wireSendSigner {
	out := make([]wireSendSigner, 0, len(in.Signers))
	for _, s := range in.Signers {
		out = append(out, wireSendSigner{EmailAddress: s.Email, Name: s.Name, Group: s.Group})
	}
	return out
}

func jsonSend(in SendInput) ([]byte, string, error) {
	b, err := json.Marshal(struct {
		FileURL     string           `json:"file_url"`
		Title       string           `json:"title"`
		ExpiresAt   int64            `json:"expires_at"`
		SigningType string           `json:"signing_type,omitempty"`
		Signers     []wireSendSigner `json:"signers"`
	}{in.FileURL, in.Title, in.ExpiresAt.UnixMilli(), in.SigningType, sendSigners(in)})
	return b, "application/json", err
}

func multipartSend(in SendInput) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	field := func(k, v string) {
		_ = w.WriteField(k, v) // writes to a bytes.Buffer cannot fail
	}
	field("title", in.Title)
	field("expires_at", strconv.FormatInt(in.ExpiresAt.UnixMilli(), 10))
	if in.SigningType != "" {
		field("signing_type", in.SigningType)
	}
	// Lumin does not document its form encoding; the sandbox accepts indexed fields or one
	// JSON "signers" field but not both (luminfake/api.go). We send the indexed form only.
	for i, s := range sendSigners(in) {
		p := "signers[" + strconv.Itoa(i) + "]"
		field(p+"[email_address]", s.EmailAddress)
		field(p+"[name]", s.Name)
		if s.Group != 0 {
			field(p+"[group]", strconv.Itoa(s.Group))
		}
	}
	name := in.FileName
	if name == "" {
		name = "document.pdf"
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, sanitizeFileName(name)))
	h.Set("Content-Type", "application/pdf")
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := part.Write(in.File); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// sanitizeFileName keeps a header-safe base name: no quotes, backslashes, path
// separators or control characters.
func sanitizeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	if name == "" {
		name = "document.pdf"
	}
	return name
}
