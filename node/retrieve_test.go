package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/retrieve"
)

// testStudy is a study stored into a node by storeStudy.
type testStudy struct {
	study, patient string
	series         []string
	sops           []string          // in storing order
	data           map[string][]byte // data set by SOP UID, as stored
}

// storeStudy stores n CT slices in ts (two series) into the node with our SCU.
func storeStudy(t *testing.T, n *Node, count int, ts string) *testStudy {
	t.Helper()
	ctx := context.Background()
	a, err := dimse.Dial(ctx, n.DICOMAddr().String(), dimse.DialOptions{CallingAE: "MODALITY", CalledAE: "RELAIS",
		Contexts: []dimse.ProposedContext{{AbstractSyntax: dicom.CTImageStorage, TransferSyntaxes: []string{ts}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(ctx)
	pc, ok := a.FindContext(dicom.CTImageStorage, ts)
	if !ok {
		t.Fatalf("CT in %s not accepted", ts)
	}
	s := &testStudy{study: testdicom.UID(), patient: "PAT-" + strconv.Itoa(count) + "-" + ts[len(ts)-1:], series: []string{testdicom.UID(), testdicom.UID()}, data: map[string][]byte{}}
	for i := 0; i < count; i++ {
		c := &testdicom.CT{PatientName: "Retrieve^Test", PatientID: s.patient, StudyUID: s.study, SeriesUID: s.series[i%2],
			SOPUID: testdicom.UID(), Instance: i + 1, TransferSyntax: ts, Rows: 128, Columns: 128}
		ds, err := c.Dataset()
		if err != nil {
			t.Fatal(err)
		}
		st, err := a.Store(ctx, pc, dicom.CTImageStorage, c.SOPUID, bytes.NewReader(ds))
		if err != nil || st.Code != dimse.StatusSuccess {
			t.Fatalf("store: %v %v", st, err)
		}
		s.sops = append(s.sops, c.SOPUID)
		s.data[c.SOPUID] = ds
	}
	return s
}

// received is one instance a test destination got.
type received struct {
	ts   string
	data []byte
	// originator is the Move Originator AE Title of the C-STORE-RQ.
	originator string
}

// destination is an in-process C-STORE SCP standing for a move destination.
type destination struct {
	srv          *dimse.Server
	addr         *net.TCPAddr
	mu           sync.Mutex
	got          map[string]received
	associations atomic.Int32
	active       atomic.Int32 // C-STOREs being served
	maxActive    atomic.Int32
}

func startDestination(t *testing.T, delay time.Duration, syntaxes []string) *destination {
	t.Helper()
	d := &destination{got: map[string]received{}}
	mux := dimse.NewServeMux()
	mux.Handle(dimse.CStoreRQ, dicom.CTImageStorage, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		a := d.active.Add(1)
		defer d.active.Add(-1)
		for m := d.maxActive.Load(); a > m && !d.maxActive.CompareAndSwap(m, a); m = d.maxActive.Load() {
		}
		b, err := io.ReadAll(r.Data)
		if err != nil {
			w.Respond(dimse.Status{Code: dimse.StatusProcessingFailure}, nil)
			return
		}
		time.Sleep(delay)
		d.mu.Lock()
		d.got[r.Command.AffectedSOPInstanceUID] = received{r.Context.TransferSyntax, b, strings.TrimSpace(r.Command.MoveOriginatorAE)}
		d.mu.Unlock()
		w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
	}))
	d.srv = &dimse.Server{AETitle: "DEST", Handler: mux, TransferSyntaxes: syntaxes, OnEvent: func(ev dimse.Event) {
		if ev.Kind == dimse.AssociationAccepted {
			d.associations.Add(1)
		}
	}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.addr = l.Addr().(*net.TCPAddr)
	go d.srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.srv.Shutdown(ctx)
	})
	return d
}

func (d *destination) received() map[string]received {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]received, len(d.got))
	for k, v := range d.got {
		out[k] = v
	}
	return out
}

func (d *destination) remote(name, ae string, assocs int) config.RemoteAE {
	return config.RemoteAE{Name: name, AE: ae, Host: "127.0.0.1", Port: d.addr.Port, Associations: assocs}
}

// moveSCU sends one C-MOVE with our SCU and returns the final response.
func moveSCU(t *testing.T, ctx context.Context, n *Node, calling, class, dest string, keys retrieve.Keys,
	pending func(dimse.Command) bool) (dimse.Command, []byte) {
	t.Helper()
	a, err := dimse.Dial(context.Background(), n.DICOMAddr().String(), dimse.DialOptions{CallingAE: calling, CalledAE: "RELAIS",
		Contexts: []dimse.ProposedContext{{AbstractSyntax: class, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(context.Background())
	pc, ok := a.FindContext(class, "")
	if !ok {
		t.Fatalf("%s not accepted", class)
	}
	id, err := keys.Encode(pc.TransferSyntax)
	if err != nil {
		t.Fatal(err)
	}
	final, body, err := a.Do(ctx, pc, dimse.Command{Field: dimse.CMoveRQ, AffectedSOPClassUID: class, Priority: dimse.PriorityMedium, MoveDestination: dest},
		id, func(c dimse.Command, _ []byte) bool {
			if pending == nil {
				return true
			}
			return pending(c)
		})
	if err != nil {
		t.Fatalf("C-MOVE: %v", err)
	}
	return final, body
}

func count(p *uint16) int {
	if p == nil {
		return -1
	}
	return int(*p)
}

// journalOf waits for events of kind in the node's journal.
func journalOf(t *testing.T, n *Node, kind string, want int) []*journal.Event {
	t.Helper()
	var evs []*journal.Event
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs = evs[:0]
		journal.Query(context.Background(), filepath.Join(n.Config.DataDir, "journal"), journal.Filter{Kinds: []string{kind}}, func(ev *journal.Event) error {
			e := *ev
			evs = append(evs, &e)
			return nil
		})
		if len(evs) >= want || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMoveSCP(t *testing.T) {
	dest := startDestination(t, 0, nil)
	implicitOnly := startDestination(t, 0, []string{dicom.ImplicitVRLittleEndian})
	closed := func() int {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		return p
	}()
	n := startNode(t, func(c *config.Config) {
		c.RemoteAEs = []config.RemoteAE{dest.remote("dest", "DEST", 0), implicitOnly.remote("implicit", "IMPLICIT", 2),
			{Name: "gone", AE: "GONE", Host: "127.0.0.1", Port: closed, Associations: 2}}
	})
	s := storeStudy(t, n, 12, dicom.ExplicitVRLittleEndian)
	bySeries := func(i int) []string {
		var out []string
		for j, sop := range s.sops {
			if j%2 == i {
				out = append(out, sop)
			}
		}
		return out
	}
	cases := []struct {
		name      string
		class     string
		dest      string
		keys      retrieve.Keys
		status    uint16
		completed int
		failed    int
		want      []string // SOP UIDs expected at dest, byte-identical
		transcode bool     // expected at implicitOnly in implicit VR
	}{
		{"study", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, 0, 12, 0, s.sops, false},
		{"series", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "SERIES", Series: []string{s.series[1]}}, 0, 6, 0, bySeries(1), false},
		{"images as a list", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "IMAGE", Instances: []string{s.sops[0], s.sops[5], "1.2.3.4.404"}}, 0, 2, 0, []string{s.sops[0], s.sops[5]}, false},
		{"patient root, patient level", retrieve.PatientRootMove, "DEST", retrieve.Keys{Level: "PATIENT", PatientID: s.patient}, 0, 12, 0, s.sops, false},
		{"unknown study: nothing to do", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "STUDY", Studies: []string{"1.2.3.404"}}, 0, 0, 0, nil, false},
		{"destination takes implicit only: transcoded", retrieve.StudyRootMove, "IMPLICIT", retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, 0, 12, 0, s.sops, true},
		{"unknown destination", retrieve.StudyRootMove, "NOWHERE", retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, dimse.StatusMoveDestinationUnknown, 0, 0, nil, false},
		{"destination unreachable", retrieve.StudyRootMove, "GONE", retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, dimse.StatusOutOfResourcesSubOps, 0, 12, nil, false},
		{"patient level in study root", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "PATIENT", PatientID: s.patient}, dimse.StatusIdentifierMismatch, 0, 0, nil, false},
		{"no level", retrieve.StudyRootMove, "DEST", retrieve.Keys{Studies: []string{s.study}}, dimse.StatusIdentifierMismatch, 0, 0, nil, false},
		{"study level without study UID", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "STUDY", PatientID: s.patient}, dimse.StatusIdentifierMismatch, 0, 0, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest.mu.Lock()
			dest.got = map[string]received{}
			dest.mu.Unlock()
			final, body := moveSCU(t, context.Background(), n, "VIEWER", tc.class, tc.dest, tc.keys, nil)
			if final.Status.Code != tc.status {
				t.Fatalf("status %v, want %04X", final.Status, tc.status)
			}
			if tc.status == dimse.StatusMoveDestinationUnknown || tc.status == dimse.StatusIdentifierMismatch {
				return
			}
			if count(final.Completed) != tc.completed || count(final.Failed) != tc.failed {
				t.Errorf("completed %d failed %d, want %d and %d", count(final.Completed), count(final.Failed), tc.completed, tc.failed)
			}
			if tc.failed > 0 {
				sr, err := dicom.Scan(bytes.NewReader(body), dicom.TransferSyntax{ExplicitVR: true}, dicom.DefaultLimits(), dicom.WantAll)
				if err != nil {
					t.Fatal(err)
				}
				uids, _ := sr.Dataset.Strings(retrieve.TagFailedSOPInstanceUIDList)
				if len(uids) != tc.failed {
					t.Errorf("Failed SOP Instance UID List has %d UIDs, want %d", len(uids), tc.failed)
				}
			}
			at := dest
			if tc.transcode {
				at = implicitOnly
			}
			got := at.received()
			if len(got) != len(tc.want) {
				t.Errorf("destination got %d instances, want %d", len(got), len(tc.want))
			}
			for _, sop := range tc.want {
				r, ok := got[sop]
				if ok && r.originator != "VIEWER" {
					t.Errorf("%s: C-STORE sub-operation carries Move Originator AE %q, want VIEWER", sop, r.originator)
				}
				switch {
				case !ok:
					t.Errorf("%s not received", sop)
				case tc.transcode:
					var want bytes.Buffer
					from, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
					to, _ := dicom.LookupTransferSyntax(dicom.ImplicitVRLittleEndian)
					if err := dicom.Transcode(&want, bytes.NewReader(s.data[sop]), from, to, dicom.DefaultLimits()); err != nil {
						t.Fatal(err)
					}
					if r.ts != dicom.ImplicitVRLittleEndian || !bytes.Equal(r.data, want.Bytes()) {
						t.Errorf("%s: received in %s, %d bytes; want implicit VR, %d bytes", sop, r.ts, len(r.data), want.Len())
					}
				case r.ts != dicom.ExplicitVRLittleEndian || !bytes.Equal(r.data, s.data[sop]):
					t.Errorf("%s: received in %s, not byte-identical", sop, r.ts)
				}
			}
		})
	}
	// Four associations by default: the study went over all of them.
	if a := dest.associations.Load(); a < 4 {
		t.Errorf("destination saw %d associations, want at least 4 (parallel sub-operations)", a)
	}
	evs := journalOf(t, n, "retrieve.move", len(cases))
	statuses := map[string]int{}
	for _, ev := range evs {
		statuses[ev.Status]++
		if ev.AE != "VIEWER" {
			t.Errorf("journal entry with AE %q", ev.AE)
		}
	}
	if statuses["A801"] != 1 || statuses["A702"] != 1 || statuses["A900"] != 3 || statuses["0000"] != 6 {
		t.Errorf("journaled statuses %v", statuses)
	}
	if fails := journalOf(t, n, "retrieve.failure", 12); len(fails) != 12 || !strings.Contains(fails[0].Reason, "unreachable") {
		t.Errorf("retrieve.failure events: %d", len(fails))
	}
}

func TestMoveNotAuthorized(t *testing.T) {
	dest := startDestination(t, 0, nil)
	n := startNode(t, func(c *config.Config) {
		c.DICOM.QueryRetrieveLoopback = false
		c.DICOM.QueryRetrieveCallers = []config.Caller{{AE: "VIEWER"}}
		c.RemoteAEs = []config.RemoteAE{dest.remote("dest", "DEST", 1)}
	})
	s := storeStudy(t, n, 2, dicom.ExplicitVRLittleEndian)
	keys := retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}
	final, _ := moveSCU(t, context.Background(), n, "STRANGER", retrieve.StudyRootMove, "DEST", keys, nil)
	if final.Status.Code != dimse.StatusNotAuthorized {
		t.Fatalf("stranger: status %v, want 0124", final.Status)
	}
	if len(dest.received()) != 0 {
		t.Error("a refused move sent instances")
	}
	// The same request from a configured caller goes through.
	final, _ = moveSCU(t, context.Background(), n, "VIEWER", retrieve.StudyRootMove, "DEST", keys, nil)
	if final.Status.Code != dimse.StatusSuccess || len(dest.received()) != 2 {
		t.Fatalf("viewer: status %v, %d received", final.Status, len(dest.received()))
	}
	// C-GET is refused the same way.
	_, err := retrieve.Get(context.Background(), n.DICOMAddr().String(), retrieve.GetOptions{ClientOptions: retrieve.ClientOptions{CallingAE: "STRANGER", CalledAE: "RELAIS"}},
		keys, func(context.Context, *retrieve.Received) error { return nil })
	var st dimse.Status
	if !errors.As(err, &st) || st.Code != dimse.StatusNotAuthorized {
		t.Fatalf("C-GET by a stranger: %v", err)
	}
	evs := journalOf(t, n, "retrieve", 3)
	got := map[string]bool{}
	for _, ev := range evs {
		got[ev.Kind+" "+ev.AE+" "+ev.Status] = true
	}
	for _, want := range []string{"retrieve.move STRANGER 0124", "retrieve.move VIEWER 0000", "retrieve.get STRANGER 0124"} {
		if !got[want] {
			t.Errorf("journal lacks %q: %v", want, got)
		}
	}
}

func TestMoveCancel(t *testing.T) {
	dest := startDestination(t, 40*time.Millisecond, nil)
	n := startNode(t, func(c *config.Config) { c.RemoteAEs = []config.RemoteAE{dest.remote("dest", "DEST", 2)} })
	s := storeStudy(t, n, 40, dicom.ExplicitVRLittleEndian)
	keys := retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}
	var pendings int
	final, _ := moveSCU(t, context.Background(), n, "VIEWER", retrieve.StudyRootMove, "DEST", keys, func(c dimse.Command) bool {
		pendings++
		if count(c.Remaining) <= 0 || count(c.Completed) < 0 {
			t.Errorf("pending without counts: remaining %d completed %d", count(c.Remaining), count(c.Completed))
		}
		return false // C-CANCEL at the first pending
	})
	if final.Status.Code != dimse.StatusCancel {
		t.Fatalf("status %v, want FE00", final.Status)
	}
	done := count(final.Completed)
	if pendings != 1 || done <= 0 || done >= 40 {
		t.Errorf("%d pendings, %d completed before the cancel took effect", pendings, done)
	}
	// In-flight stores finished (none torn), and nothing started after.
	time.Sleep(200 * time.Millisecond)
	if got := len(dest.received()); got != done {
		t.Errorf("destination has %d instances, final response said %d completed", got, done)
	}
	evs := journalOf(t, n, "retrieve.move", 1)
	if len(evs) != 1 || evs[0].Status != "FE00" {
		t.Fatalf("journal: %+v", evs)
	}
	// The node still serves: the full move succeeds afterwards.
	final, _ = moveSCU(t, context.Background(), n, "VIEWER", retrieve.StudyRootMove, "DEST", keys, nil)
	if final.Status.Code != dimse.StatusSuccess || count(final.Completed) != 40 {
		t.Fatalf("move after cancel: %v, %d completed", final.Status, count(final.Completed))
	}
}

func TestGetSCP(t *testing.T) {
	n := startNode(t, nil)
	s := storeStudy(t, n, 6, dicom.ExplicitVRLittleEndian)
	keys := retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}
	cases := []struct {
		name     string
		syntaxes [][]string
		classes  []string
		wantTS   string
		status   uint16
	}{
		{"as stored", nil, nil, dicom.ExplicitVRLittleEndian, dimse.StatusSuccess},
		{"implicit only: transcoded", [][]string{{dicom.ImplicitVRLittleEndian}}, []string{dicom.CTImageStorage}, dicom.ImplicitVRLittleEndian, dimse.StatusSuccess},
		{"JPEG only: every sub-operation fails", [][]string{{dicom.JPEGBaseline8Bit}}, []string{dicom.CTImageStorage}, "", dimse.StatusWarningSubOpsFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[string]received{}
			var progress []retrieve.Counts
			opts := retrieve.GetOptions{ClientOptions: retrieve.ClientOptions{CallingAE: "VIEWER", CalledAE: "RELAIS",
				Progress: func(c retrieve.Counts) { progress = append(progress, c) }},
				StorageClasses: tc.classes, TransferSyntaxes: tc.syntaxes}
			res, err := retrieve.Get(context.Background(), n.DICOMAddr().String(), opts, keys, func(ctx context.Context, in *retrieve.Received) error {
				b, err := io.ReadAll(in.Data)
				if err != nil {
					return err
				}
				mu.Lock()
				got[in.SOPInstanceUID] = received{ts: in.TransferSyntaxUID, data: b}
				mu.Unlock()
				return nil
			})
			if err != nil || res.Status.Code != tc.status {
				t.Fatalf("C-GET: %v %v", res.Status, err)
			}
			if tc.wantTS == "" {
				if res.Failed != 6 || len(res.FailedUIDs) != 6 || len(got) != 0 {
					t.Errorf("failed %d (%d UIDs listed), received %d", res.Failed, len(res.FailedUIDs), len(got))
				}
				return
			}
			if res.Completed != 6 || len(got) != 6 {
				t.Fatalf("completed %d, received %d", res.Completed, len(got))
			}
			for sop, r := range got {
				want := s.data[sop]
				if tc.wantTS != dicom.ExplicitVRLittleEndian {
					var b bytes.Buffer
					from, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
					to, _ := dicom.LookupTransferSyntax(tc.wantTS)
					dicom.Transcode(&b, bytes.NewReader(want), from, to, dicom.DefaultLimits())
					want = b.Bytes()
				}
				if r.ts != tc.wantTS || !bytes.Equal(r.data, want) {
					t.Errorf("%s: in %s, %d bytes, want %s, %d bytes", sop, r.ts, len(r.data), tc.wantTS, len(want))
				}
			}
		})
	}
	if evs := journalOf(t, n, "retrieve.get", 3); len(evs) != 3 {
		t.Errorf("%d retrieve.get events, want 3", len(evs))
	}
}

func TestRemoteAEAssociationsConfig(t *testing.T) {
	cases := []struct {
		yaml string
		want int
		err  string
	}{
		{"remote_aes: [{name: a, ae: A, host: h, port: 104}]", config.DefaultMoveAssociations, ""},
		{"remote_aes: [{name: a, ae: A, host: h, port: 104, associations: 8}]", 8, ""},
		{"remote_aes: [{name: a, ae: A, host: h, port: 104, associations: 99}]", 0, "remote_aes[0].associations"},
		{"remote_aes: [{name: a, ae: A, host: h, port: 104, associations: -1}]", 0, "remote_aes[0].associations"},
		{"limits: {move_associations: 0}\nremote_aes: [{name: a, ae: A, host: h, port: 104}]", 0, "limits.move_associations"},
	}
	for _, tc := range cases {
		c, err := config.Parse([]byte(tc.yaml))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one naming %s", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if got := c.RemoteAEs[0].MoveAssociations(); got != tc.want {
			t.Errorf("%s: %d associations, want %d", tc.yaml, got, tc.want)
		}
	}
}

// TestMoveAssociationsLimit: limits.move_associations caps the
// sub-operation associations open at once, whatever the destination asks.
func TestMoveAssociationsLimit(t *testing.T) {
	dest := startDestination(t, 5*time.Millisecond, nil)
	n := startNode(t, func(c *config.Config) {
		c.Limits.MoveAssociations = 1
		c.RemoteAEs = []config.RemoteAE{dest.remote("dest", "DEST", 4)}
	})
	s := storeStudy(t, n, 8, dicom.ExplicitVRLittleEndian)
	final, _ := moveSCU(t, context.Background(), n, "VIEWER", retrieve.StudyRootMove, "DEST", retrieve.Keys{Level: "STUDY", Studies: []string{s.study}}, nil)
	if final.Status.Code != dimse.StatusSuccess || count(final.Completed) != 8 {
		t.Fatalf("status %v, %d completed", final.Status, count(final.Completed))
	}
	if m := dest.maxActive.Load(); m != 1 {
		t.Errorf("%d C-STORE sub-operations at once over a single allowed association", m)
	}
}

// TestGetCancel: a C-CANCEL during a C-GET stops the sub-operations on the
// requestor's own association; the final status is FE00 and the
// association stays usable.
func TestGetCancel(t *testing.T) {
	n := startNode(t, nil)
	s := storeStudy(t, n, 40, dicom.ExplicitVRLittleEndian)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int32
	opts := retrieve.GetOptions{ClientOptions: retrieve.ClientOptions{CallingAE: "VIEWER", CalledAE: "RELAIS",
		Progress: func(retrieve.Counts) { cancel() }}, StorageClasses: []string{dicom.CTImageStorage}}
	res, err := retrieve.Get(ctx, n.DICOMAddr().String(), opts, retrieve.Keys{Level: "STUDY", Studies: []string{s.study}},
		func(ctx context.Context, in *retrieve.Received) error {
			io.Copy(io.Discard, in.Data)
			time.Sleep(20 * time.Millisecond)
			got.Add(1)
			return nil
		})
	if err != nil || res.Status.Code != dimse.StatusCancel {
		t.Fatalf("cancelled C-GET: %v %v", res.Status, err)
	}
	if res.Completed == 0 || res.Completed >= 40 || int(got.Load()) != res.Completed {
		t.Errorf("%d completed, %d received", res.Completed, got.Load())
	}
	if evs := journalOf(t, n, "retrieve.get", 1); len(evs) != 1 || evs[0].Status != "FE00" {
		t.Errorf("journal: %+v", evs)
	}
}
