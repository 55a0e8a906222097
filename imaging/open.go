package imaging

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/relais-health/relais/dicom"
)

// Errors returned by Open, Frame, DecodedFrame and Render wrap one of these
// (test with errors.Is), or an error of the dicom package (ErrNotPart10,
// ErrTruncated, ErrMalformed, ErrLimitExceeded) for a broken header, or an
// I/O error of the underlying reader.
var (
	// ErrNoPixelData means the instance has no top-level Pixel Data
	// (7FE0,0010) element (e.g. a structured report, or Float Pixel Data).
	ErrNoPixelData = errors.New("imaging: no pixel data")
	// ErrInvalid means the Image Pixel module or the pixel data is
	// inconsistent: missing or zero Rows/Columns, impossible bit depths,
	// frames beyond the data, broken encapsulation or compressed stream.
	ErrInvalid = errors.New("imaging: invalid pixel data")
	// ErrTooLarge means a frame has more than MaxPixels pixels, or claims
	// more decoded bytes than its compressed data can hold.
	ErrTooLarge = errors.New("imaging: image too large")
	// ErrUnsupported means the operation is not implemented for this
	// instance (photometric interpretation, bit depth, transfer syntax).
	ErrUnsupported = errors.New("imaging: unsupported")
	// ErrCompressed means a frame would have to be decoded by a codec
	// Relais does not have (JPEG other than baseline, JPEG-LS, JPEG 2000,
	// ...). Errors wrapping it also wrap ErrUnsupported.
	ErrCompressed = errors.New("imaging: compressed frame cannot be decoded")
	// ErrFrameRange means a frame number outside 1..NumberOfFrames.
	ErrFrameRange = errors.New("imaging: frame number out of range")
)

// MaxPixels bounds Rows×Columns of the frames Open accepts (256 MP).
// Memory for rendering is proportional to it.
var MaxPixels int64 = 256 << 20

// maxFrames bounds the frame and fragment tables built from a file.
const maxFrames = 1 << 20

// Tags of the Image Pixel, Modality LUT and VOI LUT modules read by Open.
var (
	tagSamplesPerPixel       = dicom.TagSamplesPerPixel
	tagPhotometric           = dicom.TagPhotometricInterpretation
	tagPlanarConfiguration   = dicom.NewTag(0x0028, 0x0006)
	tagNumberOfFrames        = dicom.TagNumberOfFrames
	tagRows                  = dicom.TagRows
	tagColumns               = dicom.TagColumns
	tagBitsAllocated         = dicom.TagBitsAllocated
	tagBitsStored            = dicom.TagBitsStored
	tagHighBit               = dicom.TagHighBit
	tagPixelRepresentation   = dicom.TagPixelRepresentation
	tagWindowCenter          = dicom.NewTag(0x0028, 0x1050)
	tagWindowWidth           = dicom.NewTag(0x0028, 0x1051)
	tagRescaleIntercept      = dicom.NewTag(0x0028, 0x1052)
	tagRescaleSlope          = dicom.NewTag(0x0028, 0x1053)
	tagVOILUTFunction        = dicom.NewTag(0x0028, 0x1056)
	tagRedDescriptor         = dicom.NewTag(0x0028, 0x1101)
	tagGreenDescriptor       = dicom.NewTag(0x0028, 0x1102)
	tagBlueDescriptor        = dicom.NewTag(0x0028, 0x1103)
	tagRedData               = dicom.NewTag(0x0028, 0x1201)
	tagGreenData             = dicom.NewTag(0x0028, 0x1202)
	tagBlueData              = dicom.NewTag(0x0028, 0x1203)
	tagVOILUTSequence        = dicom.NewTag(0x0028, 0x3010)
	tagLUTDescriptor         = dicom.NewTag(0x0028, 0x3002)
	tagLUTData               = dicom.NewTag(0x0028, 0x3006)
	tagExtendedOffsetTable   = dicom.NewTag(0x7FE0, 0x0001)
	tagExtendedOffsetLengths = dicom.NewTag(0x7FE0, 0x0002)
)

var wantTags = dicom.WantTags(tagSamplesPerPixel, tagPhotometric, tagPlanarConfiguration, tagNumberOfFrames,
	tagRows, tagColumns, tagBitsAllocated, tagBitsStored, tagHighBit, tagPixelRepresentation,
	tagWindowCenter, tagWindowWidth, tagRescaleIntercept, tagRescaleSlope, tagVOILUTFunction,
	tagRedDescriptor, tagGreenDescriptor, tagBlueDescriptor, tagRedData, tagGreenData, tagBlueData,
	tagVOILUTSequence, tagLUTDescriptor, tagLUTData, tagExtendedOffsetTable, tagExtendedOffsetLengths)

// Pixels describes an instance's Image Pixel module (PS3.3 C.7.6.3), the
// Modality and VOI LUT attributes used for rendering, and the transfer
// syntax of its pixel data. Defaults are filled in: SamplesPerPixel 1,
// BitsStored = BitsAllocated, HighBit = BitsStored-1, NumberOfFrames 1,
// RescaleSlope 1, Photometric MONOCHROME2 (one sample) or RGB (three).
type Pixels struct {
	Rows, Columns       int
	SamplesPerPixel     int
	BitsAllocated       int
	BitsStored          int
	HighBit             int
	PixelRepresentation int // 0 unsigned, 1 two's complement
	PlanarConfiguration int // 0 colour-by-pixel, 1 colour-by-plane
	NumberOfFrames      int
	Photometric         string
	TransferSyntax      dicom.TransferSyntax
	// RescaleSlope and RescaleIntercept are the Modality LUT (grayscale only).
	RescaleSlope, RescaleIntercept float64
	// WindowCenter and WindowWidth are the VOI windows of the header, in
	// pairs (extra values of the longer list dropped).
	WindowCenter, WindowWidth []float64
	// VOILUTFunction is LINEAR (default), LINEAR_EXACT or SIGMOID.
	VOILUTFunction string
	// FrameLength is the size in bytes of an uncompressed (or decoded)
	// frame, as returned by DecodedFrame.
	FrameLength int64

	palette *palette
	voiLUT  *lut
}

// Image is an opened instance whose frames can be read and rendered. It
// holds the io.ReaderAt given to Open and is safe for concurrent use if
// that reader is.
type Image struct {
	Pixels

	r    io.ReaderAt
	size int64
	// pixOff is the absolute offset of the Pixel Data value; pixLen its
	// length (uncompressed only).
	pixOff, pixLen int64
	pixVR          dicom.VR
	// spans locates the frames of encapsulated pixel data.
	spans []span
	video bool
}

// span locates an encapsulated frame: the offset of the header of its
// first fragment item and of the byte after its last item (end < 0: up to
// the sequence delimitation item).
type span struct{ start, end int64 }

// Open reads a Part 10 blob's file meta and data set header up to the
// Pixel Data element (never the pixel values) and locates the frames.
//
// Uncompressed pixel data: frame i (1-based) starts at bit
// (i-1)×Rows×Columns×SamplesPerPixel×BitsAllocated of the value; with
// BitsAllocated 1 frames are packed without padding and need not start on a
// byte boundary (PS3.5 8.1.1). Uncompressed YBR_FULL_422 has two samples
// per pixel on the wire (PS3.3 C.7.6.3.1.2). All frames must lie within the
// value.
//
// Encapsulated pixel data (PS3.5 A.4), in this order of preference:
//  1. a non-empty Basic Offset Table with one ascending entry per frame,
//     starting at 0, gives the first fragment of each frame; a frame runs to
//     the next frame's first fragment (the last to the sequence delimiter);
//  2. else an Extended Offset Table (7FE0,0001) with one ascending entry
//     per frame (each frame one fragment, PS3.3 C.7.6.3.1.8);
//  3. else a single frame is all the fragments;
//  4. else, if there are as many fragments as frames, one fragment each;
//  5. else, for JPEG, JPEG-LS, JPEG 2000, HTJ2K and JPEG XL, a frame starts
//     at each fragment beginning with its codestream start marker (JPEG SOI
//     FFD8; JPEG 2000 SOC+SIZ FF4F FF51 or the JP2 signature box; JPEG XL
//     FF0A or its container signature), which must give exactly
//     NumberOfFrames frames starting with the first fragment;
//  6. else the frames cannot be located and Open fails with ErrInvalid.
//
// Video transfer syntaxes (MPEG-2, H.264, HEVC) hold one stream for all
// frames: Open succeeds but Frame and Render fail with ErrUnsupported.
// Deflated syntaxes (no random access) and unknown ones fail with
// ErrUnsupported.
func Open(r io.ReaderAt, size int64) (*Image, error) {
	if size < 0 {
		return nil, fmt.Errorf("imaging: negative size: %w", ErrInvalid)
	}
	meta, metaLen, err := dicom.ReadFileMeta(bufio.NewReader(io.NewSectionReader(r, 0, size)))
	if err != nil {
		return nil, fmt.Errorf("imaging: reading file meta: %w", err)
	}
	ts, ok := dicom.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return nil, fmt.Errorf("imaging: transfer syntax %q: %w", meta.TransferSyntaxUID, ErrUnsupported)
	}
	if ts.Deflated {
		// Offsets in a deflated data set count inflated bytes: no random access.
		return nil, fmt.Errorf("imaging: %s: %w", ts.Name, ErrUnsupported)
	}
	lim := dicom.DefaultLimits()
	lim.MaxDatasetSize = size
	// Small first reads: the scanner's buffer would otherwise read its size
	// of pixels past the header.
	hdr := &smallReads{r: io.NewSectionReader(r, metaLen, size-metaLen)}
	res, err := dicom.ScanWith(hdr, ts, lim,
		dicom.ScanOptions{Want: wantTags, StopAtPixelData: true})
	if err != nil {
		return nil, fmt.Errorf("imaging: reading header: %w", err)
	}
	if res.PixelData == nil {
		return nil, ErrNoPixelData
	}
	im := &Image{r: r, size: size, pixOff: metaLen + res.PixelData.Offset, pixVR: res.PixelData.VR}
	im.TransferSyntax = ts
	if err := im.Pixels.parse(res.Dataset, ts); err != nil {
		return nil, err
	}
	if im.pixOff > size {
		return nil, fmt.Errorf("imaging: pixel data beyond the end of the file: %w", ErrInvalid)
	}
	if !ts.Encapsulated {
		if res.PixelData.Length == dicom.UndefinedLength {
			return nil, fmt.Errorf("imaging: encapsulated pixel data in %s: %w", ts.Name, ErrInvalid)
		}
		im.pixLen = int64(res.PixelData.Length)
		if im.pixLen > size-im.pixOff {
			return nil, fmt.Errorf("imaging: pixel data of %d bytes runs past the end of the file: %w", im.pixLen, ErrInvalid)
		}
		bits := im.frameBits()
		if int64(im.NumberOfFrames) > im.pixLen*8/bits {
			return nil, fmt.Errorf("imaging: %d frames of %d bits exceed pixel data of %d bytes: %w",
				im.NumberOfFrames, bits, im.pixLen, ErrInvalid)
		}
		return im, nil
	}
	if res.PixelData.Length != dicom.UndefinedLength {
		return nil, fmt.Errorf("imaging: native pixel data in encapsulated syntax %s: %w", ts.Name, ErrUnsupported)
	}
	if err := im.locate(res.Dataset); err != nil {
		return nil, err
	}
	return im, nil
}

// packed422 reports frames whose chroma is stored at half horizontal
// resolution (Y1 Y2 Cb Cr), as native and encapsulated uncompressed
// YBR_FULL_422 frames are (PS3.3 C.7.6.3.1.2); decoded RLE frames have
// three full samples per pixel.
func (p *Pixels) packed422() bool {
	native := !p.TransferSyntax.Encapsulated || p.TransferSyntax.UID == dicom.EncapsulatedUncompressedExplicitVRLittleEndian
	return native && (p.Photometric == "YBR_FULL_422" || p.Photometric == "YBR_PARTIAL_422")
}

// frameBits is the size of an uncompressed frame in bits.
func (p *Pixels) frameBits() int64 {
	samples := int64(p.SamplesPerPixel)
	if p.packed422() {
		samples = 2
	}
	return int64(p.Rows) * int64(p.Columns) * samples * int64(p.BitsAllocated)
}

func uintOf(ds *dicom.Dataset, t dicom.Tag, def int) (int, error) {
	if _, ok := ds.Get(t); !ok {
		return def, nil
	}
	v, ok := ds.Uint(t)
	if !ok || v > math.MaxInt32 {
		return 0, fmt.Errorf("imaging: %s (%s) is not a valid number: %w", dicom.Keyword(t), t, ErrInvalid)
	}
	return int(v), nil
}

func floatsOf(ds *dicom.Dataset, t dicom.Tag) []float64 {
	vals, err := ds.Strings(t)
	if err != nil {
		return nil
	}
	var out []float64
	for _, s := range vals {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return out
		}
		out = append(out, f)
	}
	return out
}

// parse fills p from the extracted header and checks its consistency.
func (p *Pixels) parse(ds *dicom.Dataset, ts dicom.TransferSyntax) error {
	var err error
	get := func(t dicom.Tag, def int) int {
		v, e := uintOf(ds, t, def)
		if e != nil && err == nil {
			err = e
		}
		return v
	}
	p.Rows = get(tagRows, 0)
	p.Columns = get(tagColumns, 0)
	p.SamplesPerPixel = get(tagSamplesPerPixel, 1)
	p.BitsAllocated = get(tagBitsAllocated, 0)
	p.BitsStored = get(tagBitsStored, p.BitsAllocated)
	p.HighBit = get(tagHighBit, p.BitsStored-1)
	p.PixelRepresentation = get(tagPixelRepresentation, 0)
	p.PlanarConfiguration = get(tagPlanarConfiguration, 0)
	p.NumberOfFrames = get(tagNumberOfFrames, 1)
	if err != nil {
		return err
	}
	p.Photometric, _ = ds.String(tagPhotometric)
	p.Photometric = strings.ToUpper(strings.TrimSpace(p.Photometric))
	if p.Photometric == "" {
		p.Photometric = "MONOCHROME2"
		if p.SamplesPerPixel == 3 {
			p.Photometric = "RGB"
		}
	}
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("imaging: "+format+": %w", append(args, ErrInvalid)...)
	}
	switch {
	case p.Rows <= 0 || p.Columns <= 0:
		return invalid("image of %d×%d pixels", p.Rows, p.Columns)
	case p.SamplesPerPixel < 1 || p.SamplesPerPixel > 4:
		return invalid("%d samples per pixel", p.SamplesPerPixel)
	case p.BitsAllocated != 1 && (p.BitsAllocated%8 != 0 || p.BitsAllocated > 64 || p.BitsAllocated == 0):
		return invalid("bits allocated %d", p.BitsAllocated)
	case p.BitsStored < 1 || p.BitsStored > p.BitsAllocated:
		return invalid("bits stored %d with bits allocated %d", p.BitsStored, p.BitsAllocated)
	case p.HighBit >= p.BitsAllocated || p.HighBit+1 < p.BitsStored:
		return invalid("high bit %d with bits stored %d and allocated %d", p.HighBit, p.BitsStored, p.BitsAllocated)
	case p.PixelRepresentation > 1:
		return invalid("pixel representation %d", p.PixelRepresentation)
	case p.PlanarConfiguration > 1:
		return invalid("planar configuration %d", p.PlanarConfiguration)
	case p.NumberOfFrames < 1 || p.NumberOfFrames > maxFrames:
		return invalid("number of frames %d", p.NumberOfFrames)
	}
	if p.SamplesPerPixel == 1 {
		p.PlanarConfiguration = 0
	}
	if px := int64(p.Rows) * int64(p.Columns); px > MaxPixels {
		return fmt.Errorf("imaging: %d×%d pixels over %d: %w", p.Rows, p.Columns, MaxPixels, ErrTooLarge)
	}
	if p.packed422() {
		if p.Columns%2 != 0 || p.SamplesPerPixel != 3 || p.PlanarConfiguration != 0 {
			return invalid("%s with %d columns, %d samples, planar configuration %d", p.Photometric, p.Columns, p.SamplesPerPixel, p.PlanarConfiguration)
		}
	}
	p.FrameLength = (p.frameBits() + 7) / 8
	p.RescaleSlope, p.RescaleIntercept = 1, 0
	if v := floatsOf(ds, tagRescaleSlope); len(v) > 0 && v[0] != 0 {
		p.RescaleSlope = v[0]
	}
	if v := floatsOf(ds, tagRescaleIntercept); len(v) > 0 {
		p.RescaleIntercept = v[0]
	}
	wc, ww := floatsOf(ds, tagWindowCenter), floatsOf(ds, tagWindowWidth)
	n := min(len(wc), len(ww))
	p.WindowCenter, p.WindowWidth = wc[:n:n], ww[:n:n]
	if n == 0 {
		p.WindowCenter, p.WindowWidth = nil, nil
	}
	p.VOILUTFunction, _ = ds.String(tagVOILUTFunction)
	p.VOILUTFunction = strings.ToUpper(strings.TrimSpace(p.VOILUTFunction))
	if p.Photometric == "PALETTE COLOR" {
		p.palette = parsePalette(ds)
	}
	if e, ok := ds.Get(tagVOILUTSequence); ok && len(e.Items) > 0 {
		p.voiLUT = parseLUT(e.Items[0], p.PixelRepresentation == 1)
	}
	return nil
}

// locate finds the frames of encapsulated pixel data (see Open).
func (im *Image) locate(ds *dicom.Dataset) error {
	cr := &chunkReader{r: im.r, size: im.size}
	var hdr [8]byte
	if err := cr.readAt(hdr[:], im.pixOff); err != nil {
		return fmt.Errorf("imaging: basic offset table: %w", err)
	}
	tag := dicom.NewTag(binary.LittleEndian.Uint16(hdr[0:]), binary.LittleEndian.Uint16(hdr[2:]))
	botLen := int64(binary.LittleEndian.Uint32(hdr[4:]))
	if tag != dicom.TagItem || botLen%4 != 0 || botLen > im.size-im.pixOff-8 {
		return fmt.Errorf("imaging: no valid basic offset table item: %w", ErrInvalid)
	}
	first := im.pixOff + 8 + botLen
	frames := im.NumberOfFrames
	if isVideo(im.TransferSyntax.UID) {
		im.video = true
		im.spans = []span{{first, -1}}
		return nil
	}
	// 1. Basic Offset Table.
	if botLen > 0 && botLen/4 == int64(frames) {
		bot := make([]byte, botLen)
		if err := cr.readAt(bot, im.pixOff+8); err != nil {
			return fmt.Errorf("imaging: basic offset table: %w", err)
		}
		offs := make([]int64, frames)
		for i := range offs {
			offs[i] = int64(binary.LittleEndian.Uint32(bot[4*i:]))
		}
		if spans, ok := im.spansFrom(first, offs); ok {
			im.spans = spans
			return nil
		}
	}
	// 2. Extended Offset Table.
	if e, ok := ds.Get(tagExtendedOffsetTable); ok && len(e.Raw) == 8*frames {
		offs := make([]int64, frames)
		valid := true
		for i := range offs {
			var v uint64
			if ds.BigEndian {
				v = binary.BigEndian.Uint64(e.Raw[8*i:])
			} else {
				v = binary.LittleEndian.Uint64(e.Raw[8*i:])
			}
			if v > uint64(im.size) {
				valid = false
				break
			}
			offs[i] = int64(v)
		}
		if valid {
			if spans, ok := im.spansFrom(first, offs); ok {
				im.spans = spans
				return nil
			}
		}
	}
	// 3. A single frame is all the fragments.
	if frames == 1 {
		im.spans = []span{{first, -1}}
		return nil
	}
	// 4–5. Walk the fragments.
	var frags []span // item header offset, item end
	var starts []bool
	marker := startMarker(im.TransferSyntax.UID)
	_, err := walk(cr, first, -1, maxFrames, func(hdrOff, off, length int64) error {
		frags = append(frags, span{hdrOff, off + length})
		if marker != nil {
			var b [12]byte
			n := min(int64(len(b)), length)
			if err := cr.readAt(b[:n], off); err != nil {
				return err
			}
			starts = append(starts, marker(b[:n]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(frags) == frames {
		im.spans = frags
		return nil
	}
	if len(frags) > frames && marker != nil && starts[0] {
		var spans []span
		for i, f := range frags {
			if starts[i] {
				if len(spans) == frames {
					spans = nil
					break
				}
				spans = append(spans, span{f.start, f.end})
			} else {
				spans[len(spans)-1].end = f.end
			}
		}
		if len(spans) == frames {
			im.spans = spans
			return nil
		}
	}
	return fmt.Errorf("imaging: cannot locate %d frames in %d fragments without offset table: %w", frames, len(frags), ErrInvalid)
}

// spansFrom turns offsets of the first fragment of each frame (relative to
// the first fragment item) into spans; ok is false if they are not strictly
// ascending from 0 within the file.
func (im *Image) spansFrom(first int64, offs []int64) ([]span, bool) {
	if len(offs) == 0 || offs[0] != 0 {
		return nil, false
	}
	spans := make([]span, len(offs))
	for i, o := range offs {
		if i > 0 && o <= offs[i-1] {
			return nil, false
		}
		if o > im.size-first-8 {
			return nil, false
		}
		spans[i] = span{first + o, -1}
		if i > 0 {
			spans[i-1].end = first + o
		}
	}
	return spans, true
}

// walk reads fragment item headers from start up to end (end < 0: up to
// the sequence delimitation item), calling fn with each item's header
// offset, value offset and length. It returns the offset after the last
// item (or the delimiter).
func walk(cr *chunkReader, start, end int64, max int, fn func(hdrOff, off, length int64) error) (int64, error) {
	var hdr [8]byte
	pos := start
	for n := 0; ; n++ {
		if end >= 0 && pos == end {
			return pos, nil
		}
		if end >= 0 && pos > end {
			return pos, fmt.Errorf("imaging: fragment items overrun frame end at %d: %w", end, ErrInvalid)
		}
		if err := cr.readAt(hdr[:], pos); err != nil {
			return pos, fmt.Errorf("imaging: fragment item at %d: %w", pos, err)
		}
		tag := dicom.NewTag(binary.LittleEndian.Uint16(hdr[0:]), binary.LittleEndian.Uint16(hdr[2:]))
		length := int64(binary.LittleEndian.Uint32(hdr[4:]))
		switch tag {
		case dicom.TagSequenceDelimitationItem:
			if end >= 0 {
				return pos, fmt.Errorf("imaging: sequence delimiter inside a frame at %d: %w", pos, ErrInvalid)
			}
			return pos + 8, nil
		case dicom.TagItem:
		default:
			return pos, fmt.Errorf("imaging: expected a fragment item at %d, found %s: %w", pos, tag, ErrInvalid)
		}
		if n >= max {
			return pos, fmt.Errorf("imaging: more than %d fragments: %w", max, ErrTooLarge)
		}
		if length == int64(dicom.UndefinedLength) || length > cr.size-pos-8 {
			return pos, fmt.Errorf("imaging: fragment of %d bytes at %d runs past the end of the file: %w", length, pos, ErrInvalid)
		}
		if err := fn(pos, pos+8, length); err != nil {
			return pos, err
		}
		pos += 8 + length
	}
}

// smallReads caps the first Read at headerRead bytes and doubles the cap
// with each Read: a typical header costs one small read, and a header with
// large values to skip still few reads.
type smallReads struct {
	r   io.Reader
	cap int
}

const headerRead = 8 << 10

func (s *smallReads) Read(p []byte) (int, error) {
	if s.cap == 0 {
		s.cap = headerRead
	}
	if len(p) > s.cap {
		p = p[:s.cap]
	}
	s.cap = min(2*s.cap, 1<<30)
	return s.r.Read(p)
}

// chunkReader reads small pieces (item headers) through a one-chunk cache
// so that walking many small fragments of a remote blob takes few reads.
type chunkReader struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64
}

// chunkSize trades reads for bytes: fragments of a few KiB share a read,
// and walking large fragments reads 8 KiB per fragment, not the fragment.
const chunkSize = 8 << 10

func (c *chunkReader) readAt(p []byte, off int64) error {
	if off < 0 || int64(len(p)) > c.size-off {
		return fmt.Errorf("imaging: %d bytes at offset %d beyond the end of the file: %w", len(p), off, ErrInvalid)
	}
	if off < c.off || off+int64(len(p)) > c.off+int64(len(c.buf)) {
		if len(p) > chunkSize {
			return readFullAt(c.r, p, off)
		}
		n := min(int64(chunkSize), c.size-off)
		if c.buf == nil {
			c.buf = make([]byte, chunkSize)
		}
		c.buf = c.buf[:n]
		if err := readFullAt(c.r, c.buf, off); err != nil {
			c.buf = c.buf[:0]
			return err
		}
		c.off = off
	}
	copy(p, c.buf[off-c.off:])
	return nil
}

// readFullAt reads len(p) bytes at off; a ReaderAt may report io.EOF
// along with a full read at the end of its data.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return readErr(err)
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("imaging: short read: %w", ErrInvalid)
	}
	return err
}

// startMarker returns a function telling whether a fragment begins a
// codestream of the syntax uid, or nil if the syntax has no start marker
// rule (RLE, video, encapsulated uncompressed: one fragment per frame).
func startMarker(uid string) func(b []byte) bool {
	if isJPEG(uid) || uid == dicom.JPEGLSLossless || uid == dicom.JPEGLSNearLossless {
		return func(b []byte) bool { return len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF }
	}
	switch uid {
	case dicom.JPEG2000Lossless, dicom.JPEG2000, dicom.JPEG2000MCLossless, dicom.JPEG2000MC,
		dicom.HTJ2KLossless, dicom.HTJ2KLosslessRPCL, dicom.HTJ2K:
		return func(b []byte) bool {
			return (len(b) >= 4 && b[0] == 0xFF && b[1] == 0x4F && b[2] == 0xFF && b[3] == 0x51) ||
				(len(b) >= 8 && string(b[:8]) == "\x00\x00\x00\x0CjP  ")
		}
	case dicom.JPEGXLLossless, dicom.JPEGXLJPEGRecompression, dicom.JPEGXL:
		return func(b []byte) bool {
			return (len(b) >= 2 && b[0] == 0xFF && b[1] == 0x0A) ||
				(len(b) >= 8 && string(b[:8]) == "\x00\x00\x00\x0CJXL ")
		}
	}
	return nil
}

// isJPEG reports the JPEG (ISO 10918) transfer syntaxes, retired ones included.
func isJPEG(uid string) bool {
	switch uid {
	case dicom.JPEGBaseline8Bit, dicom.JPEGExtended12Bit, dicom.JPEGLossless, dicom.JPEGLosslessSV1,
		"1.2.840.10008.1.2.4.52", "1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.54", "1.2.840.10008.1.2.4.55",
		"1.2.840.10008.1.2.4.56", "1.2.840.10008.1.2.4.58", "1.2.840.10008.1.2.4.59", "1.2.840.10008.1.2.4.60",
		"1.2.840.10008.1.2.4.61", "1.2.840.10008.1.2.4.62", "1.2.840.10008.1.2.4.63", "1.2.840.10008.1.2.4.64",
		"1.2.840.10008.1.2.4.65", "1.2.840.10008.1.2.4.66":
		return true
	}
	return false
}

// isVideo reports the MPEG-2, H.264 and HEVC transfer syntaxes.
func isVideo(uid string) bool {
	for _, p := range []string{"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102",
		"1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.106",
		"1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"} {
		if uid == p || strings.HasPrefix(uid, p+".") {
			return true
		}
	}
	return false
}
