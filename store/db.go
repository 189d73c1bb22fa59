package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	// Drivers: "pgx" (PostgreSQL, database/sql adapter of pgx v5) and "sqlite" (modernc,
	// pure Go, no cgo).
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// Durability (issue 5: "writes that the user or Lumin was told succeeded are durable
// first"). Every exported write runs as one autocommit statement or one transaction and
// returns only after COMMIT succeeded, so a handler answers 200/303 only for stored data.
//   - SQLite: journal_mode=WAL with synchronous=FULL fsyncs the WAL on every commit, so an
//     acknowledged write survives SIGKILL (the WAL is in the OS already) and power loss
//     (it is on disk). NORMAL would survive SIGKILL but could lose the last commits on
//     power loss. busy_timeout plus BEGIN IMMEDIATE (_txlock) make concurrent writers wait
//     for the lock instead of failing with "database is locked".
//   - PostgreSQL: synchronous_commit defaults to on: COMMIT returns after the WAL flush.
// The SIGKILL test (handlers, issue 5) needs nothing more from this package.

// ErrNotFound means no such row for that user.
var ErrNotFound = errors.New("store: not found")

// TrackedSigner is a signer as last seen.
type TrackedSigner struct {
	Email  string `json:"email"`
	Name   string `json:"name"`
	Group  int    `json:"group"`
	Status string `json:"status"`
}

// TrackedRequest is one signature request a user knows, with its last seen state.
type TrackedRequest struct {
	UserKey   string
	ID        string
	Title     string
	Status    string
	Signers   []TrackedSigner
	CreatedAt time.Time
	UpdatedAt time.Time // Lumin's updated_at; status never moves back past it
	ExpiresAt time.Time
	Source    string    // "sent", "tracked", "webhook"
	CheckedAt time.Time // last successful GET from Lumin
}

// listPage is a cached List result.
type listPage struct {
	rows  []TrackedRequest
	total int
}

// ListFilter selects a page of a user's requests, newest first.
type ListFilter struct {
	Status string // "" = all
	Limit  int    // ≤ 0 → DefaultListLimit; capped at MaxListLimit
	Offset int
}

// List page sizes.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// WebhookRetention is how long webhook idempotency keys are kept: Lumin retries for
// ~30 h and events older than 48 h are ignored anyway (security.md §11.3, §11.4).
const WebhookRetention = 48 * time.Hour

// CandidateRetention is how long an id learned from a webhook waits for its users to
// open /requests (where their own token checks it). After that it is purged with its
// checks, so the candidate tables — read on every list view — stop growing; a user who
// comes back later can still track the request by id (lumin-api.md §16.4).
const CandidateRetention = 30 * 24 * time.Hour

// maxCandidates caps Candidates' limit: each candidate costs one API call.
const maxCandidates = 100

// WebhookEvent is the idempotency key of one app webhook (security.md §11.4).
type WebhookEvent struct {
	EventType    string
	RequestID    string
	EventTime    time.Time
	Status       string
	Title        string
	SignerEmails []string
	UpdatedAt    time.Time
}

// DB is the database of tracked signature requests. Every write is committed before it
// returns (nothing lost: the response may then say it happened).
type DB struct {
	sql   *sql.DB
	pg    bool
	stmts sync.Map         // query text → *sql.Stmt (see prepared)
	reads readCache        // hot reads between writes (cache.go)
	now   func() time.Time // wall clock; tests replace it
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// terminalStatuses never change again (lumin-api.md §16.2): a stored one is never replaced
// by a non-terminal one.
var terminalStatuses = []string{"APPROVED", "REJECTED", "CANCELLED", "FAILED"}

// IsTerminal reports whether status never changes again (lumin-api.md §16.2). The
// handlers use it too, so the app has one definition of "terminal".
func IsTerminal(status string) bool {
	for _, s := range terminalStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// terminalList is terminalStatuses as an SQL list: 'APPROVED', 'REJECTED', …
var terminalList = "'" + strings.Join(terminalStatuses, "', '") + "'"

// Open opens "sqlite:PATH" or "postgres://…" and applies the embedded migrations.
// Errors never repeat the URL (it may hold a password).
func Open(ctx context.Context, url string) (*DB, error) {
	var (
		db  *DB
		err error
	)
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		db, err = openSQLite(strings.TrimPrefix(url, "sqlite:"))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		db, err = openPostgres(url)
	default:
		return nil, errors.New("store: DATABASE_URL must be sqlite:PATH or postgres://…")
	}
	if err != nil {
		return nil, err
	}
	if err := db.sql.PingContext(ctx); err != nil {
		_ = db.sql.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	if err := db.migrate(ctx); err != nil {
		_ = db.sql.Close()
		return nil, err
	}
	return db, nil
}

func openSQLite(path string) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, errors.New("store: sqlite: want sqlite:PATH with a plain file path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: sqlite: create directory: %w", err)
		}
	}
	// Create the file owner-only: it holds users' request titles and signer emails.
	// SQLite gives the -wal and -shm files the database file's permissions.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	} else {
		_ = f.Close()
	}
	// Per connection: busy_timeout first (the driver applies it before the others), WAL,
	// synchronous=FULL (see "Durability" above), foreign keys on (SQLite's default is
	// off), and BEGIN IMMEDIATE so a transaction takes the write lock up front instead of
	// failing with SQLITE_BUSY when it upgrades from read to write.
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	// WAL allows concurrent readers and one writer; writers queue on busy_timeout. A small
	// pool keeps page caches warm without many writers contending for the lock.
	sdb.SetMaxOpenConns(4)
	sdb.SetMaxIdleConns(4)
	sdb.SetConnMaxIdleTime(0)
	return &DB{sql: sdb, now: time.Now}, nil
}

func openPostgres(url string) (*DB, error) {
	sdb, err := sql.Open("pgx", url)
	if err != nil {
		return nil, errors.New("store: postgres: invalid DATABASE_URL")
	}
	sdb.SetMaxOpenConns(10)
	sdb.SetMaxIdleConns(5)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	sdb.SetConnMaxLifetime(time.Hour)
	return &DB{sql: sdb, pg: true, now: time.Now}, nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmts.Range(func(_, v any) bool { _ = v.(*sql.Stmt).Close(); return true })
	return db.sql.Close()
}

// prepared returns the cached prepared statement for query (written with ? placeholders).
// Parsing SQL on every call was ~40 % of a dashboard view with SQLite (BenchmarkDashboard
// with a database); database/sql re-prepares a cached Stmt on each pooled connection as
// needed. Only the fixed query texts of this file are passed in, so the cache is bounded.
func (db *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.sql.PrepareContext(ctx, db.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// query runs a read through the statement cache.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := db.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a one-row read through the statement cache; a preparation error comes
// back from Scan, like any other query error.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := db.prepared(ctx, query)
	if err != nil {
		return db.sql.QueryRowContext(ctx, db.q(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// Ping checks the database answers (a readiness probe may use it).
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// q rebinds a query written with ? placeholders to PostgreSQL's $1, $2, … Our queries
// hold no ? inside string literals.
func (db *DB) q(query string) string {
	if !db.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrationLockID is the PostgreSQL advisory lock serializing migrations of concurrently
// starting processes (SQLite's BEGIN IMMEDIATE does the same there).
const migrationLockID = 7_146_025_213

// migrate applies the embedded migrations not yet in schema_migrations, all in one
// transaction: a failure leaves the schema as it was.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	sort.Strings(names)
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if db.pg {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock("+strconv.Itoa(migrationLockID)+")"); err != nil {
			return fmt.Errorf("store: migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	applied := map[string]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("store: migrate: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(filepath.Base(name), ".sql")
		if applied[version] {
			continue
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return fmt.Errorf("store: migrate %s: %w", version, err)
		}
		for _, stmt := range splitSQL(string(body)) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("store: migrate %s: %w", version, err)
			}
		}
		if _, err := tx.ExecContext(ctx, db.q("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
			version, db.now().UnixMilli()); err != nil {
			return fmt.Errorf("store: migrate %s: %w", version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: commit: %w", err)
	}
	return nil
}

// splitSQL drops "--" comment lines and splits on ";" (one statement per ";"; our
// migrations hold no ";" in literals or comments' continuation).
func splitSQL(body string) []string {
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	var out []string
	for _, s := range strings.Split(strings.Join(lines, "\n"), ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ms stores a time as epoch milliseconds; 0 is the zero time ("unknown").
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// forwardSQL is true when the row being written (excluded) may replace the stored one
// (tbl): it is not older by Lumin's updated_at, and it would not turn a terminal status
// back into a non-terminal one (security.md §11.5; lumin-api.md §16.2).
func forwardSQL(tbl string) string {
	return "(excluded.updated_at >= " + tbl + ".updated_at AND NOT (" + tbl + ".status IN (" + terminalList +
		") AND excluded.status NOT IN (" + terminalList + ")))"
}

// Upsert inserts or updates r for r.UserKey. An update never moves Status backwards in
// time: a row whose stored UpdatedAt is later keeps its status.
// Precisely: the new status, updated_at, title, signers and expiry replace the stored ones
// only when r.UpdatedAt ≥ the stored updated_at and r does not turn a terminal status
// into a non-terminal one; empty fields in r (no title, no signers, no expiry, no status)
// never erase stored ones. CreatedAt and Source are kept from the first write (unless
// unknown then), CheckedAt only moves forward.
func (db *DB) Upsert(ctx context.Context, r TrackedRequest) error {
	defer db.reads.invalidate() // after the commit: no cached read predates it
	if r.UserKey == "" || r.ID == "" {
		return errors.New("store: upsert: user key and id required")
	}
	signers := "[]"
	if len(r.Signers) > 0 {
		b, err := json.Marshal(r.Signers)
		if err != nil {
			return fmt.Errorf("store: upsert: %w", err)
		}
		signers = string(b)
	}
	fwd := forwardSQL("t")
	query := `INSERT INTO tracked_requests AS t
		(user_key, id, title, status, signers, created_at, updated_at, expires_at, source, checked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_key, id) DO UPDATE SET
		title = CASE WHEN ` + fwd + ` AND excluded.title <> '' THEN excluded.title ELSE t.title END,
		status = CASE WHEN ` + fwd + ` AND excluded.status <> '' THEN excluded.status ELSE t.status END,
		signers = CASE WHEN ` + fwd + ` AND excluded.signers <> '[]' THEN excluded.signers ELSE t.signers END,
		expires_at = CASE WHEN ` + fwd + ` AND excluded.expires_at <> 0 THEN excluded.expires_at ELSE t.expires_at END,
		updated_at = CASE WHEN ` + fwd + ` THEN excluded.updated_at ELSE t.updated_at END,
		created_at = CASE WHEN t.created_at = 0 THEN excluded.created_at ELSE t.created_at END,
		source = CASE WHEN t.source = '' THEN excluded.source ELSE t.source END,
		checked_at = CASE WHEN excluded.checked_at > t.checked_at THEN excluded.checked_at ELSE t.checked_at END`
	_, err := db.sql.ExecContext(ctx, db.q(query), r.UserKey, r.ID, r.Title, r.Status, signers,
		ms(r.CreatedAt), ms(r.UpdatedAt), ms(r.ExpiresAt), r.Source, ms(r.CheckedAt))
	if err != nil {
		return fmt.Errorf("store: upsert: %w", err)
	}
	return nil
}

const requestColumns = "user_key, id, title, status, signers, created_at, updated_at, expires_at, source, checked_at"

type scanner interface{ Scan(dest ...any) error }

func scanRequest(s scanner) (TrackedRequest, error) {
	var (
		r                                       TrackedRequest
		signers                                 string
		created, updated, expires, checkedAtRaw int64
	)
	if err := s.Scan(&r.UserKey, &r.ID, &r.Title, &r.Status, &signers, &created, &updated, &expires, &r.Source, &checkedAtRaw); err != nil {
		return TrackedRequest{}, err
	}
	r.CreatedAt, r.UpdatedAt, r.ExpiresAt, r.CheckedAt = fromMS(created), fromMS(updated), fromMS(expires), fromMS(checkedAtRaw)
	if signers != "" && signers != "[]" {
		if err := json.Unmarshal([]byte(signers), &r.Signers); err != nil {
			return TrackedRequest{}, fmt.Errorf("store: signers of %s: %w", r.ID, err)
		}
	}
	return r, nil
}

// Get returns one of userKey's requests or ErrNotFound.
func (db *DB) Get(ctx context.Context, userKey, id string) (TrackedRequest, error) {
	row := db.queryRow(ctx, "SELECT "+requestColumns+" FROM tracked_requests WHERE user_key = ? AND id = ?", userKey, id)
	r, err := scanRequest(row)
	if errors.Is(err, sql.ErrNoRows) {
		return TrackedRequest{}, ErrNotFound
	}
	if err != nil {
		return TrackedRequest{}, fmt.Errorf("store: get: %w", err)
	}
	return r, nil
}

// List returns a page of userKey's requests and the total matching count.
// Newest first by Lumin's created_at (then id, so pages are stable).
func (db *DB) List(ctx context.Context, userKey string, f ListFilter) ([]TrackedRequest, int, error) {
	limit, offset := f.Limit, f.Offset
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	offset = max(offset, 0)
	key := fmt.Sprintf("list\x00%s\x00%s\x00%d\x00%d", userKey, f.Status, limit, offset)
	if v, ok := db.reads.get(key); ok {
		p := v.(listPage)
		return slices.Clone(p.rows), p.total, nil
	}
	gen := db.reads.gen.Load()
	where := " WHERE user_key = ?"
	args := []any{userKey}
	if f.Status != "" {
		where += " AND status = ?"
		args = append(args, f.Status)
	}
	var total int
	if err := db.queryRow(ctx, "SELECT COUNT(*) FROM tracked_requests"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: list: %w", err)
	}
	rows, err := db.query(ctx, "SELECT "+requestColumns+" FROM tracked_requests"+where+
		" ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	var out []TrackedRequest
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("store: list: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: list: %w", err)
	}
	db.reads.put(key, gen, listPage{rows: slices.Clone(out), total: total})
	return out, total, nil
}

// Counts returns userKey's request counts by status.
func (db *DB) Counts(ctx context.Context, userKey string) (map[string]int, error) {
	key := "counts\x00" + userKey
	if v, ok := db.reads.get(key); ok {
		return maps.Clone(v.(map[string]int)), nil
	}
	gen := db.reads.gen.Load()
	rows, err := db.query(ctx, "SELECT status, COUNT(*) FROM tracked_requests WHERE user_key = ? GROUP BY status", userKey)
	if err != nil {
		return nil, fmt.Errorf("store: counts: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var (
			status string
			n      int
		)
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("store: counts: %w", err)
		}
		counts[status] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: counts: %w", err)
	}
	db.reads.put(key, gen, maps.Clone(counts))
	return counts, nil
}

// normalizeEmails lower-cases, trims, de-duplicates and bounds signer emails, which come
// from a (verified, but Lumin-controlled) webhook payload.
func normalizeEmails(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range in {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" || len(e) > 320 || seen[e] {
			continue
		}
		seen[e] = true
		out = append(out, e)
		if len(out) == 100 {
			break
		}
	}
	return out
}

// RecordWebhook durably applies one webhook event: returns duplicate=true (and changes
// nothing) when (event_type, request id, event_time) was seen; otherwise records the key,
// applies the status to every user's row for that id (never backwards), and stores the
// id as a candidate for the signer emails — all in one transaction.
// "Backwards" is judged by the payload's updated_at, or event_time when it has none
// (security.md §11.5), with the same rule as Upsert. An empty Status updates nothing.
func (db *DB) RecordWebhook(ctx context.Context, ev WebhookEvent) (duplicate bool, err error) {
	defer db.reads.invalidate() // after the commit: no cached read predates it
	if ev.EventType == "" || ev.RequestID == "" || ev.EventTime.IsZero() {
		return false, errors.New("store: webhook: event type, request id and event time required")
	}
	at := ev.UpdatedAt
	if at.IsZero() {
		at = ev.EventTime
	}
	now := db.now()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: webhook: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	// security.md §11.4: the idempotency key first; ON CONFLICT DO NOTHING makes a
	// concurrent duplicate wait for and then see the first one's row (0 rows affected).
	res, err := tx.ExecContext(ctx, db.q(`INSERT INTO webhook_events (event_type, request_id, event_time, received_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (event_type, request_id, event_time) DO NOTHING`),
		ev.EventType, ev.RequestID, ms(ev.EventTime), ms(now))
	if err != nil {
		return false, fmt.Errorf("store: webhook: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: webhook: %w", err)
	}
	if n == 0 {
		return true, nil
	}

	if ev.Status != "" {
		set := "status = ?, updated_at = ?"
		args := []any{ev.Status, ms(at)}
		if ev.Title != "" {
			set += ", title = ?"
			args = append(args, ev.Title)
		}
		cond := " WHERE id = ? AND updated_at <= ?"
		args = append(args, ev.RequestID, ms(at))
		if !IsTerminal(ev.Status) {
			cond += " AND status NOT IN (" + terminalList + ")"
		}
		if _, err := tx.ExecContext(ctx, db.q("UPDATE tracked_requests SET "+set+cond), args...); err != nil {
			return false, fmt.Errorf("store: webhook: update: %w", err)
		}
	}

	fwd := forwardSQL("c")
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO candidates AS c (request_id, title, status, updated_at, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (request_id) DO UPDATE SET
		title = CASE WHEN `+fwd+` AND excluded.title <> '' THEN excluded.title ELSE c.title END,
		status = CASE WHEN `+fwd+` AND excluded.status <> '' THEN excluded.status ELSE c.status END,
		updated_at = CASE WHEN `+fwd+` THEN excluded.updated_at ELSE c.updated_at END`),
		ev.RequestID, ev.Title, ev.Status, ms(at), ms(now)); err != nil {
		return false, fmt.Errorf("store: webhook: candidate: %w", err)
	}
	for _, email := range normalizeEmails(ev.SignerEmails) {
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO candidate_signers (request_id, email) VALUES (?, ?)
			ON CONFLICT (request_id, email) DO NOTHING`), ev.RequestID, email); err != nil {
			return false, fmt.Errorf("store: webhook: signer: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: webhook: commit: %w", err)
	}
	return false, nil
}

// Candidates returns up to limit request ids learned from webhooks that userKey neither
// tracks nor has already checked: those naming email as a signer first, then the newest.
// The caller must GET each with the user's own token and call CandidateChecked either
// way: only a 200 makes it the user's (security.md §11.6, lumin-api.md §16.4).
// "Newest" is Lumin's updated_at, then when we first heard of it. limit is capped at 100.
func (db *DB) Candidates(ctx context.Context, userKey, email string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	limit = min(limit, maxCandidates)
	email = strings.ToLower(strings.TrimSpace(email))
	rows, err := db.query(ctx, `SELECT c.request_id FROM candidates c
		WHERE `+candidateOpen+`
		ORDER BY CASE WHEN EXISTS (SELECT 1 FROM candidate_signers s WHERE s.request_id = c.request_id AND s.email = ?)
			THEN 0 ELSE 1 END, c.updated_at DESC, c.created_at DESC, c.request_id
		LIMIT ?`, userKey, userKey, email, limit)
	if err != nil {
		return nil, fmt.Errorf("store: candidates: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: candidates: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: candidates: %w", err)
	}
	return ids, nil
}

// candidateOpen selects the candidates c that a user (bound twice, as user_key) neither
// tracks nor has checked: the set Candidates offers and HasCandidates tests.
const candidateOpen = `NOT EXISTS (SELECT 1 FROM tracked_requests t WHERE t.user_key = ? AND t.id = c.request_id)
		AND NOT EXISTS (SELECT 1 FROM candidate_checks k WHERE k.user_key = ? AND k.request_id = c.request_id)`

// HasCandidates reports whether Candidates would offer userKey anything, i.e. whether
// webhooks told us of requests this user has not checked yet. It lets the dashboard say
// so without calling Lumin; like Counts it is served from the read cache between writes
// (RecordWebhook, Upsert and CandidateChecked invalidate it), so repeat views cost no
// query.
func (db *DB) HasCandidates(ctx context.Context, userKey string) (bool, error) {
	key := "hascand\x00" + userKey
	if v, ok := db.reads.get(key); ok {
		return v.(bool), nil
	}
	gen := db.reads.gen.Load()
	var has bool
	if err := db.queryRow(ctx, "SELECT EXISTS (SELECT 1 FROM candidates c WHERE "+candidateOpen+")",
		userKey, userKey).Scan(&has); err != nil {
		return false, fmt.Errorf("store: has candidates: %w", err)
	}
	db.reads.put(key, gen, has)
	return has, nil
}

// CandidateChecked records that userKey's token was tried on id (found or not), so it
// is not tried again.
func (db *DB) CandidateChecked(ctx context.Context, userKey, id string) error {
	defer db.reads.invalidate() // after the commit: no cached read predates it
	_, err := db.sql.ExecContext(ctx, db.q(`INSERT INTO candidate_checks (user_key, request_id, checked_at) VALUES (?, ?, ?)
		ON CONFLICT (user_key, request_id) DO UPDATE SET checked_at = excluded.checked_at`), userKey, id, ms(db.now()))
	if err != nil {
		return fmt.Errorf("store: candidate checked: %w", err)
	}
	return nil
}

// DenySession records a logged-out session id until its absolute expiry (security.md §6.3.3).
// Denying again never shortens an earlier entry.
func (db *DB) DenySession(ctx context.Context, sessionID string, until time.Time) error {
	defer db.reads.invalidate() // after the commit: no cached read predates it
	if sessionID == "" {
		return errors.New("store: deny session: empty id")
	}
	_, err := db.sql.ExecContext(ctx, db.q(`INSERT INTO session_denylist AS d (session_id, denied_until) VALUES (?, ?)
		ON CONFLICT (session_id) DO UPDATE SET denied_until =
		CASE WHEN excluded.denied_until > d.denied_until THEN excluded.denied_until ELSE d.denied_until END`),
		sessionID, ms(until))
	if err != nil {
		return fmt.Errorf("store: deny session: %w", err)
	}
	return nil
}

// SessionDenied reports whether sessionID was logged out.
// An entry past its time is ignored (the session's absolute lifetime ended anyway).
func (db *DB) SessionDenied(ctx context.Context, sessionID string) (bool, error) {
	// The cache holds the entry's denied_until (0: none), compared with the clock on
	// every call, so a cached answer expires exactly when the stored one would.
	key := "denied\x00" + sessionID
	now := ms(db.now())
	if v, ok := db.reads.get(key); ok {
		return v.(int64) > now, nil
	}
	gen := db.reads.gen.Load()
	var until int64
	err := db.queryRow(ctx, "SELECT COALESCE(MAX(denied_until), 0) FROM session_denylist WHERE session_id = ?",
		sessionID).Scan(&until)
	if err != nil {
		return false, fmt.Errorf("store: session denied: %w", err)
	}
	db.reads.put(key, gen, until)
	return until > now, nil
}

// PurgeExpired deletes webhook idempotency keys older than WebhookRetention (both by
// event_time and by when we received them, so a key is never dropped while Lumin may still
// retry it, security.md §11.4) and denylist entries past their time. Run it periodically.
func (db *DB) PurgeExpired(ctx context.Context, now time.Time) error {
	defer db.reads.invalidate() // after the commit: no cached read predates it
	cutoff := ms(now.Add(-WebhookRetention))
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: purge: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, db.q("DELETE FROM webhook_events WHERE event_time < ? AND received_at < ?"), cutoff, cutoff); err != nil {
		return fmt.Errorf("store: purge: %w", err)
	}
	if _, err := tx.ExecContext(ctx, db.q("DELETE FROM session_denylist WHERE denied_until <= ?"), ms(now)); err != nil {
		return fmt.Errorf("store: purge: %w", err)
	}
	// Candidate signers go with their candidate (ON DELETE CASCADE); checks of purged
	// candidates are dropped too.
	if _, err := tx.ExecContext(ctx, db.q("DELETE FROM candidates WHERE created_at < ?"), ms(now.Add(-CandidateRetention))); err != nil {
		return fmt.Errorf("store: purge: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM candidate_checks WHERE request_id NOT IN (SELECT request_id FROM candidates)"); err != nil {
		return fmt.Errorf("store: purge: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: purge: commit: %w", err)
	}
	return nil
}
