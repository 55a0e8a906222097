package dicom_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

var (
	editImplicit, _ = dicom.LookupTransferSyntax(dicom.ImplicitVRLittleEndian)
	editExplicit, _ = dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
	editBig, _      = dicom.LookupTransferSyntax(dicom.ExplicitVRBigEndian)
	editJPEG, _     = dicom.LookupTransferSyntax(dicom.JPEGBaseline8Bit)
	editDeflated, _ = dicom.LookupTransferSyntax(dicom.DeflatedExplicitVRLittleEndian)
	editNative      = []dicom.TransferSyntax{editImplicit, editExplicit, editBig}
)

const (
	tagInstitutionName        dicom.Tag = 0x00080080
	tagTypeOfPatientID        dicom.Tag = 0x00100022
	tagIssuerQualifiersSeq    dicom.Tag = 0x00100024
	tagUniversalEntityID      dicom.Tag = 0x00400032
	tagUniversalEntityIDType  dicom.Tag = 0x00400033
	tagOriginalAttributesSeq  dicom.Tag = 0x04000561
	tagModifiedAttributesSeq  dicom.Tag = 0x04000550
	tagReasonForModification  dicom.Tag = 0x04000565
	tagSliceThickness         dicom.Tag = 0x00180050
	tagSamplesPerPixel        dicom.Tag = 0x00280002
	tagPatientGroupLength     dicom.Tag = 0x00100000
	tagPatientComments        dicom.Tag = 0x00104000
	tagReferencedPatientPhoto dicom.Tag = 0x00101100
)

func editCT(t testing.TB, ts dicom.TransferSyntax, cs, name string, others ...testdicom.OtherPatientID) []byte {
	t.Helper()
	c := &testdicom.CT{PatientName: name, PatientID: "PID1", StudyUID: "1.2.3.4", SeriesUID: "1.2.3.4.5", SOPUID: "1.2.3.4.5.6",
		StudyDescription: "CT HEAD", Charset: cs, Instance: 1, TransferSyntax: ts.UID, OtherPatientIDs: others, Rows: 16, Columns: 16}
	b, err := c.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runEdit(t testing.TB, in []byte, ts dicom.TransferSyntax, ops []dicom.EditOp, opt dicom.EditOptions) ([]byte, dicom.EditResult) {
	t.Helper()
	var out bytes.Buffer
	res, err := dicom.EditWith(&out, bytes.NewReader(in), ts, dicom.DefaultLimits(), ops, opt)
	if err != nil {
		t.Fatalf("Edit: %v", err)
	}
	if res.Written != int64(out.Len()) {
		t.Fatalf("Written = %d, output %d bytes", res.Written, out.Len())
	}
	return out.Bytes(), res
}

func scanAll(t testing.TB, b []byte, ts dicom.TransferSyntax) *dicom.Dataset {
	t.Helper()
	res, err := dicom.Scan(bytes.NewReader(b), ts, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatalf("re-scan: %v", err)
	}
	return res.Dataset
}

func str(t testing.TB, ds *dicom.Dataset, tag dicom.Tag) string {
	t.Helper()
	s, err := ds.String(tag)
	if err != nil {
		t.Fatalf("%s: %v", tag, err)
	}
	return s
}

// elementBytes splits a data set into its top-level elements (header and
// value bytes).
func elementBytes(t testing.TB, b []byte, ts dicom.TransferSyntax) map[dicom.Tag][]byte {
	t.Helper()
	res, err := dicom.ScanWith(bytes.NewReader(b), ts, dicom.DefaultLimits(), dicom.ScanOptions{RecordSkipped: true})
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(r dicom.ValueRef) int64 {
		if ts.ExplicitVR && r.VR.HasLongLength() {
			return 12
		}
		return 8
	}
	refs := res.Skipped
	m := map[dicom.Tag][]byte{}
	for i, r := range refs {
		start := r.Offset - hdr(r)
		end := int64(len(b))
		if i+1 < len(refs) {
			end = refs[i+1].Offset - hdr(refs[i+1])
		}
		m[r.Tag] = b[start:end]
	}
	// Specific Character Set is always extracted, never skipped.
	return m
}

// checkUnchanged verifies that every top-level element of in that is not
// in edited is byte-identical in out.
func checkUnchanged(t testing.TB, in, out []byte, ts dicom.TransferSyntax, edited ...dicom.Tag) {
	t.Helper()
	a, b := elementBytes(t, in, ts), elementBytes(t, out, ts)
	skip := map[dicom.Tag]bool{}
	for _, e := range edited {
		skip[e] = true
	}
	for tag, v := range a {
		if skip[tag] {
			continue
		}
		if !bytes.Equal(v, b[tag]) {
			t.Errorf("%s changed: % x -> % x", tag, head(v), head(b[tag]))
		}
	}
	if _, ok := b[dicom.TagPixelData]; !ok {
		t.Errorf("pixel data missing from output")
	}
}

func head(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func otherIDs(t testing.TB, ds *dicom.Dataset) [][3]string {
	t.Helper()
	e, ok := ds.Get(dicom.TagOtherPatientIDsSequence)
	if !ok {
		return nil
	}
	var out [][3]string
	for _, it := range e.Items {
		oid := ""
		if q, ok := it.Get(tagIssuerQualifiersSeq); ok && len(q.Items) > 0 {
			oid = str(t, q.Items[0], tagUniversalEntityID) + "/" + str(t, q.Items[0], tagUniversalEntityIDType)
		}
		out = append(out, [3]string{str(t, it, dicom.TagPatientID), str(t, it, dicom.TagIssuerOfPatientID), oid})
	}
	return out
}

func insItem(ins string) dicom.EditOp {
	return dicom.AppendItemOp(dicom.TagOtherPatientIDsSequence,
		dicom.SetOp(dicom.TagPatientID, ins),
		dicom.SetOp(dicom.TagIssuerOfPatientID, "ASIP-SANTE-INS-NIR"),
		dicom.SetOp(tagTypeOfPatientID, "TEXT"),
		dicom.AppendItemOp(tagIssuerQualifiersSeq,
			dicom.SetOp(tagUniversalEntityID, "1.2.250.1.213.1.4.8"),
			dicom.SetOp(tagUniversalEntityIDType, "ISO")))
}

func TestEditOps(t *testing.T) {
	type tc struct {
		name    string
		cs      string // Specific Character Set of the input
		pname   string
		others  []testdicom.OtherPatientID
		ops     []dicom.EditOp
		want    map[dicom.Tag]string // "" with absent: must be absent
		absent  []dicom.Tag
		ids     [][3]string // Other Patient IDs expected (nil: not checked)
		changed bool
	}
	cases := []tc{
		{name: "set replaces latin1", cs: "ISO_IR 100", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.SetOp(dicom.TagPatientName, "Müller^Jürgen")},
			want: map[dicom.Tag]string{dicom.TagPatientName: "Müller^Jürgen"}, changed: true},
		{name: "set inserts", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.SetOp(tagInstitutionName, "CH SUD"), dicom.SetOp(tagPatientComments, "x")},
			want: map[dicom.Tag]string{tagInstitutionName: "CH SUD", tagPatientComments: "x"}, changed: true},
		{name: "set utf8", cs: "ISO_IR 192", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.SetOp(dicom.TagPatientName, "李^小龙"), dicom.SetOp(tagInstitutionName, "Hôpital Nord")},
			want: map[dicom.Tag]string{dicom.TagPatientName: "李^小龙", tagInstitutionName: "Hôpital Nord"}, changed: true},
		{name: "set same value is no change", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.SetOp(dicom.TagPatientID, "PID1"), dicom.SetOp(tagSamplesPerPixel, "1")},
			want: map[dicom.Tag]string{dicom.TagPatientID: "PID1", tagSamplesPerPixel: "1"}},
		{name: "set numeric and DS", pname: "A",
			ops:  []dicom.EditOp{dicom.SetOp(tagSliceThickness, "1.25")},
			want: map[dicom.Tag]string{tagSliceThickness: "1.25"}, changed: true},
		{name: "delete", pname: "Dupont^Jean",
			ops:    []dicom.EditOp{dicom.DeleteOp(dicom.TagStudyDescription)},
			absent: []dicom.Tag{dicom.TagStudyDescription}, changed: true},
		{name: "delete absent", pname: "Dupont^Jean",
			ops:    []dicom.EditOp{dicom.DeleteOp(tagInstitutionName), dicom.ReplaceOp(tagPatientComments, "a", "b")},
			absent: []dicom.Tag{tagInstitutionName, tagPatientComments}},
		{name: "prefix", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, "SITEA-")},
			want: map[dicom.Tag]string{dicom.TagPatientID: "SITEA-PID1"}, changed: true},
		{name: "prefix idempotent", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, "PI")},
			want: map[dicom.Tag]string{dicom.TagPatientID: "PID1"}},
		{name: "prefix absent no-op", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.PrefixOp(dicom.TagAccessionNumber, "A-")},
			want: map[dicom.Tag]string{dicom.TagAccessionNumber: ""}},
		{name: "prefix absent sets", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{{Kind: dicom.EditPrefix, Tag: dicom.TagAccessionNumber, Value: "A-", IfAbsent: "NOACC"}},
			want: map[dicom.Tag]string{dicom.TagAccessionNumber: "NOACC"}, changed: true},
		{name: "replace match", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.ReplaceOp(dicom.TagStudyDescription, "CT HEAD", "CT CRANE")},
			want: map[dicom.Tag]string{dicom.TagStudyDescription: "CT CRANE"}, changed: true},
		{name: "replace no match", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.ReplaceOp(dicom.TagStudyDescription, "CT THORAX", "X")},
			want: map[dicom.Tag]string{dicom.TagStudyDescription: "CT HEAD"}},
		{name: "set if present", pname: "Dupont^Jean",
			ops:    []dicom.EditOp{dicom.SetIfPresentOp(dicom.TagStudyDescription, "X"), dicom.SetIfPresentOp(tagInstitutionName, "Y")},
			want:   map[dicom.Tag]string{dicom.TagStudyDescription: "X"},
			absent: []dicom.Tag{tagInstitutionName}, changed: true},
		{name: "set if missing", pname: "Dupont^Jean",
			ops:  []dicom.EditOp{dicom.SetIfMissingOp(dicom.TagAccessionNumber, "42"), dicom.SetIfMissingOp(dicom.TagPatientID, "no")},
			want: map[dicom.Tag]string{dicom.TagAccessionNumber: "42", dicom.TagPatientID: "PID1"}, changed: true},
		{name: "append item to absent sequence", pname: "Dupont^Jean",
			ops:     []dicom.EditOp{dicom.SetOp(dicom.TagIssuerOfPatientID, "SITEA"), insItem("1840512345678")},
			want:    map[dicom.Tag]string{dicom.TagIssuerOfPatientID: "SITEA"},
			ids:     [][3]string{{"1840512345678", "ASIP-SANTE-INS-NIR", "1.2.250.1.213.1.4.8/ISO"}},
			changed: true},
		{name: "append items to present sequence", pname: "Dupont^Jean", others: []testdicom.OtherPatientID{{ID: "X1", Issuer: "OLD"}},
			ops: []dicom.EditOp{insItem("2"), dicom.AppendItemOp(dicom.TagOtherPatientIDsSequence, dicom.SetOp(dicom.TagPatientID, "PID1"),
				dicom.SetOp(dicom.TagIssuerOfPatientID, "SITEA"))},
			ids:     [][3]string{{"X1", "OLD", ""}, {"2", "ASIP-SANTE-INS-NIR", "1.2.250.1.213.1.4.8/ISO"}, {"PID1", "SITEA", ""}},
			changed: true},
	}
	for _, ts := range editNative {
		for _, c := range cases {
			t.Run(ts.Name+"/"+c.name, func(t *testing.T) {
				in := editCT(t, ts, c.cs, c.pname, c.others...)
				out, res := runEdit(t, in, ts, c.ops, dicom.EditOptions{})
				if res.Changed != c.changed {
					t.Errorf("Changed = %v, want %v (%+v)", res.Changed, c.changed, res.Changes)
				}
				if !c.changed && !bytes.Equal(in, out) {
					t.Errorf("unchanged data set not byte-identical")
				}
				ds := scanAll(t, out, ts)
				for tag, v := range c.want {
					if got := str(t, ds, tag); got != v {
						t.Errorf("%s = %q, want %q", tag, got, v)
					}
				}
				for _, tag := range c.absent {
					if _, ok := ds.Get(tag); ok {
						t.Errorf("%s present", tag)
					}
				}
				if c.ids != nil {
					got := otherIDs(t, ds)
					if len(got) != len(c.ids) {
						t.Fatalf("other IDs = %v, want %v", got, c.ids)
					}
					for i := range got {
						if got[i] != c.ids[i] {
							t.Errorf("other ID %d = %v, want %v", i, got[i], c.ids[i])
						}
					}
				}
				var edited []dicom.Tag
				for _, op := range c.ops {
					edited = append(edited, op.Tag)
				}
				checkUnchanged(t, in, out, ts, edited...)
				// padding: every value has an even length (Scan checks), and
				// text values are padded with spaces, UIDs with NUL.
				if e, ok := ds.Get(dicom.TagPatientID); ok && len(e.Raw)%2 != 0 {
					t.Errorf("odd PatientID length")
				}
			})
		}
	}
}

func TestEditPaddingAndChanges(t *testing.T) {
	in := editCT(t, editExplicit, "ISO_IR 100", "Dupont^Jean")
	out, res := runEdit(t, in, editExplicit, []dicom.EditOp{
		dicom.PrefixOp(dicom.TagPatientID, "SITEA-X"),
		dicom.SetOp(dicom.TagPatientName, "Éa"),
	}, dicom.EditOptions{})
	ds := scanAll(t, out, editExplicit)
	if e, _ := ds.Get(dicom.TagPatientID); string(e.Raw) != "SITEA-XPID1 " {
		t.Errorf("PatientID raw %q", e.Raw)
	}
	if e, _ := ds.Get(dicom.TagPatientName); !bytes.Equal(e.Raw, []byte{0xC9, 'a'}) {
		t.Errorf("PatientName raw % x, want ISO 8859-1", e.Raw)
	}
	want := []dicom.EditChange{
		{Tag: dicom.TagPatientName, Keyword: "PatientName", Action: "set", Old: "Dupont^Jean", New: "Éa"},
		{Tag: dicom.TagPatientID, Keyword: "PatientID", Action: "prefix", Old: "PID1", New: "SITEA-XPID1"},
	}
	if len(res.Changes) != len(want) {
		t.Fatalf("changes %+v", res.Changes)
	}
	for i := range want {
		if res.Changes[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, res.Changes[i], want[i])
		}
	}
	// a long value is truncated in the journal
	_, res = runEdit(t, in, editExplicit, []dicom.EditOp{dicom.SetOp(tagPatientComments, strings.Repeat("x", 200))}, dicom.EditOptions{})
	if n := len([]rune(res.Changes[0].New)); n != 64 {
		t.Errorf("journal value of %d characters", n)
	}
}

func TestEditRefused(t *testing.T) {
	latin := editCT(t, editExplicit, "ISO_IR 100", "A")
	plain := editCT(t, editExplicit, "", "A")
	multi := editCT(t, editExplicit, `\ISO 2022 IR 87`, "A")
	cases := []struct {
		name string
		in   []byte
		ts   dicom.TransferSyntax
		ops  []dicom.EditOp
		want error
		msg  string
	}{
		{"chinese in latin1", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagPatientName, "李^小龙")}, dicom.ErrEdit, "not representable in ISO_IR 100"},
		{"accent without charset", plain, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagPatientName, "Müller")}, dicom.ErrEdit, "default repertoire"},
		{"code extensions", multi, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagPatientName, "é")}, dicom.ErrEdit, "code extensions"},
		{"accent in DA", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagStudyDate, "É")}, dicom.ErrEdit, "default repertoire"},
		{"LO too long", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagPatientID, strings.Repeat("9", 65))}, dicom.ErrEdit, "over the 64"},
		{"prefix too long", latin, editExplicit, []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, strings.Repeat("9", 61))}, dicom.ErrEdit, "over the 64"},
		{"bad UID", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagStudyInstanceUID, "1.2.a")}, dicom.ErrEdit, "digits and dots"},
		{"charset", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagSpecificCharacterSet, "ISO_IR 192")}, dicom.ErrEdit, "Specific Character Set"},
		{"file meta", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagTransferSyntaxUID, "1.2")}, dicom.ErrEdit, "file meta"},
		{"twice", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagPatientID, "1"), dicom.DeleteOp(dicom.TagPatientID)}, dicom.ErrEdit, "several edits"},
		{"set sequence", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagOtherPatientIDsSequence, "1")}, dicom.ErrEdit, "sequence"},
		{"append to non-sequence", latin, editExplicit, []dicom.EditOp{dicom.AppendItemOp(dicom.TagPatientID)}, dicom.ErrEdit, "not SQ"},
		{"lower-case CS", latin, editExplicit, []dicom.EditOp{dicom.SetOp(dicom.TagModality, "mr")}, dicom.ErrEdit, "code string"},
		{"bad number", latin, editExplicit, []dicom.EditOp{dicom.SetOp(tagSamplesPerPixel, "x")}, dicom.ErrEdit, "not a valid US"},
		{"deflated", latin, editDeflated, []dicom.EditOp{dicom.DeleteOp(dicom.TagPatientID)}, dicom.ErrUnsupportedTransferSyntax, "inflate"},
		{"truncated input", latin[:len(latin)-7], editExplicit, nil, dicom.ErrTruncated, "truncated"},
		{"original after 0400", latin, editExplicit, nil, dicom.ErrEdit, "follows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opt := dicom.EditOptions{}
			if c.name == "original after 0400" {
				opt.RecordOriginal = true
				c.ops = []dicom.EditOp{dicom.DeleteOp(dicom.TagPixelData)}
			}
			_, err := dicom.EditWith(io.Discard, bytes.NewReader(c.in), c.ts, dicom.DefaultLimits(), c.ops, opt)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, c.want, c.msg)
			}
		})
	}
}

// buildRaw builds an explicit VR data set with a group length, an
// undefined-length sequence and (for an encapsulated syntax) encapsulated
// pixel data.
func buildRaw(t testing.TB, ts dicom.TransferSyntax) []byte {
	t.Helper()
	var b bytes.Buffer
	e := dicom.NewEncoder(&b, ts)
	mustE := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustE(e.WriteString(dicom.TagSpecificCharacterSet, "CS", "ISO_IR 100"))
	mustE(e.WriteString(dicom.TagSOPClassUID, "UI", dicom.CTImageStorage))
	mustE(e.WriteString(dicom.TagSOPInstanceUID, "UI", "1.2.3"))
	mustE(e.WriteElement(0x00091010, "UN", []byte{1, 2, 3})) // private, odd length
	mustE(e.WriteUints(tagPatientGroupLength, "UL", 36))
	mustE(e.WriteString(dicom.TagPatientName, "PN", "Dupont^Jean"))
	mustE(e.WriteString(dicom.TagPatientID, "LO", "PID1"))
	var it bytes.Buffer
	ie := dicom.NewEncoder(&it, ts)
	mustE(ie.WriteString(dicom.TagPatientID, "LO", "OLD1"))
	mustE(e.WriteSequence(dicom.TagOtherPatientIDsSequence, [][]byte{it.Bytes()}, true))
	mustE(e.WriteString(dicom.TagStudyInstanceUID, "UI", "1.2.3.4"))
	if ts.Encapsulated {
		mustE(e.WriteEncapsulatedPixelData([]uint32{0, 10}, [][]byte{[]byte("0123456789"), []byte("abcdefghi")}))
	} else {
		mustE(e.WriteElement(dicom.TagPixelData, "OW", bytes.Repeat([]byte{7, 9}, 100)))
	}
	return b.Bytes()
}

func TestEditStructures(t *testing.T) {
	for _, ts := range []dicom.TransferSyntax{editExplicit, editBig, editJPEG} {
		t.Run(ts.Name, func(t *testing.T) {
			in := buildRaw(t, ts)
			out, res := runEdit(t, in, ts, []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, "S-"), insItem("123")}, dicom.EditOptions{})
			ds := scanAll(t, out, ts)
			if _, ok := ds.Get(tagPatientGroupLength); ok {
				t.Errorf("group length of the edited group kept")
			}
			if got := str(t, ds, dicom.TagPatientID); got != "S-PID1" {
				t.Errorf("PatientID %q", got)
			}
			ids := otherIDs(t, ds)
			if len(ids) != 2 || ids[0][0] != "OLD1" || ids[1][0] != "123" {
				t.Errorf("other IDs %v", ids)
			}
			checkUnchanged(t, in, out, ts, tagPatientGroupLength, dicom.TagPatientID, dicom.TagOtherPatientIDsSequence)
			// the pixel data (fragments) are the tail, byte for byte
			px := elementBytes(t, in, ts)[dicom.TagPixelData]
			if !bytes.HasSuffix(out, px) {
				t.Errorf("pixel data not copied unchanged")
			}
			actions := map[string]int{}
			for _, c := range res.Changes {
				actions[c.Action]++
			}
			if actions["drop-group-length"] != 1 || actions["prefix"] != 1 || actions["append-item"] != 1 {
				t.Errorf("changes %+v", res.Changes)
			}
			// editing another group keeps the group length
			out, _ = runEdit(t, in, ts, []dicom.EditOp{dicom.SetOp(dicom.TagStudyInstanceUID, "1.2.3.5")}, dicom.EditOptions{})
			if _, ok := scanAll(t, out, ts).Get(tagPatientGroupLength); !ok {
				t.Errorf("group length of an unedited group dropped")
			}
		})
	}
}

func TestEditSkipIfPresent(t *testing.T) {
	ins := insItem("1840512345678")
	ins.SkipIfPresent = true
	local := dicom.AppendItemOp(dicom.TagOtherPatientIDsSequence, dicom.SetOp(dicom.TagPatientID, "PID1"), dicom.SetOp(dicom.TagIssuerOfPatientID, "SITEA"))
	local.SkipIfPresent = true
	ops := []dicom.EditOp{ins, local}
	for _, ts := range []dicom.TransferSyntax{editImplicit, editExplicit, editBig, editJPEG} {
		for _, withSeq := range []bool{false, true} {
			var in []byte
			switch {
			case ts.Encapsulated || withSeq && ts.ExplicitVR:
				in = buildRaw(t, ts) // undefined-length sequence
			case withSeq:
				in = editCT(t, ts, "ISO_IR 100", "A", testdicom.OtherPatientID{ID: "PID1", Issuer: "SITEA"})
			default:
				in = editCT(t, ts, "ISO_IR 100", "A")
			}
			out1, res1 := runEdit(t, in, ts, ops, dicom.EditOptions{})
			out2, res2 := runEdit(t, out1, ts, ops, dicom.EditOptions{RecordOriginal: true})
			if res2.Changed || !bytes.Equal(out1, out2) {
				t.Errorf("%s %v: second pass changed %+v", ts.Name, withSeq, res2.Changes)
			}
			ids := otherIDs(t, scanAll(t, out2, ts))
			n := 0
			for _, c := range res1.Changes {
				if c.Action == "append-item" {
					n++
				}
			}
			if want := len(ids) - map[bool]int{false: 0, true: 1}[withSeq || ts.Encapsulated]; n != want || n == 0 {
				t.Errorf("%s %v: %d items appended, ids %v", ts.Name, withSeq, n, ids)
			}
		}
	}
}

func TestEditUNElement(t *testing.T) {
	var b bytes.Buffer
	e := dicom.NewEncoder(&b, editExplicit)
	e.WriteString(dicom.TagSpecificCharacterSet, "CS", "ISO_IR 100")
	e.WriteElement(dicom.TagPatientID, "UN", []byte("PID1"))
	e.WriteElement(dicom.TagPixelData, "OB", []byte{1, 2})
	out, _ := runEdit(t, b.Bytes(), editExplicit, []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, "S-")}, dicom.EditOptions{})
	el, _ := scanAll(t, out, editExplicit).Get(dicom.TagPatientID)
	if el.VR != dicom.VRLO || string(el.Raw) != "S-PID1" {
		t.Errorf("PatientID %s %q", el.VR, el.Raw)
	}
}

func TestEditRecordOriginal(t *testing.T) {
	for _, ts := range editNative {
		t.Run(ts.Name, func(t *testing.T) {
			in := editCT(t, ts, "ISO_IR 100", "Dupont^Jean", testdicom.OtherPatientID{ID: "X1", Issuer: "OLD"})
			now := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
			ops := []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, "S-"), dicom.SetOp(tagInstitutionName, "CH"),
				dicom.DeleteOp(dicom.TagStudyDescription), insItem("1")}
			out, res := runEdit(t, in, ts, ops, dicom.EditOptions{RecordOriginal: true, SourceOfPreviousValues: "MODALITY1", Now: func() time.Time { return now }})
			ds := scanAll(t, out, ts)
			oas, ok := ds.Get(tagOriginalAttributesSeq)
			if !ok || len(oas.Items) != 1 {
				t.Fatalf("no Original Attributes Sequence item (%+v)", res.Changes)
			}
			it := oas.Items[0]
			if got := str(t, it, tagReasonForModification); got != "COERCE" {
				t.Errorf("reason %q", got)
			}
			if got := str(t, it, 0x04000562); got != "20261123170000+0000" {
				t.Errorf("datetime %q", got)
			}
			if got := str(t, it, 0x04000564); got != "MODALITY1" {
				t.Errorf("source %q", got)
			}
			mas, ok := it.Get(tagModifiedAttributesSeq)
			if !ok || len(mas.Items) != 1 {
				t.Fatalf("no Modified Attributes Sequence item")
			}
			orig := mas.Items[0]
			if got := str(t, orig, dicom.TagPatientID); got != "PID1" {
				t.Errorf("original PatientID %q", got)
			}
			if got := str(t, orig, dicom.TagStudyDescription); got != "CT HEAD" {
				t.Errorf("original StudyDescription %q", got)
			}
			if e, ok := orig.Get(tagInstitutionName); !ok || len(e.Raw) != 0 {
				t.Errorf("inserted attribute not recorded empty")
			}
			if ids := otherIDs(t, orig); len(ids) != 1 || ids[0][0] != "X1" {
				t.Errorf("original Other Patient IDs %v", ids)
			}
			// a second pass appends a second item
			out2, _ := runEdit(t, out, ts, []dicom.EditOp{dicom.SetOp(dicom.TagPatientID, "Z")}, dicom.EditOptions{RecordOriginal: true})
			if oas, _ := scanAll(t, out2, ts).Get(tagOriginalAttributesSeq); len(oas.Items) != 2 {
				t.Errorf("second record: %d items", len(oas.Items))
			}
			// nothing modified: nothing recorded, output identical
			out3, res3 := runEdit(t, in, ts, []dicom.EditOp{dicom.DeleteOp(tagPatientComments)}, dicom.EditOptions{RecordOriginal: true})
			if res3.Changed || !bytes.Equal(out3, in) {
				t.Errorf("no-op edit with RecordOriginal changed the data set: %+v", res3.Changes)
			}
		})
	}
}

func writePart10(t testing.TB, path string, ts dicom.TransferSyntax, ds []byte) {
	t.Helper()
	var b bytes.Buffer
	if _, err := dicom.WriteFileMeta(&b, dicom.FileMeta{MediaStorageSOPClassUID: dicom.CTImageStorage,
		MediaStorageSOPInstanceUID: "1.2.3.4.5.6", TransferSyntaxUID: ts.UID}); err != nil {
		t.Fatal(err)
	}
	b.Write(ds)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEditInteropDcmtk(t *testing.T) {
	if _, err := exec.LookPath("dcmdump"); err != nil {
		t.Skip("dcmdump not installed")
	}
	dir := t.TempDir()
	for _, ts := range editNative {
		for _, cs := range []string{"ISO_IR 100", "ISO_IR 192"} {
			in := editCT(t, ts, cs, "Dupont^Jean", testdicom.OtherPatientID{ID: "X1", Issuer: "OLD"})
			ops := []dicom.EditOp{dicom.SetOp(dicom.TagPatientName, "Müller^Jürgen"), dicom.PrefixOp(dicom.TagPatientID, "SITEA-"),
				dicom.SetOp(dicom.TagIssuerOfPatientID, "SITEA"), insItem("1840512345678"), dicom.DeleteOp(dicom.TagStudyDescription)}
			out, _ := runEdit(t, in, ts, ops, dicom.EditOptions{RecordOriginal: true, SourceOfPreviousValues: "MOD"})
			name := strings.ReplaceAll(ts.Name+cs, " ", "_")
			before, after := filepath.Join(dir, name+"-in.dcm"), filepath.Join(dir, name+"-out.dcm")
			writePart10(t, before, ts, in)
			writePart10(t, after, ts, out)
			if d := os.Getenv("EDIT_KEEP"); d != "" {
				writePart10(t, filepath.Join(d, name+"-in.dcm"), ts, in)
				writePart10(t, filepath.Join(d, name+"-out.dcm"), ts, out)
			}
			dump, err := exec.Command("dcmdump", "+U8", "-q", after).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: dcmdump: %v\n%s", name, err, dump)
			}
			for _, want := range []string{
				"(0010,0010) PN [Müller^Jürgen]", "(0010,0020) LO [SITEA-PID1]", "(0010,0021) LO [SITEA]",
				"(0010,0020) LO [1840512345678]", "(0040,0032) UT [1.2.250.1.213.1.4.8]", "(0040,0033) CS [ISO]",
				"(0400,0565) CS [COERCE]", "(0010,0020) LO [PID1]", "(0008,1030) LO [CT HEAD]",
			} {
				if !strings.Contains(string(dump), want) {
					t.Errorf("%s: dcmdump lacks %q:\n%s", name, want, dump)
				}
			}
			if _, err := exec.LookPath("dciodvfy"); err == nil {
				eb, ea := dciodvfyErrors(t, before), dciodvfyErrors(t, after)
				for e := range ea {
					if !eb[e] {
						t.Errorf("%s: dciodvfy: new error %q", name, e)
					}
				}
			}
		}
	}
}

func TestEditFile(t *testing.T) {
	c := &testdicom.CT{PatientName: "Dupont^Jean", PatientID: "PID1", StudyUID: "1.2.3", SeriesUID: "1.2.3.4", SOPUID: "1.2.3.4.5",
		Charset: "ISO_IR 100", Instance: 1, TransferSyntax: dicom.ImplicitVRLittleEndian, Rows: 4, Columns: 4}
	in, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := dicom.EditFile(&out, bytes.NewReader(in), dicom.DefaultLimits(), []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, "S-")}, dicom.EditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != int64(out.Len()) || out.Len() != len(in)+2 {
		t.Errorf("wrote %d (Written %d), input %d", out.Len(), res.Written, len(in))
	}
	meta, off, err := dicom.ReadFileMeta(bytes.NewReader(out.Bytes()))
	if err != nil || meta.TransferSyntaxUID != dicom.ImplicitVRLittleEndian || meta.MediaStorageSOPInstanceUID != "1.2.3.4.5" {
		t.Fatalf("meta %+v, %v", meta, err)
	}
	if v := str(t, scanAll(t, out.Bytes()[off:], editImplicit), dicom.TagPatientID); v != "S-PID1" {
		t.Errorf("PatientID %q", v)
	}
}

func dciodvfyErrors(t testing.TB, path string) map[string]bool {
	out, _ := exec.Command("dciodvfy", "-new", path).CombinedOutput()
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Error") {
			m[l] = true
		}
	}
	return m
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestEditMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB")
	}
	const px = 200 << 20
	var hb bytes.Buffer
	e := dicom.NewEncoder(&hb, editExplicit)
	e.WriteString(dicom.TagSpecificCharacterSet, "CS", "ISO_IR 100")
	e.WriteString(dicom.TagSOPInstanceUID, "UI", "1.2.3")
	e.WriteString(dicom.TagPatientName, "PN", "Dupont^Jean")
	e.WriteString(dicom.TagPatientID, "LO", "PID1")
	e.WriteHeader(dicom.TagPixelData, "OW", px)
	src := io.MultiReader(bytes.NewReader(hb.Bytes()), io.LimitReader(zeros{}, px))
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak {
				peak = ms.HeapAlloc
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cw := &countingDiscard{}
	res, err := dicom.Edit(cw, src, editExplicit, dicom.DefaultLimits(), []dicom.EditOp{dicom.PrefixOp(dicom.TagPatientID, "SITEA-"), insItem("1")})
	close(stop)
	<-done
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("edited %d MB: peak heap %.1f MB (baseline %.1f MB), allocated %.2f MB in total", res.Written>>20,
		float64(peak)/(1<<20), float64(before.HeapAlloc)/(1<<20), float64(alloc)/(1<<20))
	if cw.n < px || res.Written != cw.n {
		t.Fatalf("wrote %d bytes", cw.n)
	}
	if alloc > 4<<20 {
		t.Errorf("allocated %d bytes for a streamed edit", alloc)
	}
}

type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var fuzzEditSyntaxes = []dicom.TransferSyntax{editImplicit, editExplicit, editBig, editJPEG}

func FuzzEdit(f *testing.F) {
	for i, ts := range fuzzEditSyntaxes {
		if ts.Encapsulated {
			f.Add(uint8(i), buildRaw(f, ts))
			continue
		}
		f.Add(uint8(i), editCT(f, ts, "ISO_IR 100", "Dupont^Jean", testdicom.OtherPatientID{ID: "X", Issuer: "Y"}))
		f.Add(uint8(i), editCT(f, ts, "", "A"))
		if ts.ExplicitVR {
			f.Add(uint8(i), buildRaw(f, ts))
		}
	}
	dedup := insItem("2")
	dedup.SkipIfPresent = true
	ops := []dicom.EditOp{
		dedup,
		dicom.SetOp(tagInstitutionName, "Hôpital"),
		dicom.DeleteOp(dicom.TagStudyDescription),
		dicom.PrefixOp(dicom.TagPatientID, "SITEA-"),
		dicom.ReplaceOp(dicom.TagModality, "CT", "MR"),
		dicom.SetIfMissingOp(dicom.TagAccessionNumber, "42"),
		insItem("1840512345678"),
		dicom.AppendItemOp(0x00081032, dicom.SetOp(0x00080100, "X")),
		dicom.DeleteOp(0x00091010),
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ts := fuzzEditSyntaxes[int(which)%len(fuzzEditSyntaxes)]
		lim := dicom.DefaultLimits()
		lim.MaxHeldValue = 4096
		lim.MaxHeldTotal = 1 << 20
		lim.MaxDatasetSize = 16 << 20
		var out bytes.Buffer
		_, err := dicom.EditWith(&out, bytes.NewReader(data), ts, lim, ops, dicom.EditOptions{RecordOriginal: which&0x80 != 0})
		if err != nil {
			return
		}
		// What Edit accepts, Scan accepts once edited.
		lim.MaxDatasetSize = 0
		if _, err := dicom.Scan(bytes.NewReader(out.Bytes()), ts, lim, dicom.WantAll); err != nil {
			if !errors.Is(err, dicom.ErrLimitExceeded) {
				t.Fatalf("edited output does not re-scan: %v", err)
			}
		}
	})
}
