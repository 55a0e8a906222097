package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/fsblob"
	"github.com/relais-health/relais/storage/memindex"
)

func newPipeline(t *testing.T, dir string, ix storage.Index) *Pipeline {
	t.Helper()
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	b, err := fsblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &Pipeline{Blobs: b, Index: ix, Journal: j, Limits: dicom.DefaultLimits(), ImplementationClassUID: "1.2.3"}
}

func ct(t *testing.T, mod func(*testdicom.CT)) (*testdicom.CT, []byte) {
	t.Helper()
	c := &testdicom.CT{PatientName: "Doe^Jane", PatientID: "123", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(), Instance: 1, StudyDescription: "CT HEAD"}
	if mod != nil {
		mod(c)
	}
	ds, err := c.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	return c, ds
}

func request(c *testdicom.CT, ds []byte) *Request {
	return &Request{Source: storage.Source{Channel: "dimse", CallingAE: "CT1"}, SOPClassUID: dicom.CTImageStorage,
		SOPInstanceUID: c.SOPUID, TransferSyntaxUID: dicom.ExplicitVRLittleEndian, Data: bytes.NewReader(ds)}
}

func TestStoreIndexesAndKeepsBytes(t *testing.T) {
	ctx := context.Background()
	ix := memindex.New()
	p := newPipeline(t, t.TempDir(), ix)
	c, ds := ct(t, nil)
	res, err := p.Store(ctx, request(c, ds))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusSuccess || res.Duplicate {
		t.Fatalf("result %+v", res)
	}
	inst, err := ix.GetInstance(ctx, c.SOPUID)
	if err != nil {
		t.Fatal(err)
	}
	if inst.StudyInstanceUID != c.StudyUID || inst.PatientID != "123" || inst.Attrs["00100010"] != "Doe^Jane" || inst.Attrs["00081030"] != "CT HEAD" {
		t.Errorf("index record %+v", inst)
	}
	blob, err := p.Blobs.Open(ctx, inst.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()
	meta, off, err := dicom.ReadFileMeta(blob)
	if err != nil {
		t.Fatal(err)
	}
	if meta.MediaStorageSOPInstanceUID != c.SOPUID || meta.SourceApplicationEntityTitle != "CT1" {
		t.Errorf("meta %+v", meta)
	}
	blob.Seek(off, io.SeekStart)
	got, _ := io.ReadAll(blob)
	if !bytes.Equal(got, ds) {
		t.Errorf("stored data set differs")
	}
}

func TestStoreRefusals(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		mk     func() *Request
		status uint16
	}{
		{"SOP instance mismatch", func() *Request {
			c, ds := ct(t, nil)
			r := request(c, ds)
			r.SOPInstanceUID = testdicom.UID()
			return r
		}, StatusIdentifierMismatch},
		{"truncated", func() *Request {
			c, ds := ct(t, nil)
			return request(c, ds[:len(ds)-100])
		}, StatusCannotUnderstand},
		{"garbage", func() *Request {
			c, _ := ct(t, nil)
			return request(c, bytes.Repeat([]byte{0xff}, 1000))
		}, StatusCannotUnderstand},
		{"no study UID", func() *Request {
			c, ds := ct(t, func(c *testdicom.CT) { c.StudyUID = "" })
			return request(c, ds)
		}, StatusIdentifierMismatch},
		{"NUL inside the study UID", func() *Request {
			c, ds := ct(t, func(c *testdicom.CT) { c.StudyUID = "1.2.3\x004.5" })
			return request(c, ds)
		}, StatusCannotUnderstand},
		{"slash in the series UID", func() *Request {
			c, ds := ct(t, func(c *testdicom.CT) { c.SeriesUID = "1.2/3.4" })
			return request(c, ds)
		}, StatusCannotUnderstand},
		{"unknown syntax", func() *Request {
			c, ds := ct(t, nil)
			r := request(c, ds)
			r.TransferSyntaxUID = "1.2.3.4"
			return r
		}, StatusCannotUnderstand},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ix := memindex.New()
			p := newPipeline(t, dir, ix)
			_, err := p.Store(ctx, tc.mk())
			var ie *Error
			if !errors.As(err, &ie) || ie.Status != tc.status {
				t.Fatalf("err %v, want status %04X", err, tc.status)
			}
			// Nothing partial is left behind.
			n := 0
			p.Blobs.Walk(ctx, func(string, int64) error { n++; return nil })
			if n != 0 {
				t.Errorf("%d blobs left after a refusal", n)
			}
			st, _ := ix.Stats(ctx)
			if st.Instances != 0 {
				t.Errorf("refused instance indexed")
			}
		})
	}
}

func TestSOPClassMismatchIsAWarning(t *testing.T) {
	p := newPipeline(t, t.TempDir(), memindex.New())
	c, ds := ct(t, func(c *testdicom.CT) { c.SOPClassOverride = dicom.MRImageStorage })
	res, err := p.Store(context.Background(), request(c, ds))
	if err != nil || res.Status != StatusWarningMismatch {
		t.Fatalf("res %+v err %v, want B007", res, err)
	}
}

func TestDuplicatePolicies(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		policy     DuplicatePolicy
		sameBytes  bool
		wantErr    bool
		wantBlobs  int
		wantStored string // which version is indexed: "first" or "second"
	}{
		{KeepFirst, true, false, 1, "first"},
		{KeepFirst, false, false, 1, "first"},
		{Replace, true, false, 1, "first"},
		{Replace, false, false, 1, "second"},
		{Reject, false, true, 1, "first"},
	} {
		p := newPipeline(t, t.TempDir(), memindex.New())
		p.Duplicates = tc.policy
		c, ds := ct(t, nil)
		if _, err := p.Store(ctx, request(c, ds)); err != nil {
			t.Fatal(err)
		}
		first, _ := p.Index.GetInstance(ctx, c.SOPUID)
		c2 := *c
		if !tc.sameBytes {
			c2.PatientName = "Doe^John"
		}
		ds2, _ := c2.Dataset()
		res, err := p.Store(ctx, request(&c2, ds2))
		if (err != nil) != tc.wantErr {
			t.Fatalf("policy %d same %v: err %v", tc.policy, tc.sameBytes, err)
		}
		if err == nil && tc.policy != Replace && !res.Duplicate {
			t.Errorf("policy %d: not flagged duplicate", tc.policy)
		}
		if err == nil && res.Duplicate && res.Identical != tc.sameBytes {
			t.Errorf("policy %d: identical=%v, want %v", tc.policy, res.Identical, tc.sameBytes)
		}
		n := 0
		p.Blobs.Walk(ctx, func(string, int64) error { n++; return nil })
		if n != tc.wantBlobs {
			t.Errorf("policy %d same %v: %d blobs, want %d", tc.policy, tc.sameBytes, n, tc.wantBlobs)
		}
		now, _ := p.Index.GetInstance(ctx, c.SOPUID)
		if (now.Checksum == first.Checksum) != (tc.wantStored == "first") {
			t.Errorf("policy %d same %v: indexed version is not the %s", tc.policy, tc.sameBytes, tc.wantStored)
		}
		var dups int
		journal.Query(ctx, p.Journal.Dir(), journal.Filter{Kinds: []string{"instance.duplicate"}}, func(*journal.Event) error { dups++; return nil })
		_ = dups // AppendAsync: visible after the next group commit; checked in the e2e tests
	}
}

// TestRecoverReplaysJournal simulates a crash after durability but before
// the index write: a fresh index is rebuilt from the journal, and a record
// whose blob is short is skipped.
func TestRecoverReplaysJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newPipeline(t, dir, memindex.New())
	var sops []string
	for i := 0; i < 20; i++ {
		c, ds := ct(t, nil)
		if _, err := p.Store(ctx, request(c, ds)); err != nil {
			t.Fatal(err)
		}
		sops = append(sops, c.SOPUID)
	}
	// A record for a blob that never became whole.
	inst := &storage.Instance{SOPInstanceUID: "1.2.3.999", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.1", BlobKey: "zz/zz/missing.dcm", Size: 10}
	if _, err := p.commitRecordOnly(ctx, inst); err != nil {
		t.Fatal(err)
	}
	fresh := memindex.New()
	p2 := &Pipeline{Blobs: p.Blobs, Index: fresh, Journal: p.Journal, Limits: p.Limits}
	replayed, skipped, err := p2.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if replayed != 20 || skipped != 1 {
		t.Fatalf("replayed %d skipped %d, want 20 and 1", replayed, skipped)
	}
	for _, s := range sops {
		if _, err := fresh.GetInstance(ctx, s); err != nil {
			t.Errorf("%s not recovered", s)
		}
	}
	if _, err := fresh.GetInstance(ctx, "1.2.3.999"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unacknowledged record indexed")
	}
}

func TestConcurrentStoresShareFsyncs(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t, t.TempDir(), memindex.New())
	var wg sync.WaitGroup
	study, series := testdicom.UID(), testdicom.UID()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				c, ds := ct(t, func(c *testdicom.CT) { c.StudyUID, c.SeriesUID = study, series })
				if _, err := p.Store(ctx, request(c, ds)); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	st, _ := p.Index.Stats(ctx)
	if st.Instances != 160 || st.Studies != 1 || st.Series != 1 {
		t.Errorf("stats %+v", st)
	}
	if p.Journal.Syncs() >= p.Journal.Appends() {
		t.Errorf("no group commit: %d syncs for %d appends", p.Journal.Syncs(), p.Journal.Appends())
	}
}

// failingBlobs is a storage.Blobs whose writes fail, as on a full disk.
type failingBlobs struct {
	storage.Blobs
	failCommit bool
}

type failingWriter struct {
	storage.BlobWriter
	failCommit bool
}

func (f failingBlobs) Create(ctx context.Context, key string) (storage.BlobWriter, error) {
	w, err := f.Blobs.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return failingWriter{w, f.failCommit}, nil
}

func (f failingWriter) Write(p []byte) (int, error) {
	if f.failCommit {
		return f.BlobWriter.Write(p)
	}
	return 0, errors.New("no space left on device")
}

func (f failingWriter) Commit(ctx context.Context) error {
	if f.failCommit {
		return errors.New("fdatasync: input/output error")
	}
	return f.BlobWriter.Commit(ctx)
}

func TestStorageFailuresAreOutOfResources(t *testing.T) {
	for _, failCommit := range []bool{false, true} {
		ix := memindex.New()
		p := newPipeline(t, t.TempDir(), ix)
		inner, _ := fsblob.New(t.TempDir())
		p.Blobs = failingBlobs{Blobs: inner, failCommit: failCommit}
		c, ds := ct(t, nil)
		_, err := p.Store(context.Background(), request(c, ds))
		var ie *Error
		if !errors.As(err, &ie) || ie.Status != StatusOutOfResources {
			t.Fatalf("failCommit=%v: err %v, want A700", failCommit, err)
		}
		if _, err := ix.GetInstance(context.Background(), c.SOPUID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("failCommit=%v: a failed instance was indexed", failCommit)
		}
	}
}

// TestStoreKeepsSequences: the kept sequences go into Attrs as JSON item
// lists (storage.SequenceItemTags), item by item, and flow to the study
// and patient records.
func TestStoreKeepsSequences(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		mod    func(*testdicom.CT)
		opids  string // Attrs["00101002"]
		procs  string // Attrs["00081032"]
		absent bool
	}{
		{"no sequences", nil, "", "", true},
		{"two identifiers and a code", func(c *testdicom.CT) {
			c.OtherPatientIDs = []testdicom.OtherPatientID{{ID: "X1", Issuer: "HOSP-A", Type: "TEXT"}, {ID: "Y2"}}
			c.ProcedureCodes = []testdicom.Code{{Value: "CTHEAD", Scheme: "99LOCAL", Meaning: "CT Head"}}
		}, `[{"00100020":"X1","00100021":"HOSP-A","00100022":"TEXT"},{"00100020":"Y2"}]`,
			`[{"00080100":"CTHEAD","00080102":"99LOCAL","00080104":"CT Head"}]`, false},
		{"empty item kept", func(c *testdicom.CT) {
			c.OtherPatientIDs = []testdicom.OtherPatientID{{}, {ID: "Z"}}
		}, `[{},{"00100020":"Z"}]`, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := memindex.New()
			p := newPipeline(t, t.TempDir(), ix)
			c, ds := ct(t, tc.mod)
			if _, err := p.Store(ctx, request(c, ds)); err != nil {
				t.Fatal(err)
			}
			inst, err := ix.GetInstance(ctx, c.SOPUID)
			if err != nil {
				t.Fatal(err)
			}
			if got := inst.Attrs["00101002"]; got != tc.opids {
				t.Errorf("instance Other Patient IDs Sequence %s, want %s", got, tc.opids)
			}
			if got := inst.Attrs["00081032"]; got != tc.procs {
				t.Errorf("instance Procedure Code Sequence %s, want %s", got, tc.procs)
			}
			if _, ok := inst.Attrs["00100022"]; ok {
				t.Errorf("an item attribute leaked to the top level: %v", inst.Attrs)
			}
			st, err := ix.GetStudy(ctx, c.StudyUID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Attrs["00101002"] != tc.opids || st.Attrs["00081032"] != tc.procs {
				t.Errorf("study attrs %v", st.Attrs)
			}
			pt, err := ix.GetPatient(ctx, c.PatientID)
			if err != nil {
				t.Fatal(err)
			}
			if pt.Attrs["00101002"] != tc.opids {
				t.Errorf("patient attrs %v", pt.Attrs)
			}
			if _, ok := pt.Attrs["00081032"]; ok {
				t.Errorf("study-level sequence in the patient record: %v", pt.Attrs)
			}
			items, err := storage.DecodeItems(tc.opids)
			if err != nil || (tc.absent && items != nil) {
				t.Errorf("DecodeItems: %v %v", items, err)
			}
		})
	}
}

// TestSequenceItemsNested: a kept sequence nested in an item (Issuer of
// Accession Number in Request Attributes) is stored as its own JSON item
// list; attributes not kept for the sequence are left out.
func TestSequenceItemsNested(t *testing.T) {
	ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
	var issuer, item, b bytes.Buffer
	dicom.NewEncoder(&issuer, ts).WriteString(dicom.NewTag(0x0040, 0x0031), "UT", "RIS-1")
	ie := dicom.NewEncoder(&item, ts)
	ie.WriteString(dicom.TagAccessionNumber, "SH", "ACC9")
	ie.WriteSequence(dicom.NewTag(0x0008, 0x0051), [][]byte{issuer.Bytes()}, true)
	ie.WriteString(dicom.TagPatientName, "PN", "NOT^KEPT")
	ie.WriteString(dicom.NewTag(0x0040, 0x1001), "SH", "RP1")
	dicom.NewEncoder(&b, ts).WriteSequence(dicom.NewTag(0x0040, 0x0275), [][]byte{item.Bytes(), nil}, false)
	sr, err := dicom.Scan(bytes.NewReader(b.Bytes()), ts, dicom.DefaultLimits(), wantTag)
	if err != nil {
		t.Fatal(err)
	}
	el, ok := sr.Dataset.Get(dicom.NewTag(0x0040, 0x0275))
	if !ok {
		t.Fatal("Request Attributes Sequence not scanned")
	}
	want := `[{"00080050":"ACC9","00080051":"[{\"00400031\":\"RIS-1\"}]","00401001":"RP1"},{}]`
	if got := sequenceItems("00400275", el); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestExpectStudyInstanceUID(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		policy    DuplicatePolicy
		stored    bool // an instance with the same SOP Instance UID is already stored
		sameStudy bool
	}{
		{"same study", KeepFirst, false, true},
		{"other study", KeepFirst, false, false},
		{"other study, duplicate keep-first", KeepFirst, true, false},
		{"same study, duplicate keep-first", KeepFirst, true, true},
		{"other study, duplicate replace", Replace, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := memindex.New()
			p := newPipeline(t, t.TempDir(), ix)
			p.Duplicates = tc.policy
			c, ds := ct(t, nil)
			if tc.stored {
				if _, err := p.Store(ctx, request(c, ds)); err != nil {
					t.Fatal(err)
				}
				c2 := *c
				c2.PatientName = "Doe^John" // different bytes
				ds, _ = c2.Dataset()
			}
			rq := request(c, ds)
			rq.ExpectStudyInstanceUID = c.StudyUID
			if !tc.sameStudy {
				rq.ExpectStudyInstanceUID = testdicom.UID()
			}
			res, err := p.Store(ctx, rq)
			if tc.sameStudy {
				if err != nil || res.Status != StatusSuccess {
					t.Fatalf("res %+v err %v", res, err)
				}
			} else {
				var ie *Error
				if !errors.As(err, &ie) || ie.Status != StatusIdentifierMismatch || ie.Cause != "study-mismatch" {
					t.Fatalf("err %v, want A900 study-mismatch", err)
				}
			}
			want := 0
			if tc.stored || tc.sameStudy {
				want = 1
			}
			n := 0
			p.Blobs.Walk(ctx, func(string, int64) error { n++; return nil })
			st, _ := ix.Stats(ctx)
			if n != want || st.Instances != int64(want) {
				t.Errorf("%d blobs, %d indexed, want %d", n, st.Instances, want)
			}
			if tc.stored {
				inst, _ := ix.GetInstance(ctx, c.SOPUID)
				if inst.Attrs["00100010"] != "Doe^Jane" && !(tc.sameStudy && tc.policy == Replace) {
					t.Errorf("stored instance changed: %+v", inst.Attrs)
				}
			}
		})
	}
}

// TestOnDurableBeforeSafeSeq: every durable instance reaches OnDurable, and
// SafeSeq never passes an instance OnDurable has not seen.
func TestOnDurableBeforeSafeSeq(t *testing.T) {
	p := newPipeline(t, t.TempDir(), memindex.New())
	var mu sync.Mutex
	seen := map[uint64]bool{}
	p.OnDurable = func(inst *storage.Instance, kind string, seq uint64) {
		if kind != "instance.stored" || inst.SOPInstanceUID == "" {
			t.Errorf("OnDurable(%s, %q)", inst.SOPInstanceUID, kind)
		}
		mu.Lock()
		seen[seq] = true
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, ds := ct(t, nil)
			res, err := p.Store(context.Background(), request(c, ds))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if !seen[res.Seq] {
				t.Errorf("instance at seq %d not handed to OnDurable before Store returned", res.Seq)
			}
		}()
	}
	wg.Wait()
	safe := p.SafeSeq()
	n := 0
	err := p.Journal.Replay(context.Background(), 1, func(ev *journal.Event) error {
		if ev.Kind == "instance.stored" && ev.Seq <= safe {
			n++
			if !seen[ev.Seq] {
				t.Errorf("seq %d at or below SafeSeq %d never reached OnDurable", ev.Seq, safe)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("replay: %v, %d instance events below SafeSeq %d", err, n, safe)
	}
}
