package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
)

// e2eDir is the Playwright project of the web app (playwright-core pinned
// in its lockfile; `npm ci` there, as .ci/run does).
const e2eDir = "../../webapp/testdata/e2e"

// TestWebAppE2E drives the web app in Debian's chromium (playwright-core,
// headless) against relais serve at "night" (RELAIS_CLOCK 03:00, a
// Tuesday), with a stroke route (immediate, STAT, ready) whose pool is an
// iCalendar rota naming the radiologist on call, and a storescp as the
// sending site's report destination. Users are created with `relais user
// add`: a requester of the site, the radiologist, an administrator.
//
//  1. The requester logs in (its home is its site's requests, not the
//     worklist) and records the request with the patient's consent through
//     the form, before the images.
//  2. The stroke CT (500 instances of 512×512 by default, from the bench
//     generator; RELAIS_E2E_INSTANCES changes it) arrives with storescu from
//     the site's CT: the request shows linked; the requester cannot open
//     another site's study (not found, no pixels).
//  3. The radiologist: an unauthenticated browser gets only the login page;
//     logs in, finds the stroke study at the top of the worklist, assigned
//     by the rota, above a routine study that arrived earlier; opens it
//     (first-image time measured), sees the request and the consent beside
//     the images, scrolls the stack, applies window presets, measures,
//     flags a key image, writes a report from the stroke template and signs
//     it; the CDA reaches the site's storescp and the worklist item ends
//     returned (live, through the SSE stream).
//  4. The administrator sees the destination healthy, the rota, adds and
//     disables a user, finds the signature in the journal and exports it
//     as CSV.
//
// Screenshots of each step go to RELAIS_ARTIFACTS (default
// webapp/testdata/e2e/artifacts). chromium and node are required (never
// skipped).
func TestWebAppE2E(t *testing.T) {
	nodeBin, chromium, artifacts := browserTools(t)
	var err error
	n := 500
	if v := os.Getenv("RELAIS_E2E_INSTANCES"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 12 {
			t.Fatalf("RELAIS_E2E_INSTANCES=%q: want a number ≥ 12", v)
		}
	}

	// The study: the bench generator's head phantom, sent by the CT of
	// CH Nord (its calling AE makes it the site's study).
	fx := t.TempDir()
	start := time.Now()
	gen := exec.Command("go", "run", "../../bench/gendata", "-out", fx, "-n", strconv.Itoa(n))
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gendata: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(fx, "*.dcm"))
	if len(files) != n {
		t.Fatalf("gendata wrote %d files, want %d", len(files), n)
	}
	study := studyUIDOfFile(t, files[0])
	t.Logf("generated %d instances in %s", n, time.Since(start).Round(time.Millisecond))

	nord := startStorescp(t, "NORDPACS")
	data := t.TempDir()
	const password = "nuit-de-garde-2026"
	const reqPassword = "demande-ch-nord-2026"
	const adminPassword = "administrateur-2026"
	for _, u := range []struct{ name, role, pw string }{{"cmartin", "radiologist", password}, {"urgnord", "requester", reqPassword}, {"root", "admin", adminPassword}} {
		pwFile := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pwFile, []byte(u.pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, errs, code := runRelais(t, "user", "add", u.name, "--role", u.role, "--password-file", pwFile, "--data", data); code != 0 {
			t.Fatalf("user add %s: exit %d: %s", u.name, code, errs)
		}
	}
	if out, _, code := runRelais(t, "user", "list", "--data", data); code != 0 || !strings.Contains(out, "cmartin") || strings.Contains(out, password) {
		t.Fatalf("user list: exit %d: %s", code, out)
	}
	// Night: the rota names cmartin on call (20:00-08:00 every day).
	t.Setenv("RELAIS_CLOCK", worklistNight)
	ics := filepath.Join(t.TempDir(), "pds.ics")
	if err := os.WriteFile(ics, []byte(worklistICS), 0o600); err != nil {
		t.Fatal(err)
	}
	// Routes put the studies on the worklist (immediate mode): the stroke
	// protocol STAT for the pool on call, anything else ROUTINE for cmartin.
	// urgnord is a requester of CH Nord, whose CT is CT_NORD; CH Sud's is
	// CT_SUD.
	cfg := strings.Replace(reportConfig(nord.port, freePort(t)), "users: [ch-nord]", "users: [ch-nord, urgnord]", 1) + `calendars:
  pds: {ics: ` + ics + `}
routes:
  - {name: stroke, when: 'Modality == "CT" && stroke("(?i)HEAD WITHOUT CONTRAST")', priority: STAT, mode: immediate, ready: true, pool: pds}
  - {name: routine, priority: ROUTINE, mode: immediate, ready: true, reader: cmartin}
`
	s := startServer(t, data, cfg)
	host, port := s.hostPort()
	// A routine study arrives first; the STAT one must still be on top.
	routine, routineFiles := reportStudy(t, t.TempDir(), "IPP555", "ACC-R1", "", 2)
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_NORD", "-aec", "RELAIS", host, port}, routineFiles...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	// Another site's study: the requester of CH Nord cannot open it.
	other, otherFiles := reportStudy(t, t.TempDir(), "IPP-SUD-1", "ACC-S1", "", 2)
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_SUD", "-aec", "RELAIS", host, port}, otherFiles...)...); err != nil {
		t.Fatalf("storescu (CT_SUD): %v\n%s", err, out)
	}
	// A JPEG baseline study: the viewer falls back to /rendered. Same
	// patient ID as the CT: it is its prior.
	jpegStudy, rawFiles := reportStudy(t, t.TempDir(), "BENCH0001", "ACC-J1", "", 3)
	var jpegFiles []string
	for _, f := range rawFiles {
		out := strings.TrimSuffix(f, ".dcm") + "-jpeg.dcm"
		if o, err := dcmtk(t, "dcmcjpeg", "+eb", "+Wm", f, out); err != nil {
			t.Fatalf("dcmcjpeg: %v\n%s", err, o)
		}
		jpegFiles = append(jpegFiles, out)
	}
	if out, err := dcmtk(t, "storescu", append([]string{"-xy", "-aet", "CT_NORD", "-aec", "RELAIS", host, port}, jpegFiles...)...); err != nil {
		t.Fatalf("storescu (JPEG): %v\n%s", err, out)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	browserEnv := append(os.Environ(), "RELAIS_URL="+base, "RELAIS_USER=cmartin", "RELAIS_PASSWORD="+password,
		"RELAIS_REQUESTER=urgnord", "RELAIS_REQUESTER_PASSWORD="+reqPassword, "RELAIS_ADMIN=root", "RELAIS_ADMIN_PASSWORD="+adminPassword,
		"RELAIS_STUDY="+study, "RELAIS_ROUTINE_STUDY="+routine, "RELAIS_OTHER_STUDY="+other, "RELAIS_WITH_REQUEST=1", "RELAIS_JPEG_STUDY="+jpegStudy,
		"RELAIS_ARTIFACTS="+artifacts, "CHROMIUM="+chromium)
	e2eStart := time.Now()

	// 1. The requester records the request, with consent, before the images.
	var first struct {
		Steps []struct {
			Name string `json:"name"`
			Ms   int    `json:"ms"`
		} `json:"steps"`
		RequestID string `json:"requestID"`
	}
	runBrowser(t, nodeBin, append(browserEnv, "RELAIS_PHASE=request"), &first)
	for _, st := range first.Steps {
		t.Logf("step %-20s %5d ms", st.Name, st.Ms)
	}
	if first.RequestID == "" {
		t.Fatalf("no request recorded: %+v", first)
	}

	// 2. The stroke CT arrives from the site's CT at night.
	start = time.Now()
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_NORD", "-aec", "RELAIS", host, port}, files...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	t.Logf("stored %d instances in %s", n, time.Since(start).Round(time.Millisecond))

	var res struct {
		Steps []struct {
			Name string `json:"name"`
			Ms   int    `json:"ms"`
		} `json:"steps"`
		FirstImageMs        float64  `json:"firstImageMs"`
		AppFirstImageMs     float64  `json:"appFirstImageMs"`
		ColdAppFirstImageMs float64  `json:"coldAppFirstImageMs"`
		Instances           int      `json:"instances"`
		KeyImageStatus      int      `json:"keyImageStatus"`
		ReportState         string   `json:"reportState"`
		ReportID            string   `json:"reportID"`
		Notices             []string `json:"notices"`
		Measure             string   `json:"measure"`
		RequestLinked       bool     `json:"requestLinked"`
		Destination         string   `json:"destination"`
		CSVStatus           int      `json:"csvStatus"`
		Error               string   `json:"error"`
	}
	runBrowser(t, nodeBin, append(browserEnv, "RELAIS_REQUEST_ID="+first.RequestID, "RELAIS_PHASE=main"), &res)
	t.Logf("browser runs took %s in all; screenshots in %s", time.Since(e2eStart).Round(time.Millisecond), artifacts)
	for _, st := range res.Steps {
		t.Logf("step %-20s %5d ms", st.Name, st.Ms)
	}
	t.Logf("first image of the %d-instance CT: %.0f ms from the click (app: %.0f ms; first cold open after login: %.0f ms); target < 1500 ms",
		res.Instances, res.FirstImageMs, res.AppFirstImageMs, res.ColdAppFirstImageMs)
	t.Logf("measure %s; key image %d; report %s (%s), notices %q", res.Measure, res.KeyImageStatus, res.ReportID, res.ReportState, res.Notices)
	t.Logf("request %s linked %v; destination %q; journal CSV %d", first.RequestID, res.RequestLinked, res.Destination, res.CSVStatus)
	if res.Instances != n || res.KeyImageStatus != 201 || res.ReportState != "signé" || !res.RequestLinked || res.CSVStatus != 200 {
		t.Fatalf("results %+v", res)
	}
	if n >= 500 && res.ColdAppFirstImageMs > 1500 {
		t.Errorf("first image after %.0f ms, over the 1.5 s target", res.ColdAppFirstImageMs)
	}

	// The signed report reached the site's PACS as Encapsulated CDA.
	admin := createToken(t, data, "check", "admin")
	req, _ := http.NewRequest("GET", base+"/api/reports/"+res.ReportID, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rep struct {
		State    string `json:"state"`
		Versions []struct {
			Documents []struct {
				SOPInstanceUID string `json:"sop_instance_uid"`
			} `json:"documents"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.State != "signed" || len(rep.Versions) != 1 || len(rep.Versions[0].Documents) == 0 {
		t.Fatalf("report %s: %s", res.ReportID, b)
	}
	for _, d := range rep.Versions[0].Documents {
		f := awaitSOP(t, nord.dir, d.SOPInstanceUID, 20*time.Second)
		if doc := encapsulatedDocument(t, f); !bytes.Contains(doc, []byte("ClinicalDocument")) || !bytes.Contains(doc, []byte("ASPECTS")) {
			t.Errorf("%s: not the CDA of the report written in the browser", f)
		}
	}
	// The journal has each user's actions with the user (and, for logins
	// and logouts, the address): the requester's request, login and
	// refusal, the radiologist's logins, key image and signature, the
	// administrator's changes and export.
	by := func(kind, who string) *journal.Event {
		for _, ev := range journalKinds(t, data, kind) {
			if ev.User == who {
				return ev
			}
		}
		return nil
	}
	for _, c := range []struct{ kind, who string }{
		{"auth.login", "cmartin"}, {"auth.login_failed", "cmartin"}, {"auth.logout", "cmartin"}, {"keyimages.flagged", "cmartin"},
		{"report.signed", "cmartin"}, {"dicomweb.frames", "cmartin"},
		{"auth.login", "urgnord"}, {"request.created", "urgnord"}, {"dicomweb.denied", "urgnord"},
		{"auth.login", "root"}, {"user.added", "root"}, {"user.disabled", "root"}, {"journal.exported", "root"},
	} {
		ev := by(c.kind, c.who)
		if ev == nil {
			t.Errorf("no %s by %s in the journal", c.kind, c.who)
		} else if strings.HasPrefix(c.kind, "auth.") && ev.Addr == "" {
			t.Errorf("%s by %s without the address", c.kind, c.who)
		}
	}
}

// browserTools finds node, chromium and playwright-core (required: the
// test fails without them) and the screenshots' directory.
func browserTools(t *testing.T) (nodeBin, chromium, artifacts string) {
	t.Helper()
	needTool(t, "storescu")
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: apt-get install nodejs npm (.ci/run does)")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium not found at %s: apt-get install chromium (.ci/run does)", chromium)
	}
	if _, err := os.Stat(filepath.Join(e2eDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is not installed: run npm ci in webapp/testdata/e2e (.ci/run does)")
	}
	artifacts = os.Getenv("RELAIS_ARTIFACTS")
	if artifacts == "" {
		artifacts, _ = filepath.Abs(filepath.Join(e2eDir, "artifacts"))
	}
	return nodeBin, chromium, artifacts
}

// TestWebAppAdminQueues drives the admin area against a node whose
// routing admin API takes the browser's session (http.auth: none): the
// dry-run tester on a stored study (which rule applies and why), then the
// delivery tasks of a destination that is down: one retried, one
// rerouted to a PACS (storescp, where it arrives), one cancelled with a
// reason (journaled).
func TestWebAppAdminQueues(t *testing.T) {
	nodeBin, chromium, artifacts := browserTools(t)
	pacs := startStorescp(t, "PACSY")
	data := t.TempDir()
	const adminPassword = "administrateur-2026"
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600)
	if _, errs, code := runRelais(t, "user", "add", "root", "--role", "admin", "--password-file", pwFile, "--data", data); code != 0 {
		t.Fatalf("user add: %s", errs)
	}
	s := startServer(t, data, fmt.Sprintf(`http: {auth: none}
destinations:
  down: {dicom: {ae: DOWN, host: 127.0.0.1, port: %d}}
  pacs: {dicom: {ae: PACSY, host: 127.0.0.1, port: %d}}
routing: {retry_initial: 30s, retry_max: 1m}
routes:
  - {name: ct, when: 'Modality == "CT"', mode: immediate, forward: [down], priority: URGENT}
  - {name: other, forward: [pacs]}
`, freePort(t), pacs.port))
	host, port := s.hostPort()
	study, files := reportStudy(t, t.TempDir(), "IPP-Q1", "ACC-Q1", "", 3)
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_X", "-aec", "RELAIS", host, port}, files...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	var res struct {
		Rerouted  string `json:"rerouted"`
		Cancelled string `json:"cancelled"`
	}
	runBrowser(t, nodeBin, append(os.Environ(), fmt.Sprintf("RELAIS_URL=http://127.0.0.1:%d", s.httpPort), "RELAIS_ADMIN=root", "RELAIS_ADMIN_PASSWORD="+adminPassword,
		"RELAIS_STUDY="+study, "RELAIS_ARTIFACTS="+artifacts, "CHROMIUM="+chromium, "RELAIS_PHASE=admin-queues"), &res)
	if res.Rerouted == "" || res.Cancelled == "" {
		t.Fatalf("results %+v", res)
	}
	// The rerouted task's instance reached the PACS.
	var task struct {
		SOP   string `json:"sop"`
		State string `json:"state"`
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/queue/tasks/%s", s.httpPort, res.Rerouted))
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&task)
		resp.Body.Close()
		if task.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rerouted task %s: %+v", res.Rerouted, task)
		}
	}
	awaitSOP(t, pacs.dir, task.SOP, 10*time.Second)
	for _, kind := range []string{"delivery.retried", "delivery.rerouted", "delivery.cancelled"} {
		if len(journalKinds(t, data, kind)) == 0 {
			t.Errorf("no %s in the journal", kind)
		}
	}
}

// runBrowser runs one phase of run.mjs and decodes its JSON result line
// into res.
func runBrowser(t *testing.T, nodeBin string, env []string, res any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "run.mjs")
	cmd.Dir = e2eDir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("browser run (%s) took %s", env[len(env)-1], time.Since(start).Round(time.Millisecond))
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), res); jerr != nil || runErr != nil {
		t.Fatalf("browser run: %v (results: %v)\nstdout:\n%s\nstderr:\n%s", runErr, jerr, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("browser stderr:\n%s", stderr.String())
	}
}

// studyUIDOfFile reads the Study Instance UID of a Part 10 file.
func studyUIDOfFile(t *testing.T, f string) string {
	t.Helper()
	ds, _, err := testdicom.DatasetOf(f)
	if err != nil {
		t.Fatal(err)
	}
	// (0020,000D) UI, explicit VR little endian: tag, "UI", 2-byte length.
	i := bytes.Index(ds, []byte{0x20, 0x00, 0x0D, 0x00, 'U', 'I'})
	if i < 0 {
		t.Fatalf("%s: no Study Instance UID", f)
	}
	l := int(ds[i+6]) | int(ds[i+7])<<8
	return strings.TrimRight(string(ds[i+8:i+8+l]), "\x00 ")
}

// TestWebAppLoginAndCSRF checks the web app's access rules over plain
// HTTP against relais serve: everything under /app but the login page
// sends to the login page, the APIs answer 401 without a session, a
// session works like a token of the user's role, and a state-changing
// request with the cookie needs the CSRF header.
func TestWebAppLoginAndCSRF(t *testing.T) {
	data := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("mot-de-passe-long\n"), 0o600)
	if _, errs, code := runRelais(t, "user", "add", "req1", "--role", "requester", "--password-file", pwFile, "--data", data); code != 0 {
		t.Fatalf("user add: %s", errs)
	}
	if _, errs, code := runRelais(t, "user", "add", "weak", "--role", "requester", "--password-env", "RELAIS_NO_SUCH_VAR", "--data", data); code == 0 || !strings.Contains(errs, "RELAIS_NO_SUCH_VAR") {
		t.Fatalf("user add without the variable: exit %d %s", code, errs)
	}
	s := startServer(t, data, "")
	base := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"/": 303, "/app/": 303, "/app/study/1.2.3": 303, "/app/static/app.js": 303,
		"/app/static/login.css": 200, "/app/login": 200, "/app/api/session": 401, "/api/reports": 401, "/dicom-web/studies": 401} {
		resp, err := noRedirect.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a session: %d, want %d", path, resp.StatusCode, want)
		}
		if want == 303 && path != "/" && !strings.HasPrefix(resp.Header.Get("Location"), "/app/login?next=") {
			t.Errorf("GET %s: Location %q", path, resp.Header.Get("Location"))
		}
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: noRedirect.CheckRedirect}
	resp, err := c.PostForm(base+"/app/login", url.Values{"username": {"req1"}, "password": {"wrong-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("bad password: %d", resp.StatusCode)
	}
	resp, err = c.Post(base+"/app/login", "application/json", strings.NewReader(`{"username":"req1","password":"mot-de-passe-long"}`))
	if err != nil {
		t.Fatal(err)
	}
	var sess struct{ User, Role, CSRF string }
	json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if resp.StatusCode != 200 || sess.Role != "requester" || len(sess.CSRF) < 40 {
		t.Fatalf("login: %d %+v", resp.StatusCode, sess)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "relais_session" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Secure || len(cookie.Value) < 43 {
		t.Fatalf("session cookie %+v", cookie)
	}
	get := func(path string) int {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get("/dicom-web/studies"); st != 200 && st != 204 {
		t.Errorf("QIDO-RS with the session: %d", st)
	}
	if st := get("/app/static/viewer.js"); st != 200 {
		t.Errorf("asset with the session: %d", st)
	}
	post := func(path, csrf string) int {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(`{"study_instance_uid":"1.2.3"}`))
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-Relais-CSRF", csrf)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post("/api/reports", ""); st != 403 {
		t.Errorf("POST without the CSRF header: %d, want 403", st)
	}
	if st := post("/api/reports", sess.CSRF); st != 403 {
		t.Errorf("a requester creating a report: %d, want 403 (role)", st)
	}
	// Disabling the user ends the session within a second.
	if _, errs, code := runRelais(t, "user", "disable", "req1", "--data", data); code != 0 {
		t.Fatal(errs)
	}
	deadline := time.Now().Add(3 * time.Second)
	for get("/dicom-web/studies") != 401 {
		if time.Now().After(deadline) {
			t.Fatal("the disabled user's session still works")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
