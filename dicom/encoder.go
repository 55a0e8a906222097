package dicom

import (
	"fmt"
	"io"
	"math"
)

// Encoder writes data elements in one transfer syntax. It is meant for
// small datasets built in code (identifiers, test fixtures); it does not
// check tag order.
type Encoder struct {
	w   io.Writer
	ts  TransferSyntax
	enc encoding
	n   int64
	hdr [12]byte
}

// NewEncoder returns an Encoder writing to w in syntax ts (deflated syntaxes
// are written as their explicit VR little endian content; deflate the
// result yourself).
func NewEncoder(w io.Writer, ts TransferSyntax) *Encoder {
	return &Encoder{w: w, ts: ts, enc: encoding{explicit: ts.ExplicitVR || ts.Deflated, be: ts.BigEndian}}
}

// Written returns the number of bytes written so far.
func (e *Encoder) Written() int64 { return e.n }

func (e *Encoder) write(p []byte) error {
	n, err := e.w.Write(p)
	e.n += int64(n)
	if err != nil {
		return fmt.Errorf("dicom: encoder write: %w", err)
	}
	return nil
}

// WriteHeader writes an element header declaring length (undefinedLength
// 0xFFFFFFFF allowed); the caller writes the value with WriteRaw. For item
// and delimitation tags use WriteItemHeader.
func (e *Encoder) WriteHeader(t Tag, vr VR, length uint32) error {
	h := e.hdr[:]
	e.enc.putU16(h[0:], t.Group())
	e.enc.putU16(h[2:], t.Element())
	if !e.enc.explicit {
		e.enc.putU32(h[4:], length)
		return e.write(h[:8])
	}
	if len(vr) != 2 {
		return fmt.Errorf("dicom: encoder: invalid VR %q for %s", vr, t)
	}
	h[4], h[5] = vr[0], vr[1]
	if vr.HasLongLength() {
		h[6], h[7] = 0, 0
		e.enc.putU32(h[8:], length)
		return e.write(h[:12])
	}
	if length > math.MaxUint16 {
		return fmt.Errorf("dicom: encoder: value of %d bytes too long for VR %s in %s", length, vr, t)
	}
	e.enc.putU16(h[6:], uint16(length))
	return e.write(h[:8])
}

// WriteItemHeader writes an item, item delimitation or sequence delimitation
// header (tag and 32-bit length, no VR).
func (e *Encoder) WriteItemHeader(t Tag, length uint32) error {
	h := e.hdr[:8]
	e.enc.putU16(h[0:], t.Group())
	e.enc.putU16(h[2:], t.Element())
	e.enc.putU32(h[4:], length)
	return e.write(h)
}

// WriteRaw writes bytes as they are.
func (e *Encoder) WriteRaw(p []byte) error { return e.write(p) }

// WriteElement writes one element; value is in the syntax's byte order and
// is padded to even length with the VR's pad byte.
func (e *Encoder) WriteElement(t Tag, vr VR, value []byte) error {
	pad := len(value)%2 == 1
	n := len(value)
	if pad {
		n++
	}
	if uint64(n) >= undefinedLength {
		return fmt.Errorf("dicom: encoder: value too long for %s", t)
	}
	if err := e.WriteHeader(t, vr, uint32(n)); err != nil {
		return err
	}
	if err := e.write(value); err != nil {
		return err
	}
	if pad {
		return e.write([]byte{vr.PadByte()})
	}
	return nil
}

// WriteString writes a character string element.
func (e *Encoder) WriteString(t Tag, vr VR, s string) error {
	return e.WriteElement(t, vr, []byte(s))
}

// WriteUints writes a US, SS, UL, SL, UV or SV element with the given values
// in the syntax's byte order.
func (e *Encoder) WriteUints(t Tag, vr VR, vals ...uint64) error {
	size := vr.swapSize()
	switch vr {
	case VRUS, VRSS, VRUL, VRSL, VRUV, VRSV, VROW, VROL, VROV:
	default:
		return fmt.Errorf("dicom: encoder: WriteUints with VR %s", vr)
	}
	buf := make([]byte, 0, size*len(vals))
	for _, v := range vals {
		var b [8]byte
		switch size {
		case 2:
			e.enc.putU16(b[:], uint16(v))
		case 4:
			e.enc.putU32(b[:], uint32(v))
		case 8:
			if e.enc.be {
				for i := 0; i < 8; i++ {
					b[i] = byte(v >> (56 - 8*i))
				}
			} else {
				for i := 0; i < 8; i++ {
					b[i] = byte(v >> (8 * i))
				}
			}
		}
		buf = append(buf, b[:size]...)
	}
	return e.WriteElement(t, vr, buf)
}

// WriteSequence writes a sequence whose items are given encoded (each item
// the bytes of a dataset encoded in the same syntax). With undefined true
// the sequence and its items use undefined lengths and delimiters.
func (e *Encoder) WriteSequence(t Tag, items [][]byte, undefined bool) error {
	if undefined {
		if err := e.WriteHeader(t, VRSQ, undefinedLength); err != nil {
			return err
		}
		for _, it := range items {
			if err := e.WriteItemHeader(TagItem, undefinedLength); err != nil {
				return err
			}
			if err := e.write(it); err != nil {
				return err
			}
			if err := e.WriteItemHeader(TagItemDelimitationItem, 0); err != nil {
				return err
			}
		}
		return e.WriteItemHeader(TagSequenceDelimitationItem, 0)
	}
	var total uint64
	for _, it := range items {
		total += 8 + uint64(len(it))
	}
	if total >= undefinedLength {
		return fmt.Errorf("dicom: encoder: sequence %s too long", t)
	}
	if err := e.WriteHeader(t, VRSQ, uint32(total)); err != nil {
		return err
	}
	for _, it := range items {
		if err := e.WriteItemHeader(TagItem, uint32(len(it))); err != nil {
			return err
		}
		if err := e.write(it); err != nil {
			return err
		}
	}
	return nil
}

// WriteEncapsulatedPixelData writes Pixel Data (7FE0,0010) as OB of
// undefined length: the basic offset table item (offsets may be nil), one
// item per fragment, and the sequence delimitation item.
func (e *Encoder) WriteEncapsulatedPixelData(offsets []uint32, fragments [][]byte) error {
	if err := e.WriteHeader(TagPixelData, VROB, undefinedLength); err != nil {
		return err
	}
	bot := make([]byte, 4*len(offsets))
	for i, o := range offsets {
		e.enc.putU32(bot[4*i:], o)
	}
	if err := e.WriteItemHeader(TagItem, uint32(len(bot))); err != nil {
		return err
	}
	if err := e.write(bot); err != nil {
		return err
	}
	for _, f := range fragments {
		n := len(f) + len(f)%2
		if err := e.WriteItemHeader(TagItem, uint32(n)); err != nil {
			return err
		}
		if err := e.write(f); err != nil {
			return err
		}
		if len(f)%2 == 1 {
			if err := e.write([]byte{0}); err != nil {
				return err
			}
		}
	}
	return e.WriteItemHeader(TagSequenceDelimitationItem, 0)
}
