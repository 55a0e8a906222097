package ups

import (
	"strings"
	"time"
)

// attr is one DICOM JSON attribute (PS3.18 F.2).
type attr struct {
	VR    string `json:"vr"`
	Value []any  `json:"Value,omitempty"`
}

type object map[string]attr

func (o object) str(tag, vr, v string) {
	if v == "" {
		o[tag] = attr{VR: vr}
		return
	}
	o[tag] = attr{VR: vr, Value: []any{v}}
}

func (o object) pn(tag, v string) {
	if v == "" {
		o[tag] = attr{VR: "PN"}
		return
	}
	o[tag] = attr{VR: "PN", Value: []any{map[string]string{"Alphabetic": v}}}
}

func (o object) seq(tag string, items ...object) {
	vals := make([]any, len(items))
	for i, it := range items {
		vals[i] = it
	}
	o[tag] = attr{VR: "SQ", Value: vals}
}

func dt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("20060102150405-0700")
}

func code(value, scheme, meaning string) object {
	o := object{}
	o.str("00080100", "SH", value)
	o.str("00080102", "SH", scheme)
	o.str("00080104", "LO", meaning)
	return o
}

// dataset is the UPS of a workitem (PS3.4 CC.2.5 attributes a performer
// needs: SOP Common, Patient, Scheduled Procedure Step, Progress, Input
// Information; the Transaction UID is never returned, PS3.4 CC.2.5.1.3).
func dataset(w Workitem) object {
	o := object{}
	o.str("00080016", "UI", SOPClassPush)
	o.str("00080018", "UI", w.UID)
	o.str("00080005", "CS", "ISO_IR 192")
	o.pn("00100010", w.PatientName)
	o.str("00100020", "LO", w.PatientID)
	o.str("00100030", "DA", w.BirthDate)
	o.str("00100040", "CS", w.Sex)
	o.str("00404005", "DT", dt(w.ScheduledStart))
	o.str("00404011", "DT", dt(w.ExpectedEnd))
	o.str("00404041", "CS", "READY")
	o.str("00741000", "CS", string(w.State))
	o.str("00741200", "CS", w.Priority)
	o.str("00741202", "LO", w.WorklistLabel)
	o.str("00741204", "LO", w.Label)
	o.seq("00404018", code("RADREAD", "99RELAIS", "Lecture d'examen d'imagerie"))
	if w.Performer != "" {
		hp := object{}
		hp.seq("00404009", code(w.Performer, "99RELAIS", w.Performer))
		hp.pn("00404037", w.Performer)
		o.seq("00404034", hp)
	} else {
		o.seq("00404034")
	}
	in := object{}
	in.str("0020000D", "UI", w.StudyUID)
	in.str("00080052", "CS", "STUDY")
	in.str("00081190", "UR", w.RetrieveURL)
	in.str("00080054", "AE", w.RetrieveAE)
	o.seq("00404021", in)
	req := object{}
	req.str("0020000D", "UI", w.StudyUID)
	req.str("00080050", "SH", w.AccessionNumber)
	req.str("00321060", "LO", w.Description)
	o.seq("0040A370", req)
	return o
}

// event is a UPS event report (PS3.18 11.x event channel message).
func event(w Workitem, eventType int, extra object) object {
	o := object{}
	o.str("00000002", "UI", SOPClassPush)
	o.str("00001000", "UI", w.UID)
	o["00001002"] = attr{VR: "US", Value: []any{eventType}}
	o.str("00741000", "CS", string(w.State))
	o.str("00404041", "CS", "READY")
	for k, v := range extra {
		o[k] = v
	}
	return o
}

// keyword → tag of the search keys the service matches.
var searchKeys = map[string]string{
	"PatientName":                         "00100010",
	"PatientID":                           "00100020",
	"ProcedureStepState":                  "00741000",
	"ScheduledProcedureStepPriority":      "00741200",
	"ScheduledProcedureStepStartDateTime": "00404005",
	"WorklistLabel":                       "00741202",
	"ProcedureStepLabel":                  "00741204",
	"SOPInstanceUID":                      "00080018",
}

func tagOf(key string) (string, bool) {
	if t, ok := searchKeys[key]; ok {
		return t, true
	}
	k := strings.ToUpper(key)
	for _, t := range searchKeys {
		if t == k {
			return t, true
		}
	}
	return "", false
}
