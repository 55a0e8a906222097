package dicomjson

import (
	"bufio"
	"io"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

// ctHeader scans a CT slice as the WADO-RS metadata path does: every
// attribute up to the pixel data, which becomes a BulkDataURI.
func ctHeader(b *testing.B) *dicom.ScanResult {
	ct := testdicom.CT{Charset: "ISO_IR 192", PatientName: "Doe^John=ドウ^ジョン", PatientID: "P123456", StudyUID: testdicom.UID(),
		SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(), Instance: 42, AccessionNumber: "ACC0042",
		StudyDescription: "CT THORAX ABDOMEN PELVIS",
		OtherPatientIDs:  []testdicom.OtherPatientID{{ID: "X1", Issuer: "HOSP", Type: "TEXT"}},
		ProcedureCodes:   []testdicom.Code{{Value: "RPID17", Scheme: "L", Meaning: "CT TAP with contrast"}}}
	file, err := ct.File()
	if err != nil {
		b.Fatal(err)
	}
	return scanFile(b, file, dicom.ScanOptions{Want: dicom.WantAll, StopAtPixelData: true, RecordSkipped: true})
}

var benchOpt = Options{BulkDataURI: func(t dicom.Tag) string {
	return "https://pacs.example/dicomweb/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/bulk/7FE00010"
}}

// BenchmarkWriteDataset writes the metadata of one CT slice.
func BenchmarkWriteDataset(b *testing.B) {
	res := ctHeader(b)
	n := len(writeJSON(b, res, benchOpt))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := WriteDataset(io.Discard, res, benchOpt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStudyMetadata1000 streams a 1,000-instance study's metadata
// (the same header 1,000 times) through an ArrayWriter into a bufio.Writer.
func BenchmarkStudyMetadata1000(b *testing.B) {
	res := ctHeader(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bw := bufio.NewWriterSize(io.Discard, 64<<10)
		aw := NewArrayWriter(bw)
		for j := 0; j < 1000; j++ {
			if err := aw.Dataset(res, benchOpt); err != nil {
				b.Fatal(err)
			}
		}
		aw.End()
		bw.Flush()
	}
}

// BenchmarkWriteAttrs writes a QIDO-RS study result from an index map.
func BenchmarkWriteAttrs(b *testing.B) {
	attrs := map[string]string{
		"00080020": "20261123", "00080030": "031500", "00080050": "ACC0042", "00080061": `CT\SR`,
		"00080090": "Ref^Doctor", "00081030": "CT THORAX ABDOMEN PELVIS", "00100010": "Doe^John=ドウ^ジョン",
		"00100020": "P123456", "00100030": "19700101", "00100040": "M", "0020000D": "1.2.3", "00200010": "S1",
		"00201206": "3", "00201208": "1000",
		"00101002": `[{"00100020":"X1","00100021":"HOSP","00100022":"TEXT"}]`,
	}
	url := Attr{Tag: 0x00081190, VR: dicom.VRUR, Values: []string{"https://pacs.example/dicomweb/studies/1.2.3"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := WriteAttrs(io.Discard, attrs, url); err != nil {
			b.Fatal(err)
		}
	}
}
