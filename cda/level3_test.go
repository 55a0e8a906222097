package cda

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// schema is the CDA schema extended with the DICOM PS3.20 elements (the plain
// CDA.xsd rejects ps3-20:accessionNumber), vendored from the CI-SIS test kit.
const schema = "testdata/schema/CDA_extended.xsd"

var paris = time.FixedZone("CET", 3600)

func radiologist() Professional {
	return Professional{
		RPPS: "10001234567", Prefix: "M", Given: "Jacques", Family: "BIDEAULT",
		Specialty:    SpecialtyRadiologist,
		Organisation: Organisation{FINESS: "920008059", Name: "Centre de radiologie Ambroise"},
	}
}

// sample is a complete report with a qualified INS.
func sample() *Report {
	start := time.Date(2026, 1, 8, 10, 25, 0, 0, paris)
	org := Organisation{FINESS: "920008059", Name: "Centre de radiologie Ambroise"}
	return &Report{
		ID: "1.2.250.1.999.1.1.2", SetID: "1.2.250.1.999.1.1", Version: 1,
		Effective: time.Date(2026, 1, 8, 11, 17, 0, 0, paris),
		Patient: Patient{
			INS: "279035121518989", INSOID: OIDINSNIRTest, IdentityStatus: "QUAL",
			LocalID: "IPP-42", LocalIDRoot: "1.2.250.1.999.2",
			BirthName: "PAT-TROIS", FirstNames: "DOMINIQUE MARIE-LOUISE", Sex: "F",
			BirthDate: time.Date(1979, 3, 28, 0, 0, 0, 0, time.UTC), BirthPlace: "51215",
		},
		Author:             radiologist(),
		LegalAuthenticator: radiologist(),
		Custodian:          org,
		Order: Order{
			PlacerOrderNumber: "984375862", PlacerOrderIssuer: "1.2.250.1.748.12345678.12",
			AccessionNumber: "105234751", AccessionIssuer: "1.2.250.1.925.994044785528.27",
		},
		Study: Study{
			StudyInstanceUID: "1.2.250.1.925.994044.27.123.1876360",
			Modality:         "CT",
			ProcedureCode:    Code{"24727-0", sysLOINC, "LOINC", "CT tête avec contraste IV"},
			Start:            start,
			End:              start.Add(50 * time.Minute),
			WADOBaseURL:      "https://relais.example.org/dicom-web",
			Series: []Series{
				{UID: "1.2.250.1.925.994044.27.123.1876360.1", Modality: "CT", Number: 1, Instances: []Instance{
					{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2.250.1.925.994044.27.123.1876360.1.1", Number: 1},
					{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2.250.1.925.994044.27.123.1876360.1.2", Number: 2},
				}},
				{UID: "1.2.250.1.925.994044.27.123.1876360.2", Modality: "SR", Number: 99, Instances: []Instance{
					{SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.67", SOPInstanceUID: "1.2.250.1.925.994044.27.123.1876360.2.1", Number: 1},
				}},
			},
		},
		Encounter: Encounter{
			Facility: org, FacilityType: Code{Code: "SA08", DisplayName: "Cabinet de groupe"},
			Start: start, End: start.Add(time.Hour),
		},
		ClinicalInformation: "Céphalées persistantes depuis 3 semaines.",
		RequestReason:       "Recherche de lésion expansive.",
		Technique:           "Acquisition hélicoïdale avant et après injection de 150 ml de XENETIX 350.",
		Findings:            "Pas de prise de contraste anormale.\nSystème ventriculaire normal.",
		Comparison:          "Scanner du 12/03/2024 : pas de changement.",
		Conclusion:          "Examen normal.",
		RadiationExposure:   &Exposure{Text: "Patiente non enceinte.", DLP: 1140.26},
	}
}

// localOnly is a report whose patient has no qualified identity: the local id only.
func localOnly() *Report {
	r := sample()
	r.Patient = Patient{
		INS: "279035121518989", IdentityStatus: "PROV", // present but not qualified: not used
		LocalID: "IPP-77", LocalIDRoot: "1.2.250.1.999.2",
		BirthName: "MARTIN", FirstNames: "PAUL", Sex: "M",
	}
	r.Order = Order{}
	r.ClinicalInformation, r.RequestReason, r.Findings, r.Comparison = "", "", "", ""
	r.RadiationExposure = nil
	r.Study.Series = nil
	r.Study.End = time.Time{}
	r.Study.WADOBaseURL = ""
	return r
}

// correction is a second version replacing sample's first.
func correction() *Report {
	r := sample()
	r.ID, r.Version = "1.2.250.1.999.1.1.3", 2
	r.Replaces = &Replaced{ID: "1.2.250.1.999.1.1.2", SetID: r.SetID, Version: 1}
	r.Conclusion = "Examen normal (corrigé)."
	return r
}

// xmllint runs xmllint with args; the test fails (never skips) when it is
// missing: CI installs libxml2-utils.
func xmllint(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatalf("xmllint not found (install libxml2-utils): %v", err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

func writeDoc(t *testing.T, name string, doc []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func xpath(t *testing.T, file, expr string) string {
	t.Helper()
	out, err := xmllint(t, "--nonet", "--xpath", expr, file)
	if err != nil {
		t.Fatalf("xmllint --xpath %s: %v\n%s", expr, err, out)
	}
	return strings.TrimSpace(out)
}

// n wraps an XPath in the CDA namespace without needing namespace bindings.
func n(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if p == "" || strings.HasPrefix(p, "@") {
			continue
		}
		name, pred, _ := strings.Cut(p, "[")
		if pred != "" {
			pred = "[" + pred
		}
		ns := "urn:hl7-org:v3"
		if strings.HasPrefix(name, "ps3-20:") {
			ns, name = "urn:dicom-org:ps3-20", strings.TrimPrefix(name, "ps3-20:")
		}
		parts[i] = "*[local-name()='" + name + "' and namespace-uri()='" + ns + "']" + pred
	}
	return "string(" + strings.Join(parts, "/") + ")"
}

func TestLevel3(t *testing.T) {
	if _, err := os.Stat(schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	cd := "/ClinicalDocument"
	tests := []struct {
		name   string
		report *Report
		want   map[string]string // XPath (CDA names, see n) → value
		absent []string          // XPaths that must select nothing
	}{
		{
			name:   "qualified INS",
			report: sample(),
			want: map[string]string{
				cd + "/realmCode/@code":                                                             "FR",
				cd + "/templateId[6]/@root":                                                         "1.2.250.1.213.1.1.1.45",
				cd + "/templateId[6]/@extension":                                                    "2024.01",
				cd + "/code/@code":                                                                  "18748-4",
				cd + "/confidentialityCode/@code":                                                   "N",
				cd + "/languageCode/@code":                                                          "fr-FR",
				cd + "/setId/@root":                                                                 "1.2.250.1.999.1.1",
				cd + "/versionNumber/@value":                                                        "1",
				cd + "/recordTarget/patientRole/id[1]/@root":                                        "1.2.250.1.213.1.4.10",
				cd + "/recordTarget/patientRole/id[1]/@extension":                                   "279035121518989",
				cd + "/recordTarget/patientRole/id[2]/@extension":                                   "IPP-42",
				cd + "/recordTarget/patientRole/patient/name/family[@qualifier='BR']":               "PAT-TROIS",
				cd + "/recordTarget/patientRole/patient/name/given[1]":                              "DOMINIQUE MARIE-LOUISE",
				cd + "/recordTarget/patientRole/patient/name/given[@qualifier='BR']":                "DOMINIQUE",
				cd + "/recordTarget/patientRole/patient/administrativeGenderCode/@code":             "F",
				cd + "/recordTarget/patientRole/patient/birthTime/@value":                           "19790328",
				cd + "/recordTarget/patientRole/patient/birthplace/place/addr/county":               "51215",
				cd + "/author/assignedAuthor/id/@root":                                              "1.2.250.1.71.4.2.1",
				cd + "/author/assignedAuthor/id/@extension":                                         "810001234567",
				cd + "/author/assignedAuthor/code/@code":                                            "G15_10/SM44",
				cd + "/author/assignedAuthor/representedOrganization/id/@extension":                 "1920008059",
				cd + "/custodian/assignedCustodian/representedCustodianOrganization/id/@root":       "1.2.250.1.71.4.2.2",
				cd + "/custodian/assignedCustodian/representedCustodianOrganization/id/@extension":  "1920008059",
				cd + "/legalAuthenticator/signatureCode/@code":                                      "S",
				cd + "/legalAuthenticator/assignedEntity/id/@extension":                             "810001234567",
				cd + "/inFulfillmentOf/order/id/@extension":                                         "984375862",
				cd + "/inFulfillmentOf/order/ps3-20:accessionNumber/@extension":                     "105234751",
				cd + "/inFulfillmentOf/order/ps3-20:accessionNumber/@root":                          "1.2.250.1.925.994044785528.27",
				cd + "/documentationOf/serviceEvent/id/@root":                                       "1.2.250.1.925.994044.27.123.1876360",
				cd + "/documentationOf/serviceEvent/code/@code":                                     "24727-0",
				cd + "/documentationOf/serviceEvent/code/translation/@code":                         "CT",
				cd + "/documentationOf/serviceEvent/code/translation/qualifier/name/@code":          "121139",
				cd + "/componentOf/encompassingEncounter/location/healthCareFacility/id/@extension": "1920008059",
				cd + "/componentOf/encompassingEncounter/location/healthCareFacility/code/@code":    "SA08",
				// Body: the imaging act with the technique entry and the object catalog.
				cd + "/component/structuredBody/component[2]/section/code/@code":                                                                                          "55111-9",
				cd + "/component/structuredBody/component[2]/section/entry/procedure/methodCode/@code":                                                                    "CT",
				cd + "/component/structuredBody/component[2]/section/component[2]/section/code/@code":                                                                     "121181",
				cd + "/component/structuredBody/component[2]/section/component[2]/section/entry/act/id/@root":                                                             "1.2.250.1.925.994044.27.123.1876360",
				cd + "/component/structuredBody/component[2]/section/component[2]/section/entry/act/entryRelationship[2]/act/id/@root":                                    "1.2.250.1.925.994044.27.123.1876360.2",
				cd + "/component/structuredBody/component[2]/section/component[2]/section/entry/act/entryRelationship[1]/act/entryRelationship[2]/observation/id/@root":   "1.2.250.1.925.994044.27.123.1876360.1.2",
				cd + "/component/structuredBody/component[2]/section/component[2]/section/entry/act/entryRelationship[1]/act/entryRelationship[2]/observation/code/@code": "1.2.840.10008.5.1.4.1.1.2",
				cd + "/component/structuredBody/component[2]/section/component[1]/section/code/@code":                                                                     "73569-6",
				cd + "/component/structuredBody/component[1]/section/code/@code":                                                                                          "55752-0",
				cd + "/component/structuredBody/component[1]/section/component/section/code/@code":                                                                        "55115-0",
				cd + "/component/structuredBody/component[3]/section/code/@code":                                                                                          "59776-5",
				cd + "/component/structuredBody/component[4]/section/code/@code":                                                                                          "18834-2",
				cd + "/component/structuredBody/component[5]/section/code/@code":                                                                                          "19005-8",
				cd + "/component/structuredBody/component[5]/section/text/paragraph":                                                                                      "Examen normal.",
			},
			absent: []string{cd + "/relatedDocument/@typeCode"},
		},
		{
			name:   "local id only",
			report: localOnly(),
			want: map[string]string{
				cd + "/recordTarget/patientRole/id[1]/@root":                          "1.2.250.1.999.2",
				cd + "/recordTarget/patientRole/id[1]/@extension":                     "IPP-77",
				cd + "/recordTarget/patientRole/patient/name/family[@qualifier='BR']": "MARTIN",
				cd + "/recordTarget/patientRole/patient/birthTime/@nullFlavor":        "UNK",
				// Mandatory sections only: imaging act then conclusion.
				cd + "/component/structuredBody/component[1]/section/code/@code":                           "55111-9",
				cd + "/component/structuredBody/component[1]/section/component/section/code/@code":         "121181",
				cd + "/component/structuredBody/component[1]/section/component/section/entry/act/id/@root": "1.2.250.1.925.994044.27.123.1876360",
				cd + "/component/structuredBody/component[2]/section/code/@code":                           "19005-8",
			},
			absent: []string{
				cd + "/recordTarget/patientRole/id[2]/@root",
				cd + "/inFulfillmentOf/order/id/@extension",
				cd + "/component/structuredBody/component[3]/section/code/@code",
			},
		},
		{
			name: "clinical information without request reason",
			report: func() *Report {
				r := localOnly()
				r.ClinicalInformation = "Douleur thoracique."
				return r
			}(),
			want: map[string]string{
				cd + "/component/structuredBody/component[1]/section/code/@code":                       "55752-0",
				cd + "/component/structuredBody/component[1]/section/text/paragraph":                   "Douleur thoracique.",
				cd + "/component/structuredBody/component[1]/section/component/section/code/@code":     "55115-0",
				cd + "/component/structuredBody/component[1]/section/component/section/text/paragraph": "Non renseignée",
				cd + "/component/structuredBody/component[2]/section/code/@code":                       "55111-9",
				cd + "/component/structuredBody/component[3]/section/code/@code":                       "19005-8",
			},
		},
		{
			name:   "correction",
			report: correction(),
			want: map[string]string{
				cd + "/id/@root":                                            "1.2.250.1.999.1.1.3",
				cd + "/setId/@root":                                         "1.2.250.1.999.1.1",
				cd + "/versionNumber/@value":                                "2",
				cd + "/relatedDocument/@typeCode":                           "RPLC",
				cd + "/relatedDocument/parentDocument/id/@root":             "1.2.250.1.999.1.1.2",
				cd + "/relatedDocument/parentDocument/setId/@root":          "1.2.250.1.999.1.1",
				cd + "/relatedDocument/parentDocument/versionNumber/@value": "1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Level3(tt.report)
			if err != nil {
				t.Fatal(err)
			}
			f := writeDoc(t, "report.xml", doc)
			out, err := xmllint(t, "--nonet", "--noout", "--schema", schema, f)
			if err != nil {
				t.Fatalf("xmllint --schema: %v\n%s\n%s", err, out, doc)
			}
			if !strings.Contains(out, "validates") {
				t.Fatalf("xmllint: %s", out)
			}
			for expr, want := range tt.want {
				if got := xpath(t, f, n(expr)); got != want {
					t.Errorf("%s = %q, want %q", expr, got, want)
				}
			}
			for _, expr := range tt.absent {
				if got := xpath(t, f, n(expr)); got != "" {
					t.Errorf("%s = %q, want nothing", expr, got)
				}
			}
		})
	}
}

func TestValidateNamesField(t *testing.T) {
	tests := []struct {
		field  string
		mutate func(r *Report)
	}{
		{"ID", func(r *Report) { r.ID = "" }},
		{"SetID", func(r *Report) { r.SetID = "" }},
		{"Version", func(r *Report) { r.Version = 0 }},
		{"Effective", func(r *Report) { r.Effective = time.Time{} }},
		{"Patient.BirthPlace", func(r *Report) { r.Patient.BirthPlace = "" }},
		{"Patient.BirthDate", func(r *Report) { r.Patient.BirthDate = time.Time{} }},
		{"Patient.INS", func(r *Report) { r.Patient.INS = "123" }},
		{"Patient.INSOID", func(r *Report) { r.Patient.INSOID = "1.2.3" }},
		{"Patient.Sex", func(r *Report) { r.Patient.Sex = "X" }},
		{"Patient.LocalID", func(r *Report) { r.Patient.IdentityStatus = "VALI"; r.Patient.LocalID = "" }},
		{"Author.RPPS", func(r *Report) { r.Author.RPPS = "" }},
		{"LegalAuthenticator.RPPS", func(r *Report) { r.LegalAuthenticator.RPPS = "1234567890A" }},
		{"Author.Organisation.FINESS", func(r *Report) { r.Author.Organisation.FINESS = "12" }},
		{"LegalAuthenticator.Specialty.Code", func(r *Report) { r.LegalAuthenticator.Specialty = Code{} }},
		{"Custodian.FINESS", func(r *Report) { r.Custodian.FINESS = "" }},
		{"Order.AccessionIssuer", func(r *Report) { r.Order.AccessionIssuer = "" }},
		{"Study.StudyInstanceUID", func(r *Report) { r.Study.StudyInstanceUID = "" }},
		{"Study.Series[1].Instances[0].SOPInstanceUID", func(r *Report) { r.Study.Series[1].Instances[0].SOPInstanceUID = "" }},
		{"Encounter.Facility.FINESS", func(r *Report) { r.Encounter.Facility.FINESS = "" }},
		{"Conclusion", func(r *Report) { r.Conclusion = " " }},
		{"Replaces.SetID", func(r *Report) { r.Replaces = &Replaced{ID: "x", SetID: "other"} }},
	}
	if err := sample().Validate(); err != nil {
		t.Fatalf("sample: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			r := sample()
			tt.mutate(r)
			err := r.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.field+":") {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FieldError", err)
			}
			if _, err := Level3(r); err == nil {
				t.Error("Level3 accepted an invalid report")
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	r := sample()
	r.Conclusion = `Lésion < 5 mm & "stable" > rien à signaler </text><x/>]]>`
	r.Patient.BirthName = "D'ÉTÉ & <FILS>"
	r.Custodian.Name = `Clinique "Saint-Jérôme" & Cie <b>`
	doc, err := Level3(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(doc, []byte("<x/>")) || bytes.Contains(doc, []byte("<FILS>")) || bytes.Contains(doc, []byte("<b>")) {
		t.Fatalf("text not escaped:\n%s", doc)
	}
	f := writeDoc(t, "escaped.xml", doc)
	if out, err := xmllint(t, "--nonet", "--noout", "--schema", schema, f); err != nil {
		t.Fatalf("xmllint: %v\n%s", err, out)
	}

	// Round trip with encoding/xml.
	var parsed struct {
		RecordTarget struct {
			Name struct {
				Family []string `xml:"family"`
			} `xml:"patientRole>patient>name"`
		} `xml:"recordTarget"`
		Custodian string `xml:"custodian>assignedCustodian>representedCustodianOrganization>name"`
		Sections  []struct {
			Code struct {
				Code string `xml:"code,attr"`
			} `xml:"code"`
			Paragraphs []string `xml:"text>paragraph"`
		} `xml:"component>structuredBody>component>section"`
	}
	if err := xml.Unmarshal(doc, &parsed); err != nil {
		t.Fatal(err)
	}
	if got := parsed.RecordTarget.Name.Family; len(got) != 1 || got[0] != r.Patient.BirthName {
		t.Errorf("birth name round trip: %q, want %q", got, r.Patient.BirthName)
	}
	if parsed.Custodian != r.Custodian.Name {
		t.Errorf("custodian round trip: %q, want %q", parsed.Custodian, r.Custodian.Name)
	}
	var conclusion []string
	for _, s := range parsed.Sections {
		if s.Code.Code == "19005-8" {
			conclusion = s.Paragraphs
		}
	}
	if len(conclusion) != 1 || conclusion[0] != r.Conclusion {
		t.Errorf("conclusion round trip: %q, want %q", conclusion, r.Conclusion)
	}
	// xmllint agrees.
	if got := xpath(t, f, n("/ClinicalDocument/component/structuredBody/component[5]/section/text/paragraph")); got != r.Conclusion {
		t.Errorf("xmllint conclusion: %q, want %q", got, r.Conclusion)
	}
}

// TestSchemaRejects checks the validation step itself: a document the schema
// does not allow makes xmllint fail.
func TestSchemaRejects(t *testing.T) {
	doc, err := Level3(sample())
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"unknown element": bytes.Replace(doc, []byte(`<realmCode code="FR"/>`), []byte(`<realmCode code="FR"/><bogus/>`), 1),
		"header order":    bytes.Replace(doc, []byte(`<languageCode code="fr-FR"/>`), nil, 1),
	} {
		if name == "header order" {
			bad = bytes.Replace(bad, []byte(`<versionNumber value="1"/>`), []byte(`<versionNumber value="1"/><languageCode code="fr-FR"/>`), 1)
		}
		f := writeDoc(t, "bad.xml", bad)
		if out, err := xmllint(t, "--nonet", "--noout", "--schema", schema, f); err == nil {
			t.Errorf("%s: xmllint accepted an invalid document: %s", name, out)
		}
	}
}
