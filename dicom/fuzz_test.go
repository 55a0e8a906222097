package dicom

import (
	"bytes"
	"errors"
	"testing"
)

var fuzzSyntaxes = []TransferSyntax{tsImplicit, tsExplicit, tsBig, tsDeflated, tsJPEG}

func FuzzScan(f *testing.F) {
	for i, ts := range fuzzSyntaxes {
		for _, undef := range []bool{false, true} {
			o := fixtureOpts{undefinedSeq: undef, pixelBytes: 16, private: true, mixed: true}
			if ts.Encapsulated {
				o.pixelBytes, o.fragments = 0, 2
			}
			f.Add(uint8(i), encodedFixture(f, ts, o))
		}
		f.Add(uint8(i), nested(3))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ts := fuzzSyntaxes[int(which)%len(fuzzSyntaxes)]
		lim := DefaultLimits()
		lim.MaxHeldValue = 4096
		lim.MaxHeldTotal = 1 << 20
		lim.MaxDatasetSize = 16 << 20
		res, err := Scan(bytes.NewReader(data), ts, lim, WantAll)
		if err != nil {
			var se *ScanError
			if errors.As(err, &se) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimitExceeded) {
				t.Fatalf("ScanError with unexpected sentinel: %v", err)
			}
			return
		}
		if ts.Deflated {
			return
		}
		if res.Size != int64(len(data)) {
			t.Fatalf("Size = %d, len = %d", res.Size, len(data))
		}
		// Appending a partial element header must be reported as truncated.
		for k := 1; k < 8 && k <= len(data); k++ {
			ext := append(append([]byte(nil), data...), data[:k]...)
			if _, err := Scan(bytes.NewReader(ext), ts, lim, nil); err == nil {
				t.Fatalf("no error for a dataset followed by %d header bytes", k)
			}
		}
		if ts.Encapsulated {
			return
		}
		for _, to := range nativeSyntaxes {
			var out bytes.Buffer
			if err := Transcode(&out, bytes.NewReader(data), ts, to, lim); err != nil {
				continue
			}
			if _, err := Scan(bytes.NewReader(out.Bytes()), to, lim, nil); err != nil {
				t.Fatalf("Transcode %s -> %s output does not scan: %v", ts.Name, to.Name, err)
			}
		}
	})
}

func FuzzReadFileMeta(f *testing.F) {
	var b bytes.Buffer
	WriteFileMeta(&b, FileMeta{MediaStorageSOPClassUID: CTImageStorage, MediaStorageSOPInstanceUID: "1.2.3", TransferSyntaxUID: ExplicitVRLittleEndian, SourceApplicationEntityTitle: "AE"})
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:150])
	f.Add(append(make([]byte, 128), "DICM"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, off, err := ReadFileMeta(bytes.NewReader(data))
		if off > int64(len(data)) || off < 0 {
			t.Fatalf("offset %d beyond %d bytes", off, len(data))
		}
		if err != nil {
			return
		}
		if off < 132 || m.TransferSyntaxUID == "" {
			t.Fatalf("accepted meta %+v at offset %d", m, off)
		}
		// What was read must survive a write/read round trip.
		var w bytes.Buffer
		if _, err := WriteFileMeta(&w, m); err != nil {
			return
		}
		m2, _, err := ReadFileMeta(&w)
		if err != nil {
			t.Fatalf("re-reading written meta: %v", err)
		}
		_ = m2
	})
}

func BenchmarkScan(b *testing.B) {
	data := buildFixture(b, tsExplicit, fixtureOpts{pixelBytes: 512 * 512 * 2, private: true, mixed: true})
	want := WantTags(TagSOPClassUID, TagSOPInstanceUID, TagStudyInstanceUID, TagSeriesInstanceUID, TagPatientName,
		TagPatientID, TagStudyDate, TagModality, TagAccessionNumber, TagStudyDescription, TagRows, TagColumns)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Scan(bytes.NewReader(data), tsExplicit, DefaultLimits(), want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanImplicit(b *testing.B) {
	data := buildFixture(b, tsImplicit, fixtureOpts{pixelBytes: 512 * 512 * 2, private: true, mixed: true})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Scan(bytes.NewReader(data), tsImplicit, DefaultLimits(), WantTags(TagPatientName)); err != nil {
			b.Fatal(err)
		}
	}
}
