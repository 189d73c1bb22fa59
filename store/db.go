package store

import (
	"context"
	"errors"
	"time"
)

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

// ListFilter selects a page of a user's requests, newest first.
type ListFilter struct {
	Status string // "" = all
	Limit  int
	Offset int
}

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
type DB struct { /* unexported */
}

// Open opens "sqlite:PATH" or "postgres://…" and applies the embedded migrations.
func Open(ctx context.Context, url string) (*DB, error) { panic("TODO") }

// Close closes the database.
func (db *DB) Close() error { panic("TODO") }

// Upsert inserts or updates r for r.UserKey. An update never moves Status backwards in
// time: a row whose stored UpdatedAt is later keeps its status.
func (db *DB) Upsert(ctx context.Context, r TrackedRequest) error { panic("TODO") }

// Get returns one of userKey's requests or ErrNotFound.
func (db *DB) Get(ctx context.Context, userKey, id string) (TrackedRequest, error) { panic("TODO") }

// List returns a page of userKey's requests and the total matching count.
func (db *DB) List(ctx context.Context, userKey string, f ListFilter) ([]TrackedRequest, int, error) {
	panic("TODO")
}

// Counts returns userKey's request counts by status.
func (db *DB) Counts(ctx context.Context, userKey string) (map[string]int, error) { panic("TODO") }

// RecordWebhook durably applies one webhook event: returns duplicate=true (and changes
// nothing) when (event_type, request id, event_time) was seen; otherwise records the key,
// applies the status to every user's row for that id (never backwards), and stores the
// id as a candidate for the signer emails — all in one transaction.
func (db *DB) RecordWebhook(ctx context.Context, ev WebhookEvent) (duplicate bool, err error) {
	panic("TODO")
}

// Candidates returns up to limit request ids learned from webhooks that userKey neither
// tracks nor has already checked: those naming email as a signer first, then the newest.
// The caller must GET each with the user's own token and call CandidateChecked either
// way: only a 200 makes it the user's (security.md §11.6, lumin-api.md §16.4).
func (db *DB) Candidates(ctx context.Context, userKey, email string, limit int) ([]string, error) {
	panic("TODO")
}

// CandidateChecked records that userKey's token was tried on id (found or not), so it
// is not tried again.
func (db *DB) CandidateChecked(ctx context.Context, userKey, id string) error { panic("TODO") }

// DenySession records a logged-out session id until its absolute expiry (security.md §6.3.3).
func (db *DB) DenySession(ctx context.Context, sessionID string, until time.Time) error {
	panic("TODO")
}

// SessionDenied reports whether sessionID was logged out.
func (db *DB) SessionDenied(ctx context.Context, sessionID string) (bool, error) { panic("TODO") }
