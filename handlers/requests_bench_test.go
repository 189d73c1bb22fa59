package handlers

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/connectlumin/app/lumin/luminfake"
)

// benchUpstreamLatency is the sandbox's added latency per REST answer (issue 5).
const benchUpstreamLatency = 50 * time.Millisecond

// newBenchConsole connects Ada and sends 50 requests through the app; a long processing
// delay keeps all of them WAITING_FOR_PROCESSING, so every list view refreshes them.
func newBenchConsole(b *testing.B) (*consoleApp, *consoleUser) {
	b.Helper()
	a := newConsoleApp(b, consoleOpts{fake: luminfake.Options{ProcessingDelay: time.Hour}})
	ada := a.mustConnect(b, 0)
	for i := 0; i < 50; i++ {
		f := validSendForm()
		f.Set("title", "Bench "+itoa(i))
		f.Set("file_url", "https://example.com/bench.pdf")
		if p := ada.postMultipart("/requests", f, "", nil, true); p.status != http.StatusSeeOther {
			b.Fatalf("send %d: got %d", i, p.status)
		}
	}
	a.fake.SetFaults(luminfake.Faults{Latency: benchUpstreamLatency})
	return a, ada
}

func benchList(b *testing.B, concurrency int) {
	a, ada := newBenchConsole(b)
	// The worst case: every view refreshes all 25 rows. With the default 20 s freshness
	// window every view after the first would make no upstream GET at all, and the
	// benchmark would measure the store and the template instead of the refresh.
	a.srv.listFreshFor = 0
	old := listRefreshConcurrency
	listRefreshConcurrency = concurrency
	b.Cleanup(func() { listRefreshConcurrency = old })
	before := a.apiCalls(http.MethodGet, "/v1/signature_request/")
	n := 0
	for b.Loop() {
		p := ada.get("/requests")
		if p.status != http.StatusOK || p.testid("stale-badge").Length() != 0 {
			b.Fatalf("got %d with %d stale rows", p.status, p.testid("stale-badge").Length())
		}
		n++
	}
	gets := a.apiCalls(http.MethodGet, "/v1/signature_request/") - before
	b.ReportMetric(float64(gets)/float64(n), "upstream-GETs/op")
	b.ReportMetric(float64(benchUpstreamLatency.Nanoseconds()), "upstream-rtt-ns")
}

// BenchmarkRequestsList is GET /requests with 50 non-terminal requests stored (a page of
// 25 is refreshed) and 50 ms upstream latency, refreshed in parallel.
func BenchmarkRequestsList(b *testing.B) { benchList(b, refreshConcurrency) }

// BenchmarkRequestsListSequential is the same page fetched one GET at a time: the
// baseline the parallel refresh is compared with.
func BenchmarkRequestsListSequential(b *testing.B) { benchList(b, 1) }

// BenchmarkRequestDetail is one upstream round trip plus render: GET /requests/:id.
func BenchmarkRequestDetail(b *testing.B) {
	a, ada := newBenchConsole(b)
	_ = a
	p := ada.get("/requests")
	id := p.testid("request-row").First().AttrOr("data-request-id", "")
	for b.Loop() {
		if p := ada.get("/requests/" + url.PathEscape(id)); p.status != http.StatusOK {
			b.Fatalf("got %d", p.status)
		}
	}
}
