// Package views renders Connect Lumin's HTML with templ. It takes view models built by
// package handlers and imports nothing of ours (design.md). The request context carries
// only the CSP nonce (templ.WithNonce) and the CSRF token (WithCSRFToken).
package views

import (
	"context"
	"strings"
	"time"
)

// Page is the base model every page embeds: what the layout needs.
type Page struct {
	Title     string // page title, before " · Connect Lumin"
	Sandbox   bool   // show the Sandbox banner (issue 3: on every page in sandbox mode)
	Connected bool   // a Lumin connection exists: show the nav
	UserName  string // shown in the header when connected
	Current   string // nav key of this page: "dashboard", "requests", …
	Assets    Assets
}

// Assets are the content-hashed static URLs (package static computes them).
type Assets struct {
	CSS  string
	JS   string
	Logo string
}

// Action is a link offered on a page, e.g. "Try again" or "Reconnect Lumin".
type Action struct {
	Href  string
	Label string
}

// ErrorModel is the central error page (design.md: data-testid="error").
type ErrorModel struct {
	Page
	Status    int
	Heading   string
	Message   string
	Diagnosis []string // likely causes, e.g. for an unknown login state
	Action    Action   // zero → none
	RequestID string
}

// HomeModel is the landing page.
type HomeModel struct {
	Page
	Scopes []Scope // what connecting will ask for
	// Disconnected shows the fixed notice after POST /auth/disconnect (security.md §9.3).
	Disconnected bool
}

// Scope is one OAuth scope explained in plain words.
type Scope struct {
	Name        string
	Description string
}

// DashboardModel is GET /dashboard.
type DashboardModel struct {
	Page
	Name         string
	Email        string
	ProfileStale bool // the profile could not be refreshed; showing the cached one
	Scopes       []Scope
	TokenExpiry  time.Time
	CanRefresh   bool // a refresh token exists (offline_access granted)
	ConnectedAt  time.Time
	Requests     RequestsSummary
}

// RequestsSummary is the dashboard's signature-request section; the requests console
// fills it (issue 5). The zero value is the honest empty state.
type RequestsSummary struct {
	Counts  []StatusCount
	Recent  []RequestRow
	Notice  string // e.g. "Lumin is unavailable; showing saved data"
	CanSend bool   // sign:requests granted
	// Checking is set when the store holds none of the user's requests yet but webhooks
	// named requests the list page will check with the user's token (lumin-api.md §16.4).
	Checking bool
}

// StatusCount is how many requests have one status.
type StatusCount struct {
	Status string
	Count  int
}

// RequestRow is one signature request in a list.
type RequestRow struct {
	ID        string
	Title     string
	Status    string
	UpdatedAt time.Time
	Stale     bool // could not be refreshed from Lumin just now
}

type csrfKey struct{}

// WithCSRFToken returns ctx carrying the CSRF token that forms post back as _csrf.
func WithCSRFToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, csrfKey{}, token)
}

// CSRFToken returns the token stored by WithCSRFToken, or "".
func CSRFToken(ctx context.Context) string {
	s, _ := ctx.Value(csrfKey{}).(string)
	return s
}

// statusInfo maps Lumin statuses (lumin-api.md §16.2) to a label and a badge class.
var statusInfo = map[string][2]string{
	"WAITING_FOR_PROCESSING": {"Processing", "badge-processing"},
	"NEED_TO_SIGN":           {"Needs your signature", "badge-action"},
	"WAITING_FOR_OTHERS":     {"Waiting for others", "badge-waiting"},
	"APPROVED":               {"Completed", "badge-approved"},
	"REJECTED":               {"Declined", "badge-rejected"},
	"CANCELLED":              {"Cancelled", "badge-cancelled"},
	"FAILED":                 {"Failed", "badge-failed"},
}

// StatusLabel is a human label for a Lumin status; unknown values say "Unknown" and
// never fail (lumin-api.md §16.2).
func StatusLabel(status string) string {
	if s, ok := statusInfo[status]; ok {
		return s[0]
	}
	return "Unknown"
}

// StatusClass is the CSS class of a status badge.
func StatusClass(status string) string {
	if s, ok := statusInfo[status]; ok {
		return "badge " + s[1]
	}
	return "badge badge-unknown"
}

// FormatTime renders t for people; the zero time (unparseable in Lumin's answer) is "unknown".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// machineTime is the datetime attribute of <time>.
func machineTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func title(p Page) string {
	if strings.TrimSpace(p.Title) == "" {
		return "Connect Lumin"
	}
	return p.Title + " · Connect Lumin"
}
