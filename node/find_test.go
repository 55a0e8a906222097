package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/retrieve"
	"github.com/relais-health/relais/storage"
)

// fillIndex puts n studies of one instance each straight into the index
// (C-FIND reads nothing else).
func fillIndex(t *testing.T, n *Node, studies int) {
	t.Helper()
	for i := 0; i < studies; i++ {
		study := fmt.Sprintf("1.2.3.%d", i)
		in := &storage.Instance{
			SOPInstanceUID: study + ".1.1", SOPClassUID: dicom.CTImageStorage, SeriesInstanceUID: study + ".1", StudyInstanceUID: study,
			PatientID: fmt.Sprintf("P%d", i%3), BlobKey: "x/" + study, Size: 1, ReceivedAt: time.Now(), CharacterSet: "ISO_IR 100",
			Attrs: map[string]string{"00100010": fmt.Sprintf("Müller^Jürgen%d", i%3), "00100020": fmt.Sprintf("P%d", i%3),
				"00080020": fmt.Sprintf("202601%02d", i+1), "00080060": "CT", "0020000D": study, "0020000E": study + ".1"},
		}
		if err := n.Index.PutInstance(context.Background(), in, 0); err != nil {
			t.Fatal(err)
		}
	}
}

type kv struct {
	tag dicom.Tag
	vr  dicom.VR
	val string
}

func identifier(t *testing.T, els ...kv) []byte {
	t.Helper()
	ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
	var b bytes.Buffer
	e := dicom.NewEncoder(&b, ts)
	for _, el := range els {
		if err := e.WriteString(el.tag, el.vr, el.val); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func dialFind(t *testing.T, n *Node) *dimse.Association {
	t.Helper()
	a, err := dimse.Dial(context.Background(), n.DICOMAddr().String(), dimse.DialOptions{
		CallingAE: "FINDSCU", CalledAE: "RELAIS",
		Contexts: []dimse.ProposedContext{
			{AbstractSyntax: query.StudyRootFind, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
			{AbstractSyntax: query.PatientRootFind, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Release(context.Background()) })
	return a
}

func TestCFindStatuses(t *testing.T) {
	level := func(l string) kv { return kv{dicom.TagQueryRetrieveLevel, "CS", l} }
	uid := kv{dicom.TagStudyInstanceUID, "UI", ""}
	cases := []struct {
		name     string
		mod      func(*config.Config)
		model    string
		id       []byte
		stopAt   int // cancel after this many pendings (0: never)
		want     uint16
		pendings int
		pendCode uint16
	}{
		{"study level", nil, query.StudyRootFind, identifier(t, kv{dicom.TagSpecificCharacterSet, "CS", "ISO_IR 192"}, level("STUDY"), kv{dicom.TagPatientName, "PN", "müller*"}, uid), 0, 0x0000, 5, 0xFF00},
		{"wildcard on one patient", nil, query.StudyRootFind, identifier(t, kv{dicom.TagSpecificCharacterSet, "CS", "ISO_IR 192"}, level("STUDY"), kv{dicom.TagPatientName, "PN", "*JÜRGEN1"}, uid), 0, 0x0000, 2, 0xFF00},
		{"date range", nil, query.StudyRootFind, identifier(t, kv{dicom.TagStudyDate, "DA", "20260102-20260103"}, level("STUDY"), uid), 0, 0x0000, 2, 0xFF00},
		{"unsupported key", nil, query.StudyRootFind, identifier(t, level("STUDY"), kv{dicom.NewTag(0x0018, 0x0050), "DS", "5"}, uid), 0, 0x0000, 5, 0xFF01},
		{"patient level in study root", nil, query.StudyRootFind, identifier(t, level("PATIENT"), uid), 0, 0xA900, 0, 0},
		{"unknown level", nil, query.PatientRootFind, identifier(t, level("FRAME"), uid), 0, 0xA900, 0, 0},
		{"missing level", nil, query.PatientRootFind, identifier(t, uid), 0, 0xA900, 0, 0},
		{"malformed identifier", nil, query.StudyRootFind, []byte{0x08, 0x00, 0x52, 0x00, 'C', 'S', 0x40, 0x00, 'S'}, 0, 0xC000, 0, 0},
		{"result limit", func(c *config.Config) { c.Limits.MaxFindResults = 2 }, query.StudyRootFind, identifier(t, level("STUDY"), uid), 0, 0xA700, 2, 0xFF00},
		{"cancel", nil, query.StudyRootFind, identifier(t, level("STUDY"), uid), 1, 0xFE00, 1, 0xFF00},
		{"not authorized", func(c *config.Config) { c.DICOM.QueryRetrieveLoopback = false }, query.StudyRootFind, identifier(t, level("STUDY"), uid), 0, 0x0124, 0, 0},
		{"patient root patient level", nil, query.PatientRootFind, identifier(t, level("PATIENT"), kv{dicom.TagPatientID, "LO", ""}), 0, 0x0000, 3, 0xFF00},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, tc.mod)
			studies := 5
			if tc.stopAt > 0 {
				studies = 5000 // so that the C-CANCEL-RQ arrives mid-way
			}
			fillIndex(t, n, studies)
			a := dialFind(t, n)
			pc, ok := a.FindContext(tc.model, dicom.ExplicitVRLittleEndian)
			if !ok {
				t.Fatal("FIND context not accepted")
			}
			got := 0
			st, err := a.Find(context.Background(), pc, tc.id, func(st dimse.Status, id []byte) bool {
				got++
				if st.Code != tc.pendCode {
					t.Errorf("pending status %04X, want %04X", st.Code, tc.pendCode)
				}
				ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
				if _, err := dicom.Scan(bytes.NewReader(id), ts, dicom.DefaultLimits(), dicom.WantAll); err != nil {
					t.Errorf("answer identifier: %v", err)
				}
				return tc.stopAt == 0 || got < tc.stopAt
			})
			if err != nil {
				t.Fatal(err)
			}
			if st.Code != tc.want || got != tc.pendings {
				t.Fatalf("final %04X (%s) after %d pendings, want %04X after %d", st.Code, st.Comment, got, tc.want, tc.pendings)
			}
			// The query is journaled with its status.
			var evs []*journal.Event
			deadline := time.Now().Add(3 * time.Second)
			for len(evs) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				journal.Query(context.Background(), filepath.Join(n.Config.DataDir, "journal"), journal.Filter{Kinds: []string{"query"}}, func(ev *journal.Event) error {
					e := *ev
					evs = append(evs, &e)
					return nil
				})
			}
			if len(evs) != 1 || evs[0].Status != fmt.Sprintf("%04X", tc.want) || evs[0].AE != "FINDSCU" {
				t.Fatalf("journal: %+v", evs)
			}
			var d struct{ Results int }
			json.Unmarshal(evs[0].Data, &d)
			if d.Results != tc.pendings && !(tc.stopAt > 0 && d.Results >= tc.pendings && d.Results < studies) {
				t.Errorf("journaled %d results, want %d", d.Results, tc.pendings)
			}
			if bytes.Contains(evs[0].Data, []byte("ller")) {
				t.Errorf("journal holds a key value: %s", evs[0].Data)
			}
		})
	}
}

// TestExtendedNegotiation: the node answers SOP Class Extended
// Negotiation for the query/retrieve SOP classes it accepted (PS3.4
// C.5.1.1: relational queries and combined date-time matching agreed,
// fuzzy person name matching and timezone adjustment refused; C-MOVE:
// relational retrieval agreed, enhanced multi-frame conversion refused)
// and for nothing else.
func TestExtendedNegotiation(t *testing.T) {
	n := startNode(t, nil)
	cases := []struct {
		class string
		asked []byte
		want  []byte // nil: no answer
	}{
		{query.StudyRootFind, []byte{1, 1, 1, 1}, []byte{1, 1, 0, 0}},
		{query.PatientRootFind, []byte{1}, []byte{1}},
		{retrieve.StudyRootMove, []byte{1, 1}, []byte{1, 0}},
		{retrieve.PatientRootGet, []byte{0, 1}, []byte{0, 0}},
		{dicom.CTImageStorage, []byte{1, 1, 1}, nil},
	}
	var pcs []dimse.ProposedContext
	var ext []dimse.SOPClassExtendedNegotiation
	for _, tc := range cases {
		pcs = append(pcs, dimse.ProposedContext{AbstractSyntax: tc.class, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}})
		ext = append(ext, dimse.SOPClassExtendedNegotiation{SOPClassUID: tc.class, Info: tc.asked})
	}
	a, err := dimse.Dial(context.Background(), n.DICOMAddr().String(), dimse.DialOptions{CallingAE: "FINDSCU", CalledAE: "RELAIS",
		Contexts: pcs, ExtendedNegotiation: ext})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(context.Background())
	got := a.Info().ExtendedNegotiation
	for _, tc := range cases {
		g, ok := got[tc.class]
		switch {
		case tc.want == nil && ok:
			t.Errorf("%s: answered % x, want no answer", tc.class, g)
		case tc.want != nil && !bytes.Equal(g, tc.want):
			t.Errorf("%s: answered % x, want % x", tc.class, g, tc.want)
		}
	}
}
