package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/relais-health/relais/coerce"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/routing/queue"
	"github.com/relais-health/relais/storage"
	"go.yaml.in/yaml/v3"
)

func TestExtractorAndRules(t *testing.T) {
	c := &testdicom.CT{PatientName: "Doe^J", PatientID: "P1", StudyUID: testdicom.UID(), SeriesUID: testdicom.UID(), SOPUID: testdicom.UID(),
		StudyDescription: "IRM CEREBRALE", Modality: "MR", Instance: 1, TransferSyntax: "1.2.840.10008.1.2.1",
		OtherPatientIDs: []testdicom.OtherPatientID{{ID: "1234567890123", Issuer: "INS-NIR"}},
		ProcedureCodes:  []testdicom.Code{{Value: "X1", Scheme: "LOCAL", Meaning: "IRM Alerte thrombolyse"}}}
	b, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewExtractor()
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	at := paris(t, "2026-01-10 03:00")
	inst, err := x.Instance(context.Background(), bytes.NewReader(b), storage.Source{CallingAE: "MR1"}, at)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Compile(testConfig(t, destsYAML+`
routes:
  - {name: ins, when: 'any(OtherPatientIDsSequence, {.IssuerOfPatientID == "INS-NIR"}) && CallingAE == "MR1" && Channel == "import"', continue: true, forward: [local-pacs]}
  - {name: stroke, when: 'Modality == "MR" && stroke() && weekend()', forward: [neuro-oncall]}
`), rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	ds := rs.Evaluate(inst, time.Time{})
	if len(ds) != 2 || ds[0].Route != "ins" || ds[1].Route != "stroke" {
		for _, d := range rs.Test(inst, time.Time{}) {
			t.Logf("%s %v %s %s", d.Route, d.Matched, d.Why, d.Err)
		}
		t.Fatalf("decisions %+v", ds)
	}
}

func TestAdminHandler(t *testing.T) {
	r := newRig(t, t.TempDir(), twoModes)
	defer r.close()
	h := r.e.AdminHandler()
	do := func(method, path string, body []byte) (int, map[string]any) {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var m map[string]any
		json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	code, m := do("GET", "/api/routes", nil)
	if code != 200 || len(m["routes"].([]any)) != 2 {
		t.Fatalf("GET /api/routes: %d %v", code, m)
	}
	files, err := testdicom.Study(t.TempDir(), 1, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := readFile(files[0])
	code, m = do("POST", "/api/routes/test?at=2026-01-07T10:00:00%2B01:00", b)
	if code != 200 {
		t.Fatalf("test: %d %v", code, m)
	}
	d := m["decisions"].([]any)[0].(map[string]any)
	if d["route"] != "stroke" || d["applies"] != true || !strings.Contains(d["why"].(string), "stroke()=true") {
		t.Errorf("test decision %v", d)
	}
	code, m = do("POST", "/api/routes/reload", []byte(destsYAML+"routes: [{name: bad, when: 'Modality ==', forward: [local-pacs]}]\n"))
	if code != 422 || !strings.Contains(m["error"].(string), `route "bad": when:`) {
		t.Errorf("bad reload: %d %v", code, m)
	}
	if r.e.Rules().Rules[0].Name != "stroke" {
		t.Errorf("rules changed by a refused reload")
	}
	code, m = do("POST", "/api/routes/reload", []byte(destsYAML+"routes: [{name: only, forward: [local-pacs]}]\n"))
	if code != 200 || r.e.Rules().Rules[0].Name != "only" {
		t.Errorf("good reload: %d %v", code, m)
	}
	code, m = do("POST", "/api/routes/reload", []byte(strings.Replace(destsYAML, "calendars:", "  other: {dicom: {ae: OTHER, host: 127.0.0.1, port: 1}}\ncalendars:", 1)+`
routes: [{name: new-dest, forward: [other]}]
`))
	if code != 422 || !strings.Contains(m["error"].(string), `route "new-dest": forward: destination "other" is new`) {
		t.Errorf("reload with a new destination: %d %v", code, m)
	}
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

func TestPrepareCoerces(t *testing.T) {
	// config.Parse refuses any coerce block today (KnownFields on a
	// *yaml.Node field): the node is set by hand.
	cfg := testConfig(t, destsYAML+`
routes:
  - name: c
    forward: [local-pacs]
`)
	cfg.Routes[0].Coerce = yamlNode(t, `{prefix: {PatientID: "SITEA-"}, set: {InstitutionName: "CH SUD"}, issuer_of_patient_id: SITEA}`)
	rs, err := Compile(cfg, rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	raw := rs.Rules[0].coerce
	if raw == nil {
		t.Fatal("no coercion compiled")
	}
	files, err := testdicom.Study(t.TempDir(), 1, "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	x, _ := NewExtractor()
	defer x.Close()
	inst, err := x.InstanceFromFile(context.Background(), files[0], storage.Source{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := testdicom.DatasetOf(files[0])
	if err != nil {
		t.Fatal(err)
	}
	tk := &queue.Task{Route: "c", Coerce: raw}
	r, err := Prepare(tk, inst, bytes.NewReader(ds))
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := dicom.LookupTransferSyntax(inst.TransferSyntaxUID)
	res, err := dicom.Scan(r, ts, dicom.DefaultLimits(), dicom.WantAll)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := res.Dataset.String(dicom.TagPatientID)
	inn, _ := res.Dataset.String(dicom.TagInstitutionName)
	iss, _ := res.Dataset.String(dicom.TagIssuerOfPatientID)
	if pid != "SITEA-"+inst.PatientID || inn != "CH SUD" || iss != "SITEA" {
		t.Errorf("coerced: PatientID %q InstitutionName %q Issuer %q", pid, inn, iss)
	}
	// Without coercion the data set passes through untouched.
	r, err = Prepare(&queue.Task{}, inst, bytes.NewReader(ds))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if !bytes.Equal(b, ds) {
		t.Error("data set changed without coercion")
	}
	// A bad coerce block names the rule.
	cfg = testConfig(t, destsYAML+`
routes:
  - {name: badc, forward: [local-pacs]}
`)
	cfg.Routes[0].Coerce = yamlNode(t, `{set: {NoSuchKeyword: x}}`)
	_, err = Compile(cfg, rotaLoader(t))
	if err == nil || !strings.Contains(err.Error(), `route "badc": coerce:`) {
		t.Errorf("bad coerce: %v", err)
	}
}

func yamlNode(t *testing.T, src string) *coerce.Spec {
	t.Helper()
	var spec coerce.Spec
	if err := yaml.Unmarshal([]byte(src), &spec); err != nil {
		t.Fatal(err)
	}
	return &spec
}
