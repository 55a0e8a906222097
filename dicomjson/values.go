package dicomjson

import (
	"bytes"
	"math"
	"strconv"

	"github.com/relais-health/relais/dicom"
)

// vrKind classifies how the values of a VR are written.
type vrKind uint8

const (
	kindText   vrKind = iota // JSON strings, multi-valued ('\')
	kindSingle               // JSON string, single value, leading spaces kept (LT, ST, UT, UR)
	kindPN                   // Person Name objects
	kindDS                   // decimal string as JSON numbers
	kindIS                   // integer string as JSON numbers
	kindBinNum               // binary numbers (US, SS, UL, SL, FL, FD)
	kindAT                   // attribute tags
	kindBulk                 // OB, OW, OD, OF, OL, OV, UN: InlineBinary
	kindSQ                   // sequence
	kindBigNum               // 64-bit binary integers (UV, SV)
)

// vrProps caches, per VR letter pair, the kind (low 4 bits) and the flags
// below, so the per-element lookups are an index instead of string
// switches.
var vrProps = func() (t [26][26]uint8) {
	for a := byte('A'); a <= 'Z'; a++ {
		for b := byte('A'); b <= 'Z'; b++ {
			vr := dicom.VR([]byte{a, b})
			p := uint8(kindOfSlow(vr))
			if knownVRSlow(vr) {
				p |= propKnown
			}
			if restrictedSlow(vr) {
				p |= propRestricted
			}
			t[a-'A'][b-'A'] = p
		}
	}
	return t
}()

const (
	propKnown      = 1 << 4 // a VR of PS3.5 6.2
	propRestricted = 1 << 5 // default repertoire only: never decoded
)

func props(vr dicom.VR) uint8 {
	if len(vr) != 2 || vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
		return uint8(kindBulk)
	}
	return vrProps[vr[0]-'A'][vr[1]-'A']
}

func kindOf(vr dicom.VR) vrKind { return vrKind(props(vr) & 0xF) }

// restricted reports VRs whose values use the default repertoire only and
// are therefore never decoded with the Specific Character Set (as in
// dicom.Dataset.Strings).
func restricted(vr dicom.VR) bool { return props(vr)&propRestricted != 0 }

// knownVR reports the VRs of PS3.5 6.2; others are written as UN.
func knownVR(vr dicom.VR) bool { return props(vr)&propKnown != 0 }

func kindOfSlow(vr dicom.VR) vrKind {
	switch vr {
	case dicom.VRPN:
		return kindPN
	case dicom.VRDS:
		return kindDS
	case dicom.VRIS:
		return kindIS
	case dicom.VRLT, dicom.VRST, dicom.VRUT, dicom.VRUR:
		return kindSingle
	case dicom.VRUS, dicom.VRSS, dicom.VRUL, dicom.VRSL, dicom.VRFL, dicom.VRFD:
		return kindBinNum
	case dicom.VRUV, dicom.VRSV:
		return kindBigNum
	case dicom.VRAT:
		return kindAT
	case dicom.VRSQ:
		return kindSQ
	case dicom.VRAE, dicom.VRAS, dicom.VRCS, dicom.VRDA, dicom.VRDT, dicom.VRTM, dicom.VRUI,
		dicom.VRLO, dicom.VRSH, dicom.VRUC:
		return kindText
	}
	return kindBulk
}

func restrictedSlow(vr dicom.VR) bool {
	switch vr {
	case dicom.VRUI, dicom.VRDA, dicom.VRTM, dicom.VRDT, dicom.VRAS, dicom.VRCS, dicom.VRDS, dicom.VRIS, dicom.VRAE:
		return true
	}
	return false
}

func isPad(c byte) bool { return c == ' ' || c == 0 }

// trimValue trims trailing spaces and NULs and, unless keepLeading, leading
// ones too (the padding rules of dicom.Dataset.Strings).
func trimValue(v []byte, keepLeading bool) []byte {
	for len(v) > 0 && isPad(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	if !keepLeading {
		for len(v) > 0 && isPad(v[0]) {
			v = v[1:]
		}
	}
	return v
}

// nextValue returns the value at the start of s up to the next backslash
// (when multi) and the rest after it; more is false after the last value.
func nextValue(s []byte, multi bool) (v, rest []byte, more bool) {
	if multi {
		for i, c := range s {
			if c == '\\' {
				return s[:i], s[i+1:], true
			}
		}
	}
	return s, nil, false
}

// textValues writes `,"Value":[...]` for character data s (already UTF-8)
// of kind k, or nothing if every value is empty.
func (e *encoder) textValues(k vrKind, s []byte) {
	multi := k != kindSingle
	keepLeading := k == kindSingle
	nonEmpty := false
	for rest, more := s, true; more; {
		var v []byte
		v, rest, more = nextValue(rest, multi)
		if v = trimValue(v, keepLeading); len(v) > 0 && (k != kindPN || !emptyPN(v)) {
			nonEmpty = true
			break
		}
	}
	if !nonEmpty {
		return
	}
	e.raw(`,"Value":[`)
	first := true
	for rest, more := s, true; more; {
		var v []byte
		v, rest, more = nextValue(rest, multi)
		v = trimValue(v, keepLeading)
		if !first {
			e.byte(',')
		}
		first = false
		if len(v) == 0 {
			e.raw("null")
			continue
		}
		switch k {
		case kindPN:
			e.personName(v)
		case kindDS:
			e.number(v, true)
		case kindIS:
			e.number(v, false)
		case kindAT:
			e.atText(v)
		case kindBinNum:
			e.number(v, true)
		case kindBigNum:
			e.bigText(v)
		default:
			e.str(v)
		}
	}
	e.byte(']')
}

var pnGroups = [3]string{`"Alphabetic":`, `"Ideographic":`, `"Phonetic":`}

// splitPN returns the first three component groups of a PN value.
func splitPN(v []byte) (groups [3][]byte) {
	for n := 0; n < 3; n++ {
		j := bytes.IndexByte(v, '=')
		if j < 0 {
			groups[n] = trimValue(v, false)
			break
		}
		groups[n] = trimValue(v[:j], false)
		v = v[j+1:]
	}
	return groups
}

// emptyPN reports a PN value without a non-empty component group (such as
// "=="): null in a multi-valued attribute, and an attribute of such values
// only has its VR, as in dcm2json.
func emptyPN(v []byte) bool {
	g := splitPN(v)
	return len(g[0]) == 0 && len(g[1]) == 0 && len(g[2]) == 0
}

// personName writes one PN value as an object with its component groups
// (split on '='); empty groups are left out, groups after the third are
// ignored, and a value with no non-empty group is null.
func (e *encoder) personName(v []byte) {
	groups := splitPN(v)
	if len(groups[0]) == 0 && len(groups[1]) == 0 && len(groups[2]) == 0 {
		e.raw("null")
		return
	}
	e.byte('{')
	first := true
	for i, g := range groups {
		if len(g) == 0 {
			continue
		}
		if !first {
			e.byte(',')
		}
		first = false
		e.raw(pnGroups[i])
		e.str(g)
	}
	e.byte('}')
}

// number writes a DS (decimal) or IS (integer, !decimal) value as a JSON
// number, normalised as dcm2json does (PS3.18 F.2.3.1 wants JSON numbers;
// RFC 8259 forbids the '+' signs, leading zeros and bare periods that DICOM
// allows): '+' signs dropped, leading zeros of the integer part dropped, a
// zero added around a bare period ("1." → 1.0, ".5" → 0.5). A value that is
// still not a JSON number ("NaN", "1,5", "12a") is written as a JSON string
// holding the value as it is, as dcm2json does (CP 1861 allows strings for
// DS and IS). dcm2json 3.6.7 writes "1." as the invalid JSON 1.; we write
// 1.0.
func (e *encoder) number(v []byte, decimal bool) {
	start := len(e.buf)
	if appendNumber(e, v, decimal) {
		return
	}
	e.buf = e.buf[:start]
	e.str(v)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendNumber appends the normalised number and reports whether v is one.
func appendNumber(e *encoder, v []byte, decimal bool) bool {
	i := 0
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		if v[i] == '-' {
			e.byte('-')
		}
		i++
	}
	ds := i
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	intPart := v[ds:i]
	var frac []byte
	dot := false
	if decimal && i < len(v) && v[i] == '.' {
		dot = true
		i++
		fs := i
		for i < len(v) && isDigit(v[i]) {
			i++
		}
		frac = v[fs:i]
	}
	if len(intPart) == 0 && len(frac) == 0 {
		return false
	}
	for len(intPart) > 1 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(intPart) == 0 {
		e.byte('0')
	} else {
		e.rawBytes(intPart)
	}
	if dot {
		e.byte('.')
		if len(frac) == 0 {
			e.byte('0')
		} else {
			e.rawBytes(frac)
		}
	}
	if decimal && i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		e.byte(v[i])
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			if v[i] == '-' {
				e.byte('-')
			}
			i++
		}
		es := i
		for i < len(v) && isDigit(v[i]) {
			i++
		}
		if i == es {
			return false
		}
		e.rawBytes(v[es:i])
	}
	return i == len(v)
}

// bigText writes a UV or SV value given as text (from an index map) as
// binaryNumbers does: a JSON number within ±(2^53-1), a string of digits
// beyond; anything else as number does.
func (e *encoder) bigText(v []byte) {
	if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		e.bigInt(strconv.AppendInt(e.num[:0], i, 10), i > maxSafe || i < -maxSafe)
		return
	}
	if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
		e.bigInt(strconv.AppendUint(e.num[:0], u, 10), u > maxSafe)
		return
	}
	e.number(v, true)
}

// float writes a binary floating point value: a JSON number, or for NaN and
// the infinities (which JSON numbers cannot express) the strings "NaN",
// "Infinity" and "-Infinity".
func (e *encoder) float(f float64, bits int) {
	switch {
	case math.IsNaN(f):
		e.raw(`"NaN"`)
	case math.IsInf(f, 1):
		e.raw(`"Infinity"`)
	case math.IsInf(f, -1):
		e.raw(`"-Infinity"`)
	default:
		e.buf = strconv.AppendFloat(e.buf, f, 'g', -1, bits)
	}
}

// atText writes an AT value given as text ("GGGG,EEEE", "(GGGG,EEEE)" or
// "GGGGEEEE") as "GGGGEEEE"; anything else is written as it is.
func (e *encoder) atText(v []byte) {
	var hex [8]byte
	n := 0
	for _, c := range v {
		switch {
		case c == '(' || c == ')' || c == ',':
			continue
		case isDigit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'):
			if n == 8 {
				e.str(v)
				return
			}
			if c >= 'a' {
				c -= 'a' - 'A'
			}
			hex[n] = c
			n++
		default:
			e.str(v)
			return
		}
	}
	if n != 8 {
		e.str(v)
		return
	}
	e.byte('"')
	e.rawBytes(hex[:])
	e.byte('"')
}
