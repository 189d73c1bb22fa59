package luminfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// --- helpers ------------------------------------------------------------------------------

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now().Truncate(time.Millisecond)} }

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// newTestServer starts a sandbox on 127.0.0.1 with fast processing; Close runs at cleanup.
func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.ProcessingDelay == 0 {
		opts.ProcessingDelay = time.Millisecond
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// mintToken grants scopes to the user with that email and returns a fresh access token,
// as the token endpoint would.
func mintToken(t *testing.T, f *Fake, email string, scopes ...string) string {
	t.Helper()
	var u *User
	for i := range f.opts.Users {
		if f.opts.Users[i].Email == email {
			u = &f.opts.Users[i]
		}
	}
	if u == nil {
		t.Fatalf("no user %s", email)
	}
	tok := randomToken("ory_at_")
	f.mu.Lock()
	f.access[hashToken(tok)] = &accessToken{
		grant:   &grant{id: randomHex(8), clientID: "test-client", user: u, scopes: scopes},
		expires: f.now().Add(time.Hour),
	}
	f.mu.Unlock()
	return tok
}

const (
	ada   = "ada@sandbox.lumin.test"
	grace = "grace@sandbox.lumin.test"
)

var testClient = &http.Client{Timeout: 10 * time.Second}

// call sends one request and decodes a JSON answer into a generic map (nil otherwise).
func call(t *testing.T, method, url, token string, body io.Reader, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %q", method, url, err, raw)
		}
	}
	return resp, m
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// sendJSON posts a JSON send request.
func sendJSON(t *testing.T, s *Server, token string, v any) (*http.Response, map[string]any) {
	t.Helper()
	return call(t, "POST", s.APIURL()+"/signature_request/send", token, jsonBody(t, v), "Content-Type", "application/json")
}

func future(d time.Duration) int64 { return time.Now().Add(d).UnixMilli() }

// validSend is a minimal valid JSON send body with Ada as the only signer.
func validSend(title string) map[string]any {
	return map[string]any{
		"file_url":   "https://files.example.com/contract.pdf",
		"title":      title,
		"expires_at": future(7 * 24 * time.Hour),
		"signers":    []map[string]any{{"email_address": ada, "name": "Ada Lovelace"}},
	}
}

// mustSend sends v and returns the new id.
func mustSend(t *testing.T, s *Server, token string, v any) string {
	t.Helper()
	resp, m := sendJSON(t, s, token, v)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("send: got %d %v, want 201", resp.StatusCode, m)
	}
	return m["signature_request"].(map[string]any)["signature_request_id"].(string)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, f *Fake, id, want string) {
	t.Helper()
	waitFor(t, id+" to be "+want, func() bool { st, _ := f.RequestStatus(id); return st == want })
}

// getRequest GETs a signature request and returns its object.
func getRequest(t *testing.T, s *Server, token, id string) map[string]any {
	t.Helper()
	resp, m := call(t, "GET", s.APIURL()+"/signature_request/"+id, token, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d %v, want 200", id, resp.StatusCode, m)
	}
	return m["signature_request"].(map[string]any)
}

// assertError checks Lumin's error shape (lumin-api.md §17) and the status and code.
func assertError(t *testing.T, resp *http.Response, m map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status: got %d (%v), want %d", resp.StatusCode, m, status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type: got %q, want application/json", ct)
	}
	if len(m) != 2 {
		t.Errorf("error body keys: got %v, want exactly error_code and error_message", m)
	}
	if got, _ := m["error_code"].(string); got != code {
		t.Errorf("error_code: got %q, want %q", got, code)
	}
	if msg, _ := m["error_message"].(string); msg == "" {
		t.Errorf("error_message: got %v, want a non-empty string", m["error_message"])
	}
}

// seededID returns the id of Ada's seeded request with that title.
func seededID(t *testing.T, f *Fake, title string) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sr := range f.requests {
		if sr.title == title {
			return sr.id
		}
	}
	t.Fatalf("no seeded request %q", title)
	return ""
}

// --- tests ----------------------------------------------------------------------------------

func TestUserInfoAuthAndScopes(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now})
	expired := mintToken(t, s.Fake, ada, "openid")
	clock.Add(2 * time.Hour)
	revoked := mintToken(t, s.Fake, grace, "openid")
	s.RevokeUserGrants(grace)

	tests := []struct {
		name   string
		auth   string // full Authorization header
		status int
		code   string
	}{
		{"no header", "", 401, "unauthorized"},
		{"unknown token", "Bearer ory_at_nope", 401, "unauthorized"},
		{"basic scheme", "Basic YTpi", 401, "unauthorized"},
		{"expired", "Bearer " + expired, 401, "unauthorized"},
		{"revoked grant", "Bearer " + revoked, 401, "unauthorized"},
		{"sign scope only", "Bearer " + mintToken(t, s.Fake, ada, "sign:requests"), 403, "insufficient_scope"},
		{"openid", "Bearer " + mintToken(t, s.Fake, ada, "openid"), 200, ""},
		{"profile.read", "Bearer " + mintToken(t, s.Fake, ada, "profile.read"), 200, ""},
		{"lower-case scheme", "bearer " + mintToken(t, s.Fake, ada, "openid"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "GET", s.APIURL()+"/user/info", "", nil, "Authorization", tt.auth)
			if tt.status != 200 {
				assertError(t, resp, m, tt.status, tt.code)
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
			}
			u, _ := m["user"].(map[string]any)
			want := map[string]any{"id": "65a1f0c2e4b0a1b2c3d4e5f6", "email": ada, "name": "Ada Lovelace"}
			if fmt.Sprint(u) != fmt.Sprint(want) {
				t.Errorf("user: got %v, want %v", u, want)
			}
		})
	}

	// Every REST call is logged with whether a bearer header came and the status sent.
	var got []string
	for _, lr := range s.Requests() {
		if lr.Path == "/v1/user/info" {
			got = append(got, fmt.Sprintf("%v:%d", lr.Authorization, lr.Status))
		}
	}
	want := "[false:401 true:401 false:401 true:401 true:401 true:403 true:200 true:200 true:200]"
	if fmt.Sprint(got) != want {
		t.Errorf("log: got %v, want %v", got, want)
	}
}

func TestGetWireShape(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests.read")
	id := seededID(t, s.Fake, "Consulting agreement Q3")
	sr := getRequest(t, s, tok, id)

	// Field names and JSON types, field for field (lumin-api.md §16.1). updated_at is a
	// numeric string on purpose (§20); the others are numbers.
	wantTypes := map[string]string{
		"signature_request_id": "string", "title": "string", "status": "string", "reason": "null",
		"signing_type": "string", "created_at": "number", "updated_at": "string", "expires_at": "number",
		"details_url": "string", "signers": "array",
	}
	if len(sr) != len(wantTypes) {
		t.Errorf("keys: got %d (%v), want %d", len(sr), sr, len(wantTypes))
	}
	for k, want := range wantTypes {
		if got := jsonType(sr[k]); got != want {
			t.Errorf("%s: got %s, want %s", k, got, want)
		}
	}
	if _, err := strconv.ParseInt(sr["updated_at"].(string), 10, 64); err != nil {
		t.Errorf("updated_at: got %q, want epoch ms digits", sr["updated_at"])
	}
	if ms := sr["created_at"].(float64); ms < 1e12 {
		t.Errorf("created_at: got %v, want epoch milliseconds", ms)
	}
	if got, want := sr["details_url"], s.URL+"/sandbox/requests/"+id; got != want {
		t.Errorf("details_url: got %v, want %v", got, want)
	}
	if sr["signing_type"] != "ORDER" || sr["status"] != "NEED_TO_SIGN" {
		t.Errorf("signing_type/status: got %v/%v, want ORDER/NEED_TO_SIGN", sr["signing_type"], sr["status"])
	}
	signers := sr["signers"].([]any)
	want := []string{
		"map[email_address:ada@sandbox.lumin.test group:1 is_approved:false name:Ada Lovelace status:NEED_TO_SIGN]",
		"map[email_address:mary.somerville@example.com group:2 is_approved:false name:Mary Somerville status:WAITING_FOR_OTHERS]",
	}
	if len(signers) != len(want) {
		t.Fatalf("signers: got %v, want %d", signers, len(want))
	}
	for i, sg := range signers {
		if got := fmt.Sprint(sg); got != want[i] {
			t.Errorf("signers[%d]: got %s, want %s", i, got, want[i])
		}
		if jsonType(sg.(map[string]any)["group"]) != "number" || jsonType(sg.(map[string]any)["is_approved"]) != "bool" {
			t.Errorf("signers[%d]: group must be a number and is_approved a bool: %v", i, sg)
		}
	}

	t.Run("reason on FAILED and REJECTED", func(t *testing.T) {
		for title, want := range map[string]string{
			"Partnership agreement (text tags)": "Text tags are invalid",
			"Software licence — Jacquard looms": "Declined by joseph.jacquard@example.net",
		} {
			if got := getRequest(t, s, tok, seededID(t, s.Fake, title))["reason"]; got != want {
				t.Errorf("%s reason: got %v, want %q", title, got, want)
			}
		}
	})
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func TestGetAccess(t *testing.T) {
	s := newTestServer(t, Options{})
	id := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	tests := []struct {
		name   string
		token  string
		path   string
		status int
		code   string
	}{
		{"owner, write scope", mintToken(t, s.Fake, ada, "sign:requests"), id, 200, ""},
		{"owner, read scope", mintToken(t, s.Fake, ada, "sign:requests.read"), id, 200, ""},
		{"owner, no sign scope", mintToken(t, s.Fake, ada, "openid", "profile.read"), id, 403, "insufficient_scope"},
		{"another user", mintToken(t, s.Fake, grace, "sign:requests"), id, 404, "signature_request_not_found"},
		{"unknown id", mintToken(t, s.Fake, ada, "sign:requests"), "0123456789abcdef01234567", 404, "signature_request_not_found"},
		{"upper-case id", mintToken(t, s.Fake, ada, "sign:requests"), strings.ToUpper(id), 404, "signature_request_not_found"},
		{"malformed id", mintToken(t, s.Fake, ada, "sign:requests"), "x%27%3Cscript%3E", 404, "signature_request_not_found"},
		{"no token", "", id, 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "GET", s.APIURL()+"/signature_request/"+tt.path, tt.token, nil)
			if tt.status == 200 {
				if resp.StatusCode != 200 || m["signature_request"] == nil {
					t.Fatalf("got %d %v, want 200 with signature_request", resp.StatusCode, m)
				}
				return
			}
			assertError(t, resp, m, tt.status, tt.code)
		})
	}
}

func TestUnknownEndpoints(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	for _, tt := range []struct{ method, path string }{
		{"GET", "/signature_request"},  // Lumin has no list endpoint (lumin-api.md §16.4)
		{"GET", "/signature_requests"}, //
		{"DELETE", "/signature_request/66a0f5eed000000000000001"},
		{"GET", "/template"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, m := call(t, tt.method, s.APIURL()+tt.path, tok, nil)
			assertError(t, resp, m, 404, "not_found")
			resp, m = call(t, tt.method, s.APIURL()+tt.path, "", nil)
			assertError(t, resp, m, 401, "unauthorized")
		})
	}
}

func TestSeed(t *testing.T) {
	s := newTestServer(t, Options{})
	if got := s.RequestIDs(grace); len(got) != 0 {
		t.Errorf("Grace's requests: got %v, want none", got)
	}
	ids := s.RequestIDs(ada)
	if len(ids) != len(seedRequests) {
		t.Fatalf("Ada's requests: got %d, want %d", len(ids), len(seedRequests))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	statuses := map[string]int{}
	order := 0
	for _, spec := range seedRequests {
		var sr *sigRequest
		for _, r := range s.requests {
			if r.title == spec.title {
				sr = r
			}
		}
		if sr == nil {
			t.Fatalf("missing %q", spec.title)
		}
		if sr.status != spec.status {
			t.Errorf("%s: got status %s, want %s", spec.title, sr.status, spec.status)
		}
		if !idPattern.MatchString(sr.id) || !bytes.HasPrefix(sr.file, []byte("%PDF-1.4")) || !bytes.HasSuffix(sr.file, []byte("%%EOF\n")) {
			t.Errorf("%s: id %q or PDF malformed", spec.title, sr.id)
		}
		if terminalStatus(sr.status) == false && !sr.expiresAt.After(sr.createdAt) {
			t.Errorf("%s: expires before creation", spec.title)
		}
		statuses[sr.status]++
		if sr.signingType == signingOrder {
			order++
		}
	}
	for _, st := range []string{statusProcessing, statusNeedToSign, statusWaiting, statusApproved, statusRejected, statusCancelled, statusFailed} {
		if statuses[st] == 0 {
			t.Errorf("no seeded request in %s", st)
		}
	}
	if order < 2 {
		t.Errorf("ORDER requests: got %d, want ≥ 2", order)
	}
}

func TestSendJSONProgression(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	tests := []struct {
		name        string
		body        map[string]any
		wantStatus  string
		wantSigners string
		wantReason  any
	}{
		{"creator signs, same time", validSend("NDA"), "NEED_TO_SIGN", "[NEED_TO_SIGN]", nil},
		{"creator in a later group", map[string]any{
			"file_url": "https://files.example.com/a.pdf", "title": "Order", "expires_at": strconv.FormatInt(future(time.Hour), 10),
			"signing_type": "ORDER",
			"signers": []map[string]any{
				{"email_address": "b@example.com", "name": "B", "group": 1},
				{"email_address": ada, "name": "Ada", "group": 2},
				{"email_address": "c@example.com", "name": "C", "group": 1},
			},
		}, "WAITING_FOR_OTHERS", "[NEED_TO_SIGN WAITING_FOR_OTHERS NEED_TO_SIGN]", nil},
		{"creator not a signer", map[string]any{
			"file_url": "https://files.example.com/a.pdf", "title": "Others", "expires_at": future(time.Hour),
			"signers": []map[string]any{{"email_address": "b@example.com", "name": "B"}},
		}, "WAITING_FOR_OTHERS", "[NEED_TO_SIGN]", nil},
		{"[fail] trigger", validSend("Bad tags [fail]"), "FAILED", "[FAILED]", "Text tags are invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := sendJSON(t, s, tok, tt.body)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("got %d %v, want 201", resp.StatusCode, m)
			}
			created := m["signature_request"].(map[string]any)
			if len(m) != 1 || len(created) != 3 || created["status"] != "WAITING_FOR_PROCESSING" || jsonType(created["created_at"]) != "number" {
				t.Fatalf("201 body: got %v, want signature_request{signature_request_id, created_at, status: WAITING_FOR_PROCESSING}", m)
			}
			id := created["signature_request_id"].(string)
			if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(id) {
				t.Errorf("id: got %q, want 24 hex digits", id)
			}
			waitStatus(t, s.Fake, id, tt.wantStatus)
			sr := getRequest(t, s, tok, id)
			var got []any
			for _, sg := range sr["signers"].([]any) {
				got = append(got, sg.(map[string]any)["status"])
			}
			if fmt.Sprint(got) != tt.wantSigners {
				t.Errorf("signer statuses: got %v, want %s", got, tt.wantSigners)
			}
			if sr["reason"] != tt.wantReason {
				t.Errorf("reason: got %v, want %v", sr["reason"], tt.wantReason)
			}
		})
	}
}

// multipartBody builds a multipart send body; file nil → no file part.
func multipartBody(t *testing.T, fields [][2]string, file []byte) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, kv := range fields {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="doc.pdf"`)
		h.Set("Content-Type", "application/pdf")
		pw, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(file)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func TestSendMultipart(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	pdf := makePDF("Uploaded contract")
	exp := strconv.FormatInt(future(time.Hour), 10)
	tests := []struct {
		name   string
		fields [][2]string
	}{
		{"indexed signers", [][2]string{{"title", "Upload"}, {"expires_at", exp}, {"signing_type", "ORDER"},
			{"signers[0][email_address]", ada}, {"signers[0][name]", "Ada"}, {"signers[0][group]", "1"},
			{"signers[1][email_address]", "b@example.com"}, {"signers[1][name]", "B"}, {"signers[1][group]", "2"}}},
		{"signers as JSON field", [][2]string{{"title", "Upload"}, {"expires_at", exp}, {"signing_type", "ORDER"},
			{"signers", `[{"email_address":"` + ada + `","name":"Ada","group":1},{"email_address":"b@example.com","name":"B","group":2}]`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := multipartBody(t, tt.fields, pdf)
			resp, m := call(t, "POST", s.APIURL()+"/signature_request/send", tok, body, "Content-Type", ct)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("got %d %v, want 201", resp.StatusCode, m)
			}
			id := m["signature_request"].(map[string]any)["signature_request_id"].(string)
			waitStatus(t, s.Fake, id, "NEED_TO_SIGN")
			sr := getRequest(t, s, tok, id)
			if got := fmt.Sprint(sr["signers"]); !strings.Contains(got, "group:2") || !strings.Contains(got, "b@example.com") {
				t.Errorf("signers: got %s", got)
			}
			resp, _ = call(t, "GET", s.APIURL()+"/signature_request/"+id+"/file", tok, nil, "Accept", "application/pdf")
			got, _ := io.ReadAll(resp.Body)
			if !bytes.Equal(got, pdf) {
				t.Errorf("agreement: got %d bytes, want the uploaded %d", len(got), len(pdf))
			}
		})
	}
}

func TestSendValidation(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	with := func(k string, v any) map[string]any {
		b := validSend("T")
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	signer := func(kv ...any) map[string]any {
		m := map[string]any{"email_address": "b@example.com", "name": "B"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	order := func(signers ...map[string]any) map[string]any {
		b := with("signing_type", "ORDER")
		b["signers"] = signers
		return b
	}
	jsonTests := []struct {
		name   string
		body   any
		status int
		code   string
		msg    string
	}{
		{"no file", with("file_url", nil), 400, "validation_error", "exactly one of file_url or file"},
		{"http file_url", with("file_url", "http://files.example.com/a.pdf"), 400, "validation_error", "https"},
		{"relative file_url", with("file_url", "/a.pdf"), 400, "validation_error", "https"},
		{"file_urls", with("file_urls", []string{"https://a.example/x.pdf"}), 400, "validation_error", "file_urls"},
		{"no title", with("title", nil), 400, "validation_error", "title must not be empty"},
		{"blank title", with("title", "  "), 400, "validation_error", "title must not be empty"},
		{"long title", with("title", strings.Repeat("é", 256)), 400, "validation_error", "1 to 255"},
		{"no expiry", with("expires_at", nil), 400, "validation_error", "expires_at is required"},
		{"past expiry", with("expires_at", time.Now().Add(-time.Minute).UnixMilli()), 400, "validation_error", "in the future"},
		{"expiry not a number", with("expires_at", "tomorrow"), 400, "validation_error", "epoch milliseconds"},
		{"fractional expiry", with("expires_at", json.RawMessage(`1800000000000.5`)), 400, "validation_error", "epoch milliseconds"},
		{"bad signing_type", with("signing_type", "PARALLEL"), 400, "validation_error", "SAME_TIME or ORDER"},
		{"no signers", with("signers", nil), 400, "validation_error", "signers must not be empty"},
		{"empty signers", with("signers", []any{}), 400, "validation_error", "signers must not be empty"},
		{"signer without email", with("signers", []any{signer("email_address", nil)}), 400, "validation_error", "signers[0].email_address must not be empty"},
		{"signer bad email", with("signers", []any{signer("email_address", "not-an-email")}), 400, "validation_error", "valid email"},
		{"signer display-name email", with("signers", []any{signer("email_address", "B <b@example.com>")}), 400, "validation_error", "valid email"},
		{"signer without name", with("signers", []any{signer("name", "")}), 400, "validation_error", "signers[0].name must not be empty"},
		{"duplicate signer", with("signers", []any{signer(), signer("email_address", "B@example.com")}), 400, "validation_error", "signers[1].email_address appears more than once"},
		{"ORDER without group", order(signer()), 400, "validation_error", "group must be an integer >= 1"},
		{"ORDER group 0", order(signer("group", 0)), 400, "validation_error", "group must be an integer >= 1"},
		{"group as string", order(signer("group", "1")), 400, "validation_error", "group has the wrong type"},
		{"verification", with("signers", []any{signer("verification", map[string]any{"method": "vc"})}), 403, "verification_not_licensed", "licence"},
		{"bad viewer", with("viewers", []any{map[string]any{"email_address": "x"}}), 400, "validation_error", "viewers[0]"},
		{"not an object", []int{1}, 400, "validation_error", "JSON object"},
		{"signers wrong type", with("signers", "ada"), 400, "validation_error", "signers has the wrong type"},
	}
	for _, tt := range jsonTests {
		t.Run("json/"+tt.name, func(t *testing.T) {
			resp, m := sendJSON(t, s, tok, tt.body)
			assertError(t, resp, m, tt.status, tt.code)
			if msg, _ := m["error_message"].(string); !strings.Contains(msg, tt.msg) {
				t.Errorf("error_message: got %q, want it to contain %q", msg, tt.msg)
			}
		})
	}

	rawTests := []struct {
		name, ct, body string
		status         int
		code           string
	}{
		{"truncated JSON", "application/json", `{"title":`, 400, "validation_error"},
		{"two objects", "application/json", `{} {}`, 400, "validation_error"},
		{"text/plain", "text/plain", `hello`, 415, "unsupported_media_type"},
		{"no content type", "", `{}`, 415, "unsupported_media_type"},
		{"broken multipart", "multipart/form-data; boundary=x", "--x\r\nnope", 400, "validation_error"},
	}
	for _, tt := range rawTests {
		t.Run("raw/"+tt.name, func(t *testing.T) {
			resp, m := call(t, "POST", s.APIURL()+"/signature_request/send", tok, strings.NewReader(tt.body), "Content-Type", tt.ct)
			assertError(t, resp, m, tt.status, tt.code)
		})
	}

	exp := strconv.FormatInt(future(time.Hour), 10)
	base := [][2]string{{"title", "T"}, {"expires_at", exp}}
	one := append(base[:2:2], [2]string{"signers[0][email_address]", "b@example.com"}, [2]string{"signers[0][name]", "B"})
	defer func(old int64) { maxUploadBytes = old }(maxUploadBytes)
	maxUploadBytes = 64 << 10
	big := append([]byte("%PDF-1.4\n"), make([]byte, maxUploadBytes)...)
	mpTests := []struct {
		name   string
		fields [][2]string
		file   []byte
		status int
		code   string
		msg    string
	}{
		{"not a PDF", one, []byte("PK\x03\x04 a zip"), 400, "validation_error", "PDF"},
		{"empty file", one, []byte{}, 400, "validation_error", "PDF"},
		{"file and file_url", append(one[:4:4], [2]string{"file_url", "https://a.example/x.pdf"}), makePDF("x"), 400, "validation_error", "not both"},
		{"file as text field", append(one[:4:4], [2]string{"file", "%PDF-1.4"}), nil, 400, "validation_error", "file part"},
		{"too large", one, big, 413, "file_too_large", "20 MB"},
		{"index gap", append(base[:2:2], [2]string{"signers[1][email_address]", "b@example.com"}, [2]string{"signers[1][name]", "B"}), makePDF("x"), 400, "validation_error", "no gaps"},
		{"both signer forms", append(one[:4:4], [2]string{"signers", "[]"}), makePDF("x"), 400, "validation_error", "not both"},
		{"bad group", append(one[:4:4], [2]string{"signers[0][group]", "first"}), makePDF("x"), 400, "validation_error", "signers[0].group must be an integer"},
		{"bad signers JSON", append(base[:2:2], [2]string{"signers", "{"}), makePDF("x"), 400, "validation_error", "JSON array"},
		{"bad use_text_tags", append(one[:4:4], [2]string{"use_text_tags", "maybe"}), makePDF("x"), 400, "validation_error", "use_text_tags"},
		{"no signers", base, makePDF("x"), 400, "validation_error", "signers must not be empty"},
	}
	for _, tt := range mpTests {
		t.Run("multipart/"+tt.name, func(t *testing.T) {
			body, ct := multipartBody(t, tt.fields, tt.file)
			resp, m := call(t, "POST", s.APIURL()+"/signature_request/send", tok, body, "Content-Type", ct)
			assertError(t, resp, m, tt.status, tt.code)
			if msg, _ := m["error_message"].(string); !strings.Contains(msg, tt.msg) {
				t.Errorf("error_message: got %q, want it to contain %q", msg, tt.msg)
			}
		})
	}

	t.Run("read scope cannot send", func(t *testing.T) {
		resp, m := sendJSON(t, s, mintToken(t, s.Fake, ada, "sign:requests.read"), validSend("T"))
		assertError(t, resp, m, 403, "insufficient_scope")
	})
}

func TestUpdateExpiry(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	open := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	later := future(40 * 24 * time.Hour)
	tests := []struct {
		name   string
		token  string
		id     string
		body   string
		status int
		code   string
	}{
		{"approved", tok, seededID(t, s.Fake, "Statement of work #42 — Difference Engine"), fmt.Sprintf(`{"expires_at":%d}`, later), 400, "invalid_status"},
		{"processing", tok, seededID(t, s.Fake, "Invoice approval — July"), fmt.Sprintf(`{"expires_at":%d}`, later), 400, "invalid_status"},
		{"cancelled", tok, seededID(t, s.Fake, "Equipment purchase order"), fmt.Sprintf(`{"expires_at":%d}`, later), 400, "invalid_status"},
		{"past", tok, open, fmt.Sprintf(`{"expires_at":%d}`, time.Now().Add(-time.Hour).UnixMilli()), 400, "validation_error"},
		{"missing", tok, open, `{}`, 400, "validation_error"},
		{"not a number", tok, open, `{"expires_at":"soon"}`, 400, "validation_error"},
		{"not JSON", tok, open, `expires_at=1`, 400, "validation_error"},
		{"other user", mintToken(t, s.Fake, grace, "sign:requests"), open, fmt.Sprintf(`{"expires_at":%d}`, later), 404, "signature_request_not_found"},
		{"read scope", mintToken(t, s.Fake, ada, "sign:requests.read"), open, fmt.Sprintf(`{"expires_at":%d}`, later), 403, "insufficient_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "PATCH", s.APIURL()+"/signature_request/"+tt.id, tt.token, strings.NewReader(tt.body), "Content-Type", "application/json")
			assertError(t, resp, m, tt.status, tt.code)
		})
	}
	for _, body := range []string{fmt.Sprintf(`{"expires_at":%d}`, later), fmt.Sprintf(`{"expires_at":"%d"}`, later+1)} {
		t.Run("ok "+body, func(t *testing.T) {
			resp, m := call(t, "PATCH", s.APIURL()+"/signature_request/"+open, tok, strings.NewReader(body), "Content-Type", "application/json")
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
			}
			sr := m["signature_request"].(map[string]any)
			want := strings.Trim(strings.TrimPrefix(body, `{"expires_at":`), `"}`)
			if got := strconv.FormatInt(int64(sr["expires_at"].(float64)), 10); got != want {
				t.Errorf("expires_at: got %s, want %s", got, want)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	id := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	resp, m := call(t, "PUT", s.APIURL()+"/signature_request/cancel/"+id, tok, nil)
	if resp.StatusCode != 200 || fmt.Sprint(m) != fmt.Sprintf("map[signature_request_id:%s status:CANCELLED]", id) {
		t.Fatalf("cancel: got %d %v, want 200 {signature_request_id, status: CANCELLED}", resp.StatusCode, m)
	}
	if st := getRequest(t, s, tok, id)["status"]; st != "CANCELLED" {
		t.Errorf("status after cancel: got %v, want CANCELLED", st)
	}
	tests := []struct {
		name, token, id string
		status          int
		code            string
	}{
		{"twice", tok, id, 400, "invalid_status"},
		{"approved", tok, seededID(t, s.Fake, "Employee handbook acknowledgement"), 400, "invalid_status"},
		{"failed", tok, seededID(t, s.Fake, "Partnership agreement (text tags)"), 400, "invalid_status"},
		{"created in the UI", tok, seededID(t, s.Fake, "Board resolution 2024-07"), 400, "cancel_not_allowed"},
		{"other user", mintToken(t, s.Fake, grace, "sign:requests"), seededID(t, s.Fake, "Consulting agreement Q3"), 404, "signature_request_not_found"},
		{"read scope", mintToken(t, s.Fake, ada, "sign:requests.read"), seededID(t, s.Fake, "Consulting agreement Q3"), 403, "insufficient_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "PUT", s.APIURL()+"/signature_request/cancel/"+tt.id, tt.token, nil)
			assertError(t, resp, m, tt.status, tt.code)
		})
	}

	t.Run("while processing", func(t *testing.T) {
		id := seededID(t, s.Fake, "Invoice approval — July")
		resp, m := call(t, "PUT", s.APIURL()+"/signature_request/cancel/"+id, tok, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
		}
	})
}

func TestRemind(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now})
	tok := mintToken(t, s.Fake, ada, "sign:requests")
	id := seededID(t, s.Fake, "Office lease renewal — 12 St James's Square")
	remind := func(emails ...string) (*http.Response, map[string]any) {
		return call(t, "POST", s.APIURL()+"/signature_request/remind/"+id, tok, jsonBody(t, map[string]any{"emails": emails}), "Content-Type", "application/json")
	}
	statuses := func(m map[string]any) string {
		var out []string
		rs, ok := m["reminders"].([]any)
		if !ok {
			return fmt.Sprint(m)
		}
		for _, r := range rs {
			rm := r.(map[string]any)
			out = append(out, fmt.Sprintf("%s/%s/%s", rm["email"], rm["signer_status"], rm["email_status"]))
		}
		return strings.Join(out, " ")
	}

	for i := range remindDailyLimit {
		resp, m := remind("augustus.demorgan@example.org")
		if resp.StatusCode != 200 || statuses(m) != "augustus.demorgan@example.org/NEED_TO_SIGN/SENT" {
			t.Fatalf("reminder %d: got %d %v, want SENT", i+1, resp.StatusCode, m)
		}
		if m["signature_request"].(map[string]any)["signature_request_id"] != id {
			t.Fatalf("reminder %d: body lacks the signature_request: %v", i+1, m)
		}
	}
	resp, m := remind("AUGUSTUS.DEMORGAN@example.org", "charles.babbage@example.com")
	if got, want := statuses(m), "augustus.demorgan@example.org/NEED_TO_SIGN/EXCEED_DAILY_LIMIT charles.babbage@example.com/WAITING_FOR_OTHERS/SENT"; resp.StatusCode != 200 || got != want {
		t.Fatalf("11th reminder: got %d %s, want %s", resp.StatusCode, got, want)
	}
	clock.Add(24 * time.Hour) // a new UTC day resets the count
	tok = mintToken(t, s.Fake, ada, "sign:requests")
	if _, m := remind("augustus.demorgan@example.org"); statuses(m) != "augustus.demorgan@example.org/NEED_TO_SIGN/SENT" {
		t.Errorf("next day: got %s, want SENT", statuses(m))
	}

	errTests := []struct {
		name   string
		id     string
		body   string
		status int
		code   string
	}{
		{"not a signer", id, `{"emails":["nobody@example.com"]}`, 400, "validation_error"},
		{"already signed", id, `{"emails":["` + ada + `"]}`, 400, "validation_error"},
		{"empty", id, `{"emails":[]}`, 400, "validation_error"},
		{"no body", id, ``, 400, "validation_error"},
		{"emails not a list", id, `{"emails":"a@b.c"}`, 400, "validation_error"},
		{"approved", seededID(t, s.Fake, "Employee handbook acknowledgement"), `{"emails":["mary.somerville@example.com"]}`, 400, "invalid_status"},
		{"rejected", seededID(t, s.Fake, "Software licence — Jacquard looms"), `{"emails":["joseph.jacquard@example.net"]}`, 400, "invalid_status"},
		{"unknown", "ffffffffffffffffffffffff", `{"emails":["a@example.com"]}`, 404, "signature_request_not_found"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "POST", s.APIURL()+"/signature_request/remind/"+tt.id, tok, strings.NewReader(tt.body), "Content-Type", "application/json")
			assertError(t, resp, m, tt.status, tt.code)
		})
	}

	t.Run("bounce trigger", func(t *testing.T) {
		body := validSend("Bounce")
		body["signers"] = []map[string]any{{"email_address": "x+bounce@example.com", "name": "X"}}
		bid := mustSend(t, s, tok, body)
		waitStatus(t, s.Fake, bid, "WAITING_FOR_OTHERS")
		resp, m := call(t, "POST", s.APIURL()+"/signature_request/remind/"+bid, tok, strings.NewReader(`{"emails":["x+bounce@example.com"]}`), "Content-Type", "application/json")
		if resp.StatusCode != 200 || statuses(m) != "x+bounce@example.com/NEED_TO_SIGN/BOUNCE" {
			t.Errorf("got %d %v, want BOUNCE", resp.StatusCode, m)
		}
	})
}

func TestFile(t *testing.T) {
	clock := newTestClock()
	s := newTestServer(t, Options{Now: clock.Now})
	tok := mintToken(t, s.Fake, ada, "sign:requests.read")
	open := seededID(t, s.Fake, "Mutual NDA — Analytical Engines Ltd")
	done := seededID(t, s.Fake, "Statement of work #42 — Difference Engine")
	tests := []struct {
		name, id, query, accept string
		status                  int
		want                    string // "json", "pdf" or an error_code
	}{
		{"default is agreement as JSON", open, "", "application/json", 200, "json"},
		{"no Accept → JSON", open, "?type=agreement", "", 200, "json"},
		{"agreement PDF", open, "?type=agreement", "application/pdf", 200, "pdf"},
		{"q-values prefer PDF", done, "?type=merged", "application/json;q=0.5, application/pdf", 200, "pdf"},
		{"wildcard", done, "?type=coc", "*/*", 200, "json"},
		{"unacceptable", open, "", "text/html", 406, "not_acceptable"},
		{"q=0 only", open, "", "application/json;q=0", 406, "not_acceptable"},
		{"coc before approval", open, "?type=coc", "application/json", 409, "signature_request_not_approved"},
		{"merged before approval", open, "?type=merged", "application/pdf", 409, "signature_request_not_approved"},
		{"coc approved", done, "?type=coc", "application/pdf", 200, "pdf"},
		{"unknown type", open, "?type=zip", "application/json", 400, "validation_error"},
		{"other user's", seededID(t, s.Fake, "Consulting agreement Q3"), "", "application/json", 200, "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "GET", s.APIURL()+"/signature_request/"+tt.id+"/file"+tt.query, tok, nil, "Accept", tt.accept)
			switch tt.want {
			case "json":
				if resp.StatusCode != 200 || len(m) != 2 {
					t.Fatalf("got %d %v, want 200 {signed_url, expires_at}", resp.StatusCode, m)
				}
				if u, _ := m["signed_url"].(string); !strings.HasPrefix(u, s.URL+"/sandbox/files/") {
					t.Errorf("signed_url: got %v", m["signed_url"])
				}
				if got, want := m["expires_at"], float64(clock.Now().Add(30*time.Minute).Unix()); got != want {
					t.Errorf("expires_at: got %v, want epoch seconds %v", got, want)
				}
			case "pdf":
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(b, []byte("%PDF-")) {
					t.Fatalf("got %d %s %q…, want a PDF", resp.StatusCode, resp.Header.Get("Content-Type"), b[:min(len(b), 8)])
				}
			default:
				assertError(t, resp, m, tt.status, tt.want)
			}
		})
	}

	t.Run("other user gets 404", func(t *testing.T) {
		resp, m := call(t, "GET", s.APIURL()+"/signature_request/"+open+"/file", mintToken(t, s.Fake, grace, "sign:requests"), nil, "Accept", "application/pdf")
		assertError(t, resp, m, 404, "signature_request_not_found")
	})

	t.Run("signed URL lives 30 minutes", func(t *testing.T) {
		_, m := call(t, "GET", s.APIURL()+"/signature_request/"+done+"/file?type=merged", tok, nil, "Accept", "application/json")
		u := m["signed_url"].(string)
		resp, _ := call(t, "GET", u, "", nil)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("%PDF-")) ||
			resp.Header.Get("Content-Disposition") != `attachment; filename="Statement_of_work_42__Difference_Engine-merged.pdf"` {
			t.Fatalf("signed URL: got %d %q %q", resp.StatusCode, resp.Header.Get("Content-Disposition"), b[:min(len(b), 8)])
		}
		clock.Add(30*time.Minute + time.Second)
		if resp, _ := call(t, "GET", u, "", nil); resp.StatusCode != 404 {
			t.Errorf("expired signed URL: got %d, want 404", resp.StatusCode)
		}
		if resp, _ := call(t, "GET", s.URL+"/sandbox/files/forged", "", nil); resp.StatusCode != 404 {
			t.Errorf("forged signed URL: got %d, want 404", resp.StatusCode)
		}
	})
}

func TestAPIFaults(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "openid")
	info := s.APIURL() + "/user/info"

	t.Run("status with Retry-After, counted down", func(t *testing.T) {
		s.SetFaults(Faults{APIStatus: 429, APIStatusTimes: 2, RetryAfter: 7})
		for i := range 2 {
			resp, m := call(t, "GET", info, tok, nil)
			assertError(t, resp, m, 429, "rate_limit_exceeded")
			if got := resp.Header.Get("Retry-After"); got != "7" {
				t.Errorf("call %d Retry-After: got %q, want 7", i, got)
			}
		}
		if resp, m := call(t, "GET", info, tok, nil); resp.StatusCode != 200 {
			t.Errorf("after the countdown: got %d %v, want 200", resp.StatusCode, m)
		}
	})

	t.Run("5xx answers HTML, forever when Times is 0", func(t *testing.T) {
		s.SetFaults(Faults{APIStatus: 503, RetryAfter: 2})
		for range 3 {
			resp, _ := call(t, "GET", info, tok, nil)
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("got %d %v, want 503 text/html with Retry-After 2", resp.StatusCode, resp.Header)
			}
		}
		s.SetFaults(Faults{APIStatus: 500})
		if resp, _ := call(t, "GET", info, tok, nil); resp.StatusCode != 500 || resp.Header.Get("Retry-After") != "" {
			t.Errorf("500: got %d Retry-After %q, want 500 without Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		s.SetFaults(Faults{MalformedJSON: true})
		for _, path := range []string{"/user/info", "/signature_request/ffffffffffffffffffffffff"} {
			req, _ := http.NewRequest("GET", s.APIURL()+path, nil)
			req.Header.Set("Authorization", "Bearer "+mintToken(t, s.Fake, ada, "openid", "sign:requests"))
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || json.Valid(b) || len(b) == 0 {
				t.Errorf("%s: got %d %q, want 200 with broken JSON", path, resp.StatusCode, b)
			}
		}
	})

	t.Run("latency honours cancellation", func(t *testing.T) {
		s.SetFaults(Faults{Latency: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", info, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		errc := make(chan error, 1)
		go func() {
			resp, err := testClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		waitFor(t, "the request to arrive", func() bool { return s.Fake.inFlight() })
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("got a response, want the call to be cancelled")
		}
		// The handler gave up too (else Close would hang on it): it logs status 0.
		waitFor(t, "the cancelled call to be logged", func() bool {
			l := s.Requests()
			return len(l) > 0 && l[len(l)-1].Path == "/v1/user/info" && l[len(l)-1].Status == 0
		})
		s.SetFaults(Faults{})
	})
}

// inFlight reports whether a REST call is waiting on injected latency.
func (f *Fake) inFlight() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sandbox.sleeping > 0
}

// FuzzSend feeds arbitrary bodies to the send endpoint: any answer but a panic or a 5xx.
func FuzzSend(f *testing.F) {
	f.Add("application/json", `{"title":"x","signers":[{"email_address":"a@b.c","name":"n","group":-1}],"file_url":"https://x/y","expires_at":"99999999999999999999"}`)
	f.Add("application/json", `{"signers":null,"viewers":[null],"expires_at":{}}`)
	f.Add("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"signers[999][name]\"\r\n\r\nx\r\n--b--\r\n")
	f.Add("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"signers\"\r\n\r\n[{\"group\":1e99}]\r\n--b--\r\n")
	fk := New(Options{ProcessingDelay: time.Hour})
	defer fk.Close()
	tok := randomToken("ory_at_")
	fk.access[hashToken(tok)] = &accessToken{grant: &grant{user: &fk.opts.Users[0], scopes: []string{"sign:requests"}}, expires: time.Now().Add(time.Hour)}
	f.Fuzz(func(t *testing.T, ct, body string) {
		req := httptest.NewRequest("POST", "/v1/signature_request/send", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		fk.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Errorf("got %d for %q %q", rec.Code, ct, body)
		}
	})
}
