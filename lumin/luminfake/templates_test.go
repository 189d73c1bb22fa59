package luminfake

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Ids of the seeded templates (seed.go).
var (
	tplNDA        = seedTemplates[0].id // lumin, SAME_TIME, Client/1 + Provider/2
	tplConsulting = seedTemplates[1].id // lumin, ORDER, Client/1 + Provider/2
	tplPDF        = seedTemplates[2].id // pdf
)

var templateIDShape = regexp.MustCompile(`^sign_[0-9a-f]{24}$`)

// versionHeader is the header pair every template read needs (lumin-api.md §14).
var versionHeader = []string{"X-Lumin-API-Version", "1.1"}

// listTemplates GETs /templates with the version header and an optional query.
func listTemplates(t *testing.T, s *Server, token, query string) (*http.Response, map[string]any) {
	t.Helper()
	u := s.APIURL() + "/templates"
	if query != "" {
		u += "?" + query
	}
	return call(t, "GET", u, token, nil, versionHeader...)
}

// sendFromTemplate posts a JSON send-from-template body.
func sendFromTemplate(t *testing.T, s *Server, token string, v any) (*http.Response, map[string]any) {
	t.Helper()
	return call(t, "POST", s.APIURL()+"/signature_request/send-from-template", token, jsonBody(t, v), "Content-Type", "application/json")
}

// validTemplateSend fills both roles of the consulting template: Ada is the Client.
func validTemplateSend(templateID string) map[string]any {
	return map[string]any{
		"template_id": templateID,
		"title":       "Consulting — Q4",
		"expires_at":  future(7 * 24 * time.Hour),
		"signers": []map[string]any{
			{"email_address": ada, "name": "Ada Lovelace", "signer_role": "Client"},
			{"email_address": "charles@example.com", "name": "Charles Babbage", "signer_role": "Provider"},
		},
	}
}

// keys returns the sorted keys of m.
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestTemplateScopes(t *testing.T) {
	s := newTestServer(t, Options{})
	tests := []struct {
		name   string
		scopes []string
		method string
		path   string
		body   any
		want   int
	}{
		{"list without templates", []string{"openid", "sign:requests"}, "GET", "/templates", nil, 403},
		{"list with templates.write (old name)", []string{"templates.write"}, "GET", "/templates", nil, 403},
		{"list with templates", []string{"templates"}, "GET", "/templates", nil, 200},
		{"detail without templates", []string{"sign:requests.read"}, "GET", "/templates/" + tplNDA, nil, 403},
		{"detail with templates", []string{"templates"}, "GET", "/templates/" + tplNDA, nil, 200},
		{"send without templates", []string{"sign:requests"}, "POST", "/signature_request/send-from-template", validTemplateSend(tplConsulting), 403},
		{"send without sign:requests", []string{"templates", "sign:requests.read"}, "POST", "/signature_request/send-from-template", validTemplateSend(tplConsulting), 403},
		{"send with both", []string{"templates", "sign:requests"}, "POST", "/signature_request/send-from-template", validTemplateSend(tplConsulting), 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mintToken(t, s.Fake, ada, tt.scopes...)
			hdr := append(slices.Clone(versionHeader), "Content-Type", "application/json")
			var resp *http.Response
			var m map[string]any
			if tt.body != nil {
				resp, m = call(t, tt.method, s.APIURL()+tt.path, tok, jsonBody(t, tt.body), hdr...)
			} else {
				resp, m = call(t, tt.method, s.APIURL()+tt.path, tok, nil, hdr...)
			}
			if tt.want == 403 {
				assertError(t, resp, m, 403, "insufficient_scope")
				return
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d %v, want %d", resp.StatusCode, m, tt.want)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		resp, m := listTemplates(t, s, "", "")
		assertError(t, resp, m, 401, "unauthorized")
	})
}

func TestTemplateAPIVersion(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "templates")
	for _, path := range []string{"/templates", "/templates/" + tplNDA} {
		for _, tt := range []struct {
			name   string
			values []string // header values; nil: no header
			want   int
		}{
			{"missing", nil, 400},
			{"empty", []string{""}, 400},
			{"1.0", []string{"1.0"}, 400},
			{"2", []string{"2"}, 400},
			{"1.10", []string{"1.10"}, 400},
			{"sent twice", []string{"1.1", "1.1"}, 400},
			{"1.1", []string{"1.1"}, 200},
		} {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				req, err := http.NewRequest("GET", s.APIURL()+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				for _, v := range tt.values {
					req.Header.Add("X-Lumin-API-Version", v)
				}
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != tt.want {
					t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tt.want)
				}
				if tt.want == 400 && !strings.Contains(rec.Body.String(), `"error_code":"invalid_api_version"`) {
					t.Errorf("body: got %s, want error_code invalid_api_version", rec.Body)
				}
			})
		}
	}
	t.Run("scope is checked before the version", func(t *testing.T) {
		resp, m := call(t, "GET", s.APIURL()+"/templates", mintToken(t, s.Fake, ada, "sign:requests"), nil)
		assertError(t, resp, m, 403, "insufficient_scope")
	})
}

func TestListTemplatesPagination(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "templates")
	tests := []struct {
		query              string
		page, limit, items int
		wantMsg            string // non-empty: a 400 whose message contains this
	}{
		{"", 1, 10, 3, ""},
		{"page=1&limit=10", 1, 10, 3, ""},
		{"limit=25&page=1", 1, 25, 3, ""},
		{"page=1&limit=50", 1, 50, 3, ""},
		{"page=2&limit=10", 2, 10, 0, ""},
		{"page=999999999&limit=50", 999999999, 50, 0, ""},
		{"page=1", 0, 0, 0, "page and limit must be sent together"},
		{"limit=10", 0, 0, 0, "page and limit must be sent together"},
		{"page=1&limit=abc", 0, 0, 0, "limit must be an integer"},
		{"page=1&limit=", 0, 0, 0, "limit must be an integer"},
		{"page=1&limit=10.0", 0, 0, 0, "limit must be an integer"},
		{"page=1&limit=1e1", 0, 0, 0, "limit must be an integer"},
		{"page=1&limit=20", 0, 0, 0, "limit must be one of the following values: 10, 25, 50"},
		{"page=1&limit=100", 0, 0, 0, "limit must be one of the following values"},
		{"page=1&limit=-10", 0, 0, 0, "limit must be one of the following values"},
		{"page=abc&limit=10", 0, 0, 0, "page must be an integer"},
		{"page=&limit=10", 0, 0, 0, "page must be an integer"},
		{"page=%2B1&limit=10", 0, 0, 0, "page must be an integer"},
		{"page=1.5&limit=10", 0, 0, 0, "page must be an integer"},
		{"page=0&limit=10", 0, 0, 0, "page must not be less than 1"},
		{"page=-1&limit=10", 0, 0, 0, "page must not be less than 1"},
		{"page=99999999999999999999&limit=10", 0, 0, 0, "page must be an integer"},
		{"page=1&page=2&limit=10", 0, 0, 0, "page must be sent once"},
		{"page=1&limit=10&limit=25", 0, 0, 0, "limit must be sent once"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, m := listTemplates(t, s, tok, tt.query)
			if tt.wantMsg != "" {
				assertError(t, resp, m, 400, "validation_error")
				if msg, _ := m["error_message"].(string); !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("error_message: got %q, want it to contain %q", msg, tt.wantMsg)
				}
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
			}
			if m["page"] != float64(tt.page) || m["limit"] != float64(tt.limit) || m["total_count"] != 3.0 {
				t.Errorf("page limit total_count: got %v %v %v, want %d %d 3", m["page"], m["limit"], m["total_count"], tt.page, tt.limit)
			}
			data, ok := m["data"].([]any)
			if !ok {
				t.Fatalf("data: got %s %v, want an array", jsonType(m["data"]), m["data"])
			}
			if len(data) != tt.items {
				t.Errorf("items: got %d, want %d", len(data), tt.items)
			}
		})
	}
	t.Run("Grace has none", func(t *testing.T) {
		resp, m := listTemplates(t, s, mintToken(t, s.Fake, grace, "templates"), "")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
		}
		if data, ok := m["data"].([]any); !ok || len(data) != 0 || m["total_count"] != 0.0 {
			t.Errorf("got data %v total_count %v, want [] and 0", m["data"], m["total_count"])
		}
	})
}

func TestListTemplatesShape(t *testing.T) {
	s := newTestServer(t, Options{})
	resp, m := listTemplates(t, s, mintToken(t, s.Fake, ada, "templates"), "page=1&limit=10")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
	}
	if got := keys(m); !slices.Equal(got, []string{"data", "limit", "page", "total_count"}) {
		t.Errorf("keys: got %v, want data, limit, page, total_count", got)
	}
	for _, k := range []string{"page", "limit", "total_count"} {
		if jsonType(m[k]) != "number" {
			t.Errorf("%s: got %s %v, want a number", k, jsonType(m[k]), m[k])
		}
	}
	types := map[string]int{}
	var created []float64
	for i, it := range m["data"].([]any) {
		item := it.(map[string]any)
		if got := keys(item); !slices.Equal(got, []string{"created_at", "name", "template_id", "type", "updated_at"}) {
			t.Errorf("item %d keys: got %v, want created_at, name, template_id, type, updated_at", i, got)
		}
		if id, _ := item["template_id"].(string); !templateIDShape.MatchString(id) {
			t.Errorf("item %d template_id: got %v, want sign_ + 24 hex", i, item["template_id"])
		}
		if name, _ := item["name"].(string); name == "" {
			t.Errorf("item %d name: got %v, want a non-empty string", i, item["name"])
		}
		typ, _ := item["type"].(string)
		types[typ]++
		// created_at a number, updated_at a numeric string: Lumin sends both (lumin-api.md §20).
		c, ok := item["created_at"].(float64)
		if !ok || c < 1e12 {
			t.Errorf("item %d created_at: got %s %v, want epoch ms as a number", i, jsonType(item["created_at"]), item["created_at"])
		}
		created = append(created, c)
		us, _ := item["updated_at"].(string)
		u, err := strconv.ParseInt(us, 10, 64)
		if err != nil || u < 1e12 || float64(u) < c {
			t.Errorf("item %d updated_at: got %s %v, want epoch ms as a numeric string, not before created_at", i, jsonType(item["updated_at"]), item["updated_at"])
		}
	}
	if types["lumin"] != 2 || types["pdf"] != 1 || len(types) != 2 {
		t.Errorf("types: got %v, want 2 lumin and 1 pdf", types)
	}
	if !slices.IsSortedFunc(created, func(a, b float64) int { return int(b - a) }) {
		t.Errorf("created_at: got %v, want newest first", created)
	}
}

func TestGetTemplateShape(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "templates")
	tests := []struct {
		id, typ, name, signingType, roles string
	}{
		{tplNDA, "lumin", "Mutual NDA", "SAME_TIME", "[Client/1 Provider/2]"},
		{tplConsulting, "lumin", "Consulting agreement", "ORDER", "[Client/1 Provider/2]"},
		{tplPDF, "pdf", "Supplier onboarding form (PDF)", "SAME_TIME", "[Supplier/1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "GET", s.APIURL()+"/templates/"+tt.id, tok, nil, versionHeader...)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
			}
			want := []string{"created_at", "fields", "name", "signer_roles", "signing_type", "tags", "template_id", "type", "updated_at", "variables"}
			if got := keys(m); !slices.Equal(got, want) {
				t.Errorf("keys: got %v, want %v", got, want)
			}
			if m["template_id"] != tt.id || m["type"] != tt.typ || m["name"] != tt.name || m["signing_type"] != tt.signingType {
				t.Errorf("got id %v type %v name %v signing_type %v, want %s %s %s %s",
					m["template_id"], m["type"], m["name"], m["signing_type"], tt.id, tt.typ, tt.name, tt.signingType)
			}
			if jsonType(m["created_at"]) != "number" || jsonType(m["updated_at"]) != "string" {
				t.Errorf("times: got created_at %s, updated_at %s, want number and numeric string", jsonType(m["created_at"]), jsonType(m["updated_at"]))
			}
			var roles []string
			for _, r := range m["signer_roles"].([]any) {
				role := r.(map[string]any)
				if got := keys(role); !slices.Equal(got, []string{"group", "name"}) || jsonType(role["group"]) != "number" {
					t.Errorf("role: got %v, want {name, group: number}", role)
				}
				roles = append(roles, fmt.Sprintf("%v/%v", role["name"], role["group"]))
			}
			if got := fmt.Sprint(roles); got != tt.roles {
				t.Errorf("signer_roles: got %s, want %s", got, tt.roles)
			}
			for _, k := range []string{"tags", "fields", "variables"} {
				if a, ok := m[k].([]any); !ok || len(a) != 0 {
					t.Errorf("%s: got %s %v, want []", k, jsonType(m[k]), m[k])
				}
			}
		})
	}
}

func TestGetTemplateNotFound(t *testing.T) {
	s := newTestServer(t, Options{})
	adaTok := mintToken(t, s.Fake, ada, "templates")
	graceTok := mintToken(t, s.Fake, grace, "templates")
	for _, tt := range []struct{ name, token, id string }{
		{"unknown", adaTok, "sign_ffffffffffffffffffffffff"},
		{"no prefix", adaTok, strings.TrimPrefix(tplNDA, "sign_")},
		{"upper case", adaTok, strings.ToUpper(tplNDA)},
		{"a signature request id", adaTok, "66a0f5eed000000000000001"},
		{"too long", adaTok, tplNDA + "0"},
		{"another user's", graceTok, tplNDA},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := call(t, "GET", s.APIURL()+"/templates/"+tt.id, tt.token, nil, versionHeader...)
			assertError(t, resp, m, 404, "template_not_found")
		})
	}
}

func TestSendFromTemplateProgression(t *testing.T) {
	h := newHookReceiver(t)
	s := newHookServer(t, h)
	tok := mintToken(t, s.Fake, ada, "sign:requests", "templates")
	withRoles := func(id, adaRole, otherRole string) map[string]any {
		b := validTemplateSend(id)
		b["signers"] = []map[string]any{
			{"email_address": "charles@example.com", "name": "Charles Babbage", "signer_role": otherRole},
			{"email_address": ada, "name": "Ada Lovelace", "signer_role": adaRole},
		}
		return b
	}
	tests := []struct {
		name        string
		body        map[string]any
		signingType string
		wantStatus  string
		wantSigners string // email/group/status, in the order sent
	}{
		{"ORDER, creator signs first", withRoles(tplConsulting, "Client", "Provider"), "ORDER", "NEED_TO_SIGN",
			"[charles@example.com/2/WAITING_FOR_OTHERS " + ada + "/1/NEED_TO_SIGN]"},
		{"ORDER, creator signs second", withRoles(tplConsulting, "Provider", "Client"), "ORDER", "WAITING_FOR_OTHERS",
			"[charles@example.com/1/NEED_TO_SIGN " + ada + "/2/WAITING_FOR_OTHERS]"},
		{"SAME_TIME, both due", withRoles(tplNDA, "Provider", "Client"), "SAME_TIME", "NEED_TO_SIGN",
			"[charles@example.com/1/NEED_TO_SIGN " + ada + "/2/NEED_TO_SIGN]"},
		{"expires_at as a numeric string", func() map[string]any {
			b := withRoles(tplNDA, "Client", "Provider")
			b["expires_at"] = strconv.FormatInt(future(time.Hour), 10)
			b["tags"] = map[string]any{"ClientName": "Ada"}
			b["viewers"] = []map[string]any{{"email_address": "mary@example.com", "name": "Mary"}}
			return b
		}(), "SAME_TIME", "NEED_TO_SIGN", "[charles@example.com/2/NEED_TO_SIGN " + ada + "/1/NEED_TO_SIGN]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := sendFromTemplate(t, s, tok, tt.body)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("got %d %v, want 201", resp.StatusCode, m)
			}
			created, _ := m["signature_request"].(map[string]any)
			if got := keys(m); !slices.Equal(got, []string{"signature_request"}) {
				t.Fatalf("201 keys: got %v, want signature_request", got)
			}
			if got := keys(created); !slices.Equal(got, []string{"created_at", "signature_request_id", "status"}) ||
				created["status"] != "WAITING_FOR_PROCESSING" || jsonType(created["created_at"]) != "number" {
				t.Fatalf("201 body: got %v, want {signature_request_id, created_at: number, status: WAITING_FOR_PROCESSING}", created)
			}
			id, _ := created["signature_request_id"].(string)
			if !idPattern.MatchString(id) {
				t.Fatalf("id: got %q, want 24 hex digits", id)
			}
			waitStatus(t, s.Fake, id, tt.wantStatus)
			sr := getRequest(t, s, tok, id)
			if sr["signing_type"] != tt.signingType || sr["title"] != tt.body["title"] {
				t.Errorf("got signing_type %v title %v, want %s %v", sr["signing_type"], sr["title"], tt.signingType, tt.body["title"])
			}
			var got []string
			for _, sg := range sr["signers"].([]any) {
				sm := sg.(map[string]any)
				got = append(got, fmt.Sprintf("%v/%v/%v", sm["email_address"], sm["group"], sm["status"]))
			}
			if fmt.Sprint(got) != tt.wantSigners {
				t.Errorf("signers: got %v, want %s", got, tt.wantSigners)
			}
			waitEvents(t, h, id, []string{"signature_request_created"})
		})
	}
}

func TestSendFromTemplateValidation(t *testing.T) {
	s := newTestServer(t, Options{ProcessingDelay: time.Hour})
	tok := mintToken(t, s.Fake, ada, "sign:requests", "templates")
	graceTok := mintToken(t, s.Fake, grace, "sign:requests", "templates")
	with := func(id string, mutate func(b map[string]any)) map[string]any {
		b := validTemplateSend(id)
		mutate(b)
		return b
	}
	setSigners := func(signers ...map[string]any) func(map[string]any) {
		return func(b map[string]any) { b["signers"] = signers }
	}
	client := map[string]any{"email_address": ada, "name": "Ada", "signer_role": "Client"}
	provider := map[string]any{"email_address": "p@example.com", "name": "P", "signer_role": "Provider"}
	tests := []struct {
		name    string
		token   string
		body    any
		status  int
		code    string
		wantMsg string
	}{
		{"pdf template", tok, with(tplPDF, setSigners(map[string]any{"email_address": ada, "name": "Ada", "signer_role": "Supplier"})),
			422, "invalid_template_type", "pdf"},
		{"unknown template", tok, validTemplateSend("sign_ffffffffffffffffffffffff"), 404, "template_not_found", ""},
		{"malformed template id", tok, validTemplateSend("../templates"), 404, "template_not_found", ""},
		{"another user's template", graceTok, validTemplateSend(tplConsulting), 404, "template_not_found", ""},
		{"no template_id", tok, with(tplNDA, func(b map[string]any) { delete(b, "template_id") }), 400, "validation_error", "template_id must not be empty"},
		{"template_id not a string", tok, with(tplNDA, func(b map[string]any) { b["template_id"] = 7 }), 400, "validation_error", "template_id"},
		{"body checked before the template", tok, with(tplPDF, func(b map[string]any) { b["title"] = "" }), 400, "validation_error", "title must not be empty"},
		{"title too long", tok, with(tplNDA, func(b map[string]any) { b["title"] = strings.Repeat("x", 256) }), 400, "validation_error", "title must be 1 to 255"},
		{"no expires_at", tok, with(tplNDA, func(b map[string]any) { delete(b, "expires_at") }), 400, "validation_error", "expires_at is required"},
		{"expires_at in the past", tok, with(tplNDA, func(b map[string]any) { b["expires_at"] = time.Now().Add(-time.Minute).UnixMilli() }), 400, "validation_error", "in the future"},
		{"expires_at not a number", tok, with(tplNDA, func(b map[string]any) { b["expires_at"] = "soon" }), 400, "validation_error", "epoch milliseconds"},
		{"no signers", tok, with(tplNDA, setSigners()), 400, "validation_error", "signers must not be empty"},
		{"bad email", tok, with(tplNDA, setSigners(client, map[string]any{"email_address": "nope", "name": "P", "signer_role": "Provider"})),
			400, "validation_error", "signers[1].email_address must be a valid email address"},
		{"no name", tok, with(tplNDA, setSigners(client, map[string]any{"email_address": "p@example.com", "signer_role": "Provider"})),
			400, "validation_error", "signers[1].name must not be empty"},
		{"same signer twice", tok, with(tplNDA, setSigners(client, map[string]any{"email_address": ada, "name": "Ada", "signer_role": "Provider"})),
			400, "validation_error", "appears more than once"},
		{"missing signer_role", tok, with(tplNDA, setSigners(client, map[string]any{"email_address": "p@example.com", "name": "P"})),
			400, "validation_error", "signers[1].signer_role must not be empty"},
		{"unknown signer_role", tok, with(tplNDA, setSigners(client, provider, map[string]any{"email_address": "w@example.com", "name": "W", "signer_role": "Witness"})),
			400, "validation_error", `signers[2].signer_role "Witness" is not a signer role`},
		{"role names are case-sensitive", tok, with(tplNDA, setSigners(client, map[string]any{"email_address": "p@example.com", "name": "P", "signer_role": "provider"})),
			400, "validation_error", "is not a signer role"},
		{"role filled twice", tok, with(tplNDA, setSigners(client, provider, map[string]any{"email_address": "q@example.com", "name": "Q", "signer_role": "Provider"})),
			400, "validation_error", `signers[2].signer_role "Provider" is already assigned`},
		{"role left empty", tok, with(tplConsulting, setSigners(client)), 400, "validation_error", `signer role "Provider" of this template has no signer`},
		{"bad viewer", tok, with(tplNDA, func(b map[string]any) { b["viewers"] = []map[string]any{{"email_address": "x"}} }), 400, "validation_error", "viewers[0]"},
		{"tags not an object", tok, with(tplNDA, func(b map[string]any) { b["tags"] = []string{"a"} }), 400, "validation_error", "tags must be an object"},
		{"variables not an object", tok, with(tplNDA, func(b map[string]any) { b["variables"] = "x" }), 400, "validation_error", "variables must be an object"},
		{"verification", tok, with(tplNDA, setSigners(client, map[string]any{"email_address": "p@example.com", "name": "P", "signer_role": "Provider",
			"verification": map[string]any{"method": "vc"}})), 403, "verification_not_licensed", ""},
		{"not an object", tok, []int{1}, 400, "validation_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.RequestIDs(ada))
			resp, m := sendFromTemplate(t, s, tt.token, tt.body)
			assertError(t, resp, m, tt.status, tt.code)
			if msg, _ := m["error_message"].(string); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error_message: got %q, want it to contain %q", msg, tt.wantMsg)
			}
			if after := len(s.RequestIDs(ada)); after != before {
				t.Errorf("requests: got %d, want %d (nothing created)", after, before)
			}
		})
	}
	t.Run("raw bodies", func(t *testing.T) {
		for _, tt := range []struct {
			ct, body string
			status   int
			code     string
		}{
			{"text/plain", `{}`, 415, "unsupported_media_type"},
			{"multipart/form-data; boundary=b", "--b--\r\n", 415, "unsupported_media_type"},
			{"application/json", `{"template_id":`, 400, "validation_error"},
			{"application/json", `{} {}`, 400, "validation_error"},
			{"application/json", `{"signers":[null,{"signer_role":5}]}`, 400, "validation_error"},
		} {
			resp, m := call(t, "POST", s.APIURL()+"/signature_request/send-from-template", tok, strings.NewReader(tt.body), "Content-Type", tt.ct)
			assertError(t, resp, m, tt.status, tt.code)
		}
	})
}

func TestTemplateFaults(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := mintToken(t, s.Fake, ada, "sign:requests", "templates")

	t.Run("status on every template endpoint", func(t *testing.T) {
		s.SetFaults(Faults{APIStatus: 503, RetryAfter: 3})
		defer s.SetFaults(Faults{})
		for _, do := range []func() *http.Response{
			func() *http.Response { r, _ := listTemplates(t, s, tok, ""); return r },
			func() *http.Response {
				r, _ := call(t, "GET", s.APIURL()+"/templates/"+tplNDA, tok, nil, versionHeader...)
				return r
			},
			func() *http.Response { r, _ := sendFromTemplate(t, s, tok, validTemplateSend(tplConsulting)); return r },
		} {
			if resp := do(); resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
				t.Errorf("got %d Retry-After %q, want 503 with Retry-After 3", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}
		if got := len(s.RequestIDs(ada)); got != len(seedRequests) {
			t.Errorf("requests: got %d, want %d (the faulted send created nothing)", got, len(seedRequests))
		}
	})

	t.Run("counted down and limited by path", func(t *testing.T) {
		s.SetFaults(Faults{APIStatus: 429, APIStatusTimes: 1, APIPath: "/v1/templates"})
		defer s.SetFaults(Faults{})
		// Outside APIPath: unaffected, and the countdown is not spent.
		if resp, m := sendFromTemplate(t, s, tok, validTemplateSend(tplConsulting)); resp.StatusCode != 201 {
			t.Fatalf("send-from-template: got %d %v, want 201", resp.StatusCode, m)
		}
		resp, m := listTemplates(t, s, tok, "")
		assertError(t, resp, m, 429, "rate_limit_exceeded")
		if resp, m := listTemplates(t, s, tok, ""); resp.StatusCode != 200 {
			t.Errorf("after the countdown: got %d %v, want 200", resp.StatusCode, m)
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		s.SetFaults(Faults{MalformedJSON: true})
		defer s.SetFaults(Faults{})
		req := httptest.NewRequest("GET", "/v1/templates", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Lumin-API-Version", "1.1")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Body.Len() == 0 || strings.HasSuffix(rec.Body.String(), "}") {
			t.Errorf("got %d %q, want 200 with truncated JSON", rec.Code, rec.Body)
		}
	})
}

// FuzzSendFromTemplate feeds arbitrary JSON bodies: any answer but a panic or a 5xx.
func FuzzSendFromTemplate(f *testing.F) {
	f.Add(`{"template_id":"` + tplConsulting + `","title":"x","expires_at":"99999999999999999999","signers":[{"email_address":"a@b.c","name":"n","signer_role":"Client"}]}`)
	f.Add(`{"template_id":"` + tplNDA + `","signers":[null,{"signer_role":null}],"tags":null,"viewers":[null],"expires_at":{}}`)
	f.Add(`{"template_id":"` + tplPDF + `","title":"t","expires_at":1e99,"signers":[{"email_address":"a@b.c","name":"n","signer_role":"Supplier"}]}`)
	f.Add(`{"template_id":["x"],"custom_email":[],"fields":7}`)
	fk := New(Options{ProcessingDelay: time.Hour})
	defer fk.Close()
	tok := randomToken("ory_at_")
	fk.access[hashToken(tok)] = &accessToken{grant: &grant{user: &fk.opts.Users[0], scopes: []string{"sign:requests", "templates"}}, expires: time.Now().Add(time.Hour)}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v1/signature_request/send-from-template", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		fk.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Errorf("got %d for %q", rec.Code, body)
		}
	})
}

// FuzzListTemplates feeds arbitrary query strings to the list: 200 or 400, never a panic.
func FuzzListTemplates(f *testing.F) {
	for _, q := range []string{"", "page=1&limit=10", "page=-0&limit=+10", "page=%zz", "page=1;limit=10", "page=1&limit=50&page=2"} {
		f.Add(q)
	}
	fk := New(Options{})
	defer fk.Close()
	tok := randomToken("ory_at_")
	fk.access[hashToken(tok)] = &accessToken{grant: &grant{user: &fk.opts.Users[0], scopes: []string{"templates"}}, expires: time.Now().Add(time.Hour)}
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest("GET", "/v1/templates", nil)
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Lumin-API-Version", "1.1")
		rec := httptest.NewRecorder()
		fk.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 {
			t.Errorf("got %d for %q", rec.Code, query)
		}
	})
}
