package query

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/memindex"
)

// FuzzWildcard checks the glob matcher against a regexp built from the
// pattern.
func FuzzWildcard(f *testing.F) {
	for _, s := range [][2]string{{"SMITH*", "SMITH^JOHN"}, {"*a?c*", "xxabcxx"}, {"??", "山田"}, {"*", ""}, {"a**b", "ab"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		if !utf8Valid(p) || !utf8Valid(s) || len(p) > 64 || len(s) > 64 {
			return
		}
		var re strings.Builder
		re.WriteString("(?s)^")
		for _, r := range p {
			switch r {
			case '*':
				re.WriteString(".*")
			case '?':
				re.WriteString(".")
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		re.WriteString("$")
		want := regexp.MustCompile(re.String()).MatchString(s)
		if got := wildcard(p, s); got != want {
			t.Fatalf("wildcard(%q, %q) = %v, regexp says %v", p, s, got, want)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

var fuzzIndex = sync.OnceValue(func() storage.Index {
	ix := memindex.New()
	population(&testing.T{}, ix, 12, 5)
	return ix
})

// FuzzIdentifier feeds arbitrary identifiers through parsing, the engine
// and the answer encoder: no panic, and every answer must scan.
func FuzzIdentifier(f *testing.F) {
	ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
	for _, els := range [][][3]string{
		{{"00080052", "CS", "STUDY"}, {"00100010", "PN", "SM*"}, {"0020000D", "UI", ""}},
		{{"00080005", "CS", "ISO_IR 100"}, {"00080052", "CS", "SERIES"}, {"00080060", "CS", "CT"}},
		{{"00080020", "DA", "20250101-"}, {"00080030", "TM", "-1200"}, {"00080052", "CS", "IMAGE"}},
		{{"00080052", "CS", "PATIENT"}, {"00100020", "LO", ""}, {"00201200", "IS", ""}},
	} {
		var b bytes.Buffer
		e := dicom.NewEncoder(&b, ts)
		for _, el := range els {
			var tag uint32
			for _, c := range el[0] {
				tag = tag<<4 | uint32(strings.IndexRune("0123456789ABCDEF", c))
			}
			e.WriteString(dicom.Tag(tag), dicom.VR(el[1]), el[2])
		}
		f.Add(b.Bytes())
	}
	{ // a sequence key with item keys (C.2.2.2.6)
		var item, b bytes.Buffer
		ie := dicom.NewEncoder(&item, ts)
		ie.WriteString(dicom.TagPatientID, "LO", "X0*")
		ie.WriteString(dicom.TagIssuerOfPatientID, "LO", "")
		e := dicom.NewEncoder(&b, ts)
		e.WriteString(dicom.TagQueryRetrieveLevel, "CS", "STUDY")
		e.WriteSequence(dicom.TagOtherPatientIDsSequence, [][]byte{item.Bytes()}, false)
		e.WriteString(dicom.TagStudyInstanceUID, "UI", "")
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := dicom.Scan(bytes.NewReader(data), ts, func() dicom.Limits { l := dicom.DefaultLimits(); l.MaxDatasetSize = 1 << 20; return l }(), dicom.WantAll)
		if err != nil {
			return
		}
		for _, m := range []Model{StudyRoot, PatientRoot} {
			q, err := Parse(m, sr.Dataset)
			if err != nil {
				continue
			}
			n := 0
			err = (&Engine{Index: fuzzIndex()}).Find(context.Background(), q, func(r *Row) error {
				out, err := EncodeRow(q, r, ts, "RELAIS")
				if err != nil {
					return nil // an unencodable key (e.g. a value too long) is the SCP's C001
				}
				if _, err := dicom.Scan(bytes.NewReader(out), ts, dicom.DefaultLimits(), dicom.WantAll); err != nil {
					t.Fatalf("answer does not scan: %v", err)
				}
				if n++; n > 50 {
					return ErrStop
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}
