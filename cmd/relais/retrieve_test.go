package main

// End-to-end tests of retrieval: relais as C-MOVE/C-GET SCP for dcmtk's
// movescu and getscu (destinations: dcmtk storescp and a second relais),
// and `relais move` / `relais get` against dcmtk's dcmqrscp.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/retrieve"
)

// externalSCP is a dcmtk server run for a test.
type externalSCP struct {
	port int
	dir  string
	log  *bytes.Buffer
	mu   *sync.Mutex
}

func (e *externalSCP) logs() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}

// startTool runs a dcmtk server until the test ends.
func startTool(t *testing.T, port int, name string, args ...string) *externalSCP {
	t.Helper()
	needTool(t, name)
	e := &externalSCP{port: port, log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	cmd.Stdout, cmd.Stderr = lockedBuffer{e.mu, e.log}, lockedBuffer{e.mu, e.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	waitPort(t, port)
	return e
}

// startStorescp runs `storescp --fork` with AE title aet.
func startStorescp(t *testing.T, aet string) *externalSCP {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	e := startTool(t, port, "storescp", "--fork", "-v", "-aet", aet, "-od", dir, fmt.Sprint(port))
	e.dir = dir
	return e
}

// awaitIdentical waits until each file arrived in dir (named *<SOP UID>*)
// with a byte-identical data set.
func awaitIdentical(t *testing.T, dir string, files []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range files {
		want, meta, err := testdicom.DatasetOf(f)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		var gotTS string
		for {
			matches, _ := filepath.Glob(filepath.Join(dir, "*"+meta.MediaStorageSOPInstanceUID+"*"))
			if len(matches) == 1 {
				if ds, m2, err := testdicom.DatasetOf(matches[0]); err == nil && bytes.Equal(ds, want) {
					got, gotTS = ds, m2.TransferSyntaxUID
					break
				}
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: not received byte-identical in %s", filepath.Base(f), dir)
		} else if gotTS != meta.TransferSyntaxUID {
			t.Errorf("%s: received in %s, stored in %s", filepath.Base(f), gotTS, meta.TransferSyntaxUID)
		}
	}
}

// storeInto sends files to host:port with storescu.
func storeInto(t *testing.T, aec string, port int, files []string) {
	t.Helper()
	args := append([]string{"-aec", aec, "127.0.0.1", fmt.Sprint(port)}, files...)
	if out, err := dcmtk(t, "storescu", args...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
}

func studyUIDOf(t *testing.T, f string) string {
	t.Helper()
	out, err := dcmtk(t, "dcmdump", "+P", "0020,000d", "-q", f)
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	i, j := strings.Index(out, "["), strings.Index(out, "]")
	if i < 0 || j < i {
		t.Fatalf("no study UID in %s: %s", f, out)
	}
	return out[i+1 : j]
}

func TestMovescuAndGetscu(t *testing.T) {
	scp := startStorescp(t, "STORESCP")
	dest := startServer(t, "", "ae_title: RELAIS2\n")
	s := startServer(t, "", fmt.Sprintf(`remote_aes:
  - {name: storescp, ae: STORESCP, host: 127.0.0.1, port: %d, associations: 4}
  - {name: relais2, ae: RELAIS2, host: 127.0.0.1, port: %d}
`, scp.port, dest.dicomPort))
	files, err := testdicom.Study(filepath.Join(t.TempDir(), "study"), 16, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	storeInto(t, "RELAIS", s.dicomPort, files)
	study := studyUIDOf(t, files[0])
	h, p := s.hostPort()
	move := func(dest string) (string, error) {
		return dcmtk(t, "movescu", "-v", "-aet", "VIEWER", "-aec", "RELAIS", "-aem", dest, "-S",
			"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, h, p)
	}

	t.Run("movescu to storescp, parallel associations", func(t *testing.T) {
		out, err := move("STORESCP")
		if err != nil || !strings.Contains(out, "Received Final Move Response (Success)") {
			t.Fatalf("movescu: %v\n%s", err, out)
		}
		awaitIdentical(t, scp.dir, files)
		if n := strings.Count(scp.logs(), "Association Received"); n < 2 {
			t.Errorf("storescp saw %d associations; want several in parallel\n%s", n, scp.logs())
		}
	})
	t.Run("movescu to a second relais", func(t *testing.T) {
		out, err := move("RELAIS2")
		if err != nil || !strings.Contains(out, "Success") {
			t.Fatalf("movescu: %v\n%s", err, out)
		}
		assertStoredIdentical(t, dest.data, files)
	})
	t.Run("getscu", func(t *testing.T) {
		dir := t.TempDir()
		out, err := dcmtk(t, "getscu", "-v", "-aet", "VIEWER", "-aec", "RELAIS", "-S", "-k", "QueryRetrieveLevel=STUDY",
			"-k", "StudyInstanceUID="+study, "-od", dir, h, p)
		if err != nil {
			t.Fatalf("getscu: %v\n%s", err, out)
		}
		awaitIdentical(t, dir, files)
	})
	t.Run("movescu to an unknown destination", func(t *testing.T) {
		out, _ := move("NOWHERE")
		// dcmtk spells it "Refused: MoveDestinationUnknown".
		if !strings.Contains(strings.ReplaceAll(strings.ToLower(out), " ", ""), "movedestinationunknown") {
			t.Fatalf("movescu did not report A801:\n%s", out)
		}
	})
	t.Run("relais move and get against relais", func(t *testing.T) {
		out, err := exec.Command(relaisBin, "move", h+":"+p, "--aec", "RELAIS", "--dest", "NOWHERE", "-k", "StudyInstanceUID="+study).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "status A801") {
			t.Errorf("relais move to an unknown destination: %v\n%s", err, out)
		}
		dir := t.TempDir()
		out, err = exec.Command(relaisBin, "get", h+":"+p, "--aec", "RELAIS", "-q", "--out", dir, "-k", "StudyInstanceUID="+study).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "status 0000") {
			t.Fatalf("relais get: %v\n%s", err, out)
		}
		awaitIdentical(t, dir, files)
	})
	evs := journalKinds(t, s.data, "retrieve")
	got := map[string]int{}
	for _, ev := range evs {
		got[ev.Kind+" "+ev.Status]++
	}
	if got["retrieve.move 0000"] != 2 || got["retrieve.move A801"] != 2 || got["retrieve.get 0000"] != 2 {
		t.Errorf("journal: %v", got)
	}
	// Nobody crashed.
	if out, err := exec.Command(relaisBin, "echo", h+":"+p, "--aec", "RELAIS").CombinedOutput(); err != nil {
		t.Errorf("echo after the retrieves: %v\n%s", err, out)
	}
}

// TestRelaisMoveGetAgainstDcmqrscp drives `relais move` and `relais get`
// against dcmtk's Q/R server: a peer nobody here wrote.
func TestRelaisMoveGetAgainstDcmqrscp(t *testing.T) {
	scp := startStorescp(t, "STORESCP")
	s := startServer(t, "", "")
	qrPort := freePort(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	os.MkdirAll(db, 0o755)
	cfg := fmt.Sprintf(`NetworkTCPPort = %d
MaxPDUSize = 16384
MaxAssociations = 16
HostTable BEGIN
storescp = (STORESCP, 127.0.0.1, %d)
relais = (RELAIS, 127.0.0.1, %d)
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
DCMQR %s RW (200, 1024mb) ANY
AETable END
`, qrPort, scp.port, s.dicomPort, db)
	cfgPath := filepath.Join(dir, "dcmqrscp.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	qr := startTool(t, qrPort, "dcmqrscp", "-c", cfgPath)
	files, err := testdicom.Study(filepath.Join(t.TempDir(), "study"), 8, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	storeInto(t, "DCMQR", qrPort, files)
	study := studyUIDOf(t, files[0])
	addr := fmt.Sprintf("127.0.0.1:%d", qrPort)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(relaisBin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "status 0000") {
			t.Fatalf("relais %s: %v\n%s\ndcmqrscp:\n%s", args[0], err, out, qr.logs())
		}
		return string(out)
	}
	t.Run("get", func(t *testing.T) {
		out := t.TempDir()
		run("get", addr, "--aec", "DCMQR", "--aet", "RELAIS", "-q", "--out", out, "-k", "StudyInstanceUID="+study)
		awaitIdentical(t, out, files)
	})
	t.Run("move to storescp", func(t *testing.T) {
		out := run("move", addr, "--aec", "DCMQR", "--aet", "RELAIS", "--dest", "STORESCP", "-k", "StudyInstanceUID="+study)
		if !strings.Contains(out, "pending:") {
			t.Errorf("no pending counts printed:\n%s", out)
		}
		awaitIdentical(t, scp.dir, files)
	})
	t.Run("move into relais", func(t *testing.T) {
		run("move", addr, "--aec", "DCMQR", "--aet", "RELAIS", "--dest", "RELAIS", "--level", "SERIES",
			"-k", "StudyInstanceUID="+study, "-k", "SeriesInstanceUID="+seriesUIDOf(t, files[0]))
		assertStoredIdentical(t, s.data, files)
	})
	t.Run("unknown study", func(t *testing.T) {
		out, err := exec.Command(relaisBin, "get", addr, "--aec", "DCMQR", "--aet", "RELAIS", "-q", "--out", t.TempDir(),
			"-k", "StudyInstanceUID=1.2.3.404").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "0 completed") {
			t.Errorf("get of an unknown study: %v\n%s", err, out)
		}
	})
}

func seriesUIDOf(t *testing.T, f string) string {
	t.Helper()
	out, err := dcmtk(t, "dcmdump", "+P", "0020,000e", "-q", f)
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	i, j := strings.Index(out, "["), strings.Index(out, "]")
	return out[i+1 : j]
}

// TestMoveCancelAndRefusalGoAPI drives the relais binary with the retrieve
// Go API: a C-CANCEL mid-way stops the sub-operations (FE00, fewer
// instances at the destination, journaled), and a peer that may not
// retrieve gets 0124.
func TestMoveCancelAndRefusalGoAPI(t *testing.T) {
	dest := startServer(t, "", "ae_title: DEST\n")
	s := startServer(t, "", fmt.Sprintf(`remote_aes:
  - {name: dest, ae: DEST, host: 127.0.0.1, port: %d, associations: 1}
dicom:
  query_retrieve_loopback: false
  query_retrieve_callers: [{ae: VIEWER}]
`, dest.dicomPort))
	const n = 300
	files, err := testdicom.Study(filepath.Join(t.TempDir(), "study"), n, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	storeInto(t, "RELAIS", s.dicomPort, files)
	keys := retrieve.Keys{Level: retrieve.LevelStudy, Studies: []string{studyUIDOf(t, files[0])}}
	addr := fmt.Sprintf("127.0.0.1:%d", s.dicomPort)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pendings []retrieve.Counts
	res, err := retrieve.Move(ctx, addr, retrieve.ClientOptions{CallingAE: "VIEWER", CalledAE: "RELAIS",
		Progress: func(c retrieve.Counts) { pendings = append(pendings, c); cancel() }}, "DEST", keys)
	if err != nil || res.Status.Code != dimse.StatusCancel {
		t.Fatalf("cancelled move: %v %v", res.Status, err)
	}
	if len(pendings) == 0 || pendings[0].Remaining == 0 {
		t.Errorf("pending responses %+v", pendings)
	}
	time.Sleep(300 * time.Millisecond)
	stored := len(storedEvents(t, dest.data))
	if res.Completed == 0 || res.Completed >= n || stored != res.Completed {
		t.Errorf("cancelled after %d completed; destination stored %d of %d", res.Completed, stored, n)
	}
	if evs := journalKinds(t, s.data, "retrieve.move"); len(evs) != 1 || evs[0].Status != "FE00" {
		t.Errorf("journal after cancel: %+v", evs)
	}

	_, err = retrieve.Move(context.Background(), addr, retrieve.ClientOptions{CallingAE: "STRANGER", CalledAE: "RELAIS"}, "DEST", keys)
	var st dimse.Status
	if !errors.As(err, &st) || st.Code != dimse.StatusNotAuthorized {
		t.Fatalf("stranger's move: %v, want 0124", err)
	}
	out, err := exec.Command(relaisBin, "get", addr, "--aec", "RELAIS", "--aet", "STRANGER", "-q", "--out", t.TempDir(),
		"-k", "StudyInstanceUID="+keys.Studies[0]).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "status 0124") {
		t.Errorf("relais get by a stranger: %v\n%s", err, out)
	}
	refused := 0
	for _, ev := range journalKinds(t, s.data, "retrieve") {
		if ev.Status == "0124" && ev.AE == "STRANGER" {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals journaled, want 2", refused)
	}
	// Still serving: the whole study moves now.
	res, err = retrieve.Move(context.Background(), addr, retrieve.ClientOptions{CallingAE: "VIEWER", CalledAE: "RELAIS"}, "DEST", keys)
	if err != nil || res.Status.Code != dimse.StatusSuccess || res.Completed+res.Warning != n {
		t.Fatalf("move after cancel: %v %+v %v", res.Status, res.Counts, err)
	}
}
