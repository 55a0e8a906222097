package dicom

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
)

// maxBufferedSequence bounds the defined-length sequences and items that
// Transcode re-encodes in memory to recompute their lengths (when converting
// between implicit and explicit VR); larger ones are written with undefined
// length, which is always legal.
const maxBufferedSequence = 32 << 20

type transcoder struct {
	stream
	buf [bufSize]byte
	hdr [12]byte
}

// Transcode re-encodes the dataset read from src in syntax from into dst in
// syntax to. Both must be uncompressed and not deflated (implicit VR little
// endian, explicit VR little endian, explicit VR big endian); otherwise it
// returns an error wrapping ErrUnsupportedTransferSyntax.
//
// Values are byte-swapped by VR when the byte order changes (US, SS, UL, SL,
// FL, FD, OW, AT, OL, OD, OF, OV, SV, UV). From implicit VR, VRs come from
// the dictionary (UN for unknown and private tags); a value too long for the
// 16-bit length of its VR is written as UN. Undefined lengths are kept; the
// lengths of defined-length sequences and items are recomputed when header
// sizes change (sequences over 32 MiB are written with undefined length
// instead). The input is validated like Scan does, and memory stays
// bounded. Group length elements are copied unchanged.
func Transcode(dst io.Writer, src io.Reader, from, to TransferSyntax, lim Limits) error {
	for _, ts := range []TransferSyntax{from, to} {
		if ts.Encapsulated || ts.Deflated {
			return fmt.Errorf("%w: cannot transcode %s (%s): only implicit/explicit VR little endian and explicit VR big endian are supported",
				ErrUnsupportedTransferSyntax, ts.Name, ts.UID)
		}
	}
	if !from.ExplicitVR && from.BigEndian || !to.ExplicitVR && to.BigEndian {
		return fmt.Errorf("%w: implicit VR big endian does not exist", ErrUnsupportedTransferSyntax)
	}
	t := &transcoder{}
	t.lim = lim.withDefaults()
	t.br = getReader(src)
	defer putReader(t.br)
	bw := bufio.NewWriterSize(dst, bufSize)
	fe := encoding{explicit: from.ExplicitVR, be: from.BigEndian}
	te := encoding{explicit: to.ExplicitVR, be: to.BigEndian}
	if err := t.dataset(fe, te, bw, -1, 0, true); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dicom: transcode write: %w", err)
	}
	return nil
}

func (t *transcoder) write(out io.Writer, p []byte) error {
	if _, err := out.Write(p); err != nil {
		return fmt.Errorf("dicom: transcode write: %w", err)
	}
	return nil
}

func (t *transcoder) writeHeader(out io.Writer, te encoding, tag Tag, vr VR, length uint32) error {
	h := t.hdr[:]
	te.putU16(h[0:], tag.Group())
	te.putU16(h[2:], tag.Element())
	if !te.explicit || tag.Group() == 0xFFFE {
		te.putU32(h[4:], length)
		return t.write(out, h[:8])
	}
	h[4], h[5] = vr[0], vr[1]
	if vr.HasLongLength() {
		h[6], h[7] = 0, 0
		te.putU32(h[8:], length)
		return t.write(out, h[:12])
	}
	te.putU16(h[6:], uint16(length))
	return t.write(out, h[:8])
}

func (t *transcoder) dataset(fe, te encoding, out io.Writer, end int64, depth int, top bool) error {
	var prev Tag
	first := true
	for {
		if end >= 0 && t.off >= end {
			return nil
		}
		start := t.off
		tag, vr, length, err := t.header(fe)
		if err == errCleanEOF {
			if top {
				return nil
			}
			return scanErr(start, 0, ErrTruncated, "data ends inside an item")
		}
		if err != nil {
			return err
		}
		if end >= 0 && t.off > end {
			return scanErr(start, tag, ErrMalformed, "element header runs past the end of its item at offset %d", end)
		}
		if tag.Group() == 0xFFFE {
			if tag == TagItemDelimitationItem && end < 0 && !top {
				if length != 0 {
					return scanErr(start, tag, ErrMalformed, "item delimitation item with non-zero length %d", length)
				}
				return t.writeHeader(out, te, tag, "", 0)
			}
			return scanErr(start, tag, ErrMalformed, "unexpected %s in a dataset", tag)
		}
		if !first && tag <= prev {
			return scanErr(start, tag, ErrMalformed, "tag not greater than preceding %s", prev)
		}
		first, prev = false, tag
		if err := t.element(fe, te, out, tag, vr, length, start, end, depth); err != nil {
			return err
		}
	}
}

func (t *transcoder) element(fe, te encoding, out io.Writer, tag Tag, vr VR, length uint32, start, end int64, depth int) error {
	if length == undefinedLength {
		if fe.explicit && !te.explicit && vr != VRSQ && tag == TagPixelData {
			return scanErr(start, tag, ErrMalformed, "encapsulated pixel data in a native transfer syntax")
		}
		switch {
		case vr == VRUN && fe.explicit:
			// CP-246: the value is an implicit VR little endian sequence,
			// copied as it is.
			return t.sequence(implicitLE, implicitLE, out, te, tag, VRUN, length, start, end, depth)
		case vr == VRSQ || vr == VRUN || !fe.explicit:
			return t.sequence(fe, te, out, te, tag, VRSQ, length, start, end, depth)
		case tag == TagPixelData:
			return scanErr(start, tag, ErrMalformed, "encapsulated pixel data in a native transfer syntax")
		}
		return scanErr(start, tag, ErrMalformed, "undefined length not allowed for VR %s", vr)
	}
	if err := t.checkValue(start, tag, length, end); err != nil {
		return err
	}
	if vr == VRSQ {
		return t.sequence(fe, te, out, te, tag, VRSQ, length, start, end, depth)
	}
	if length%2 == 1 && vr != VRUN && !tag.IsPrivate() {
		return scanErr(start, tag, ErrMalformed, "odd value length %d", length)
	}
	if fe.explicit && !te.explicit && LookupVR(tag) == VRSQ {
		// A reader of implicit VR would parse the value as a sequence.
		return scanErr(start, tag, ErrMalformed, "VR %s of a tag the dictionary defines as SQ cannot be encoded in implicit VR", vr)
	}
	outVR := vr
	if te.explicit && !outVR.HasLongLength() && length > math.MaxUint16 {
		outVR = VRUN
	}
	swap := 0
	if fe.be != te.be && vr != VRUN {
		swap = vr.swapSize()
		if vr == VRAT {
			swap = 2
		}
		if swap > 0 && length%uint32(swap) != 0 {
			return scanErr(start, tag, ErrMalformed, "value length %d not a multiple of %d for VR %s", length, swap, vr)
		}
	}
	if err := t.writeHeader(out, te, tag, outVR, length); err != nil {
		return err
	}
	return t.copyValue(out, int64(length), swap, start, tag)
}

func (t *transcoder) copyValue(out io.Writer, n int64, swap int, start int64, tag Tag) error {
	for n > 0 {
		chunk := int64(len(t.buf))
		if n < chunk {
			chunk = n
		}
		p := t.buf[:chunk]
		if err := t.readFull(p, start, tag); err != nil {
			return err
		}
		switch swap {
		case 2:
			for i := 0; i+1 < len(p); i += 2 {
				p[i], p[i+1] = p[i+1], p[i]
			}
		case 4:
			for i := 0; i+3 < len(p); i += 4 {
				p[i], p[i+1], p[i+2], p[i+3] = p[i+3], p[i+2], p[i+1], p[i]
			}
		case 8:
			for i := 0; i+7 < len(p); i += 8 {
				p[i], p[i+1], p[i+2], p[i+3], p[i+4], p[i+5], p[i+6], p[i+7] = p[i+7], p[i+6], p[i+5], p[i+4], p[i+3], p[i+2], p[i+1], p[i]
			}
		}
		if err := t.write(out, p); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

// sequence transcodes the items of a sequence whose header has been read:
// fe/te are the encodings of the items, hdrEnc the encoding of the header.
func (t *transcoder) sequence(fe, te encoding, out io.Writer, hdrEnc encoding, tag Tag, outVR VR, length uint32, start, end int64, depth int) error {
	if depth+1 > t.lim.MaxDepth {
		return scanErr(start, tag, ErrLimitExceeded, "sequence nesting deeper than %d", t.lim.MaxDepth)
	}
	lengthsChange := fe.explicit != te.explicit
	seqEnd := int64(-1)
	if length != undefinedLength {
		seqEnd = t.off + int64(length)
	}
	// Decide the output form of the sequence header.
	body := out
	var buffered *bytes.Buffer
	outUndefined := length == undefinedLength
	switch {
	case outUndefined || !lengthsChange:
		if err := t.writeHeader(out, hdrEnc, tag, outVR, length); err != nil {
			return err
		}
	case length <= maxBufferedSequence:
		buffered = new(bytes.Buffer)
		body = buffered
	default:
		outUndefined = true
		if err := t.writeHeader(out, hdrEnc, tag, outVR, undefinedLength); err != nil {
			return err
		}
	}
	finish := func() error {
		if buffered != nil {
			if uint64(buffered.Len()) >= undefinedLength {
				return scanErr(start, tag, ErrLimitExceeded, "transcoded sequence too long")
			}
			if err := t.writeHeader(out, hdrEnc, tag, outVR, uint32(buffered.Len())); err != nil {
				return err
			}
			return t.write(out, buffered.Bytes())
		}
		if outUndefined {
			return t.writeHeader(out, te, TagSequenceDelimitationItem, "", 0)
		}
		return nil
	}
	for {
		if seqEnd >= 0 && t.off >= seqEnd {
			return finish()
		}
		istart := t.off
		itag, _, ilen, err := t.header(fe)
		if err == errCleanEOF {
			return scanErr(istart, tag, ErrTruncated, "data ends inside a sequence")
		}
		if err != nil {
			return err
		}
		if (seqEnd >= 0 && t.off > seqEnd) || (end >= 0 && t.off > end) {
			return scanErr(istart, tag, ErrMalformed, "item header runs past the end of its sequence")
		}
		switch itag {
		case TagItem:
			if ilen == undefinedLength {
				if err := t.writeHeader(body, te, TagItem, "", undefinedLength); err != nil {
					return err
				}
				if err := t.dataset(fe, te, body, -1, depth+1, false); err != nil {
					return err
				}
				if (seqEnd >= 0 && t.off > seqEnd) || (end >= 0 && t.off > end) {
					return scanErr(istart, tag, ErrMalformed, "item of undefined length runs past the end of its sequence")
				}
				continue
			}
			if ilen%2 == 1 {
				return scanErr(istart, tag, ErrMalformed, "odd item length %d", ilen)
			}
			limEnd := end
			if seqEnd >= 0 {
				limEnd = seqEnd
			}
			if err := t.checkValue(istart, tag, ilen, limEnd); err != nil {
				return err
			}
			itemEnd := t.off + int64(ilen)
			switch {
			case !lengthsChange:
				if err := t.writeHeader(body, te, TagItem, "", ilen); err != nil {
					return err
				}
				if err := t.dataset(fe, te, body, itemEnd, depth+1, false); err != nil {
					return err
				}
			case ilen <= maxBufferedSequence:
				var ib bytes.Buffer
				if err := t.dataset(fe, te, &ib, itemEnd, depth+1, false); err != nil {
					return err
				}
				if uint64(ib.Len()) >= undefinedLength {
					return scanErr(istart, tag, ErrLimitExceeded, "transcoded item too long")
				}
				if err := t.writeHeader(body, te, TagItem, "", uint32(ib.Len())); err != nil {
					return err
				}
				if err := t.write(body, ib.Bytes()); err != nil {
					return err
				}
			default:
				if err := t.writeHeader(body, te, TagItem, "", undefinedLength); err != nil {
					return err
				}
				if err := t.dataset(fe, te, body, itemEnd, depth+1, false); err != nil {
					return err
				}
				if err := t.writeHeader(body, te, TagItemDelimitationItem, "", 0); err != nil {
					return err
				}
			}
		case TagSequenceDelimitationItem:
			if seqEnd >= 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item in a sequence of defined length")
			}
			if ilen != 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item with non-zero length %d", ilen)
			}
			return finish()
		default:
			return scanErr(istart, tag, ErrMalformed, "expected an item in a sequence, found %s", itag)
		}
	}
}
