package imaging

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/relais-health/relais/dicom"
)

func openBytes(t testing.TB, b []byte) *Image {
	t.Helper()
	im, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return im
}

func readFrame(t testing.TB, im *Image, i int) []byte {
	t.Helper()
	r, err := im.Frame(i)
	if err != nil {
		t.Fatalf("Frame(%d): %v", i, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("Frame(%d): reading: %v", i, err)
	}
	return b
}

func jpegLike(n, seed int) []byte {
	b := ramp(n, seed)
	b[0], b[1], b[2] = 0xFF, 0xD8, 0xFF
	return b
}

func TestFrames(t *testing.T) {
	f8 := ramp(3*4*5, 1)                   // 3 frames of 4×5, 8 bit
	f16 := ramp(2*2*3*3, 2)                // 3 frames of 3×3, 16 bit
	rgb := ramp(2*3*2*2, 3)                // 2 frames of 2×2 RGB
	bits := []byte{0xB5, 0x3C, 0xE7, 0x9A} // 3 frames of 3×3 = 9 bits, 27 bits
	j1, j2, j3 := jpegLike(10, 1), jpegLike(6, 2), jpegLike(8, 3)
	j2a, j2b := j2[:4], j2[4:]
	cases := []struct {
		name   string
		f      fixture
		frames [][]byte
		media  string
		ts     string
	}{
		{"8-bit single frame", fixture{rows: 4, cols: 5, ba: 8, pixels: f8[:20]}, [][]byte{f8[:20]},
			MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"8-bit multi-frame", fixture{rows: 4, cols: 5, ba: 8, frames: 3, pixels: f8}, [][]byte{f8[:20], f8[20:40], f8[40:]},
			MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"16-bit implicit multi-frame", fixture{ts: dicom.ImplicitVRLittleEndian, rows: 3, cols: 3, ba: 16, bs: 12, frames: 2, pixels: f16},
			[][]byte{f16[:18], f16[18:]}, MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"16-bit big endian swapped", fixture{ts: dicom.ExplicitVRBigEndian, rows: 3, cols: 3, ba: 16, frames: 2, pixels: f16},
			[][]byte{f16[:18], f16[18:]}, MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"8-bit big endian OW word-swapped", fixture{ts: dicom.ExplicitVRBigEndian, rows: 4, cols: 5, ba: 8, frames: 3, pixels: f8, pixVR: dicom.VROW},
			[][]byte{f8[:20], f8[20:40], f8[40:]}, MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"8-bit big endian OB", fixture{ts: dicom.ExplicitVRBigEndian, rows: 4, cols: 5, ba: 8, frames: 3, pixels: f8},
			[][]byte{f8[:20], f8[20:40], f8[40:]}, MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"RGB planar multi-frame", fixture{rows: 2, cols: 2, spp: 3, pc: 1, ba: 8, frames: 2, pixels: rgb},
			[][]byte{rgb[:12], rgb[12:]}, MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"1-bit frames packed across bytes", fixture{rows: 3, cols: 3, ba: 1, frames: 3, pixels: bits},
			// frame 1 bits 0–8, frame 2 bits 9–17, frame 3 bits 18–26 (LSB first)
			[][]byte{{0xB5, 0x00}, {0x9E, 0x01}, {0xB9, 0x00}}, MediaOctetStream, dicom.ExplicitVRLittleEndian},
		{"encapsulated with BOT, multi-fragment frame", fixture{ts: dicom.JPEGBaseline8Bit, rows: 4, cols: 4, ba: 8, frames: 3,
			bot: []uint32{0, 18, 40}, fragments: [][]byte{j1, j2a, j2b, j3}},
			[][]byte{j1, j2, j3}, MediaJPEG, dicom.JPEGBaseline8Bit},
		{"encapsulated without BOT, one fragment per frame", fixture{ts: dicom.JPEG2000Lossless, rows: 4, cols: 4, ba: 8, frames: 3,
			fragments: [][]byte{j1, j2, j3}}, [][]byte{j1, j2, j3}, MediaJP2, dicom.JPEG2000Lossless},
		{"encapsulated without BOT, start markers", fixture{ts: dicom.JPEGLSLossless, rows: 4, cols: 4, ba: 8, frames: 3,
			fragments: [][]byte{j1, j2a, j2b, j3}}, [][]byte{j1, j2, j3}, MediaJPEGLS, dicom.JPEGLSLossless},
		{"single frame, several fragments", fixture{ts: dicom.JPEGLossless, rows: 4, cols: 4, ba: 16,
			fragments: [][]byte{j1, j2a, j2b}}, [][]byte{append(append(append([]byte(nil), j1...), j2a...), j2b...)}, MediaJPEG, dicom.JPEGLossless},
		{"extended offset table", fixture{ts: dicom.HTJ2KLossless, rows: 4, cols: 4, ba: 8, frames: 3,
			eot: []uint64{0, 18, 32}, eotLengths: []uint64{10, 6, 8}, fragments: [][]byte{j1, j2, j3}},
			[][]byte{j1, j2, j3}, MediaHTJ2K, dicom.HTJ2KLossless},
		{"BOT with wrong count ignored", fixture{ts: dicom.RLELossless, rows: 4, cols: 4, ba: 8, frames: 3,
			bot: []uint32{0, 18}, fragments: [][]byte{j1, j2, j3}}, [][]byte{j1, j2, j3}, MediaRLE, dicom.RLELossless},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			im := openBytes(t, c.f.build(t))
			if im.NumberOfFrames != len(c.frames) {
				t.Fatalf("NumberOfFrames %d, want %d", im.NumberOfFrames, len(c.frames))
			}
			for i, want := range c.frames {
				if got := readFrame(t, im, i+1); !bytes.Equal(got, want) {
					t.Errorf("frame %d: got % x, want % x", i+1, got, want)
				}
			}
			for _, i := range []int{0, -1, len(c.frames) + 1} {
				if _, err := im.Frame(i); !errors.Is(err, ErrFrameRange) {
					t.Errorf("Frame(%d): %v, want ErrFrameRange", i, err)
				}
			}
			mt, ts := im.FrameMediaType()
			if mt != c.media || ts != c.ts {
				t.Errorf("FrameMediaType = %s, %s; want %s, %s", mt, ts, c.media, c.ts)
			}
			if !im.TransferSyntax.Encapsulated {
				for i, want := range c.frames {
					got, err := im.DecodedFrame(i + 1)
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("DecodedFrame(%d) = % x, %v; want % x", i+1, got, err, want)
					}
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	cases := []struct {
		name string
		f    fixture
		want error
	}{
		{"zero rows", fixture{rows: 0, cols: 4, ba: 8, pixels: make([]byte, 16)}, ErrInvalid},
		{"no rows", fixture{noRows: true, cols: 4, ba: 8, pixels: make([]byte, 16)}, ErrInvalid},
		{"frames beyond the data", fixture{rows: 4, cols: 4, ba: 8, frames: 3, pixels: make([]byte, 32)}, ErrInvalid},
		{"absurd frame count", fixture{rows: 4, cols: 4, ba: 8, frames: 2000000000, pixels: make([]byte, 32)}, ErrInvalid},
		{"absurd size", fixture{rows: 65535, cols: 65535, ba: 16, pixels: make([]byte, 32)}, ErrTooLarge},
		{"bits stored over allocated", fixture{rows: 2, cols: 2, ba: 8, bs: 12, pixels: make([]byte, 4)}, ErrInvalid},
		{"bits allocated 12", fixture{rows: 2, cols: 2, ba: 12, pixels: make([]byte, 6)}, ErrInvalid},
		{"high bit beyond allocated", fixture{rows: 2, cols: 2, ba: 8, bs: 8, hb: 9, pixels: make([]byte, 4)}, ErrInvalid},
		{"fewer fragments than frames", fixture{ts: dicom.JPEGBaseline8Bit, rows: 2, cols: 2, ba: 8, frames: 3,
			fragments: [][]byte{jpegLike(4, 1), jpegLike(4, 2)}}, ErrInvalid},
		{"no start markers", fixture{ts: dicom.JPEGBaseline8Bit, rows: 2, cols: 2, ba: 8, frames: 2,
			fragments: [][]byte{jpegLike(4, 1), ramp(4, 2), ramp(4, 3)}}, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.f.build(t)
			_, err := Open(bytes.NewReader(b), int64(len(b)))
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
		})
	}
	// A lying Pixel Data length (past the end of the file).
	b := fixture{rows: 2, cols: 2, ba: 8, pixels: make([]byte, 4), pixelLengthOverride: 1 << 30}.build(t)
	if _, err := Open(bytes.NewReader(b), int64(len(b))); err == nil {
		t.Fatal("Open accepted a pixel data length past the end of the file")
	}
	// A truncated file.
	b = fixture{rows: 8, cols: 8, ba: 8, pixels: make([]byte, 64)}.build(t)
	if _, err := Open(bytes.NewReader(b[:len(b)-10]), int64(len(b)-10)); err == nil {
		t.Fatal("Open accepted truncated pixel data")
	}
	// No pixel data at all.
	b = fixture{rows: 2, cols: 2, ba: 8, pixels: make([]byte, 4)}.build(t)
	if _, err := Open(bytes.NewReader(b[:len(b)-16]), int64(len(b)-16)); !errors.Is(err, ErrNoPixelData) {
		t.Fatalf("Open without pixel data: %v", err)
	}
}

func TestEncapsulatedLies(t *testing.T) {
	// A BOT pointing into the middle of a fragment makes the frame fail, not panic.
	b := fixture{ts: dicom.JPEGBaseline8Bit, rows: 2, cols: 2, ba: 8, frames: 2,
		bot: []uint32{0, 6}, fragments: [][]byte{jpegLike(10, 1), jpegLike(10, 2)}}.build(t)
	im := openBytes(t, b)
	if _, err := im.Frame(1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Frame(1) with a lying BOT: %v", err)
	}
	// A fragment length past the end of the file.
	b = fixture{ts: dicom.JPEGBaseline8Bit, rows: 2, cols: 2, ba: 8, frames: 1,
		fragments: [][]byte{jpegLike(10, 1)}}.build(t)
	// the fragment item header is 8+10 bytes before the 8-byte delimiter
	pos := len(b) - 8 - 10 - 4
	b[pos], b[pos+1], b[pos+2], b[pos+3] = 0xF0, 0xFF, 0xFF, 0x7F
	if im, err := Open(bytes.NewReader(b), int64(len(b))); err == nil {
		if _, err := im.Frame(1); !errors.Is(err, ErrInvalid) {
			t.Errorf("Frame(1) with a lying fragment length: %v", err)
		}
	}
}

func TestVideoFrames(t *testing.T) {
	b := fixture{ts: dicom.MPEG4HP41, rows: 4, cols: 4, ba: 8, spp: 3, photometric: "YBR_PARTIAL_420", frames: 30,
		fragments: [][]byte{ramp(100, 1)}}.build(t)
	im := openBytes(t, b)
	if _, err := im.Frame(1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("video Frame: %v", err)
	}
	if mt, _ := im.FrameMediaType(); mt != MediaMP4 {
		t.Errorf("video media type %s", mt)
	}
}

// sectionCounter records the byte ranges read.
type countingReaderAt struct {
	r    io.ReaderAt
	read int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

func TestRenderReadsOneFrame(t *testing.T) {
	const rows, cols, frames = 512, 512, 8
	var px []byte
	for range frames {
		px = append(px, ctPixels(rows, cols, 16, false)...)
	}
	b := fixture{rows: rows, cols: cols, ba: 16, pr: 1, frames: frames, pixels: px, wc: "40", ww: "400"}.build(t)
	cr := &countingReaderAt{r: bytes.NewReader(b)}
	im, err := Open(cr, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if cr.read > 32<<10 {
		t.Errorf("Open read %d bytes", cr.read)
	}
	cr.read = 0
	if _, err := im.Render(5, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := int64(rows * cols * 2); cr.read != want {
		t.Errorf("Render read %d bytes, want one frame of %d", cr.read, want)
	}
}

// eofReaderAt reports io.EOF with full reads that reach the end, as the
// io.ReaderAt contract allows.
type eofReaderAt struct{ b []byte }

func (e eofReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(e.b).ReadAt(p, off)
	if err == nil && off+int64(n) == int64(len(e.b)) {
		err = io.EOF
	}
	return n, err
}

func TestReaderAtEOF(t *testing.T) {
	for _, f := range []fixture{
		{rows: 4, cols: 4, ba: 16, pixels: ramp(32, 1)},
		{ts: dicom.ExplicitVRBigEndian, rows: 4, cols: 4, ba: 16, pixels: ramp(32, 1)},
		{ts: dicom.RLELossless, rows: 2, cols: 2, ba: 8, fragments: [][]byte{rleFrame([][]byte{{1, 2, 3, 4}})}},
	} {
		b := f.build(t)
		im, err := Open(eofReaderAt{b}, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := im.DecodedFrame(1); err != nil {
			t.Errorf("%s: DecodedFrame: %v", im.TransferSyntax.Name, err)
		}
		if _, err := im.Render(1, RenderOptions{}); err != nil {
			t.Errorf("%s: Render: %v", im.TransferSyntax.Name, err)
		}
	}
}

// TestOpenReadsLittleOfEncapsulated checks that locating the frames of an
// encapsulated multi-frame instance without offset table reads the
// fragment headers, not the fragments.
func TestOpenReadsLittleOfEncapsulated(t *testing.T) {
	var frags [][]byte
	for i := range 20 {
		frags = append(frags, jpegLike(100<<10, i))
	}
	b := fixture{ts: dicom.JPEGBaseline8Bit, rows: 512, cols: 512, ba: 8, frames: 20, fragments: frags}.build(t)
	cr := &countingReaderAt{r: bytes.NewReader(b)}
	im, err := Open(cr, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if cr.read > 21*chunkSize+32<<10 {
		t.Errorf("Open read %d bytes of %d", cr.read, len(b))
	}
	cr.read = 0
	if got := readFrame(t, im, 7); !bytes.Equal(got, frags[6]) {
		t.Error("frame 7 differs")
	}
	if cr.read > 100<<10+chunkSize {
		t.Errorf("Frame(7) read %d bytes", cr.read)
	}
}
