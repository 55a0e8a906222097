package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/routing/queue"
)

// queueFixture writes a data directory holding a queue with a pending, a
// dead and a done task, and a configuration naming two destinations and
// an HTTP address.
func queueFixture(t *testing.T) (data, cfgFile, httpAddr string) {
	t.Helper()
	data = t.TempDir()
	st, err := queue.Open(queue.DefaultDir(data), queue.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id string) queue.Task {
		return queue.Task{ID: id, Route: "stroke", Priority: queue.Stat, Destinations: []string{"pacs"}, StudyUID: "1.2.3", SOPInstanceUID: "1.2.3." + id}
	}
	if _, err := st.Enqueue(context.Background(), []queue.Task{mk("pacs/1.2.3.1"), mk("dead-1"), mk("done-1")}, nil); err != nil {
		t.Fatal(err)
	}
	cl, _, _ := st.Claim("pacs", time.Now(), 10, func(id string) bool { return id == "pacs/1.2.3.1" })
	var outs []queue.Outcome
	for _, c := range cl {
		o := queue.Outcome{ID: c.ID, Claimed: c.Claimed}
		if c.ID == "dead-1" {
			o.Err = errors.New("association rejected")
		}
		outs = append(outs, o)
	}
	if _, err := st.Complete(time.Now(), queue.Policy{MaxAttempts: 1}, outs); err != nil {
		t.Fatal(err)
	}
	st.Close()
	httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfgFile = filepath.Join(t.TempDir(), "relais.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`data_dir: %s
listen: {http: "%s"}
destinations:
  pacs:  {dicom: {ae: PACS, host: 127.0.0.1, port: 11113}}
  other: {dicom: {ae: OTHER, host: 127.0.0.1, port: 11114}}
`, data, httpAddr)), 0o644)
	return data, cfgFile, httpAddr
}

func relaisQueue(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(relaisBin, append([]string{"queue"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// queueSteps are the verbs, run the same way on a data directory and
// through a running server's API.
var queueSteps = []struct {
	name    string
	args    []string
	wantErr bool
	want    []string
}{
	{"list", []string{"list"}, false, []string{"pacs/1.2.3.1", "dead-1", "done-1", "STAT", "association rejected", "3 task(s)"}},
	{"list dead", []string{"list", "--state", "dead"}, false, []string{"dead-1", "1 task(s)"}},
	{"list json", []string{"list", "--state", "pending", "--json"}, false, []string{`"id": "pacs/1.2.3.1"`, `"state": "pending"`}},
	{"show", []string{"show", "pacs/1.2.3.1"}, false, []string{`"route": "stroke"`, `"priority": "STAT"`}},
	{"show unknown", []string{"show", "nope"}, true, []string{"not found"}},
	{"retry dead", []string{"retry", "dead-1"}, false, []string{"retrying dead-1: pending on pacs"}},
	{"retry done", []string{"retry", "done-1"}, true, []string{"not allowed"}},
	{"reroute unknown", []string{"reroute", "dead-1", "--dest", "nowhere"}, true, []string{"unknown destination"}},
	{"reroute", []string{"reroute", "dead-1", "--dest", "other"}, false, []string{"rerouted dead-1: pending on other"}},
	{"cancel", []string{"cancel", "pacs/1.2.3.1", "--reason", "wrong patient"}, false, []string{"cancelled pacs/1.2.3.1: cancelled on pacs"}},
	{"after", []string{"list", "--json"}, false, []string{`"last_error": "wrong patient"`, `"other"`}},
}

func runQueueSteps(t *testing.T, env []string, common ...string) {
	for _, s := range queueSteps {
		t.Run(s.name, func(t *testing.T) {
			out, err := relaisQueue(t, env, append(s.args, common...)...)
			if (err != nil) != s.wantErr {
				t.Fatalf("err = %v, want error %v:\n%s", err, s.wantErr, out)
			}
			for _, w := range s.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestQueueCLIOnDataDir(t *testing.T) {
	data, cfgFile, _ := queueFixture(t)
	runQueueSteps(t, nil, "--config", cfgFile)
	// The operator actions are journaled.
	evs := map[string]int{}
	for _, k := range []string{"delivery.retried", "delivery.rerouted", "delivery.cancelled"} {
		evs[k] = len(journalKinds(t, data, k))
	}
	if evs["delivery.retried"] != 1 || evs["delivery.rerouted"] != 1 || evs["delivery.cancelled"] != 1 {
		t.Errorf("journal: %v", evs)
	}
	if out, err := relaisQueue(t, nil, "list", "--data", t.TempDir()); err == nil || !strings.Contains(out, "no delivery queue") {
		t.Errorf("empty data directory: %v %s", err, out)
	}
}

// TestQueueCLIThroughServer: while a server holds the data directory, the
// verbs go to its admin API (here the Dispatcher's AdminHandler behind a
// token check, as the node mounts it).
func TestQueueCLIThroughServer(t *testing.T) {
	data, cfgFile, httpAddr := queueFixture(t)
	st, err := queue.Open(queue.DefaultDir(data), queue.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	d := &queue.Dispatcher{Store: st, Destinations: cfg.Destinations, Logger: slog.New(slog.DiscardHandler)}
	api := d.AdminHandler()
	var seen []string
	l, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer admin-token" {
			http.Error(w, `{"error":"admin token required"}`, http.StatusUnauthorized)
			return
		}
		seen = append(seen, r.Method+" "+r.URL.EscapedPath())
		api.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	defer srv.Close()
	if out, err := relaisQueue(t, nil, "list", "--config", cfgFile); err == nil || !strings.Contains(out, "admin token required") {
		t.Errorf("without a token: %v %s", err, out)
	}
	runQueueSteps(t, []string{"RELAIS_TOKEN=admin-token"}, "--config", cfgFile)
	if len(seen) < len(queueSteps) {
		t.Errorf("the API saw %d requests: %v", len(seen), seen)
	}
	tk, _ := st.Get("dead-1")
	b, _ := json.Marshal(tk)
	if tk.Destination() != "other" || tk.State != queue.Pending {
		t.Errorf("after the CLI: %s", b)
	}
}
