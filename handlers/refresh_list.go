package handlers

// Live refresh of the requests list: the non-terminal rows on the page are fetched from
// Lumin in parallel, with bounded concurrency and a deadline per call and per batch, so
// a page of 25 costs about one upstream round trip instead of 25 (issue 5).

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/store"
)

const (
	// refreshConcurrency bounds simultaneous GETs per page view. It equals the page size
	// so a page refreshes in ONE wave (about one upstream round trip, issue 5's target);
	// the bound still keeps a view from looking like a burst to Lumin (lumin-api.md §19:
	// 3000 GETs / 30 min per user) and below the client's idle-connection pool.
	refreshConcurrency = pageSize
	// refreshPerCall bounds one GET, refreshBatch the whole refresh: a slow Lumin costs
	// at most this much before the page renders from the store with stale badges.
	refreshPerCall = 5 * time.Second
	refreshBatch   = 8 * time.Second
	// candidatesPerView bounds the webhook-learned ids tried per list view (security.md
	// §11.6, lumin-api.md §16.4). One page's worth, so a user who just connected sees a
	// page of requests Lumin told us about on the first visit, not five per reload. They
	// join the page's own refresh in fetchAll (same concurrency, per-call and batch
	// deadlines), so the cost is about one more upstream round trip, and the bound keeps
	// a view far below lumin-api.md §19's 3000 GETs / 30 min.
	candidatesPerView = pageSize
	// defaultListFreshFor is Server.listFreshFor's default. Every list view used to GET
	// every non-terminal row of the page (up to 25 calls), so a user clicking between
	// pages and details spent lumin-api.md §19's budget (an unpublished draft: 3000 GETs
	// / 30 min per user; "never poll in tight loops") on answers a few seconds old. A row
	// this process fetched for this user less than 20 s ago is shown from the store.
	// Short enough that a change made elsewhere (Lumin's UI, a signer) shows up on the
	// next view after a short pause; the app's own actions clear the entry at once.
	defaultListFreshFor = 20 * time.Second
	// freshMaxEntries bounds the freshness map: at about 150 bytes an entry the map
	// stays under ~10 MB whatever the number of users; when full it is emptied, which
	// costs at most one extra refresh per row.
	freshMaxEntries = 50_000
)

// listRefreshConcurrency is refreshConcurrency, a variable only so the benchmark can
// measure the sequential baseline (1) against it.
var listRefreshConcurrency = refreshConcurrency

// requestGetter is the one API method the refresh needs (consumer-side seam).
type requestGetter interface {
	Get(ctx context.Context, ts lumin.TokenSource, id string) (lumin.SignatureRequest, error)
}

// refreshOutcome is the result of one GET.
type refreshOutcome struct {
	id  string
	sr  lumin.SignatureRequest
	err error
}

// fetchAll GETs every id with bounded concurrency. It never fails as a whole: each
// outcome carries its own error (a timeout included).
func fetchAll(ctx context.Context, api requestGetter, ts lumin.TokenSource, ids []string, conc int, perCall, batch time.Duration) []refreshOutcome {
	out := make([]refreshOutcome, len(ids))
	if len(ids) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, batch)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(conc)
	for i, id := range ids {
		out[i].id = id
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				out[i].err = err
				return nil
			}
			cctx, ccancel := context.WithTimeout(ctx, perCall)
			defer ccancel()
			out[i].sr, out[i].err = api.Get(cctx, ts, id)
			return nil // one failure must not cancel the others
		})
	}
	_ = g.Wait()
	return out
}

// freshness remembers, per process, when each (user, request) was last fetched
// successfully by the list refresh, so the next view within Server.listFreshFor does not
// ask Lumin again (lumin-api.md §19). It is only a rate-limit saver: losing it (restart,
// another replica, the size reset) costs one refresh, never a wrong answer beyond the
// window. The zero value is ready to use; it is safe for concurrent use.
type freshness struct {
	mu sync.Mutex
	m  map[string]freshEntry // freshKey(user, id) → entry
}

// freshEntry is a successful fetch at `at`, or, when cleared, the time an action changed
// the request: a list fetch that started before then may carry the old state and must
// not make the row fresh (the action and the refresh can race).
type freshEntry struct {
	at      time.Time
	cleared bool
}

// freshKey joins user and id with a NUL. An id never contains one (lumin.ValidID), so
// the last NUL splits the key back into its pair: two pairs never share a key.
func freshKey(userKey, id string) string { return userKey + "\x00" + id }

// put stores e, emptying the map first when it reached freshMaxEntries. Callers hold mu.
func (f *freshness) put(k string, e freshEntry) {
	if f.m == nil || len(f.m) >= freshMaxEntries {
		f.m = make(map[string]freshEntry)
	}
	f.m[k] = e
}

// recent reports whether id was fetched for userKey less than window before now.
func (f *freshness) recent(userKey, id string, now time.Time, window time.Duration) bool {
	if window <= 0 {
		return false
	}
	f.mu.Lock()
	e, ok := f.m[freshKey(userKey, id)]
	f.mu.Unlock()
	if !ok || e.cleared {
		return false
	}
	age := now.Sub(e.at)
	return age >= 0 && age < window // a clock that went back never extends the window
}

// markFetched records that ids were fetched for userKey at `at` by a batch that
// started at `started`; an id cleared since the batch started is left alone.
func (f *freshness) markFetched(userKey string, ids []string, started, at time.Time) {
	if len(ids) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		k := freshKey(userKey, id)
		if e, ok := f.m[k]; ok && e.cleared && !e.at.Before(started) {
			continue
		}
		f.put(k, freshEntry{at: at})
	}
}

// clear makes the next list view fetch id for userKey again.
func (f *freshness) clear(userKey, id string, at time.Time) {
	f.mu.Lock()
	f.put(freshKey(userKey, id), freshEntry{at: at, cleared: true})
	f.mu.Unlock()
}

// requestChanged is called by every handler that changed (or may have changed) a
// request or just fetched it itself — send, cancel, remind, expiry, track, the detail
// page: the list's freshness window must not hide the change, so the next view fetches
// that row again (lumin-api.md §19 allows the one GET; a stale list would not be).
func (s *Server) requestChanged(userKey, id string) {
	s.fresh.clear(userKey, id, s.now())
}

// trackedFrom converts Lumin's object into the store's row for userKey.
func trackedFrom(userKey, source string, sr lumin.SignatureRequest, checked time.Time) store.TrackedRequest {
	tr := store.TrackedRequest{
		UserKey:   userKey,
		ID:        sr.ID,
		Title:     sr.Title,
		Status:    sr.Status,
		CreatedAt: sr.CreatedAt,
		UpdatedAt: sr.UpdatedAt,
		ExpiresAt: sr.ExpiresAt,
		Source:    source,
		CheckedAt: checked,
	}
	for _, s := range sr.Signers {
		tr.Signers = append(tr.Signers, store.TrackedSigner{Email: s.Email, Name: s.Name, Group: s.Group, Status: s.Status})
	}
	return tr
}

// busyState collects the worst upstream answer of a batch for the page notice. Only
// refreshPage's own goroutine calls note (before the fan-out and after fetchAll
// returned, never from its workers), so it needs no lock.
type busyState struct {
	busy       bool // a 429/503 or 5xx/timeout was seen
	retryAfter time.Duration
	authErr    error // 401 after refresh / dead grant: the page sends the user to reconnect
}

func (b *busyState) note(err error) {
	if err == nil {
		return
	}
	var ae *lumin.APIError
	switch {
	case needsReconnect(err):
		if b.authErr == nil {
			b.authErr = err
		}
	case errors.As(err, &ae) && (ae.Status == 429 || ae.Status >= 500):
		b.busy = true
		if ae.RetryAfter > b.retryAfter {
			b.retryAfter = ae.RetryAfter
		}
	case errors.As(err, &ae):
		// 403/404 on one row: that row goes stale, the page is fine.
	default:
		b.busy = true // network error, timeout, malformed answer
	}
}
