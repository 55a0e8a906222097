package imaging

import (
	"encoding/binary"
	"fmt"
)

// decodeRLE decodes one RLE Lossless frame (PS3.5 Annex G): a 64-byte
// header (number of segments, then 15 segment offsets), then one PackBits
// segment per byte plane, for each sample its most significant byte first.
// The result is little endian, interleaved as p.PlanarConfiguration says.
func decodeRLE(data []byte, p *Pixels) ([]byte, error) {
	if p.BitsAllocated%8 != 0 {
		return nil, fmt.Errorf("imaging: RLE with %d bits allocated: %w", p.BitsAllocated, ErrUnsupported)
	}
	bps := p.BitsAllocated / 8
	spp := p.SamplesPerPixel
	pixels := p.Rows * p.Columns
	if len(data) < 64 {
		return nil, fmt.Errorf("imaging: RLE frame of %d bytes: %w", len(data), ErrInvalid)
	}
	nseg := int(binary.LittleEndian.Uint32(data))
	if nseg != bps*spp || nseg > 15 {
		return nil, fmt.Errorf("imaging: RLE frame with %d segments, want %d: %w", nseg, bps*spp, ErrInvalid)
	}
	// A PackBits run of two bytes yields at most 128: bound the output by
	// the input before allocating.
	if int64(pixels)*int64(nseg) > 64*int64(len(data))+1024 {
		return nil, fmt.Errorf("imaging: RLE frame of %d bytes cannot hold %d×%d pixels: %w", len(data), p.Rows, p.Columns, ErrTooLarge)
	}
	offs := make([]int, nseg+1)
	for k := 0; k < nseg; k++ {
		o := binary.LittleEndian.Uint32(data[4+4*k:])
		if o < 64 || int64(o) > int64(len(data)) || (k > 0 && int(o) < offs[k-1]) {
			return nil, fmt.Errorf("imaging: RLE segment %d offset %d: %w", k, o, ErrInvalid)
		}
		offs[k] = int(o)
	}
	offs[nseg] = len(data)
	out := make([]byte, pixels*nseg)
	plane := make([]byte, pixels)
	for k := 0; k < nseg; k++ {
		if err := unpackBits(plane, data[offs[k]:offs[k+1]]); err != nil {
			return nil, fmt.Errorf("imaging: RLE segment %d: %w", k, err)
		}
		s, b := k/bps, bps-1-k%bps // sample, byte within the little endian sample
		if p.PlanarConfiguration == 1 {
			base := s * pixels * bps
			for i, v := range plane {
				out[base+i*bps+b] = v
			}
		} else {
			stride := spp * bps
			base := s*bps + b
			for i, v := range plane {
				out[base+i*stride] = v
			}
		}
	}
	return out, nil
}

// unpackBits decodes a PackBits segment into dst, which it must fill
// exactly (trailing bytes of the segment after dst is full are padding).
func unpackBits(dst, src []byte) error {
	n := 0
	for i := 0; i < len(src) && n < len(dst); {
		c := int8(src[i])
		i++
		switch {
		case c >= 0:
			l := int(c) + 1
			if i+l > len(src) || n+l > len(dst) {
				return fmt.Errorf("literal run of %d bytes overflows: %w", l, ErrInvalid)
			}
			copy(dst[n:], src[i:i+l])
			i += l
			n += l
		case c != -128:
			l := 1 - int(c)
			if i >= len(src) || n+l > len(dst) {
				return fmt.Errorf("replicate run of %d bytes overflows: %w", l, ErrInvalid)
			}
			v := src[i]
			i++
			for e := n + l; n < e; n++ {
				dst[n] = v
			}
		}
	}
	if n != len(dst) {
		return fmt.Errorf("segment decodes to %d bytes, want %d: %w", n, len(dst), ErrInvalid)
	}
	return nil
}
