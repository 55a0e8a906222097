package findscu

import (
	"bytes"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/query"
)

func TestParseKey(t *testing.T) {
	cases := []struct {
		in   string
		tag  dicom.Tag
		val  string
		fail bool
	}{
		{"PatientID=123", dicom.TagPatientID, "123", false},
		{"PatientName", dicom.TagPatientName, "", false},
		{"(0010,0020)=X", dicom.TagPatientID, "X", false},
		{"0010,0020", dicom.TagPatientID, "", false},
		{"00100020=a=b", dicom.TagPatientID, "a=b", false},
		{"StudyDate=20260101-", dicom.TagStudyDate, "20260101-", false},
		{"NoSuchKeyword=1", 0, "", true},
		{"(0010,00ZZ)", 0, "", true},
	}
	for _, tc := range cases {
		k, err := ParseKey(tc.in)
		if (err != nil) != tc.fail {
			t.Errorf("%q: error %v", tc.in, err)
			continue
		}
		if !tc.fail && (k.Tag != tc.tag || k.Value != tc.val) {
			t.Errorf("%q: %v %q", tc.in, k.Tag, k.Value)
		}
	}
}

func TestIdentifier(t *testing.T) {
	ts, _ := dicom.LookupTransferSyntax(dicom.ImplicitVRLittleEndian)
	id, err := Identifier(query.Study, []KeyValue{
		{Tag: dicom.TagStudyInstanceUID}, {Tag: dicom.TagPatientName, Value: "Müller*"}, {Tag: dicom.TagPatientName},
		{Tag: dicom.TagOtherPatientIDsSequence},
	}, ts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dicom.Scan(bytes.NewReader(id), ts, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatalf("identifier does not scan: %v", err)
	}
	ds := res.Dataset
	if cs := ds.CharacterSet; len(cs) != 1 || cs[0] != "ISO_IR 192" {
		t.Errorf("charset %v", cs)
	}
	if v, _ := ds.String(dicom.TagPatientName); v != "Müller*" {
		t.Errorf("PatientName %q (a return key must not undo the matching key)", v)
	}
	if v, _ := ds.String(dicom.TagQueryRetrieveLevel); v != "STUDY" {
		t.Errorf("level %q", v)
	}
	for _, tag := range []dicom.Tag{dicom.TagStudyInstanceUID, dicom.TagOtherPatientIDsSequence} {
		if _, ok := ds.Get(tag); !ok {
			t.Errorf("lacks %s", tag)
		}
	}
}
