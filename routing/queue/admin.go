package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/relais-health/relais/internal/httpjson"
)

// RetryTask makes a dead or pending task due now (attempts on its current
// destination reset), journals delivery.retried with the operator's name
// and wakes its workers.
func (d *Dispatcher) RetryTask(id, user string) (*Task, error) {
	t, err := d.Store.RetryTask(id)
	if err != nil {
		return nil, err
	}
	d.operator("delivery.retried", t, "", user)
	d.Notify(t.Destination())
	return t, nil
}

// CancelTask gives up a pending or dead task and journals
// delivery.cancelled.
func (d *Dispatcher) CancelTask(id, reason, user string) (*Task, error) {
	t, err := d.Store.CancelTask(id, reason)
	if err != nil {
		return nil, err
	}
	d.operator("delivery.cancelled", t, t.LastError, user)
	return t, nil
}

// RerouteTask sends a task (any state but done) to dest instead, which
// must be a configured destination, and journals delivery.rerouted.
func (d *Dispatcher) RerouteTask(id, dest, user string) (*Task, error) {
	if _, ok := d.Destinations[dest]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDestination, dest)
	}
	t, err := d.Store.RerouteTask(id, dest)
	if err != nil {
		return nil, err
	}
	d.operator("delivery.rerouted", t, "", user)
	d.Notify(dest)
	return t, nil
}

// ErrUnknownDestination is returned by RerouteTask for a destination that
// is not configured.
var ErrUnknownDestination = errors.New("queue: unknown destination")

func (d *Dispatcher) operator(kind string, t *Task, reason, user string) {
	d.log().Info("queue: "+kind, "task", t.ID, "destination", t.Destination(), "user", user)
	if d.Journal == nil {
		return
	}
	ev := eventData{Destination: t.Destination(), Total: t.TotalAttempts}
	ev.Task, ev.Route, ev.Priority = t.ID, t.Route, t.Priority
	b, _ := json.Marshal(ev)
	d.Journal.AppendAsync(journalEvent(kind, t, reason, user, b))
}

// AdminPathPrefix is the path prefix of every AdminHandler route: mount
// the handler for it behind admin authentication.
const AdminPathPrefix = "/api/queue/"

type userKey struct{}

// WithUser returns a context carrying the authenticated user: the
// authentication middleware in front of AdminHandler sets it on the
// request's context so that operator actions are journaled with the user.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

func userOf(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// AdminHandler serves the queue's REST API. Mount it behind admin
// authentication, which should put the user in the request's context with
// WithUser (operator actions are journaled with it):
//
//	GET  /api/queue/tasks?state=&dest=&study=&route=&limit=   tasks (JSON array; limit default 1000)
//	GET  /api/queue/tasks/{id}                                one task
//	POST /api/queue/tasks/{id}/retry                          dead/pending → pending now
//	POST /api/queue/tasks/{id}/cancel   {"reason": "..."}     → cancelled
//	POST /api/queue/tasks/{id}/reroute  {"destination": "D"}  → pending on D now
//	GET  /api/queue/destinations                              per-destination health
//
// IDs are path segments: escape them (url.PathEscape). Errors are JSON
// {"error": "..."} with 404 (unknown task), 409 (not allowed in the
// task's state), 400 (bad request).
func (d *Dispatcher) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/queue/tasks", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := Filter{State: State(q.Get("state")), Destination: q.Get("dest"), Study: q.Get("study"), Route: q.Get("route"), Limit: 1000}
		if f.State != "" && !validState(f.State) {
			writeError(w, http.StatusBadRequest, fmt.Errorf("unknown state %q (pending, done, dead, cancelled)", f.State))
			return
		}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("bad limit %q", l))
				return
			}
			f.Limit = n
		}
		tasks, err := d.Store.List(r.Context(), f)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if tasks == nil {
			tasks = []*Task{}
		}
		httpjson.Write(w, http.StatusOK, tasks)
	})
	mux.HandleFunc("GET /api/queue/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, err := d.Store.Get(r.PathValue("id"))
		answer(w, t, err)
	})
	var body struct {
		Reason      string `json:"reason"`
		Destination string `json:"destination"`
	}
	read := func(r *http.Request) (reason, dest string, err error) {
		b := body
		if r.ContentLength != 0 && r.Body != nil {
			if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10)).Decode(&b); err != nil {
				return "", "", fmt.Errorf("bad JSON body: %w", err)
			}
		}
		if v := r.URL.Query().Get("reason"); v != "" {
			b.Reason = v
		}
		if v := r.URL.Query().Get("dest"); v != "" {
			b.Destination = v
		}
		return b.Reason, b.Destination, nil
	}
	user := func(r *http.Request) string { return userOf(r.Context()) }
	mux.HandleFunc("POST /api/queue/tasks/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		t, err := d.RetryTask(r.PathValue("id"), user(r))
		answer(w, t, err)
	})
	mux.HandleFunc("POST /api/queue/tasks/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		reason, _, err := read(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		t, err := d.CancelTask(r.PathValue("id"), reason, user(r))
		answer(w, t, err)
	})
	mux.HandleFunc("POST /api/queue/tasks/{id}/reroute", func(w http.ResponseWriter, r *http.Request) {
		_, dest, err := read(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if dest == "" {
			writeError(w, http.StatusBadRequest, errors.New(`reroute needs {"destination": "NAME"}`))
			return
		}
		t, err := d.RerouteTask(r.PathValue("id"), dest, user(r))
		answer(w, t, err)
	})
	mux.HandleFunc("GET /api/queue/destinations", func(w http.ResponseWriter, r *http.Request) {
		h, err := d.Health()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if h == nil {
			h = []Health{}
		}
		httpjson.Write(w, http.StatusOK, h)
	})
	return mux
}

func validState(s State) bool {
	for _, x := range States {
		if x == s {
			return true
		}
	}
	return false
}

func answer(w http.ResponseWriter, t *Task, err error) {
	switch {
	case err == nil:
		httpjson.Write(w, http.StatusOK, t)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrState):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, ErrUnknownDestination):
		writeError(w, http.StatusBadRequest, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

func writeError(w http.ResponseWriter, status int, err error) {
	httpjson.Write(w, status, map[string]string{"error": err.Error()})
}
