package fsblob

import (
	"context"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/blobtest"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) storage.Blobs {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceBuffered runs the suite with direct I/O off (the path
// taken on filesystems without O_DIRECT).
func TestConformanceBuffered(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) storage.Blobs {
		s, err := NewWithOptions(t.TempDir(), Options{Buffered: true})
		if err != nil {
			t.Fatal(err)
		}
		if s.Direct() {
			t.Fatal("Buffered option ignored")
		}
		return s
	})
}

func TestDirectIOIsUsedWhereSupported(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Ask the filesystem ourselves: where it takes O_DIRECT the store must
	// use it (or the conformance suite would not exercise that path).
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|unix.O_DIRECT, 0o644)
	supported := err == nil
	if supported {
		f.Close()
	}
	if s.Direct() != supported {
		t.Fatalf("store direct=%v, filesystem supports O_DIRECT=%v", s.Direct(), supported)
	}
	t.Logf("O_DIRECT on %s: %v", dir, supported)
}

func TestReopenAndDirSync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := blobtest.Payload(7, 525*1024)
	blobtest.Put(t, s, "ab/cd/x.dcm", data)
	s.mu.Lock()
	n := len(s.unsynced)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d directories still unsynced after Commit", n)
	}
	// A new store on the same root sees the committed data.
	s2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Check(t, s2, "ab/cd/x.dcm", data)
}

func TestAbortedAndUncommittedLeaveNoData(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := s.Create(ctx, "ab/cd/partial.dcm")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(blobtest.Payload(1, 1<<20))
	// A crash here would leave a partial file visible to Walk (GC).
	found := false
	s.Walk(ctx, func(k string, n int64) error { found = k == "ab/cd/partial.dcm"; return nil })
	if !found {
		t.Fatal("in-progress blob not visible to Walk")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "ab/cd/partial.dcm")); !os.IsNotExist(err) {
		t.Fatalf("file still there after Abort: %v", err)
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
}

// BenchmarkWriteCommit measures writing a 525 KB blob in 16 KiB chunks plus
// Commit (fdatasync), sequentially, into an existing fan-out directory.
func BenchmarkWriteCommit(b *testing.B) {
	for _, sfr := range []bool{true, false} {
		b.Run(fmt.Sprintf("sync_file_range=%v", sfr), func(b *testing.B) {
			s, err := New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			s.noSFR.Store(!sfr)
			data := blobtest.Payload(1, 525*1024)
			ctx := context.Background()
			var commit time.Duration
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w, err := s.Create(ctx, fmt.Sprintf("%02x/%02x/%d.dcm", i%4, i%2, i))
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(data); off += 16 << 10 {
					w.Write(data[off:min(off+16<<10, len(data))])
				}
				t0 := time.Now()
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				commit += time.Since(t0)
			}
			b.ReportMetric(float64(commit.Microseconds())/float64(b.N), "µs-commit")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blobs/s")
		})
	}
}
