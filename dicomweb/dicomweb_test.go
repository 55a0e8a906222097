package dicomweb

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/fsblob"
	"github.com/relais-health/relais/storage/memindex"
)

// fixture is a DICOMweb server over a real pipeline (fsblob, memindex,
// journal) on a temp dir.
type fixture struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	p   *ingest.Pipeline
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	b, err := fsblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ix := memindex.New()
	p := &ingest.Pipeline{Blobs: b, Index: ix, Journal: j, Limits: dicom.DefaultLimits(), ImplementationClassUID: "1.2.3"}
	srv := &Server{Index: ix, Blobs: b, Ingest: p, Journal: j, MaxResults: 100}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &fixture{t: t, srv: srv, ts: ts, p: p}
}

// store ingests a CT slice as C-STORE would and returns it.
func (f *fixture) store(c *testdicom.CT) *testdicom.CT {
	f.t.Helper()
	if c.SOPUID == "" {
		c.SOPUID = testdicom.UID()
	}
	if c.TransferSyntax == "" {
		c.TransferSyntax = dicom.ExplicitVRLittleEndian
	}
	ds, err := c.Dataset()
	if err != nil {
		f.t.Fatal(err)
	}
	_, err = f.p.Store(context.Background(), &ingest.Request{
		Source: storage.Source{Channel: "dimse"}, SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: c.SOPUID,
		TransferSyntaxUID: c.TransferSyntax, Data: bytes.NewReader(ds),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) get(path string, hdr ...string) *http.Response {
	f.t.Helper()
	rq, _ := http.NewRequest(http.MethodGet, f.ts.URL+DefaultBasePath+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		rq.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(rq)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// jsonResults decodes a QIDO or metadata answer.
func jsonResults(t *testing.T, resp *http.Response) []map[string]struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
} {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var out []map[string]struct {
		VR    string            `json:"vr"`
		Value []json.RawMessage `json:"Value"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	return out
}

func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var pn struct{ Alphabetic, Ideographic string }
	if json.Unmarshal(raw, &pn) == nil && (pn.Alphabetic != "" || pn.Ideographic != "") {
		return pn.Alphabetic + "=" + pn.Ideographic
	}
	return strings.TrimSpace(string(raw))
}

func TestParseAccept(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []mediaRange
	}{
		{"", []mediaRange{{Type: "*/*", Q: 1}}},
		{`multipart/related; type="application/dicom"; transfer-syntax=*`, []mediaRange{{Type: "multipart/related", Part: "application/dicom", TransferSyntax: "*", Q: 1}}},
		{`multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1`, []mediaRange{{Type: "multipart/related", Part: "application/octet-stream", TransferSyntax: "1.2.840.10008.1.2.1", Q: 1}}},
		{`image/png;q=0.5, image/jpeg`, []mediaRange{{Type: "image/jpeg", Q: 1, order: 1}, {Type: "image/png", Q: 0.5}}},
		{`application/json;q=0, application/dicom+json`, []mediaRange{{Type: "application/dicom+json", Q: 1, order: 1}}},
	} {
		got := parseAccept(tc.in)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parseAccept(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestOutputSyntax(t *testing.T) {
	const (
		impl = dicom.ImplicitVRLittleEndian
		expl = dicom.ExplicitVRLittleEndian
		jpeg = "1.2.840.10008.1.2.4.50"
		j2k  = "1.2.840.10008.1.2.4.90"
	)
	for _, tc := range []struct {
		stored, asked, want string
		ok                  bool
	}{
		{expl, "", expl, true},
		{impl, "", expl, true}, // the PS3.18 default, converted
		{impl, "*", impl, true},
		{expl, impl, impl, true},
		{jpeg, "", jpeg, true}, // compressed data is sent as stored
		{jpeg, "*", jpeg, true},
		{jpeg, jpeg, jpeg, true},
		{jpeg, expl, "", false}, // Relais does not decompress
		{jpeg, j2k, "", false},
		{expl, jpeg, "", false},
	} {
		got, ok := outputSyntax(tc.stored, tc.asked)
		if got != tc.want || ok != tc.ok {
			t.Errorf("outputSyntax(%s, %q) = %s %v, want %s %v", tc.stored, tc.asked, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseQIDO(t *testing.T) {
	for _, tc := range []struct {
		query   string
		level   query.Level
		study   string
		wantErr string
		check   func(t *testing.T, r *qidoRequest)
	}{
		{query: "PatientName=DOE*&limit=5&offset=2", level: query.Study, check: func(t *testing.T, r *qidoRequest) {
			k, ok := r.q.Get(dicom.TagPatientName)
			if !ok || k.Value != "DOE*" || r.limit != 5 || r.offset != 2 {
				t.Errorf("got %+v limit %d offset %d", k, r.limit, r.offset)
			}
		}},
		{query: "00100020=123&includefield=00081030,StudyID&includefield=PatientAge", level: query.Study, check: func(t *testing.T, r *qidoRequest) {
			if k, _ := r.q.Get(dicom.TagPatientID); k.Value != "123" {
				t.Errorf("PatientID by tag: %+v", k)
			}
			if _, ok := r.q.Get(dicom.NewTag(0x0010, 0x1010)); !ok {
				t.Error("includefield PatientAge not a return key")
			}
		}},
		{query: "StudyInstanceUID=1.2.3,1.2.4", level: query.Study, check: func(t *testing.T, r *qidoRequest) {
			if k, _ := r.q.Get(dicom.TagStudyInstanceUID); k.Value != `1.2.3\1.2.4` {
				t.Errorf("UID list: %q", k.Value)
			}
		}},
		{query: "ModalitiesInStudy=CT&ModalitiesInStudy=MR", level: query.Study, check: func(t *testing.T, r *qidoRequest) {
			if k, _ := r.q.Get(dicom.TagModalitiesInStudy); k.Value != `CT\MR` {
				t.Errorf("repeated CS: %q", k.Value)
			}
		}},
		{query: "OtherPatientIDsSequence.PatientID=INS1", level: query.Study, check: func(t *testing.T, r *qidoRequest) {
			k, _ := r.q.Get(dicom.TagOtherPatientIDsSequence)
			if len(k.Items) != 1 || k.Items[0].Value != "INS1" {
				t.Errorf("sequence key: %+v", k)
			}
		}},
		{query: "Modality=CT", level: query.Series, study: "1.2.3", check: func(t *testing.T, r *qidoRequest) {
			if k, _ := r.q.Get(dicom.TagStudyInstanceUID); k.Value != "1.2.3" {
				t.Errorf("study from the path: %+v", k)
			}
			if r.limit != 100 {
				t.Errorf("server maximum not applied: %d", r.limit)
			}
		}},
		{query: "includefield=all&fuzzymatching=true", level: query.Study, check: func(t *testing.T, r *qidoRequest) {
			if !r.all || !r.fuzzy {
				t.Errorf("all %v fuzzy %v", r.all, r.fuzzy)
			}
		}},
		{query: "NoSuchKeyword=1", level: query.Study, wantErr: "unknown attribute"},
		{query: "limit=-1", level: query.Study, wantErr: "non-negative"},
		{query: "limit=ten", level: query.Study, wantErr: "non-negative"},
		{query: "fuzzymatching=maybe", level: query.Study, wantErr: "fuzzymatching"},
		{query: "PatientName=A&PatientName=B", level: query.Study, wantErr: "given 2 times"},
		{query: "OtherPatientIDsSequence=X", level: query.Study, wantErr: "is a sequence"},
		{query: "PatientID.PatientName=X", level: query.Study, wantErr: "not a sequence"},
	} {
		v, _ := url.ParseQuery(tc.query)
		r, err := parseQIDO(v, tc.level, tc.study, "", 100)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.query, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		tc.check(t, r)
	}
}

func TestQIDO(t *testing.T) {
	f := newFixture(t)
	st1, st2 := testdicom.UID(), testdicom.UID()
	se1 := testdicom.UID()
	for i := 1; i <= 3; i++ {
		f.store(&testdicom.CT{PatientName: "Dupont^Jean", PatientID: "P1", StudyUID: st1, SeriesUID: se1, Instance: i,
			AccessionNumber: "ACC1", StudyDate: "20261120", StudyDescription: "CT HEAD"})
	}
	f.store(&testdicom.CT{PatientName: "Müller^Anna", Charset: "ISO_IR 192", PatientID: "P2", StudyUID: st2, SeriesUID: testdicom.UID(),
		Instance: 1, AccessionNumber: "ACC2", StudyDate: "20261122", Modality: "MR"})
	f.store(&testdicom.CT{PatientNameRaw: []byte("\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"), Charset: `\ISO 2022 IR 87`, PatientID: "P3",
		StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), Instance: 1, StudyDate: "20261123"})

	for _, tc := range []struct {
		path  string
		want  []string // Patient IDs, in index order is not guaranteed: compared as a set
		check func(t *testing.T, rows []map[string]struct {
			VR    string            `json:"vr"`
			Value []json.RawMessage `json:"Value"`
		})
	}{
		{path: "/studies?PatientName=dup*", want: []string{"P1"}},
		{path: "/studies?PatientName=M%C3%BCller*", want: []string{"P2"}},
		{path: "/studies?PatientName=%E5%B1%B1%E7%94%B0*", want: []string{"P3"}}, // 山田*
		{path: "/studies?StudyDate=20261121-", want: []string{"P2", "P3"}},
		{path: "/studies?StudyDate=20261120-20261122&ModalitiesInStudy=MR", want: []string{"P2"}},
		{path: "/studies?AccessionNumber=ACC1", want: []string{"P1"}, check: func(t *testing.T, rows []map[string]struct {
			VR    string            `json:"vr"`
			Value []json.RawMessage `json:"Value"`
		}) {
			r := rows[0]
			if str(r["00201208"].Value[0]) != "3" || str(r["00201206"].Value[0]) != "1" {
				t.Errorf("related counts: %s %s", r["00201208"].Value, r["00201206"].Value)
			}
			if r["00100010"].VR != "PN" || str(r["00100010"].Value[0]) != "Dupont^Jean=" {
				t.Errorf("PN: %+v", r["00100010"])
			}
			if !strings.HasSuffix(str(r["00081190"].Value[0]), "/dicom-web/studies/"+st1) {
				t.Errorf("RetrieveURL %s", r["00081190"].Value)
			}
			if _, ok := r["00081030"]; !ok {
				t.Error("StudyDescription missing")
			}
		}},
		{path: "/studies?StudyInstanceUID=" + st1 + "," + st2, want: []string{"P1", "P2"}},
		{path: "/studies/" + st1 + "/series", want: []string{""}, check: func(t *testing.T, rows []map[string]struct {
			VR    string            `json:"vr"`
			Value []json.RawMessage `json:"Value"`
		}) {
			if str(rows[0]["0020000E"].Value[0]) != se1 || str(rows[0]["00201209"].Value[0]) != "3" {
				t.Errorf("series row %+v", rows[0])
			}
		}},
		{path: "/series?Modality=MR", want: []string{"P2"}},
		{path: "/studies/" + st1 + "/series/" + se1 + "/instances?InstanceNumber=2", want: []string{""}},
		{path: "/studies/" + st1 + "/instances", want: []string{"", "", ""}},
		{path: "/instances?PatientID=P1&limit=2", want: []string{"P1", "P1"}},
		{path: "/instances?PatientID=P1&offset=2", want: []string{"P1"}},
		{path: "/studies?PatientID=NOBODY", want: nil},
		{path: "/studies?PatientID=P1&includefield=all", want: []string{"P1"}},
	} {
		resp := f.get(tc.path)
		rows := jsonResults(t, resp)
		if len(rows) != len(tc.want) {
			t.Errorf("%s: %d results, want %d", tc.path, len(rows), len(tc.want))
			continue
		}
		got := map[string]int{}
		for _, r := range rows {
			if v := r["00100020"].Value; len(v) > 0 {
				got[str(v[0])]++
			} else {
				got[""]++
			}
		}
		want := map[string]int{}
		for _, w := range tc.want {
			want[w]++
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: patients %v, want %v", tc.path, got, want)
		}
		if tc.check != nil && len(rows) > 0 {
			tc.check(t, rows)
		}
	}

	// The Japanese name comes back in UTF-8, in its ideographic group.
	rows := jsonResults(t, f.get("/studies?PatientID=P3"))
	if got := str(rows[0]["00100010"].Value[0]); got != "=山田^太郎" && !strings.Contains(got, "山田^太郎") {
		t.Errorf("ISO 2022 name: %q", got)
	}

	// fuzzymatching is answered honestly.
	resp := f.get("/studies?PatientName=dupon&fuzzymatching=true")
	if w := resp.Header.Get("Warning"); !strings.Contains(w, "fuzzymatching") {
		t.Errorf("no fuzzymatching warning: %q", w)
	}
	// More results than the server maximum: truncated with a warning.
	f.srv.MaxResults = 2
	resp = f.get("/instances")
	if rows := jsonResults(t, resp); len(rows) != 2 || !strings.Contains(resp.Header.Get("Warning"), "maximum") {
		t.Errorf("maximum: %d results, Warning %q", len(rows), resp.Header.Get("Warning"))
	}
	// A limit the client asked for is no truncation to warn about.
	resp = f.get("/instances?limit=1")
	if rows := jsonResults(t, resp); len(rows) != 1 || resp.Header.Get("Warning") != "" {
		t.Errorf("limit=1: %d results, Warning %q", len(rows), resp.Header.Get("Warning"))
	}
	// Errors.
	for _, tc := range []struct {
		path, accept string
		status       int
	}{
		{"/studies?Bogus=1", "", 400},
		{"/studies?limit=x", "", 400},
		{"/studies", "application/dicom+xml", 406},
		{"/nothing", "", 404},
	} {
		resp := f.get(tc.path, "Accept", tc.accept)
		if resp.StatusCode != tc.status || resp.Header.Get("Warning") == "" && tc.status != 404 {
			t.Errorf("%s (Accept %q): %d, want %d; Warning %q", tc.path, tc.accept, resp.StatusCode, tc.status, resp.Header.Get("Warning"))
		}
	}
}

// parts reads a multipart/related answer.
func parts(t *testing.T, resp *http.Response) (string, [][]byte, []string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var bodies [][]byte
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		bodies = append(bodies, b)
		types = append(types, p.Header.Get("Content-Type"))
	}
	return params["type"], bodies, types
}

func TestRetrieveTransferSyntaxes(t *testing.T) {
	f := newFixture(t)
	c := f.store(&testdicom.CT{PatientID: "P1", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), Instance: 1,
		TransferSyntax: dicom.ImplicitVRLittleEndian})
	orig, _ := c.Dataset()
	path := "/studies/" + c.StudyUID + "/series/" + c.SeriesUID + "/instances/" + c.SOPUID

	// transfer-syntax=*: the stored bytes, data set identical.
	_, bodies, types := parts(t, f.get(path, "Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`))
	if len(bodies) != 1 || !strings.Contains(types[0], dicom.ImplicitVRLittleEndian) {
		t.Fatalf("parts %d types %v", len(bodies), types)
	}
	meta, off, err := dicom.ReadFileMeta(bytes.NewReader(bodies[0]))
	if err != nil || meta.TransferSyntaxUID != dicom.ImplicitVRLittleEndian || !bytes.Equal(bodies[0][off:], orig) {
		t.Fatalf("as stored: meta %+v err %v identical %v", meta, err, bytes.Equal(bodies[0][off:], orig))
	}

	// No parameter: Explicit VR Little Endian (PS3.18 default), converted.
	_, bodies, types = parts(t, f.get(path, "Accept", `multipart/related; type="application/dicom"`))
	meta, off, err = dicom.ReadFileMeta(bytes.NewReader(bodies[0]))
	if err != nil || meta.TransferSyntaxUID != dicom.ExplicitVRLittleEndian || !strings.HasSuffix(types[0], dicom.ExplicitVRLittleEndian) {
		t.Fatalf("default: meta %+v err %v type %s", meta, err, types[0])
	}
	exp := *c
	exp.TransferSyntax = dicom.ExplicitVRLittleEndian
	want, _ := exp.Dataset()
	if !bytes.Equal(bodies[0][off:], want) {
		t.Fatal("converted data set differs from the same instance encoded in explicit VR")
	}

	// Single part.
	resp := f.get(path, "Accept", "application/dicom")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/dicom") || len(b) < 132 || string(b[128:132]) != "DICM" {
		t.Fatalf("single part: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// A compressed syntax cannot be produced: 406 with a reason.
	resp = f.get(path, "Accept", `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50`)
	if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(resp.Header.Get("Warning"), "transfer syntax") {
		t.Fatalf("JPEG asked: %d %q", resp.StatusCode, resp.Header.Get("Warning"))
	}
	// Unknown instance, or an instance under the wrong series: 404.
	for _, p := range []string{
		"/studies/" + c.StudyUID + "/series/" + c.SeriesUID + "/instances/1.2.3",
		"/studies/" + c.StudyUID + "/series/1.2.3/instances/" + c.SOPUID,
		"/studies/1.2.3",
	} {
		if resp := f.get(p); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestMetadataAndFrames(t *testing.T) {
	f := newFixture(t)
	st, se := testdicom.UID(), testdicom.UID()
	var cs []*testdicom.CT
	for i := 1; i <= 70; i++ { // more than one metadata chunk
		cs = append(cs, f.store(&testdicom.CT{PatientName: "Dupont^Jean", PatientID: "P1", StudyUID: st, SeriesUID: se, Instance: i, Rows: 16, Columns: 16}))
	}
	rows := jsonResults(t, f.get("/studies/"+st+"/metadata"))
	if len(rows) != 70 {
		t.Fatalf("%d metadata objects", len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[str(r["00080018"].Value[0])] = true
		if r["7FE00010"].VR != "OW" {
			t.Fatalf("pixel data entry %+v", r["7FE00010"])
		}
	}
	for _, c := range cs {
		if !seen[c.SOPUID] {
			t.Fatalf("instance %s missing from metadata", c.SOPUID)
		}
	}
	// gzip, and the same content.
	resp := f.get("/studies/"+st+"/metadata", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatal("no gzip")
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var z []json.RawMessage
	if err := json.NewDecoder(zr).Decode(&z); err != nil || len(z) != 70 {
		t.Fatalf("gzip metadata: %v, %d objects", err, len(z))
	}
	// The Bulk Data URI of the pixel data serves the frame.
	c := cs[4]
	inst := "/studies/" + st + "/series/" + se + "/instances/" + c.SOPUID
	var objs []map[string]struct{ BulkDataURI string }
	mb, _ := io.ReadAll(f.get(inst + "/metadata").Body)
	if err := json.Unmarshal(mb, &objs); err != nil || len(objs) != 1 {
		t.Fatalf("instance metadata: %v %s", err, mb)
	}
	bulk := objs[0]["7FE00010"]
	if !strings.HasSuffix(bulk.BulkDataURI, inst+"/bulkdata/7FE00010") {
		t.Fatalf("BulkDataURI %q", bulk.BulkDataURI)
	}
	ds, _ := c.Dataset()
	pixels := ds[len(ds)-16*16*2:]
	u, _ := url.Parse(bulk.BulkDataURI)
	_, bodies, _ := parts(t, f.get(strings.TrimPrefix(u.Path, DefaultBasePath)))
	if len(bodies) != 1 || !bytes.Equal(bodies[0], pixels) {
		t.Fatal("bulk data differs from the pixel data")
	}
	// Frames: octet-stream, multipart, explicit VR little endian.
	typ, bodies, types := parts(t, f.get(inst+"/frames/1", "Accept", `multipart/related; type="application/octet-stream"; transfer-syntax=*`))
	if typ != "application/octet-stream" || len(bodies) != 1 || !bytes.Equal(bodies[0], pixels) || !strings.Contains(types[0], dicom.ExplicitVRLittleEndian) {
		t.Fatalf("frame: type %s, %d parts, types %v", typ, len(bodies), types)
	}
	for _, tc := range []struct {
		path   string
		accept string
		status int
	}{
		{inst + "/frames/2", "", 404},
		{inst + "/frames/0", "", 400},
		{inst + "/frames/x", "", 400},
		{inst + "/frames/1", `multipart/related; type="image/jpeg"`, 406},
		{inst + "/rendered", "image/png", 200},
		{inst + "/rendered?window=40,80", "image/jpeg", 200},
		{inst + "/rendered?window=40", "image/jpeg", 400},
		{inst + "/rendered", "image/tiff", 406},
		{inst + "/thumbnail", "", 200},
		{"/studies/" + st + "/thumbnail", "", 200},
		{"/studies/" + st + "/series/" + se + "/thumbnail", "", 200},
		{inst + "/bulkdata/00091010", "", 404},
		{inst + "/bulkdata/zz", "", 400},
	} {
		resp := f.get(tc.path, "Accept", tc.accept)
		if resp.StatusCode != tc.status {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("%s (Accept %q): %d, want %d: %s", tc.path, tc.accept, resp.StatusCode, tc.status, b)
		}
	}
}

func TestSTOWThroughHTTP(t *testing.T) {
	f := newFixture(t)
	st := testdicom.UID()
	var files [][]byte
	for i := 1; i <= 2; i++ {
		c := &testdicom.CT{PatientID: "S1", StudyUID: st, SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(), Instance: i, TransferSyntax: dicom.ExplicitVRLittleEndian}
		b, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	body := func(parts ...[]byte) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			fmt.Fprintf(&b, "--BND\r\nContent-Type: application/dicom\r\n\r\n")
			b.Write(p)
			b.WriteString("\r\n")
		}
		b.WriteString("--BND--\r\n")
		return b.Bytes()
	}
	post := func(path, ct string, b []byte) (*http.Response, string) {
		resp, err := http.Post(f.ts.URL+DefaultBasePath+path, ct, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, string(out)
	}
	const ct = `multipart/related; type="application/dicom"; boundary=BND`
	if resp, _ := post("/studies", "application/dicom", files[0]); resp.StatusCode != 415 {
		t.Errorf("single application/dicom body: %d, want 415", resp.StatusCode)
	}
	if resp, _ := post("/studies", `multipart/related; type="application/dicom"`, body(files[0])); resp.StatusCode != 400 {
		t.Errorf("no boundary: %d, want 400", resp.StatusCode)
	}
	if resp, out := post("/studies/1.2.3", ct, body(files[0])); resp.StatusCode != 409 || !strings.Contains(out, "00081198") {
		t.Errorf("other study: %d %s", resp.StatusCode, out)
	}
	if _, err := f.srv.Index.GetInstance(context.Background(), sopOf(t, files[0])); err == nil {
		t.Fatal("instance of another study stored")
	}
	resp, out := post("/studies/"+st, ct, body(files...))
	if resp.StatusCode != 200 || strings.Count(out, "00081155") != 2 {
		t.Fatalf("store: %d %s", resp.StatusCode, out)
	}
	for _, b := range files {
		if _, err := f.srv.Index.GetInstance(context.Background(), sopOf(t, b)); err != nil {
			t.Fatalf("stored instance not indexed: %v", err)
		}
	}
	// GET on a STOW URL with POST only, and the reverse.
	rq, _ := http.NewRequest(http.MethodDelete, f.ts.URL+DefaultBasePath+"/studies", nil)
	r, _ := http.DefaultClient.Do(rq)
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", r.StatusCode)
	}
}

func sopOf(t *testing.T, file []byte) string {
	m, _, err := dicom.ReadFileMeta(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	return m.MediaStorageSOPInstanceUID
}

func TestAuthorizeAndCORS(t *testing.T) {
	f := newFixture(t)
	var asked []Access
	f.srv.Authorize = func(w http.ResponseWriter, r *http.Request, a Access) (Principal, bool) {
		asked = append(asked, a)
		if r.Header.Get("Authorization") != "Bearer good" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="relais"`)
			w.WriteHeader(http.StatusUnauthorized)
			return Principal{}, false
		}
		return Principal{User: "alice"}, true
	}
	f.srv.AllowedOrigins = []string{"https://viewer.example"}
	if resp := f.get("/studies"); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp := f.get("/studies", "Authorization", "Bearer good"); resp.StatusCode != 200 {
		t.Errorf("good token: %d", resp.StatusCode)
	}
	resp, _ := http.Post(f.ts.URL+DefaultBasePath+"/studies", "multipart/related; boundary=x", strings.NewReader(""))
	if resp.StatusCode != 401 || asked[len(asked)-1] != Store {
		t.Errorf("STOW without token: %d, access %v", resp.StatusCode, asked)
	}
	// Preflight: answered without credentials, for allowed origins only.
	pre := func(origin string) *http.Response {
		rq, _ := http.NewRequest(http.MethodOptions, f.ts.URL+DefaultBasePath+"/studies", nil)
		rq.Header.Set("Origin", origin)
		rq.Header.Set("Access-Control-Request-Method", "GET")
		rq.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := pre("https://viewer.example"); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://viewer.example" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := pre("https://evil.example"); r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", r.StatusCode, r.Header)
	}
	r := f.get("/studies", "Authorization", "Bearer good", "Origin", "https://viewer.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://viewer.example" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Warning") {
		t.Errorf("CORS headers on GET: %v", r.Header)
	}
}
