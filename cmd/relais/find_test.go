package main

// End-to-end tests of query: dcmtk's findscu against `relais serve` at
// every level of both models, with wildcards, ranges, UID lists, return
// keys and three character sets; `relais find` against relais and against
// dcmtk's dcmqrscp.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
)

// yamadaISO2022 is "Yamada^Tarou=山田^太郎=やまだ^たろう" in ISO 2022 IR 87,
// byte for byte from PS3.5 H.3.1.
var yamadaISO2022 = []byte("Yamada^Tarou=" +
	"\x1b$B\x3b\x33\x45\x44\x1b(B^\x1b$B\x42\x40\x4f\x3a\x1b(B=" +
	"\x1b$B\x24\x64\x24\x5e\x24\x40\x1b(B^\x1b$B\x24\x3f\x24\x6d\x24\x26\x1b(B")

const yamadaUTF8 = "Yamada^Tarou=山田^太郎=やまだ^たろう"

// findArchive is what findFixtures stored.
type findArchive struct {
	files                   []string
	studyA, seriesA1        string // Müller, ISO_IR 100: CT series of 2 + MR series of 1
	studyYamada, studySmith string
	sopsA1                  []string
}

// findFixtures writes the test archive: five studies of four patients in
// three character sets plus the default repertoire.
func findFixtures(t *testing.T) *findArchive {
	t.Helper()
	dir := t.TempDir()
	fa := &findArchive{studyA: testdicom.UID(), seriesA1: testdicom.UID(), studyYamada: testdicom.UID(), studySmith: testdicom.UID()}
	seriesA2 := testdicom.UID()
	add := func(c *testdicom.CT) {
		t.Helper()
		if c.SOPUID == "" {
			c.SOPUID = testdicom.UID()
		}
		if c.SeriesUID == "" {
			c.SeriesUID = testdicom.UID()
		}
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("f%02d.dcm", len(fa.files)))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fa.files = append(fa.files, p)
	}
	for i := 1; i <= 2; i++ {
		sop := testdicom.UID()
		fa.sopsA1 = append(fa.sopsA1, sop)
		add(&testdicom.CT{Charset: "ISO_IR 100", PatientNameRaw: []byte("M\xfcller^J\xfcrgen"), PatientID: "PAT100", StudyUID: fa.studyA, SeriesUID: fa.seriesA1,
			SOPUID: sop, StudyDate: "20260105", StudyTime: "101500", AccessionNumber: "ACC100", StudyDescription: "CT T\xeate", Instance: i})
	}
	add(&testdicom.CT{Charset: "ISO_IR 100", PatientNameRaw: []byte("M\xfcller^J\xfcrgen"), PatientID: "PAT100", StudyUID: fa.studyA, SeriesUID: seriesA2,
		StudyDate: "20260105", StudyTime: "101500", AccessionNumber: "ACC100", StudyDescription: "CT T\xeate", Modality: "MR", Instance: 1})
	add(&testdicom.CT{Charset: "ISO_IR 192", PatientName: "Dupont^Éloïse", PatientID: "PAT192", StudyUID: testdicom.UID(),
		StudyDate: "20260210", Modality: "MR", AccessionNumber: "ACC192", Instance: 1})
	add(&testdicom.CT{Charset: `\ISO 2022 IR 87`, PatientNameRaw: yamadaISO2022, PatientID: "PAT2022", StudyUID: fa.studyYamada,
		StudyDate: "20260315", AccessionNumber: "ACC2022", Instance: 1})
	smithSeries := testdicom.UID()
	for i := 1; i <= 2; i++ {
		add(&testdicom.CT{PatientName: "SMITH^JOHN", PatientID: "PAT1", StudyUID: fa.studySmith, SeriesUID: smithSeries, StudyDate: "20251231", AccessionNumber: "ACC1", Instance: i})
	}
	add(&testdicom.CT{PatientName: "SMITH^JOHN", PatientID: "PAT1", StudyUID: testdicom.UID(), StudyDate: "20260120", Modality: "US", AccessionNumber: "ACC1B", Instance: 1})
	return fa
}

// runFindscu runs dcmtk's findscu with -X and returns the answers' data sets.
func runFindscu(t *testing.T, s *server, model string, keys ...string) []*dicom.Dataset {
	t.Helper()
	out := t.TempDir()
	h, p := s.hostPort()
	args := []string{model, "-aet", "FINDSCU", "-aec", "RELAIS", "-X", "-od", out}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	args = append(args, h, p)
	o, err := dcmtk(t, "findscu", args...)
	if err != nil {
		t.Fatalf("findscu %v: %v\n%s", keys, err, o)
	}
	files, _ := filepath.Glob(filepath.Join(out, "rsp*.dcm"))
	sort.Strings(files)
	var dss []*dicom.Dataset
	for _, f := range files {
		ds, meta, err := testdicom.DatasetOf(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ts, _ := dicom.LookupTransferSyntax(meta.TransferSyntaxUID)
		res, err := dicom.Scan(bytes.NewReader(ds), ts, dicom.DefaultLimits(), dicom.WantAll)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		dss = append(dss, res.Dataset)
	}
	return dss
}

func str(t *testing.T, ds *dicom.Dataset, kw string) string {
	t.Helper()
	tag, ok := dicom.TagByKeyword(kw)
	if !ok {
		t.Fatalf("keyword %s", kw)
	}
	v, err := ds.String(tag)
	if err != nil {
		t.Fatalf("%s: %v", kw, err)
	}
	return v
}

func column(t *testing.T, dss []*dicom.Dataset, kw string) []string {
	t.Helper()
	var out []string
	for _, ds := range dss {
		out = append(out, str(t, ds, kw))
	}
	sort.Strings(out)
	return out
}

func TestFindscuAgainstRelais(t *testing.T) {
	fa := findFixtures(t)
	s := startServer(t, "", "")
	storeInto(t, "RELAIS", s.dicomPort, fa.files)

	utf8Key := "SpecificCharacterSet=ISO_IR 192"
	cases := []struct {
		name   string
		model  string // -S or -P
		keys   []string
		column string // keyword whose sorted values are checked
		want   []string
	}{
		{"study: wildcard in ISO_IR 192 finds ISO_IR 100 data", "-S", []string{utf8Key, "QueryRetrieveLevel=STUDY", "PatientName=Mü*", "PatientID"}, "PatientID", []string{"PAT100"}},
		{"study: query in ISO_IR 100", "-S", []string{"SpecificCharacterSet=ISO_IR 100", "QueryRetrieveLevel=STUDY", "PatientName=m\xfcller^j\xfcrgen", "PatientID"}, "PatientID", []string{"PAT100"}},
		{"study: ideographic group", "-S", []string{utf8Key, "QueryRetrieveLevel=STUDY", "PatientName=山田*"}, "PatientName", []string{yamadaUTF8}},
		{"study: alphabetic group, any case", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientName=yamada*", "PatientID"}, "PatientID", []string{"PAT2022"}},
		{"study: UTF-8 exact", "-S", []string{utf8Key, "QueryRetrieveLevel=STUDY", "PatientName=DUPONT^ÉLOÏSE"}, "PatientName", []string{"Dupont^Éloïse"}},
		{"study: ? wildcard", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientName=SM?TH*", "AccessionNumber"}, "AccessionNumber", []string{"ACC1", "ACC1B"}},
		{"study: date range", "-S", []string{"QueryRetrieveLevel=STUDY", "StudyDate=20260101-20260228", "PatientID"}, "PatientID", []string{"PAT1", "PAT100", "PAT192"}},
		{"study: open start", "-S", []string{"QueryRetrieveLevel=STUDY", "StudyDate=-20251231", "AccessionNumber"}, "AccessionNumber", []string{"ACC1"}},
		{"study: open end", "-S", []string{"QueryRetrieveLevel=STUDY", "StudyDate=20260301-", "AccessionNumber"}, "AccessionNumber", []string{"ACC2022"}},
		// One date-time range from 1 Jan 10:00 to 31 Jan 11:00 (C.2.2.2.5.1):
		// ACC1B (20 Jan 03:15) is in it although 03:15 is not in 10:00-11:00.
		{"study: combined date-time range", "-S", []string{"QueryRetrieveLevel=STUDY", "StudyDate=20260101-20260131", "StudyTime=1000-1100", "AccessionNumber"}, "AccessionNumber", []string{"ACC100", "ACC1B"}},
		{"study: combined date-time range, one day", "-S", []string{"QueryRetrieveLevel=STUDY", "StudyDate=20260120-20260120", "StudyTime=1000-1100", "AccessionNumber"}, "AccessionNumber", nil},
		{"study: UID list", "-S", []string{"QueryRetrieveLevel=STUDY", `StudyInstanceUID=` + fa.studyA + `\` + fa.studyYamada + `\1.2.3.404`}, "StudyInstanceUID", sorted(fa.studyA, fa.studyYamada)},
		{"study: modality", "-S", []string{"QueryRetrieveLevel=STUDY", "ModalitiesInStudy=MR", "PatientID"}, "PatientID", []string{"PAT100", "PAT192"}},
		{"study: accession wildcard", "-S", []string{"QueryRetrieveLevel=STUDY", "AccessionNumber=ACC1*"}, "AccessionNumber", []string{"ACC1", "ACC100", "ACC192", "ACC1B"}},
		{"study: computed keys", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID=PAT100", "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"}, "ModalitiesInStudy", []string{`CT\MR`}},
		{"series: hierarchical", "-S", []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + fa.studyA, "Modality", "NumberOfSeriesRelatedInstances"}, "NumberOfSeriesRelatedInstances", []string{"1", "2"}},
		{"series: relational on modality", "-S", []string{"QueryRetrieveLevel=SERIES", "Modality=US", "SeriesInstanceUID"}, "Modality", []string{"US"}},
		{"image: hierarchical", "-S", []string{"QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + fa.studyA, "SeriesInstanceUID=" + fa.seriesA1, "SOPInstanceUID", "InstanceNumber"}, "SOPInstanceUID", sorted(fa.sopsA1...)},
		{"patient: wildcard with counts", "-P", []string{"QueryRetrieveLevel=PATIENT", "PatientName=SMITH*", "PatientID", "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances"}, "NumberOfPatientRelatedStudies", []string{"2"}},
		{"patient root: study level", "-P", []string{"QueryRetrieveLevel=STUDY", "PatientID=PAT1", "StudyDate"}, "StudyDate", []string{"20251231", "20260120"}},
		{"patient root: series level", "-P", []string{"QueryRetrieveLevel=SERIES", "PatientID=PAT100", "StudyInstanceUID=" + fa.studyA, "Modality"}, "Modality", []string{"CT", "MR"}},
		{"patient root: image level", "-P", []string{"QueryRetrieveLevel=IMAGE", "PatientID=PAT100", "StudyInstanceUID=" + fa.studyA, "SeriesInstanceUID=" + fa.seriesA1, "SOPInstanceUID"}, "SOPInstanceUID", sorted(fa.sopsA1...)},
		{"no match", "-S", []string{"QueryRetrieveLevel=STUDY", "PatientID=NOBODY"}, "PatientID", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dss := runFindscu(t, s, tc.model, tc.keys...)
			if got := column(t, dss, tc.column); !equalStrings(got, tc.want) {
				t.Fatalf("%s = %q, want %q", tc.column, got, tc.want)
			}
			for _, ds := range dss {
				lv := strings.SplitN(strings.TrimPrefix(tc.keys[slicesIndexPrefix(tc.keys, "QueryRetrieveLevel=")], "QueryRetrieveLevel="), "=", 2)[0]
				if got := str(t, ds, "QueryRetrieveLevel"); got != lv {
					t.Errorf("QueryRetrieveLevel %q", got)
				}
				if got := str(t, ds, "RetrieveAETitle"); got != "RELAIS" {
					t.Errorf("RetrieveAETitle %q", got)
				}
				for _, k := range tc.keys { // every requested key is in the answer
					kw, _, _ := strings.Cut(k, "=")
					tag, _ := dicom.TagByKeyword(kw)
					if _, ok := ds.Get(tag); !ok && kw != "SpecificCharacterSet" {
						t.Errorf("answer lacks requested %s", kw)
					}
				}
			}
		})
	}

	t.Run("answers keep the stored character set", func(t *testing.T) {
		cases := []struct {
			pid, charset, name string
			raw                []byte
		}{
			{"PAT100", "ISO_IR 100", "Müller^Jürgen", []byte("M\xfcller^J\xfcrgen")},
			{"PAT192", "ISO_IR 192", "Dupont^Éloïse", []byte("Dupont^Éloïse")},
			{"PAT2022", "ISO_IR 192", yamadaUTF8, []byte(yamadaUTF8)}, // ISO 2022 data is answered in UTF-8
			{"PAT1", "", "SMITH^JOHN", []byte("SMITH^JOHN")},
		}
		for _, tc := range cases {
			dss := runFindscu(t, s, "-S", "QueryRetrieveLevel=STUDY", "PatientID="+tc.pid, "PatientName", "StudyDescription", "ReferringPhysicianName")
			if len(dss) == 0 {
				t.Fatalf("%s: no answer", tc.pid)
			}
			ds := dss[0]
			if got := strings.Join(ds.CharacterSet, `\`); got != tc.charset {
				t.Errorf("%s: Specific Character Set %q, want %q", tc.pid, got, tc.charset)
			}
			e, _ := ds.Get(dicom.TagPatientName)
			if raw := bytes.TrimRight(e.Raw, " "); !bytes.Equal(raw, tc.raw) {
				t.Errorf("%s: PatientName bytes %q, want %q", tc.pid, raw, tc.raw)
			}
			if got := str(t, ds, "PatientName"); got != tc.name {
				t.Errorf("%s: PatientName %q, want %q", tc.pid, got, tc.name)
			}
		}
		ds := runFindscu(t, s, "-S", "QueryRetrieveLevel=STUDY", "PatientID=PAT100", "StudyDescription", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")[0]
		if got := str(t, ds, "StudyDescription"); got != "CT Tête" {
			t.Errorf("StudyDescription %q", got)
		}
		if a, b := str(t, ds, "NumberOfStudyRelatedSeries"), str(t, ds, "NumberOfStudyRelatedInstances"); a != "2" || b != "3" {
			t.Errorf("counts %s series %s instances", a, b)
		}
	})

	t.Run("bad input is answered and journaled", func(t *testing.T) {
		h, p := s.hostPort()
		out, _ := dcmtk(t, "findscu", "-S", "-v", "-aec", "RELAIS", "-k", "QueryRetrieveLevel=FRAME", "-k", "PatientID", h, p)
		if !strings.Contains(out, "DataSetDoesNotMatchSOPClass") {
			t.Errorf("findscu with an unknown level:\n%s", out)
		}
		out, _ = dcmtk(t, "findscu", "-S", "-v", "-aec", "RELAIS", "-k", "PatientID", h, p)
		if !strings.Contains(out, "DataSetDoesNotMatchSOPClass") {
			t.Errorf("findscu without a level:\n%s", out)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := 0
			for _, ev := range journalKinds(t, s.data, "query") {
				if ev.Status == "A900" && ev.AE == "FINDSCU" {
					n++
				}
			}
			if n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("journal has %d A900 queries", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if out, err := dcmtk(t, "echoscu", "-aec", "RELAIS", h, p); err != nil {
			t.Fatalf("server unwell after bad queries: %v\n%s", err, out)
		}
	})

	t.Run("relais find against relais", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", s.dicomPort)
		out, err := exec.Command(relaisBin, "find", addr, "--aec", "RELAIS", "--level", "STUDY",
			"-k", "PatientName=mü*", "-k", "(0010,0020)", "-k", "StudyDate=20260101-", "-k", "ModalitiesInStudy", "-k", "PatientName").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Müller^Jürgen") || !strings.Contains(string(out), `CT\MR`) || !strings.Contains(string(out), "1 matches, status 0000") {
			t.Fatalf("relais find: %v\n%s", err, out)
		}
		out, err = exec.Command(relaisBin, "find", addr, "--aec", "RELAIS", "--model", "patient", "--level", "PATIENT", "--json",
			"-k", "PatientID=PAT2022", "-k", "PatientName").Output()
		if err != nil {
			t.Fatalf("relais find --json: %v\n%s", err, out)
		}
		var obj map[string]struct {
			VR    string
			Value []json.RawMessage
		}
		if err := json.Unmarshal(bytes.TrimSpace(out), &obj); err != nil {
			t.Fatalf("JSON %s: %v", out, err)
		}
		var pn map[string]string
		if pnv := obj["00100010"]; pnv.VR != "PN" || len(pnv.Value) != 1 || json.Unmarshal(pnv.Value[0], &pn) != nil || pn["Ideographic"] != "山田^太郎" || pn["Phonetic"] != "やまだ^たろう" {
			t.Fatalf("PN in JSON: %s", out)
		}
		out, err = exec.Command(relaisBin, "find", addr, "--aec", "RELAIS", "--level", "FRAME").CombinedOutput()
		if err == nil {
			t.Errorf("relais find --level FRAME exited 0:\n%s", out)
		}
	})
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func slicesIndexPrefix(s []string, p string) int {
	for i, v := range s {
		if strings.HasPrefix(v, p) {
			return i
		}
	}
	return 0
}

// TestRelaisFindAgainstDcmqrscp proves our SCU against a server nobody
// here wrote: dcmqrscp filled by storescu.
func TestRelaisFindAgainstDcmqrscp(t *testing.T) {
	needTool(t, "dcmqrscp")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	os.MkdirAll(db, 0o755)
	port := freePort(t)
	cfg := fmt.Sprintf(`NetworkTCPPort = %d
MaxPDUSize = 16384
MaxAssociations = 16
HostTable BEGIN
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
QRSCP %s RW (200, 1024mb) ANY
AETable END
`, port, db)
	cfgPath := filepath.Join(dir, "dcmqrscp.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "dcmqrscp", "-c", cfgPath)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var logMu sync.Mutex
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = lockedBuffer{&logMu, &logs}, lockedBuffer{&logMu, &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	waitPort(t, port)
	var files []string
	study, series := testdicom.UID(), testdicom.UID()
	fdir := t.TempDir()
	for i := 1; i <= 3; i++ {
		c := &testdicom.CT{PatientName: "QR^PATIENT", PatientID: "QR1", StudyUID: study, SeriesUID: series, SOPUID: testdicom.UID(),
			StudyDate: "20260110", AccessionNumber: "QRACC", StudyDescription: "CT HEAD", Instance: i}
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(fdir, fmt.Sprintf("qr%d.dcm", i))
		os.WriteFile(p, b, 0o644)
		files = append(files, p)
	}
	other := &testdicom.CT{PatientName: "OTHER^ONE", PatientID: "QR2", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(),
		StudyDate: "20250101", AccessionNumber: "QRACC2", Instance: 1}
	b, _ := other.File()
	p := filepath.Join(fdir, "other.dcm")
	os.WriteFile(p, b, 0o644)
	files = append(files, p)
	args := append([]string{"-aec", "QRSCP", "127.0.0.1", fmt.Sprint(port)}, files...)
	if out, err := dcmtk(t, "storescu", args...); err != nil {
		t.Fatalf("storescu into dcmqrscp: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	run := func(args ...string) string {
		t.Helper()
		full := append([]string{"find", addr, "--aec", "QRSCP", "--aet", "RELAIS"}, args...)
		out, err := exec.Command(relaisBin, full...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "status 0000") {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("relais %v: %v\n%s\ndcmqrscp:\n%s", full, err, out, logs.String())
		}
		return string(out)
	}
	cases := []struct {
		name    string
		args    []string
		want    []string
		matches string
	}{
		{"study root study level", []string{"--level", "STUDY", "-k", "PatientName=QR*", "-k", "StudyInstanceUID", "-k", "StudyDate", "-k", "AccessionNumber"}, []string{study, "20260110", "QRACC"}, "1 matches"},
		{"study date range", []string{"--level", "STUDY", "-k", "StudyDate=20260101-", "-k", "PatientID"}, []string{"QR1"}, "1 matches"},
		{"series level", []string{"--level", "SERIES", "-k", "StudyInstanceUID=" + study, "-k", "SeriesInstanceUID", "-k", "Modality"}, []string{series, "CT"}, "1 matches"},
		{"image level", []string{"--level", "IMAGE", "-k", "StudyInstanceUID=" + study, "-k", "SeriesInstanceUID=" + series, "-k", "SOPInstanceUID"}, nil, "3 matches"},
		{"patient root patient level", []string{"--model", "patient", "--level", "PATIENT", "-k", "PatientID", "-k", "PatientName"}, []string{"QR^PATIENT", "OTHER^ONE"}, "2 matches"},
		{"json", []string{"--level", "STUDY", "--json", "-k", "PatientID=QR2", "-k", "PatientName"}, []string{`"00100010":{"Value":[{"Alphabetic":"OTHER^ONE"}],"vr":"PN"}`}, "1 matches"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := run(tc.args...)
			for _, w := range append(tc.want, tc.matches) {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
