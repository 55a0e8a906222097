package dicomjson

import (
	"io"
	"slices"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/storage"
)

// Attr is an attribute WriteAttrs adds to (or replaces in) an index
// attribute map, e.g. Retrieve URL (0008,1190) as UR.
type Attr struct {
	Tag dicom.Tag
	// VR is the value representation; "" takes it from the dictionary
	// (dicom.LookupVR).
	VR dicom.VR
	// Values are UTF-8 strings typed as in WriteAttrs (numbers for IS, DS,
	// US, ...; PN split into component groups on '='); an empty string is
	// an empty value (null), no value at all writes the VR only. For VR SQ,
	// each value is a kept sequence in the storage format (a JSON array of
	// items, see storage.SequenceItemTags) and their items are concatenated.
	Values []string
}

// WriteAttrs writes an index attribute map (the storage and query format:
// keys of 8 upper-case hex digits, UTF-8 values with multiple values
// joined by '\', kept sequences as JSON arrays of items, see
// storage.SequenceItemTags) as one JSON object of the DICOM JSON Model,
// attributes in tag order:
//
//   - the VR of each tag comes from the dictionary (dicom.LookupVR);
//   - values are typed as by WriteDataset: PN objects, IS, DS and the binary
//     numeric VRs as JSON numbers (a value that is not a number stays a
//     string; UV and SV beyond ±(2^53-1) are strings of digits), AT as
//     "GGGGEEEE", other VRs as strings; empty values are null and an
//     attribute with no non-empty value has its VR only;
//   - VR SQ values are decoded with storage.DecodeItems into arrays of item
//     objects, nested kept sequences (JSON strings in an item) likewise,
//     recursively; a value that does not decode is written as an empty
//     sequence (VR only);
//   - binary VRs (OB, OW, UN, ...) have no usable string form in an index
//     map: their VR is written without a value;
//   - keys that are not 8 hex digits, group lengths and group 0002 are
//     left out.
//
// extra attributes are added, replacing an attribute of the map (or an
// earlier extra) with the same tag. Values in the map are UTF-8 already; a
// Specific Character Set in the map is written as WriteDataset does
// (ISO_IR 192 when non-default).
func WriteAttrs(w io.Writer, attrs map[string]string, extra ...Attr) error {
	e := getEncoder(w)
	defer putEncoder(e)
	e.attrs(attrs, extra, 0)
	return e.flush()
}

// extraBit marks, in an attrs sort key, an index into extra.
const extraBit = 1 << 31

// attrs writes one object from an index map (top level or sequence item).
// It sorts keys tag<<32 | index (index into the map values collected on
// e.strs, or extraBit | index into extra), pointer-free, on the encoder's
// stacks e.keys and e.strs: nested items push theirs after ours.
func (e *encoder) attrs(attrs map[string]string, extra []Attr, depth int) {
	startK, startS := len(e.keys), len(e.strs)
	for k, v := range attrs {
		t, ok := parseHexTag(k)
		if !ok || skipTag(t) {
			continue
		}
		e.keys = append(e.keys, uint64(t)<<32|uint64(len(e.strs)-startS))
		e.strs = append(e.strs, v)
	}
	for i, a := range extra {
		if !skipTag(a.Tag) {
			e.keys = append(e.keys, uint64(a.Tag)<<32|extraBit|uint64(i))
		}
	}
	keys, strs := e.keys[startK:], e.strs[startS:]
	slices.Sort(keys)
	e.byte('{')
	first := true
	for i, key := range keys {
		t := dicom.Tag(key >> 32)
		if i+1 < len(keys) && dicom.Tag(keys[i+1]>>32) == t {
			continue // replaced by an extra sorted after it
		}
		var vr dicom.VR
		var vals []string
		var one string
		isExtra := uint32(key)&extraBit != 0
		if isExtra {
			a := &extra[uint32(key)&^extraBit]
			vr, vals = a.VR, a.Values
			if vr == "" {
				vr = dicom.LookupVR(t)
			}
		} else {
			vr, one = dicom.LookupVR(t), strs[uint32(key)]
		}
		if t == dicom.TagSpecificCharacterSet {
			vr = dicom.VRCS // its values are rewritten (see WriteDataset)
		}
		e.attrStart(first, t, vr)
		first = false
		k := kindOf(vr)
		switch {
		case k == kindSQ:
			e.sequenceValues(one, vals, isExtra, depth)
		case k == kindBulk:
			// no usable string form
		case t == dicom.TagSpecificCharacterSet:
			e.charsetValue(&dicom.Element{Tag: t, VR: vr, Raw: e.joinValues(one, vals, isExtra)})
		default:
			e.textValues(k, e.joinValues(one, vals, isExtra))
		}
		e.byte('}')
		e.maybeFlush()
	}
	e.byte('}')
	clear(e.strs[startS : startS+len(strs)]) // drop references to the caller's strings
	e.keys, e.strs = e.keys[:startK], e.strs[:startS]
}

// joinValues returns the value one, or the values joined by '\', in the
// encoder's scratch buffer (for a single-valued VR a backslash in a value
// is kept: its values are never split).
func (e *encoder) joinValues(one string, vals []string, joined bool) []byte {
	b := e.scratch[:0]
	if !joined {
		b = append(b, one...)
	}
	for i, v := range vals {
		if i > 0 {
			b = append(b, '\\')
		}
		b = append(b, v...)
	}
	e.scratch = b
	return b
}

// sequenceValues writes the items of a kept sequence (storage format):
// the value one, or the values of an Attr (isExtra), their items
// concatenated. Values that do not decode are ignored.
func (e *encoder) sequenceValues(one string, vals []string, isExtra bool, depth int) {
	if depth >= maxDepth {
		return
	}
	n := 0
	if !isExtra {
		n = e.items(one, n, depth)
	}
	for _, v := range vals {
		n = e.items(v, n, depth)
	}
	if n > 0 {
		e.byte(']')
	}
}

// items writes the items of one kept sequence value, n items having been
// written before, and returns the new count.
func (e *encoder) items(v string, n, depth int) int {
	items, err := storage.DecodeItems(v)
	if err != nil {
		return n
	}
	for _, it := range items {
		if n == 0 {
			e.raw(`,"Value":[`)
		} else {
			e.byte(',')
		}
		n++
		e.attrs(it, nil, depth+1)
	}
	return n
}

// parseHexTag parses 8 hex digits.
func parseHexTag(s string) (dicom.Tag, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var t uint32
	for i := 0; i < 8; i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		t = t<<4 | uint32(d)
	}
	return dicom.Tag(t), true
}
