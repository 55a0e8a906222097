package main

// End-to-end tests of the relais binary against real peers (dcmtk). The
// binary is built once; each test runs its own `relais serve` on loopback
// ports with its own data directory.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
)

var relaisBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relais-e2e")
	if err != nil {
		panic(err)
	}
	relaisBin = filepath.Join(dir, "relais")
	out, err := exec.Command("go", "build", "-o", relaisBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build relais: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool fails (never skips) when a real peer is missing: CI installs them.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install dcmtk (apt-get install dcmtk); .ci/run does", name)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is a running `relais serve`.
type server struct {
	t         *testing.T
	cmd       *exec.Cmd
	data      string
	dicomPort int
	httpPort  int
	log       *bytes.Buffer
	logMu     *sync.Mutex
	args      []string
	done      chan struct{}
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// startServer runs relais serve on data (a fresh dir if ""), with an
// optional configuration file body.
func startServer(t *testing.T, data, configYAML string) *server {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	s := &server{t: t, data: data, dicomPort: freePort(t), httpPort: freePort(t), log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	s.args = []string{"serve", "--data", data, "--dicom-addr", fmt.Sprintf("127.0.0.1:%d", s.dicomPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", s.httpPort)}
	if configYAML != "" {
		p := filepath.Join(t.TempDir(), "relais.yaml")
		if err := os.WriteFile(p, []byte(configYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		s.args = append(s.args, "--config", p)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	s.cmd = exec.Command(relaisBin, s.args...)
	w := lockedBuffer{s.logMu, s.log}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.httpPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("relais serve exited at start:\n%s", s.logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("relais serve not healthy after 20s:\n%s", s.logs())
}

func (s *server) logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// kill9 kills the server without warning.
func (s *server) kill9() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("relais serve did not stop on SIGTERM")
	}
	if s.t.Failed() {
		s.t.Logf("relais serve log:\n%s", s.logs())
	}
}

func (s *server) hostPort() (string, string) { return "127.0.0.1", fmt.Sprint(s.dicomPort) }

// dcmtk runs a dcmtk tool with Nagle off.
func dcmtk(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// storedEvents reads the journal's instance.stored events by SOP UID.
func storedEvents(t *testing.T, data string) map[string]*journal.Event {
	t.Helper()
	got := map[string]*journal.Event{}
	err := journal.Query(context.Background(), filepath.Join(data, "journal"), journal.Filter{Kinds: []string{"instance.stored"}}, func(ev *journal.Event) error {
		e := *ev
		got[ev.SOPInstanceUID] = &e
		return nil
	})
	if err != nil {
		t.Fatalf("journal query: %v", err)
	}
	return got
}

// blobDataset finds the stored blob of a SOP instance under the data dir's
// filesystem blob store and returns its data set bytes and its meta.
func blobDataset(t *testing.T, data string, ev *journal.Event) ([]byte, string) {
	t.Helper()
	var inst struct {
		BlobKey           string `json:"blob"`
		TransferSyntaxUID string `json:"ts"`
	}
	if err := json.Unmarshal(ev.Data, &inst); err != nil {
		t.Fatalf("journal record: %v", err)
	}
	ds, meta, err := testdicom.DatasetOf(filepath.Join(data, "blobs", filepath.FromSlash(inst.BlobKey)))
	if err != nil {
		t.Fatalf("stored blob of %s: %v", ev.SOPInstanceUID, err)
	}
	if meta.TransferSyntaxUID != inst.TransferSyntaxUID {
		t.Errorf("blob meta syntax %s, index says %s", meta.TransferSyntaxUID, inst.TransferSyntaxUID)
	}
	return ds, meta.TransferSyntaxUID
}

// assertStoredIdentical checks every file is stored with a byte-identical
// data set.
func assertStoredIdentical(t *testing.T, data string, files []string) {
	t.Helper()
	stored := storedEvents(t, data)
	for _, f := range files {
		want, meta, err := testdicom.DatasetOf(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, ok := stored[meta.MediaStorageSOPInstanceUID]
		if !ok {
			t.Errorf("%s (%s) not stored", filepath.Base(f), meta.MediaStorageSOPInstanceUID)
			continue
		}
		got, ts := blobDataset(t, data, ev)
		if ts != meta.TransferSyntaxUID {
			t.Errorf("%s: stored in %s, sent in %s", filepath.Base(f), ts, meta.TransferSyntaxUID)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: stored data set differs (%d bytes stored, %d sent)", filepath.Base(f), len(got), len(want))
		}
	}
}

func TestEchoscu(t *testing.T) {
	s := startServer(t, "", "")
	h, p := s.hostPort()
	if out, err := dcmtk(t, "echoscu", "-aet", "MODALITY", "-aec", "RELAIS", h, p); err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	// Our own SCU against our own SCP too.
	out, err := exec.Command(relaisBin, "echo", fmt.Sprintf("%s:%s", h, p), "--aec", "RELAIS").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "status 0000") {
		t.Fatalf("relais echo: %v\n%s", err, out)
	}
}

// fixtures writes one study per uncompressed syntax (dcmconv makes the
// implicit and big endian copies: a real peer's encoder, not ours) and a
// JPEG-compressed one (dcmcjpeg).
func fixtures(t *testing.T, n int) map[string][]string {
	t.Helper()
	dir := t.TempDir()
	base, err := testdicom.Study(filepath.Join(dir, "explicit"), n, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{"explicit": base}
	for name, flag := range map[string]string{"implicit": "+ti", "bigendian": "+tb", "jpeg": ""} {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		for _, f := range base {
			dst := filepath.Join(d, filepath.Base(f))
			var o string
			var err error
			if name == "jpeg" {
				o, err = dcmtk(t, "dcmcjpeg", f, dst)
			} else {
				o, err = dcmtk(t, "dcmconv", flag, f, dst)
			}
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", name, f, err, o)
			}
			out[name] = append(out[name], dst)
		}
	}
	return out
}

func TestStorescuSyntaxesByteIdentical(t *testing.T) {
	fx := fixtures(t, 3)
	for _, name := range []string{"explicit", "implicit", "bigendian", "jpeg"} {
		t.Run(name, func(t *testing.T) {
			// One server per syntax: the copies share SOP Instance UIDs.
			s := startServer(t, "", "")
			h, p := s.hostPort()
			// Propose exactly the files' own syntax, so that storescu
			// sends the files' bytes unconverted.
			_, meta, err := testdicom.DatasetOf(fx[name][0])
			if err != nil {
				t.Fatal(err)
			}
			args := append(storescuProfile(t, meta.TransferSyntaxUID), "-aet", "CT_"+strings.ToUpper(name[:3]), "-aec", "RELAIS", h, p)
			out, err := dcmtk(t, "storescu", append(args, fx[name]...)...)
			if err != nil {
				t.Fatalf("storescu: %v\n%s", err, out)
			}
			assertStoredIdentical(t, s.data, fx[name])
		})
	}
}

// storescuProfile writes a storescu configuration proposing CT Image
// Storage in exactly one transfer syntax, and returns the flags that use it.
func storescuProfile(t *testing.T, ts string) []string {
	t.Helper()
	cfg := fmt.Sprintf(`[[TransferSyntaxes]]
[TS]
TransferSyntax1 = %s
[[PresentationContexts]]
[PC]
PresentationContext1 = 1.2.840.10008.5.1.4.1.1.2\TS
[[Profiles]]
[ONLY]
PresentationContexts = PC
`, ts)
	p := filepath.Join(t.TempDir(), "storescu.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-xf", p, "ONLY"}
}

func TestStorescuManyFilesAndParallelAssociations(t *testing.T) {
	s := startServer(t, "", "")
	h, p := s.hostPort()
	files, err := testdicom.Study(t.TempDir(), 120, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	// 60 files over one association, then 4 associations at once of 15.
	out, err := dcmtk(t, "storescu", append([]string{"-aec", "RELAIS", h, p}, files[:60]...)...)
	if err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for i := 0; i < 4; i++ {
		part := files[60+15*i : 60+15*(i+1)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := dcmtk(t, "storescu", append([]string{"-aec", "RELAIS", h, p}, part...)...); err != nil {
				errs <- fmt.Sprintf("%v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("parallel storescu: %s", e)
	}
	assertStoredIdentical(t, s.data, files)
	// The index agrees with the journal: /healthz reports the counts.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h2 struct {
		Index struct{ Instances, Studies int } `json:"index"`
	}
	json.NewDecoder(resp.Body).Decode(&h2)
	if h2.Index.Instances != 120 || h2.Index.Studies != 1 {
		t.Errorf("index holds %d instances in %d studies, want 120 in 1", h2.Index.Instances, h2.Index.Studies)
	}
}

func TestSendIntoStorescp(t *testing.T) {
	needTool(t, "storescp")
	outDir := t.TempDir()
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scp := exec.CommandContext(ctx, "storescp", "--fork", "+xa", "-aet", "STORESCP", "-od", outDir, "-uf", fmt.Sprint(port))
	scp.Env = append(os.Environ(), "TCP_NODELAY=1")
	var scpLog bytes.Buffer
	scp.Stdout, scp.Stderr = &scpLog, &scpLog
	if err := scp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); scp.Wait() }()
	waitPort(t, port)
	fx := fixtures(t, 4)
	// The explicit and JPEG copies share SOP Instance UIDs: one pass each.
	for _, batch := range [][]string{fx["explicit"], fx["jpeg"]} {
		os.RemoveAll(outDir)
		os.MkdirAll(outDir, 0o755)
		args := append([]string{"send", fmt.Sprintf("127.0.0.1:%d", port), "--aec", "STORESCP", "--associations", "2", "-q"}, batch...)
		out, err := exec.Command(relaisBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("relais send: %v\n%s\nstorescp: %s", err, out, scpLog.String())
		}
		if !strings.Contains(string(out), fmt.Sprintf("sent %d/%d", len(batch), len(batch))) {
			t.Fatalf("relais send summary: %s", out)
		}
		// storescp names files by modality prefix + SOP Instance UID.
		deadline := time.Now().Add(5 * time.Second)
		for _, f := range batch {
			want, meta, _ := testdicom.DatasetOf(f)
			var got []byte
			for {
				matches, _ := filepath.Glob(filepath.Join(outDir, "*"+meta.MediaStorageSOPInstanceUID))
				if len(matches) == 1 {
					if ds, m2, err := testdicom.DatasetOf(matches[0]); err == nil {
						got = ds
						if m2.TransferSyntaxUID != meta.TransferSyntaxUID {
							t.Errorf("storescp received %s in %s, sent from %s", filepath.Base(f), m2.TransferSyntaxUID, meta.TransferSyntaxUID)
						}
						break
					}
				}
				if time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: storescp's data set differs from the file's (%d vs %d bytes)", filepath.Base(f), len(got), len(want))
			}
		}
	}
	// A failure gives a non-zero exit status: wrong called AE is fine for
	// storescp, so send to a closed port instead.
	cmd := exec.Command(relaisBin, "send", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-q", fx["explicit"][0])
	if err := cmd.Run(); err == nil {
		t.Errorf("relais send to a closed port exited 0")
	}
}

func waitPort(t *testing.T, port int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("port %d never opened", port)
}

func journalKinds(t *testing.T, data, kind string) []*journal.Event {
	t.Helper()
	var evs []*journal.Event
	query := func() {
		evs = evs[:0]
		journal.Query(context.Background(), filepath.Join(data, "journal"), journal.Filter{Kinds: []string{kind}}, func(ev *journal.Event) error {
			e := *ev
			evs = append(evs, &e)
			return nil
		})
	}
	// AppendAsync events become visible with the next group commit, or
	// within journal.AsyncDelay: once some are there, give the ones queued
	// with them the time to be written too.
	deadline := time.Now().Add(3 * time.Second)
	for {
		query()
		if len(evs) > 0 {
			time.Sleep(5 * journal.AsyncDelay)
			query()
			return evs
		}
		if time.Now().After(deadline) {
			return evs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRejections(t *testing.T) {
	s := startServer(t, "", `
ae_title: RELAIS
dicom:
  allowed_callers:
    - {ae: GOODCT, hosts: [127.0.0.1]}
    - {ae: FARCT, hosts: [10.99.99.99]}
`)
	h, p := s.hostPort()
	cases := []struct {
		name, aet, aec, want string
	}{
		{"unknown called AE", "GOODCT", "NOTRELAIS", "Called AE Title Not Recognized"},
		{"calling AE not allowed", "STRANGER", "RELAIS", "Calling AE Title Not Recognized"},
		{"calling AE from the wrong host", "FARCT", "RELAIS", "Calling AE Title Not Recognized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := dcmtk(t, "echoscu", "-aet", tc.aet, "-aec", tc.aec, h, p)
			if err == nil {
				t.Fatalf("echoscu accepted:\n%s", out)
			}
			if !strings.Contains(out, "Association Rejected") || !strings.Contains(out, tc.want) {
				t.Errorf("echoscu output lacks %q:\n%s", tc.want, out)
			}
		})
	}
	if evs := journalKinds(t, s.data, "association.rejected"); len(evs) < 3 {
		t.Errorf("journal holds %d association.rejected events, want 3", len(evs))
	} else if evs[0].AE == "" || evs[0].Addr == "" || evs[0].Reason == "" {
		t.Errorf("rejection event lacks AE, address or reason: %+v", evs[0])
	}

	// An unsupported abstract syntax: that context is rejected, the
	// association is accepted, a supported file on it is stored.
	dir := t.TempDir()
	good, _ := testdicom.Study(filepath.Join(dir, "good"), 1, "1.2.840.10008.1.2.1")
	odd := &testdicom.CT{PatientName: "X", PatientID: "X", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(), TransferSyntax: "1.2.840.10008.1.2.1"}
	b, _ := odd.File()
	// Rewrite the SOP class (meta and data set) to an unknown one of the
	// same length.
	bad := bytes.ReplaceAll(b, []byte("1.2.840.10008.5.1.4.1.1.2\x00"), []byte("2.25.999999999999999999999"))
	badPath := filepath.Join(dir, "odd.dcm")
	os.WriteFile(badPath, bad, 0o644)
	out, _ := dcmtk(t, "storescu", "-aet", "GOODCT", "-aec", "RELAIS", "-v", h, p, good[0], badPath)
	if !strings.Contains(out, "Association Accepted") {
		t.Fatalf("association not accepted:\n%s", out)
	}
	if !strings.Contains(out, "2.25.999999999999999999999") || !strings.Contains(strings.ToLower(out), "no presentation context") {
		t.Errorf("storescu does not report the rejected context:\n%s", out)
	}
	assertStoredIdentical(t, s.data, good)

	// Malformed and lying PDUs: each is answered by an abort or reject, and
	// the server keeps serving.
	raw := []struct {
		name string
		pdu  []byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"lying PDU length", append([]byte{0x01, 0x00, 0x7f, 0xff, 0xff, 0xff}, make([]byte, 64)...)},
		{"truncated A-ASSOCIATE-RQ", []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x44, 0x00, 0x01}},
		{"P-DATA before association", []byte{0x04, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x02, 0x01, 0x03}},
		{"lying item length in A-ASSOCIATE-RQ", assocRQWithLyingItem()},
	}
	for _, r := range raw {
		t.Run(r.name, func(t *testing.T) {
			c, err := net.Dial("tcp", net.JoinHostPort(h, p))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(r.pdu)
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, _ := io.ReadAll(bufio.NewReader(c))
			if len(resp) > 0 && resp[0] != 0x07 && resp[0] != 0x03 {
				t.Errorf("answer PDU type %#x, want A-ABORT (07) or A-ASSOCIATE-RJ (03) or a close", resp[0])
			}
			if out, err := dcmtk(t, "echoscu", "-aet", "GOODCT", "-aec", "RELAIS", h, p); err != nil {
				t.Fatalf("server stopped serving after %s: %v\n%s", r.name, err, out)
			}
		})
	}
	if evs := journalKinds(t, s.data, "association.protocol_error"); len(evs) == 0 {
		if evs := journalKinds(t, s.data, "association.aborted"); len(evs) == 0 {
			t.Errorf("no journal entry for the malformed PDUs")
		}
	}
}

// assocRQWithLyingItem is an A-ASSOCIATE-RQ whose application context item
// claims more bytes than the PDU holds.
func assocRQWithLyingItem() []byte {
	var body bytes.Buffer
	body.Write([]byte{0x00, 0x01, 0x00, 0x00})
	body.WriteString(fmt.Sprintf("%-16s", "RELAIS"))
	body.WriteString(fmt.Sprintf("%-16s", "GOODCT"))
	body.Write(make([]byte, 32))
	body.Write([]byte{0x10, 0x00, 0x04, 0x00}) // item length 1024, only a few bytes follow
	body.WriteString("1.2.840.10008.3.1.1.1")
	pdu := []byte{0x01, 0x00, 0, 0, 0, 0}
	n := body.Len()
	pdu[2], pdu[3], pdu[4], pdu[5] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return append(pdu, body.Bytes()...)
}

// TestJournalAndMetricsWhileServing queries the journal with the CLI while
// relais serve runs on the same data, and reads the Prometheus metrics.
func TestJournalAndMetricsWhileServing(t *testing.T) {
	s := startServer(t, "", "")
	h, p := s.hostPort()
	files, err := testdicom.Study(t.TempDir(), 3, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_JRNL", "-aec", "RELAIS", h, p}, files...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	dcmtk(t, "echoscu", "-aet", "LOST", "-aec", "WRONG", h, p)
	_, meta, _ := testdicom.DatasetOf(files[0])
	var study string
	for _, ev := range storedEvents(t, s.data) {
		study = ev.StudyUID
	}
	if study == "" {
		t.Fatal("no instance.stored event")
	}
	run := func(args ...string) []journal.Event {
		t.Helper()
		out, err := exec.Command(relaisBin, append([]string{"journal", "--data", s.data, "--json"}, args...)...).Output()
		if err != nil {
			t.Fatalf("relais journal %v: %v", args, err)
		}
		var evs []journal.Event
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var ev journal.Event
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("journal output: %v\n%s", err, out)
			}
			evs = append(evs, ev)
		}
		return evs
	}
	if evs := run("--study", study, "--kind", "instance.stored"); len(evs) != 3 {
		t.Errorf("--study: %d events, want 3", len(evs))
	}
	if evs := run("--sop", meta.MediaStorageSOPInstanceUID); len(evs) != 1 || evs[0].AE != "CT_JRNL" {
		t.Errorf("--sop: %+v", evs)
	}
	deadline := time.Now().Add(3 * time.Second)
	var rej []journal.Event
	for time.Now().Before(deadline) {
		if rej = run("--kind", "association.rejected", "--since", "1h"); len(rej) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(rej) != 1 || rej[0].AE != "LOST" || !strings.Contains(rej[0].Reason, "called") {
		t.Errorf("rejection not journaled as expected: %+v", rej)
	}
	if evs := run("--since", "2000-01-01", "--until", "2000-01-02"); len(evs) != 0 {
		t.Errorf("--until filter let %d events through", len(evs))
	}
	// The table form works too and counts on stderr.
	out, err := exec.Command(relaisBin, "journal", "--data", s.data, "--ae", "CT_JRNL").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "instance.stored") {
		t.Errorf("table output: %v\n%s", err, out)
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`relais_instances_stored_total{channel="dimse"} 3`,
		`relais_dimse_associations_total{outcome="rejected"} 1`,
		`relais_ingest_duration_seconds_count{channel="dimse"} 3`,
		`relais_bytes_stored_total{channel="dimse"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// peakRSS reads a process's VmHWM in MB.
func peakRSS(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%f", &kb)
			return kb / 1024
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestLargeInstanceBoundedMemory stores a 200 MB instance: it must arrive
// whole and byte-identical while the server's peak RSS stays far below the
// instance's size (the data set streams from P-DATA to disk).
func TestLargeInstanceBoundedMemory(t *testing.T) {
	s := startServer(t, "", "")
	h, p := s.hostPort()
	c := &testdicom.CT{PatientName: "Big^Study", PatientID: "BIG", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(),
		SOPUID: testdicom.UID(), Instance: 1, Rows: 10000, Columns: 10000, TransferSyntax: "1.2.840.10008.1.2.1"}
	b, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "big.dcm")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	b = nil
	before := peakRSS(t, s.cmd.Process.Pid)
	if out, err := dcmtk(t, "storescu", "-aec", "RELAIS", h, p, path); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	peak := peakRSS(t, s.cmd.Process.Pid)
	t.Logf("200 MB instance: server peak RSS %.0f MB (before: %.0f MB)", peak, before)
	if peak > 150 {
		t.Errorf("server peak RSS %.0f MB for a 200 MB instance: the data set is being buffered", peak)
	}
	assertStoredIdentical(t, s.data, []string{path})
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	cases := []struct{ yaml, key string }{
		{"limits:\n  max_pdu_length: 12\n", "limits.max_pdu_length"},
		{"dicom:\n  allowed_callers:\n    - {ae: CT, hosts: [10.0.0.0/77]}\n", "dicom.allowed_callers[0].hosts[0]"},
		{"storage:\n  blobs: {backend: tape}\n", "storage.blobs.backend"},
		{"ae_tilte: X\n", "ae_tilte"},
	}
	for _, tc := range cases {
		p := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		cmd := exec.Command(relaisBin, "serve", "--config", p, "--data", t.TempDir(), "--dicom-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%q: serve started", tc.yaml)
			continue
		}
		if !strings.Contains(string(out), tc.key) {
			t.Errorf("%q: message does not name %s:\n%s", tc.yaml, tc.key, out)
		}
	}
}
