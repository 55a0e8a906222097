package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/routing/queue"
	"github.com/relais-health/relais/storage"
)

// rig is an engine over a real journal and a real queue store, in dir.
type rig struct {
	t       *testing.T
	dir     string
	cfg     *config.Config
	j       *journal.Journal
	q       *queue.Store
	e       *Engine
	safe    atomic.Uint64
	cancel  context.CancelFunc
	done    chan error
	notify  *notifyRec
	webhook func(StudyReady)
}

type notifyRec struct {
	mu sync.Mutex
	n  map[string]int
}

func (n *notifyRec) Notify(dest string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n[dest]++
}

func newRig(t *testing.T, dir, yaml string) *rig {
	t.Helper()
	r := &rig{t: t, dir: dir, cfg: testConfig(t, destsYAML+yaml), notify: &notifyRec{n: map[string]int{}}}
	r.open()
	return r
}

func (r *rig) open() {
	t := r.t
	t.Helper()
	var err error
	r.j, err = journal.Open(filepath.Join(r.dir, "journal"), journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r.q, err = queue.Open(filepath.Join(r.dir, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.safe.Load() == 0 {
		r.safe.Store(r.j.LastSeq())
	}
	r.e, err = New(r.cfg, Deps{Journal: r.j, Queue: r.q, Dispatcher: r.notify, SafeSeq: r.safe.Load, Options: rotaLoader(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan error, 1)
	go func() { r.done <- r.e.Run(ctx) }()
}

// close stops the engine and closes the stores (an orderly stop; the
// stores' state is what a kill -9 leaves too: Badger writes reach the page
// cache at each commit).
func (r *rig) close() {
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
	r.q.Close()
	r.j.Close()
}

// store journals an instance and, if handed, gives it to OnDurable as
// ingest does (then SafeSeq passes it).
func (r *rig) store(inst *storage.Instance, handed bool) uint64 {
	r.t.Helper()
	data, _ := json.Marshal(inst)
	seq, err := r.j.Append(context.Background(), &journal.Event{Kind: "instance.stored", StudyUID: inst.StudyInstanceUID, SOPInstanceUID: inst.SOPInstanceUID, Data: data})
	if err != nil {
		r.t.Fatal(err)
	}
	if handed {
		r.e.OnDurable(inst, "instance.stored", seq)
		r.safe.Store(seq)
	}
	return seq
}

func (r *rig) tasks(route string) []*queue.Task {
	r.t.Helper()
	ts, err := r.q.List(context.Background(), queue.Filter{Route: route})
	if err != nil {
		r.t.Fatal(err)
	}
	return ts
}

func (r *rig) flush() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.e.Flush(ctx); err != nil {
		r.t.Fatal(err)
	}
}

func studyInst(study string, i int, desc string, at time.Time) *storage.Instance {
	return &storage.Instance{SOPInstanceUID: fmt.Sprintf("%s.%d", study, i), StudyInstanceUID: study, SeriesInstanceUID: study + ".1",
		PatientID: "P1", ReceivedAt: at, Attrs: map[string]string{"00080060": "CT", "00081030": desc},
		Source: storage.Source{Channel: "dimse", CallingAE: "CT1"}}
}

const twoModes = `
routes:
  - {name: stroke, when: 'stroke()', priority: STAT, mode: immediate, forward: [neuro-oncall], failover: [tele-site-b]}
  - {name: routine, mode: stable, stable_after: 400ms, forward: [local-pacs, tele-site-b]}
`

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestImmediateAndStable(t *testing.T) {
	r := newRig(t, t.TempDir(), twoModes)
	defer r.close()
	now := time.Now()
	for i := 0; i < 3; i++ {
		r.store(studyInst("1.9.1", i, "AVC hyperaigu", now), true)
		r.store(studyInst("1.9.2", i, "THORAX", now), true)
	}
	r.flush()
	st := r.tasks("stroke")
	if len(st) != 3 {
		t.Fatalf("stroke tasks %d, want 3 (immediate)", len(st))
	}
	for _, tk := range st {
		if tk.Priority != queue.Stat || len(tk.Destinations) != 2 || tk.Destinations[0] != "neuro-oncall" || tk.Destinations[1] != "tele-site-b" {
			t.Errorf("stroke task %+v", tk)
		}
	}
	if n := len(r.tasks("routine")); n != 0 {
		t.Fatalf("routine tasks before stability: %d", n)
	}
	pend, _ := r.e.PendingStudies(context.Background())
	if len(pend) != 1 || pend[0].Instances != 3 {
		t.Fatalf("pending studies %+v", pend)
	}
	waitFor(t, "the stable study to fire", 5*time.Second, func() bool { return len(r.tasks("routine")) == 6 })
	// 3 instances × 2 forward destinations.
	byDest := map[string]int{}
	for _, tk := range r.tasks("routine") {
		byDest[tk.Destination()]++
	}
	if byDest["local-pacs"] != 3 || byDest["tele-site-b"] != 3 {
		t.Errorf("routine tasks by destination %v", byDest)
	}
	r.notify.mu.Lock()
	if r.notify.n["neuro-oncall"] == 0 || r.notify.n["local-pacs"] == 0 {
		t.Errorf("dispatcher not notified: %v", r.notify.n)
	}
	r.notify.mu.Unlock()
	// A late instance (policy send): only it is sent, after a new delay.
	r.store(studyInst("1.9.2", 7, "THORAX", time.Now()), true)
	waitFor(t, "the late instance", 5*time.Second, func() bool { return len(r.tasks("routine")) == 8 })
	time.Sleep(600 * time.Millisecond)
	if n := len(r.tasks("routine")); n != 8 {
		t.Errorf("after the late instance: %d tasks, want 8", n)
	}
}

func TestLateResend(t *testing.T) {
	r := newRig(t, t.TempDir(), `
routes:
  - {name: r, mode: stable, stable_after: 300ms, late: resend, forward: [local-pacs]}
`)
	defer r.close()
	for i := 0; i < 2; i++ {
		r.store(studyInst("1.9.3", i, "X", time.Now()), true)
	}
	waitFor(t, "first firing", 5*time.Second, func() bool { return len(r.tasks("r")) == 2 })
	r.store(studyInst("1.9.3", 2, "X", time.Now()), true)
	// The whole study again: 3 new tasks (generation 1).
	waitFor(t, "resend", 5*time.Second, func() bool { return len(r.tasks("r")) == 5 })
}

// TestTimersSurviveRestart: instances recorded for a stable route, the
// engine and the stores closed before the delay, reopened: the study fires
// once, with every instance.
func TestTimersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, `
routes:
  - {name: routine, mode: stable, stable_after: 1s, forward: [local-pacs]}
`)
	for i := 0; i < 4; i++ {
		r.store(studyInst("1.9.4", i, "X", time.Now()), true)
	}
	r.flush()
	if n := len(r.tasks("routine")); n != 0 {
		t.Fatalf("fired early: %d tasks", n)
	}
	r.close()
	r2 := &rig{t: t, dir: dir, cfg: r.cfg, notify: &notifyRec{n: map[string]int{}}}
	r2.open()
	defer r2.close()
	pend, err := r2.e.PendingStudies(context.Background())
	if err != nil || len(pend) != 1 || pend[0].Instances != 4 {
		t.Fatalf("pending after restart: %+v %v", pend, err)
	}
	waitFor(t, "the study to fire after restart", 5*time.Second, func() bool { return len(r2.tasks("routine")) == 4 })
	time.Sleep(300 * time.Millisecond)
	if n := len(r2.tasks("routine")); n != 4 {
		t.Errorf("%d tasks, want 4", n)
	}
	if pend, _ := r2.e.PendingStudies(context.Background()); len(pend) != 0 {
		t.Errorf("still pending: %+v", pend)
	}
}

// TestReplayAboveWatermark: instances journaled but never handed to
// OnDurable (a crash between the journal and the channel) are routed at the
// next start; replaying everything again creates nothing new.
func TestReplayAboveWatermark(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, twoModes)
	now := time.Now()
	r.store(studyInst("1.9.5", 0, "AVC", now), true)
	r.store(studyInst("1.9.6", 0, "THORAX", now), true)
	r.flush()
	// Not handed: a crash.
	r.store(studyInst("1.9.5", 1, "AVC", now), false)
	r.store(studyInst("1.9.6", 1, "THORAX", now), false)
	r.close()

	r2 := &rig{t: t, dir: dir, cfg: r.cfg, notify: &notifyRec{n: map[string]int{}}}
	r2.safe.Store(r.safe.Load()) // the journal is ahead; SafeSeq after ingest recovery
	r2.open()
	r2.flush()
	if n := len(r2.tasks("stroke")); n != 2 {
		t.Errorf("stroke tasks after replay: %d, want 2", n)
	}
	pend, _ := r2.e.PendingStudies(context.Background())
	if len(pend) != 1 || pend[0].Instances != 2 {
		t.Errorf("pending after replay: %+v", pend)
	}
	r2.close()

	// Replay the whole journal again (watermark reset): idempotent.
	q, err := queue.Open(filepath.Join(dir, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.PutMeta(map[string][]byte{metaWatermark: []byte("0")})
	q.Close()
	r3 := &rig{t: t, dir: dir, cfg: r.cfg, notify: &notifyRec{n: map[string]int{}}}
	r3.safe.Store(1)
	r3.open()
	defer r3.close()
	r3.flush()
	if n := len(r3.tasks("stroke")); n != 2 {
		t.Errorf("stroke tasks after a second replay: %d, want 2", n)
	}
	pend, _ = r3.e.PendingStudies(context.Background())
	if len(pend) != 1 || pend[0].Instances != 2 {
		t.Errorf("pending after a second replay: %+v", pend)
	}
	waitFor(t, "routine firing", 5*time.Second, func() bool { return len(r3.tasks("routine")) == 4 })
}

func TestReloadKeepsRulesOnError(t *testing.T) {
	r := newRig(t, t.TempDir(), twoModes)
	defer r.close()
	bad := testConfig(t, destsYAML+`
routes:
  - {name: broken, when: 'Modality ==', forward: [local-pacs]}
`)
	err := r.e.Reload(bad)
	if err == nil || err.Error() == "" || !contains(err.Error(), `route "broken": when:`) {
		t.Fatalf("reload error %v", err)
	}
	if got := r.e.Rules().Rules[0].Name; got != "stroke" {
		t.Errorf("rules in force after a refused reload: %s", got)
	}
	good := testConfig(t, destsYAML+`
routes:
  - {name: only, mode: immediate, forward: [local-pacs]}
`)
	if err := r.e.Reload(good); err != nil {
		t.Fatal(err)
	}
	r.store(studyInst("1.9.7", 0, "AVC", time.Now()), true)
	r.flush()
	if n := len(r.tasks("only")); n != 1 {
		t.Errorf("new rules not in force: %d", n)
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestWebhookAndReady(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m map[string]any
		json.NewDecoder(req.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer srv.Close()
	r := &rig{t: t, dir: t.TempDir(), notify: &notifyRec{n: map[string]int{}}}
	r.cfg = testConfig(t, destsYAML+fmt.Sprintf(`
routes:
  - {name: r, mode: stable, stable_after: 200ms, ready: true, webhook: %q, forward: [local-pacs]}
`, srv.URL))
	r.open()
	var ready []StudyReady
	r.e.deps.OnReady = func(s StudyReady) { mu.Lock(); ready = append(ready, s); mu.Unlock() }
	defer r.close()
	for i := 0; i < 3; i++ {
		r.store(studyInst("1.9.8", i, "X", time.Now()), true)
	}
	waitFor(t, "webhook", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 && len(ready) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if got[0]["route"] != "r" || got[0]["study"] != "1.9.8" || len(got[0]["instances"].([]any)) != 3 || got[0]["priority"] != "ROUTINE" {
		t.Errorf("webhook payload %v", got[0])
	}
	if ready[0].Instances != 3 || ready[0].Study != "1.9.8" {
		t.Errorf("ready %+v", ready[0])
	}
}

// TestCalendarRoutingChoosesDestination: arrival times (an injected
// clock: the instance's ReceivedAt) on a weekday, at night, on a weekend,
// on a public holiday and during an iCal rota shift (RRULE) choose the
// destination of the tasks.
func TestCalendarRoutingChoosesDestination(t *testing.T) {
	r := newRig(t, t.TempDir(), `
routes:
  - {name: rota, mode: immediate, when: 'oncall("pds", "Dr Night")', forward: [neuro-oncall]}
  - {name: off-hours, mode: immediate, when: 'weekend() || holiday() || night("20:00", "08:00")', forward: [tele-site-b]}
  - {name: day, mode: immediate, when: 'within("Mon-Fri 08:00-20:00")', forward: [local-pacs]}
`)
	defer r.close()
	cases := []struct{ at, want string }{
		{"2026-01-07 10:00", "local-pacs"},   // Wednesday, office hours
		{"2026-01-07 22:00", "neuro-oncall"}, // Wednesday night: Dr Night's weekly shift (RRULE)
		{"2026-01-09 06:30", "neuro-oncall"}, // Friday 06:30: Thursday night's shift
		{"2026-01-12 06:30", "tele-site-b"},  // Monday 06:30: shifts start Mon-Fri at 20:00, none on Sunday night
		{"2026-01-10 14:00", "tele-site-b"},  // Saturday
		{"2026-05-14 11:00", "tele-site-b"},  // Ascension 2026 (Thursday)
		{"2026-01-11 23:00", "tele-site-b"},  // Sunday night: no rota shift, night
	}
	for i, c := range cases {
		in := studyInst(fmt.Sprintf("1.8.%d", i), 0, "X", paris(t, c.at))
		r.store(in, true)
	}
	r.flush()
	for i, c := range cases {
		ts, err := r.q.List(context.Background(), queue.Filter{Study: fmt.Sprintf("1.8.%d", i)})
		if err != nil || len(ts) != 1 {
			t.Fatalf("%s: %d tasks, %v", c.at, len(ts), err)
		}
		if got := ts[0].Destination(); got != c.want {
			t.Errorf("%s: routed to %s (route %s), want %s", c.at, got, ts[0].Route, c.want)
		}
	}
}

// TestLargeStableStudy: a study larger than one transaction's worth of
// tasks fires whole.
func TestLargeStableStudy(t *testing.T) {
	r := newRig(t, t.TempDir(), `
routes:
  - {name: big, mode: stable, stable_after: 300ms, forward: [local-pacs]}
`)
	defer r.close()
	now := time.Now()
	for i := 0; i < 2300; i++ {
		r.store(studyInst("1.7.1", i, "X", now), true)
	}
	waitFor(t, "the large study to fire", 30*time.Second, func() bool { return len(r.tasks("big")) == 2300 })
	if pend, _ := r.e.PendingStudies(context.Background()); len(pend) != 0 {
		t.Errorf("still pending: %+v", pend)
	}
}

// TestEnqueueSplitsTooBigTransactions: a write the store refuses as too
// big goes in parts, tasks first.
func TestEnqueueSplitsTooBigTransactions(t *testing.T) {
	r := newRig(t, t.TempDir(), twoModes)
	defer r.close()
	var tasks []queue.Task
	meta := map[string][]byte{}
	for i := 0; i < 4000; i++ {
		tasks = append(tasks, tasksFor("x", "ROUTINE", []string{"local-pacs"}, nil, nil, instRef{"1.6", "1.6.1", fmt.Sprintf("1.6.1.%d", i)}, "0")...)
		meta[fmt.Sprintf("%s%d", metaInst, i)] = []byte(`{"series":"1.6.1","seq":1}`)
	}
	if _, err := r.q.Enqueue(context.Background(), tasks, meta); err == nil {
		t.Skip("the store took 4000 tasks in one transaction: nothing to split")
	}
	n, err := r.e.enqueue(context.Background(), tasks, meta)
	if err != nil || n != 4000 {
		t.Fatalf("enqueue: %d, %v", n, err)
	}
	if got := len(r.tasks("x")); got != 4000 {
		t.Errorf("%d tasks stored", got)
	}
}
