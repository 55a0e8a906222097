package dicom

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relais-health/relais/dicom/charset"
)

// EditKind is the kind of an EditOp.
type EditKind int

// Edit operations.
const (
	// EditSet inserts the element (in tag order) or replaces its value.
	EditSet EditKind = iota + 1
	// EditSetIfMissing sets the element only when it is absent or empty.
	EditSetIfMissing
	// EditDelete removes the element (no-op if absent).
	EditDelete
	// EditPrefix prepends Value to the existing value, unless it already
	// starts with Value (idempotent); when the element is
	// absent or empty it sets IfAbsent instead, or does nothing if IfAbsent
	// is "".
	EditPrefix
	// EditReplace sets Value only when the existing value equals Old
	// (padding trimmed, compared in UTF-8).
	EditReplace
	// EditSetIfPresent replaces the value only when the element is
	// present (empty or not).
	EditSetIfPresent
	// EditAppendItem appends an item made of Item (EditSet and
	// EditAppendItem ops only) to the sequence Tag, creating the sequence
	// if absent.
	EditAppendItem
)

func (k EditKind) String() string {
	switch k {
	case EditSet:
		return "set"
	case EditSetIfMissing:
		return "set-if-missing"
	case EditDelete:
		return "delete"
	case EditPrefix:
		return "prefix"
	case EditReplace:
		return "replace"
	case EditAppendItem:
		return "append-item"
	case EditSetIfPresent:
		return "set-if-present"
	}
	return fmt.Sprintf("EditKind(%d)", int(k))
}

// EditOp is one attribute modification applied by Edit. Values are UTF-8;
// Edit encodes them in the data set's Specific Character Set.
type EditOp struct {
	Kind EditKind
	Tag  Tag
	// VR overrides the dictionary VR (needed for private tags).
	VR VR
	// Value is the new value (Set, SetIfMissing, Replace) or the prefix
	// (Prefix). Multiple values are separated by `\`. Numeric VRs (US, SS,
	// UL, SL, FL, FD) take decimal text.
	Value string
	// Old is the value Replace expects.
	Old string
	// IfAbsent is what Prefix sets when the element is absent or empty.
	IfAbsent string
	// Item holds the elements of the item AppendItem appends.
	Item []EditOp
	// SkipIfPresent makes AppendItem skip the item when the sequence
	// already has an item with the same values for all the item's
	// top-level Set elements (so coercing twice adds nothing). The
	// existing sequence is then held in memory (at most MaxHeldValue).
	SkipIfPresent bool
}

// SetOp returns an EditSet op.
func SetOp(t Tag, value string) EditOp { return EditOp{Kind: EditSet, Tag: t, Value: value} }

// SetIfMissingOp returns an EditSetIfMissing op.
func SetIfMissingOp(t Tag, value string) EditOp {
	return EditOp{Kind: EditSetIfMissing, Tag: t, Value: value}
}

// SetIfPresentOp returns an EditSetIfPresent op.
func SetIfPresentOp(t Tag, value string) EditOp {
	return EditOp{Kind: EditSetIfPresent, Tag: t, Value: value}
}

// DeleteOp returns an EditDelete op.
func DeleteOp(t Tag) EditOp { return EditOp{Kind: EditDelete, Tag: t} }

// PrefixOp returns an EditPrefix op (no-op when the element is absent).
func PrefixOp(t Tag, prefix string) EditOp { return EditOp{Kind: EditPrefix, Tag: t, Value: prefix} }

// ReplaceOp returns an EditReplace op.
func ReplaceOp(t Tag, old, new string) EditOp {
	return EditOp{Kind: EditReplace, Tag: t, Old: old, Value: new}
}

// AppendItemOp returns an EditAppendItem op.
func AppendItemOp(seq Tag, item ...EditOp) EditOp {
	return EditOp{Kind: EditAppendItem, Tag: seq, Item: item}
}

// EditOptions tune EditWith.
type EditOptions struct {
	// RecordOriginal appends an item to the Original Attributes Sequence
	// (0400,0561), PS3.3 C.12.1.1.9, holding the original values of the
	// modified attributes (inserted ones with zero length). Modified
	// attributes must then all precede (0400,0561) in tag order.
	RecordOriginal bool
	// ModifyingSystem (0400,0563), default "RELAIS".
	ModifyingSystem string
	// SourceOfPreviousValues (0400,0564), e.g. the sending AE title.
	SourceOfPreviousValues string
	// Reason (0400,0565), default "COERCE".
	Reason string
	// Now gives the Attribute Modification DateTime (default time.Now).
	Now func() time.Time
}

// EditChange is one modification made by Edit, for journals. Values are
// UTF-8 and truncated to 64 characters.
type EditChange struct {
	Tag     Tag
	Keyword string
	Action  string // "insert", "set", "delete", "prefix", "replace", "append-item", "drop-group-length"
	Old     string
	New     string
}

// EditResult reports what Edit changed.
type EditResult struct {
	Changed bool
	Changes []EditChange
	// Written is the number of bytes written to dst.
	Written int64
}

// ErrEdit is wrapped by errors about the edits themselves (invalid op,
// value not representable or too long, VR mismatch), as opposed to errors
// about the input data set (ScanError) or I/O.
var ErrEdit = errors.New("dicom: edit")

func editErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrEdit, fmt.Sprintf(format, args...))
}

// Tags of the Original Attributes Sequence module.
const (
	tagModifiedAttributesSequence  Tag = 0x04000550
	tagOriginalAttributesSequence  Tag = 0x04000561
	tagAttributeModificationDT     Tag = 0x04000562
	tagModifyingSystem             Tag = 0x04000563
	tagSourceOfPreviousValues      Tag = 0x04000564
	tagReasonForAttributeModifDesc Tag = 0x04000565
	tagLengthToEnd                 Tag = 0x00080001
)

// Edit streams the data set (no file meta) read from src to dst in the same
// transfer syntax ts, applying edits to top-level elements as they pass.
// See EditWith.
func Edit(dst io.Writer, src io.Reader, ts TransferSyntax, lim Limits, edits []EditOp) (EditResult, error) {
	return EditWith(dst, src, ts, lim, edits, EditOptions{})
}

// EditWith is Edit with options.
//
// The input is validated as Scan does and copied through a fixed buffer,
// so memory does not depend on the size of the values (pixel data,
// encapsulated or not, and sequences of undefined length are streamed
// untouched). Unchanged elements are copied byte for byte. Values are
// encoded in the Specific Character Set of the data set: any value in the
// default repertoire, and other values when the character set is a single
// term Encode supports (ISO_IR 100, ISO_IR 192, ...) and can represent
// them; otherwise Edit fails with ErrEdit rather than mangling the value.
// Values are padded per VR and their lengths checked (LO 64 characters,
// SH 16, ...). Group length elements of edited groups and Length to End
// are dropped. Deflated syntaxes are refused (ErrUnsupportedTransferSyntax).
//
// On error dst holds a partial output and must be discarded. Editing
// Specific Character Set, file meta or delimitation tags is refused.
func EditWith(dst io.Writer, src io.Reader, ts TransferSyntax, lim Limits, edits []EditOp, opt EditOptions) (EditResult, error) {
	var res EditResult
	if ts.Deflated {
		return res, fmt.Errorf("%w: cannot edit %s (%s) in place: inflate it first", ErrUnsupportedTransferSyntax, ts.Name, ts.UID)
	}
	if !ts.ExplicitVR && ts.BigEndian {
		return res, fmt.Errorf("%w: implicit VR big endian does not exist", ErrUnsupportedTransferSyntax)
	}
	ops, err := prepareOps(edits, 0)
	if err != nil {
		return res, err
	}
	ed := &editor{ts: ts, enc: encoding{explicit: ts.ExplicitVR, be: ts.BigEndian}, opt: opt, res: &res}
	ed.lim = lim.withDefaults()
	if opt.RecordOriginal {
		for _, g := range ops {
			if g.tag > tagOriginalAttributesSequence {
				return res, editErr("RecordOriginal: %s follows the Original Attributes Sequence and cannot be recorded", g.tag)
			}
			if g.tag == tagOriginalAttributesSequence {
				return res, editErr("RecordOriginal with an edit of the Original Attributes Sequence itself")
			}
		}
		ops = append(ops, &opGroup{tag: tagOriginalAttributesSequence, ops: []EditOp{{Kind: EditAppendItem, Tag: tagOriginalAttributesSequence}}, record: true})
	}
	ed.ops = ops
	ed.groups = map[uint16]bool{}
	for _, g := range ops {
		ed.groups[g.tag.Group()] = true
	}
	ed.br = getReader(src)
	defer putReader(ed.br)
	cw := &countWriter{w: dst}
	bw := bufio.NewWriterSize(cw, bufSize)
	ed.out = bw
	err = ed.top()
	if err == nil {
		err = bw.Flush()
		if err != nil {
			err = fmt.Errorf("dicom: edit write: %w", err)
		}
	}
	res.Written = cw.n
	res.Changed = len(res.Changes) > 0
	return res, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// opGroup holds the ops on one tag.
type opGroup struct {
	tag    Tag
	ops    []EditOp
	record bool // the synthetic Original Attributes item
}

// prepareOps validates ops and groups them by tag in ascending order.
// depth > 0 is inside an item (Set and AppendItem only).
func prepareOps(edits []EditOp, depth int) ([]*opGroup, error) {
	if depth > 8 {
		return nil, editErr("items nested deeper than 8")
	}
	byTag := map[Tag]*opGroup{}
	var out []*opGroup
	for _, op := range edits {
		t := op.Tag
		switch {
		case t.Group() == 0xFFFE || t.Group() < 0x0008 || t.Element() == 0 && t.Group() != 0:
			return nil, editErr("cannot edit %s (file meta, group length or delimitation tag)", t)
		case t == TagSpecificCharacterSet:
			return nil, editErr("cannot edit Specific Character Set (0008,0005): values are encoded in the data set's character set")
		case t == tagLengthToEnd:
			return nil, editErr("cannot edit Length to End (0008,0001)")
		}
		if op.VR != "" && !op.VR.valid() {
			return nil, editErr("%s: invalid VR %q", t, op.VR)
		}
		switch op.Kind {
		case EditSet, EditAppendItem:
		case EditSetIfMissing, EditSetIfPresent, EditDelete, EditPrefix, EditReplace:
			if depth > 0 {
				return nil, editErr("%s: only set and append-item are allowed inside an appended item, not %s", t, op.Kind)
			}
		default:
			return nil, editErr("%s: unknown edit kind %d", t, int(op.Kind))
		}
		vr := op.VR
		if vr == "" {
			vr = LookupVR(t)
		}
		if op.Kind == EditAppendItem {
			if vr != VRSQ {
				return nil, editErr("append-item on %s, whose VR is %s, not SQ", t, vr)
			}
			if _, err := prepareOps(op.Item, depth+1); err != nil {
				return nil, err
			}
		} else if vr == VRSQ && op.Kind != EditDelete {
			return nil, editErr("%s on sequence %s: only delete and append-item apply to sequences", op.Kind, t)
		}
		g := byTag[t]
		if g == nil {
			g = &opGroup{tag: t}
			byTag[t] = g
			out = append(out, g)
		} else if op.Kind != EditAppendItem || g.ops[0].Kind != EditAppendItem {
			return nil, editErr("several edits of %s (only append-item may repeat)", t)
		}
		g.ops = append(g.ops, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tag < out[j].tag })
	return out, nil
}

type editor struct {
	stream
	ts     TransferSyntax
	enc    encoding
	opt    EditOptions
	res    *EditResult
	ops    []*opGroup
	next   int // index of the next pending op group
	groups map[uint16]bool
	out    *bufio.Writer
	cs     []string
	buf    [bufSize]byte
	hdr    [12]byte
	// original values of modified elements (RecordOriginal), encoded.
	orig      bytes.Buffer
	origCount int
}

func (ed *editor) write(w io.Writer, p []byte) error {
	if _, err := w.Write(p); err != nil {
		return fmt.Errorf("dicom: edit write: %w", err)
	}
	return nil
}

func (ed *editor) writeHeader(w io.Writer, enc encoding, tag Tag, vr VR, length uint32) error {
	h := ed.hdr[:]
	enc.putU16(h[0:], tag.Group())
	enc.putU16(h[2:], tag.Element())
	if !enc.explicit || tag.Group() == 0xFFFE {
		enc.putU32(h[4:], length)
		return ed.write(w, h[:8])
	}
	h[4], h[5] = vr[0], vr[1]
	if vr.HasLongLength() {
		h[6], h[7] = 0, 0
		enc.putU32(h[8:], length)
		return ed.write(w, h[:12])
	}
	enc.putU16(h[6:], uint16(length))
	return ed.write(w, h[:8])
}

func (ed *editor) note(t Tag, action, old, new string) {
	ed.res.Changes = append(ed.res.Changes, EditChange{Tag: t, Keyword: Keyword(t), Action: action, Old: truncLog(old), New: truncLog(new)})
}

func truncLog(s string) string {
	if utf8.RuneCountInString(s) <= 64 {
		return s
	}
	r := []rune(s)
	return string(r[:63]) + "…"
}

// top edits the top-level data set.
func (ed *editor) top() error {
	enc := ed.enc
	var prev Tag
	first := true
	for {
		start := ed.off
		tag, vr, length, err := ed.header(enc)
		if err == errCleanEOF {
			return ed.flushBefore(0xFFFFFFFF, true)
		}
		if err != nil {
			return err
		}
		if tag.Group() == 0xFFFE {
			return scanErr(start, tag, ErrMalformed, "unexpected %s in a dataset", tag)
		}
		if !first && tag <= prev {
			return scanErr(start, tag, ErrMalformed, "tag not greater than preceding %s", prev)
		}
		first, prev = false, tag
		if err := ed.flushBefore(tag, false); err != nil {
			return err
		}
		var g *opGroup
		if ed.next < len(ed.ops) && ed.ops[ed.next].tag == tag {
			g = ed.ops[ed.next]
			ed.next++
		}
		switch {
		case g != nil:
			err = ed.apply(g, vr, length, start)
		case tag.Element() == 0 && ed.groups[tag.Group()] || tag == tagLengthToEnd && len(ed.ops) > 0:
			err = ed.copyElement(enc, io.Discard, tag, vr, length, start, -1, 0)
			ed.note(tag, "drop-group-length", "", "")
		case tag == TagSpecificCharacterSet && length != undefinedLength:
			err = ed.charset(vr, length, start)
		default:
			err = ed.copyElement(enc, ed.out, tag, vr, length, start, -1, 0)
		}
		if err != nil {
			return err
		}
	}
}

func (ed *editor) charset(vr VR, length uint32, start int64) error {
	tag := TagSpecificCharacterSet
	if err := ed.checkValue(start, tag, length, -1); err != nil {
		return err
	}
	if length > ed.lim.MaxHeldValue || length > 1<<16 {
		return scanErr(start, tag, ErrLimitExceeded, "Specific Character Set of %d bytes", length)
	}
	raw := make([]byte, length)
	if err := ed.readFull(raw, start, tag); err != nil {
		return err
	}
	ed.cs = splitCharset(raw)
	if err := ed.writeHeader(ed.out, ed.enc, tag, vr, length); err != nil {
		return err
	}
	return ed.write(ed.out, raw)
}

// flushBefore inserts the pending ops on tags below t (absent elements).
func (ed *editor) flushBefore(t Tag, eof bool) error {
	for ed.next < len(ed.ops) && (eof || ed.ops[ed.next].tag < t) {
		g := ed.ops[ed.next]
		ed.next++
		if err := ed.insert(g); err != nil {
			return err
		}
	}
	return nil
}

// insert applies g to an absent element.
func (ed *editor) insert(g *opGroup) error {
	op := g.ops[0]
	var value string
	switch op.Kind {
	case EditDelete, EditReplace, EditSetIfPresent:
		return nil
	case EditPrefix:
		if op.IfAbsent == "" {
			return nil
		}
		value = op.IfAbsent
	case EditSet, EditSetIfMissing:
		value = op.Value
	case EditAppendItem:
		items, err := ed.encodeItems(g)
		if err != nil {
			return err
		}
		if g.record && len(items) == 0 {
			return nil
		}
		e := NewEncoder(ed.out, TransferSyntax{ExplicitVR: ed.enc.explicit, BigEndian: ed.enc.be})
		if err := e.WriteSequence(g.tag, items, false); err != nil {
			return err
		}
		if !g.record {
			ed.recordOriginal(g.tag, VRSQ, nil, true)
			for _, o := range g.ops {
				ed.note(g.tag, "append-item", "", itemSummary(o.Item))
			}
		}
		return nil
	}
	vr := opVR(op)
	raw, err := ed.encodeValue(op.Tag, vr, value)
	if err != nil {
		return err
	}
	if err := ed.writeElement(ed.out, ed.enc, op.Tag, vr, raw); err != nil {
		return err
	}
	ed.recordOriginal(op.Tag, vr, nil, false)
	ed.note(op.Tag, "insert", "", value)
	return nil
}

func itemSummary(item []EditOp) string {
	var parts []string
	for _, o := range item {
		if o.Kind == EditSet {
			kw := Keyword(o.Tag)
			if kw == "" {
				kw = o.Tag.String()
			}
			parts = append(parts, kw+"="+o.Value)
		}
	}
	return strings.Join(parts, " ")
}

func opVR(op EditOp) VR {
	if op.VR != "" {
		return op.VR
	}
	return LookupVR(op.Tag)
}

func (ed *editor) writeElement(w io.Writer, enc encoding, t Tag, vr VR, raw []byte) error {
	if enc.explicit && !vr.HasLongLength() && len(raw) > math.MaxUint16 {
		return editErr("%s: value of %d bytes too long for VR %s", t, len(raw), vr)
	}
	if uint64(len(raw)) >= undefinedLength {
		return editErr("%s: value too long", t)
	}
	if err := ed.writeHeader(w, enc, t, vr, uint32(len(raw))); err != nil {
		return err
	}
	return ed.write(w, raw)
}

// apply applies g to the present element whose header was just read.
func (ed *editor) apply(g *opGroup, vr VR, length uint32, start int64) error {
	op := g.ops[0]
	tag := g.tag
	enc := ed.enc
	if op.Kind == EditAppendItem {
		return ed.appendItems(g, vr, length, start)
	}
	if op.Kind == EditDelete {
		old := ""
		if length != undefinedLength && length <= 1024 && vr != VRSQ {
			raw, err := ed.readValue(tag, vr, length, start)
			if err != nil {
				return err
			}
			old = ed.decode(tag, vr, raw)
			ed.recordOriginal(tag, vr, raw, false)
		} else {
			var rec *bytes.Buffer
			if ed.opt.RecordOriginal {
				rec = new(bytes.Buffer)
			}
			var w io.Writer = io.Discard
			if rec != nil {
				w = &limitedBuffer{b: rec, max: int(ed.lim.MaxHeldValue)}
			}
			if err := ed.copyElement(enc, w, tag, vr, length, start, -1, 0); err != nil {
				if errors.Is(err, errRecordTooBig) {
					return editErr("RecordOriginal: deleted %s is larger than MaxHeldValue", tag)
				}
				return err
			}
			if rec != nil {
				ed.orig.Write(rec.Bytes())
				ed.origCount++
			}
			old = fmt.Sprintf("(%s, %s)", vr, lengthText(length))
		}
		ed.note(tag, "delete", old, "")
		return nil
	}
	// Set, SetIfMissing, Prefix, Replace need the old value.
	if vr == VRSQ || length == undefinedLength {
		return editErr("%s edit of %s, which is a sequence in the data set", op.Kind, tag)
	}
	if err := ed.checkValue(start, tag, length, -1); err != nil {
		return err
	}
	if length > ed.lim.MaxHeldValue {
		return editErr("%s: existing value of %d bytes over MaxHeldValue", tag, length)
	}
	if !enc.explicit && op.VR != "" {
		vr = op.VR
	}
	raw, err := ed.readValue(tag, vr, length, start)
	if err != nil {
		return err
	}
	old := ed.decode(tag, vr, raw)
	outVR := vr
	switch {
	case op.VR != "":
		outVR = op.VR
	case !enc.explicit || vr == VRUN:
		// implicit VR, or a known attribute sent as UN: use the dictionary
		outVR = LookupVR(tag)
	}
	var value, action string
	switch op.Kind {
	case EditSet, EditSetIfPresent:
		value, action = op.Value, "set"
	case EditSetIfMissing:
		if old != "" {
			return ed.writeElement(ed.out, enc, tag, vr, raw)
		}
		value, action = op.Value, "set"
	case EditReplace:
		if old != op.Old {
			return ed.writeElement(ed.out, enc, tag, vr, raw)
		}
		value, action = op.Value, "replace"
	case EditPrefix:
		if old == "" {
			if op.IfAbsent == "" {
				return ed.writeElement(ed.out, enc, tag, vr, raw)
			}
			value, action = op.IfAbsent, "set"
		} else if strings.HasPrefix(old, op.Value) {
			// already prefixed (an instance coerced before): idempotent
			return ed.writeElement(ed.out, enc, tag, vr, raw)
		} else {
			value, action = op.Value+old, "prefix"
		}
	}
	if !outVR.IsText() && (op.Kind == EditPrefix) {
		return editErr("prefix on %s of non-text VR %s", tag, outVR)
	}
	nraw, err := ed.encodeValue(tag, outVR, value)
	if err != nil {
		return err
	}
	if err := ed.writeElement(ed.out, enc, tag, outVR, nraw); err != nil {
		return err
	}
	if !bytes.Equal(nraw, raw) || outVR != vr {
		ed.recordOriginal(tag, vr, raw, false)
		ed.note(tag, action, old, value)
	}
	return nil
}

func lengthText(l uint32) string {
	if l == undefinedLength {
		return "undefined length"
	}
	return fmt.Sprintf("%d bytes", l)
}

var errRecordTooBig = errors.New("dicom: recorded original value too big")

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.max {
		return 0, errRecordTooBig
	}
	return l.b.Write(p)
}

func (ed *editor) readValue(tag Tag, vr VR, length uint32, start int64) ([]byte, error) {
	if err := ed.checkValue(start, tag, length, -1); err != nil {
		return nil, err
	}
	if length%2 == 1 && vr != VRUN && !tag.IsPrivate() {
		return nil, scanErr(start, tag, ErrMalformed, "odd value length %d", length)
	}
	raw := make([]byte, length)
	if err := ed.readFull(raw, start, tag); err != nil {
		return nil, err
	}
	return raw, nil
}

// decode returns the value as UTF-8 text for journals and comparisons.
func (ed *editor) decode(tag Tag, vr VR, raw []byte) string {
	ds := &Dataset{Elements: map[Tag]*Element{tag: {Tag: tag, VR: vr, Raw: raw}}, CharacterSet: ed.cs, BigEndian: ed.enc.be}
	s, err := ds.String(tag)
	if err != nil {
		return fmt.Sprintf("(%s, %d bytes)", vr, len(raw))
	}
	return s
}

// recordOriginal keeps the original element for the Original Attributes
// Sequence (raw nil: the element was absent, recorded with zero length).
func (ed *editor) recordOriginal(tag Tag, vr VR, raw []byte, seq bool) {
	if !ed.opt.RecordOriginal {
		return
	}
	ed.origCount++
	if seq {
		ed.writeHeader(&ed.orig, ed.enc, tag, VRSQ, 0)
		return
	}
	ed.writeHeader(&ed.orig, ed.enc, tag, vr, uint32(len(raw)))
	ed.orig.Write(raw)
}

// encodeItems encodes the items of the AppendItem ops of g.
func (ed *editor) encodeItems(g *opGroup) ([][]byte, error) {
	if g.record {
		it, err := ed.originalItem()
		if err != nil || it == nil {
			return nil, err
		}
		return [][]byte{it}, nil
	}
	var items [][]byte
	for _, op := range g.ops {
		it, err := ed.encodeItem(op.Item, 1)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

func (ed *editor) encodeItem(ops []EditOp, depth int) ([]byte, error) {
	groups, err := prepareOps(ops, depth)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, g := range groups {
		op := g.ops[0]
		if op.Kind == EditAppendItem {
			var items [][]byte
			for _, o := range g.ops {
				it, err := ed.encodeItem(o.Item, depth+1)
				if err != nil {
					return nil, err
				}
				items = append(items, it)
			}
			e := NewEncoder(&b, TransferSyntax{ExplicitVR: ed.enc.explicit, BigEndian: ed.enc.be})
			if err := e.WriteSequence(g.tag, items, false); err != nil {
				return nil, err
			}
			continue
		}
		vr := opVR(op)
		raw, err := ed.encodeValue(op.Tag, vr, op.Value)
		if err != nil {
			return nil, err
		}
		if err := ed.writeElement(&b, ed.enc, op.Tag, vr, raw); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// originalItem encodes the Original Attributes Sequence item, nil if
// nothing was modified.
func (ed *editor) originalItem() ([]byte, error) {
	if ed.origCount == 0 {
		return nil, nil
	}
	now := time.Now
	if ed.opt.Now != nil {
		now = ed.opt.Now
	}
	var b bytes.Buffer
	e := NewEncoder(&b, TransferSyntax{ExplicitVR: ed.enc.explicit, BigEndian: ed.enc.be})
	if err := e.WriteSequence(tagModifiedAttributesSequence, [][]byte{ed.orig.Bytes()}, false); err != nil {
		return nil, err
	}
	sys := ed.opt.ModifyingSystem
	if sys == "" {
		sys = "RELAIS"
	}
	reason := ed.opt.Reason
	if reason == "" {
		reason = "COERCE"
	}
	for _, el := range []struct {
		t Tag
		v string
	}{
		{tagAttributeModificationDT, now().UTC().Format("20060102150405") + "+0000"},
		{tagModifyingSystem, sys},
		{tagSourceOfPreviousValues, ed.opt.SourceOfPreviousValues},
		{tagReasonForAttributeModifDesc, reason},
	} {
		vr := LookupVR(el.t)
		raw, err := ed.encodeValue(el.t, vr, el.v)
		if err != nil {
			return nil, err
		}
		if err := ed.writeElement(&b, ed.enc, el.t, vr, raw); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// appendItems appends the items of g to the present sequence.
func (ed *editor) appendItems(g *opGroup, vr VR, length uint32, start int64) error {
	tag := g.tag
	enc := ed.enc
	if enc.explicit && vr != VRSQ {
		return editErr("append-item on %s, which has VR %s in the data set", tag, vr)
	}
	if !enc.explicit && length != undefinedLength && LookupVR(tag) != VRSQ {
		return editErr("append-item on %s, not a sequence in the dictionary", tag)
	}
	if length != undefinedLength {
		if err := ed.checkValue(start, tag, length, -1); err != nil {
			return err
		}
	}
	if ed.lim.MaxDepth < 1 {
		return scanErr(start, tag, ErrLimitExceeded, "sequence nesting deeper than %d", ed.lim.MaxDepth)
	}
	// Original value: the sequence as it was (items copied while streaming).
	var rec *limitedBuffer
	var body io.Writer = ed.out
	if ed.opt.RecordOriginal && !g.record {
		rec = &limitedBuffer{b: new(bytes.Buffer), max: int(ed.lim.MaxHeldValue)}
		body = io.MultiWriter(ed.out, rec)
	}
	dedupe := false
	for _, op := range g.ops {
		dedupe = dedupe || op.SkipIfPresent
	}
	if dedupe && !g.record {
		return ed.appendDedupe(g, length, start)
	}
	var items [][]byte
	var extra []byte
	if !g.record {
		var err error
		items, err = ed.encodeItems(g)
		if err != nil {
			return err
		}
		for _, it := range items {
			var b bytes.Buffer
			ed.writeHeader(&b, enc, TagItem, "", uint32(len(it)))
			b.Write(it)
			extra = append(extra, b.Bytes()...)
		}
	}
	// For the Original Attributes Sequence the item is built after its
	// existing items have been copied (nothing is modified meanwhile), so
	// build it now: all modified tags precede it.
	if g.record {
		it, err := ed.originalItem()
		if err != nil {
			return err
		}
		if it != nil {
			var b bytes.Buffer
			ed.writeHeader(&b, enc, TagItem, "", uint32(len(it)))
			b.Write(it)
			extra = b.Bytes()
		}
	}
	newLen := length
	if length != undefinedLength {
		if uint64(length)+uint64(len(extra)) >= undefinedLength {
			return editErr("appending to %s makes it too long", tag)
		}
		newLen = length + uint32(len(extra))
	}
	if err := ed.writeHeader(ed.out, enc, tag, VRSQ, newLen); err != nil {
		return err
	}
	if err := ed.copySequence(enc, ed.out, body, tag, length, start, -1, 0, extra); err != nil {
		if errors.Is(err, errRecordTooBig) {
			return editErr("RecordOriginal: sequence %s is larger than MaxHeldValue", tag)
		}
		return err
	}
	if len(extra) > 0 {
		if rec != nil {
			ed.writeHeader(&ed.orig, enc, tag, VRSQ, undefinedLength)
			ed.orig.Write(rec.b.Bytes())
			ed.writeHeader(&ed.orig, enc, TagSequenceDelimitationItem, "", 0)
			ed.origCount++
		}
		if g.record {
			ed.note(tag, "append-item", "", "original attributes")
		} else {
			for _, op := range g.ops {
				ed.note(tag, "append-item", "", itemSummary(op.Item))
			}
		}
	}
	return nil
}

// copyElement copies an element whose header has been read (and not yet
// written) to w, unchanged.
func (ed *editor) copyElement(enc encoding, w io.Writer, tag Tag, vr VR, length uint32, start, end int64, depth int) error {
	if length == undefinedLength {
		switch {
		case tag == TagPixelData && enc.explicit && (vr == VROB || vr == VROW) && ed.ts.Encapsulated:
			if err := ed.writeHeader(w, enc, tag, vr, length); err != nil {
				return err
			}
			return ed.copyFragments(enc, w, tag, end)
		case vr == VRSQ || vr == VRUN || !enc.explicit:
			inner := enc
			if vr == VRUN && enc.explicit {
				inner = implicitLE
			}
			if err := ed.writeHeader(w, enc, tag, vr, length); err != nil {
				return err
			}
			return ed.copySequence(inner, w, w, tag, length, start, end, depth, nil)
		}
		return scanErr(start, tag, ErrMalformed, "undefined length not allowed for VR %s", vr)
	}
	if err := ed.checkValue(start, tag, length, end); err != nil {
		return err
	}
	if err := ed.writeHeader(w, enc, tag, vr, length); err != nil {
		return err
	}
	if vr == VRSQ {
		return ed.copySequence(enc, w, w, tag, length, start, end, depth, nil)
	}
	if length%2 == 1 && vr != VRUN && !tag.IsPrivate() {
		return scanErr(start, tag, ErrMalformed, "odd value length %d", length)
	}
	return ed.copyValue(w, int64(length), start, tag)
}

func (ed *editor) copyValue(w io.Writer, n int64, start int64, tag Tag) error {
	for n > 0 {
		chunk := int64(len(ed.buf))
		if n < chunk {
			chunk = n
		}
		p := ed.buf[:chunk]
		if err := ed.readFull(p, start, tag); err != nil {
			return err
		}
		if err := ed.write(w, p); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

// copyDataset copies the elements of an item until end (defined length) or
// its item delimitation item (end < 0), which it copies too.
func (ed *editor) copyDataset(enc encoding, w io.Writer, end int64, depth int) error {
	var prev Tag
	first := true
	for {
		if end >= 0 && ed.off >= end {
			return nil
		}
		start := ed.off
		tag, vr, length, err := ed.header(enc)
		if err == errCleanEOF {
			return scanErr(start, 0, ErrTruncated, "data ends inside an item")
		}
		if err != nil {
			return err
		}
		if end >= 0 && ed.off > end {
			return scanErr(start, tag, ErrMalformed, "element header runs past the end of its item at offset %d", end)
		}
		if tag.Group() == 0xFFFE {
			if tag == TagItemDelimitationItem && end < 0 {
				if length != 0 {
					return scanErr(start, tag, ErrMalformed, "item delimitation item with non-zero length %d", length)
				}
				return ed.writeHeader(w, enc, tag, "", 0)
			}
			return scanErr(start, tag, ErrMalformed, "unexpected %s in a dataset", tag)
		}
		if !first && tag <= prev {
			return scanErr(start, tag, ErrMalformed, "tag not greater than preceding %s", prev)
		}
		first, prev = false, tag
		if err := ed.copyElement(enc, w, tag, vr, length, start, end, depth); err != nil {
			return err
		}
	}
}

// copySequence copies the items of a sequence whose header has been
// written to w; body receives the items (w, or w teed), extra (encoded
// items) is written after them, before the delimiter.
func (ed *editor) copySequence(enc encoding, w, body io.Writer, tag Tag, length uint32, start, end int64, depth int, extra []byte) error {
	if depth+1 > ed.lim.MaxDepth {
		return scanErr(start, tag, ErrLimitExceeded, "sequence nesting deeper than %d", ed.lim.MaxDepth)
	}
	seqEnd := int64(-1)
	if length != undefinedLength {
		seqEnd = ed.off + int64(length)
	}
	for {
		if seqEnd >= 0 && ed.off >= seqEnd {
			if len(extra) > 0 {
				return ed.write(w, extra)
			}
			return nil
		}
		istart := ed.off
		itag, _, ilen, err := ed.header(enc)
		if err == errCleanEOF {
			return scanErr(istart, tag, ErrTruncated, "data ends inside a sequence")
		}
		if err != nil {
			return err
		}
		if (seqEnd >= 0 && ed.off > seqEnd) || (end >= 0 && ed.off > end) {
			return scanErr(istart, tag, ErrMalformed, "item header runs past the end of its sequence")
		}
		switch itag {
		case TagItem:
			if err := ed.writeHeader(body, enc, TagItem, "", ilen); err != nil {
				return err
			}
			if ilen == undefinedLength {
				if err := ed.copyDataset(enc, body, -1, depth+1); err != nil {
					return err
				}
				if (seqEnd >= 0 && ed.off > seqEnd) || (end >= 0 && ed.off > end) {
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
			if err := ed.checkValue(istart, tag, ilen, limEnd); err != nil {
				return err
			}
			if err := ed.copyDataset(enc, body, ed.off+int64(ilen), depth+1); err != nil {
				return err
			}
		case TagSequenceDelimitationItem:
			if seqEnd >= 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item in a sequence of defined length")
			}
			if ilen != 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item with non-zero length %d", ilen)
			}
			if len(extra) > 0 {
				if err := ed.write(w, extra); err != nil {
					return err
				}
			}
			return ed.writeHeader(w, enc, TagSequenceDelimitationItem, "", 0)
		default:
			return scanErr(istart, tag, ErrMalformed, "expected an item in a sequence, found %s", itag)
		}
	}
}

// copyFragments copies encapsulated pixel data items up to and including
// the sequence delimitation item.
func (ed *editor) copyFragments(enc encoding, w io.Writer, tag Tag, end int64) error {
	for n := 0; ; n++ {
		istart := ed.off
		itag, _, ilen, err := ed.header(enc)
		if err == errCleanEOF {
			return scanErr(istart, tag, ErrTruncated, "data ends inside encapsulated pixel data")
		}
		if err != nil {
			return err
		}
		if end >= 0 && ed.off > end {
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
			if err := ed.checkValue(istart, tag, ilen, end); err != nil {
				return err
			}
			if err := ed.writeHeader(w, enc, TagItem, "", ilen); err != nil {
				return err
			}
			if err := ed.copyValue(w, int64(ilen), istart, tag); err != nil {
				return err
			}
		case TagSequenceDelimitationItem:
			if n == 0 {
				return scanErr(istart, tag, ErrMalformed, "encapsulated pixel data without basic offset table item")
			}
			if ilen != 0 {
				return scanErr(istart, tag, ErrMalformed, "sequence delimitation item with non-zero length %d", ilen)
			}
			return ed.writeHeader(w, enc, TagSequenceDelimitationItem, "", 0)
		default:
			return scanErr(istart, tag, ErrMalformed, "expected a fragment item, found %s", itag)
		}
	}
}

// maxChars is the maximum length of one value of a character VR, in
// characters (PS3.5 6.2); PN applies it per component group.
var maxChars = map[VR]int{
	VRAE: 16, VRAS: 4, VRCS: 16, VRDA: 8, VRDS: 16, VRDT: 26, VRIS: 12,
	VRLO: 64, VRLT: 10240, VRPN: 64, VRSH: 16, VRST: 1024, VRTM: 14, VRUI: 64,
}

// encodeValue encodes a UTF-8 value for tag with VR vr in the data set's
// character set, padded to even length.
func (ed *editor) encodeValue(tag Tag, vr VR, value string) ([]byte, error) {
	name := tag.String()
	if kw := Keyword(tag); kw != "" {
		name = kw + " " + name
	}
	if !utf8.ValidString(value) {
		return nil, editErr("%s: value is not valid UTF-8", name)
	}
	info := vrTable[vr]
	if !info.text {
		return ed.encodeNumbers(name, vr, value)
	}
	vals := []string{value}
	if info.multi {
		vals = strings.Split(value, `\`)
	}
	for _, v := range vals {
		if strings.ContainsAny(v, "\x00\x1b") {
			return nil, editErr("%s: value contains NUL or ESC", name)
		}
		max := maxChars[vr]
		if max == 0 {
			continue
		}
		parts := []string{v}
		if vr == VRPN {
			parts = strings.Split(v, "=")
			if len(parts) > 3 {
				return nil, editErr("%s: person name with more than 3 component groups", name)
			}
		}
		for _, p := range parts {
			if n := utf8.RuneCountInString(p); n > max {
				return nil, editErr("%s: value %q has %d characters, over the %d allowed for VR %s", name, truncLog(p), n, max, vr)
			}
		}
		if vr == VRCS && strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _") != "" {
			return nil, editErr("%s: code string %q has characters other than upper-case letters, digits, space and underscore", name, truncLog(v))
		}
		if vr == VRUI && strings.Trim(v, "0123456789.") != "" {
			return nil, editErr("%s: UID %q has characters other than digits and dots", name, truncLog(v))
		}
	}
	ascii := true
	for i := 0; i < len(value); i++ {
		if value[i] >= 0x80 {
			ascii = false
			break
		}
	}
	var raw []byte
	switch {
	case ascii:
		raw = []byte(value)
	case vr == VRUI || vr == VRDA || vr == VRTM || vr == VRDT || vr == VRAS || vr == VRCS || vr == VRDS || vr == VRIS || vr == VRAE:
		return nil, editErr("%s: VR %s is restricted to the default repertoire, value %q is not", name, vr, truncLog(value))
	case len(ed.cs) > 1:
		return nil, editErr("%s: value %q cannot be encoded with code extensions (Specific Character Set %q)", name, truncLog(value), strings.Join(ed.cs, `\`))
	default:
		cs := ""
		if len(ed.cs) == 1 {
			cs = ed.cs[0]
		}
		var err error
		raw, err = charset.Encode(cs, value)
		if err != nil {
			shown := cs
			if shown == "" {
				shown = "default repertoire (no Specific Character Set)"
			}
			return nil, editErr("%s: value %q not representable in %s: %v", name, truncLog(value), shown, err)
		}
	}
	if len(raw)%2 == 1 {
		raw = append(raw, vr.PadByte())
	}
	return raw, nil
}

func (ed *editor) encodeNumbers(name string, vr VR, value string) ([]byte, error) {
	var bo binary.AppendByteOrder = binary.LittleEndian
	if ed.enc.be {
		bo = binary.BigEndian
	}
	switch vr {
	case VRUS, VRSS, VRUL, VRSL, VRFL, VRFD:
	default:
		return nil, editErr("%s: cannot set a value of VR %s from text", name, vr)
	}
	if value == "" {
		return []byte{}, nil
	}
	var out []byte
	for _, v := range strings.Split(value, `\`) {
		v = strings.TrimSpace(v)
		var err error
		switch vr {
		case VRUS:
			var n uint64
			if n, err = strconv.ParseUint(v, 10, 16); err == nil {
				out = bo.AppendUint16(out, uint16(n))
			}
		case VRSS:
			var n int64
			if n, err = strconv.ParseInt(v, 10, 16); err == nil {
				out = bo.AppendUint16(out, uint16(n))
			}
		case VRUL:
			var n uint64
			if n, err = strconv.ParseUint(v, 10, 32); err == nil {
				out = bo.AppendUint32(out, uint32(n))
			}
		case VRSL:
			var n int64
			if n, err = strconv.ParseInt(v, 10, 32); err == nil {
				out = bo.AppendUint32(out, uint32(n))
			}
		case VRFL:
			var f float64
			if f, err = strconv.ParseFloat(v, 32); err == nil {
				out = bo.AppendUint32(out, math.Float32bits(float32(f)))
			}
		case VRFD:
			var f float64
			if f, err = strconv.ParseFloat(v, 64); err == nil {
				out = bo.AppendUint64(out, math.Float64bits(f))
			}
		}
		if err != nil {
			return nil, editErr("%s: %q is not a valid %s value", name, v, vr)
		}
	}
	return out, nil
}

// EditFile edits a Part 10 file: it reads the file meta from src, writes it
// to dst again with WriteFileMeta (the fields of FileMeta as read: UIDs,
// transfer syntax, implementation class and version, source AE title;
// other group 0002 elements are not kept) and streams the data set
// through EditWith. Written counts the meta.
func EditFile(dst io.Writer, src io.Reader, lim Limits, edits []EditOp, opt EditOptions) (EditResult, error) {
	br := getReader(src)
	defer putReader(br)
	meta, _, err := ReadFileMeta(br)
	if err != nil {
		return EditResult{}, err
	}
	ts, ok := LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return EditResult{}, fmt.Errorf("%w: unknown transfer syntax %q", ErrUnsupportedTransferSyntax, meta.TransferSyntaxUID)
	}
	if ts.Deflated {
		return EditResult{}, fmt.Errorf("%w: cannot edit %s (%s) in place: inflate it first", ErrUnsupportedTransferSyntax, ts.Name, ts.UID)
	}
	n, err := WriteFileMeta(dst, meta)
	if err != nil {
		return EditResult{Written: n}, err
	}
	res, err := EditWith(dst, br, ts, lim, edits, opt)
	res.Written += n
	return res, err
}

// appendDedupe appends the items of g that the present sequence does not
// already hold (SkipIfPresent): the sequence is buffered (bounded by
// MaxHeldValue), scanned and written back with the new items.
func (ed *editor) appendDedupe(g *opGroup, length uint32, start int64) error {
	tag, enc := g.tag, ed.enc
	lb := &limitedBuffer{b: new(bytes.Buffer), max: int(ed.lim.MaxHeldValue)}
	if err := ed.writeHeader(lb, enc, tag, VRSQ, length); err != nil {
		return err
	}
	hdrLen := lb.b.Len()
	if err := ed.copySequence(enc, lb, lb, tag, length, start, -1, 0, nil); err != nil {
		if errors.Is(err, errRecordTooBig) {
			return editErr("append-item with SkipIfPresent: sequence %s is larger than MaxHeldValue", tag)
		}
		return err
	}
	whole := lb.b.Bytes()
	res, err := Scan(bytes.NewReader(whole), ed.ts, ed.lim, WantAll)
	if err != nil {
		return err
	}
	var have []*Dataset
	if el, ok := res.Dataset.Get(tag); ok {
		have = el.Items
	}
	var extra []byte
	var kept []EditOp
	for _, op := range g.ops {
		if op.SkipIfPresent && hasItem(have, op.Item, ed.cs) {
			continue
		}
		it, err := ed.encodeItem(op.Item, 1)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		ed.writeHeader(&b, enc, TagItem, "", uint32(len(it)))
		b.Write(it)
		extra = append(extra, b.Bytes()...)
		kept = append(kept, op)
	}
	body := whole[hdrLen:]
	if length == undefinedLength {
		body = body[:len(body)-8] // the sequence delimitation item
	}
	newLen := length
	if length != undefinedLength {
		if uint64(length)+uint64(len(extra)) >= undefinedLength {
			return editErr("appending to %s makes it too long", tag)
		}
		newLen = length + uint32(len(extra))
	}
	if err := ed.writeHeader(ed.out, enc, tag, VRSQ, newLen); err != nil {
		return err
	}
	if err := ed.write(ed.out, body); err != nil {
		return err
	}
	if err := ed.write(ed.out, extra); err != nil {
		return err
	}
	if length == undefinedLength {
		if err := ed.writeHeader(ed.out, enc, TagSequenceDelimitationItem, "", 0); err != nil {
			return err
		}
	}
	if len(kept) > 0 {
		if ed.opt.RecordOriginal {
			ed.writeHeader(&ed.orig, enc, tag, VRSQ, undefinedLength)
			ed.orig.Write(body)
			ed.writeHeader(&ed.orig, enc, TagSequenceDelimitationItem, "", 0)
			ed.origCount++
		}
		for _, op := range kept {
			ed.note(tag, "append-item", "", itemSummary(op.Item))
		}
	}
	return nil
}

// hasItem reports whether one of items has the values of all the
// top-level Set elements of want.
func hasItem(items []*Dataset, want []EditOp, cs []string) bool {
	n := 0
	for _, op := range want {
		if op.Kind == EditSet && opVR(op) != VRSQ {
			n++
		}
	}
	if n == 0 {
		return false
	}
next:
	for _, it := range items {
		it.CharacterSet = cs
		for _, op := range want {
			if op.Kind != EditSet || opVR(op) == VRSQ {
				continue
			}
			v, err := it.String(op.Tag)
			if _, ok := it.Get(op.Tag); !ok || err != nil || v != strings.Trim(op.Value, " ") {
				continue next
			}
		}
		return true
	}
	return false
}

// CheckEditValue checks a UTF-8 value for tag as Edit would before knowing
// the data set's character set (as if it were ISO_IR 192): the VR (from
// the dictionary unless vr is given) must be settable from text, and the
// value must fit the VR's length and character rules. Configuration
// loaders use it to refuse bad values early.
func CheckEditValue(tag Tag, vr VR, value string) error {
	if vr == "" {
		vr = LookupVR(tag)
	}
	if !vr.valid() {
		return editErr("%s: invalid VR %q", tag, vr)
	}
	ed := &editor{cs: []string{"ISO_IR 192"}}
	_, err := ed.encodeValue(tag, vr, value)
	return err
}
