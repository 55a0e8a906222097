package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const routeTestYAML = `
destinations:
  neuro-oncall: {dicom: {ae: NEURO, host: 127.0.0.1, port: 11113}}
  local-pacs:   {dicom: {ae: PACS, host: 127.0.0.1, port: 11114}}
  tele-site-b:  {dicomweb: {url: "https://site-b.example/dicom-web"}}
routes:
  - name: stroke
    when: Modality == "CT" && StudyDescription matches "(?i)(AVC|STROKE|THROMBO)" && CallingAE == "CT_URG"
    priority: STAT
    mode: immediate
    forward: [neuro-oncall]
    failover: [tele-site-b]
  - name: night-and-weekend
    when: weekend() || holiday() || night("20:00", "08:00")
    stable_after: 60s
    forward: [tele-site-b]
  - name: default
    forward: [local-pacs]
`

func writeRouteConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "relais.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRouteListAndTestFiles(t *testing.T) {
	cfg := writeRouteConfig(t, routeTestYAML)
	out, err := exec.Command(relaisBin, "route", "list", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("route list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "stroke") || !strings.Contains(lines[1], "immediate") || !strings.Contains(lines[1], "STAT") ||
		!strings.Contains(lines[1], "neuro-oncall") || !strings.Contains(lines[2], "stable 1m0s") || !strings.Contains(lines[3], "(always)") {
		t.Errorf("route list:\n%s", out)
	}
	files, _ := rtStudy(t, 1, "SCANNER AVC")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--at", "2026-01-07 10:00", "--calling-ae", "CT_URG"}, []string{"stroke   APPLIES: immediate, STAT → neuro-oncall (failover tele-site-b)",
			`CallingAE="CT_URG"`, "=> stroke"}},
		{[]string{"--at", "2026-12-25 10:00", "--calling-ae", "CT_OTHER"}, []string{"night-and-weekend APPLIES: stable 1m0s",
			"holiday()=true (2026-12-25 Noël)", "=> night-and-weekend"}},
		{[]string{"--at", "2026-01-07 10:00"}, []string{`import from ""`, "default  APPLIES", "night(20:00,08:00)=false (10:00)", "=> default"}},
	}
	for _, c := range cases {
		args := append(append([]string{"route", "test", "--config", cfg}, c.args...), files[0])
		out, err := exec.Command(relaisBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("route test %v: %v\n%s", c.args, err, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("route test %v: no %q in:\n%s", c.args, w, out)
			}
		}
	}
	// A bad rule: the error names it.
	bad := writeRouteConfig(t, strings.Replace(routeTestYAML, `night("20:00", "08:00")`, `night("20h00", "8:61")`, 1))
	out, err = exec.Command(relaisBin, "route", "test", "--config", bad, files[0]).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `route "night-and-weekend": when: night("8:61")`) {
		t.Errorf("bad rule: %v\n%s", err, out)
	}
}

// TestRouteTestStoredStudyAndReloadAuth: route test of a study from the
// index of a stopped node (arrival context and time as recorded), and
// route reload against a node with token authentication.
func TestRouteTestStoredStudyAndReloadAuth(t *testing.T) {
	cfg := writeRouteConfig(t, routeTestYAML)
	data := t.TempDir()
	s := startServer(t, data, routeTestYAML)
	files, _ := rtStudy(t, 2, "CT AVC")
	rtStorescu(t, s, files) // calling AE CT_URG
	server := fmt.Sprintf("http://127.0.0.1:%d", s.httpPort)
	// No token: refused.
	out, err := exec.Command(relaisBin, "route", "reload", "--server", server).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HTTP 401") || !strings.Contains(string(out), "admin token") {
		t.Errorf("reload without a token: %v\n%s", err, out)
	}
	tok, err := exec.Command(relaisBin, "token", "create", "--data", data, "--user", "admin1", "--role", "admin").Output()
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	// The node sees a new token within a second.
	for i := 0; i < 40; i++ {
		out, err = exec.Command(relaisBin, "route", "reload", "--server", server, "--token", token, "--config", cfg).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "invalid_token") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(out), "reloaded: 3 route(s) in force") {
		t.Errorf("reload with an admin token: %v\n%s", err, out)
	}
	out, err = exec.Command(relaisBin, "route", "list", "--server", server, "--token", token).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "night-and-weekend") {
		t.Errorf("route list from the server: %v\n%s", err, out)
	}
	// Dry run against the running node's rules.
	out, err = exec.Command(relaisBin, "route", "test", "--server", server, "--token", token, "--calling-ae", "CT_URG",
		"--at", "2026-01-07 10:00", files[0]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "stroke   APPLIES") || !strings.Contains(string(out), `CallingAE="CT_URG"`) {
		t.Errorf("route test --server: %v\n%s", err, out)
	}
	s.stop()
	var study string
	for _, ev := range storedEvents(t, data) {
		study = ev.StudyUID
	}
	out, err = exec.Command(relaisBin, "route", "test", "--config", cfg, "--data", data, study).CombinedOutput()
	if err != nil {
		t.Fatalf("route test --data: %v\n%s", err, out)
	}
	if strings.Count(string(out), "stroke   APPLIES") != 1 || !strings.Contains(string(out), `dimse from "CT_URG"`) ||
		!strings.Contains(string(out), "2 instance(s) (1 with an outcome already shown") || !strings.Contains(string(out), "  2 → stroke") {
		t.Errorf("route test --data:\n%s", out)
	}
	out, err = exec.Command(relaisBin, "route", "test", "--config", cfg, "--data", data, "--all", study).CombinedOutput()
	if err != nil || strings.Count(string(out), "stroke   APPLIES") != 2 {
		t.Errorf("route test --data --all: %v\n%s", err, out)
	}
}
