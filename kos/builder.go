package kos

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"

	"github.com/relais-health/relais/dicom"
)

// dataset is a small in-memory data set builder: elements are collected in
// any order and written sorted by tag, with defined lengths, in Explicit VR
// Little Endian; sequence items are datasets themselves.
type dataset struct {
	els []element
}

type element struct {
	tag   dicom.Tag
	vr    dicom.VR
	value []byte
	items []*dataset // VR SQ
}

// str adds a string element even when v is empty (type 2 attributes).
func (d *dataset) str(t dicom.Tag, vr dicom.VR, v string) {
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

// seq adds a sequence (possibly empty, for type 2 sequences).
func (d *dataset) seq(t dicom.Tag, items ...*dataset) {
	d.els = append(d.els, element{tag: t, vr: dicom.VRSQ, items: items})
}

// encode writes the data set in Explicit VR Little Endian with ascending
// tags and defined lengths at every level.
func (d *dataset) encode() ([]byte, error) {
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
