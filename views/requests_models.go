package views

import "time"

// View models of the signature-requests console. Handlers build them from lumin and
// store types; every string here is rendered escaped by templ, and every URL field has
// already passed the handlers' checks (security.md §8.8).

// ListRow is one line of the requests list: the dashboard's RequestRow plus where the
// app learned the request from.
type ListRow struct {
	RequestRow
	Source string // "sent", "tracked", "webhook"
}

// StatusOption is one entry of the status filter.
type StatusOption struct {
	Value    string
	Label    string
	Selected bool
}

// Pager is the list's pagination.
type Pager struct {
	Page       int
	TotalPages int
	PrevURL    string // "" on the first page
	NextURL    string // "" on the last page
}

// RequestsListModel is GET /requests.
type RequestsListModel struct {
	Page
	Rows     []ListRow
	Filter   string // selected status, "" = all
	Statuses []StatusOption
	Pager    Pager
	// UpstreamNotice is set when Lumin answered 429/5xx for the live refresh; the page
	// shows the cached state ("Lumin is busy, try again in N s").
	UpstreamNotice string
	CanSend        bool   // sign:requests granted
	ReadOnlyNotice string // set without sign:requests
	ReconnectURL   string
	TrackID        string // kept input of the track form
	TrackError     string // message of a failed track
	Done           string // fixed-allowlist flash message
}

// SignerField is one row of the send form.
type SignerField struct {
	Index      int
	Name       string
	Email      string
	Group      string
	NameError  string
	EmailError string
	GroupError string
}

// NewRequestModel is GET /requests/new and a re-rendered POST /requests.
type NewRequestModel struct {
	Page
	RequestTitle string
	TitleError   string
	FileURL      string
	FileError    string // upload / URL problems
	FileDropped  bool   // an upload was sent but the form is re-rendered: choose it again
	Signers      []SignerField
	SignersError string // count problems
	SigningType  string // SAME_TIME or ORDER
	TypeError    string
	Expiry       string // YYYY-MM-DD
	ExpiryError  string
	MinExpiry    string // YYYY-MM-DD, today
	FormError    string // Lumin's answer or "please resubmit"
	MaxSigners   int
	CanAdd       bool
}

// SignerRow is one signer on the detail page.
type SignerRow struct {
	Index     int
	Name      string
	Email     string
	Group     int
	Status    string
	CanRemind bool
}

// ReminderResult is one reminder's outcome.
type ReminderResult struct {
	Email       string
	EmailStatus string // SENT, EXCEED_DAILY_LIMIT, BOUNCE, UNKNOWN
	Label       string
}

// RequestDetailModel is GET /requests/:id.
type RequestDetailModel struct {
	Page
	ID           string
	RequestTitle string
	Status       string
	Reason       string // FAILED / REJECTED
	SigningType  string
	Signers      []SignerRow
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ExpiresAt    time.Time
	ExpiryValue  string // YYYY-MM-DD for the change-expiry input
	MinExpiry    string
	DetailsURL   string // "" unless it passed security.md §8.8

	Stale          bool   // rendered from the store
	StaleNotice    string // why
	ReadOnlyNotice string // without sign:requests
	ReconnectURL   string

	CanCancel   bool
	CanRemind   bool
	CanExpiry   bool
	CanDownload bool

	Done        string // fixed-allowlist flash message
	ActionError string // Lumin's message for a refused action
	Reminders   []ReminderResult
}

// ScopeMissingModel is the page shown without any signature-request scope.
type ScopeMissingModel struct {
	Page
	Missing      []string
	ReconnectURL string
}

// FileNotReadyModel is the 409 page of a download asked for too early.
type FileNotReadyModel struct {
	Page
	ID string
}
