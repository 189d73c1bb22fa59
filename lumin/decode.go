package lumin

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Lenient JSON field types (lumin-api.md §20): a field of an unexpected type or value
// decodes to its zero value instead of failing the whole response, and null or a missing
// field is never an error. Only the shape of the envelope ({"signature_request": {…}})
// is required.

// lstring accepts a JSON string, number or bool (as its text); anything else → "".
type lstring string

func (s *lstring) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var v string
	switch {
	case len(b) > 0 && b[0] == '"':
		if json.Unmarshal(b, &v) != nil {
			v = ""
		}
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'), string(b) == "true", string(b) == "false":
		v = string(b)
	}
	*s = lstring(v)
	return nil
}

// lint accepts a JSON number or numeric string; anything else → 0.
type lint int

func (n *lint) UnmarshalJSON(b []byte) error {
	f, ok := parseNumber(b)
	if !ok || f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		*n = 0
		return nil
	}
	*n = lint(f)
	return nil
}

// lbool accepts true/false or the strings "true"/"false"; anything else → false.
type lbool bool

func (v *lbool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	*v = lbool(strings.EqualFold(s, "true"))
	return nil
}

// ltime is an epoch timestamp sent as a JSON number or a numeric string. Lumin uses
// milliseconds for signature-request times and seconds for file expires_at; a value below
// 10^11 is taken as seconds (10^11 ms is 1973, 10^11 s is year 5138), so one type reads
// both. Unparseable, zero or negative → zero time, shown as "unknown" (lumin-api.md §20).
type ltime time.Time

// secondsBelow is the seconds/milliseconds guard of lumin-api.md §20.
const secondsBelow = 1e11

func (t *ltime) UnmarshalJSON(b []byte) error {
	*t = ltime(epochTime(b))
	return nil
}

func epochTime(b []byte) time.Time {
	f, ok := parseNumber(b)
	if !ok || f <= 0 || f > 1e16 {
		return time.Time{}
	}
	if f < secondsBelow {
		return time.UnixMilli(int64(f * 1000)).UTC()
	}
	return time.UnixMilli(int64(f)).UTC()
}

// parseNumber reads a JSON number or a string holding one.
func parseNumber(b []byte) (float64, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return 0, false
	}
	s := string(b)
	if b[0] == '"' {
		if json.Unmarshal(b, &s) != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// wireSigner is a signer as Lumin sends it; the email is email_address (REST) or email
// (webhooks, MCP server) (lumin-api.md §16.1).
type wireSigner struct {
	EmailAddress lstring `json:"email_address"`
	Email        lstring `json:"email"`
	Name         lstring `json:"name"`
	Group        lint    `json:"group"`
	IsApproved   lbool   `json:"is_approved"`
	Status       lstring `json:"status"`
}

// wireSignatureRequest is Lumin's SignatureRequest object (lumin-api.md §16.1).
type wireSignatureRequest struct {
	ID          lstring      `json:"signature_request_id"`
	Title       lstring      `json:"title"`
	Status      lstring      `json:"status"`
	Reason      lstring      `json:"reason"`
	SigningType lstring      `json:"signing_type"`
	CreatedAt   ltime        `json:"created_at"`
	UpdatedAt   ltime        `json:"updated_at"`
	ExpiresAt   ltime        `json:"expires_at"`
	DetailsURL  lstring      `json:"details_url"`
	Signers     lenientSlice `json:"signers"`
}

// lenientSlice is a signer list: a non-array decodes to none, and an element that is
// not an object is skipped.
type lenientSlice []wireSigner

func (s *lenientSlice) UnmarshalJSON(b []byte) error {
	var raws []json.RawMessage
	if json.Unmarshal(b, &raws) != nil {
		*s = nil
		return nil
	}
	out := make([]wireSigner, 0, len(raws))
	for _, r := range raws {
		var w wireSigner
		if json.Unmarshal(r, &w) == nil {
			out = append(out, w)
		}
	}
	*s = out
	return nil
}

func (w wireSignatureRequest) domain() SignatureRequest {
	sr := SignatureRequest{
		ID:          string(w.ID),
		Title:       string(w.Title),
		Status:      string(w.Status),
		Reason:      string(w.Reason),
		SigningType: string(w.SigningType),
		CreatedAt:   time.Time(w.CreatedAt),
		UpdatedAt:   time.Time(w.UpdatedAt),
		ExpiresAt:   time.Time(w.ExpiresAt),
		DetailsURL:  string(w.DetailsURL),
	}
	for _, s := range w.Signers {
		email := string(s.EmailAddress)
		if email == "" {
			email = string(s.Email)
		}
		sr.Signers = append(sr.Signers, Signer{
			Email:      email,
			Name:       string(s.Name),
			Group:      int(s.Group),
			IsApproved: bool(s.IsApproved),
			Status:     string(s.Status),
		})
	}
	return sr
}

// DecodeSignatureRequest decodes one SignatureRequest object (not the envelope) with the
// lenient rules of lumin-api.md §20. Handlers can use it for webhook payloads, which
// carry the same object with signers' "email" (lumin-api.md §21).
func DecodeSignatureRequest(b []byte) (SignatureRequest, error) {
	var w wireSignatureRequest
	if err := json.Unmarshal(b, &w); err != nil {
		return SignatureRequest{}, err
	}
	return w.domain(), nil
}

// ParseEpoch reads a Lumin timestamp (JSON number or numeric string, ms or — below
// 10^11 — seconds) the way the REST client does; the zero time means unknown
// (lumin-api.md §20). Handlers can use it for a webhook's event_time.
func ParseEpoch(raw json.RawMessage) time.Time { return epochTime(raw) }
