package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// readCache memoizes the reads every page view makes — the logout denylist lookup and
// the dashboard's counts and recent list — between writes. Measured: with SQLite these
// four queries were more than half of a dashboard view (BenchmarkDashboard with a
// database: 248 µs → see README "Performance").
//
// Correctness: every write through this DB bumps gen, which invalidates every entry at
// once, so this process never serves a read older than its own last write (a user who
// logs out is denied on the very next request). Entries also expire after readCacheTTL,
// which bounds how late a write by another process sharing a PostgreSQL database shows
// up here (the reference deployment runs one instance; security.md §7.8). The map is
// emptied when it reaches readCacheMax entries, so memory stays bounded.
type readCache struct {
	gen atomic.Uint64
	mu  sync.Mutex
	m   map[string]cached
}

type cached struct {
	val     any
	gen     uint64
	expires time.Time
}

const (
	readCacheTTL = 5 * time.Second
	readCacheMax = 10_000
)

// invalidate drops every entry; writes call it after they commit.
func (c *readCache) invalidate() { c.gen.Add(1) }

// get returns the cached value for key if it is from the current generation and fresh.
func (c *readCache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.gen != c.gen.Load() || !time.Now().Before(e.expires) {
		return nil, false
	}
	return e.val, true
}

// put stores val under key for the generation read before the query ran, so a write
// that committed while the query was running leaves this result already stale.
func (c *readCache) put(key string, gen uint64, val any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= readCacheMax {
		c.m = make(map[string]cached)
	}
	c.m[key] = cached{val: val, gen: gen, expires: time.Now().Add(readCacheTTL)}
}
