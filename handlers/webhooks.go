package handlers

// Lumin app webhooks (POST /webhooks/lumin, security.md §11, lumin-api.md §21).
//
// How a learned request reaches a user (lumin-api.md §16.4, security.md §11.6):
// a webhook payload names the Workspace and the signers but not the creator, and it
// authorizes nothing. So an event does exactly two things, in one transaction
// (store.DB.RecordWebhook):
//
//  1. it moves the status of rows that users ALREADY track for that id forward (never
//     backwards: out-of-order deliveries are ordered by Lumin's updated_at/event_time);
//  2. it stores the id as a *candidate*, remembered together with the signer emails.
//
// A candidate is shown to nobody. When a user opens /requests, the app takes a few of
// the candidates that user has not tried yet (those naming the user's email as a signer
// first) and GETs each with THAT user's own access token. Only a 200 adds the request to
// the user's list (source "webhook"); a 403/404 marks it checked for that user, so it is
// not tried again. This works for creators (who are rarely listed as signers) and signers
// alike, and no user ever sees a request that Lumin would not show them with their own
// token (security.md §8.7).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/store"
)

// webhookBodyLimit caps a webhook body (security.md §10, §11.2).
const webhookBodyLimit = 1 << 20

// Freshness window for event_time (security.md §11.3): Lumin's last retry comes about
// 30 h after the event, so 48 h keeps every genuine retry; 5 min tolerates clock skew.
const (
	webhookMaxAge  = 48 * time.Hour
	webhookMaxSkew = 5 * time.Minute
)

// webhookStatusByEvent is the status an event implies when its payload carries none
// (lumin-api.md §21). Events that do not imply a status map to "".
var webhookStatusByEvent = map[string]string{
	"signature_request_created":          "",
	"signature_request_viewed":           "",
	"signature_request_signed":           "",
	"signature_request_approved":         "APPROVED",
	"signature_request_declined":         "REJECTED",
	"signature_request_downloadable":     "APPROVED",
	"signature_request_invalid":          "FAILED",
	"signature_request_canceled":         "CANCELLED",
	"signature_request_cancel_failed":    "",
	"signature_request_due_date_updated": "",
}

// errWebhookPayload means the body is not a usable webhook under a valid signature.
var errWebhookPayload = errors.New("webhook: malformed payload")

// webhookRecorder is the one store method the receiver needs (consumer-side seam).
type webhookRecorder interface {
	RecordWebhook(ctx context.Context, ev store.WebhookEvent) (bool, error)
}

// webhookReceiver verifies and records app webhooks. It holds no session, makes no
// outbound call and does one database write per accepted event (security.md §11.7).
type webhookReceiver struct {
	secret []byte
	db     webhookRecorder
	log    *slog.Logger
	now    func() time.Time
}

// verifyWebhookSignature checks X-Signature: lower-case hex HMAC-SHA256 of the raw body
// keyed with the app signing secret (lumin-api.md §21), compared in constant time
// (security.md §11.2). Upper-case hex is accepted too: hex.DecodeString takes both.
func verifyWebhookSignature(secret, body []byte, header string) bool {
	header = strings.TrimSpace(header)
	if header == "" || len(secret) == 0 {
		return false
	}
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// readLimited reads at most limit bytes of r; more → errBodyTooLarge.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge
		}
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// errBodyTooLarge maps to 413.
var errBodyTooLarge = errors.New("request body too large")

// webhookPayload is the envelope of an app webhook (lumin-api.md §21); unknown fields
// are ignored. event_time and signature_request are decoded by the lumin package's
// lenient rules (lumin-api.md §20), the same as REST answers: a field of an odd type
// becomes "unknown" instead of failing a delivery Lumin signed.
type webhookPayload struct {
	Event struct {
		EventTime json.RawMessage `json:"event_time"`
		EventType string          `json:"event_type"`
	} `json:"event"`
	SignatureRequest json.RawMessage `json:"signature_request"`
}

// parseWebhook decodes a verified body into the store's event. known is false for event
// types we do not handle (accepted and ignored, security.md §11.4).
func parseWebhook(body []byte) (ev store.WebhookEvent, known bool, err error) {
	var p webhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return ev, false, errWebhookPayload
	}
	ev.EventType = p.Event.EventType
	ev.EventTime = lumin.ParseEpoch(p.Event.EventTime)
	implied, known := webhookStatusByEvent[ev.EventType]
	if !known {
		return ev, false, nil
	}
	if len(p.SignatureRequest) == 0 || ev.EventTime.IsZero() {
		return ev, true, errWebhookPayload
	}
	sr, err := lumin.DecodeSignatureRequest(p.SignatureRequest)
	if err != nil || !lumin.ValidID(sr.ID) {
		return ev, true, errWebhookPayload
	}
	ev.RequestID = sr.ID
	ev.Title = truncateRunes(sr.Title, 255)
	ev.Status = sr.Status
	if !knownStatus(ev.Status) {
		// An unknown or missing status must never overwrite a known one.
		ev.Status = implied
	}
	ev.UpdatedAt = sr.UpdatedAt
	if ev.UpdatedAt.IsZero() {
		ev.UpdatedAt = ev.EventTime
	}
	for _, s := range sr.Signers {
		if e := strings.ToLower(strings.TrimSpace(s.Email)); e != "" && len(e) <= 320 {
			ev.SignerEmails = append(ev.SignerEmails, e)
		}
	}
	return ev, true, nil
}

// handle verifies, parses and records one delivery. It returns the HTTP status.
func (wr *webhookReceiver) handle(r *http.Request, requestID string) int {
	body, err := readLimited(r.Body, webhookBodyLimit)
	if errors.Is(err, errBodyTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	if err != nil {
		return http.StatusBadRequest
	}
	// Verify before parsing: nothing of an unauthenticated body is interpreted
	// (security.md §11.2). The log carries a reason code, never the header or body.
	if !verifyWebhookSignature(wr.secret, body, r.Header.Get("X-Signature")) {
		wr.log.Warn("webhook rejected", "reason", "webhook_signature_invalid", "request_id", requestID)
		return http.StatusUnauthorized
	}
	ev, known, err := parseWebhook(body)
	if !known && err == nil {
		wr.log.Info("webhook ignored", "reason", "unknown_event_type", "request_id", requestID)
		return http.StatusOK
	}
	if err != nil {
		wr.log.Warn("webhook rejected", "reason", "webhook_payload_invalid", "request_id", requestID)
		return http.StatusBadRequest
	}
	now := wr.now()
	if ev.EventTime.Before(now.Add(-webhookMaxAge)) || ev.EventTime.After(now.Add(webhookMaxSkew)) {
		// 200 so Lumin stops retrying: a stale or far-future event is never applied
		// (security.md §11.3).
		wr.log.Warn("webhook ignored", "reason", "webhook_event_time_out_of_window", "request_id", requestID)
		return http.StatusOK
	}
	dup, err := wr.db.RecordWebhook(r.Context(), ev)
	if err != nil {
		// Not 200: Lumin retries later, so nothing is lost (security.md §13).
		wr.log.Error("webhook store failed", "request_id", requestID, "err", err)
		return http.StatusServiceUnavailable
	}
	wr.log.Info("webhook recorded", "event_type", ev.EventType, "duplicate", dup, "request_id", requestID)
	return http.StatusOK
}

// truncateRunes cuts s to at most n runes.
func truncateRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// handleWebhook is POST /webhooks/lumin. Without LUMIN_WEBHOOK_SECRET the route does not
// exist (404, design.md). No session, cookie or CSRF token is involved: the HMAC is the
// authentication (security.md §11.1); the answer carries no detail either way.
func (s *Server) handleWebhook(c echo.Context) error {
	if len(s.webhookSecret) == 0 || s.db == nil {
		return echo.ErrNotFound
	}
	wr := webhookReceiver{secret: s.webhookSecret, db: s.db, log: s.log, now: s.now}
	status := wr.handle(c.Request(), requestIDOf(c))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.NoContent(status)
}
