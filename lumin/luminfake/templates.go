package luminfake

// Lumin's Sign templates in the sandbox (lumin-api.md §16.3 "Send from template" and the
// templates paragraph, §17, §18): GET /v1/templates, GET /v1/templates/{id} and
// POST /v1/signature_request/send-from-template. Templates are read-only; the first user
// has the three of seedTemplates (seed.go), everyone else none.
//
// Where Lumin documents nothing, the sandbox makes these choices (errors keep the
// {"error_code", "error_message"} shape of lumin-api.md §17):
//
//   - Scopes: both template reads need `templates`; send-from-template needs
//     `sign:requests` AND `templates` (lumin-api.md §13). The older `templates.write` name
//     is not accepted: the strictest reading. Missing → 403 insufficient_scope.
//   - 400 invalid_api_version: `X-Lumin-API-Version: 1.1` missing, repeated or another value.
//     Lumin requires it on GET /templates (lumin-api.md §14, D) and clients send it on
//     GET /templates/{id} too (S); the sandbox requires it on both (strictest reading).
//     send-from-template does not need it. The check runs after authentication and scope.
//   - Pagination (lumin-api.md §18): page and limit come together or not at all (absent →
//     page 1, limit 10); page is an integer ≥ 1, limit one of 10, 25, 50, each sent once.
//     Anything else → 400 validation_error with a class-validator style message such as
//     "limit must be an integer" (the wording Lumin is seen using, §17). A page past the
//     end is 200 with empty data. Order: newest created first, ties by id.
//   - Times: epoch milliseconds; created_at is a JSON number and updated_at a numeric
//     string. Lumin's spec types both as strings in the list and as integers in the detail
//     and its examples (lumin-api.md §20: accept both), so a client that is not lenient
//     fails against the sandbox, as with signature requests (api.go).
//   - 404 template_not_found: unknown id, an id not shaped "sign_" + 24 hex digits, or
//     another user's template, alike (lumin-api.md §17).
//   - send-from-template takes JSON only (415 unsupported_media_type otherwise) and checks,
//     in order: the body's own fields as send does (title 1–255, expires_at in the future,
//     emails, names, no duplicate signer, viewers; verification → 403
//     verification_not_licensed), then the template (404 template_not_found), its type
//     (422 invalid_template_type for "pdf", lumin-api.md §16.3/§17), then the roles:
//     every signer names a signer_role of the template and every role has exactly one
//     signer (400 validation_error). tags, fields and variables must be JSON objects when
//     present (Lumin's schema); their contents are accepted and ignored, as the sandbox
//     templates define none. The request takes the template's signing_type and each
//     signer the group of its role; then it is processed like a send (startRequest).

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Template types (lumin-api.md §16.3).
const (
	templateLumin = "lumin"
	templatePDF   = "pdf"
)

// apiVersionHeader and apiVersion: the only API version Lumin documents (lumin-api.md §14).
const (
	apiVersionHeader = "X-Lumin-API-Version"
	apiVersion       = "1.1"
)

// templateIDPattern is the shape of the sandbox's template ids: Lumin's "sign_" prefix
// (lumin-api.md §16.3) and 24 hex digits. Anything else is a 404 before a lookup.
var templateIDPattern = regexp.MustCompile(`^sign_[0-9a-f]{24}$`)

// pageLimits are the only page sizes Lumin accepts (lumin-api.md §18).
var pageLimits = []int{10, 25, 50}

const (
	defaultPage  = 1
	defaultLimit = 10
	// sandboxTemplateFileURL stands in for a template's document when send-from-template
	// reuses send's validation, which requires a file source.
	sandboxTemplateFileURL = "https://sign.luminpdf.com/templates/document.pdf"
)

var errTemplateNotFound = &apiError{http.StatusNotFound, "template_not_found", "template not found or not accessible"}

// signTemplate is one template of a user.
type signTemplate struct {
	id          string
	kind        string // templateLumin or templatePDF
	name        string
	signingType string
	roles       []templateRole
	created     time.Time
	updated     time.Time
}

// templateRole is a signer role: its name and its ORDER group.
type templateRole struct {
	Name  string `json:"name"`
	Group int    `json:"group"`
}

// wireTemplate is a list item (lumin-api.md §16.3).
type wireTemplate struct {
	ID        string `json:"template_id"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// wireTemplateDetail is GET /templates/{id}: the list item plus roles and prefill data.
type wireTemplateDetail struct {
	wireTemplate
	SigningType string         `json:"signing_type"`
	SignerRoles []templateRole `json:"signer_roles"`
	Tags        []any          `json:"tags"`
	Fields      []any          `json:"fields"`
	Variables   []any          `json:"variables"`
}

func (t *signTemplate) wire() wireTemplate {
	return wireTemplate{
		ID:        t.id,
		Type:      t.kind,
		Name:      t.name,
		CreatedAt: millis(t.created),
		UpdatedAt: strconv.FormatInt(millis(t.updated), 10),
	}
}

// templateFor finds id among u's templates; another user's is as missing as an unknown one.
func (f *Fake) templateFor(id string, u *User) (*signTemplate, *apiError) {
	if !templateIDPattern.MatchString(id) {
		return nil, errTemplateNotFound
	}
	ts := f.templatesOf(u)
	for i := range ts {
		if ts[i].id == id {
			return &ts[i], nil
		}
	}
	return nil, errTemplateNotFound
}

// checkAPIVersion enforces X-Lumin-API-Version: 1.1 (lumin-api.md §14).
func checkAPIVersion(r *http.Request) *apiError {
	v := r.Header.Values(apiVersionHeader)
	if len(v) == 1 && strings.TrimSpace(v[0]) == apiVersion {
		return nil
	}
	msg := "the header " + apiVersionHeader + ": " + apiVersion + " is required"
	if len(v) > 0 {
		msg = apiVersionHeader + " must be sent once with the value " + apiVersion
	}
	return &apiError{http.StatusBadRequest, "invalid_api_version", msg}
}

// pageParams reads page and limit (lumin-api.md §18).
func pageParams(q url.Values) (page, limit int, e *apiError) {
	hasPage, hasLimit := q.Has("page"), q.Has("limit")
	switch {
	case !hasPage && !hasLimit:
		return defaultPage, defaultLimit, nil
	case hasPage != hasLimit:
		return 0, 0, validation("page and limit must be sent together")
	}
	if page, e = queryInt(q, "page"); e != nil {
		return 0, 0, e
	}
	if page < 1 {
		return 0, 0, validation("page must not be less than 1")
	}
	if limit, e = queryInt(q, "limit"); e != nil {
		return 0, 0, e
	}
	if !slices.Contains(pageLimits, limit) {
		return 0, 0, validation("limit must be one of the following values: 10, 25, 50")
	}
	return page, limit, nil
}

// queryInt parses one decimal integer query value. At most 9 digits, so it never
// overflows and the page offset stays far inside an int.
func queryInt(q url.Values, name string) (int, *apiError) {
	v := q[name]
	if len(v) != 1 {
		return 0, validation("%s must be sent once", name)
	}
	s := strings.TrimPrefix(v[0], "-")
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, validation("%s must be an integer", name)
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return 0, validation("%s must be an integer", name)
	}
	return n, nil
}

// handleListTemplates is GET /v1/templates?page=&limit= (lumin-api.md §16.3, §18).
func (f *Fake) handleListTemplates(w http.ResponseWriter, r *http.Request, g *grant) {
	if e := checkAPIVersion(r); e != nil {
		writeAPIError(w, e)
		return
	}
	page, limit, e := pageParams(r.URL.Query())
	if e != nil {
		writeAPIError(w, e)
		return
	}
	ts := slices.Clone(f.templatesOf(g.user))
	slices.SortFunc(ts, func(a, b signTemplate) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	data := []wireTemplate{} // [] rather than null on an empty page
	for i := (page - 1) * limit; i < len(ts) && i < page*limit; i++ {
		data = append(data, ts[i].wire())
	}
	writeJSON(w, http.StatusOK, map[string]any{"page": page, "limit": limit, "total_count": len(ts), "data": data})
}

// handleGetTemplate is GET /v1/templates/{id} (lumin-api.md §16.3).
func (f *Fake) handleGetTemplate(w http.ResponseWriter, r *http.Request, g *grant) {
	if e := checkAPIVersion(r); e != nil {
		writeAPIError(w, e)
		return
	}
	t, e := f.templateFor(r.PathValue("id"), g.user)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, wireTemplateDetail{
		wireTemplate: t.wire(),
		SigningType:  t.signingType,
		SignerRoles:  slices.Clone(t.roles),
		Tags:         []any{},
		Fields:       []any{},
		Variables:    []any{},
	})
}

// templateSignerInput is one signer of a send-from-template request.
type templateSignerInput struct {
	EmailAddress string          `json:"email_address"`
	Name         string          `json:"name"`
	SignerRole   *string         `json:"signer_role"`
	Verification json.RawMessage `json:"verification"`
}

// handleSendFromTemplate is POST /v1/signature_request/send-from-template
// (lumin-api.md §16.3); the checks and their order are in this file's header.
func (f *Fake) handleSendFromTemplate(w http.ResponseWriter, r *http.Request, g *grant) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeAPIError(w, &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"})
		return
	}
	var body struct {
		TemplateID  *string               `json:"template_id"`
		Title       *string               `json:"title"`
		ExpiresAt   json.RawMessage       `json:"expires_at"`
		Signers     []templateSignerInput `json:"signers"`
		Viewers     []viewerInput         `json:"viewers"`
		Tags        json.RawMessage       `json:"tags"`
		Fields      json.RawMessage       `json:"fields"`
		Variables   json.RawMessage       `json:"variables"`
		CustomEmail json.RawMessage       `json:"custom_email"`
	}
	if e := decodeJSONBody(w, r, &body); e != nil {
		writeAPIError(w, e)
		return
	}
	if body.TemplateID == nil || strings.TrimSpace(*body.TemplateID) == "" {
		writeAPIError(w, validation("template_id must not be empty"))
		return
	}
	for _, o := range []struct {
		name string
		raw  json.RawMessage
	}{{"tags", body.Tags}, {"fields", body.Fields}, {"variables", body.Variables}, {"custom_email", body.CustomEmail}} {
		if !jsonObjectOrAbsent(o.raw) {
			writeAPIError(w, validation("%s must be an object", o.name))
			return
		}
	}
	expiresAt, e := rawMillisString(body.ExpiresAt)
	if e != nil {
		writeAPIError(w, e)
		return
	}

	// send's own validation covers title, expiry, signers and viewers; groups come from the
	// template's roles afterwards, so the form is checked as SAME_TIME (no group needed).
	fileURL := sandboxTemplateFileURL
	in := sendForm{fileURL: &fileURL, title: body.Title, expiresAt: expiresAt, signingType: signingSameTime, viewers: body.Viewers}
	for _, s := range body.Signers {
		in.signers = append(in.signers, signerInput{EmailAddress: s.EmailAddress, Name: s.Name, Verification: s.Verification})
	}
	now := f.now()
	sr, e := validateSend(in, now)
	if e != nil {
		writeAPIError(w, e)
		return
	}

	t, e := f.templateFor(*body.TemplateID, g.user)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if t.kind != templateLumin {
		writeAPIError(w, &apiError{http.StatusUnprocessableEntity, "invalid_template_type",
			"templates of type " + t.kind + " cannot be sent through the API; use a lumin template"})
		return
	}
	if e := assignRoles(sr, body.Signers, t); e != nil {
		writeAPIError(w, e)
		return
	}
	sr.signingType = t.signingType
	sr.file = makePDF(sr.title, "Sent from the template "+t.name+".", "Sandbox placeholder document.")
	f.startRequest(w, sr, g, now)
}

// assignRoles gives each signer of sr (in the order of signers) the group of its
// signer_role, after checking that every role of t is filled exactly once.
func assignRoles(sr *sigRequest, signers []templateSignerInput, t *signTemplate) *apiError {
	filled := map[string]bool{}
	for i, s := range signers {
		if s.SignerRole == nil || *s.SignerRole == "" {
			return validation("signers[%d].signer_role must not be empty", i)
		}
		role := *s.SignerRole
		idx := slices.IndexFunc(t.roles, func(r templateRole) bool { return r.Name == role })
		switch {
		case idx < 0:
			return validation("signers[%d].signer_role %q is not a signer role of this template", i, truncateRunes(role, 64))
		case filled[role]:
			return validation("signers[%d].signer_role %q is already assigned to another signer", i, role)
		}
		filled[role] = true
		sr.signers[i].group = t.roles[idx].Group
	}
	for _, r := range t.roles {
		if !filled[r.Name] {
			return validation("the signer role %q of this template has no signer", r.Name)
		}
	}
	return nil
}

// jsonObjectOrAbsent reports whether raw is missing, null or a JSON object.
func jsonObjectOrAbsent(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null" || raw[0] == '{'
}

// rawMillisString turns expires_at (a JSON number or numeric string, lumin-api.md §20)
// into the raw digits validateSend parses; nil when absent.
func rawMillisString(raw json.RawMessage) (*string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, validation("expires_at must be epoch milliseconds")
		}
	}
	return &s, nil
}
