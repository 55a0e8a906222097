package manifest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/kos"
	"github.com/relais-health/relais/manifest"
	"github.com/relais-health/relais/node"
	"github.com/relais-health/relais/storage"
)

// fixture is an opened node (storage and ingest only) with its manifest
// service.
type fixture struct {
	n   *node.Node
	svc *manifest.Service
}

func open(t *testing.T) *fixture {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen.HTTP = "127.0.0.1:8042"
	n, err := node.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	svc := &manifest.Service{Index: n.Index, Blobs: n.Blobs, Store: n.StoreGenerated, Journal: n.Journal,
		Retrieve: kos.Retrieve{AETitle: "RELAIS", LocationUID: node.RetrieveLocationUID("RELAIS"), WADOBase: "http://127.0.0.1:8042/dicom-web"}}
	return &fixture{n: n, svc: svc}
}

// store ingests CT slices (as a modality would send them): series sizes
// give the number of slices of each series. It returns the SOP UIDs by
// series.
func (f *fixture) store(t *testing.T, study string, sizes ...int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, n := range sizes {
		series := testdicom.UID()
		for i := 1; i <= n; i++ {
			c := &testdicom.CT{PatientName: "Durand^Anne", PatientID: "IPP1", StudyUID: study, SeriesUID: series, SOPUID: testdicom.UID(),
				Instance: i, AccessionNumber: "ACC1", StudyDescription: "TDM THORAX", Charset: "ISO_IR 192",
				OtherPatientIDs: []testdicom.OtherPatientID{{ID: "248127512345678", Issuer: "ASIP-SANTE-INS-NIR", Type: "TEXT"}}}
			f.add(t, c)
			out[series] = append(out[series], c.SOPUID)
		}
	}
	return out
}

func (f *fixture) add(t *testing.T, c *testdicom.CT) {
	t.Helper()
	ds, err := c.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	cls := dicom.CTImageStorage
	if c.SOPClassOverride != "" {
		cls = c.SOPClassOverride
	}
	_, err = f.n.Ingest.Store(context.Background(), &ingest.Request{Source: storage.Source{Channel: "dimse", CallingAE: "CT1"},
		SOPClassUID: cls, SOPInstanceUID: c.SOPUID, TransferSyntaxUID: dicom.ExplicitVRLittleEndian, Data: bytes.NewReader(ds)})
	if err != nil {
		t.Fatal(err)
	}
}

// dciodvfy fails the test on any line starting with "Error" and returns
// the warnings.
func dciodvfy(t *testing.T, file []byte) []string {
	t.Helper()
	if _, err := exec.LookPath("dciodvfy"); err != nil {
		t.Fatal("dciodvfy not found: install dicom3tools (apt-get install dicom3tools); .ci/run does")
	}
	p := filepath.Join(t.TempDir(), "kos.dcm")
	if err := os.WriteFile(p, file, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("dciodvfy", "-new", p).CombinedOutput()
	var warnings []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Error") {
			t.Errorf("dciodvfy: %s", l)
		}
		if strings.HasPrefix(l, "Warning") {
			warnings = append(warnings, l)
		}
	}
	if t.Failed() {
		t.Logf("dciodvfy output:\n%s", out)
	}
	return warnings
}

// dsrdump returns dcmtk's dsrdump of a document.
func dsrdump(t *testing.T, file []byte) string {
	t.Helper()
	if _, err := exec.LookPath("dsrdump"); err != nil {
		t.Fatal("dsrdump not found: install dcmtk")
	}
	p := filepath.Join(t.TempDir(), "kos.dcm")
	if err := os.WriteFile(p, file, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dsrdump", "+Pl", "+Pu", "+Pc", p).CombinedOutput()
	if err != nil {
		t.Fatalf("dsrdump: %v\n%s", err, out)
	}
	return string(out)
}

func scan(t *testing.T, file []byte) *dicom.Dataset {
	t.Helper()
	_, off, err := dicom.ReadFileMeta(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	res, err := dicom.Scan(bytes.NewReader(file[off:]), dicom.TransferSyntax{UID: dicom.ExplicitVRLittleEndian, ExplicitVR: true}, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	return res.Dataset
}

// evidence returns series UID → (retrieve URL, referenced SOP UIDs) of
// the Current Requested Procedure Evidence Sequence.
func evidence(t *testing.T, ds *dicom.Dataset) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	ev, ok := ds.Get(dicom.NewTag(0x0040, 0xA375))
	if !ok {
		t.Fatal("no Current Requested Procedure Evidence Sequence")
	}
	for _, st := range ev.Items {
		ser, _ := st.Get(dicom.NewTag(0x0008, 0x1115))
		for _, s := range ser.Items {
			uid, _ := s.String(dicom.TagSeriesInstanceUID)
			url, _ := s.String(dicom.NewTag(0x0008, 0x1190))
			out[uid] = append(out[uid], url)
			refs, _ := s.Get(dicom.NewTag(0x0008, 0x1199))
			for _, r := range refs.Items {
				sop, _ := r.String(dicom.NewTag(0x0008, 0x1155))
				out[uid] = append(out[uid], sop)
			}
		}
	}
	return out
}

func TestStudyManifestIdempotentAndValid(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	study := testdicom.UID()
	series := f.store(t, study, 3, 2)
	res, err := f.svc.StudyManifest(ctx, study, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Instances != 5 || res.Title != "113030" || res.StudyInstanceUID != study {
		t.Fatalf("first build: %+v", res)
	}
	if !strings.HasPrefix(res.SOPInstanceUID, "2.25.") || !strings.HasPrefix(res.SeriesInstanceUID, "2.25.") {
		t.Errorf("UIDs %s %s not under 2.25", res.SOPInstanceUID, res.SeriesInstanceUID)
	}
	wantURL := "http://127.0.0.1:8042/dicom-web/studies/" + study + "/series/" + res.SeriesInstanceUID + "/instances/" + res.SOPInstanceUID
	if res.RetrieveURL != wantURL {
		t.Errorf("retrieve URL %s, want %s", res.RetrieveURL, wantURL)
	}
	if w := dciodvfy(t, res.File); len(w) > 0 {
		t.Logf("dciodvfy warnings: %q", w)
	}
	dump := dsrdump(t, res.File)
	if !strings.Contains(dump, `(113030,DCM,"Manifest")`) {
		t.Errorf("dsrdump: no Manifest title:\n%s", dump)
	}
	if n := strings.Count(dump, "contains IMAGE:"); n != 5 {
		t.Errorf("dsrdump: %d IMAGE items, want 5:\n%s", n, dump)
	}
	ev := evidence(t, scan(t, res.File))
	for s, sops := range series {
		got := ev[s]
		if len(got) != len(sops)+1 || got[0] != "http://127.0.0.1:8042/dicom-web/studies/"+study+"/series/"+s {
			t.Errorf("evidence of series %s: %q", s, got)
			continue
		}
		if strings.Join(got[1:], ",") != strings.Join(sops, ",") {
			t.Errorf("series %s references %q, want %q", s, got[1:], sops)
		}
	}
	// Stored in the study, as a KO instance.
	in, err := f.n.Index.GetInstance(ctx, res.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if in.StudyInstanceUID != study || in.SOPClassUID != kos.SOPClassUID || in.Attrs["00080060"] != "KO" || in.Source.Channel != storage.ChannelGenerated || in.Source.User != "alice" {
		t.Errorf("stored manifest: %+v", in)
	}
	// Unchanged study: the same manifest, not stored again.
	again, err := f.svc.StudyManifest(ctx, study, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.SOPInstanceUID != res.SOPInstanceUID || !bytes.Equal(again.File, res.File) || again.Instances != 5 {
		t.Errorf("rebuild of an unchanged study: created %v, sop %s (first %s), same bytes %v", again.Created, again.SOPInstanceUID, res.SOPInstanceUID, bytes.Equal(again.File, res.File))
	}
	if cur, err := f.svc.CurrentManifest(ctx, study); err != nil || cur.SOPInstanceUID != res.SOPInstanceUID || !bytes.Equal(cur.File, res.File) {
		t.Errorf("CurrentManifest: %+v, %v", cur, err)
	}
	// A new instance: a new manifest, which does not reference the first.
	f.store(t, study, 1)
	if _, err := f.svc.CurrentManifest(ctx, study); !errors.Is(err, manifest.ErrNotFound) {
		t.Errorf("CurrentManifest after a new instance: %v, want ErrNotFound", err)
	}
	third, err := f.svc.StudyManifest(ctx, study, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !third.Created || third.SOPInstanceUID == res.SOPInstanceUID || third.Instances != 6 {
		t.Errorf("after a new instance: %+v", third)
	}
	if strings.Contains(dsrdump(t, third.File), res.SOPInstanceUID) {
		t.Error("the new manifest references the earlier one")
	}
}

func TestStudyManifestJournal(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	study := testdicom.UID()
	f.store(t, study, 1)
	res, err := f.svc.StudyManifest(ctx, study, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.StudyManifest(ctx, study, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := f.n.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = journal.Query(ctx, filepath.Join(f.n.Config.DataDir, "journal"), journal.Filter{Kinds: []string{"manifest.built"}}, func(ev *journal.Event) error {
		if ev.StudyUID != study || ev.SOPInstanceUID != res.SOPInstanceUID {
			t.Errorf("journal event %+v", ev)
		}
		if strings.Contains(ev.Reason, "Durand") || strings.Contains(string(ev.Data), "Durand") {
			t.Errorf("journal event carries the patient's name: %+v", ev)
		}
		got = append(got, ev.User)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "alice,bob" {
		t.Errorf("manifest.built users %q, want alice,bob", got)
	}
}

func TestStudyManifestErrors(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	if _, err := f.svc.StudyManifest(ctx, testdicom.UID(), "alice"); !errors.Is(err, manifest.ErrNotFound) {
		t.Errorf("unknown study: %v, want ErrNotFound", err)
	}
	// A study holding only documents has nothing to reference.
	study := testdicom.UID()
	f.store(t, study, 1)
	res, err := f.svc.StudyManifest(ctx, study, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.KeyImages(ctx, study, []manifest.KeyImage{{SOPInstanceUID: res.SOPInstanceUID}}, "", "dr"); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("flagging the manifest itself: %v, want ErrInvalid", err)
	}
}

func TestKeyImages(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	study, other := testdicom.UID(), testdicom.UID()
	series := f.store(t, study, 3, 2)
	others := f.store(t, other, 1)
	var s1, s2 []string
	for _, v := range series {
		if len(v) == 3 {
			s1 = v
		} else {
			s2 = v
		}
	}
	// An Enhanced CT (multi-frame) instance of the study.
	enh := &testdicom.CT{PatientName: "Durand^Anne", PatientID: "IPP1", StudyUID: study, SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(),
		Instance: 1, AccessionNumber: "ACC1", SOPClassOverride: "1.2.840.10008.5.1.4.1.1.2.1"}
	f.add(t, enh)
	// Frame 1 of a single-frame image is the image: no frame reference.
	refs := []manifest.KeyImage{{SOPInstanceUID: s1[1], Frames: []int{1}}, {SOPInstanceUID: s2[0]}, {SOPInstanceUID: enh.SOPUID, Frames: []int{3, 2}}}
	res, err := f.svc.KeyImages(ctx, study, refs, "Nodule lobaire supérieur droit, 8 mm", "dr.martin")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Instances != 3 || res.Title != "113000" {
		t.Fatalf("key images: %+v", res)
	}
	if w := dciodvfy(t, res.File); len(w) > 0 {
		t.Logf("dciodvfy warnings: %q", w)
	}
	dump := dsrdump(t, res.File)
	for _, want := range []string{`(113000,DCM,"Of Interest")`, `(113012,DCM,"Key Object Description")="Nodule lobaire supérieur droit, 8 mm"`, s1[1], s2[0]} {
		if !strings.Contains(dump, want) {
			t.Errorf("dsrdump lacks %s:\n%s", want, dump)
		}
	}
	if n := strings.Count(dump, "contains IMAGE:"); n != 3 {
		t.Errorf("dsrdump: %d IMAGE items, want 3:\n%s", n, dump)
	}
	ds := scan(t, res.File)
	content, _ := ds.Get(dicom.NewTag(0x0040, 0xA730))
	frames := 0
	for _, it := range content.Items {
		if refs, ok := it.Get(dicom.NewTag(0x0008, 0x1199)); ok {
			for _, r := range refs.Items {
				if v, err := r.String(dicom.NewTag(0x0008, 0x1160)); err == nil && v != "" {
					frames++
					if sop, _ := r.String(dicom.NewTag(0x0008, 0x1155)); sop != enh.SOPUID || v != `2\3` {
						t.Errorf("frame reference %s of %s", v, sop)
					}
				}
			}
		}
	}
	if frames != 1 {
		t.Errorf("%d frame references, want 1", frames)
	}
	// Retried: the same note.
	again, err := f.svc.KeyImages(ctx, study, refs, "Nodule lobaire supérieur droit, 8 mm", "dr.martin")
	if err != nil || again.Created || again.SOPInstanceUID != res.SOPInstanceUID {
		t.Errorf("retried note: %+v, %v", again, err)
	}
	// Another note of the study: same series, next instance number.
	second, err := f.svc.KeyImages(ctx, study, refs[1:], "", "dr.martin")
	if err != nil {
		t.Fatal(err)
	}
	if second.SOPInstanceUID == res.SOPInstanceUID || second.SeriesInstanceUID != res.SeriesInstanceUID {
		t.Errorf("second note %+v (first %+v)", second, res)
	}
	if v, _ := scan(t, second.File).String(dicom.NewTag(0x0020, 0x0013)); v != "2" {
		t.Errorf("second note's Instance Number %q, want 2", v)
	}
	// Bad input: nothing stored.
	before := count(t, f, study)
	for name, c := range map[string]struct {
		study string
		refs  []manifest.KeyImage
		want  error
	}{
		"other study's instance":  {study, []manifest.KeyImage{{SOPInstanceUID: s1[0]}, {SOPInstanceUID: first(others)}}, manifest.ErrInvalid},
		"unknown instance":        {study, []manifest.KeyImage{{SOPInstanceUID: "1.2.3"}}, manifest.ErrInvalid},
		"frame 0":                 {study, []manifest.KeyImage{{SOPInstanceUID: enh.SOPUID, Frames: []int{0}}}, manifest.ErrInvalid},
		"frame 2 of single-frame": {study, []manifest.KeyImage{{SOPInstanceUID: s1[0], Frames: []int{2}}}, manifest.ErrInvalid},
		"nothing flagged":         {study, nil, manifest.ErrInvalid},
		"unknown study":           {testdicom.UID(), []manifest.KeyImage{{SOPInstanceUID: s1[0]}}, manifest.ErrNotFound},
	} {
		if _, err := f.svc.KeyImages(ctx, c.study, c.refs, "x", "dr.martin"); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if after := count(t, f, study); after != before {
		t.Errorf("refused requests stored %d instance(s)", after-before)
	}
}

func first(m map[string][]string) string {
	for _, v := range m {
		return v[0]
	}
	return ""
}

func count(t *testing.T, f *fixture, study string) int {
	t.Helper()
	n := 0
	if err := f.n.Index.StudyInstances(context.Background(), study, func(*storage.Instance) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHandler drives the API with roles as node.Authorize grants them.
func TestHandler(t *testing.T) {
	f := open(t)
	study, other := testdicom.UID(), testdicom.UID()
	series := f.store(t, study, 2)
	others := f.store(t, other, 1)
	roles := map[string]auth.Role{"admin-tok": auth.RoleAdmin, "rad-tok": auth.RoleRadiologist, "req-tok": auth.RoleRequester}
	authorize := func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
		tok, err := auth.BearerToken(r)
		if err != nil {
			auth.WriteChallenge(w, auth.ErrNoToken)
			return auth.Principal{}, false
		}
		role, ok := roles[tok]
		if !ok {
			auth.WriteChallenge(w, auth.ErrInvalidToken)
			return auth.Principal{}, false
		}
		p := auth.Principal{User: strings.TrimSuffix(tok, "-tok"), Role: role}
		if !p.Can(perm) {
			auth.WriteChallenge(w, auth.ErrForbidden)
			return p, false
		}
		return p, true
	}
	srv := httptest.NewServer(f.svc.Handler(authorize))
	defer srv.Close()
	do := func(method, path, tok, accept, body string) (int, []byte, http.Header) {
		t.Helper()
		rq, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if tok != "" {
			rq.Header.Set("Authorization", "Bearer "+tok)
		}
		if accept != "" {
			rq.Header.Set("Accept", accept)
		}
		if body != "" {
			rq.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	mpath := "/api/studies/" + study + "/manifest"
	code, b, h := do("POST", mpath, "admin-tok", "", "")
	var res manifest.Result
	if code != 201 || json.Unmarshal(b, &res) != nil || res.Instances != 2 || res.SOPInstanceUID == "" || h.Get("Location") != res.RetrieveURL {
		t.Fatalf("POST manifest: %d %s", code, b)
	}
	code, b, h = do("POST", mpath, "rad-tok", "application/dicom", "")
	if code != 200 || h.Get("Content-Type") != "application/dicom" {
		t.Fatalf("POST manifest again as DICOM: %d %s", code, h)
	}
	if v, _ := scan(t, b).String(dicom.TagSOPInstanceUID); v != res.SOPInstanceUID {
		t.Errorf("second POST gave %s, want %s", v, res.SOPInstanceUID)
	}
	// Read by a requester (read-reports).
	code, b, _ = do("GET", mpath, "req-tok", "", "")
	var got manifest.Result
	if code != 200 || json.Unmarshal(b, &got) != nil || got.SOPInstanceUID != res.SOPInstanceUID || got.RetrieveURL != res.RetrieveURL {
		t.Errorf("GET manifest: %d %s", code, b)
	}
	var sop string
	for _, v := range series {
		sop = v[0]
	}
	kpath := "/api/studies/" + study + "/key-images"
	good := `{"description": "à revoir", "instances": [{"sop_instance_uid": "` + sop + `", "frames": [1]}]}`
	for _, c := range []struct {
		name, method, path, tok, body string
		want                          int
	}{
		{"manifest: unknown study", "POST", "/api/studies/1.2.3.4/manifest", "admin-tok", "", 404},
		{"manifest: requester", "POST", mpath, "req-tok", "", 403},
		{"manifest: no token", "POST", mpath, "", "", 401},
		{"manifest: PUT", "PUT", mpath, "admin-tok", "", 405},
		{"manifest: GET unknown study", "GET", "/api/studies/1.2.3.4/manifest", "req-tok", "", 404},
		{"manifest: GET without token", "GET", mpath, "", "", 401},
		{"unknown API", "POST", "/api/studies/" + study + "/other", "admin-tok", "", 404},
		{"key images: requester", "POST", kpath, "req-tok", good, 403},
		{"key images: admin", "POST", kpath, "admin-tok", good, 403},
		{"key images: no token", "POST", kpath, "", good, 401},
		{"key images: bad JSON", "POST", kpath, "rad-tok", `{"instances": [`, 400},
		{"key images: unknown field", "POST", kpath, "rad-tok", `{"sops": []}`, 400},
		{"key images: other study", "POST", kpath, "rad-tok", `{"instances": [{"sop_instance_uid": "` + first(others) + `"}]}`, 400},
		{"key images: unknown study", "POST", "/api/studies/1.2.3.4/key-images", "rad-tok", good, 404},
	} {
		code, b, _ := do(c.method, c.path, c.tok, "", c.body)
		var e struct {
			Error string `json:"error"`
		}
		if code != c.want || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want %d with a JSON error", c.name, code, b, c.want)
		}
	}
	code, b, _ = do("POST", kpath, "rad-tok", "", good)
	var kres manifest.Result
	if code != 201 || json.Unmarshal(b, &kres) != nil || kres.Title != "113000" || kres.Instances != 1 {
		t.Fatalf("POST key-images: %d %s", code, b)
	}
	if n := count(t, f, study); n != 4 {
		t.Errorf("study holds %d instances, want 4 (2 images, the manifest, the note)", n)
	}
}
