package node

import (
	"context"
	"github.com/relais-health/relais/cda"
	"path/filepath"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/report"
	"github.com/relais-health/relais/routing"
	"github.com/relais-health/relais/routing/queue"
)

// openReports opens the report store (DATA/reports) and mounts the report
// API (/api/reports) and documents (/reports/{id}).
func (n *Node) openReports() error {
	st, err := report.OpenStore(filepath.Join(n.Config.DataDir, "reports"))
	if err != nil {
		return err
	}
	d := report.Deps{
		Store: st, Index: n.Index, Directory: n.directory,
		Settings: func() config.Reports { return n.Config.Reports },
		WADOBase: n.publicDICOMwebBase(),
		StoreInstance: func(ctx context.Context, file []byte, user string) error {
			_, err := n.StoreGenerated(ctx, file, user)
			return err
		},
		Render: cda.PDF, Level1: cda.Level1,
		Journal: n.Journal, Logger: n.Logger,
		OnChange: n.reportChanged,
		SiteOfUser: func(user string) (string, bool) {
			id, _, ok := n.directory.SiteFor("", user)
			return id, ok
		},
	}
	if n.routing != nil {
		d.Deliver = n.deliverGenerated
	}
	n.reports = report.New(d)
	n.mountAPI("/api/reports", n.reports.Handler(n.Authorize))
	n.mountAPI("/reports/", n.reports.Handler(n.Authorize))
	return nil
}

// Reports returns the report workflow.
func (n *Node) Reports() *report.Service { return n.reports }

// runReports publishes signed versions left unpublished (crash, full disk).
func (n *Node) runReports(ctx context.Context) {
	if n.reports != nil {
		n.reports.Run(ctx, 30*time.Second)
	}
}

// deliverGenerated queues an instance Relais built for destinations: one
// task per destination, with a deterministic id (queued once however
// often it is asked), at URGENT priority.
func (n *Node) deliverGenerated(ctx context.Context, study, series, sop string, dests []string) error {
	var tasks []queue.Task
	for _, d := range dests {
		tasks = append(tasks, queue.Task{ID: routing.TaskID("generated", []string{d}, sop, "0"), Route: "report", Priority: queue.Urgent,
			Destinations: []string{d}, StudyUID: study, SeriesUID: series, SOPInstanceUID: sop})
	}
	if _, err := n.routing.Queue.Enqueue(ctx, tasks, nil); err != nil {
		return err
	}
	for _, d := range dests {
		n.routing.Dispatcher.Notify(d)
	}
	return nil
}
