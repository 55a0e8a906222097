package query

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dicom/charset"
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
}

// EncodeRow encodes the identifier answering q with row, in syntax ts: the
// Query/Retrieve Level, Specific Character Set, Retrieve AE Title (when
// retrieveAE is not empty), every key of q (empty when the row has no
// value; sequence keys as empty sequences) and the unique keys of the level
// and above, in ascending tag order.
func EncodeRow(q *Query, row *Row, ts dicom.TransferSyntax, retrieveAE string) ([]byte, error) {
	els := map[dicom.Tag]*element{}
	for _, k := range q.Keys {
		vr := k.VR
		if vr == "" || vr == "UN" {
			vr = dicom.LookupVR(k.Tag)
		}
		if vr == "" {
			vr = "UN"
		}
		if vr == dicom.VRSQ {
			els[k.Tag] = &element{tag: k.Tag, vr: vr, seq: true}
			continue
		}
		els[k.Tag] = &element{tag: k.Tag, vr: vr, value: row.Attrs[hexTag(k.Tag)]}
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
	var texts []string
	for _, e := range els {
		if charsetVRs[e.vr] && e.value != "" {
			texts = append(texts, e.value)
		}
	}
	cs := answerCharset(row.Charset, texts)
	if _, asked := els[dicom.TagSpecificCharacterSet]; asked || cs != "" {
		els[dicom.TagSpecificCharacterSet] = &element{tag: dicom.TagSpecificCharacterSet, vr: dicom.VRCS, value: cs}
	}
	tags := make([]dicom.Tag, 0, len(els))
	for t := range els {
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	var b bytes.Buffer
	enc := dicom.NewEncoder(&b, ts)
	for _, t := range tags {
		e := els[t]
		if e.seq {
			if err := enc.WriteHeader(t, dicom.VRSQ, 0); err != nil {
				return nil, err
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
				return nil, err
			}
			continue
		case dicom.VRFL, dicom.VRFD, dicom.VRAT, dicom.VROB, dicom.VROW, dicom.VRUN:
			if err := enc.WriteElement(t, e.vr, nil); err != nil {
				return nil, err
			}
			continue
		}
		val := []byte(e.value)
		if charsetVRs[e.vr] && cs != "" {
			v, err := charset.Encode(cs, e.value)
			if err != nil {
				return nil, fmt.Errorf("query: encode %s in %s: %w", t, cs, err)
			}
			val = v
		}
		if err := enc.WriteElement(t, e.vr, val); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}
