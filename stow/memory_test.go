package stow

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/storage/memindex"
)

// pattern generates n bytes without holding them.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) * 7)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// bigInstance returns a reader of one multipart part holding a CT instance
// whose Pixel Data is pixels bytes, generated while it is read.
func bigInstance(t testing.TB, pixels int64) (io.Reader, *testdicom.CT) {
	c := &testdicom.CT{PatientName: "Big^Instance", PatientID: "BIG", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(),
		Instance: 1, Rows: 8, Columns: 8}
	ds, err := c.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	// Drop the small Pixel Data (explicit VR LE OW header: 12 bytes) and
	// declare a large one instead.
	head := ds[:len(ds)-12-2*c.Rows*c.Columns]
	var meta bytes.Buffer
	if _, err := dicom.WriteFileMeta(&meta, dicom.FileMeta{MediaStorageSOPClassUID: dicom.CTImageStorage, MediaStorageSOPInstanceUID: c.SOPUID,
		TransferSyntaxUID: dicom.ExplicitVRLittleEndian}); err != nil {
		t.Fatal(err)
	}
	px := []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(px[8:], uint32(pixels))
	return io.MultiReader(strings.NewReader("--"+boundary+"\r\nContent-Type: application/dicom\r\n\r\n"), &meta, bytes.NewReader(head),
		bytes.NewReader(px), &pattern{n: pixels}, strings.NewReader("\r\n--"+boundary+"--\r\n")), c
}

func TestStoreBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB instance")
	}
	ctx := context.Background()
	p := newPipeline(t, t.TempDir(), memindex.New())
	const size = 200 << 20
	body, c := bigInstance(t, size)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
	}()
	start := time.Now()
	resp, err := Store(ctx, p, contentType, body, Options{})
	close(stop)
	wg.Wait()
	if err != nil || resp.HTTPStatus != 200 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	el := time.Since(start)
	delta := int64(peak) - int64(before.HeapInuse)
	t.Logf("200 MiB instance in %v (%.0f MB/s), HeapInuse before %.1f MiB, peak delta %.1f MiB",
		el, float64(size)/el.Seconds()/1e6, float64(before.HeapInuse)/(1<<20), float64(delta)/(1<<20))
	if delta > 32<<20 {
		t.Errorf("HeapInuse grew by %d MiB while storing a 200 MiB instance", delta>>20)
	}
	inst, err := p.Index.GetInstance(ctx, c.SOPUID)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Size < size {
		t.Errorf("stored %d bytes", inst.Size)
	}
}
