package query

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dicom/charset"
	"github.com/relais-health/relais/storage"
)

// charsetVRs are the VRs whose values depend on the character set.
var charsetVRs = map[dicom.VR]bool{"PN": true, "LO": true, "SH": true, "LT": true, "ST": true, "UT": true, "UC": true}

// answerCharset picks the character set of an answer: the one the data was
// stored in when every value is encodable in it, else ISO_IR 192 (UTF-8).
// Data stored with ISO 2022 code extensions (e.g. Japanese "\ISO 2022 IR
// 87") is answered in ISO_IR 192: Relais does not encode ISO 2022.
func answerCharset(stored string, texts []string) string {
	ascii := true
	for _, s := range texts {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				ascii = false
				break
			}
		}
	}
	if stored == "" || strings.Contains(stored, `\`) || strings.Contains(stored, "2022") {
		if ascii {
			return ""
		}
		return "ISO_IR 192"
	}
	for _, s := range texts {
		if _, err := charset.Encode(stored, s); err != nil {
			return "ISO_IR 192"
		}
	}
	return stored
}

// Element is one element of an encoded answer.
type element struct {
	tag   dicom.Tag
	vr    dicom.VR
	value string
	seq   bool
	items []map[dicom.Tag]*element // of a sequence
}

// sequenceElement answers the sequence key k from the row's (or item's)
// attributes a: for a sequence the index keeps, one item per stored item
// that matches k's item keys (C.2.2.2.6), holding the requested item keys,
// or every kept attribute when k has no item key; otherwise an empty
// sequence.
func sequenceElement(k Key, a map[string]string) *element {
	el := &element{tag: k.Tag, vr: dicom.VRSQ, seq: true}
	h := hexTag(k.Tag)
	if _, kept := seqItemTags[h]; !kept {
		return el
	}
	stored, err := storage.DecodeItems(a[h])
	if err != nil {
		return el
	}
	ms, _ := itemMatchers(h, k.Items)
	for _, it := range stored {
		if !matches(ms, it) {
			continue
		}
		item := map[dicom.Tag]*element{}
		if len(k.Items) == 0 {
			for _, ht := range storage.SequenceItemTags[h] {
				v, ok := it[ht]
				if !ok {
					continue
				}
				n, err := strconv.ParseUint(ht, 16, 32)
				if err != nil {
					continue
				}
				t := dicom.Tag(n)
				if _, nested := seqItemTags[ht]; nested {
					item[t] = sequenceElement(Key{Tag: t, VR: dicom.VRSQ}, it)
					continue
				}
				item[t] = &element{tag: t, vr: keyVR(t, ""), value: v}
			}
		} else {
			for _, ik := range k.Items {
				item[ik.Tag] = keyElement(ik, it)
			}
		}
		el.items = append(el.items, item)
	}
	return el
}

// keyVR is the VR an answer uses for a key.
func keyVR(t dicom.Tag, vr dicom.VR) dicom.VR {
	if vr == "" || vr == "UN" {
		vr = dicom.LookupVR(t)
	}
	if vr == "" {
		vr = "UN"
	}
	return vr
}

// keyElement answers key k from attributes a.
func keyElement(k Key, a map[string]string) *element {
	vr := keyVR(k.Tag, k.VR)
	if vr == dicom.VRSQ {
		k.VR = vr
		return sequenceElement(k, a)
	}
	return &element{tag: k.Tag, vr: vr, value: a[hexTag(k.Tag)]}
}

// texts appends the values of els whose encoding depends on the character
// set, sequence items included.
func texts(out []string, els map[dicom.Tag]*element) []string {
	for _, e := range els {
		if charsetVRs[e.vr] && e.value != "" {
			out = append(out, e.value)
		}
		for _, it := range e.items {
			out = texts(out, it)
		}
	}
	return out
}

// writeElements encodes els in ascending tag order, text in character
// set cs.
func writeElements(enc *dicom.Encoder, ts dicom.TransferSyntax, els map[dicom.Tag]*element, cs string) error {
	tags := make([]dicom.Tag, 0, len(els))
	for t := range els {
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	for _, t := range tags {
		e := els[t]
		if e.seq {
			items := make([][]byte, 0, len(e.items))
			for _, it := range e.items {
				var b bytes.Buffer
				if err := writeElements(dicom.NewEncoder(&b, ts), ts, it, cs); err != nil {
					return err
				}
				items = append(items, b.Bytes())
			}
			if err := enc.WriteSequence(t, items, false); err != nil {
				return err
			}
			continue
		}
		switch e.vr {
		case dicom.VRUS, dicom.VRUL, dicom.VRSS, dicom.VRSL:
			var nums []uint64
			for _, f := range splitValues(e.value) {
				if n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil {
					nums = append(nums, uint64(n))
				}
			}
			if err := enc.WriteUints(t, e.vr, nums...); err != nil {
				return err
			}
			continue
		case dicom.VRFL, dicom.VRFD, dicom.VRAT, dicom.VROB, dicom.VROW, dicom.VRUN:
			if err := enc.WriteElement(t, e.vr, nil); err != nil {
				return err
			}
			continue
		}
		val := []byte(e.value)
		if charsetVRs[e.vr] && cs != "" {
			v, err := charset.Encode(cs, e.value)
			if err != nil {
				return fmt.Errorf("query: encode %s in %s: %w", t, cs, err)
			}
			val = v
		}
		if err := enc.WriteElement(t, e.vr, val); err != nil {
			return err
		}
	}
	return nil
}

// EncodeRow encodes the identifier answering q with row, in syntax ts: the
// Query/Retrieve Level, Specific Character Set, Retrieve AE Title (when
// retrieveAE is not empty), every key of q (empty when the row has no
// value; a sequence key with the stored items that match its item keys,
// see sequenceElement) and the unique keys of the level and above, in
// ascending tag order.
func EncodeRow(q *Query, row *Row, ts dicom.TransferSyntax, retrieveAE string) ([]byte, error) {
	els := map[dicom.Tag]*element{}
	for _, k := range q.Keys {
		els[k.Tag] = keyElement(k, row.Attrs)
	}
	unique := []dicom.Tag{dicom.TagStudyInstanceUID, dicom.TagSeriesInstanceUID, dicom.TagSOPInstanceUID}
	if q.Model == PatientRoot || q.Level == Patient {
		unique = append([]dicom.Tag{dicom.TagPatientID}, unique...)
	}
	for i, t := range unique {
		if q.Model == PatientRoot && i > q.Level.rank() || q.Model == StudyRoot && i+1 > q.Level.rank() {
			break
		}
		if _, ok := els[t]; !ok {
			els[t] = &element{tag: t, vr: dicom.LookupVR(t), value: row.Attrs[hexTag(t)]}
		}
	}
	els[dicom.TagQueryRetrieveLevel] = &element{tag: dicom.TagQueryRetrieveLevel, vr: dicom.VRCS, value: string(q.Level)}
	if retrieveAE != "" {
		els[dicom.TagRetrieveAETitle] = &element{tag: dicom.TagRetrieveAETitle, vr: dicom.VRAE, value: retrieveAE}
	}
	cs := answerCharset(row.Charset, texts(nil, els))
	if _, asked := els[dicom.TagSpecificCharacterSet]; asked || cs != "" {
		els[dicom.TagSpecificCharacterSet] = &element{tag: dicom.TagSpecificCharacterSet, vr: dicom.VRCS, value: cs}
	}
	var b bytes.Buffer
	if err := writeElements(dicom.NewEncoder(&b, ts), ts, els, cs); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
