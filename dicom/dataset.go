package dicom

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/relais-health/relais/dicom/charset"
)

// Get returns the extracted element with tag t.
func (d *Dataset) Get(t Tag) (*Element, bool) {
	if d == nil {
		return nil, false
	}
	e, ok := d.Elements[t]
	return e, ok
}

// String returns the value of t decoded to UTF-8 with the dataset's
// character set, padding trimmed and multiple values joined by `\`. A
// missing element yields "" and a nil error.
func (d *Dataset) String(t Tag) (string, error) {
	vals, err := d.Strings(t)
	if err != nil {
		return "", err
	}
	return strings.Join(vals, `\`), nil
}

// Strings returns the values of t decoded to UTF-8, each with its padding
// trimmed per VR (trailing spaces and NULs; leading spaces except for LT,
// ST, UT and UR). Binary numeric VRs (US, SS, UL, SL, FL, FD, SV, UV, AT) are
// formatted in decimal (AT as gggg,eeee hex). A missing element yields nil
// and a nil error.
func (d *Dataset) Strings(t Tag) ([]string, error) {
	e, ok := d.Get(t)
	if !ok {
		return nil, nil
	}
	if len(e.Raw) == 0 {
		if e.Raw == nil && (e.VR == VRSQ || len(e.Items) > 0) {
			return nil, fmt.Errorf("dicom: element %s is a sequence", t)
		}
		return nil, nil
	}
	info := vrTable[e.VR]
	if info.binary && e.VR != VROB && e.VR != VRUN {
		return d.numbers(e)
	}
	if !info.text && e.VR != VRUN && e.VR != VROB {
		return nil, fmt.Errorf("dicom: element %s has non-text VR %s", t, e.VR)
	}
	var s string
	switch e.VR {
	case VRUI, VRDA, VRTM, VRDT, VRAS, VRCS, VRDS, VRIS, VRAE:
		// restricted to the default repertoire
		s = string(e.Raw)
	default:
		var err error
		s, err = charset.Decode(d.CharacterSet, string(e.VR), e.Raw)
		if err != nil {
			return nil, fmt.Errorf("dicom: decoding %s: %w", t, err)
		}
	}
	var vals []string
	if info.multi {
		vals = strings.Split(s, `\`)
	} else {
		vals = []string{s}
	}
	keepLeading := e.VR == VRLT || e.VR == VRST || e.VR == VRUT || e.VR == VRUR
	for i, v := range vals {
		v = strings.TrimRight(v, " \x00")
		if !keepLeading {
			v = strings.TrimLeft(v, " \x00")
		}
		vals[i] = v
	}
	return vals, nil
}

func (d *Dataset) order() binary.ByteOrder {
	if d.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

func (d *Dataset) numbers(e *Element) ([]string, error) {
	size := e.VR.swapSize()
	if e.VR == VRAT {
		size = 4
	}
	if size == 0 || len(e.Raw)%size != 0 {
		return nil, fmt.Errorf("dicom: element %s: %d bytes is not a whole number of %s values", e.Tag, len(e.Raw), e.VR)
	}
	bo := d.order()
	out := make([]string, 0, len(e.Raw)/size)
	for b := e.Raw; len(b) >= size; b = b[size:] {
		var s string
		switch e.VR {
		case VRUS, VROW:
			s = strconv.FormatUint(uint64(bo.Uint16(b)), 10)
		case VRSS:
			s = strconv.FormatInt(int64(int16(bo.Uint16(b))), 10)
		case VRUL, VROL:
			s = strconv.FormatUint(uint64(bo.Uint32(b)), 10)
		case VRSL:
			s = strconv.FormatInt(int64(int32(bo.Uint32(b))), 10)
		case VRFL, VROF:
			s = strconv.FormatFloat(float64(math.Float32frombits(bo.Uint32(b))), 'g', -1, 32)
		case VRFD, VROD:
			s = strconv.FormatFloat(math.Float64frombits(bo.Uint64(b)), 'g', -1, 64)
		case VRSV:
			s = strconv.FormatInt(int64(bo.Uint64(b)), 10)
		case VRUV, VROV:
			s = strconv.FormatUint(bo.Uint64(b), 10)
		case VRAT:
			s = fmt.Sprintf("%04X,%04X", bo.Uint16(b), bo.Uint16(b[2:]))
		}
		out = append(out, s)
	}
	return out, nil
}

// Uint returns the first value of t as an unsigned integer, for VRs US, UL,
// SS, SL, SV, UV and IS. It reports false if t is missing, empty, negative
// or of another VR.
func (d *Dataset) Uint(t Tag) (uint64, bool) {
	e, ok := d.Get(t)
	if !ok {
		return 0, false
	}
	bo := d.order()
	b := e.Raw
	switch e.VR {
	case VRUS:
		if len(b) >= 2 {
			return uint64(bo.Uint16(b)), true
		}
	case VRSS:
		if len(b) >= 2 {
			if v := int16(bo.Uint16(b)); v >= 0 {
				return uint64(v), true
			}
		}
	case VRUL:
		if len(b) >= 4 {
			return uint64(bo.Uint32(b)), true
		}
	case VRSL:
		if len(b) >= 4 {
			if v := int32(bo.Uint32(b)); v >= 0 {
				return uint64(v), true
			}
		}
	case VRUV:
		if len(b) >= 8 {
			return bo.Uint64(b), true
		}
	case VRSV:
		if len(b) >= 8 {
			if v := int64(bo.Uint64(b)); v >= 0 {
				return uint64(v), true
			}
		}
	case VRIS:
		s := string(b)
		if i := strings.IndexByte(s, '\\'); i >= 0 {
			s = s[:i]
		}
		s = strings.Trim(s, " \x00")
		s = strings.TrimPrefix(s, "+")
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v, true
		}
	}
	return 0, false
}
