package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/telerequest"
)

const requestConfig = `ae_title: RELAIS
organisations:
  teleradio: {finess: "750000001", name: "Téléradiologie Relais"}
  ch-nord: {finess: "590000001", name: "CH Nord", patient_id_oid: "1.2.250.1.999.1.1", accession_oid: "1.2.250.1.999.1.2"}
  ch-sud: {finess: "130000001", name: "CH Sud"}
professionals:
  dr-martin: {user: cmartin, rpps: "10001234567", family: MARTIN, organisation: teleradio}
reports:
  custodian: teleradio
sites:
  ch-nord: {organisation: ch-nord, calling_aes: [CT_NORD], users: [urg-nord]}
  ch-sud: {organisation: ch-sud, calling_aes: [CT_SUD], users: [urg-sud]}
requests:
  sweep_interval: 1m
`

// requestStudy writes n CT files of one study of a patient.
func requestStudy(t *testing.T, dir, name, pid, accession string, n int) (study string, files []string) {
	t.Helper()
	study, series := testdicom.UID(), testdicom.UID()
	for i := 1; i <= n; i++ {
		c := &testdicom.CT{PatientName: name, PatientID: pid, StudyUID: study, SeriesUID: series, SOPUID: testdicom.UID(),
			AccessionNumber: accession, StudyDescription: "SCANNER CEREBRAL AVC", Instance: i}
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%d.dcm", accession, i))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return study, files
}

func requestCLI(t *testing.T, s *server, token string, args ...string) (string, string, int) {
	t.Helper()
	return runRelais(t, append(append([]string{"request"}, args...), "--server", fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), "--token", token)...)
}

func requestJSON(t *testing.T, s *server, token string, args ...string) *telerequest.Request {
	t.Helper()
	out, errs, code := requestCLI(t, s, token, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("relais request %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	var r telerequest.Request
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("relais request %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return &r
}

// getRequest reads a request over the API.
func getRequest(t *testing.T, s *server, token, id string) (int, *telerequest.Request) {
	t.Helper()
	code, body, _ := kosHTTP(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/api/requests/%s", s.httpPort, id), token, "", "")
	if code != http.StatusOK {
		return code, nil
	}
	var r telerequest.Request
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("GET request %s: %v\n%s", id, err, body)
	}
	return code, &r
}

// awaitRequest polls the API until cond holds.
func awaitRequest(t *testing.T, s *server, token, id, what string, cond func(*telerequest.Request) bool) *telerequest.Request {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var r *telerequest.Request
	for time.Now().Before(deadline) {
		var code int
		if code, r = getRequest(t, s, token, id); code == http.StatusOK && cond(r) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("request %s never %s: %+v", id, what, r)
	return nil
}

func TestRequestConsentAndReconciliation(t *testing.T) {
	needTool(t, "storescu")
	data := t.TempDir()
	nord := createToken(t, data, "urg-nord", "requester")
	sud := createToken(t, data, "urg-sud", "requester")
	orphan := createToken(t, data, "urg-ouest", "requester") // in no site's users
	admin := createToken(t, data, "admin2", "admin")
	radiologist := createToken(t, data, "cmartin", "radiologist")
	modality := createToken(t, data, "ct-nord", "modality")
	s := startServer(t, data, requestConfig)
	host, port := s.hostPort()
	fx := t.TempDir()
	send := func(ae string, files []string) {
		t.Helper()
		if out, err := dcmtk(t, "storescu", append([]string{"-aet", ae, "-aec", "RELAIS", host, port}, files...)...); err != nil {
			t.Fatalf("storescu: %v\n%s", err, out)
		}
	}
	patient := []string{"--patient-name", "DUPONT", "--birth-name", "DUPONT", "--first-names", "Jeanne Marie", "--sex", "F",
		"--birth-date", "1980-01-15", "--birth-place", "75056", "--ipp", "IPP123", "--physician", "Dr Jean DURAND", "--rpps", "10009876543"}

	// Refusals first: nothing is recorded.
	if _, errs, code := requestCLI(t, s, orphan, append([]string{"create", "--question", "AVC ?", "--accession", "ACC-RQ1"}, patient...)...); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("a requester of no site: exit %d %q; want 403", code, errs)
	}
	if _, errs, code := requestCLI(t, s, modality, append([]string{"create", "--question", "AVC ?"}, patient...)...); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("a modality token: exit %d %q; want 403", code, errs)
	}
	if _, errs, code := requestCLI(t, s, nord, append([]string{"create", "--question", "AVC ?", "--ins", "184127645108947"}, patient...)...); code == 0 || !strings.Contains(errs, "400") || !strings.Contains(errs, "patient.ins") {
		t.Fatalf("a wrong INS key: exit %d %q; want 400 naming patient.ins", code, errs)
	}
	if _, errs, code := requestCLI(t, s, nord, append([]string{"create", "--question", "AVC ?", "--consent", "given", "--consent-method", "other"}, patient...)...); code == 0 || !strings.Contains(errs, "400") || !strings.Contains(errs, "consent.text") {
		t.Fatalf("consent other without text: exit %d %q; want 400", code, errs)
	}
	if out, _, _ := requestCLI(t, s, admin, "list", "--json"); !strings.Contains(out, `"requests": []`) {
		t.Fatalf("requests recorded by refused calls:\n%s", out)
	}

	// The requester records a request with consent, before the images.
	r := requestJSON(t, s, nord, append([]string{"create", "--question", "AVC ischémique ? Thrombolyse ?", "--clinical-information", "Déficit brachio-facial gauche depuis 1 h.",
		"--urgency", "STAT", "--accession", "ACC-RQ1", "--consent", "given", "--consent-method", "oral"}, patient...)...)
	if r.State != telerequest.Open || r.Site != "ch-nord" || r.Requester.User != "urg-nord" || r.Consent == nil || r.Consent.RecordedBy != "urg-nord" || r.Urgency != telerequest.STAT {
		t.Fatalf("created: %+v", r)
	}
	// One without consent yet is shown awaiting consent.
	waiting := requestJSON(t, s, nord, append([]string{"create", "--question", "Hématome ?", "--accession", "ACC-RQ4"}, patient...)...)
	if waiting.State != telerequest.AwaitingConsent || !waiting.AwaitingConsent {
		t.Fatalf("without consent: %+v", waiting)
	}
	if out, _, code := requestCLI(t, s, nord, "show", waiting.ID); code != 0 || !strings.Contains(out, "AWAITING CONSENT") {
		t.Fatalf("show of a request awaiting consent:\n%s", out)
	}

	// The study arrives from the site's CT: the request is linked.
	study1, files1 := requestStudy(t, fx, "DUPONT^Jeanne Marie", "IPP123", "ACC-RQ1", 3)
	sent := time.Now()
	send("CT_NORD", files1)
	linked := awaitRequest(t, s, nord, r.ID, "linked", func(r *telerequest.Request) bool { return r.StudyLinked })
	t.Logf("request linked %s after storescu started", time.Since(sent).Round(time.Millisecond))
	if linked.State != telerequest.Linked || linked.StudyUID != study1 || linked.LinkedBy != "auto" || !linked.ReadyForReading {
		t.Fatalf("linked: %+v", linked)
	}
	evs := journalKinds(t, data, "request.linked")
	found := false
	for _, ev := range evs {
		if ev.StudyUID == study1 && strings.Contains(ev.Reason, r.ID) {
			found = true
		}
		if strings.Contains(ev.Reason, "DUPONT") || strings.Contains(ev.Reason, "Jeanne") {
			t.Errorf("the journal's reason carries the patient's name: %q", ev.Reason)
		}
	}
	if !found {
		t.Fatalf("no request.linked event for %s and %s in %d events", r.ID, study1, len(evs))
	}
	if len(journalKinds(t, data, "request.created")) != 2 || len(journalKinds(t, data, "request.consent")) != 1 {
		t.Errorf("journal: want 2 request.created and 1 request.consent")
	}
	viewed := false
	for _, ev := range journalKinds(t, data, "request.viewed") {
		viewed = viewed || (ev.User == "urg-nord" && ev.Addr != "" && strings.Contains(ev.Reason, r.ID))
	}
	if !viewed {
		t.Error("the requester's views of the request are not journaled (request.viewed with user and address)")
	}
	if out, _, code := requestCLI(t, s, radiologist, "list", "--study", study1, "--json"); code != 0 || !strings.Contains(out, r.ID) {
		t.Fatalf("GET /api/requests?study=: %s", out)
	}

	// The report signed, the request is reported.
	rep := reportJSON(t, s, radiologist, "create", "--study", study1, "--conclusion", "AVC ischémique sylvien droit.")
	reportJSON(t, s, radiologist, "sign", rep.ID)
	reported := awaitRequest(t, s, nord, r.ID, "reported", func(r *telerequest.Request) bool { return r.Reported })
	if reported.State != telerequest.Reported {
		t.Fatalf("after the report: %s", reported.State)
	}

	// Another site's requester sees nothing of it and changes nothing.
	if code, _ := getRequest(t, s, sud, r.ID); code != http.StatusNotFound {
		t.Fatalf("another site's requester GET: %d, want 404", code)
	}
	if _, errs, code := requestCLI(t, s, sud, "cancel", r.ID, "--reason", "pas chez nous"); code == 0 || !strings.Contains(errs, "404") {
		t.Fatalf("another site's requester cancelling: exit %d %q", code, errs)
	}
	if _, errs, code := requestCLI(t, s, sud, "list", "--site", "ch-nord"); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("another site's requester listing ch-nord: exit %d %q", code, errs)
	}
	if out, _, _ := requestCLI(t, s, sud, "list", "--json"); strings.Contains(out, r.ID) {
		t.Fatalf("another site's requester lists the request:\n%s", out)
	}

	// Images first, then the request: linked at creation.
	study3, files3 := requestStudy(t, fx, "DUPONT^Jeanne Marie", "IPP123", "ACC-RQ3", 2)
	send("CT_NORD", files3)
	r3 := requestJSON(t, s, nord, append([]string{"create", "--question", "Contrôle", "--accession", "ACC-RQ3", "--consent", "given", "--consent-method", "written"}, patient...)...)
	if !r3.StudyLinked || r3.StudyUID != study3 || r3.State != telerequest.Linked {
		t.Fatalf("images first: %+v", r3)
	}

	// The accession matches but the patient clearly differs: not linked.
	r2 := requestJSON(t, s, nord, append([]string{"create", "--question", "AVC ?", "--accession", "ACC-RQ2", "--consent", "given", "--consent-method", "oral"}, patient...)...)
	study2, files2 := requestStudy(t, fx, "MARTIN^Paul", "IPP999", "ACC-RQ2", 2)
	send("CT_NORD", files2)
	r2 = awaitRequest(t, s, nord, r2.ID, "flagged for reconciliation", func(r *telerequest.Request) bool { return r.ReconciliationNeeded })
	if r2.StudyLinked || r2.State != telerequest.Open || r2.Reconciliation.StudyUID != study2 {
		t.Fatalf("a different patient: %+v", r2)
	}
	if len(journalKinds(t, data, "request.reconciliation")) == 0 {
		t.Fatal("no request.reconciliation event")
	}
	if out, _, _ := requestCLI(t, s, nord, "show", r2.ID); !strings.Contains(out, "RECONCILIATION NEEDED") {
		t.Fatalf("show does not say reconciliation is needed:\n%s", out)
	}
	if _, errs, code := requestCLI(t, s, nord, "link", r2.ID, "--study", study2); code == 0 || !strings.Contains(errs, "400") {
		t.Fatalf("link without reason: exit %d %q", code, errs)
	}
	r2 = requestJSON(t, s, admin, "link", r2.ID, "--study", study2, "--reason", "identité provisoire aux urgences, vérifiée avec le service")
	if !r2.StudyLinked || r2.LinkedBy != "admin2" || r2.ReconciliationNeeded {
		t.Fatalf("linked by hand: %+v", r2)
	}

	// Cancel: a reason is required; cancelled is final.
	if _, errs, code := requestCLI(t, s, nord, "cancel", waiting.ID); code == 0 || !strings.Contains(errs, "400") {
		t.Fatalf("cancel without reason: exit %d %q; want 400", code, errs)
	}
	code, body, _ := kosHTTP(t, "POST", fmt.Sprintf("http://127.0.0.1:%d/api/requests/%s/cancel", s.httpPort, waiting.ID), nord, "", `{}`)
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("POST cancel {}: %d %s", code, body)
	}
	c := requestJSON(t, s, nord, "cancel", waiting.ID, "--reason", "patient transféré au CHU")
	if c.State != telerequest.Cancelled {
		t.Fatalf("cancelled: %+v", c)
	}
	if got := c.History[len(c.History)-1]; got.Note != "patient transféré au CHU" || got.User != "urg-nord" {
		t.Fatalf("the cancellation in the history: %+v", got)
	}
	for _, kind := range []string{"request.cancelled", "request.linked"} {
		evs := journalKinds(t, data, kind)
		if len(evs) == 0 {
			t.Fatalf("no %s event", kind)
		}
		for _, ev := range evs {
			if strings.Contains(ev.Reason, "CHU") || strings.Contains(ev.Reason, "urgences") || strings.Contains(string(ev.Data), "CHU") {
				t.Errorf("%s journals the user's free text (may name the patient): %q", kind, ev.Reason)
			}
		}
	}
	if _, errs, code := requestCLI(t, s, nord, "consent", waiting.ID, "--status", "given", "--method", "oral"); code == 0 || !strings.Contains(errs, "409") {
		t.Fatalf("consent on a cancelled request: exit %d %q; want 409", code, errs)
	}
	if _, errs, code := requestCLI(t, s, nord, "edit", waiting.ID, "--question", "autre"); code == 0 || !strings.Contains(errs, "409") {
		t.Fatalf("edit of a cancelled request: exit %d %q; want 409", code, errs)
	}

	// Everything survives a restart.
	s.stop()
	s.start()
	if _, got := getRequest(t, s, admin, r.ID); got == nil || !got.StudyLinked || got.State != telerequest.Reported || got.Revision != reported.Revision {
		t.Fatalf("after a restart: %+v", got)
	}
	if _, got := getRequest(t, s, admin, waiting.ID); got == nil || got.State != telerequest.Cancelled || len(got.History) != 2 {
		t.Fatalf("the cancelled request after a restart: %+v", got)
	}
}

func TestServeRefusesBadRequestsConfiguration(t *testing.T) {
	for _, tc := range []struct{ yaml, key string }{
		{"requests:\n  sweep_interval: 10ms\n", "requests.sweep_interval"},
		{"requests:\n  buffer: -1\n", "requests.buffer"},
		{"requests:\n  sweep: 1m\n", "sweep"},
	} {
		p := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(relaisBin, "serve", "--config", p, "--data", t.TempDir(), "--dicom-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0").CombinedOutput()
		if err == nil {
			t.Errorf("%q: serve started", tc.yaml)
			continue
		}
		if !strings.Contains(string(out), tc.key) {
			t.Errorf("%q: the message does not name %s:\n%s", tc.yaml, tc.key, out)
		}
	}
}
