package retrieve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/memindex"
)

func TestIdentifierRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		keys  Keys
		class string
		err   bool
	}{
		{"study list", Keys{Level: "STUDY", Studies: []string{"1.2.3", "1.2.4"}}, StudyRootMove, false},
		{"series", Keys{Level: "SERIES", Studies: []string{"1.2"}, Series: []string{"1.2.3.1"}}, StudyRootGet, false},
		{"image", Keys{Level: "IMAGE", Instances: []string{"1.2.3.4.5"}}, PatientRootMove, false},
		{"patient in patient root", Keys{Level: "PATIENT", PatientID: "P1"}, PatientRootGet, false},
		{"patient in study root", Keys{Level: "PATIENT", PatientID: "P1"}, StudyRootMove, true},
		{"series without series UID", Keys{Level: "SERIES", Studies: []string{"1.2"}}, StudyRootMove, true},
		{"unknown level", Keys{Level: "FRAME", Instances: []string{"1"}}, StudyRootMove, true},
	}
	for _, tc := range cases {
		for _, ts := range []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian} {
			t.Run(tc.name+"/"+ts, func(t *testing.T) {
				b, err := tc.keys.Encode(ts)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ParseIdentifier(b, ts, tc.class)
				if tc.err {
					var st dimse.Status
					if !errors.Is(err, ErrIdentifier) || !errors.As(err, &st) || st.Code != dimse.StatusIdentifierMismatch {
						t.Fatalf("error %v, want an A900 identifier error", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.keys) {
					t.Errorf("decoded %+v, want %+v", got, tc.keys)
				}
			})
		}
	}
	if _, err := ParseIdentifier([]byte{1, 2, 3}, dicom.ExplicitVRLittleEndian, StudyRootMove); !errors.Is(err, ErrIdentifier) {
		t.Errorf("garbage identifier: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	cases := []struct {
		in   string
		want Keys
		err  bool
	}{
		{"StudyInstanceUID=1.2.3", Keys{Studies: []string{"1.2.3"}}, false},
		{`StudyInstanceUID=1.2.3\1.2.4`, Keys{Studies: []string{"1.2.3", "1.2.4"}}, false},
		{"0020,000E=9.8", Keys{Series: []string{"9.8"}}, false},
		{"SOPInstanceUID=5.6", Keys{Instances: []string{"5.6"}}, false},
		{"PatientID= P 1 ", Keys{PatientID: "P 1"}, false},
		{"QueryRetrieveLevel=series", Keys{Level: "SERIES"}, false},
		{"PatientName=X", Keys{}, true},
		{"StudyInstanceUID", Keys{}, true},
	}
	for _, tc := range cases {
		var k Keys
		err := k.ParseKey(tc.in)
		if (err != nil) != tc.err || fmt.Sprint(k) != fmt.Sprint(tc.want) {
			t.Errorf("%q: %+v %v, want %+v (error %v)", tc.in, k, err, tc.want, tc.err)
		}
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	ix := memindex.New()
	put := func(patient, study, series, sop string) {
		if err := ix.PutInstance(ctx, &storage.Instance{SOPInstanceUID: sop, SOPClassUID: dicom.CTImageStorage, StudyInstanceUID: study,
			SeriesInstanceUID: series, PatientID: patient, BlobKey: sop, TransferSyntaxUID: dicom.ExplicitVRLittleEndian}, 0); err != nil {
			t.Fatal(err)
		}
	}
	put("P1", "1.1", "1.1.1", "1.1.1.1")
	put("P1", "1.1", "1.1.1", "1.1.1.2")
	put("P1", "1.1", "1.1.2", "1.1.2.1")
	put("P1", "1.2", "1.2.1", "1.2.1.1")
	put("P2", "2.1", "2.1.1", "2.1.1.1")
	cases := []struct {
		name string
		keys Keys
		want []string
	}{
		{"study", Keys{Level: "STUDY", Studies: []string{"1.1"}}, []string{"1.1.1.1", "1.1.1.2", "1.1.2.1"}},
		{"two studies, one unknown", Keys{Level: "STUDY", Studies: []string{"2.1", "9.9", "1.2"}}, []string{"2.1.1.1", "1.2.1.1"}},
		{"series", Keys{Level: "SERIES", Series: []string{"1.1.2"}}, []string{"1.1.2.1"}},
		{"images, repeated", Keys{Level: "IMAGE", Instances: []string{"1.2.1.1", "1.2.1.1", "404"}}, []string{"1.2.1.1"}},
		{"patient", Keys{Level: "PATIENT", PatientID: "P1"}, []string{"1.1.1.1", "1.1.1.2", "1.1.2.1", "1.2.1.1"}},
		{"unknown patient", Keys{Level: "PATIENT", PatientID: "P9"}, nil},
	}
	for _, tc := range cases {
		got, err := Resolve(ctx, ix, tc.keys)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var uids []string
		for _, in := range got {
			uids = append(uids, in.SOPInstanceUID)
		}
		if fmt.Sprint(uids) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, uids, tc.want)
		}
	}
}

// memBlobs serves blobs from memory.
type memBlobs struct {
	storage.Blobs
	m map[string][]byte
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

func (b memBlobs) Open(_ context.Context, key string) (storage.Blob, error) {
	d, ok := b.m[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return memBlob{bytes.NewReader(d)}, nil
}

// fakeLane records what it is asked to store.
type fakeLane struct {
	pcs   []dimse.PresentationContext
	delay time.Duration
	fail  map[string]dimse.Status
	mu    *sync.Mutex
	got   map[string][]byte
	lane  map[string]int
	id    int
}

func (l *fakeLane) Contexts() []dimse.PresentationContext { return l.pcs }
func (l *fakeLane) Close(context.Context) error           { return nil }
func (l *fakeLane) Store(ctx context.Context, pc dimse.PresentationContext, class, sop string, data io.Reader) (dimse.Status, error) {
	b, err := io.ReadAll(data)
	if err != nil {
		return dimse.Status{}, err
	}
	time.Sleep(l.delay)
	if st, ok := l.fail[sop]; ok {
		return st, nil
	}
	l.mu.Lock()
	l.got[sop] = b
	l.lane[sop] = l.id
	l.mu.Unlock()
	return dimse.Status{Code: dimse.StatusSuccess}, nil
}

func TestExecute(t *testing.T) {
	blobs := memBlobs{m: map[string][]byte{}}
	var insts []*storage.Instance
	want := map[string][]byte{}
	for i := 0; i < 20; i++ {
		c := &testdicom.CT{PatientID: "P", StudyUID: "1.2", SeriesUID: "1.2.3", SOPUID: testdicom.UID(), Instance: i + 1}
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		ds, _ := c.Dataset()
		blobs.m[c.SOPUID] = f
		want[c.SOPUID] = ds
		insts = append(insts, &storage.Instance{SOPInstanceUID: c.SOPUID, SOPClassUID: dicom.CTImageStorage, StudyInstanceUID: "1.2",
			TransferSyntaxUID: dicom.ExplicitVRLittleEndian, BlobKey: c.SOPUID})
	}
	insts = append(insts, &storage.Instance{SOPInstanceUID: "9.9", SOPClassUID: dicom.CTImageStorage, StudyInstanceUID: "1.2",
		TransferSyntaxUID: dicom.ExplicitVRLittleEndian, BlobKey: "missing"})
	explicit := []dimse.PresentationContext{{ID: 1, AbstractSyntax: dicom.CTImageStorage, TransferSyntax: dicom.ExplicitVRLittleEndian}}
	jpeg := []dimse.PresentationContext{{ID: 1, AbstractSyntax: dicom.CTImageStorage, TransferSyntax: dicom.JPEGBaseline8Bit}}
	refused := map[string]dimse.Status{insts[3].SOPInstanceUID: {Code: dimse.StatusOutOfResources}}
	cases := []struct {
		name      string
		pcs       []dimse.PresentationContext
		openFails int // lanes failing to open
		parallel  int
		fail      map[string]dimse.Status
		cancel    bool
		status    uint16
		completed int
		failed    int
		lanes     int
	}{
		{"four lanes", explicit, 0, 4, nil, false, dimse.StatusWarningSubOpsFailed, 20, 1, 4},
		{"two lanes fail to open", explicit, 2, 4, nil, false, dimse.StatusWarningSubOpsFailed, 20, 1, 2},
		{"no lane opens", explicit, 4, 4, nil, false, dimse.StatusOutOfResourcesSubOps, 0, 21, 0},
		{"refused by destination", explicit, 0, 2, refused, false, dimse.StatusWarningSubOpsFailed, 19, 2, 2},
		{"no usable context", jpeg, 0, 1, nil, false, dimse.StatusWarningSubOpsFailed, 0, 21, 0},
		{"cancelled", explicit, 0, 2, nil, true, dimse.StatusCancel, -1, -1, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu := &sync.Mutex{}
			got, lanes := map[string][]byte{}, map[string]int{}
			var opened atomic.Int32
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var progress []Counts
			r := &Run{Blobs: blobs, Instances: insts, Parallel: tc.parallel, Interval: 5 * time.Millisecond,
				Lanes: func(ctx context.Context, i int) (Lane, error) {
					if int(opened.Add(1)) <= tc.openFails {
						return nil, errors.New("connection refused")
					}
					return &fakeLane{pcs: tc.pcs, delay: 2 * time.Millisecond, fail: tc.fail, mu: mu, got: got, lane: lanes, id: i}, nil
				},
				Progress: func(c Counts) {
					progress = append(progress, c)
					if tc.cancel && c.Completed > 0 {
						cancel()
					}
				}}
			out := r.Execute(ctx)
			if out.Status.Code != tc.status {
				t.Fatalf("status %v, want %04X", out.Status, tc.status)
			}
			if tc.cancel {
				if out.Completed+out.Failed+out.Remaining != 21 || out.Remaining == 0 || len(got) != out.Completed {
					t.Errorf("cancelled: %+v, %d stored", out.Counts, len(got))
				}
				return
			}
			if out.Completed != tc.completed || out.Failed != tc.failed || out.Remaining != 0 || len(out.Failures) != tc.failed {
				t.Errorf("counts %+v (%d failures), want %d completed, %d failed", out.Counts, len(out.Failures), tc.completed, tc.failed)
			}
			for sop, b := range got {
				if !bytes.Equal(b, want[sop]) {
					t.Errorf("%s: data set differs from the blob's", sop)
				}
			}
			used := map[int]bool{}
			for _, l := range lanes {
				used[l] = true
			}
			if len(used) != tc.lanes {
				t.Errorf("%d lanes used, want %d", len(used), tc.lanes)
			}
			if out.Failed > 0 && len(out.Identifier(dicom.ExplicitVRLittleEndian)) == 0 {
				t.Error("no Failed SOP Instance UID List")
			}
			for i := 1; i < len(progress); i++ {
				if progress[i].Remaining > progress[i-1].Remaining {
					t.Errorf("remaining grew: %+v", progress)
				}
			}
		})
	}
}

func TestProposeContexts(t *testing.T) {
	insts := []*storage.Instance{
		{SOPClassUID: dicom.CTImageStorage, TransferSyntaxUID: dicom.ImplicitVRLittleEndian},
		{SOPClassUID: dicom.CTImageStorage, TransferSyntaxUID: dicom.ExplicitVRLittleEndian},
		{SOPClassUID: dicom.CTImageStorage, TransferSyntaxUID: dicom.JPEGBaseline8Bit},
		{SOPClassUID: dicom.MRImageStorage, TransferSyntaxUID: dicom.JPEG2000},
	}
	got := ProposeContexts(insts)
	want := fmt.Sprint([]dimse.ProposedContext{
		{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
		{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
		{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.JPEGBaseline8Bit}},
		{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian}},
		{AbstractSyntax: dicom.MRImageStorage, TransferSyntaxes: []string{dicom.JPEG2000}},
	})
	if fmt.Sprint(got) != want {
		t.Errorf("contexts\n%v\nwant\n%v", got, want)
	}
	pcs := []dimse.PresentationContext{
		{ID: 1, AbstractSyntax: dicom.CTImageStorage, TransferSyntax: dicom.ImplicitVRLittleEndian},
		{ID: 3, AbstractSyntax: dicom.MRImageStorage, TransferSyntax: dicom.ExplicitVRLittleEndian},
	}
	for _, tc := range []struct {
		class, ts string
		id        uint8
	}{
		{dicom.CTImageStorage, dicom.ImplicitVRLittleEndian, 1},
		{dicom.CTImageStorage, dicom.ExplicitVRBigEndian, 1},
		{dicom.CTImageStorage, dicom.JPEGBaseline8Bit, 0},
		{dicom.MRImageStorage, dicom.ImplicitVRLittleEndian, 3},
		{dicom.SecondaryCaptureImageStorage, dicom.ImplicitVRLittleEndian, 0},
	} {
		pc, ok := PickContext(pcs, tc.class, tc.ts)
		if pc.ID != tc.id || ok != (tc.id != 0) {
			t.Errorf("PickContext(%s, %s) = %d %v, want %d", tc.class, tc.ts, pc.ID, ok, tc.id)
		}
	}
}
