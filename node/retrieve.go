package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/retrieve"
	"github.com/relais-health/relais/storage"
)

// maxIdentifier bounds a C-MOVE/C-GET identifier read into memory.
const maxIdentifier = 1 << 20

// maxJournaledFailures bounds the retrieve.failure events of one retrieve.
const maxJournaledFailures = 1000

// registerRetrieve registers the C-MOVE and C-GET SCPs (Patient Root and
// Study Root) on mux. The C-MOVEs share limits.move_associations slots for
// their sub-operation associations.
func (n *Node) registerRetrieve(mux *dimse.ServeMux) {
	slots := make(chan struct{}, max(1, n.Config.Limits.MoveAssociations))
	mux.HandleClasses(dimse.CMoveRQ, retrieve.MoveSOPClasses, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		n.serveMove(ctx, w, r, slots)
	}))
	mux.HandleClasses(dimse.CGetRQ, retrieve.GetSOPClasses, dimse.HandlerFunc(n.serveGet))
}

// slotLane releases its association slot when closed.
type slotLane struct {
	retrieve.Lane
	slots chan struct{}
}

func (l slotLane) Close(ctx context.Context) error {
	defer func() { <-l.slots }()
	return l.Lane.Close(ctx)
}

// limitLanes makes open wait for one of slots before opening a lane.
func limitLanes(slots chan struct{}, open func(context.Context, int) (retrieve.Lane, error)) func(context.Context, int) (retrieve.Lane, error) {
	return func(ctx context.Context, i int) (retrieve.Lane, error) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		l, err := open(ctx, i)
		if err != nil {
			<-slots
			return nil, err
		}
		return slotLane{l, slots}, nil
	}
}

// retrieveJob is one C-MOVE or C-GET being served, with what its journal
// entry needs.
type retrieveJob struct {
	n     *Node
	w     dimse.ResponseWriter
	r     *dimse.Request
	kind  string // "retrieve.move" or "retrieve.get"
	dest  string
	keys  retrieve.Keys
	start time.Time
}

// refuse answers a final failure status and journals it.
func (j *retrieveJob) refuse(st dimse.Status, reason string) {
	j.w.Respond(st, nil)
	j.journal(st, nil, nil, reason)
}

// statusOf extracts the DICOM status an error carries, else def.
func statusOf(err error, def uint16) dimse.Status {
	var st dimse.Status
	if errors.As(err, &st) {
		return st
	}
	return dimse.Status{Code: def, Comment: comment(err.Error())}
}

// retrieveRecord is the Data of a retrieve.move / retrieve.get event.
type retrieveRecord struct {
	Destination string   `json:"destination,omitempty"`
	Level       string   `json:"level,omitempty"`
	Studies     []string `json:"studies,omitempty"`
	Matches     int      `json:"matches"`
	Completed   int      `json:"completed"`
	Failed      int      `json:"failed"`
	Warning     int      `json:"warning"`
	Remaining   int      `json:"remaining"`
	DurationMS  int64    `json:"duration_ms"`
}

func (j *retrieveJob) journal(st dimse.Status, insts []*storage.Instance, out *retrieve.Outcome, reason string) {
	a := j.r.Assoc
	rec := retrieveRecord{Destination: j.dest, Level: j.keys.Level, Matches: len(insts), DurationMS: time.Since(j.start).Milliseconds()}
	seen := map[string]bool{}
	for _, in := range insts {
		if !seen[in.StudyInstanceUID] {
			seen[in.StudyInstanceUID] = true
			rec.Studies = append(rec.Studies, in.StudyInstanceUID)
		}
	}
	if len(insts) == 0 {
		rec.Studies = j.keys.Studies
	}
	if out != nil {
		rec.Completed, rec.Failed, rec.Warning, rec.Remaining = out.Completed, out.Failed, out.Warning, out.Remaining
		if reason == "" {
			reason = fmt.Sprintf("%d completed, %d failed, %d warning, %d remaining", out.Completed, out.Failed, out.Warning, out.Remaining)
			if j.dest != "" {
				reason = "to " + j.dest + ": " + reason
			}
		}
	}
	data, _ := json.Marshal(rec)
	ev := &journal.Event{
		Kind: j.kind, AE: strings.TrimSpace(a.CallingAE), CalledAE: strings.TrimSpace(a.CalledAE), Addr: addrOf(a.RemoteAddr),
		Association: a.ID, Status: fmt.Sprintf("%04X", st.Code), Reason: strings.TrimSpace(reason + " " + st.Comment), Data: data,
	}
	if len(rec.Studies) > 0 {
		ev.StudyUID = rec.Studies[0]
	}
	j.n.Journal.AppendAsync(ev)
	op, dest := strings.TrimPrefix(j.kind, "retrieve."), j.dest
	if op == "get" {
		dest = ev.AE
	}
	j.n.Metrics.retrieved(op, dest, st.Code, out)
	if out != nil {
		for i, f := range out.Failures {
			if i == maxJournaledFailures {
				j.n.Journal.AppendAsync(&journal.Event{Kind: "retrieve.failure", AE: ev.AE, Association: a.ID,
					Reason: fmt.Sprintf("%d more failures not journaled", len(out.Failures)-i)})
				break
			}
			j.n.Journal.AppendAsync(&journal.Event{Kind: "retrieve.failure", AE: ev.AE, Association: a.ID,
				StudyUID: f.StudyInstanceUID, SOPInstanceUID: f.SOPInstanceUID, Reason: j.kind + ": " + f.Reason})
		}
	}
	level := j.n.Logger.Info
	if st.Category() == dimse.CategoryFailure {
		level = j.n.Logger.Warn
	}
	level(j.kind, "calling_ae", ev.AE, "destination", j.dest, "status", ev.Status, "matches", rec.Matches,
		"completed", rec.Completed, "failed", rec.Failed, "warning", rec.Warning, "remaining", rec.Remaining, "reason", ev.Reason)
}

// prepare checks access and the identifier and resolves the matches;
// false when it already answered.
func (j *retrieveJob) prepare(ctx context.Context) ([]*storage.Instance, bool) {
	n, r := j.n, j.r
	if !n.MayQueryRetrieve(ctx, r.Assoc) {
		j.refuse(dimse.Status{Code: dimse.StatusNotAuthorized, Comment: "not a query/retrieve caller"}, "caller not allowed to retrieve")
		return nil, false
	}
	if r.Data == nil {
		j.refuse(dimse.Status{Code: dimse.StatusCannotUnderstand, Comment: "no identifier"}, "no identifier")
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(r.Data, maxIdentifier))
	if err != nil {
		j.refuse(dimse.Status{Code: dimse.StatusProcessingFailure, Comment: "reading identifier"}, err.Error())
		return nil, false
	}
	class := r.Command.AffectedSOPClassUID
	if class == "" {
		class = r.Context.AbstractSyntax
	}
	keys, err := retrieve.ParseIdentifier(data, r.Context.TransferSyntax, class)
	j.keys = keys
	if err != nil {
		j.refuse(statusOf(err, dimse.StatusIdentifierMismatch), err.Error())
		return nil, false
	}
	insts, err := retrieve.Resolve(ctx, n.Index, keys)
	if err != nil {
		j.refuse(statusOf(err, dimse.StatusOutOfResourcesMatches), err.Error())
		return nil, false
	}
	return insts, true
}

// finish sends the final response of a run and journals it.
func (j *retrieveJob) finish(insts []*storage.Instance, out *retrieve.Outcome) {
	setCounts(j.w, retrieve.Counts{Remaining: out.Remaining, Completed: out.Completed, Failed: out.Failed, Warning: out.Warning})
	if err := j.w.Respond(out.Status, out.Identifier(j.r.Context.TransferSyntax)); err != nil {
		j.n.Logger.Warn(j.kind+": final response not sent", "err", err)
	}
	j.journal(out.Status, insts, out, "")
}

func u16(v int) uint16 { return uint16(min(max(v, 0), 0xFFFF)) }

func setCounts(w dimse.ResponseWriter, c retrieve.Counts) {
	if sc, ok := w.(dimse.SubOperationCounter); ok {
		sc.SetSubOperationCounts(u16(c.Remaining), u16(c.Completed), u16(c.Failed), u16(c.Warning))
	}
}

func (j *retrieveJob) progress(c retrieve.Counts) {
	setCounts(j.w, c)
	j.w.Pending(dimse.Status{Code: dimse.StatusPending}, nil)
}

// remoteAE finds a configured remote AE by AE title.
func (n *Node) remoteAE(ae string) (config.RemoteAE, bool) {
	ae = strings.TrimSpace(ae)
	for _, r := range n.Config.RemoteAEs {
		if r.AE == ae {
			return r, true
		}
	}
	return config.RemoteAE{}, false
}

// serveMove is the C-MOVE SCP (PS3.4 C.4.2): the matches go to the move
// destination, a configured remote AE, as C-STORE sub-operations over
// several new associations (remote_aes[].associations, each taking one of
// slots while open).
func (n *Node) serveMove(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request, slots chan struct{}) {
	j := &retrieveJob{n: n, w: w, r: r, kind: "retrieve.move", dest: strings.TrimSpace(r.Command.MoveDestination), start: time.Now()}
	insts, ok := j.prepare(ctx)
	if !ok {
		return
	}
	dest, ok := n.remoteAE(j.dest)
	if !ok {
		j.refuse(dimse.Status{Code: dimse.StatusMoveDestinationUnknown, Comment: comment("Move Destination unknown: " + j.dest)},
			"move destination "+strconv.Quote(j.dest)+" is not in remote_aes")
		return
	}
	cfg := n.Config
	opts := dimse.DialOptions{
		CallingAE: cfg.AETitle, CalledAE: dest.AE, MaxPDULength: cfg.Limits.MaxPDULength,
		ImplementationClassUID: ImplementationClassUID, ImplementationVersionName: ImplementationVersionName,
		ARTIMTimeout: time.Duration(cfg.Limits.ARTIMTimeout), IdleTimeout: time.Duration(cfg.Limits.IdleTimeout),
		OnEvent: n.onEvent, Logger: n.Logger,
	}
	run := &retrieve.Run{
		Blobs: n.Blobs, Instances: insts, Parallel: dest.MoveAssociations(),
		Lanes: limitLanes(slots, retrieve.DialLanes(net.JoinHostPort(dest.Host, strconv.Itoa(dest.Port)), opts, insts,
			dimse.StoreOptions{MoveOriginatorAE: r.Assoc.CallingAE, MoveOriginatorMessageID: r.Command.MessageID})),
		Progress: j.progress, Logger: n.Logger,
	}
	j.finish(insts, run.Execute(ctx))
}

// serveGet is the C-GET SCP (PS3.4 C.4.3): the matches go back on the
// requestor's association, in the storage contexts where it took the SCP
// role.
func (n *Node) serveGet(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	j := &retrieveJob{n: n, w: w, r: r, kind: "retrieve.get", start: time.Now()}
	insts, ok := j.prepare(ctx)
	if !ok {
		return
	}
	op, ok := w.(dimse.SubOperator)
	if !ok {
		j.refuse(dimse.Status{Code: dimse.StatusProcessingFailure, Comment: "no sub-operations on this association"}, "ResponseWriter is not a SubOperator")
		return
	}
	run := &retrieve.Run{
		Blobs: n.Blobs, Instances: insts, Parallel: 1,
		Lanes: func(context.Context, int) (retrieve.Lane, error) {
			return retrieve.SubOperatorLane{Op: op, Accepted: r.Assoc.Contexts}, nil
		},
		Progress: j.progress, Logger: n.Logger,
	}
	j.finish(insts, run.Execute(ctx))
}
