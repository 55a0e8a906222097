package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

// TestFindscuSequenceMatching: dcmtk's findscu sends sequence keys (PS3.4
// C.2.2.2.6) to `relais serve` holding instances with Other Patient IDs
// and Procedure Code sequences: an item's keys match one stored item, not
// values of different items, and the answers carry the matching items.
func TestFindscuSequenceMatching(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, c := range []*testdicom.CT{
		{PatientName: "SEQ^A", PatientID: "SEQA", AccessionNumber: "SQA",
			OtherPatientIDs: []testdicom.OtherPatientID{{ID: "X1", Issuer: "HOSP-A"}, {ID: "Y2", Issuer: "HOSP-B", Type: "TEXT"}},
			ProcedureCodes:  []testdicom.Code{{Value: "CTHEAD", Scheme: "99LOCAL", Meaning: "CT Head"}}},
		{PatientName: "SEQ^B", PatientID: "SEQB", AccessionNumber: "SQB",
			OtherPatientIDs: []testdicom.OtherPatientID{{ID: "X1", Issuer: "HOSP-B"}},
			ProcedureCodes:  []testdicom.Code{{Value: "CTCHEST", Scheme: "99LOCAL", Meaning: "CT Chest"}, {Value: "C9", Scheme: "LN", Meaning: "Other"}}},
		{PatientName: "SEQ^C", PatientID: "SEQC", AccessionNumber: "SQC"},
	} {
		c.StudyUID, c.SeriesUID, c.SOPUID, c.Instance = testdicom.UID(), testdicom.UID(), testdicom.UID(), 1
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("s%d.dcm", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	s := startServer(t, "", "")
	storeInto(t, "RELAIS", s.dicomPort, files)

	const opids = "OtherPatientIDsSequence[0]."
	const codes = "ProcedureCodeSequence[0]."
	cases := []struct {
		name  string
		model string
		keys  []string
		want  []string // PatientID of the answers
		seq   string   // keyword of the sequence whose items are checked
		items map[string][]string
	}{
		{"id and issuer of one item", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID", opids + "PatientID=X1", opids + "IssuerOfPatientID=HOSP-A"},
			[]string{"SEQA"}, "OtherPatientIDsSequence", map[string][]string{"SEQA": {"X1/HOSP-A"}}},
		{"same id, other issuer", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID", opids + "PatientID=X1", opids + "IssuerOfPatientID=HOSP-B"},
			[]string{"SEQB"}, "OtherPatientIDsSequence", map[string][]string{"SEQB": {"X1/HOSP-B"}}},
		{"id of one item, issuer of another: no match", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID", opids + "PatientID=Y2", opids + "IssuerOfPatientID=HOSP-A"},
			nil, "", nil},
		{"wildcard on an item key, items returned", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID", opids + "PatientID=X*", opids + "IssuerOfPatientID"},
			[]string{"SEQA", "SEQB"}, "OtherPatientIDsSequence", map[string][]string{"SEQA": {"X1/HOSP-A"}, "SEQB": {"X1/HOSP-B"}}},
		{"return key only: every item", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID=SEQA", opids + "PatientID", opids + "IssuerOfPatientID"},
			[]string{"SEQA"}, "OtherPatientIDsSequence", map[string][]string{"SEQA": {"X1/HOSP-A", "Y2/HOSP-B"}}},
		{"procedure code", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID", codes + "CodeValue=C9", codes + "CodingSchemeDesignator=LN", codes + "CodeMeaning"},
			[]string{"SEQB"}, "ProcedureCodeSequence", map[string][]string{"SEQB": {"C9/LN"}}},
		{"procedure code, wrong scheme", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID", codes + "CodeValue=C9", codes + "CodingSchemeDesignator=99LOCAL"},
			nil, "", nil},
		{"patient level", "-P", []string{"QueryRetrieveLevel=PATIENT", "PatientID", opids + "PatientID=Y2", opids + "TypeOfPatientID"},
			[]string{"SEQA"}, "OtherPatientIDsSequence", map[string][]string{"SEQA": {"Y2/"}}},
		{"series level", "-S", []string{"QueryRetrieveLevel=SERIES", "PatientID", "SeriesInstanceUID", codes + "CodeValue=CT*"},
			[]string{"SEQA", "SEQB"}, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dss := runFindscu(t, s, tc.model, tc.keys...)
			if got := column(t, dss, "PatientID"); !equalStrings(got, tc.want) {
				t.Fatalf("PatientID = %q, want %q", got, tc.want)
			}
			if tc.seq == "" {
				return
			}
			tag, _ := dicom.TagByKeyword(tc.seq)
			for _, ds := range dss {
				pid := str(t, ds, "PatientID")
				el, ok := ds.Get(tag)
				if !ok {
					t.Fatalf("%s: answer lacks %s", pid, tc.seq)
				}
				var got []string
				for _, it := range el.Items {
					a, b := dicom.TagPatientID, dicom.TagIssuerOfPatientID
					if tc.seq == "ProcedureCodeSequence" {
						a, b = dicom.NewTag(0x0008, 0x0100), dicom.NewTag(0x0008, 0x0102)
					}
					va, _ := it.String(a)
					vb, _ := it.String(b)
					got = append(got, va+"/"+vb)
				}
				if !equalStrings(got, tc.items[pid]) {
					t.Errorf("%s: %s items %q, want %q", pid, tc.seq, got, tc.items[pid])
				}
			}
		})
	}
}
