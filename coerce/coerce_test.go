package coerce

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

const validINS = "184127645108946" // 1841276451089 mod 97 = 51, key 46

func TestValidINS(t *testing.T) {
	for v, want := range map[string]bool{
		validINS:          true,
		"184127645108947": false,
		"18412764510894":  false,
		"1841276451089AB": false,
		"":                false,
	} {
		if got := ValidINS(v); got != want {
			t.Errorf("ValidINS(%q) = %v", v, got)
		}
	}
	// Corsica: 2A counts as 19.
	n := uint64(1840519123456)
	key := 97 - n%97
	v := "18405" + "2A" + "123456" + twoDigits(key)
	if !ValidINS(v) {
		t.Errorf("ValidINS(%q) = false", v)
	}
}

func twoDigits(k uint64) string { return string([]byte{byte('0' + k/10), byte('0' + k%10)}) }

func TestValidate(t *testing.T) {
	cases := []struct {
		spec Spec
		msg  string // "" valid
	}{
		{Spec{Set: map[string]string{"PatientID": "X", "00080080": "CH", "(0008,1030)": "{StudyDescription} bis"}}, ""},
		{Spec{IfMissing: map[string]string{"AccessionNumber": "{StudyID}"}, Prefix: map[string]string{"PatientID": "S-"},
			Delete: []string{"OtherPatientNames"}, Replace: map[string]string{"ReferringPhysicianName": ""},
			IssuerOfPatientID: "SITEA", INS: &INSSpec{Value: "{PatientID}", Kind: "test"}}, ""},
		{Spec{Set: map[string]string{"PatientIDD": "X"}}, `set: "PatientIDD": unknown attribute`},
		{Spec{Set: map[string]string{"PatientID": "{Nope}"}}, `set: "PatientID": template "{Nope}": unknown attribute`},
		{Spec{Set: map[string]string{"PatientID": "{PatientName"}}, `unterminated`},
		{Spec{Set: map[string]string{"PatientID": "a}"}}, `unmatched`},
		{Spec{Set: map[string]string{"SpecificCharacterSet": "ISO_IR 192"}}, `"SpecificCharacterSet": Specific Character Set`},
		{Spec{Set: map[string]string{"00020010": "1.2"}}, `file meta`},
		{Spec{Set: map[string]string{"00091010": "x"}}, `private`},
		{Spec{Prefix: map[string]string{"Rows": "1"}}, `prefix: "Rows"`},
		{Spec{Set: map[string]string{"OtherPatientIDsSequence": "1"}}, `"OtherPatientIDsSequence"`},
		{Spec{Set: map[string]string{"PatientID": "1"}, Delete: []string{"00100020"}}, `delete: "00100020": (0010,0020) is also in set ("PatientID")`},
		{Spec{Delete: []string{"Bogus"}}, `delete: "Bogus"`},
		{Spec{Set: map[string]string{"PatientID": strings.Repeat("1", 65)}}, `set: "PatientID": dicom: edit: PatientID (0010,0020): value`},
		{Spec{Set: map[string]string{"Modality": "mr"}}, `code string`},
		{Spec{IfMissing: map[string]string{"Rows": "x"}}, `not a valid US`},
		{Spec{IssuerOfPatientID: "X", Set: map[string]string{"IssuerOfPatientID": "Y"}}, `issuer_of_patient_id`},
		{Spec{INS: &INSSpec{}}, `ins.value`},
		{Spec{INS: &INSSpec{Value: "{PatientID}", Kind: "prod"}}, `ins.kind`},
	}
	for _, c := range cases {
		err := c.spec.Validate()
		switch {
		case c.msg == "" && err != nil:
			t.Errorf("%+v: %v", c.spec, err)
		case c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg) || !errors.Is(err, ErrSpec)):
			t.Errorf("%+v: err %v, want %q", c.spec, err, c.msg)
		}
	}
}

func TestFill(t *testing.T) {
	attrs := AttrsFromMap(map[string]string{"00200010": "S42", "00100020": "PID1"})
	for tpl, want := range map[string]string{
		"{StudyID}":                "S42",
		"ACC-{StudyID}-{00100020}": "ACC-S42-PID1",
		"{(0010,0020)}{0010,0020}": "PID1PID1",
		"plain":                    "plain",
		"{AccessionNumber}":        "",
		"é{PatientID}":             "éPID1",
	} {
		got, _, err := Fill(tpl, attrs)
		if err != nil || got != want {
			t.Errorf("Fill(%q) = %q, %v; want %q", tpl, got, err, want)
		}
	}
}

func TestCompile(t *testing.T) {
	spec := Spec{
		Set:               map[string]string{"InstitutionName": "CH SUD"},
		Replace:           map[string]string{"ReferringPhysicianName": "", "StudyDescription": "{StudyDescription} (SITEA)"},
		Delete:            []string{"PatientBirthDate"},
		Prefix:            map[string]string{"PatientID": "SITEA-"},
		IfMissing:         map[string]string{"AccessionNumber": "{StudyID}", "StationName": "{Nope2}"},
		IssuerOfPatientID: "SITEA",
		INS:               &INSSpec{Value: "{00091001}"},
	}
	// {Nope2} is not a keyword: Validate refuses it.
	if err := spec.Validate(); err == nil {
		t.Fatal("unknown placeholder accepted")
	}
	spec.IfMissing["StationName"] = "{Manufacturer}" // absent: op skipped
	spec.INS.Value = "{OtherPatientIDs}"
	attrs := AttrsFromMap(map[string]string{"00100020": "PID1", "00200010": "S42", "00081030": "CT HEAD", "00101000": validINS})
	ops, err := spec.Compile(attrs)
	if err != nil {
		t.Fatal(err)
	}
	want := []dicom.EditOp{
		dicom.SetOp(dicom.TagInstitutionName, "CH SUD"),
		dicom.SetIfPresentOp(dicom.TagReferringPhysicianName, ""),
		dicom.SetIfPresentOp(dicom.TagStudyDescription, "CT HEAD (SITEA)"),
		dicom.PrefixOp(dicom.TagPatientID, "SITEA-"),
		dicom.SetIfMissingOp(dicom.TagAccessionNumber, "S42"),
		dicom.DeleteOp(dicom.TagPatientBirthDate),
		dicom.SetOp(dicom.TagIssuerOfPatientID, "SITEA"),
		{Kind: dicom.EditAppendItem, Tag: dicom.TagOtherPatientIDsSequence, SkipIfPresent: true, Item: []dicom.EditOp{
			dicom.SetOp(dicom.TagPatientID, "SITEA-PID1"), dicom.SetOp(dicom.TagIssuerOfPatientID, "SITEA"), dicom.SetOp(tagTypeOfPatientID, "TEXT")}},
		INSItem(validINS, "ASIP-SANTE-INS-NIR", OIDINSNIR),
	}
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("ops:\n%+v\nwant\n%+v", ops, want)
	}
	// Required INS missing or malformed fails; not required is skipped.
	spec.INS.Required = true
	if _, err := spec.Compile(AttrsFromMap(map[string]string{"00101000": "123"})); err == nil || !strings.Contains(err.Error(), "not a well-formed INS") {
		t.Errorf("malformed INS: %v", err)
	}
	if _, err := spec.Compile(AttrsFromMap(nil)); err == nil || !strings.Contains(err.Error(), "expands to nothing") {
		t.Errorf("missing INS: %v", err)
	}
	spec.INS.Required = false
	ops, err = spec.Compile(AttrsFromMap(map[string]string{"00101000": "123"}))
	if err != nil || len(ops) == 0 || ops[len(ops)-1].Tag == dicom.TagOtherPatientIDsSequence {
		t.Errorf("optional malformed INS: %v %+v", err, ops)
	}
}

// TestCompileEdit runs compiled ops through dicom.Edit on a generated CT.
func TestCompileEdit(t *testing.T) {
	for _, uid := range []string{dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian, dicom.ExplicitVRBigEndian} {
		ts, _ := dicom.LookupTransferSyntax(uid)
		c := &testdicom.CT{PatientName: "Dupont^Jean", PatientID: "PID1", StudyUID: "1.2.3", SeriesUID: "1.2.3.4", SOPUID: "1.2.3.4.5",
			StudyDescription: "CT HEAD", Charset: "ISO_IR 100", Instance: 1, TransferSyntax: uid, Rows: 8, Columns: 8,
			OtherPatientIDs: []testdicom.OtherPatientID{{ID: validINS, Issuer: "X"}}}
		in, err := c.Dataset()
		if err != nil {
			t.Fatal(err)
		}
		scan, err := dicom.Scan(bytes.NewReader(in), ts, dicom.DefaultLimits(), dicom.WantAll)
		if err != nil {
			t.Fatal(err)
		}
		attrs := func(tag dicom.Tag) (string, bool) {
			if _, ok := scan.Dataset.Get(tag); !ok {
				return "", false
			}
			s, err := scan.Dataset.String(tag)
			return s, err == nil
		}
		spec := Spec{Prefix: map[string]string{"PatientID": "SITEA-"}, IfMissing: map[string]string{"AccessionNumber": "ACC-{SeriesNumber}"},
			Set: map[string]string{"PatientName": "Müller^Jürgen"}, IssuerOfPatientID: "SITEA", INS: &INSSpec{Value: validINS, Kind: "demo", Required: true}}
		ops, err := spec.Compile(attrs)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		res, err := dicom.Edit(&out, bytes.NewReader(in), ts, dicom.DefaultLimits(), ops)
		if err != nil {
			t.Fatalf("%s: %v", ts.Name, err)
		}
		got, err := dicom.Scan(bytes.NewReader(out.Bytes()), ts, dicom.DefaultLimits(), dicom.WantAll)
		if err != nil {
			t.Fatal(err)
		}
		ds := got.Dataset
		for tag, want := range map[dicom.Tag]string{dicom.TagPatientID: "SITEA-PID1", dicom.TagAccessionNumber: "ACC-1",
			dicom.TagPatientName: "Müller^Jürgen", dicom.TagIssuerOfPatientID: "SITEA"} {
			if v, _ := ds.String(tag); v != want {
				t.Errorf("%s: %s = %q, want %q", ts.Name, tag, v, want)
			}
		}
		seq, _ := ds.Get(dicom.TagOtherPatientIDsSequence)
		if len(seq.Items) != 3 {
			t.Fatalf("%s: %d Other Patient IDs items", ts.Name, len(seq.Items))
		}
		if v, _ := seq.Items[1].String(dicom.TagPatientID); v != "SITEA-PID1" {
			t.Errorf("local ID item %q", v)
		}
		q, _ := seq.Items[2].Get(tagIssuerQualifiersSeq)
		if q == nil || len(q.Items) != 1 {
			t.Fatalf("no qualifiers")
		}
		if v, _ := q.Items[0].String(tagUniversalEntityID); v != OIDINSNIRDemo {
			t.Errorf("INS OID %q", v)
		}
		if v, _ := seq.Items[2].String(dicom.TagIssuerOfPatientID); v != "ASIP-SANTE-INS-NIR-DEMO" {
			t.Errorf("INS issuer %q", v)
		}
		if !res.Changed || len(res.Changes) != 6 {
			t.Errorf("changes %+v", res.Changes)
		}
	}
}

func FuzzCompile(f *testing.F) {
	f.Add("PatientID", "SITEA-{PatientID}", "{StudyID}")
	f.Add("00080050", "{(0020,0010)}", "x}")
	f.Add("AccessionNumber", "{", "{{PatientID}}")
	attrs := AttrsFromMap(map[string]string{"00100020": "PID1", "00200010": "S{1}"})
	f.Fuzz(func(t *testing.T, key, tpl, ins string) {
		s := Spec{Set: map[string]string{key: tpl}, Prefix: map[string]string{"PatientID": tpl}, IfMissing: map[string]string{"AccessionNumber": ins},
			INS: &INSSpec{Value: ins}}
		verr := s.Validate()
		ops, err := s.Compile(attrs)
		if (verr == nil) != (err == nil) {
			t.Fatalf("Validate %v but Compile %v", verr, err)
		}
		if err == nil {
			// the ops are well-formed for dicom.Edit (values may still be refused)
			var out bytes.Buffer
			c := &testdicom.CT{PatientID: "PID1", StudyUID: "1.2", SeriesUID: "1.2.3", SOPUID: "1.2.3.4", Charset: "ISO_IR 192", Rows: 2, Columns: 2}
			in, _ := c.Dataset()
			ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
			if _, err := dicom.Edit(&out, bytes.NewReader(in), ts, dicom.DefaultLimits(), ops); err != nil && !errors.Is(err, dicom.ErrEdit) {
				t.Fatalf("Edit: %v", err)
			}
		}
	})
}
