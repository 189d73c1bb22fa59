package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend opens a fresh, empty database for one test.
type backend struct {
	name    string
	require func(t *testing.T) // skips (or fails in CI) when the backend is unavailable
	open    func(t *testing.T) (db *DB, dsn string)
}

var backends = []backend{
	{"sqlite", func(*testing.T) {}, openTestSQLite},
	{"postgres", requirePostgres, openTestPostgres},
}

// requirePostgres checks TEST_DATABASE_URL is set; without it the PostgreSQL half of the suite
// is skipped locally and fails in CI (issue 5: the same tests run on PostgreSQL in CI).
func requirePostgres(t *testing.T) {
	t.Helper()
	if os.Getenv("TEST_DATABASE_URL") != "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("TEST_DATABASE_URL must be set in CI")
	}
	t.Skip("PostgreSQL tests skipped: set TEST_DATABASE_URL (see .ci/postgres.sh)")
}

func openTestSQLite(t *testing.T) (*DB, string) {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "data", "app.db")
	return mustOpen(t, dsn), dsn
}

// openTestPostgres creates a schema of its own in TEST_DATABASE_URL's database and points
// search_path at it, so every test (and every rerun) starts from nothing.
func openTestPostgres(t *testing.T) (*DB, string) {
	t.Helper()
	requirePostgres(t)
	base := os.Getenv("TEST_DATABASE_URL")
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "store_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return mustOpen(t, u.String()), u.String()
}

func mustOpen(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// t0 is a fixed Lumin-side time base (epoch ms are what Lumin sends).
var t0 = time.UnixMilli(1768751225657).UTC()

func at(d time.Duration) time.Time { return t0.Add(d) }

func mustUpsert(t *testing.T, db *DB, r TrackedRequest) {
	t.Helper()
	if err := db.Upsert(context.Background(), r); err != nil {
		t.Fatalf("Upsert(%s): %v", r.ID, err)
	}
}

func mustGet(t *testing.T, db *DB, userKey, id string) TrackedRequest {
	t.Helper()
	r, err := db.Get(context.Background(), userKey, id)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", userKey, id, err)
	}
	return r
}

func mustRecord(t *testing.T, db *DB, ev WebhookEvent) bool {
	t.Helper()
	dup, err := db.RecordWebhook(context.Background(), ev)
	if err != nil {
		t.Fatalf("RecordWebhook: %v", err)
	}
	return dup
}

// TestDB runs one suite against SQLite and, with TEST_DATABASE_URL, PostgreSQL.
func TestDB(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, db *DB, dsn string)
	}{
		{"upsert and get", testUpsertGet},
		{"status never moves backwards", testForwardOnly},
		{"list order, filter, pagination", testList},
		{"counts", testCounts},
		{"webhook idempotency", testWebhookIdempotent},
		{"webhook out of order", testWebhookOutOfOrder},
		{"candidates", testCandidates},
		{"has candidates", testHasCandidates},
		{"denylist and purge", testDenylist},
		{"migrations idempotent on reopen", testReopen},
		{"concurrent writes", testConcurrent},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			b.require(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					db, dsn := b.open(t)
					tt.run(t, db, dsn)
				})
			}
		})
	}
}

func testUpsertGet(t *testing.T, db *DB, _ string) {
	in := TrackedRequest{
		UserKey: "iss|alice", ID: "sr_1", Title: "NDA ✓ <b>", Status: "WAITING_FOR_OTHERS",
		Signers: []TrackedSigner{{Email: "a@example.com", Name: "A", Group: 1, Status: "NEED_TO_SIGN"},
			{Email: "b@example.com", Name: "B", Group: 2, Status: "APPROVED"}},
		CreatedAt: at(0), UpdatedAt: at(time.Minute), ExpiresAt: at(7 * 24 * time.Hour), Source: "sent", CheckedAt: at(2 * time.Minute),
	}
	mustUpsert(t, db, in)
	got := mustGet(t, db, "iss|alice", "sr_1")
	if !reflect.DeepEqual(got, in) {
		t.Errorf("Get:\n got %+v\nwant %+v", got, in)
	}
	// Another user never sees it (issue 5: no user sees another's requests).
	if _, err := db.Get(context.Background(), "iss|bob", "sr_1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("other user: got %v, want ErrNotFound", err)
	}
	if _, err := db.Get(context.Background(), "iss|alice", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: got %v, want ErrNotFound", err)
	}
	// Zero times and no signers round-trip as zero / nil.
	mustUpsert(t, db, TrackedRequest{UserKey: "iss|alice", ID: "sr_2", Status: "WAITING_FOR_PROCESSING", Source: "sent"})
	got = mustGet(t, db, "iss|alice", "sr_2")
	if !got.UpdatedAt.IsZero() || !got.ExpiresAt.IsZero() || got.Signers != nil {
		t.Errorf("zero values: got %+v", got)
	}
	if err := db.Upsert(context.Background(), TrackedRequest{ID: "x"}); err == nil {
		t.Error("Upsert without user key: got nil error")
	}
}

func testForwardOnly(t *testing.T, db *DB, _ string) {
	tests := []struct {
		name                     string
		stored, next             TrackedRequest
		wantStatus, wantTitle    string
		wantUpdated, wantChecked time.Time
	}{
		{"newer replaces",
			TrackedRequest{Status: "WAITING_FOR_PROCESSING", Title: "old", UpdatedAt: at(1 * time.Second)},
			TrackedRequest{Status: "NEED_TO_SIGN", Title: "new", UpdatedAt: at(2 * time.Second)},
			"NEED_TO_SIGN", "new", at(2 * time.Second), time.Time{}},
		{"older is ignored",
			TrackedRequest{Status: "WAITING_FOR_OTHERS", Title: "current", UpdatedAt: at(5 * time.Second)},
			TrackedRequest{Status: "NEED_TO_SIGN", Title: "stale", UpdatedAt: at(3 * time.Second)},
			"WAITING_FOR_OTHERS", "current", at(5 * time.Second), time.Time{}},
		{"same updated_at: the later GET wins",
			TrackedRequest{Status: "NEED_TO_SIGN", UpdatedAt: at(5 * time.Second)},
			TrackedRequest{Status: "WAITING_FOR_OTHERS", UpdatedAt: at(5 * time.Second)},
			"WAITING_FOR_OTHERS", "", at(5 * time.Second), time.Time{}},
		{"terminal is never replaced by non-terminal",
			TrackedRequest{Status: "APPROVED", UpdatedAt: at(5 * time.Second)},
			TrackedRequest{Status: "WAITING_FOR_OTHERS", UpdatedAt: at(9 * time.Second)},
			"APPROVED", "", at(5 * time.Second), time.Time{}},
		{"terminal after non-terminal",
			TrackedRequest{Status: "NEED_TO_SIGN", UpdatedAt: at(5 * time.Second)},
			TrackedRequest{Status: "CANCELLED", UpdatedAt: at(6 * time.Second)},
			"CANCELLED", "", at(6 * time.Second), time.Time{}},
		{"unknown updated_at never overrides a known one",
			TrackedRequest{Status: "NEED_TO_SIGN", UpdatedAt: at(5 * time.Second)},
			TrackedRequest{Status: "WAITING_FOR_PROCESSING"},
			"NEED_TO_SIGN", "", at(5 * time.Second), time.Time{}},
		{"empty fields do not erase",
			TrackedRequest{Status: "NEED_TO_SIGN", Title: "keep", UpdatedAt: at(5 * time.Second)},
			TrackedRequest{UpdatedAt: at(6 * time.Second)},
			"NEED_TO_SIGN", "keep", at(6 * time.Second), time.Time{}},
		{"checked_at only moves forward",
			TrackedRequest{Status: "NEED_TO_SIGN", UpdatedAt: at(5 * time.Second), CheckedAt: at(10 * time.Second)},
			TrackedRequest{Status: "NEED_TO_SIGN", UpdatedAt: at(5 * time.Second), CheckedAt: at(8 * time.Second)},
			"NEED_TO_SIGN", "", at(5 * time.Second), at(10 * time.Second)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("sr_fwd_%d", i)
			tt.stored.UserKey, tt.stored.ID, tt.stored.Source, tt.stored.CreatedAt = "u", id, "sent", at(0)
			tt.next.UserKey, tt.next.ID, tt.next.Source = "u", id, "tracked"
			mustUpsert(t, db, tt.stored)
			mustUpsert(t, db, tt.next)
			got := mustGet(t, db, "u", id)
			if got.Status != tt.wantStatus || got.Title != tt.wantTitle || !got.UpdatedAt.Equal(tt.wantUpdated) {
				t.Errorf("got %s %q @%v, want %s %q @%v", got.Status, got.Title, got.UpdatedAt, tt.wantStatus, tt.wantTitle, tt.wantUpdated)
			}
			if !got.CheckedAt.Equal(tt.wantChecked) && !tt.wantChecked.IsZero() {
				t.Errorf("checked_at: got %v, want %v", got.CheckedAt, tt.wantChecked)
			}
			if got.Source != "sent" || !got.CreatedAt.Equal(at(0)) {
				t.Errorf("source/created: got %q %v, want the first write's", got.Source, got.CreatedAt)
			}
		})
	}
}

func testList(t *testing.T, db *DB, _ string) {
	statuses := []string{"NEED_TO_SIGN", "APPROVED", "WAITING_FOR_OTHERS"}
	for i := range 25 {
		mustUpsert(t, db, TrackedRequest{UserKey: "alice", ID: fmt.Sprintf("sr_%02d", i), Status: statuses[i%3],
			CreatedAt: at(time.Duration(i) * time.Hour), Source: "sent"})
	}
	// Same created_at: id breaks the tie, so pages never overlap.
	mustUpsert(t, db, TrackedRequest{UserKey: "alice", ID: "sr_tie", Status: "APPROVED", CreatedAt: at(24 * time.Hour)})
	for i := range 3 {
		mustUpsert(t, db, TrackedRequest{UserKey: "bob", ID: fmt.Sprintf("sr_%02d", i), Status: "APPROVED", CreatedAt: at(100 * time.Hour)})
	}
	ids := func(rs []TrackedRequest) string {
		var s []string
		for _, r := range rs {
			if r.UserKey != "alice" {
				t.Errorf("row of %s in alice's list", r.UserKey)
			}
			s = append(s, r.ID)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name      string
		f         ListFilter
		wantIDs   string
		wantTotal int
	}{
		{"first page", ListFilter{Limit: 4}, "sr_tie,sr_24,sr_23,sr_22", 26},
		{"second page", ListFilter{Limit: 4, Offset: 4}, "sr_21,sr_20,sr_19,sr_18", 26},
		{"last partial page", ListFilter{Limit: 10, Offset: 20}, "sr_05,sr_04,sr_03,sr_02,sr_01,sr_00", 26},
		{"past the end", ListFilter{Limit: 10, Offset: 100}, "", 26},
		{"filter", ListFilter{Status: "APPROVED", Limit: 3}, "sr_tie,sr_22,sr_19", 9},
		{"filter matching nothing", ListFilter{Status: "FAILED"}, "", 0},
		{"negative offset", ListFilter{Limit: 1, Offset: -5}, "sr_tie", 26},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, total, err := db.List(context.Background(), "alice", tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(rs); got != tt.wantIDs || total != tt.wantTotal {
				t.Errorf("got %q (total %d), want %q (total %d)", got, total, tt.wantIDs, tt.wantTotal)
			}
		})
	}
	t.Run("default limit", func(t *testing.T) {
		rs, _, err := db.List(context.Background(), "alice", ListFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 26 {
			t.Errorf("got %d rows, want all 26 (default limit %d)", len(rs), DefaultListLimit)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		rs, total, err := db.List(context.Background(), "carol", ListFilter{})
		if err != nil || len(rs) != 0 || total != 0 {
			t.Errorf("got %d rows, total %d, err %v; want none", len(rs), total, err)
		}
	})
}

func testCounts(t *testing.T, db *DB, _ string) {
	for i, s := range []string{"APPROVED", "APPROVED", "NEED_TO_SIGN", "CANCELLED"} {
		mustUpsert(t, db, TrackedRequest{UserKey: "alice", ID: fmt.Sprint(i), Status: s})
	}
	mustUpsert(t, db, TrackedRequest{UserKey: "bob", ID: "9", Status: "FAILED"})
	got, err := db.Counts(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"APPROVED": 2, "NEED_TO_SIGN": 1, "CANCELLED": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func testWebhookIdempotent(t *testing.T, db *DB, _ string) {
	mustUpsert(t, db, TrackedRequest{UserKey: "alice", ID: "sr_1", Status: "NEED_TO_SIGN", UpdatedAt: at(0)})
	ev := WebhookEvent{EventType: "signature_request_signed", RequestID: "sr_1", EventTime: at(time.Minute),
		Status: "WAITING_FOR_OTHERS", UpdatedAt: at(time.Minute), SignerEmails: []string{"a@example.com"}}
	if mustRecord(t, db, ev) {
		t.Fatal("first delivery: got duplicate")
	}
	// Lumin retries: same key, and even a different body, changes nothing (security.md §11.4).
	retry := ev
	retry.Status, retry.UpdatedAt, retry.Title = "APPROVED", at(time.Hour), "changed"
	if !mustRecord(t, db, retry) {
		t.Error("retry: got not duplicate, want duplicate")
	}
	if got := mustGet(t, db, "alice", "sr_1"); got.Status != "WAITING_FOR_OTHERS" || got.Title != "" {
		t.Errorf("after duplicate: got %s %q, want WAITING_FOR_OTHERS unchanged", got.Status, got.Title)
	}
	// Same request and time, another event type: a different event.
	other := ev
	other.EventType = "signature_request_viewed"
	if mustRecord(t, db, other) {
		t.Error("other event type: got duplicate")
	}
	if _, err := db.RecordWebhook(context.Background(), WebhookEvent{RequestID: "x"}); err == nil {
		t.Error("event without type/time: got nil error")
	}
	// Concurrent deliveries of one new event: exactly one applies it.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh int
	)
	concurrent := WebhookEvent{EventType: "signature_request_approved", RequestID: "sr_1", EventTime: at(2 * time.Minute), Status: "APPROVED"}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dup, err := db.RecordWebhook(context.Background(), concurrent)
			if err != nil {
				t.Errorf("concurrent RecordWebhook: %v", err)
				return
			}
			if !dup {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fresh != 1 {
		t.Errorf("concurrent duplicates: %d applied, want 1", fresh)
	}
}

func testWebhookOutOfOrder(t *testing.T, db *DB, _ string) {
	for _, u := range []string{"alice", "bob"} {
		mustUpsert(t, db, TrackedRequest{UserKey: u, ID: "sr_x", Status: "NEED_TO_SIGN", UpdatedAt: at(0), Title: "T"})
	}
	mustUpsert(t, db, TrackedRequest{UserKey: "alice", ID: "sr_other", Status: "NEED_TO_SIGN", UpdatedAt: at(0)})
	steps := []struct {
		ev   WebhookEvent
		want string
	}{
		{WebhookEvent{EventType: "signature_request_signed", EventTime: at(3 * time.Minute), Status: "WAITING_FOR_OTHERS", Title: "T2"}, "WAITING_FOR_OTHERS"},
		{WebhookEvent{EventType: "signature_request_approved", EventTime: at(4 * time.Minute), Status: "APPROVED", UpdatedAt: at(4 * time.Minute)}, "APPROVED"},
		// Arrives late (retry of an earlier event): older updated_at, never applied.
		{WebhookEvent{EventType: "signature_request_viewed", EventTime: at(2 * time.Minute), Status: "NEED_TO_SIGN"}, "APPROVED"},
		// Newer but non-terminal after terminal: never applied.
		{WebhookEvent{EventType: "signature_request_due_date_updated", EventTime: at(9 * time.Minute), Status: "WAITING_FOR_OTHERS"}, "APPROVED"},
		// No status (unknown to the handler): nothing changes.
		{WebhookEvent{EventType: "signature_request_downloadable", EventTime: at(10 * time.Minute)}, "APPROVED"},
	}
	for i, s := range steps {
		s.ev.RequestID = "sr_x"
		if mustRecord(t, db, s.ev) {
			t.Fatalf("step %d: got duplicate", i)
		}
		for _, u := range []string{"alice", "bob"} {
			if got := mustGet(t, db, u, "sr_x"); got.Status != s.want {
				t.Errorf("step %d (%s), user %s: got %s, want %s", i, s.ev.EventType, u, got.Status, s.want)
			}
		}
	}
	if got := mustGet(t, db, "alice", "sr_x"); got.Title != "T2" || !got.UpdatedAt.Equal(at(4*time.Minute)) {
		t.Errorf("got title %q updated %v, want T2 at the approved event", got.Title, got.UpdatedAt)
	}
	if got := mustGet(t, db, "alice", "sr_other"); got.Status != "NEED_TO_SIGN" {
		t.Errorf("unrelated request changed to %s", got.Status)
	}
}

func testCandidates(t *testing.T, db *DB, _ string) {
	ctx := context.Background()
	events := []WebhookEvent{
		{RequestID: "c_mine_old", EventTime: at(1 * time.Minute), SignerEmails: []string{" Alice@Example.COM ", "x@example.com"}},
		{RequestID: "c_newer", EventTime: at(5 * time.Minute)},
		{RequestID: "c_newest", EventTime: at(9 * time.Minute), SignerEmails: []string{"bob@example.com"}},
		{RequestID: "c_mid", EventTime: at(3 * time.Minute)},
		{RequestID: "c_tracked", EventTime: at(8 * time.Minute), SignerEmails: []string{"alice@example.com"}},
	}
	for _, ev := range events {
		ev.EventType, ev.Status, ev.Title = "signature_request_created", "NEED_TO_SIGN", "doc"
		mustRecord(t, db, ev)
	}
	// alice already tracks one of them; a later event adds her as signer of c_mid.
	mustUpsert(t, db, TrackedRequest{UserKey: "alice", ID: "c_tracked", Status: "NEED_TO_SIGN"})
	mustRecord(t, db, WebhookEvent{EventType: "signature_request_signed", RequestID: "c_mid", EventTime: at(2 * time.Minute),
		SignerEmails: []string{"alice@example.com"}})

	get := func(user, email string, limit int) string {
		t.Helper()
		ids, err := db.Candidates(ctx, user, email, limit)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, ",")
	}
	tests := []struct {
		name, user, email string
		limit             int
		want              string
	}{
		{"signer match first, then newest", "alice", "ALICE@example.com", 10, "c_mid,c_mine_old,c_newest,c_newer"},
		{"limit", "alice", "alice@example.com", 1, "c_mid"},
		{"no email: newest first", "carol", "", 10, "c_newest,c_tracked,c_newer,c_mid,c_mine_old"},
		{"zero limit", "alice", "alice@example.com", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := get(tt.user, tt.email, tt.limit); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Checked candidates are not offered again, to that user only.
	for _, id := range []string{"c_mid", "c_newest"} {
		if err := db.CandidateChecked(ctx, "alice", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CandidateChecked(ctx, "alice", "c_mid"); err != nil {
		t.Fatalf("checking twice: %v", err)
	}
	if got, want := get("alice", "alice@example.com", 10), "c_mine_old,c_newer"; got != want {
		t.Errorf("after checks: got %q, want %q", got, want)
	}
	if got, want := get("bob", "bob@example.com", 2), "c_newest,c_tracked"; got != want {
		t.Errorf("bob: got %q, want %q", got, want)
	}
}

func testHasCandidates(t *testing.T, db *DB, _ string) {
	ctx := context.Background()
	has := func(user string) bool {
		t.Helper()
		ok, err := db.HasCandidates(ctx, user)
		if err != nil {
			t.Fatalf("HasCandidates(%s): %v", user, err)
		}
		return ok
	}
	// Each step is a write followed by reads; the reads before it are cached, so this
	// also checks that every kind of write invalidates the cached answer.
	steps := []struct {
		name  string
		write func()
		want  map[string]bool
	}{
		{"empty store", func() {}, map[string]bool{"alice": false, "bob": false}},
		{"a webhook names a request", func() {
			mustRecord(t, db, WebhookEvent{EventType: "signature_request_created", RequestID: "h_one",
				EventTime: at(time.Minute), Status: "NEED_TO_SIGN", SignerEmails: []string{"alice@example.com"}})
		}, map[string]bool{"alice": true, "bob": true}},
		{"alice tracks it", func() {
			mustUpsert(t, db, TrackedRequest{UserKey: "alice", ID: "h_one", Status: "NEED_TO_SIGN"})
		}, map[string]bool{"alice": false, "bob": true}},
		{"bob checked it", func() {
			if err := db.CandidateChecked(ctx, "bob", "h_one"); err != nil {
				t.Fatal(err)
			}
		}, map[string]bool{"alice": false, "bob": false}},
		{"another request", func() {
			mustRecord(t, db, WebhookEvent{EventType: "signature_request_approved", RequestID: "h_two",
				EventTime: at(2 * time.Minute), Status: "APPROVED"})
		}, map[string]bool{"alice": true, "bob": true}},
	}
	for _, st := range steps {
		st.write()
		for _, user := range []string{"alice", "bob"} {
			for range 2 { // the second read comes from the cache
				if got, want := has(user), st.want[user]; got != want {
					t.Errorf("%s: %s: got %v, want %v", st.name, user, got, want)
				}
			}
		}
	}
}

func testDenylist(t *testing.T, db *DB, _ string) {
	ctx := context.Background()
	now := time.Now()
	db.now = func() time.Time { return now }
	if err := db.DenySession(ctx, "sid-1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Denying again with an earlier time never shortens it.
	if err := db.DenySession(ctx, "sid-1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.DenySession(ctx, "", now); err == nil {
		t.Error("empty id: got nil error")
	}
	denied := func(id string) bool {
		t.Helper()
		d, err := db.SessionDenied(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if !denied("sid-1") {
		t.Error("sid-1: got not denied")
	}
	if denied("sid-2") {
		t.Error("unknown id: got denied")
	}
	now = now.Add(30 * time.Minute)
	if !denied("sid-1") {
		t.Error("sid-1 after 30 min: got not denied, want denied (earlier entry kept)")
	}
	now = now.Add(31 * time.Minute)
	if denied("sid-1") {
		t.Error("sid-1 past its time: got denied")
	}

	// Purge: webhook keys older than 48 h go, so the same key is new again; fresh ones stay.
	old := WebhookEvent{EventType: "signature_request_signed", RequestID: "sr_p", EventTime: now.Add(-50 * time.Hour)}
	recent := WebhookEvent{EventType: "signature_request_signed", RequestID: "sr_p", EventTime: now.Add(-time.Hour)}
	db.now = func() time.Time { return now.Add(-49 * time.Hour) } // received then
	mustRecord(t, db, old)
	db.now = func() time.Time { return now }
	mustRecord(t, db, recent)
	if err := db.PurgeExpired(ctx, now); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, "SELECT COUNT(*) FROM session_denylist").Scan(&n); err != nil || n != 0 {
		t.Errorf("denylist rows after purge: got %d (%v), want 0", n, err)
	}
	if !mustRecord(t, db, recent) {
		t.Error("recent key purged")
	}
	if mustRecord(t, db, old) {
		t.Error("old key kept after purge")
	}

	// Candidates older than CandidateRetention go, with their signers and checks; a
	// recent one stays (the candidate tables are read on every list view).
	db.now = func() time.Time { return now.Add(-CandidateRetention - time.Hour) }
	mustRecord(t, db, WebhookEvent{EventType: "signature_request_created", RequestID: "c_stale", EventTime: db.now(),
		SignerEmails: []string{"a@example.com"}})
	if err := db.CandidateChecked(ctx, "u", "c_stale"); err != nil {
		t.Fatal(err)
	}
	db.now = func() time.Time { return now }
	mustRecord(t, db, WebhookEvent{EventType: "signature_request_created", RequestID: "c_fresh", EventTime: now})
	if err := db.PurgeExpired(ctx, now); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		want int
	}{
		{"SELECT COUNT(*) FROM candidates WHERE request_id = 'c_stale'", 0},
		{"SELECT COUNT(*) FROM candidate_signers WHERE request_id = 'c_stale'", 0},
		{"SELECT COUNT(*) FROM candidate_checks WHERE request_id = 'c_stale'", 0},
		{"SELECT COUNT(*) FROM candidates WHERE request_id = 'c_fresh'", 1},
	} {
		var got int
		if err := db.sql.QueryRowContext(ctx, q.sql).Scan(&got); err != nil || got != q.want {
			t.Errorf("%s: got %d (%v), want %d", q.sql, got, err, q.want)
		}
	}
}

func testReopen(t *testing.T, db *DB, dsn string) {
	mustUpsert(t, db, TrackedRequest{UserKey: "u", ID: "kept", Status: "APPROVED"})
	for range 2 {
		again := mustOpen(t, dsn)
		if got := mustGet(t, again, "u", "kept"); got.Status != "APPROVED" {
			t.Errorf("after reopen: got %s", got.Status)
		}
		var n int
		if err := again.sql.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != 1 {
			t.Errorf("schema_migrations rows: got %d (%v), want 1", n, err)
		}
	}
}

// testConcurrent: 10 goroutines writing at once, on the same and on different rows, must
// all succeed (no "database is locked" on SQLite: busy_timeout + BEGIN IMMEDIATE).
func testConcurrent(t *testing.T, db *DB, _ string) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				r := TrackedRequest{UserKey: "u", ID: "shared", Status: "NEED_TO_SIGN", UpdatedAt: at(time.Duration(g*10+i) * time.Second)}
				if err := db.Upsert(ctx, r); err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				r.ID = fmt.Sprintf("own-%d-%d", g, i)
				if err := db.Upsert(ctx, r); err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				if _, err := db.RecordWebhook(ctx, WebhookEvent{EventType: "e", RequestID: r.ID, EventTime: at(200 * time.Second), Status: "APPROVED"}); err != nil {
					t.Errorf("goroutine %d: webhook: %v", g, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := mustGet(t, db, "u", "shared"); !got.UpdatedAt.Equal(at(99 * time.Second)) {
		t.Errorf("shared row: got updated_at %v, want the newest write's", got.UpdatedAt)
	}
	_, total, err := db.List(ctx, "u", ListFilter{Status: "APPROVED"})
	if err != nil || total != 100 {
		t.Errorf("approved by webhook: got %d (%v), want 100", total, err)
	}
}

func TestOpenSQLiteSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "dir")
	path := filepath.Join(dir, "app.db")
	db := mustOpen(t, "sqlite:"+path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("database file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode: got %o, want 600", perm)
	}
	// Durability settings, per connection (see db.go "Durability").
	ctx := context.Background()
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pragmas := []struct {
		name string
		want string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	for _, p := range pragmas {
		var got string
		if err := conn.QueryRowContext(ctx, "PRAGMA "+p.name).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", p.name, err)
		}
		if got != p.want {
			t.Errorf("PRAGMA %s: got %s, want %s", p.name, got, p.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, url string
	}{
		{"unknown scheme", "mysql://u:hunter2secret@localhost/db"},
		{"empty", ""},
		{"sqlite without path", "sqlite:"},
		{"sqlite with query", "sqlite:/tmp/x.db?mode=ro"},
		{"postgres unreachable", "postgres://u:hunter2secret@127.0.0.1:1/db?connect_timeout=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(context.Background(), tt.url)
			if err == nil {
				db.Close()
				t.Fatal("got nil error")
			}
			if strings.Contains(err.Error(), "hunter2secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestSplitSQLAndRebind(t *testing.T) {
	got := splitSQL("-- c; with semicolon\nCREATE TABLE a (x TEXT);\n\n  -- more\nCREATE INDEX i ON a (x);\n")
	want := []string{"CREATE TABLE a (x TEXT)", "CREATE INDEX i ON a (x)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitSQL: got %q, want %q", got, want)
	}
	pg := &DB{pg: true}
	if got, want := pg.q("a = ? AND b IN (?, ?)"), "a = $1 AND b IN ($2, $3)"; got != want {
		t.Errorf("rebind: got %q, want %q", got, want)
	}
	if got := (&DB{}).q("a = ?"); got != "a = ?" {
		t.Errorf("sqlite rebind: got %q", got)
	}
}

// TestReadCacheSeesOwnWrites: the read cache (cache.go) must never hide a write made
// through the same DB — each read below is first cached, then a write must show at once.
func TestReadCacheSeesOwnWrites(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	const user = "iss|sub"

	if n, _ := db.Counts(ctx, user); len(n) != 0 {
		t.Fatalf("Counts before any write: got %v, want empty", n)
	}
	if _, total, _ := db.List(ctx, user, ListFilter{}); total != 0 {
		t.Fatalf("List before any write: got %d, want 0", total)
	}
	if denied, _ := db.SessionDenied(ctx, "sid"); denied {
		t.Fatal("SessionDenied before DenySession: got true")
	}
	// DenySession on its own (no other write between) must invalidate the cached answer:
	// a logged-out cookie is refused on the very next request.
	if denied, _ := db.SessionDenied(ctx, "sid-alone"); denied { // cached: not denied
		t.Fatal("sid-alone denied before DenySession")
	}
	if err := db.DenySession(ctx, "sid-alone", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if denied, _ := db.SessionDenied(ctx, "sid-alone"); !denied {
		t.Fatal("SessionDenied right after DenySession: got false")
	}

	now := time.Now()
	if err := db.Upsert(ctx, TrackedRequest{UserKey: user, ID: "r1", Title: "NDA", Status: "NEED_TO_SIGN", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.DenySession(ctx, "sid", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Counts(ctx, user); n["NEED_TO_SIGN"] != 1 {
		t.Errorf("Counts after Upsert: got %v, want NEED_TO_SIGN:1", n)
	}
	if rows, total, _ := db.List(ctx, user, ListFilter{}); total != 1 || len(rows) != 1 {
		t.Errorf("List after Upsert: got %d rows of %d, want 1 of 1", len(rows), total)
	}
	if denied, _ := db.SessionDenied(ctx, "sid"); !denied {
		t.Error("SessionDenied right after DenySession: got false, want true")
	}
}
