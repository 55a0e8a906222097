package query

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/memindex"
)

// populationSequences are the kept sequences of patient p's study s in
// population: Other Patient IDs (an X identifier from HOSP-A, a Y one from
// HOSP-B) for three patients in four, Procedure Codes (one 99LOCAL code,
// plus an LN C9 for even studies) for two studies in three.
func populationSequences(p, s int) map[string]string {
	out := map[string]string{}
	if p%4 != 0 {
		out["00101002"], _ = storage.EncodeItems([]map[string]string{
			{"00100020": fmt.Sprintf("X%03d", p), "00100021": "HOSP-A"},
			{"00100020": fmt.Sprintf("Y%03d", p%7), "00100021": "HOSP-B", "00100022": "TEXT"},
		})
	}
	if s%3 != 0 {
		codes := []map[string]string{{"00080100": fmt.Sprintf("C%d", s%5), "00080102": "99LOCAL", "00080104": "Exam " + fmt.Sprint(s%5)}}
		if s%2 == 0 {
			codes = append(codes, map[string]string{"00080100": "C9", "00080102": "LN"})
		}
		out["00081032"], _ = storage.EncodeItems(codes)
	}
	return out
}

// seq builds a sequence key whose one item holds the keys kv (keyword,
// value pairs).
func seq(kw string, kv ...string) Key {
	tag, ok := dicom.TagByKeyword(kw)
	if !ok {
		panic(kw)
	}
	return Key{Tag: tag, VR: dicom.VRSQ, Items: keys(kv...)}
}

// oracleItem is an independent statement of C.2.2.2.6 for flat items:
// the item has every keyed attribute, equal to the key or, for a key with
// '*' or '?', matching it as a regexp.
func oracleItem(item map[string]string, ks []Key) bool {
	for _, k := range ks {
		if k.Value == "" || k.Value == "*" {
			continue
		}
		v, ok := item[hexTag(k.Tag)]
		if !ok {
			return false
		}
		re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(k.Value)) + "$"
		if !regexp.MustCompile(re).MatchString(v) {
			return false
		}
	}
	return true
}

// oracleSeq reports whether attrs' sequence k has an item matching all of
// k's item keys.
func oracleSeq(attrs map[string]string, k Key) bool {
	items, err := storage.DecodeItems(attrs[hexTag(k.Tag)])
	if err != nil {
		panic(err)
	}
	for _, it := range items {
		if oracleItem(it, k.Items) {
			return true
		}
	}
	return false
}

func TestSequenceMatching(t *testing.T) {
	opids, _ := storage.EncodeItems([]map[string]string{
		{"00100020": "X1", "00100021": "HOSP-A"},
		{"00100020": "Y2", "00100021": "HOSP-B"},
	})
	nested, _ := storage.EncodeItems([]map[string]string{
		{"00100020": "Q1", "00100024": func() string {
			v, _ := storage.EncodeItems([]map[string]string{{"00400032": "1.2.3.4", "00400033": "ISO"}})
			return v
		}()},
	})
	cases := []struct {
		name        string
		attrs       string
		key         Key
		match       bool
		unsupported bool
	}{
		{"id and issuer of one item", opids, seq("OtherPatientIDsSequence", "PatientID", "X1", "IssuerOfPatientID", "HOSP-A"), true, false},
		{"id of one item, issuer of the other", opids, seq("OtherPatientIDsSequence", "PatientID", "X1", "IssuerOfPatientID", "HOSP-B"), false, false},
		{"second item", opids, seq("OtherPatientIDsSequence", "PatientID", "Y2"), true, false},
		{"wildcard in an item", opids, seq("OtherPatientIDsSequence", "PatientID", "Y*", "IssuerOfPatientID", "HOSP-?"), true, false},
		{"no such identifier", opids, seq("OtherPatientIDsSequence", "PatientID", "Z9"), false, false},
		{"universal item keys match anything", "", seq("OtherPatientIDsSequence", "PatientID", "", "IssuerOfPatientID", "*"), true, false},
		{"a value never matches a missing sequence", "", seq("OtherPatientIDsSequence", "PatientID", "X1"), false, false},
		{"item key not kept: ignored, FF01", opids, seq("OtherPatientIDsSequence", "PatientID", "X1", "PatientBirthDate", "19700101"), true, true},
		{"nested sequence", nested, Key{Tag: dicom.TagOtherPatientIDsSequence, VR: dicom.VRSQ, Items: []Key{
			{Tag: dicom.NewTag(0x0010, 0x0024), VR: dicom.VRSQ, Items: keys("UniversalEntityID", "1.2.3.4")}}}, true, false},
		{"nested sequence no match", nested, Key{Tag: dicom.TagOtherPatientIDsSequence, VR: dicom.VRSQ, Items: []Key{
			{Tag: dicom.NewTag(0x0010, 0x0024), VR: dicom.VRSQ, Items: keys("UniversalEntityID", "1.2.3.5")}}}, false, false},
		{"sequence not kept", opids, seq("ReferencedSeriesSequence", "SeriesInstanceUID", "1.2"), true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := &Query{Model: StudyRoot, Level: Study, Keys: []Key{tc.key}}
			attrs := map[string]string{}
			if tc.attrs != "" {
				attrs["00101002"] = tc.attrs
			}
			ms, u := compile(q)
			if got := matches(ms, attrs); got != tc.match {
				t.Errorf("match %v, want %v (matchers %v)", got, tc.match, ms)
			}
			if u != tc.unsupported || q.Unsupported() != tc.unsupported {
				t.Errorf("unsupported %v, want %v", u, tc.unsupported)
			}
		})
	}
}

// TestSequenceAgainstOracle runs sequence keys (alone and with other keys,
// at every level) through the engine and checks its answers against the
// naive scan and against an independent item-by-item oracle.
func TestSequenceAgainstOracle(t *testing.T) {
	ix := memindex.New()
	population(t, ix, 120, 7)
	cases := []struct {
		level Level
		seq   Key
		kv    []string
		none  bool // the answer must be empty
	}{
		{Study, seq("OtherPatientIDsSequence", "PatientID", "Y003", "IssuerOfPatientID", "HOSP-B"), nil, false},
		{Study, seq("OtherPatientIDsSequence", "PatientID", "X001", "IssuerOfPatientID", "HOSP-B"), nil, true},
		{Study, seq("OtherPatientIDsSequence", "PatientID", "X0*", "IssuerOfPatientID", "HOSP-A"), []string{"PatientName", "S*"}, false},
		{Study, seq("OtherPatientIDsSequence", "TypeOfPatientID", "TEXT"), []string{"StudyDate", "20250101-20250630"}, false},
		{Study, seq("ProcedureCodeSequence", "CodeValue", "C9", "CodingSchemeDesignator", "LN"), nil, false},
		{Study, seq("ProcedureCodeSequence", "CodeValue", "C9", "CodingSchemeDesignator", "99LOCAL"), nil, true},
		{Study, seq("ProcedureCodeSequence", "CodeValue", "C?", "CodeMeaning", "Exam 2"), []string{"ModalitiesInStudy", "CT"}, false},
		{Series, seq("ProcedureCodeSequence", "CodeValue", "C3"), []string{"Modality", "MR"}, false},
		{Image, seq("OtherPatientIDsSequence", "PatientID", "Y006"), []string{"PatientID", "PID013"}, false},
		{Patient, seq("OtherPatientIDsSequence", "PatientID", "Y002", "IssuerOfPatientID", "HOSP-B"), nil, false},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s %s %v", tc.level, tc.seq.Items, tc.kv)
		rest := &Query{Model: PatientRoot, Level: tc.level, Keys: keys(tc.kv...)}
		q := &Query{Model: PatientRoot, Level: tc.level, Keys: sortKeys(append(keys(tc.kv...), tc.seq))}
		got, want := run(t, ix, q), naive(t, ix, q)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: engine %v\nnaive %v", name, got, want)
		}
		// The oracle: the other keys by the engine's matchers, the
		// sequence item by item.
		var oracle []string
		restMs, _ := compile(rest)
		for _, r := range rowsOf(t, ix, tc.level) {
			if matches(restMs, r.Attrs) && oracleSeq(r.Attrs, tc.seq) {
				oracle = append(oracle, idOf(r))
			}
		}
		if !reflect.DeepEqual(got, sorted(oracle)) {
			t.Errorf("%s: engine %v\noracle %v", name, got, oracle)
		}
		if tc.none != (len(got) == 0) {
			t.Errorf("%s: %d rows, want none: %v", name, len(got), tc.none)
		}
	}
}

// rowsOf returns every row of a level, unfiltered.
func rowsOf(t *testing.T, ix storage.Index, l Level) []*Row {
	t.Helper()
	var rows []*Row
	q := &Query{Model: PatientRoot, Level: l}
	if err := (&Engine{Index: ix}).Find(t.Context(), q, func(r *Row) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rows
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestSequenceAnswer: the answer carries the matching items only, with the
// requested item keys (or every kept attribute for an empty item), one
// item per stored item, in tag order, text in the answer's character set.
func TestSequenceAnswer(t *testing.T) {
	ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
	opids, _ := storage.EncodeItems([]map[string]string{
		{"00100020": "X1", "00100021": "HÔPITAL-A", "00100022": "TEXT"},
		{"00100020": "Y2", "00100021": "HOSP-B"},
		{"00100020": "X3", "00100021": "HOSP-B"},
	})
	row := &Row{Level: Study, Charset: "ISO_IR 100", Attrs: map[string]string{"00100020": "P1", "0020000D": "1.2.3", "00101002": opids}}
	type item map[string]string
	cases := []struct {
		name string
		key  Key
		want []item
	}{
		{"empty item: all items, all attributes", Key{Tag: dicom.TagOtherPatientIDsSequence, VR: dicom.VRSQ},
			[]item{{"00100020": "X1", "00100021": "HÔPITAL-A", "00100022": "TEXT"}, {"00100020": "Y2", "00100021": "HOSP-B"}, {"00100020": "X3", "00100021": "HOSP-B"}}},
		{"return keys only", seq("OtherPatientIDsSequence", "PatientID", ""),
			[]item{{"00100020": "X1"}, {"00100020": "Y2"}, {"00100020": "X3"}}},
		{"matching items only", seq("OtherPatientIDsSequence", "PatientID", "X*", "IssuerOfPatientID", ""),
			[]item{{"00100020": "X1", "00100021": "HÔPITAL-A"}, {"00100020": "X3", "00100021": "HOSP-B"}}},
		{"per-item association", seq("OtherPatientIDsSequence", "PatientID", "X*", "IssuerOfPatientID", "HOSP-B", "TypeOfPatientID", ""),
			[]item{{"00100020": "X3", "00100021": "HOSP-B", "00100022": ""}}},
		{"sequence not kept: empty", seq("ReferencedSeriesSequence", "SeriesInstanceUID", ""), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := &Query{Model: StudyRoot, Level: Study, Keys: []Key{tc.key}}
			out, err := EncodeRow(q, row, ts, "")
			if err != nil {
				t.Fatal(err)
			}
			sr, err := dicom.Scan(bytes.NewReader(out), ts, dicom.DefaultLimits(), dicom.WantAll)
			if err != nil {
				t.Fatalf("answer does not scan: %v", err)
			}
			if cs := strings.Join(sr.Dataset.CharacterSet, `\`); cs != "ISO_IR 100" {
				t.Errorf("charset %q", cs)
			}
			el, ok := sr.Dataset.Get(tc.key.Tag)
			if !ok || el.VR != dicom.VRSQ {
				t.Fatalf("answer lacks the sequence: %+v", el)
			}
			var got []item
			for _, it := range el.Items {
				g := item{}
				var prev dicom.Tag
				for _, tag := range sortedTags(it) {
					if tag < prev {
						t.Errorf("item not in tag order")
					}
					prev = tag
					v, err := it.String(tag)
					if err != nil {
						t.Fatal(err)
					}
					g[hexTag(tag)] = v
				}
				got = append(got, g)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("items %v, want %v", got, tc.want)
			}
		})
	}
	// The raw bytes of a Latin-1 item value are in ISO_IR 100.
	q := &Query{Model: StudyRoot, Level: Study, Keys: []Key{seq("OtherPatientIDsSequence", "IssuerOfPatientID", "H*A")}}
	out, err := EncodeRow(q, row, ts, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("H\xd4PITAL-A")) {
		t.Errorf("item value not encoded in ISO_IR 100: % x", out)
	}
}

// TestParseSequenceKey: a sequence key from a real identifier, with a
// nested sequence, is parsed and matched.
func TestParseSequenceKey(t *testing.T) {
	ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
	var nestedItem bytes.Buffer
	dicom.NewEncoder(&nestedItem, ts).WriteString(dicom.NewTag(0x0040, 0x0032), "UT", "1.2.3.4")
	var item bytes.Buffer
	ie := dicom.NewEncoder(&item, ts)
	ie.WriteString(dicom.TagPatientID, "LO", "Q1")
	ie.WriteSequence(dicom.NewTag(0x0010, 0x0024), [][]byte{nestedItem.Bytes()}, true)
	var b bytes.Buffer
	e := dicom.NewEncoder(&b, ts)
	e.WriteString(dicom.TagQueryRetrieveLevel, "CS", "STUDY")
	e.WriteSequence(dicom.TagOtherPatientIDsSequence, [][]byte{item.Bytes()}, false)
	sr, err := dicom.Scan(bytes.NewReader(b.Bytes()), ts, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(StudyRoot, sr.Dataset)
	if err != nil {
		t.Fatal(err)
	}
	if q.Unsupported() {
		t.Errorf("kept sequence reported unsupported")
	}
	inner, _ := storage.EncodeItems([]map[string]string{{"00400032": "1.2.3.4"}})
	yes, _ := storage.EncodeItems([]map[string]string{{"00100020": "Q1", "00100024": inner}})
	no, _ := storage.EncodeItems([]map[string]string{{"00100020": "Q1"}, {"00100024": inner}})
	ms, _ := compile(q)
	if !matches(ms, map[string]string{"00101002": yes}) || matches(ms, map[string]string{"00101002": no}) {
		t.Errorf("nested sequence matching: matchers %v", ms)
	}
	if got := q.Summary(); got != "match=[OtherPatientIDsSequence] return=[]" {
		t.Errorf("summary %s", got)
	}
	ret := &Query{Keys: []Key{seq("OtherPatientIDsSequence", "PatientID", "", "IssuerOfPatientID", "*")}}
	if got := ret.Summary(); got != "match=[] return=[OtherPatientIDsSequence]" {
		t.Errorf("summary of a return sequence key %s", got)
	}
}
