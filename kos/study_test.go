package kos

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/storage"
)

// record makes the index record of a data set the way ingest does, for
// the attributes FromInstances reads: top-level values decoded to UTF-8,
// the Other Patient IDs Sequence kept as JSON items.
func record(t *testing.T, ds []byte) *storage.Instance {
	t.Helper()
	res, err := dicom.Scan(bytes.NewReader(ds), dicom.TransferSyntax{UID: dicom.ExplicitVRLittleEndian, ExplicitVR: true}, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Dataset
	attrs := map[string]string{}
	for tag, el := range d.Elements {
		h := fmt.Sprintf("%08X", uint32(tag))
		if el.VR == dicom.VRSQ {
			if h != attrOtherPatientIDsSeq {
				continue
			}
			var items []map[string]string
			for _, it := range el.Items {
				m := map[string]string{}
				for it2 := range it.Elements {
					v, _ := it.String(it2)
					m[fmt.Sprintf("%08X", uint32(it2))] = v
				}
				items = append(items, m)
			}
			v, err := storage.EncodeItems(items)
			if err != nil {
				t.Fatal(err)
			}
			attrs[h] = v
			continue
		}
		if tag == dicom.TagPixelData || tag.Group() == 0x0028 {
			continue
		}
		v, err := d.String(tag)
		if err != nil {
			t.Fatal(err)
		}
		attrs[h] = v
	}
	str := func(tag dicom.Tag) string { s, _ := d.String(tag); return s }
	return &storage.Instance{SOPInstanceUID: str(dicom.TagSOPInstanceUID), SOPClassUID: str(dicom.TagSOPClassUID),
		SeriesInstanceUID: str(dicom.TagSeriesInstanceUID), StudyInstanceUID: str(dicom.TagStudyInstanceUID),
		PatientID: str(dicom.TagPatientID), Attrs: attrs, CharacterSet: strings.Join(d.CharacterSet, `\`)}
}

// TestStudyFromIndex goes from testdicom instances of a 3-series study
// through their index records and FromInstances to a Part 10 manifest
// that dciodvfy accepts, dsrdump shows and dicom.Scan reads back.
func TestStudyFromIndex(t *testing.T) {
	study := testdicom.UID()
	var insts []*storage.Instance
	for _, n := range []int{3, 1, 2} {
		series := testdicom.UID()
		for i := 1; i <= n; i++ {
			c := &testdicom.CT{PatientName: "Hélène^Lefèvre", PatientID: "IPP77", Charset: "ISO_IR 192", StudyUID: study,
				SeriesUID: series, SOPUID: testdicom.UID(), Instance: i, AccessionNumber: "ACC9", StudyDescription: "TDM thorax",
				OtherPatientIDs: []testdicom.OtherPatientID{{ID: "248127512345678", Issuer: "ASIP-SANTE-INS-NIR", Type: "TEXT"}}}
			ds, err := c.Dataset()
			if err != nil {
				t.Fatal(err)
			}
			insts = append(insts, record(t, ds))
		}
	}
	r := Retrieve{AETitle: "RELAIS", LocationUID: "1.2.250.1.999.3", WADOBase: "http://localhost:8042/dicomweb"}
	m := FromInstances(insts, r)
	m.Study.PlacerOrderNumber = "ORD-1"
	if len(m.Series) != 3 || m.Patient.Name != "Hélène^Lefèvre" || len(m.Patient.OtherIDs) != 1 || m.Study.AccessionNumber != "ACC9" {
		t.Fatalf("manifest = %+v", m)
	}
	m.SOPInstanceUID = testdicom.UID()
	p := writeFile(t, m)
	errs, warns := dciodvfy(t, p)
	for _, w := range warns {
		t.Log(w)
	}
	if len(errs) > 0 {
		t.Fatalf("dciodvfy: %q", errs)
	}
	if _, err := exec.LookPath("dsrdump"); err == nil {
		out, err := exec.Command("dsrdump", p).CombinedOutput()
		if err != nil {
			t.Fatalf("dsrdump: %v\n%s", err, out)
		}
		if s := string(out); !strings.Contains(s, `<CONTAINER:(,,"Manifest")=SEPARATE>`) || strings.Count(s, "<contains IMAGE:") != 6 ||
			!strings.Contains(s, "Hélène^Lefèvre") {
			t.Errorf("dsrdump:\n%s", s)
		}
	}
	file, err := BuildFile(m)
	if err != nil {
		t.Fatal(err)
	}
	meta, off, err := dicom.ReadFileMeta(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if meta.MediaStorageSOPClassUID != SOPClassUID || meta.MediaStorageSOPInstanceUID != m.SOPInstanceUID || meta.TransferSyntaxUID != dicom.ExplicitVRLittleEndian {
		t.Errorf("file meta = %+v", meta)
	}
	res, err := dicom.Scan(bytes.NewReader(file[off:]), dicom.TransferSyntax{UID: dicom.ExplicitVRLittleEndian, ExplicitVR: true}, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := res.Dataset.Get(tagCurrentRequestedProcEvSeq)
	if ev == nil || len(ev.Items) != 1 {
		t.Fatalf("evidence: %v", ev)
	}
	rs, _ := ev.Items[0].Get(tagReferencedSeriesSequence)
	seen := map[string]bool{}
	for _, it := range rs.Items {
		series, _ := it.String(tagSeriesInstanceUID)
		url, _ := it.String(tagRetrieveURL)
		if want := r.SeriesURL(study, series); url != want {
			t.Errorf("series %s: Retrieve URL %q, want %q", series, url, want)
		}
		sops, _ := it.Get(tagReferencedSOPSequence)
		for _, s := range sops.Items {
			u, _ := s.String(tagReferencedSOPInstanceUID)
			seen[u] = true
		}
	}
	for _, in := range insts {
		if !seen[in.SOPInstanceUID] {
			t.Errorf("instance %s not in the evidence", in.SOPInstanceUID)
		}
	}
	if len(seen) != len(insts) {
		t.Errorf("%d instances referenced, want %d", len(seen), len(insts))
	}
}
