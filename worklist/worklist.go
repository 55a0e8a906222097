// Package worklist is the reading worklist: the studies to read, each an
// item created when a route with ready: true makes its study ready
// (routing.StudyReady), assigned at that moment to the route's reader or
// to a reader on call in the route's pool (an on-call rota), and followed
// through its states:
//
//	scheduled → in-progress (claimed, with a lock that expires) → reported
//	(its report signed) → returned (the report delivered), or cancelled.
//
// Items are durable (Badger under DATA/worklist, synced writes: an item
// the API answered with survives kill -9) and never deleted. Every
// transition is journaled (kinds worklist.*) with its user. Deadlines per
// priority and activity (claim, report) are measured from the study's
// ready time; an item not claimed (reported) escalates once per activity
// before its deadline (journal, metric, webhook, flag late), and is
// flagged overdue once the deadline passed. The checks run off the
// injected clock (Deps.Clock), on a ticker (Run) or by hand (Check).
package worklist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/routing"
	"github.com/relais-health/relais/routing/calendar"
)

// States of an item.
const (
	Scheduled  = "scheduled"
	InProgress = "in-progress"
	Reported   = "reported"
	Returned   = "returned"
	Cancelled  = "cancelled"
)

// States lists the states in workflow order.
var States = []string{Scheduled, InProgress, Reported, Returned, Cancelled}

// Activities of the SLA.
const (
	ActivityClaim  = "claim"
	ActivityReport = "report"
)

// Item is one study to read (for one route).
type Item struct {
	ID          string    `json:"id"`
	StudyUID    string    `json:"study_instance_uid"`
	Accession   string    `json:"accession_number,omitempty"`
	PatientID   string    `json:"patient_id,omitempty"`
	PatientName string    `json:"patient_name,omitempty"`
	Modalities  []string  `json:"modalities,omitempty"`
	Description string    `json:"description,omitempty"`
	Site        string    `json:"site,omitempty"`
	Route       string    `json:"route"`
	Priority    string    `json:"priority"`
	State       string    `json:"state"`
	Reader      string    `json:"reader,omitempty"` // assigned reader ("" in a pool: anyone's)
	Pool        string    `json:"pool,omitempty"`
	ClaimedBy   string    `json:"claimed_by,omitempty"`
	LockExpires time.Time `json:"lock_expires,omitzero"`
	ReadyAt     time.Time `json:"ready_at"`
	ClaimDue    time.Time `json:"claim_due"`
	ReportDue   time.Time `json:"report_due"`
	// Escalated lists the activities escalated (once each).
	Escalated []string `json:"escalated"`
	Late      bool     `json:"late"`
	Overdue   bool     `json:"overdue"`
	ReportID  string   `json:"report_id,omitempty"`
	Instances int      `json:"instances"`

	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	ClaimedAt    time.Time `json:"claimed_at,omitzero"` // first claim
	ReportedAt   time.Time `json:"reported_at,omitzero"`
	ReturnedAt   time.Time `json:"returned_at,omitzero"`
	CancelledAt  time.Time `json:"cancelled_at,omitzero"`
	CancelReason string    `json:"cancel_reason,omitempty"`
	// Delivered is set when the report's delivery was seen before its
	// signature (the item goes straight from reported to returned).
	Delivered bool `json:"report_delivered,omitempty"`
}

// Open reports whether the item still waits for its reader.
func (it *Item) Open() bool { return it.State == Scheduled || it.State == InProgress }

func (it *Item) clone() *Item {
	c := *it
	c.Modalities = slices.Clone(it.Modalities)
	c.Escalated = slices.Clone(it.Escalated)
	if c.Escalated == nil {
		c.Escalated = []string{}
	}
	return &c
}

// nextDue is the deadline the item works against: the claim's while never
// claimed, then the report's.
func (it *Item) nextDue() time.Time {
	if it.ClaimedAt.IsZero() && it.State == Scheduled {
		return it.ClaimDue
	}
	return it.ReportDue
}

// ItemID is the item of a study made ready by a route (idempotent
// creation).
func ItemID(study, route string) string {
	h := sha256.Sum256([]byte(study + "\x00" + route))
	return "wl-" + hex.EncodeToString(h[:8])
}

// StudyInfo is what the worklist shows of a study.
type StudyInfo struct {
	Accession, PatientID, PatientName, Description, Site string
	Modalities                                           []string
	Instances                                            int
	// LastReceived is the last image's arrival (the ready time of a
	// stable route).
	LastReceived time.Time
}

// Reader is a professional who may read: the user of its token.
type Reader struct {
	User string
	Name string
}

// Deps are what the worklist works with.
type Deps struct {
	// Dir holds the Badger store (DATA/worklist).
	Dir      string
	Settings func() config.Worklist
	// Clock defaults to time.Now (the node's clock: RELAIS_CLOCK).
	Clock   func() time.Time
	Journal *journal.Journal
	Logger  *slog.Logger
	Metrics prometheus.Registerer
	// Study resolves a study's attributes (nil or an error: the item
	// shows what the ready event says).
	Study func(ctx context.Context, study string) (StudyInfo, error)
	// Shifts returns the shifts of a pool's rota at t (false: unknown
	// pool).
	Shifts func(pool string, t time.Time) ([]calendar.Shift, bool)
	// Readers lists the professionals (the directory's).
	Readers func() []Reader
	// Consent says whether a study may be read: known is false when no
	// telemedicine request is linked to it (then it may); otherwise a
	// request must have the patient's consent given, and claiming the
	// item is refused with why until it has. Nil: no such check.
	Consent    func(study string) (allowed, known bool, why string)
	HTTPClient *http.Client
}

// Errors of the operations.
var (
	ErrNotFound  = errors.New("no such worklist item")
	ErrConflict  = errors.New("conflict")
	ErrForbidden = errors.New("forbidden")
	ErrInvalid   = errors.New("invalid request")
)

// Worklist is the reading worklist. Create it with Open, feed it with
// Ready, OnReport and OnDelivered, run its checks with Run (or Check).
type Worklist struct {
	d     Deps
	st    *store
	log   *slog.Logger
	m     *metrics
	ready chan routing.StudyReady

	mu    sync.Mutex
	items map[string]*Item
	rr    map[string]uint64 // round-robin counters by pool

	subMu sync.Mutex
	subs  map[chan Event]struct{}

	shutdownOnce sync.Map // *http.Server → registered
	closed       chan struct{}
	closeOnce    sync.Once
	bg           sync.WaitGroup
}

// Event is a change pushed to subscribers.
type Event struct {
	Kind string `json:"kind"` // e.g. worklist.claimed
	Item *Item  `json:"item"`
}

// Open opens the store and loads the items.
func Open(d Deps) (*Worklist, error) {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Settings == nil {
		d.Settings = func() config.Worklist { return config.Worklist{} }
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	st, err := openStore(d.Dir)
	if err != nil {
		return nil, err
	}
	w := &Worklist{d: d, st: st, log: d.Logger, m: newMetrics(), ready: make(chan routing.StudyReady, 4096),
		items: map[string]*Item{}, rr: map[string]uint64{}, subs: map[chan Event]struct{}{}, closed: make(chan struct{})}
	if err := st.load(func(it *Item) { w.items[it.ID] = it }, func(pool string, n uint64) { w.rr[pool] = n }); err != nil {
		st.close()
		return nil, err
	}
	if d.Journal != nil && !st.hasWatermark() {
		// A new worklist (a new node, or one that had none): the
		// study.ready events already journaled are history, not work.
		st.setWatermark(d.Journal.LastSeq())
	}
	if d.Metrics != nil {
		if err := w.m.register(d.Metrics); err != nil {
			st.close()
			return nil, err
		}
	}
	w.mu.Lock()
	w.refreshGauges()
	w.mu.Unlock()
	return w, nil
}

// Close stops the event streams and closes the store (after Run returned).
func (w *Worklist) Close() error {
	w.closeStreams()
	w.bg.Wait()
	return w.st.close()
}

func (w *Worklist) closeStreams() {
	w.closeOnce.Do(func() { close(w.closed) })
}

func (w *Worklist) now() time.Time { return w.d.Clock().UTC() }

// Ready receives a routing engine's study.ready event (set it with
// Engine.SetOnReady). It does not block: Run creates the item.
func (w *Worklist) Ready(ev routing.StudyReady) {
	select {
	case w.ready <- ev:
	default:
		go func() { w.ready <- ev }()
	}
}

// Run creates the items of ready events and runs the checks every
// worklist.check until ctx ends. Before serving ready events it replays
// the journal's study.ready events above its watermark (events whose item
// a crash lost).
func (w *Worklist) Run(ctx context.Context) {
	w.replay(ctx)
	t := time.NewTicker(w.d.Settings().CheckInterval())
	defer t.Stop()
	var prevSeq uint64
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-w.ready:
			w.Create(ctx, ev)
		case <-t.C:
			w.Check()
			// The watermark lags one tick: every study.ready journaled
			// before the previous tick has reached Ready by now, and the
			// channel is empty, so its item exists.
			if w.d.Journal != nil && len(w.ready) == 0 {
				if prevSeq > 0 {
					w.st.setWatermark(prevSeq)
				}
				prevSeq = w.d.Journal.LastSeq()
			}
		}
	}
}

func (w *Worklist) replay(ctx context.Context) {
	if w.d.Journal == nil {
		return
	}
	from := w.st.watermark()
	n := 0
	err := w.d.Journal.Replay(ctx, from, func(ev *journal.Event) error {
		if ev.Kind != "study.ready" || len(ev.Data) == 0 {
			return nil
		}
		var sr routing.StudyReady
		if err := jsonUnmarshal(ev.Data, &sr); err != nil || sr.Study == "" || sr.Route == "" {
			return nil
		}
		if _, created := w.Create(ctx, sr); created {
			n++
		}
		return nil
	})
	if err != nil {
		w.log.Warn("worklist: journal replay failed", "err", err)
	}
	if n > 0 {
		w.log.Info("worklist: items recovered from the journal", "items", n)
	}
}

// Create puts the study of a ready event on the worklist (once per study
// and route) and assigns it; it returns the item and whether it is new.
func (w *Worklist) Create(ctx context.Context, ev routing.StudyReady) (*Item, bool) {
	id := ItemID(ev.Study, ev.Route)
	w.mu.Lock()
	if it, ok := w.items[id]; ok {
		w.mu.Unlock()
		return it.clone(), false
	}
	w.mu.Unlock()
	var info StudyInfo
	if w.d.Study != nil {
		i, err := w.d.Study(ctx, ev.Study)
		if err != nil {
			w.log.Warn("worklist: study attributes unavailable", "study", ev.Study, "err", err)
		} else {
			info = i
		}
	}
	prio := ev.Priority
	if prio == "" {
		prio = config.PriorityRoutine
	}
	readyAt := ev.Time.UTC()
	if readyAt.IsZero() {
		readyAt = w.now()
	}
	if ev.Mode == config.ModeStable && !info.LastReceived.IsZero() && info.LastReceived.Before(readyAt) {
		readyAt = info.LastReceived.UTC()
	}
	sla := w.d.Settings().SLAFor(prio)
	now := w.now()
	it := &Item{ID: id, StudyUID: ev.Study, Accession: info.Accession, PatientID: or(info.PatientID, ev.Patient), PatientName: info.PatientName,
		Modalities: info.Modalities, Description: info.Description, Site: info.Site, Route: ev.Route, Priority: prio, State: Scheduled,
		Pool: ev.Pool, ReadyAt: readyAt, ClaimDue: readyAt.Add(time.Duration(sla.Claim)), ReportDue: readyAt.Add(time.Duration(sla.Report)),
		Escalated: []string{}, Instances: max(info.Instances, ev.Instances), Created: now, Updated: now}

	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.items[id]; ok {
		return old.clone(), false
	}
	why, others := w.assign(it, ev.Reader)
	changed := []*Item{it}
	for _, o := range others {
		c := o.clone()
		c.Reader, c.Updated = it.Reader, now
		changed = append(changed, c)
	}
	rrPool, rrVal := "", uint64(0)
	if it.Pool != "" {
		rrPool, rrVal = it.Pool, w.rr[it.Pool]
	}
	if err := w.st.put(changed, rrPool, rrVal); err != nil {
		w.log.Error("worklist: item not stored", "study", ev.Study, "route", ev.Route, "err", err)
		return it.clone(), false
	}
	for _, c := range changed {
		w.items[c.ID] = c
	}
	w.m.created.WithLabelValues(prio).Inc()
	w.emit("worklist.created", it, "", fmt.Sprintf("route %q, priority %s, %d instance(s), ready %s; claim by %s, report by %s",
		ev.Route, prio, it.Instances, readyAt.Format(time.RFC3339), it.ClaimDue.Format(time.RFC3339), it.ReportDue.Format(time.RFC3339)))
	if it.Reader != "" {
		w.emit("worklist.assigned", it, "", fmt.Sprintf("to %s (%s)", it.Reader, why))
	} else {
		w.m.unassigned.WithLabelValues(it.Pool).Inc()
		w.emit("worklist.unassigned", it, "", why)
		w.log.Warn("worklist: nobody on call: the item stays in the pool, visible to every radiologist", "pool", it.Pool, "study", it.StudyUID, "priority", prio)
	}
	for _, c := range changed[1:] {
		w.emit("worklist.assigned", c, "", fmt.Sprintf("to %s (same patient as %s)", c.Reader, it.ID))
	}
	w.refreshGauges()
	return it.clone(), true
}

// assign chooses the item's reader (w.mu held) and returns why, and the
// patient's open unassigned items that follow it.
func (w *Worklist) assign(it *Item, routeReader string) (string, []*Item) {
	var unassigned []*Item
	if it.PatientID != "" {
		var same *Item
		for _, o := range w.sortedLocked() {
			if o.PatientID != it.PatientID || !o.Open() {
				continue
			}
			if o.Reader != "" && same == nil {
				same = o
			}
			if o.Reader == "" {
				unassigned = append(unassigned, o)
			}
		}
		if same != nil {
			it.Reader = same.Reader
			return fmt.Sprintf("the patient's open study %s is with %s", same.StudyUID, same.Reader), nil
		}
	}
	switch {
	case routeReader != "":
		it.Reader = routeReader
		return "the route's reader", unassigned
	case it.Pool == "":
		return "the route names no reader nor pool", nil
	}
	cands := w.onCall(it.Pool, it.ReadyAt)
	if len(cands) == 0 {
		return fmt.Sprintf("nobody of the directory on call in pool %q at %s", it.Pool, it.ReadyAt.Format(time.RFC3339)), nil
	}
	policy := w.d.Settings().AssignmentPolicy()
	if policy == config.AssignRoundRobin {
		n := w.rr[it.Pool]
		it.Reader = cands[n%uint64(len(cands))]
		w.rr[it.Pool] = n + 1
		return fmt.Sprintf("pool %q, round-robin among %s", it.Pool, strings.Join(cands, ", ")), unassigned
	}
	load := map[string]int{}
	for _, o := range w.items {
		if o.Open() && o.Reader != "" {
			load[o.Reader]++
		}
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if load[c] < load[best] {
			best = c
		}
	}
	it.Reader = best
	return fmt.Sprintf("pool %q, least loaded (%d open) among %s", it.Pool, load[best], strings.Join(cands, ", ")), unassigned
}

// onCall returns the users of the directory's professionals on call in
// pool at t, sorted.
func (w *Worklist) onCall(pool string, t time.Time) []string {
	if w.d.Shifts == nil || w.d.Readers == nil {
		return nil
	}
	shifts, ok := w.d.Shifts(pool, t)
	if !ok {
		w.log.Warn("worklist: unknown pool (calendar)", "pool", pool)
		return nil
	}
	var out []string
	for _, r := range w.d.Readers() {
		if r.User == "" {
			continue
		}
		for _, s := range shifts {
			if s.Matches(r.User) {
				out = append(out, r.User)
				break
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Get returns an item.
func (w *Worklist) Get(id string) (*Item, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	it, ok := w.items[id]
	if !ok {
		return nil, ErrNotFound
	}
	return it.clone(), nil
}

// Filter selects items for List.
type Filter struct {
	// States: empty means the open ones (scheduled, in-progress); "all"
	// every state.
	States   []string
	Priority string
	// Reader: a user (that reader's items), Me with Unassigned (the
	// caller's and the pool's unassigned), "none" (unassigned).
	Reader string
	// WithUnassigned adds the unassigned items to a Reader filter.
	WithUnassigned bool
	Late           bool
}

// List returns the items of f in reading order (STAT first, then by due
// time) and the counts per state of the items matching f but its states.
func (w *Worklist) List(f Filter) ([]*Item, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	counts := map[string]int{}
	for _, s := range States {
		counts[s] = 0
	}
	var out []*Item
	states := f.States
	if len(states) == 0 {
		states = []string{Scheduled, InProgress}
	}
	all := slices.Contains(states, "all")
	for _, it := range w.sortedLocked() {
		if f.Priority != "" && !strings.EqualFold(it.Priority, f.Priority) {
			continue
		}
		if f.Reader != "" {
			switch {
			case f.Reader == "none":
				if it.Reader != "" {
					continue
				}
			case it.Reader == f.Reader:
			case f.WithUnassigned && it.Reader == "" && it.Open():
			default:
				continue
			}
		}
		if f.Late && !it.Late && !it.Overdue {
			continue
		}
		counts[it.State]++
		if all || slices.Contains(states, it.State) {
			out = append(out, it.clone())
		}
	}
	return out, counts
}

var prioRank = map[string]int{config.PriorityStat: 0, config.PriorityUrgent: 1, config.PriorityRoutine: 2}

// sortedLocked returns the items in reading order: open before closed,
// STAT first, then by due time, then by ready time.
func (w *Worklist) sortedLocked() []*Item {
	out := make([]*Item, 0, len(w.items))
	for _, it := range w.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Open() != b.Open() {
			return a.Open()
		}
		if ra, rb := prioRank[a.Priority], prioRank[b.Priority]; ra != rb {
			return ra < rb
		}
		if da, db := a.nextDue(), b.nextDue(); !da.Equal(db) {
			return da.Before(db)
		}
		if !a.ReadyAt.Equal(b.ReadyAt) {
			return a.ReadyAt.Before(b.ReadyAt)
		}
		return a.ID < b.ID
	})
	return out
}

// update applies f to a copy of item id, stores it and publishes it with
// kind (f returns a reason to journal, or an error to refuse).
func (w *Worklist) update(id, kind, user string, f func(it *Item, now time.Time) (string, error)) (*Item, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur, ok := w.items[id]
	if !ok {
		return nil, ErrNotFound
	}
	it := cur.clone()
	now := w.now()
	reason, err := f(it, now)
	if err != nil {
		return cur.clone(), err
	}
	it.Updated = now
	if err := w.st.put([]*Item{it}, "", 0); err != nil {
		return cur.clone(), err
	}
	w.items[id] = it
	w.emit(kind, it, user, reason)
	w.refreshGauges()
	return it.clone(), nil
}

// Claim takes the item for user, with a lock of worklist.lock.
func (w *Worklist) Claim(id, user string) (*Item, error) {
	return w.update(id, "worklist.claimed", user, func(it *Item, now time.Time) (string, error) {
		switch {
		case it.State == InProgress && it.ClaimedBy == user:
			return "", fmt.Errorf("%w: you already hold this item (renew it)", ErrConflict)
		case it.State == InProgress:
			return "", fmt.Errorf("%w: claimed by %s until %s", ErrConflict, it.ClaimedBy, it.LockExpires.Format(time.RFC3339))
		case it.State != Scheduled:
			return "", fmt.Errorf("%w: the item is %s", ErrConflict, it.State)
		case it.Reader != "" && it.Reader != user:
			return "", fmt.Errorf("%w: assigned to %s (an administrator may reassign it)", ErrConflict, it.Reader)
		}
		if w.d.Consent != nil {
			if ok, known, why := w.d.Consent(it.StudyUID); known && !ok {
				return "", fmt.Errorf("%w: the study cannot be read yet: %s", ErrConflict, why)
			}
		}
		lock := w.d.Settings().LockDuration()
		it.State, it.ClaimedBy, it.LockExpires = InProgress, user, now.Add(lock)
		pool := ""
		if it.Reader == "" {
			it.Reader = user
			pool = " (taken from the pool)"
		}
		if it.ClaimedAt.IsZero() {
			it.ClaimedAt = now
			w.m.toClaim.WithLabelValues(it.Priority).Observe(now.Sub(it.ReadyAt).Seconds())
		}
		return fmt.Sprintf("lock until %s%s", it.LockExpires.Format(time.RFC3339), pool), nil
	})
}

// Renew extends the claim of its holder.
func (w *Worklist) Renew(id, user string) (*Item, error) {
	return w.update(id, "worklist.renewed", user, func(it *Item, now time.Time) (string, error) {
		if it.State != InProgress || it.ClaimedBy != user {
			return "", fmt.Errorf("%w: you do not hold this item (state %s, claimed by %q): claim it", ErrConflict, it.State, it.ClaimedBy)
		}
		it.LockExpires = now.Add(w.d.Settings().LockDuration())
		return "lock until " + it.LockExpires.Format(time.RFC3339), nil
	})
}

// Release gives the item back (scheduled, still assigned to its reader).
// admin may release another's claim.
func (w *Worklist) Release(id, user string, admin bool) (*Item, error) {
	return w.update(id, "worklist.released", user, func(it *Item, now time.Time) (string, error) {
		if it.State != InProgress || (it.ClaimedBy != user && !admin) {
			return "", fmt.Errorf("%w: you do not hold this item (state %s, claimed by %q)", ErrConflict, it.State, it.ClaimedBy)
		}
		by := it.ClaimedBy
		it.State, it.ClaimedBy, it.LockExpires = Scheduled, "", time.Time{}
		return "released (was claimed by " + by + ")", nil
	})
}

// Cancel ends the item with a reason (never deleted). admin or the
// assigned (claiming) radiologist.
func (w *Worklist) Cancel(id, user, reason string, admin bool) (*Item, error) {
	reason = strings.TrimSpace(reason)
	return w.update(id, "worklist.cancelled", user, func(it *Item, now time.Time) (string, error) {
		if reason == "" {
			return "", fmt.Errorf("%w: a cancellation needs a reason", ErrInvalid)
		}
		if !admin && it.Reader != user && it.ClaimedBy != user {
			return "", fmt.Errorf("%w: only an administrator or the assigned radiologist (%s) cancels this item", ErrForbidden, or(it.Reader, "none"))
		}
		if !it.Open() {
			return "", fmt.Errorf("%w: the item is %s", ErrConflict, it.State)
		}
		it.State, it.ClaimedBy, it.LockExpires = Cancelled, "", time.Time{}
		it.CancelledAt, it.CancelReason = now, reason
		return reason, nil
	})
}

// Assign gives the item to reader (administrators); a claim by someone
// else is released.
func (w *Worklist) Assign(id, reader, user string) (*Item, error) {
	reader = strings.TrimSpace(reader)
	return w.update(id, "worklist.assigned", user, func(it *Item, now time.Time) (string, error) {
		if reader == "" {
			return "", fmt.Errorf("%w: name the reader", ErrInvalid)
		}
		if !it.Open() {
			return "", fmt.Errorf("%w: the item is %s", ErrConflict, it.State)
		}
		prev := or(it.Reader, "the pool")
		it.Reader = reader
		extra := ""
		if it.State == InProgress && it.ClaimedBy != reader {
			extra = fmt.Sprintf("; claim of %s released", it.ClaimedBy)
			it.State, it.ClaimedBy, it.LockExpires = Scheduled, "", time.Time{}
		}
		return fmt.Sprintf("to %s (was %s), by an administrator%s", reader, prev, extra), nil
	})
}

// OnReport follows a report's change (report.Deps.OnChange): a signature
// (report.signed, report.corrected) moves the study's open items to
// reported, linked to the report.
func (w *Worklist) OnReport(kind, reportID, study, user string) {
	if kind != "report.signed" && kind != "report.corrected" {
		return
	}
	for _, id := range w.idsOf(study) {
		it, err := w.update(id, "worklist.reported", user, func(it *Item, now time.Time) (string, error) {
			if !it.Open() {
				return "", errSkip
			}
			it.State, it.ClaimedBy, it.LockExpires = Reported, "", time.Time{}
			it.ReportID, it.ReportedAt = reportID, now
			w.m.toReport.WithLabelValues(it.Priority).Observe(now.Sub(it.ReadyAt).Seconds())
			return fmt.Sprintf("report %s (%s)", reportID, kind), nil
		})
		if err == nil && it.Delivered {
			w.returned(id, "the report's delivery came first")
		}
	}
}

// OnDelivered follows the delivery queue (queue.Dispatcher.OnDelivered):
// the delivery of a report (task route "report") returns the study's
// reported items.
func (w *Worklist) OnDelivered(route, study, destination string) {
	if route != "report" || study == "" {
		return
	}
	for _, id := range w.idsOf(study) {
		w.mu.Lock()
		it := w.items[id]
		state := ""
		if it != nil {
			state = it.State
		}
		w.mu.Unlock()
		switch state {
		case Reported:
			w.returned(id, "report delivered to "+destination)
		case Scheduled, InProgress:
			w.update(id, "worklist.report_delivered", "", func(it *Item, now time.Time) (string, error) {
				if it.Delivered {
					return "", errSkip
				}
				it.Delivered = true
				return "report delivered to " + destination + " before the item was reported", nil
			})
		}
	}
}

func (w *Worklist) returned(id, why string) {
	w.update(id, "worklist.returned", "", func(it *Item, now time.Time) (string, error) {
		if it.State != Reported {
			return "", errSkip
		}
		it.State, it.ReturnedAt = Returned, now
		return why, nil
	})
}

var errSkip = errors.New("skip")

func (w *Worklist) idsOf(study string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for id, it := range w.items {
		if it.StudyUID == study {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
