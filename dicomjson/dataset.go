package dicomjson

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dicom/charset"
)

// Options for WriteDataset.
type Options struct {
	// BulkDataURI returns the URI to write for a top-level value that is
	// not inlined: the values listed in ScanResult.Skipped and the pixel
	// data (ScanResult.PixelData, also when its element was extracted
	// without a value, as encapsulated pixel data is). It is not called for
	// skipped sequences (written with their VR only: PS3.18 has no bulk
	// data for sequences) nor for empty values. nil, or "", writes the
	// attribute with its VR and no value.
	BulkDataURI func(t dicom.Tag) string
}

// maxDepth bounds the nesting of sequences written (dicom.Scan bounds it
// at 16 by default; this guards hand-built datasets).
const maxDepth = 64

// ErrTooDeep is returned for a dataset whose sequences nest deeper than
// WriteDataset follows (64 levels), e.g. a hand-built cyclic dataset.
var ErrTooDeep = errors.New("dicomjson: sequences nested too deep")

// WriteDataset writes res.Dataset as one JSON object of the DICOM JSON
// Model (PS3.18 F.2) to w:
//
//   - attributes in ascending tag order, keyed "GGGGEEEE" (upper-case hex);
//     group length elements (gggg,0000) and group 0002 are left out;
//   - character data decoded to UTF-8 with the dataset's Specific Character
//     Set (including ISO 2022 code extensions), padding trimmed as
//     dicom.Dataset.Strings does, split on '\' except for LT, ST, UT and
//     UR; empty values in a multi-valued attribute are null;
//   - PN values as {"Alphabetic","Ideographic","Phonetic"} objects, the
//     component groups split on '=' after decoding;
//   - DS and IS as JSON numbers, normalised as dcm2json does ('+' signs and
//     leading zeros dropped) and further where dcm2json 3.6.7 leaves invalid
//     JSON (a zero added around a bare period: "1." → 1.0, ".5" → 0.5);
//     values that are not numbers even then ("abc", "1,5", "NaN") are JSON
//     strings, as in dcm2json and as CP 1861 allows;
//   - US, SS, UL, SL, FL, FD as JSON numbers (NaN and infinities as the
//     strings "NaN", "Infinity", "-Infinity"); UV and SV as JSON numbers
//     within ±(2^53-1) and as strings of digits beyond, as dcm2json does, so
//     that JavaScript clients lose no digit; a trailing partial value is
//     ignored;
//   - AT as "GGGGEEEE";
//   - OB, OW, OD, OF, OL, OV and UN values held in Raw as "InlineBinary"
//     (base64, little endian: values of a big endian dataset are swapped
//     per VR; UN is never swapped);
//   - sequences (and UN of undefined length, which the scanner read as a
//     sequence) as "vr":"SQ" with an array of item objects, recursively;
//   - an attribute without a value (or whose values are all empty) with
//     its "vr" only;
//   - top-level values not extracted (res.Skipped) and the pixel data with
//     "BulkDataURI" from opt.BulkDataURI;
//   - private tags with the VR read (UN when unknown, as LookupVR gives for
//     implicit VR syntaxes); a UN value is not reinterpreted with the
//     dictionary VR.
//
// For WADO-RS metadata, scan with ScanOptions{Want: dicom.WantAll,
// StopAtPixelData: true, RecordSkipped: true}: the top-level pixel data
// becomes a BulkDataURI without being read, while pixel data nested in
// items (icon images) is extracted and inlined.
//
// Specific Character Set (0008,0005): every value in the output is UTF-8,
// so when the source declared a character set other than the default
// repertoire (any value other than "", "ISO_IR 6" and "ISO 2022 IR 6") the
// attribute is written as "ISO_IR 192", as dcm2json does after converting
// to UTF-8 (dcmtk 3.6.7; checked by the interop tests). A declared default
// repertoire is copied as it is.
//
// The JSON is written by hand into a pooled buffer flushed to w every
// 32 KiB, without reflection. Only write errors and ErrTooDeep are
// returned; any dataset gives valid JSON.
func WriteDataset(w io.Writer, res *dicom.ScanResult, opt Options) error {
	if res == nil || res.Dataset == nil {
		return errors.New("dicomjson: nil scan result")
	}
	e := getEncoder(w)
	defer putEncoder(e)
	if err := e.dataset(res, opt); err != nil {
		return err
	}
	return e.flush()
}

// bulkRef is a top-level value written as bulk data.
type bulkRef struct {
	vr     dicom.VR
	length uint32
}

func (e *encoder) dataset(res *dicom.ScanResult, opt Options) error {
	ds := res.Dataset
	var bulk map[dicom.Tag]bulkRef
	tags := e.tags[:0]
	for t := range ds.Elements {
		tags = append(tags, t)
	}
	addRef := func(r dicom.ValueRef) {
		el, ok := ds.Elements[r.Tag]
		if ok && el != nil && !(r.Tag == dicom.TagPixelData && el.Raw == nil && len(el.Items) == 0) {
			return // extracted: written from its value
		}
		if bulk == nil {
			bulk = make(map[dicom.Tag]bulkRef, len(res.Skipped)+1)
		}
		if _, dup := bulk[r.Tag]; dup {
			return
		}
		bulk[r.Tag] = bulkRef{vr: r.VR, length: r.Length}
		if !ok {
			tags = append(tags, r.Tag)
		}
	}
	for _, r := range res.Skipped {
		addRef(r)
	}
	if res.PixelData != nil {
		addRef(*res.PixelData)
	}
	slices.Sort(tags)
	// Nested items push their tags after ours on e.tags (see item).
	e.tags = tags
	defer func() { e.tags = e.tags[:0] }()
	e.byte('{')
	first := true
	for _, t := range tags {
		if skipTag(t) {
			continue
		}
		if b, ok := bulk[t]; ok {
			vr := b.vr
			if vr == "" {
				vr = dicom.LookupVR(t)
			}
			e.attrStart(first, t, vr)
			first = false
			if vr != dicom.VRSQ && b.length != 0 && opt.BulkDataURI != nil {
				if uri := opt.BulkDataURI(t); uri != "" {
					e.raw(`,"BulkDataURI":`)
					e.strString(uri)
				}
			}
			e.byte('}')
			continue
		}
		el := ds.Elements[t]
		if el == nil {
			continue
		}
		if err := e.element(first, ds, el, 0); err != nil {
			return err
		}
		first = false
		e.maybeFlush()
	}
	e.byte('}')
	return nil
}

// skipTag reports attributes never written: group lengths, file meta.
func skipTag(t dicom.Tag) bool {
	return t.Element() == 0 || t.Group() == 0x0002 || t.Group() == 0xFFFE
}

// item writes a sequence item as an object.
func (e *encoder) item(ds *dicom.Dataset, depth int) error {
	if depth > maxDepth {
		return ErrTooDeep
	}
	e.byte('{')
	if ds != nil {
		start := len(e.tags)
		for t := range ds.Elements {
			e.tags = append(e.tags, t)
		}
		tags := e.tags[start:]
		slices.Sort(tags)
		first := true
		// Nested items append after tags, so its elements stay as they are
		// even when e.tags grows into a new array.
		for _, t := range tags {
			el := ds.Elements[t]
			if skipTag(t) || el == nil {
				continue
			}
			if err := e.element(first, ds, el, depth); err != nil {
				return err
			}
			first = false
		}
		e.tags = e.tags[:start]
	}
	e.byte('}')
	return nil
}

// element writes one extracted element.
func (e *encoder) element(first bool, ds *dicom.Dataset, el *dicom.Element, depth int) error {
	vr := el.VR
	if vr == "" {
		vr = dicom.LookupVR(el.Tag)
	}
	if el.Raw == nil && (vr == dicom.VRSQ || len(el.Items) > 0) {
		e.attrStart(first, el.Tag, dicom.VRSQ)
		if len(el.Items) > 0 {
			e.raw(`,"Value":[`)
			for i, it := range el.Items {
				if i > 0 {
					e.byte(',')
				}
				if err := e.item(it, depth+1); err != nil {
					return err
				}
				e.maybeFlush()
			}
			e.byte(']')
		}
		e.byte('}')
		return nil
	}
	if el.Tag == dicom.TagSpecificCharacterSet {
		vr = dicom.VRCS // whatever the file said: its values are rewritten
	}
	e.attrStart(first, el.Tag, vr)
	if len(el.Raw) > 0 {
		if el.Tag == dicom.TagSpecificCharacterSet {
			e.charsetValue(el)
		} else {
			e.values(ds, el, vr)
		}
	}
	e.byte('}')
	return nil
}

// charsetValue writes the value of Specific Character Set (see
// WriteDataset).
func (e *encoder) charsetValue(el *dicom.Element) {
	for rest, more := el.Raw, true; more; {
		var v []byte
		v, rest, more = nextValue(rest, true)
		switch string(trimValue(v, false)) {
		case "", "ISO_IR 6", "ISO 2022 IR 6":
		default:
			e.raw(`,"Value":["ISO_IR 192"]`)
			return
		}
	}
	e.textValues(kindText, el.Raw)
}

func (e *encoder) values(ds *dicom.Dataset, el *dicom.Element, vr dicom.VR) {
	k := kindOf(vr)
	switch k {
	case kindBinNum, kindBigNum:
		e.binaryNumbers(ds, el.Raw, vr)
	case kindAT:
		e.binaryTags(ds, el.Raw)
	case kindBulk, kindSQ:
		e.raw(`,"InlineBinary":`)
		e.base64(e.littleEndian(ds, el.Raw, vr))
	default:
		e.textValues(k, e.decoded(ds, el.Raw, vr))
	}
}

// decoded returns the value as UTF-8: as it is when that is already the
// case (ASCII without escapes, or a UTF-8 dataset: invalid sequences are
// replaced when written), otherwise decoded with the character set.
func (e *encoder) decoded(ds *dicom.Dataset, raw []byte, vr dicom.VR) []byte {
	if restricted(vr) {
		return raw
	}
	plain := true
	for _, c := range raw {
		if c >= 0x80 || c == 0x1b {
			plain = false
			break
		}
	}
	if plain {
		return raw
	}
	cs := ds.CharacterSet
	if len(cs) == 1 && cs[0] == "ISO_IR 192" {
		return raw
	}
	s, _ := charset.Decode(cs, string(vr), raw) // unknown term: best effort
	e.scratch = append(e.scratch[:0], s...)
	return e.scratch
}

// littleEndian returns a binary value in little endian order.
func (e *encoder) littleEndian(ds *dicom.Dataset, raw []byte, vr dicom.VR) []byte {
	size := 0
	switch vr {
	case dicom.VROW:
		size = 2
	case dicom.VROF, dicom.VROL:
		size = 4
	case dicom.VROD, dicom.VROV:
		size = 8
	}
	if !ds.BigEndian || size == 0 {
		return raw
	}
	out := append(e.scratch[:0], raw...)
	for i := 0; i+size <= len(out); i += size {
		slices.Reverse(out[i : i+size])
	}
	e.scratch = out
	return out
}

func order(ds *dicom.Dataset) binary.ByteOrder {
	if ds.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// binaryNumbers writes the values of US, SS, UL, SL, UV, SV, FL and FD.
func (e *encoder) binaryNumbers(ds *dicom.Dataset, b []byte, vr dicom.VR) {
	size := 0
	switch vr {
	case dicom.VRUS, dicom.VRSS:
		size = 2
	case dicom.VRUL, dicom.VRSL, dicom.VRFL:
		size = 4
	default:
		size = 8
	}
	if len(b) < size {
		return
	}
	bo := order(ds)
	e.raw(`,"Value":[`)
	for i := 0; i+size <= len(b); i += size {
		if i > 0 {
			e.byte(',')
		}
		v := b[i : i+size]
		switch vr {
		case dicom.VRUS:
			e.buf = strconv.AppendUint(e.buf, uint64(bo.Uint16(v)), 10)
		case dicom.VRSS:
			e.buf = strconv.AppendInt(e.buf, int64(int16(bo.Uint16(v))), 10)
		case dicom.VRUL:
			e.buf = strconv.AppendUint(e.buf, uint64(bo.Uint32(v)), 10)
		case dicom.VRSL:
			e.buf = strconv.AppendInt(e.buf, int64(int32(bo.Uint32(v))), 10)
		case dicom.VRUV:
			u := bo.Uint64(v)
			e.bigInt(strconv.AppendUint(e.num[:0], u, 10), u > maxSafe)
		case dicom.VRSV:
			i := int64(bo.Uint64(v))
			e.bigInt(strconv.AppendInt(e.num[:0], i, 10), i > maxSafe || i < -maxSafe)
		case dicom.VRFL:
			e.float(float64(math.Float32frombits(bo.Uint32(v))), 32)
		case dicom.VRFD:
			e.float(math.Float64frombits(bo.Uint64(v)), 64)
		}
		e.maybeFlush()
	}
	e.byte(']')
}

// maxSafe is the largest integer a JSON number holds exactly in the
// IEEE 754 double most clients parse it into (2^53-1).
const maxSafe = 1<<53 - 1

// bigInt writes the decimal digits of an SV or UV value: a JSON number
// within ±(2^53-1), otherwise (quoted) a JSON string, as dcm2json does
// and PS3.18 F.2.3.1 allows, so that JavaScript clients lose no digits.
func (e *encoder) bigInt(digits []byte, quoted bool) {
	if quoted {
		e.byte('"')
	}
	e.rawBytes(digits)
	if quoted {
		e.byte('"')
	}
}

// binaryTags writes AT values as "GGGGEEEE".
func (e *encoder) binaryTags(ds *dicom.Dataset, b []byte) {
	if len(b) < 4 {
		return
	}
	bo := order(ds)
	e.raw(`,"Value":[`)
	for i := 0; i+4 <= len(b); i += 4 {
		if i > 0 {
			e.byte(',')
		}
		e.byte('"')
		e.buf = appendTagHex(e.buf, dicom.NewTag(bo.Uint16(b[i:]), bo.Uint16(b[i+2:])))
		e.byte('"')
	}
	e.byte(']')
}
