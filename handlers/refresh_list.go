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

// isTerminal reports whether a status never changes again (lumin-api.md §16.2): those
// rows are served from the store without asking Lumin.
func isTerminal(status string) bool {
	switch status {
	case "APPROVED", "REJECTED", "CANCELLED", "FAILED":
		return true
	}
	return false
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

// busyState collects the worst upstream answer of a batch for the page notice.
type busyState struct {
	mu         sync.Mutex
	busy       bool // a 429/503 or 5xx/timeout was seen
	retryAfter time.Duration
	authErr    error // 401 after refresh / dead grant: the page sends the user to reconnect
}

func (b *busyState) note(err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
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
