package imaging

// Rendering is checked against DCMTK (dcmj2pnm, img2dcm, dcmcrle), a
// toolkit nobody here wrote. The tests are skipped when the tools are not
// installed; a Render error always fails them.

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (dcmtk)", name)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// dcmj2pnm renders frame of the file b with dcmj2pnm and the given options.
func dcmj2pnm(t *testing.T, b []byte, frame int, opts ...string) image.Image {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.png")
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--write-png", "+F", fmt.Sprint(frame)}, opts...)
	run(t, "dcmj2pnm", append(args, in, out)...)
	return readPNG(t, out)
}

// compare checks got against want channel by channel (gray or RGB): every
// sample within tol levels; it returns the largest difference and the mean
// absolute difference.
func compare(t *testing.T, got, want image.Image, tol int) (maxDiff int, mean float64) {
	t.Helper()
	gb, wb := got.Bounds(), want.Bounds()
	if gb.Dx() != wb.Dx() || gb.Dy() != wb.Dy() {
		t.Fatalf("size %v, dcmtk %v", gb, wb)
	}
	_, gray := want.(*image.Gray)
	bad, total := 0, 0.0
	n := 0
	for y := 0; y < gb.Dy(); y++ {
		for x := 0; x < gb.Dx(); x++ {
			var g, w [3]int
			if gray {
				g[0] = int(color.GrayModel.Convert(got.At(gb.Min.X+x, gb.Min.Y+y)).(color.Gray).Y)
				w[0] = int(want.(*image.Gray).GrayAt(wb.Min.X+x, wb.Min.Y+y).Y)
			} else {
				r1, g1, b1, _ := got.At(gb.Min.X+x, gb.Min.Y+y).RGBA()
				r2, g2, b2, _ := want.At(wb.Min.X+x, wb.Min.Y+y).RGBA()
				g = [3]int{int(r1 >> 8), int(g1 >> 8), int(b1 >> 8)}
				w = [3]int{int(r2 >> 8), int(g2 >> 8), int(b2 >> 8)}
			}
			ch := 3
			if gray {
				ch = 1
			}
			for c := 0; c < ch; c++ {
				d := g[c] - w[c]
				if d < 0 {
					d = -d
				}
				maxDiff = max(maxDiff, d)
				total += float64(d)
				n++
				if d > tol {
					if bad < 5 {
						t.Errorf("pixel (%d,%d) channel %d: got %d, dcmtk %d", x, y, c, g[c], w[c])
					}
					bad++
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d samples differ by more than %d", bad, n, tol)
	}
	return maxDiff, total / float64(n)
}

func f64(v float64) *float64 { return &v }

// renderTolerance is the tolerance of uncompressed renderings against
// dcmtk: ±1 level (rounding of the VOI LUT output).
const renderTolerance = 1

func TestRenderMatchesDCMTK(t *testing.T) {
	needTool(t, "dcmj2pnm")
	const rows, cols = 96, 128
	ct := ctPixels(rows, cols, 16, false)
	ct12 := ctPixels(rows, cols, 12, true) // signed 12 bits in 16, junk above the high bit
	ctBE := fixture{ts: dicom.ExplicitVRBigEndian, rows: rows, cols: cols, ba: 16, pr: 1, frames: 2,
		pixels: append(append([]byte(nil), ct...), ct12...), slope: "1", intercept: "0"}
	ctRef := &testdicom.CT{Rows: rows, Columns: cols, SOPUID: testdicom.UID(), StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), Instance: 3}
	ctRefFile, err := ctRef.File()
	if err != nil {
		t.Fatal(err)
	}
	mono1 := ramp(rows*cols, 5)
	rgb := make([]byte, 3*rows*cols)
	rgbPlanar := make([]byte, 3*rows*cols)
	for k := 0; k < rows*cols; k++ {
		x, y := k%cols, k/cols
		r, g, b := byte(2*x), byte(2*y), byte((x*y)/40)
		rgb[3*k], rgb[3*k+1], rgb[3*k+2] = r, g, b
		rgbPlanar[k], rgbPlanar[rows*cols+k], rgbPlanar[2*rows*cols+k] = r, g, b
	}
	var pal [3][]uint16
	for c := range pal {
		pal[c] = make([]uint16, 256)
		for k := range pal[c] {
			pal[c][k] = uint16((k*(c+1)*37)%256) << 8
		}
	}
	lutData := make([]uint16, 4096)
	for k := range lutData {
		lutData[k] = uint16(4095 / (1 + math.Exp(-float64(k-1100)/150)))
	}
	cases := []struct {
		name  string
		file  []byte
		frame int
		opt   RenderOptions
		dcmtk []string
	}{
		{"CT VOI LUT sequence", fixture{rows: rows, cols: cols, ba: 16, pr: 1, pixels: ct, slope: "1", intercept: "0",
			voiLUT: &voiLUT{first: -1024, bits: 12, data: lutData}}.build(t), 1, RenderOptions{}, []string{"+Wl", "1"}},
		{"CT signed 16-bit, window 40/400", fixture{rows: rows, cols: cols, ba: 16, pr: 1, pixels: ct, slope: "1", intercept: "0"}.build(t),
			1, RenderOptions{WindowCenter: f64(40), WindowWidth: f64(400)}, []string{"+Ww", "40", "400"}},
		{"CT signed 12-of-16 bits, rescale 2/-24, window 50/350", fixture{rows: rows, cols: cols, ba: 16, bs: 12, pr: 1, pixels: ct12, slope: "2", intercept: "-24"}.build(t),
			1, RenderOptions{WindowCenter: f64(50), WindowWidth: f64(350)}, []string{"+Ww", "50", "350"}},
		{"CT header window 40/400", fixture{rows: rows, cols: cols, ba: 16, pr: 1, pixels: ct, slope: "1", intercept: "-1", wc: `40\300`, ww: `400\1500`}.build(t),
			1, RenderOptions{}, []string{"+Wi", "1"}},
		{"CT no window: min-max", fixture{rows: rows, cols: cols, ba: 16, pr: 1, pixels: ct, slope: "1", intercept: "-1024"}.build(t),
			1, RenderOptions{}, []string{"+Wm"}},
		{"CT sigmoid window", fixture{rows: rows, cols: cols, ba: 16, pr: 1, pixels: ct, slope: "1", intercept: "0"}.build(t),
			1, RenderOptions{WindowCenter: f64(40), WindowWidth: f64(400), Function: Sigmoid}, []string{"+Ww", "40", "400", "+Wfs"}},
		{"CT big endian frame 2, window 0/2000", ctBE.build(t),
			2, RenderOptions{WindowCenter: f64(0), WindowWidth: f64(2000)}, []string{"+Ww", "0", "2000"}},
		{"testdicom CT unsigned 12-bit, header window", ctRefFile, 1, RenderOptions{}, []string{"+Wi", "1"}},
		{"MONOCHROME1 8-bit window 128/200", fixture{rows: rows, cols: cols, ba: 8, photometric: "MONOCHROME1", pixels: mono1}.build(t),
			1, RenderOptions{WindowCenter: f64(128), WindowWidth: f64(200)}, []string{"+Ww", "128", "200"}},
		{"MONOCHROME1 8-bit min-max", fixture{rows: rows, cols: cols, ba: 8, photometric: "MONOCHROME1", pixels: mono1[:rows*cols]}.build(t),
			1, RenderOptions{}, []string{"+Wm"}},
		{"RGB pixel-interleaved", fixture{rows: rows, cols: cols, ba: 8, spp: 3, pixels: rgb}.build(t), 1, RenderOptions{}, nil},
		{"RGB planar", fixture{rows: rows, cols: cols, ba: 8, spp: 3, pc: 1, pixels: rgbPlanar}.build(t), 1, RenderOptions{}, nil},
		// dcmtk's YBR_FULL conversion centres chroma slightly differently
		// from PS3.3 C.7.6.3.1.2 (128): ±2.
		{"YBR_FULL", fixture{rows: rows, cols: cols, ba: 8, spp: 3, photometric: "YBR_FULL", pixels: rgb}.build(t), 1, RenderOptions{}, nil},
		{"PALETTE COLOR", fixture{rows: rows, cols: cols, ba: 8, photometric: "PALETTE COLOR", pixels: mono1, palette: pal}.build(t), 1, RenderOptions{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			im := openBytes(t, c.file)
			got, err := im.Render(c.frame, c.opt)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			want := dcmj2pnm(t, c.file, c.frame, c.dcmtk...)
			tol := renderTolerance
			if strings.HasPrefix(c.name, "YBR") {
				tol = 2
			}
			maxDiff, mean := compare(t, got, want, tol)
			t.Logf("max difference %d, mean %.4f", maxDiff, mean)
		})
	}
}

// TestJPEGBaselineMatchesDCMTK renders JPEG Baseline instances made by
// img2dcm from JPEGs encoded by image/jpeg. Both decoders are IJG-style
// but differ in IDCT and upsampling: tolerance ±3 levels per sample, mean
// under 0.5.
func TestJPEGBaselineMatchesDCMTK(t *testing.T) {
	needTool(t, "img2dcm")
	needTool(t, "dcmj2pnm")
	const w, h = 160, 120
	col := image.NewRGBA(image.Rect(0, 0, w, h))
	gray := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			r := math.Hypot(float64(x-w/2), float64(y-h/2))
			col.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(128 + 100*math.Sin(r/9)), 255})
			gray.SetGray(x, y, color.Gray{uint8(128 + 100*math.Cos(r/11))})
		}
	}
	for _, c := range []struct {
		name string
		img  image.Image
	}{{"colour", col}, {"grayscale", gray}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var jb bytes.Buffer
			if err := jpeg.Encode(&jb, c.img, &jpeg.Options{Quality: 90}); err != nil {
				t.Fatal(err)
			}
			jp, dp := filepath.Join(dir, "in.jpg"), filepath.Join(dir, "out.dcm")
			if err := os.WriteFile(jp, jb.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "img2dcm", "-i", "JPEG", jp, dp)
			b, err := os.ReadFile(dp)
			if err != nil {
				t.Fatal(err)
			}
			im := openBytes(t, b)
			if im.TransferSyntax.UID != dicom.JPEGBaseline8Bit {
				t.Fatalf("img2dcm wrote %s", im.TransferSyntax.UID)
			}
			if mt, _ := im.FrameMediaType(); mt != MediaJPEG {
				t.Errorf("media type %s", mt)
			}
			if f := readFrame(t, im, 1); !bytes.HasPrefix(f, jb.Bytes()[:2]) || len(f) < jb.Len() {
				t.Errorf("frame of %d bytes does not hold the %d-byte JPEG", len(f), jb.Len())
			}
			// Grayscale: the identity window, to compare the decoders
			// without a min-max stretch amplifying their differences.
			var opt RenderOptions
			var opts []string
			if c.name == "grayscale" {
				opt = RenderOptions{WindowCenter: f64(128), WindowWidth: f64(256)}
				opts = []string{"+Ww", "128", "256"}
			}
			got, err := im.Render(1, opt)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			want := dcmj2pnm(t, b, 1, opts...)
			maxDiff, mean := compare(t, got, want, 3)
			t.Logf("%s (%s): max difference %d, mean %.4f", c.name, im.Photometric, maxDiff, mean)
			if mean > 0.5 {
				t.Errorf("mean difference %.3f over 0.5", mean)
			}
		})
	}
}

// TestRLEMatchesDCMTK compresses instances with dcmcrle and checks that the
// decoded frames are exactly the original pixels, and that they render like
// the uncompressed originals.
func TestRLEMatchesDCMTK(t *testing.T) {
	needTool(t, "dcmcrle")
	const rows, cols = 64, 80
	var ct []byte
	for f := range 3 {
		px := ctPixels(rows, cols, 16, false)
		for k := range px {
			px[k] ^= byte(f * (k % 3))
		}
		ct = append(ct, px...)
	}
	rgb := ramp(2*3*rows*cols, 9)
	for k := 0; k < len(rgb)/2; k++ {
		rgb[k] = byte(k / 200) // long runs
	}
	cases := []struct {
		name string
		f    fixture
		args []string
	}{
		{"CT signed 16-bit, 3 frames", fixture{rows: rows, cols: cols, ba: 16, pr: 1, frames: 3, pixels: ct, wc: "40", ww: "400"}, nil},
		{"RGB 8-bit, 2 frames", fixture{rows: rows, cols: cols, ba: 8, spp: 3, frames: 2, pixels: rgb}, nil},
		{"RGB 8-bit planar, 2 frames, no offset table", fixture{rows: rows, cols: cols, ba: 8, spp: 3, pc: 1, frames: 2, pixels: rgb}, []string{"-ot"}},
		{"CT 3 frames, 1 KiB fragments with offset table", fixture{rows: rows, cols: cols, ba: 16, pr: 1, frames: 3, pixels: ct}, []string{"+fs", "1"}},
		{"8-bit odd size", fixture{rows: 7, cols: 9, ba: 8, pixels: ramp(63, 4)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := c.f.build(t)
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "rle.dcm")
			if err := os.WriteFile(in, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "dcmcrle", append(c.args, in, out)...)
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			im := openBytes(t, b)
			ref := openBytes(t, orig)
			if im.TransferSyntax.UID != dicom.RLELossless {
				t.Fatalf("dcmcrle wrote %s", im.TransferSyntax.UID)
			}
			if mt, ts := im.FrameMediaType(); mt != MediaRLE || ts != dicom.RLELossless {
				t.Errorf("media type %s %s", mt, ts)
			}
			for i := 1; i <= ref.NumberOfFrames; i++ {
				want := readFrame(t, ref, i)
				got, err := im.DecodedFrame(i)
				if err != nil {
					t.Fatalf("DecodedFrame(%d): %v", i, err)
				}
				if im.PlanarConfiguration != ref.PlanarConfiguration {
					t.Fatalf("planar configuration %d after dcmcrle, was %d", im.PlanarConfiguration, ref.PlanarConfiguration)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("DecodedFrame(%d) differs from the original pixels", i)
				}
				gi, err := im.Render(i, RenderOptions{})
				if err != nil {
					t.Fatalf("Render(%d): %v", i, err)
				}
				wi, err := ref.Render(i, RenderOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if md, _ := compare(t, gi, wi, 0); md != 0 {
					t.Errorf("frame %d renders differently from the original", i)
				}
			}
		})
	}
}

// TestJPEGPhotometricMatchesDCMTK wraps one image/jpeg stream (YCbCr
// coded, no JFIF marker) as JPEG Baseline with Photometric Interpretation
// YBR_FULL_422 and RGB: without colour markers in the stream, both Render
// and dcmj2pnm follow the header (tolerance ±3, as above).
func TestJPEGPhotometricMatchesDCMTK(t *testing.T) {
	needTool(t, "dcmj2pnm")
	const w, h = 63, 47 // odd: edge chroma samples
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), uint8(2*x + 3*y), 255})
		}
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	if jpegColorMarkers(jb.Bytes()) {
		t.Fatal("image/jpeg wrote a JFIF or Adobe marker")
	}
	for _, pi := range []string{"YBR_FULL_422", "RGB"} {
		t.Run(pi, func(t *testing.T) {
			b := fixture{ts: dicom.JPEGBaseline8Bit, rows: h, cols: w, ba: 8, spp: 3, photometric: pi, fragments: [][]byte{jb.Bytes()}}.build(t)
			got, err := openBytes(t, b).Render(1, RenderOptions{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			maxDiff, mean := compare(t, got, dcmj2pnm(t, b, 1), 3)
			t.Logf("max difference %d, mean %.4f", maxDiff, mean)
		})
	}
}

// TestDcmcjpegMultiFrame compresses multi-frame 8-bit instances with
// dcmcjpeg (JPEG Baseline, with and without offset table, whole and
// 1 KiB fragments) and checks every frame renders like dcmj2pnm renders it
// (tolerance ±3 levels per sample, as for the JPEG test above).
func TestDcmcjpegMultiFrame(t *testing.T) {
	needTool(t, "dcmcjpeg")
	needTool(t, "dcmj2pnm")
	const rows, cols, frames = 48, 64, 3
	mono := make([]byte, frames*rows*cols)
	rgb := make([]byte, frames*3*rows*cols)
	for f := range frames {
		for y := range rows {
			for x := range cols {
				k := f*rows*cols + y*cols + x
				mono[k] = uint8(128 + 100*math.Sin(float64(x+10*f)/6)*math.Cos(float64(y)/9))
				rgb[3*k], rgb[3*k+1], rgb[3*k+2] = uint8(3*x+40*f), uint8(4*y), uint8(128+90*math.Sin(float64(x*y)/150))
			}
		}
	}
	for _, c := range []struct {
		name string
		f    fixture
		args []string
		opt  RenderOptions
		wopt []string
	}{
		{"monochrome with offset table", fixture{rows: rows, cols: cols, ba: 8, frames: frames, pixels: mono}, nil,
			RenderOptions{WindowCenter: f64(128), WindowWidth: f64(256)}, []string{"+Ww", "128", "256"}},
		{"monochrome, 1 KiB fragments, no offset table", fixture{rows: rows, cols: cols, ba: 8, frames: frames, pixels: mono}, []string{"+fs", "1", "-ot"},
			RenderOptions{WindowCenter: f64(100), WindowWidth: f64(120)}, []string{"+Ww", "100", "120"}},
		{"RGB, no offset table", fixture{rows: rows, cols: cols, ba: 8, spp: 3, frames: frames, pixels: rgb}, []string{"-ot"}, RenderOptions{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "jpeg.dcm")
			if err := os.WriteFile(in, c.f.build(t), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "dcmcjpeg", append(append([]string{"+eb"}, c.args...), in, out)...)
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			im := openBytes(t, b)
			if im.TransferSyntax.UID != dicom.JPEGBaseline8Bit || im.NumberOfFrames != frames {
				t.Fatalf("dcmcjpeg wrote %s with %d frames", im.TransferSyntax.UID, im.NumberOfFrames)
			}
			for i := 1; i <= frames; i++ {
				got, err := im.Render(i, c.opt)
				if err != nil {
					t.Fatalf("Render(%d): %v", i, err)
				}
				maxDiff, mean := compare(t, got, dcmj2pnm(t, b, i, c.wopt...), 3)
				t.Logf("frame %d (%s): max difference %d, mean %.4f", i, im.Photometric, maxDiff, mean)
			}
		})
	}
}
