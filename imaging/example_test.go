package imaging_test

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/relais-health/relais/imaging"
	"github.com/relais-health/relais/internal/testdicom"
)

// A WADO-RS handler opens the stored blob (a storage.Blob is an
// io.ReaderAt with a Size), then serves raw frames or a rendering.
func Example() {
	ct := &testdicom.CT{SOPUID: testdicom.UID(), StudyUID: testdicom.UID(), SeriesUID: testdicom.UID()}
	file, err := ct.File()
	if err != nil {
		log.Fatal(err)
	}
	im, err := imaging.Open(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		log.Fatal(err)
	}
	// /frames/1
	mt, ts := im.FrameMediaType()
	r, err := im.Frame(1)
	if err != nil {
		log.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, r)
	fmt.Printf("frame 1: %d bytes of %s; transfer-syntax=%s\n", n, mt, ts)
	// /thumbnail
	img, err := im.Render(1, imaging.RenderOptions{MaxWidth: 32, MaxHeight: 32})
	if err != nil {
		log.Fatal(err)
	}
	var out bytes.Buffer
	if err := imaging.Encode(&out, img, imaging.MediaJPEG, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("thumbnail: %v, window %v/%v\n", img.Bounds().Size(), im.WindowCenter, im.WindowWidth)
	// Output:
	// frame 1: 8192 bytes of application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1
	// thumbnail: (32,32), window [40]/[80]
}
