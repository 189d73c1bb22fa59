package handlers

// The signature-requests console (issue 5): list, send, track, detail, actions and
// downloads. Lumin has no list endpoint (lumin-api.md §16.4), so the list is the app's
// own store of ids per user, refreshed live from Lumin with the user's own token.

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/store"
	"github.com/connectlumin/app/views"
)

const (
	// pageSize is the list's page length.
	pageSize = 25
	// recentCount is how many requests the dashboard summary shows.
	recentCount = 5
	// actionTimeout bounds one user-triggered Lumin call (send, cancel, …); it stays
	// below the server's WriteTimeout (security.md §10).
	actionTimeout = 20 * time.Second
	// detailTimeout bounds the detail page's live GET.
	detailTimeout = 8 * time.Second
	// Scopes (lumin-api.md §13).
	scopeWrite = "sign:requests"
	scopeRead  = "sign:requests.read"
)

// knownStatuses are Lumin's request statuses in display order (lumin-api.md §16.2);
// the status filter accepts nothing else.
var knownStatuses = []string{
	"WAITING_FOR_PROCESSING", "NEED_TO_SIGN", "WAITING_FOR_OTHERS",
	"APPROVED", "REJECTED", "CANCELLED", "FAILED",
}

// knownStatus reports whether s is one of knownStatuses.
func knownStatus(s string) bool {
	for _, k := range knownStatuses {
		if s == k {
			return true
		}
	}
	return false
}

// actionable reports whether Lumin accepts cancel, remind and expiry changes for a
// request in status s: only once processed and before a terminal status (lumin-api.md §16.2).
func actionable(s string) bool { return s == "NEED_TO_SIGN" || s == "WAITING_FOR_OTHERS" }

// doneMessages is the fixed allowlist of ?done= flash messages: the query selects a
// message, it is never reflected (no content injection through crafted links).
var doneMessages = map[string]string{
	"sent":      "Your signature request was sent. Lumin processes it for a moment before the signers get their emails.",
	"tracked":   "The request is now in your list.",
	"cancelled": "The request was cancelled.",
	"reminded":  "Reminders were requested.",
	"expiry":    "The expiry date was changed.",
}

// reminderLabels is the allowlist of reminder outcomes (lumin-api.md §16.3).
var reminderLabels = map[string]string{
	"SENT":               "reminder sent",
	"EXCEED_DAILY_LIMIT": "not sent: the daily limit of 10 reminders was reached",
	"BOUNCE":             "not sent: the address bounced",
	"UNKNOWN":            "unknown outcome",
}

// fileKinds are the downloadable files (lumin-api.md §16.5).
var fileKinds = map[string]bool{"agreement": true, "coc": true, "merged": true}

// grants says what the session may do with signature requests.
type grants struct{ read, write bool }

func grantsOf(sess *store.Session) grants {
	var g grants
	for _, s := range sess.Scopes {
		switch s {
		case scopeWrite:
			g.write, g.read = true, true
		case scopeRead:
			g.read = true
		}
	}
	return g
}

// reconnectURL restarts the flow and comes back to path; LUMIN_SCOPES decides what is
// asked for, so the hint tells the user to allow signature requests at Lumin.
func reconnectURL(path string) string { return "/auth/connect?return_to=" + url.QueryEscape(path) }

const readOnlyText = "You allowed read-only access to signature requests (sign:requests.read): sending, cancelling, reminding and changing expiry need the sign:requests scope. Reconnect and allow it to use them."

// requestPath is the detail URL of an id that passed lumin.ValidID.
func requestPath(id string) string { return "/requests/" + url.PathEscape(id) }

// consoleSession returns the connected session and the scope check of every console page.
func (s *Server) consoleSession(c echo.Context) (*store.Session, grants, error) {
	sess := s.session(c)
	if !sess.Connected() {
		return nil, grants{}, errReconnect // requireConnected normally redirected already
	}
	return sess, grantsOf(sess), nil
}

// requireScope is route middleware: a session without the signature-request scope a
// route needs gets the "access needed" page (403) with a reconnect link, instead of
// each handler repeating the check (issue 5: "without sign:requests the pages say what
// is missing"; read-only with sign:requests.read). It runs after requireConnected.
func (s *Server) requireScope(write bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			g := grantsOf(s.session(c))
			if !g.read || (write && !g.write) {
				return s.renderScopeMissing(c, write)
			}
			return next(c)
		}
	}
}

// renderScopeMissing is the page for a session without any signature-request scope.
func (s *Server) renderScopeMissing(c echo.Context, write bool) error {
	m := views.ScopeMissingModel{Page: s.page(c, "Access needed", "requests"), ReconnectURL: reconnectURL("/requests")}
	if write {
		m.Missing = []string{scopeWrite}
	} else {
		m.Missing = []string{scopeRead, scopeWrite}
	}
	return s.render(c, http.StatusForbidden, views.ScopeMissing(m))
}

// busyNotice is the degraded-mode text (lumin-api.md §19: honour Retry-After).
func busyNotice(retryAfter time.Duration) string {
	if retryAfter > 0 {
		return busyRetryText(retryAfter) + " Showing the last known statuses."
	}
	return "Lumin could not be reached just now. Showing the last known statuses."
}

// listRows converts store rows to view rows; stale marks the ids that could not be refreshed.
func listRows(rows []store.TrackedRequest, stale map[string]bool) []views.ListRow {
	out := make([]views.ListRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, views.ListRow{
			RequestRow: views.RequestRow{ID: r.ID, Title: r.Title, Status: r.Status, UpdatedAt: r.UpdatedAt, Stale: stale[r.ID]},
			Source:     r.Source,
		})
	}
	return out
}

// listQuery is the validated query of GET /requests.
type listQuery struct {
	status string
	page   int
}

func parseListQuery(c echo.Context) (listQuery, error) {
	q := listQuery{status: c.QueryParam("status"), page: 1}
	if q.status != "" && !knownStatus(q.status) {
		return q, badRequest("Unknown status filter.")
	}
	if p := c.QueryParam("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100000 {
			return q, badRequest("The page number must be a positive whole number.")
		}
		q.page = n
	}
	return q, nil
}

// listURL builds a list link keeping the filter.
func listURL(status string, page int) string {
	v := url.Values{}
	if status != "" {
		v.Set("status", status)
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/requests"
	}
	return "/requests?" + v.Encode()
}

// refreshPage refreshes the non-terminal rows and tries a few webhook candidates, writing
// every answer back to the store before the page renders. A row this process fetched
// for the user within s.listFreshFor is not asked again: its stored state is the answer
// Lumin gave seconds ago (lumin-api.md §19: no polling in tight loops). Candidates are
// always tried. It returns the ids that could not be refreshed, the batch's upstream
// state, and whether the store changed.
func (s *Server) refreshPage(ctx context.Context, sess *store.Session, ts lumin.TokenSource, rows []store.TrackedRequest) (map[string]bool, *busyState, bool) {
	stale := map[string]bool{}
	busy := &busyState{}
	stored := map[string]store.TrackedRequest{}
	var ids []string
	started := s.now()
	for _, r := range rows {
		if !store.IsTerminal(r.Status) && !s.fresh.recent(sess.UserKey, r.ID, started, s.listFreshFor) {
			ids = append(ids, r.ID)
			stored[r.ID] = r
		}
	}
	// HasCandidates is served from the store's read cache, so the usual view (no open
	// candidates) costs no query; the uncached Candidates query runs only when it says so.
	var cands []string
	has, err := s.db.HasCandidates(ctx, sess.UserKey)
	if err == nil && has {
		cands, err = s.db.Candidates(ctx, sess.UserKey, sess.Email, candidatesPerView)
	}
	if err != nil {
		s.log.Warn("candidates lookup failed", "err", err)
		cands = nil
	}
	if len(ids)+len(cands) == 0 {
		return stale, busy, false
	}
	// One token call before the fan-out, so a due refresh happens once (single-flight in
	// the token source) instead of racing in every goroutine (security.md §7).
	if _, err := ts.AccessToken(ctx); err != nil {
		busy.note(err)
		for _, id := range ids {
			stale[id] = true
		}
		return stale, busy, false
	}
	all := append(append([]string(nil), ids...), cands...)
	outs := fetchAll(ctx, s.api, ts, all, listRefreshConcurrency, refreshPerCall, refreshBatch)
	now := s.now()
	changed := false
	// Writes use a context of their own: a client that went away must not lose what
	// Lumin already told us.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var fetched []string // answered and stored (or unchanged): fresh for listFreshFor
	for i, o := range outs {
		isCand := i >= len(ids)
		if o.err != nil {
			if isCand {
				var ae *lumin.APIError
				if errors.As(o.err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden) {
					// Lumin does not show it to this user: never try again for them.
					if err := s.db.CandidateChecked(wctx, sess.UserKey, o.id); err != nil {
						s.log.Warn("candidate check not recorded", "err", err)
					}
				} else {
					busy.note(o.err)
				}
				continue
			}
			stale[o.id] = true
			busy.note(o.err)
			continue
		}
		o.sr.ID = o.id // the path's id is the key, whatever the body says
		prev, known := stored[o.id]
		src := prev.Source
		if isCand {
			src = "webhook"
		}
		fresh := trackedFrom(sess.UserKey, src, o.sr, now)
		if known && sameState(prev, fresh) {
			// Nothing new: skip the write. Every commit is an fsync (store: durable
			// writes), and a page of unchanged rows must not cost 25 of them.
			fetched = append(fetched, o.id)
			continue
		}
		if err := s.db.Upsert(wctx, fresh); err != nil {
			s.log.Error("store upsert failed", "err", err)
			stale[o.id] = true
			continue
		}
		fetched = append(fetched, o.id)
		changed = true
		if isCand {
			if err := s.db.CandidateChecked(wctx, sess.UserKey, o.id); err != nil {
				s.log.Warn("candidate check not recorded", "err", err)
			}
		}
	}
	if s.listFreshFor > 0 {
		s.fresh.markFetched(sess.UserKey, fetched, started, now)
	}
	return stale, busy, changed
}

// sameState reports whether a fresh GET says nothing the stored row does not already
// hold (CheckedAt aside).
func sameState(a, b store.TrackedRequest) bool {
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	if a.Status != b.Status || a.Title != b.Title || ms(a.UpdatedAt) != ms(b.UpdatedAt) ||
		ms(a.ExpiresAt) != ms(b.ExpiresAt) || ms(a.CreatedAt) != ms(b.CreatedAt) || len(a.Signers) != len(b.Signers) {
		return false
	}
	for i := range a.Signers {
		if a.Signers[i] != b.Signers[i] {
			return false
		}
	}
	return true
}

// handleRequestsList is GET /requests.
func (s *Server) handleRequestsList(c echo.Context) error {
	sess, g, err := s.consoleSession(c)
	if err != nil {
		return err
	}
	q, err := parseListQuery(c)
	if err != nil {
		return err
	}
	m, err := s.listModel(c, sess, g, q, true)
	if err != nil {
		return err
	}
	m.Done = doneMessages[c.QueryParam("done")]
	return s.render(c, http.StatusOK, views.RequestsList(m))
}

// listModel builds the list page; live=false renders from the store only (used when the
// track form is re-shown with an error).
func (s *Server) listModel(c echo.Context, sess *store.Session, g grants, q listQuery, live bool) (views.RequestsListModel, error) {
	ctx := c.Request().Context()
	f := store.ListFilter{Status: q.status, Limit: pageSize, Offset: (q.page - 1) * pageSize}
	rows, total, err := s.db.List(ctx, sess.UserKey, f)
	if err != nil {
		return views.RequestsListModel{}, err
	}
	if q.page > 1 && f.Offset >= total {
		return views.RequestsListModel{}, badRequest("There is no such page.")
	}
	m := views.RequestsListModel{Page: s.page(c, "Signature requests", "requests"), Filter: q.status, CanSend: g.write}
	stale := map[string]bool{}
	if live {
		var busy *busyState
		var changed bool
		stale, busy, changed = s.refreshPage(ctx, sess, s.tokenSource(c), rows)
		if busy.authErr != nil {
			return m, busy.authErr
		}
		if busy.busy {
			m.UpstreamNotice = busyNotice(busy.retryAfter)
		}
		if changed {
			if rows, total, err = s.db.List(ctx, sess.UserKey, f); err != nil {
				return m, err
			}
		}
	}
	m.Rows = listRows(rows, stale)
	for _, st := range knownStatuses {
		m.Statuses = append(m.Statuses, views.StatusOption{Value: st, Label: views.StatusLabel(st), Selected: st == q.status})
	}
	pages := (total + pageSize - 1) / pageSize
	m.Pager = views.Pager{Page: q.page, TotalPages: pages}
	if q.page > 1 {
		m.Pager.PrevURL = listURL(q.status, q.page-1)
	}
	if q.page < pages {
		m.Pager.NextURL = listURL(q.status, q.page+1)
	}
	if !g.write {
		m.ReadOnlyNotice, m.ReconnectURL = readOnlyText, reconnectURL("/requests")
	}
	return m, nil
}

// loadRequestsSummary fills the dashboard's requests-summary section: counts by status and
// the most recent requests, from the store only (the dashboard must stay fast; the
// list page does the live refresh).
func (s *Server) loadRequestsSummary(ctx context.Context, sess *store.Session) (views.RequestsSummary, error) {
	var sum views.RequestsSummary
	if sess == nil || s.db == nil {
		return sum, nil
	}
	g := grantsOf(sess)
	sum.CanSend = g.write
	if !g.read {
		sum.Notice = "This connection has no access to signature requests (sign:requests)."
		return sum, nil
	}
	counts, err := s.db.Counts(ctx, sess.UserKey)
	if err != nil {
		return sum, err
	}
	if len(counts) == 0 {
		// Nothing stored yet, but webhooks may have named requests that are this user's
		// (lumin-api.md §16.4). Only the list page checks them with the user's token: the
		// dashboard makes no upstream call, it just says so, from the (cached) store.
		has, err := s.db.HasCandidates(ctx, sess.UserKey)
		if err != nil {
			s.log.Warn("candidates lookup failed", "err", err)
		}
		sum.Checking = has
		return sum, nil
	}
	for _, st := range knownStatuses {
		if n := counts[st]; n > 0 {
			sum.Counts = append(sum.Counts, views.StatusCount{Status: st, Count: n})
		}
	}
	for st, n := range counts {
		if !knownStatus(st) && n > 0 {
			sum.Counts = append(sum.Counts, views.StatusCount{Status: st, Count: n})
		}
	}
	rows, _, err := s.db.List(ctx, sess.UserKey, store.ListFilter{Limit: recentCount})
	if err != nil {
		return sum, err
	}
	for _, r := range rows {
		sum.Recent = append(sum.Recent, views.RequestRow{ID: r.ID, Title: r.Title, Status: r.Status, UpdatedAt: r.UpdatedAt})
	}
	return sum, nil
}

// handleRequestsNew is GET /requests/new (requireConnected and requireScope ran).
func (s *Server) handleRequestsNew(c echo.Context) error {
	m := newSendModel(s.now())
	m.Page = s.page(c, "Send a signature request", "requests")
	return s.render(c, http.StatusOK, views.NewRequest(m))
}

// handleRequestsSend is POST /requests: validate everything (security.md §8.6), send
// once (never retried, §8.5), store durably, then 303 to the new request.
func (s *Server) handleRequestsSend(c echo.Context) error {
	sess, _, err := s.consoleSession(c)
	if err != nil {
		return err
	}
	// The body is capped at sendBodyLimit by the bodyLimit middleware (s.bodyLimits).
	r := c.Request()
	sf, ok, err := parseSendForm(r, s.now())
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll() // spilled parts, if any, never outlive the request
	}
	switch {
	case errors.Is(err, errBodyTooLarge):
		return userError(http.StatusRequestEntityTooLarge, "Too large", "The upload is too large: a PDF of at most 20 MiB is accepted. Nothing was sent.")
	case err != nil:
		return badRequest("The form could not be read.")
	}
	sf.model.Page = s.page(c, "Send a signature request", "requests")
	if !ok {
		status := http.StatusUnprocessableEntity
		if sf.addRow || sf.removeAt >= 0 {
			status = http.StatusOK
		}
		return s.render(c, status, views.NewRequest(sf.model))
	}

	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	sr, err := s.api.Send(ctx, s.tokenSource(c), sf.input)
	if err != nil {
		status, msg, fatal := s.formFailure(err)
		if fatal != nil {
			return fatal
		}
		sf.model.FormError = msg
		sf.model.FileDropped = sf.input.File != nil
		return s.render(c, status, views.NewRequest(sf.model))
	}
	if !lumin.ValidID(sr.ID) {
		s.log.Error("send returned an unusable id")
		return userError(http.StatusBadGateway, "Unexpected answer from Lumin", "Lumin accepted the request but returned an unusable id; check your Lumin account.")
	}
	s.requestChanged(sess.UserKey, sr.ID) // the list shows the new request from its own first GET
	now := s.now()
	status := sr.Status
	if status == "" {
		status = "WAITING_FOR_PROCESSING"
	}
	created := sr.CreatedAt
	if created.IsZero() {
		created = now
	}
	tr := store.TrackedRequest{
		UserKey: sess.UserKey, ID: sr.ID, Title: sf.input.Title, Status: status,
		CreatedAt: created, UpdatedAt: created, ExpiresAt: sf.input.ExpiresAt,
		Source: "sent", CheckedAt: now,
	}
	for _, sg := range sf.input.Signers {
		tr.Signers = append(tr.Signers, store.TrackedSigner{Email: sg.Email, Name: sg.Name, Group: sg.Group})
	}
	// Durable before the redirect: once Lumin created it, losing the id would lose the
	// request from the app for good (no list endpoint, lumin-api.md §16.4). The write
	// survives a client that hung up.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()
	if err := s.db.Upsert(wctx, tr); err != nil {
		if err = s.db.Upsert(wctx, tr); err != nil {
			s.log.Error("store upsert after send failed", "err", err)
			return userError(http.StatusServiceUnavailable, "Sent, but not saved",
				"Lumin created the request, but the app could not save it. Track it by its id: "+sr.ID)
		}
	}
	return c.Redirect(http.StatusSeeOther, requestPath(sr.ID)+"?done=sent")
}

// formFailure maps an error of a state-changing call to a form re-render (status and
// message) or, for errors the central handler owns (reconnect), returns fatal.
func (s *Server) formFailure(err error) (status int, msg string, fatal error) {
	var ae *lumin.APIError
	switch {
	case errors.Is(err, lumin.ErrResubmit):
		// Non-GET after 401: the token source refreshed, but the call is not replayed
		// (it may send emails): the user resubmits (security.md §8.4).
		return http.StatusConflict, "Your Lumin access had to be renewed. Nothing was sent; please submit again.", nil
	case needsReconnect(err):
		// 401 and the refresh failed too: the connection is gone (reconnect page).
		return 0, "", err
	case errors.As(err, &ae) && (ae.Status == http.StatusTooManyRequests || ae.Status >= 500):
		if ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable {
			return http.StatusServiceUnavailable, busyRetryText(ae.RetryAfter), nil
		}
		return http.StatusBadGateway, "Lumin did not confirm the request. Check your Lumin account before sending it again.", nil
	case errors.As(err, &ae):
		msg := ae.Message
		if msg == "" {
			msg = "Lumin refused the request (" + strconv.Itoa(ae.Status) + ")."
		} else {
			msg = "Lumin refused the request: " + truncateRunes(msg, 300)
		}
		st := http.StatusUnprocessableEntity
		if ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound || ae.Status == http.StatusConflict {
			st = ae.Status
		}
		return st, msg, nil
	default:
		return http.StatusBadGateway, "Lumin could not be reached. Check your Lumin account before sending it again.", nil
	}
}

// busyRetryText is the "try again" sentence of a 429/503, rounding Retry-After up to
// whole seconds (lumin-api.md §19: honour Retry-After).
func busyRetryText(d time.Duration) string {
	if d > 0 {
		return "Lumin is busy, try again in " + strconv.Itoa(int(math.Ceil(d.Seconds()))) + " s."
	}
	return "Lumin is busy, try again in a moment."
}

// handleRequestsTrack is POST /requests/track: add an existing request by id, only if
// Lumin shows it to this user's token (lumin-api.md §16.4 item 3, security.md §8.7).
func (s *Server) handleRequestsTrack(c echo.Context) error {
	sess, g, err := s.consoleSession(c)
	if err != nil {
		return err
	}
	id := strings.TrimSpace(c.FormValue("id"))
	reshow := func(status int, msg string) error {
		m, err := s.listModel(c, sess, g, listQuery{page: 1}, false)
		if err != nil {
			return err
		}
		m.TrackError = msg
		if len(id) <= 128 {
			m.TrackID = id
		}
		return s.render(c, status, views.RequestsList(m))
	}
	if !lumin.ValidID(id) {
		return reshow(http.StatusBadRequest, "That is not a signature request id: use the letters, digits, - and _ of the id only.")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), detailTimeout)
	defer cancel()
	sr, err := s.api.Get(ctx, s.tokenSource(c), id)
	s.requestChanged(sess.UserKey, id)
	if err != nil {
		var ae *lumin.APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden) {
			return reshow(http.StatusNotFound, "Signature request not found or not accessible in your Workspace.")
		}
		return err
	}
	sr.ID = id
	src := "tracked"
	if old, err := s.db.Get(ctx, sess.UserKey, id); err == nil {
		src = old.Source
	}
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()
	if err := s.db.Upsert(wctx, trackedFrom(sess.UserKey, src, sr, s.now())); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, requestPath(id)+"?done=tracked")
}

// pathID validates the :id parameter (security.md §8.2).
func pathID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !lumin.ValidID(id) {
		return "", badRequest("That is not a valid signature request id.")
	}
	return id, nil
}

// allowedLuminURL applies security.md §8.8 to details_url and signed_url: https with a
// host under luminpdf.com, or, in sandbox mode, exactly the sandbox's origin.
func (s *Server) allowedLuminURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Host == "" || u.Opaque != "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" && (host == "luminpdf.com" || strings.HasSuffix(host, ".luminpdf.com")) {
		return true
	}
	if s.sandbox && s.sandboxURL != "" {
		sb, err := url.Parse(s.sandboxURL)
		if err == nil && sb.Host != "" && strings.EqualFold(u.Scheme, sb.Scheme) && strings.EqualFold(u.Host, sb.Host) {
			return true
		}
	}
	return false
}

// detailState is the loaded request for the detail page and the actions.
type detailState struct {
	stored  store.TrackedRequest
	inStore bool
	live    lumin.SignatureRequest
	isLive  bool
	liveErr error
}

// loadDetail reads the stored row and GETs the request with the user's token. A request
// is shown only if Lumin returns it for their token, or — degraded, when Lumin is busy
// or unreachable — from the user's own stored row; a 403/404 from Lumin and every
// other id is 404 (security.md §8.7).
func (s *Server) loadDetail(c echo.Context, sess *store.Session, id string) (detailState, error) {
	var d detailState
	ctx := c.Request().Context()
	st, err := s.db.Get(ctx, sess.UserKey, id)
	switch {
	case err == nil:
		d.stored, d.inStore = st, true
	case !errors.Is(err, store.ErrNotFound):
		return d, err
	}
	gctx, cancel := context.WithTimeout(ctx, detailTimeout)
	defer cancel()
	sr, err := s.api.Get(gctx, s.tokenSource(c), id)
	// Whatever the answer, the list's next view fetches this row again: the user looks
	// at a request mostly around changing it, and one GET is cheap next to a list that
	// hides the change for listFreshFor (lumin-api.md §19).
	s.requestChanged(sess.UserKey, id)
	if err == nil {
		sr.ID = id
		d.live, d.isLive = sr, true
		if fresh := trackedFrom(sess.UserKey, d.stored.Source, sr, s.now()); d.inStore && !sameState(d.stored, fresh) {
			wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer wcancel()
			if err := s.db.Upsert(wctx, fresh); err != nil {
				s.log.Warn("store upsert failed", "err", err)
			}
		}
		return d, nil
	}
	if needsReconnect(err) {
		return d, err
	}
	var ae *lumin.APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden) {
		// security.md §8.7: show a request only if Lumin returns it for this user's
		// token. A stored row is not enough once Lumin says 403/404 (the grant changed,
		// the Workspace dropped the user …): the same "not found or not accessible" page
		// as for any other id. The row is kept; the list shows it as stale.
		return d, errRequestNotFound
	}
	if !d.inStore {
		return d, err
	}
	d.liveErr = err
	return d, nil
}

// detailModel builds the detail view from the live answer or, degraded, from the store.
func (s *Server) detailModel(c echo.Context, g grants, id string, d detailState) views.RequestDetailModel {
	now := s.now()
	m := views.RequestDetailModel{
		ID:        id,
		MinExpiry: now.UTC().Format(dateLayout),
	}
	var signers []lumin.Signer
	if d.isLive {
		sr := d.live
		m.RequestTitle, m.Status, m.SigningType = sr.Title, sr.Status, sr.SigningType
		m.CreatedAt, m.UpdatedAt, m.ExpiresAt = sr.CreatedAt, sr.UpdatedAt, sr.ExpiresAt
		if sr.Status == "FAILED" || sr.Status == "REJECTED" {
			m.Reason = sr.Reason
		}
		if s.allowedLuminURL(sr.DetailsURL) {
			m.DetailsURL = sr.DetailsURL
		}
		signers = sr.Signers
	} else {
		st := d.stored
		m.RequestTitle, m.Status = st.Title, st.Status
		m.CreatedAt, m.UpdatedAt, m.ExpiresAt = st.CreatedAt, st.UpdatedAt, st.ExpiresAt
		for _, sg := range st.Signers {
			signers = append(signers, lumin.Signer{Email: sg.Email, Name: sg.Name, Group: sg.Group, Status: sg.Status})
		}
		m.Stale = true
		var ae *lumin.APIError
		ra := time.Duration(0)
		if errors.As(d.liveErr, &ae) {
			ra = ae.RetryAfter
		}
		m.StaleNotice = busyNotice(ra)
	}
	m.Page = s.page(c, titleOr(m.RequestTitle, "Signature request"), "requests")
	if !m.ExpiresAt.IsZero() {
		m.ExpiryValue = m.ExpiresAt.UTC().Format(dateLayout)
	}
	live := d.isLive
	act := live && g.write && actionable(m.Status)
	m.CanCancel, m.CanExpiry = act, act
	for i, sg := range signers {
		row := views.SignerRow{Index: i, Name: sg.Name, Email: sg.Email, Group: sg.Group, Status: sg.Status}
		row.CanRemind = act && !sg.IsApproved && actionable(sg.Status)
		if row.CanRemind {
			m.CanRemind = true
		}
		m.Signers = append(m.Signers, row)
	}
	m.CanDownload = live && g.read && m.Status == "APPROVED"
	if !g.write {
		m.ReadOnlyNotice, m.ReconnectURL = readOnlyText, reconnectURL(requestPath(id))
	}
	return m
}

func titleOr(t, def string) string {
	if t == "" {
		return def
	}
	return truncateRunes(t, 80)
}

// reminderResults decodes ?r=INDEX:STATUS,… against the signers shown: only signers
// Lumin returned and statuses from the allowlist are rendered (nothing reflected).
func reminderResults(q string, signers []views.SignerRow) []views.ReminderResult {
	var out []views.ReminderResult
	for _, part := range strings.Split(q, ",") {
		i, st, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(i)
		label, known := reminderLabels[st]
		if err != nil || n < 0 || n >= len(signers) || !known {
			continue
		}
		out = append(out, views.ReminderResult{Email: signers[n].Email, EmailStatus: st, Label: label})
		if len(out) >= maxSigners {
			break
		}
	}
	return out
}

// handleRequestDetail is GET /requests/:id.
func (s *Server) handleRequestDetail(c echo.Context) error {
	sess, g, err := s.consoleSession(c)
	if err != nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	d, err := s.loadDetail(c, sess, id)
	if err != nil {
		return err
	}
	m := s.detailModel(c, g, id, d)
	done := c.QueryParam("done")
	m.Done = doneMessages[done]
	if done == "reminded" {
		m.Reminders = reminderResults(c.QueryParam("r"), m.Signers)
	}
	return s.render(c, http.StatusOK, views.RequestDetail(m))
}

// actionFailure re-renders the detail page with Lumin's refusal, or hands the error to
// the central handler (reconnect, busy, unreachable).
func (s *Server) actionFailure(c echo.Context, sess *store.Session, g grants, id string, err error) error {
	if errors.Is(err, lumin.ErrResubmit) {
		// Refreshed after a 401 but never replayed (security.md §8.4, §8.5).
		return s.actionMessage(c, sess, g, id, http.StatusConflict,
			"Your Lumin access had to be renewed. Nothing was changed; please try again.")
	}
	var ae *lumin.APIError
	if !errors.As(err, &ae) || ae.Status == http.StatusTooManyRequests || ae.Status >= 500 || needsReconnect(err) {
		return err // reconnect, busy or unreachable: the central error page
	}
	if ae.Status == http.StatusNotFound {
		return errRequestNotFound
	}
	msg := "Lumin refused this action (" + strconv.Itoa(ae.Status) + ")."
	if ae.Message != "" {
		msg = "Lumin refused this action: " + truncateRunes(ae.Message, 300)
	}
	st := ae.Status
	if st < 400 || st > 499 {
		st = http.StatusUnprocessableEntity
	}
	return s.actionMessage(c, sess, g, id, st, msg)
}

// actionMessage renders the detail page with an error message and status.
func (s *Server) actionMessage(c echo.Context, sess *store.Session, g grants, id string, status int, msg string) error {
	d, err := s.loadDetail(c, sess, id)
	if err != nil {
		return err
	}
	m := s.detailModel(c, g, id, d)
	m.ActionError = msg
	return s.render(c, status, views.RequestDetail(m))
}

// actionPrelude is shared by the POST actions: the connected session and a valid id.
// The write scope is checked before, by the routes' requireScope(true) middleware.
func (s *Server) actionPrelude(c echo.Context) (*store.Session, grants, string, error) {
	sess, g, err := s.consoleSession(c)
	if err != nil {
		return nil, g, "", err
	}
	id, err := pathID(c)
	if err != nil {
		return nil, g, "", err
	}
	return sess, g, id, nil
}

// updateStored moves the user's stored row (if any) to the new state; a failure is
// logged only, since Lumin already did the action and the next GET will tell the truth.
func (s *Server) updateStored(ctx context.Context, userKey, id string, apply func(*store.TrackedRequest)) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	tr, err := s.db.Get(wctx, userKey, id)
	if err != nil {
		return
	}
	apply(&tr)
	if err := s.db.Upsert(wctx, tr); err != nil {
		s.log.Warn("store upsert after action failed", "err", err)
	}
}

// handleRequestCancel is POST /requests/:id/cancel (never retried, security.md §8.5).
func (s *Server) handleRequestCancel(c echo.Context) error {
	sess, g, id, err := s.actionPrelude(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), actionTimeout)
	defer cancel()
	err = s.api.Cancel(ctx, s.tokenSource(c), id)
	// Even a failed call (timeout, 5xx) may have cancelled it: re-fetch on the next view.
	s.requestChanged(sess.UserKey, id)
	if err != nil {
		return s.actionFailure(c, sess, g, id, err)
	}
	now := s.now()
	s.updateStored(ctx, sess.UserKey, id, func(tr *store.TrackedRequest) {
		tr.Status = "CANCELLED"
		if now.After(tr.UpdatedAt) {
			tr.UpdatedAt = now
		}
		tr.CheckedAt = now
	})
	return c.Redirect(http.StatusSeeOther, requestPath(id)+"?done=cancelled")
}

// handleRequestRemind is POST /requests/:id/remind: one call for the chosen signers; the
// per-email outcome is shown, never retried (lumin-api.md §16.3).
func (s *Server) handleRequestRemind(c echo.Context) error {
	sess, g, id, err := s.actionPrelude(c)
	if err != nil {
		return err
	}
	form, err := c.FormParams()
	if err != nil {
		return badRequest("The form could not be read.")
	}
	emails := form["email"]
	if len(emails) == 0 {
		return s.actionMessage(c, sess, g, id, http.StatusUnprocessableEntity, "Choose at least one signer to remind.")
	}
	if len(emails) > maxSigners {
		return s.actionMessage(c, sess, g, id, http.StatusUnprocessableEntity, "Too many signers chosen.")
	}
	for _, e := range emails {
		if !validEmail(e) {
			return s.actionMessage(c, sess, g, id, http.StatusUnprocessableEntity, "One of the chosen addresses is not a valid email address.")
		}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), actionTimeout)
	defer cancel()
	sr, rems, err := s.api.Remind(ctx, s.tokenSource(c), id, emails)
	s.requestChanged(sess.UserKey, id) // signers' reminder state may have changed, even on an error
	if err != nil {
		return s.actionFailure(c, sess, g, id, err)
	}
	// Encode the outcomes as signer index + allowlisted status so the result page (after
	// the 303) shows them without reflecting text from the URL. The indexes come from the
	// signature_request of the remind answer itself (lumin-api.md §16.3): a second GET
	// could fail and silently drop a BOUNCE or EXCEED_DAILY_LIMIT.
	var parts []string
	for _, r := range rems {
		st := r.EmailStatus
		if _, ok := reminderLabels[st]; !ok {
			st = "UNKNOWN"
		}
		for i, sg := range sr.Signers {
			if strings.EqualFold(sg.Email, r.Email) {
				parts = append(parts, strconv.Itoa(i)+":"+st)
				break
			}
		}
	}
	v := url.Values{"done": {"reminded"}}
	if len(parts) > 0 {
		v.Set("r", strings.Join(parts, ","))
	}
	return c.Redirect(http.StatusSeeOther, requestPath(id)+"?"+v.Encode())
}

// handleRequestExpiry is POST /requests/:id/expiry.
func (s *Server) handleRequestExpiry(c echo.Context) error {
	sess, g, id, err := s.actionPrelude(c)
	if err != nil {
		return err
	}
	at, msg := parseExpiryDate(c.FormValue("expires_at"), s.now())
	if msg != "" {
		return s.actionMessage(c, sess, g, id, http.StatusUnprocessableEntity, msg)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), actionTimeout)
	defer cancel()
	sr, err := s.api.UpdateExpiry(ctx, s.tokenSource(c), id, at)
	s.requestChanged(sess.UserKey, id) // even a failed call may have changed it
	if err != nil {
		return s.actionFailure(c, sess, g, id, err)
	}
	now := s.now()
	s.updateStored(ctx, sess.UserKey, id, func(tr *store.TrackedRequest) {
		if sr.ID == id && !sr.UpdatedAt.IsZero() {
			*tr = trackedFrom(sess.UserKey, tr.Source, sr, now)
			return
		}
		tr.ExpiresAt = at
	})
	return c.Redirect(http.StatusSeeOther, requestPath(id)+"?done=expiry")
}

// handleRequestFile is GET /requests/:id/file?type=…: ask Lumin for a signed URL on
// demand, check it (security.md §8.8) and 303 to it; it is never stored (§8.9).
func (s *Server) handleRequestFile(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	kind := c.QueryParam("type")
	if kind == "" {
		kind = "agreement"
	}
	if !fileKinds[kind] {
		return badRequest("Unknown file type: choose agreement, coc or merged.")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), detailTimeout)
	defer cancel()
	f, err := s.api.File(ctx, s.tokenSource(c), id, kind)
	if err != nil {
		var ae *lumin.APIError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusConflict:
				m := views.FileNotReadyModel{Page: s.page(c, "Not ready yet", "requests"), ID: id}
				return s.render(c, http.StatusConflict, views.FileNotReady(m))
			case http.StatusNotFound, http.StatusForbidden:
				return errRequestNotFound
			}
		}
		return err
	}
	if !s.allowedLuminURL(f.URL) {
		s.log.Warn("download link rejected", "reason", "signed_url_not_allowed")
		return userError(http.StatusBadGateway, "Download refused", "Lumin returned a download link this app does not trust, so it was not opened.")
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusSeeOther, f.URL)
}

// userError is a page error with a safe, fixed message for the central error handler
// (its Echo-error mapping never shows messages, so ours travel as *pageError).
func userError(status int, title, msg string) error {
	return &pageError{status: status, title: title, message: msg,
		action: views.Action{Href: "/requests", Label: "Back to signature requests"},
		reason: "requests_" + strconv.Itoa(status), level: slog.LevelInfo}
}

// badRequest is a 400 page with a safe message.
func badRequest(msg string) error {
	return userError(http.StatusBadRequest, "Bad request", msg+" Nothing was changed.")
}

// errRequestNotFound is the one answer for ids this user cannot see, whether unknown or
// someone else's: the two are indistinguishable on purpose (security.md §8.7).
var errRequestNotFound = &pageError{status: http.StatusNotFound, title: "Signature request not found",
	message: "Signature request not found or not accessible in your Workspace.",
	action:  views.Action{Href: "/requests", Label: "Back to signature requests"},
	reason:  "request_not_found", level: slog.LevelInfo}

// page is the base model of a console page, with the nav pointing at the requests.
func (s *Server) page(c echo.Context, title, current string) views.Page {
	p := s.pageModel(c, title)
	p.Current = current
	return p
}
