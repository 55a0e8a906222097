package worklist

import (
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
)

func TestConfigValidation(t *testing.T) {
	base := `
destinations:
  pacs: {dicom: {ae: PACS, host: 127.0.0.1, port: 11112}}
calendars:
  pds: {ics: /nonexistent/pds.ics}
`
	for name, tc := range map[string]struct{ yaml, key string }{
		"reader without ready": {`routes: [{name: a, forward: [pacs], reader: cmartin}]`, "routes[0] (a).reader"},
		"pool without ready":   {`routes: [{name: a, forward: [pacs], pool: pds}]`, "routes[0] (a).pool"},
		"unknown pool":         {`routes: [{name: a, forward: [pacs], ready: true, pool: nope}]`, "routes[0] (a).pool"},
		"reader and pool":      {`routes: [{name: a, forward: [pacs], ready: true, pool: pds, reader: x}]`, "routes[0] (a).pool"},
		"assignment":           {`worklist: {assignment: random}`, "worklist.assignment"},
		"sla priority":         {`worklist: {sla: {LOW: {claim: 1m}}}`, "worklist.sla.LOW"},
		"sla order":            {`worklist: {sla: {STAT: {claim: 30m, report: 10m}}}`, "worklist.sla.STAT.report"},
		"escalate_before":      {`worklist: {escalate_before: "1.5"}`, "worklist.escalate_before"},
		"escalate_before pct":  {`worklist: {escalate_before: "150%"}`, "worklist.escalate_before"},
		"webhook":              {`worklist: {escalation_webhook: "ftp://x"}`, "worklist.escalation_webhook"},
		"negative lock":        {`worklist: {lock: -1m}`, "worklist.lock"},
	} {
		_, err := config.Parse([]byte(base + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v; want an error naming %s", name, err, tc.key)
		}
	}
	c, err := config.Parse([]byte(base + `routes: [{name: a, forward: [pacs], ready: true, pool: pds}, {name: b, forward: [pacs], ready: true, reader: cmartin}]
worklist: {assignment: round-robin, lock: 10m, escalate_before: "25%", sla: {STAT: {claim: 3m}}, escalation_webhook: "https://alert.example/hook"}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Worklist
	if w.AssignmentPolicy() != config.AssignRoundRobin || w.LockDuration() != 10*time.Minute {
		t.Fatalf("%+v", w)
	}
	if s := w.SLAFor("STAT"); s.Claim != config.Duration(3*time.Minute) || s.Report != config.Duration(20*time.Minute) {
		t.Fatalf("STAT SLA %+v; want the claim given and the default report delay", s)
	}
	if d := (config.Worklist{}); d.LockDuration() != 15*time.Minute || d.AssignmentPolicy() != config.AssignLeastLoaded || d.SLAFor("").Report != config.Duration(24*time.Hour) {
		t.Fatalf("defaults: %+v", d)
	}
}
