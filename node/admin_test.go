package node

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/journal"
)

func TestAdminJournalAndCalendars(t *testing.T) {
	ics := filepath.Join(t.TempDir(), "pds.ics")
	start := time.Now().UTC().Add(-time.Hour).Format("20060102T150405Z")
	end := time.Now().UTC().Add(3 * time.Hour).Format("20060102T150405Z")
	os.WriteFile(ics, []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//FR\r\nBEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:"+start+
		"\r\nDTEND:"+end+"\r\nSUMMARY:Garde radiologie\r\nATTENDEE;CN=Claire Martin:mailto:cmartin@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"), 0o600)
	n := startNode(t, func(c *config.Config) {
		c.Calendars = map[string]config.Calendar{"pds": {ICS: ics}}
		c.Destinations = map[string]config.Destination{"pacs": {DICOM: &config.DICOMDestination{AE: "PACS", Host: "127.0.0.1", Port: 1}}}
	})
	tokens, err := auth.Open(n.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	admin, _, _ := tokens.Create("root", auth.RoleAdmin, auth.CreateOptions{})
	rad, _, _ := tokens.Create("cmartin", auth.RoleRadiologist, auth.CreateOptions{})
	req, _, _ := tokens.Create("site", auth.RoleRequester, auth.CreateOptions{})
	time.Sleep(300 * time.Millisecond) // the server sees new tokens within 250 ms
	n.Journal.Append(t.Context(), &journal.Event{Kind: "association.rejected", AE: "=cmd|' /C calc'!A0", Reason: "calling AE not recognized"})
	n.Journal.Append(t.Context(), &journal.Event{Kind: "report.viewed", User: "cmartin", Reason: "report r-1 version 1"})
	base := "http://" + n.HTTPAddr().String()
	get := func(path, token, accept string) (int, []byte, http.Header) {
		rq, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			rq.Header.Set("Authorization", "Bearer "+token)
		}
		if accept != "" {
			rq.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/api/journal", "", 401},
		{"/api/journal", rad, 403},
		{"/api/journal?since=yesterday", admin, 400},
		{"/api/journal?limit=0", admin, 400},
		{"/api/calendars", req, 403},
		{"/api/users", admin, 200},
		{"/api/users", rad, 403},
		{"/api/calendars", rad, 200},
	} {
		if code, b, _ := get(tc.path, tc.token, ""); code != tc.want {
			t.Errorf("GET %s: %d %s, want %d", tc.path, code, b, tc.want)
		}
	}
	code, b, _ := get("/api/journal?kind=report&since=1h", admin, "")
	var j struct {
		Events []journal.Event `json:"events"`
	}
	if err := json.Unmarshal(b, &j); code != 200 || err != nil || len(j.Events) != 1 || j.Events[0].User != "cmartin" {
		t.Fatalf("journal search: %d %s", code, b)
	}
	code, b, h := get("/api/journal?q=not+recognized", admin, "text/csv")
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if code != 200 || err != nil || len(rows) != 2 || rows[0][2] != "kind" || !strings.HasPrefix(rows[1][5], "'=") || !strings.Contains(h.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV export: %d %v %q", code, err, b)
	}
	time.Sleep(100 * time.Millisecond)
	code, b, _ = get("/api/journal?kind=journal.exported", admin, "")
	if !strings.Contains(string(b), `"user": "root"`) {
		t.Fatalf("the export is not journaled: %d %s", code, b)
	}
	_, b, _ = get("/api/calendars", rad, "")
	var c struct {
		Calendars []struct {
			Name   string      `json:"name"`
			Loaded bool        `json:"loaded"`
			OnCall []shiftView `json:"on_call"`
		} `json:"calendars"`
	}
	if err := json.Unmarshal(b, &c); err != nil || len(c.Calendars) != 1 || !c.Calendars[0].Loaded || len(c.Calendars[0].OnCall) != 1 || !strings.Contains(strings.Join(c.Calendars[0].OnCall[0].Attendees, " "), "cmartin") {
		t.Fatalf("calendars: %v %s", err, b)
	}
}
