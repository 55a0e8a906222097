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

// attrEntry is one attribute to write from an index map or an Attr.
type attrEntry struct {
	tag   dicom.Tag
	vr    dicom.VR
	value string   // joined by '\' (index map)
	vals  []string // from an Attr (when extra)
	extra bool
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
//     string), AT as "GGGGEEEE", other VRs as strings; empty values are
//     null and an attribute with no non-empty value has its VR only;
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
// earlier extra) with the same tag. Values in the map are UTF-8 already; a Specific Character Set
// in the map is written as WriteDataset does (ISO_IR 192 when non-default).
func WriteAttrs(w io.Writer, attrs map[string]string, extra ...Attr) error {
	e := getEncoder(w)
	defer putEncoder(e)
	e.attrs(attrs, extra, 0)
	return e.flush()
}

// attrs writes one object from an index map (top level or sequence item).
func (e *encoder) attrs(attrs map[string]string, extra []Attr, depth int) {
	entries := make([]attrEntry, 0, len(attrs)+len(extra))
	for k, v := range attrs {
		t, ok := parseHexTag(k)
		if !ok || skipTag(t) {
			continue
		}
		entries = append(entries, attrEntry{tag: t, vr: dicom.LookupVR(t), value: v})
	}
	for _, a := range extra {
		if skipTag(a.Tag) {
			continue
		}
		vr := a.VR
		if vr == "" {
			vr = dicom.LookupVR(a.Tag)
		}
		entries = slices.DeleteFunc(entries, func(x attrEntry) bool { return x.tag == a.Tag })
		entries = append(entries, attrEntry{tag: a.Tag, vr: vr, vals: a.Values, extra: true})
	}
	slices.SortStableFunc(entries, func(a, b attrEntry) int {
		switch {
		case a.tag < b.tag:
			return -1
		case a.tag > b.tag:
			return 1
		}
		return 0
	})
	e.byte('{')
	for i, en := range entries {
		e.attrStart(i == 0, en.tag, en.vr)
		k := kindOf(en.vr)
		vals := en.vals
		if !en.extra {
			vals = []string{en.value}
		}
		switch {
		case k == kindSQ:
			e.sequenceValues(vals, depth)
		case k == kindBulk:
			// no usable string form
		case en.tag == dicom.TagSpecificCharacterSet:
			el := &dicom.Element{Tag: en.tag, VR: en.vr, Raw: joinValues(e, vals)}
			e.charsetValue(nil, el)
		default:
			e.textValues(k, joinValues(e, vals))
		}
		e.byte('}')
		e.maybeFlush()
	}
	e.byte('}')
}

// joinValues returns the values joined by '\' in the encoder's scratch
// buffer (for a single-valued VR a backslash in a value is kept: its
// values are never split).
func joinValues(e *encoder, vals []string) []byte {
	b := e.scratch[:0]
	for i, v := range vals {
		if i > 0 {
			b = append(b, '\\')
		}
		b = append(b, v...)
	}
	e.scratch = b
	return b
}

// sequenceValues writes the items of kept sequences (storage format).
func (e *encoder) sequenceValues(vals []string, depth int) {
	if depth >= maxDepth {
		return
	}
	var items []map[string]string
	for _, v := range vals {
		its, err := storage.DecodeItems(v)
		if err != nil {
			continue
		}
		items = append(items, its...)
	}
	if len(items) == 0 {
		return
	}
	e.raw(`,"Value":[`)
	for i, it := range items {
		if i > 0 {
			e.byte(',')
		}
		e.attrs(it, nil, depth+1)
	}
	e.byte(']')
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
