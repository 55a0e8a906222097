package dicom

// VR is a two-letter value representation code ("PN", "UI", "OB", ...).
type VR string

// Value representations of PS3.5 6.2.
const (
	VRAE VR = "AE"
	VRAS VR = "AS"
	VRAT VR = "AT"
	VRCS VR = "CS"
	VRDA VR = "DA"
	VRDS VR = "DS"
	VRDT VR = "DT"
	VRFD VR = "FD"
	VRFL VR = "FL"
	VRIS VR = "IS"
	VRLO VR = "LO"
	VRLT VR = "LT"
	VROB VR = "OB"
	VROD VR = "OD"
	VROF VR = "OF"
	VROL VR = "OL"
	VROV VR = "OV"
	VROW VR = "OW"
	VRPN VR = "PN"
	VRSH VR = "SH"
	VRSL VR = "SL"
	VRSQ VR = "SQ"
	VRSS VR = "SS"
	VRST VR = "ST"
	VRSV VR = "SV"
	VRTM VR = "TM"
	VRUC VR = "UC"
	VRUI VR = "UI"
	VRUL VR = "UL"
	VRUN VR = "UN"
	VRUR VR = "UR"
	VRUS VR = "US"
	VRUT VR = "UT"
	VRUV VR = "UV"
)

// vrInfo describes the encoding properties of a VR.
type vrInfo struct {
	long   bool // explicit VR header has 2 reserved bytes and a 32-bit length
	swap   uint8
	pad    byte
	text   bool // value is character data
	multi  bool // backslash separates values
	binary bool
}

var vrTable = map[VR]vrInfo{
	VRAE: {pad: ' ', text: true, multi: true},
	VRAS: {pad: ' ', text: true, multi: true},
	VRAT: {swap: 2, binary: true},
	VRCS: {pad: ' ', text: true, multi: true},
	VRDA: {pad: ' ', text: true, multi: true},
	VRDS: {pad: ' ', text: true, multi: true},
	VRDT: {pad: ' ', text: true, multi: true},
	VRFD: {swap: 8, binary: true},
	VRFL: {swap: 4, binary: true},
	VRIS: {pad: ' ', text: true, multi: true},
	VRLO: {pad: ' ', text: true, multi: true},
	VRLT: {pad: ' ', text: true},
	VROB: {long: true, binary: true},
	VROD: {long: true, swap: 8, binary: true},
	VROF: {long: true, swap: 4, binary: true},
	VROL: {long: true, swap: 4, binary: true},
	VROV: {long: true, swap: 8, binary: true},
	VROW: {long: true, swap: 2, binary: true},
	VRPN: {pad: ' ', text: true, multi: true},
	VRSH: {pad: ' ', text: true, multi: true},
	VRSL: {swap: 4, binary: true},
	VRSQ: {long: true},
	VRSS: {swap: 2, binary: true},
	VRST: {pad: ' ', text: true},
	VRSV: {long: true, swap: 8, binary: true},
	VRTM: {pad: ' ', text: true, multi: true},
	VRUC: {long: true, pad: ' ', text: true, multi: true},
	VRUI: {pad: 0, text: true, multi: true},
	VRUL: {swap: 4, binary: true},
	VRUN: {long: true, binary: true},
	VRUR: {long: true, pad: ' ', text: true},
	VRUS: {swap: 2, binary: true},
	VRUT: {long: true, pad: ' ', text: true},
	VRUV: {long: true, swap: 8, binary: true},
}

func (v VR) valid() bool { _, ok := vrTable[v]; return ok }

// HasLongLength reports whether v uses the 12-byte explicit VR header with a
// 32-bit length (OB, OD, OF, OL, OV, OW, SQ, SV, UC, UN, UR, UT, UV).
func (v VR) HasLongLength() bool { return vrTable[v].long }

// PadByte returns the byte used to pad a value of VR v to even length:
// NUL for UI and binary VRs, space for other character VRs.
func (v VR) PadByte() byte { return vrTable[v].pad }

// IsText reports whether values of VR v are character strings.
func (v VR) IsText() bool { return vrTable[v].text }

// swapSize returns the size of the unit to byte-swap when changing byte
// order (0 if the value is not swapped).
func (v VR) swapSize() int { return int(vrTable[v].swap) }

// vrFromBytes returns the VR spelled by two bytes without allocating.
func vrFromBytes(a, b byte) (VR, bool) {
	switch a {
	case 'A':
		switch b {
		case 'E':
			return VRAE, true
		case 'S':
			return VRAS, true
		case 'T':
			return VRAT, true
		}
	case 'C':
		if b == 'S' {
			return VRCS, true
		}
	case 'D':
		switch b {
		case 'A':
			return VRDA, true
		case 'S':
			return VRDS, true
		case 'T':
			return VRDT, true
		}
	case 'F':
		switch b {
		case 'D':
			return VRFD, true
		case 'L':
			return VRFL, true
		}
	case 'I':
		if b == 'S' {
			return VRIS, true
		}
	case 'L':
		switch b {
		case 'O':
			return VRLO, true
		case 'T':
			return VRLT, true
		}
	case 'O':
		switch b {
		case 'B':
			return VROB, true
		case 'D':
			return VROD, true
		case 'F':
			return VROF, true
		case 'L':
			return VROL, true
		case 'V':
			return VROV, true
		case 'W':
			return VROW, true
		}
	case 'P':
		if b == 'N' {
			return VRPN, true
		}
	case 'S':
		switch b {
		case 'H':
			return VRSH, true
		case 'L':
			return VRSL, true
		case 'Q':
			return VRSQ, true
		case 'S':
			return VRSS, true
		case 'T':
			return VRST, true
		case 'V':
			return VRSV, true
		}
	case 'T':
		if b == 'M' {
			return VRTM, true
		}
	case 'U':
		switch b {
		case 'C':
			return VRUC, true
		case 'I':
			return VRUI, true
		case 'L':
			return VRUL, true
		case 'N':
			return VRUN, true
		case 'R':
			return VRUR, true
		case 'S':
			return VRUS, true
		case 'T':
			return VRUT, true
		case 'V':
			return VRUV, true
		}
	}
	return "", false
}
