package kos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/storage"
)

func TestFromInstances(t *testing.T) {
	study, s1, s2 := "1.2.3.4", "1.2.3.4.1", "1.2.3.4.2"
	qual := `[{"00400032":"1.2.250.1.213.1.4.8","00400033":"ISO"}]`
	other, _ := storage.EncodeItems([]map[string]string{{"00100020": "248127512345678", "00100021": "ASIP-SANTE-INS-NIR", "00100022": "TEXT", "00100024": qual}})
	attrs := func(series, seriesNo, instNo string) map[string]string {
		return map[string]string{
			"00100010": "DUPONT^JEANNE", "00100020": "IPP1", "00100021": "CHU", "00100030": "19481203", "00100040": "F",
			"00100024": `[{"00400032":"1.2.250.1.999.9","00400033":"ISO"}]`, "00101002": other,
			"00080020": "20261123", "00080030": "031500", "00080050": "ACC1", "00080090": "MARTIN^PAUL",
			"00080051": `[{"00400031":"CHU","00400032":"1.2.250.1.999.1","00400033":"ISO"}]`,
			"00081030": "CT HEAD", "00200010": "7", "0020000D": study, "0020000E": series,
			"00200011": seriesNo, "00200013": instNo,
			"00400275": `[{"00080050":"OTHER","00401001":"RPX"},{"00080050":"ACC1","00401001":"RP1","00321060":"Scanner"}]`,
		}
	}
	in := func(sop, series, seriesNo, instNo, class string) *storage.Instance {
		return &storage.Instance{SOPInstanceUID: sop, SOPClassUID: class, SeriesInstanceUID: series, StudyInstanceUID: study,
			PatientID: "IPP1", Attrs: attrs(series, seriesNo, instNo)}
	}
	insts := []*storage.Instance{
		in("1.2.3.4.2.2", s2, "2", "2", dicom.CTImageStorage),
		in("1.2.3.4.1.1", s1, "1", "1", dicom.CTImageStorage),
		in("1.2.3.4.2.1", s2, "2", "1", dicom.CTImageStorage),
		in("1.2.3.4.9.1", "1.2.3.4.9", "99", "1", SOPClassUID), // an earlier manifest
		{SOPInstanceUID: "9.9.9", SOPClassUID: dicom.CTImageStorage, SeriesInstanceUID: "9.9", StudyInstanceUID: "9"},
	}
	m := FromInstances(insts, Retrieve{AETitle: "RELAIS", LocationUID: "1.2.250.1.999.3", WADOBase: "https://relais.example/dicomweb/"})
	wantPatient := Patient{Name: "DUPONT^JEANNE", ID: "IPP1", IssuerOfPatientID: "CHU",
		Qualifiers: Issuer{UniversalEntityID: "1.2.250.1.999.9", UniversalEntityIDType: "ISO"}, BirthDate: "19481203", Sex: "F",
		OtherIDs: []OtherID{{ID: "248127512345678", Issuer: "ASIP-SANTE-INS-NIR", Type: "TEXT",
			Qualifiers: Issuer{UniversalEntityID: OIDINS, UniversalEntityIDType: "ISO"}}}}
	if !reflect.DeepEqual(m.Patient, wantPatient) {
		t.Errorf("patient = %+v\nwant %+v", m.Patient, wantPatient)
	}
	wantStudy := StudyRef{StudyInstanceUID: study, StudyID: "7", StudyDate: "20261123", StudyTime: "031500", Description: "CT HEAD",
		ReferringPhysician: "MARTIN^PAUL", AccessionNumber: "ACC1",
		AccessionIssuer:      Issuer{LocalNamespace: "CHU", UniversalEntityID: "1.2.250.1.999.1", UniversalEntityIDType: "ISO"},
		RequestedProcedureID: "RP1", RequestedProcedureDescription: "Scanner"}
	if !reflect.DeepEqual(m.Study, wantStudy) {
		t.Errorf("study = %+v\nwant %+v", m.Study, wantStudy)
	}
	ct := dicom.CTImageStorage
	wantSeries := []SeriesRef{
		{SeriesInstanceUID: s1, RetrieveAETitle: "RELAIS", RetrieveLocationUID: "1.2.250.1.999.3",
			RetrieveURL: "https://relais.example/dicomweb/studies/1.2.3.4/series/1.2.3.4.1",
			Instances:   []InstanceRef{{ct, "1.2.3.4.1.1"}}},
		{SeriesInstanceUID: s2, RetrieveAETitle: "RELAIS", RetrieveLocationUID: "1.2.250.1.999.3",
			RetrieveURL: "https://relais.example/dicomweb/studies/1.2.3.4/series/1.2.3.4.2",
			Instances:   []InstanceRef{{ct, "1.2.3.4.2.1"}, {ct, "1.2.3.4.2.2"}}},
	}
	if !reflect.DeepEqual(m.Series, wantSeries) {
		t.Errorf("series = %+v\nwant %+v", m.Series, wantSeries)
	}
	if got := FromInstances(nil, Retrieve{}); !reflect.DeepEqual(got, Manifest{}) {
		t.Errorf("no instance: %+v", got)
	}
	// The mapped manifest makes a valid document.
	p := writeFile(t, m)
	if d := os.Getenv("KOS_KEEP"); d != "" {
		b, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(d, "from_instances.dcm"), b, 0o644)
	}
	if errs, _ := dciodvfy(t, p); len(errs) > 0 {
		t.Errorf("dciodvfy: %q", errs)
	}
}

func TestBuildInvalid(t *testing.T) {
	ok := Manifest{Study: StudyRef{StudyInstanceUID: "1.2.3"},
		Series: []SeriesRef{{SeriesInstanceUID: "1.2.3.1", Instances: []InstanceRef{{dicom.CTImageStorage, "1.2.3.1.1"}}}}}
	if _, err := Build(ok); err != nil {
		t.Fatalf("minimal manifest: %v", err)
	}
	accented := ok
	accented.Patient.Name = strings.Repeat("é", 64) + "=" + strings.Repeat("é", 64)
	if _, err := Build(accented); err != nil {
		t.Errorf("64 characters per name group: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
	}{
		{"no study UID", func(m *Manifest) { m.Study.StudyInstanceUID = "" }},
		{"bad study UID", func(m *Manifest) { m.Study.StudyInstanceUID = "1.2.x" }},
		{"leading zero", func(m *Manifest) { m.Study.StudyInstanceUID = "1.02.3" }},
		{"too long UID", func(m *Manifest) { m.SOPInstanceUID = "1." + strings.Repeat("1", 70) }},
		{"no series", func(m *Manifest) { m.Series = nil }},
		{"empty series", func(m *Manifest) { m.Series[0].Instances = nil }},
		{"bad series UID", func(m *Manifest) { m.Series[0].SeriesInstanceUID = "1..2" }},
		{"no SOP class", func(m *Manifest) { m.Series[0].Instances[0].SOPClassUID = "" }},
		{"bad location UID", func(m *Manifest) { m.Series[0].RetrieveLocationUID = "urn:oid:1.2" }},
		{"incomplete title", func(m *Manifest) { m.Title = Code{Value: "113000"} }},
		{"long accession", func(m *Manifest) { m.Study.AccessionNumber = "12345678901234567" }},
		{"bad birth date", func(m *Manifest) { m.Patient.BirthDate = "1948-12-03" }},
		{"bad sex", func(m *Manifest) { m.Patient.Sex = "f" }},
		{"bad study time", func(m *Manifest) { m.Study.StudyTime = "03:15" }},
		{"backslash in ID", func(m *Manifest) { m.Patient.ID = `A\B` }},
		{"long name group", func(m *Manifest) { m.Patient.Name = strings.Repeat("é", 65) }},
		{"bad issuer type", func(m *Manifest) {
			m.Patient.Qualifiers = Issuer{UniversalEntityID: "1.2", UniversalEntityIDType: "iso"}
		}},
		{"long AE", func(m *Manifest) { m.Series[0].RetrieveAETitle = "RELAIS_TELERADIOLOGIE" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			m.Series = []SeriesRef{ok.Series[0]}
			m.Series[0].Instances = append([]InstanceRef(nil), ok.Series[0].Instances...)
			tc.edit(&m)
			if _, err := Build(m); !errors.Is(err, ErrInvalid) {
				t.Errorf("Build error = %v, want ErrInvalid", err)
			}
			if _, err := BuildFile(m); !errors.Is(err, ErrInvalid) {
				t.Errorf("BuildFile error = %v, want ErrInvalid", err)
			}
		})
	}
}

// checkOrder walks an Explicit VR Little Endian data set with defined
// lengths and fails on a tag out of ascending order or an undefined length
// at any level.
func checkOrder(t *testing.T, b []byte, path string) {
	t.Helper()
	var prev uint32
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			t.Fatalf("%s: truncated header at %d", path, off)
		}
		tag := uint32(binary.LittleEndian.Uint16(b[off:]))<<16 | uint32(binary.LittleEndian.Uint16(b[off+2:]))
		if off > 0 && tag <= prev {
			t.Errorf("%s: tag %08X after %08X", path, tag, prev)
		}
		prev = tag
		vr := dicom.VR(b[off+4 : off+6])
		var n, hdr int
		if vr.HasLongLength() {
			n, hdr = int(binary.LittleEndian.Uint32(b[off+8:])), 12
		} else {
			n, hdr = int(binary.LittleEndian.Uint16(b[off+6:])), 8
		}
		if uint32(n) == dicom.UndefinedLength {
			t.Fatalf("%s: undefined length in %08X", path, tag)
		}
		val := b[off+hdr : off+hdr+n]
		if vr == dicom.VRSQ {
			for i, io := 0, 0; io < len(val); i++ {
				il := int(binary.LittleEndian.Uint32(val[io+4:]))
				if uint32(il) == dicom.UndefinedLength {
					t.Fatalf("%s: undefined item length in %08X", path, tag)
				}
				checkOrder(t, val[io+8:io+8+il], fmt.Sprintf("%s/%08X[%d]", path, tag, i))
				io += 8 + il
			}
		}
		off += hdr + n
	}
}

func TestOrderAndLengths(t *testing.T) {
	m := study3(t)
	m.Description = "note"
	b, err := Build(m)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, b, "")
}

func TestValueType(t *testing.T) {
	for class, want := range map[string]string{
		dicom.CTImageStorage:            "IMAGE",
		dicom.MRImageStorage:            "IMAGE",
		"1.2.840.10008.5.1.4.1.1.66.4":  "IMAGE",
		"1.2.840.10008.5.1.4.1.1.481.2": "IMAGE",
		SOPClassUID:                     "COMPOSITE",
		"1.2.840.10008.5.1.4.1.1.88.22": "COMPOSITE",
		dicom.EncapsulatedPDFStorage:    "COMPOSITE",
		"1.2.840.10008.5.1.4.1.1.11.1":  "COMPOSITE",
		"1.2.840.10008.5.1.4.1.1.481.5": "COMPOSITE",
		"1.2.840.10008.5.1.4.1.1.9.1.1": "WAVEFORM",
		"1.2.840.10008.5.1.4.1.1.12.1":  "IMAGE",
	} {
		if got := ValueType(class); got != want {
			t.Errorf("ValueType(%s) = %s, want %s", class, got, want)
		}
	}
}
