package dicomjson

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

func ds(cs []string, be bool, els ...*dicom.Element) *dicom.Dataset {
	d := &dicom.Dataset{Elements: map[dicom.Tag]*dicom.Element{}, CharacterSet: cs, BigEndian: be}
	for _, e := range els {
		d.Elements[e.Tag] = e
	}
	return d
}

func el(t dicom.Tag, vr dicom.VR, raw string) *dicom.Element {
	return &dicom.Element{Tag: t, VR: vr, Raw: []byte(raw)}
}

func le16(v ...uint16) string {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return string(b)
}

func le32(v ...uint32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return string(b)
}

func le64(v ...uint64) string {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	return string(b)
}

func outOf(t *testing.T, res *dicom.ScanResult, opt Options) string {
	t.Helper()
	return string(writeJSON(t, res, opt))
}

const tagX = dicom.Tag(0x00091010) // private, so no dictionary surprises

// TestValues checks the value encoding of each VR on a one-element dataset.
func TestValues(t *testing.T) {
	f32 := func(f ...float32) string {
		var u []uint32
		for _, x := range f {
			u = append(u, math.Float32bits(x))
		}
		return le32(u...)
	}
	f64 := func(f ...float64) string {
		var u []uint64
		for _, x := range f {
			u = append(u, math.Float64bits(x))
		}
		return le64(u...)
	}
	cases := []struct {
		name string
		vr   dicom.VR
		raw  string
		cs   []string
		be   bool
		want string // the attribute object
	}{
		// character strings
		{"AE", "AE", "STORESCP  ", nil, false, `{"vr":"AE","Value":["STORESCP"]}`},
		{"AS", "AS", "045Y", nil, false, `{"vr":"AS","Value":["045Y"]}`},
		{"CS multi", "CS", `ORIGINAL\PRIMARY `, nil, false, `{"vr":"CS","Value":["ORIGINAL","PRIMARY"]}`},
		{"CS empty middle value", "CS", `A\\B`, nil, false, `{"vr":"CS","Value":["A",null,"B"]}`},
		{"CS trailing empty value", "CS", `A\`, nil, false, `{"vr":"CS","Value":["A",null]}`},
		{"DA", "DA", "20261123", nil, false, `{"vr":"DA","Value":["20261123"]}`},
		{"DT", "DT", "20261123031500.1+0100", nil, false, `{"vr":"DT","Value":["20261123031500.1+0100"]}`},
		{"TM", "TM", "031500 ", nil, false, `{"vr":"TM","Value":["031500"]}`},
		{"UI NUL padded", "UI", "1.2.3\x00", nil, false, `{"vr":"UI","Value":["1.2.3"]}`},
		{"LO trimmed both sides", "LO", "  left and right  ", nil, false, `{"vr":"LO","Value":["left and right"]}`},
		{"SH multi", "SH", `a\b\c`, nil, false, `{"vr":"SH","Value":["a","b","c"]}`},
		{"UC multi", "UC", `long\code`, nil, false, `{"vr":"UC","Value":["long","code"]}`},
		{"LT single, leading kept, no split", "LT", "  a\\b\r\n", nil, false, `{"vr":"LT","Value":["  a\\b\r\n"]}`},
		{"ST escapes", "ST", "q\"u\x01\x1f\t", nil, false, `{"vr":"ST","Value":["q\"u\u0001\u001F\t"]}`},
		{"UT", "UT", "text ", nil, false, `{"vr":"UT","Value":["text"]}`},
		{"UR", "UR", "http://x/y?a=b ", nil, false, `{"vr":"UR","Value":["http://x/y?a=b"]}`},
		{"only padding is empty", "LO", "    ", nil, false, `{"vr":"LO"}`},
		{"only separators is empty", "CS", `\\`, nil, false, `{"vr":"CS"}`},
		// character sets
		{"ISO_IR 100", "LO", "Caf\xe9", []string{"ISO_IR 100"}, false, `{"vr":"LO","Value":["Café"]}`},
		{"default repertoire with Latin-1 bytes", "LO", "Caf\xe9", nil, false, `{"vr":"LO","Value":["Café"]}`},
		{"ISO_IR 192", "LO", "Ωμέγα", []string{"ISO_IR 192"}, false, `{"vr":"LO","Value":["Ωμέγα"]}`},
		{"ISO_IR 192 invalid UTF-8", "LO", "a\xffb", []string{"ISO_IR 192"}, false, `{"vr":"LO","Value":["a\ufffdb"]}`},
		{"ISO_IR 144", "SH", "\xb8\xd2\xd0\xdd", []string{"ISO_IR 144"}, false, `{"vr":"SH","Value":["Иван"]}`},
		{"CS not decoded", "CS", "A\xe9", []string{"ISO_IR 100"}, false, `{"vr":"CS","Value":["A\ufffd"]}`},
		// PN
		{"PN three groups", "PN", "Yamada^Tarou=山田^太郎=やまだ^たろう", []string{"ISO_IR 192"}, false,
			`{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}]}`},
		{"PN ISO 2022 IR 87", "PN", "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
			[]string{"", "ISO 2022 IR 87"}, false,
			`{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}]}`},
		{"PN ideographic only", "PN", "=山田", []string{"ISO_IR 192"}, false, `{"vr":"PN","Value":[{"Ideographic":"山田"}]}`},
		{"PN phonetic only", "PN", "==yamada", nil, false, `{"vr":"PN","Value":[{"Phonetic":"yamada"}]}`},
		{"PN empty groups", "PN", "==", nil, false, `{"vr":"PN"}`},
		{"PN empty groups in multi", "PN", `= \A`, nil, false, `{"vr":"PN","Value":[null,{"Alphabetic":"A"}]}`},
		{"PN extra groups ignored", "PN", "a=b=c=d", nil, false, `{"vr":"PN","Value":[{"Alphabetic":"a","Ideographic":"b","Phonetic":"c"}]}`},
		{"PN multi with empty", "PN", `Doe^J\\Roe^R `, nil, false, `{"vr":"PN","Value":[{"Alphabetic":"Doe^J"},null,{"Alphabetic":"Roe^R"}]}`},
		{"PN empty", "PN", "", nil, false, `{"vr":"PN"}`},
		// DS and IS
		{"DS padded", "DS", "  1.50 ", nil, false, `{"vr":"DS","Value":[1.50]}`},
		{"DS exponent", "DS", "1e3", nil, false, `{"vr":"DS","Value":[1e3]}`},
		{"DS plus", "DS", "+5", nil, false, `{"vr":"DS","Value":[5]}`},
		{"DS plus exponent", "DS", "+1.5E+02", nil, false, `{"vr":"DS","Value":[1.5E02]}`},
		{"DS leading zeros", "DS", "-0012.50", nil, false, `{"vr":"DS","Value":[-12.50]}`},
		{"DS bare period end", "DS", "1.", nil, false, `{"vr":"DS","Value":[1.0]}`},
		{"DS bare period start", "DS", "-.5", nil, false, `{"vr":"DS","Value":[-0.5]}`},
		{"DS period before exponent", "DS", "1.e5", nil, false, `{"vr":"DS","Value":[1.0e5]}`},
		{"DS zeros", "DS", `00\-0\0.0`, nil, false, `{"vr":"DS","Value":[0,-0,0.0]}`},
		{"DS multi with empty", "DS", `1\\ 2`, nil, false, `{"vr":"DS","Value":[1,null,2]}`},
		{"DS not a number", "DS", `NaN\1,5\abc\-\.\e5\1e\1e+`, nil, false,
			`{"vr":"DS","Value":["NaN","1,5","abc","-",".","e5","1e","1e+"]}`},
		{"DS inner space", "DS", "1 2", nil, false, `{"vr":"DS","Value":["1 2"]}`},
		{"IS", "IS", "-0012", nil, false, `{"vr":"IS","Value":[-12]}`},
		{"IS plus and padding", "IS", ` +7 \0`, nil, false, `{"vr":"IS","Value":[7,0]}`},
		{"IS decimal is a string", "IS", "1.5", nil, false, `{"vr":"IS","Value":["1.5"]}`},
		{"IS huge stays a number", "IS", "123456789012345678901234", nil, false, `{"vr":"IS","Value":[123456789012345678901234]}`},
		// binary numbers
		{"US", "US", le16(0, 65535), nil, false, `{"vr":"US","Value":[0,65535]}`},
		{"US big endian", "US", "\x01\x02", nil, true, `{"vr":"US","Value":[258]}`},
		{"US odd length", "US", le16(7) + "\x01", nil, false, `{"vr":"US","Value":[7]}`},
		{"US too short", "US", "\x01", nil, false, `{"vr":"US"}`},
		{"SS", "SS", le16(0x8000, 1), nil, false, `{"vr":"SS","Value":[-32768,1]}`},
		{"UL", "UL", le32(4294967295), nil, false, `{"vr":"UL","Value":[4294967295]}`},
		{"SL", "SL", le32(0x80000000), nil, false, `{"vr":"SL","Value":[-2147483648]}`},
		{"UV", "UV", le64(1<<53-1, 1<<53), nil, false, `{"vr":"UV","Value":[9007199254740991,"9007199254740992"]}`},
		{"SV", "SV", le64(uint64(1<<64-1), uint64(1<<63)), nil, false, `{"vr":"SV","Value":[-1,"-9223372036854775808"]}`},
		{"FL", "FL", f32(0.1, -2.5, 1e30), nil, false, `{"vr":"FL","Value":[0.1,-2.5,1e+30]}`},
		{"FL non-finite", "FL", f32(float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))), nil, false,
			`{"vr":"FL","Value":["NaN","Infinity","-Infinity"]}`},
		{"FD", "FD", f64(0.1, 5e-324, -1e300), nil, false, `{"vr":"FD","Value":[0.1,5e-324,-1e+300]}`},
		{"FD big endian", "FD", "\x3f\xf0\x00\x00\x00\x00\x00\x00", nil, true, `{"vr":"FD","Value":[1]}`},
		// AT
		{"AT", "AT", le16(0x0018, 0x1063, 0x7FE0, 0x0010), nil, false, `{"vr":"AT","Value":["00181063","7FE00010"]}`},
		{"AT big endian", "AT", "\x00\x28\x00\x10", nil, true, `{"vr":"AT","Value":["00280010"]}`},
		// binary
		{"OB", "OB", "\x00\x01\xfe\xff", nil, false, `{"vr":"OB","InlineBinary":"AAH+/w=="}`},
		{"OW little endian", "OW", le16(0x0102), nil, false, `{"vr":"OW","InlineBinary":"AgE="}`},
		{"OW big endian swapped", "OW", "\x01\x02", nil, true, `{"vr":"OW","InlineBinary":"AgE="}`},
		{"OF big endian swapped", "OF", "\x01\x02\x03\x04", nil, true, `{"vr":"OF","InlineBinary":"BAMCAQ=="}`},
		{"OD big endian swapped", "OD", "\x01\x02\x03\x04\x05\x06\x07\x08", nil, true, `{"vr":"OD","InlineBinary":"CAcGBQQDAgE="}`},
		{"OL", "OL", le32(1), nil, false, `{"vr":"OL","InlineBinary":"AQAAAA=="}`},
		{"OV", "OV", le64(1), nil, false, `{"vr":"OV","InlineBinary":"AQAAAAAAAAA="}`},
		{"UN not swapped", "UN", "\x01\x02\x03", nil, true, `{"vr":"UN","InlineBinary":"AQID"}`},
		{"OB empty", "OB", "", nil, false, `{"vr":"OB"}`},
		{"unknown VR as UN", "zz", "ab", nil, false, `{"vr":"UN","InlineBinary":"YWI="}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := &dicom.ScanResult{Dataset: ds(c.cs, c.be, el(tagX, c.vr, c.raw))}
			got := outOf(t, res, Options{})
			want := `{"00091010":` + c.want + `}`
			if got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestSpecificCharacterSet(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"ISO_IR 100", `["ISO_IR 192"]`},
		{"ISO_IR 192", `["ISO_IR 192"]`},
		{`\ISO 2022 IR 87`, `["ISO_IR 192"]`},
		{`ISO 2022 IR 6\ISO 2022 IR 87`, `["ISO_IR 192"]`},
		{"GB18030", `["ISO_IR 192"]`},
		{"ISO_IR 6", `["ISO_IR 6"]`},
	} {
		res := &dicom.ScanResult{Dataset: ds(nil, false, el(dicom.TagSpecificCharacterSet, "CS", c.raw))}
		if got, want := outOf(t, res, Options{}), `{"00080005":{"vr":"CS","Value":`+c.want+`}}`; got != want {
			t.Errorf("%q: got %s, want %s", c.raw, got, want)
		}
	}
	// Always CS, whatever the file said (found by FuzzWriteDataset).
	res := &dicom.ScanResult{Dataset: ds(nil, false, el(dicom.TagSpecificCharacterSet, "PN", "ISO_IR 100"))}
	if got := outOf(t, res, Options{}); got != `{"00080005":{"vr":"CS","Value":["ISO_IR 192"]}}` {
		t.Errorf("PN: %s", got)
	}
	if got := attrsJSON(t, nil, Attr{Tag: dicom.TagSpecificCharacterSet, VR: "PN", Values: []string{"ISO_IR 100"}}); got != `{"00080005":{"vr":"CS","Value":["ISO_IR 192"]}}` {
		t.Errorf("WriteAttrs PN: %s", got)
	}
	res = &dicom.ScanResult{Dataset: ds(nil, false, el(dicom.TagSpecificCharacterSet, "CS", ""))}
	if got := outOf(t, res, Options{}); got != `{"00080005":{"vr":"CS"}}` {
		t.Errorf("empty: %s", got)
	}
}

func TestStructure(t *testing.T) {
	inner := ds(nil, false, el(0x00080100, "SH", "C1"), el(0x00080102, "SH", "DCM"))
	nested := ds(nil, false,
		el(0x00080050, "SH", "ACC"),
		&dicom.Element{Tag: 0x00080051, VR: "SQ", Items: []*dicom.Dataset{ds(nil, false, el(0x00400031, "UT", "NS"))}},
		el(0x00080000, "UL", le32(8)), // group length inside an item
	)
	top := ds(nil, false,
		el(0x00020010, "UI", "1.2.840.10008.1.2.1"), // file meta: left out
		el(0x00080000, "UL", le32(100)),             // group length: left out
		el(0x00100010, "PN", "Doe^John"),
		el(0x00080018, "UI", "1.2.3"),
		&dicom.Element{Tag: 0x00081032, VR: "SQ", Items: []*dicom.Dataset{inner, ds(nil, false)}},
		&dicom.Element{Tag: 0x00400275, VR: "SQ", Items: []*dicom.Dataset{nested}},
		&dicom.Element{Tag: 0x00081110, VR: "SQ"},                                 // empty sequence
		&dicom.Element{Tag: 0x00191010, VR: "UN", Items: []*dicom.Dataset{inner}}, // UN of undefined length
		el(0x00100020, "LO", ""),
	)
	got := outOf(t, &dicom.ScanResult{Dataset: top}, Options{})
	want := `{"00080018":{"vr":"UI","Value":["1.2.3"]},` +
		`"00081032":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["C1"]},"00080102":{"vr":"SH","Value":["DCM"]}},{}]},` +
		`"00081110":{"vr":"SQ"},` +
		`"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^John"}]},` +
		`"00100020":{"vr":"LO"},` +
		`"00191010":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["C1"]},"00080102":{"vr":"SH","Value":["DCM"]}}]},` +
		`"00400275":{"vr":"SQ","Value":[{"00080050":{"vr":"SH","Value":["ACC"]},"00080051":{"vr":"SQ","Value":[{"00400031":{"vr":"UT","Value":["NS"]}}]}}]}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// Item character set inheritance: items decode with their dataset's set.
	item := ds([]string{"ISO_IR 100"}, false, el(0x00080104, "LO", "T\xeate"))
	res := &dicom.ScanResult{Dataset: ds([]string{"ISO_IR 100"}, false,
		el(dicom.TagSpecificCharacterSet, "CS", "ISO_IR 100"),
		&dicom.Element{Tag: 0x00081032, VR: "SQ", Items: []*dicom.Dataset{item}})}
	if got := outOf(t, res, Options{}); !strings.Contains(got, `"Tête"`) {
		t.Fatalf("item not decoded: %s", got)
	}
}

func TestTooDeep(t *testing.T) {
	d := ds(nil, false)
	d.Elements[0x00081032] = &dicom.Element{Tag: 0x00081032, VR: "SQ", Items: []*dicom.Dataset{d}} // cycle
	var b bytes.Buffer
	if err := WriteDataset(&b, &dicom.ScanResult{Dataset: d}, Options{}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("err = %v", err)
	}
	if err := WriteDataset(&b, nil, Options{}); err == nil {
		t.Fatal("nil result accepted")
	}
}

func TestBulkData(t *testing.T) {
	top := ds(nil, false,
		el(0x00080018, "UI", "1.2.3"),
		el(0x00280010, "US", le16(512)),
	)
	res := &dicom.ScanResult{
		Dataset: top,
		Skipped: []dicom.ValueRef{
			{Tag: 0x00420011, VR: "OB", Offset: 100, Length: 4000},  // Encapsulated Document
			{Tag: 0x00081032, VR: "SQ", Offset: 50, Length: 60},     // skipped sequence: VR only
			{Tag: 0x00091001, VR: "OB", Offset: 10, Length: 0},      // empty: VR only
			{Tag: 0x00282000, VR: "", Offset: 10, Length: 8},        // implicit: VR from dictionary (ICC Profile, OB)
			{Tag: 0x00080018, VR: "UI", Offset: 5, Length: 6},       // also extracted: written from the value
			{Tag: 0x00020010, VR: "UI", Offset: 0, Length: 20},      // file meta: left out
			{Tag: 0x00180000, VR: "UL", Offset: 0, Length: 4},       // group length: left out
			{Tag: 0x00091002, VR: "OB", Offset: 10, Length: 0xFFFF}, // BulkDataURI returns ""
		},
		PixelData: &dicom.ValueRef{Tag: dicom.TagPixelData, VR: "OW", Offset: 500, Length: 8192},
	}
	var asked []dicom.Tag
	uri := func(t dicom.Tag) string {
		asked = append(asked, t)
		if t == 0x00091002 {
			return ""
		}
		return "bulk/" + strings.Trim(t.String(), "()")
	}
	got := outOf(t, res, Options{BulkDataURI: uri})
	want := `{"00080018":{"vr":"UI","Value":["1.2.3"]},` +
		`"00081032":{"vr":"SQ"},` +
		`"00091001":{"vr":"OB"},` +
		`"00091002":{"vr":"OB"},` +
		`"00280010":{"vr":"US","Value":[512]},` +
		`"00282000":{"vr":"OB","BulkDataURI":"bulk/0028,2000"},` +
		`"00420011":{"vr":"OB","BulkDataURI":"bulk/0042,0011"},` +
		`"7FE00010":{"vr":"OW","BulkDataURI":"bulk/7FE0,0010"}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if len(asked) != 4 {
		t.Fatalf("BulkDataURI called for %v", asked)
	}
	// Without BulkDataURI: VR only.
	got = outOf(t, res, Options{})
	if !strings.Contains(got, `"7FE00010":{"vr":"OW"}`) || !strings.Contains(got, `"00420011":{"vr":"OB"}`) {
		t.Fatalf("without BulkDataURI: %s", got)
	}
	// Encapsulated pixel data extracted without a value is bulk data too;
	// extracted native pixel data is inlined.
	top.Elements[dicom.TagPixelData] = &dicom.Element{Tag: dicom.TagPixelData, VR: "OB"}
	res = &dicom.ScanResult{Dataset: top, PixelData: &dicom.ValueRef{Tag: dicom.TagPixelData, VR: "OB", Offset: 9, Length: dicom.UndefinedLength}}
	if got := outOf(t, res, Options{BulkDataURI: uri}); !strings.HasSuffix(got, `"7FE00010":{"vr":"OB","BulkDataURI":"bulk/7FE0,0010"}}`) {
		t.Fatalf("encapsulated: %s", got)
	}
	top.Elements[dicom.TagPixelData] = el(dicom.TagPixelData, "OW", le16(1))
	res = &dicom.ScanResult{Dataset: top, PixelData: &dicom.ValueRef{Tag: dicom.TagPixelData, VR: "OW", Offset: 9, Length: 2}}
	if got := outOf(t, res, Options{BulkDataURI: uri}); !strings.HasSuffix(got, `"7FE00010":{"vr":"OW","InlineBinary":"AQA="}}`) {
		t.Fatalf("native extracted: %s", got)
	}
	// URIs are escaped.
	res.Skipped = []dicom.ValueRef{{Tag: 0x00420011, VR: "OB", Length: 2}}
	got = outOf(t, res, Options{BulkDataURI: func(dicom.Tag) string { return "a\"b\\c" }})
	if !strings.Contains(got, `"BulkDataURI":"a\"b\\c"`) {
		t.Fatalf("escaping: %s", got)
	}
}

type failWriter struct{ n int }

var errWrite = errors.New("write failed")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errWrite
	}
	f.n--
	return len(p), nil
}

func TestWriteErrors(t *testing.T) {
	top := ds(nil, false)
	for i := 0; i < 2000; i++ {
		tag := dicom.NewTag(0x0009, uint16(0x1000+i))
		top.Elements[tag] = el(tag, "LO", strings.Repeat("x", 60))
	}
	res := &dicom.ScanResult{Dataset: top}
	for n := 0; n < 3; n++ {
		if err := WriteDataset(&failWriter{n: n}, res, Options{}); !errors.Is(err, errWrite) {
			t.Fatalf("after %d writes: err = %v", n, err)
		}
	}
	if err := WriteAttrs(&failWriter{}, map[string]string{"00100010": "x"}); !errors.Is(err, errWrite) {
		t.Fatalf("WriteAttrs: err = %v", err)
	}
}

func TestLargeDatasetChunked(t *testing.T) {
	top := ds(nil, false)
	for i := 0; i < 5000; i++ {
		tag := dicom.NewTag(0x0009, uint16(0x1000+i))
		top.Elements[tag] = el(tag, "LO", strings.Repeat("y", 40))
	}
	var b bytes.Buffer
	if err := WriteDataset(&b, &dicom.ScanResult{Dataset: top}, Options{}); err != nil {
		t.Fatal(err)
	}
	m := decode(t, b.Bytes()).(map[string]any)
	if len(m) != 5000 {
		t.Fatalf("%d attributes", len(m))
	}
}

// TestConcurrent: pooled encoders do not mix outputs.
func TestConcurrent(t *testing.T) {
	var files [][]byte
	var want [][]byte
	for i, cs := range []string{"", "ISO_IR 192", "ISO_IR 100"} {
		ct := testdicom.CT{Charset: cs, PatientName: strings.Repeat("N", i+1), PatientID: "P", StudyUID: "1.2", SeriesUID: "1.2.3",
			SOPUID: "1.2.3.4", Instance: i, Rows: 2, Columns: 2,
			ProcedureCodes: []testdicom.Code{{Value: "C", Scheme: "S", Meaning: strings.Repeat("M", 100*i)}}}
		f, err := ct.File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		want = append(want, writeJSON(t, scanFile(t, f, dicom.ScanOptions{Want: dicom.WantAll}), Options{}))
	}
	results := make([]*dicom.ScanResult, len(files))
	for i, f := range files {
		results[i] = scanFile(t, f, dicom.ScanOptions{Want: dicom.WantAll})
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				i := (g + n) % len(files)
				var b bytes.Buffer
				if err := WriteDataset(&b, results[i], Options{}); err != nil || !bytes.Equal(b.Bytes(), want[i]) {
					errs <- fmt.Sprintf("goroutine %d: output %d differs (%v)", g, i, err)
					return
				}
				b.Reset()
				if err := WriteAttrs(&b, map[string]string{"00100010": "A^B", "00101002": `[{"00100020":"X"}]`}); err != nil {
					errs <- err.Error()
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
