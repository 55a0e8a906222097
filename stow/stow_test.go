package stow

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/badgerindex"
	"github.com/relais-health/relais/storage/fsblob"
	"github.com/relais-health/relais/storage/memindex"
)

const boundary = "relais-stow-test-boundary"

var contentType = `multipart/related; type="application/dicom"; boundary=` + boundary

func newPipeline(t testing.TB, dir string, ix storage.Index) *ingest.Pipeline {
	t.Helper()
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
	return &ingest.Pipeline{Blobs: b, Index: ix, Journal: j, Limits: dicom.DefaultLimits(), ImplementationClassUID: "1.2.3"}
}

func openIndex(t testing.TB, kind, dir string) storage.Index {
	t.Helper()
	if kind == "memindex" {
		return memindex.New()
	}
	ix, err := badgerindex.Open(filepath.Join(dir, "index"), badgerindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

// tpart is one part of a test body: its headers (nil: Content-Type
// application/dicom) and its bytes.
type tpart struct {
	hdr  []string
	data []byte
}

func dcm(data []byte) tpart { return tpart{data: data} }

func typed(ct string, data []byte) tpart {
	if ct == "" {
		return tpart{hdr: []string{}, data: data}
	}
	return tpart{hdr: []string{"Content-Type: " + ct}, data: data}
}

// multipartBody encodes parts with the test boundary, closing delimiter
// included.
func multipartBody(parts ...tpart) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n")
		hdr := p.hdr
		if hdr == nil {
			hdr = []string{"Content-Type: application/dicom"}
		}
		for _, h := range hdr {
			b.WriteString(h + "\r\n")
		}
		b.WriteString("\r\n")
		b.Write(p.data)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

type instance struct {
	c    *testdicom.CT
	file []byte
}

func newCT(t testing.TB, study string, mod func(*testdicom.CT)) instance {
	t.Helper()
	c := &testdicom.CT{PatientName: "Doe^Jane", PatientID: "123", StudyUID: study, SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(), Instance: 1,
		StudyDescription: "CT HEAD", Rows: 16, Columns: 16}
	if mod != nil {
		mod(c)
	}
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	return instance{c, f}
}

func retrieveURL(study, series, sop string) string {
	u := "https://pacs.example/dicom-web/studies/" + study
	if series != "" {
		u += "/series/" + series + "/instances/" + sop
	}
	return u
}

// blobCount walks the blob store (partial blobs included).
func blobCount(t testing.TB, p *ingest.Pipeline) int {
	n := 0
	if err := p.Blobs.Walk(context.Background(), func(string, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func indexed(t testing.TB, p *ingest.Pipeline, sop string) bool {
	_, err := p.Index.GetInstance(context.Background(), sop)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestStore(t *testing.T) {
	study := testdicom.UID()
	a := newCT(t, study, nil)
	b := newCT(t, study, func(c *testdicom.CT) { c.Instance = 2 })
	other := newCT(t, testdicom.UID(), nil)
	mismatch := newCT(t, study, func(c *testdicom.CT) { c.SOPClassOverride = dicom.MRImageStorage })
	full := multipartBody(dcm(a.file), dcm(b.file))
	// An instance announcing a transfer syntax nobody knows.
	unknownTS := newCT(t, study, nil)
	{
		ds, err := unknownTS.c.Dataset()
		if err != nil {
			t.Fatal(err)
		}
		var f bytes.Buffer
		dicom.WriteFileMeta(&f, dicom.FileMeta{MediaStorageSOPClassUID: dicom.CTImageStorage, MediaStorageSOPInstanceUID: unknownTS.c.SOPUID,
			TransferSyntaxUID: "1.2.3.4.5.6"})
		f.Write(ds)
		unknownTS.file = f.Bytes()
	}

	// An instance of a class that is not a storage SOP class.
	verification := newCT(t, study, func(c *testdicom.CT) { c.SOPClassOverride = "1.2.840.10008.1.1" })
	{
		ds, _ := verification.c.Dataset()
		var f bytes.Buffer
		dicom.WriteFileMeta(&f, dicom.FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.1.1", MediaStorageSOPInstanceUID: verification.c.SOPUID,
			TransferSyntaxUID: dicom.ExplicitVRLittleEndian})
		f.Write(ds)
		verification.file = f.Bytes()
	}

	type want struct {
		status   int
		stored   []instance // stored and indexed
		notSaved []instance // neither stored nor indexed
		failed   map[string]uint16
		other    []uint16 // Other Failures Sequence reasons
		warnings int
	}
	cases := []struct {
		name   string
		study  string // target study
		policy ingest.DuplicatePolicy
		body   []byte
		want   want
	}{
		{name: "one", body: multipartBody(dcm(a.file)), want: want{status: 200, stored: []instance{a}}},
		{name: "two, study URL", study: study, body: full, want: want{status: 200, stored: []instance{a, b}}},
		{name: "part without Content-Type takes the type parameter", body: multipartBody(typed("", a.file)), want: want{status: 200, stored: []instance{a}}},
		{name: "part with transfer-syntax parameter", body: multipartBody(typed(`application/dicom; transfer-syntax=1.2.840.10008.1.2.1`, a.file)),
			want: want{status: 200, stored: []instance{a}}},
		{name: "base64 part", body: multipartBody(tpart{hdr: []string{"Content-Type: application/dicom", "Content-Transfer-Encoding: base64"},
			data: []byte(base64.StdEncoding.EncodeToString(a.file))}), want: want{status: 200, stored: []instance{a}}},
		{name: "other study with a study URL", study: study, body: multipartBody(dcm(other.file)),
			want: want{status: 409, notSaved: []instance{other}, failed: map[string]uint16{other.c.SOPUID: FailureStudyMismatch}}},
		{name: "mix: good, other study, not DICOM, good", study: study,
			body: multipartBody(dcm(a.file), dcm(other.file), dcm([]byte("hello, not DICOM")), dcm(b.file)),
			want: want{status: 202, stored: []instance{a, b}, notSaved: []instance{other},
				failed: map[string]uint16{other.c.SOPUID: FailureStudyMismatch}, other: []uint16{FailureCannotUnderstand}}},
		{name: "not DICOM", body: multipartBody(dcm(bytes.Repeat([]byte("x"), 500))),
			want: want{status: 409, other: []uint16{FailureCannotUnderstand}}},
		{name: "part of another media type", body: multipartBody(typed("image/jpeg", a.file), dcm(b.file)),
			want: want{status: 202, stored: []instance{b}, notSaved: []instance{a}, other: []uint16{FailureCannotUnderstand}}},
		{name: "metadata part in a dicom body", body: multipartBody(typed("application/dicom+json", []byte("[]"))),
			want: want{status: 409, other: []uint16{FailureCannotUnderstand}}},
		{name: "truncated last part", body: full[:len(full)-len(b.file)/2],
			want: want{status: 202, stored: []instance{a}, notSaved: []instance{b}, failed: map[string]uint16{b.c.SOPUID: FailureCannotUnderstand}}},
		{name: "truncated in the file meta", body: full[:len(full)-len(b.file)-len("\r\n--"+boundary+"--\r\n")+150],
			want: want{status: 202, stored: []instance{a}, notSaved: []instance{b}, other: []uint16{FailureCannotUnderstand}}},
		{name: "missing closing boundary", body: full[:len(full)-len("\r\n--"+boundary+"--\r\n")],
			want: want{status: 202, stored: []instance{a}, notSaved: []instance{b}, failed: map[string]uint16{b.c.SOPUID: FailureCannotUnderstand}}},
		{name: "closing delimiter cut after the boundary", body: full[:len(full)-len("--\r\n")],
			want: want{status: 200, stored: []instance{a, b}}},
		{name: "data set truncated in a well-framed part", body: multipartBody(dcm(a.file[:len(a.file)-100]), dcm(b.file)),
			want: want{status: 202, stored: []instance{b}, notSaved: []instance{a}, failed: map[string]uint16{a.c.SOPUID: FailureCannotUnderstand}}},
		{name: "garbage after the first part", body: append(multipartBody(dcm(a.file))[:len(multipartBody(dcm(a.file)))-len("--\r\n")],
			[]byte("\r\nno colon in this header line\r\n\r\nxx\r\n--"+boundary+"--\r\n")...),
			want: want{status: 202, stored: []instance{a}, other: []uint16{FailureCannotUnderstand}}},
		{name: "unknown transfer syntax", body: multipartBody(dcm(unknownTS.file), dcm(a.file)),
			want: want{status: 202, stored: []instance{a}, notSaved: []instance{unknownTS}, failed: map[string]uint16{unknownTS.c.SOPUID: FailureTransferSyntaxNotSupp}}},
		{name: "not a storage SOP class", body: multipartBody(dcm(verification.file), dcm(a.file)),
			want: want{status: 202, stored: []instance{a}, notSaved: []instance{verification}, failed: map[string]uint16{verification.c.SOPUID: FailureSOPClassNotSupported}}},
		{name: "not a storage SOP class, truncated", body: multipartBody(dcm(a.file), dcm(verification.file))[:len(multipartBody(dcm(a.file), dcm(verification.file)))-100],
			want: want{status: 202, stored: []instance{a}, notSaved: []instance{verification}, failed: map[string]uint16{verification.c.SOPUID: FailureSOPClassNotSupported}}},
		{name: "SOP class mismatch is a warning", body: multipartBody(dcm(mismatch.file)),
			want: want{status: 202, stored: []instance{mismatch}, warnings: 1}},
		{name: "duplicate, keep-first", policy: ingest.KeepFirst, body: multipartBody(dcm(a.file), dcm(a.file)),
			want: want{status: 200, stored: []instance{a}}},
		{name: "duplicate, reject", policy: ingest.Reject, body: multipartBody(dcm(a.file), dcm(a.file)),
			want: want{status: 202, stored: []instance{a}, failed: map[string]uint16{a.c.SOPUID: FailureDuplicate}}},
	}
	for _, kind := range []string{"memindex", "badgerindex"} {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				dir := t.TempDir()
				p := newPipeline(t, dir, openIndex(t, kind, dir))
				p.Duplicates = tc.policy
				resp, err := Store(ctx, p, contentType, bytes.NewReader(tc.body), Options{StudyInstanceUID: tc.study, RetrieveURL: retrieveURL})
				if err != nil {
					t.Fatal(err)
				}
				w := tc.want
				if resp.HTTPStatus != w.status {
					t.Errorf("status %d, want %d; reasons %q", resp.HTTPStatus, w.status, resp.Reasons())
				}
				wantFailed := len(w.failed) + len(w.other)
				if resp.Stored != len(w.stored)+boolInt(tc.policy == ingest.KeepFirst && strings.HasPrefix(tc.name, "duplicate")) ||
					resp.Failed != wantFailed || resp.Warnings != w.warnings {
					t.Errorf("stored %d failed %d warnings %d; want %d %d %d; reasons %q", resp.Stored, resp.Failed, resp.Warnings,
						len(w.stored), wantFailed, w.warnings, resp.Reasons())
				}
				for _, in := range w.stored {
					if !indexed(t, p, in.c.SOPUID) {
						t.Errorf("%s not indexed", in.c.SOPUID)
					}
				}
				for _, in := range w.notSaved {
					if indexed(t, p, in.c.SOPUID) {
						t.Errorf("%s indexed", in.c.SOPUID)
					}
				}
				if n := blobCount(t, p); n != len(w.stored) {
					t.Errorf("%d blobs, want %d", n, len(w.stored))
				}
				for _, f := range resp.FailedSOPs {
					if r, ok := w.failed[f.SOPInstanceUID]; !ok || r != f.FailureReason {
						t.Errorf("failed %+v, want reason %04X", f, r)
					}
				}
				if len(resp.FailedSOPs) != len(w.failed) {
					t.Errorf("failed SOPs %+v, want %v", resp.FailedSOPs, w.failed)
				}
				if len(resp.Other) != len(w.other) {
					t.Errorf("other failures %+v, want %04X", resp.Other, w.other)
				}
				for i := range min(len(resp.Other), len(w.other)) {
					if resp.Other[i].FailureReason != w.other[i] {
						t.Errorf("other failure %+v, want %04X", resp.Other[i], w.other[i])
					}
				}
				checkJSON(t, resp, tc.study)
				checkXML(t, resp)
			})
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkJSON decodes the DICOM JSON response and checks it against resp.
func checkJSON(t *testing.T, resp *Response, study string) {
	t.Helper()
	var buf bytes.Buffer
	if err := resp.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	type jattr struct {
		VR    string            `json:"vr"`
		Value []json.RawMessage `json:"Value"`
	}
	var ds map[string]jattr
	if err := json.Unmarshal(buf.Bytes(), &ds); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	url, ok := ds["00081190"]
	if !ok || url.VR != "UR" {
		t.Errorf("no Retrieve URL: %s", buf.Bytes())
	}
	if study != "" {
		if len(url.Value) != 1 || string(url.Value[0]) != `"`+retrieveURL(study, "", "")+`"` {
			t.Errorf("study Retrieve URL %s", url.Value)
		}
	}
	items := func(tag string, want int) []map[string]jattr {
		sq, ok := ds[tag]
		if want == 0 {
			if ok {
				t.Errorf("%s present: %s", tag, buf.Bytes())
			}
			return nil
		}
		if !ok || sq.VR != "SQ" || len(sq.Value) != want {
			t.Fatalf("%s: %d items, want %d: %s", tag, len(sq.Value), want, buf.Bytes())
		}
		var out []map[string]jattr
		for _, v := range sq.Value {
			var it map[string]jattr
			if err := json.Unmarshal(v, &it); err != nil {
				t.Fatal(err)
			}
			out = append(out, it)
		}
		return out
	}
	str := func(a jattr) string {
		var s string
		if len(a.Value) == 1 {
			json.Unmarshal(a.Value[0], &s)
		}
		return s
	}
	num := func(a jattr) int {
		n := -1
		if len(a.Value) == 1 {
			json.Unmarshal(a.Value[0], &n)
		}
		return n
	}
	for i, it := range items("00081199", len(resp.Referenced)) {
		r := resp.Referenced[i]
		if str(it["00081150"]) != r.SOPClassUID || str(it["00081155"]) != r.SOPInstanceUID || r.SOPInstanceUID == "" {
			t.Errorf("referenced item %v, want %+v", it, r)
		}
		if u := str(it["00081190"]); u != retrieveURL(r.StudyUID, r.SeriesUID, r.SOPInstanceUID) || !strings.Contains(u, "/instances/"+r.SOPInstanceUID) {
			t.Errorf("instance Retrieve URL %q", u)
		}
		if w, ok := it["00081196"]; ok != (r.WarningReason != 0) || (ok && (num(w) != int(r.WarningReason) || w.VR != "US")) {
			t.Errorf("warning reason %v, want %04X", w, r.WarningReason)
		}
	}
	for i, it := range items("00081198", len(resp.FailedSOPs)) {
		f := resp.FailedSOPs[i]
		if str(it["00081155"]) != f.SOPInstanceUID || str(it["00081150"]) != f.SOPClassUID || num(it["00081197"]) != int(f.FailureReason) {
			t.Errorf("failed item %v, want %+v", it, f)
		}
	}
	for i, it := range items("0008119A", len(resp.Other)) {
		if num(it["00081197"]) != int(resp.Other[i].FailureReason) {
			t.Errorf("other failure item %v", it)
		}
	}
}

func checkXML(t *testing.T, resp *Response) {
	t.Helper()
	var buf bytes.Buffer
	if err := resp.WriteXML(&buf); err != nil {
		t.Fatal(err)
	}
	type xattr struct {
		Tag   string   `xml:"tag,attr"`
		VR    string   `xml:"vr,attr"`
		Value []string `xml:"Value"`
		Items []struct {
			Number int     `xml:"number,attr"`
			Attrs  []xattr `xml:"DicomAttribute"`
		} `xml:"Item"`
	}
	var doc struct {
		XMLName xml.Name
		Attrs   []xattr `xml:"DicomAttribute"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if doc.XMLName.Local != "NativeDicomModel" || doc.XMLName.Space != "http://dicom.nema.org/PS3.19/models/NativeDICOM" {
		t.Errorf("root %v", doc.XMLName)
	}
	for _, a := range doc.Attrs {
		if a.Tag == "00081199" {
			if len(a.Items) != len(resp.Referenced) {
				t.Errorf("XML: %d referenced items, want %d", len(a.Items), len(resp.Referenced))
			}
			for i, it := range a.Items {
				if it.Number != i+1 || len(it.Attrs) < 3 || it.Attrs[1].Value[0] != resp.Referenced[i].SOPInstanceUID {
					t.Errorf("XML item %+v", it)
				}
			}
		}
	}
}

func TestStoreFromFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newPipeline(t, dir, openIndex(t, "badgerindex", dir))
	for _, ts := range []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian} {
		paths, err := testdicom.Study(filepath.Join(dir, "files", ts), 4, ts)
		if err != nil {
			t.Fatal(err)
		}
		// Stream the files: the body is never in memory as a whole.
		var rs []io.Reader
		for _, path := range paths {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rs = append(rs, strings.NewReader("--"+boundary+"\r\nContent-Type: application/dicom\r\n\r\n"), f, strings.NewReader("\r\n"))
		}
		rs = append(rs, strings.NewReader("--"+boundary+"--"))
		resp, err := Store(ctx, p, `multipart/related; boundary="`+boundary+`"; type="application/dicom"`, io.MultiReader(rs...),
			Options{Source: storage.Source{RemoteAddr: "192.0.2.7:5000", CallingAE: "alice"}, RetrieveURL: retrieveURL})
		if err != nil {
			t.Fatal(err)
		}
		if resp.HTTPStatus != http.StatusOK || resp.Stored != 4 {
			t.Fatalf("%s: status %d stored %d: %q", ts, resp.HTTPStatus, resp.Stored, resp.Reasons())
		}
		ds, meta, err := testdicom.DatasetOf(paths[0])
		if err != nil {
			t.Fatal(err)
		}
		inst, err := p.Index.GetInstance(ctx, meta.MediaStorageSOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if inst.Source.Channel != "stow" || inst.Source.RemoteAddr != "192.0.2.7:5000" || inst.TransferSyntaxUID != ts {
			t.Errorf("index record %+v", inst)
		}
		if resp.RetrieveURL != retrieveURL(inst.StudyInstanceUID, "", "") {
			t.Errorf("study Retrieve URL %q", resp.RetrieveURL)
		}
		blob, err := p.Blobs.Open(ctx, inst.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		_, off, err := dicom.ReadFileMeta(blob)
		if err != nil {
			t.Fatal(err)
		}
		blob.Seek(off, io.SeekStart)
		got, _ := io.ReadAll(blob)
		blob.Close()
		if !bytes.Equal(got, ds) {
			t.Errorf("%s: stored data set differs", ts)
		}
	}
}

func TestStoreStudiesInResponse(t *testing.T) {
	// Two studies in one POST /studies: no study Retrieve URL (Type 2, empty).
	ctx := context.Background()
	p := newPipeline(t, t.TempDir(), memindex.New())
	a, b := newCT(t, testdicom.UID(), nil), newCT(t, testdicom.UID(), nil)
	resp, err := Store(ctx, p, contentType, bytes.NewReader(multipartBody(dcm(a.file), dcm(b.file))), Options{RetrieveURL: retrieveURL})
	if err != nil || resp.HTTPStatus != 200 || resp.RetrieveURL != "" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	var buf bytes.Buffer
	resp.WriteJSON(&buf)
	if !strings.HasPrefix(buf.String(), `{"00081190":{"vr":"UR"},"00081199":`) {
		t.Errorf("JSON %s", buf.String())
	}
}

func TestStoreRequestErrors(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t, t.TempDir(), memindex.New())
	a := newCT(t, testdicom.UID(), nil)
	good := multipartBody(dcm(a.file))
	for _, tc := range []struct {
		name, ct string
		body     []byte
		status   int
	}{
		{"no content type", "", good, 415},
		{"json", "application/json", good, 415},
		{"single application/dicom", "application/dicom", a.file, 415},
		{"multipart/form-data", "multipart/form-data; boundary=" + boundary, good, 415},
		{"metadata and bulk data", `multipart/related; type="application/dicom+json"; boundary=` + boundary, good, 415},
		{"xml metadata", `multipart/related; type="application/dicom+xml"; boundary=` + boundary, good, 415},
		{"other type parameter", `multipart/related; type="image/jpeg"; boundary=` + boundary, good, 415},
		{"no boundary", `multipart/related; type="application/dicom"`, good, 400},
		{"no boundary, lenient type", `multipart/related; type="Application/DICOM; transfer-syntax=*"`, good, 400},
		{"malformed parameters", `multipart/related; type="application/dicom"; boundary`, good, 400},
		{"malformed media type", `/; x`, good, 400},
		{"boundary too long", `multipart/related; type="application/dicom"; boundary=` + strings.Repeat("b", 71), good, 400},
		{"empty body", contentType, nil, 400},
		{"no boundary in the body", contentType, []byte("garbage garbage garbage"), 400},
		{"closing delimiter only", contentType, []byte("--" + boundary + "--\r\n"), 400},
		{"wrong boundary", `multipart/related; type="application/dicom"; boundary=other`, good, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := Store(ctx, p, tc.ct, bytes.NewReader(tc.body), Options{})
			var re *RequestError
			if !errors.As(err, &re) || re.HTTPStatus != tc.status || re.Reason == "" {
				t.Fatalf("resp %+v err %v, want %d", resp, err, tc.status)
			}
			if n := blobCount(t, p); n != 0 {
				t.Errorf("%d blobs", n)
			}
		})
	}
}

func TestStoreMaxParts(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t, t.TempDir(), memindex.New())
	study := testdicom.UID()
	var parts []tpart
	for range 4 {
		parts = append(parts, dcm(newCT(t, study, nil).file))
	}
	resp, err := Store(ctx, p, contentType, bytes.NewReader(multipartBody(parts...)), Options{MaxParts: 2})
	if err != nil {
		t.Fatal(err)
	}
	if resp.HTTPStatus != 202 || resp.Stored != 2 || len(resp.Other) != 1 || resp.Other[0].FailureReason != FailureOutOfResources {
		t.Fatalf("resp %+v", resp)
	}
}

func TestStoreBodyLimit(t *testing.T) {
	// The caller caps the body with http.MaxBytesReader: the part being
	// read fails with A700 and the rest is reported unread.
	ctx := context.Background()
	p := newPipeline(t, t.TempDir(), memindex.New())
	study := testdicom.UID()
	a, b, c := newCT(t, study, nil), newCT(t, study, nil), newCT(t, study, nil)
	body := multipartBody(dcm(a.file), dcm(b.file), dcm(c.file))
	limit := int64(len(body) - len(c.file)/2)
	r := http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), limit)
	resp, err := Store(ctx, p, contentType, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.HTTPStatus != 202 || resp.Stored != 2 || len(resp.FailedSOPs) != 1 || resp.FailedSOPs[0].FailureReason != FailureOutOfResources ||
		resp.FailedSOPs[0].SOPInstanceUID != c.c.SOPUID || len(resp.Other) != 1 {
		t.Fatalf("resp %+v", resp)
	}
	if indexed(t, p, c.c.SOPUID) || blobCount(t, p) != 2 {
		t.Errorf("the cut instance was stored")
	}
}

func TestStoreCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := newPipeline(t, t.TempDir(), memindex.New())
	a := newCT(t, testdicom.UID(), nil)
	resp, err := Store(ctx, p, contentType, bytes.NewReader(multipartBody(dcm(a.file))), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if blobCount(t, p) != 0 {
		t.Errorf("stored")
	}
}

func ExampleResponse_WriteJSON() {
	r := &Response{
		RetrieveURL: "https://pacs.example/dicom-web/studies/1.2.3",
		Referenced:  []Stored{{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: "1.2.3.4", RetrieveURL: "https://pacs.example/dicom-web/studies/1.2.3/series/1.2.3.3/instances/1.2.3.4"}},
		FailedSOPs:  []Failed{{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: "1.2.3.5", FailureReason: FailureStudyMismatch}},
	}
	r.WriteJSON(os.Stdout)
	// Output:
	// {"00081190":{"vr":"UR","Value":["https://pacs.example/dicom-web/studies/1.2.3"]},"00081198":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]},"00081155":{"vr":"UI","Value":["1.2.3.5"]},"00081197":{"vr":"US","Value":[43264]}}]},"00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]},"00081155":{"vr":"UI","Value":["1.2.3.4"]},"00081190":{"vr":"UR","Value":["https://pacs.example/dicom-web/studies/1.2.3/series/1.2.3.3/instances/1.2.3.4"]}}]}}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		accept, want string
		ok           bool
	}{
		{"", MediaTypeJSON, true},
		{"*/*", MediaTypeJSON, true},
		{"application/dicom+json", MediaTypeJSON, true},
		{"application/json", MediaTypeJSON, true},
		{"application/dicom+xml", MediaTypeXML, true},
		{`multipart/related; type="application/dicom+xml"`, MediaTypeXML, true},
		{"application/dicom+xml, application/dicom+json;q=0.5", MediaTypeXML, true},
		{"application/dicom+xml;q=0.5, */*;q=0.9", MediaTypeJSON, true},
		{"application/dicom+xml, application/dicom+json", MediaTypeJSON, true},
		{"text/html", "", false},
		{"application/dicom+json;q=0", "", false},
	} {
		got, ok := Negotiate(tc.accept)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Negotiate(%q) = %q %v, want %q %v", tc.accept, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStoreContentTypeVariants(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t, t.TempDir(), memindex.New())
	for _, tc := range []struct {
		name, ct string
		part     tpart
		status   int
	}{
		{"type parameter missing, parts application/dicom", "multipart/related; boundary=" + boundary, tpart{}, 200},
		{"type parameter missing, part without Content-Type", "multipart/related; boundary=" + boundary, tpart{hdr: []string{}}, 409},
		{"type with parameters, upper case", `Multipart/Related; Type="Application/DICOM; transfer-syntax=*"; Boundary="` + boundary + `"`, tpart{}, 200},
		{"part type upper case", contentType, tpart{hdr: []string{"content-type: Application/Dicom"}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newCT(t, testdicom.UID(), nil)
			tc.part.data = in.file
			resp, err := Store(ctx, p, tc.ct, bytes.NewReader(multipartBody(tc.part)), Options{})
			if err != nil || resp.HTTPStatus != tc.status {
				t.Fatalf("resp %+v err %v, want %d", resp, err, tc.status)
			}
			if indexed(t, p, in.c.SOPUID) != (tc.status == 200) {
				t.Errorf("indexed %v", !(tc.status == 200))
			}
		})
	}
}

// TestStudyMismatchLeavesNothing: an instance of another study than the
// target is in no store: not in the blobs, not in the index, not routed,
// and not in the journal (a recovery into an empty index finds nothing).
func TestStudyMismatchLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newPipeline(t, dir, openIndex(t, "badgerindex", dir))
	routed := 0
	p.Events = func(*ingest.Result) { routed++ }
	target := testdicom.UID()
	good := newCT(t, target, nil)
	var parts []tpart
	var others []instance
	for range 3 {
		o := newCT(t, testdicom.UID(), nil)
		others = append(others, o)
		parts = append(parts, dcm(o.file))
	}
	parts = append(parts, dcm(good.file))
	resp, err := Store(ctx, p, contentType, bytes.NewReader(multipartBody(parts...)), Options{StudyInstanceUID: target, RetrieveURL: retrieveURL})
	if err != nil {
		t.Fatal(err)
	}
	if resp.HTTPStatus != 202 || resp.Stored != 1 || len(resp.FailedSOPs) != 3 || resp.RetrieveURL != retrieveURL(target, "", "") {
		t.Fatalf("resp %+v", resp)
	}
	for _, f := range resp.FailedSOPs {
		if f.FailureReason != FailureStudyMismatch || !strings.Contains(f.Reason, "study") {
			t.Errorf("failure %+v", f)
		}
	}
	if routed != 1 || blobCount(t, p) != 1 {
		t.Errorf("routed %d, %d blobs", routed, blobCount(t, p))
	}
	for _, o := range others {
		if indexed(t, p, o.c.SOPUID) {
			t.Errorf("%s indexed", o.c.SOPUID)
		}
		if _, err := p.Index.GetStudy(ctx, o.c.StudyUID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("study %s: %v", o.c.StudyUID, err)
		}
	}
	fresh := memindex.New()
	rp := &ingest.Pipeline{Blobs: p.Blobs, Index: fresh, Journal: p.Journal, Limits: dicom.DefaultLimits()}
	if replayed, _, err := rp.Recover(ctx); err != nil || replayed != 1 {
		t.Fatalf("recover: %d replayed, err %v", replayed, err)
	}
	if st, _ := fresh.Stats(ctx); st.Instances != 1 || !indexed(t, rp, good.c.SOPUID) {
		t.Errorf("journal replays %d instances", st.Instances)
	}
}
