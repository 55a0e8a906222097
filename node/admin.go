package node

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/internal/httpjson"
	"github.com/relais-health/relais/journal"
)

// openAdmin mounts the administration APIs the web app's admin area uses
// beside /api/routes, /api/queue and /api/directory: the journal (search
// and CSV export) and the on-call rotas.
func (n *Node) openAdmin() error {
	n.mountAPI("/api/journal", http.HandlerFunc(n.serveJournal))
	n.mountAPI("/api/calendars", http.HandlerFunc(n.serveCalendars))
	return nil
}

// now is the node's clock (RELAIS_CLOCK when injected).
func (n *Node) now() time.Time {
	if n.Ingest != nil && n.Ingest.Clock != nil {
		return n.Ingest.Clock()
	}
	return time.Now()
}

// maxJournalRows bounds one answer (an export of more is paged with until).
const maxJournalRows = 50000

// serveJournal answers GET /api/journal: events by time, kind, AE, user,
// study or SOP instance, newest first, as JSON or CSV (format=csv or
// Accept: text/csv, an export: journaled itself).
func (n *Node) serveJournal(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		httpjson.Write(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET only"})
		return
	}
	p, ok := n.Authorize(w, r, auth.Admin)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := journal.Filter{AE: q.Get("ae"), User: q.Get("user"), StudyUID: q.Get("study"), SOPInstanceUID: q.Get("sop"), Reverse: q.Get("order") != "asc"}
	var err error
	if f.Since, err = journal.ParseWhen(q.Get("since"), time.Now()); err == nil {
		f.Until, err = journal.ParseWhen(q.Get("until"), time.Now())
	}
	if err != nil {
		httpjson.Write(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	for _, k := range q["kind"] {
		for _, v := range strings.Split(k, ",") {
			if v = strings.TrimSpace(v); v != "" {
				f.Kinds = append(f.Kinds, v)
			}
		}
	}
	f.Limit = 500
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > maxJournalRows {
			httpjson.Write(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit is 1..%d", maxJournalRows)})
			return
		}
	}
	text := strings.ToLower(q.Get("q"))
	var events []*journal.Event
	err = journal.Query(r.Context(), n.Journal.Dir(), f, func(ev *journal.Event) error {
		if text != "" && !strings.Contains(strings.ToLower(ev.Kind+" "+ev.Reason+" "+ev.User+" "+ev.AE), text) {
			return nil
		}
		ev.Data = nil // the index records: not for the admin's table
		events = append(events, ev)
		return nil
	})
	if err != nil {
		n.Logger.Error("journal API failed", "err", err)
		httpjson.Write(w, http.StatusInternalServerError, map[string]string{"error": "the journal could not be read"})
		return
	}
	csvOut := q.Get("format") == "csv" || strings.Contains(r.Header.Get("Accept"), "text/csv")
	if !csvOut {
		httpjson.Write(w, http.StatusOK, map[string]any{"events": events, "limit": f.Limit, "truncated": len(events) >= f.Limit})
		return
	}
	n.Journal.AppendAsync(&journal.Event{Kind: "journal.exported", User: p.User, Addr: r.RemoteAddr,
		Reason: fmt.Sprintf("%d events exported as CSV (%s)", len(events), r.URL.RawQuery)})
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="relais-journal-`+n.now().UTC().Format("20060102T150405Z")+`.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"seq", "time", "kind", "user", "addr", "ae", "called_ae", "association", "study", "series", "sop", "status", "reason"})
	for _, ev := range events {
		cw.Write([]string{strconv.FormatUint(ev.Seq, 10), ev.Time.UTC().Format(time.RFC3339Nano), ev.Kind, csvSafe(ev.User), ev.Addr, csvSafe(ev.AE), csvSafe(ev.CalledAE),
			ev.Association, ev.StudyUID, ev.SeriesUID, ev.SOPInstanceUID, ev.Status, csvSafe(ev.Reason)})
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from taking a value for a formula (CSV
// injection: AE titles and reasons come from the outside).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// shiftView is one on-call shift.
type shiftView struct {
	Summary   string    `json:"summary"`
	Attendees []string  `json:"attendees,omitempty"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
}

// serveCalendars answers GET /api/calendars: each configured rota, who is
// on call now and the shifts of the coming days (days=7, at most 31).
func (n *Node) serveCalendars(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		httpjson.Write(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET only"})
		return
	}
	if _, ok := n.authorizeReaders(w, r, auth.ReadReports); !ok {
		return
	}
	days := 7
	if v := r.URL.Query().Get("days"); v != "" {
		if d, err := strconv.Atoi(v); err == nil && d >= 0 && d <= 31 {
			days = d
		}
	}
	now := n.now()
	type calView struct {
		Name     string      `json:"name"`
		Source   string      `json:"source"`
		Loaded   bool        `json:"loaded"`
		OnCall   []shiftView `json:"on_call"`
		Upcoming []shiftView `json:"upcoming"`
	}
	var out []calView
	names := make([]string, 0, len(n.Config.Calendars))
	for name := range n.Config.Calendars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cv := calView{Name: name, Source: redactURL(n.Config.Calendars[name].ICS), OnCall: []shiftView{}, Upcoming: []shiftView{}}
		if e := n.Routing(); e != nil {
			if rota, ok := e.Rota(name); ok {
				cv.Loaded = true
				for _, s := range rota.At(now) {
					cv.OnCall = append(cv.OnCall, shiftView{s.Summary, s.Attendees, s.Start, s.End})
				}
				seen := map[string]bool{}
				// Shifts are found by sampling every 15 minutes: rota
				// shifts are never shorter.
				for t := now; t.Before(now.Add(time.Duration(days) * 24 * time.Hour)); t = t.Add(15 * time.Minute) {
					for _, s := range rota.At(t) {
						k := s.UID + s.Start.String()
						if !seen[k] && s.Start.After(now) {
							seen[k] = true
							cv.Upcoming = append(cv.Upcoming, shiftView{s.Summary, s.Attendees, s.Start, s.End})
						}
					}
				}
			}
		}
		out = append(out, cv)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"now": now, "calendars": out})
}

// redactURL hides credentials in a calendar URL.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.IndexByte(s[i+3:], '@'); j >= 0 {
			return s[:i+3] + "…@" + s[i+3+j+1:]
		}
	}
	return s
}
