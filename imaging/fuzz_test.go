package imaging

import (
	"bytes"
	"io"
	"testing"

	"github.com/relais-health/relais/dicom"
)

// FuzzOpen feeds arbitrary bytes to Open, then reads and renders frame 1
// and decodes it: no panic, and no allocation out of proportion with the
// input (MaxPixels is lowered so that a header alone cannot make Render
// allocate much; data-backed allocations are bounded by the input).
func FuzzOpen(f *testing.F) {
	seeds := []fixture{
		{rows: 4, cols: 5, ba: 8, frames: 3, pixels: ramp(60, 1), wc: "100", ww: "50"},
		{ts: dicom.ImplicitVRLittleEndian, rows: 3, cols: 3, ba: 16, bs: 12, pr: 1, frames: 2, pixels: ramp(36, 2), slope: "2", intercept: "-5"},
		{ts: dicom.ExplicitVRBigEndian, rows: 3, cols: 3, ba: 16, frames: 2, pixels: ramp(36, 2)},
		{rows: 2, cols: 2, ba: 8, spp: 3, pc: 1, frames: 2, pixels: ramp(24, 3)},
		{rows: 2, cols: 2, ba: 8, spp: 3, photometric: "YBR_FULL_422", pixels: ramp(8, 3)},
		{rows: 3, cols: 3, ba: 1, frames: 3, pixels: ramp(4, 4)},
		{rows: 2, cols: 2, ba: 8, photometric: "PALETTE COLOR", pixels: ramp(4, 4), palette: [3][]uint16{{1, 2}, {3, 4}, {5, 6}}},
		{rows: 2, cols: 2, ba: 16, pr: 1, pixels: ramp(8, 4), voiLUT: &voiLUT{first: -2, bits: 8, data: []uint16{0, 9, 200, 255}}},
		{ts: dicom.JPEGBaseline8Bit, rows: 4, cols: 4, ba: 8, frames: 3, bot: []uint32{0, 18, 40},
			fragments: [][]byte{jpegLike(10, 1), jpegLike(4, 2), ramp(2, 2), jpegLike(8, 3)}},
		{ts: dicom.JPEGLSLossless, rows: 4, cols: 4, ba: 8, frames: 2, fragments: [][]byte{jpegLike(10, 1), ramp(4, 2), jpegLike(8, 3)}},
		{ts: dicom.HTJ2K, rows: 4, cols: 4, ba: 8, frames: 2, eot: []uint64{0, 18}, eotLengths: []uint64{10, 8},
			fragments: [][]byte{jpegLike(10, 1), jpegLike(8, 3)}},
		{ts: dicom.RLELossless, rows: 2, cols: 2, ba: 8, fragments: [][]byte{rleFrame([][]byte{{1, 2, 3, 4}})}},
	}
	for _, s := range seeds {
		b, err := s.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	saved := MaxPixels
	MaxPixels = 1 << 16
	defer func() { MaxPixels = saved }()
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if r, err := im.Frame(1); err == nil {
			n, _ := io.Copy(io.Discard, io.LimitReader(r, int64(len(b))+1))
			if n > int64(len(b)) {
				t.Fatalf("frame 1 longer (%d+) than the input (%d)", n, len(b))
			}
		}
		if d, err := im.DecodedFrame(1); err == nil && int64(len(d)) != im.FrameLength {
			t.Fatalf("decoded frame of %d bytes, FrameLength %d", len(d), im.FrameLength)
		}
		img, err := im.Render(1, RenderOptions{MaxWidth: 16, MaxHeight: 16})
		if err == nil && (img.Bounds().Dx() > 16 || img.Bounds().Dy() > 16) {
			t.Fatalf("rendered %v beyond 16×16", img.Bounds())
		}
		_, _ = im.Render(im.NumberOfFrames, RenderOptions{})
	})
}

// rleFrame encodes byte planes as an RLE frame with literal runs only.
func rleFrame(planes [][]byte) []byte {
	hdr := make([]byte, 64)
	hdr[0] = byte(len(planes))
	var body []byte
	for k, p := range planes {
		off := 64 + len(body)
		hdr[4+4*k], hdr[5+4*k], hdr[6+4*k] = byte(off), byte(off>>8), byte(off>>16)
		for len(p) > 0 {
			n := min(len(p), 128)
			body = append(body, byte(n-1))
			body = append(body, p[:n]...)
			p = p[n:]
		}
		if len(body)%2 == 1 {
			body = append(body, 0x80)
		}
	}
	return append(hdr, body...)
}

// FuzzPixels builds well-formed files from fuzzed Image Pixel module
// values and pixel bytes, so that the fuzzer explores the frame and
// rendering code rather than the Part 10 parser.
func FuzzPixels(f *testing.F) {
	f.Add(uint8(4), uint8(5), uint8(8), uint8(8), uint8(7), uint8(0), uint8(1), uint8(0), uint8(0), uint8(3), uint8(0), []byte("some pixel bytes here, sixty of them or so, more or less...."))
	f.Add(uint8(3), uint8(3), uint8(16), uint8(12), uint8(11), uint8(1), uint8(1), uint8(0), uint8(1), uint8(2), uint8(2), []byte("0123456789abcdef0123456789abcdef0123"))
	f.Add(uint8(2), uint8(2), uint8(8), uint8(8), uint8(7), uint8(0), uint8(3), uint8(1), uint8(4), uint8(1), uint8(0), []byte("rgbrgbrgbrgb"))
	f.Add(uint8(2), uint8(2), uint8(8), uint8(8), uint8(7), uint8(0), uint8(1), uint8(0), uint8(0), uint8(1), uint8(4), rleFrame([][]byte{{1, 2, 3, 4}}))
	photometrics := []string{"MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR", "CMYK"}
	syntaxes := []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian,
		dicom.JPEGBaseline8Bit, dicom.RLELossless, dicom.EncapsulatedUncompressedExplicitVRLittleEndian}
	saved := MaxPixels
	MaxPixels = 1 << 16
	defer func() { MaxPixels = saved }()
	f.Fuzz(func(t *testing.T, rows, cols, ba, bs, hb, pr, spp, pc, pi, frames, tsi uint8, data []byte) {
		fx := fixture{ts: syntaxes[int(tsi)%len(syntaxes)], rows: int(rows), cols: int(cols), ba: int(ba), bs: int(bs), hb: int(hb),
			pr: int(pr % 3), spp: int(spp%5) + 0, pc: int(pc % 3), photometric: photometrics[int(pi)%len(photometrics)],
			frames: int(frames % 8), wc: "10", ww: "100", palette: [3][]uint16{{1, 0xFF00}, {3, 4}, {5, 6}}}
		if fx.bs == 0 {
			fx.bs = 1 // the fixture defaults 0 to BitsAllocated
		}
		if fx.hb == 0 {
			fx.hb = -1
		}
		if ts, _ := dicom.LookupTransferSyntax(fx.ts); ts.Encapsulated {
			fx.fragments = [][]byte{data}
			if len(data) > 2 {
				fx.fragments = [][]byte{data[:len(data)/2], data[len(data)/2:]}
			}
		} else {
			fx.pixels = data
		}
		b, err := fx.encode()
		if err != nil {
			return
		}
		im, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for i := 1; i <= im.NumberOfFrames; i++ {
			if r, err := im.Frame(i); err == nil {
				if _, err := io.Copy(io.Discard, r); err != nil {
					t.Fatalf("reading frame %d: %v", i, err)
				}
			}
			if d, err := im.DecodedFrame(i); err == nil && int64(len(d)) != im.FrameLength {
				t.Fatalf("decoded frame of %d bytes, FrameLength %d", len(d), im.FrameLength)
			}
			_, _ = im.Render(i, RenderOptions{MaxWidth: 3})
			_, _ = im.Render(i, RenderOptions{WindowCenter: f64(3), WindowWidth: f64(0.5), Function: Sigmoid})
		}
	})
}
