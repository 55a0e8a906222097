package main

// End-to-end tests of KOS manifests and key-image notes: `relais serve`
// with real peers (dcmtk storescu, findscu, storescp, dsrdump, dcmdump;
// dicom3tools dciodvfy), the `relais kos` CLI and the HTTP API.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

const kosClass = "1.2.840.10008.5.1.4.1.1.88.59"

// kosStudy writes a study of CT series (sizes give their slices) and
// returns the files and the SOP UIDs by series.
func kosStudy(t *testing.T, patient string, sizes ...int) (study string, files []string, series map[string][]string) {
	t.Helper()
	dir := t.TempDir()
	study = testdicom.UID()
	series = map[string][]string{}
	for si, n := range sizes {
		se := testdicom.UID()
		for i := 1; i <= n; i++ {
			c := &testdicom.CT{PatientName: "Martin^Louise", PatientID: patient, StudyUID: study, SeriesUID: se, SOPUID: testdicom.UID(),
				Instance: i, AccessionNumber: "ACC42", StudyDescription: "TDM THORAX", Charset: "ISO_IR 192", TransferSyntax: "1.2.840.10008.1.2.1",
				OtherPatientIDs: []testdicom.OtherPatientID{{ID: "248127512345678", Issuer: "ASIP-SANTE-INS-NIR", Type: "TEXT"}}}
			b, err := c.File()
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, fmt.Sprintf("s%d_%03d.dcm", si, i))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
			series[se] = append(series[se], c.SOPUID)
		}
	}
	return study, files, series
}

// kosCheck runs dciodvfy on a file: any line starting with "Error" fails
// the test; the warnings are logged and returned.
func kosCheck(t *testing.T, path string) []string {
	t.Helper()
	if _, err := exec.LookPath("dciodvfy"); err != nil {
		t.Fatal("dciodvfy not found: install dicom3tools (apt-get install dicom3tools); .ci/run does")
	}
	out, _ := exec.Command("dciodvfy", path).CombinedOutput()
	var warnings []string
	failed := false
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "Error"):
			t.Errorf("dciodvfy %s: %s", filepath.Base(path), l)
			failed = true
		case strings.HasPrefix(l, "Warning"):
			warnings = append(warnings, l)
		}
	}
	if failed {
		t.Logf("dciodvfy output:\n%s", out)
	}
	t.Logf("dciodvfy %s: %d warning(s): %s", filepath.Base(path), len(warnings), strings.Join(warnings, " | "))
	return warnings
}

func kosDump(t *testing.T, path string) string {
	t.Helper()
	out, err := dcmtk(t, "dsrdump", "+Pl", "+Pu", "+Pc", path)
	if err != nil {
		t.Fatalf("dsrdump: %v\n%s", err, out)
	}
	return out
}

// kosHTTP sends a request and returns status, body and headers.
func kosHTTP(t *testing.T, method, url, token, accept, body string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	rq, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		rq.Header.Set("Authorization", "Bearer "+token)
	}
	if accept != "" {
		rq.Header.Set("Accept", accept)
	}
	if body != "" {
		rq.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// multipartSOPs reads a multipart/related answer of DICOM parts and
// returns their SOP Instance UIDs.
func multipartSOPs(t *testing.T, ct string, body []byte) []string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/related" {
		t.Fatalf("answer type %q: %v", ct, err)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var sops []string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		meta, _, err := dicom.ReadFileMeta(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		sops = append(sops, meta.MediaStorageSOPInstanceUID)
	}
	sort.Strings(sops)
	return sops
}

// kosEvidence reads the evidence of a KOS file: series UID → its Retrieve
// URL, and series UID → referenced SOPs.
func kosEvidence(t *testing.T, path string) (map[string]string, map[string][]string) {
	t.Helper()
	ds, meta, err := testdicom.DatasetOf(path)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := dicom.LookupTransferSyntax(meta.TransferSyntaxUID)
	res, err := dicom.Scan(bytes.NewReader(ds), ts, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	urls, refs := map[string]string{}, map[string][]string{}
	ev, ok := res.Dataset.Get(dicom.NewTag(0x0040, 0xA375))
	if !ok {
		t.Fatal("no Current Requested Procedure Evidence Sequence")
	}
	for _, st := range ev.Items {
		ser, _ := st.Get(dicom.NewTag(0x0008, 0x1115))
		for _, s := range ser.Items {
			uid, _ := s.String(dicom.TagSeriesInstanceUID)
			urls[uid], _ = s.String(dicom.NewTag(0x0008, 0x1190))
			rs, _ := s.Get(dicom.NewTag(0x0008, 0x1199))
			for _, r := range rs.Items {
				sop, _ := r.String(dicom.NewTag(0x0008, 0x1155))
				refs[uid] = append(refs[uid], sop)
			}
			sort.Strings(refs[uid])
		}
	}
	return urls, refs
}

type kosAnswer struct {
	SOP         string `json:"sop_instance_uid"`
	Series      string `json:"series_instance_uid"`
	Study       string `json:"study_instance_uid"`
	Instances   int    `json:"instances"`
	RetrieveURL string `json:"retrieve_url"`
	Created     bool   `json:"created"`
	Title       string `json:"title"`
}

// TestKOSManifestAndKeyImages: a study sent with storescu; its manifest
// built through the API and `relais kos`; dciodvfy, dsrdump, the Retrieve
// URLs, findscu and QIDO-RS check it; key images flagged; bad input
// refused without storing anything.
func TestKOSManifestAndKeyImages(t *testing.T) {
	data := t.TempDir()
	admin := createToken(t, data, "admin1", "admin")
	rad := createToken(t, data, "dr.martin", "radiologist")
	requester := createToken(t, data, "site-a", "requester")
	otherSite := createToken(t, data, "site-b", "requester")
	// The requester reads the studies its site sent (DICOMweb scoping).
	s := startServer(t, data, `organisations:
  ch-a: {finess: "750000001", name: "CH A"}
sites:
  site-a: {organisation: ch-a, calling_aes: [CT_A], users: [site-a]}
  site-b: {organisation: ch-a, calling_aes: [CT_B], users: [site-b]}
`)
	h, p := s.hostPort()
	study, files, series := kosStudy(t, "IPP42", 3, 2)
	otherStudy, otherFiles, otherSeries := kosStudy(t, "IPP43", 1)
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_A", "-aec", "RELAIS", h, p}, append(files, otherFiles...)...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	server := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	base := server + "/dicom-web"

	// Built through the API: 201 and its description.
	code, b, hdr := kosHTTP(t, "POST", server+"/api/studies/"+study+"/manifest", admin, "", "")
	var m kosAnswer
	if code != http.StatusCreated || json.Unmarshal(b, &m) != nil {
		t.Fatalf("POST manifest: %d %s", code, b)
	}
	wantURL := base + "/studies/" + study + "/series/" + m.Series + "/instances/" + m.SOP
	if m.Study != study || m.Instances != 5 || m.Title != "113030" || !m.Created || m.RetrieveURL != wantURL || hdr.Get("Location") != wantURL {
		t.Errorf("POST manifest answered %+v", m)
	}
	// Again through the CLI (-o): the same manifest, not created again.
	dir := t.TempDir()
	mfile := filepath.Join(dir, "manifest.dcm")
	out, errs, rc := runRelais(t, "kos", study, "--server", server, "--token", admin, "-o", mfile)
	if rc != 0 {
		t.Fatalf("relais kos -o: exit %d: %s %s", rc, out, errs)
	}
	var cli struct {
		SOP     string `json:"sop_instance_uid"`
		Created bool   `json:"created"`
	}
	if json.Unmarshal([]byte(out), &cli) != nil || cli.SOP != m.SOP || cli.Created {
		t.Errorf("relais kos -o printed %s; want the same SOP %s, created false", out, m.SOP)
	}
	// And with the server from the configuration's listen.http and the
	// token from RELAIS_TOKEN: JSON, 200.
	cfgFile := filepath.Join(dir, "relais.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("listen:\n  http: 127.0.0.1:%d\n", s.httpPort)), 0o600)
	cmd := exec.Command(relaisBin, "kos", study, "--config", cfgFile)
	cmd.Env = append(os.Environ(), "RELAIS_TOKEN="+rad)
	jout, err := cmd.Output()
	var again kosAnswer
	if err != nil || json.Unmarshal(jout, &again) != nil || again.SOP != m.SOP || again.Created {
		t.Errorf("relais kos --config: %v %s", err, jout)
	}

	// A requester reads it (GET, read-reports), as JSON and as DICOM.
	code, b, _ = kosHTTP(t, "GET", server+"/api/studies/"+study+"/manifest", requester, "", "")
	var read kosAnswer
	if code != 200 || json.Unmarshal(b, &read) != nil || read.SOP != m.SOP || read.RetrieveURL != m.RetrieveURL {
		t.Errorf("GET manifest as a requester: %d %s", code, b)
	}
	if code, b, _ = kosHTTP(t, "GET", server+"/api/studies/"+study+"/manifest", otherSite, "", ""); code != 404 {
		t.Errorf("GET manifest as another site's requester: %d %s, want 404", code, b)
	}
	if code, b, _ = kosHTTP(t, "GET", server+"/api/studies/"+study+"/manifest", requester, "application/dicom", ""); code != 200 {
		t.Errorf("GET manifest as DICOM: %d", code)
	} else if saved, _ := os.ReadFile(mfile); !bytes.Equal(saved, b) {
		t.Error("GET manifest as DICOM differs from what relais kos -o saved")
	}
	// dciodvfy: no error; dsrdump: the manifest tree.
	kosCheck(t, mfile)
	dump := kosDump(t, mfile)
	if !strings.Contains(dump, `<CONTAINER:(113030,DCM,"Manifest")=SEPARATE>`) {
		t.Errorf("dsrdump: no Manifest container:\n%s", dump)
	}
	if n := strings.Count(dump, "<contains IMAGE:"); n != 5 {
		t.Errorf("dsrdump: %d IMAGE items, want 5:\n%s", n, dump)
	}
	for _, sops := range series {
		for _, sop := range sops {
			if strings.Count(dump, sop) != 1 {
				t.Errorf("dsrdump: instance %s not referenced once", sop)
			}
		}
	}
	// Each series' Retrieve URL answers with exactly the series' instances.
	urls, refs := kosEvidence(t, mfile)
	if len(urls) != len(series) {
		t.Errorf("evidence has %d series, want %d", len(urls), len(series))
	}
	for se, sops := range series {
		want := append([]string(nil), sops...)
		sort.Strings(want)
		if strings.Join(refs[se], ",") != strings.Join(want, ",") {
			t.Errorf("evidence of series %s: %q, want %q", se, refs[se], want)
		}
		u := urls[se]
		if u != base+"/studies/"+study+"/series/"+se {
			t.Errorf("Retrieve URL of series %s: %q", se, u)
			continue
		}
		code, body, hdr := kosHTTP(t, "GET", u, requester, `multipart/related; type="application/dicom"`, "")
		if code != 200 {
			t.Errorf("GET %s: %d %s", u, code, body)
			continue
		}
		if got := multipartSOPs(t, hdr.Get("Content-Type"), body); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("GET %s gave %q, want %q", u, got, want)
		}
	}
	// The manifest's own URL gives it.
	code, body, hdr := kosHTTP(t, "GET", m.RetrieveURL, requester, `multipart/related; type="application/dicom"`, "")
	if code != 200 || strings.Join(multipartSOPs(t, hdr.Get("Content-Type"), body), ",") != m.SOP {
		t.Errorf("GET %s: %d", m.RetrieveURL, code)
	}

	// C-FIND at IMAGE level in the study finds it as a KO instance.
	answers := runFindscu(t, s, "-S", "QueryRetrieveLevel=IMAGE", "StudyInstanceUID="+study, "SeriesInstanceUID="+m.Series, "SOPInstanceUID", "SOPClassUID", "Modality")
	if len(answers) != 1 || str(t, answers[0], "SOPInstanceUID") != m.SOP || str(t, answers[0], "SOPClassUID") != kosClass {
		t.Errorf("findscu IMAGE level: %d answers %v", len(answers), column(t, answers, "SOPInstanceUID"))
	} else if mod := str(t, answers[0], "Modality"); mod != "KO" {
		t.Errorf("findscu IMAGE level: Modality %q", mod)
	}
	series4 := runFindscu(t, s, "-S", "QueryRetrieveLevel=SERIES", "StudyInstanceUID="+study, "Modality=KO", "SeriesInstanceUID")
	if got := column(t, series4, "SeriesInstanceUID"); len(got) != 1 || got[0] != m.Series {
		t.Errorf("findscu SERIES Modality=KO: %q, want %s", got, m.Series)
	}
	// QIDO-RS finds it too, with modality KO.
	qido := func() []map[string]struct {
		Value []any `json:"Value"`
	} {
		code, body, _ := kosHTTP(t, "GET", base+"/studies/"+study+"/instances?Modality=KO&includefield=00080060", requester, "application/dicom+json", "")
		if code != 200 && code != 204 {
			t.Fatalf("QIDO: %d %s", code, body)
		}
		var res []map[string]struct {
			Value []any `json:"Value"`
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatalf("QIDO: %v %s", err, body)
			}
		}
		return res
	}
	q := qido()
	if len(q) != 1 || fmt.Sprint(q[0]["00080018"].Value) != "["+m.SOP+"]" || fmt.Sprint(q[0]["00080016"].Value) != "["+kosClass+"]" {
		t.Errorf("QIDO Modality=KO in the study: %v", q)
	}

	// Key images, through the CLI, by the radiologist.
	var sop1, sop2 string
	for _, sops := range series {
		if len(sops) == 3 {
			sop1 = sops[1]
		} else {
			sop2 = sops[0]
		}
	}
	kfile := filepath.Join(dir, "keyimages.dcm")
	const desc = "Nodule lobaire supérieur droit de 8 mm, à comparer à l'examen antérieur"
	out, errs, rc = runRelais(t, "kos", study, "--server", server, "--token", rad, "--key-image", sop1, "--key-image", sop2+":1", "--description", desc, "-o", kfile)
	if rc != 0 {
		t.Fatalf("relais kos --key-image: exit %d: %s %s", rc, out, errs)
	}
	var kcli struct {
		SOP     string `json:"sop_instance_uid"`
		Created bool   `json:"created"`
	}
	if json.Unmarshal([]byte(out), &kcli) != nil || !kcli.Created || kcli.SOP == m.SOP {
		t.Errorf("relais kos --key-image printed %s", out)
	}
	kosCheck(t, kfile)
	kdump := kosDump(t, kfile)
	for _, want := range []string{`<CONTAINER:(113000,DCM,"Of Interest")=SEPARATE>`, `<contains TEXT:(113012,DCM,"Key Object Description")="` + desc + `">`, sop1, sop2} {
		if !strings.Contains(kdump, want) {
			t.Errorf("dsrdump of the note lacks %s:\n%s", want, kdump)
		}
	}
	if n := strings.Count(kdump, "<contains IMAGE:"); n != 2 {
		t.Errorf("dsrdump of the note: %d IMAGE items, want 2:\n%s", n, kdump)
	}
	kurls, krefs := kosEvidence(t, kfile)
	for se, u := range kurls {
		if u != base+"/studies/"+study+"/series/"+se || len(krefs[se]) != 1 {
			t.Errorf("note evidence: series %s URL %s refs %q", se, u, krefs[se])
		}
	}

	// Bad input: clear errors, nothing stored.
	var otherSOP string
	for _, v := range otherSeries {
		otherSOP = v[0]
	}
	good := `{"description": "x", "instances": [{"sop_instance_uid": "` + sop1 + `"}]}`
	for _, c := range []struct {
		name, path, token, body string
		want                    int
	}{
		{"manifest of an unknown study", "/api/studies/1.2.3.999/manifest", admin, "", 404},
		{"key images of an unknown study", "/api/studies/1.2.3.999/key-images", rad, good, 404},
		{"key image of another study's instance", "/api/studies/" + study + "/key-images", rad, `{"instances": [{"sop_instance_uid": "` + otherSOP + `"}]}`, 400},
		{"key images: bad JSON", "/api/studies/" + study + "/key-images", rad, `{"instances": [{"sop_instance_uid": 12}]}`, 400},
		{"key images by a requester", "/api/studies/" + study + "/key-images", requester, good, 403},
		{"key images by an admin", "/api/studies/" + study + "/key-images", admin, good, 403},
		{"manifest by a requester", "/api/studies/" + study + "/manifest", requester, "", 403},
		{"manifest without a token", "/api/studies/" + study + "/manifest", "", "", 401},
		{"key images without a token", "/api/studies/" + study + "/key-images", "", good, 401},
	} {
		code, body, _ := kosHTTP(t, "POST", server+c.path, c.token, "", c.body)
		var e struct {
			Error string `json:"error"`
		}
		if code != c.want || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want %d with a JSON error", c.name, code, body, c.want)
		} else {
			t.Logf("%s: %d %s", c.name, code, strings.TrimSpace(string(body)))
		}
	}
	out, errs, rc = runRelais(t, "kos", "1.2.3.999", "--server", server, "--token", admin)
	if rc == 0 || !strings.Contains(errs, "not found") || !strings.Contains(errs, "404") {
		t.Errorf("relais kos of an unknown study: exit %d, stdout %q, stderr %q", rc, out, errs)
	}
	out, errs, rc = runRelais(t, "kos", study, "--server", server, "--token", rad, "--key-image", otherSOP)
	if rc == 0 || !strings.Contains(errs, "not in study") {
		t.Errorf("relais kos --key-image of another study's instance: exit %d, stderr %q", rc, errs)
	}
	if q := qido(); len(q) != 2 {
		t.Errorf("the study holds %d KO instances after the refused requests, want 2 (manifest, note)", len(q))
	}
	if n := len(otherSeries); n != 1 || otherStudy == "" {
		t.Fatal("fixture")
	}
	// Journaled without patient data.
	for _, kind := range []string{"manifest.built", "keyimages.flagged"} {
		evs := journalKinds(t, data, kind)
		if len(evs) == 0 {
			t.Errorf("no %s event journaled", kind)
		}
		for _, ev := range evs {
			if ev.User == "" || ev.StudyUID != study || ev.SOPInstanceUID == "" || strings.Contains(ev.Reason, "Martin") {
				t.Errorf("%s event %+v", kind, ev)
			}
		}
	}
}

// TestKOSRouteStable: a stable route with kos: true forwards the study to
// a dcmtk storescp and then its manifest; the manifest received is the
// one the API gives afterwards (unchanged study: 200, same SOP).
func TestKOSRouteStable(t *testing.T) {
	data := t.TempDir()
	admin := createToken(t, data, "admin1", "admin")
	scp := rtStartSCP(t, "SITEA", 0)
	s := startServer(t, data, fmt.Sprintf(`
destinations:
  site-a: {dicom: {ae: SITEA, host: 127.0.0.1, port: %d}}
organisations:
  ch-a: {finess: "750000001", name: "CH A", patient_id_oid: "1.2.250.1.999.1.1", accession_oid: "1.2.250.1.999.1.2"}
sites:
  site-a: {organisation: ch-a, calling_aes: [CT_URG]}
routes:
  - name: back-to-site
    stable_after: 1s
    kos: true
    forward: [site-a]
    coerce: {prefix: {PatientID: "SITEA-"}}
`, scp.port))
	study, files, series := kosStudy(t, "IPP50", 2, 2)
	rtStorescu(t, s, files)
	want := map[string]string{}
	for _, sops := range series {
		for _, sop := range sops {
			want[sop] = sop
		}
	}
	got := scp.waitReceived(t, want, 60*time.Second)
	// The manifest follows the images.
	var kosFile string
	deadline := time.Now().Add(30 * time.Second)
	for kosFile == "" {
		for sop, fs := range scp.received(t) {
			if _, img := want[sop]; img {
				continue
			}
			if len(fs) != 1 {
				t.Errorf("manifest %s received %d times", sop, len(fs))
			}
			kosFile = fs[0]
		}
		if kosFile == "" && time.Now().After(deadline) {
			t.Fatalf("no manifest received after 30 s:\n%s", s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for sop, fs := range got {
		if len(fs) != 1 {
			t.Errorf("%s received %d times", sop, len(fs))
		}
		// The route's coercion applies to the images and to the manifest.
		if d, err := dcmtk(t, "dcmdump", "+P", "PatientID", fs[0]); err != nil || !strings.Contains(d, "[SITEA-IPP50]") {
			t.Errorf("image %s received with %s", sop, d)
		}
	}
	dump, err := dcmtk(t, "dcmdump", kosFile)
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, dump)
	}
	// The site's issuers complete what the images lack: the accession
	// number's (in the Referenced Request Sequence too) and the local
	// patient id's.
	if n := strings.Count(dump, "(0040,0032) UT [1.2.250.1.999.1.2]"); n != 2 {
		t.Errorf("dcmdump: the accession issuer appears %d times, want 2 (study, request)", n)
	}
	for _, w := range []string{"(0008,0016) UI =KeyObjectSelectionDocumentStorage", "(0008,0100) SH [113030]", "(0008,0104) LO [Manifest]", "(0008,0060) CS [KO]", study,
		"(0040,a370) SQ", "(0008,0050) SH [ACC42]", "(0010,0020) LO [SITEA-IPP50]", "(0040,0032) UT [1.2.250.1.999.1.1]", "(0010,1002) SQ", "(0010,0020) LO [248127512345678]"} {
		if !strings.Contains(dump, w) {
			t.Errorf("dcmdump of the received manifest lacks %q:\n%s", w, dump)
		}
	}
	kosCheck(t, kosFile)
	if n := strings.Count(kosDump(t, kosFile), "<contains IMAGE:"); n != 4 {
		t.Errorf("received manifest references %d instances, want 4", n)
	}
	_, meta, _ := testdicom.DatasetOf(kosFile)
	code, b, _ := kosHTTP(t, "POST", fmt.Sprintf("http://127.0.0.1:%d/api/studies/%s/manifest", s.httpPort, study), admin, "", "")
	var m kosAnswer
	if code != http.StatusOK || json.Unmarshal(b, &m) != nil || m.SOP != meta.MediaStorageSOPInstanceUID || m.Created {
		t.Errorf("POST manifest after the route built it: %d %s (received %s)", code, b, meta.MediaStorageSOPInstanceUID)
	}
	if evs := journalKinds(t, data, "manifest.built"); len(evs) < 1 || evs[0].User != "route:back-to-site" {
		t.Errorf("manifest.built events %+v", evs)
	}
}
