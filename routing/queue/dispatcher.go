package queue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
)

// Sender delivers instances to one destination; there is one
// implementation per protocol (DIMSESender, STOWSender) and the Dispatcher
// picks one by destination configuration. Send may be called from several
// goroutines at once (one per parallel association).
type Sender interface {
	// Send delivers items to dest over one connection or association and
	// reports one error per item: nil means accepted by the destination
	// (C-STORE success or warning; STOW-RS Referenced SOP). An error
	// wrapped with Permanent cannot be fixed by retrying on this
	// destination (no acceptable transfer syntax): the task fails over at
	// once.
	Send(ctx context.Context, dest string, items []Item) []error
}

// Item is one instance to send.
type Item struct {
	Task     *Task
	Instance *storage.Instance
	// Open returns the Part 10 bytes to send: the stored file meta then
	// the data set, coerced by the Dispatcher's Prepare when set.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// PermanentError is a failure that retrying on the same destination
// cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent for the destination.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// errInstanceGone is fatal: the instance is no longer stored.
var errInstanceGone = errors.New("instance not in the index")

// Dispatcher delivers due tasks: per destination, Associations (default 2)
// workers each take the next due tasks (STAT first, then by next try) and
// send them with the destination's Sender. A destination that is down only
// slows its own workers: every destination has its own, and ingest never
// waits on the queue.
type Dispatcher struct {
	Store        *Store
	Index        storage.Index
	Blobs        storage.Blobs
	Destinations map[string]config.Destination
	Routing      config.Routing
	// CallingAE is our AE title towards DICOM destinations that do not set
	// calling_ae.
	CallingAE string
	Journal   *journal.Journal
	Logger    *slog.Logger
	Metrics   *Metrics
	Clock     func() time.Time
	// Prepare coerces a data set before it is sent: r is the data set
	// (without file meta) in the instance's stored transfer syntax, and the
	// result must be in the same syntax. nil sends data as stored.
	Prepare func(t *Task, inst *storage.Instance, r io.Reader) (io.Reader, error)
	// Webhook raises the dead-letter alarm (routing.dead_letter_webhook).
	// nil: an HTTP POST of the JSON payload with a 5 s timeout.
	Webhook func(ctx context.Context, url string, payload any)

	// Senders overrides the Sender of destinations by name (other
	// protocols, tests); the others get one from their configuration.
	Senders map[string]Sender
	// Batch is the most tasks a worker takes per Send (default 32): small
	// enough that a STAT task waits for at most one batch of another
	// worker, while the association stays open between batches.
	Batch int
	// IdleClose is how long an idle association stays open (default 2 s).
	IdleClose time.Duration
	// Retention is how long done and cancelled tasks are kept (default 30
	// days; negative: forever); Run purges older ones every hour. Dead
	// tasks stay until an operator retries or cancels them.
	Retention time.Duration
	// MaxWait bounds a worker's sleep when nothing is due (default 30 s):
	// a safety net, Notify and next-try timers wake it normally.
	MaxWait time.Duration
	// OnDelivered, if set, is called after a task is recorded delivered
	// (the reading worklist follows its reports' deliveries). It must not
	// block.
	OnDelivered func(*Task)

	mu      sync.Mutex
	runCtx  context.Context
	stopped bool // no lane starts once set (Run is waiting for them)
	workers map[string]*destWorker
	wg      sync.WaitGroup
	hooks   sync.WaitGroup
}

// Health is the state of one destination, as seen by its workers.
type Health struct {
	Destination string    `json:"destination"`
	Protocol    string    `json:"protocol"`
	Up          bool      `json:"up"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Backlog     int       `json:"backlog"`
	// OldestAge is the age in seconds of the oldest pending task.
	OldestAge float64 `json:"oldest_age_seconds"`
}

type destWorker struct {
	name   string
	cfg    config.Destination
	sender Sender

	mu       sync.Mutex
	inflight map[string]bool
	wake     chan struct{} // closed (and replaced) by Notify
	health   Health
	// downStreak counts consecutive batches that all failed for transient
	// reasons (the destination is down); until pausedUntil (one retry
	// interval later) the lanes claim nothing, so that a down destination costs one attempt per
	// backoff interval instead of one per new instance (each with its
	// journal event, its log line and its connection attempt).
	downStreak  int
	pausedUntil time.Time
}

func (d *Dispatcher) now() time.Time {
	if d.Clock != nil {
		return d.Clock()
	}
	return time.Now()
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Logger == nil {
		return slog.Default()
	}
	return d.Logger
}

func (d *Dispatcher) policy() Policy {
	return Policy{
		RetryInitial: time.Duration(d.Routing.RetryInitial),
		RetryMax:     time.Duration(d.Routing.RetryMax),
		MaxAttempts:  d.Routing.MaxAttempts,
		FailoverAfter: func(dest string) int {
			return d.Destinations[dest].FailoverAfter
		},
	}
}

// Run starts a worker pool per destination (the configured ones and any
// that pending tasks name) and delivers until ctx ends; it then waits for
// the sends in flight, closes idle associations and returns ctx's error.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Store == nil || d.Index == nil || d.Blobs == nil {
		return errors.New("queue: Dispatcher needs Store, Index and Blobs")
	}
	d.mu.Lock()
	if d.runCtx != nil {
		d.mu.Unlock()
		return errors.New("queue: Dispatcher already running")
	}
	d.runCtx = ctx
	d.workers = map[string]*destWorker{}
	d.mu.Unlock()
	names := make([]string, 0, len(d.Destinations))
	for n := range d.Destinations {
		names = append(names, n)
	}
	pending, err := d.Store.PendingDestinations()
	if err != nil {
		return err
	}
	names = append(names, pending...)
	sort.Strings(names)
	for _, n := range names {
		d.worker(n)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.refreshLoop(ctx)
	}()
	<-ctx.Done()
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.wg.Wait()
	d.mu.Lock()
	for _, w := range d.workers {
		if c, ok := w.sender.(io.Closer); ok {
			c.Close()
		}
	}
	d.mu.Unlock()
	d.hooks.Wait()
	return ctx.Err()
}

// Notify wakes the workers of dest: new tasks are due. Safe to call before
// Run (then a no-op: Run looks at the store) and from any goroutine.
func (d *Dispatcher) Notify(dest string) {
	d.mu.Lock()
	running := d.runCtx != nil && d.runCtx.Err() == nil
	d.mu.Unlock()
	if !running {
		return
	}
	w := d.worker(dest)
	w.mu.Lock()
	close(w.wake)
	w.wake = make(chan struct{})
	w.mu.Unlock()
}

// worker returns dest's worker pool, starting it if needed.
func (d *Dispatcher) worker(dest string) *destWorker {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.workers[dest]; w != nil {
		return w
	}
	cfg, known := d.Destinations[dest]
	w := &destWorker{name: dest, cfg: cfg, inflight: map[string]bool{}, wake: make(chan struct{})}
	w.health = Health{Destination: dest, Up: true}
	w.sender = d.Senders[dest]
	switch {
	case w.sender != nil:
		w.health.Protocol = "custom"
	case !known:
		w.sender = failSender{Permanent(fmt.Errorf("unknown destination %q (not in the configuration)", dest))}
		w.health.Protocol = "unknown"
	case cfg.DICOM != nil:
		w.health.Protocol = "dimse"
		calling := cfg.DICOM.CallingAE
		if calling == "" {
			calling = d.CallingAE
		}
		if calling == "" {
			calling = "RELAIS"
		}
		w.sender = &DIMSESender{Addr: fmt.Sprintf("%s:%d", cfg.DICOM.Host, cfg.DICOM.Port), CalledAE: cfg.DICOM.AE,
			CallingAE: calling, IdleClose: d.IdleClose, Logger: d.log()}
	case cfg.DICOMweb != nil:
		w.health.Protocol = "stow-rs"
		w.sender = &STOWSender{URL: cfg.DICOMweb.URL, TokenFile: cfg.DICOMweb.TokenFile, TokenEnv: cfg.DICOMweb.TokenEnv}
	default:
		w.sender = failSender{Permanent(fmt.Errorf("destination %q has neither dicom nor dicomweb", dest))}
	}
	d.workers[dest] = w
	lanes := cfg.Associations
	if lanes <= 0 {
		lanes = 2
	}
	if d.runCtx != nil && !d.stopped {
		for i := 0; i < lanes; i++ {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.lane(d.runCtx, w)
			}()
		}
	}
	return w
}

type failSender struct{ err error }

func (f failSender) Send(_ context.Context, _ string, items []Item) []error {
	errs := make([]error, len(items))
	for i := range errs {
		errs[i] = f.err
	}
	return errs
}

// lane is one worker of a destination: claim due tasks, send, record.
func (d *Dispatcher) lane(ctx context.Context, w *destWorker) {
	batch := d.Batch
	if batch <= 0 {
		batch = 32
	}
	maxWait := d.MaxWait
	if maxWait <= 0 {
		maxWait = 30 * time.Second
	}
	for ctx.Err() == nil {
		now := d.now()
		w.mu.Lock()
		paused := w.pausedUntil.Sub(now)
		w.mu.Unlock()
		if paused > 0 {
			// Re-checked often: the clock may be injected (tests), and a
			// success on another lane lifts the pause.
			sleep(ctx, min(paused, 100*time.Millisecond))
			continue
		}
		w.mu.Lock()
		wake := w.wake
		tasks, prev, err := d.Store.Claim(w.name, now, batch, func(id string) bool { return w.inflight[id] })
		for _, t := range tasks {
			w.inflight[t.ID] = true
		}
		w.mu.Unlock()
		if err != nil {
			d.log().Error("queue: claiming tasks", "destination", w.name, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if len(tasks) == 0 {
			wait := maxWait
			w.mu.Lock()
			next, ok, _ := d.Store.NextDue(w.name, func(id string) bool { return w.inflight[id] })
			w.mu.Unlock()
			if ok {
				wait = min(wait, max(time.Millisecond, next.Sub(d.now())))
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		d.deliver(ctx, w, tasks, prev)
		w.mu.Lock()
		for _, t := range tasks {
			delete(w.inflight, t.ID)
		}
		w.mu.Unlock()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// deliver sends claimed tasks and records the outcomes.
func (d *Dispatcher) deliver(ctx context.Context, w *destWorker, tasks []*Task, prev []time.Time) {
	var items []Item
	var outs []Outcome
	redeliver := map[string]bool{}
	for i, t := range tasks {
		if !prev[i].IsZero() {
			redeliver[t.ID] = true
		}
		inst, err := d.Index.GetInstance(ctx, t.SOPInstanceUID)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				outs = append(outs, Outcome{ID: t.ID, Claimed: t.Claimed, Err: fmt.Errorf("%w: %s", errInstanceGone, t.SOPInstanceUID), Fatal: true})
				continue
			}
			outs = append(outs, Outcome{ID: t.ID, Claimed: t.Claimed, Err: fmt.Errorf("index: %w", err)})
			continue
		}
		items = append(items, Item{Task: t, Instance: inst, Open: d.opener(t, inst)})
	}
	var errs []error
	if len(items) > 0 {
		errs = w.sender.Send(ctx, w.name, items)
		if len(errs) != len(items) {
			panic(fmt.Sprintf("queue: Sender for %s returned %d errors for %d items", w.name, len(errs), len(items)))
		}
	}
	var release []string
	var releaseClaims []time.Time
	for i, it := range items {
		err := errs[i]
		if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopping: the attempt did not happen (or its outcome is unknown).
			release = append(release, it.Task.ID)
			releaseClaims = append(releaseClaims, it.Task.Claimed)
			continue
		}
		outs = append(outs, Outcome{ID: it.Task.ID, Claimed: it.Task.Claimed, Err: err, Permanent: IsPermanent(err)})
	}
	if len(release) > 0 {
		if err := d.Store.Release(release, releaseClaims); err != nil {
			d.log().Error("queue: releasing claims", "err", err)
		}
	}
	if len(outs) == 0 {
		return
	}
	now := d.now()
	res, err := d.Store.Complete(now, d.policy(), outs)
	if err != nil {
		d.log().Error("queue: recording delivery outcomes", "destination", w.name, "err", err)
		return
	}
	errByID := map[string]error{}
	for _, o := range outs {
		errByID[o.ID] = o.Err
	}
	anyOK, anyFail := false, false
	allDown := len(outs) > 0
	for _, o := range outs {
		if o.Err == nil || o.Permanent || o.Fatal || errors.Is(o.Err, errInstanceGone) {
			allDown = false
		}
	}
	var lastErr string
	for _, r := range res {
		d.report(w, r, errByID[r.Task.ID], redeliver[r.Task.ID], now)
		if r.Transition == Sent {
			anyOK = true
		} else if e := errByID[r.Task.ID]; e != nil && !errors.Is(e, errInstanceGone) {
			anyFail = true
			lastErr = e.Error()
		}
	}
	w.mu.Lock()
	w.health.LastAttempt = now
	if anyOK {
		w.health.LastSuccess = now
	}
	if anyOK || anyFail {
		w.health.Up = !anyFail
	}
	if anyFail {
		w.health.LastError = lastErr
	}
	switch {
	case anyOK:
		w.downStreak, w.pausedUntil = 0, time.Time{}
	case allDown:
		// One retry interval, not a growing one: the tasks' own backoff
		// spaces their attempts (and decides failover); the pause only
		// gathers new instances into one attempt per interval, so a STAT
		// study still fails over as fast as its tasks' backoff allows.
		w.downStreak++
		w.pausedUntil = now.Add(d.policy().Backoff(1, 0))
	}
	up := w.health.Up
	w.mu.Unlock()
	if m := d.Metrics; m != nil {
		if up {
			m.Up.WithLabelValues(w.name).Set(1)
		} else {
			m.Up.WithLabelValues(w.name).Set(0)
		}
		if anyOK {
			m.LastSuccess.WithLabelValues(w.name).Set(float64(now.UnixNano()) / 1e9)
		}
	}
}

// opener returns Item.Open for a task's instance.
func (d *Dispatcher) opener(t *Task, inst *storage.Instance) func(ctx context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		b, err := d.Blobs.Open(ctx, inst.BlobKey)
		if err != nil {
			return nil, fmt.Errorf("opening blob of %s: %w", inst.SOPInstanceUID, err)
		}
		if d.Prepare == nil {
			return b, nil
		}
		br := bufio.NewReaderSize(b, 64<<10)
		_, n, err := dicom.ReadFileMeta(br)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("reading file meta of %s: %w", inst.SOPInstanceUID, err)
		}
		body, err := d.Prepare(t, inst, br)
		if err != nil {
			b.Close()
			return nil, Permanent(fmt.Errorf("preparing %s: %w", inst.SOPInstanceUID, err))
		}
		return readCloser{io.MultiReader(io.NewSectionReader(b, 0, n), body), b.Close}, nil
	}
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// eventData is the Data of delivery.* journal events.
type eventData struct {
	Task        string   `json:"task"`
	Destination string   `json:"destination"`
	Route       string   `json:"route,omitempty"`
	Attempt     int      `json:"attempt"`
	Total       int      `json:"total_attempts,omitempty"`
	Next        string   `json:"next,omitempty"`
	NextTry     string   `json:"next_try,omitempty"`
	Priority    Priority `json:"priority"`
	Redelivery  bool     `json:"redelivery,omitempty"`
	LatencyMS   int64    `json:"latency_ms,omitempty"`
}

func (d *Dispatcher) journal(kind string, t *Task, reason string, data eventData) {
	if d.Journal == nil {
		return
	}
	data.Task, data.Route, data.Priority = t.ID, t.Route, t.Priority
	b, _ := json.Marshal(data)
	d.Journal.AppendAsync(journalEvent(kind, t, reason, "", b))
}

func journalEvent(kind string, t *Task, reason, user string, data []byte) *journal.Event {
	return &journal.Event{Kind: kind, User: user, StudyUID: t.StudyUID, SeriesUID: t.SeriesUID, SOPInstanceUID: t.SOPInstanceUID,
		Reason: reason, Data: data}
}

// report journals, counts and logs one recorded outcome.
func (d *Dispatcher) report(w *destWorker, r Result, err error, redelivery bool, now time.Time) {
	t, m, log := r.Task, d.Metrics, d.log()
	switch r.Transition {
	case Sent:
		lat := now.Sub(t.Created)
		d.journal("delivery.sent", t, "", eventData{Destination: r.From, Attempt: r.Attempt, Total: t.TotalAttempts + 1, Redelivery: redelivery, LatencyMS: lat.Milliseconds()})
		if d.OnDelivered != nil {
			d.OnDelivered(t)
		}
		if m != nil {
			m.Deliveries.WithLabelValues(r.From, "sent").Inc()
			m.Latency.WithLabelValues(r.From).Observe(lat.Seconds())
			if redelivery {
				m.Redeliveries.WithLabelValues(r.From).Inc()
			}
		}
		return
	case Stale:
		return
	}
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	if m != nil {
		m.Deliveries.WithLabelValues(r.From, "failed").Inc()
	}
	d.journal("delivery.failed", t, reason, eventData{Destination: r.From, Attempt: r.Attempt, Total: t.TotalAttempts,
		NextTry: func() string {
			if r.Transition == Retrying {
				return t.NextTry.UTC().Format(time.RFC3339Nano)
			}
			return ""
		}()})
	switch r.Transition {
	case Retrying:
		log.Warn("queue: delivery failed, will retry", "destination", r.From, "task", t.ID, "sop", t.SOPInstanceUID,
			"attempts", t.Attempts, "next_try", t.NextTry, "err", reason)
	case Failover:
		d.journal("delivery.failover", t, reason, eventData{Destination: r.From, Next: t.Destination(), Total: t.TotalAttempts})
		if m != nil {
			m.Deliveries.WithLabelValues(r.From, "failover").Inc()
		}
		log.Warn("queue: failing over", "from", r.From, "to", t.Destination(), "task", t.ID, "sop", t.SOPInstanceUID, "err", reason)
		d.Notify(t.Destination())
	case Died:
		d.journal("delivery.dead", t, reason, eventData{Destination: r.From, Total: t.TotalAttempts})
		if m != nil {
			m.Deliveries.WithLabelValues(r.From, "dead").Inc()
		}
		log.Error("queue: delivery given up (dead letter)", "destination", r.From, "task", t.ID, "route", t.Route,
			"study", t.StudyUID, "sop", t.SOPInstanceUID, "attempts", t.TotalAttempts, "err", reason)
		d.alarm(t, reason)
	}
}

// DeadLetter is the JSON payload of the dead-letter webhook.
type DeadLetter struct {
	Event       string    `json:"event"` // "delivery.dead"
	Task        *Task     `json:"task"`
	Destination string    `json:"destination"`
	Reason      string    `json:"reason"`
	Time        time.Time `json:"time"`
}

func (d *Dispatcher) alarm(t *Task, reason string) {
	url := d.Routing.DeadLetterWebhook
	if url == "" {
		return
	}
	p := DeadLetter{Event: "delivery.dead", Task: t, Destination: t.Destination(), Reason: reason, Time: d.now()}
	hook := d.Webhook
	if hook == nil {
		hook = d.postWebhook
	}
	d.hooks.Add(1)
	go func() {
		defer d.hooks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hook(ctx, url, p)
	}()
}

func (d *Dispatcher) postWebhook(ctx context.Context, url string, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		d.log().Error("queue: dead-letter webhook payload", "err", err)
		return
	}
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		d.log().Error("queue: dead-letter webhook", "url", url, "err", err)
		return
	}
	rq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(rq)
	if err != nil {
		d.log().Error("queue: dead-letter webhook failed", "url", url, "err", err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		d.log().Error("queue: dead-letter webhook refused", "url", url, "status", resp.Status)
	}
}

func (d *Dispatcher) refreshLoop(ctx context.Context) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	var lastPurge time.Time
	for {
		d.RefreshMetrics()
		if keep := d.retention(); keep > 0 && time.Since(lastPurge) > time.Hour {
			lastPurge = time.Now()
			if n, err := d.Store.Purge(ctx, d.now().Add(-keep)); err != nil && ctx.Err() == nil {
				d.log().Error("queue: purging old tasks", "err", err)
			} else if n > 0 {
				d.log().Info("queue: purged old done and cancelled tasks", "tasks", n, "retention", keep)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

func (d *Dispatcher) retention() time.Duration {
	if d.Retention == 0 {
		return 30 * 24 * time.Hour
	}
	return d.Retention
}

// RefreshMetrics updates the state and backlog gauges from the store
// (Run does it every second).
func (d *Dispatcher) RefreshMetrics() {
	states, dests, err := d.Store.Stats()
	if err != nil {
		d.log().Error("queue: stats", "err", err)
		return
	}
	var known []string
	for n := range d.Destinations {
		known = append(known, n)
	}
	d.Metrics.refresh(d.now(), states, dests, known)
}

// Health returns the health of every destination (configured ones, and
// others that pending tasks name), sorted by name.
func (d *Dispatcher) Health() ([]Health, error) {
	_, dests, err := d.Store.Stats()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n := range d.Destinations {
		names[n] = true
	}
	for n := range dests {
		names[n] = true
	}
	now := d.now()
	var out []Health
	for n := range names {
		h := Health{Destination: n, Up: true}
		d.mu.Lock()
		w := d.workers[n]
		d.mu.Unlock()
		if w != nil {
			w.mu.Lock()
			h = w.health
			w.mu.Unlock()
		} else if c, ok := d.Destinations[n]; ok {
			h.Protocol = map[bool]string{true: "dimse", false: "stow-rs"}[c.DICOM != nil]
		}
		ds := dests[n]
		h.Backlog = ds.Backlog
		if !ds.Oldest.IsZero() {
			h.OldestAge = max(0, now.Sub(ds.Oldest).Seconds())
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, nil
}
