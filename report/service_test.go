package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/cda"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/memindex"
)

const (
	testStudy = "1.2.826.0.1.3680043.2.1143.1"
	testINS   = "184127645108946"
)

// fakeDirectory is the test's directory (package directory is tested on
// its own).
type fakeDirectory struct{ cfg *config.Config }

func (d fakeDirectory) Organisation(id string) (config.Organisation, bool) {
	o, ok := d.cfg.Organisations[id]
	return o, ok
}
func (d fakeDirectory) ProfessionalByUser(u string) (string, config.Professional, bool) {
	return d.cfg.ProfessionalFor(u)
}
func (d fakeDirectory) SiteFor(ae, u string) (string, config.Site, bool) { return d.cfg.SiteFor(ae, u) }
func (d fakeDirectory) Site(id string) (config.Site, bool) {
	s, ok := d.cfg.Sites[id]
	return s, ok
}

// publisher records what the service stores and queues, failing on demand.
type publisher struct {
	mu       sync.Mutex
	stored   map[string]int // SOP Instance UID of the file's meta → times
	queued   map[string][]string
	failNext int
}

func (p *publisher) store(_ context.Context, file []byte, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failNext > 0 {
		p.failNext--
		return errors.New("disk full")
	}
	p.stored[fmt.Sprint(len(file))]++
	return nil
}

func (p *publisher) deliver(_ context.Context, study, series, sop string, dests []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queued[sop] = append(p.queued[sop], dests...)
	return nil
}

func testConfig(insStatus string) *config.Config {
	return &config.Config{
		Organisations: map[string]config.Organisation{
			"tr":  {FINESS: "750000001", Name: "Téléradiologie"},
			"chn": {FINESS: "590000001", Name: "CH Nord", PatientIDOID: "1.2.250.1.999.1.1", AccessionOID: "1.2.250.1.999.1.2"},
		},
		Professionals: map[string]config.Professional{"dr-m": {User: "cm", RPPS: "10001234567", Family: "MARTIN", Given: "Claire", Organisation: "tr"}},
		Sites:         map[string]config.Site{"nord": {Organisation: "chn", CallingAEs: []string{"CT_NORD"}, ReportDestinations: []string{"pacs"}, INSStatus: insStatus}},
		Reports:       config.Reports{Custodian: "tr"},
	}
}

func testIndex(t testing.TB, withINS bool) storage.Index {
	t.Helper()
	ix := memindex.New()
	for i := 1; i <= 3; i++ {
		attrs := map[string]string{"00100010": "DUPONT^Jeanne", "00100020": "IPP1", "00100040": "F", "00100030": "19800115",
			"00080050": "ACC1", "00080020": "20261123", "00080030": "031500", "00080060": "CT", "00200011": "2", "00200013": fmt.Sprint(4 - i)}
		if withINS {
			q, _ := storage.EncodeItems([]map[string]string{{"00400032": "1.2.250.1.213.1.4.8", "00400033": "ISO"}})
			o, _ := storage.EncodeItems([]map[string]string{{"00100020": testINS, "00100021": "ASIP-SANTE-INS-NIR", "00100024": q}})
			attrs["00101002"] = o
		}
		in := &storage.Instance{SOPInstanceUID: fmt.Sprintf("1.2.3.%d", i), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SeriesInstanceUID: "1.2.3.100",
			StudyInstanceUID: testStudy, PatientID: "IPP1", ReceivedAt: time.Date(2026, 11, 23, 3, 15, i, 0, time.UTC),
			Source: storage.Source{Channel: "dimse", CallingAE: "CT_NORD"}, Attrs: attrs}
		if err := ix.PutInstance(context.Background(), in, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	return ix
}

func newTestService(t testing.TB, insStatus string, withINS bool) (*Service, *publisher, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(insStatus)
	p := &publisher{stored: map[string]int{}, queued: map[string][]string{}}
	s := New(Deps{Store: st, Index: testIndex(t, withINS), Directory: fakeDirectory{cfg}, Settings: func() config.Reports { return cfg.Reports },
		StoreInstance: p.store, Deliver: p.deliver, Render: cda.PDF, Level1: cda.Level1, Logger: slog.New(slog.DiscardHandler),
		Clock: func() time.Time { return time.Date(2026, 11, 23, 3, 40, 0, 0, time.UTC) }})
	return s, p, dir
}

func str(s string) *string { return &s }

func TestWorkflowStates(t *testing.T) {
	ctx := context.Background()
	s, p, _ := newTestService(t, "QUAL", true)
	r, err := s.Create(ctx, "cm", testStudy, Content{Findings: "Normal.", PatientBirthPlace: "75056"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		do      func() (*Report, error)
		wantErr error
		state   State
	}{
		{"sign without conclusion", func() (*Report, error) { return s.Sign(ctx, "cm", r.ID, 0) }, nil, ""},
		{"correct a draft", func() (*Report, error) { return s.Correct(ctx, "cm", r.ID, Patch{Conclusion: str("x")}, 0) }, ErrState, ""},
		{"edit with a stale revision", func() (*Report, error) { return s.Update(ctx, "cm", r.ID, Patch{Conclusion: str("x")}, r.Revision+5) }, ErrConflict, ""},
		{"edit", func() (*Report, error) {
			return s.Update(ctx, "cm", r.ID, Patch{Conclusion: str("Pas d'anomalie.")}, r.Revision)
		}, nil, Draft},
		{"sign by someone outside the directory", func() (*Report, error) { return s.Sign(ctx, "intruder", r.ID, 0) }, ErrForbidden, ""},
		{"sign", func() (*Report, error) { return s.Sign(ctx, "cm", r.ID, 0) }, nil, Signed},
		{"sign again", func() (*Report, error) { return s.Sign(ctx, "cm", r.ID, 0) }, ErrState, ""},
		{"edit after signing", func() (*Report, error) { return s.Update(ctx, "cm", r.ID, Patch{Findings: str("y")}, 0) }, ErrState, ""},
		{"correction that changes nothing", func() (*Report, error) { return s.Correct(ctx, "cm", r.ID, Patch{}, 0) }, nil, ""},
		{"correct", func() (*Report, error) {
			return s.Correct(ctx, "cm", r.ID, Patch{Conclusion: str("Nodule de 4 mm.")}, 0)
		}, nil, Corrected},
		{"correct again", func() (*Report, error) { return s.Correct(ctx, "cm", r.ID, Patch{Findings: str("Nodule.")}, 0) }, nil, Corrected},
	}
	for _, st := range steps {
		before, _ := s.Get(r.ID)
		got, err := st.do()
		switch {
		case st.state == "" && err == nil:
			t.Fatalf("%s: accepted, want an error", st.name)
		case st.state == "" && st.wantErr != nil && !errors.Is(err, st.wantErr):
			t.Fatalf("%s: %v, want %v", st.name, err, st.wantErr)
		case st.state != "" && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.state != "" && got.State != st.state:
			t.Fatalf("%s: state %s, want %s", st.name, got.State, st.state)
		}
		if st.state == "" {
			after, _ := s.Get(r.ID)
			if after.Revision != before.Revision || len(after.Versions) != len(before.Versions) {
				t.Fatalf("%s: refused but the report changed (revision %d → %d)", st.name, before.Revision, after.Revision)
			}
		}
	}
	final, _ := s.Get(r.ID)
	if len(final.Versions) != 3 {
		t.Fatalf("%d versions, want 3", len(final.Versions))
	}
	for i, v := range final.Versions {
		if v.Number != i+1 || v.SetID != final.Versions[0].SetID || !v.Published || !v.UsesINS {
			t.Errorf("version %d: number %d set %s published %v INS %v", i+1, v.Number, v.SetID, v.Published, v.UsesINS)
		}
		if i > 0 && v.Replaces != final.Versions[i-1].DocumentID {
			t.Errorf("version %d replaces %q, want %q", v.Number, v.Replaces, final.Versions[i-1].DocumentID)
		}
		x, _, err := s.Document(r.ID, v.Number, DocLevel3)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !strings.Contains(string(x), `<relatedDocument typeCode="RPLC">`) {
			t.Errorf("version %d has no RPLC", v.Number)
		}
		if len(p.queued[v.Documents[0].SOPInstanceUID]) != 1 {
			t.Errorf("version %d queued %v", v.Number, p.queued[v.Documents[0].SOPInstanceUID])
		}
	}
}

func TestIdentityStatus(t *testing.T) {
	for _, tc := range []struct {
		name       string
		site       string
		withINS    bool
		birthPlace string
		usesINS    bool
		notice     string
	}{
		{"qualified by the site, all traits", "QUAL", true, "75056", true, ""},
		{"qualified, birth place unknown", "QUAL", true, "", false, "birth place"},
		{"site vouches VALI only", "VALI", true, "75056", false, "VALI"},
		{"no site declaration", "", true, "75056", false, "PROV"},
		{"no INS in the images", "QUAL", false, "75056", false, "no INS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, _, _ := newTestService(t, tc.site, tc.withINS)
			r, err := s.Create(ctx, "cm", testStudy, Content{Conclusion: "RAS.", PatientBirthPlace: tc.birthPlace})
			if err != nil {
				t.Fatal(err)
			}
			r, err = s.Sign(ctx, "cm", r.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			v := r.Last()
			if v.UsesINS != tc.usesINS {
				t.Fatalf("uses INS %v, want %v (notices %q)", v.UsesINS, tc.usesINS, v.Notices)
			}
			x, _, _ := s.Document(r.ID, 1, DocLevel3)
			if has := strings.Contains(string(x), `extension="`+testINS+`"`); has != tc.usesINS {
				t.Fatalf("document carries the INS: %v, want %v", has, tc.usesINS)
			}
			if !strings.Contains(string(x), `root="1.2.250.1.999.1.1" extension="IPP1"`) {
				t.Errorf("the local id under the site's OID is missing")
			}
			if tc.notice != "" && !strings.Contains(strings.Join(v.Notices, "\n"), tc.notice) {
				t.Errorf("notices %q do not say %q", v.Notices, tc.notice)
			}
		})
	}
}

func TestIncompleteDirectoryRefusesAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, p, _ := newTestService(t, "QUAL", true)
	cfg := testConfig("QUAL")
	cfg.Reports.Custodian = "nobody"
	s.d.Settings = func() config.Reports { return cfg.Reports }
	r, _ := s.Create(ctx, "cm", testStudy, Content{Conclusion: "RAS."})
	if _, err := s.Sign(ctx, "cm", r.ID, 0); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "custodian") {
		t.Fatalf("sign with no custodian: %v", err)
	}
	if got, _ := s.Get(r.ID); got.State != Draft || len(got.Versions) != 0 || len(p.queued) != 0 {
		t.Fatalf("refused signature left %s, %d versions, %d queued", got.State, len(got.Versions), len(p.queued))
	}
	if _, err := s.Create(ctx, "cm", "9.9.9", Content{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown study: %v", err)
	}
	if _, err := s.Create(ctx, "cm", testStudy, Content{PatientBirthPlace: "Paris"}); err == nil {
		t.Fatal("a birth place that is no INSEE code was accepted")
	}
}

func TestUnpublishedVersionIsRepublished(t *testing.T) {
	ctx := context.Background()
	s, p, dir := newTestService(t, "QUAL", true)
	p.failNext = 1
	r, _ := s.Create(ctx, "cm", testStudy, Content{Conclusion: "RAS."})
	r, err := s.Sign(ctx, "cm", r.ID, 0)
	if err != nil {
		t.Fatalf("a publication failure must not fail the signature: %v", err)
	}
	if v := r.Last(); v.Published || !strings.Contains(v.PublishErr, "disk full") {
		t.Fatalf("published %v, error %q", v.Published, v.PublishErr)
	}
	// A restart: the store is read back, Run publishes what is left.
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.d.Store = st
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx, time.Hour); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := s.Get(r.ID)
		if got.Last().Published {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not republished")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := len(p.queued[r.Last().Documents[0].SOPInstanceUID]); n != 1 {
		t.Fatalf("queued %d times", n)
	}
}

func TestStoreRejectsCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "r-abc"), 0o750)
	os.WriteFile(filepath.Join(dir, "r-abc", "report.json"), []byte("{not json"), 0o600)
	if _, err := OpenStore(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt record: %v", err)
	}
	if _, err := (&Store{dir: dir}).Document("../../etc", 1, DocPDF); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a path in an id: %v", err)
	}
}

func TestDocumentNegotiation(t *testing.T) {
	for _, tc := range []struct {
		format, accept, want string
		bad                  bool
	}{
		{"", "", DocLevel3, false},
		{"", "application/pdf", DocPDF, false},
		{"", "text/html, application/pdf;q=0.9", DocPDF, false},
		{"", "application/hl7-cda+xml", DocLevel3, false},
		{"", "*/*", DocLevel3, false},
		{"pdf", "text/xml", DocPDF, false},
		{"level1", "", DocLevel1, false},
		{"", "image/png", "", true},
		{"docx", "", "", true},
	} {
		got, _, err := documentFor(tc.format, tc.accept)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("documentFor(%q, %q) = %q, %v", tc.format, tc.accept, got, err)
		}
	}
}

func TestHandlerStatuses(t *testing.T) {
	s, _, _ := newTestService(t, "QUAL", true)
	role := auth.RoleRadiologist
	h := s.Handler(func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
		if !role.Can(perm) {
			w.WriteHeader(http.StatusForbidden)
			return auth.Principal{}, false
		}
		return auth.Principal{User: "cm", Role: role}, true
	})
	do := func(method, path, body string) int {
		rq := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			rq.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, rq)
		return w.Code
	}
	for _, tc := range []struct {
		role         auth.Role
		method, path string
		body         string
		want         int
	}{
		{auth.RoleRadiologist, "POST", "/api/reports", `{"study_instance_uid": "` + testStudy + `", "conclusion": "RAS."}`, 201},
		{auth.RoleRadiologist, "POST", "/api/reports", `{"study_instance_uid": "9.9", "conclusion": "RAS."}`, 404},
		{auth.RoleRadiologist, "POST", "/api/reports", `{"study_instance_uid": "` + testStudy + `", "colnclusion": "typo"}`, 400},
		{auth.RoleRadiologist, "POST", "/api/reports", `{"study_instance_uid": `, 400},
		{auth.RoleRequester, "POST", "/api/reports", `{"study_instance_uid": "` + testStudy + `"}`, 403},
		{auth.RoleRequester, "GET", "/api/reports", "", 200},
		{auth.RoleModality, "GET", "/api/reports", "", 403},
		{auth.RoleRadiologist, "GET", "/api/reports/r-nope", "", 404},
		{auth.RoleRadiologist, "POST", "/api/reports/r-nope/sign", "{}", 404},
		{auth.RoleRadiologist, "GET", "/reports/r-nope", "", 404},
	} {
		role = tc.role
		if got := do(tc.method, tc.path, tc.body); got != tc.want {
			t.Errorf("%s %s %s as %s: %d, want %d", tc.method, tc.path, tc.body, tc.role, got, tc.want)
		}
	}
}

// FuzzHandler sends arbitrary bodies to every writing route: the answer
// is never a 500, and a refused request changes nothing.
func FuzzHandler(f *testing.F) {
	f.Add(0, `{"study_instance_uid": "`+testStudy+`", "conclusion": "RAS."}`)
	f.Add(1, `{"conclusion": "x", "revision": 2}`)
	f.Add(2, `{}`)
	f.Add(3, `{"conclusion": "Nodule", "patient_birth_place": "2A004"}`)
	f.Add(1, `{"radiation_exposure": {"dlp_mgy_cm": -1}}`)
	f.Add(0, "{\"study_instance_uid\": \"\x00\"}")
	s, _, _ := newTestService(f, "QUAL", true)
	r, err := s.Create(context.Background(), "cm", testStudy, Content{})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler(func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
		return auth.Principal{User: "cm", Role: auth.RoleRadiologist}, true
	})
	routes := []struct{ method, path string }{
		{"POST", "/api/reports"}, {"PATCH", "/api/reports/" + r.ID}, {"POST", "/api/reports/" + r.ID + "/sign"}, {"POST", "/api/reports/" + r.ID + "/correct"},
	}
	f.Fuzz(func(t *testing.T, route int, body string) {
		rt := routes[uint(route)%uint(len(routes))]
		before, _ := s.Get(r.ID)
		rq := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
		rq.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, rq)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			after, _ := s.Get(r.ID)
			if after.Revision != before.Revision {
				t.Fatalf("refused (%d) but the report changed", w.Code)
			}
		}
	})
}

// BenchmarkSign measures signing a report of a 500-image CT: the level 3
// and level 1 documents, the PDF, two Encapsulated CDA instances, the
// durable writes (the publisher is the test's fake).
func BenchmarkSign(b *testing.B) {
	ctx := context.Background()
	s, _, _ := newTestService(b, "QUAL", true)
	ix := s.d.Index
	for i := 4; i <= 500; i++ {
		in := &storage.Instance{SOPInstanceUID: fmt.Sprintf("1.2.3.%d", i), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SeriesInstanceUID: "1.2.3.100",
			StudyInstanceUID: testStudy, PatientID: "IPP1", ReceivedAt: time.Date(2026, 11, 23, 3, 16, 0, i, time.UTC),
			Source: storage.Source{Channel: "dimse", CallingAE: "CT_NORD"}, Attrs: map[string]string{"00080060": "CT", "00200013": fmt.Sprint(i)}}
		if err := ix.PutInstance(ctx, in, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
	cfg := testConfig("QUAL")
	site := cfg.Sites["nord"]
	site.ReportFormat = config.ReportBoth
	cfg.Sites["nord"] = site
	s.d.Directory = fakeDirectory{cfg}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := s.Create(ctx, "cm", testStudy, Content{Findings: strings.Repeat("Hypodensité sylvienne droite. ", 40), Conclusion: "AVC ischémique.", PatientBirthPlace: "75056"})
		if err != nil {
			b.Fatal(err)
		}
		if r, err = s.Sign(ctx, "cm", r.ID, 0); err != nil || len(r.Last().Documents) != 2 {
			b.Fatal(err)
		}
	}
}

func TestRequesterSeesOwnSiteOnly(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t, "QUAL", true)
	r, err := s.Create(ctx, "cm", testStudy, Content{Conclusion: "RAS."})
	if err != nil || r.Site != "nord" {
		t.Fatalf("create: %v, site %q", err, r.Site)
	}
	if _, err := s.Sign(ctx, "cm", r.ID, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		role auth.Role
		site string
		want int
	}{
		{"requester of the site", auth.RoleRequester, "nord", 200},
		{"requester of another site", auth.RoleRequester, "sud", 404},
		{"requester of no site", auth.RoleRequester, "", 404},
		{"radiologist", auth.RoleRadiologist, "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.d.SiteOfUser = func(string) (string, bool) { return tc.site, tc.site != "" }
			h := s.Handler(func(w http.ResponseWriter, rq *http.Request, perm auth.Permission) (auth.Principal, bool) {
				return auth.Principal{User: "u", Role: tc.role}, true
			})
			for _, path := range []string{"/api/reports/" + r.ID, "/reports/" + r.ID} {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				if w.Code != tc.want {
					t.Errorf("GET %s: %d, want %d", path, w.Code, tc.want)
				}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/api/reports", nil))
			if listed := strings.Contains(w.Body.String(), r.ID); listed != (tc.want == 200) {
				t.Errorf("listed: %v", listed)
			}
		})
	}
}
