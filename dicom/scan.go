package dicom

import (
	"bufio"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits bounds what Scan and Transcode accept. Use DefaultLimits and
// adjust; a zero field means the default for MaxValueLength, MaxHeldValue
// and MaxDepth, and "unlimited" for MaxDatasetSize and MaxHeldTotal.
type Limits struct {
	// MaxValueLength bounds any single declared value, item or fragment
	// length (default 0xFFFFFFFE, the largest defined length; lower it to
	// refuse huge values).
	MaxValueLength uint32
	// MaxHeldValue is the largest value Scan holds in memory for an
	// extracted element (default 1 MiB); a wanted element with a larger
	// value fails with ErrLimitExceeded.
	MaxHeldValue uint32
	// MaxDepth bounds sequence nesting (default 16).
	MaxDepth int
	// MaxDatasetSize bounds the total bytes of the dataset (after inflation
	// for deflated syntaxes); 0 means unlimited.
	MaxDatasetSize int64
	// MaxHeldTotal bounds the total bytes Scan holds for extracted values
	// and items (each element and item counts 64 bytes of overhead);
	// 0 means 64 MiB.
	MaxHeldTotal int64
}

// DefaultLimits returns the limits used for received instances.
func DefaultLimits() Limits {
	return Limits{
		MaxValueLength: 0xFFFFFFFE,
		MaxHeldValue:   1 << 20,
		MaxDepth:       16,
		MaxHeldTotal:   64 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxValueLength == 0 {
		l.MaxValueLength = d.MaxValueLength
	}
	if l.MaxHeldValue == 0 {
		l.MaxHeldValue = d.MaxHeldValue
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxHeldTotal <= 0 {
		l.MaxHeldTotal = d.MaxHeldTotal
	}
	return l
}

// Element is one extracted data element.
type Element struct {
	Tag Tag
	VR  VR
	// Raw holds the value bytes as on the wire, in the byte order of the
	// dataset (see Dataset.BigEndian). It is nil for sequences and for
	// encapsulated pixel data, whose fragments are never held.
	Raw []byte
	// Items holds the items of a sequence (VR SQ, or UN of undefined length).
	Items []*Dataset
}

// Dataset is the set of elements Scan extracted at one level.
type Dataset struct {
	Elements map[Tag]*Element
	// CharacterSet holds the values of Specific Character Set (0008,0005)
	// in effect for this dataset (inherited by sequence items).
	CharacterSet []string
	// BigEndian reports whether binary values in Raw are big endian.
	BigEndian bool
}

func newDataset(cs []string, be bool) *Dataset {
	return &Dataset{Elements: make(map[Tag]*Element), CharacterSet: cs, BigEndian: be}
}

// ScanResult is what Scan learned about a dataset.
type ScanResult struct {
	Dataset *Dataset
	// Size is the number of bytes consumed from the reader (for deflated
	// syntaxes, compressed bytes).
	Size int64
	// HasPixelData reports a top-level Pixel Data (7FE0,0010) element.
	HasPixelData bool
	// Elements counts the data elements seen at every nesting level
	// (items and delimiters excluded).
	Elements int
	// PixelData locates the top-level Pixel Data value (nil if absent).
	PixelData *ValueRef
	// Skipped lists the top-level elements whose value was not extracted,
	// in order (only with ScanOptions.RecordSkipped).
	Skipped []ValueRef
	// Fragments lists the items of encapsulated top-level Pixel Data, the
	// Basic Offset Table first (only with ScanOptions.RecordFragments and
	// without StopAtPixelData).
	Fragments []ValueRef
}

// ValueRef locates a value in the scanned bytes. Offsets count from the
// first byte of the data set (after any file meta) and are meaningless for
// deflated syntaxes, whose offsets count inflated bytes.
type ValueRef struct {
	Tag Tag
	VR  VR
	// Offset is where the value starts (after the element or item header).
	Offset int64
	// Length is the value's declared length; 0xFFFFFFFF (undefined) for
	// encapsulated pixel data and sequences of undefined length.
	Length uint32
}

// UndefinedLength is the declared length of a value delimited by items.
const UndefinedLength uint32 = undefinedLength

// ScanOptions select what ScanWith extracts and records.
type ScanOptions struct {
	// Want selects the elements to extract (see Scan); nil extracts none.
	Want func(Tag) bool
	// StopAtPixelData ends the scan right after the header of the
	// top-level Pixel Data element (ScanResult.PixelData locates it): its
	// value and whatever follows are not read. Meant for metadata and
	// frame access, which must not read megabytes of pixels to find them.
	StopAtPixelData bool
	// RecordSkipped fills ScanResult.Skipped.
	RecordSkipped bool
	// RecordFragments fills ScanResult.Fragments.
	RecordFragments bool
	// SkipLarger, when not zero, skips wanted non-sequence values longer
	// than it instead of extracting them (and, at the top level, records
	// them in ScanResult.Skipped when RecordSkipped is set): metadata
	// readers want every attribute but not a 40 MB private blob.
	SkipLarger uint32
}

// WantAll is a want function for Scan that extracts every element.
func WantAll(Tag) bool { return true }

// WantTags returns a want function for Scan that extracts the given tags.
func WantTags(tags ...Tag) func(Tag) bool {
	set := make(map[Tag]struct{}, len(tags))
	for _, t := range tags {
		set[t] = struct{}{}
	}
	return func(t Tag) bool { _, ok := set[t]; return ok }
}

type scanner struct {
	stream
	ts   TransferSyntax
	want func(Tag) bool
	res  *ScanResult
	held int64
	opt  ScanOptions
	// topPixels is set while the top-level Pixel Data is read.
	topPixels bool
}

// errStopped ends a scan at the Pixel Data (ScanOptions.StopAtPixelData).
var errStopped = errors.New("dicom: scan stopped at pixel data")

// Scan reads a whole dataset (the bytes after the Part 10 file meta, or the
// data set of a C-STORE) from r in transfer syntax ts until EOF and
// validates its structure as the bytes pass: declared lengths within lim and
// within the data, undefined lengths only where legal, balanced sequence and
// item delimiters, encapsulated pixel data fragments, ascending tags, even
// lengths (except UN and private elements). Deflated syntaxes are inflated
// on the fly.
//
// It extracts the top-level elements for which want returns true (a nil
// want extracts nothing) and, for wanted sequences, the elements of their
// items for which want returns true, recursively. Specific Character Set is
// always kept. Values that are not extracted are skipped through a fixed
// buffer, so memory does not depend on the size of skipped values.
//
// Structural errors are *ScanError values wrapping ErrTruncated,
// ErrMalformed or ErrLimitExceeded.
func Scan(r io.Reader, ts TransferSyntax, lim Limits, want func(Tag) bool) (*ScanResult, error) {
	return ScanWith(r, ts, lim, ScanOptions{Want: want})
}

// ScanWith is Scan with options: it can stop at the Pixel Data and record
// where the values it did not extract are.
func ScanWith(r io.Reader, ts TransferSyntax, lim Limits, opt ScanOptions) (*ScanResult, error) {
	lim = lim.withDefaults()
	want := opt.Want
	if want == nil {
		want = func(Tag) bool { return false }
	}
	res := &ScanResult{Dataset: newDataset(nil, ts.BigEndian)}
	sc := &scanner{ts: ts, want: want, res: res, opt: opt}
	sc.lim = lim
	var counted *countingReader
	var zbuf *bufio.Reader
	src := r
	if ts.Deflated {
		counted = &countingReader{r: r}
		zbuf = getReader(counted)
		defer putReader(zbuf)
		fr := flate.NewReader(zbuf)
		defer fr.Close()
		src = fr
	}
	sc.br = getReader(src)
	defer putReader(sc.br)
	enc := encoding{explicit: ts.ExplicitVR || ts.Deflated, be: ts.BigEndian}
	err := sc.dataset(enc, res.Dataset, -1, 0, true)
	if err == errStopped {
		err = nil
	}
	if counted != nil {
		res.Size = counted.n - int64(zbuf.Buffered())
	} else {
		res.Size = sc.off
	}
	if err != nil {
		return res, err
	}
	return res, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// dataset reads elements until end (a defined item end), an item
// delimiter (end < 0, !top) or EOF (top).
func (sc *scanner) dataset(enc encoding, ds *Dataset, end int64, depth int, top bool) error {
	var prev Tag
	first := true
	for {
		if end >= 0 && sc.off >= end {
			return nil
		}
		start := sc.off
		tag, vr, length, err := sc.header(enc)
		if err == errCleanEOF {
			if top {
				return nil
			}
			return scanErr(start, 0, ErrTruncated, "data ends inside an item")
		}
		if err != nil {
			return err
		}
		if end >= 0 && sc.off > end {
			return scanErr(start, tag, ErrMalformed, "element header runs past the end of its item at offset %d", end)
		}
		if tag.Group() == 0xFFFE {
			if tag == TagItemDelimitationItem && end < 0 && !top {
				if length != 0 {
					return scanErr(start, tag, ErrMalformed, "item delimitation item with non-zero length %d", length)
				}
				return nil
			}
			return scanErr(start, tag, ErrMalformed, "unexpected %s in a dataset", tag)
		}
		if !first && tag <= prev {
			return scanErr(start, tag, ErrMalformed, "tag not greater than preceding %s", prev)
		}
		first, prev = false, tag
		sc.res.Elements++
		if top && tag == TagPixelData {
			sc.res.HasPixelData = true
			sc.res.PixelData = &ValueRef{Tag: tag, VR: vr, Offset: sc.off, Length: length}
			if sc.opt.StopAtPixelData {
				return errStopped
			}
		}
		if top && sc.opt.RecordSkipped && tag != TagSpecificCharacterSet && (!sc.want(tag) ||
			sc.opt.SkipLarger > 0 && length != undefinedLength && length > sc.opt.SkipLarger && vr != VRSQ) {
			sc.res.Skipped = append(sc.res.Skipped, ValueRef{Tag: tag, VR: vr, Offset: sc.off, Length: length})
		}
		sc.topPixels = top && tag == TagPixelData
		if err := sc.element(enc, ds, tag, vr, length, start, end, depth); err != nil {
			return err
		}
		sc.topPixels = false
	}
}

func (sc *scanner) hold(n int64, start int64, tag Tag) error {
	sc.held += n + 64
	if sc.held > sc.lim.MaxHeldTotal {
		return scanErr(start, tag, ErrLimitExceeded, "extracted values exceed %d bytes in total", sc.lim.MaxHeldTotal)
	}
	return nil
}

func (sc *scanner) element(enc encoding, ds *Dataset, tag Tag, vr VR, length uint32, start, end int64, depth int) error {
	extract := ds != nil && (tag == TagSpecificCharacterSet || sc.want(tag))
	if extract && sc.opt.SkipLarger > 0 && length != undefinedLength && length > sc.opt.SkipLarger && vr != VRSQ && tag != TagSpecificCharacterSet {
		extract = false
	}
	if length == undefinedLength {
		switch {
		case tag == TagPixelData && enc.explicit && (vr == VROB || vr == VROW) && sc.ts.Encapsulated:
			if extract {
				if err := sc.hold(0, start, tag); err != nil {
					return err
				}
				ds.Elements[tag] = &Element{Tag: tag, VR: vr}
			}
			return sc.fragments(enc, tag, start, end)
		case vr == VRSQ || vr == VRUN || !enc.explicit:
			// In implicit VR an undefined length can only be a sequence.
			inner := enc
			if vr == VRUN && enc.explicit {
				inner = implicitLE
			}
			return sc.sequence(inner, ds, extract, tag, vr, length, start, end, depth)
		}
		return scanErr(start, tag, ErrMalformed, "undefined length not allowed for VR %s", vr)
	}
	if err := sc.checkValue(start, tag, length, end); err != nil {
		return err
	}
	if vr == VRSQ {
		return sc.sequence(enc, ds, extract, tag, vr, length, start, end, depth)
	}
	if length%2 == 1 && vr != VRUN && !tag.IsPrivate() {
		return scanErr(start, tag, ErrMalformed, "odd value length %d", length)
	}
	if !extract {
		return sc.skip(int64(length), start, tag)
	}
	if length > sc.lim.MaxHeldValue {
		return scanErr(start, tag, ErrLimitExceeded, "wanted value of %d bytes over MaxHeldValue %d", length, sc.lim.MaxHeldValue)
	}
	if err := sc.hold(int64(length), start, tag); err != nil {
		return err
	}
	raw := make([]byte, length)
	if err := sc.readFull(raw, start, tag); err != nil {
		return err
	}
	ds.Elements[tag] = &Element{Tag: tag, VR: vr, Raw: raw}
	if tag == TagSpecificCharacterSet {
		ds.CharacterSet = splitCharset(raw)
	}
	return nil
}

// splitCharset splits the values of Specific Character Set.
func splitCharset(raw []byte) []string {
	parts := strings.Split(string(raw), `\`)
	for i, p := range parts {
		parts[i] = strings.Trim(p, " \x00")
	}
	for len(parts) > 0 && parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	if len(parts) == 1 && parts[0] == "" {
		return nil
	}
	return parts
}

// sequence reads the items of a sequence whose header has been consumed.
func (sc *scanner) sequence(enc encoding, ds *Dataset, extract bool, tag Tag, vr VR, length uint32, start, end int64, depth int) error {
	if depth+1 > sc.lim.MaxDepth {
		return scanErr(start, tag, ErrLimitExceeded, "sequence nesting deeper than %d", sc.lim.MaxDepth)
	}
	var el *Element
	if extract {
		if err := sc.hold(0, start, tag); err != nil {
			return err
		}
		el = &Element{Tag: tag, VR: vr}
		ds.Elements[tag] = el
	}
	seqEnd := int64(-1)
	if length != undefinedLength {
		seqEnd = sc.off + int64(length)
	}
	for {
		if seqEnd >= 0 && sc.off >= seqEnd {
			return nil
		}
		istart := sc.off
		itag, _, ilen, err := sc.header(enc)
		if err == errCleanEOF {
			return scanErr(istart, tag, ErrTruncated, "data ends inside a sequence")
		}
		if err != nil {
			return err
		}
		if (seqEnd >= 0 && sc.off > seqEnd) || (end >= 0 && sc.off > end) {
			return scanErr(istart, tag, ErrMalformed, "item header runs past the end of its sequence")
		}
		switch itag {
		case TagItem:
			var item *Dataset
			if el != nil {
				if err := sc.hold(0, istart, tag); err != nil {
					return err
				}
				item = newDataset(ds.CharacterSet, enc.be)
				el.Items = append(el.Items, item)
			}
			if ilen == undefinedLength {
				if err := sc.dataset(enc, item, -1, depth+1, false); err != nil {
					return err
				}
				if seqEnd >= 0 && sc.off > seqEnd {
					return scanErr(istart, tag, ErrMalformed, "item of undefined length runs past the end of its sequence")
				}
				if end >= 0 && sc.off > end {
					return scanErr(istart, tag, ErrMalformed, "item of undefined length runs past the end of its enclosing item")
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
			if err := sc.checkValue(istart, tag, ilen, limEnd); err != nil {
				return err
			}
			if err := sc.dataset(enc, item, sc.off+int64(ilen), depth+1, false); err != nil {
				return err
			}
		case TagSequenceDelimitationItem:
			if seqEnd >= 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item in a sequence of defined length")
			}
			if ilen != 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item with non-zero length %d", ilen)
			}
			return nil
		default:
			return scanErr(istart, tag, ErrMalformed, "expected an item in a sequence, found %s", itag)
		}
	}
}

// maxFragments bounds the fragments ScanOptions.RecordFragments records
// (a lying file must not make Relais allocate without bound).
const maxFragments = 1 << 20

// fragments reads encapsulated pixel data: a Basic Offset Table item, then
// fragment items, then a sequence delimitation item.
func (sc *scanner) fragments(enc encoding, tag Tag, start, end int64) error {
	for n := 0; ; n++ {
		istart := sc.off
		itag, _, ilen, err := sc.header(enc)
		if err == errCleanEOF {
			return scanErr(istart, tag, ErrTruncated, "data ends inside encapsulated pixel data")
		}
		if err != nil {
			return err
		}
		if end >= 0 && sc.off > end {
			return scanErr(istart, tag, ErrMalformed, "fragment header runs past the end of its item")
		}
		switch itag {
		case TagItem:
			if ilen == undefinedLength {
				return scanErr(istart, tag, ErrMalformed, "pixel data fragment of undefined length")
			}
			if n == 0 && ilen%4 != 0 {
				return scanErr(istart, tag, ErrMalformed, "basic offset table length %d not a multiple of 4", ilen)
			}
			if ilen%2 == 1 {
				return scanErr(istart, tag, ErrMalformed, "odd fragment length %d", ilen)
			}
			if err := sc.checkValue(istart, tag, ilen, end); err != nil {
				return err
			}
			if sc.opt.RecordFragments && sc.topPixels {
				if len(sc.res.Fragments) >= maxFragments {
					return scanErr(istart, tag, ErrLimitExceeded, "more than %d pixel data fragments", maxFragments)
				}
				sc.res.Fragments = append(sc.res.Fragments, ValueRef{Tag: TagItem, Offset: sc.off, Length: ilen})
			}
			if err := sc.skip(int64(ilen), istart, tag); err != nil {
				return err
			}
		case TagSequenceDelimitationItem:
			if n == 0 {
				return scanErr(istart, tag, ErrMalformed, "encapsulated pixel data without basic offset table item")
			}
			if ilen != 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item with non-zero length %d", ilen)
			}
			return nil
		default:
			return scanErr(istart, tag, ErrMalformed, "expected a fragment item, found %s", itag)
		}
	}
}

var _ = fmt.Sprintf
