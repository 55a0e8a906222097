package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUPSRSWithWebSocketSubscriber drives the Worklist Service with a
// plain HTTP client and the npm ws WebSocket client: search, claim with a
// Transaction UID, a refused completion, the events, and the COMPLETED
// event when the report is signed.
func TestUPSRSWithWebSocketSubscriber(t *testing.T) {
	needTool(t, "storescu")
	node := needClient(t)
	pacs := startStorescp(t, "NORDPACS")
	data := t.TempDir()
	radiologist := createToken(t, data, "cmartin", "radiologist")
	requester := createToken(t, data, "ch-nord", "requester")
	cfg := reportConfig(pacs.port, freePort(t)) + `routes:
  - name: read
    when: 'true'
    mode: immediate
    priority: STAT
    forward: [nord-pacs]
    ready: true
    reader: cmartin
`
	s := startServer(t, data, cfg)
	study, files := reportStudy(t, t.TempDir(), "IPP123", "ACC-UPS", reportINS, 2)
	host, port := s.hostPort()
	if out, err := dcmtk(t, "storescu", append([]string{"-aet", "CT_NORD", "-aec", "RELAIS", host, port}, files...)...); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d/dicom-web", s.httpPort)
	httpGet(t, base+"/workitems", requester, "", 403)
	httpGet(t, base+"/workitems", "", "", 401)
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/api/worklist", s.httpPort), requester, "", 403)
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/api/worklist/events", s.httpPort), requester, "", 403)

	cmd := exec.Command(node, filepath.Join("testdata", "dicomweb-client", "ups.mjs"))
	cmd.Env = append(os.Environ(), "BASE="+base, "TOKEN="+radiologist, "STUDY="+study, "AE=VIEWER1")
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	steps := map[string]map[string]any{}
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("ups.mjs: %q", sc.Text())
		}
		steps[m["step"].(string)] = m
		if m["step"] == "ready_for_signature" {
			r := reportJSON(t, s, radiologist, "create", "--study", study, "--conclusion", "Pas d'anomalie.", "--patient-birth-place", "75056")
			reportJSON(t, s, radiologist, "sign", r.ID)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ups.mjs: %v\n%s\nsteps: %v", err, stderr.String(), steps)
	}
	for step, want := range map[string]map[string]any{
		"subscribe":       {"status": 201.0},
		"search":          {"status": 200.0, "matches": 1.0, "priority": "HIGH", "performer": "cmartin"},
		"initial":         {"state": "SCHEDULED", "type": 1.0},
		"claim":           {"status": 200.0},
		"claimed_event":   {"state": "IN PROGRESS"},
		"complete_early":  {"status": 409.0},
		"claim_again":     {"status": 409.0},
		"completed_event": {"state": "COMPLETED", "type": 1.0},
	} {
		got := steps[step]
		for k, v := range want {
			if got == nil || got[k] != v {
				t.Errorf("%s.%s = %v, want %v (step %v)", step, k, got[k], v, got)
			}
		}
	}
	if w, _ := steps["complete_early"]["warning"].(string); !strings.Contains(w, "not signed") {
		t.Errorf("an early completion is not explained: %q", w)
	}
	if evs := journalKinds(t, data, "ups.state"); len(evs) == 0 {
		t.Errorf("the claim is not journaled")
	}
}
