package node

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/internal/clock"
	"github.com/relais-health/relais/report"
	"github.com/relais-health/relais/routing/calendar"
	"github.com/relais-health/relais/routing/queue"
	"github.com/relais-health/relais/worklist"
)

// Worklist returns the reading worklist (nil before openWorklist).
func (n *Node) Worklist() *worklist.Worklist { return n.worklist }

// openWorklist sets up the node's clock (RELAIS_CLOCK), the reading
// worklist (DATA/worklist) fed by the routing engine's study.ready events,
// the reports' signatures and the deliveries, and mounts /api/worklist.
func (n *Node) openWorklist() error {
	now := time.Now
	clk, start, err := clock.FromEnv()
	if err != nil {
		return err
	}
	if clk != nil {
		now = clk
		n.Logger.Warn("RELAIS_CLOCK IS SET: this node's clock is injected (tests and demos only): instances, routing, on-call rotas and worklist deadlines run from "+start.Format(time.RFC3339)+", not the real time",
			"relais_clock", start.Format(time.RFC3339), "real_time", time.Now().Format(time.RFC3339))
		n.Ingest.Clock = clk
		if e := n.Routing(); e != nil {
			e.SetClock(clk)
		}
	}
	d := worklist.Deps{
		Dir:      filepath.Join(n.Config.DataDir, "worklist"),
		Settings: func() config.Worklist { return n.Config.Worklist },
		Clock:    now,
		Journal:  n.Journal,
		Logger:   n.Logger,
		Metrics:  n.Metrics.Registry,
		Study:    n.worklistStudy,
		Readers: func() []worklist.Reader {
			var out []worklist.Reader
			for _, p := range n.Directory().Snapshot().Professionals {
				u := p.Value.User
				if u == "" {
					u = p.ID
				}
				out = append(out, worklist.Reader{User: u, Name: strings.TrimSpace(p.Value.Prefix + " " + p.Value.Given + " " + p.Value.Family)})
			}
			return out
		},
		Shifts: func(pool string, t time.Time) ([]calendar.Shift, bool) {
			e := n.Routing()
			if e == nil {
				return nil, false
			}
			r, ok := e.Rota(pool)
			if !ok {
				return nil, false
			}
			return r.At(t), true
		},
	}
	d.Consent = func(study string) (bool, bool, string) {
		if rs := n.Requests(); rs != nil {
			return rs.ReadingAllowed(study)
		}
		return false, false, ""
	}
	wl, err := worklist.Open(d)
	if err != nil {
		return err
	}
	n.worklist = wl
	if e := n.Routing(); e != nil {
		e.SetOnReady(wl.Ready)
		n.routing.Dispatcher.OnDelivered = func(t *queue.Task) { wl.OnDelivered(t.Route, t.StudyUID, t.Destination()) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); wl.Run(ctx) }()
	n.closers = append(n.closers, func() error {
		cancel()
		<-done
		return wl.Close()
	})
	n.mountAPI(worklist.PathPrefix, wl.Handler(n.authorizeReaders))
	return nil
}

// reportChanged follows the reports (report.Deps.OnChange): a signed
// report moves its study's worklist items and requests to reported.
func (n *Node) reportChanged(kind string, r *report.Report) {
	if r == nil {
		return
	}
	user := r.CreatedBy
	if v := r.Last(); v != nil {
		user = v.User
	}
	if wl := n.Worklist(); wl != nil {
		wl.OnReport(kind, r.ID, r.StudyUID, user)
	}
	if rs := n.Requests(); rs != nil && (kind == "report.signed" || kind == "report.corrected") {
		// OnChange must not block: the requests' store writes with fsync.
		go func() {
			if _, err := rs.MarkReported(context.Background(), r.StudyUID, user); err != nil {
				n.Logger.Warn("request not marked reported", "study", r.StudyUID, "err", err)
			}
		}()
	}
}

// worklistStudy is what the worklist shows of a study: its attributes,
// and its site (StudySite).
func (n *Node) worklistStudy(ctx context.Context, uid string) (worklist.StudyInfo, error) {
	st, err := n.Index.GetStudy(ctx, uid)
	if err != nil {
		return worklist.StudyInfo{}, err
	}
	info := worklist.StudyInfo{Accession: st.Attrs["00080050"], PatientID: st.PatientID, PatientName: st.Attrs["00100010"],
		Description: st.Attrs["00081030"], Modalities: st.Modalities, Instances: st.Instances, LastReceived: st.LastReceived}
	info.Site = n.StudySite(uid)
	return info, nil
}
