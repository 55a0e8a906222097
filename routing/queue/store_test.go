package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// fakeClock is an injected clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func openStore(t *testing.T, dir string, clk *fakeClock) *Store {
	t.Helper()
	o := Options{Logger: slog.New(slog.DiscardHandler)}
	if clk != nil {
		o.Clock = clk.Now
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func task(id string, prio Priority, dests ...string) Task {
	return Task{ID: id, Route: "r", Priority: prio, Destinations: dests, StudyUID: "1.2", SOPInstanceUID: "1.2." + id}
}

func TestEnqueuePutIfAbsentAndMeta(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)}
	s := openStore(t, t.TempDir(), clk)
	ctx := context.Background()
	n, err := s.Enqueue(ctx, []Task{task("a", Routine, "d1"), task("b", Stat, "d1")}, map[string][]byte{"watermark": []byte("10")})
	if err != nil || n != 2 {
		t.Fatalf("Enqueue = %d, %v", n, err)
	}
	// The same IDs again: nothing created, nothing changed (even Priority).
	clk.Advance(time.Second)
	again := task("a", Stat, "d2")
	n, err = s.Enqueue(ctx, []Task{again, task("c", Urgent, "d1")}, map[string][]byte{"watermark": []byte("12"), "timer/x": []byte("t")})
	if err != nil || n != 1 {
		t.Fatalf("second Enqueue = %d, %v", n, err)
	}
	a, err := s.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Priority != Routine || a.Destination() != "d1" || a.State != Pending || !a.NextTry.Equal(a.Created) {
		t.Errorf("task a overwritten or wrong: %+v", a)
	}
	if v, _ := s.Meta("watermark"); string(v) != "12" {
		t.Errorf("watermark = %q", v)
	}
	// Meta is atomic with the tasks: an invalid task fails the whole call.
	if _, err := s.Enqueue(ctx, []Task{task("d", Routine, "d1"), {ID: "bad"}}, map[string][]byte{"watermark": []byte("99")}); err == nil {
		t.Fatal("task without destination accepted")
	}
	if v, _ := s.Meta("watermark"); string(v) != "12" {
		t.Errorf("watermark moved by a failed Enqueue: %q", v)
	}
	if _, err := s.Get("d"); !errors.Is(err, ErrNotFound) {
		t.Errorf("task d of a failed Enqueue exists: %v", err)
	}
	var keys []string
	s.MetaPrefix("timer/", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil })
	if fmt.Sprint(keys) != "[timer/x=t]" {
		t.Errorf("MetaPrefix = %v", keys)
	}
	if err := s.PutMeta(map[string][]byte{"timer/y": []byte("u"), "timer/x": nil}); err != nil {
		t.Fatal(err)
	}
	s.DeleteMeta("timer/y")
	keys = nil
	s.MetaPrefix("timer/", func(k string, v []byte) error { keys = append(keys, k); return nil })
	if len(keys) != 0 {
		t.Errorf("meta left: %v", keys)
	}
	if _, err := s.Meta("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Meta(missing) = %v", err)
	}
}

func TestClaimPriorityThenNextTry(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)}
	s := openStore(t, t.TempDir(), clk)
	ctx := context.Background()
	// Created in an order that is neither priority nor ID order.
	steps := []Task{task("r1", Routine, "D"), task("u1", Urgent, "D"), task("s1", Stat, "D"), task("other", Stat, "E"),
		task("r2", Routine, "D"), task("s2", Stat, "D")}
	for _, tk := range steps {
		if _, err := s.Enqueue(ctx, []Task{tk}, nil); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Millisecond)
	}
	// A STAT task due later than now is not claimed.
	future := task("s3", Stat, "D")
	future.NextTry = clk.Now().Add(time.Hour)
	s.Enqueue(ctx, []Task{future}, nil)

	tests := []struct {
		name  string
		limit int
		skip  map[string]bool
		want  string
	}{
		{"all due", 10, nil, "[s1 s2 u1 r1 r2]"},
		{"limit", 3, nil, "[s1 s2 u1]"},
		{"in flight skipped", 3, map[string]bool{"s1": true, "u1": true}, "[s2 r1 r2]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, prev, err := s.Claim("D", clk.Now(), tc.limit, func(id string) bool { return tc.skip[id] })
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, tk := range got {
				ids = append(ids, tk.ID)
			}
			if fmt.Sprint(ids) != tc.want {
				t.Errorf("Claim = %v, want %s", ids, tc.want)
			}
			if len(prev) != len(got) {
				t.Errorf("prev claims: %d for %d tasks", len(prev), len(got))
			}
		})
	}
	// Every task above was claimed at least once: a second claim reports
	// the previous one (an attempt whose outcome was never recorded).
	_, prev, _ := s.Claim("D", clk.Now(), 1, nil)
	if len(prev) != 1 || prev[0].IsZero() {
		t.Errorf("previous claim not reported: %v", prev)
	}
	next, ok, _ := s.NextDue("D", func(id string) bool { return id != "s3" })
	if !ok || !next.Equal(future.NextTry) {
		t.Errorf("NextDue = %v %v, want %v", next, ok, future.NextTry)
	}
	states, dests, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if states[Pending] != 7 || dests["D"].Backlog != 6 || dests["E"].Backlog != 1 || !dests["D"].Oldest.Equal(time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("Stats = %v %v", states, dests)
	}
}

// TestFailureSchedule drives one task through backoff, failover and dead
// letter with an injected clock and zero jitter.
func TestFailureSchedule(t *testing.T) {
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	pol := Policy{RetryInitial: 2 * time.Second, RetryMax: 10 * time.Second, MaxAttempts: 4,
		FailoverAfter: func(d string) int { return map[string]int{"A": 2, "B": 3}[d] },
		Jitter:        func() float64 { return 0 }}
	type step struct {
		perm      bool
		want      Transition
		dest      string // after
		attempts  int
		nextDelay time.Duration
	}
	tests := []struct {
		name  string
		dests []string
		steps []step
		ok    bool // last attempt succeeds
	}{
		{"backoff then failover then dead", []string{"A", "B", "C"}, []step{
			{false, Retrying, "A", 1, 2 * time.Second},
			{false, Failover, "B", 0, 0}, // FailoverAfter(A) = 2
			{false, Retrying, "B", 1, 2 * time.Second},
			{false, Retrying, "B", 2, 4 * time.Second},
			{false, Failover, "C", 0, 0}, // FailoverAfter(B) = 3
			{false, Retrying, "C", 1, 2 * time.Second},
			{false, Retrying, "C", 2, 4 * time.Second},
			{false, Retrying, "C", 3, 8 * time.Second},
			{false, Died, "C", 4, 0}, // MaxAttempts on the last
		}, false},
		{"cap at retry_max", []string{"C"}, []step{
			{false, Retrying, "C", 1, 2 * time.Second},
			{false, Retrying, "C", 2, 4 * time.Second},
			{false, Retrying, "C", 3, 8 * time.Second},
		}, true},
		{"permanent fails over at once, then dies", []string{"A", "B"}, []step{
			{true, Failover, "B", 0, 0},
			{true, Died, "B", 1, 0},
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: start}
			s := openStore(t, t.TempDir(), clk)
			tk := task("x", Routine, tc.dests...)
			s.Enqueue(context.Background(), []Task{tk}, nil)
			total := 0
			for i, st := range tc.steps {
				cur, _ := s.Get("x")
				claimed, _, err := s.Claim(cur.Destination(), clk.Now(), 10, nil)
				if err != nil || len(claimed) != 1 {
					t.Fatalf("step %d: Claim = %d tasks at %v (next try %v), %v", i, len(claimed), clk.Now(), cur.NextTry, err)
				}
				res, err := s.Complete(clk.Now(), pol, []Outcome{{ID: "x", Claimed: claimed[0].Claimed, Err: fmt.Errorf("refused %d", i), Permanent: st.perm}})
				if err != nil {
					t.Fatal(err)
				}
				total++
				got := res[0].Task
				if res[0].Transition != st.want || got.Destination() != st.dest || got.Attempts != st.attempts || got.TotalAttempts != total {
					t.Fatalf("step %d: %s on %s attempts %d/%d, want %s on %s attempts %d/%d", i, res[0].Transition, got.Destination(),
						got.Attempts, got.TotalAttempts, st.want, st.dest, st.attempts, total)
				}
				if d := got.NextTry.Sub(clk.Now()); st.want != Died && d != st.nextDelay {
					t.Errorf("step %d: next try in %v, want %v", i, d, st.nextDelay)
				}
				if got.LastError != fmt.Sprintf("refused %d", i) {
					t.Errorf("step %d: LastError %q", i, got.LastError)
				}
				// Not due before its next try.
				if st.nextDelay > 0 {
					if c, _, _ := s.Claim(st.dest, clk.Now().Add(st.nextDelay-time.Millisecond), 10, nil); len(c) != 0 {
						t.Errorf("step %d: claimed before its next try", i)
					}
				}
				clk.Advance(st.nextDelay)
			}
			if tc.ok {
				clk.Advance(10 * time.Second)
				cur, _ := s.Get("x")
				claimed, _, _ := s.Claim(cur.Destination(), clk.Now(), 1, nil)
				res, _ := s.Complete(clk.Now(), pol, []Outcome{{ID: "x", Claimed: claimed[0].Claimed}})
				if res[0].Transition != Sent || res[0].Task.State != Done || !res[0].Task.Delivered.Equal(clk.Now()) {
					t.Errorf("success: %+v", res[0])
				}
				if d := pol.Backoff(4, 0); d != 10*time.Second {
					t.Errorf("Backoff(4) = %v, want the 10s cap", d)
				}
			} else {
				got, _ := s.Get("x")
				if got.State != Dead {
					t.Errorf("state %s, want dead", got.State)
				}
				if c, _, _ := s.Claim(got.Destination(), clk.Now().Add(time.Hour), 10, nil); len(c) != 0 {
					t.Errorf("a dead task is still claimable")
				}
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	pol := Policy{RetryInitial: time.Second, RetryMax: time.Minute}
	for _, tc := range []struct {
		attempts int
		jitter   float64
		want     time.Duration
	}{
		{1, -1, 800 * time.Millisecond}, {1, 1, 1200 * time.Millisecond}, {3, 0, 4 * time.Second},
		{3, 0.5, 4400 * time.Millisecond}, {20, 0, time.Minute}, {20, -1, 48 * time.Second},
	} {
		if got := pol.Backoff(tc.attempts, tc.jitter); got != tc.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tc.attempts, tc.jitter, got, tc.want)
		}
	}
}

func TestOperatorActions(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)}
	s := openStore(t, t.TempDir(), clk)
	ctx := context.Background()
	s.Enqueue(ctx, []Task{task("dead", Routine, "A"), task("pend", Routine, "A"), task("done", Routine, "A")}, nil)
	pol := Policy{MaxAttempts: 1, Jitter: func() float64 { return 0 }}
	cl, _, _ := s.Claim("A", clk.Now(), 10, nil)
	outs := []Outcome{}
	for _, c := range cl {
		o := Outcome{ID: c.ID, Claimed: c.Claimed}
		if c.ID != "done" {
			o.Err = errors.New("down")
		}
		outs = append(outs, o)
	}
	s.Complete(clk.Now(), pol, outs) // dead dies, done is done; pend dies too
	s.RetryTask("pend")              // back to pending
	clk.Advance(time.Minute)

	tests := []struct {
		name    string
		op      func() (*Task, error)
		wantErr error
		check   func(*Task) string
	}{
		{"retry dead", func() (*Task, error) { return s.RetryTask("dead") }, nil, func(t *Task) string {
			if t.State != Pending || t.Attempts != 0 || !t.NextTry.Equal(clk.Now()) || t.TotalAttempts != 1 {
				return fmt.Sprintf("%+v", t)
			}
			return ""
		}},
		{"retry done refused", func() (*Task, error) { return s.RetryTask("done") }, ErrState, nil},
		{"cancel pending", func() (*Task, error) { return s.CancelTask("pend", "wrong patient") }, nil, func(t *Task) string {
			if t.State != Cancelled || t.LastError != "wrong patient" {
				return fmt.Sprintf("%+v", t)
			}
			return ""
		}},
		{"cancel done refused", func() (*Task, error) { return s.CancelTask("done", "") }, ErrState, nil},
		{"reroute cancelled", func() (*Task, error) { return s.RerouteTask("pend", "B") }, nil, func(t *Task) string {
			if t.State != Pending || fmt.Sprint(t.Destinations) != "[B]" || t.Current != 0 || t.Attempts != 0 {
				return fmt.Sprintf("%+v", t)
			}
			return ""
		}},
		{"reroute done refused", func() (*Task, error) { return s.RerouteTask("done", "B") }, ErrState, nil},
		{"unknown", func() (*Task, error) { return s.RetryTask("nope") }, ErrNotFound, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.op()
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(got); msg != "" {
				t.Error(msg)
			}
			stored, _ := s.Get(got.ID)
			if stored.State != got.State || stored.Destination() != got.Destination() {
				t.Errorf("stored %+v differs from returned %+v", stored, got)
			}
		})
	}
	// Indexes follow: the rerouted task is pending on B, not on A.
	if c, _, _ := s.Claim("A", clk.Now(), 10, nil); len(c) != 1 || c[0].ID != "dead" {
		t.Errorf("A due = %v", c)
	}
	if c, _, _ := s.Claim("B", clk.Now(), 10, nil); len(c) != 1 || c[0].ID != "pend" {
		t.Errorf("B due = %v", c)
	}
	// An outcome for a claim that the operator overrode is not applied.
	s.CancelTask("dead", "")
	res, _ := s.Complete(clk.Now(), pol, []Outcome{{ID: "dead", Claimed: clk.Now(), Err: errors.New("x")}})
	if res[0].Transition != Stale || res[0].Task.State != Cancelled {
		t.Errorf("outcome after cancel: %+v", res[0])
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{State: Done}, "[done]"},
		{Filter{State: Pending, Destination: "B"}, "[pend]"},
		{Filter{State: Cancelled}, "[dead]"},
		{Filter{Route: "r", Limit: 2}, "[dead done]"},
		{Filter{Study: "nope"}, "[]"},
	} {
		l, err := s.List(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range l {
			ids = append(ids, x.ID)
		}
		if fmt.Sprint(ids) != tc.want && !(tc.want == "[]" && len(ids) == 0) {
			t.Errorf("List(%+v) = %v, want %s", tc.f, ids, tc.want)
		}
	}
}

func TestReopenKeepsTasks(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Enqueue(context.Background(), []Task{task("a", Stat, "D")}, map[string][]byte{"w": []byte("1")})
	// A second process (here: a second Open) is refused while it is open.
	if _, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)}); !IsLocked(err) {
		t.Errorf("second Open: %v, want a lock error", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, nil)
	if tk, err := s.Get("a"); err != nil || tk.Priority != Stat {
		t.Errorf("after reopen: %+v %v", tk, err)
	}
	if c, _, _ := s.Claim("D", time.Now(), 10, nil); len(c) != 1 {
		t.Errorf("index lost at reopen")
	}
}

func TestCountsAndPurge(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)}
	s := openStore(t, t.TempDir(), clk)
	ctx := context.Background()
	var tasks []Task
	for i := 0; i < 1200; i++ {
		tasks = append(tasks, task(fmt.Sprintf("t%04d", i), Routine, "D"))
	}
	s.Enqueue(ctx, tasks, nil)
	pol := Policy{MaxAttempts: 1}
	// 1100 done, 50 dead, 50 pending; then 30 of the done ones are newer.
	cl, _, _ := s.Claim("D", clk.Now(), 1150, nil)
	var outs []Outcome
	for i, c := range cl {
		o := Outcome{ID: c.ID, Claimed: c.Claimed}
		if i >= 1100 {
			o.Err = errors.New("x")
		}
		outs = append(outs, o)
	}
	s.Complete(clk.Now(), pol, outs[:1070])
	clk.Advance(48 * time.Hour)
	s.Complete(clk.Now(), pol, outs[1070:])
	s.CancelTask("t1199", "")
	states, _, _ := s.Stats()
	if states[Done] != 1100 || states[Dead] != 50 || states[Pending] != 49 || states[Cancelled] != 1 {
		t.Fatalf("counts %v", states)
	}
	n, err := s.Purge(ctx, clk.Now().Add(-24*time.Hour))
	if err != nil || n != 1070 {
		t.Fatalf("Purge = %d, %v; want 1070", n, err)
	}
	states, dests, _ := s.Stats()
	if states[Done] != 30 || states[Dead] != 50 || states[Pending] != 49 || states[Cancelled] != 1 || dests["D"].Backlog != 49 {
		t.Errorf("after purge: %v %v", states, dests)
	}
	if _, err := s.Get("t0000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("purged task still there: %v", err)
	}
	if l, _ := s.List(ctx, Filter{State: Done}); len(l) != 30 {
		t.Errorf("%d done listed", len(l))
	}
	// Put-if-absent again for a purged ID: created anew.
	if n, _ := s.Enqueue(ctx, []Task{task("t0000", Routine, "D")}, nil); n != 1 {
		t.Errorf("purged ID not free")
	}
}
