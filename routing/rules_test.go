package routing

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/routing/calendar"
	"github.com/relais-health/relais/storage"
)

// rota: PDS nights on weekdays (20:00-08:00, RRULE weekly Mon-Fri) for
// "Dr Night", and a neuro on-call every day.
const testICS = `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//relais//test//EN
BEGIN:VEVENT
UID:pds-night@test
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Paris:20260105T200000
DTEND;TZID=Europe/Paris:20260106T080000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
SUMMARY:PDS Dr Night
END:VEVENT
BEGIN:VEVENT
UID:neuro@test
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Paris:20260105T080000
DTEND;TZID=Europe/Paris:20260106T080000
RRULE:FREQ=DAILY
SUMMARY:neuro site B
END:VEVENT
END:VCALENDAR
`

func testConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const destsYAML = `
destinations:
  neuro-oncall: {dicom: {ae: NEURO, host: 127.0.0.1, port: 11113}}
  local-pacs:   {dicom: {ae: PACS, host: 127.0.0.1, port: 11114}}
  tele-site-b:  {dicomweb: {url: "https://site-b.example/dicom-web"}}
calendars:
  pds: {ics: /nonexistent/pds.ics}
`

func rotaLoader(t *testing.T) Options {
	return Options{Calendars: func(name string, c config.Calendar, loc *time.Location) (OnCall, error) {
		return calendar.MustParseRota(testICS, loc), nil
	}}
}

func inst(attrs map[string]string) *storage.Instance {
	return &storage.Instance{SOPInstanceUID: "1.2.3.4", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.1", Attrs: attrs,
		Source: storage.Source{Channel: "dimse", CallingAE: "CT_URG", CalledAE: "RELAIS", RemoteAddr: "10.0.0.5:4000"}}
}

func paris(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, calendar.Paris())
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestCompileErrorsNameTheRule(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{`routes: [{name: bad-expr, when: 'Modality == ', forward: [local-pacs]}]`, `route "bad-expr": when:`},
		{`routes: [{name: typo, when: 'Modaliti == "CT"', forward: [local-pacs]}]`, `route "typo": when: unknown name Modaliti`},
		{`routes: [{name: notbool, when: 'Modality', forward: [local-pacs]}]`, `route "notbool": when:`},
		{`routes: [{name: win, when: 'within("Mon-Fry 08:00-18:00")', forward: [local-pacs]}]`, `route "win": when: within`},
		{`routes: [{name: cal, when: 'oncall("nope")', forward: [local-pacs]}]`, `route "cal": when: oncall("nope"): unknown calendar`},
		{`routes: [{name: rx, when: 'StudyDescription matches "(("', forward: [local-pacs]}]`, `route "rx": when:`},
		{`routes: [{name: seq, when: 'len(ContentSequence) > 0', forward: [local-pacs]}]`, `route "seq": when: ContentSequence is a sequence the index does not keep`},
		{`routes: [{name: now, when: 'now().Hour() > 3', forward: [local-pacs]}]`, `route "now": when:`},
	}
	for _, c := range cases {
		_, err := Compile(testConfig(t, destsYAML+c.yaml), rotaLoader(t))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.yaml, err, c.want)
		}
		var re *RuleError
		if err != nil && !errors.As(err, &re) {
			t.Errorf("%s: %T is not a RuleError", c.yaml, err)
		}
	}
	// An unreadable calendar names the rule that uses it.
	cfg := testConfig(t, destsYAML+`routes: [{name: pds-night, when: 'oncall("pds")', forward: [local-pacs]}]`)
	_, err := Compile(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), `route "pds-night": when: oncall("pds"): calendar unreadable`) {
		t.Errorf("unreadable calendar: %v", err)
	}
	// Unknown destination (config validates too; Compile checks again for reloads of hand-built configs).
	cfg = testConfig(t, destsYAML+`routes: [{name: ok, forward: [local-pacs]}]`)
	cfg.Routes[0].Forward = []string{"nowhere"}
	if _, err := Compile(cfg, rotaLoader(t)); err == nil || !strings.Contains(err.Error(), `route "ok": forward: unknown destination "nowhere"`) {
		t.Errorf("unknown destination: %v", err)
	}
}

func TestEvaluateTable(t *testing.T) {
	cfg := testConfig(t, destsYAML+`
holidays: {extra: ["2026-06-15"]}
routes:
  - {name: stroke, when: 'Modality == "CT" && stroke()', priority: STAT, mode: immediate, forward: [neuro-oncall], failover: [tele-site-b]}
  - {name: from-urg, when: 'CallingAE == "CT_URG" && Channel == "dimse" && SourceAddr startsWith "10."', continue: true, forward: [local-pacs]}
  - {name: issuer, when: 'any(OtherPatientIDsSequence, {.IssuerOfPatientID == "INS-NIR"})', forward: [tele-site-b]}
  - {name: pds, when: 'oncall("pds", "Dr Night") || weekend() || holiday()', forward: [tele-site-b]}
  - {name: office, when: 'within("Mon-Fri 08:00-18:00") && !night("20:00", "08:00") && hour() >= 8', forward: [local-pacs]}
  - {name: default, forward: [local-pacs]}
`)
	rs, err := Compile(cfg, rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	ct := map[string]string{"00080060": "CT", "00081030": "TETE SANS INJ"}
	strokeCT := map[string]string{"00080060": "CT", "00081030": "ALERTE THROMBOLYSE"}
	pcode := map[string]string{"00080060": "MR", "00081032": `[{"00080104":"IRM AVC hyperaigu"}]`}
	ins := map[string]string{"00080060": "CR", "00101002": `[{"00100020":"1234","00100021":"INS-NIR"}]`}
	cases := []struct {
		name    string
		attrs   map[string]string
		calling string
		at      string
		want    []string
	}{
		{"weekday office hours", ct, "CT_A", "2026-01-07 10:00", []string{"office"}},        // Wednesday
		{"weekday night: rota", ct, "CT_A", "2026-01-07 23:30", []string{"pds"}},            // Wed night, Dr Night on call
		{"early morning on rota", ct, "CT_A", "2026-01-08 07:59", []string{"pds"}},          // still Dr Night's shift
		{"weekday evening off rota", ct, "CT_A", "2026-01-07 19:00", []string{"default"}},   // not office, not rota
		{"saturday", ct, "CT_A", "2026-01-10 11:00", []string{"pds"}},                       // weekend
		{"public holiday (14 July)", ct, "CT_A", "2026-07-14 11:00", []string{"pds"}},       // Tuesday
		{"easter monday", ct, "CT_A", "2026-04-06 11:00", []string{"pds"}},                  // Lundi de Pâques 2026
		{"configured extra holiday", ct, "CT_A", "2026-06-15 11:00", []string{"pds"}},       // Monday
		{"stroke at any hour", strokeCT, "CT_A", "2026-01-07 10:00", []string{"stroke"}},    // first match decides
		{"stroke by procedure code", pcode, "CT_A", "2026-01-07 10:00", []string{"office"}}, // MR: rule needs CT
		{"continue", ct, "CT_URG", "2026-01-07 10:00", []string{"from-urg", "office"}},      // continue: later applies too
		{"sequence items", ins, "CT_A", "2026-01-07 10:00", []string{"issuer"}},             // any() over items
		{"missing attribute", map[string]string{}, "CT_A", "2026-01-07 10:00", []string{"office"}},
	}
	for _, c := range cases {
		in := inst(c.attrs)
		in.Source.CallingAE = c.calling
		in.ReceivedAt = paris(t, c.at).UTC()
		ds := rs.Evaluate(in, time.Time{})
		var got []string
		for _, d := range ds {
			got = append(got, d.Route)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: routes %v, want %v", c.name, got, c.want)
			for _, d := range rs.Test(in, time.Time{}) {
				t.Logf("  %s matched=%v why: %s %s", d.Route, d.Matched, d.Why, d.Err)
			}
		}
	}
	// stroke() by Procedure Code Sequence code meaning.
	in := inst(pcode)
	in.ReceivedAt = paris(t, "2026-01-07 10:00")
	cfg2 := testConfig(t, destsYAML+`routes: [{name: s, when: 'stroke()', forward: [local-pacs]}]`)
	rs2, err := Compile(cfg2, rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	ds := rs2.Evaluate(in, time.Time{})
	if len(ds) != 1 || !strings.Contains(ds[0].Why, "ProcedureCodeSequence.CodeMeaning") {
		t.Errorf("stroke by code meaning: %+v", ds)
	}
	// The site's own stroke patterns (routing.stroke_patterns) replace
	// the defaults.
	cfg3 := testConfig(t, destsYAML+`
routing: {stroke_patterns: ['(?i)code rouge']}
routes: [{name: s, when: 'stroke()', forward: [local-pacs]}]`)
	rs3, err := Compile(cfg3, rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	in = inst(strokeCT)
	if ds := rs3.Evaluate(in, time.Time{}); len(ds) != 0 {
		t.Errorf("configured patterns: the default ALERTE THROMBOLYSE still matches: %+v", ds)
	}
	in.Attrs = maps.Clone(in.Attrs)
	in.Attrs["00081030"] = "CT CODE ROUGE"
	if ds := rs3.Evaluate(in, time.Time{}); len(ds) != 1 {
		t.Errorf("configured patterns: %q not matched", in.Attrs["00081030"])
	}
	// Why names the values read.
	in = inst(strokeCT)
	in.ReceivedAt = paris(t, "2026-01-07 03:00")
	d := rs.Evaluate(in, time.Time{})[0]
	if d.Route != "stroke" || !strings.Contains(d.Why, `Modality="CT"`) || !strings.Contains(d.Why, `stroke()=true (StudyDescription "ALERTE THROMBOLYSE")`) ||
		d.Priority != "STAT" || d.Mode != "immediate" {
		t.Errorf("stroke decision: %+v", d)
	}
}

func TestDefaults(t *testing.T) {
	rs, err := Compile(testConfig(t, destsYAML+`
routes:
  - {name: stat, priority: STAT, when: 'true', forward: [local-pacs]}
  - {name: plain, forward: [local-pacs]}
`), rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	if r := rs.Rules[0]; r.Mode != "stable" || r.StableAfter != 10*time.Second || r.Late != "send" {
		t.Errorf("STAT defaults: %+v", r)
	}
	if r := rs.Rules[1]; r.Mode != "stable" || r.StableAfter != 60*time.Second || r.Priority != "ROUTINE" {
		t.Errorf("routine defaults: %+v", r)
	}
}

func TestWarningsForAttributesNotIndexed(t *testing.T) {
	rs, err := Compile(testConfig(t, destsYAML+`routes: [{name: w, when: 'SliceThickness == "1" || Modality == "CT"', forward: [local-pacs]}]`), rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Warnings) != 1 || !strings.Contains(rs.Warnings[0], `route "w": SliceThickness is not an indexed attribute`) {
		t.Errorf("warnings %v", rs.Warnings)
	}
}

func TestNowIsLocal(t *testing.T) {
	rs, err := Compile(testConfig(t, destsYAML+`routes: [{name: n, when: 'Now.Hour() == 3 && hour() == 3 && weekday() == "Sat"', forward: [local-pacs]}]`), rotaLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	in := inst(nil)
	in.ReceivedAt = paris(t, "2026-01-10 03:30").UTC()
	if ds := rs.Evaluate(in, time.Time{}); len(ds) != 1 {
		t.Errorf("Now is not in the rules' time zone: %+v", rs.Test(in, time.Time{}))
	}
}
