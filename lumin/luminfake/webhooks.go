package luminfake

// The app-webhook sender (lumin-api.md §21): one POST per event in Lumin's payload shape,
// X-Signature = lower-case hex HMAC-SHA256(app signing secret, raw body), success only on
// 200 within 30 s, otherwise retried on Options.WebhookRetries and then dropped. Retries
// make duplicates and out-of-order arrival happen as in production.
//
// As in Lumin, events go only for users who authorized the app with a signature-request
// scope: the owner of the request must hold an unrevoked grant with sign:requests or
// sign:requests.read. EmitWebhook bypasses that check for tests.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// webhookWorkers is how many deliveries run at once; more than one so a slow receiver
// does not hold every other event back, as with a real queue.
const webhookWorkers = 2

// webhookTimeout is Lumin's success window (lumin-api.md §21).
const webhookTimeout = 30 * time.Second

// defaultWebhookRetries is Lumin's schedule (5m, 15m, 45m, 2h15m, 6h45m, 20h15m) with the
// same ratios compressed so a test sees every retry within seconds.
var defaultWebhookRetries = []time.Duration{
	100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond,
	2700 * time.Millisecond, 8100 * time.Millisecond, 24300 * time.Millisecond,
}

// webhookEvents are the event types the sandbox sends (lumin-api.md §21; cancel_failed
// has no trigger in the sandbox but EmitWebhook accepts it).
var webhookEvents = []string{
	"signature_request_created", "signature_request_viewed", "signature_request_signed",
	"signature_request_approved", "signature_request_declined", "signature_request_downloadable",
	"signature_request_invalid", "signature_request_canceled", "signature_request_cancel_failed",
	"signature_request_due_date_updated",
}

// sandboxState is the background state of the API half. Its zero value is ready; every
// field is guarded by Fake.mu except wg.
type sandboxState struct {
	stopped    bool
	timers     map[*time.Timer]struct{}
	cancel     context.CancelFunc
	deliveries []Delivery
	client     *http.Client
	sleeping   int // REST calls waiting on Faults.Latency (lets tests cancel one mid-wait)
	wg         sync.WaitGroup
}

// Delivery is one webhook delivery attempt, for tests.
type Delivery struct {
	EventType          string
	SignatureRequestID string
	Attempt            int // 1 for the first try
	Status             int // HTTP status; 0 when no response arrived
	Err                string
	GaveUp             bool // the last attempt failed and no retry is left
	Body               []byte
	Signature          string // the X-Signature sent
}

// Deliveries returns every webhook delivery attempt so far, in order.
func (f *Fake) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sandbox.deliveries)
}

// afterLocked runs fn after d unless the fake stops first; the caller holds f.mu. Timers
// are tracked so that stopWebhooks (Close) can stop them.
func (f *Fake) afterLocked(d time.Duration, fn func()) {
	st := &f.sandbox
	if st.stopped {
		return
	}
	if st.timers == nil {
		st.timers = map[*time.Timer]struct{}{}
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		f.mu.Lock()
		delete(st.timers, t) // t is set: the caller held f.mu until after AfterFunc returned
		stopped := st.stopped
		f.mu.Unlock()
		if !stopped {
			fn()
		}
	})
	st.timers[t] = struct{}{}
}

// startWebhooks starts the delivery workers (none when no WebhookURL is configured).
func (f *Fake) startWebhooks() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sandbox.stopped || f.sandbox.cancel != nil || f.opts.WebhookURL == "" {
		return
	}
	if f.events == nil {
		f.events = make(chan webhookJob, 1024)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.sandbox.cancel = cancel
	events := f.events
	for range webhookWorkers {
		f.sandbox.wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-events:
					f.deliver(ctx, j)
				}
			}
		})
	}
}

// stopWebhooks stops timers (processing, auto-sign, retries) and the workers, cancelling
// a delivery in flight, and waits for the workers to return.
func (f *Fake) stopWebhooks() {
	f.mu.Lock()
	st := &f.sandbox
	st.stopped = true
	for t := range st.timers {
		t.Stop()
	}
	clear(st.timers)
	if st.cancel != nil {
		st.cancel()
	}
	f.mu.Unlock()
	st.wg.Wait()
}

// webhookPayload is Lumin's app-webhook body (lumin-api.md §21). Signers carry `email`
// here, not `email_address`, and the times are numbers.
type webhookPayload struct {
	Event            webhookEvent   `json:"event"`
	SignatureRequest webhookRequest `json:"signature_request"`
	DetailsURL       string         `json:"details_url"`
}

type webhookEvent struct {
	EventTime     int64             `json:"event_time"`
	EventType     string            `json:"event_type"`
	EventMetadata map[string]string `json:"event_metadata"`
}

type webhookRequest struct {
	ID        string          `json:"signature_request_id"`
	Title     string          `json:"title"`
	CreatedAt int64           `json:"created_at"`
	UpdatedAt int64           `json:"updated_at"`
	ExpiresAt int64           `json:"expires_at"`
	Status    string          `json:"status"`
	Signers   []webhookSigner `json:"signers"`
}

type webhookSigner struct {
	Name       string `json:"name"`
	Email      string `json:"email"`
	Status     string `json:"status"`
	IsApproved bool   `json:"is_approved"`
}

// workspaceID is the owner's Workspace: one per user in the sandbox, stable across runs.
func workspaceID(u *User) string {
	if u == nil {
		return ""
	}
	sum := sha256.Sum256([]byte("workspace:" + u.ID))
	return hex.EncodeToString(sum[:12])
}

// payloadLocked snapshots sr as an event body; the caller holds f.mu.
func (f *Fake) payloadLocked(sr *sigRequest, eventType string) []byte {
	p := webhookPayload{
		Event: webhookEvent{
			EventTime:     millis(f.now()),
			EventType:     eventType,
			EventMetadata: map[string]string{"workspace_id": workspaceID(sr.owner)},
		},
		SignatureRequest: webhookRequest{
			ID: sr.id, Title: sr.title, Status: sr.status,
			CreatedAt: millis(sr.createdAt), UpdatedAt: millis(sr.updatedAt), ExpiresAt: millis(sr.expiresAt),
			Signers: make([]webhookSigner, 0, len(sr.signers)),
		},
		DetailsURL: f.detailsURL(sr.id),
	}
	for _, s := range sr.signers {
		p.SignatureRequest.Signers = append(p.SignatureRequest.Signers, webhookSigner{s.name, s.email, s.status, s.isApproved})
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // our own wire types always encode
	}
	return b
}

// eventLocked returns the jobs for events that just happened to sr (each body a snapshot
// of now), or nil when webhooks are off or the owner has not authorized the app. The
// caller holds f.mu and passes the jobs to dispatch after unlocking.
func (f *Fake) eventLocked(sr *sigRequest, eventTypes ...string) []webhookJob {
	if f.opts.WebhookURL == "" || !f.appAuthorizedLocked(sr.owner) {
		return nil
	}
	jobs := make([]webhookJob, 0, len(eventTypes))
	for _, t := range eventTypes {
		jobs = append(jobs, webhookJob{body: f.payloadLocked(sr, t), attempt: 1})
	}
	return jobs
}

// appAuthorizedLocked reports whether u holds a live grant that covers signature requests
// (lumin-api.md §21: "events only for users who authorized the app and only within
// granted scopes"); the caller holds f.mu.
func (f *Fake) appAuthorizedLocked(u *User) bool {
	if u == nil {
		return false
	}
	ok := func(g *grant) bool {
		return g != nil && !g.revoked && g.user != nil && g.user.ID == u.ID &&
			(g.hasScope("sign:requests") || g.hasScope("sign:requests.read"))
	}
	for _, t := range f.access {
		if ok(t.grant) {
			return true
		}
	}
	for _, t := range f.refresh {
		if ok(t.grant) {
			return true
		}
	}
	return false
}

// dispatch queues jobs without blocking; a full queue drops the event (recorded).
func (f *Fake) dispatch(jobs []webhookJob) {
	if len(jobs) == 0 {
		return
	}
	f.mu.Lock()
	ch, stopped := f.events, f.sandbox.stopped
	f.mu.Unlock()
	if ch == nil || stopped {
		return
	}
	for _, j := range jobs {
		select {
		case ch <- j:
		default:
			f.recordDelivery(j, 0, "queue full: event dropped", true, "")
		}
	}
}

// EmitWebhook sends an event of eventType for the request now, whether or not its owner
// authorized the app (a test hook). It fails when webhooks are off or the arguments are
// unknown.
func (f *Fake) EmitWebhook(eventType, requestID string) error {
	if !slices.Contains(webhookEvents, eventType) {
		return fmt.Errorf("luminfake: unknown webhook event type %q", eventType)
	}
	f.mu.Lock()
	sr, ok := f.requests[requestID]
	var body []byte
	if ok {
		body = f.payloadLocked(sr, eventType)
	}
	url := f.opts.WebhookURL
	f.mu.Unlock()
	switch {
	case !ok:
		return ErrUnknownRequest
	case url == "":
		return errors.New("luminfake: no WebhookURL configured")
	}
	f.dispatch([]webhookJob{{body: body, attempt: 1}})
	return nil
}

func (f *Fake) webhookClient() *http.Client {
	if f.opts.WebhookClient != nil {
		return f.opts.WebhookClient
	}
	if f.sandbox.client == nil {
		f.sandbox.client = &http.Client{
			Timeout: webhookTimeout,
			// A redirect is not a 200: it fails the delivery, as the strictest reading.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return f.sandbox.client
}

// deliver makes one attempt and schedules the next on failure.
func (f *Fake) deliver(ctx context.Context, j webhookJob) {
	f.mu.Lock()
	key := []byte(f.opts.WebhookSecret)
	if f.faults.BadWebhookSignature {
		key = append([]byte("not-the-app-secret:"), key...)
	}
	target := f.opts.WebhookURL
	client := f.webhookClient()
	retries := f.opts.WebhookRetries
	f.mu.Unlock()
	if len(retries) == 0 {
		retries = defaultWebhookRetries
	}

	mac := hmac.New(sha256.New, key)
	mac.Write(j.body)
	sig := hex.EncodeToString(mac.Sum(nil))

	status, errText := 0, ""
	rctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, target, bytes.NewReader(j.body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature", sig)
		req.Header.Set("User-Agent", "LuminSandbox-Webhooks/1.0")
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			status = resp.StatusCode
		}
	}
	cancel()
	if err != nil {
		errText = err.Error()
	}
	if ctx.Err() != nil {
		return // stopping: the attempt was cut short, not failed
	}
	done := status == http.StatusOK
	gaveUp := !done && j.attempt > len(retries)
	f.recordDelivery(j, status, errText, gaveUp, sig)
	if done || gaveUp {
		return
	}
	next := webhookJob{body: j.body, attempt: j.attempt + 1}
	f.mu.Lock()
	f.afterLocked(retries[j.attempt-1], func() { f.dispatch([]webhookJob{next}) })
	f.mu.Unlock()
}

func (f *Fake) recordDelivery(j webhookJob, status int, errText string, gaveUp bool, sig string) {
	var head struct {
		Event struct {
			EventType string `json:"event_type"`
		} `json:"event"`
		SignatureRequest struct {
			ID string `json:"signature_request_id"`
		} `json:"signature_request"`
	}
	_ = json.Unmarshal(j.body, &head) // our own payload: always decodes
	f.mu.Lock()
	f.sandbox.deliveries = append(f.sandbox.deliveries, Delivery{
		EventType: head.Event.EventType, SignatureRequestID: head.SignatureRequest.ID,
		Attempt: j.attempt, Status: status, Err: errText, GaveUp: gaveUp, Body: j.body, Signature: sig,
	})
	f.mu.Unlock()
}

// replayEventByStatus is the one event that describes a seeded request's current state
// (Options.ReplaySeedOnConsent). WAITING_FOR_PROCESSING has none: Lumin sends
// signature_request_created only once processing is done (lumin-api.md §21).
var replayEventByStatus = map[string]string{
	statusNeedToSign: "signature_request_created",
	statusWaiting:    "signature_request_created",
	statusApproved:   "signature_request_approved",
	statusRejected:   "signature_request_declined",
	statusCancelled:  "signature_request_canceled",
	statusFailed:     "signature_request_invalid",
}

// replaySeedLocked returns the jobs that tell the app about g's user's seeded requests
// when g is that user's first grant with a signature-request scope and the option is on
// (Options.ReplaySeedOnConsent); nil otherwise. The caller holds f.mu and passes the
// jobs to dispatch after unlocking. Oldest first, as the requests were made.
func (f *Fake) replaySeedLocked(g *grant) []webhookJob {
	if !f.opts.ReplaySeedOnConsent || f.opts.WebhookURL == "" || g == nil || g.user == nil ||
		!(g.hasScope("sign:requests") || g.hasScope("sign:requests.read")) || f.replayed[g.user.ID] {
		return nil
	}
	if f.replayed == nil {
		f.replayed = map[string]bool{}
	}
	f.replayed[g.user.ID] = true
	var rs []*sigRequest
	for _, sr := range f.requests {
		if sr.seeded && sr.owner != nil && sr.owner.ID == g.user.ID && replayEventByStatus[sr.status] != "" {
			rs = append(rs, sr)
		}
	}
	slices.SortFunc(rs, func(a, b *sigRequest) int {
		if c := a.createdAt.Compare(b.createdAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	jobs := make([]webhookJob, 0, len(rs))
	for _, sr := range rs {
		jobs = append(jobs, webhookJob{body: f.payloadLocked(sr, replayEventByStatus[sr.status]), attempt: 1})
	}
	return jobs
}
