package dicomjson

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/storage"
)

var fuzzSyntaxes = []string{
	dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian,
	dicom.EncapsulatedUncompressedExplicitVRLittleEndian,
}

// fuzzSeeds returns data sets (without file meta) of test instances.
func fuzzSeeds(f *testing.F) (seeds [][]byte, which []uint8) {
	cts := []testdicom.CT{
		{PatientName: "Doe^John", StudyDescription: "CT HEAD", AccessionNumber: "A1"},
		{Charset: "ISO_IR 100", PatientNameRaw: []byte("M\xfcller^J\xf6rg"),
			ProcedureCodes: []testdicom.Code{{Value: "C1", Scheme: "DCM", Meaning: "T\xeate"}}},
		{Charset: "ISO_IR 192", PatientName: "Ωμέγα^Δ=Ω=Δ",
			OtherPatientIDs: []testdicom.OtherPatientID{{ID: "X1", Issuer: "H", Type: "TEXT"}, {ID: "X2"}}},
		{Charset: `\ISO 2022 IR 87`, PatientNameRaw: []byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B")},
	}
	for i, c := range cts {
		for j, ts := range fuzzSyntaxes[:3] {
			c := c
			c.PatientID, c.StudyUID, c.SeriesUID, c.SOPUID = "P", "1.2.3", "1.2.3.4", "1.2.3.4.5"
			c.Instance, c.Rows, c.Columns, c.TransferSyntax = i, 2, 2, ts
			b, err := c.Dataset()
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
			which = append(which, uint8(j))
		}
	}
	return seeds, which
}

// FuzzWriteDataset: any data set that scans gives valid UTF-8 JSON whose
// top-level keys are the written tags, and no error but write errors.
func FuzzWriteDataset(f *testing.F) {
	seeds, which := fuzzSeeds(f)
	for i, s := range seeds {
		f.Add(which[i], s)
	}
	// every VR, sequences included, in each native syntax
	for i, uid := range fuzzSyntaxes[:3] {
		ts, _ := dicom.LookupTransferSyntax(uid)
		bo := binary.ByteOrder(binary.LittleEndian)
		if ts.BigEndian {
			bo = binary.BigEndian
		}
		f.Add(uint8(i), encodeElements(f, ts, allVRs(bo)))
		f.Add(uint8(i)|0xC0, encodeElements(f, ts, allVRs(bo)))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ts, _ := dicom.LookupTransferSyntax(fuzzSyntaxes[int(which)%len(fuzzSyntaxes)])
		lim := dicom.DefaultLimits()
		lim.MaxHeldValue = 4096
		lim.MaxHeldTotal = 1 << 20
		lim.MaxDatasetSize = 1 << 20
		res, err := dicom.ScanWith(bytes.NewReader(data), ts, lim, dicom.ScanOptions{
			Want:            func(t dicom.Tag) bool { return t != dicom.TagPixelData },
			RecordSkipped:   true,
			StopAtPixelData: which&0x80 != 0,
		})
		if err != nil {
			return
		}
		var b bytes.Buffer
		opt := Options{}
		if which&0x40 != 0 {
			opt.BulkDataURI = func(t dicom.Tag) string { return "bulk/\"" + t.String() + "\\\x00" }
		}
		if err := WriteDataset(&b, res, opt); err != nil {
			t.Fatalf("WriteDataset: %v", err)
		}
		out := b.Bytes()
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		checkModel(t, out)
		// The same through an ArrayWriter on a writer that takes small
		// writes gives the same bytes.
		var c bytes.Buffer
		aw := NewArrayWriter(&c)
		if err := aw.Dataset(res, opt); err != nil {
			t.Fatal(err)
		}
		aw.End()
		if !bytes.Equal(c.Bytes(), append(append([]byte("["), out...), ']')) {
			t.Fatal("ArrayWriter output differs")
		}
		if err := WriteDataset(io.Discard, res, opt); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzWriteAttrs: any attribute map gives valid UTF-8 JSON. The map is
// built from the fuzzed bytes: pairs of tag (4 bytes) and value, values
// separated by 0xFF; a value starting with '[' is a kept sequence.
func FuzzWriteAttrs(f *testing.F) {
	seq, _ := storage.EncodeItems([]map[string]string{{"00100020": "X", "00100024": `[{"00400032":"1.2"}]`}, {}})
	f.Add([]byte("\x00\x10\x00\x10Doe^John=山田\xff\x00\x20\x00\x13-0012\xff\x00\x28\x10\x50 1.50 \\1e3\\+5\xff\x00\x10\x10\x02" + seq))
	f.Add([]byte("\x00\x28\x00\x09(0018,1063)\xff\x00\x72\x00\x83 99999999999999999999\xff\x7f\xe0\x00\x10\x00\x01"))
	f.Add([]byte("\x00\x40\x02\x75[{\"00080051\":\"[{\\\"00400032\\\":\\\"x\\\"}]\"}]\xff\x00\x08\x00\x05ISO_IR 100"))
	f.Fuzz(func(t *testing.T, data []byte) {
		attrs := map[string]string{}
		var extra []Attr
		for _, part := range bytes.Split(data, []byte{0xFF}) {
			if len(part) < 4 {
				continue
			}
			tag := dicom.Tag(binary.BigEndian.Uint32(part))
			v := string(part[4:])
			if tag&0x00008000 != 0 && len(extra) < 4 {
				extra = append(extra, Attr{Tag: tag &^ 0x8000, Values: []string{v, v}})
				continue
			}
			k := string(appendTagHex(nil, tag))
			attrs[k] = v
		}
		var b bytes.Buffer
		if err := WriteAttrs(&b, attrs, extra...); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b.Bytes()) || !utf8.Valid(b.Bytes()) {
			t.Fatalf("invalid JSON: %q", b.Bytes())
		}
		checkModel(t, b.Bytes())
	})
}

// checkModel checks decoded output against the DICOM JSON Model: keys of
// 8 upper-case hex digits in ascending order, each attribute an object
// with a known "vr" and at most one of Value (a non-empty array),
// InlineBinary or BulkDataURI (strings); PN values are objects of
// Alphabetic/Ideographic/Phonetic strings or null; SQ values objects,
// checked recursively.
func checkModel(t testing.TB, js []byte) {
	t.Helper()
	assertTagOrder(t, string(js))
	var obj map[string]map[string]json.RawMessage
	if err := json.Unmarshal(js, &obj); err != nil {
		t.Fatalf("not an object of attribute objects: %v: %s", err, js)
	}
	for k, attr := range obj {
		if _, ok := parseHexTag(k); !ok || strings.ToUpper(k) != k {
			t.Fatalf("key %q", k)
		}
		var vr string
		if err := json.Unmarshal(attr["vr"], &vr); err != nil || !knownVR(dicom.VR(vr)) {
			t.Fatalf("%s: vr %s", k, attr["vr"])
		}
		n := 0
		for f, raw := range attr {
			switch f {
			case "vr":
			case "InlineBinary", "BulkDataURI":
				n++
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					t.Fatalf("%s: %s: %s", k, f, raw)
				}
			case "Value":
				n++
				var vals []json.RawMessage
				if err := json.Unmarshal(raw, &vals); err != nil || len(vals) == 0 {
					t.Fatalf("%s: Value %s", k, raw)
				}
				for _, v := range vals {
					switch vr {
					case "SQ":
						checkModel(t, v)
					case "PN":
						var pn map[string]string
						if err := json.Unmarshal(v, &pn); err != nil {
							t.Fatalf("%s: PN %s", k, v)
						}
						for g := range pn {
							if g != "Alphabetic" && g != "Ideographic" && g != "Phonetic" {
								t.Fatalf("%s: PN group %q", k, g)
							}
						}
					default:
						if c := bytes.TrimSpace(v)[0]; c == '{' || c == '[' {
							t.Fatalf("%s: %s value %s", k, vr, v)
						}
					}
				}
			default:
				t.Fatalf("%s: field %q", k, f)
			}
		}
		if n > 1 {
			t.Fatalf("%s: several value fields: %v", k, attr)
		}
	}
}
