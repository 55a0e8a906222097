package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c, err := Parse(nil)
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if c.AETitle != "RELAIS" || c.Listen.DICOM != ":11112" || c.Listen.HTTP != ":8080" {
		t.Fatalf("unexpected defaults %+v", c)
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte(`
ae_title: HUB
limits: {idle_timeout: 90s, max_dataset_size: 2GiB}
dicom:
  allowed_callers:
    - {ae: CT1, hosts: [127.0.0.1, 10.0.0.0/8]}
remote_aes:
  - {name: pacs, ae: PACS, host: 10.1.1.1, port: 104}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.AETitle != "HUB" || time.Duration(c.Limits.IdleTimeout) != 90*time.Second || c.Limits.MaxDatasetSize != 2<<30 {
		t.Fatalf("not applied: %+v", c)
	}
	if c.Limits.MaxPDULength != 1<<20 {
		t.Fatalf("default lost: %d", c.Limits.MaxPDULength)
	}
	if len(c.DICOM.AllowedCallers) != 1 || c.RemoteAEs[0].Port != 104 {
		t.Fatalf("lists not parsed: %+v", c)
	}
}

func TestInvalidNamesTheKey(t *testing.T) {
	cases := []struct{ yaml, key string }{
		{"ae_title: THIS_AE_TITLE_IS_TOO_LONG", "ae_title"},
		{"listen: {dicom: nowhere}", "listen.dicom"},
		{"limits: {max_pdu_length: 12}", "limits.max_pdu_length"},
		{"limits: {idle_timeout: soon}", "idle_timeout"},
		{"dicom: {duplicate_policy: overwrite}", "dicom.duplicate_policy"},
		{"dicom: {allowed_callers: [{ae: 'A\\B'}]}", "dicom.allowed_callers[0].ae"},
		{"dicom: {allowed_callers: [{ae: CT, hosts: [10.0.0.0/99]}]}", "dicom.allowed_callers[0].hosts[0]"},
		{"remote_aes: [{name: x, ae: X, host: h, port: 0}]", "remote_aes[0].port"},
		{"remote_aes: [{name: x, ae: X, host: h, port: 1}, {name: x, ae: Y, host: h, port: 2}]", "remote_aes[1].name"},
		{"storage: {blobs: {backend: s3}}", "storage.blobs.s3.endpoint"},
		{"storage: {blobs: {backend: tape}}", "storage.blobs.backend"},
		{"log: {level: loud}", "log.level"},
		{"ae_titel: X", "ae_titel"},
		{"dicom: {transfer_syntaxes: [explicit]}", "dicom.transfer_syntaxes[0]"},
		{"http: {auth: off}", "http.auth"},
		{"http: {public_url: 'relais.local'}", "http.public_url"},
		{"http: {cors: {allowed_origins: ['http://ok.example', 'viewer']}}", "http.cors.allowed_origins[1]"},
		{"http: {max_stow_size: 0}", "http.max_stow_size"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml))
		if err == nil {
			t.Errorf("%q: accepted", tc.yaml)
			continue
		}
		if !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %q does not name %q", tc.yaml, err, tc.key)
		}
	}
}

func TestS3CredentialsFromEnvAndFile(t *testing.T) {
	t.Setenv("TEST_AK", "ak")
	t.Setenv("TEST_SK", "sk")
	a, s, err := S3Blob{AccessKeyEnv: "TEST_AK", SecretKeyEnv: "TEST_SK"}.S3Credentials()
	if err != nil || a != "ak" || s != "sk" {
		t.Fatalf("env: %q %q %v", a, s, err)
	}
	_, _, err = S3Blob{AccessKeyEnv: "TEST_NONE_SET", SecretKeyEnv: "TEST_SK"}.S3Credentials()
	if err == nil || !strings.Contains(err.Error(), "access_key") {
		t.Fatalf("missing key not reported: %v", err)
	}
}

// TestIssueRoutingExample parses the routing configuration of the routing
// issue as an admin would write it.
func TestIssueRoutingExample(t *testing.T) {
	c, err := Parse([]byte(`
destinations:
  neuro-oncall: {dicom: {ae: NEURO, host: 127.0.0.1, port: 11113}, associations: 4}
  local-pacs:   {dicom: {ae: PACS, host: 127.0.0.1, port: 11114}}
  tele-site-b:  {dicomweb: {url: "https://site-b.example/dicom-web", token_file: /etc/relais/site-b.token}}
calendars:
  pds: {ics: /etc/relais/pds-rota.ics}
routes:
  - name: stroke
    when: Modality == "CT" && StudyDescription matches "(?i)(AVC|STROKE|THROMBO)"
    priority: STAT
    mode: immediate
    forward: [neuro-oncall]
    failover: [tele-site-b]
  - name: night-and-weekend
    when: oncall("pds") || weekend() || holiday()
    mode: stable
    stable_after: 60s
    forward: [tele-site-b]
  - name: default
    forward: [local-pacs]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 3 || c.Routes[0].Priority != PriorityStat || c.Destinations["neuro-oncall"].Associations != 4 ||
		c.Destinations["tele-site-b"].DICOMweb == nil || c.Calendars["pds"].ICS == "" || time.Duration(c.Routes[1].StableAfter) != time.Minute {
		t.Fatalf("parsed %+v", c)
	}
	for _, tc := range []struct{ yaml, key string }{
		{"routes: [{name: a, forward: [nowhere]}]", "routes[0] (a)"},
		{"routes: [{forward: []}]", "routes[0].name"},
		{"routes: [{name: a, mode: later}]", "routes[0] (a).mode"},
		{"routes: [{name: a, priority: HIGH}]", "routes[0] (a).priority"},
		{"routes: [{name: a}, {name: a}]", "routes[1] (a).name"},
		{"destinations: {x: {}}", "destinations.x"},
		{"destinations: {x: {dicom: {ae: X, host: h, port: 0}}}", "destinations.x.dicom.port"},
		{"destinations: {x: {dicomweb: {url: ftp://a}}}", "destinations.x.dicomweb.url"},
		{"calendars: {pds: {}}", "calendars.pds.ics"},
		{"holidays: {country: DE}", "holidays.country"},
		{"holidays: {extra: [2026-13-01]}", "holidays"},
		{"routes: [{name: a, priors: {from: nope}}]", "routes[0] (a).priors.from"},
		{"routes: [{name: a, coerce: {sett: {PatientID: x}}}]", "sett"},
		{"routing: {stroke_patterns: ['(AVC']}", "routing.stroke_patterns[0]"},
		{"routes: [{name: a, coerce: {set: {NoSuchKeyword: x}}}]", "routes[0] (a).coerce"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v does not name %q", tc.yaml, err, tc.key)
		}
	}
}

// TestREADMEExamples: the configuration examples of the README parse (an
// admin copies them).
func TestREADMEExamples(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Routing\n")
	if i < 0 {
		t.Fatal("README has no Routing section")
	}
	block := readme[i:]
	block = block[strings.Index(block, "```yaml\n")+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	// The example names a remote AE for priors: give it one.
	block = "remote_aes: [{name: pacs, ae: PACS, host: 10.1.1.1, port: 104}]\n" + block
	if _, err := Parse([]byte(block)); err != nil {
		t.Fatalf("README routing example: %v", err)
	}
	// The directory example, with the destination it names.
	i = strings.Index(readme, "### Directory\n")
	if i < 0 {
		t.Fatal("README has no Directory section")
	}
	dir := readme[i:]
	dir = dir[strings.Index(dir, "```yaml\n")+len("```yaml\n"):]
	dir = dir[:strings.Index(dir, "```")]
	dir = "destinations: {nord-pacs: {dicom: {ae: NORD, host: 10.1.1.2, port: 104}}}\n" + dir
	dc, err := Parse([]byte(dir))
	if err != nil {
		t.Fatalf("README directory example: %v", err)
	}
	if _, s, ok := dc.SiteFor("CT_NORD", ""); !ok || s.INSStatus != "QUAL" {
		t.Errorf("README directory example: CT_NORD's site = %+v, %v", s, ok)
	}
	if _, p, ok := dc.ProfessionalFor("cmartin"); !ok || p.RPPS != "10001234567" {
		t.Errorf("README directory example: cmartin = %+v, %v", p, ok)
	}
	// The configuration reference, with its defaults, is the default.
	i = strings.Index(readme, "## Configuration reference")
	ref := readme[i:]
	ref = ref[strings.Index(ref, "```yaml\n")+len("```yaml\n"):]
	ref = ref[:strings.Index(ref, "```")]
	c, err := Parse([]byte(ref))
	if err != nil {
		t.Fatalf("README configuration reference: %v", err)
	}
	d := Default()
	if c.AETitle != d.AETitle || c.Limits != d.Limits || c.HTTP.Auth != d.HTTP.Auth || c.Routing.MaxAttempts != d.Routing.MaxAttempts ||
		c.Routing.MinFreeSpace != d.Routing.MinFreeSpace || c.Holidays.Timezone != d.Holidays.Timezone {
		t.Errorf("the reference's values differ from the defaults: %+v", c)
	}
}
