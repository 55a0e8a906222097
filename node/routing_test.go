package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/internal/testdicom"
	"github.com/relais-health/relais/routing/queue"
	"github.com/relais-health/relais/storage"
)

func routedConfig(auth string) func(*config.Config) {
	return func(c *config.Config) {
		c.HTTP.Auth = auth
		c.Destinations = map[string]config.Destination{
			"pacs": {DICOM: &config.DICOMDestination{AE: "PACS", Host: "127.0.0.1", Port: 1}},
		}
		c.Routes = []config.Route{{Name: "all", Mode: config.ModeImmediate, Forward: []string{"pacs"}}}
	}
}

// TestRoutingWired: an instance stored through the node's ingest becomes
// a delivery task; the admin API is behind admin authentication.
func TestRoutingWired(t *testing.T) {
	n := startNode(t, routedConfig(config.AuthToken))
	if n.Routing() == nil {
		t.Fatal("no routing engine with routes configured")
	}
	files, err := testdicom.Study(t.TempDir(), 1, dicom.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta, _, err := dicom.ReadFileMeta(f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Ingest.Store(context.Background(), &ingest.Request{Source: storage.Source{Channel: "import"},
		SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID, Data: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Routing().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ts, err := n.routing.Queue.List(ctx, queue.Filter{Route: "all"})
	if err != nil || len(ts) != 1 || ts[0].SOPInstanceUID != meta.MediaStorageSOPInstanceUID || ts[0].Destination() != "pacs" {
		t.Fatalf("tasks %+v, %v", ts, err)
	}
	base := fmt.Sprintf("http://%s", n.HTTPAddr())
	resp, err := http.Get(base + "/api/routes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/routes without a token: %d", resp.StatusCode)
	}
	tok, _, err := n.Tokens.Create("ops", auth.RoleAdmin, auth.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var code int
	for i := 0; i < 30; i++ { // the store sees new tokens within a second
		req, _ := http.NewRequest("GET", base+"/api/routes", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if code = resp.StatusCode; code == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Errorf("GET /api/routes with an admin token: %d", code)
	}
	// The queue's API, behind the same check.
	for _, withToken := range []bool{false, true} {
		req, _ := http.NewRequest("GET", base+"/api/queue/tasks?route=all", nil)
		if withToken {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list []queue.Task
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		want := http.StatusUnauthorized
		if withToken {
			want = http.StatusOK
		}
		if resp.StatusCode != want || withToken && len(list) != 1 {
			t.Errorf("GET /api/queue/tasks (token %v): %d, %d tasks", withToken, resp.StatusCode, len(list))
		}
	}
	// Other paths are unaffected.
	resp, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
}

func TestRoutingOpenAuthNone(t *testing.T) {
	n := startNode(t, routedConfig(config.AuthNone))
	resp, err := http.Post(fmt.Sprintf("http://%s/api/routes/reload", n.HTTPAddr()), "application/yaml", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("reload with http.auth none: %d", resp.StatusCode)
	}
	// No routes nor destinations: no queue at all.
	m := startNode(t, nil)
	if m.Routing() != nil {
		t.Error("routing engine without routes")
	}
}
