package worklist

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/internal/httpjson"
)

// PathPrefix is where the API is mounted.
const PathPrefix = "/api/worklist"

// Authorizer checks a request's permission; on refusal it has answered.
type Authorizer func(http.ResponseWriter, *http.Request, auth.Permission) (auth.Principal, bool)

// ListResponse is GET /api/worklist's body.
type ListResponse struct {
	Items  []*Item        `json:"items"`
	Counts map[string]int `json:"counts"`
}

// Handler serves the worklist API:
//
//	GET  /api/worklist?state=&priority=&reader=me|NAME|none&late=true
//	GET  /api/worklist/events              (Server-Sent Events: "item")
//	GET  /api/worklist/{id}
//	POST /api/worklist/{id}/claim|renew|release|cancel|assign
//
// Reading needs read-reports; claim, renew and release write-reports (a
// radiologist); cancel an administrator or the assigned radiologist,
// assign an administrator. Errors are {"error": TEXT}.
func (w *Worklist) Handler(authorize Authorizer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathPrefix, func(rw http.ResponseWriter, r *http.Request) {
		p, ok := authorize(rw, r, auth.ReadReports)
		if !ok {
			return
		}
		q := r.URL.Query()
		f := Filter{Priority: strings.ToUpper(q.Get("priority")), Late: q.Get("late") == "true" || q.Get("late") == "1"}
		for _, s := range strings.Split(q.Get("state"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				if s != "all" && !validState(s) {
					writeError(rw, http.StatusBadRequest, fmt.Sprintf("state %q: want %s or all", s, strings.Join(States, ", ")))
					return
				}
				f.States = append(f.States, s)
			}
		}
		switch rd := q.Get("reader"); rd {
		case "":
		case "me":
			f.Reader, f.WithUnassigned = p.User, true
		default:
			f.Reader = rd
		}
		items, counts := w.List(f)
		if items == nil {
			items = []*Item{}
		}
		w.current(r, items...)
		httpjson.Write(rw, http.StatusOK, ListResponse{Items: items, Counts: counts})
	})
	mux.HandleFunc("GET "+PathPrefix+"/events", func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := authorize(rw, r, auth.ReadReports); !ok {
			return
		}
		w.serveEvents(rw, r)
	})
	mux.HandleFunc("GET "+PathPrefix+"/{id}", func(rw http.ResponseWriter, r *http.Request) {
		if _, ok := authorize(rw, r, auth.ReadReports); !ok {
			return
		}
		it, err := w.Get(r.PathValue("id"))
		if err != nil {
			writeErr(rw, err)
			return
		}
		w.current(r, it)
		httpjson.Write(rw, http.StatusOK, it)
	})
	mux.HandleFunc("POST "+PathPrefix+"/{id}/{action}", func(rw http.ResponseWriter, r *http.Request) {
		id, action := r.PathValue("id"), r.PathValue("action")
		perm := auth.WriteReports
		switch action {
		case "claim", "renew", "release":
		case "cancel":
			perm = auth.ReadReports // then: admin or the assigned radiologist
		case "assign":
			perm = auth.Admin
		default:
			writeError(rw, http.StatusNotFound, fmt.Sprintf("unknown action %q: claim, renew, release, cancel or assign", action))
			return
		}
		p, ok := authorize(rw, r, perm)
		if !ok {
			return
		}
		var body struct {
			Reason string `json:"reason"`
			Reader string `json:"reader"`
		}
		if r.ContentLength != 0 {
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
				writeError(rw, http.StatusBadRequest, "invalid JSON body: "+err.Error())
				return
			}
		}
		if _, err := w.Get(id); err != nil {
			writeErr(rw, err)
			return
		}
		var it *Item
		var err error
		switch action {
		case "claim":
			it, err = w.Claim(id, p.User)
		case "renew":
			it, err = w.Renew(id, p.User)
		case "release":
			it, err = w.Release(id, p.User, false)
		case "cancel":
			admin := p.Can(auth.Admin)
			if !admin && !p.Can(auth.WriteReports) {
				writeError(rw, http.StatusForbidden, "only an administrator or the assigned radiologist cancels an item")
				return
			}
			it, err = w.Cancel(id, p.User, body.Reason, admin)
		case "assign":
			it, err = w.Assign(id, body.Reader, p.User)
		}
		if err != nil {
			writeErr(rw, err)
			return
		}
		httpjson.Write(rw, http.StatusOK, it)
	})
	return mux
}

// current shows the open items' studies as they are now (an immediate
// route makes a study ready at its first image: more arrive after).
func (w *Worklist) current(r *http.Request, items ...*Item) {
	if w.d.Study == nil {
		return
	}
	for _, it := range items {
		if !it.Open() {
			continue
		}
		if info, err := w.d.Study(r.Context(), it.StudyUID); err == nil {
			it.Instances = max(it.Instances, info.Instances)
			if len(info.Modalities) > 0 {
				it.Modalities = info.Modalities
			}
		}
	}
}

func validState(s string) bool {
	for _, x := range States {
		if x == s {
			return true
		}
	}
	return false
}

// serveEvents streams every item change as an SSE "item" event (data: the
// item's JSON with "change": the journal kind, e.g. worklist.claimed), with a comment every 15 s to keep proxies open.
func (w *Worklist) serveEvents(rw http.ResponseWriter, r *http.Request) {
	fl, ok := rw.(http.Flusher)
	if !ok {
		writeError(rw, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		if _, loaded := w.shutdownOnce.LoadOrStore(srv, true); !loaded {
			// Shutdown waits for active connections: end the streams.
			srv.RegisterOnShutdown(w.closeStreams)
		}
	}
	ch := w.subscribe()
	defer w.unsubscribe(ch)
	h := rw.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rw.WriteHeader(http.StatusOK)
	fmt.Fprint(rw, "retry: 2000\n: relais worklist events\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-w.closed:
			return
		case <-keep.C:
			fmt.Fprint(rw, ": keep-alive\n\n")
			fl.Flush()
		case ev, ok := <-ch:
			if !ok {
				return // too slow: the client reconnects
			}
			b, _ := json.Marshal(struct {
				*Item
				Change string `json:"change"`
			}{ev.Item, ev.Kind})
			fmt.Fprintf(rw, "event: item\ndata: %s\n\n", b)
			fl.Flush()
		}
	}
}

// Subscribe returns a channel of every change and its cancel (for
// in-process listeners and tests). A subscriber that falls 256 events
// behind is dropped (its channel closed).
func (w *Worklist) Subscribe() (<-chan Event, func()) {
	ch := w.subscribe()
	return ch, func() { w.unsubscribe(ch) }
}

func (w *Worklist) subscribe() chan Event {
	ch := make(chan Event, 256)
	w.subMu.Lock()
	w.subs[ch] = struct{}{}
	w.subMu.Unlock()
	return ch
}

func (w *Worklist) unsubscribe(ch chan Event) {
	w.subMu.Lock()
	if _, ok := w.subs[ch]; ok {
		delete(w.subs, ch)
		close(ch)
	}
	w.subMu.Unlock()
}

func (w *Worklist) publish(ev Event) {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	for ch := range w.subs {
		select {
		case ch <- ev:
		default:
			delete(w.subs, ch)
			close(ch)
		}
	}
}

func writeErr(rw http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(rw, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict):
		writeError(rw, http.StatusConflict, err.Error())
	case errors.Is(err, ErrForbidden):
		writeError(rw, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrInvalid):
		writeError(rw, http.StatusBadRequest, err.Error())
	default:
		writeError(rw, http.StatusInternalServerError, err.Error())
	}
}

func writeError(rw http.ResponseWriter, status int, msg string) {
	httpjson.Write(rw, status, map[string]string{"error": msg})
}
