package queue

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
)

// scriptSender is a fake of our own Sender: it fails while down is set.
type scriptSender struct {
	mu   sync.Mutex
	down bool
	sent []string
}

func (s *scriptSender) Send(_ context.Context, _ string, items []Item) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := make([]error, len(items))
	for i, it := range items {
		if s.down {
			errs[i] = errors.New("scripted failure")
			continue
		}
		rc, err := it.Open(context.Background())
		if err != nil {
			errs[i] = err
			continue
		}
		io.Copy(io.Discard, rc)
		rc.Close()
		s.sent = append(s.sent, it.Task.ID)
	}
	return errs
}

func TestAdminHandler(t *testing.T) {
	n := newNode(t)
	sops := n.ingest(cts(3, dicom.ExplicitVRLittleEndian)...)
	ids := n.enqueue(Routine, sops, "a")
	fake := &scriptSender{down: true}
	dests := map[string]config.Destination{"a": {FailoverAfter: 1}, "b": {}}
	d, _ := n.dispatcher(dests, config.Routing{MaxAttempts: 1}, func(d *Dispatcher) {
		d.Senders = map[string]Sender{"a": fake, "b": fake}
	})
	n.waitStates(ids, Dead, 10*time.Second)
	api := d.AdminHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r.WithContext(WithUser(r.Context(), r.Header.Get("X-Test-User"))))
	}))
	defer srv.Close()
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		rq, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		rq.Header.Set("X-Test-User", "admin1")
		resp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	id := url.PathEscape(ids[0]) // IDs contain '/'
	fake.mu.Lock()
	fake.down = false
	fake.mu.Unlock()
	tests := []struct {
		name, method, path, body string
		status                   int
		check                    func(b []byte) string
	}{
		{"list dead", "GET", "/api/queue/tasks?state=dead&dest=a", "", 200, func(b []byte) string {
			var l []Task
			json.Unmarshal(b, &l)
			if len(l) != 3 {
				return string(b)
			}
			return ""
		}},
		{"bad state", "GET", "/api/queue/tasks?state=lost", "", 400, nil},
		{"show", "GET", "/api/queue/tasks/" + id, "", 200, func(b []byte) string {
			var tk Task
			json.Unmarshal(b, &tk)
			if tk.ID != ids[0] || tk.State != Dead || tk.LastError != "scripted failure" {
				return string(b)
			}
			return ""
		}},
		{"unknown", "GET", "/api/queue/tasks/nope", "", 404, nil},
		{"retry", "POST", "/api/queue/tasks/" + id + "/retry", "", 200, nil},
		{"reroute unknown destination", "POST", "/api/queue/tasks/" + url.PathEscape(ids[1]) + "/reroute", `{"destination":"zzz"}`, 400, nil},
		{"reroute", "POST", "/api/queue/tasks/" + url.PathEscape(ids[1]) + "/reroute", `{"destination":"b"}`, 200, func(b []byte) string {
			var tk Task
			json.Unmarshal(b, &tk)
			if tk.Destination() != "b" || tk.State != Pending {
				return string(b)
			}
			return ""
		}},
		{"cancel", "POST", "/api/queue/tasks/" + url.PathEscape(ids[2]) + "/cancel", `{"reason":"wrong patient"}`, 200, nil},
		{"cancel again", "POST", "/api/queue/tasks/" + url.PathEscape(ids[2]) + "/cancel", ``, 409, nil},
		{"destinations", "GET", "/api/queue/destinations", "", 200, func(b []byte) string {
			var h []Health
			json.Unmarshal(b, &h)
			if len(h) != 2 || h[0].Destination != "a" || h[0].Protocol != "custom" {
				return string(b)
			}
			return ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, b := do(tc.method, tc.path, tc.body)
			if st != tc.status {
				t.Fatalf("HTTP %d, want %d: %s", st, tc.status, b)
			}
			if tc.check != nil {
				if msg := tc.check(b); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
	// Retried and rerouted tasks are delivered; the cancelled one is not.
	n.waitStates(ids[:2], Done, 10*time.Second)
	if tk, _ := n.store.Get(ids[2]); tk.State != Cancelled || tk.LastError != "wrong patient" {
		t.Errorf("cancelled task: %+v", tk)
	}
	evs := n.events()
	for _, k := range []string{"delivery.retried", "delivery.rerouted", "delivery.cancelled"} {
		if len(evs[k]) != 1 || evs[k][0].User != "admin1" {
			t.Errorf("%s events: %v", k, evs[k])
		}
	}
}

// slowSender records the order of deliveries and takes a while per item.
type slowSender struct {
	mu    sync.Mutex
	order []string
	per   time.Duration
}

func (s *slowSender) Send(_ context.Context, _ string, items []Item) []error {
	for _, it := range items {
		time.Sleep(s.per)
		s.mu.Lock()
		s.order = append(s.order, it.Task.ID)
		s.mu.Unlock()
	}
	return make([]error, len(items))
}

// TestStatOvertakesRoutineBacklog: STAT tasks created behind a routine
// backlog go out with the next batch.
func TestStatOvertakesRoutineBacklog(t *testing.T) {
	n := newNode(t)
	routine := n.ingest(cts(60, dicom.ExplicitVRLittleEndian)...)
	stat := n.ingest(cts(3, dicom.ExplicitVRLittleEndian)...)
	n.enqueue(Routine, routine, "a")
	snd := &slowSender{per: 5 * time.Millisecond}
	d, _ := n.dispatcher(map[string]config.Destination{"a": {Associations: 1}}, config.Routing{}, func(d *Dispatcher) {
		d.Senders = map[string]Sender{"a": snd}
		d.Batch = 8
	})
	time.Sleep(60 * time.Millisecond) // the backlog is being sent
	ids := n.enqueue(Stat, stat, "a")
	d.Notify("a")
	n.waitStates(ids, Done, 10*time.Second)
	snd.mu.Lock()
	defer snd.mu.Unlock()
	pos := map[string]int{}
	for i, id := range snd.order {
		pos[id] = i
	}
	for _, id := range ids {
		// At most two batches (the one in flight and the one claimed
		// with it) went before: ≤ 16 routine instances plus the ones
		// already sent when the STAT tasks arrived.
		if pos[id] > 8+8+len(ids)+12 {
			t.Errorf("STAT task sent in position %d of %d", pos[id], len(snd.order))
		}
	}
	t.Logf("STAT positions among %d sent: %d %d %d", len(snd.order), pos[ids[0]], pos[ids[1]], pos[ids[2]])
}
