// Package indextest is the conformance suite every storage.Index must pass.
// Implementations call Run from their tests.
package indextest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/storage"
)

// T0 is the reception time of the instances made by NewInstance.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// NewInstance builds a realistic instance record: SOP instance n of series
// `series` of study `study` of patient `patient`.
func NewInstance(patient, study, series string, n int) *storage.Instance {
	sop := fmt.Sprintf("%s.%d", series, n)
	return &storage.Instance{
		SOPInstanceUID:    sop,
		SOPClassUID:       "1.2.840.10008.5.1.4.1.1.2",
		SeriesInstanceUID: series,
		StudyInstanceUID:  study,
		PatientID:         patient,
		TransferSyntaxUID: "1.2.840.10008.1.2.1",
		BlobKey:           "ab/cd/" + sop + ".dcm",
		Size:              525 * 1024,
		Checksum:          "xxh3-128:9f86d081884c7d659a2feaa0c55ad015",
		ReceivedAt:        T0.Add(time.Duration(n) * time.Second),
		Source:            storage.Source{Channel: "dimse", CallingAE: "CT1", CalledAE: "RELAIS", RemoteAddr: "10.0.0.5:40000", Association: "a-1"},
		CharacterSet:      "ISO_IR 192",
		Attrs: map[string]string{
			"00080005": "ISO_IR 192",
			"00080016": "1.2.840.10008.5.1.4.1.1.2",
			"00080018": sop,
			"00080020": "20260301",
			"00080030": "120000",
			"00080050": "ACC" + study,
			"00080060": "CT",
			"00080070": "ACME",
			"00080090": "REF^DOC",
			"00081030": "CT HEAD",
			"0008103E": "AXIAL 5mm",
			"00100010": "DOE^JANE",
			"00100020": patient,
			"00100030": "19700101",
			"00100040": "F",
			"0020000D": study,
			"0020000E": series,
			"00200011": "3",
			"00200013": fmt.Sprint(n),
			"00200032": "-125\\-125\\" + fmt.Sprint(n*5),
			"00280010": "512",
			"00280011": "512",
		},
	}
}

// Run runs the suite; newIndex must return an empty index (closed by the
// suite).
func Run(t *testing.T, newIndex func(t *testing.T) storage.Index) {
	run := func(name string, f func(t *testing.T, ix storage.Index)) {
		t.Run(name, func(t *testing.T) {
			ix := newIndex(t)
			defer ix.Close()
			f(t, ix)
		})
	}
	run("PutGet", testPutGet)
	run("Aggregates", testAggregates)
	run("Idempotent", testIdempotent)
	run("Move", testMove)
	run("Delete", testDelete)
	run("AppliedSeq", testAppliedSeq)
	run("Listing", testListing)
	run("NotFound", testNotFound)
	run("Concurrent", testConcurrent)
	run("InvalidUIDs", testInvalid)
	run("Secondary", testSecondary)
}

var ctx = context.Background()

func put(t *testing.T, ix storage.Index, inst *storage.Instance, seq uint64) {
	t.Helper()
	if err := ix.PutInstance(ctx, inst, seq); err != nil {
		t.Fatalf("PutInstance(%s): %v", inst.SOPInstanceUID, err)
	}
}

func stats(t *testing.T, ix storage.Index) storage.Stats {
	t.Helper()
	st, err := ix.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func wantStats(t *testing.T, ix storage.Index, want storage.Stats) {
	t.Helper()
	if got := stats(t, ix); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func testPutGet(t *testing.T, ix storage.Index) {
	in := NewInstance("P1", "1.2.3.1", "1.2.3.1.1", 1)
	put(t, ix, in, 1)
	got, err := ix.GetInstance(ctx, in.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ReceivedAt.Equal(in.ReceivedAt) {
		t.Fatalf("ReceivedAt %v, want %v", got.ReceivedAt, in.ReceivedAt)
	}
	got.ReceivedAt = in.ReceivedAt
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("GetInstance:\n got %+v\nwant %+v", got, in)
	}
	// The caller's record is not aliased.
	in.Attrs["00100010"] = "CHANGED"
	got, _ = ix.GetInstance(ctx, in.SOPInstanceUID)
	if got.Attrs["00100010"] != "DOE^JANE" {
		t.Fatal("index aliases the caller's Attrs map")
	}
}

func testAggregates(t *testing.T, ix storage.Index) {
	// Patient P1: study A (2 series: 3 CT + 2 SR instances), study B (1).
	// Patient P2: study C (1).
	for i := 1; i <= 3; i++ {
		put(t, ix, NewInstance("P1", "1.2.3.1", "1.2.3.1.1", i), 0)
	}
	for i := 1; i <= 2; i++ {
		in := NewInstance("P1", "1.2.3.1", "1.2.3.1.2", i)
		in.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
		in.Attrs["00080060"] = "SR"
		in.Attrs["0008103E"] = "REPORT"
		in.Size = 1000
		put(t, ix, in, 0)
	}
	put(t, ix, NewInstance("P1", "1.2.3.2", "1.2.3.2.1", 9), 0)
	put(t, ix, NewInstance("P2", "1.2.3.3", "1.2.3.3.1", 1), 0)

	st, err := ix.GetStudy(ctx, "1.2.3.1")
	if err != nil {
		t.Fatal(err)
	}
	if st.PatientID != "P1" || st.Series != 2 || st.Instances != 5 || st.Size != 3*525*1024+2000 {
		t.Fatalf("study: %+v", st)
	}
	if !reflect.DeepEqual(st.Modalities, []string{"CT", "SR"}) {
		t.Fatalf("Modalities %v", st.Modalities)
	}
	if !reflect.DeepEqual(st.SOPClasses, []string{"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.22"}) {
		t.Fatalf("SOPClasses %v", st.SOPClasses)
	}
	if !st.FirstReceived.Equal(T0.Add(time.Second)) || !st.LastReceived.Equal(T0.Add(3*time.Second)) {
		t.Fatalf("received %v..%v", st.FirstReceived, st.LastReceived)
	}
	if st.Attrs["00100010"] != "DOE^JANE" || st.Attrs["00081030"] != "CT HEAD" || st.Attrs["0020000D"] != "1.2.3.1" {
		t.Fatalf("study attrs: %v", st.Attrs)
	}
	if _, ok := st.Attrs["0008103E"]; ok {
		t.Fatal("series-level attribute in study attrs")
	}
	if _, ok := st.Attrs["00200013"]; ok {
		t.Fatal("instance-level attribute in study attrs")
	}
	se, err := ix.GetSeries(ctx, "1.2.3.1.2")
	if err != nil {
		t.Fatal(err)
	}
	if se.StudyInstanceUID != "1.2.3.1" || se.Instances != 2 || se.Size != 2000 || se.Attrs["00080060"] != "SR" || se.Attrs["0008103E"] != "REPORT" {
		t.Fatalf("series: %+v", se)
	}
	if _, ok := se.Attrs["00100010"]; ok {
		t.Fatal("patient attribute in series attrs")
	}
	p, err := ix.GetPatient(ctx, "P1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Studies != 2 || p.Attrs["00100010"] != "DOE^JANE" || p.Attrs["00100040"] != "F" {
		t.Fatalf("patient: %+v", p)
	}
	if _, ok := p.Attrs["00081030"]; ok {
		t.Fatal("study attribute in patient attrs")
	}
	wantStats(t, ix, storage.Stats{Patients: 2, Studies: 3, Series: 4, Instances: 7, Bytes: 5*525*1024 + 2000})
}

func testIdempotent(t *testing.T, ix storage.Index) {
	var insts []*storage.Instance
	for i := 1; i <= 4; i++ {
		insts = append(insts, NewInstance("P1", "1.2.3.1", "1.2.3.1.1", i))
	}
	for round := 0; round < 3; round++ { // replay twice
		for i, in := range insts {
			put(t, ix, in, uint64(i+1))
		}
	}
	wantStats(t, ix, storage.Stats{Patients: 1, Studies: 1, Series: 1, Instances: 4, Bytes: 4 * 525 * 1024})
	st, _ := ix.GetStudy(ctx, "1.2.3.1")
	if st.Instances != 4 || st.Series != 1 {
		t.Fatalf("study after replay: %+v", st)
	}
	p, _ := ix.GetPatient(ctx, "P1")
	if p.Studies != 1 {
		t.Fatalf("patient after replay: %+v", p)
	}
	// Re-put with a changed size (e.g. a re-received object) updates bytes.
	in := *insts[0]
	in.Size = 10
	put(t, ix, &in, 0)
	wantStats(t, ix, storage.Stats{Patients: 1, Studies: 1, Series: 1, Instances: 4, Bytes: 3*525*1024 + 10})
}

func testMove(t *testing.T, ix storage.Index) {
	put(t, ix, NewInstance("P1", "1.2.3.1", "1.2.3.1.1", 1), 0)
	put(t, ix, NewInstance("P1", "1.2.3.1", "1.2.3.1.1", 2), 0)
	// Instance 2 is re-sent corrected: another series of another study of
	// another patient.
	moved := NewInstance("P2", "1.2.3.9", "1.2.3.9.1", 2)
	moved.SOPInstanceUID = "1.2.3.1.1.2"
	put(t, ix, moved, 0)
	wantStats(t, ix, storage.Stats{Patients: 2, Studies: 2, Series: 2, Instances: 2, Bytes: 2 * 525 * 1024})
	if st, _ := ix.GetStudy(ctx, "1.2.3.1"); st.Instances != 1 {
		t.Fatalf("old study: %+v", st)
	}
	var sops []string
	ix.StudyInstances(ctx, "1.2.3.9", func(in *storage.Instance) error { sops = append(sops, in.SOPInstanceUID); return nil })
	if !reflect.DeepEqual(sops, []string{"1.2.3.1.1.2"}) {
		t.Fatalf("new study instances: %v", sops)
	}
}

func testDelete(t *testing.T, ix storage.Index) {
	put(t, ix, NewInstance("P1", "1.2.3.1", "1.2.3.1.1", 1), 1)
	put(t, ix, NewInstance("P1", "1.2.3.1", "1.2.3.1.1", 2), 2)
	sr := NewInstance("P1", "1.2.3.1", "1.2.3.1.2", 1)
	sr.Attrs["00080060"] = "SR"
	sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
	put(t, ix, sr, 3)
	put(t, ix, NewInstance("P1", "1.2.3.2", "1.2.3.2.1", 1), 4)

	if err := ix.DeleteInstance(ctx, sr.SOPInstanceUID, 5); err != nil {
		t.Fatal(err)
	}
	st, _ := ix.GetStudy(ctx, "1.2.3.1")
	if st.Series != 1 || st.Instances != 2 || !reflect.DeepEqual(st.Modalities, []string{"CT"}) || len(st.SOPClasses) != 1 {
		t.Fatalf("study after delete: %+v", st)
	}
	if _, err := ix.GetSeries(ctx, "1.2.3.1.2"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("empty series not removed: %v", err)
	}
	if _, err := ix.GetInstance(ctx, sr.SOPInstanceUID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted instance: %v", err)
	}
	// Delete the whole study 1.2.3.2 → patient keeps 1 study.
	if err := ix.DeleteInstance(ctx, "1.2.3.2.1.1", 6); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.GetStudy(ctx, "1.2.3.2"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("empty study not removed: %v", err)
	}
	if p, _ := ix.GetPatient(ctx, "P1"); p == nil || p.Studies != 1 {
		t.Fatalf("patient: %+v", p)
	}
	// Replayed delete: ErrNotFound, seq still recorded.
	if err := ix.DeleteInstance(ctx, "1.2.3.2.1.1", 7); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if seq, _ := ix.AppliedSeq(ctx); seq != 7 {
		t.Fatalf("AppliedSeq = %d after replayed delete", seq)
	}
	for _, sop := range []string{"1.2.3.1.1.1", "1.2.3.1.1.2"} {
		if err := ix.DeleteInstance(ctx, sop, 0); err != nil {
			t.Fatal(err)
		}
	}
	wantStats(t, ix, storage.Stats{})
	if _, err := ix.GetPatient(ctx, "P1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("empty patient not removed: %v", err)
	}
	n := 0
	ix.Studies(ctx, func(*storage.Study) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d studies left", n)
	}
}

func testAppliedSeq(t *testing.T, ix storage.Index) {
	if seq, err := ix.AppliedSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("empty AppliedSeq = %d, %v", seq, err)
	}
	put(t, ix, NewInstance("P", "1.2.3.1", "1.2.3.1.1", 1), 10)
	put(t, ix, NewInstance("P", "1.2.3.1", "1.2.3.1.1", 2), 0)
	if seq, _ := ix.AppliedSeq(ctx); seq != 10 {
		t.Fatalf("AppliedSeq = %d, want 10 (0 leaves it)", seq)
	}
	put(t, ix, NewInstance("P", "1.2.3.1", "1.2.3.1.1", 1), 5) // replay of older
	if seq, _ := ix.AppliedSeq(ctx); seq != 10 {
		t.Fatalf("AppliedSeq decreased to %d", seq)
	}
	put(t, ix, NewInstance("P", "1.2.3.1", "1.2.3.1.1", 3), 11)
	if seq, _ := ix.AppliedSeq(ctx); seq != 11 {
		t.Fatalf("AppliedSeq = %d, want 11", seq)
	}
}

func testListing(t *testing.T, ix storage.Index) {
	// > one page (256) of instances in a study, spread over 3 series.
	var want []string
	for s := 1; s <= 3; s++ {
		series := fmt.Sprintf("1.2.3.1.%d", s)
		for i := 1; i <= 120; i++ {
			in := NewInstance("P1", "1.2.3.1", series, i)
			put(t, ix, in, 0)
			want = append(want, in.SOPInstanceUID)
		}
	}
	for i := 0; i < 300; i++ {
		put(t, ix, NewInstance("P2", fmt.Sprintf("1.2.4.%d", i), fmt.Sprintf("1.2.4.%d.1", i), 1), 0)
	}
	// Order: by series UID, then SOP UID (lexical).
	sort.Strings(want)
	var got []string
	if err := ix.StudyInstances(ctx, "1.2.3.1", func(in *storage.Instance) error {
		got = append(got, in.SOPInstanceUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("StudyInstances: %d instances, want %d", len(got), len(want))
	}
	got = nil
	if err := ix.SeriesInstances(ctx, "1.2.3.1.2", func(in *storage.Instance) error {
		if in.SeriesInstanceUID != "1.2.3.1.2" {
			return fmt.Errorf("wrong series %s", in.SeriesInstanceUID)
		}
		got = append(got, in.SOPInstanceUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 120 || !sort.StringsAreSorted(got) {
		t.Fatalf("SeriesInstances: %d", len(got))
	}
	// Prefix isolation: series "1.2.3.1.1" must not include "1.2.3.1.10...".
	got = nil
	ix.SeriesInstances(ctx, "1.2.3.1.1", func(in *storage.Instance) error { got = append(got, in.SeriesInstanceUID); return nil })
	for _, s := range got {
		if s != "1.2.3.1.1" {
			t.Fatalf("SeriesInstances leaked series %s", s)
		}
	}
	var studies []string
	if err := ix.Studies(ctx, func(s *storage.Study) error { studies = append(studies, s.StudyInstanceUID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(studies) != 301 || !sort.StringsAreSorted(studies) {
		t.Fatalf("Studies: %d", len(studies))
	}
	// The callback may call back into the index, and errors stop iteration.
	stop := errors.New("stop")
	calls := 0
	err := ix.StudyInstances(ctx, "1.2.3.1", func(in *storage.Instance) error {
		calls++
		if _, err := ix.GetStudy(ctx, in.StudyInstanceUID); err != nil {
			return err
		}
		if calls == 300 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 300 {
		t.Fatalf("error propagation: %v after %d", err, calls)
	}
	if err := ix.Studies(ctx, func(*storage.Study) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Studies error propagation: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := ix.StudyInstances(cctx, "1.2.3.1", func(*storage.Instance) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}

func testNotFound(t *testing.T, ix storage.Index) {
	if _, err := ix.GetInstance(ctx, "9.9"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetInstance: %v", err)
	}
	if _, err := ix.GetStudy(ctx, "9.9"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetStudy: %v", err)
	}
	if _, err := ix.GetSeries(ctx, "9.9"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetSeries: %v", err)
	}
	if _, err := ix.GetPatient(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetPatient: %v", err)
	}
	if err := ix.StudyInstances(ctx, "9.9", func(*storage.Instance) error { return errors.New("called") }); err != nil {
		t.Fatalf("StudyInstances of unknown study: %v", err)
	}
	if err := ix.SeriesInstances(ctx, "9.9", func(*storage.Instance) error { return errors.New("called") }); err != nil {
		t.Fatalf("SeriesInstances of unknown series: %v", err)
	}
	wantStats(t, ix, storage.Stats{})
}

func testConcurrent(t *testing.T, ix storage.Index) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 1; i <= 50; i++ {
				in := NewInstance(fmt.Sprint("P", g%3), fmt.Sprintf("1.2.5.%d", g%4), fmt.Sprintf("1.2.5.%d.%d", g%4, g), i)
				if err := ix.PutInstance(ctx, in, uint64(g*1000+i)); err != nil {
					t.Error(err)
					return
				}
				if _, err := ix.GetStudy(ctx, in.StudyInstanceUID); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	st := stats(t, ix)
	if st.Instances != 400 || st.Series != 8 || st.Studies != 4 {
		t.Fatalf("stats after concurrent puts: %+v", st)
	}
	if seq, _ := ix.AppliedSeq(ctx); seq != 7050 {
		t.Fatalf("AppliedSeq = %d, want the max 7050", seq)
	}
}

func testInvalid(t *testing.T, ix storage.Index) {
	for _, in := range []*storage.Instance{
		NewInstance("P", "", "1.2", 1),
		NewInstance("P", "1.2/3", "1.2", 1),
		{SOPInstanceUID: "", SeriesInstanceUID: "1", StudyInstanceUID: "1"},
	} {
		if err := ix.PutInstance(ctx, in, 1); err == nil {
			t.Errorf("PutInstance accepted %q/%q/%q", in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID)
		}
	}
	wantStats(t, ix, storage.Stats{})
	// Patient IDs may contain '/' and be empty.
	put(t, ix, NewInstance("A/B", "1.2.6.1", "1.2.6.1.1", 1), 0)
	put(t, ix, NewInstance("A", "1.2.6.2", "1.2.6.2.1", 1), 0)
	put(t, ix, NewInstance("", "1.2.6.3", "1.2.6.3.1", 1), 0)
	for _, id := range []string{"A/B", "A", ""} {
		if p, err := ix.GetPatient(ctx, id); err != nil || p.Studies != 1 {
			t.Fatalf("patient %q: %+v %v", id, p, err)
		}
	}
}

func studyUIDs(t *testing.T, ix storage.Index, k storage.StudyKey, r storage.ValueRange) []string {
	t.Helper()
	var got []string
	if err := ix.StudiesBy(ctx, k, r, func(s *storage.Study) error {
		got = append(got, s.StudyInstanceUID)
		return nil
	}); err != nil {
		t.Fatalf("StudiesBy(%s, %+v): %v", k, r, err)
	}
	sort.Strings(got)
	return got
}

func testSecondary(t *testing.T, ix storage.Index) {
	mk := func(patient, name, study, date, acc, mod string, n int) *storage.Instance {
		in := NewInstance(patient, study, study+".1", n)
		in.SeriesInstanceUID = study + "." + mod
		in.SOPInstanceUID = in.SeriesInstanceUID + fmt.Sprintf(".%d", n)
		in.Attrs["00100010"] = name
		in.Attrs["00080020"] = date
		in.Attrs["00080050"] = acc
		in.Attrs["00080060"] = mod
		in.Attrs["0020000E"] = in.SeriesInstanceUID
		return in
	}
	a := mk("P1", "Smith^John", "1.1", "20260101", "A1", "CT", 1)
	b := mk("P2", "Yamada^Tarou=山田^太郎=やまだ^たろう", "1.2", "20260215", "A2", "MR", 1)
	c := mk("P1", "Smith^John", "1.3", "20261231", "A3", "CT", 1)
	c2 := mk("P1", "Smith^John", "1.3", "20261231", "A3", "SR", 2)
	for i, in := range []*storage.Instance{a, b, c, c2, c2} {
		put(t, ix, in, uint64(i+1))
	}
	cases := []struct {
		k    storage.StudyKey
		r    storage.ValueRange
		want []string
	}{
		{storage.StudyByPatientID, storage.ValueRange{Value: "P1", Exact: true}, []string{"1.1", "1.3"}},
		{storage.StudyByPatientID, storage.ValueRange{Value: "P", Exact: true}, nil},
		{storage.StudyByPatientName, storage.ValueRange{Value: "SMI"}, []string{"1.1", "1.3"}},
		{storage.StudyByPatientName, storage.ValueRange{Value: "山田"}, []string{"1.2"}},
		{storage.StudyByPatientName, storage.ValueRange{Value: "YAMADA^TAROU", Exact: true}, []string{"1.2"}},
		{storage.StudyByDate, storage.ValueRange{From: "20260201", To: "20261231"}, []string{"1.2", "1.3"}},
		{storage.StudyByDate, storage.ValueRange{To: "20260215"}, []string{"1.1", "1.2"}},
		{storage.StudyByDate, storage.ValueRange{Value: "20260101", Exact: true}, []string{"1.1"}},
		{storage.StudyByAccession, storage.ValueRange{Value: "A3", Exact: true}, []string{"1.3"}},
		{storage.StudyByModality, storage.ValueRange{Value: "SR", Exact: true}, []string{"1.3"}},
		{storage.StudyByModality, storage.ValueRange{Value: "CT", Exact: true}, []string{"1.1", "1.3"}},
	}
	for _, tc := range cases {
		if got := studyUIDs(t, ix, tc.k, tc.r); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("StudiesBy(%s, %+v) = %v, want %v", tc.k, tc.r, got, tc.want)
		}
	}
	var series []string
	if err := ix.StudySeries(ctx, "1.3", func(s *storage.Series) error {
		series = append(series, s.SeriesInstanceUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1.3.CT", "1.3.SR"}; !reflect.DeepEqual(series, want) {
		t.Errorf("StudySeries = %v, want %v", series, want)
	}
	var pats []string
	if err := ix.Patients(ctx, func(p *storage.Patient) error {
		pats = append(pats, fmt.Sprintf("%s:%d", p.PatientID, p.Studies))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"P1:2", "P2:1"}; !reflect.DeepEqual(pats, want) {
		t.Errorf("Patients = %v, want %v", pats, want)
	}
	// Deleting the only SR instance drops the study from the SR index;
	// deleting the whole study drops every key.
	if err := ix.DeleteInstance(ctx, c2.SOPInstanceUID, 10); err != nil {
		t.Fatal(err)
	}
	if got := studyUIDs(t, ix, storage.StudyByModality, storage.ValueRange{Value: "SR", Exact: true}); got != nil {
		t.Errorf("SR after delete: %v", got)
	}
	if err := ix.DeleteInstance(ctx, c.SOPInstanceUID, 11); err != nil {
		t.Fatal(err)
	}
	for _, k := range []storage.StudyKey{storage.StudyByPatientID, storage.StudyByPatientName, storage.StudyByDate, storage.StudyByAccession, storage.StudyByModality} {
		for _, uid := range studyUIDs(t, ix, k, storage.ValueRange{}) {
			if uid == "1.3" {
				t.Errorf("deleted study still in index %s", k)
			}
		}
	}
	// Moving an instance to another patient moves its study keys.
	moved := *a
	moved.Attrs = map[string]string{}
	for k, v := range a.Attrs {
		moved.Attrs[k] = v
	}
	moved.PatientID = "P9"
	moved.Attrs["00100020"] = "P9"
	put(t, ix, &moved, 12)
	if got := studyUIDs(t, ix, storage.StudyByPatientID, storage.ValueRange{Value: "P9", Exact: true}); !reflect.DeepEqual(got, []string{"1.1"}) {
		t.Errorf("after move: %v", got)
	}
	if got := studyUIDs(t, ix, storage.StudyByPatientID, storage.ValueRange{Value: "P1", Exact: true}); got != nil {
		t.Errorf("after move, P1: %v", got)
	}
}
