package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/relais-health/relais/dicom"
)

func (im *Image) checkFrame(i int) error {
	if i < 1 || i > im.NumberOfFrames {
		return fmt.Errorf("imaging: frame %d of %d: %w", i, im.NumberOfFrames, ErrFrameRange)
	}
	if im.video {
		return fmt.Errorf("imaging: frames of %s are one video stream: %w", im.TransferSyntax.Name, ErrUnsupported)
	}
	return nil
}

// Frame returns the bytes of frame i (1-based, as in DICOMweb) as served
// by WADO-RS /frames: for uncompressed syntaxes FrameLength bytes in little
// endian byte order (big endian data is byte-swapped; 1-bit frames that do
// not start on a byte boundary are shifted to start on one), for
// encapsulated syntaxes the frame's fragments concatenated as stored (see
// FrameMediaType). The reader reads sections of the underlying ReaderAt
// lazily, except for swapped or shifted frames, which are read at once.
func (im *Image) Frame(i int) (io.Reader, error) {
	if err := im.checkFrame(i); err != nil {
		return nil, err
	}
	if im.TransferSyntax.Encapsulated {
		frags, err := im.fragments(i)
		if err != nil {
			return nil, err
		}
		rs := make([]io.Reader, len(frags))
		for k, f := range frags {
			rs[k] = io.NewSectionReader(im.r, f.start, f.end-f.start)
		}
		return io.MultiReader(rs...), nil
	}
	bits := im.frameBits()
	startBit := int64(i-1) * bits
	if startBit%8 == 0 && bits%8 == 0 && im.swapUnit() == 1 {
		return io.NewSectionReader(im.r, im.pixOff+startBit/8, im.FrameLength), nil
	}
	b, err := im.nativeFrame(i)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// swapUnit is the size of the words to byte-swap to turn the pixel data
// into little endian order: 1 for little endian data or bytes (OB).
func (im *Image) swapUnit() int {
	if !im.TransferSyntax.BigEndian {
		return 1
	}
	switch {
	case im.BitsAllocated > 8:
		return im.BitsAllocated / 8
	case im.pixVR == dicom.VROW:
		return 2 // 8- or 1-bit data in OW words
	}
	return 1
}

// nativeFrame reads uncompressed frame i into memory, in little endian
// order and starting on a byte boundary.
func (im *Image) nativeFrame(i int) ([]byte, error) {
	bits := im.frameBits()
	startBit := int64(i-1) * bits
	unit := int64(im.swapUnit())
	// Byte range to read, aligned to the swap unit relative to the value.
	lo := startBit / 8
	hi := (startBit + bits + 7) / 8
	alo := lo - lo%unit
	ahi := hi + (unit-hi%unit)%unit
	if ahi > im.pixLen {
		ahi = im.pixLen
	}
	buf := make([]byte, ahi-alo)
	if err := readFullAt(im.r, buf, im.pixOff+alo); err != nil {
		return nil, err
	}
	switch unit {
	case 2:
		for k := 0; k+1 < len(buf); k += 2 {
			buf[k], buf[k+1] = buf[k+1], buf[k]
		}
	case 4:
		for k := 0; k+3 < len(buf); k += 4 {
			buf[k], buf[k+1], buf[k+2], buf[k+3] = buf[k+3], buf[k+2], buf[k+1], buf[k]
		}
	case 8:
		for k := 0; k+7 < len(buf); k += 8 {
			for a, b := k, k+7; a < b; a, b = a+1, b-1 {
				buf[a], buf[b] = buf[b], buf[a]
			}
		}
	}
	buf = buf[lo-alo:]
	n := im.FrameLength
	if shift := uint(startBit % 8); shift != 0 || bits%8 != 0 {
		// 1-bit frame starting inside a byte: pixels are packed from the
		// least significant bit (PS3.5 8.1.1, D.2), shift them down.
		out := make([]byte, n)
		for k := range out {
			v := buf[k] >> shift
			if k+1 < len(buf) {
				v |= buf[k+1] << (8 - shift)
			}
			out[k] = v
		}
		if rem := bits % 8; rem != 0 {
			out[n-1] &= byte(1<<rem - 1)
		}
		return out, nil
	}
	return buf[:n], nil
}

// fragments returns the value ranges of the fragments of frame i
// (encapsulated syntaxes only).
func (im *Image) fragments(i int) ([]span, error) {
	s := im.spans[i-1]
	cr := &chunkReader{r: im.r, size: im.size}
	var out []span
	_, err := walk(cr, s.start, s.end, maxFrames, func(_, off, length int64) error {
		out = append(out, span{off, off + length})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("imaging: frame %d has no fragment: %w", i, ErrInvalid)
	}
	return out, nil
}

// compressedFrame reads the fragments of frame i into memory.
func (im *Image) compressedFrame(i int) ([]byte, error) {
	frags, err := im.fragments(i)
	if err != nil {
		return nil, err
	}
	var n int64
	for _, f := range frags {
		n += f.end - f.start
	}
	if n > im.size {
		return nil, fmt.Errorf("imaging: frame %d of %d bytes: %w", i, n, ErrInvalid)
	}
	buf := make([]byte, n)
	pos := int64(0)
	for _, f := range frags {
		if err := readFullAt(im.r, buf[pos:pos+f.end-f.start], f.start); err != nil {
			return nil, err
		}
		pos += f.end - f.start
	}
	return buf, nil
}

// DecodedFrame returns frame i uncompressed: FrameLength bytes in little
// endian order, samples interleaved as PlanarConfiguration says, 1-bit
// frames starting on a byte boundary. Uncompressed syntaxes and RLE
// Lossless (decoded per PS3.5 Annex G) and Encapsulated Uncompressed are
// supported; other encapsulated syntaxes fail with ErrCompressed. Use it to
// serve RLE frames as application/octet-stream (transfer syntax Explicit VR
// Little Endian).
func (im *Image) DecodedFrame(i int) ([]byte, error) {
	if err := im.checkFrame(i); err != nil {
		return nil, err
	}
	switch {
	case !im.TransferSyntax.Encapsulated:
		return im.nativeFrame(i)
	case im.TransferSyntax.UID == dicom.RLELossless:
		data, err := im.compressedFrame(i)
		if err != nil {
			return nil, err
		}
		return decodeRLE(data, &im.Pixels)
	case im.TransferSyntax.UID == dicom.EncapsulatedUncompressedExplicitVRLittleEndian:
		data, err := im.compressedFrame(i)
		if err != nil {
			return nil, err
		}
		if int64(len(data)) < im.FrameLength {
			return nil, fmt.Errorf("imaging: encapsulated uncompressed frame %d of %d bytes, want %d: %w", i, len(data), im.FrameLength, ErrInvalid)
		}
		return data[:im.FrameLength], nil
	}
	return nil, fmt.Errorf("imaging: %s: %w (%w)", im.TransferSyntax.Name, ErrCompressed, ErrUnsupported)
}

// Media types of frames (PS3.18 8.7.3.5.2) and of renderings (PS3.18 8.7.4).
const (
	MediaOctetStream = "application/octet-stream"
	MediaJPEG        = "image/jpeg"
	MediaJPEGLS      = "image/jls"
	MediaJP2         = "image/jp2"
	MediaJPX         = "image/jpx"
	MediaHTJ2K       = "image/jphc"
	MediaJPEGXL      = "image/jxl"
	MediaRLE         = "image/dicom-rle" // IANA-registered; older DICOMweb texts said image/x-dicom-rle
	MediaRLELegacy   = "image/x-dicom-rle"
	MediaMPEG2       = "video/mpeg"
	MediaMP4         = "video/mp4"
	MediaH265        = "video/H265"
	MediaPNG         = "image/png"
	MediaGIF         = "image/gif"
)

// FrameMediaType returns the media type of the bytes Frame returns and the
// transfer syntax UID to announce with it (the transfer-syntax parameter of
// the multipart part's Content-Type, PS3.18 8.7.3.5.2): uncompressed
// syntaxes give application/octet-stream with Explicit VR Little Endian
// (Frame always returns little endian bytes); encapsulated ones their
// compressed media type and their own UID.
func (im *Image) FrameMediaType() (mediaType, transferSyntaxUID string) {
	return FrameMediaType(im.TransferSyntax.UID)
}

// FrameMediaType returns the media type of frames stored in transfer
// syntax uid, and the transfer syntax to announce (see Image.FrameMediaType).
func FrameMediaType(uid string) (mediaType, transferSyntaxUID string) {
	ts, ok := dicom.LookupTransferSyntax(uid)
	if !ok || !ts.Encapsulated || uid == dicom.EncapsulatedUncompressedExplicitVRLittleEndian {
		return MediaOctetStream, dicom.ExplicitVRLittleEndian
	}
	switch {
	case uid == dicom.JPEGLSLossless || uid == dicom.JPEGLSNearLossless:
		return MediaJPEGLS, uid
	case isJPEG(uid):
		// JPEG baseline, extended, lossless (and retired JPEG processes).
		return MediaJPEG, uid
	case uid == dicom.JPEG2000Lossless || uid == dicom.JPEG2000:
		return MediaJP2, uid
	case uid == dicom.JPEG2000MCLossless || uid == dicom.JPEG2000MC:
		return MediaJPX, uid
	case uid == dicom.HTJ2KLossless || uid == dicom.HTJ2KLosslessRPCL || uid == dicom.HTJ2K:
		return MediaHTJ2K, uid
	case uid == dicom.JPEGXLLossless || uid == dicom.JPEGXLJPEGRecompression || uid == dicom.JPEGXL:
		return MediaJPEGXL, uid
	case uid == dicom.RLELossless:
		return MediaRLE, uid
	case isVideo(uid) && (uid == dicom.MPEG2MPML || uid == dicom.MPEG2MPMLF || uid == dicom.MPEG2MPHL || uid == dicom.MPEG2MPHLF):
		return MediaMPEG2, uid
	case uid == dicom.HEVCMP51 || uid == dicom.HEVCM10P51:
		return MediaH265, uid
	case isVideo(uid):
		return MediaMP4, uid
	}
	return MediaOctetStream, uid
}

// palette is a PALETTE COLOR lookup table (PS3.3 C.7.6.3.1.5), entries
// reduced to 8 bits.
type palette struct {
	first   int
	r, g, b []uint8
}

func parsePalette(ds *dicom.Dataset) *palette {
	p := &palette{}
	var order binary.ByteOrder = binary.LittleEndian
	if ds.BigEndian {
		order = binary.BigEndian
	}
	descs := [3]dicom.Tag{tagRedDescriptor, tagGreenDescriptor, tagBlueDescriptor}
	datas := [3]dicom.Tag{tagRedData, tagGreenData, tagBlueData}
	outs := [3]*[]uint8{&p.r, &p.g, &p.b}
	for c := 0; c < 3; c++ {
		d, ok := ds.Get(descs[c])
		if !ok || len(d.Raw) < 6 {
			return nil
		}
		n := int(order.Uint16(d.Raw[0:]))
		if n == 0 {
			n = 1 << 16
		}
		first := int(order.Uint16(d.Raw[2:]))
		if d.VR == dicom.VRSS {
			first = int(int16(first))
		}
		bits := int(order.Uint16(d.Raw[4:]))
		if c == 0 {
			p.first = first
		} else if first != p.first {
			return nil
		}
		e, ok := ds.Get(datas[c])
		if !ok {
			return nil
		}
		raw := e.Raw
		lut := make([]uint8, n)
		switch {
		case len(raw) == 2*n && bits == 16:
			for k := range lut {
				lut[k] = uint8(order.Uint16(raw[2*k:]) >> 8)
			}
		case len(raw) >= 2*n && bits == 8:
			// 8-bit entries in 16-bit words: use whichever byte holds data.
			high := false
			for k := 0; k < n; k++ {
				if order.Uint16(raw[2*k:]) > 0xFF {
					high = true
					break
				}
			}
			for k := range lut {
				v := order.Uint16(raw[2*k:])
				if high {
					v >>= 8
				}
				lut[k] = uint8(v)
			}
		case len(raw) >= n && bits == 8:
			copy(lut, raw)
		default:
			return nil
		}
		*outs[c] = lut
	}
	return p
}

// lut is a VOI LUT (PS3.3 C.11.2.1.1): entries for inputs first,
// first+1, ..., with outputs in [0, 2^bits-1].
type lut struct {
	first int64
	data  []uint16
	max   float64
}

// parseLUT reads the LUT Descriptor and LUT Data of a VOI LUT Sequence
// item; nil if they are missing or inconsistent. The first mapped value is
// signed when the pixel data is.
func parseLUT(ds *dicom.Dataset, signed bool) *lut {
	var order binary.ByteOrder = binary.LittleEndian
	if ds.BigEndian {
		order = binary.BigEndian
	}
	d, ok := ds.Get(tagLUTDescriptor)
	if !ok || len(d.Raw) < 6 {
		return nil
	}
	e, ok := ds.Get(tagLUTData)
	if !ok {
		return nil
	}
	n := int(order.Uint16(d.Raw[0:]))
	if n == 0 {
		n = 1 << 16
	}
	first := int64(order.Uint16(d.Raw[2:]))
	if signed || d.VR == dicom.VRSS {
		first = int64(int16(first))
	}
	bits := int(order.Uint16(d.Raw[4:]))
	if bits < 1 || bits > 16 {
		return nil
	}
	l := &lut{first: first, data: make([]uint16, n), max: float64(int(1)<<bits - 1)}
	switch {
	case len(e.Raw) >= 2*n:
		for k := range l.data {
			l.data[k] = order.Uint16(e.Raw[2*k:])
		}
	case bits <= 8 && len(e.Raw) >= n:
		for k := range l.data {
			l.data[k] = uint16(e.Raw[k])
		}
	default:
		return nil
	}
	for _, v := range l.data {
		if float64(v) > l.max {
			return nil
		}
	}
	return l
}
