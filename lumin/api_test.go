package lumin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTS is a TokenSource that counts forced refreshes.
type fakeTS struct {
	mu         sync.Mutex
	tok        string
	refreshed  int
	refreshErr error
}

func (f *fakeTS) AccessToken(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tok, nil
}

func (f *fakeTS) Refreshed(_ context.Context, stale string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshed++
	if f.refreshErr != nil {
		return "", f.refreshErr
	}
	f.tok = "tok-" + stale + "-new"
	return f.tok, nil
}

// apiServer is a fake REST API whose answers a test scripts.
type apiServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   int
	// handle answers request number i (0-based).
	handle func(i int, w http.ResponseWriter, r *http.Request)
	reqs   []*http.Request
	bodies [][]byte
}

func newAPIServer(t *testing.T, handle func(i int, w http.ResponseWriter, r *http.Request)) (*apiServer, *API) {
	t.Helper()
	s := &apiServer{handle: handle}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		i := s.n
		s.n++
		s.reqs = append(s.reqs, r)
		s.bodies = append(s.bodies, b)
		s.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		s.handle(i, w, r)
	}))
	t.Cleanup(s.srv.Close)
	a, err := NewAPI(s.srv.URL+"/v1/", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() } // no wall time
	return s, a
}

func (s *apiServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

const sampleRequest = `{"signature_request":{"signature_request_id":"sr_1","title":"NDA","status":"WAITING_FOR_OTHERS",
 "signing_type":"SAME_TIME","created_at":1768751225657,"updated_at":"1768751300000","expires_at":1769356025,
 "details_url":"https://sign.luminpdf.com/x","reason":null,"unknown_field":{"a":1},
 "signers":[{"email_address":"a@example.com","name":"A","group":1,"is_approved":false,"status":"NEED_TO_SIGN"},
            {"email":"b@example.com","name":"B","group":"2","is_approved":"true","status":"APPROVED"}]}}`

func okSample(_ int, w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, sampleRequest)
}

func TestAPIGet(t *testing.T) {
	s, a := newAPIServer(t, okSample)
	ts := &fakeTS{tok: "tok-1"}
	sr, err := a.Get(ctxT(t), ts, "sr_1")
	if err != nil {
		t.Fatal(err)
	}
	r := s.reqs[0]
	if r.Method != http.MethodGet || r.URL.Path != "/v1/signature_request/sr_1" {
		t.Errorf("request: got %s %s", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer tok-1" {
		t.Errorf("Authorization: got %q, want Bearer tok-1", got)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept: got %q", got)
	}
	if r.URL.RawQuery != "" {
		t.Errorf("query: got %q, want none (no token in URLs)", r.URL.RawQuery)
	}
	want := SignatureRequest{
		ID: "sr_1", Title: "NDA", Status: "WAITING_FOR_OTHERS", SigningType: "SAME_TIME",
		CreatedAt:  time.UnixMilli(1768751225657).UTC(),
		UpdatedAt:  time.UnixMilli(1768751300000).UTC(),
		ExpiresAt:  time.Unix(1769356025, 0).UTC(), // below 10^11: seconds
		DetailsURL: "https://sign.luminpdf.com/x",
		Signers: []Signer{
			{Email: "a@example.com", Name: "A", Group: 1, Status: "NEED_TO_SIGN"},
			{Email: "b@example.com", Name: "B", Group: 2, IsApproved: true, Status: "APPROVED"},
		},
	}
	gotJSON, _ := json.Marshal(sr)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("got %s, want %s", gotJSON, wantJSON)
	}
}

func TestLenientTime(t *testing.T) {
	ms := time.UnixMilli(1768751225657).UTC()
	tests := []struct {
		in   string
		want time.Time
	}{
		{`1768751225657`, ms},
		{`"1768751225657"`, ms},
		{`1768751225657.0`, ms},
		{`1768751225`, time.Unix(1768751225, 0).UTC()},
		{`"1768751225"`, time.Unix(1768751225, 0).UTC()},
		{`null`, time.Time{}},
		{`""`, time.Time{}},
		{`"soon"`, time.Time{}},
		{`true`, time.Time{}},
		{`{}`, time.Time{}},
		{`0`, time.Time{}},
		{`-5`, time.Time{}},
		{`1e400`, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v struct {
				T ltime `json:"t"`
			}
			if err := json.Unmarshal([]byte(`{"t":`+tt.in+`}`), &v); err != nil {
				t.Fatalf("decode failed: %v", err)
			}
			if got := time.Time(v.T); !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLenientSignatureRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(sr SignatureRequest) bool
	}{
		{"title as number", `{"signature_request_id":"x","title":42}`, func(sr SignatureRequest) bool { return sr.Title == "42" }},
		{"status as object", `{"signature_request_id":"x","status":{"a":1}}`, func(sr SignatureRequest) bool { return sr.Status == "" }},
		{"signers not an array", `{"signature_request_id":"x","signers":"none"}`, func(sr SignatureRequest) bool { return len(sr.Signers) == 0 }},
		{"signer not an object skipped", `{"signature_request_id":"x","signers":[1,{"email":"e@x"}]}`, func(sr SignatureRequest) bool {
			return len(sr.Signers) == 1 && sr.Signers[0].Email == "e@x"
		}},
		{"email_address wins", `{"signature_request_id":"x","signers":[{"email_address":"a@x","email":"b@x"}]}`, func(sr SignatureRequest) bool {
			return sr.Signers[0].Email == "a@x"
		}},
		{"group not a number", `{"signature_request_id":"x","signers":[{"group":"first"}]}`, func(sr SignatureRequest) bool { return sr.Signers[0].Group == 0 }},
		{"reason null", `{"signature_request_id":"x","reason":null}`, func(sr SignatureRequest) bool { return sr.Reason == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr, err := DecodeSignatureRequest([]byte(tt.in))
			if err != nil {
				t.Fatalf("got %v, want lenient success", err)
			}
			if !tt.want(sr) {
				t.Errorf("unexpected result %+v", sr)
			}
		})
	}
	if _, err := DecodeSignatureRequest([]byte(`[1,2]`)); err == nil {
		t.Error("array envelope: got nil error")
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"65a1f0c2e4b0a1b2c3d4e5f6", true},
		{"sign_abc-DEF_123", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"../user/info", false},
		{"a/b", false},
		{"a%2Fb", false},
		{"a?b", false},
		{"a b", false},
		{"a.b", false},
		{"ä", false},
		{"a\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ValidID(tt.id); got != tt.ok {
				t.Errorf("got %v, want %v", got, tt.ok)
			}
		})
	}
}

func TestAPIInvalidIDMakesNoRequest(t *testing.T) {
	s, a := newAPIServer(t, okSample)
	ts := &fakeTS{tok: "t"}
	ctx := ctxT(t)
	calls := map[string]func() error{
		"Get":          func() error { _, err := a.Get(ctx, ts, "../x"); return err },
		"Cancel":       func() error { return a.Cancel(ctx, ts, "a/b") },
		"Remind":       func() error { _, _, err := a.Remind(ctx, ts, "", nil); return err },
		"UpdateExpiry": func() error { _, err := a.UpdateExpiry(ctx, ts, "a?b", time.Now()); return err },
		"File":         func() error { _, err := a.File(ctx, ts, "a b", ""); return err },
		"File kind":    func() error { _, err := a.File(ctx, ts, "ok", "../x"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: got %v, want ErrInvalidInput", name, err)
		}
	}
	if n := s.count(); n != 0 {
		t.Errorf("requests: got %d, want 0", n)
	}
}

// TestAPIStatusMapping covers security.md §8.4–§8.5 for a GET and a non-GET.
func TestAPIStatusMapping(t *testing.T) {
	errBody := func(status int, code, msg string) func(int, http.ResponseWriter, *http.Request) {
		return func(_ int, w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, status, map[string]string{"error_code": code, "error_message": msg})
		}
	}
	seq := func(hs ...func(int, http.ResponseWriter, *http.Request)) func(int, http.ResponseWriter, *http.Request) {
		return func(i int, w http.ResponseWriter, r *http.Request) { hs[min(i, len(hs)-1)](i, w, r) }
	}
	status := func(code int, hdr ...string) func(int, http.ResponseWriter, *http.Request) {
		return func(_ int, w http.ResponseWriter, _ *http.Request) {
			for i := 0; i+1 < len(hdr); i += 2 {
				w.Header().Set(hdr[i], hdr[i+1])
			}
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			_, _ = io.WriteString(w, "<h1>SECRET-INTERNALS</h1>")
		}
	}
	const cancelOK = `{"signature_request_id":"sr_1","status":"CANCELLED"}`
	okCancel := func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, cancelOK)
	}
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)

	tests := []struct {
		name       string
		get        bool // Get (GET) or Cancel (PUT)
		handle     func(int, http.ResponseWriter, *http.Request)
		want       error // nil → success
		status     int
		requests   int
		refreshed  int
		code       string
		retryAfter time.Duration
		refreshErr error
	}{
		{"GET 400", true, errBody(400, "bad", "limit must be an integer"), ErrInvalidInput, 400, 1, 0, "bad", 0, nil},
		{"GET 403 no refresh", true, errBody(403, "verification_not_licensed", "no"), ErrForbidden, 403, 1, 0, "verification_not_licensed", 0, nil},
		{"GET 404", true, errBody(404, "not_found", ""), ErrNotFound, 404, 1, 0, "not_found", 0, nil},
		{"GET 409", true, errBody(409, "signature_request_not_approved", ""), ErrConflict, 409, 1, 0, "signature_request_not_approved", 0, nil},
		{"GET 422", true, errBody(422, "x", ""), ErrInvalidInput, 422, 1, 0, "x", 0, nil},
		{"GET 401 then ok", true, seq(status(401), okSample), nil, 0, 2, 1, "", 0, nil},
		{"GET 401 twice → reconnect", true, status(401), ErrReconnect, 401, 2, 1, "", 0, nil},
		{"GET 401, refresh fails", true, status(401), ErrInvalidGrant, 401, 1, 1, "", 0, ErrInvalidGrant},
		{"PUT 401 → refresh, resubmit", false, status(401), ErrResubmit, 401, 1, 1, "", 0, nil},
		{"GET 429 short → one retry", true, seq(status(429, "Retry-After", "1"), okSample), nil, 0, 2, 0, "", 0, nil},
		{"GET 429 short twice", true, status(429, "Retry-After", "2"), ErrRateLimited, 429, 2, 0, "", 2 * time.Second, nil},
		{"GET 429 long", true, status(429, "Retry-After", "10"), ErrRateLimited, 429, 1, 0, "", 10 * time.Second, nil},
		{"GET 503 HTTP date", true, status(503, "Retry-After", httpDate), ErrRateLimited, 503, 1, 0, "", 0, nil},
		{"PUT 429 short not retried", false, status(429, "Retry-After", "1"), ErrRateLimited, 429, 1, 0, "", time.Second, nil},
		{"GET 500 → 2 retries", true, status(500), ErrUpstream, 500, 3, 0, "", 0, nil},
		{"GET 502 then ok", true, seq(status(502), okSample), nil, 0, 2, 0, "", 0, nil},
		{"GET 503 without Retry-After retried", true, status(503), ErrUpstream, 503, 3, 0, "", 0, nil},
		{"PUT 500 never retried", false, status(500), ErrUpstream, 500, 1, 0, "", 0, nil},
		{"PUT 200", false, okCancel, nil, 0, 1, 0, "", 0, nil},
		{"GET 302 not followed", true, status(302, "Location", "https://evil.example/"), ErrUpstream, 302, 1, 0, "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := newAPIServer(t, tt.handle)
			ts := &fakeTS{tok: "tok-1", refreshErr: tt.refreshErr}
			var err error
			if tt.get {
				_, err = a.Get(ctxT(t), ts, "sr_1")
			} else {
				err = a.Cancel(ctxT(t), ts, "sr_1")
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if n := s.count(); n != tt.requests {
				t.Errorf("requests: got %d, want %d", n, tt.requests)
			}
			if ts.refreshed != tt.refreshed {
				t.Errorf("forced refreshes: got %d, want %d", ts.refreshed, tt.refreshed)
			}
			if tt.refreshed > 0 && tt.requests > 1 {
				if got := s.reqs[1].Header.Get("Authorization"); got != "Bearer tok-tok-1-new" {
					t.Errorf("retry Authorization: got %q, want the refreshed token", got)
				}
			}
			if err == nil {
				return
			}
			assertNoSecrets(t, err.Error(), "SECRET-INTERNALS", "tok-1")
			if tt.status != 0 && !IsStatus(err, tt.status) {
				t.Errorf("IsStatus(%d): false for %v", tt.status, err)
			}
			var ae *APIError
			if errors.As(err, &ae) {
				if ae.Code != tt.code {
					t.Errorf("code: got %q, want %q", ae.Code, tt.code)
				}
				if tt.retryAfter != 0 && ae.RetryAfter != tt.retryAfter {
					t.Errorf("RetryAfter: got %v, want %v", ae.RetryAfter, tt.retryAfter)
				}
				if strings.Contains(ae.Message, "SECRET-INTERNALS") {
					t.Error("5xx body leaked into Message")
				}
			}
			if tt.name == "GET 503 HTTP date" {
				if ra := RetryAfter(err); ra < 80*time.Second || ra > 90*time.Second {
					t.Errorf("RetryAfter from HTTP date: got %v, want about 90s", ra)
				}
			}
		})
	}
}

func TestAPINetworkErrors(t *testing.T) {
	// A server that accepts and closes every connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns++
			mu.Unlock()
			_ = c.Close()
		}
	}()
	defer ln.Close()
	a, err := NewAPI("http://"+ln.Addr().String()+"/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	a.sleep = func(ctx context.Context, d time.Duration) error { return nil }
	ts := &fakeTS{tok: "tok-1"}

	count := func() int { mu.Lock(); defer mu.Unlock(); return conns }
	if _, err := a.Get(ctxT(t), ts, "sr_1"); !errors.Is(err, ErrUpstream) {
		t.Errorf("GET: got %v, want ErrUpstream", err)
	}
	// net/http itself may retry an idempotent request once on a dead keep-alive conn, so
	// count at least our 3 attempts.
	getConns := count()
	if getConns < 3 {
		t.Errorf("GET connections: got %d, want ≥ 3 (2 retries)", getConns)
	}
	if _, _, err := a.Remind(ctxT(t), ts, "sr_1", []string{"a@example.com"}); !errors.Is(err, ErrUpstream) {
		t.Errorf("POST: got %v, want ErrUpstream", err)
	}
	if n := count() - getConns; n != 1 {
		t.Errorf("POST connections: got %d, want 1 (never retried)", n)
	}
}

func TestAPIResponseChecks(t *testing.T) {
	tests := []struct {
		name   string
		handle func(int, http.ResponseWriter, *http.Request)
	}{
		{"HTML with 200", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, sampleRequest)
		}},
		{"truncated JSON", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, sampleRequest[:40])
		}},
		{"over 1 MiB", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"signature_request":{"signature_request_id":"x","title":"`+strings.Repeat("a", 1<<20)+`"}}`)
		}},
		{"envelope missing", func(_ int, w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, 200, map[string]any{"other": 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := newAPIServer(t, tt.handle)
			_, err := a.Get(ctxT(t), &fakeTS{tok: "t"}, "sr_1")
			if !errors.Is(err, ErrUpstream) {
				t.Errorf("got %v, want ErrUpstream", err)
			}
			if n := s.count(); n != 1 {
				t.Errorf("requests: got %d, want 1 (a bad 200 is not retried)", n)
			}
		})
	}
}

func TestAPIRedirectKeepsToken(t *testing.T) {
	var stolen []string
	var mu sync.Mutex
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stolen = append(stolen, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer evil.Close()
	_, a := newAPIServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/steal", http.StatusTemporaryRedirect)
	})
	_, err := a.Get(ctxT(t), &fakeTS{tok: "tok-1"}, "sr_1")
	if !errors.Is(err, ErrUpstream) {
		t.Errorf("got %v, want ErrUpstream", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stolen) != 0 {
		t.Errorf("token sent to another origin %d times", len(stolen))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"2", 2 * time.Second, true},
		{" 120 ", 120 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0, true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", 0, true}, // RFC 850 form, in the past
		{"99999999999", 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestAPIUserInfoAndFile(t *testing.T) {
	s, a := newAPIServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/user/info":
			writeJSON(w, 200, map[string]any{"user": map[string]any{"id": "u1", "email": "ada@example.com", "name": "Ada", "extra": true}})
		case "/v1/signature_request/sr_1/file":
			writeJSON(w, 200, map[string]any{"signed_url": "https://files.luminpdf.com/x", "expires_at": 1769356025})
		default:
			http.NotFound(w, r)
		}
	})
	ts := &fakeTS{tok: "t"}
	u, err := a.UserInfo(ctxT(t), ts)
	if err != nil || u != (User{ID: "u1", Email: "ada@example.com", Name: "Ada"}) {
		t.Errorf("UserInfo: got %+v, %v", u, err)
	}
	f, err := a.File(ctxT(t), ts, "sr_1", FileCOC)
	if err != nil {
		t.Fatal(err)
	}
	if f.URL != "https://files.luminpdf.com/x" || !f.ExpiresAt.Equal(time.Unix(1769356025, 0)) {
		t.Errorf("File: got %+v", f)
	}
	r := s.reqs[1]
	if r.URL.Query().Get("type") != "coc" || r.Header.Get("Accept") != "application/json" {
		t.Errorf("File request: query %q, Accept %q", r.URL.RawQuery, r.Header.Get("Accept"))
	}
}

func TestAPIRemindAndExpiry(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, a := newAPIServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"signature_request":{"signature_request_id":"sr_1"},"reminders":[
				{"email":"a@example.com","signer_status":"NEED_TO_SIGN","email_status":"SENT"},
				{"email":"b@example.com","signer_status":"NEED_TO_SIGN","email_status":"EXCEED_DAILY_LIMIT"}]}`)
			return
		}
		okSample(i, w, r)
	})
	ts := &fakeTS{tok: "t"}
	sr, rs, err := a.Remind(ctxT(t), ts, "sr_1", []string{"a@example.com", "b@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if sr.ID != "sr_1" {
		t.Errorf("signature_request id: got %q, want sr_1", sr.ID)
	}
	if len(rs) != 2 || rs[1] != (Reminder{Email: "b@example.com", SignerStatus: "NEED_TO_SIGN", EmailStatus: "EXCEED_DAILY_LIMIT"}) {
		t.Errorf("reminders: got %+v", rs)
	}
	if got := string(s.bodies[0]); got != `{"emails":["a@example.com","b@example.com"]}` {
		t.Errorf("remind body: got %s", got)
	}
	if s.reqs[0].URL.Path != "/v1/signature_request/remind/sr_1" || s.reqs[0].Header.Get("Content-Type") != "application/json" {
		t.Errorf("remind request: %s %q", s.reqs[0].URL.Path, s.reqs[0].Header.Get("Content-Type"))
	}
	if _, err := a.UpdateExpiry(ctxT(t), ts, "sr_1", at); err != nil {
		t.Fatal(err)
	}
	r := s.reqs[1]
	if r.Method != http.MethodPatch || r.URL.Path != "/v1/signature_request/sr_1" {
		t.Errorf("expiry request: %s %s", r.Method, r.URL.Path)
	}
	if got, want := string(s.bodies[1]), `{"expires_at":1772366400000}`; got != want {
		t.Errorf("expiry body: got %s, want %s", got, want)
	}
	if err := a.Cancel(ctxT(t), ts, "sr_1"); err != nil {
		t.Fatal(err)
	}
	if r := s.reqs[2]; r.Method != http.MethodPut || r.URL.Path != "/v1/signature_request/cancel/sr_1" || len(s.bodies[2]) != 0 {
		t.Errorf("cancel request: %s %s body %q", r.Method, r.URL.Path, s.bodies[2])
	}
}

func TestAPISend(t *testing.T) {
	exp := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	signers := []Signer{{Email: "a@example.com", Name: "A", Group: 1}, {Email: "b@example.com", Name: "B", Group: 2}}
	created := func(_ int, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 201, map[string]any{"signature_request": map[string]any{"signature_request_id": "sr_new", "created_at": 1768751225657, "status": "WAITING_FOR_PROCESSING"}})
	}

	t.Run("file URL as JSON", func(t *testing.T) {
		s, a := newAPIServer(t, created)
		sr, err := a.Send(ctxT(t), &fakeTS{tok: "t"}, SendInput{Title: "NDA", FileURL: "https://example.com/a.pdf", Signers: signers, SigningType: "ORDER", ExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
		if sr.ID != "sr_new" || sr.Status != "WAITING_FOR_PROCESSING" || sr.Title != "NDA" || !sr.ExpiresAt.Equal(exp) || len(sr.Signers) != 2 {
			t.Errorf("result: got %+v", sr)
		}
		r := s.reqs[0]
		if r.Method != http.MethodPost || r.URL.Path != "/v1/signature_request/send" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request: %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		var body map[string]any
		if err := json.Unmarshal(s.bodies[0], &body); err != nil {
			t.Fatal(err)
		}
		if body["file_url"] != "https://example.com/a.pdf" || body["title"] != "NDA" || body["expires_at"] != float64(exp.UnixMilli()) || body["signing_type"] != "ORDER" {
			t.Errorf("body: got %s", s.bodies[0])
		}
		if got, _ := json.Marshal(body["signers"]); string(got) != `[{"email_address":"a@example.com","group":1,"name":"A"},{"email_address":"b@example.com","group":2,"name":"B"}]` {
			t.Errorf("signers: got %s", got)
		}
	})

	t.Run("file as multipart", func(t *testing.T) {
		pdf := []byte("%PDF-1.7 test")
		s, a := newAPIServer(t, func(i int, w http.ResponseWriter, r *http.Request) {
			if err := r.ParseMultipartForm(1 << 20); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			created(i, w, r)
		})
		_, err := a.Send(ctxT(t), &fakeTS{tok: "t"}, SendInput{Title: "NDA", File: pdf, FileName: `../"x".pdf`, Signers: signers, SigningType: "SAME_TIME", ExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
		r := s.reqs[0]
		f := r.MultipartForm
		want := map[string]string{
			"title":                     "NDA",
			"expires_at":                "1775001600000",
			"signing_type":              "SAME_TIME",
			"signers[0][email_address]": "a@example.com",
			"signers[0][name]":          "A",
			"signers[1][group]":         "2",
		}
		for k, v := range want {
			if got := f.Value[k]; len(got) != 1 || got[0] != v {
				t.Errorf("field %s: got %q, want %q", k, got, v)
			}
		}
		if _, ok := f.Value["signers"]; ok {
			t.Error(`a JSON "signers" field is sent alongside the indexed fields`)
		}
		fh := f.File["file"]
		if len(fh) != 1 || fh[0].Filename != "_x_.pdf" || fh[0].Header.Get("Content-Type") != "application/pdf" {
			t.Fatalf("file part: got %+v", fh)
		}
		got, _ := fh[0].Open()
		b, _ := io.ReadAll(got)
		if string(b) != string(pdf) {
			t.Errorf("file bytes: got %q", b)
		}
	})

	t.Run("input checks make no request", func(t *testing.T) {
		ok := SendInput{Title: "NDA", FileURL: "https://example.com/a.pdf", Signers: signers, ExpiresAt: exp}
		tests := map[string]func(in *SendInput){
			"empty title":      func(in *SendInput) { in.Title = "" },
			"title too long":   func(in *SendInput) { in.Title = strings.Repeat("é", 256) },
			"no file":          func(in *SendInput) { in.FileURL = "" },
			"both files":       func(in *SendInput) { in.File = []byte("x") },
			"http file URL":    func(in *SendInput) { in.FileURL = "http://example.com/a.pdf" },
			"no signers":       func(in *SendInput) { in.Signers = nil },
			"signer w/o email": func(in *SendInput) { in.Signers = []Signer{{Name: "A"}} },
			"bad signing type": func(in *SendInput) { in.SigningType = "SOMETIME" },
			"no expiry":        func(in *SendInput) { in.ExpiresAt = time.Time{} },
		}
		s, a := newAPIServer(t, created)
		for name, mut := range tests {
			in := ok
			mut(&in)
			if _, err := a.Send(ctxT(t), &fakeTS{tok: "t"}, in); !errors.Is(err, ErrInvalidInput) {
				t.Errorf("%s: got %v, want ErrInvalidInput", name, err)
			}
		}
		if n := s.count(); n != 0 {
			t.Errorf("requests: got %d, want 0", n)
		}
	})

	t.Run("5xx never retried", func(t *testing.T) {
		s, a := newAPIServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) { http.Error(w, "x", 502) })
		_, err := a.Send(ctxT(t), &fakeTS{tok: "t"}, SendInput{Title: "NDA", FileURL: "https://example.com/a.pdf", Signers: signers, ExpiresAt: exp})
		if !errors.Is(err, ErrUpstream) || s.count() != 1 {
			t.Errorf("got %v after %d requests, want ErrUpstream after 1", err, s.count())
		}
	})
}

func TestNewAPIValidatesBase(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"https://api.luminpdf.com/v1", true},
		{"http://127.0.0.1:4444/v1/", true},
		{"http://api.luminpdf.com/v1", false},
		{"https://api.luminpdf.com/v1?x=1", false},
		{"api.luminpdf.com/v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := NewAPI(tt.in, nil)
			if got := err == nil; got != tt.ok {
				t.Errorf("got ok=%v (%v), want %v", got, err, tt.ok)
			}
		})
	}
}

// TestAPIRemindSignatureRequest: Remind returns the signature_request of the answer
// (lumin-api.md §16.3) so callers map reminders to signers without a second GET; an
// absent or unusable signature_request is the zero value and never hides the reminders
// (lumin-api.md §20).
func TestAPIRemindSignatureRequest(t *testing.T) {
	const reminders = `"reminders":[{"email_address":"a@example.com","signer_status":"NEED_TO_SIGN","email_status":"BOUNCE"}]`
	tests := []struct {
		name        string
		body        string
		wantID      string
		wantSigners []string
	}{
		{"with signers", `{"signature_request":{"signature_request_id":"sr_1","title":7,"signers":[
			{"email_address":"b@example.com","name":"B"},{"email":"a@example.com","name":"A"}]},` + reminders + `}`,
			"sr_1", []string{"b@example.com", "a@example.com"}},
		{"absent", `{` + reminders + `}`, "", nil},
		{"null", `{"signature_request":null,` + reminders + `}`, "", nil},
		{"not an object", `{"signature_request":"sr_1",` + reminders + `}`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := newAPIServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, tt.body)
			})
			sr, rs, err := a.Remind(ctxT(t), &fakeTS{tok: "t"}, "sr_1", []string{"a@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			if sr.ID != tt.wantID {
				t.Errorf("id: got %q, want %q", sr.ID, tt.wantID)
			}
			var got []string
			for _, sg := range sr.Signers {
				got = append(got, sg.Email)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantSigners, ",") {
				t.Errorf("signers: got %v, want %v", got, tt.wantSigners)
			}
			want := Reminder{Email: "a@example.com", SignerStatus: "NEED_TO_SIGN", EmailStatus: "BOUNCE"}
			if len(rs) != 1 || rs[0] != want {
				t.Errorf("reminders: got %+v, want [%+v]", rs, want)
			}
			if n := s.count(); n != 1 {
				t.Errorf("requests: got %d, want 1", n)
			}
		})
	}
}
