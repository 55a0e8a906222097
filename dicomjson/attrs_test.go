package dicomjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/storage"
)

func attrsJSON(t *testing.T, attrs map[string]string, extra ...Attr) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteAttrs(&b, attrs, extra...); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b.Bytes()) {
		t.Fatalf("invalid JSON: %s", b.Bytes())
	}
	checkModel(t, b.Bytes())
	return b.String()
}

func mustItems(t *testing.T, items ...map[string]string) string {
	t.Helper()
	v, err := storage.EncodeItems(items)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWriteAttrs(t *testing.T) {
	issuer := mustItems(t, map[string]string{"00400031": "NS", "00400032": "1.2.3", "00400033": "ISO"})
	attrs := map[string]string{
		"0020000D": "1.2.3",
		"00100010": "Yamada^Tarou=山田^太郎=やまだ^たろう",
		"00080061": `CT\MR`,
		"00201206": "3",
		"00201208": "0012",
		"00101020": "1.75",
		"00101030": "+70.",
		"00080020": "20261123",
		"00081030": "",                      // empty: VR only
		"00280010": "512",                   // US from the index: a number
		"00720082": `-5\9007199254740992\x`, // SV
		"00720083": "18446744073709551615",  // UV
		"00281050": `40\nope`,               // DS, second value not a number
		"00200013": "x1",                    // IS not a number: string
		"00280009": "0018,1063",             // AT as dicom.Dataset.String writes it
		"7FE00010": "binary",                // OW: no value from an index
		"00101002": mustItems(t, map[string]string{"00100020": "X1", "00100021": "H"}, map[string]string{}),
		"00400275": mustItems(t, map[string]string{"00080050": "A1", "00080051": issuer}),
		"00081110": "not json",           // undecodable sequence: VR only
		"00081032": "[]",                 // no item: VR only
		"00100020": `with "quote" and \`, // LO: split on '\'
		"0008103e": "lower-case key",     // accepted: hex is hex
		"0010001":  "short key",          // left out
		"zz100010": "not hex",            // left out
		"00080000": "12",                 // group length: left out
		"00020010": "1.2.840.10008.1.2",  // file meta: left out
	}
	got := attrsJSON(t, attrs,
		Attr{Tag: 0x00081190, VR: dicom.VRUR, Values: []string{"https://pacs.example/studies/1.2.3"}},
		Attr{Tag: 0x00080020, Values: []string{"20270101"}}, // replaces; VR from the dictionary
		Attr{Tag: 0x00080056, VR: dicom.VRCS, Values: []string{"ONLINE"}},
		Attr{Tag: 0x00081115, VR: dicom.VRSQ, Values: []string{mustItems(t, map[string]string{"0020000E": "9.8"})}},
		Attr{Tag: 0x00080054, VR: dicom.VRAE, Values: []string{"AE1", "", "AE2"}},
		Attr{Tag: 0x00201209, VR: dicom.VRIS},
	)
	want := `{` +
		`"00080020":{"vr":"DA","Value":["20270101"]},` +
		`"00080054":{"vr":"AE","Value":["AE1",null,"AE2"]},` +
		`"00080056":{"vr":"CS","Value":["ONLINE"]},` +
		`"00080061":{"vr":"CS","Value":["CT","MR"]},` +
		`"00081030":{"vr":"LO"},` +
		`"0008103E":{"vr":"LO","Value":["lower-case key"]},` +
		`"00081032":{"vr":"SQ"},` +
		`"00081110":{"vr":"SQ"},` +
		`"00081115":{"vr":"SQ","Value":[{"0020000E":{"vr":"UI","Value":["9.8"]}}]},` +
		`"00081190":{"vr":"UR","Value":["https://pacs.example/studies/1.2.3"]},` +
		`"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}]},` +
		`"00100020":{"vr":"LO","Value":["with \"quote\" and",null]},` +
		`"00101002":{"vr":"SQ","Value":[{"00100020":{"vr":"LO","Value":["X1"]},"00100021":{"vr":"LO","Value":["H"]}},{}]},` +
		`"00101020":{"vr":"DS","Value":[1.75]},` +
		`"00101030":{"vr":"DS","Value":[70.0]},` +
		`"00200013":{"vr":"IS","Value":["x1"]},` +
		`"0020000D":{"vr":"UI","Value":["1.2.3"]},` +
		`"00201206":{"vr":"IS","Value":[3]},` +
		`"00201208":{"vr":"IS","Value":[12]},` +
		`"00201209":{"vr":"IS"},` +
		`"00280009":{"vr":"AT","Value":["00181063"]},` +
		`"00280010":{"vr":"US","Value":[512]},` +
		`"00281050":{"vr":"DS","Value":[40,"nope"]},` +
		`"00400275":{"vr":"SQ","Value":[{"00080050":{"vr":"SH","Value":["A1"]},"00080051":{"vr":"SQ","Value":[{"00400031":{"vr":"UT","Value":["NS"]},"00400032":{"vr":"UT","Value":["1.2.3"]},"00400033":{"vr":"CS","Value":["ISO"]}}]}}]},` +
		`"00720082":{"vr":"SV","Value":[-5,"9007199254740992","x"]},` +
		`"00720083":{"vr":"UV","Value":["18446744073709551615"]},` +
		`"7FE00010":{"vr":"OW"}` +
		`}`
	// Compared semantically; the order is checked separately.
	if d := diff("", decode(t, []byte(got)), decode(t, []byte(want))); len(d) > 0 {
		t.Fatalf("differences (got vs want):\n%s\ngot %s", diffString(d), got)
	}
	assertTagOrder(t, got)
}

// assertTagOrder checks the keys of a top-level object are ascending.
func assertTagOrder(t testing.TB, js string) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(js))
	d.Token() // {
	prev := ""
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		key := k.(string)
		if prev != "" && strings.ToUpper(key) <= prev {
			t.Fatalf("key %s after %s", key, prev)
		}
		prev = key
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
}

// indexAttrs builds an index attribute map from a scanned dataset as the
// ingest pipeline does (top-level values as dicom.Dataset.String gives them,
// kept sequences in the storage format).
func indexAttrs(t *testing.T, d *dicom.Dataset) map[string]string {
	t.Helper()
	var items func(seq string, el *dicom.Element) string
	items = func(seq string, el *dicom.Element) string {
		var out []map[string]string
		for _, it := range el.Items {
			m := map[string]string{}
			for _, h := range storage.SequenceItemTags[seq] {
				tag, _ := parseHexTag(h)
				e, ok := it.Get(tag)
				if !ok {
					continue
				}
				var v string
				if _, nested := storage.SequenceItemTags[h]; nested && e.Items != nil {
					v = items(h, e)
				} else {
					v, _ = it.String(tag)
				}
				if v != "" {
					m[h] = v
				}
			}
			out = append(out, m)
		}
		return mustItems(t, out...)
	}
	attrs := map[string]string{}
	for tag, el := range d.Elements {
		h := fmt.Sprintf("%08X", uint32(tag))
		if tag == dicom.TagSpecificCharacterSet || tag == dicom.TagPixelData {
			continue
		}
		if el.VR == dicom.VRSQ {
			if _, kept := storage.SequenceItemTags[h]; kept && len(el.Items) > 0 {
				attrs[h] = items(h, el)
			}
			continue
		}
		if v, err := d.String(tag); err == nil && v != "" {
			attrs[h] = v
		}
	}
	return attrs
}

// TestWriteAttrsMatchesWriteDataset: an instance's attributes written from
// the index and from the file give the same JSON.
func TestWriteAttrsExtras(t *testing.T) {
	got := attrsJSON(t, map[string]string{"00100020": "P1", "00100010": "Doe^J"},
		Attr{Tag: 0x00100020, Values: []string{"P2"}},
		Attr{Tag: 0x00100020, Values: []string{"P3", "P4"}}, // the last one wins
		Attr{Tag: 0x00081115, VR: dicom.VRSQ, Values: []string{
			mustItems(t, map[string]string{"0020000E": "1"}), "bad", mustItems(t, map[string]string{"0020000E": "2"}, map[string]string{})}},
		Attr{Tag: 0x00091001, VR: "LO", Values: []string{"private"}},
		Attr{Tag: 0x00091002, VR: "XX", Values: []string{"unknown VR"}},
		Attr{Tag: 0x00020010, VR: "UI", Values: []string{"left out"}},
	)
	want := `{"00081115":{"vr":"SQ","Value":[{"0020000E":{"vr":"UI","Value":["1"]}},{"0020000E":{"vr":"UI","Value":["2"]}},{}]},` +
		`"00091001":{"vr":"LO","Value":["private"]},"00091002":{"vr":"UN"},` +
		`"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^J"}]},"00100020":{"vr":"LO","Value":["P3","P4"]}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := attrsJSON(t, nil); got != "{}" {
		t.Fatalf("empty: %s", got)
	}
}

func TestWriteAttrsMatchesWriteDataset(t *testing.T) {
	for _, cs := range []string{"", "ISO_IR 192"} {
		ct := testdicom.CT{Charset: cs, PatientName: "Ωμέγα^Δ=Ω^Δ", PatientID: "P1", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(),
			SOPUID: testdicom.UID(), Instance: 12, AccessionNumber: "A1", StudyDescription: "CT\\HEAD",
			OtherPatientIDs: []testdicom.OtherPatientID{{ID: "X1", Issuer: "H1", Type: "TEXT"}, {ID: "X2"}},
			ProcedureCodes:  []testdicom.Code{{Value: "C1", Scheme: "DCM", Meaning: "Mëaning"}}}
		if cs == "" {
			ct.PatientName = "Doe^John"
			ct.ProcedureCodes[0].Meaning = "Meaning"
		}
		file, err := ct.File()
		if err != nil {
			t.Fatal(err)
		}
		res := scanFile(t, file, dicom.ScanOptions{Want: dicom.WantAll, StopAtPixelData: true})
		fromFile := decode(t, writeJSON(t, res, Options{})).(map[string]any)
		attrs := indexAttrs(t, res.Dataset)
		fromIndex := decode(t, []byte(attrsJSON(t, attrs))).(map[string]any)
		delete(fromFile, "00080005") // not in an index map
		delete(fromFile, "7FE00010") // bulk data
		// Attributes whose VR in the file differs from the dictionary's
		// first VR would differ; a CT header has none.
		if d := diff("", fromIndex, fromFile); len(d) > 0 {
			t.Fatalf("charset %q: index vs file:\n%s", cs, diffString(d))
		}
	}
}

func TestArrayWriter(t *testing.T) {
	var b bytes.Buffer
	aw := NewArrayWriter(&b)
	if err := aw.End(); err != nil || b.String() != "[]" {
		t.Fatalf("empty: %q %v", b.String(), err)
	}
	b.Reset()
	aw = NewArrayWriter(&b)
	if err := aw.Begin(); err != nil {
		t.Fatal(err)
	}
	ct := testdicom.CT{PatientName: "A^B", PatientID: "P", StudyUID: "1.2", SeriesUID: "1.2.3", SOPUID: "1.2.3.4", Rows: 2, Columns: 2}
	file, _ := ct.File()
	res := scanFile(t, file, dicom.ScanOptions{Want: dicom.WantAll, StopAtPixelData: true})
	for i := 0; i < 3; i++ {
		if err := aw.Dataset(res, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Attrs(map[string]string{"00100020": "P"}, Attr{Tag: 0x00081190, VR: dicom.VRUR, Values: []string{"u"}}); err != nil {
		t.Fatal(err)
	}
	if err := aw.Next(); err != nil {
		t.Fatal(err)
	}
	b.WriteString(`{}`) // a custom object
	if err := aw.End(); err != nil {
		t.Fatal(err)
	}
	if err := aw.End(); err != nil { // idempotent
		t.Fatal(err)
	}
	var arr []map[string]any
	if err := json.Unmarshal(b.Bytes(), &arr); err != nil {
		t.Fatalf("%v: %s", err, b.Bytes())
	}
	if len(arr) != 5 || aw.Count() != 5 {
		t.Fatalf("%d elements, count %d", len(arr), aw.Count())
	}
	// Errors stick.
	aw = NewArrayWriter(&failWriter{n: 1})
	aw.Begin()
	if err := aw.Dataset(res, Options{}); err == nil {
		t.Fatal("no error")
	}
	if err := aw.End(); err == nil {
		t.Fatal("End after an error: no error")
	}
}
