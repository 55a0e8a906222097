package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/storage/s3blob"
	"github.com/relais-health/relais/storage/s3blob/s3test"
)

// TestIngestIntoS3 runs the ingest tests with blobs on a real S3 server
// (versitygw): storescu over several associations, byte identity read back
// through S3, and a kill -9 that loses nothing acknowledged.
func TestIngestIntoS3(t *testing.T) {
	cfg := s3test.Start(t)
	t.Setenv("TEST_RELAIS_AK", cfg.AccessKey)
	t.Setenv("TEST_RELAIS_SK", cfg.SecretKey)
	yaml := fmt.Sprintf(`
storage:
  blobs:
    backend: s3
    s3:
      endpoint: %s
      bucket: %s
      region: %s
      access_key_env: TEST_RELAIS_AK
      secret_key_env: TEST_RELAIS_SK
`, cfg.Endpoint, cfg.Bucket, cfg.Region)
	data := t.TempDir()
	s := startServer(t, data, yaml)
	h, p := s.hostPort()
	fx := fixtures(t, 3)
	var sent []string
	for _, name := range []string{"explicit", "bigendian", "jpeg"} {
		_, meta, _ := testdicom.DatasetOf(fx[name][0])
		// Each syntax's copies share SOP UIDs: make them distinct per syntax
		// by sending them to a fresh study copy.
		files := renumber(t, fx[name], name)
		out, err := dcmtk(t, "storescu", append(append(storescuProfile(t, meta.TransferSyntaxUID), "-aec", "RELAIS", h, p), files...)...)
		if err != nil {
			t.Fatalf("storescu %s: %v\n%s", name, err, out)
		}
		sent = append(sent, files...)
	}
	s.stop()

	// Read every blob back through S3 and compare with what was sent.
	store, err := s3blob.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stored := storedEvents(t, data)
	for _, f := range sent {
		want, meta, _ := testdicom.DatasetOf(f)
		ev, ok := stored[meta.MediaStorageSOPInstanceUID]
		if !ok {
			t.Errorf("%s not stored", f)
			continue
		}
		var inst struct {
			BlobKey string `json:"blob"`
		}
		json.Unmarshal(ev.Data, &inst)
		b, err := store.Open(context.Background(), inst.BlobKey)
		if err != nil {
			t.Errorf("S3 object %s: %v", inst.BlobKey, err)
			continue
		}
		all, err := io.ReadAll(b)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		_, off, err := dicom.ReadFileMeta(bytes.NewReader(all))
		if err != nil {
			t.Fatalf("S3 object %s: %v", inst.BlobKey, err)
		}
		if !bytes.Equal(all[off:], want) {
			t.Errorf("%s: data set in S3 differs from the file", filepath.Base(f))
		}
	}

	// kill -9 while storescu sends: every acknowledged instance is in S3.
	s2 := startServer(t, data, yaml)
	h, p = s2.hostPort()
	files, _ := testdicom.Study(filepath.Join(t.TempDir(), "kill"), 300, dicom.ExplicitVRLittleEndian)
	cmd := exec.Command("storescu", append([]string{"-v", "-aec", "RELAIS", h, p}, files...)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Start()
	time.Sleep(700 * time.Millisecond)
	s2.kill9()
	cmd.Wait()
	acked := ackedFiles(out.String())
	t.Logf("S3: %d of %d acknowledged before kill -9", len(acked), len(files))
	s3 := startServer(t, data, yaml)
	s3.stop()
	stored = storedEvents(t, data)
	for _, f := range acked {
		_, meta, _ := testdicom.DatasetOf(f)
		ev, ok := stored[meta.MediaStorageSOPInstanceUID]
		if !ok {
			t.Errorf("%s acknowledged, not journaled", filepath.Base(f))
			continue
		}
		var inst struct {
			BlobKey string `json:"blob"`
			Size    int64  `json:"size"`
		}
		json.Unmarshal(ev.Data, &inst)
		if n, err := store.Stat(context.Background(), inst.BlobKey); err != nil || n != inst.Size {
			t.Errorf("%s acknowledged, S3 object %s: size %d err %v, want %d", filepath.Base(f), inst.BlobKey, n, err, inst.Size)
		}
	}
}

// renumber gives copies of files fresh SOP Instance UIDs of the same length
// (so the meta group length stays right) by editing the UID's last digit run.
func renumber(t *testing.T, files []string, tag string) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, meta, _ := testdicom.DatasetOf(f)
		old := meta.MediaStorageSOPInstanceUID
		nu := old[:len(old)-4] + fmt.Sprintf("%d%03d", len(tag)%10, i)
		b = bytes.ReplaceAll(b, []byte(old), []byte(nu))
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}
