package ups

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/internal/atomicfile"
	"github.com/relais-health/relais/internal/websocket"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/query"
)

// Authorizer checks a request's credentials; on refusal it has answered.
type Authorizer func(http.ResponseWriter, *http.Request, auth.Permission) (auth.Principal, bool)

// subscription is one subscriber's: global (all workitems, current and
// future) or a set of workitems.
type subscription struct {
	Global       bool            `json:"global,omitempty"`
	Suspended    bool            `json:"suspended,omitempty"`
	DeletionLock bool            `json:"deletion_lock,omitempty"`
	UIDs         map[string]bool `json:"uids,omitempty"`
}

// state is what the service keeps on disk: subscriptions by AE title and
// the Transaction UIDs of claimed workitems.
type state struct {
	Subscribers  map[string]*subscription `json:"subscribers"`
	Transactions map[string]string        `json:"transactions"` // workitem UID → Transaction UID
}

// Server is the UPS-RS service.
type Server struct {
	backend Backend
	file    string
	log     *slog.Logger
	journal *journal.Journal

	mu    sync.Mutex
	st    state
	chans map[string]map[*websocket.Conn]bool // AE → open event channels
}

// Options configure New.
type Options struct {
	// Dir keeps subscriptions and transactions (DATA/ups).
	Dir     string
	Logger  *slog.Logger
	Journal *journal.Journal
}

// New opens the service's state in opt.Dir.
func New(b Backend, opt Options) (*Server, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if err := os.MkdirAll(opt.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("ups: %w", err)
	}
	s := &Server{backend: b, file: filepath.Join(opt.Dir, "state.json"), log: opt.Logger, journal: opt.Journal,
		st: state{Subscribers: map[string]*subscription{}, Transactions: map[string]string{}}, chans: map[string]map[*websocket.Conn]bool{}}
	b2, err := os.ReadFile(s.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("ups: %w", err)
	default:
		if err := json.Unmarshal(b2, &s.st); err != nil {
			return nil, fmt.Errorf("ups: %s is corrupt: %w", s.file, err)
		}
		if s.st.Subscribers == nil {
			s.st.Subscribers = map[string]*subscription{}
		}
		if s.st.Transactions == nil {
			s.st.Transactions = map[string]string{}
		}
	}
	return s, nil
}

// save writes the state atomically; the caller holds s.mu.
func (s *Server) save() error {
	b, err := json.Marshal(&s.st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Dir(s.file), filepath.Base(s.file), b, 0o600); err != nil {
		return fmt.Errorf("ups: saving state: %w", err)
	}
	return nil
}

// Publish sends the workitem's state report to its subscribers with an
// open event channel. The node calls it on every worklist change.
func (s *Server) Publish(w Workitem) {
	s.send(w, event(w, EventStateReport, nil))
	if w.State == Completed || w.State == Canceled {
		s.mu.Lock()
		if _, ok := s.st.Transactions[w.UID]; ok {
			delete(s.st.Transactions, w.UID)
			s.save()
		}
		s.mu.Unlock()
	}
}

func (s *Server) send(w Workitem, ev object) {
	msg, _ := json.Marshal([]object{ev})
	s.mu.Lock()
	var conns []*websocket.Conn
	for ae, sub := range s.st.Subscribers {
		if sub.Suspended && !sub.UIDs[w.UID] || !sub.Global && !sub.UIDs[w.UID] {
			continue
		}
		for c := range s.chans[ae] {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		if err := c.WriteText(msg, 5*time.Second); err != nil {
			s.log.Info("ups: event channel lost", "remote", c.RemoteAddr(), "err", err)
		}
	}
}

// Handler serves the Worklist Service under base (e.g. /dicom-web):
// {base}/workitems... and the event channels {base}/subscribers/{ae}.
func (s *Server) Handler(base string, authorize Authorizer) http.Handler {
	mux := http.NewServeMux()
	base = strings.TrimRight(base, "/")
	read := func(h func(http.ResponseWriter, *http.Request, auth.Principal)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if p, ok := authorize(w, r, auth.ReadReports); ok {
				h(w, r, p)
			}
		}
	}
	write := func(h func(http.ResponseWriter, *http.Request, auth.Principal)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if p, ok := authorize(w, r, auth.WriteReports); ok {
				h(w, r, p)
			}
		}
	}
	mux.HandleFunc("GET "+base+"/workitems", read(s.search))
	mux.HandleFunc("POST "+base+"/workitems", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusMethodNotAllowed, "workitems are created by Relais's routing rules (study ready for reading), not by clients")
	})
	mux.HandleFunc("GET "+base+"/workitems/{uid}", read(s.retrieve))
	mux.HandleFunc("PUT "+base+"/workitems/{uid}/state", write(s.changeState))
	mux.HandleFunc("POST "+base+"/workitems/{uid}/cancelrequest", read(s.cancelRequest))
	mux.HandleFunc("POST "+base+"/workitems/{uid}/subscribers/{ae}", read(s.subscribe))
	mux.HandleFunc("DELETE "+base+"/workitems/{uid}/subscribers/{ae}", read(s.unsubscribe))
	mux.HandleFunc("POST "+base+"/workitems/{uid}/subscribers/{ae}/suspend", read(s.suspend))
	mux.HandleFunc("GET "+base+"/subscribers/{ae}", read(s.channel))
	mux.HandleFunc("GET "+base+"/ws/subscribers/{ae}", read(s.channel))
	return mux
}

// fail answers an error the PS3.18 way: status, Warning header, JSON body.
func fail(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Warning", `299 relais: "`+strings.ReplaceAll(reason, `"`, `'`)+`"`)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": reason})
}

func writeDICOMJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/dicom+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) backendError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		fail(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrState):
		fail(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrForbidden):
		fail(w, http.StatusForbidden, err.Error())
	default:
		s.log.Error("ups: backend failed", "err", err)
		fail(w, http.StatusInternalServerError, "the worklist is unavailable")
	}
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	q := r.URL.Query()
	limit, offset := 0, 0
	var err error
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			fail(w, http.StatusBadRequest, "limit is not a number")
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			fail(w, http.StatusBadRequest, "offset is not a number")
			return
		}
	}
	type key struct{ tag, value string }
	var keys []key
	var ignored []string
	for k, vs := range q {
		switch k {
		case "limit", "offset", "includefield", "fuzzymatching":
			continue
		}
		tag, ok := tagOf(k)
		if !ok {
			ignored = append(ignored, k)
			continue
		}
		for _, v := range vs {
			keys = append(keys, key{tag, v})
		}
	}
	items, err := s.backend.List(r.Context())
	if err != nil {
		s.backendError(w, err)
		return
	}
	sort.SliceStable(items, func(i, j int) bool {
		if pi, pj := prioRank(items[i].Priority), prioRank(items[j].Priority); pi != pj {
			return pi < pj
		}
		return items[i].ScheduledStart.Before(items[j].ScheduledStart)
	})
	var out []object
	for _, it := range items {
		ok := true
		for _, k := range keys {
			if !matchKey(it, k.tag, k.value) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, dataset(it))
		}
	}
	if offset > len(out) {
		offset = len(out)
	}
	out = out[offset:]
	if limit > 0 && limit < len(out) {
		out = out[:limit]
	}
	if len(ignored) > 0 {
		sort.Strings(ignored)
		w.Header().Set("Warning", `299 relais: "unsupported matching keys ignored: `+strings.Join(ignored, ", ")+`"`)
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeDICOMJSON(w, http.StatusOK, out)
}

func prioRank(p string) int {
	switch p {
	case "HIGH":
		return 0
	case "MEDIUM":
		return 1
	}
	return 2
}

// matchKey matches one search key: wildcards for strings (case-insensitive
// for the patient's name), a range for the start date-time.
func matchKey(it Workitem, tag, v string) bool {
	if v == "" || v == "*" {
		return true
	}
	switch tag {
	case "00100010":
		return query.Wildcard(strings.ToLower(v), strings.ToLower(it.PatientName))
	case "00100020":
		return query.Wildcard(v, it.PatientID)
	case "00741000":
		return query.Wildcard(v, string(it.State))
	case "00741200":
		return query.Wildcard(v, it.Priority)
	case "00741202":
		return query.Wildcard(v, it.WorklistLabel)
	case "00741204":
		return query.Wildcard(v, it.Label)
	case "00080018":
		for _, u := range strings.Split(strings.ReplaceAll(v, "\\", ","), ",") {
			if u == it.UID {
				return true
			}
		}
		return false
	case "00404005":
		return inRange(it.ScheduledStart, v)
	}
	return true
}

// inRange matches a DT range "from-to" (either side optional, any
// precision down to the second, taken in UTC).
func inRange(t time.Time, v string) bool {
	from, to, isRange := strings.Cut(v, "-")
	if !isRange {
		to = from
	}
	ts := t.UTC().Format("20060102150405")
	if from != "" && ts < pad(from, '0') {
		return false
	}
	if to != "" && ts > pad(to, '9') {
		return false
	}
	return true
}

func pad(s string, c byte) string {
	s = strings.TrimSpace(s)
	for len(s) < 14 {
		s += string(c)
	}
	return s[:14]
}

func (s *Server) retrieve(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	it, err := s.backend.Get(r.Context(), r.PathValue("uid"))
	if err != nil {
		s.backendError(w, err)
		return
	}
	writeDICOMJSON(w, http.StatusOK, []object{dataset(it)})
}

// readDataset reads a DICOM JSON body (an object or a one-object array)
// and returns its string values by tag.
func readDataset(r *http.Request) (map[string]string, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/dicom+json" && mt != "application/json") {
			return nil, fmt.Errorf("send application/dicom+json, not %q", ct)
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var one map[string]attr
	if err := json.Unmarshal(b, &one); err != nil {
		var many []map[string]attr
		if err2 := json.Unmarshal(b, &many); err2 != nil || len(many) != 1 {
			return nil, fmt.Errorf("the body is not a DICOM JSON data set: %v", err)
		}
		one = many[0]
	}
	out := map[string]string{}
	for tag, a := range one {
		if len(a.Value) > 0 {
			if s, ok := a.Value[0].(string); ok {
				out[strings.ToUpper(tag)] = s
			}
		}
	}
	return out, nil
}

// changeState is PS3.18 11.7: IN PROGRESS with a new Transaction UID
// claims; COMPLETED or CANCELED with the same Transaction UID ends.
func (s *Server) changeState(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	uid := r.PathValue("uid")
	ds, err := readDataset(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	to, txn := State(ds["00741000"]), ds["00081195"]
	if txn == "" {
		fail(w, http.StatusBadRequest, "Transaction UID (0008,1195) is required")
		return
	}
	cur, err := s.backend.Get(r.Context(), uid)
	if err != nil {
		s.backendError(w, err)
		return
	}
	s.mu.Lock()
	held := s.st.Transactions[uid]
	s.mu.Unlock()
	var it Workitem
	switch to {
	case InProgress:
		if cur.State != Scheduled {
			fail(w, http.StatusConflict, fmt.Sprintf("the workitem is %s: only a SCHEDULED workitem is claimed", cur.State))
			return
		}
		if it, err = s.backend.Claim(r.Context(), uid, p.User); err != nil {
			s.backendError(w, err)
			return
		}
		s.mu.Lock()
		s.st.Transactions[uid] = txn
		err = s.save()
		s.mu.Unlock()
		if err != nil {
			s.log.Error("ups: transaction not saved", "err", err)
		}
	case Completed, Canceled:
		if cur.State == to {
			// Already there (the report's signature completed it): PS3.4
			// answers such a request with a warning, not an error.
			w.Header().Set("Warning", `299 relais: "the workitem is already `+string(to)+`"`)
			w.WriteHeader(http.StatusOK)
			return
		}
		if cur.State != InProgress {
			fail(w, http.StatusConflict, fmt.Sprintf("the workitem is %s, not IN PROGRESS", cur.State))
			return
		}
		if held == "" || held != txn {
			fail(w, http.StatusConflict, "the Transaction UID is not the one the workitem was claimed with")
			return
		}
		if to == Completed {
			it, err = s.backend.Complete(r.Context(), uid, p.User)
		} else {
			it, err = s.backend.Cancel(r.Context(), uid, p.User, "canceled by its performer (UPS-RS)", false)
		}
		if err != nil {
			s.backendError(w, err)
			return
		}
	default:
		fail(w, http.StatusBadRequest, fmt.Sprintf("Procedure Step State %q is not IN PROGRESS, COMPLETED or CANCELED", to))
		return
	}
	s.journalf("ups.state", p.User, r, "workitem %s → %s", uid, it.State)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) cancelRequest(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	uid := r.PathValue("uid")
	it, err := s.backend.Get(r.Context(), uid)
	if err != nil {
		s.backendError(w, err)
		return
	}
	if it.State == Completed || it.State == Canceled {
		fail(w, http.StatusConflict, fmt.Sprintf("the workitem is already %s", it.State))
		return
	}
	reason := ""
	if ds, err := readDataset(r); err == nil {
		reason = ds["00741238"]
	}
	if p.Role == auth.RoleAdmin && it.State == Scheduled {
		if it, err = s.backend.Cancel(r.Context(), uid, p.User, or(reason, "cancel request (UPS-RS)"), true); err != nil {
			s.backendError(w, err)
			return
		}
	} else {
		// The performer (or the worklist's owner) decides: tell the
		// subscribers a cancellation was requested.
		extra := object{}
		extra.str("00741238", "LT", reason)
		s.send(it, event(it, EventCancelRequested, extra))
	}
	s.journalf("ups.cancelrequest", p.User, r, "workitem %s: cancellation requested", uid)
	w.WriteHeader(http.StatusAccepted)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	uid, ae := r.PathValue("uid"), r.PathValue("ae")
	if config.ValidAETitle(ae) != nil {
		fail(w, http.StatusBadRequest, "the subscriber is not an AE title")
		return
	}
	global := uid == GlobalSubscription || uid == FilteredGlobalSubscription
	var items []Workitem
	if global {
		var err error
		if items, err = s.backend.List(r.Context()); err != nil {
			s.backendError(w, err)
			return
		}
	} else {
		it, err := s.backend.Get(r.Context(), uid)
		if err != nil {
			s.backendError(w, err)
			return
		}
		items = []Workitem{it}
	}
	s.mu.Lock()
	sub := s.st.Subscribers[ae]
	if sub == nil {
		sub = &subscription{UIDs: map[string]bool{}}
		s.st.Subscribers[ae] = sub
	}
	if sub.UIDs == nil {
		sub.UIDs = map[string]bool{}
	}
	if global {
		sub.Global, sub.Suspended = true, false
	} else {
		sub.UIDs[uid] = true
	}
	sub.DeletionLock = r.URL.Query().Get("deletionlock") == "true"
	err := s.save()
	s.mu.Unlock()
	if err != nil {
		s.log.Error("ups: subscription not saved", "err", err)
		fail(w, http.StatusInternalServerError, "the subscription could not be saved")
		return
	}
	s.journalf("ups.subscribed", p.User, r, "%s subscribed to %s", ae, uid)
	w.WriteHeader(http.StatusCreated)
	// PS3.4 CC.2.3.2: a new subscriber gets the current state of what it
	// subscribed to.
	for _, it := range items {
		if it.State == Completed || it.State == Canceled {
			continue
		}
		s.send(it, event(it, EventStateReport, nil))
	}
}

func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	uid, ae := r.PathValue("uid"), r.PathValue("ae")
	s.mu.Lock()
	sub := s.st.Subscribers[ae]
	if sub != nil {
		if uid == GlobalSubscription || uid == FilteredGlobalSubscription {
			delete(s.st.Subscribers, ae)
		} else {
			delete(sub.UIDs, uid)
		}
	}
	err := s.save()
	s.mu.Unlock()
	if sub == nil {
		fail(w, http.StatusNotFound, ae+" has no subscription")
		return
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, "the subscription could not be saved")
		return
	}
	s.journalf("ups.unsubscribed", p.User, r, "%s unsubscribed from %s", ae, uid)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) suspend(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	uid, ae := r.PathValue("uid"), r.PathValue("ae")
	if uid != GlobalSubscription && uid != FilteredGlobalSubscription {
		fail(w, http.StatusBadRequest, "only a global subscription is suspended")
		return
	}
	s.mu.Lock()
	sub := s.st.Subscribers[ae]
	if sub != nil {
		sub.Suspended = true
	}
	err := s.save()
	s.mu.Unlock()
	if sub == nil {
		fail(w, http.StatusNotFound, ae+" has no subscription")
		return
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, "the subscription could not be saved")
		return
	}
	s.journalf("ups.suspended", p.User, r, "%s suspended its global subscription", ae)
	w.WriteHeader(http.StatusOK)
}

// channel opens a subscriber's event channel (WebSocket).
func (s *Server) channel(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ae := r.PathValue("ae")
	if config.ValidAETitle(ae) != nil {
		fail(w, http.StatusBadRequest, "the subscriber is not an AE title")
		return
	}
	// Registered under the lock the handshake is answered in: a client
	// that subscribes as soon as it reads the 101 gets the initial reports.
	s.mu.Lock()
	c, err := websocket.Upgrade(w, r)
	if err != nil {
		s.mu.Unlock()
		s.log.Info("ups: event channel refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	if s.chans[ae] == nil {
		s.chans[ae] = map[*websocket.Conn]bool{}
	}
	s.chans[ae][c] = true
	s.mu.Unlock()
	s.journalf("ups.channel", p.User, r, "event channel of %s opened", ae)
	go func() {
		<-c.Done()
		s.mu.Lock()
		delete(s.chans[ae], c)
		s.mu.Unlock()
	}()
}

// Close closes every event channel.
func (s *Server) Close() {
	s.mu.Lock()
	var all []*websocket.Conn
	for _, cs := range s.chans {
		for c := range cs {
			all = append(all, c)
		}
	}
	s.mu.Unlock()
	for _, c := range all {
		c.Close(websocket.CloseGoingAway)
	}
}

func (s *Server) journalf(kind, user string, r *http.Request, format string, a ...any) {
	if s.journal == nil {
		return
	}
	s.journal.AppendAsync(&journal.Event{Kind: kind, User: user, Addr: r.RemoteAddr, Reason: fmt.Sprintf(format, a...)})
}
