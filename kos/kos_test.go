package kos

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

// study3 returns a manifest referencing a 3-series CT study made of
// testdicom instances (2, 3 and 1 instances).
func study3(t *testing.T) Manifest {
	t.Helper()
	study := testdicom.UID()
	m := Manifest{
		Patient: Patient{
			Name: "DUPONT^JEANNE", ID: "248127512345678", IssuerOfPatientID: "ASIP-SANTE-INS-NIR",
			Qualifiers: Issuer{UniversalEntityID: OIDINS}, BirthDate: "19481203", Sex: "F",
			OtherIDs: []OtherID{{ID: "248127512345678", Issuer: "ASIP-SANTE-INS-NIR", Qualifiers: Issuer{UniversalEntityID: OIDINS}}},
		},
		Study: StudyRef{
			StudyInstanceUID: study, StudyID: "1", StudyDate: "20261123", StudyTime: "031500",
			Description: "CT HEAD AVC", ReferringPhysician: "MARTIN^PAUL",
			AccessionNumber: "ACC1", AccessionIssuer: Issuer{LocalNamespace: "CHU", UniversalEntityID: "1.2.250.1.999.1"},
			PlacerOrderNumber: "ORD-42", PlacerOrderIssuer: Issuer{UniversalEntityID: "1.2.250.1.999.2"},
			FillerOrderNumber: "FIL-7", RequestedProcedureID: "RP1", RequestedProcedureDescription: "Scanner cérébral",
		},
		Institution:     "Centre de téléradiologie",
		ContentDateTime: time.Date(2026, 11, 23, 19, 0, 0, 0, time.UTC),
	}
	dir := t.TempDir()
	for _, n := range []int{2, 3, 1} {
		series := testdicom.UID()
		sr := SeriesRef{SeriesInstanceUID: series, RetrieveAETitle: "RELAIS", RetrieveLocationUID: "1.2.250.1.999.3",
			RetrieveURL: "https://relais.example/dicomweb/studies/" + study + "/series/" + series}
		for i := 1; i <= n; i++ {
			c := &testdicom.CT{PatientName: "DUPONT^JEANNE", PatientID: "248127512345678", StudyUID: study,
				SeriesUID: series, SOPUID: testdicom.UID(), Instance: i, AccessionNumber: "ACC1"}
			b, err := c.File()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, c.SOPUID+".dcm"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			sr.Instances = append(sr.Instances, InstanceRef{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: c.SOPUID})
		}
		m.Series = append(m.Series, sr)
	}
	return m
}

func writeFile(t *testing.T, m Manifest) string {
	t.Helper()
	b, err := BuildFile(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kos.dcm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dciodvfy runs dicom3tools' validator and returns its error and warning
// lines.
func dciodvfy(t *testing.T, path string) (errs, warns []string) {
	t.Helper()
	if _, err := exec.LookPath("dciodvfy"); err != nil {
		t.Skip("dciodvfy not installed")
	}
	out, _ := exec.Command("dciodvfy", path).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "Error"):
			errs = append(errs, l)
		case strings.HasPrefix(l, "Warning"):
			warns = append(warns, l)
		}
	}
	return errs, warns
}

func TestDciodvfy(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
	}{
		{"manifest", func(*Manifest) {}},
		{"key-image note", func(m *Manifest) {
			m.Title = TitleOfInterest
			m.Description = "Lésion hypodense pariétale droite"
			m.Series = m.Series[1:2]
			m.Series[0].Instances = m.Series[0].Instances[:2]
		}},
		{"no request", func(m *Manifest) {
			m.Study.AccessionNumber, m.Study.PlacerOrderNumber, m.Study.FillerOrderNumber, m.Study.RequestedProcedureID = "", "", "", ""
			m.Study.AccessionIssuer = Issuer{}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := study3(t)
			tc.edit(&m)
			p := writeFile(t, m)
			if d := os.Getenv("KOS_KEEP"); d != "" {
				b, _ := os.ReadFile(p)
				os.WriteFile(filepath.Join(d, strings.ReplaceAll(tc.name, " ", "_")+".dcm"), b, 0o644)
			}
			errs, warns := dciodvfy(t, p)
			for _, w := range warns {
				t.Log(w)
			}
			if len(errs) > 0 {
				out, _ := exec.Command("dciodvfy", p).CombinedOutput()
				t.Fatalf("dciodvfy errors:\n%s", out)
			}
		})
	}
}

func TestScanEvidence(t *testing.T) {
	m := study3(t)
	ds, err := Build(m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dicom.Scan(bytes.NewReader(ds), dicom.TransferSyntax{UID: dicom.ExplicitVRLittleEndian, ExplicitVR: true}, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	top := res.Dataset
	str := func(d *dicom.Dataset, tag dicom.Tag) string {
		t.Helper()
		s, err := d.String(tag)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := str(top, tagSOPClassUID); got != SOPClassUID {
		t.Errorf("SOP Class = %q", got)
	}
	if got := str(top, tagModality); got != "KO" {
		t.Errorf("Modality = %q", got)
	}
	ev, ok := top.Get(tagCurrentRequestedProcEvSeq)
	if !ok || len(ev.Items) != 1 {
		t.Fatalf("evidence sequence: %v", ev)
	}
	if got := str(ev.Items[0], tagStudyInstanceUID); got != m.Study.StudyInstanceUID {
		t.Errorf("evidence study = %q", got)
	}
	rs, _ := ev.Items[0].Get(tagReferencedSeriesSequence)
	if rs == nil || len(rs.Items) != len(m.Series) {
		t.Fatalf("referenced series: %v", rs)
	}
	for i, s := range m.Series {
		it := rs.Items[i]
		for _, c := range []struct {
			tag  dicom.Tag
			want string
		}{
			{tagSeriesInstanceUID, s.SeriesInstanceUID},
			{tagRetrieveURL, s.RetrieveURL},
			{tagRetrieveAETitle, s.RetrieveAETitle},
			{tagRetrieveLocationUID, s.RetrieveLocationUID},
		} {
			if got := str(it, c.tag); got != c.want {
				t.Errorf("series %d %s = %q, want %q", i, c.tag, got, c.want)
			}
		}
		sops, _ := it.Get(tagReferencedSOPSequence)
		if sops == nil || len(sops.Items) != len(s.Instances) {
			t.Fatalf("series %d: referenced SOPs %v", i, sops)
		}
		for j, in := range s.Instances {
			if got := str(sops.Items[j], tagReferencedSOPInstanceUID); got != in.SOPInstanceUID {
				t.Errorf("series %d instance %d = %q, want %q", i, j, got, in.SOPInstanceUID)
			}
			if got := str(sops.Items[j], tagReferencedSOPClassUID); got != in.SOPClassUID {
				t.Errorf("series %d instance %d class = %q", i, j, got)
			}
		}
	}
	rq, _ := top.Get(tagReferencedRequestSequence)
	if rq == nil || len(rq.Items) != 1 {
		t.Fatalf("referenced request: %v", rq)
	}
	for tag, want := range map[dicom.Tag]string{tagAccessionNumber: "ACC1", tagPlacerOrderNumber: "ORD-42",
		tagFillerOrderNumber: "FIL-7", tagStudyInstanceUID: m.Study.StudyInstanceUID, tagRequestedProcedureDesc: "Scanner cérébral"} {
		if got := str(rq.Items[0], tag); got != want {
			t.Errorf("request %s = %q, want %q", tag, got, want)
		}
	}
	cs, _ := top.Get(tagContentSequence)
	if cs == nil || len(cs.Items) != 6 {
		t.Fatalf("content items: %v", cs)
	}
}

func TestDsrdump(t *testing.T) {
	if _, err := exec.LookPath("dsrdump"); err != nil {
		t.Skip("dsrdump not installed")
	}
	for _, tc := range []struct {
		name  string
		title Code
		desc  string
	}{
		{"manifest", Code{}, ""},
		{"key-image note", TitleOfInterest, "Lésion pariétale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := study3(t)
			m.Title, m.Description = tc.title, tc.desc
			p := writeFile(t, m)
			out, err := exec.Command("dsrdump", p).CombinedOutput()
			if err != nil {
				t.Fatalf("dsrdump: %v\n%s", err, out)
			}
			s := string(out)
			title := tc.title
			if title == (Code{}) {
				title = TitleManifest
			}
			if !strings.Contains(s, `<CONTAINER:(,,"`+title.Meaning+`")=SEPARATE>`) {
				t.Errorf("no root container titled %q:\n%s", title.Meaning, s)
			}
			n := 0
			for _, sr := range m.Series {
				n += len(sr.Instances)
			}
			if got := strings.Count(s, "<contains IMAGE:"); got != n {
				t.Errorf("%d IMAGE items, want %d:\n%s", got, n, s)
			}
			if hasText := strings.Contains(s, `<contains TEXT:(,,"Key Object Description")`); hasText != (tc.desc != "") {
				t.Errorf("TEXT item present = %v:\n%s", hasText, s)
			}
			if strings.Contains(s, "E: ") {
				t.Errorf("dsrdump errors:\n%s", s)
			}
		})
	}
}

func TestAssignUIDsAndStudies(t *testing.T) {
	m := study3(t)
	other := testdicom.UID()
	m.Series[2].StudyInstanceUID = other // a prior study referenced too
	m.AssignUIDs()
	sop, series := m.SOPInstanceUID, m.SeriesInstanceUID
	if !validUID(sop) || !validUID(series) || !strings.HasPrefix(sop, "2.25.") || sop == series {
		t.Fatalf("UIDs %q %q", sop, series)
	}
	m.AssignUIDs()
	if m.SOPInstanceUID != sop || m.SeriesInstanceUID != series {
		t.Fatal("AssignUIDs replaced set UIDs")
	}
	ds, err := Build(m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dicom.Scan(bytes.NewReader(ds), dicom.TransferSyntax{UID: dicom.ExplicitVRLittleEndian, ExplicitVR: true}, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[dicom.Tag]string{tagSOPInstanceUID: sop, tagSeriesInstanceUID: series, tagStudyInstanceUID: m.Study.StudyInstanceUID} {
		if got, _ := res.Dataset.String(tag); got != want {
			t.Errorf("%s = %q, want %q", tag, got, want)
		}
	}
	ev, _ := res.Dataset.Get(tagCurrentRequestedProcEvSeq)
	if ev == nil || len(ev.Items) != 2 {
		t.Fatalf("evidence items: %v", ev)
	}
	for i, c := range []struct {
		study  string
		series int
	}{{m.Study.StudyInstanceUID, 2}, {other, 1}} {
		if got, _ := ev.Items[i].String(tagStudyInstanceUID); got != c.study {
			t.Errorf("evidence %d study %q, want %q", i, got, c.study)
		}
		if rs, _ := ev.Items[i].Get(tagReferencedSeriesSequence); rs == nil || len(rs.Items) != c.series {
			t.Errorf("evidence %d: %v series, want %d", i, rs, c.series)
		}
	}
	p := writeFile(t, m)
	if errs, _ := dciodvfy(t, p); len(errs) > 0 {
		t.Errorf("dciodvfy: %q", errs)
	}
}
