package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/journal"
)

// testConfig has two organisations, one professional and one site in its
// "YAML", and a destination "pacs".
func testConfig() *config.Config {
	c := config.Default()
	c.Destinations = map[string]config.Destination{"pacs": {DICOM: &config.DICOMDestination{AE: "PACS", Host: "127.0.0.1", Port: 104}}}
	c.Organisations = map[string]config.Organisation{
		"telerad": {FINESS: "750000001", Name: "Téléradiologie SAS"},
		"chu":     {FINESS: "330781196", Name: "CHU de Bordeaux", PatientIDOID: "1.2.250.1.1"},
	}
	c.Professionals = map[string]config.Professional{
		"martin": {RPPS: "10001234567", Given: "Jeanne", Family: "Martin", Organisation: "telerad"},
	}
	c.Sites = map[string]config.Site{
		"chu-urg": {Organisation: "chu", CallingAEs: []string{"CHU_CT1"}, ReportDestinations: []string{"pacs"}},
	}
	c.Reports.Custodian = "telerad"
	return c
}

func open(t *testing.T, dir string, cfg *config.Config, j *journal.Journal) *Directory {
	t.Helper()
	d, err := Open(dir, cfg, j)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sources(e Entries) map[string]string {
	m := map[string]string{}
	for _, x := range e.Organisations {
		m["organisations."+x.ID] = x.Source
	}
	for _, x := range e.Professionals {
		m["professionals."+x.ID] = x.Source
	}
	for _, x := range e.Sites {
		m["sites."+x.ID] = x.Source
	}
	return m
}

func TestMergeOverrideRevert(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	d := open(t, dir, cfg, nil)

	if got, want := sources(d.Snapshot()), map[string]string{
		"organisations.telerad": "config", "organisations.chu": "config",
		"professionals.martin": "config", "sites.chu-urg": "config",
	}; !reflect.DeepEqual(got, want) {
		t.Fatalf("initial sources %v, want %v", got, want)
	}

	// Add a professional, override the configured one.
	dupont := config.Professional{User: "pdupont", RPPS: "10009876543", Family: "Dupont", Organisation: "chu"}
	if err := d.PutProfessional("dupont", dupont, "admin"); err != nil {
		t.Fatal(err)
	}
	martin2 := config.Professional{RPPS: "10001234567", Given: "Jeanne", Family: "Martin-Durand", Organisation: "chu"}
	if err := d.PutProfessional("martin", martin2, "admin"); err != nil {
		t.Fatal(err)
	}
	// The caller's config is not changed.
	if cfg.Professionals["martin"].Family != "Martin" || len(cfg.Professionals) != 1 {
		t.Fatalf("Open's config was modified: %+v", cfg.Professionals)
	}

	for _, tc := range []struct {
		user, wantID, wantFamily string
		ok                       bool
	}{
		{"pdupont", "dupont", "Dupont", true},
		{"dupont", "", "", false}, // has a User: the id is not a user name
		{"martin", "martin", "Martin-Durand", true},
		{"nobody", "", "", false},
	} {
		id, p, ok := d.ProfessionalByUser(tc.user)
		if ok != tc.ok || id != tc.wantID || p.Family != tc.wantFamily {
			t.Errorf("ProfessionalByUser(%q) = %q, %q, %v; want %q, %q, %v", tc.user, id, p.Family, ok, tc.wantID, tc.wantFamily, tc.ok)
		}
	}
	if got := sources(d.Snapshot()); got["professionals.martin"] != "api" || got["professionals.dupont"] != "api" {
		t.Fatalf("sources after puts: %v", got)
	}

	// Deleting the override reverts to the configured entry; deleting the
	// added one removes it; the configured one cannot be deleted.
	for _, tc := range []struct {
		kind    Kind
		id      string
		wantErr error
	}{
		{Professionals, "martin", nil},
		{Professionals, "martin", ErrConfigured},
		{Professionals, "dupont", nil},
		{Professionals, "dupont", ErrNotFound},
		{Sites, "chu-urg", ErrConfigured},
		{Organisations, "telerad", ErrConfigured},
		{Kind("people"), "x", ErrNotFound},
	} {
		err := d.Delete(tc.kind, tc.id, "admin")
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("Delete(%s, %s) = %v, want %v", tc.kind, tc.id, err, tc.wantErr)
		}
	}
	if p, ok := d.Professional("martin"); !ok || p.Family != "Martin" {
		t.Errorf("martin after revert = %+v, %v; want the configured entry", p, ok)
	}
	if _, ok := d.Professional("dupont"); ok {
		t.Error("dupont still there after delete")
	}
	if got := sources(d.Snapshot()); got["professionals.martin"] != "config" {
		t.Errorf("martin's source after revert = %q", got["professionals.martin"])
	}
}

func TestSiteFor(t *testing.T) {
	d := open(t, t.TempDir(), testConfig(), nil)
	if err := d.PutSite("clinique", config.Site{Organisation: "chu", CallingAEs: []string{"CLIN_MR"}, Users: []string{"clinique-stow"}, ReportFormat: config.ReportBoth}, "admin"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ae, user, want string }{
		{"CHU_CT1", "", "chu-urg"},
		{"CLIN_MR", "", "clinique"},
		{"", "clinique-stow", "clinique"},
		{"OTHER", "someone", ""},
	} {
		id, _, ok := d.SiteFor(tc.ae, tc.user)
		if id != tc.want || ok != (tc.want != "") {
			t.Errorf("SiteFor(%q, %q) = %q, %v; want %q", tc.ae, tc.user, id, ok, tc.want)
		}
	}
	// Site returns a copy: changing it changes nothing.
	s, _ := d.Site("clinique")
	s.CallingAEs[0] = "HACKED"
	if s2, _ := d.Site("clinique"); s2.CallingAEs[0] != "CLIN_MR" {
		t.Error("Site shares its slices with the directory")
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name    string
		put     func(d *Directory) error
		wantKey string
	}{
		{"unknown organisation", func(d *Directory) error {
			return d.PutProfessional("x", config.Professional{RPPS: "10001111111", Family: "X", Organisation: "nowhere"}, "a")
		}, "professionals.x.organisation"},
		{"bad RPPS", func(d *Directory) error {
			return d.PutProfessional("x", config.Professional{RPPS: "123", Family: "X", Organisation: "chu"}, "a")
		}, "professionals.x.rpps"},
		{"no family name", func(d *Directory) error {
			return d.PutProfessional("x", config.Professional{RPPS: "10001111111", Organisation: "chu"}, "a")
		}, "professionals.x.family"},
		{"user taken", func(d *Directory) error {
			return d.PutProfessional("x", config.Professional{User: "martin", RPPS: "10001111111", Family: "X", Organisation: "chu"}, "a")
		}, "professionals.x.user"},
		{"bad id", func(d *Directory) error {
			return d.PutProfessional("x y", config.Professional{RPPS: "10001111111", Family: "X", Organisation: "chu"}, "a")
		}, "professionals.x y"},
		{"bad FINESS", func(d *Directory) error {
			return d.PutOrganisation("o", config.Organisation{FINESS: "12", Name: "O"}, "a")
		}, "organisations.o.finess"},
		{"bad OID", func(d *Directory) error {
			return d.PutOrganisation("o", config.Organisation{FINESS: "123456789", Name: "O", AccessionOID: "1.02"}, "a")
		}, "organisations.o.accession_oid"},
		{"unknown destination", func(d *Directory) error {
			return d.PutSite("s", config.Site{Organisation: "chu", ReportDestinations: []string{"nowhere"}}, "a")
		}, "sites.s.report_destinations"},
		{"calling AE of another site", func(d *Directory) error {
			return d.PutSite("s", config.Site{Organisation: "chu", CallingAEs: []string{"CHU_CT1"}}, "a")
		}, "sites.s.calling_aes"},
		{"bad report format", func(d *Directory) error {
			return d.PutSite("s", config.Site{Organisation: "chu", ReportFormat: "pdf"}, "a")
		}, "sites.s.report_format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := open(t, dir, testConfig(), nil)
			before := d.Snapshot()
			err := tc.put(d)
			var ke *config.KeyError
			if !errors.As(err, &ke) || ke.Key != tc.wantKey {
				t.Fatalf("err = %v, want a KeyError for %s", err, tc.wantKey)
			}
			if !reflect.DeepEqual(d.Snapshot(), before) {
				t.Error("a refused change changed the directory")
			}
			if _, err := os.Stat(filepath.Join(dir, "directory", FileName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused change wrote the file (stat: %v)", err)
			}
		})
	}
}

func TestDeleteOrganisationInUse(t *testing.T) {
	d := open(t, t.TempDir(), testConfig(), nil)
	if err := d.PutOrganisation("clinique", config.Organisation{FINESS: "690000001", Name: "Clinique"}, "a"); err != nil {
		t.Fatal(err)
	}
	if err := d.PutProfessional("p", config.Professional{RPPS: "10002222222", Family: "P", Organisation: "clinique"}, "a"); err != nil {
		t.Fatal(err)
	}
	// Overriding a configured organisation and deleting the override is
	// fine even while referenced: the configured one is back.
	if err := d.PutOrganisation("chu", config.Organisation{FINESS: "330781196", Name: "CHU Bordeaux"}, "a"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		kind    Kind
		id      string
		wantErr error
	}{
		{Organisations, "clinique", ErrInUse},
		{Organisations, "chu", nil},
		{Professionals, "p", nil},
		{Organisations, "clinique", nil},
	}
	for _, s := range steps {
		err := d.Delete(s.kind, s.id, "a")
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
			t.Fatalf("Delete(%s, %s) = %v, want %v", s.kind, s.id, err, s.wantErr)
		}
		if s.wantErr == ErrInUse && !strings.Contains(err.Error(), "professionals.p") {
			t.Errorf("in-use error %q does not name the referencing entry", err)
		}
	}
	if o, _ := d.Organisation("chu"); o.Name != "CHU de Bordeaux" {
		t.Errorf("chu after revert: %+v", o)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	j, err := journal.Open(jdir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := open(t, dir, testConfig(), j)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.PutOrganisation("clinique", config.Organisation{FINESS: "690000001", Name: "Clinique", AccessionOID: "1.2.3"}, "alice"))
	must(d.PutProfessional("dupont", config.Professional{RPPS: "10009876543", Family: "Dupont", Organisation: "clinique"}, "alice"))
	must(d.PutSite("chu-urg", config.Site{Organisation: "clinique", Users: []string{"u1"}}, "alice"))
	must(d.PutProfessional("tmp", config.Professional{RPPS: "10009876544", Family: "Tmp", Organisation: "chu"}, "bob"))
	must(d.Delete(Professionals, "tmp", "bob"))
	want := d.Snapshot()

	path := filepath.Join(dir, "directory", FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "directory", "*.tmp")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}

	d2 := open(t, dir, testConfig(), nil)
	if got := d2.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening:\n%+v\nwant\n%+v", got, want)
	}
	if s, _ := d2.Site("chu-urg"); s.Organisation != "clinique" {
		t.Errorf("site override lost: %+v", s)
	}

	// The journal has one directory.changed per change, without PHI.
	j.Close()
	j, err = journal.Open(jdir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var got []string
	err = j.Replay(context.Background(), 0, func(ev *journal.Event) error {
		if ev.Kind != "directory.changed" {
			return nil
		}
		var data map[string]string
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Errorf("data %s: %v", ev.Data, err)
		}
		got = append(got, ev.User+" "+data["kind"]+" "+data["id"]+" "+data["action"])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantEv := []string{
		"alice organisations clinique created",
		"alice professionals dupont created",
		"alice sites chu-urg overridden",
		"bob professionals tmp created",
		"bob professionals tmp deleted",
	}
	if !reflect.DeepEqual(got, wantEv) {
		t.Errorf("journal:\n%q\nwant\n%q", got, wantEv)
	}
}

func TestOpenBadFile(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"truncated", `{"version": 1, "professionals": {"x": {"rpps": "1000`, "corrupt"},
		{"not JSON", "garbage", "corrupt"},
		{"unknown field", `{"version": 1, "professionals": {"x": {"rpps": "10001111111", "family": "X", "organisation": "chu", "shoe_size": "42"}}}`, "shoe_size"},
		{"no version", `{"professionals": {}}`, "version"},
		{"wrong type", `{"version": 1, "professionals": {"x": {"rpps": 10001111111}}}`, "professionals.x.rpps"},
		{"disagrees with the configuration", `{"version": 1, "professionals": {"x": {"rpps": "10001111111", "family": "X", "organisation": "gone"}}}`, "professionals.x.organisation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "directory", FileName)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := Open(dir, testConfig(), nil)
			if err == nil {
				t.Fatalf("Open succeeded: %+v", d.Snapshot())
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the file and %q", err, tc.want)
			}
		})
	}
}

// A field added to the config types must round-trip through the JSON.
func TestEntryJSONRoundTrip(t *testing.T) {
	e := Entry[config.Site]{ID: "s", Source: "api", Value: config.Site{Organisation: "o", CallingAEs: []string{"A"}, Users: []string{"u"}, ReportDestinations: []string{"d"}, ReportFormat: "level1"}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"id":"s"`, `"source":"api"`, `"calling_aes":["A"]`, `"report_destinations":["d"]`, `"report_format":"level1"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	var back Entry[config.Site]
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Errorf("round trip: %+v, want %+v", back, e)
	}
	// Every exported field of the config types has a yaml name.
	for _, v := range []any{config.Organisation{}, config.Professional{}, config.Site{}} {
		rt := reflect.TypeOf(v)
		if got := len(fieldsOf(rt)); got != rt.NumField() {
			t.Errorf("%s: %d fields named, %d fields", rt, got, rt.NumField())
		}
	}
}

// Readers and writers at once (run with -race).
func TestConcurrent(t *testing.T) {
	d := open(t, t.TempDir(), testConfig(), nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("p%d", i)
			for n := range 20 {
				p := config.Professional{RPPS: fmt.Sprintf("1000000%02d%02d", i, n), Family: "F", Organisation: "chu"}
				if err := d.PutProfessional(id, p, "a"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				d.Snapshot()
				d.ProfessionalByUser("p1")
				d.SiteFor("CHU_CT1", "")
			}
		}()
	}
	wg.Wait()
	if n := len(d.Snapshot().Professionals); n != 9 {
		t.Errorf("%d professionals, want 9", n)
	}
	d2 := open(t, filepath.Dir(filepath.Dir(d.Path())), testConfig(), nil)
	if p, _ := d2.Professional("p7"); p.RPPS != "10000000719" {
		t.Errorf("p7 after reopening: %+v", p)
	}
}
