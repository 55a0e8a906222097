package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/storage/badgerindex"
)

// ackedFiles runs storescu -v over files and returns those it saw
// acknowledged with success, until it ends (or is cut off).
func ackedFiles(out string) []string {
	var acked []string
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "Sending file: "); i >= 0 {
			cur = strings.TrimSpace(line[i+len("Sending file: "):])
		}
		if strings.Contains(line, "Received Store Response (Success)") && cur != "" {
			acked = append(acked, cur)
			cur = ""
		}
	}
	return acked
}

// TestKill9LosesNothingAcknowledged kills relais serve with SIGKILL while
// storescu sends, at several moments, restarts it on the same data, and
// checks every instance storescu saw acknowledged: present, byte-identical
// and indexed.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	data := t.TempDir()
	var allAcked []string
	for round, delay := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond, 50 * time.Millisecond} {
		files, err := testdicom.Study(filepath.Join(t.TempDir(), fmt.Sprint(round)), 400, "1.2.840.10008.1.2.1")
		if err != nil {
			t.Fatal(err)
		}
		s := startServer(t, data, "")
		h, p := s.hostPort()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "storescu", append([]string{"-v", "-aec", "RELAIS", h, p}, files...)...)
		cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		s.kill9()
		cmd.Wait()
		cancel()
		acked := ackedFiles(out.String())
		t.Logf("round %d: killed after %s, %d of %d acknowledged", round, delay, len(acked), len(files))
		if len(acked) == len(files) {
			t.Logf("round %d: storescu finished before the kill", round)
		}
		allAcked = append(allAcked, acked...)
		// Restart on the same data: recovery replays the journal.
		s2 := startServer(t, data, "")
		assertStoredIdentical(t, data, allAcked)
		s2.stop()
	}
	if len(allAcked) == 0 {
		t.Fatal("no instance was acknowledged in any round: the test proves nothing")
	}
	// Every acknowledged instance is in the index (server stopped: we may
	// open it).
	ix, err := badgerindex.Open(filepath.Join(data, "index"), badgerindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for _, f := range allAcked {
		_, meta, err := testdicom.DatasetOf(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ix.GetInstance(context.Background(), meta.MediaStorageSOPInstanceUID); err != nil {
			t.Errorf("%s acknowledged but not indexed: %v", filepath.Base(f), err)
		}
	}
}
