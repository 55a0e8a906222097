package cda

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
)

// tool returns the path of an external program; the test fails (never
// skips) when it is missing: CI installs dicom3tools and dcmtk.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %v", name, err)
	}
	return path
}

// scanDataset re-reads an Explicit VR Little Endian data set with dicom.Scan.
func scanDataset(t *testing.T, ds []byte) *dicom.Dataset {
	t.Helper()
	res, err := dicom.Scan(bytes.NewReader(ds), dicom.TransferSyntax{ExplicitVR: true},
		dicom.Limits{MaxHeldValue: 16 << 20}, dicom.WantAll)
	if err != nil {
		t.Fatalf("dicom.Scan: %v", err)
	}
	return res.Dataset
}

func strVal(d *dicom.Dataset, tag dicom.Tag) (string, bool) {
	e, ok := d.Elements[tag]
	if !ok {
		return "", false
	}
	return strings.TrimRight(string(e.Raw), " \x00"), true
}

func TestEncapsulatedCDA(t *testing.T) {
	now := time.Date(2026, 1, 8, 11, 20, 30, 0, paris)
	odd := sample()
	odd.Conclusion = "Examen normal" // changes the document's parity against sample's
	utc := sample()
	utc.Study.Start = utc.Study.Start.UTC()
	titled := sample()
	titled.Title = "CR scanner cérébral"
	tests := []struct {
		name   string
		report *Report
		opt    EncapsulateOptions
		want   map[dicom.Tag]string // top-level string values
		absent []dicom.Tag
		issuer map[dicom.Tag]string // item of Issuer of Patient ID Qualifiers Sequence
	}{
		{
			name:   "ins",
			report: sample(),
			opt: EncapsulateOptions{
				SeriesInstanceUID: "1.2.250.1.999.3.1", SOPInstanceUID: "1.2.250.1.999.3.1.1",
				SeriesNumber: 900, InstanceNumber: 2, Manufacturer: "Relais", InstitutionName: "Centre de radiologie Ambroise",
				Now: now,
			},
			want: map[dicom.Tag]string{
				tSpecificCharacterSet:      "ISO_IR 192",
				tSOPClassUID:               dicom.EncapsulatedCDAStorage,
				tSOPInstanceUID:            "1.2.250.1.999.3.1.1",
				tInstanceCreationDate:      "20260108",
				tInstanceCreationTime:      "112030",
				tStudyDate:                 "20260108",
				tStudyTime:                 "102500",
				tContentDate:               "20260108",
				tContentTime:               "111700",
				tAcquisitionDateTime:       "20260108111700+0100",
				tAccessionNumber:           "105234751",
				tStudyID:                   "105234751",
				tModality:                  "DOC",
				tConversionType:            "WSD",
				tManufacturer:              "Relais",
				tInstitutionName:           "Centre de radiologie Ambroise",
				tReferringPhysicianName:    "",
				tTimezoneOffsetFromUTC:     "+0100",
				tPatientName:               "PAT-TROIS^DOMINIQUE",
				tPatientID:                 "279035121518989",
				tIssuerOfPatientID:         "ASIP-SANTE-INS-NIR-TEST",
				tPatientBirthDate:          "19790328",
				tPatientSex:                "F",
				tStudyInstanceUID:          "1.2.250.1.925.994044.27.123.1876360",
				tSeriesInstanceUID:         "1.2.250.1.999.3.1",
				tSeriesNumber:              "900",
				tInstanceNumber:            "2",
				tBurnedInAnnotation:        "NO",
				tHL7InstanceIdentifier:     "1.2.250.1.999.1.1.2",
				tDocumentTitle:             "CR d'imagerie médicale - CT tête avec contraste IV",
				tMIMETypeOfEncapsulatedDoc: "text/XML",
			},
			issuer: map[dicom.Tag]string{tUniversalEntityID: OIDINSNIRTest, tUniversalEntityIDType: "ISO"},
		},
		{
			name:   "local id, generated UIDs, defaults",
			report: localOnly(),
			want: map[dicom.Tag]string{
				tPatientID:       "IPP-77",
				tPatientName:     "MARTIN^PAUL",
				tPatientSex:      "M",
				tAccessionNumber: "",
				tSeriesNumber:    "1",
				tInstanceNumber:  "1",
				tManufacturer:    "Relais",
			},
			absent: []dicom.Tag{tIssuerOfPatientID, tInstitutionName},
			issuer: map[dicom.Tag]string{tUniversalEntityID: "1.2.250.1.999.2", tUniversalEntityIDType: "ISO"},
		},
		{name: "odd length", report: odd},
		{
			name:   "times in the zone of the effective time",
			report: utc,
			opt:    EncapsulateOptions{Now: now.UTC()},
			want: map[dicom.Tag]string{
				tStudyTime:             "102500",
				tInstanceCreationTime:  "112030",
				tTimezoneOffsetFromUTC: "+0100",
			},
		},
		{name: "title", report: titled, want: map[dicom.Tag]string{tDocumentTitle: "CR scanner cérébral"}},
	}
	var parities [2]bool
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xml, err := Level3(tt.report)
			if err != nil {
				t.Fatal(err)
			}
			parities[len(xml)%2] = true
			ds, file, uid, err := EncapsulatedCDA(tt.report, xml, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if tt.opt.SOPInstanceUID != "" && uid != tt.opt.SOPInstanceUID {
				t.Errorf("uid %q, want %q", uid, tt.opt.SOPInstanceUID)
			}
			if tt.opt.SOPInstanceUID == "" && !strings.HasPrefix(uid, "2.25.") {
				t.Errorf("generated uid %q not under 2.25", uid)
			}
			if !bytes.HasSuffix(file, ds) {
				t.Fatal("file does not end with the data set")
			}

			// Re-scan: structure, values, the document.
			d := scanDataset(t, ds)
			if got, _ := strVal(d, tSOPInstanceUID); got != uid {
				t.Errorf("SOP Instance UID %q, want %q", got, uid)
			}
			for tag, want := range tt.want {
				got, ok := strVal(d, tag)
				if !ok || got != want {
					t.Errorf("%s = %q (present %v), want %q", tag, got, ok, want)
				}
			}
			for _, tag := range tt.absent {
				if _, ok := d.Elements[tag]; ok {
					t.Errorf("%s present", tag)
				}
			}
			if tt.issuer != nil {
				sq := d.Elements[tIssuerQualifiersSequence]
				if sq == nil || len(sq.Items) != 1 {
					t.Fatalf("Issuer of Patient ID Qualifiers Sequence: %+v", sq)
				}
				for tag, want := range tt.issuer {
					if got, _ := strVal(sq.Items[0], tag); got != want {
						t.Errorf("issuer item %s = %q, want %q", tag, got, want)
					}
				}
			}
			cn := d.Elements[tConceptNameCodeSequence]
			if cn == nil || len(cn.Items) != 1 {
				t.Fatalf("Concept Name Code Sequence: %+v", cn)
			}
			for tag, want := range map[dicom.Tag]string{tCodeValue: "18748-4", tCodingSchemeDesignator: "LN"} {
				if got, _ := strVal(cn.Items[0], tag); got != want {
					t.Errorf("concept name %s = %q, want %q", tag, got, want)
				}
			}
			enc := d.Elements[tEncapsulatedDocument]
			if enc == nil || enc.VR != dicom.VROB {
				t.Fatalf("Encapsulated Document: %+v", enc)
			}
			if len(enc.Raw)%2 != 0 || len(enc.Raw) < len(xml) || len(enc.Raw) > len(xml)+1 {
				t.Fatalf("Encapsulated Document: %d bytes for a %d-byte document", len(enc.Raw), len(xml))
			}
			if len(enc.Raw) == len(xml)+1 && enc.Raw[len(xml)] != ' ' {
				t.Errorf("pad byte %#x, want a space", enc.Raw[len(xml)])
			}
			l := d.Elements[tEncapsulatedDocumentLen]
			if l == nil || l.VR != dicom.VRUL || len(l.Raw) != 4 {
				t.Fatalf("Encapsulated Document Length: %+v", l)
			}
			n := binary.LittleEndian.Uint32(l.Raw)
			if int(n) != len(xml) {
				t.Fatalf("Encapsulated Document Length %d, want %d", n, len(xml))
			}
			if !bytes.Equal(enc.Raw[:n], xml) {
				t.Fatal("encapsulated document differs from the XML")
			}

			// The extracted document still validates against the schema.
			f := writeDoc(t, "extracted.xml", enc.Raw[:n])
			if out, err := xmllint(t, "--nonet", "--noout", "--schema", schema, f); err != nil || !strings.Contains(out, "validates") {
				t.Fatalf("xmllint --schema: %v\n%s", err, out)
			}

			// dicom3tools: no errors against the IOD.
			dcm := writeDoc(t, "cda.dcm", file)
			out, err := exec.Command(tool(t, "dciodvfy"), dcm).CombinedOutput()
			if err != nil {
				t.Errorf("dciodvfy: %v", err)
			}
			if !strings.Contains(string(out), "EncapsulatedCDA") {
				t.Errorf("dciodvfy did not recognise the Encapsulated CDA IOD")
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "Error") {
					t.Errorf("dciodvfy: %s", line)
				} else if strings.HasPrefix(line, "Warning") {
					t.Logf("dciodvfy: %s", line)
				}
			}
			if t.Failed() {
				t.Logf("dciodvfy output:\n%s", out)
			}

			// dcmtk reads it as an Encapsulated CDA in explicit little endian.
			out, err = exec.Command(tool(t, "dcmdump"), "-q", "+L", dcm).CombinedOutput()
			if err != nil {
				t.Fatalf("dcmdump: %v\n%s", err, out)
			}
			dump := string(out)
			for _, re := range []string{
				`\(0002,0002\) UI =EncapsulatedCDAStorage`,
				`\(0002,0010\) UI =LittleEndianExplicit`,
				`\(0008,0016\) UI =EncapsulatedCDAStorage`,
				`\(0042,0012\) LO \[text/XML\]`,
				`\(0042,0011\) OB [0-9a-f\\]+ +# ` + strconv.Itoa(len(enc.Raw)) + `,`,
				`\(0042,0015\) UL ` + strconv.Itoa(len(xml)) + ` `,
			} {
				if !regexp.MustCompile(re).MatchString(dump) {
					t.Errorf("dcmdump: no match for %s\n%s", re, dump)
				}
			}
		})
	}
	if !parities[0] || !parities[1] {
		t.Errorf("documents of both parities not covered: %v", parities)
	}
}

func TestEncapsulatedCDAErrors(t *testing.T) {
	xml, err := Level3(sample())
	if err != nil {
		t.Fatal(err)
	}
	invalid := sample()
	invalid.Conclusion = ""
	tests := []struct {
		name string
		r    *Report
		xml  []byte
		opt  EncapsulateOptions
		want string
	}{
		{"invalid report", invalid, xml, EncapsulateOptions{}, "Conclusion"},
		{"empty document", sample(), nil, EncapsulateOptions{}, "empty document"},
		{"bad series uid", sample(), xml, EncapsulateOptions{SeriesInstanceUID: "1.02.3"}, "invalid UID"},
		{"bad instance uid", sample(), xml, EncapsulateOptions{SOPInstanceUID: "abc"}, "invalid UID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := EncapsulatedCDA(tt.r, tt.xml, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewUID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		u, err := newUID()
		if err != nil {
			t.Fatal(err)
		}
		if !validUID(u) || !strings.HasPrefix(u, "2.25.") || seen[u] {
			t.Fatalf("bad or repeated UID %q", u)
		}
		seen[u] = true
	}
}
