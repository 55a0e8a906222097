package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/report"
	"github.com/relais-health/relais/worklist"
)

// The night rota: Dr Claire Martin (user cmartin) on call every night
// 20:00–08:00 (Paris); Dr Dubois (pdubois) is in the directory, not on call.
const worklistICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//relais test//EN\r\n" +
	"BEGIN:VEVENT\r\nUID:pds-nuit\r\nDTSTART;TZID=Europe/Paris:20261101T200000\r\nDTEND;TZID=Europe/Paris:20261102T080000\r\n" +
	"RRULE:FREQ=DAILY\r\nSUMMARY:PDS nuit imagerie\r\nATTENDEE;CN=Dr Claire Martin:mailto:cmartin@telerad.example\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

// worklistNight is the injected clock: a Tuesday, 03:00 in Paris.
const worklistNight = "2026-11-24T03:00:00+01:00"

func worklistConfig(t *testing.T, nordPort, pacsPort int, webhook string) string {
	ics := filepath.Join(t.TempDir(), "pds.ics")
	if err := os.WriteFile(ics, []byte(worklistICS), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`ae_title: RELAIS
destinations:
  nord-pacs: {dicom: {ae: NORDPACS, host: 127.0.0.1, port: %d}}
  pacs: {dicom: {ae: PACS, host: 127.0.0.1, port: %d}}
routing:
  retry_initial: 200ms
  retry_max: 1s
calendars:
  pds: {ics: %s}
routes:
  - name: stroke
    when: Modality == "CT" && stroke()
    priority: STAT
    mode: immediate
    forward: [pacs]
    ready: true
    pool: pds
  - name: routine
    priority: ROUTINE
    mode: immediate
    forward: [pacs]
    ready: true
    reader: cmartin
worklist:
  sla:
    STAT: {claim: 3s, report: 1h}
  escalate_before: 2s
  escalation_webhook: %s
  check: 100ms
organisations:
  teleradio: {finess: "%s", name: "Téléradiologie Relais"}
  ch-nord: {finess: "%s", name: "CH Nord", patient_id_oid: "%s", accession_oid: "%s"}
professionals:
  dr-martin: {user: cmartin, rpps: "%s", prefix: "Dr", given: "Claire", family: "MARTIN", organisation: teleradio}
  dr-dubois: {user: pdubois, rpps: "10009876543", prefix: "Dr", given: "Paul", family: "DUBOIS", organisation: teleradio}
sites:
  ch-nord: {organisation: ch-nord, calling_aes: [CT_NORD], report_destinations: [nord-pacs], ins_status: QUAL}
reports:
  custodian: teleradio
  document_oid: "1.2.250.1.999.9"
`, nordPort, pacsPort, ics, webhook, custodianFINESS, nordFINESS, nordIPPOID, nordAccOID, reportRPPS)
}

// wlAPI calls the worklist API and decodes its JSON answer into v.
func wlAPI(t *testing.T, s *server, token, method, path, body string, v any) int {
	t.Helper()
	rq, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rq.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		rq.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	if resp.StatusCode/100 != 2 {
		t.Logf("%s %s: HTTP %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode
}

func wlCLI(t *testing.T, s *server, token string, args ...string) (string, string, int) {
	t.Helper()
	return runRelais(t, append(append([]string{"worklist"}, args...), "--server", fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), "--token", token)...)
}

// awaitItem polls the item of study until ok says so.
func awaitItem(t *testing.T, s *server, token, study string, within time.Duration, ok func(*worklist.Item) bool) *worklist.Item {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *worklist.Item
	for time.Now().Before(deadline) {
		var lr worklist.ListResponse
		wlAPI(t, s, token, "GET", "/api/worklist?state=all", "", &lr)
		for _, it := range lr.Items {
			if it.StudyUID == study {
				last = it
				if ok(it) {
					return it
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("worklist item of %s not as expected within %s; last seen: %+v", study, within, last)
	return nil
}

func routineStudy(t *testing.T, dir string) (string, []string) {
	t.Helper()
	study, series := testdicom.UID(), testdicom.UID()
	var files []string
	for i := 1; i <= 2; i++ {
		c := &testdicom.CT{PatientName: "MARTIN^Paul", PatientID: "IPP555", StudyUID: study, SeriesUID: series, SOPUID: testdicom.UID(),
			AccessionNumber: "ACC-R1", StudyDescription: "SCANNER THORAX", Instance: i}
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("routine-%d.dcm", i))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return study, files
}

// TestWorklistStrokeAtNight: at "night" (RELAIS_CLOCK), a STAT stroke CT
// routed in immediate mode to pool pds goes to the reader on call, above
// an older ROUTINE item; another radiologist's claim is refused; not
// claimed within its 3 s SLA, it escalates before the deadline (API,
// journal, webhook); claimed, reported and signed, it ends returned once
// the report reached the site's PACS.
func TestWorklistStrokeAtNight(t *testing.T) {
	needTool(t, "storescu")
	t.Setenv("RELAIS_CLOCK", worklistNight)
	nord := startStorescp(t, "NORDPACS")
	pacs := startStorescp(t, "PACS")
	var hookMu sync.Mutex
	var hooks []worklist.Escalation
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e worklist.Escalation
		json.NewDecoder(r.Body).Decode(&e)
		hookMu.Lock()
		hooks = append(hooks, e)
		hookMu.Unlock()
	}))
	defer hook.Close()
	data := t.TempDir()
	martin := createToken(t, data, "cmartin", "radiologist")
	dubois := createToken(t, data, "pdubois", "radiologist")
	admin := createToken(t, data, "admin", "admin")
	s := startServer(t, data, worklistConfig(t, nord.port, pacs.port, hook.URL))
	if !strings.Contains(s.logs(), "RELAIS_CLOCK IS SET") {
		t.Fatalf("no loud warning about the injected clock:\n%s", s.logs())
	}
	host, port := s.hostPort()
	fx := t.TempDir()

	// An older ROUTINE study first.
	routine, rfiles := routineStudy(t, fx)
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_NORD", "-aec", "RELAIS", host, port}, rfiles...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	ri := awaitItem(t, s, martin, routine, 10*time.Second, func(*worklist.Item) bool { return true })
	if ri.Priority != "ROUTINE" || ri.Reader != "cmartin" {
		t.Fatalf("routine item: %+v", ri)
	}

	// The stroke CT at 03:00.
	stat, sfiles := reportStudy(t, fx, "IPP123", "ACC-001", reportINS, 3)
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_NORD", "-aec", "RELAIS", host, port}, sfiles...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	acked := time.Now()
	si := awaitItem(t, s, martin, stat, 10*time.Second, func(*worklist.Item) bool { return true })
	t.Logf("STAT item on the worklist %s after storescu finished", time.Since(acked).Round(time.Millisecond))
	night, _ := time.Parse(time.RFC3339, worklistNight)
	if si.Priority != "STAT" || si.Reader != "cmartin" || si.Pool != "pds" || si.State != worklist.Scheduled ||
		si.Accession != "ACC-001" || si.Site != "ch-nord" || si.Instances != 3 || !slices.Contains(si.Modalities, "CT") ||
		si.ReadyAt.Before(night) || si.ReadyAt.After(night.Add(time.Minute)) {
		t.Fatalf("STAT item: %+v; want STAT for cmartin (on call at night in pool pds), ACC-001, site ch-nord, ready at the injected night", si)
	}
	var mine worklist.ListResponse
	wlAPI(t, s, martin, "GET", "/api/worklist?reader=me", "", &mine)
	if len(mine.Items) != 2 || mine.Items[0].StudyUID != stat || mine.Items[1].StudyUID != routine || mine.Counts["scheduled"] != 2 {
		t.Fatalf("cmartin's worklist: %+v counts %v; want the STAT stroke CT first, above the older ROUTINE item", mine.Items, mine.Counts)
	}
	if code := wlAPI(t, s, dubois, "POST", "/api/worklist/"+si.ID+"/claim", "", nil); code != http.StatusConflict {
		t.Fatalf("claim by another radiologist: HTTP %d, want 409", code)
	}

	// Not claimed: it escalates before its 3 s claim deadline.
	late := awaitItem(t, s, martin, stat, 10*time.Second, func(it *worklist.Item) bool { return it.Late })
	if late.Overdue || !slices.Equal(late.Escalated, []string{"claim"}) {
		t.Fatalf("first seen late: overdue %v, escalated %v; want escalated for the claim before the deadline", late.Overdue, late.Escalated)
	}
	var lateOnly worklist.ListResponse
	wlAPI(t, s, martin, "GET", "/api/worklist?late=true", "", &lateOnly)
	if len(lateOnly.Items) != 1 || lateOnly.Items[0].ID != si.ID {
		t.Fatalf("late=true: %+v", lateOnly.Items)
	}
	out, errs, code := runRelais(t, "journal", "--data", data, "--kind", "worklist.escalated", "--json")
	if code != 0 {
		t.Fatalf("relais journal: %s", errs)
	}
	var ev journal.Event
	if err := json.Unmarshal([]byte(strings.SplitN(strings.TrimSpace(out), "\n", 2)[0]), &ev); err != nil || ev.StudyUID != stat ||
		!strings.Contains(ev.Reason, "STAT claim not done") || !strings.Contains(ev.Reason, "(in ") {
		t.Fatalf("relais journal --kind worklist.escalated: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hookMu.Lock()
		n := len(hooks)
		hookMu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the escalation webhook was not called")
		}
		time.Sleep(50 * time.Millisecond)
	}
	hookMu.Lock()
	if h := hooks[0]; h.Activity != "claim" || h.Item == nil || h.Item.StudyUID != stat {
		t.Fatalf("webhook payload: %+v", h)
	}
	hookMu.Unlock()
	awaitItem(t, s, martin, stat, 10*time.Second, func(it *worklist.Item) bool { return it.Overdue })
	if v := s.metric(t, "relais_worklist_escalations_total"); v < 1 {
		t.Fatalf("relais_worklist_escalations_total = %v", v)
	}

	// The CLI: list, claim.
	out, errs, code = wlCLI(t, s, martin, "list", "--reader", "me")
	if code != 0 || !strings.Contains(out, si.ID) || !strings.Contains(out, "OVERDUE") || strings.Index(out, si.ID) > strings.Index(out, ri.ID) {
		t.Fatalf("relais worklist list: exit %d %s\n%s", code, errs, out)
	}
	t.Logf("relais worklist list --reader me:\n%s", out)
	out, errs, code = wlCLI(t, s, martin, "claim", si.ID)
	if code != 0 || !strings.Contains(out, "in-progress") {
		t.Fatalf("relais worklist claim: exit %d %s\n%s", code, errs, out)
	}
	if _, errs, code := wlCLI(t, s, dubois, "claim", si.ID); code == 0 || !strings.Contains(errs, "409") {
		t.Fatalf("relais worklist claim of a claimed item: exit %d %s; want 409", code, errs)
	}

	// Sign the report: reported, then returned once delivered to the site.
	r := reportJSON(t, s, martin, "create", "--study", stat,
		"--clinical-information", "Déficit brachio-facial gauche depuis 1 h.", "--request-reason", "Suspicion d'AVC ischémique",
		"--technique", "Scanner cérébral sans injection.", "--findings", "Pas de saignement.", "--conclusion", "Pas d'hémorragie.")
	signed := reportJSON(t, s, martin, "sign", r.ID)
	if signed.State != report.Signed || len(signed.Versions) != 1 {
		t.Fatalf("signed: %+v", signed)
	}
	awaitSOP(t, nord.dir, signed.Versions[0].Documents[0].SOPInstanceUID, 15*time.Second)
	done := awaitItem(t, s, martin, stat, 15*time.Second, func(it *worklist.Item) bool { return it.State == worklist.Returned })
	if done.ReportID != r.ID {
		t.Fatalf("returned item links report %q, want %q", done.ReportID, r.ID)
	}
	for _, k := range []string{"worklist.created", "worklist.assigned", "worklist.claimed", "worklist.escalated", "worklist.overdue", "worklist.reported", "worklist.returned"} {
		if evs := journalKinds(t, data, k); len(evs) == 0 {
			t.Errorf("no %s in the journal", k)
		}
	}
	if evs := journalKinds(t, data, "worklist.claimed"); evs[len(evs)-1].User != "cmartin" {
		t.Errorf("claim journaled for %q", evs[len(evs)-1].User)
	}

	// Cancel the routine item (the assigned radiologist, with a reason); a
	// reader who is not assigned cannot.
	if _, errs, code := wlCLI(t, s, dubois, "cancel", ri.ID, "--reason", "doublon"); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("cancel by a radiologist not assigned: exit %d %s", code, errs)
	}
	if _, errs, code := wlCLI(t, s, martin, "cancel", ri.ID); code == 0 || !strings.Contains(errs, "reason") {
		t.Fatalf("cancel without a reason: exit %d %s", code, errs)
	}
	if out, errs, code := wlCLI(t, s, martin, "cancel", ri.ID, "--reason", "examen en double"); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: exit %d %s %s", code, errs, out)
	}
	var all worklist.ListResponse
	wlAPI(t, s, admin, "GET", "/api/worklist?state=all", "", &all)
	if all.Counts["returned"] != 1 || all.Counts["cancelled"] != 1 || len(all.Items) != 2 {
		t.Fatalf("counts %v, %d items; want 1 returned, 1 cancelled, both kept", all.Counts, len(all.Items))
	}

	// Durable: a kill -9 and a restart keep everything.
	s.kill9()
	s.start()
	var after worklist.Item
	if code := wlAPI(t, s, martin, "GET", "/api/worklist/"+si.ID, "", &after); code != 200 || after.State != worklist.Returned || after.ReportID != r.ID {
		t.Fatalf("after kill -9: HTTP %d %+v", code, after)
	}
	if code := wlAPI(t, s, martin, "GET", "/api/worklist/"+ri.ID, "", &after); code != 200 || after.State != worklist.Cancelled || after.CancelReason != "examen en double" {
		t.Fatalf("after kill -9: HTTP %d %+v", code, after)
	}
}
