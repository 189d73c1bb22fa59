-- Schema v1: the same portable SQL for SQLite and PostgreSQL. Times are BIGINT epoch
-- milliseconds (0 = unknown), JSON is TEXT, keys are natural (no AUTOINCREMENT/SERIAL).
-- One statement per ";" at the end of a line (db.go splits on it).

-- Signature requests a user knows (lumin-api.md §16.4): sent from the app, tracked by id,
-- or confirmed from a webhook candidate with the user's own token.
CREATE TABLE tracked_requests (
    user_key   TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    title      TEXT   NOT NULL DEFAULT '',
    status     TEXT   NOT NULL DEFAULT '',
    signers    TEXT   NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL DEFAULT 0,
    source     TEXT   NOT NULL DEFAULT '',
    checked_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_key, id)
);
CREATE INDEX tracked_requests_user_status ON tracked_requests (user_key, status);
CREATE INDEX tracked_requests_user_created ON tracked_requests (user_key, created_at DESC, id DESC);
-- A webhook updates every user's row for one id.
CREATE INDEX tracked_requests_id ON tracked_requests (id);

-- Idempotency keys of app webhooks, kept ≥ 48 h (security.md §11.4; lumin-api.md §21).
CREATE TABLE webhook_events (
    event_type  TEXT   NOT NULL,
    request_id  TEXT   NOT NULL,
    event_time  BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (event_type, request_id, event_time)
);
CREATE INDEX webhook_events_received ON webhook_events (received_at);

-- Ids learned from webhooks: shown to nobody until a user's own GET succeeds
-- (security.md §11.6).
CREATE TABLE candidates (
    request_id TEXT   NOT NULL PRIMARY KEY,
    title      TEXT   NOT NULL DEFAULT '',
    status     TEXT   NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE candidate_signers (
    request_id TEXT NOT NULL REFERENCES candidates (request_id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    PRIMARY KEY (request_id, email)
);
CREATE INDEX candidate_signers_email ON candidate_signers (email);

-- Which user's token was already tried on which candidate (found or not).
CREATE TABLE candidate_checks (
    user_key   TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    checked_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_key, request_id)
);

-- Logged-out session ids until their absolute expiry (security.md §6.3.3).
CREATE TABLE session_denylist (
    session_id   TEXT   NOT NULL PRIMARY KEY,
    denied_until BIGINT NOT NULL
);
