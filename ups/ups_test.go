package ups

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/auth"
)

// fakeBackend is the test's worklist.
type fakeBackend struct {
	mu       sync.Mutex
	items    map[string]*Workitem
	reported map[string]bool
	publish  func(Workitem)
}

func (b *fakeBackend) List(context.Context) ([]Workitem, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Workitem
	for _, it := range b.items {
		out = append(out, *it)
	}
	return out, nil
}

func (b *fakeBackend) Get(_ context.Context, uid string) (Workitem, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	it, ok := b.items[uid]
	if !ok {
		return Workitem{}, ErrNotFound
	}
	return *it, nil
}

func (b *fakeBackend) set(uid string, st State) (Workitem, error) {
	b.mu.Lock()
	it := b.items[uid]
	it.State = st
	w := *it
	b.mu.Unlock()
	if b.publish != nil {
		b.publish(w)
	}
	return w, nil
}

func (b *fakeBackend) Claim(_ context.Context, uid, user string) (Workitem, error) {
	return b.set(uid, InProgress)
}

func (b *fakeBackend) Complete(_ context.Context, uid, user string) (Workitem, error) {
	if !b.reported[uid] {
		return Workitem{}, fmt.Errorf("%w: sign the report first", ErrState)
	}
	return b.set(uid, Completed)
}

func (b *fakeBackend) Cancel(_ context.Context, uid, user, reason string, admin bool) (Workitem, error) {
	return b.set(uid, Canceled)
}

func newFake() *fakeBackend {
	t0 := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	return &fakeBackend{reported: map[string]bool{}, items: map[string]*Workitem{
		"1.2.1": {UID: "1.2.1", State: Scheduled, Priority: "HIGH", PatientName: "DUPONT^Jeanne", PatientID: "IPP1", StudyUID: "9.1", ScheduledStart: t0},
		"1.2.2": {UID: "1.2.2", State: Scheduled, Priority: "LOW", PatientName: "MARTIN^Paul", PatientID: "IPP2", StudyUID: "9.2", ScheduledStart: t0.Add(-time.Hour)},
		"1.2.3": {UID: "1.2.3", State: InProgress, Priority: "MEDIUM", PatientName: "DURAND^Luc", PatientID: "IPP3", StudyUID: "9.3", ScheduledStart: t0.Add(time.Hour)},
	}}
}

func testServer(t *testing.T, b *fakeBackend, role auth.Role) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(b, Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b.publish = s.Publish
	h := s.Handler("/dicom-web", func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
		if !role.Can(perm) {
			w.WriteHeader(http.StatusForbidden)
			return auth.Principal{}, false
		}
		return auth.Principal{User: "cm", Role: role}, true
	})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { s.Close(); srv.Close() })
	return s, srv
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	rq, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		rq.Header.Set("Content-Type", "application/dicom+json")
	}
	resp, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func uidsOf(t *testing.T, b []byte) []string {
	t.Helper()
	var l []map[string]attr
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	var out []string
	for _, o := range l {
		out = append(out, o["00080018"].Value[0].(string))
	}
	return out
}

func TestSearch(t *testing.T) {
	_, srv := testServer(t, newFake(), auth.RoleRadiologist)
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"", "1.2.1 1.2.3 1.2.2"},
		{"?ProcedureStepState=SCHEDULED", "1.2.1 1.2.2"},
		{"?PatientName=dup*", "1.2.1"},
		{"?00100020=IPP3", "1.2.3"},
		{"?ScheduledProcedureStepPriority=HIGH", "1.2.1"},
		{"?ScheduledProcedureStepStartDateTime=20261124030000-", "1.2.1 1.2.3"},
		{"?ScheduledProcedureStepStartDateTime=-20261124", "1.2.1 1.2.3 1.2.2"},
		{"?limit=1&offset=1", "1.2.3"},
		{"?PatientID=nobody", ""},
	} {
		code, b := do(t, "GET", srv.URL+"/dicom-web/workitems"+tc.query, "")
		if tc.want == "" {
			if code != http.StatusNoContent {
				t.Errorf("%s: %d, want 204", tc.query, code)
			}
			continue
		}
		if got := strings.Join(uidsOf(t, b), " "); code != 200 || got != tc.want {
			t.Errorf("%s: %d %q, want %q", tc.query, code, got, tc.want)
		}
	}
}

func stateBody(state, txn string) string {
	return fmt.Sprintf(`{"00741000": {"vr": "CS", "Value": [%q]}, "00081195": {"vr": "UI", "Value": [%q]}}`, state, txn)
}

func TestChangeState(t *testing.T) {
	b := newFake()
	_, srv := testServer(t, b, auth.RoleRadiologist)
	u := srv.URL + "/dicom-web/workitems/1.2.1/state"
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"no transaction", `{"00741000": {"vr": "CS", "Value": ["IN PROGRESS"]}}`, 400},
		{"not JSON", `nope`, 400},
		{"complete before claim", stateBody("COMPLETED", "2.25.1"), 409},
		{"claim", stateBody("IN PROGRESS", "2.25.1"), 200},
		{"claim again", stateBody("IN PROGRESS", "2.25.2"), 409},
		{"complete with another transaction", stateBody("COMPLETED", "2.25.2"), 409},
		{"complete before the report", stateBody("COMPLETED", "2.25.1"), 409},
	} {
		if code, body := do(t, "PUT", u, tc.body); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	b.reported["1.2.1"] = true
	if code, body := do(t, "PUT", u, stateBody("COMPLETED", "2.25.1")); code != 200 {
		t.Fatalf("complete: %d %s", code, body)
	}
	if it, _ := b.Get(context.Background(), "1.2.1"); it.State != Completed {
		t.Fatalf("state %s", it.State)
	}
	if code, _ := do(t, "PUT", srv.URL+"/dicom-web/workitems/9.9.9/state", stateBody("IN PROGRESS", "2.25.3")); code != 404 {
		t.Fatalf("unknown workitem: %d", code)
	}
	_, srv2 := testServer(t, newFake(), auth.RoleRequester)
	if code, _ := do(t, "PUT", srv2.URL+"/dicom-web/workitems/1.2.1/state", stateBody("IN PROGRESS", "2.25.1")); code != 403 {
		t.Fatalf("a requester claiming: %d", code)
	}
}

// wsClient is a minimal event channel reader for the unit test (the end
// to end test uses the npm ws package).
func wsClient(t *testing.T, url string) *bufio.Reader {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /dicom-web/subscribers/VIEWER1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("event channel: %v %v", err, resp)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return br
}

func readEvent(t *testing.T, br *bufio.Reader) map[string]attr {
	t.Helper()
	h := make([]byte, 2)
	if _, err := io.ReadFull(br, h); err != nil {
		t.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		io.ReadFull(br, l[:])
		n = int(l[0])<<8 | int(l[1])
	}
	msg := make([]byte, n)
	io.ReadFull(br, msg)
	var evs []map[string]attr
	if err := json.Unmarshal(msg, &evs); err != nil || len(evs) != 1 {
		t.Fatalf("event %q: %v", msg, err)
	}
	return evs[0]
}

func TestSubscriptionEvents(t *testing.T) {
	b := newFake()
	s, srv := testServer(t, b, auth.RoleRadiologist)
	br := wsClient(t, srv.URL)
	if code, _ := do(t, "POST", srv.URL+"/dicom-web/workitems/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER1", ""); code != 201 {
		t.Fatalf("global subscription: %d", code)
	}
	got := map[string]string{}
	for i := 0; i < 3; i++ { // the initial state reports of the open workitems
		ev := readEvent(t, br)
		got[ev["00001000"].Value[0].(string)] = ev["00741000"].Value[0].(string)
	}
	if got["1.2.1"] != "SCHEDULED" || got["1.2.3"] != "IN PROGRESS" || len(got) != 3 {
		t.Fatalf("initial reports %v", got)
	}
	do(t, "PUT", srv.URL+"/dicom-web/workitems/1.2.2/state", stateBody("IN PROGRESS", "2.25.9"))
	ev := readEvent(t, br)
	if ev["00001000"].Value[0] != "1.2.2" || ev["00741000"].Value[0] != "IN PROGRESS" || ev["00001002"].Value[0].(float64) != EventStateReport {
		t.Fatalf("claim event %v", ev)
	}
	// Subscriptions survive a restart.
	s2, err := New(b, Options{Dir: strings.TrimSuffix(s.file, "/state.json"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if sub := s2.st.Subscribers["VIEWER1"]; sub == nil || !sub.Global || s2.st.Transactions["1.2.2"] != "2.25.9" {
		t.Fatalf("state after restart: %+v", s2.st)
	}
	if code, _ := do(t, "POST", srv.URL+"/dicom-web/workitems/1.2.840.10008.5.1.4.34.5/subscribers/VIEWER1/suspend", ""); code != 200 {
		t.Fatalf("suspend: %d", code)
	}
	if code, _ := do(t, "DELETE", srv.URL+"/dicom-web/workitems/1.2.840.10008.5.1.4.34.5/subscribers/NOBODY", ""); code != 404 {
		t.Fatalf("unsubscribe unknown: %d", code)
	}
	if code, _ := do(t, "POST", srv.URL+"/dicom-web/workitems/1.2.1/subscribers/"+strings.Repeat("A", 17), ""); code != 400 {
		t.Fatalf("bad AE: %d", code)
	}
}

// FuzzHandler sends arbitrary bodies and paths to the state and
// subscription routes: never a 5xx, and a refused state change leaves the
// workitem as it was.
func FuzzHandler(f *testing.F) {
	f.Add("1.2.1", stateBody("IN PROGRESS", "2.25.1"))
	f.Add("1.2.3", stateBody("COMPLETED", "2.25.1"))
	f.Add("1.2.1", `[{"00741000": {"vr": "CS", "Value": [1]}}]`)
	f.Add("1.2.2", `{"00081195": {"vr": "UI"}}`)
	f.Add("9.9", `nope`)
	b := newFake()
	s, err := New(b, Options{Dir: f.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler("/dicom-web", func(w http.ResponseWriter, r *http.Request, perm auth.Permission) (auth.Principal, bool) {
		return auth.Principal{User: "cm", Role: auth.RoleRadiologist}, true
	})
	f.Fuzz(func(t *testing.T, uid, body string) {
		if uid == "" || strings.Contains(uid, "/") {
			return
		}
		path := url.PathEscape(uid)
		before, _ := b.Get(context.Background(), uid)
		for _, rt := range []struct{ method, path string }{
			{"PUT", "/dicom-web/workitems/" + path + "/state"},
			{"POST", "/dicom-web/workitems/" + path + "/cancelrequest"},
			{"POST", "/dicom-web/workitems/" + path + "/subscribers/AE1"},
		} {
			rq := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
			rq.Header.Set("Content-Type", "application/dicom+json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, rq)
			if w.Code >= 500 {
				t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, w.Code, w.Body)
			}
			if rt.method == "PUT" && w.Code >= 400 {
				if after, _ := b.Get(context.Background(), uid); after.State != before.State {
					t.Fatalf("refused (%d) but the state changed %s → %s", w.Code, before.State, after.State)
				}
			}
		}
	})
}
