package routing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/routing/calendar"
	"github.com/relais-health/relais/routing/queue"
	"github.com/relais-health/relais/storage"
)

// Notifier wakes the delivery workers of a destination (*queue.Dispatcher).
type Notifier interface {
	Notify(dest string)
}

// Deps are what the engine works with.
type Deps struct {
	// Index resolves studies (route test by study, priors).
	Index storage.Index
	// Journal is replayed above the engine's watermark at start, and
	// receives route.fired, study.ready and route.webhook events.
	Journal *journal.Journal
	// Queue holds the tasks and, as meta, the engine's watermark and
	// stability timers (written atomically with the tasks).
	Queue *queue.Store
	// Dispatcher is notified of new tasks (may be nil).
	Dispatcher Notifier
	// SafeSeq is ingest.Pipeline.SafeSeq: every instance event at or below
	// it has been handed to OnDurable. Nil: the journal's last sequence
	// once the channel is drained (tests).
	SafeSeq func() uint64
	// Clock defaults to time.Now (stability timers).
	Clock  func() time.Time
	Logger *slog.Logger
	// Metrics, if set, receives the engine's collectors.
	Metrics prometheus.Registerer
	// Options tune rule compilation (stroke patterns, calendar loader).
	Options Options
	// HTTPClient sends webhooks (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// OnReady, if set, receives every "study ready for reading" event
	// (the reading worklist). It must not block.
	OnReady func(StudyReady)
	// Priors fetches prior studies (nil: routes with priors log that they
	// are not fetched). See PriorsFetcher.
	Priors PriorsFetcher
	// Manifest builds and stores the study's KOS manifest and queues it to
	// the route's destinations (forward, each with the failovers behind
	// it), for routes with kos: true when they fire in stable mode. It runs
	// in the background, retried a few times. Nil: such routes log that no
	// manifest is built. See Engine.SetManifestBuilder.
	Manifest ManifestBuilder
	// Buffer is the capacity of the OnDurable channel (default 65536).
	Buffer int
	// Retention is how long a fired stable study's state is kept to handle
	// late instances (default 24h).
	Retention time.Duration
}

// PriorsFetcher brings a patient's prior studies to this node and returns
// their instances (already stored), for a route with priors.
type PriorsFetcher interface {
	FetchPriors(ctx context.Context, p config.Priors, patientID, excludeStudy string) ([]*storage.Instance, error)
}

// StudyReady is the "study ready for reading" event.
type StudyReady struct {
	Route     string    `json:"route"`
	Study     string    `json:"study"`
	Patient   string    `json:"patient,omitempty"`
	Priority  string    `json:"priority"`
	Instances int       `json:"instances"`
	Time      time.Time `json:"time"`
	// Mode is the route's mode (immediate: Time is the first instance's
	// firing; stable: the study's last instance came StableAfter earlier).
	Mode string `json:"mode,omitempty"`
	// Reader and Pool are the route's (config.Route): who reads it.
	Reader string `json:"reader,omitempty"`
	Pool   string `json:"pool,omitempty"`
}

// Engine evaluates rules for every durable instance and creates delivery
// tasks. Create it with New, feed it with OnDurable, run it with Run.
type Engine struct {
	deps  Deps
	rules atomic.Pointer[Rules]
	cfg   atomic.Pointer[config.Config]
	in    chan item
	log   *slog.Logger
	m     *engineMetrics
	reqs  chan func() // work run on the Run goroutine

	// owned by the Run goroutine
	stable map[string]*stableState
	due    map[string]*stableState       // the stable states with pending instances
	dests  map[string]config.Destination // the destinations the node started with
	wm     uint64
	lastGC time.Time

	bg       sync.WaitGroup // webhooks, priors, calendar refreshes
	bgCtx    context.Context
	bgCancel context.CancelFunc
	started  atomic.Bool
}

type item struct {
	inst *storage.Instance
	kind string
	seq  uint64
}

// Meta keys in the queue store.
const (
	metaWatermark = "routing/wm"
	metaStable    = "routing/s/" // + route \x00 study: stableState
	metaInst      = "routing/i/" // + route \x00 study \x00 sop: instState
	metaFired     = "routing/f/" // + route \x00 study: first immediate firing
)

// stableState is a (route, study) of a stable route: its settings at the
// last instance, its last arrival and its firing generation.
type stableState struct {
	Route       string          `json:"route"`
	Study       string          `json:"study"`
	Patient     string          `json:"patient,omitempty"`
	Priority    string          `json:"priority"`
	Forward     []string        `json:"forward,omitempty"`
	Failover    []string        `json:"failover,omitempty"`
	StableAfter time.Duration   `json:"stable_after"`
	Late        string          `json:"late"`
	Coerce      json.RawMessage `json:"coerce,omitempty"`
	Last        time.Time       `json:"last"`
	Pending     int             `json:"pending"`
	Gen         int             `json:"gen"`
	FiredAt     time.Time       `json:"fired_at,omitzero"`
}

func (s *stableState) key() string { return s.Route + "\x00" + s.Study }

func (s *stableState) deadline() time.Time { return s.Last.Add(s.StableAfter) }

// instState is one instance recorded for a stable (route, study).
type instState struct {
	Series string `json:"series"`
	Seq    uint64 `json:"seq"`
	Sent   bool   `json:"sent,omitempty"`
}

// New compiles cfg's routes (refusing a bad configuration with a message
// naming the rule) and returns an engine ready to Run.
func New(cfg *config.Config, deps Deps) (*Engine, error) {
	if deps.Queue == nil {
		return nil, errors.New("routing: New needs a queue store")
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Buffer <= 0 {
		deps.Buffer = 65536
	}
	if deps.Retention <= 0 {
		deps.Retention = 24 * time.Hour
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	rs, err := Compile(cfg, deps.Options)
	if err != nil {
		return nil, err
	}
	e := &Engine{deps: deps, in: make(chan item, deps.Buffer), log: deps.Logger, stable: map[string]*stableState{},
		due: map[string]*stableState{}, dests: cfg.Destinations,
		reqs: make(chan func())}
	e.rules.Store(rs)
	e.cfg.Store(cfg)
	e.bgCtx, e.bgCancel = context.WithCancel(context.Background())
	e.m = newEngineMetrics()
	if deps.Metrics != nil {
		if err := e.m.register(deps.Metrics); err != nil {
			return nil, err
		}
	}
	for _, w := range rs.Warnings {
		e.log.Warn("routing: " + w)
	}
	return e, nil
}

// Rules returns the rules in force.
func (e *Engine) Rules() *Rules { return e.rules.Load() }

// Config returns the configuration the rules in force come from.
func (e *Engine) Config() *config.Config { return e.cfg.Load() }

// Reload compiles cfg's routes and, if they compile, puts them in force.
// On error the running rules stay and the error names the rule.
// Destinations are those of the running node: a route naming a destination
// the node was not started with is refused (destinations change on
// restart).
func (e *Engine) Reload(cfg *config.Config) error {
	for _, r := range cfg.Routes {
		for _, d := range append(append([]string{}, r.Forward...), r.Failover...) {
			nd, ok1 := cfg.Destinations[d]
			od, ok2 := e.dests[d]
			if ok1 && (!ok2 || !reflect.DeepEqual(nd, od)) {
				return &RuleError{Route: r.Name, Key: "forward", Err: fmt.Errorf("destination %q is new or changed: destinations take effect at restart", d)}
			}
		}
	}
	rs, err := Compile(cfg, e.deps.Options)
	if err != nil {
		e.m.reloads.WithLabelValues("refused").Inc()
		e.log.Error("routing: reload refused; the running rules stay in force", "err", err)
		return err
	}
	e.rules.Store(rs)
	e.cfg.Store(cfg)
	e.m.reloads.WithLabelValues("ok").Inc()
	for _, w := range rs.Warnings {
		e.log.Warn("routing: " + w)
	}
	e.log.Info("routing: rules reloaded", "routes", len(rs.Rules))
	return nil
}

// Test evaluates every rule for inst without doing anything (dry run). at
// zero means the instance's arrival time.
func (e *Engine) Test(inst *storage.Instance) []Decision {
	return e.rules.Load().Test(inst, time.Time{})
}

// OnDurable receives every durable instance from ingest (set it as
// ingest.Pipeline.OnDurable). It only hands the instance to the engine's
// buffered channel; when the channel is full it waits (backpressure on
// ingest rather than a lost instance).
func (e *Engine) OnDurable(inst *storage.Instance, kind string, seq uint64) {
	select {
	case e.in <- item{inst: inst, kind: kind, seq: seq}:
	default:
		e.m.backpressure.Inc()
		e.in <- item{inst: inst, kind: kind, seq: seq}
	}
}

// Run replays the journal above the engine's watermark, then routes the
// instances OnDurable hands it and fires stable studies, until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("routing: engine already running")
	}
	// Without its state and the journal's gap routed, the engine must not
	// route live instances (it would persist a watermark past the gap):
	// retry, loudly; meanwhile ingest's instances wait in the channel.
	for i := 0; ; i++ {
		err := e.load(ctx)
		if err == nil {
			err = e.replay(ctx)
		}
		if err == nil {
			break
		}
		e.m.errors.Inc()
		e.log.Error("routing: cannot start (state or journal replay); retrying", "err", err, "attempt", i+1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(min(time.Duration(i+1)*2*time.Second, time.Minute)):
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	refresh := time.NewTicker(e.calendarRefresh())
	defer refresh.Stop()
	for {
		e.resetTimer(timer)
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			e.cycle(sctx, nil)
			cancel()
			e.bgCancel()
			e.bg.Wait()
			return nil
		case it := <-e.in:
			e.cycle(ctx, &it)
		case fn := <-e.reqs:
			fn()
		case <-timer.C:
			e.fireDue(ctx)
		case <-tick.C:
			e.cycle(ctx, nil)
			e.gc()
		case <-refresh.C:
			e.bg.Add(1)
			go func() { // a URL fetch must not hold routing
				defer e.bg.Done()
				e.refreshCalendars(ctx)
			}()
		}
	}
}

// Flush waits until every instance handed to OnDurable so far is routed
// and its tasks are in the queue (tests, and the admin API).
func (e *Engine) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case e.reqs <- func() { e.cycle(ctx, nil); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FireDue fires, now, the stable studies whose delay has passed (tests).
func (e *Engine) FireDue(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case e.reqs <- func() { e.cycle(ctx, nil); e.fireDue(ctx); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// PendingStudies lists the stable (route, study) pairs waiting to fire.
func (e *Engine) PendingStudies(ctx context.Context) ([]StudyTimer, error) {
	var out []StudyTimer
	done := make(chan struct{})
	fn := func() {
		for _, s := range e.due {
			if s.Pending > 0 {
				out = append(out, StudyTimer{Route: s.Route, Study: s.Study, Instances: s.Pending, Deadline: s.deadline(), Generation: s.Gen})
			}
		}
		close(done)
	}
	select {
	case e.reqs <- fn:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-done
	sort.Slice(out, func(i, j int) bool { return out[i].Deadline.Before(out[j].Deadline) })
	return out, nil
}

// StudyTimer is a pending stability timer.
type StudyTimer struct {
	Route      string    `json:"route"`
	Study      string    `json:"study"`
	Instances  int       `json:"instances"`
	Deadline   time.Time `json:"deadline"`
	Generation int       `json:"generation"`
}

func (e *Engine) calendarRefresh() time.Duration {
	d := 15 * time.Minute
	for _, c := range e.cfg.Load().Calendars {
		if r := time.Duration(c.Refresh); r > 0 && r < d {
			d = r
		}
	}
	if d < time.Minute {
		d = time.Minute
	}
	return d
}

type sourceReloader interface {
	Reload(context.Context) (*calendar.Rota, error)
}

func (e *Engine) refreshCalendars(ctx context.Context) {
	for name, r := range e.rules.Load().rotas {
		if s, ok := r.(sourceReloader); ok {
			if _, err := s.Reload(ctx); err != nil {
				e.log.Warn("routing: calendar refresh failed; keeping the previous rota", "calendar", name, "err", err)
			}
		}
	}
}

// load reads the watermark and the stable states from the queue store.
func (e *Engine) load(ctx context.Context) error {
	b, err := e.deps.Queue.Meta(metaWatermark)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		// First start with routing: route from now on, not the history.
		e.wm = e.safeSeq()
		if err := e.deps.Queue.PutMeta(map[string][]byte{metaWatermark: []byte(strconv.FormatUint(e.wm, 10))}); err != nil {
			return fmt.Errorf("routing: write watermark: %w", err)
		}
	case err != nil:
		return fmt.Errorf("routing: read watermark: %w", err)
	default:
		e.wm, err = strconv.ParseUint(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("routing: bad watermark %q", b)
		}
	}
	err = e.deps.Queue.MetaPrefix(metaStable, func(key string, val []byte) error {
		var s stableState
		if err := json.Unmarshal(val, &s); err != nil {
			e.log.Warn("routing: unreadable stability state dropped", "key", key, "err", err)
			return nil
		}
		e.stable[s.key()] = &s
		if s.Pending > 0 {
			e.due[s.key()] = &s
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("routing: read stability timers: %w", err)
	}
	e.m.pendingStudies.Set(float64(e.countPending()))
	return nil
}

func (e *Engine) safeSeq() uint64 {
	if e.deps.SafeSeq != nil {
		return e.deps.SafeSeq()
	}
	if e.deps.Journal != nil {
		return e.deps.Journal.LastSeq()
	}
	return 0
}

// replay routes the journal's instance events above the watermark.
func (e *Engine) replay(ctx context.Context) error {
	if e.deps.Journal == nil {
		return nil
	}
	b := e.newBatch()
	n := 0
	start := e.wm
	err := e.deps.Journal.Replay(ctx, e.wm, func(ev *journal.Event) error {
		if ev.Kind == "instance.stored" || ev.Kind == "instance.replaced" {
			var inst storage.Instance
			if err := json.Unmarshal(ev.Data, &inst); err != nil {
				return fmt.Errorf("journal seq %d: %w", ev.Seq, err)
			}
			if e.deps.Index != nil {
				if _, err := e.deps.Index.GetInstance(ctx, inst.SOPInstanceUID); errors.Is(err, storage.ErrNotFound) {
					return nil // never acknowledged (see ingest.Recover)
				}
			}
			e.process(b, &item{inst: &inst, kind: ev.Kind, seq: ev.Seq})
			n++
		}
		b.wm = ev.Seq
		if b.full() {
			if err := e.commit(ctx, b); err != nil {
				return err
			}
			b = e.newBatch()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("routing: replay: %w", err)
	}
	if err := e.commit(ctx, b); err != nil {
		return err
	}
	if n > 0 {
		e.log.Info("routing: replayed the journal above the watermark", "from", start, "instances", n)
	}
	return nil
}

// batch accumulates the tasks and meta of one transaction.
type batch struct {
	tasks   []queue.Task
	meta    map[string][]byte
	wm      uint64
	after   []func() // journal, webhooks: once committed
	touched map[string]*stableState
}

func (e *Engine) newBatch() *batch {
	return &batch{meta: map[string][]byte{}, touched: map[string]*stableState{}}
}

// get reads a meta key through the batch's own writes.
func (e *Engine) get(b *batch, key string) ([]byte, bool) {
	if v, ok := b.meta[key]; ok {
		return v, v != nil
	}
	v, err := e.deps.Queue.Meta(key)
	if err != nil {
		return nil, false
	}
	return v, true
}

// cycle routes what the channel holds and persists the watermark observed
// before draining it.
func (e *Engine) cycle(ctx context.Context, first *item) {
	safe := e.safeSeq()
	b := e.newBatch()
	if first != nil {
		e.process(b, first)
	}
	for n := len(e.in); n > 0; n-- {
		it := <-e.in
		e.process(b, &it)
		if b.full() {
			if err := e.commitRetry(ctx, b); err != nil {
				return
			}
			b = e.newBatch()
		}
	}
	if safe > e.wm {
		b.wm = safe
	}
	e.commitRetry(ctx, b)
}

// commitRetry commits, retrying while the store fails (a full disk): the
// instances are in the journal, so a crash meanwhile loses nothing.
func (e *Engine) commitRetry(ctx context.Context, b *batch) error {
	for i := 0; ; i++ {
		err := e.commit(ctx, b)
		if err == nil {
			return nil
		}
		e.m.errors.Inc()
		e.log.Error("routing: cannot write tasks; retrying", "err", err, "attempt", i+1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(min(time.Duration(i+1)*time.Second, 30*time.Second)):
		}
	}
}

func (e *Engine) commit(ctx context.Context, b *batch) error {
	if len(b.tasks) == 0 && len(b.meta) == 0 && b.wm <= e.wm {
		for _, f := range b.after {
			f()
		}
		return nil
	}
	if b.wm > e.wm {
		b.meta[metaWatermark] = []byte(strconv.FormatUint(b.wm, 10))
	}
	created, err := e.enqueue(ctx, b.tasks, b.meta)
	if err != nil {
		return err
	}
	if b.wm > e.wm {
		e.wm = b.wm
	}
	e.m.tasks.Add(float64(created))
	dests := map[string]bool{}
	for _, t := range b.tasks {
		dests[t.Destination()] = true
	}
	if e.deps.Dispatcher != nil {
		for d := range dests {
			e.deps.Dispatcher.Notify(d)
		}
	}
	for _, f := range b.after {
		f()
	}
	e.m.pendingStudies.Set(float64(e.countPending()))
	return nil
}

func (e *Engine) countPending() int { return len(e.due) }

// Batch bounds: the queue store's transactions are limited (Badger: a
// fraction of its 4 MiB memtable).
const (
	maxBatchTasks = 200
	maxBatchMeta  = 400
)

func (b *batch) full() bool { return len(b.tasks) >= maxBatchTasks || len(b.meta) >= maxBatchMeta }

// enqueue writes tasks and meta in one transaction or, when the store says
// it is too big, in several: the tasks first, then the meta with the
// stability states and the watermark last, so that a crash in between
// leaves work that the journal replay or the next firing redoes (task IDs
// are put-if-absent, instance records are idempotent).
func (e *Engine) enqueue(ctx context.Context, tasks []queue.Task, meta map[string][]byte) (int, error) {
	created, err := e.deps.Queue.Enqueue(ctx, tasks, meta)
	if err == nil || !errors.Is(err, badger.ErrTxnTooBig) || len(tasks)+len(meta) <= 1 {
		return created, err
	}
	created = 0
	for len(tasks) > 0 {
		n := min(len(tasks), 50)
		c, err := e.enqueue(ctx, tasks[:n], nil)
		created += c
		if err != nil {
			return created, err
		}
		tasks = tasks[n:]
	}
	var first, last []string
	for k := range meta {
		if k == metaWatermark || strings.HasPrefix(k, metaStable) {
			last = append(last, k)
		} else {
			first = append(first, k)
		}
	}
	sort.Strings(first)
	sort.Strings(last)
	keys := append(first, last...)
	for len(keys) > 0 {
		n := min(len(keys), 100)
		m := map[string][]byte{}
		for _, k := range keys[:n] {
			m[k] = meta[k]
		}
		if _, err := e.deps.Queue.Enqueue(ctx, nil, m); err != nil {
			return created, err
		}
		keys = keys[n:]
	}
	return created, nil
}

// TaskID is the deterministic ID of the task sending sop for route to
// dests (forward destination then failovers), generation gen.
func TaskID(route string, dests []string, sop, gen string) string {
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write([]byte(strings.Join(dests, "\x01")))
	h.Write([]byte{0})
	h.Write([]byte(sop))
	h.Write([]byte{0})
	h.Write([]byte(gen))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func priority(p string) queue.Priority {
	q, _ := queue.ParsePriority(p)
	return q
}

// tasksFor builds one task per forward destination, each with the route's
// failover list behind it.
func tasksFor(route, prio string, forward, failover []string, coerce json.RawMessage, inst instRef, gen string) []queue.Task {
	var out []queue.Task
	for _, f := range forward {
		dests := append([]string{f}, failover...)
		out = append(out, queue.Task{ID: TaskID(route, dests, inst.sop, gen), Route: route, Priority: priority(prio),
			Destinations: dests, StudyUID: inst.study, SeriesUID: inst.series, SOPInstanceUID: inst.sop, Coerce: coerce})
	}
	return out
}

type instRef struct{ study, series, sop string }

// process routes one instance into the batch.
func (e *Engine) process(b *batch, it *item) {
	rs := e.rules.Load()
	inst := it.inst
	if inst.Source.Channel == storage.ChannelGenerated {
		// Built by Relais (manifest, report): its builder enqueues it
		// where it must go; a rule would resend studies for it.
		return
	}
	e.m.evaluated.Inc()
	decisions := rs.Evaluate(inst, time.Time{})
	for _, d := range decisions {
		if d.Err != "" {
			e.log.Warn("routing: rule evaluation failed", "route", d.Route, "sop", inst.SOPInstanceUID, "err", d.Err)
		}
	}
	ref := instRef{inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID}
	for _, d := range decisions {
		r := d.rule
		coerce := r.coerce
		if r.Mode == config.ModeImmediate {
			gen := "0"
			if it.kind == "instance.replaced" {
				gen = "r" + strconv.FormatUint(it.seq, 10)
			}
			b.tasks = append(b.tasks, tasksFor(r.Name, r.Priority, r.Forward, r.Failover, coerce, ref, gen)...)
			fk := metaFired + r.Name + "\x00" + inst.StudyInstanceUID
			first := false
			if _, ok := e.get(b, fk); !ok {
				first = true
				b.meta[fk] = []byte(inst.ReceivedAt.UTC().Format(time.RFC3339Nano))
			}
			e.m.fired.WithLabelValues(r.Name, r.Mode).Inc()
			ev := &journal.Event{Kind: "route.fired", StudyUID: inst.StudyInstanceUID, SeriesUID: inst.SeriesInstanceUID,
				SOPInstanceUID: inst.SOPInstanceUID, AE: inst.Source.CallingAE,
				Reason: fmt.Sprintf("route %q (immediate, %s) → %s; %s", r.Name, r.Priority, strings.Join(r.Forward, ", "), d.Why),
				Data:   firedData(r.Name, inst.StudyInstanceUID, r.Mode, r.Priority, 1, r.Forward)}
			rule := r
			b.after = append(b.after, func() {
				e.journal(ev)
				if first {
					e.studyActions(rule.Name, rule.Priority, rule.Route, inst.StudyInstanceUID, inst.PatientID, []string{inst.SOPInstanceUID}, true)
				}
			})
			continue
		}
		e.recordStable(b, r, inst, it)
	}
}

func firedData(route, study, mode, prio string, n int, dests []string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"route": route, "study": study, "mode": mode, "priority": prio, "instances": n, "destinations": dests})
	return b
}

// recordStable records the instance as pending for the (route, study) and
// pushes the study's deadline back.
func (e *Engine) recordStable(b *batch, r *Rule, inst *storage.Instance, it *item) {
	key := r.Name + "\x00" + inst.StudyInstanceUID
	ik := metaInst + key + "\x00" + inst.SOPInstanceUID
	var is instState
	known := false
	if v, ok := e.get(b, ik); ok && json.Unmarshal(v, &is) == nil {
		if is.Seq >= it.seq {
			// Already recorded (a replay). Its study state was written
			// with it or after it; should it be missing (a split write
			// cut by a crash), rebuild it.
			if e.stable[key] == nil {
				st := &stableState{Route: r.Name, Study: inst.StudyInstanceUID, Patient: inst.PatientID, Priority: r.Priority,
					Forward: r.Forward, Failover: r.Failover, StableAfter: r.StableAfter, Late: r.Late, Coerce: r.coerce, Last: inst.ReceivedAt}
				if !is.Sent {
					st.Pending = 1
					e.due[key] = st
				}
				e.stable[key] = st
				sv, _ := json.Marshal(st)
				b.meta[metaStable+key] = sv
			}
			return
		}
		known = !is.Sent // still pending: a newer version replaces it
	}
	is = instState{Series: inst.SeriesInstanceUID, Seq: it.seq}
	iv, _ := json.Marshal(is)
	b.meta[ik] = iv
	st := e.stable[key]
	if st == nil {
		st = &stableState{Route: r.Name, Study: inst.StudyInstanceUID}
		e.stable[key] = st
	}
	st.Patient = inst.PatientID
	st.Priority, st.Forward, st.Failover, st.StableAfter, st.Late, st.Coerce = r.Priority, r.Forward, r.Failover, r.StableAfter, r.Late, r.coerce
	if inst.ReceivedAt.After(st.Last) {
		st.Last = inst.ReceivedAt
	}
	if !known {
		st.Pending++
	}
	e.due[key] = st
	sv, _ := json.Marshal(st)
	b.meta[metaStable+key] = sv
}

func (e *Engine) resetTimer(t *time.Timer) {
	next := time.Time{}
	for _, s := range e.due {
		if s.Pending > 0 && (next.IsZero() || s.deadline().Before(next)) {
			next = s.deadline()
		}
	}
	d := time.Hour
	if !next.IsZero() {
		d = next.Sub(e.deps.Clock())
		if d < 0 {
			d = 0
		}
		d += time.Millisecond
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// fireDue fires every stable study whose delay has passed.
func (e *Engine) fireDue(ctx context.Context) {
	now := e.deps.Clock()
	var due []*stableState
	for _, s := range e.due {
		if s.Pending > 0 && !now.Before(s.deadline()) {
			due = append(due, s)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].deadline().Before(due[j].deadline()) })
	for _, s := range due {
		if err := e.fire(ctx, s); err != nil {
			e.m.errors.Inc()
			e.log.Error("routing: firing a stable study failed; will retry", "route", s.Route, "study", s.Study, "err", err)
			s.Last = now // retry after another delay
			return
		}
	}
}

// fire creates the study's tasks and marks its instances sent, in one
// transaction with the state.
func (e *Engine) fire(ctx context.Context, s *stableState) error {
	key := s.key()
	prefix := metaInst + key + "\x00"
	type rec struct {
		sop string
		is  instState
	}
	var recs []rec
	err := e.deps.Queue.MetaPrefix(prefix, func(k string, v []byte) error {
		var is instState
		if json.Unmarshal(v, &is) != nil {
			return nil
		}
		recs = append(recs, rec{strings.TrimPrefix(k, prefix), is})
		return nil
	})
	if err != nil {
		return err
	}
	resend := s.Gen > 0 && s.Late == config.LateResend
	gen := "g" + strconv.Itoa(s.Gen)
	b := e.newBatch()
	var sops []string
	for _, r := range recs {
		if r.is.Sent && !resend {
			continue
		}
		sops = append(sops, r.sop)
		b.tasks = append(b.tasks, tasksFor(s.Route, s.Priority, s.Forward, s.Failover, s.Coerce, instRef{s.Study, r.is.Series, r.sop}, gen)...)
		if !r.is.Sent {
			r.is.Sent = true
			v, _ := json.Marshal(r.is)
			b.meta[prefix+r.sop] = v
		}
		// A large study goes in several transactions: a crash between
		// them leaves the unsent instances pending (and the same
		// generation), so the study fires again for them only.
		if b.full() {
			if err := e.commit(ctx, b); err != nil {
				return err
			}
			b = e.newBatch()
		}
	}
	next := *s
	next.Gen++
	next.Pending = 0
	next.FiredAt = e.deps.Clock()
	sv, _ := json.Marshal(&next)
	b.meta[metaStable+key] = sv
	if err := e.commit(ctx, b); err != nil {
		return err
	}
	*s = next
	delete(e.due, key)
	mode := "stable"
	if next.Gen > 1 {
		mode = "stable (late instances, " + s.Late + ")"
	}
	e.m.fired.WithLabelValues(s.Route, config.ModeStable).Inc()
	e.journal(&journal.Event{Kind: "route.fired", StudyUID: s.Study,
		Reason: fmt.Sprintf("route %q (%s, %s) → %s: %d instance(s)", s.Route, mode, s.Priority, strings.Join(s.Forward, ", "), len(sops)),
		Data:   firedData(s.Route, s.Study, config.ModeStable, s.Priority, len(sops), s.Forward)})
	e.log.Info("routing: stable study fired", "route", s.Route, "study", s.Study, "instances", len(sops), "generation", next.Gen)
	var route config.Route
	if r := e.ruleByName(s.Route); r != nil {
		route = r.Route
	}
	if next.Gen > 1 {
		route.Priors = nil // fetched with the study's first firing
	}
	e.studyActions(s.Route, s.Priority, route, s.Study, s.Patient, sops, false)
	return nil
}

func (e *Engine) ruleByName(name string) *Rule {
	for _, r := range e.rules.Load().Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// gc forgets fired studies after the retention (late instances after it
// start a new stability window), and the first-firing markers of
// immediate routes (webhook, ready, priors once per study) after it.
func (e *Engine) gc() {
	now := e.deps.Clock()
	if now.Sub(e.lastGC) >= 10*time.Minute {
		e.lastGC = now
		del := map[string][]byte{}
		e.deps.Queue.MetaPrefix(metaFired, func(k string, v []byte) error {
			if t, err := time.Parse(time.RFC3339Nano, string(v)); err == nil && now.Sub(t) > e.deps.Retention {
				del[k] = nil
			}
			return nil
		})
		if len(del) > 0 {
			if err := e.deps.Queue.PutMeta(del); err != nil {
				e.log.Warn("routing: forgetting immediate firings failed", "err", err)
			}
		}
	}
	for key, s := range e.stable {
		if s.Pending > 0 || s.FiredAt.IsZero() || now.Sub(s.FiredAt) < e.deps.Retention {
			continue
		}
		del := map[string][]byte{metaStable + key: nil}
		prefix := metaInst + key + "\x00"
		e.deps.Queue.MetaPrefix(prefix, func(k string, _ []byte) error { del[k] = nil; return nil })
		if err := e.deps.Queue.PutMeta(del); err != nil {
			e.log.Warn("routing: forgetting a fired study failed", "study", s.Study, "err", err)
			continue
		}
		delete(e.stable, key)
	}
}

func (e *Engine) journal(ev *journal.Event) {
	if e.deps.Journal != nil {
		e.deps.Journal.AppendAsync(ev)
	}
}
