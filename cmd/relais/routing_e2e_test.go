package main

// End-to-end tests of routing with real peers: storescu → relais serve →
// dcmtk storescp.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

// rtSCP is a running dcmtk storescp.
type rtSCP struct {
	port int
	dir  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// rtStartSCP starts storescp on port (a free one if 0), writing every
// reception to its own file (+uf) so that duplicates can be counted.
func rtStartSCP(t *testing.T, aet string, port int) *rtSCP {
	t.Helper()
	needTool(t, "storescp")
	if port == 0 {
		port = freePort(t)
	}
	s := &rtSCP{port: port, dir: t.TempDir(), log: &bytes.Buffer{}}
	s.cmd = exec.Command("storescp", "--fork", "+xa", "+uf", "-aet", aet, "-od", s.dir, fmt.Sprint(port))
	s.cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	waitPort(t, port)
	return s
}

func (s *rtSCP) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// received maps SOP Instance UID → the received files (complete ones).
func (s *rtSCP) received(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		p := filepath.Join(s.dir, e.Name())
		_, meta, err := testdicom.DatasetOf(p)
		if err != nil {
			continue // being written
		}
		out[meta.MediaStorageSOPInstanceUID] = append(out[meta.MediaStorageSOPInstanceUID], p)
	}
	return out
}

// waitReceived waits until every SOP of want has arrived.
func (s *rtSCP) waitReceived(t *testing.T, want map[string]string, d time.Duration) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := s.received(t)
		missing := 0
		for sop := range want {
			if len(got[sop]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("storescp %d: %d of %d instances missing after %v", s.port, missing, len(want), d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rtStudy writes n CT slices of one study (256×256) and returns path → SOP.
func rtStudy(t *testing.T, n int, desc string) ([]string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	study, series := testdicom.UID(), testdicom.UID()
	var paths []string
	sops := map[string]string{}
	for i := 1; i <= n; i++ {
		c := &testdicom.CT{PatientName: "Route^Test", PatientID: "RT1", StudyUID: study, SeriesUID: series, SOPUID: testdicom.UID(),
			StudyDescription: desc, AccessionNumber: "A1", Instance: i, Rows: 256, Columns: 256, TransferSyntax: "1.2.840.10008.1.2.1"}
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("ct%04d.dcm", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		sops[c.SOPUID] = p
	}
	return paths, sops
}

func rtStorescu(t *testing.T, s *server, files []string) {
	t.Helper()
	h, p := s.hostPort()
	args := append(storescuProfile(t, "1.2.840.10008.1.2.1"), "-aet", "CT_URG", "-aec", "RELAIS", h, p)
	if out, err := dcmtk(t, "storescu", append(args, files...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
}

// metric reads a counter or gauge from /metrics, summed over its labels.
func (s *server) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.httpPort))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum := 0.0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
			v, _ := strconv.ParseFloat(f[1], 64)
			sum += v
		}
	}
	return sum
}

// histogramQuantiles returns the bucket bounds holding the 50th and 99th
// percentiles of a histogram from /metrics (all label sets summed).
func (s *server) histogramQuantiles(t *testing.T, name string) (string, string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	counts := map[string]float64{}
	var les []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !strings.HasPrefix(f[0], name+"_bucket{") {
			continue
		}
		i := strings.Index(f[0], `le="`)
		if i < 0 {
			continue
		}
		le := f[0][i+4 : strings.IndexByte(f[0][i+4:], '"')+i+4]
		v, _ := strconv.ParseFloat(f[1], 64)
		if _, ok := counts[le]; !ok {
			les = append(les, le)
		}
		counts[le] += v
	}
	total := counts["+Inf"]
	q := func(p float64) string {
		for _, le := range les {
			if counts[le] >= p*total {
				return le
			}
		}
		return "?"
	}
	return q(0.5), q(0.99)
}

func rtAssertIdentical(t *testing.T, got map[string][]string, sops map[string]string) {
	t.Helper()
	for sop, src := range sops {
		want, _, err := testdicom.DatasetOf(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range got[sop] {
			ds, meta, err := testdicom.DatasetOf(f)
			if err != nil {
				t.Fatal(err)
			}
			if meta.TransferSyntaxUID != "1.2.840.10008.1.2.1" || !bytes.Equal(ds, want) {
				t.Errorf("%s: received data set differs (%d bytes, %s; sent %d bytes)", sop, len(ds), meta.TransferSyntaxUID, len(want))
			}
		}
	}
}

// TestRoutingStrokeImmediate: a 200-instance stroke study is forwarded
// while it is being received; every instance arrives byte-identical.
func TestRoutingStrokeImmediate(t *testing.T) {
	scp := rtStartSCP(t, "NEURO", 0)
	local := rtStartSCP(t, "PACS", 0)
	s := startServer(t, "", fmt.Sprintf(`
destinations:
  neuro-oncall: {dicom: {ae: NEURO, host: 127.0.0.1, port: %d}, associations: 2}
  local-pacs:   {dicom: {ae: PACS, host: 127.0.0.1, port: %d}}
routes:
  - name: stroke
    when: Modality == "CT" && stroke()
    priority: STAT
    mode: immediate
    forward: [neuro-oncall]
  - name: default
    stable_after: 1s
    forward: [local-pacs]
`, scp.port, local.port))
	files, sops := rtStudy(t, 200, "SCANNER CEREBRAL ALERTE THROMBOLYSE")
	start := time.Now()
	rtStorescu(t, s, files)
	end := time.Now()
	got := scp.waitReceived(t, sops, 60*time.Second)
	first := time.Time{}
	for _, fs := range got {
		for _, f := range fs {
			if fi, err := os.Stat(f); err == nil && (first.IsZero() || fi.ModTime().Before(first)) {
				first = fi.ModTime()
			}
		}
	}
	t.Logf("storescu sent 200 instances in %v; first arrival at the destination %v after the start, %v before storescu ended",
		end.Sub(start).Round(time.Millisecond), first.Sub(start).Round(time.Millisecond), end.Sub(first).Round(time.Millisecond))
	if !first.Before(end) {
		t.Errorf("first instance reached the destination at %v, after storescu finished at %v", first, end)
	}
	rtAssertIdentical(t, got, sops)
	dups := 0
	for _, fs := range got {
		dups += len(fs) - 1
	}
	if dups != 0 {
		t.Errorf("%d duplicate deliveries without any crash", dups)
	}
	// The stroke route decided: nothing for the default route.
	time.Sleep(1500 * time.Millisecond)
	if n := len(local.received(t)); n != 0 {
		t.Errorf("default route received %d instances; the first match should decide", n)
	}
	p50, p99 := s.histogramQuantiles(t, "relais_delivery_latency_seconds")
	t.Logf("delivery latency (task created → accepted by storescp), from the histogram: p50 ≤ %vs, p99 ≤ %vs", p50, p99)
	if n := len(journalKinds(t, s.data, "route.fired")); n < 200 {
		t.Errorf("route.fired events: %d, want 200", n)
	}
}

// TestRoutingKill9: relais is killed (SIGKILL) with delivery tasks pending
// (their destination is down) and a stability timer running; after a
// restart every instance reaches every destination its rules named, and
// duplicates are counted.
func TestRoutingKill9(t *testing.T) {
	portA := freePort(t)
	b := rtStartSCP(t, "SITEB", 0)
	cfg := fmt.Sprintf(`
destinations:
  site-a: {dicom: {ae: SITEA, host: 127.0.0.1, port: %d}}
  site-b: {dicom: {ae: SITEB, host: 127.0.0.1, port: %d}}
routing: {retry_initial: 200ms, retry_max: 1s}
routes:
  - name: urgent
    when: stroke()
    mode: immediate
    priority: STAT
    forward: [site-a]
    continue: true
  - name: archive
    mode: stable
    stable_after: 4s
    forward: [site-b]
`, portA, b.port)
	data := t.TempDir()
	s := startServer(t, data, cfg)
	files, sops := rtStudy(t, 60, "AVC")
	rtStorescu(t, s, files)
	// Wait for the tasks and the timer to be persisted, then kill.
	deadline := time.Now().Add(10 * time.Second)
	for s.metric(t, "relais_routing_tasks_created_total") < 60 || s.metric(t, "relais_routing_pending_studies") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("tasks %v, pending studies %v", s.metric(t, "relais_routing_tasks_created_total"), s.metric(t, "relais_routing_pending_studies"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill9()
	if n := len(b.received(t)); n != 0 {
		t.Fatalf("the stable study fired before the kill (%d instances at site-b)", n)
	}
	a := rtStartSCP(t, "SITEA", portA)
	s.start()
	gotA := a.waitReceived(t, sops, 60*time.Second)
	gotB := b.waitReceived(t, sops, 60*time.Second)
	rtAssertIdentical(t, gotA, sops)
	rtAssertIdentical(t, gotB, sops)
	time.Sleep(time.Second) // anything more would be a duplicate
	dup := func(got map[string][]string) int {
		n := 0
		for _, fs := range got {
			n += len(fs) - 1
		}
		return n
	}
	da, db := dup(a.received(t)), dup(b.received(t))
	t.Logf("after kill -9 and restart: site-a %d/%d instances, %d duplicates; site-b %d/%d, %d duplicates",
		len(gotA), len(sops), da, len(gotB), len(sops), db)
	// Nothing was in flight at the kill (site-a down, site-b's timer not
	// fired): no duplicate may appear.
	if da != 0 || db != 0 {
		t.Errorf("duplicates: site-a %d, site-b %d", da, db)
	}
}

// TestRoutingBadConfig: a bad rule is refused at load (relais serve does
// not start) and at reload (the running rules stay in force), with a
// message naming the rule.
func TestRoutingBadConfig(t *testing.T) {
	scp := rtStartSCP(t, "PACS", 0)
	dests := fmt.Sprintf(`
http: {auth: none}
destinations:
  local-pacs: {dicom: {ae: PACS, host: 127.0.0.1, port: %d}}
`, scp.port)
	bad := map[string]string{
		"expression":       `routes: [{name: broken-expr, when: 'Modality == ', forward: [local-pacs]}]`,
		"unknown name":     `routes: [{name: typo, when: 'Modalty == "CT"', forward: [local-pacs]}]`,
		"unknown dest":     `routes: [{name: nowhere, forward: [no-such-pacs]}]`,
		"unreadable ics":   "calendars: {pds: {ics: /nonexistent/pds.ics}}\n" + `routes: [{name: pds-nights, when: 'oncall("pds")', forward: [local-pacs]}]`,
		"unknown calendar": `routes: [{name: cal, when: 'oncall("nope")', forward: [local-pacs]}]`,
	}
	wantName := map[string]string{"expression": "broken-expr", "unknown name": "typo", "unknown dest": "nowhere",
		"unreadable ics": "pds-nights", "unknown calendar": "cal"}
	dir := t.TempDir()
	for what, routes := range bad {
		p := filepath.Join(dir, strings.ReplaceAll(what, " ", "-")+".yaml")
		os.WriteFile(p, []byte(dests+routes+"\n"), 0o600)
		cmd := exec.Command(relaisBin, "serve", "--config", p, "--data", t.TempDir(), "--dicom-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		out, err := runWithTimeout(cmd, 20*time.Second)
		if err == nil {
			t.Errorf("%s: relais serve started with a bad rule", what)
			continue
		}
		if !strings.Contains(out, wantName[what]) {
			t.Errorf("%s: the error does not name the rule %q:\n%s", what, wantName[what], out)
		}
		t.Logf("%s: refused at load: %s", what, strings.TrimSpace(lastLine(out)))
	}
	// Running with good rules; reload refused; rules still in force.
	good := dests + `routes: [{name: fast, mode: immediate, forward: [local-pacs]}]` + "\n"
	s := startServer(t, "", good)
	server := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	for what, routes := range bad {
		if what == "unknown dest" {
			continue // config validation: same path as at load
		}
		p := filepath.Join(dir, strings.ReplaceAll(what, " ", "-")+".yaml")
		os.WriteFile(p, []byte(dests+routes+"\n"), 0o600)
		out, err := exec.Command(relaisBin, "route", "reload", "--config", p, "--server", server).CombinedOutput()
		if err == nil || !strings.Contains(string(out), wantName[what]) {
			t.Errorf("%s: reload: %v\n%s", what, err, out)
		}
		t.Logf("%s: refused at reload: %s", what, strings.TrimSpace(lastLine(string(out))))
	}
	out, err := exec.Command(relaisBin, "route", "list", "--server", server).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fast") || strings.Contains(string(out), "broken") {
		t.Errorf("route list after refused reloads: %v\n%s", err, out)
	}
	files, sops := rtStudy(t, 3, "THORAX")
	rtStorescu(t, s, files)
	rtAssertIdentical(t, scp.waitReceived(t, sops, 30*time.Second), sops)
	// A good reload takes effect.
	p := filepath.Join(dir, "good2.yaml")
	os.WriteFile(p, []byte(dests+`routes: [{name: slow, stable_after: 1s, forward: [local-pacs]}]`+"\n"), 0o600)
	if out, err := exec.Command(relaisBin, "route", "reload", "--config", p, "--server", server).CombinedOutput(); err != nil {
		t.Fatalf("good reload: %v\n%s", err, out)
	}
	out, _ = exec.Command(relaisBin, "route", "list", "--server", server).CombinedOutput()
	if !strings.Contains(string(out), "slow") {
		t.Errorf("route list after reload:\n%s", out)
	}
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return buf.String(), nil
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// rtServerOn starts relais serve on given ports (servers that name each
// other in their configurations).
func rtServerOn(t *testing.T, configYAML string, dicomPort, httpPort int) *server {
	t.Helper()
	s := &server{t: t, data: t.TempDir(), dicomPort: dicomPort, httpPort: httpPort, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	p := filepath.Join(t.TempDir(), "relais.yaml")
	if err := os.WriteFile(p, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	s.args = []string{"serve", "--data", s.data, "--dicom-addr", fmt.Sprintf("127.0.0.1:%d", dicomPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--config", p}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// TestRoutingPriors: when the current study fires, the patient's prior
// study is found (C-FIND) on a remote PACS (another relais), moved to us
// (C-MOVE) and forwarded with it, although no rule matches the prior.
func TestRoutingPriors(t *testing.T) {
	reading := rtStartSCP(t, "READING", 0)
	pA, pB := freePort(t), freePort(t)
	pacs := rtServerOn(t, fmt.Sprintf(`
ae_title: PACSB
remote_aes: [{name: relais, ae: RELAIS, host: 127.0.0.1, port: %d}]
`, pA), pB, freePort(t))
	priorFiles, priorSOPs := rtStudy(t, 3, "PRIOR")
	h, p := pacs.hostPort()
	args := append(storescuProfile(t, "1.2.840.10008.1.2.1"), "-aet", "CT_OLD", "-aec", "PACSB", h, p)
	if out, err := dcmtk(t, "storescu", append(args, priorFiles...)...); err != nil {
		t.Fatalf("storescu to the PACS: %v\n%s", err, out)
	}
	a := rtServerOn(t, fmt.Sprintf(`
remote_aes: [{name: pacs, ae: PACSB, host: 127.0.0.1, port: %d}]
destinations:
  reading: {dicom: {ae: READING, host: 127.0.0.1, port: %d}}
routes:
  - name: read
    when: StudyDescription == "CURRENT"
    stable_after: 1s
    priority: URGENT
    forward: [reading]
    priors: {from: pacs, max: 2}
`, pB, reading.port), pA, freePort(t))
	curFiles, curSOPs := rtStudy(t, 2, "CURRENT")
	rtStorescu(t, a, curFiles)
	want := map[string]string{}
	for k, v := range curSOPs {
		want[k] = v
	}
	for k, v := range priorSOPs {
		want[k] = v
	}
	got := reading.waitReceived(t, want, 60*time.Second)
	rtAssertIdentical(t, got, want)
	found := false
	for _, ev := range journalKinds(t, a.data, "route.priors") {
		t.Logf("route.priors: %s", ev.Reason)
		found = found || strings.Contains(ev.Reason, "3 prior instance(s) queued")
	}
	if !found {
		t.Errorf("no route.priors journal event for the 3 prior instances")
	}
}

// TestRoutingKill9InFlight: relais is killed while storescu sends a
// study and relais forwards it (immediate route, destination up): after the
// restart every instance storescu saw acknowledged is at the destination;
// the duplicates (deliveries whose outcome was lost with the process) are
// bounded by what was in flight and counted by
// relais_delivery_redeliveries_total.
func TestRoutingKill9InFlight(t *testing.T) {
	needTool(t, "storescu")
	dst := rtStartSCP(t, "SITEA", 0)
	s := startServer(t, "", fmt.Sprintf(`
destinations:
  site-a: {dicom: {ae: SITEA, host: 127.0.0.1, port: %d}, associations: 2}
routes:
  - {name: all, mode: immediate, forward: [site-a]}
`, dst.port))
	files, _ := rtStudy(t, 400, "THORAX")
	h, p := s.hostPort()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "storescu", append([]string{"-v", "-aet", "CT_URG", "-aec", "RELAIS", h, p}, files...)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once forwarding is under way, while storescu still sends.
	deadline := time.Now().Add(20 * time.Second)
	for len(dst.received(t)) < 20 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	s.kill9()
	cmd.Wait()
	acked := ackedFiles(out.String())
	before := 0
	for _, fs := range dst.received(t) {
		before += len(fs)
	}
	if len(acked) == 0 || len(acked) == len(files) {
		t.Logf("storescu: %d of %d acknowledged at the kill", len(acked), len(files))
	}
	want := map[string]string{}
	for _, f := range acked {
		_, meta, err := testdicom.DatasetOf(f)
		if err != nil {
			t.Fatal(err)
		}
		want[meta.MediaStorageSOPInstanceUID] = f
	}
	s.start()
	got := dst.waitReceived(t, want, 60*time.Second)
	rtAssertIdentical(t, got, want)
	time.Sleep(time.Second)
	dups := 0
	for _, fs := range dst.received(t) {
		dups += len(fs) - 1
	}
	redeliveries := s.metric(t, "relais_delivery_redeliveries_total")
	t.Logf("killed with %d acknowledged by relais and %d delivered; after restart all %d acknowledged are at the destination, %d duplicate(s), redeliveries metric %v",
		len(acked), before, len(want), dups, redeliveries)
	// In flight at most: 2 associations × a batch of 32; and counted.
	if dups > 64 {
		t.Errorf("%d duplicates, more than could be in flight", dups)
	}
	if float64(dups) > redeliveries {
		t.Errorf("%d duplicates, only %v counted as possible redeliveries", dups, redeliveries)
	}
}

// rtOrthanc starts Orthanc (Debian package) on loopback ports, with the
// DICOMweb plugin, and returns its DICOM and HTTP ports.
func rtOrthanc(t *testing.T) (int, int) {
	t.Helper()
	needTool(t, "Orthanc")
	dir := t.TempDir()
	dp, hp := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{
  "Name": "relais-test", "StorageDirectory": %q, "IndexDirectory": %q,
  "HttpPort": %d, "DicomPort": %d, "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "DicomCheckCalledAet": false, "StorageCompression": false,
  "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}
}`, filepath.Join(dir, "storage"), filepath.Join(dir, "index"), hp, dp)
	p := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("Orthanc", p)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("Orthanc log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/system", hp))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Orthanc not up after 30s:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitPort(t, dp)
	return dp, hp
}

// orthancDatasets returns the data sets Orthanc holds, by SOP Instance UID.
func orthancDatasets(t *testing.T, hp int) map[string][]byte {
	t.Helper()
	get := func(path string) []byte {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", hp, path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("Orthanc %s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	var ids []string
	if err := json.Unmarshal(get("/instances"), &ids); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, id := range ids {
		b := get("/instances/" + id + "/file")
		meta, n, err := dicom.ReadFileMeta(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("Orthanc file %s: %v", id, err)
		}
		if meta.TransferSyntaxUID != "1.2.840.10008.1.2.1" {
			t.Errorf("Orthanc holds %s in %s", meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID)
		}
		out[meta.MediaStorageSOPInstanceUID] = b[n:]
	}
	return out
}

// TestRoutingOrthanc: one study forwarded to Orthanc by C-STORE, another
// by STOW-RS (Orthanc's DICOMweb plugin); both arrive byte-identical.
func TestRoutingOrthanc(t *testing.T) {
	dp, hp := rtOrthanc(t)
	s := startServer(t, "", fmt.Sprintf(`
destinations:
  orthanc-dimse: {dicom: {ae: ORTHANC, host: 127.0.0.1, port: %d}}
  orthanc-web:   {dicomweb: {url: "http://127.0.0.1:%d/dicom-web"}}
routes:
  - {name: by-dimse, when: 'StudyDescription == "VIA DIMSE"', mode: immediate, forward: [orthanc-dimse]}
  - {name: by-stow, when: 'StudyDescription == "VIA STOW"', mode: stable, stable_after: 1s, forward: [orthanc-web]}
`, dp, hp))
	fa, sa := rtStudy(t, 5, "VIA DIMSE")
	fb, sb := rtStudy(t, 5, "VIA STOW")
	rtStorescu(t, s, append(fa, fb...))
	want := map[string]string{}
	for k, v := range sa {
		want[k] = v
	}
	for k, v := range sb {
		want[k] = v
	}
	deadline := time.Now().Add(60 * time.Second)
	var got map[string][]byte
	for {
		got = orthancDatasets(t, hp)
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for sop, f := range want {
		ds, _, err := testdicom.DatasetOf(f)
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := got[sop]; !ok {
			t.Errorf("%s not in Orthanc", sop)
		} else if !bytes.Equal(g, ds) {
			t.Errorf("%s: Orthanc's data set differs (%d bytes, sent %d)", sop, len(g), len(ds))
		}
	}
}

// TestRoutingCoercion: a route's coercion is applied to the forwarded
// copy: the coerced attributes have their new values and every other
// attribute arrives byte for byte.
func TestRoutingCoercion(t *testing.T) {
	scp := rtStartSCP(t, "PACS", 0)
	cfg := fmt.Sprintf(`
destinations:
  pacs: {dicom: {ae: PACS, host: 127.0.0.1, port: %d}}
routes:
  - name: to-pacs
    mode: immediate
    forward: [pacs]
    coerce:
      prefix: {PatientID: "SITEA-"}
      set: {InstitutionName: "CH SUD"}
      issuer_of_patient_id: SITEA
`, scp.port)
	if _, err := config.Parse([]byte(cfg)); err != nil {
		t.Fatalf("the coerce block is refused: %v", err)
	}
	s := startServer(t, "", cfg)
	files, sops := rtStudy(t, 3, "THORAX")
	rtStorescu(t, s, files)
	got := scp.waitReceived(t, sops, 30*time.Second)
	ts, _ := dicom.LookupTransferSyntax("1.2.840.10008.1.2.1")
	scan := func(b []byte) *dicom.Dataset {
		res, err := dicom.Scan(bytes.NewReader(b), ts, dicom.DefaultLimits(), dicom.WantAll)
		if err != nil {
			t.Fatal(err)
		}
		return res.Dataset
	}
	for sop, src := range sops {
		sent, _, err := testdicom.DatasetOf(src)
		if err != nil {
			t.Fatal(err)
		}
		recv, _, err := testdicom.DatasetOf(got[sop][0])
		if err != nil {
			t.Fatal(err)
		}
		a, b := scan(sent), scan(recv)
		pid, _ := a.String(dicom.TagPatientID)
		want := map[dicom.Tag]string{dicom.TagPatientID: "SITEA-" + pid, dicom.TagInstitutionName: "CH SUD", dicom.TagIssuerOfPatientID: "SITEA"}
		for tag, v := range want {
			if g, _ := b.String(tag); g != v {
				t.Errorf("%s: %s = %q, want %q", sop, tag, g, v)
			}
		}
		if e, ok := b.Get(dicom.TagOtherPatientIDsSequence); !ok || len(e.Items) != 1 {
			t.Errorf("%s: no Other Patient IDs item for the issuer", sop)
		} else if id, _ := e.Items[0].String(dicom.TagPatientID); id != "SITEA-"+pid {
			t.Errorf("%s: Other Patient IDs item %q", sop, id)
		}
		for tag, el := range a.Elements {
			if _, coerced := want[tag]; coerced {
				continue
			}
			el2, ok := b.Elements[tag]
			if !ok {
				t.Errorf("%s: %s lost", sop, tag)
			} else if !bytes.Equal(el.Raw, el2.Raw) || el.VR != el2.VR {
				t.Errorf("%s: %s changed", sop, tag)
			}
		}
		for tag := range b.Elements {
			if _, ok := a.Elements[tag]; !ok {
				if _, coerced := want[tag]; !coerced && tag != dicom.TagOtherPatientIDsSequence {
					t.Errorf("%s: %s added", sop, tag)
				}
			}
		}
	}
}
