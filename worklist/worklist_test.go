package worklist

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/internal/clock"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/routing"
	"github.com/relais-health/relais/routing/calendar"
)

// A night rota: Dr Martin (cmartin) on call 20:00–08:00 every night,
// Dr Dubois (pdubois) as a second on call on Tuesday nights.
const nightICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" +
	"BEGIN:VEVENT\r\nUID:n1\r\nDTSTART;TZID=Europe/Paris:20261101T200000\r\nDTEND;TZID=Europe/Paris:20261102T080000\r\n" +
	"RRULE:FREQ=DAILY\r\nSUMMARY:PDS nuit\r\nATTENDEE;CN=Dr Claire Martin:mailto:cmartin@telerad.example\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:n2\r\nDTSTART;TZID=Europe/Paris:20261102T200000\r\nDTEND;TZID=Europe/Paris:20261103T080000\r\n" +
	"RRULE:FREQ=WEEKLY\r\nSUMMARY:PDS nuit renfort\r\nATTENDEE;CN=Dr Paul Dubois:mailto:pdubois@telerad.example\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

// night is a Tuesday 03:00 in Paris.
var night = time.Date(2026, 11, 24, 3, 0, 0, 0, calendar.Paris())

type env struct {
	t    *testing.T
	w    *Worklist
	clk  *clock.Fake
	j    *journal.Journal
	reg  *prometheus.Registry
	cfg  config.Worklist
	mu   sync.Mutex
	dir  string
	rota *calendar.Rota
}

func newEnv(t *testing.T, cfg config.Worklist) *env {
	t.Helper()
	e := &env{t: t, clk: clock.NewFake(night), cfg: cfg, dir: t.TempDir(), rota: calendar.MustParseRota(nightICS, calendar.Paris())}
	j, err := journal.Open(t.TempDir(), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	e.j = j
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	w, err := Open(Deps{Dir: e.dir, Settings: func() config.Worklist { e.mu.Lock(); defer e.mu.Unlock(); return e.cfg },
		Clock: e.clk.Now, Journal: e.j, Metrics: e.reg,
		Study: func(ctx context.Context, uid string) (StudyInfo, error) {
			return StudyInfo{Accession: "ACC-" + uid, Modalities: []string{"CT"}, Instances: 3}, nil
		},
		Shifts: func(pool string, t time.Time) ([]calendar.Shift, bool) {
			if pool != "pds" {
				return nil, false
			}
			return e.rota.At(t), true
		},
		Readers: func() []Reader {
			return []Reader{{User: "cmartin"}, {User: "pdubois"}, {User: "jleroy"}}
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.w = w
	e.t.Cleanup(func() { w.Close() })
}

func (e *env) ready(study, patient, prio, pool, reader string) *Item {
	e.t.Helper()
	it, _ := e.w.Create(context.Background(), routing.StudyReady{Route: "r-" + prio, Study: study, Patient: patient, Priority: prio,
		Time: e.clk.Now(), Mode: config.ModeImmediate, Pool: pool, Reader: reader, Instances: 1})
	return it
}

func (e *env) kinds(kind string) []*journal.Event {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []*journal.Event
		e.j.Replay(context.Background(), 0, func(ev *journal.Event) error {
			if ev.Kind == kind {
				out = append(out, ev)
			}
			return nil
		})
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPoolAssignmentOnCallAndStatFirst(t *testing.T) {
	e := newEnv(t, config.Worklist{})
	// Monday 10:00: nobody on call in the night rota.
	e.clk.Advance(-17 * time.Hour)
	routine := e.ready("1.1", "P1", config.PriorityRoutine, "pds", "")
	if routine.Reader != "" {
		t.Fatalf("daytime item assigned to %q; want it unassigned in the pool", routine.Reader)
	}
	if evs := e.kinds("worklist.unassigned"); len(evs) != 1 {
		t.Fatalf("%d worklist.unassigned events", len(evs))
	}
	if v := counterValue(e.w.m.unassigned.WithLabelValues("pds")); v != 1 {
		t.Fatalf("relais_worklist_unassigned_total{pool=pds} = %v", v)
	}
	e.clk.Advance(17 * time.Hour) // Tuesday 03:00: Dr Martin and Dr Dubois on call
	stat := e.ready("2.2", "P2", config.PriorityStat, "pds", "")
	if stat.Reader != "cmartin" && stat.Reader != "pdubois" {
		t.Fatalf("night STAT item assigned to %q; want a reader on call", stat.Reader)
	}
	if !stat.ReportDue.Equal(night.UTC().Add(20*time.Minute)) || !stat.ClaimDue.Equal(night.UTC().Add(5*time.Minute)) {
		t.Fatalf("STAT dues %s / %s; want ready + 5m / + 20m", stat.ClaimDue, stat.ReportDue)
	}
	items, counts := e.w.List(Filter{})
	if len(items) != 2 || items[0].ID != stat.ID || items[1].ID != routine.ID || counts[Scheduled] != 2 {
		t.Fatalf("list: %v counts %v; want the STAT item first, above the older ROUTINE one", ids(items), counts)
	}
	// The routine item, unassigned, is on everyone's list ("me").
	mine, _ := e.w.List(Filter{Reader: "jleroy", WithUnassigned: true})
	if len(mine) != 1 || mine[0].ID != routine.ID {
		t.Fatalf("jleroy's list: %v; want the unassigned pool item only", ids(mine))
	}
	// Idempotent per study and route.
	again := e.ready("2.2", "P2", config.PriorityStat, "pds", "")
	if again.ID != stat.ID || len(e.w.items) != 2 {
		t.Fatalf("a second ready event created another item")
	}
}

func ids(items []*Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID+":"+it.Priority+":"+it.Reader)
	}
	return out
}

func TestLeastLoadedRoundRobinAndPatientStickiness(t *testing.T) {
	e := newEnv(t, config.Worklist{})
	// Least loaded: cmartin and pdubois alternate as their loads grow.
	a := e.ready("3.1", "PA", config.PriorityUrgent, "pds", "")
	b := e.ready("3.2", "PB", config.PriorityUrgent, "pds", "")
	if a.Reader == b.Reader {
		t.Fatalf("least-loaded gave both items to %s", a.Reader)
	}
	// The same patient's next study goes to the same reader, whatever the load.
	a2 := e.ready("3.3", "PA", config.PriorityRoutine, "pds", "")
	a3 := e.ready("3.4", "PA", config.PriorityStat, "pds", "")
	if a2.Reader != a.Reader || a3.Reader != a.Reader {
		t.Fatalf("patient PA's studies went to %s, %s, %s; want all with %s", a.Reader, a2.Reader, a3.Reader, a.Reader)
	}
	c := e.ready("3.5", "PC", config.PriorityRoutine, "pds", "")
	if c.Reader != b.Reader {
		t.Fatalf("least-loaded: %s has 3 open items, %s 1; the next went to %s", a.Reader, b.Reader, c.Reader)
	}
	// A named reader on the route wins over the pool.
	if d := e.ready("3.6", "PD", config.PriorityRoutine, "", "jleroy"); d.Reader != "jleroy" {
		t.Fatalf("route reader: %q", d.Reader)
	}

	// Round-robin: strictly alternating, whatever the load.
	e.mu.Lock()
	e.cfg.Assignment = config.AssignRoundRobin
	e.mu.Unlock()
	var got []string
	for i, s := range []string{"4.1", "4.2", "4.3", "4.4"} {
		got = append(got, e.ready(s, "RR"+s, config.PriorityRoutine, "pds", "").Reader)
		_ = i
	}
	if got[0] == got[1] || got[0] != got[2] || got[1] != got[3] {
		t.Fatalf("round-robin gave %v", got)
	}
	// A patient's unassigned study follows its reader once one is assigned.
	e.clk.Advance(7 * time.Hour) // Tuesday 10:00: nobody on call
	u := e.ready("5.1", "PU", config.PriorityRoutine, "pds", "")
	if u.Reader != "" {
		t.Fatalf("daytime: %q", u.Reader)
	}
	v := e.ready("5.2", "PU", config.PriorityRoutine, "", "jleroy")
	if v.Reader != "jleroy" {
		t.Fatal(v.Reader)
	}
	if it, _ := e.w.Get(u.ID); it.Reader != "jleroy" {
		t.Fatalf("the patient's unassigned study stayed with %q; want jleroy", it.Reader)
	}
}

func TestClaimNeedsConsentWhenARequestIsLinked(t *testing.T) {
	e := newEnv(t, config.Worklist{})
	consent := map[string]string{"7.1": "awaiting the patient's consent", "7.2": ""}
	e.w.d.Consent = func(study string) (bool, bool, string) {
		why, known := consent[study]
		return known && why == "", known, why
	}
	for _, tc := range []struct {
		study string
		ok    bool
	}{{"7.1", false}, {"7.2", true}, {"7.3", true}} {
		it := e.ready(tc.study, "P"+tc.study, config.PriorityStat, "", "cmartin")
		_, err := e.w.Claim(it.ID, "cmartin")
		if tc.ok != (err == nil) || (!tc.ok && (!errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "consent"))) {
			t.Errorf("study %s: claim %v, want ok=%v", tc.study, err, tc.ok)
		}
		if g, _ := e.w.Get(it.ID); tc.ok != (g.State == InProgress) {
			t.Errorf("study %s: state %s", tc.study, g.State)
		}
	}
	consent["7.1"] = ""
	if _, err := e.w.Claim(worklistItemID(e, "7.1"), "cmartin"); err != nil {
		t.Fatalf("claim once the consent is recorded: %v", err)
	}
}

func worklistItemID(e *env, study string) string {
	items, _ := e.w.List(Filter{States: []string{"all"}})
	for _, it := range items {
		if it.StudyUID == study {
			return it.ID
		}
	}
	e.t.Fatalf("no item for %s", study)
	return ""
}

func TestClaimConflictLockRenewAndExpiry(t *testing.T) {
	e := newEnv(t, config.Worklist{Lock: config.Duration(2 * time.Minute)})
	it := e.ready("6.1", "P6", config.PriorityStat, "", "cmartin")
	if _, err := e.w.Claim(it.ID, "pdubois"); !errors.Is(err, ErrConflict) {
		t.Fatalf("another radiologist claiming an item assigned to cmartin: %v; want a conflict", err)
	}
	c, err := e.w.Claim(it.ID, "cmartin")
	if err != nil || c.State != InProgress || c.ClaimedBy != "cmartin" || !c.LockExpires.Equal(e.clk.Now().UTC().Add(2*time.Minute)) {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if _, err := e.w.Assign(it.ID, "pdubois", "admin"); err != nil {
		t.Fatal(err)
	}
	// Reassigned: the claim of cmartin was released; pdubois claims, cmartin is refused.
	if _, err := e.w.Claim(it.ID, "pdubois"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.Claim(it.ID, "cmartin"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "pdubois") {
		t.Fatalf("claim of a claimed item: %v; want a conflict naming the holder", err)
	}
	e.clk.Advance(90 * time.Second)
	if _, err := e.w.Renew(it.ID, "cmartin"); !errors.Is(err, ErrConflict) {
		t.Fatalf("renew by a non-holder: %v", err)
	}
	r, err := e.w.Renew(it.ID, "pdubois")
	if err != nil || !r.LockExpires.Equal(e.clk.Now().UTC().Add(2*time.Minute)) {
		t.Fatalf("renew: %+v %v", r, err)
	}
	e.clk.Advance(119 * time.Second)
	e.w.Check()
	if g, _ := e.w.Get(it.ID); g.State != InProgress {
		t.Fatalf("lock expired early: %s", g.State)
	}
	e.clk.Advance(time.Second)
	e.w.Check()
	g, _ := e.w.Get(it.ID)
	if g.State != Scheduled || g.ClaimedBy != "" || g.Reader != "pdubois" {
		t.Fatalf("after the lock expired: %s claimed by %q reader %q; want scheduled, still pdubois's", g.State, g.ClaimedBy, g.Reader)
	}
	if evs := e.kinds("worklist.lock_expired"); len(evs) != 1 || evs[0].User != "pdubois" {
		t.Fatalf("lock_expired events: %+v", evs)
	}
	// Release, cancel.
	if _, err := e.w.Claim(it.ID, "pdubois"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.Release(it.ID, "pdubois", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.Cancel(it.ID, "cmartin", "wrong patient", false); !errors.Is(err, ErrForbidden) {
		t.Fatalf("cancel by a radiologist not assigned: %v", err)
	}
	if _, err := e.w.Cancel(it.ID, "pdubois", "", false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cancel without a reason: %v", err)
	}
	x, err := e.w.Cancel(it.ID, "pdubois", "examen annulé", false)
	if err != nil || x.State != Cancelled || x.CancelReason != "examen annulé" {
		t.Fatalf("cancel: %+v %v", x, err)
	}
	if _, err := e.w.Get(it.ID); err != nil {
		t.Fatal("a cancelled item must stay")
	}
}

func TestEscalationBeforeDeadlineWithFakeClock(t *testing.T) {
	var mu sync.Mutex
	var hooks []Escalation
	fails := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var e Escalation
		json.NewDecoder(r.Body).Decode(&e)
		hooks = append(hooks, e)
	}))
	defer srv.Close()
	e := newEnv(t, config.Worklist{EscalateBefore: "2m", EscalationWebhook: srv.URL,
		SLA: map[string]config.SLA{config.PriorityStat: {Claim: config.Duration(5 * time.Minute), Report: config.Duration(20 * time.Minute)}}})
	it := e.ready("7.1", "P7", config.PriorityStat, "pds", "")
	e.clk.Advance(2*time.Minute + 59*time.Second)
	e.w.Check()
	if g, _ := e.w.Get(it.ID); g.Late || len(g.Escalated) != 0 {
		t.Fatalf("escalated at 2m59s (deadline 5m, lead 2m): %+v", g)
	}
	e.clk.Advance(time.Second) // 3m: deadline minus 2m
	e.w.Check()
	g, _ := e.w.Get(it.ID)
	if !g.Late || !slices.Equal(g.Escalated, []string{ActivityClaim}) || g.Overdue {
		t.Fatalf("at 3m: late %v escalated %v overdue %v; want late, claim escalated, not overdue", g.Late, g.Escalated, g.Overdue)
	}
	e.clk.Advance(30 * time.Second)
	e.w.Check() // once per activity
	if v := counterValue(e.w.m.escalations.WithLabelValues(config.PriorityStat, ActivityClaim)); v != 1 {
		t.Fatalf("relais_worklist_escalations_total{STAT,claim} = %v; want 1", v)
	}
	evs := e.kinds("worklist.escalated")
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "claim") || evs[0].StudyUID != "7.1" {
		t.Fatalf("journal: %+v", evs)
	}
	e.clk.Advance(90 * time.Second) // 5m: the claim deadline passed
	e.w.Check()
	if g, _ := e.w.Get(it.ID); !g.Overdue {
		t.Fatal("not overdue after the claim deadline")
	}
	if _, err := e.w.Claim(it.ID, "cmartin"); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(13 * time.Minute) // 18m: report deadline (20m) minus 2m
	e.w.Check()
	if g, _ := e.w.Get(it.ID); !slices.Equal(g.Escalated, []string{ActivityClaim, ActivityReport}) {
		t.Fatalf("report escalation: %v", g.Escalated)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(hooks)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooks) != 2 || hooks[0].Activity == hooks[1].Activity || hooks[0].Item == nil || hooks[0].Item.ID != it.ID {
		t.Fatalf("webhooks: %+v; want one per activity (the first retried)", hooks)
	}
	if evs := e.kinds("worklist.webhook"); len(evs) < 1 || evs[0].Status != "200" {
		t.Fatalf("webhook journal: %+v", evs)
	}
}

func TestEscalationLeadFraction(t *testing.T) {
	w := config.Worklist{EscalateBefore: "25%"}
	if got := w.EscalationLead(20 * time.Minute); got != 5*time.Minute {
		t.Fatalf("25%% of 20m = %s", got)
	}
	if got := (config.Worklist{}).EscalationLead(5 * time.Minute); got != 150*time.Second {
		t.Fatalf("default 5m lead on a 5m delay = %s; want capped at half", got)
	}
}

func TestReportedReturnedAndDurable(t *testing.T) {
	e := newEnv(t, config.Worklist{})
	it := e.ready("8.1", "P8", config.PriorityStat, "", "cmartin")
	other := e.ready("8.2", "P9", config.PriorityRoutine, "", "cmartin")
	e.w.Claim(it.ID, "cmartin")
	e.w.OnReport("report.created", "R1", "8.1", "cmartin")
	if g, _ := e.w.Get(it.ID); g.State != InProgress {
		t.Fatalf("a draft moved the item: %s", g.State)
	}
	e.clk.Advance(12 * time.Minute)
	e.w.OnReport("report.signed", "R1", "8.1", "cmartin")
	g, _ := e.w.Get(it.ID)
	if g.State != Reported || g.ReportID != "R1" || g.ClaimedBy != "" {
		t.Fatalf("after signing: %+v", g)
	}
	e.w.OnDelivered("stroke", "8.1", "pacs") // not a report
	e.w.OnDelivered("report", "8.1", "nord-pacs")
	if g, _ := e.w.Get(it.ID); g.State != Returned {
		t.Fatalf("after the report's delivery: %s", g.State)
	}
	// The delivery seen first (a race): reported then returned at once.
	e.w.OnDelivered("report", "8.2", "nord-pacs")
	e.w.OnReport("report.signed", "R2", "8.2", "cmartin")
	if g, _ := e.w.Get(other.ID); g.State != Returned {
		t.Fatalf("delivery before signature: %s", g.State)
	}
	for _, p := range []string{config.PriorityStat, config.PriorityRoutine} {
		var m dto.Metric
		e.w.m.toReport.WithLabelValues(p).(prometheus.Metric).Write(&m)
		if m.GetHistogram().GetSampleCount() != 1 {
			t.Fatalf("time to report of %s observed %d times", p, m.GetHistogram().GetSampleCount())
		}
	}
	for _, k := range []string{"worklist.created", "worklist.assigned", "worklist.claimed", "worklist.reported", "worklist.returned"} {
		if len(e.kinds(k)) == 0 {
			t.Errorf("no %s in the journal", k)
		}
	}
	if evs := e.kinds("worklist.claimed"); evs[0].User != "cmartin" {
		t.Errorf("claim journaled with user %q", evs[0].User)
	}
	// Reopen: everything is there.
	e.w.Close()
	e.open()
	g, err := e.w.Get(it.ID)
	if err != nil || g.State != Returned || g.ReportID != "R1" {
		t.Fatalf("after reopening: %+v %v", g, err)
	}
}

func TestJournalReplayRecoversLostItems(t *testing.T) {
	e := newEnv(t, config.Worklist{})
	data, _ := json.Marshal(routing.StudyReady{Route: "stroke", Study: "9.1", Priority: config.PriorityStat, Time: e.clk.Now(), Mode: config.ModeImmediate, Reader: "cmartin"})
	if _, err := e.j.Append(context.Background(), &journal.Event{Kind: "study.ready", StudyUID: "9.1", Data: data}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.w.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if it, err := e.w.Get(ItemID("9.1", "stroke")); err == nil {
			if it.Reader != "cmartin" {
				t.Fatalf("recovered item: %+v", it)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the journal's study.ready did not become an item")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestHTTPAPI(t *testing.T) {
	e := newEnv(t, config.Worklist{})
	users := map[string]auth.Principal{
		"cm": {User: "cmartin", Role: auth.RoleRadiologist}, "pd": {User: "pdubois", Role: auth.RoleRadiologist},
		"adm": {User: "admin", Role: auth.RoleAdmin}, "req": {User: "site", Role: auth.RoleRequester},
	}
	authz := func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
		p, ok := users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			auth.WriteChallenge(w, auth.ErrNoToken)
			return p, false
		}
		if !p.Can(perm) {
			auth.WriteChallenge(w, auth.ErrForbidden)
			return p, false
		}
		return p, true
	}
	srv := httptest.NewServer(e.w.Handler(authz))
	defer srv.Close()
	do := func(tok, method, path, body string) (int, []byte) {
		rq, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		rq.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// SSE subscriber first.
	rq, _ := http.NewRequest("GET", srv.URL+"/api/worklist/events", nil)
	rq.Header.Set("Authorization", "Bearer cm")
	resp, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events content type %q", ct)
	}
	events := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				json.Unmarshal([]byte(d), &m)
				events <- m
			}
		}
	}()
	it := e.ready("10.1", "P10", config.PriorityStat, "pds", "")
	select {
	case m := <-events:
		if m["id"] != it.ID || m["change"] != "worklist.created" || m["state"] != Scheduled {
			t.Fatalf("SSE event: %v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no SSE event for the new item")
	}
	code, b := do("cm", "GET", "/api/worklist?reader=me", "")
	var lr ListResponse
	if err := json.Unmarshal(b, &lr); code != 200 || err != nil || len(lr.Items) != 1 || lr.Counts[Scheduled] != 1 {
		t.Fatalf("GET list: %d %s", code, b)
	}
	holder := lr.Items[0].Reader
	otherTok, holderTok := "pd", "cm"
	if holder == "pdubois" {
		otherTok, holderTok = "cm", "pd"
	}
	if code, b := do(otherTok, "POST", "/api/worklist/"+it.ID+"/claim", ""); code != http.StatusConflict || !strings.Contains(string(b), "assigned to") {
		t.Fatalf("claim by the other radiologist: %d %s", code, b)
	}
	if code, _ := do("req", "POST", "/api/worklist/"+it.ID+"/claim", ""); code != http.StatusForbidden {
		t.Fatalf("claim by a requester: %d", code)
	}
	if code, b := do(holderTok, "POST", "/api/worklist/"+it.ID+"/claim", ""); code != 200 || !strings.Contains(string(b), `"in-progress"`) {
		t.Fatalf("claim: %d %s", code, b)
	}
	if code, b := do(otherTok, "POST", "/api/worklist/"+it.ID+"/claim", ""); code != http.StatusConflict || !strings.Contains(string(b), "error") {
		t.Fatalf("claim of a claimed item: %d %s", code, b)
	}
	if code, _ := do("cm", "GET", "/api/worklist/nope", ""); code != 404 {
		t.Fatalf("unknown item: %d", code)
	}
	if code, _ := do("cm", "POST", "/api/worklist/nope/claim", ""); code != 404 {
		t.Fatalf("claim of an unknown item: %d", code)
	}
	if code, _ := do(otherTok, "POST", "/api/worklist/"+it.ID+"/assign", `{"reader":"jleroy"}`); code != 403 {
		t.Fatalf("assign by a radiologist: %d", code)
	}
	if code, b := do("adm", "POST", "/api/worklist/"+it.ID+"/assign", `{"reader":"jleroy"}`); code != 200 || !strings.Contains(string(b), `"jleroy"`) {
		t.Fatalf("assign by an admin: %d %s", code, b)
	}
	if code, _ := do("req", "POST", "/api/worklist/"+it.ID+"/cancel", `{"reason":"x"}`); code != 403 {
		t.Fatalf("cancel by a requester: %d", code)
	}
	if code, b := do("adm", "POST", "/api/worklist/"+it.ID+"/cancel", `{"reason":"doublon"}`); code != 200 || !strings.Contains(string(b), `"cancelled"`) {
		t.Fatalf("cancel by an admin: %d %s", code, b)
	}
	code, b = do("cm", "GET", "/api/worklist?state=cancelled", "")
	if json.Unmarshal(b, &lr); code != 200 || len(lr.Items) != 1 || lr.Items[0].CancelReason != "doublon" {
		t.Fatalf("GET cancelled: %d %s", code, b)
	}
	if code, _ := do("cm", "GET", "/api/worklist?state=bogus", ""); code != 400 {
		t.Fatalf("bad state: %d", code)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func TestNewWorklistIgnoresPastReadyEvents(t *testing.T) {
	j, err := journal.Open(t.TempDir(), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	data, _ := json.Marshal(routing.StudyReady{Route: "stroke", Study: "11.1", Priority: config.PriorityStat, Time: night, Reader: "cmartin"})
	if _, err := j.Append(context.Background(), &journal.Event{Kind: "study.ready", StudyUID: "11.1", Data: data}); err != nil {
		t.Fatal(err)
	}
	w, err := Open(Deps{Dir: t.TempDir(), Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.replay(context.Background())
	if _, err := w.Get(ItemID("11.1", "stroke")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a new worklist replayed a study.ready journaled before it existed: %v", err)
	}
}
