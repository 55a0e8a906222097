package imaging

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"testing"

	"github.com/relais-health/relais/dicom"
)

func TestWindowFunctions(t *testing.T) {
	// PS3.3 C.11.2.1.2: LINEAR with c=40, w=400 maps x ≤ -160 to 0, x >
	// 239 to 255, linearly between.
	lin := window{c: 40, w: 400, fn: Linear}
	for _, c := range []struct{ x, want float64 }{{-1000, 0}, {-160, 0}, {240, 255}, {39.5, 127.5}} {
		if got := lin.apply(c.x); got != c.want {
			t.Errorf("LINEAR(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	exact := window{c: 40, w: 400, fn: LinearExact}
	for _, c := range []struct{ x, want float64 }{{-160, 0}, {240, 255}, {40, 127.5}, {140, 191.25}} {
		if got := exact.apply(c.x); got != c.want {
			t.Errorf("LINEAR_EXACT(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	sig := window{c: 40, w: 400, fn: Sigmoid}
	if got := sig.apply(40); got != 127.5 {
		t.Errorf("SIGMOID(c) = %g", got)
	}
	if got := sig.apply(4000); got < 254.9 {
		t.Errorf("SIGMOID(large) = %g", got)
	}
}

func TestRenderOptionsErrors(t *testing.T) {
	im := openBytes(t, fixture{rows: 2, cols: 2, ba: 8, pixels: []byte{0, 1, 2, 3}}.build(t))
	for _, opt := range []RenderOptions{
		{WindowCenter: f64(1), WindowWidth: f64(0)},
		{WindowCenter: f64(1), WindowWidth: f64(0.5)}, // LINEAR needs ≥ 1
		{Function: "CUBIC"},
	} {
		if _, err := im.Render(1, opt); !errors.Is(err, ErrOption) {
			t.Errorf("Render(%+v): %v, want ErrOption", opt, err)
		}
	}
	if _, err := im.Render(1, RenderOptions{WindowCenter: f64(1), WindowWidth: f64(0.5), Function: LinearExact}); err != nil {
		t.Errorf("LINEAR_EXACT with width 0.5: %v", err)
	}
	if _, err := im.Render(2, RenderOptions{}); !errors.Is(err, ErrFrameRange) {
		t.Errorf("Render(2): %v", err)
	}
}

func grayPix(t *testing.T, img image.Image) []uint8 {
	t.Helper()
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("rendered %T, want *image.Gray", img)
	}
	return g.Pix
}

func rgbaPix(t *testing.T, img image.Image) []uint8 {
	t.Helper()
	g, ok := img.(*image.RGBA)
	if !ok {
		t.Fatalf("rendered %T, want *image.RGBA", img)
	}
	return g.Pix
}

func TestRenderFormats(t *testing.T) {
	t.Run("1-bit", func(t *testing.T) {
		im := openBytes(t, fixture{rows: 2, cols: 4, ba: 1, pixels: []byte{0b10100101}}.build(t))
		got := grayPix(t, must(im.Render(1, RenderOptions{})))
		want := []uint8{255, 0, 255, 0, 0, 255, 0, 255}
		if !bytes.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("8-bit monochrome1 with header window", func(t *testing.T) {
		im := openBytes(t, fixture{rows: 1, cols: 3, ba: 8, photometric: "MONOCHROME1", wc: "100", ww: "101", fn: "LINEAR_EXACT",
			pixels: []byte{0, 100, 200}}.build(t))
		got := grayPix(t, must(im.Render(1, RenderOptions{})))
		if want := []uint8{255, 127, 0}; !bytes.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("16-bit RGB", func(t *testing.T) {
		px := []byte{0x00, 0xFF, 0x00, 0x80, 0x00, 0x01, 0x34, 0x12, 0, 0, 0xFF, 0xFF}
		im := openBytes(t, fixture{rows: 1, cols: 2, ba: 16, spp: 3, pixels: px}.build(t))
		got := rgbaPix(t, must(im.Render(1, RenderOptions{})))
		if want := []uint8{0xFF, 0x80, 0x01, 255, 0x12, 0, 0xFF, 255}; !bytes.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("YBR_FULL_422", func(t *testing.T) {
		// Y1 Y2 Cb Cr: neutral chroma gives gray.
		im := openBytes(t, fixture{rows: 1, cols: 4, ba: 8, spp: 3, photometric: "YBR_FULL_422",
			pixels: []byte{10, 20, 128, 128, 200, 250, 128, 128}}.build(t))
		got := rgbaPix(t, must(im.Render(1, RenderOptions{})))
		for k, y := range []uint8{10, 20, 200, 250} {
			if got[4*k] != y || got[4*k+1] != y || got[4*k+2] != y {
				t.Errorf("pixel %d = %v, want gray %d", k, got[4*k:4*k+3], y)
			}
		}
	})
	t.Run("palette with 16-bit entries", func(t *testing.T) {
		im := openBytes(t, fixture{rows: 1, cols: 3, ba: 8, photometric: "PALETTE COLOR", pixels: []byte{0, 1, 9},
			palette: [3][]uint16{{0x1000, 0xFF00}, {0x2000, 0x0100}, {0x3000, 0x8000}}}.build(t))
		got := rgbaPix(t, must(im.Render(1, RenderOptions{})))
		want := []uint8{0x10, 0x20, 0x30, 255, 0xFF, 0x01, 0x80, 255, 0xFF, 0x01, 0x80, 255}
		if !bytes.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("32-bit signed", func(t *testing.T) {
		px := []byte{0, 0, 0, 0x80, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F}
		im := openBytes(t, fixture{rows: 1, cols: 3, ba: 32, pr: 1, pixels: px}.build(t))
		got := grayPix(t, must(im.Render(1, RenderOptions{})))
		if want := []uint8{0, 128, 255}; !bytes.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("compressed", func(t *testing.T) {
		im := openBytes(t, fixture{ts: dicom.JPEG2000Lossless, rows: 4, cols: 4, ba: 8, fragments: [][]byte{jpegLike(10, 1)}}.build(t))
		_, err := im.Render(1, RenderOptions{})
		if !errors.Is(err, ErrCompressed) || !errors.Is(err, ErrUnsupported) {
			t.Errorf("Render of JPEG 2000: %v", err)
		}
		if _, err := im.DecodedFrame(1); !errors.Is(err, ErrCompressed) {
			t.Errorf("DecodedFrame of JPEG 2000: %v", err)
		}
	})
	t.Run("JPEG of the wrong size", func(t *testing.T) {
		var jb bytes.Buffer
		if err := jpeg.Encode(&jb, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
			t.Fatal(err)
		}
		im := openBytes(t, fixture{ts: dicom.JPEGBaseline8Bit, rows: 16, cols: 16, ba: 8, fragments: [][]byte{jb.Bytes()}}.build(t))
		if _, err := im.Render(1, RenderOptions{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Render: %v", err)
		}
	})
	t.Run("JPEG baseline multi-frame", func(t *testing.T) {
		var frags [][]byte
		for v := range 3 {
			img := image.NewGray(image.Rect(0, 0, 8, 8))
			for k := range img.Pix {
				img.Pix[k] = uint8(50 * (v + 1))
			}
			var jb bytes.Buffer
			if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 100}); err != nil {
				t.Fatal(err)
			}
			frags = append(frags, jb.Bytes())
		}
		im := openBytes(t, fixture{ts: dicom.JPEGBaseline8Bit, rows: 8, cols: 8, ba: 8, frames: 3, fragments: frags}.build(t))
		for i := 1; i <= 3; i++ {
			got := grayPix(t, must(im.Render(i, RenderOptions{WindowCenter: f64(128), WindowWidth: f64(256)})))
			if d := int(got[0]) - 50*i; d < -1 || d > 1 {
				t.Errorf("frame %d renders %d, want %d", i, got[0], 50*i)
			}
		}
	})
}

func must(img image.Image, err error) image.Image {
	if err != nil {
		panic(err)
	}
	return img
}

func TestFit(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 512, 256))
	for y := range 256 {
		for x := range 512 {
			g.Pix[y*512+x] = uint8((x + y) % 2 * 200) // checkerboard averaging to 100
		}
	}
	out := Fit(g, 128, 128)
	if b := out.Bounds(); b.Dx() != 128 || b.Dy() != 64 {
		t.Fatalf("Fit to 128×128 gave %v", b)
	}
	for _, v := range grayPix(t, out) {
		if v != 100 {
			t.Fatalf("box average %d, want 100", v)
		}
	}
	if Fit(g, 0, 0) != image.Image(g) || Fit(g, 1024, 1024) != image.Image(g) {
		t.Error("Fit changed an image within bounds")
	}
	if b := Fit(g, 0, 100).Bounds(); b.Dx() != 200 || b.Dy() != 100 {
		t.Errorf("Fit to height 100 gave %v", b)
	}
	rgba := image.NewRGBA(image.Rect(0, 0, 3, 3))
	for k := range rgba.Pix {
		rgba.Pix[k] = 90
	}
	if p := rgbaPix(t, Fit(rgba, 2, 2)); len(p) != 16 || p[0] != 90 {
		t.Errorf("RGBA fit: %v", p)
	}
	// Upscaling: bilinear, constant stays constant, a ramp stays monotonic.
	small := image.NewGray(image.Rect(0, 0, 4, 2))
	copy(small.Pix, []uint8{0, 80, 160, 240, 0, 80, 160, 240})
	if Scale(small, 16, 16, false) != image.Image(small) {
		t.Error("Scale without upscale enlarged")
	}
	up := grayPix(t, Scale(small, 16, 16, true))
	if len(up) != 16*8 {
		t.Fatalf("upscaled to %d pixels", len(up))
	}
	for x := 1; x < 16; x++ {
		if up[x] < up[x-1] || up[x] != up[16+x] {
			t.Fatalf("upscaled row %v", up[:16])
		}
	}
	if up[0] != 0 || up[15] != 240 {
		t.Errorf("upscaled edges %d, %d", up[0], up[15])
	}
	// Through Render: /thumbnail of a CT.
	im := openBytes(t, fixture{rows: 96, cols: 128, ba: 16, pr: 1, pixels: ctPixels(96, 128, 16, false), wc: "40", ww: "400"}.build(t))
	th, err := im.Render(1, RenderOptions{MaxWidth: 64, MaxHeight: 64})
	if err != nil {
		t.Fatal(err)
	}
	if b := th.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
		t.Errorf("thumbnail %v", b)
	}
	big, err := im.Render(1, RenderOptions{MaxWidth: 256, MaxHeight: 256, Upscale: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := big.Bounds(); b.Dx() != 256 || b.Dy() != 192 {
		t.Errorf("viewport %v", b)
	}
	if _, err := im.Render(1, RenderOptions{MaxWidth: 60000, MaxHeight: 60000, Upscale: true}); !errors.Is(err, ErrOption) {
		t.Errorf("huge viewport: %v", err)
	}
}

func TestEncode(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 16, 8))
	for k := range g.Pix {
		g.Pix[k] = uint8(k * 2)
	}
	c := image.NewRGBA(image.Rect(0, 0, 16, 8))
	for k := range c.Pix {
		c.Pix[k] = uint8(k)
	}
	for _, img := range []image.Image{g, c} {
		for mt, dec := range map[string]func(io.Reader) (image.Image, error){
			MediaJPEG: jpeg.Decode, MediaPNG: png.Decode, MediaGIF: gif.Decode,
		} {
			var b bytes.Buffer
			if err := Encode(&b, img, mt, 0); err != nil {
				t.Fatalf("Encode %s: %v", mt, err)
			}
			out, err := dec(&b)
			if err != nil {
				t.Fatalf("decoding %s: %v", mt, err)
			}
			if out.Bounds().Size() != img.Bounds().Size() {
				t.Errorf("%s: size %v", mt, out.Bounds())
			}
			if mt != MediaJPEG && img == image.Image(g) {
				for k, want := range g.Pix {
					y := color.GrayModel.Convert(out.At(k%16, k/16)).(color.Gray).Y
					if y != want {
						t.Fatalf("%s: pixel %d = %d, want %d", mt, k, y, want)
					}
				}
			}
		}
	}
	if err := Encode(io.Discard, g, "image/webp", 0); !errors.Is(err, ErrOption) {
		t.Errorf("Encode webp: %v", err)
	}
}
