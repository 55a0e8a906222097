package imaging

import (
	"image"
	"image/color"
	"image/draw"
)

// ycbcrToRGBA converts a decoded JPEG to RGBA. For 4:2:0 and 4:2:2 chroma
// it interpolates the chroma like libjpeg's "fancy upsampling" (a
// triangle filter, weights 3/4 and 1/4 in each subsampled direction),
// which is both smoother than nearest-neighbour replication and what
// DCMTK, and most viewers, display.
//
// With raw set the three components are taken as R, G and B as they are
// (a JPEG whose components are RGB but that image/jpeg took for YCbCr).
func ycbcrToRGBA(m *image.YCbCr, raw bool) *image.RGBA {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	var hs, vs bool // horizontally / vertically subsampled
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio420:
		hs, vs = true, true
	case image.YCbCrSubsampleRatio422:
		hs = true
	case image.YCbCrSubsampleRatio444:
	default:
		if !raw {
			draw.Draw(out, out.Rect, m, b.Min, draw.Src)
			return out
		}
		// Other subsamplings: nearest chroma sample.
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
				o := out.Pix[y*out.Stride+4*x:]
				o[0], o[1], o[2], o[3] = m.Y[yi], m.Cb[ci], m.Cr[ci], 255
			}
		}
		return out
	}
	cw, ch := w, h
	if hs {
		cw = (w + 1) / 2
	}
	if vs {
		ch = (h + 1) / 2
	}
	cOff := m.COffset(b.Min.X, b.Min.Y)
	chroma := func(plane []uint8, cx, cy int) int {
		return int(plane[cOff+cy*m.CStride+cx])
	}
	// colsum is 4× (vertical filter) or 1× the chroma value at column cx.
	for y := 0; y < h; y++ {
		near, far := y, y
		if vs {
			near = y / 2
			far = near - 1
			if y%2 == 1 {
				far = near + 1
			}
			far = max(0, min(ch-1, far))
		}
		colsum := func(plane []uint8, cx int) int {
			cx = max(0, min(cw-1, cx))
			if vs {
				return 3*chroma(plane, cx, near) + chroma(plane, cx, far)
			}
			return chroma(plane, cx, near)
		}
		yRow := m.Y[m.YOffset(b.Min.X, b.Min.Y)+y*m.YStride:]
		o := out.Pix[y*out.Stride:]
		for x := 0; x < w; x++ {
			var cb, cr int
			if hs {
				cx := x / 2
				nb := cx - 1
				round := 8
				if x%2 == 1 {
					nb, round = cx+1, 7
				}
				cb = 3*colsum(m.Cb, cx) + colsum(m.Cb, nb)
				cr = 3*colsum(m.Cr, cx) + colsum(m.Cr, nb)
				if vs {
					cb, cr = (cb+round)>>4, (cr+round)>>4
				} else {
					r2 := 1
					if x%2 == 1 {
						r2 = 2
					}
					cb, cr = (cb+r2)>>2, (cr+r2)>>2
				}
			} else {
				cb, cr = colsum(m.Cb, x), colsum(m.Cr, x)
				if vs {
					cb, cr = (cb+2)>>2, (cr+2)>>2
				}
			}
			r, g, bl := yRow[x], uint8(cb), uint8(cr)
			if !raw {
				r, g, bl = color.YCbCrToRGB(r, g, bl)
			}
			o[4*x], o[4*x+1], o[4*x+2], o[4*x+3] = r, g, bl, 255
		}
	}
	return out
}

// jpegColorMarkers reports whether a JPEG stream has a JFIF APP0 or an
// Adobe APP14 segment (which tell image/jpeg its colour transform) before
// its first frame header.
func jpegColorMarkers(b []byte) bool {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return false
	}
	for p := 2; p+4 <= len(b); {
		if b[p] != 0xFF {
			return false
		}
		m := b[p+1]
		if m == 0xFF { // fill byte
			p++
			continue
		}
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC || m == 0xDA || m == 0xD9 {
			return false // SOFn, SOS or EOI: no colour marker before
		}
		l := int(b[p+2])<<8 | int(b[p+3])
		seg := b[p+4 : min(len(b), p+2+l)]
		if m == 0xE0 && len(seg) >= 5 && string(seg[:5]) == "JFIF\x00" ||
			m == 0xEE && len(seg) >= 5 && string(seg[:5]) == "Adobe" {
			return true
		}
		if l < 2 {
			return false
		}
		p += 2 + l
	}
	return false
}
