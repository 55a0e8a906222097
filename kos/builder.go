package kos

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/relais-health/relais/dicom"
)

// dataset is a small in-memory data set builder: elements are collected in
// any order and written sorted by tag, with defined lengths, in Explicit VR
// Little Endian; sequence items are datasets themselves.
type dataset struct {
	els []element
	err error // the first value refused by checkValue
}

type element struct {
	tag   dicom.Tag
	vr    dicom.VR
	value []byte
	items []*dataset // VR SQ
}

// str adds a string element even when v is empty (type 2 attributes).
func (d *dataset) str(t dicom.Tag, vr dicom.VR, v string) {
	if err := checkValue(vr, v); err != nil && d.err == nil {
		d.err = fmt.Errorf("%w: %s %s: %v", ErrInvalid, t, vr, err)
	}
	d.els = append(d.els, element{tag: t, vr: vr, value: []byte(v)})
}

// opt adds a string element only when v is not empty (type 3 attributes).
func (d *dataset) opt(t dicom.Tag, vr dicom.VR, v string) {
	if v != "" {
		d.str(t, vr, v)
	}
}

// num adds an IS element.
func (d *dataset) num(t dicom.Tag, n int) {
	d.str(t, "IS", strconv.Itoa(n))
}

// frames adds a multi-valued IS element (frame numbers).
func (d *dataset) frames(t dicom.Tag, fr []int) {
	vs := make([]string, len(fr))
	for i, f := range fr {
		vs[i] = strconv.Itoa(f)
	}
	v := strings.Join(vs, `\`)
	if len(v)%2 == 1 {
		v += " "
	}
	d.els = append(d.els, element{tag: t, vr: "IS", value: []byte(v)})
}

// seq adds a sequence (possibly empty, for type 2 sequences).
func (d *dataset) seq(t dicom.Tag, items ...*dataset) {
	d.els = append(d.els, element{tag: t, vr: dicom.VRSQ, items: items})
}

// encode writes the data set in Explicit VR Little Endian with ascending
// tags and defined lengths at every level.
func (d *dataset) encode() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	els := append([]element(nil), d.els...)
	sort.SliceStable(els, func(i, j int) bool { return els[i].tag < els[j].tag })
	var b bytes.Buffer
	e := dicom.NewEncoder(&b, dicom.TransferSyntax{UID: dicom.ExplicitVRLittleEndian, ExplicitVR: true})
	for i, el := range els {
		if i > 0 && els[i-1].tag == el.tag {
			return nil, fmt.Errorf("kos: duplicate element %s", el.tag)
		}
		if el.vr == dicom.VRSQ {
			items := make([][]byte, 0, len(el.items))
			for _, it := range el.items {
				ib, err := it.encode()
				if err != nil {
					return nil, err
				}
				items = append(items, ib)
			}
			if err := e.WriteSequence(el.tag, items, false); err != nil {
				return nil, fmt.Errorf("kos: %w", err)
			}
			continue
		}
		if err := e.WriteElement(el.tag, el.vr, el.value); err != nil {
			return nil, fmt.Errorf("kos: %w", err)
		}
	}
	return b.Bytes(), nil
}

// maxChars is the maximum value length in characters per VR (PS3.5 6.2)
// for the string VRs the package writes; PN counts per component group.
var maxChars = map[dicom.VR]int{"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "DA": 8, "TM": 16, "UI": 64, "IS": 12}

// checkValue refuses a value the VR does not allow (too long, a
// backslash in a single-valued string, a malformed date, time or code
// string), so that a bad input gives an error rather than a document
// validators reject.
func checkValue(vr dicom.VR, v string) error {
	if v == "" {
		return nil
	}
	switch vr {
	case "UT", "UR", "UI":
		if vr == "UI" && len(v) > 64 {
			return fmt.Errorf("%q longer than 64", v)
		}
		return nil
	}
	if strings.ContainsAny(v, "\\\x00\r\n") {
		return fmt.Errorf("%q contains a backslash or control character", v)
	}
	max := maxChars[vr]
	parts := []string{v}
	if vr == "PN" {
		parts = strings.Split(v, "=")
	}
	for _, p := range parts {
		if max > 0 && utf8.RuneCountInString(p) > max {
			return fmt.Errorf("%q longer than %d characters", v, max)
		}
	}
	switch vr {
	case "DA":
		if len(v) != 8 || strings.Trim(v, "0123456789") != "" {
			return fmt.Errorf("date %q is not YYYYMMDD", v)
		}
	case "TM":
		if len(v) < 2 || strings.Trim(v, "0123456789.") != "" || strings.Count(v, ".") > 1 {
			return fmt.Errorf("time %q is not HHMMSS.FFFFFF", v)
		}
	case "CS":
		if strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _") != "" {
			return fmt.Errorf("code string %q has characters other than A-Z, 0-9, space and _", v)
		}
	}
	return nil
}
