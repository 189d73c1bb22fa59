package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// listGETs counts the sandbox's GET /v1/signature_request/{id} calls per id (file
// downloads and other methods excluded).
func listGETs(env *testEnv) map[string]int {
	env.t.Helper()
	const prefix = "/v1/signature_request/"
	n := map[string]int{}
	for _, r := range env.fake.Requests() {
		id, ok := strings.CutPrefix(r.Path, prefix)
		if r.Method != http.MethodGet || !ok || strings.Contains(id, "/") {
			continue
		}
		n[id]++
	}
	return n
}

// viewList loads /requests, checks it rendered rows rows without stale badges, and
// returns how many GETs per id the view made at the sandbox.
func viewList(t *testing.T, env *testEnv, rows int) map[string]int {
	t.Helper()
	before := listGETs(env)
	resp, body := env.get("/requests")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /requests: got %d, want 200", resp.StatusCode)
	}
	doc := mustDoc(t, body)
	if n := doc.Find(`[data-testid="request-row"]`).Length(); n != rows {
		t.Errorf("rows: got %d, want %d", n, rows)
	}
	if n := doc.Find(`[data-testid="stale-badge"]`).Length(); n != 0 {
		t.Errorf("stale badges: got %d, want 0", n)
	}
	delta := map[string]int{}
	for id, n := range listGETs(env) {
		if d := n - before[id]; d != 0 {
			delta[id] = d
		}
	}
	return delta
}

// TestListFreshnessWindow: a row the list fetched less than listFreshFor ago is not
// fetched again (lumin-api.md §19), the window expires, and the app's own actions on a
// row make the next view fetch that row (and only that row) again.
func TestListFreshnessWindow(t *testing.T) {
	env := newTestEnv(t, withDB())
	env.connect()
	csrf := env.csrfToken()
	ids := []string{seededID(3), seededID(4), seededID(6)} // all non-terminal
	for _, id := range ids {
		resp, _ := env.postForm("/requests/track", url.Values{"id": {id}, "_csrf": {csrf}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("track %s: got %d, want 303", id, resp.StatusCode)
		}
	}
	allOnce := map[string]int{ids[0]: 1, ids[1]: 1, ids[2]: 1}
	sameCounts := func(t *testing.T, what string, got, want map[string]int) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: got GETs %v, want %v", what, got, want)
			return
		}
		for id, n := range want {
			if got[id] != n {
				t.Errorf("%s: got GETs %v, want %v", what, got, want)
				return
			}
		}
	}

	// Tracking cleared the rows: the first view fetches all three, the second none.
	sameCounts(t, "first view", viewList(t, env, 3), allOnce)
	sameCounts(t, "second view", viewList(t, env, 3), nil)
	env.clock.Advance(defaultListFreshFor + time.Second)
	sameCounts(t, "view after the window", viewList(t, env, 3), allOnce)
	sameCounts(t, "view right after that", viewList(t, env, 3), nil)

	var email string
	tr, err := env.db.Get(context.Background(), env.session().UserKey, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, sg := range tr.Signers {
		if sg.Status == "NEED_TO_SIGN" || sg.Status == "WAITING_FOR_OTHERS" {
			email = sg.Email
			break
		}
	}
	if email == "" {
		t.Fatalf("no signer to remind in %+v", tr.Signers)
	}
	expiry := env.clock.Now().UTC().AddDate(0, 1, 0).Format(dateLayout)

	cases := []struct {
		name   string
		id     string
		act    func(id string) *http.Response
		status int
	}{
		{"remind", ids[0], func(id string) *http.Response {
			resp, _ := env.postForm("/requests/"+id+"/remind", url.Values{"email": {email}, "_csrf": {csrf}})
			return resp
		}, http.StatusSeeOther},
		{"expiry", ids[2], func(id string) *http.Response {
			resp, _ := env.postForm("/requests/"+id+"/expiry", url.Values{"expires_at": {expiry}, "_csrf": {csrf}})
			return resp
		}, http.StatusSeeOther},
		{"track again", ids[1], func(id string) *http.Response {
			resp, _ := env.postForm("/requests/track", url.Values{"id": {id}, "_csrf": {csrf}})
			return resp
		}, http.StatusSeeOther},
		{"detail view", ids[1], func(id string) *http.Response {
			resp, _ := env.get("/requests/" + id)
			return resp
		}, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			viewList(t, env, 3) // whatever was due is fetched now: every row is fresh
			if resp := tc.act(tc.id); resp.StatusCode != tc.status {
				t.Fatalf("%s: got %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
			sameCounts(t, "view after "+tc.name, viewList(t, env, 3), map[string]int{tc.id: 1})
			sameCounts(t, "the view after that", viewList(t, env, 3), nil)
		})
	}

	t.Run("window 0 refreshes every view", func(t *testing.T) {
		env.srv.listFreshFor = 0
		defer func() { env.srv.listFreshFor = defaultListFreshFor }()
		viewList(t, env, 3)
		sameCounts(t, "view with no window", viewList(t, env, 3), allOnce)
	})
}

// TestFreshness covers the map's rules that the end-to-end test cannot reach: a clear
// that races a fetch wins, a clock that went back never extends the window, and the
// map empties itself at its bound.
func TestFreshness(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	const w = 20 * time.Second
	cases := []struct {
		name  string
		setup func(f *freshness)
		now   time.Time
		win   time.Duration
		want  bool
	}{
		{"unknown", func(f *freshness) {}, t0, w, false},
		{"just fetched", func(f *freshness) { f.markFetched("u", []string{"a"}, t0, t0) }, t0.Add(time.Second), w, true},
		{"window over", func(f *freshness) { f.markFetched("u", []string{"a"}, t0, t0) }, t0.Add(w), w, false},
		{"window 0", func(f *freshness) { f.markFetched("u", []string{"a"}, t0, t0) }, t0, 0, false},
		{"other user", func(f *freshness) { f.markFetched("v", []string{"a"}, t0, t0) }, t0, w, false},
		{"clock went back", func(f *freshness) { f.markFetched("u", []string{"a"}, t0, t0) }, t0.Add(-time.Second), w, false},
		{"cleared", func(f *freshness) {
			f.markFetched("u", []string{"a"}, t0, t0)
			f.clear("u", "a", t0.Add(time.Second))
		}, t0.Add(2 * time.Second), w, false},
		{"cleared while a fetch was in flight", func(f *freshness) {
			f.clear("u", "a", t0.Add(time.Second))
			f.markFetched("u", []string{"a"}, t0, t0.Add(2*time.Second))
		}, t0.Add(3 * time.Second), w, false},
		{"fetched after the clear", func(f *freshness) {
			f.clear("u", "a", t0)
			f.markFetched("u", []string{"a"}, t0.Add(time.Second), t0.Add(2*time.Second))
		}, t0.Add(3 * time.Second), w, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f freshness
			tc.setup(&f)
			if got := f.recent("u", "a", tc.now, tc.win); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("bounded", func(t *testing.T) {
		var f freshness
		ids := make([]string, freshMaxEntries)
		for i := range ids {
			ids[i] = itoa(i)
		}
		f.markFetched("u", ids, t0, t0)
		if got := len(f.m); got != freshMaxEntries {
			t.Fatalf("entries: got %d, want %d", got, freshMaxEntries)
		}
		f.markFetched("u", []string{"new"}, t0, t0)
		if got := len(f.m); got != 1 {
			t.Errorf("entries after the bound: got %d, want 1", got)
		}
		if !f.recent("u", "new", t0, w) || f.recent("u", "0", t0, w) {
			t.Errorf("after the reset: want only the newest entry")
		}
	})
}
