package routing

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/internal/httpjson"
	"github.com/relais-health/relais/storage"
)

// RouteInfo describes a rule in force (GET /api/routes, relais route list).
type RouteInfo struct {
	Name        string   `json:"name"`
	When        string   `json:"when,omitempty"`
	Mode        string   `json:"mode"`
	Priority    string   `json:"priority"`
	StableAfter string   `json:"stable_after,omitempty"`
	Late        string   `json:"late,omitempty"`
	Forward     []string `json:"forward,omitempty"`
	Failover    []string `json:"failover,omitempty"`
	Continue    bool     `json:"continue,omitempty"`
	Coerce      bool     `json:"coerce,omitempty"`
	Webhook     bool     `json:"webhook,omitempty"`
	Ready       bool     `json:"ready,omitempty"`
	Priors      string   `json:"priors,omitempty"`
}

// Describe lists the rules in order.
func (rs *Rules) Describe() []RouteInfo {
	var out []RouteInfo
	for _, r := range rs.Rules {
		ri := RouteInfo{Name: r.Name, When: r.When, Mode: r.Mode, Priority: r.Priority, Late: r.Late,
			Forward: r.Forward, Failover: r.Failover, Continue: r.Continue, Coerce: r.coerce != nil,
			Webhook: r.Route.Webhook != "", Ready: r.Route.Ready}
		if r.Mode == config.ModeStable {
			ri.StableAfter = r.StableAfter.String()
		} else {
			ri.Late = ""
		}
		if r.Route.Priors != nil {
			ri.Priors = r.Route.Priors.From
		}
		out = append(out, ri)
	}
	return out
}

// MaxTestFileSize bounds the body of POST /api/routes/test.
const MaxTestFileSize = 1 << 30

// MaxReloadSize bounds the body of POST /api/routes/reload.
const MaxReloadSize = 4 << 20

// AdminHandler serves the routing admin API, to be mounted behind admin
// authentication:
//
//	GET  /api/routes           the rules in force, pending stability timers, warnings
//	POST /api/routes/reload    body: a YAML configuration whose routes,
//	                           calendars and holidays replace the running ones
//	                           (empty body: recompile the running configuration,
//	                           calendars re-read); 422 naming the rule when refused
//	POST /api/routes/test      body: a DICOM Part 10 file; ?at=RFC3339&calling_ae=AE
//	                           (&called_ae, source_addr, channel, user);
//	                           which rules match and why (nothing is sent)
func (e *Engine) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/routes", func(w http.ResponseWriter, r *http.Request) {
		rs := e.rules.Load()
		pend, _ := e.PendingStudies(r.Context())
		httpjson.Write(w, http.StatusOK, map[string]any{"routes": rs.Describe(), "pending": pend, "warnings": rs.Warnings})
	})
	mux.HandleFunc("POST /api/routes/reload", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReloadSize))
		if err != nil {
			httpjson.Write(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
			return
		}
		cur := e.cfg.Load()
		next := cur
		if strings.TrimSpace(string(body)) != "" {
			parsed, err := config.Parse(body)
			if err != nil {
				httpjson.Write(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
				return
			}
			c := *cur
			c.Routes, c.Calendars, c.Holidays = parsed.Routes, parsed.Calendars, parsed.Holidays
			c.Destinations = parsed.Destinations
			next = &c
		}
		if err := e.Reload(next); err != nil {
			httpjson.Write(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]any{"status": "reloaded", "routes": e.rules.Load().Describe()})
	})
	mux.HandleFunc("POST /api/routes/test", func(w http.ResponseWriter, r *http.Request) {
		var at time.Time
		if s := r.URL.Query().Get("at"); s != "" {
			t, err := ParseTime(s, e.rules.Load().Location())
			if err != nil {
				httpjson.Write(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			at = t
		}
		x, err := NewExtractor()
		if err != nil {
			httpjson.Write(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		defer x.Close()
		src := storage.Source{Channel: "import", CallingAE: r.URL.Query().Get("calling_ae"), CalledAE: r.URL.Query().Get("called_ae"),
			RemoteAddr: r.URL.Query().Get("source_addr"), User: r.URL.Query().Get("user")}
		if src.CallingAE != "" {
			src.Channel = "dimse"
		}
		if c := r.URL.Query().Get("channel"); c != "" {
			src.Channel = c
		}
		inst, err := x.Instance(r.Context(), http.MaxBytesReader(w, r.Body, MaxTestFileSize), src, at)
		if err != nil {
			httpjson.Write(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if at.IsZero() {
			at = time.Now()
			inst.ReceivedAt = at
		}
		httpjson.Write(w, http.StatusOK, TestReport{SOPInstanceUID: inst.SOPInstanceUID, StudyInstanceUID: inst.StudyInstanceUID,
			At: at, Decisions: e.Test(inst)})
	})
	return mux
}

// TestReport is the answer of a dry run.
type TestReport struct {
	SOPInstanceUID   string     `json:"sop"`
	StudyInstanceUID string     `json:"study"`
	At               time.Time  `json:"at"`
	Decisions        []Decision `json:"decisions"`
}

// ParseTime parses --at / ?at=: RFC 3339, or "2006-01-02 15:04" (and
// "2006-01-02T15:04") in loc.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, f := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(f, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New(`time ` + s + ` is not RFC 3339 or "YYYY-MM-DD HH:MM"`)
}
