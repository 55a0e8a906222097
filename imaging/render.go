package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"strings"

	"github.com/relais-health/relais/dicom"
)

// ErrOption means invalid RenderOptions or Encode arguments (a window
// width not above 0, an unknown VOI LUT function or media type).
var ErrOption = errors.New("imaging: invalid rendering option")

// VOI LUT functions (PS3.3 C.11.2.1.2).
const (
	Linear      = "LINEAR"
	LinearExact = "LINEAR_EXACT"
	Sigmoid     = "SIGMOID"
)

// RenderOptions control Render. The zero value renders the frame at its
// size with the header's first VOI window.
type RenderOptions struct {
	// WindowCenter and WindowWidth, when both set, override the VOI window
	// of the header (the DICOMweb window parameter). The width must be > 0
	// (≥ 1 for LINEAR, PS3.3 C.11.2.1.2.1).
	WindowCenter, WindowWidth *float64
	// Function is the VOI LUT function: LINEAR, LINEAR_EXACT or SIGMOID;
	// empty means the header's VOI LUT Function, else LINEAR.
	Function string
	// MaxWidth and MaxHeight, when positive, scale the image down to fit,
	// keeping its aspect ratio, with an area-averaging (box) filter:
	// /thumbnail and the DICOMweb viewport parameter.
	MaxWidth, MaxHeight int
	// Upscale also scales images smaller than MaxWidth×MaxHeight up to fit
	// (bilinear); MaxWidth×MaxHeight must then be within MaxPixels.
	Upscale bool
}

// Render renders frame i (1-based) as an 8-bit image, an *image.Gray for
// grayscale and an *image.RGBA for colour, for the WADO-RS /rendered and
// /thumbnail resources:
//
//   - MONOCHROME1 and MONOCHROME2, 1, 8, 16 or 32 bits allocated, signed or
//     unsigned, stored bits masked and shifted per Bits Stored and High
//     Bit; the Modality LUT (Rescale Slope and Intercept) is applied, then
//     the VOI window: the options', else the header's first Window Center
//     and Width, else the first VOI LUT Sequence item's LUT, else the
//     frame's minimum and maximum mapped to 0 and 255.
//     MONOCHROME1 is inverted so that the result displays as MONOCHROME2;
//   - RGB, YBR_FULL and YBR_FULL_422 (uncompressed), 8 or 16 bits, either
//     Planar Configuration; PALETTE COLOR with 8- or 16-bit LUT entries
//     (not segmented); windows are ignored for colour;
//   - JPEG Baseline frames are decoded with image/jpeg, chroma upsampled
//     like libjpeg; YCbCr is converted to RGB when the stream says so (JFIF
//     or Adobe marker) or, without such marker, unless the Photometric
//     Interpretation is RGB (as DCMTK does). RLE Lossless frames are decoded
//     per PS3.5 Annex G. Other compressed frames fail with ErrCompressed.
//
// Modality LUT sequences and presentation states are not applied.
func (im *Image) Render(i int, opt RenderOptions) (image.Image, error) {
	if err := im.checkFrame(i); err != nil {
		return nil, err
	}
	win, err := im.window(opt)
	if err != nil {
		return nil, err
	}
	if opt.Upscale {
		w, h := int64(max(opt.MaxWidth, 1)), int64(max(opt.MaxHeight, 1))
		if opt.MaxWidth <= 0 {
			w = h * int64(im.Columns) / int64(im.Rows)
		}
		if opt.MaxHeight <= 0 {
			h = w * int64(im.Rows) / int64(im.Columns)
		}
		if opt.MaxWidth > math.MaxUint16*4 || opt.MaxHeight > math.MaxUint16*4 || w*h > MaxPixels {
			return nil, fmt.Errorf("imaging: upscaling to %d×%d: %w", opt.MaxWidth, opt.MaxHeight, ErrOption)
		}
	}
	var img image.Image
	if im.TransferSyntax.UID == dicom.JPEGBaseline8Bit {
		img, err = im.renderJPEG(i, win)
	} else {
		var data []byte
		data, err = im.DecodedFrame(i)
		if err == nil {
			img, err = renderNative(data, &im.Pixels, win)
		}
	}
	if err != nil {
		return nil, err
	}
	return Scale(img, opt.MaxWidth, opt.MaxHeight, opt.Upscale), nil
}

// window is a VOI window or LUT; auto means none was given (use min/max).
type window struct {
	c, w float64
	fn   string
	auto bool
	lut  *lut
}

func (im *Image) window(opt RenderOptions) (window, error) {
	fn := strings.ToUpper(strings.TrimSpace(opt.Function))
	if fn == "" {
		fn = im.VOILUTFunction
	}
	switch fn {
	case "":
		fn = Linear
	case Linear, LinearExact, Sigmoid:
	default:
		if opt.Function != "" {
			return window{}, fmt.Errorf("imaging: VOI LUT function %q: %w", opt.Function, ErrOption)
		}
		fn = Linear // unknown function in the header
	}
	if opt.WindowCenter != nil && opt.WindowWidth != nil {
		c, w := *opt.WindowCenter, *opt.WindowWidth
		if math.IsNaN(c) || math.IsInf(c, 0) || !(w > 0) || math.IsInf(w, 0) || (fn == Linear && w < 1) {
			return window{}, fmt.Errorf("imaging: window center %g width %g: %w", c, w, ErrOption)
		}
		return window{c: c, w: w, fn: fn}, nil
	}
	if len(im.WindowCenter) > 0 && im.WindowWidth[0] > 0 && (fn != Linear || im.WindowWidth[0] >= 1) {
		return window{c: im.WindowCenter[0], w: im.WindowWidth[0], fn: fn}, nil
	}
	if im.voiLUT != nil {
		return window{lut: im.voiLUT}, nil
	}
	return window{fn: Linear, auto: true}, nil
}

// apply maps a modality value to [0, 255] (PS3.3 C.11.2.1.2).
func (wd window) apply(x float64) float64 {
	if l := wd.lut; l != nil {
		i := math.Floor(x) - float64(l.first)
		i = max(0, min(float64(len(l.data)-1), i))
		return float64(l.data[int(i)]) * 255 / l.max
	}
	c, w := wd.c, wd.w
	switch wd.fn {
	case LinearExact:
		switch {
		case x <= c-w/2:
			return 0
		case x > c+w/2:
			return 255
		}
		return ((x-c)/w + 0.5) * 255
	case Sigmoid:
		return 255 / (1 + math.Exp(-4*(x-c)/w))
	}
	switch {
	case x <= c-0.5-(w-1)/2:
		return 0
	case x > c-0.5+(w-1)/2:
		return 255
	}
	return ((x-(c-0.5))/(w-1) + 0.5) * 255
}

// minMaxWindow maps [lo, hi] linearly onto [0, 255].
func minMaxWindow(lo, hi float64) window {
	if hi <= lo {
		return window{c: lo, w: 1, fn: LinearExact}
	}
	return window{c: (lo + hi) / 2, w: hi - lo, fn: LinearExact}
}

func (im *Image) renderJPEG(i int, win window) (image.Image, error) {
	data, err := im.compressedFrame(i)
	if err != nil {
		return nil, err
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, jpegErr(i, err)
	}
	if cfg.Width != im.Columns || cfg.Height != im.Rows {
		return nil, fmt.Errorf("imaging: JPEG frame %d is %d×%d, header says %d×%d: %w", i, cfg.Width, cfg.Height, im.Columns, im.Rows, ErrInvalid)
	}
	// image/jpeg allocates the whole image at the first scan: refuse
	// dimensions no real baseline stream of this size could fill (a blank
	// 8×8 block costs a few bits).
	if int64(cfg.Width)*int64(cfg.Height) > 256*int64(len(data))+1<<20 {
		return nil, fmt.Errorf("imaging: JPEG frame %d of %d bytes cannot hold %d×%d pixels: %w", i, len(data), cfg.Width, cfg.Height, ErrTooLarge)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, jpegErr(i, err)
	}
	if g, ok := img.(*image.Gray); ok {
		if !strings.HasPrefix(im.Photometric, "MONOCHROME") {
			return g, nil
		}
		p := im.Pixels
		p.BitsAllocated, p.BitsStored, p.HighBit, p.PixelRepresentation = 8, 8, 7, 0
		p.SamplesPerPixel = 1
		pix := make([]byte, p.Rows*p.Columns)
		for y := 0; y < p.Rows; y++ {
			copy(pix[y*p.Columns:], g.Pix[y*g.Stride:y*g.Stride+p.Columns])
		}
		return grayFrame(pix, &p, win)
	}
	if y, ok := img.(*image.YCbCr); ok {
		// Without JFIF or Adobe marker the stream does not say whether its
		// components are YCbCr or RGB; follow the Photometric
		// Interpretation, as DCMTK does (PS3.5 8.2.1).
		raw := im.Photometric == "RGB" && !jpegColorMarkers(data)
		return ycbcrToRGBA(y, raw), nil
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	return out, nil
}

func jpegErr(i int, err error) error {
	var ue jpeg.UnsupportedError
	if errors.As(err, &ue) {
		return fmt.Errorf("imaging: JPEG frame %d: %v: %w (%w)", i, err, ErrCompressed, ErrUnsupported)
	}
	return fmt.Errorf("imaging: JPEG frame %d: %v: %w", i, err, ErrInvalid)
}

// renderNative renders a decoded frame (little endian, FrameLength bytes).
func renderNative(data []byte, p *Pixels, win window) (image.Image, error) {
	if int64(len(data)) < p.FrameLength {
		return nil, fmt.Errorf("imaging: frame of %d bytes, want %d: %w", len(data), p.FrameLength, ErrInvalid)
	}
	switch p.Photometric {
	case "MONOCHROME1", "MONOCHROME2":
		if p.SamplesPerPixel != 1 {
			return nil, fmt.Errorf("imaging: %s with %d samples: %w", p.Photometric, p.SamplesPerPixel, ErrInvalid)
		}
		return grayFrame(data, p, win)
	case "PALETTE COLOR":
		if p.SamplesPerPixel != 1 || p.palette == nil {
			return nil, fmt.Errorf("imaging: PALETTE COLOR without a usable palette: %w", ErrUnsupported)
		}
		return paletteFrame(data, p)
	case "RGB", "YBR_FULL", "YBR_FULL_422":
		if p.SamplesPerPixel != 3 {
			return nil, fmt.Errorf("imaging: %s with %d samples: %w", p.Photometric, p.SamplesPerPixel, ErrInvalid)
		}
		return colorFrame(data, p)
	}
	return nil, fmt.Errorf("imaging: rendering %s with %d bits allocated: %w", p.Photometric, p.BitsAllocated, ErrUnsupported)
}

// codes returns a function giving the stored value code (masked, shifted,
// unsigned) of sample k, and the function turning a code into its value.
func codes(data []byte, p *Pixels) (func(k int) uint32, func(c uint32) int64, error) {
	shift := uint(p.HighBit + 1 - p.BitsStored)
	mask := uint32(1<<uint(p.BitsStored) - 1)
	if p.BitsStored == 32 {
		mask = math.MaxUint32
	}
	var code func(k int) uint32
	switch p.BitsAllocated {
	case 1:
		code = func(k int) uint32 { return uint32(data[k>>3]>>(k&7)) & 1 }
	case 8:
		code = func(k int) uint32 { return (uint32(data[k]) >> shift) & mask }
	case 16:
		code = func(k int) uint32 { return (uint32(binary.LittleEndian.Uint16(data[2*k:])) >> shift) & mask }
	case 32:
		code = func(k int) uint32 { return (binary.LittleEndian.Uint32(data[4*k:]) >> shift) & mask }
	default:
		return nil, nil, fmt.Errorf("imaging: rendering %d bits allocated: %w", p.BitsAllocated, ErrUnsupported)
	}
	bs := uint(p.BitsStored)
	value := func(c uint32) int64 { return int64(c) }
	if p.PixelRepresentation == 1 {
		value = func(c uint32) int64 {
			if c&(1<<(bs-1)) != 0 {
				return int64(c) - int64(1)<<bs
			}
			return int64(c)
		}
	}
	return code, value, nil
}

func grayFrame(data []byte, p *Pixels, win window) (*image.Gray, error) {
	code, value, err := codes(data, p)
	if err != nil {
		return nil, err
	}
	n := p.Rows * p.Columns
	modality := func(v int64) float64 { return float64(v)*p.RescaleSlope + p.RescaleIntercept }
	invert := p.Photometric == "MONOCHROME1"
	img := image.NewGray(image.Rect(0, 0, p.Columns, p.Rows))
	// Values of every pixel: specialised for 16 bits allocated, the common
	// CT/MR/CR case.
	vals := func(yield func(k int, v int64)) {
		for k := range n {
			yield(k, value(code(k)))
		}
	}
	if p.BitsAllocated == 16 {
		shift := uint(p.HighBit + 1 - p.BitsStored)
		mask := uint32(1<<uint(p.BitsStored) - 1)
		ext := uint(32 - p.BitsStored)
		signed := p.PixelRepresentation == 1
		vals = func(yield func(k int, v int64)) {
			for k := range n {
				c := int32((uint32(binary.LittleEndian.Uint16(data[2*k:])) >> shift) & mask)
				if signed {
					c = c << ext >> ext
				}
				yield(k, int64(c))
			}
		}
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	fast16 := p.BitsAllocated == 16 && p.BitsStored == 16
	if fast16 {
		// Common CT/MR case, in plain loops (no closures).
		lo, hi = minMax16(data[:2*n], p.PixelRepresentation == 1)
	} else {
		vals(func(_ int, v int64) { lo, hi = min(lo, v), max(hi, v) })
	}
	if win.auto {
		a, b := modality(lo), modality(hi)
		win = minMaxWindow(min(a, b), max(a, b))
	}
	out8 := func(v int64) uint8 {
		y := uint8(math.Round(win.apply(modality(v))))
		if invert {
			y = 255 - y
		}
		return y
	}
	if hi-lo < int64(n) {
		// A LUT over the values present (smaller than the frame).
		lut := make([]uint8, hi-lo+1)
		for k := range lut {
			lut[k] = out8(lo + int64(k))
		}
		if fast16 {
			pix := img.Pix[:n]
			if p.PixelRepresentation == 1 {
				for k := range pix {
					pix[k] = lut[int64(int16(binary.LittleEndian.Uint16(data[2*k:])))-lo]
				}
			} else {
				for k := range pix {
					pix[k] = lut[int64(binary.LittleEndian.Uint16(data[2*k:]))-lo]
				}
			}
			return img, nil
		}
		vals(func(k int, v int64) { img.Pix[k] = lut[v-lo] })
		return img, nil
	}
	vals(func(k int, v int64) { img.Pix[k] = out8(v) })
	return img, nil
}

// minMax16 returns the smallest and largest 16-bit sample of data.
func minMax16(data []byte, signed bool) (lo, hi int64) {
	if signed {
		l, h := int16(math.MaxInt16), int16(math.MinInt16)
		for k := 0; k+1 < len(data); k += 2 {
			v := int16(binary.LittleEndian.Uint16(data[k:]))
			l, h = min(l, v), max(h, v)
		}
		return int64(l), int64(h)
	}
	l, h := uint16(math.MaxUint16), uint16(0)
	for k := 0; k+1 < len(data); k += 2 {
		v := binary.LittleEndian.Uint16(data[k:])
		l, h = min(l, v), max(h, v)
	}
	return int64(l), int64(h)
}

func to8(v uint32, bits int) uint8 {
	switch {
	case bits > 8:
		return uint8(v >> uint(bits-8))
	case bits < 8:
		return uint8(v << uint(8-bits))
	}
	return uint8(v)
}

func colorFrame(data []byte, p *Pixels) (*image.RGBA, error) {
	if p.BitsAllocated != 8 && p.BitsAllocated != 16 {
		return nil, fmt.Errorf("imaging: colour with %d bits allocated: %w", p.BitsAllocated, ErrUnsupported)
	}
	q := *p
	q.PixelRepresentation = 0
	code, _, err := codes(data, &q)
	if err != nil {
		return nil, err
	}
	n := p.Rows * p.Columns
	img := image.NewRGBA(image.Rect(0, 0, p.Columns, p.Rows))
	sample := func(s, k int) uint8 {
		if p.PlanarConfiguration == 1 {
			return to8(code(s*n+k), p.BitsStored)
		}
		return to8(code(3*k+s), p.BitsStored)
	}
	if p.packed422() {
		sample = func(s, k int) uint8 {
			q := k / 2 // pixel pair: Y1 Y2 Cb Cr
			if s == 0 {
				return to8(code(4*q+k%2), p.BitsStored)
			}
			return to8(code(4*q+1+s), p.BitsStored)
		}
	}
	ybr := p.Photometric != "RGB"
	for k := range n {
		a, b, c := sample(0, k), sample(1, k), sample(2, k)
		if ybr {
			a, b, c = ybrToRGB(a, b, c)
		}
		img.Pix[4*k], img.Pix[4*k+1], img.Pix[4*k+2], img.Pix[4*k+3] = a, b, c, 255
	}
	return img, nil
}

// ybrToRGB converts YBR_FULL (PS3.3 C.7.6.3.1.2) to RGB.
func ybrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	Y, Cb, Cr := float64(y), float64(cb)-128, float64(cr)-128
	clamp := func(v float64) uint8 { return uint8(math.Round(max(0, min(255, v)))) }
	return clamp(Y + 1.402*Cr), clamp(Y - 0.344136*Cb - 0.714136*Cr), clamp(Y + 1.772*Cb)
}

func paletteFrame(data []byte, p *Pixels) (*image.RGBA, error) {
	code, value, err := codes(data, p)
	if err != nil {
		return nil, err
	}
	pal := p.palette
	n := p.Rows * p.Columns
	img := image.NewRGBA(image.Rect(0, 0, p.Columns, p.Rows))
	last := int64(len(pal.r) - 1)
	for k := range n {
		idx := max(0, min(last, value(code(k))-int64(pal.first)))
		img.Pix[4*k], img.Pix[4*k+1], img.Pix[4*k+2], img.Pix[4*k+3] = pal.r[idx], pal.g[idx], pal.b[idx], 255
	}
	return img, nil
}

// Fit scales img down (never up) to fit maxWidth×maxHeight (a
// non-positive bound is no bound), keeping the aspect ratio, with an
// area-averaging filter. Images already within bounds are returned as
// they are. *image.Gray stays *image.Gray; anything else becomes
// *image.RGBA.
func Fit(img image.Image, maxWidth, maxHeight int) image.Image {
	return Scale(img, maxWidth, maxHeight, false)
}

// Scale is Fit that also scales up, with bilinear interpolation, when
// upscale is set and the image is smaller than the bounds. The caller
// bounds maxWidth×maxHeight (Render refuses more than MaxPixels).
func Scale(img image.Image, maxWidth, maxHeight int, upscale bool) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 || (maxWidth <= 0 && maxHeight <= 0) {
		return img
	}
	s := math.Inf(1)
	if maxWidth > 0 {
		s = min(s, float64(maxWidth)/float64(w))
	}
	if maxHeight > 0 {
		s = min(s, float64(maxHeight)/float64(h))
	}
	if s == 1 || (s > 1 && !upscale) {
		return img
	}
	dw := max(1, int(math.Round(float64(w)*s)))
	dh := max(1, int(math.Round(float64(h)*s)))
	if maxWidth > 0 {
		dw = min(dw, maxWidth)
	}
	if maxHeight > 0 {
		dh = min(dh, maxHeight)
	}
	var src []uint8
	var stride, ch int
	switch m := img.(type) {
	case *image.Gray:
		src, stride, ch = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 1
	case *image.RGBA:
		src, stride, ch = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4
	default:
		rgba := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
		src, stride, ch = rgba.Pix, rgba.Stride, 4
	}
	out := resample(src, stride, w, h, ch, dw, dh)
	if ch == 1 {
		return &image.Gray{Pix: out, Stride: dw, Rect: image.Rect(0, 0, dw, dh)}
	}
	return &image.RGBA{Pix: out, Stride: 4 * dw, Rect: image.Rect(0, 0, dw, dh)}
}

// boxWeights gives, for each of dst output positions, the first source
// index and the weights of the source samples it covers: area averaging
// when shrinking, bilinear interpolation when enlarging.
func boxWeights(src, dst int) (starts []int, weights [][]float32) {
	scale := float64(src) / float64(dst)
	starts = make([]int, dst)
	weights = make([][]float32, dst)
	if dst > src {
		for x := range dst {
			c := (float64(x)+0.5)*scale - 0.5 // source coordinate of the centre
			i0 := int(math.Floor(c))
			f := float32(c - float64(i0))
			switch {
			case i0 < 0:
				starts[x], weights[x] = 0, []float32{1}
			case i0 >= src-1:
				starts[x], weights[x] = src-1, []float32{1}
			default:
				starts[x], weights[x] = i0, []float32{1 - f, f}
			}
		}
		return starts, weights
	}
	for x := range dst {
		a, b := float64(x)*scale, float64(x+1)*scale
		i0, i1 := int(math.Floor(a)), min(src, int(math.Ceil(b)))
		ws := make([]float32, 0, i1-i0)
		for i := i0; i < i1; i++ {
			ws = append(ws, float32((min(b, float64(i+1))-max(a, float64(i)))/scale))
		}
		starts[x], weights[x] = i0, ws
	}
	return starts, weights
}

func resample(src []uint8, stride, w, h, ch, dw, dh int) []uint8 {
	xs, xw := boxWeights(w, dw)
	ys, yw := boxWeights(h, dh)
	tmp := make([]float32, h*dw*ch)
	for y := range h {
		row := src[y*stride:]
		t := tmp[y*dw*ch:]
		for x := range dw {
			for c := range ch {
				var acc float32
				for k, wt := range xw[x] {
					acc += wt * float32(row[(xs[x]+k)*ch+c])
				}
				t[x*ch+c] = acc
			}
		}
	}
	out := make([]uint8, dh*dw*ch)
	for y := range dh {
		o := out[y*dw*ch:]
		for i := range dw * ch {
			var acc float32
			for k, wt := range yw[y] {
				acc += wt * tmp[(ys[y]+k)*dw*ch+i]
			}
			o[i] = uint8(min(255, max(0, acc+0.5)))
		}
	}
	return out
}

// Encode writes img as mediaType: image/jpeg (quality 1–100, 0 means 90),
// image/png or image/gif (grayscale exactly, colour quantized to the Plan 9
// palette). Other media types fail with ErrOption.
func Encode(w io.Writer, img image.Image, mediaType string, quality int) error {
	var err error
	switch strings.ToLower(strings.TrimSpace(mediaType)) {
	case MediaJPEG:
		if quality <= 0 {
			quality = 90
		}
		err = jpeg.Encode(w, img, &jpeg.Options{Quality: min(quality, 100)})
	case MediaPNG:
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		err = enc.Encode(w, img)
	case MediaGIF:
		if g, ok := img.(*image.Gray); ok {
			pal := make(color.Palette, 256)
			for i := range pal {
				pal[i] = color.Gray{Y: uint8(i)}
			}
			p := &image.Paletted{Pix: g.Pix, Stride: g.Stride, Rect: g.Rect, Palette: pal}
			err = gif.Encode(w, p, nil)
		} else {
			err = gif.Encode(w, img, nil)
		}
	default:
		return fmt.Errorf("imaging: encoding to %q: %w", mediaType, ErrOption)
	}
	if err != nil {
		return fmt.Errorf("imaging: encoding %s: %w", mediaType, err)
	}
	return nil
}
