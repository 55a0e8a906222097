package node

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"github.com/relais-health/relais/ups"
	"github.com/relais-health/relais/worklist"
)

// openUPS serves the reading worklist as UPS-RS under the DICOMweb base
// (/dicom-web/workitems, event channels /dicom-web/subscribers/{ae}) for
// reading workstations of other vendors: radiologists and administrators
// only (requesters do not see the reading worklist).
func (n *Node) openUPS() error {
	wl := n.Worklist()
	if wl == nil {
		return nil
	}
	b := &upsBackend{n: n, wl: wl, wadoBase: n.publicDICOMwebBase()}
	s, err := ups.New(b, ups.Options{Dir: filepath.Join(n.Config.DataDir, "ups"), Logger: n.Logger, Journal: n.Journal})
	if err != nil {
		return err
	}
	h := s.Handler("/dicom-web", n.authorizeReaders)
	n.mountAPI("/dicom-web/workitems", h)
	n.mountAPI("/dicom-web/subscribers", h)
	n.mountAPI("/dicom-web/ws/subscribers", h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.forward(ctx, s) }()
	n.closers = append(n.closers, func() error { cancel(); s.Close(); <-done; return nil })
	return nil
}

// upsBackend adapts the worklist to UPS: workitem UIDs derived from item
// ids, states and priorities mapped, claims as the worklist's claims.
type upsBackend struct {
	n  *Node
	wl *worklist.Worklist
	// wadoBase prefixes the studies' Retrieve URLs (computed once: it
	// warns when http.public_url is not set).
	wadoBase string

	ids sync.Map // workitem UID → item id
}

// forward publishes every worklist change as a UPS state report, until
// ctx ends (resubscribing if the worklist dropped a slow listener).
func (b *upsBackend) forward(ctx context.Context, s *ups.Server) {
	for ctx.Err() == nil {
		ch, stop := b.wl.Subscribe()
		func() {
			defer stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-ch:
					if !ok {
						return
					}
					if ev.Item != nil {
						s.Publish(b.workitem(ev.Item))
					}
				}
			}
		}()
	}
}

func (b *upsBackend) workitem(it *worklist.Item) ups.Workitem {
	uid := ups.UIDFor(it.ID)
	b.ids.Store(uid, it.ID)
	st := ups.Scheduled
	switch it.State {
	case worklist.InProgress:
		st = ups.InProgress
	case worklist.Reported, worklist.Returned:
		st = ups.Completed
	case worklist.Cancelled:
		st = ups.Canceled
	}
	prio := map[string]string{"STAT": "HIGH", "URGENT": "MEDIUM"}[strings.ToUpper(it.Priority)]
	if prio == "" {
		prio = "LOW"
	}
	label := it.Pool
	if label == "" {
		label = b.n.Config.AETitle
	}
	w := ups.Workitem{UID: uid, State: st, Priority: prio, Label: or(it.Description, "Lecture"), WorklistLabel: label,
		PatientName: it.PatientName, PatientID: it.PatientID, StudyUID: it.StudyUID, AccessionNumber: it.Accession,
		RetrieveAE: b.n.Config.AETitle, Performer: it.Reader, ScheduledStart: it.ReadyAt, ExpectedEnd: it.ReportDue,
		Modalities: it.Modalities, Description: it.Description}
	if b.wadoBase != "" {
		w.RetrieveURL = b.wadoBase + "/studies/" + url.PathEscape(it.StudyUID)
	}
	return w
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (b *upsBackend) List(context.Context) ([]ups.Workitem, error) {
	items, _ := b.wl.List(worklist.Filter{States: []string{"all"}})
	out := make([]ups.Workitem, 0, len(items))
	for _, it := range items {
		out = append(out, b.workitem(it))
	}
	return out, nil
}

// item resolves a workitem UID to the worklist item.
func (b *upsBackend) item(uid string) (*worklist.Item, error) {
	id, ok := b.ids.Load(uid)
	if !ok {
		b.List(context.Background())
		if id, ok = b.ids.Load(uid); !ok {
			return nil, fmt.Errorf("%w: %s", ups.ErrNotFound, uid)
		}
	}
	it, err := b.wl.Get(id.(string))
	return it, upsErr(err)
}

func upsErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, worklist.ErrNotFound):
		return fmt.Errorf("%w: %v", ups.ErrNotFound, err)
	case errors.Is(err, worklist.ErrConflict), errors.Is(err, worklist.ErrInvalid):
		return fmt.Errorf("%w: %v", ups.ErrState, err)
	case errors.Is(err, worklist.ErrForbidden):
		return fmt.Errorf("%w: %v", ups.ErrForbidden, err)
	}
	return err
}

func (b *upsBackend) Get(_ context.Context, uid string) (ups.Workitem, error) {
	it, err := b.item(uid)
	if err != nil {
		return ups.Workitem{}, err
	}
	return b.workitem(it), nil
}

func (b *upsBackend) Claim(_ context.Context, uid, user string) (ups.Workitem, error) {
	it, err := b.item(uid)
	if err != nil {
		return ups.Workitem{}, err
	}
	it, err = b.wl.Claim(it.ID, user)
	if err != nil {
		return ups.Workitem{}, upsErr(err)
	}
	return b.workitem(it), nil
}

// Complete: the reading is complete when its report is signed (the report
// workflow moves the item to reported); before, the workitem cannot be
// completed.
func (b *upsBackend) Complete(_ context.Context, uid, user string) (ups.Workitem, error) {
	it, err := b.item(uid)
	if err != nil {
		return ups.Workitem{}, err
	}
	if it.State != worklist.Reported && it.State != worklist.Returned {
		return ups.Workitem{}, fmt.Errorf("%w: the study's report is not signed yet (sign it: the workitem completes with it)", ups.ErrState)
	}
	return b.workitem(it), nil
}

func (b *upsBackend) Cancel(_ context.Context, uid, user, reason string, admin bool) (ups.Workitem, error) {
	it, err := b.item(uid)
	if err != nil {
		return ups.Workitem{}, err
	}
	it, err = b.wl.Cancel(it.ID, user, reason, admin)
	if err != nil {
		return ups.Workitem{}, upsErr(err)
	}
	return b.workitem(it), nil
}
