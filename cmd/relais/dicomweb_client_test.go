package main

// DICOMweb interop: the npm dicomweb-client package (a client nobody here
// wrote) drives `relais serve` through testdata/dicomweb-client/drive.mjs,
// and plain net/http checks that every DICOMweb route is closed to
// requests without a valid token.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
)

const clientDir = "testdata/dicomweb-client"

// needClient returns the node binary and makes sure the pinned npm
// packages are installed (CI runs `npm ci` in .ci/run; a developer's first
// run does it here, from the lockfile).
func needClient(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: install nodejs and npm (apt-get install nodejs npm); .ci/run does")
	}
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(clientDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatalf("package-lock.json: %v", err)
	}
	installed := func() bool {
		for name, p := range lock.Packages {
			if name == "" {
				continue
			}
			var pj struct{ Version string }
			b, err := os.ReadFile(filepath.Join(clientDir, name, "package.json"))
			if err != nil || json.Unmarshal(b, &pj) != nil || pj.Version != p.Version {
				return false
			}
		}
		return true
	}
	if installed() {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("%s/node_modules is missing or stale and npm is not found: apt-get install npm; then npm ci in %s", clientDir, clientDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")
	cmd.Dir = clientDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", clientDir, err, out)
	}
	if !installed() {
		t.Fatalf("npm ci did not install the locked versions in %s", clientDir)
	}
	return node
}

// clientReport is what drive.mjs prints.
type clientReport struct {
	Errors []string `json:"errors"`
	Calls  int      `json:"calls"`
	Stow   []struct {
		Status      int    `json:"status"`
		RetrieveURL string `json:"retrieveURL"`
		Referenced  []struct {
			SOP, SOPClass, RetrieveURL string
		} `json:"referenced"`
		Failed int `json:"failed"`
	} `json:"stow"`
	Studies          []studyRow             `json:"studies"`
	ByName           map[string][]studyRow  `json:"byName"`
	Series           map[string][]seriesRow `json:"series"`
	Instances        map[string][]instRow   `json:"instances"`
	StudyInstances   map[string][]instRow   `json:"studyInstances"`
	AllSeries        []seriesRow            `json:"allSeries"`
	AllInstances     []instRow              `json:"allInstances"`
	StudyMetadata    map[string][]metaRow   `json:"studyMetadata"`
	SeriesMetadata   map[string][]metaRow   `json:"seriesMetadata"`
	InstanceMetadata map[string]*metaRow    `json:"instanceMetadata"`
	Frames           map[string]fileRow     `json:"frames"`
	Bulkdata         map[string]fileRow     `json:"bulkdata"`
	Rendered         map[string]imageRow    `json:"rendered"`
	Thumbnail        map[string]imageRow    `json:"thumbnail"`
	Retrieved        map[string]fileRow     `json:"retrieved"`
	RetrievedSeries  map[string][]string    `json:"retrievedSeries"`
	RetrievedStudies map[string][]string    `json:"retrievedStudies"`
	UnknownStudy     int                    `json:"unknownStudyStatus"`
	Refused          map[string]struct {
		Status    int
		Challenge string
	} `json:"refused"`
}

type studyRow struct {
	Study, PatientName, PatientID, StudyDate, Accession, Description string
	Modalities, SOPClasses, ProcedureCodes                           []string
	Series, Instances                                                int
	Availability, RetrieveURL                                        string
}

type seriesRow struct {
	Study, Series, Modality string
	Number, Instances       int
	RetrieveURL             string
}

type instRow struct {
	Study, Series, SOP, SOPClass string
	Number, Rows, Columns        int
	RetrieveURL                  string
}

type metaRow struct {
	Study, Series, SOP, SOPClass, PatientName, PatientID string
	Charset                                              []string
	Number, Rows, Columns, BitsAllocated                 int
	PixelVR                                              string
	PixelBulkDataURI                                     string
	PixelInline                                          bool
	PatientNameVR                                        string
}

type fileRow struct {
	Bytes          int
	PartType       string
	TransferSyntax string
	First          []int
	File           string
}

type imageRow struct {
	Size                      int
	SOI, EOI                  bool
	SOF                       string
	Width, Height, Components int
	ContentType               string
	File                      string
}

// fixture is one instance the test stores and what it is.
type fixture struct {
	path                  string
	study, series, sop    string
	patientName           string // UTF-8
	patientID             string
	number, rows, columns int
	dataset               []byte // after the file meta
	pixels                []byte // the Pixel Data value
}

func writeFixture(t *testing.T, dir string, c *testdicom.CT, name string) fixture {
	t.Helper()
	b, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%d.dcm", c.SeriesUID[len(c.SeriesUID)-6:], c.Instance))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ds, _, err := testdicom.DatasetOf(p)
	if err != nil {
		t.Fatal(err)
	}
	// Explicit VR Little Endian, Pixel Data last: (7FE0,0010) OW, 4-byte
	// length, value.
	n := 2 * c.Rows * c.Columns
	hdr := ds[len(ds)-n-12 : len(ds)-n]
	if !bytes.Equal(hdr[:8], []byte{0xe0, 0x7f, 0x10, 0x00, 'O', 'W', 0, 0}) || binary.LittleEndian.Uint32(hdr[8:]) != uint32(n) {
		t.Fatalf("fixture %s: Pixel Data is not where expected", p)
	}
	return fixture{path: p, study: c.StudyUID, series: c.SeriesUID, sop: c.SOPUID, patientName: name, patientID: c.PatientID,
		number: c.Instance, rows: c.Rows, columns: c.Columns, dataset: ds, pixels: ds[len(ds)-n:]}
}

func TestDICOMwebClient(t *testing.T) {
	node := needClient(t)
	data := t.TempDir()
	radiologist := createToken(t, data, "dr.interop", "radiologist")
	s := startServer(t, data, "")
	h, p := s.hostPort()

	// Study A, stored by C-STORE (storescu): Latin-1 names (ISO_IR 100),
	// one series of 3 slices 32×48. Study B, stored by STOW-RS through the
	// npm client: UTF-8 names (ISO_IR 192), two series (2 + 1 slices 40×24).
	run := testdicom.UID()
	pid := "RLSDW" + run[len(run)-6:]
	dir := t.TempDir()
	const nameA, nameB = "Müller^Jürgen", "Lefèvre^Zoé"
	studyA, seriesA := testdicom.UID(), testdicom.UID()
	studyB, seriesB1, seriesB2 := testdicom.UID(), testdicom.UID(), testdicom.UID()
	var fxA, fxB []fixture
	for i := 1; i <= 3; i++ {
		c := &testdicom.CT{PatientID: pid + "A", PatientNameRaw: []byte("M\xfcller^J\xfcrgen"), Charset: "ISO_IR 100",
			StudyUID: studyA, SeriesUID: seriesA, SOPUID: testdicom.UID(), StudyDescription: "CT HEAD", AccessionNumber: "ACCA",
			Instance: i, Rows: 32, Columns: 48, TransferSyntax: "1.2.840.10008.1.2.1",
			ProcedureCodes: []testdicom.Code{{Value: "CTHEAD", Scheme: "99RLS", Meaning: "CT head"}}}
		fxA = append(fxA, writeFixture(t, dir, c, nameA))
	}
	for i, se := range []string{seriesB1, seriesB1, seriesB2} {
		c := &testdicom.CT{PatientID: pid + "B", PatientName: nameB, Charset: "ISO_IR 192",
			StudyUID: studyB, SeriesUID: se, SOPUID: testdicom.UID(), StudyDescription: "CT THORAX", AccessionNumber: "ACCB",
			Instance: i + 1, Rows: 40, Columns: 24, TransferSyntax: "1.2.840.10008.1.2.1",
			ProcedureCodes: []testdicom.Code{{Value: "CTCHEST", Scheme: "99RLS", Meaning: "CT chest"}}}
		fxB = append(fxB, writeFixture(t, dir, c, nameB))
	}
	var pathsA, pathsB []string
	for _, f := range fxA {
		pathsA = append(pathsA, f.path)
	}
	for _, f := range fxB {
		pathsB = append(pathsB, f.path)
	}
	// Propose exactly the files' syntax: storescu sends their bytes as
	// they are.
	args := append(storescuProfile(t, "1.2.840.10008.1.2.1"), "-aet", "CT_INTEROP", "-aec", "RELAIS", h, p)
	if out, err := dcmtk(t, "storescu", append(args, pathsA...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	assertStoredIdentical(t, data, pathsA)
	byUID := map[string]fixture{}
	for _, f := range append(append([]fixture{}, fxA...), fxB...) {
		byUID[f.sop] = f
	}

	// The driver.
	out := t.TempDir()
	cfg := map[string]any{
		"url":          fmt.Sprintf("http://127.0.0.1:%d/dicom-web", s.httpPort),
		"token":        radiologist,
		"stow":         pathsB,
		"stowStudy":    studyB,
		"patientID":    pid + "*",
		"names":        []string{"Müller*", "Lefèvre^Zo*", "Nobody*"},
		"includefield": "ProcedureCodeSequence,SOPClassesInStudy",
		"out":          out,
	}
	cb, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfgPath, cb, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(clientDir, "drive.mjs"), cfgPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep clientReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("driver report: %v (exit: %v)\nstdout:\n%s\nstderr:\n%s", err, runErr, stdout.String(), stderr.String())
	}
	for _, e := range rep.Errors {
		t.Errorf("dicomweb-client: %s", e)
	}
	if runErr != nil && len(rep.Errors) == 0 {
		t.Errorf("driver exited with %v and no error listed:\n%s", runErr, stderr.String())
	}
	t.Logf("dicomweb-client made %d calls", rep.Calls)

	// STOW-RS: two requests (2 instances to /studies, 1 to
	// /studies/{studyB}), every instance referenced, none failed, and the
	// stored data sets are the sent ones.
	if len(rep.Stow) != 2 {
		t.Fatalf("STOW answers: %d, want 2", len(rep.Stow))
	}
	var stowed []string
	for i, a := range rep.Stow {
		if a.Failed != 0 {
			t.Errorf("STOW #%d: %d failed", i, a.Failed)
		}
		for _, r := range a.Referenced {
			stowed = append(stowed, r.SOP)
			f, ok := byUID[r.SOP]
			if !ok {
				t.Errorf("STOW #%d references unknown SOP %s", i, r.SOP)
				continue
			}
			if r.SOPClass != "1.2.840.10008.5.1.4.1.1.2" || !strings.HasSuffix(r.RetrieveURL, "/studies/"+f.study+"/series/"+f.series+"/instances/"+f.sop) {
				t.Errorf("STOW #%d reference %+v", i, r)
			}
		}
		if !strings.HasSuffix(a.RetrieveURL, "/dicom-web/studies/"+studyB) {
			t.Errorf("STOW #%d Retrieve URL %q, want the study's", i, a.RetrieveURL)
		}
	}
	if want := []string{fxB[0].sop, fxB[1].sop, fxB[2].sop}; strings.Join(stowed, " ") != strings.Join(want, " ") {
		t.Errorf("STOW referenced %v, want %v", stowed, want)
	}
	assertStoredIdentical(t, data, pathsB)

	// QIDO-RS studies: exactly A and B, with their attributes, the
	// included fields and PN decoded from each character set.
	type wantStudy struct {
		name, id, desc, acc, code string
		series, instances         int
	}
	wantStudies := map[string]wantStudy{
		studyA: {nameA, pid + "A", "CT HEAD", "ACCA", "CTHEAD", 1, 3},
		studyB: {nameB, pid + "B", "CT THORAX", "ACCB", "CTCHEST", 2, 3},
	}
	if len(rep.Studies) != 2 {
		t.Errorf("searchForStudies(PatientID=%s*): %d studies, want 2: %+v", pid, len(rep.Studies), rep.Studies)
	}
	for _, st := range rep.Studies {
		w, ok := wantStudies[st.Study]
		if !ok {
			t.Errorf("searchForStudies found unknown study %s", st.Study)
			continue
		}
		got := fmt.Sprint(st.PatientName, st.PatientID, st.Description, st.Accession, st.ProcedureCodes, st.Series, st.Instances, st.Modalities, st.SOPClasses, st.StudyDate, st.Availability)
		want := fmt.Sprint(w.name, w.id, w.desc, w.acc, []string{w.code}, w.series, w.instances, []string{"CT"}, []string{"1.2.840.10008.5.1.4.1.1.2"}, "20261123", "ONLINE")
		if got != want {
			t.Errorf("study %s:\n got  %s\n want %s", st.Study, got, want)
		}
		if !strings.HasSuffix(st.RetrieveURL, "/dicom-web/studies/"+st.Study) {
			t.Errorf("study %s Retrieve URL %q", st.Study, st.RetrieveURL)
		}
	}
	for name, want := range map[string][]string{"Müller*": {studyA}, "Lefèvre^Zo*": {studyB}, "Nobody*": nil} {
		var got []string
		for _, st := range rep.ByName[name] {
			got = append(got, st.Study)
			if w := wantStudies[st.Study]; st.PatientName != w.name {
				t.Errorf("PatientName=%s: study %s name %q, want %q", name, st.Study, st.PatientName, w.name)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("searchForStudies(PatientName=%s): %v, want %v", name, got, want)
		}
	}

	// QIDO-RS series and instances at every path.
	wantSeries := map[string][]string{studyA: {seriesA}, studyB: {seriesB1, seriesB2}}
	wantInst := map[string][]fixture{seriesA: fxA, seriesB1: fxB[:2], seriesB2: fxB[2:]}
	for study, ws := range wantSeries {
		var got []string
		for _, se := range rep.Series[study] {
			got = append(got, se.Series)
			if se.Study != "" && se.Study != study || se.Modality != "CT" || se.Number != 1 || se.Instances != len(wantInst[se.Series]) {
				t.Errorf("series %s: %+v", se.Series, se)
			}
		}
		if !sameSet(got, ws) {
			t.Errorf("searchForSeries(%s): %v, want %v", study, got, ws)
		}
		var all []string
		for _, in := range rep.StudyInstances[study] {
			all = append(all, in.SOP)
		}
		var wantAll []string
		for _, se := range ws {
			for _, f := range wantInst[se] {
				wantAll = append(wantAll, f.sop)
			}
		}
		if !sameSet(all, wantAll) {
			t.Errorf("searchForInstances(study %s): %v, want %v", study, all, wantAll)
		}
	}
	for series, fs := range wantInst {
		got := rep.Instances[series]
		if len(got) != len(fs) {
			t.Errorf("searchForInstances(series %s): %d instances, want %d", series, len(got), len(fs))
		}
		for _, in := range got {
			f, ok := byUID[in.SOP]
			if !ok || f.series != series {
				t.Errorf("searchForInstances(series %s) found %s", series, in.SOP)
				continue
			}
			if in.SOPClass != "1.2.840.10008.5.1.4.1.1.2" || in.Number != f.number || in.Rows != f.rows || in.Columns != f.columns ||
				!strings.HasSuffix(in.RetrieveURL, "/studies/"+f.study+"/series/"+f.series+"/instances/"+f.sop) {
				t.Errorf("instance %s: %+v, want number %d, %d×%d", in.SOP, in, f.number, f.rows, f.columns)
			}
		}
	}
	var allSeries, allInst []string
	for _, se := range rep.AllSeries {
		allSeries = append(allSeries, se.Series)
	}
	for _, in := range rep.AllInstances {
		allInst = append(allInst, in.SOP)
		if f := byUID[in.SOP]; in.Study != f.study || in.Series != f.series {
			t.Errorf("searchForInstances(PatientID): %s is in %s/%s, want %s/%s", in.SOP, in.Study, in.Series, f.study, f.series)
		}
	}
	if !sameSet(allSeries, []string{seriesA, seriesB1, seriesB2}) {
		t.Errorf("searchForSeries(PatientID=%s*): %v", pid, allSeries)
	}
	if !sameSet(allInst, keys(byUID)) {
		t.Errorf("searchForInstances(PatientID=%s*): %v", pid, allInst)
	}

	// WADO-RS metadata: the right instances at each level, with the right
	// values, Pixel Data as a Bulk Data URI.
	checkMeta := func(where string, m metaRow) {
		t.Helper()
		f, ok := byUID[m.SOP]
		if !ok {
			t.Errorf("%s: unknown instance %s", where, m.SOP)
			return
		}
		if m.Study != f.study || m.Series != f.series || m.SOPClass != "1.2.840.10008.5.1.4.1.1.2" || m.PatientName != f.patientName ||
			m.PatientNameVR != "PN" || m.PatientID != f.patientID || m.Number != f.number || m.Rows != f.rows || m.Columns != f.columns || m.BitsAllocated != 16 {
			t.Errorf("%s: metadata of %s: %+v\nwant %s/%s %q %s #%d %d×%d", where, m.SOP, m, f.study, f.series, f.patientName, f.patientID, f.number, f.rows, f.columns)
		}
		if m.PixelInline || !strings.HasSuffix(m.PixelBulkDataURI, "/instances/"+f.sop+"/bulkdata/7FE00010") {
			t.Errorf("%s: Pixel Data of %s: inline %v, Bulk Data URI %q", where, m.SOP, m.PixelInline, m.PixelBulkDataURI)
		}
	}
	for study, ws := range wantSeries {
		var got []string
		for _, m := range rep.StudyMetadata[study] {
			got = append(got, m.SOP)
			checkMeta("retrieveStudyMetadata", m)
		}
		n := 0
		for _, se := range ws {
			n += len(wantInst[se])
			var gs []string
			for _, m := range rep.SeriesMetadata[se] {
				gs = append(gs, m.SOP)
				checkMeta("retrieveSeriesMetadata", m)
			}
			if !sameSet(gs, sops(wantInst[se])) {
				t.Errorf("retrieveSeriesMetadata(%s): %v, want %v", se, gs, sops(wantInst[se]))
			}
		}
		if len(got) != n {
			t.Errorf("retrieveStudyMetadata(%s): %d instances, want %d", study, len(got), n)
		}
	}
	for _, f := range byUID {
		m := rep.InstanceMetadata[f.sop]
		if m == nil {
			t.Errorf("retrieveInstanceMetadata(%s): none", f.sop)
			continue
		}
		checkMeta("retrieveInstanceMetadata", *m)
	}

	// Frames and bulk data: the stored Pixel Data, byte for byte. Rendered:
	// a baseline JPEG of the image's size; thumbnails: JPEGs.
	for _, f := range byUID {
		fr, ok := rep.Frames[f.sop]
		if !ok {
			t.Errorf("retrieveInstanceFrames(%s): no frame", f.sop)
		} else {
			got, err := os.ReadFile(fr.File)
			if err != nil || !bytes.Equal(got, f.pixels) {
				t.Errorf("frame 1 of %s: %d bytes, not the stored Pixel Data (%d bytes)", f.sop, len(got), len(f.pixels))
			}
			// testdicom's pixel formula, as a second witness.
			for i, v := range fr.First {
				if want := (i*7 + f.number*13) % 4096; v != want {
					t.Errorf("frame 1 of %s pixel %d: %d, want %d", f.sop, i, v, want)
				}
			}
			if fr.TransferSyntax != "" && fr.TransferSyntax != "1.2.840.10008.1.2.1" {
				t.Errorf("frame of %s announced in %s", f.sop, fr.TransferSyntax)
			}
		}
		if bd, ok := rep.Bulkdata[f.sop]; !ok {
			t.Errorf("retrieveBulkData(%s): nothing", f.sop)
		} else if got, err := os.ReadFile(bd.File); err != nil || !bytes.Equal(got, f.pixels) {
			t.Errorf("bulk data of %s: %d bytes, not the stored Pixel Data", f.sop, len(got))
		}
		r := rep.Rendered[f.sop]
		if !r.SOI || !r.EOI || r.Width != f.columns || r.Height != f.rows || r.Components != 1 || r.ContentType != "image/jpeg" {
			t.Errorf("retrieveInstanceRendered(%s): %+v, want a %d×%d grey JPEG", f.sop, r, f.columns, f.rows)
		}
		if r.File != "" {
			assertRenderedCT(t, r.File, f)
		}
		if th := rep.Thumbnail[f.sop]; !th.SOI || !th.EOI || th.Width < 1 || th.Width > f.columns || th.Height < 1 || th.Height > f.rows {
			t.Errorf("retrieveInstanceThumbnail(%s): %+v", f.sop, th)
		}
	}

	// WADO-RS Part 10 files: the data sets are the stored ones — the
	// C-STORE'd files (study A) and the STOW'd ones (study B) alike.
	for _, f := range byUID {
		r, ok := rep.Retrieved[f.sop]
		if !ok {
			t.Errorf("retrieveInstance(%s): nothing", f.sop)
			continue
		}
		assertSameDataset(t, "retrieveInstance "+f.sop, r.File, f)
	}
	checkFiles := func(what string, files []string, want []fixture) {
		t.Helper()
		if len(files) != len(want) {
			t.Errorf("%s: %d instances, want %d", what, len(files), len(want))
		}
		for _, p := range files {
			ds, meta, err := testdicom.DatasetOf(p)
			if err != nil {
				t.Errorf("%s: %v", what, err)
				continue
			}
			f, ok := byUID[meta.MediaStorageSOPInstanceUID]
			if !ok {
				t.Errorf("%s: unknown instance %s", what, meta.MediaStorageSOPInstanceUID)
				continue
			}
			if !bytes.Equal(ds, f.dataset) {
				t.Errorf("%s: data set of %s differs (%d bytes, stored %d)", what, f.sop, len(ds), len(f.dataset))
			}
		}
	}
	for series, fs := range wantInst {
		checkFiles("retrieveSeries "+series, rep.RetrievedSeries[series], fs)
	}
	checkFiles("retrieveStudy A", rep.RetrievedStudies[studyA], fxA)
	checkFiles("retrieveStudy B", rep.RetrievedStudies[studyB], fxB)
	if len(rep.Refused) != 12 {
		t.Errorf("the client tried %d requests without a valid token, want 12", len(rep.Refused))
	}
	for k, r := range rep.Refused {
		if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Challenge, "Bearer ") {
			t.Errorf("dicomweb-client, %s: HTTP %d, WWW-Authenticate %q; want 401 with a Bearer challenge", k, r.Status, r.Challenge)
		}
	}
	if rep.UnknownStudy != 404 {
		t.Errorf("metadata of an unknown study: HTTP %d, want 404", rep.UnknownStudy)
	}

	// The STOW'd study B fetched by C-GET (dcmtk getscu): byte-identical
	// data sets. +B writes what arrives as it is: by default getscu
	// re-encodes the data set (its sequences get undefined lengths).
	getDir := t.TempDir()
	gout, err := dcmtk(t, "getscu", "-v", "+B", "-aet", "VIEWER", "-aec", "RELAIS", "-S", "-k", "QueryRetrieveLevel=STUDY",
		"-k", "StudyInstanceUID="+studyB, "-od", getDir, h, p)
	if err != nil {
		t.Fatalf("getscu: %v\n%s", err, gout)
	}
	awaitIdentical(t, getDir, pathsB)

	// Every access is journaled with the token's user.
	evs := journalKinds(t, data, "dicomweb.retrieve")
	if len(evs) == 0 || evs[0].User != "dr.interop" {
		t.Errorf("dicomweb.retrieve journal events: %d, first %+v", len(evs), first(evs))
	}
}

func first[T any](v []*T) *T {
	if len(v) == 0 {
		return nil
	}
	return v[0]
}

func assertSameDataset(t *testing.T, what, path string, f fixture) {
	t.Helper()
	ds, meta, err := testdicom.DatasetOf(path)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if meta.MediaStorageSOPInstanceUID != f.sop || meta.TransferSyntaxUID != "1.2.840.10008.1.2.1" {
		t.Errorf("%s: file meta names %s in %s", what, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID)
	}
	if !bytes.Equal(ds, f.dataset) {
		t.Errorf("%s: data set differs from the original (%d bytes, original %d)", what, len(ds), len(f.dataset))
	}
}

func sops(fs []fixture) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.sop)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, " ") == strings.Join(b, " ")
}

// stowBody is a STOW-RS request body of Part 10 files.
func stowBody(t *testing.T, files ...string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(data)
	}
	mw.Close()
	return fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, mw.Boundary()), b.Bytes()
}

func TestDICOMwebRequiresAuth(t *testing.T) {
	data := t.TempDir()
	radiologist := createToken(t, data, "dr.auth", "radiologist")
	modality := createToken(t, data, "ct-auth", "modality")
	revoked := createToken(t, data, "gone", "radiologist")
	if out, errs, code := runRelais(t, "token", "revoke", "--data", data, auth.TokenID(revoked)); code != 0 {
		t.Fatalf("token revoke: exit %d: %s %s", code, out, errs)
	}
	s := startServer(t, data, "")
	h, p := s.hostPort()
	dir := t.TempDir()
	study, series := testdicom.UID(), testdicom.UID()
	const secretName = "Secret^Patient"
	var files []string
	for i := 1; i <= 3; i++ {
		c := &testdicom.CT{PatientName: secretName, PatientID: "AUTH1", StudyUID: study, SeriesUID: series, SOPUID: testdicom.UID(),
			Instance: i, TransferSyntax: "1.2.840.10008.1.2.1"}
		b, _ := c.File()
		f := filepath.Join(dir, fmt.Sprintf("auth%d.dcm", i))
		os.WriteFile(f, b, 0o644)
		files = append(files, f)
	}
	// Two stored by C-STORE; the third is what the STOW routes send.
	if out, err := dcmtk(t, "storescu", "-aec", "RELAIS", h, p, files[0], files[1]); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	_, meta, _ := testdicom.DatasetOf(files[0])
	sop := meta.MediaStorageSOPInstanceUID
	stowType, stowData := stowBody(t, files[2])

	base := fmt.Sprintf("http://127.0.0.1:%d/dicom-web", s.httpPort)
	st, se, in := "/studies/"+study, "/studies/"+study+"/series/"+series, "/studies/"+study+"/series/"+series+"/instances/"+sop
	const (
		jsonT   = "application/dicom+json"
		dicomT  = `multipart/related; type="application/dicom"`
		octetT  = `multipart/related; type="application/octet-stream"`
		jpegT   = "image/jpeg"
		readOp  = false
		storeOp = true
	)
	routes := []struct {
		name, method, path, accept string
		store                      bool
	}{
		{"QIDO studies", "GET", "/studies?PatientID=AUTH1", jsonT, readOp},
		{"QIDO series", "GET", "/series?PatientID=AUTH1", jsonT, readOp},
		{"QIDO instances", "GET", "/instances?PatientID=AUTH1", jsonT, readOp},
		{"QIDO study's series", "GET", st + "/series", jsonT, readOp},
		{"QIDO study's instances", "GET", st + "/instances", jsonT, readOp},
		{"QIDO series' instances", "GET", se + "/instances", jsonT, readOp},
		{"WADO study", "GET", st, dicomT, readOp},
		{"WADO series", "GET", se, dicomT, readOp},
		{"WADO instance", "GET", in, dicomT, readOp},
		{"study metadata", "GET", st + "/metadata", jsonT, readOp},
		{"series metadata", "GET", se + "/metadata", jsonT, readOp},
		{"instance metadata", "GET", in + "/metadata", jsonT, readOp},
		{"frames", "GET", in + "/frames/1", octetT, readOp},
		{"bulkdata", "GET", in + "/bulkdata/7FE00010", octetT, readOp},
		{"rendered instance", "GET", in + "/rendered", jpegT, readOp},
		{"rendered frame", "GET", in + "/frames/1/rendered", jpegT, readOp},
		{"instance thumbnail", "GET", in + "/thumbnail", jpegT, readOp},
		{"frame thumbnail", "GET", in + "/frames/1/thumbnail", jpegT, readOp},
		{"series thumbnail", "GET", se + "/thumbnail", jpegT, readOp},
		{"study thumbnail", "GET", st + "/thumbnail", jpegT, readOp},
		{"STOW", "POST", "/studies", jsonT, storeOp},
		{"STOW to a study", "POST", st, jsonT, storeOp},
	}
	do := func(method, path, accept string, auth []string) (*http.Response, []byte) {
		t.Helper()
		var body io.Reader
		req, err := http.NewRequest(method, base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if method == "POST" {
			req.Body = io.NopCloser(bytes.NewReader(stowData))
			req.ContentLength = int64(len(stowData))
			req.Header.Set("Content-Type", stowType)
		}
		req.Header.Set("Accept", accept)
		for _, a := range auth {
			req.Header.Add("Authorization", a)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	// A syntactically valid token nobody issued.
	forged := "rls_" + strings.Repeat("a", 16) + "_" + strings.Repeat("b", 52)
	refused := []struct {
		name  string
		auth  []string
		error string // the challenge's error=, "" for none
	}{
		{"no Authorization", nil, ""},
		{"Basic credentials", []string{"Basic ZHI6cGFzcw=="}, ""},
		{"empty Bearer", []string{"Bearer "}, "invalid_token"},
		{"forged token", []string{"Bearer " + forged}, "invalid_token"},
		{"garbage token", []string{"Bearer not-a-token"}, "invalid_token"},
		{"revoked token", []string{"Bearer " + revoked}, "invalid_token"},
		{"two Authorization headers", []string{"Bearer " + radiologist, "Bearer " + radiologist}, "invalid_token"},
	}
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			for _, c := range refused {
				resp, body := do(rt.method, rt.path, rt.accept, c.auth)
				ch := resp.Header.Get("WWW-Authenticate")
				if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `realm="relais"`) {
					t.Errorf("%s: HTTP %d, WWW-Authenticate %q; want 401 with a Bearer challenge", c.name, resp.StatusCode, ch)
				}
				if c.error != "" && !strings.Contains(ch, `error="`+c.error+`"`) {
					t.Errorf("%s: challenge %q lacks error=%q", c.name, ch, c.error)
				}
				if bytes.Contains(body, []byte("Secret")) || bytes.Contains(body, []byte("AUTH1")) {
					t.Errorf("%s: the refusal leaks patient data: %s", c.name, body)
				}
			}
			resp, body := do(rt.method, rt.path, rt.accept, []string{"Bearer " + modality})
			want := http.StatusForbidden
			if rt.store {
				want = http.StatusOK
			}
			if resp.StatusCode != want {
				t.Errorf("modality token: HTTP %d, want %d: %s", resp.StatusCode, want, body)
			}
			if want == http.StatusForbidden {
				if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) {
					t.Errorf("modality token: challenge %q, want error=\"insufficient_scope\"", ch)
				}
				if bytes.Contains(body, []byte("Secret")) {
					t.Errorf("modality token: the refusal leaks patient data: %s", body)
				}
			}
			resp, body = do(rt.method, rt.path, rt.accept, []string{"Bearer " + radiologist})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("radiologist token: HTTP %d, want 200: %.300s", resp.StatusCode, body)
			} else if !rt.store && len(body) == 0 {
				t.Errorf("radiologist token: empty answer")
			}
		})
	}

	// The refused STOWs stored nothing: every store of the STOW'd instance
	// is by an accepted request (the modality's first, then duplicates).
	_, meta3, _ := testdicom.DatasetOf(files[2])
	var stores []*journal.Event
	for _, ev := range journalKinds(t, data, "instance") {
		if ev.SOPInstanceUID != meta3.MediaStorageSOPInstanceUID {
			continue
		}
		stores = append(stores, ev)
		var rec struct {
			Source struct{ Channel, User string } `json:"source"`
		}
		json.Unmarshal(ev.Data, &rec)
		if ev.Kind == "instance.stored" && (rec.Source.Channel != "stow" || rec.Source.User != "ct-auth") {
			t.Errorf("STOW'd instance stored by %+v, want the modality's token user ct-auth", rec.Source)
		}
	}
	if len(stores) == 0 {
		t.Errorf("the STOW'd instance was never stored")
	}
	assertStoredIdentical(t, data, files)
	// The journal's User field is "the authenticated user of an HTTP
	// request": an instance stored by STOW-RS names it, as the DICOMweb
	// access events do.
	t.Run("journal names the STOW user", func(t *testing.T) {
		for _, ev := range stores {
			if ev.Kind == "instance.stored" && ev.User != "ct-auth" {
				t.Errorf("%s event of a STOW-RS store has User %q, want the token's user ct-auth (it is only in data.source.user)", ev.Kind, ev.User)
			}
		}
	})
	assertStoredIdentical(t, data, files)
}

// assertRenderedCT decodes a rendered JPEG (Go's decoder, not the
// server's code) and compares it with the fixture's pixels through its
// Modality LUT (slope 1, intercept -1024) and VOI window (center 40, width
// 80, LINEAR: PS3.3 C.11.2.1.2.1): a transposed, unwindowed or wrong image
// is far off; JPEG's loss is a few grey levels.
func assertRenderedCT(t *testing.T, path string, f fixture) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Errorf("rendered %s: Go's image/jpeg cannot decode it: %v", f.sop, err)
		return
	}
	if sz := img.Bounds().Size(); sz.X != f.columns || sz.Y != f.rows {
		t.Errorf("rendered %s: decodes to %v, want %d×%d", f.sop, sz, f.columns, f.rows)
		return
	}
	const c, w = 40.0, 80.0
	var sum float64
	for y := 0; y < f.rows; y++ {
		for x := 0; x < f.columns; x++ {
			hu := float64(binary.LittleEndian.Uint16(f.pixels[2*(y*f.columns+x):])) - 1024
			var want float64
			switch {
			case hu <= c-0.5-(w-1)/2:
				want = 0
			case hu > c-0.5+(w-1)/2:
				want = 255
			default:
				want = ((hu-(c-0.5))/(w-1) + 0.5) * 255
			}
			g := color.GrayModel.Convert(img.At(img.Bounds().Min.X+x, img.Bounds().Min.Y+y)).(color.Gray).Y
			sum += math.Abs(float64(g) - want)
		}
	}
	if mae := sum / float64(f.rows*f.columns); mae > 6 {
		t.Errorf("rendered %s: mean grey error %.1f against the windowed pixels (want ≤ 6)", f.sop, mae)
	} else {
		t.Logf("rendered %s: mean grey error %.2f", f.sop, mae)
	}
}
