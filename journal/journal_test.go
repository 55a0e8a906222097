package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustOpen(t testing.TB, dir string, opt Options) *Journal {
	t.Helper()
	j, err := Open(dir, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j
}

func readAll(t *testing.T, dir string) []*Event {
	t.Helper()
	var evs []*Event
	if err := Query(context.Background(), dir, Filter{}, func(ev *Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatalf("Query: %v", err)
	}
	return evs
}

func TestAppendReopenContinuesSeq(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := mustOpen(t, dir, Options{})
	for i := 1; i <= 5; i++ {
		seq, err := j.Append(ctx, &Event{Kind: "instance.stored", SOPInstanceUID: fmt.Sprint("1.2.", i), Data: json.RawMessage(`{"x":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i) {
			t.Fatalf("seq %d, want %d", seq, i)
		}
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("second Open succeeded: the LOCK must be exclusive")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, &Event{Kind: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	if j.LastSeq() != 5 {
		t.Fatalf("LastSeq after reopen = %d", j.LastSeq())
	}
	seq, err := j.Append(ctx, &Event{Kind: "failure"})
	if err != nil || seq != 6 {
		t.Fatalf("Append after reopen: %d %v", seq, err)
	}
	evs := readAll(t, dir)
	if len(evs) != 6 || string(evs[0].Data) != `{"x":1}` || evs[0].Time.IsZero() {
		t.Fatalf("events: %d %+v", len(evs), evs[0])
	}
}

func TestConcurrentGroupCommit(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	const G, N = 100, 20
	var wg sync.WaitGroup
	seqs := make(chan uint64, G*N)
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < N; i++ {
				ev := &Event{Kind: "instance.stored", AE: fmt.Sprint("AE", g)}
				if i%5 == 4 {
					if s := j.AppendAsync(&Event{Kind: "association.released"}); s == 0 {
						t.Error("AppendAsync failed")
					}
				}
				seq, err := j.Append(context.Background(), ev)
				if err != nil {
					t.Error(err)
					return
				}
				if j.DurableSeq() < seq {
					t.Errorf("acknowledged seq %d before durable (%d)", seq, j.DurableSeq())
				}
				seqs <- seq
			}
		}(g)
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("duplicate seq %d", s)
		}
		seen[s] = true
	}
	total := G*N + G*N/5
	if got := j.Appends(); got != uint64(total) {
		t.Fatalf("appends %d, want %d", got, total)
	}
	syncs := j.Syncs()
	t.Logf("%d appends, %d fdatasyncs", total, syncs)
	if syncs >= uint64(G*N) {
		t.Fatalf("no group commit: %d syncs for %d appends", syncs, G*N)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	evs := readAll(t, dir)
	if len(evs) != total {
		t.Fatalf("%d events in file, want %d", len(evs), total)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: not increasing in file", i, ev.Seq)
		}
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
	return m
}

func TestTornTailTruncated(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail string
	}{
		{"partial line", `1234abcd {"seq":4,"ki`},
		{"bad checksum last line", "00000000 {\"seq\":4,\"kind\":\"x\"}\n"},
		{"garbage lines at end", "00000000 {\"seq\":4}\n\x00\x00\x00\x00\n\x00\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := mustOpen(t, dir, Options{})
			for i := 0; i < 3; i++ {
				if _, err := j.Append(context.Background(), &Event{Kind: "k"}); err != nil {
					t.Fatal(err)
				}
			}
			j.Close()
			seg := segmentFiles(t, dir)[0]
			before, _ := os.ReadFile(seg)
			f, _ := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(tc.tail)
			f.Close()
			// Query tolerates the partial/garbage tail of a live journal.
			if n := len(readAll(t, dir)); n != 3 {
				t.Fatalf("query saw %d events", n)
			}
			j = mustOpen(t, dir, Options{})
			defer j.Close()
			after, _ := os.ReadFile(seg)
			if !bytes.Equal(before, after) {
				t.Fatalf("tail not truncated: %q", after[len(before):])
			}
			if seq, err := j.Append(context.Background(), &Event{Kind: "k"}); err != nil || seq != 4 {
				t.Fatalf("append after recovery: %d %v", seq, err)
			}
		})
	}
}

func TestCorruptMiddleIsAnError(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	for i := 0; i < 5; i++ {
		if _, err := j.Append(context.Background(), &Event{Kind: "instance.stored", SOPInstanceUID: "1.2.3"}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	seg := segmentFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	i := bytes.Index(data, []byte(`"seq":2`))
	data[i+20] ^= 0x01 // flip a bit in the JSON of event 2
	os.WriteFile(seg, data, 0o644)
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open on mid-file corruption: %v", err)
	}
	t.Logf("error: %v", err)
	// The file must not have been modified.
	after, _ := os.ReadFile(seg)
	if !bytes.Equal(after, data) {
		t.Fatal("Open modified a corrupt journal")
	}
}

func TestRotationAndReplay(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := mustOpen(t, dir, Options{SegmentSize: 2048})
	for i := 1; i <= 100; i++ {
		if _, err := j.Append(ctx, &Event{Kind: "instance.stored", SOPInstanceUID: fmt.Sprint("1.2.840.", i)}); err != nil {
			t.Fatal(err)
		}
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	for _, s := range segs {
		st, _ := os.Stat(s)
		if st.Size() > 2048 {
			t.Fatalf("segment %s is %d bytes", s, st.Size())
		}
	}
	check := func(j *Journal, from uint64) {
		t.Helper()
		next := from + 1
		err := j.Replay(ctx, from, func(ev *Event) error {
			if ev.Seq != next || ev.SOPInstanceUID != fmt.Sprint("1.2.840.", next) {
				return fmt.Errorf("got seq %d sop %s, want %d", ev.Seq, ev.SOPInstanceUID, next)
			}
			next++
			return nil
		})
		if err != nil {
			t.Fatalf("Replay(%d): %v", from, err)
		}
		if next != 101 {
			t.Fatalf("Replay(%d) stopped at %d", from, next)
		}
	}
	for _, from := range []uint64{0, 1, 17, 50, 99, 100} {
		check(j, from)
	}
	stop := errors.New("stop here")
	if err := j.Replay(ctx, 10, func(*Event) error { return stop }); err != stop {
		t.Fatalf("Replay error propagation: %v", err)
	}
	j.Close()
	j = mustOpen(t, dir, Options{SegmentSize: 2048})
	defer j.Close()
	if j.LastSeq() != 100 {
		t.Fatalf("LastSeq %d", j.LastSeq())
	}
	check(j, 42)
}

func TestQueryFilters(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := mustOpen(t, dir, Options{SegmentSize: 1500})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 60; i++ {
		ev := &Event{Time: t0.Add(time.Duration(i) * time.Minute)}
		switch i % 3 {
		case 0:
			ev.Kind, ev.AE, ev.CalledAE = "association.accepted", "MODALITY1", "RELAIS"
		case 1:
			ev.Kind, ev.AE, ev.StudyUID, ev.SOPInstanceUID = "instance.stored", "MODALITY2", fmt.Sprint("1.2.", i%2), fmt.Sprint("1.2.3.", i)
		case 2:
			ev.Kind, ev.AE = "association.released", "MODALITY1"
		}
		if _, err := j.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	defer j.Close()
	q := func(f Filter) []*Event {
		var out []*Event
		if err := Query(ctx, dir, f, func(ev *Event) error { out = append(out, ev); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if n := len(q(Filter{Kinds: []string{"association"}})); n != 40 {
		t.Fatalf("kinds association: %d", n)
	}
	if n := len(q(Filter{Kinds: []string{"association.released", "instance"}})); n != 40 {
		t.Fatalf("two kinds: %d", n)
	}
	if n := len(q(Filter{AE: "RELAIS"})); n != 20 {
		t.Fatalf("called AE: %d", n)
	}
	if n := len(q(Filter{AE: "MODALITY2"})); n != 20 {
		t.Fatalf("AE: %d", n)
	}
	if n := len(q(Filter{StudyUID: "1.2.1"})); n != 10 {
		t.Fatalf("study: %d", n)
	}
	if evs := q(Filter{SOPInstanceUID: "1.2.3.31"}); len(evs) != 1 || evs[0].Seq != 32 {
		t.Fatalf("sop: %+v", evs)
	}
	// Time range [t0+10m, t0+20m) → seqs 11..20.
	evs := q(Filter{Since: t0.Add(10 * time.Minute), Until: t0.Add(20 * time.Minute)})
	if len(evs) != 10 || evs[0].Seq != 11 || evs[9].Seq != 20 {
		t.Fatalf("time range: %d events", len(evs))
	}
	evs = q(Filter{Since: t0.Add(50 * time.Minute)})
	if len(evs) != 10 || evs[0].Seq != 51 {
		t.Fatalf("since: %d", len(evs))
	}
	evs = q(Filter{Limit: 5})
	if len(evs) != 5 || evs[4].Seq != 5 {
		t.Fatalf("limit: %d", len(evs))
	}
	evs = q(Filter{Reverse: true, Limit: 7, Kinds: []string{"instance"}})
	if len(evs) != 7 || evs[0].Seq != 59 || evs[6].Seq != 41 {
		t.Fatalf("reverse: %d first %d", len(evs), evs[0].Seq)
	}
	evs = q(Filter{Reverse: true})
	if len(evs) != 60 || evs[0].Seq != 60 || evs[59].Seq != 1 {
		t.Fatalf("reverse all: %d", len(evs))
	}
}

func TestQueryConcurrentWithWriter(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentSize: 8192})
	ctx := context.Background()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < 2000; i++ {
			if _, err := j.Append(ctx, &Event{Kind: "instance.stored", Reason: "some text to make lines longer"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	queries := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		var last uint64
		err := Query(ctx, dir, Filter{}, func(ev *Event) error {
			if ev.Seq != last+1 {
				return fmt.Errorf("seq %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			return nil
		})
		if err != nil {
			t.Fatalf("concurrent Query: %v", err)
		}
		queries++
	}
	wg.Wait()
	j.Close()
	t.Logf("%d queries during writes", queries)
	if n := len(readAll(t, dir)); n != 2000 {
		t.Fatalf("%d events", n)
	}
}

func TestAppendAsyncDurableBeforeLaterAppend(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	a := j.AppendAsync(&Event{Kind: "association.accepted"})
	b, err := j.Append(context.Background(), &Event{Kind: "instance.stored"})
	if err != nil || b <= a {
		t.Fatalf("%d %d %v", a, b, err)
	}
	if j.DurableSeq() < a {
		t.Fatal("async event not durable after a later Append")
	}
	j.Close()
	if n := len(readAll(t, dir)); n != 2 {
		t.Fatalf("%d events", n)
	}
}

// BenchmarkAppend measures durable Append (fdatasync) with 1 and 8
// concurrent writers: throughput (appends/s), per-call latency and the
// number of fdatasyncs per append (group commit).
func BenchmarkAppend(b *testing.B) {
	payload := make(map[string]string)
	for i := 0; i < 30; i++ {
		payload[fmt.Sprintf("0008%04x", i)] = "some attribute value"
	}
	data, _ := json.Marshal(payload) // ~1 KB, like an index record
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			j := mustOpen(b, b.TempDir(), Options{})
			defer j.Close()
			var next atomic.Int64
			var lat atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if _, err := j.Append(context.Background(), &Event{Kind: "instance.stored", SOPInstanceUID: "1.2.3.4.5.6.7.8.9", StudyUID: "1.2.3.4", Data: data}); err != nil {
							b.Error(err)
							return
						}
						lat.Add(int64(time.Since(t0)))
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(lat.Load())/float64(b.N)/1e3, "µs-latency")
			b.ReportMetric(float64(j.Syncs())/float64(b.N), "syncs/append")
		})
	}
}

// TestWriteFailurePoisons: after a failed write/fdatasync the journal
// refuses every later Append (retrying could acknowledge lost data).
func TestWriteFailurePoisons(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	if _, err := j.Append(context.Background(), &Event{Kind: "k"}); err != nil {
		t.Fatal(err)
	}
	j.seg.Close() // make the next write fail
	if _, err := j.Append(context.Background(), &Event{Kind: "k"}); err == nil {
		t.Fatal("Append succeeded on a failed segment")
	}
	if _, err := j.Append(context.Background(), &Event{Kind: "k"}); err == nil {
		t.Fatal("journal not poisoned after a write failure")
	}
	if s := j.AppendAsync(&Event{Kind: "k"}); s != 0 {
		t.Fatal("AppendAsync accepted an event on a poisoned journal")
	}
	j.Close()
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	if j.LastSeq() != 1 {
		t.Fatalf("LastSeq after reopen = %d, want 1", j.LastSeq())
	}
}

func TestAppendContextCanceled(t *testing.T) {
	j := mustOpen(t, t.TempDir(), Options{})
	defer j.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Either outcome is allowed (the flusher may win the race), but an
	// error must wrap context.Canceled.
	if _, err := j.Append(ctx, &Event{Kind: "k"}); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with canceled ctx: %v", err)
	}
}

// TestTornFinalBatchTruncated: on power loss the blocks of the last,
// unsynced batch may reach the disk in any order, so a bad line can precede
// good ones. No synced write ends after the bad line: nothing there was
// acknowledged, and Open truncates at the bad line.
func TestTornFinalBatchTruncated(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	for i := 0; i < 3; i++ {
		if _, err := j.Append(context.Background(), &Event{Kind: "synced"}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	seg := segmentFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	// Append a final batch of three lines by hand, as one write would, with
	// the batch-end mark on its last line only, and damage its first line.
	var batch []byte
	for seq := 4; seq <= 6; seq++ {
		line, err := encodeLine(&Event{Seq: uint64(seq), Time: time.Now(), Kind: "in-flight"})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, line...)
	}
	markBatchEnd(batch)
	batch[20] ^= 0x01
	os.WriteFile(seg, append(data, batch...), 0o644)
	j2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open on a torn final batch: %v", err)
	}
	if j2.LastSeq() != 3 {
		t.Errorf("LastSeq %d after truncating the torn batch, want 3", j2.LastSeq())
	}
	j2.Close()
	if evs := readAll(t, dir); len(evs) != 3 {
		t.Errorf("%d events after recovery, want 3", len(evs))
	}
}

// TestCorruptSyncedBatchIsAnError: a synced write ends after the bad line,
// so the bad line was acknowledged data: Open refuses to drop it.
func TestCorruptSyncedBatchIsAnError(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	for i := 0; i < 4; i++ {
		if _, err := j.Append(context.Background(), &Event{Kind: "synced"}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	seg := segmentFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	if n := bytes.Count(data, []byte{'\n'}); bytes.Count(data, []byte("|{")) != n {
		t.Fatalf("each Append is its own synced write: want %d batch-end marks, got %d", n, bytes.Count(data, []byte("|{")))
	}
	i := bytes.Index(data, []byte(`"seq":1`))
	data[i+20] ^= 0x01
	os.WriteFile(seg, data, 0o644)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}

// TestAsyncEventsShareTheNextSync: async events do not cost an fdatasync
// each; they ride on the next synchronous append's, or are written on
// their own within AsyncDelay.
func TestAsyncEventsShareTheNextSync(t *testing.T) {
	j, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	before := j.Syncs()
	// Spaced out as deliveries are: each would have had its own
	// fdatasync if async events woke the flusher.
	for i := 0; i < 10; i++ {
		j.AppendAsync(&Event{Kind: "delivery.sent"})
		time.Sleep(time.Millisecond)
	}
	seq, err := j.Append(context.Background(), &Event{Kind: "instance.stored"})
	if err != nil {
		t.Fatal(err)
	}
	if n := j.Syncs() - before; n > 2 {
		t.Errorf("10 async events and one append took %d fdatasyncs", n)
	}
	if j.DurableSeq() < seq {
		t.Fatalf("durable %d < appended %d", j.DurableSeq(), seq)
	}
	last := j.AppendAsync(&Event{Kind: "query"})
	deadline := time.Now().Add(2 * time.Second)
	for j.DurableSeq() < last && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if j.DurableSeq() < last {
		t.Fatalf("a lone async event was not written within 2 s (durable %d < %d)", j.DurableSeq(), last)
	}
}
