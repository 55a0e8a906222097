package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/coerce"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/report"
)

// The report test's directory and sites.
const (
	reportINS       = "184127645108946" // a well-formed matricule INS (key 46)
	reportRPPS      = "10001234567"
	custodianFINESS = "750000001"
	nordFINESS      = "590000001"
	sudFINESS       = "130000001"
	nordIPPOID      = "1.2.250.1.999.1.1"
	nordAccOID      = "1.2.250.1.999.1.2"
	sudIPPOID       = "1.2.250.1.999.2.1"
	sudAccOID       = "1.2.250.1.999.2.2"
)

func reportConfig(nordPort, sudPort int) string {
	return fmt.Sprintf(`ae_title: RELAIS
destinations:
  nord-pacs: {dicom: {ae: NORDPACS, host: 127.0.0.1, port: %d}}
  sud-pacs: {dicom: {ae: SUDPACS, host: 127.0.0.1, port: %d}}
routing:
  retry_initial: 200ms
  retry_max: 1s
organisations:
  teleradio: {finess: "%s", name: "Téléradiologie Relais"}
  ch-nord: {finess: "%s", name: "CH Nord", patient_id_oid: "%s", accession_oid: "%s"}
  ch-sud: {finess: "%s", name: "CH Sud", patient_id_oid: "%s", accession_oid: "%s"}
professionals:
  dr-martin: {user: cmartin, rpps: "%s", prefix: "Dr", given: "Claire", family: "MARTIN", organisation: teleradio}
sites:
  ch-nord: {organisation: ch-nord, calling_aes: [CT_NORD], users: [ch-nord], report_destinations: [nord-pacs], ins_status: QUAL}
  ch-sud: {organisation: ch-sud, calling_aes: [CT_SUD], report_destinations: [sud-pacs], report_format: both}
reports:
  custodian: teleradio
  document_oid: "1.2.250.1.999.9"
`, nordPort, sudPort, custodianFINESS, nordFINESS, nordIPPOID, nordAccOID, sudFINESS, sudIPPOID, sudAccOID, reportRPPS)
}

// reportStudy writes n CT files of one study; with ins, the INS is added
// as an Other Patient IDs item qualified by the INS-NIR OID (as a site's
// identity server would), with the patient's sex and birth date.
func reportStudy(t *testing.T, dir, patientID, accession, ins string, n int) (study string, files []string) {
	t.Helper()
	study, series := testdicom.UID(), testdicom.UID()
	for i := 1; i <= n; i++ {
		c := &testdicom.CT{PatientName: "DUPONT^Jeanne Marie", PatientID: patientID, StudyUID: study, SeriesUID: series, SOPUID: testdicom.UID(),
			AccessionNumber: accession, StudyDescription: "SCANNER CEREBRAL AVC", Instance: i, Charset: "ISO_IR 192"}
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		spec := coerce.Spec{Set: map[string]string{"PatientSex": "F", "PatientBirthDate": "19800115"}}
		if ins != "" {
			spec.INS = &coerce.INSSpec{Value: ins}
		}
		ops, err := spec.Compile(func(dicom.Tag) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := dicom.EditFile(&out, bytes.NewReader(b), dicom.DefaultLimits(), ops, dicom.EditOptions{}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%d.dcm", accession, i))
		if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return study, files
}

// reportCLI runs `relais report ...` against s with token.
func reportCLI(t *testing.T, s *server, token string, args ...string) (string, string, int) {
	t.Helper()
	return runRelais(t, append(append([]string{"report"}, args...), "--server", fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), "--token", token)...)
}

func reportJSON(t *testing.T, s *server, token string, args ...string) *report.Report {
	t.Helper()
	out, errs, code := reportCLI(t, s, token, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("relais report %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("relais report %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return &r
}

// xpath evaluates an XPath expression on an XML file with xmllint; the
// prefixes h: (HL7 v3) and d: (PS3.20) are matched by local name.
func xpath(t *testing.T, file, expr string) string {
	t.Helper()
	e := prefixRE.ReplaceAllString(expr, "*[local-name()='$1']")
	out, err := exec.Command("xmllint", "--nonet", "--xpath", e, file).CombinedOutput()
	if err != nil && len(out) > 0 && !bytes.Contains(out, []byte("XPath set is empty")) {
		t.Fatalf("xmllint --xpath %s: %v\n%s", e, err, out)
	}
	if bytes.Contains(out, []byte("XPath set is empty")) {
		return ""
	}
	return strings.TrimSpace(string(out))
}

var prefixRE = regexp.MustCompile(`\b[hd]:([A-Za-z][A-Za-z0-9]*)`)

func schemaPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../cda/testdata/schema/CDA_extended.xsd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func validateCDA(t *testing.T, file string) {
	t.Helper()
	needTool(t, "xmllint")
	out, err := exec.Command("xmllint", "--nonet", "--noout", "--schema", schemaPath(t), file).CombinedOutput()
	if err != nil {
		t.Fatalf("%s does not validate against CDA_extended.xsd: %v\n%s", file, err, out)
	}
}

// awaitSOP waits for a file named after sop in dir (storescp names files
// by modality prefix + SOP Instance UID).
func awaitSOP(t *testing.T, dir, sop string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), sop) {
				return filepath.Join(dir, e.Name())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not reach %s within %s", sop, dir, within)
	return ""
}

// encapsulatedDocument returns the Encapsulated Document (0042,0011) of a
// Part 10 file, without its even-length padding.
func encapsulatedDocument(t *testing.T, path string) []byte {
	t.Helper()
	ds, meta, err := testdicom.DatasetOf(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ts, _ := dicom.LookupTransferSyntax(meta.TransferSyntaxUID)
	res, err := dicom.Scan(bytes.NewReader(ds), ts, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	el, ok := res.Dataset.Get(dicom.Tag(0x00420011))
	if !ok {
		t.Fatalf("%s has no Encapsulated Document", path)
	}
	return bytes.TrimRight(el.Raw, "\x00 ")
}

func TestReportWorkflowPublishesCDA(t *testing.T) {
	needTool(t, "storescu")
	needTool(t, "dcmdump")
	nord := startStorescp(t, "NORDPACS")
	sudPort := freePort(t) // down until the end of the test
	data := t.TempDir()
	radiologist := createToken(t, data, "cmartin", "radiologist")
	stranger := createToken(t, data, "ghost", "radiologist") // a radiologist not in the directory
	requester := createToken(t, data, "ch-nord", "requester")
	admin := createToken(t, data, "admin2", "admin")
	night := createToken(t, data, "nuit", "radiologist")
	s := startServer(t, data, reportConfig(nord.port, sudPort))

	fx := t.TempDir()
	studyA, filesA := reportStudy(t, fx, "IPP123", "ACC-001", reportINS, 3)
	studyB, filesB := reportStudy(t, fx, "IPP987", "ACC-002", "", 2)
	host, port := s.hostPort()
	for _, send := range []struct {
		aet   string
		files []string
	}{{"CT_NORD", filesA}, {"CT_SUD", filesB}} {
		if out, err := dcmtk(t, "storescu", append([]string{"-aet", send.aet, "-aec", "RELAIS", host, port}, send.files...)...); err != nil {
			t.Fatalf("storescu: %v\n%s", err, out)
		}
	}

	// Bad input first: nothing may be half-written.
	if _, errs, code := reportCLI(t, s, radiologist, "create", "--study", "1.2.3.4.5.404", "--conclusion", "x"); code == 0 || !strings.Contains(errs, "no study") || !strings.Contains(errs, "404") {
		t.Fatalf("report for an unknown study: exit %d, %q; want a 404 saying no study", code, errs)
	}
	if _, errs, code := reportCLI(t, s, requester, "create", "--study", studyA, "--conclusion", "x"); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("a requester creating a report: exit %d, %q; want 403", code, errs)
	}
	r := reportJSON(t, s, radiologist, "create", "--study", studyA,
		"--clinical-information", "Déficit brachio-facial gauche depuis 1 h.", "--request-reason", "Suspicion d'AVC ischémique",
		"--technique", "Scanner cérébral sans injection.", "--findings", "Hypodensité débutante du territoire sylvien droit.",
		"--conclusion", "Signes précoces d'AVC ischémique sylvien droit.", "--patient-birth-place", "75056", "--dlp", "950")
	if r.State != report.Draft || r.Site != "ch-nord" {
		t.Fatalf("created: state %s site %q; want draft, ch-nord", r.State, r.Site)
	}
	if _, errs, code := reportCLI(t, s, requester, "sign", r.ID); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("a requester signing: exit %d, %q; want 403", code, errs)
	}
	if _, errs, code := reportCLI(t, s, stranger, "sign", r.ID); code == 0 || !strings.Contains(errs, "403") || !strings.Contains(errs, "directory of professionals") {
		t.Fatalf("a radiologist outside the directory signing: exit %d, %q; want 403 naming the directory", code, errs)
	}
	if got := reportJSON(t, s, radiologist, "show", r.ID); got.State != report.Draft || len(got.Versions) != 0 || got.Revision != r.Revision {
		t.Fatalf("after refused signatures: %s, %d versions, revision %d (was %d); want the draft untouched", got.State, len(got.Versions), got.Revision, r.Revision)
	}
	if n := countQIDO(t, s, studyA, radiologist, "1.2.840.10008.5.1.4.1.1.104.2"); n != 0 {
		t.Fatalf("%d Encapsulated CDA instances in the study before signing", n)
	}

	// Sign: level 3 CDA, stored in the study, sent to the site's PACS.
	signStart := time.Now()
	signed := reportJSON(t, s, radiologist, "sign", r.ID)
	signTook := time.Since(signStart)
	if signed.State != report.Signed || len(signed.Versions) != 1 {
		t.Fatalf("signed: %s with %d versions", signed.State, len(signed.Versions))
	}
	v1 := signed.Versions[0]
	if !v1.UsesINS || !v1.Published || len(v1.Documents) != 1 || v1.RPPS != reportRPPS {
		t.Fatalf("version 1: uses INS %v, published %v (%s), documents %+v, RPPS %s", v1.UsesINS, v1.Published, v1.PublishErr, v1.Documents, v1.RPPS)
	}
	dir := t.TempDir()
	cda1 := filepath.Join(dir, "v1.xml")
	if _, errs, code := reportCLI(t, s, radiologist, "get", r.ID, "-o", cda1); code != 0 {
		t.Fatalf("report get: %s", errs)
	}
	validateCDA(t, cda1)
	for expr, want := range map[string]string{
		"string(/h:ClinicalDocument/h:code/@code)":                                                                          "18748-4",
		"string(/h:ClinicalDocument/h:recordTarget/h:patientRole/h:id[@root='1.2.250.1.213.1.4.8']/@extension)":             reportINS,
		"string(/h:ClinicalDocument/h:recordTarget/h:patientRole/h:id[@root='" + nordIPPOID + "']/@extension)":              "IPP123",
		"string(/h:ClinicalDocument/h:recordTarget/h:patientRole/h:patient/h:birthplace/h:place/h:addr/h:county)":           "75056",
		"string(/h:ClinicalDocument/h:author/h:assignedAuthor/h:id/@extension)":                                             "8" + reportRPPS,
		"string(/h:ClinicalDocument/h:legalAuthenticator/h:assignedEntity/h:id/@extension)":                                 "8" + reportRPPS,
		"string(/h:ClinicalDocument/h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id/@extension)":    "1" + custodianFINESS,
		"string(/h:ClinicalDocument/h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:id/@extension)": "1" + nordFINESS,
		"string(/h:ClinicalDocument/h:documentationOf/h:serviceEvent/h:id/@root)":                                           studyA,
		"string(/h:ClinicalDocument/h:inFulfillmentOf/h:order/d:accessionNumber/@extension)":                                "ACC-001",
		"string(/h:ClinicalDocument/h:inFulfillmentOf/h:order/d:accessionNumber/@root)":                                     nordAccOID,
		"string(/h:ClinicalDocument/h:setId/@root)":                                                                         v1.SetID,
		"string(/h:ClinicalDocument/h:id/@root)":                                                                            v1.DocumentID,
		"string(/h:ClinicalDocument/h:versionNumber/@value)":                                                                "1",
		"count(//h:section/h:code[@code='19005-8'])":                                                                        "1",
		"count(//h:observation[h:code/@code='121139'] | //h:serviceEvent/h:code/h:translation[@code='CT'])":                 "1",
	} {
		if got := xpath(t, cda1, expr); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
	if got := xpath(t, cda1, "count(//h:relatedDocument)"); got != "0" {
		t.Errorf("version 1 has %s relatedDocument", got)
	}

	// The site's PACS got the Encapsulated CDA; dcmdump shows it.
	got := awaitSOP(t, nord.dir, v1.Documents[0].SOPInstanceUID, 15*time.Second)
	t.Logf("relais report sign (CLI, HTTP, documents, durable) took %s; signed report at the site's storescp %s after the command started", signTook.Round(time.Millisecond), time.Since(signStart).Round(time.Millisecond))
	dump, err := dcmtk(t, "dcmdump", got)
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, dump)
	}
	for _, want := range []string{"=EncapsulatedCDAStorage", "text/XML", studyA, reportINS, "(0042,0011) OB"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dcmdump of the delivered report lacks %q:\n%s", want, dump)
		}
	}
	xml1, _ := os.ReadFile(cda1)
	if doc := encapsulatedDocument(t, got); !bytes.Equal(doc, bytes.TrimRight(xml1, "\x00 ")) {
		t.Errorf("the delivered document (%d bytes) is not the API's CDA (%d bytes)", len(doc), len(xml1))
	}
	if n := countQIDO(t, s, studyA, radiologist, "1.2.840.10008.5.1.4.1.1.104.2"); n != 1 {
		t.Errorf("QIDO finds %d Encapsulated CDA instances in the study, want 1", n)
	}

	// A signed report is not edited; a correction replaces it.
	if _, errs, code := reportCLI(t, s, radiologist, "edit", r.ID, "--conclusion", "autre"); code == 0 || !strings.Contains(errs, "409") || !strings.Contains(errs, "correction") {
		t.Fatalf("edit after signing: exit %d, %q; want 409 pointing to a correction", code, errs)
	}
	if got := reportJSON(t, s, radiologist, "show", r.ID); got.Content.Conclusion != signed.Content.Conclusion || got.Revision != signed.Revision {
		t.Fatalf("the refused edit changed the report: %q rev %d", got.Content.Conclusion, got.Revision)
	}
	corr := reportJSON(t, s, radiologist, "correct", r.ID, "--conclusion", "AVC ischémique sylvien droit ; pas de saignement.")
	if corr.State != report.Corrected || len(corr.Versions) != 2 {
		t.Fatalf("corrected: %s with %d versions", corr.State, len(corr.Versions))
	}
	v2 := corr.Versions[1]
	cda2 := filepath.Join(dir, "v2.xml")
	if _, errs, code := reportCLI(t, s, radiologist, "get", r.ID, "--version", "2", "-o", cda2); code != 0 {
		t.Fatalf("report get v2: %s", errs)
	}
	validateCDA(t, cda2)
	for expr, want := range map[string]string{
		"string(/h:ClinicalDocument/h:setId/@root)":                                             v1.SetID,
		"string(/h:ClinicalDocument/h:versionNumber/@value)":                                    "2",
		"string(/h:ClinicalDocument/h:relatedDocument/@typeCode)":                               "RPLC",
		"string(/h:ClinicalDocument/h:relatedDocument/h:parentDocument/h:id/@root)":             v1.DocumentID,
		"string(/h:ClinicalDocument/h:relatedDocument/h:parentDocument/h:versionNumber/@value)": "1",
	} {
		if got := xpath(t, cda2, expr); got != want {
			t.Errorf("correction: %s = %q, want %q", expr, got, want)
		}
	}
	if v2.DocumentID == v1.DocumentID {
		t.Errorf("the correction kept the document id")
	}
	awaitSOP(t, nord.dir, v2.Documents[0].SOPInstanceUID, 15*time.Second)

	// A patient without a qualified INS: local id only, and said so.
	rb := reportJSON(t, s, radiologist, "create", "--study", studyB, "--conclusion", "Pas d'anomalie.")
	out, errs, code := reportCLI(t, s, radiologist, "sign", rb.ID)
	if code != 0 {
		t.Fatalf("sign B: %s", errs)
	}
	if !strings.Contains(out, "identified by the local id only") || !strings.Contains(out, "notice: patient identified by the local id only") {
		t.Errorf("signing a PROV identity does not say the INS is not used:\n%s", out)
	}
	sb := reportJSON(t, s, radiologist, "show", rb.ID)
	cdaB := filepath.Join(dir, "b.xml")
	if _, errs, code := reportCLI(t, s, radiologist, "get", rb.ID, "-o", cdaB); code != 0 {
		t.Fatalf("report get B: %s", errs)
	}
	validateCDA(t, cdaB)
	if got := xpath(t, cdaB, "count(/h:ClinicalDocument/h:recordTarget/h:patientRole/h:id[starts-with(@root,'1.2.250.1.213.1.4.')])"); got != "0" {
		t.Errorf("a PROV identity's CDA carries %s INS id", got)
	}
	if got := xpath(t, cdaB, "string(/h:ClinicalDocument/h:recordTarget/h:patientRole/h:id[@root='"+sudIPPOID+"']/@extension)"); got != "IPP987" {
		t.Errorf("local id = %q, want IPP987 under %s", got, sudIPPOID)
	}

	// The south PACS is down: the report waits in the queue, then arrives.
	time.Sleep(1500 * time.Millisecond)
	qout, qerrs, qcode := runRelais(t, "queue", "list", "--server", fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), "--token", admin)
	if qcode != 0 || !strings.Contains(qout, "sud-pacs") {
		t.Fatalf("queue list: exit %d %s\n%s", qcode, qerrs, qout)
	}
	sudDir := t.TempDir()
	startTool(t, sudPort, "storescp", "--fork", "-aet", "SUDPACS", "-od", sudDir, fmt.Sprint(sudPort))
	if len(sb.Versions[0].Documents) != 2 {
		t.Fatalf("a level1+level3 site's report has %d documents", len(sb.Versions[0].Documents))
	}
	for _, d := range sb.Versions[0].Documents {
		awaitSOP(t, sudDir, d.SOPInstanceUID, 30*time.Second)
	}

	// The level 1 document: same header, the PDF as body.
	l1 := filepath.Join(dir, "b-level1.xml")
	if _, errs, code := reportCLI(t, s, radiologist, "get", rb.ID, "--format", "level1", "-o", l1); code != 0 {
		t.Fatalf("report get level1: %s", errs)
	}
	validateCDA(t, l1)
	for expr, want := range map[string]string{
		"string(/h:ClinicalDocument/h:component/h:nonXMLBody/h:text/@mediaType)":      "application/pdf",
		"string(/h:ClinicalDocument/h:component/h:nonXMLBody/h:text/@representation)": "B64",
		"count(/h:ClinicalDocument/h:component/h:structuredBody)":                     "0",
		"string(/h:ClinicalDocument/h:setId/@root)":                                   sb.Versions[0].SetID,
	} {
		if got := xpath(t, l1, expr); got != want {
			t.Errorf("level 1: %s = %q, want %q", expr, got, want)
		}
	}

	// GET /reports/{id}: the PDF by content negotiation, readable text.
	pdf := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/reports/%s", s.httpPort, r.ID), radiologist, "application/pdf", http.StatusOK)
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("GET /reports/{id} Accept: application/pdf gave %.20q", pdf)
	}
	pdfFile := filepath.Join(dir, "a.pdf")
	os.WriteFile(pdfFile, pdf, 0o600)
	needTool(t, "pdftotext")
	text, err := exec.Command("pdftotext", "-enc", "UTF-8", pdfFile, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	flat := strings.Join(strings.Fields(string(text)), " ")
	for _, want := range []string{"AVC ischémique sylvien droit ; pas de saignement.", reportINS, reportRPPS, "Signé électroniquement", "MARTIN"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the report's PDF lacks %q:\n%s", want, flat)
		}
	}
	xmlDoc := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/reports/%s?version=1", s.httpPort, r.ID), requester, "application/hl7-cda+xml", http.StatusOK)
	if want, _ := os.ReadFile(cda1); !bytes.Equal(xmlDoc, want) {
		t.Errorf("GET /reports/{id}?version=1 is not version 1's CDA")
	}
	// A requester sees its site's studies only, in searches and retrievals.
	dw := fmt.Sprintf("http://127.0.0.1:%d/dicom-web", s.httpPort)
	if l := httpGet(t, dw+"/studies", requester, "application/dicom+json", http.StatusOK); !bytes.Contains(l, []byte(studyA)) || bytes.Contains(l, []byte(studyB)) {
		t.Errorf("a requester's QIDO lists: %s", l)
	}
	if l := httpGet(t, dw+"/instances?AccessionNumber=ACC-002", requester, "application/dicom+json", http.StatusOK); bytes.Contains(l, []byte(studyB)) {
		t.Errorf("a requester finds another site's instances: %s", l)
	}
	httpGet(t, dw+"/studies/"+studyB+"/metadata", requester, "application/dicom+json", http.StatusNotFound)
	httpGet(t, dw+"/studies/"+studyB, requester, "multipart/related; type=\"application/dicom\"", http.StatusNotFound)
	httpGet(t, dw+"/studies/"+studyA+"/metadata", requester, "application/dicom+json", http.StatusOK)
	if l := httpGet(t, dw+"/studies", radiologist, "application/dicom+json", http.StatusOK); !bytes.Contains(l, []byte(studyB)) {
		t.Errorf("a radiologist does not see every study")
	}

	// A requester reads its site's reports only: another site's is not found.
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/reports/%s", s.httpPort, rb.ID), requester, "", http.StatusNotFound)
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/api/reports/%s", s.httpPort, rb.ID), requester, "", http.StatusNotFound)
	if l := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/api/reports", s.httpPort), requester, "", http.StatusOK); !bytes.Contains(l, []byte(r.ID)) || bytes.Contains(l, []byte(rb.ID)) {
		t.Errorf("a requester's report list: %s", l)
	}
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/reports/%s", s.httpPort, r.ID), radiologist, "image/png", http.StatusNotAcceptable)
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/reports/%s", s.httpPort, r.ID), "", "application/pdf", http.StatusUnauthorized)
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/reports/%s?version=7", s.httpPort, r.ID), radiologist, "", http.StatusNotFound)
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/reports/..%%2fetc", s.httpPort), radiologist, "", http.StatusNotFound)

	// A professional added through the directory API signs at once.
	entry := filepath.Join(dir, "nuit.json")
	os.WriteFile(entry, []byte(`{"user": "nuit", "rpps": "10009999999", "prefix": "Dr", "given": "Paul", "family": "NUIT", "organisation": "teleradio"}`), 0o600)
	if out, errs, code := runRelais(t, "directory", "put", "professionals", "dr-nuit", "-f", entry, "--server", fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), "--token", admin); code != 0 {
		t.Fatalf("directory put: %s %s", out, errs)
	}
	rn := reportJSON(t, s, night, "create", "--study", studyA, "--conclusion", "Relecture : sans changement.", "--patient-birth-place", "75056")
	if rn = reportJSON(t, s, night, "sign", rn.ID); rn.Last() == nil || rn.Last().RPPS != "10009999999" || rn.Last().SignedBy != "dr-nuit" {
		t.Fatalf("signed by a professional of the API: %+v", rn.Last())
	}
}

// httpGet GETs url with a token and Accept, checks the status and returns
// the body.
func httpGet(t *testing.T, url, token, accept string, status int) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s (Accept %q): %s, want %d\n%s", url, accept, resp.Status, status, b)
	}
	return b
}

// countQIDO counts the study's instances of a SOP class through QIDO-RS.
func countQIDO(t *testing.T, s *server, study, token, sopClass string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/dicom-web/studies/%s/instances?SOPClassUID=%s", s.httpPort, study, sopClass), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return 0
	case http.StatusOK:
	default:
		t.Fatalf("QIDO: %s %s", resp.Status, b)
	}
	var l []any
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return len(l)
}
