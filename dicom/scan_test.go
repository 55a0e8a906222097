package dicom

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestTag(t *testing.T) {
	tests := []struct {
		tag     Tag
		str     string
		vr      VR
		keyword string
	}{
		{TagPatientName, "(0010,0010)", VRPN, "PatientName"},
		{TagStudyInstanceUID, "(0020,000D)", VRUI, "StudyInstanceUID"},
		{TagPixelData, "(7FE0,0010)", VROW, "PixelData"},
		{TagRows, "(0028,0010)", VRUS, "Rows"},
		{TagOtherPatientIDsSequence, "(0010,1002)", VRSQ, "OtherPatientIDsSequence"},
		{TagFileMetaInformationGroupLength, "(0002,0000)", VRUL, "FileMetaInformationGroupLength"},
		{NewTag(0x0010, 0x0000), "(0010,0000)", VRUL, ""},
		{NewTag(0x0009, 0x0010), "(0009,0010)", VRLO, ""},
		{NewTag(0x0009, 0x1010), "(0009,1010)", VRUN, ""},
		{NewTag(0x6002, 0x3000), "(6002,3000)", VROW, "OverlayData"},
		{NewTag(0x0008, 0xFFF0), "(0008,FFF0)", VRUN, ""},
		{TagItem, "(FFFE,E000)", "", "Item"},
	}
	for _, tc := range tests {
		t.Run(tc.str, func(t *testing.T) {
			if got := tc.tag.String(); got != tc.str {
				t.Errorf("String = %q, want %q", got, tc.str)
			}
			if NewTag(tc.tag.Group(), tc.tag.Element()) != tc.tag {
				t.Error("NewTag(Group, Element) round trip failed")
			}
			if got := LookupVR(tc.tag); got != tc.vr {
				t.Errorf("LookupVR = %q, want %q", got, tc.vr)
			}
			if got := Keyword(tc.tag); got != tc.keyword {
				t.Errorf("Keyword = %q, want %q", got, tc.keyword)
			}
			if tc.keyword != "" {
				if got, ok := TagByKeyword(tc.keyword); !ok || got != NewTag(0x6000, 0x3000) && got != tc.tag {
					t.Errorf("TagByKeyword(%q) = %v, %v", tc.keyword, got, ok)
				}
			}
		})
	}
	if _, ok := TagByKeyword("NoSuchKeyword"); ok {
		t.Error("TagByKeyword found a bogus keyword")
	}
	if _, ok := TagByKeyword("Patient's Name"); ok {
		t.Error("TagByKeyword accepted a name")
	}
}

func TestTransferSyntaxes(t *testing.T) {
	tests := []struct {
		uid                                       string
		explicit, big, deflated, encapsulated, ok bool
	}{
		{ImplicitVRLittleEndian, false, false, false, false, true},
		{ExplicitVRLittleEndian, true, false, false, false, true},
		{ExplicitVRBigEndian, true, true, false, false, true},
		{DeflatedExplicitVRLittleEndian, true, false, true, false, true},
		{JPEGBaseline8Bit, true, false, false, true, true},
		{JPEGLosslessSV1, true, false, false, true, true},
		{JPEGLSLossless, true, false, false, true, true},
		{JPEG2000Lossless, true, false, false, true, true},
		{JPEG2000, true, false, false, true, true},
		{RLELossless, true, false, false, true, true},
		{MPEG2MPML, true, false, false, true, true},
		{MPEG4HP41, true, false, false, true, true},
		{HEVCMP51, true, false, false, true, true},
		{HTJ2KLossless, true, false, false, true, true},
		{HTJ2K, true, false, false, true, true},
		{ExplicitVRLittleEndian + "\x00", true, false, false, false, true},
		{"1.2.3", false, false, false, false, false},
	}
	for _, tc := range tests {
		ts, ok := LookupTransferSyntax(tc.uid)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v", tc.uid, ok)
			continue
		}
		if !ok {
			continue
		}
		if ts.ExplicitVR != tc.explicit || ts.BigEndian != tc.big || ts.Deflated != tc.deflated || ts.Encapsulated != tc.encapsulated || ts.Name == "" {
			t.Errorf("%s: got %+v", tc.uid, ts)
		}
	}
}

func TestStorageSOPClasses(t *testing.T) {
	seen := map[string]bool{}
	for _, u := range StorageSOPClasses {
		if seen[u] {
			t.Errorf("duplicate %s", u)
		}
		seen[u] = true
	}
	if len(StorageSOPClasses) < 150 {
		t.Errorf("only %d storage SOP classes", len(StorageSOPClasses))
	}
	tests := []struct {
		uid  string
		want bool
	}{
		{CTImageStorage, true},
		{MRImageStorage, true},
		{SecondaryCaptureImageStorage, true},
		{KeyObjectSelectionDocumentStorage, true},
		{EncapsulatedPDFStorage, true},
		{EncapsulatedCDAStorage, true},
		{"1.2.840.10008.5.1.4.1.1.6", true},   // US retired
		{"1.2.840.10008.5.1.4.1.1.5", true},   // NM retired
		{"1.2.840.10008.5.1.4.1.1.3", true},   // US MF retired
		{"1.2.840.10008.5.1.4.1.1.128", true}, // PET
		{"1.2.840.10008.5.1.4.1.1.2\x00", true},
		{VerificationSOPClass, false},
		{"1.2.840.10008.5.1.4.1.2.1.1", false}, // Patient Root Q/R FIND
		{"", false},
	}
	for _, tc := range tests {
		if got := IsStorageSOPClass(tc.uid); got != tc.want {
			t.Errorf("IsStorageSOPClass(%q) = %v", tc.uid, got)
		}
	}
}

var fixtureWant = WantTags(TagPatientName, TagPatientID, TagIssuerOfPatientID, TagOtherPatientIDsSequence,
	TagRows, TagColumns, TagBitsAllocated, TagStudyInstanceUID, TagSeriesNumber, TagImageType, TagModality)

func checkFixtureScan(t *testing.T, res *ScanResult, size int, pixel bool) {
	t.Helper()
	ds := res.Dataset
	if res.Size != int64(size) {
		t.Errorf("Size = %d, want %d", res.Size, size)
	}
	if res.HasPixelData != pixel {
		t.Errorf("HasPixelData = %v", res.HasPixelData)
	}
	if len(ds.CharacterSet) != 1 || ds.CharacterSet[0] != "ISO_IR 100" {
		t.Errorf("CharacterSet = %q", ds.CharacterSet)
	}
	if s, err := ds.String(TagPatientName); err != nil || s != "Müller^Hans" {
		t.Errorf("PatientName = %q, %v", s, err)
	}
	if s, _ := ds.String(TagStudyInstanceUID); s != "1.2.3.4" {
		t.Errorf("StudyInstanceUID = %q", s)
	}
	if v, _ := ds.Strings(TagImageType); len(v) != 3 || v[2] != "AXIAL" {
		t.Errorf("ImageType = %q", v)
	}
	if v, ok := ds.Uint(TagRows); !ok || v != 512 {
		t.Errorf("Rows = %d, %v", v, ok)
	}
	if v, ok := ds.Uint(TagSeriesNumber); !ok || v != 3 {
		t.Errorf("SeriesNumber = %d, %v", v, ok)
	}
	if _, ok := ds.Get(TagStudyDate); ok {
		t.Error("StudyDate extracted though not wanted")
	}
	seq, ok := ds.Get(TagOtherPatientIDsSequence)
	if !ok || len(seq.Items) != 2 {
		t.Fatalf("OtherPatientIDsSequence = %+v", seq)
	}
	if s, _ := seq.Items[1].String(TagIssuerOfPatientID); s != "HOSP B" {
		t.Errorf("item issuer = %q", s)
	}
	if s, _ := seq.Items[0].String(TagPatientID); s != "OTHER1" {
		t.Errorf("item id = %q", s)
	}
}

func TestScanSyntaxes(t *testing.T) {
	for _, ts := range []TransferSyntax{tsImplicit, tsExplicit, tsBig, tsDeflated, tsJPEG} {
		for _, undef := range []bool{false, true} {
			o := fixtureOpts{undefinedSeq: undef, pixelBytes: 4096, private: true}
			if ts.Encapsulated {
				o.pixelBytes, o.fragments = 0, 3
			}
			name := ts.Name
			if undef {
				name += "/undefined"
			}
			t.Run(name, func(t *testing.T) {
				b := encodedFixture(t, ts, o)
				res, err := Scan(bytes.NewReader(b), ts, DefaultLimits(), fixtureWant)
				if err != nil {
					t.Fatal(err)
				}
				checkFixtureScan(t, res, len(b), true)
				if res.Elements < 40 {
					t.Errorf("Elements = %d", res.Elements)
				}
			})
		}
	}
}

func TestScanWantAllNested(t *testing.T) {
	b := buildFixture(t, tsExplicit, fixtureOpts{})
	res, err := Scan(bytes.NewReader(b), tsExplicit, DefaultLimits(), WantAll)
	must(t, err)
	ref, ok := res.Dataset.Get(NewTag(0x0008, 0x1140))
	if !ok || len(ref.Items) != 2 {
		t.Fatal("referenced image sequence missing")
	}
	code, ok := ref.Items[1].Get(NewTag(0x0040, 0xA170))
	if !ok || len(code.Items) != 1 {
		t.Fatal("nested code sequence missing")
	}
	if s, _ := code.Items[0].String(NewTag(0x0008, 0x0104)); s != "Localizer" {
		t.Errorf("code meaning = %q", s)
	}
	if len(code.Items[0].CharacterSet) != 1 {
		t.Error("items do not inherit the character set")
	}
	res, err = Scan(bytes.NewReader(b), tsExplicit, DefaultLimits(), nil)
	must(t, err)
	if len(res.Dataset.Elements) != 1 {
		t.Errorf("nil want extracted %d elements, want only the character set", len(res.Dataset.Elements))
	}
}

// raw builds byte sequences for error tests.
type raw struct {
	bytes.Buffer
	e *Encoder
}

func newRaw(ts TransferSyntax) *raw {
	r := &raw{}
	r.e = NewEncoder(&r.Buffer, ts)
	return r
}

func (r *raw) hdr(t Tag, vr VR, n uint32) *raw { r.e.WriteHeader(t, vr, n); return r }
func (r *raw) item(t Tag, n uint32) *raw       { r.e.WriteItemHeader(t, n); return r }
func (r *raw) val(b ...byte) *raw              { r.Write(b); return r }
func (r *raw) str(t Tag, vr VR, s string) *raw { r.e.WriteString(t, vr, s); return r }
func (r *raw) zeros(n int) *raw                { r.Write(make([]byte, n)); return r }
func (r *raw) cut(n int) []byte                { return r.Bytes()[:r.Len()-n] }

func nested(depth int) []byte {
	r := newRaw(tsExplicit)
	for i := 0; i < depth; i++ {
		r.hdr(NewTag(0x0008, 0x1140), VRSQ, undefinedLength).item(TagItem, undefinedLength)
	}
	for i := 0; i < depth; i++ {
		r.item(TagItemDelimitationItem, 0).item(TagSequenceDelimitationItem, 0)
	}
	return r.Bytes()
}

func TestScanErrors(t *testing.T) {
	small := DefaultLimits()
	small.MaxValueLength = 100
	held := DefaultLimits()
	held.MaxHeldValue = 8
	sized := DefaultLimits()
	sized.MaxDatasetSize = 50
	shallow := DefaultLimits()
	shallow.MaxDepth = 4
	fixture := buildFixture(t, tsExplicit, fixtureOpts{pixelBytes: 1000})
	deflated := deflate(t, fixture)
	corrupt := append([]byte{0xff, 0xff, 0xff}, deflated[3:]...)

	tests := []struct {
		name string
		ts   TransferSyntax
		lim  Limits
		data []byte
		want error
	}{
		{"value past EOF", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagPatientName, VRPN, 10).val('a', 'b').Bytes(), ErrTruncated},
		{"long value past EOF", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagPixelData, VROW, 1<<30).zeros(100).Bytes(), ErrTruncated},
		{"implicit value past EOF", tsImplicit, DefaultLimits(), newRaw(tsImplicit).hdr(TagStudyDescription, "", 0x7FFFFFF0).zeros(8).Bytes(), ErrTruncated},
		{"truncated fixture", tsExplicit, DefaultLimits(), fixture[:len(fixture)-1], ErrTruncated},
		{"truncated header", tsExplicit, DefaultLimits(), []byte{0x10, 0, 0x10, 0, 'P'}, ErrTruncated},
		{"truncated long header", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagPixelData, VROB, 2).cut(3), ErrTruncated},
		{"truncated item header", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).val(0xfe, 0xff, 0, 0xe0).Bytes(), ErrTruncated},
		{"sequence without delimiter", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).item(TagItem, 0).Bytes(), ErrTruncated},
		{"item without delimiter", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).item(TagItem, undefinedLength).str(TagPatientID, VRLO, "X").Bytes(), ErrTruncated},
		{"length over limit", tsExplicit, small, newRaw(tsExplicit).hdr(TagPixelData, VROB, 200).zeros(200).Bytes(), ErrLimitExceeded},
		{"item length over limit", tsExplicit, small, newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).item(TagItem, 1000).Bytes(), ErrLimitExceeded},
		{"wanted value over MaxHeldValue", tsExplicit, held, newRaw(tsExplicit).str(TagPatientName, VRPN, "Very^Long^Name").Bytes(), ErrLimitExceeded},
		{"dataset over MaxDatasetSize", tsExplicit, sized, fixture, ErrLimitExceeded},
		{"depth overflow", tsExplicit, shallow, nested(5), ErrLimitExceeded},
		{"default depth overflow", tsExplicit, DefaultLimits(), nested(17), ErrLimitExceeded},
		{"sequence delimiter closes item", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).item(TagItem, undefinedLength).item(TagSequenceDelimitationItem, 0).Bytes(), ErrMalformed},
		{"item delimiter at top level", tsExplicit, DefaultLimits(), newRaw(tsExplicit).item(TagItemDelimitationItem, 0).Bytes(), ErrMalformed},
		{"sequence delimiter in defined sequence", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, 8).item(TagSequenceDelimitationItem, 0).Bytes(), ErrMalformed},
		{"item delimiter in defined item", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, 16).item(TagItem, 8).item(TagItemDelimitationItem, 0).Bytes(), ErrMalformed},
		{"delimiter with length", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).item(TagSequenceDelimitationItem, 4).Bytes(), ErrMalformed},
		{"element in sequence", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).str(TagPatientID, VRLO, "X").Bytes(), ErrMalformed},
		{"value crosses item end", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, 20).item(TagItem, 12).str(TagPatientID, VRLO, "ABCDEFGH").Bytes(), ErrMalformed},
		{"item crosses sequence end", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, 10).item(TagItem, 12).str(TagPatientID, VRLO, "ABCD").Bytes(), ErrMalformed},
		{"tags out of order", tsExplicit, DefaultLimits(), newRaw(tsExplicit).str(TagPatientID, VRLO, "A").str(TagPatientName, VRPN, "B").Bytes(), ErrMalformed},
		{"duplicate tag", tsExplicit, DefaultLimits(), newRaw(tsExplicit).str(TagPatientID, VRLO, "A").str(TagPatientID, VRLO, "B").Bytes(), ErrMalformed},
		{"odd length", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagPatientName, VRPN, 3).val('a', 'b', 'c').Bytes(), ErrMalformed},
		{"undefined length PN", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagPatientName, VROB, undefinedLength).Bytes(), ErrMalformed},
		{"invalid VR", tsExplicit, DefaultLimits(), []byte{0x10, 0, 0x10, 0, 'Z', 'Z', 0, 0}, ErrMalformed},
		{"encapsulated in native syntax", tsExplicit, DefaultLimits(), newRaw(tsExplicit).hdr(TagPixelData, VROB, undefinedLength).item(TagItem, 0).item(TagSequenceDelimitationItem, 0).Bytes(), ErrMalformed},
		{"fragment of undefined length", tsJPEG, DefaultLimits(), newRaw(tsJPEG).hdr(TagPixelData, VROB, undefinedLength).item(TagItem, 0).item(TagItem, undefinedLength).Bytes(), ErrMalformed},
		{"fragments without offset table", tsJPEG, DefaultLimits(), newRaw(tsJPEG).hdr(TagPixelData, VROB, undefinedLength).item(TagSequenceDelimitationItem, 0).Bytes(), ErrMalformed},
		{"fragments unterminated", tsJPEG, DefaultLimits(), newRaw(tsJPEG).hdr(TagPixelData, VROB, undefinedLength).item(TagItem, 0).item(TagItem, 4).zeros(4).Bytes(), ErrTruncated},
		{"fragment past EOF", tsJPEG, DefaultLimits(), newRaw(tsJPEG).hdr(TagPixelData, VROB, undefinedLength).item(TagItem, 0).item(TagItem, 400).zeros(4).Bytes(), ErrTruncated},
		{"deflated truncated", tsDeflated, DefaultLimits(), deflated[:len(deflated)/2], ErrTruncated},
		{"deflated corrupt", tsDeflated, DefaultLimits(), corrupt, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(bytes.NewReader(tc.data), tc.ts, tc.lim, WantTags(TagPatientName, TagPatientID, TagOtherPatientIDsSequence))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var se *ScanError
			if !errors.As(err, &se) {
				t.Fatalf("err %T is not a *ScanError", err)
			}
		})
	}
}

func TestScanAcceptsEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		ts   TransferSyntax
		data []byte
	}{
		{"empty dataset", tsExplicit, nil},
		{"odd private value", tsExplicit, newRaw(tsExplicit).hdr(NewTag(0x0009, 0x1001), VRLO, 3).val('a', 'b', 'c').Bytes()},
		{"odd UN value", tsExplicit, newRaw(tsExplicit).hdr(NewTag(0x0008, 0xFFF0), VRUN, 3).val(1, 2, 3).Bytes()},
		{"UN undefined length (implicit sequence)", tsExplicit, func() []byte {
			r := newRaw(tsExplicit).hdr(NewTag(0x0009, 0x1001), VRUN, undefinedLength)
			in := NewEncoder(&r.Buffer, tsImplicit)
			in.WriteItemHeader(TagItem, undefinedLength)
			in.WriteString(TagPatientID, VRLO, "X1")
			in.WriteItemHeader(TagItemDelimitationItem, 0)
			in.WriteItemHeader(TagSequenceDelimitationItem, 0)
			return r.Bytes()
		}()},
		{"big endian UN undefined length", tsBig, func() []byte {
			r := newRaw(tsBig).hdr(NewTag(0x0009, 0x1001), VRUN, undefinedLength)
			in := NewEncoder(&r.Buffer, tsImplicit)
			in.WriteItemHeader(TagItem, 10)
			in.WriteString(TagPatientID, VRLO, "X1")
			in.WriteItemHeader(TagSequenceDelimitationItem, 0)
			return r.Bytes()
		}()},
		{"implicit private sequence", tsImplicit, newRaw(tsImplicit).hdr(NewTag(0x0009, 0x1001), "", undefinedLength).item(TagItem, 0).item(TagSequenceDelimitationItem, 0).Bytes()},
		{"empty sequence", tsExplicit, newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, 0).Bytes()},
		{"empty items", tsExplicit, newRaw(tsExplicit).hdr(TagOtherPatientIDsSequence, VRSQ, undefinedLength).item(TagItem, 0).item(TagItem, undefinedLength).item(TagItemDelimitationItem, 0).item(TagSequenceDelimitationItem, 0).Bytes()},
		{"max depth", tsExplicit, nested(16)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Scan(bytes.NewReader(tc.data), tc.ts, DefaultLimits(), WantAll)
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != int64(len(tc.data)) {
				t.Errorf("Size = %d, want %d", res.Size, len(tc.data))
			}
		})
	}
}

// pixelStream yields a dataset header then n bytes of pixel data, generated
// on the fly.
type pixelStream struct {
	head []byte
	n    int64
}

func (p *pixelStream) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		c := copy(b, p.head)
		p.head = p.head[c:]
		return c, nil
	}
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = byte(i)
	}
	p.n -= int64(len(b))
	return len(b), nil
}

func TestScanMemoryBounded(t *testing.T) {
	const n = 300 << 20
	for _, ts := range []TransferSyntax{tsExplicit, tsImplicit} {
		t.Run(ts.Name, func(t *testing.T) {
			h := newRaw(ts)
			h.str(TagPatientName, VRPN, "Big^Image").hdr(TagPixelData, VROW, n)
			src := &pixelStream{head: h.Bytes(), n: n}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res, err := Scan(src, ts, DefaultLimits(), WantAll)
			runtime.ReadMemStats(&after)
			if err == nil || !errors.Is(err, ErrLimitExceeded) {
				// WantAll asks for the pixel data: 300 MB > MaxHeldValue.
				t.Fatalf("want ErrLimitExceeded for wanted 300 MB value, got %v", err)
			}
			src = &pixelStream{head: h.Bytes(), n: n}
			runtime.GC()
			runtime.ReadMemStats(&before)
			res, err = Scan(src, ts, DefaultLimits(), WantTags(TagPatientName))
			runtime.ReadMemStats(&after)
			must(t, err)
			if res.Size != int64(len(h.Bytes()))+n || !res.HasPixelData {
				t.Errorf("Size = %d", res.Size)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d bytes scanning %d bytes", d, n)
			} else {
				t.Logf("allocated %d bytes scanning %d MB", d, n>>20)
			}
		})
	}
}

func TestScanTruncatedNeverNil(t *testing.T) {
	// Every strict prefix of a fixture that cuts inside an element must fail.
	for _, ts := range []TransferSyntax{tsImplicit, tsExplicit, tsBig, tsJPEG} {
		o := fixtureOpts{undefinedSeq: true, pixelBytes: 64, private: true}
		if ts.Encapsulated {
			o.pixelBytes, o.fragments = 0, 2
		}
		b := buildFixture(t, ts, o)
		boundaries := map[int]bool{}
		// top-level element boundaries are legal end points
		res, err := Scan(bytes.NewReader(b), ts, DefaultLimits(), nil)
		must(t, err)
		_ = res
		for cut := 0; cut < len(b); cut++ {
			_, err := Scan(bytes.NewReader(b[:cut]), ts, DefaultLimits(), nil)
			if err == nil {
				boundaries[cut] = true
			} else if !errors.Is(err, ErrTruncated) {
				t.Errorf("%s: prefix %d: err = %v, want ErrTruncated", ts.Name, cut, err)
			}
		}
		// the legal end points are exactly the top-level element boundaries
		n := 0
		for range boundaries {
			n++
		}
		if n < 20 || n > 60 {
			t.Errorf("%s: %d prefixes scanned cleanly", ts.Name, n)
		}
	}
}

func TestScanWith(t *testing.T) {
	ts, _ := LookupTransferSyntax(ExplicitVRLittleEndian)
	icon := newRaw(ts).hdr(TagPixelData, VROB, 4).val(9, 9, 9, 9).Bytes()
	b := newRaw(ts).
		str(NewTag(0x0008, 0x0018), VRUI, "1.2.3").
		hdr(NewTag(0x0009, 0x1010), VROB, 6).val(1, 2, 3, 4, 5, 6).
		hdr(NewTag(0x0088, 0x0200), VRSQ, undefinedLength).
		item(TagItem, uint32(len(icon))).val(icon...).
		item(TagSequenceDelimitationItem, 0).
		hdr(TagPixelData, VROB, undefinedLength).
		item(TagItem, 4).val(0, 0, 0, 0).
		item(TagItem, 6).val(1, 2, 3, 4, 5, 6).
		item(TagItem, 2).val(7, 8).
		item(TagSequenceDelimitationItem, 0).Bytes()
	encaps, _ := LookupTransferSyntax("1.2.840.10008.1.2.4.50")
	want := WantTags(NewTag(0x0008, 0x0018))

	res, err := ScanWith(bytes.NewReader(b), encaps, DefaultLimits(), ScanOptions{Want: want, RecordSkipped: true, RecordFragments: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.PixelData == nil || res.PixelData.Length != UndefinedLength || res.PixelData.VR != VROB {
		t.Fatalf("pixel data ref %+v", res.PixelData)
	}
	if len(res.Skipped) != 3 || res.Skipped[0].Tag != NewTag(0x0009, 0x1010) || res.Skipped[2].Tag != TagPixelData {
		t.Fatalf("skipped %+v", res.Skipped)
	}
	if got := b[res.Skipped[0].Offset : res.Skipped[0].Offset+int64(res.Skipped[0].Length)]; !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("skipped value at offset: %v", got)
	}
	// The icon's pixel data is nested: only the top-level fragments count.
	if len(res.Fragments) != 3 {
		t.Fatalf("fragments %+v", res.Fragments)
	}
	for i, want := range [][]byte{{0, 0, 0, 0}, {1, 2, 3, 4, 5, 6}, {7, 8}} {
		f := res.Fragments[i]
		if got := b[f.Offset : f.Offset+int64(f.Length)]; !bytes.Equal(got, want) {
			t.Fatalf("fragment %d = %v, want %v", i, got, want)
		}
	}

	// Stopping at the pixel data reads nothing after its header: a stream
	// cut right after it is no error.
	cut := res.PixelData.Offset
	res, err = ScanWith(bytes.NewReader(b[:cut]), encaps, DefaultLimits(), ScanOptions{Want: want, StopAtPixelData: true})
	if err != nil {
		t.Fatalf("stop at pixel data: %v", err)
	}
	if res.PixelData == nil || res.PixelData.Offset != cut || res.Size != cut {
		t.Fatalf("stop: ref %+v size %d, want offset %d", res.PixelData, res.Size, cut)
	}
	if _, ok := res.Dataset.Get(NewTag(0x0008, 0x0018)); !ok {
		t.Fatal("wanted element before the pixel data not extracted")
	}
	// Without the option the same cut is a truncation.
	if _, err := Scan(bytes.NewReader(b[:cut]), encaps, DefaultLimits(), want); !errors.Is(err, ErrTruncated) {
		t.Fatalf("plain scan of cut data: %v", err)
	}
}

func TestScanWithSkipLarger(t *testing.T) {
	ts, _ := LookupTransferSyntax(ExplicitVRLittleEndian)
	b := newRaw(ts).
		str(NewTag(0x0008, 0x0018), VRUI, "1.2.3").
		hdr(NewTag(0x0009, 0x1010), VROB, 64).zeros(64).
		hdr(NewTag(0x0009, 0x1011), VROB, 4).val(1, 2, 3, 4).Bytes()
	res, err := ScanWith(bytes.NewReader(b), ts, DefaultLimits(), ScanOptions{Want: WantAll, RecordSkipped: true, SkipLarger: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Dataset.Get(NewTag(0x0009, 0x1010)); ok {
		t.Fatal("value over SkipLarger extracted")
	}
	if e, ok := res.Dataset.Get(NewTag(0x0009, 0x1011)); !ok || len(e.Raw) != 4 {
		t.Fatal("small value not extracted")
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Tag != NewTag(0x0009, 0x1010) || res.Skipped[0].Length != 64 {
		t.Fatalf("skipped %+v", res.Skipped)
	}
}
