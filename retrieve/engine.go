package retrieve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/storage"
)

// Lane carries C-STORE sub-operations one at a time: an association to a
// move destination, or the C-GET requestor's own association.
type Lane interface {
	// Contexts are the accepted presentation contexts usable for storage.
	Contexts() []dimse.PresentationContext
	// Store sends one data set on pc.
	Store(ctx context.Context, pc dimse.PresentationContext, sopClass, sopInstance string, data io.Reader) (dimse.Status, error)
	// Close releases the lane (A-RELEASE, or A-ABORT if that fails).
	Close(ctx context.Context) error
}

// Counts are the sub-operation counts of PS3.4 C.4.2.1.3.
type Counts struct {
	Remaining, Completed, Failed, Warning int
}

// Failure is one failed sub-operation and why.
type Failure struct {
	SOPInstanceUID, StudyInstanceUID string
	Reason                           string
}

// Outcome is the result of a run of sub-operations, ready for the final
// response.
type Outcome struct {
	Counts
	Status    dimse.Status
	Failures  []Failure
	Cancelled bool
}

// FailedUIDs lists the SOP Instance UIDs of the failures.
func (o *Outcome) FailedUIDs() []string {
	out := make([]string, len(o.Failures))
	for i, f := range o.Failures {
		out[i] = f.SOPInstanceUID
	}
	return out
}

// Identifier returns the final response's identifier in ts: the Failed
// SOP Instance UID List when some failed, else nil.
func (o *Outcome) Identifier(ts string) []byte { return encodeFailedList(o.FailedUIDs(), ts) }

// Run is one retrieve's sub-operations.
type Run struct {
	Blobs     storage.Blobs
	Instances []*storage.Instance
	// Lanes opens lane i (0 ≤ i < Parallel). A lane that fails to open
	// takes no work; when none opens, every instance fails and the status
	// is A702.
	Lanes    func(ctx context.Context, i int) (Lane, error)
	Parallel int
	// Progress is called from Run's goroutine at most every Interval
	// (default 200 ms) while counts change: send the pending response
	// there.
	Progress func(Counts)
	Interval time.Duration
	Logger   *slog.Logger
}

type runState struct {
	next                       atomic.Int64
	completed, failed, warning atomic.Int64
	opened                     atomic.Int64
	mu                         sync.Mutex
	failures                   []Failure
	openErr                    error
}

func (s *runState) fail(inst *storage.Instance, reason string) {
	s.failed.Add(1)
	s.mu.Lock()
	s.failures = append(s.failures, Failure{SOPInstanceUID: inst.SOPInstanceUID, StudyInstanceUID: inst.StudyInstanceUID, Reason: reason})
	s.mu.Unlock()
}

// Execute runs the sub-operations until all are done or ctx ends (a
// C-CANCEL): then no new sub-operation starts, the ones in flight finish,
// the lanes are released and the status is FE00.
func (r *Run) Execute(ctx context.Context) *Outcome {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	total := len(r.Instances)
	st := &runState{}
	par := max(1, min(r.Parallel, total))
	var wg sync.WaitGroup
	if total > 0 {
		for i := 0; i < par; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.worker(ctx, i, st, log)
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	interval := r.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	counts := func() Counts {
		c := Counts{Completed: int(st.completed.Load()), Failed: int(st.failed.Load()), Warning: int(st.warning.Load())}
		c.Remaining = max(0, total-c.Completed-c.Failed-c.Warning)
		return c
	}
	var last Counts
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			if c := counts(); c != last && r.Progress != nil {
				last = c
				r.Progress(c)
			}
		}
	}
	out := &Outcome{Cancelled: ctx.Err() != nil}
	attempted := int(min(st.next.Load(), int64(total)))
	if !out.Cancelled && attempted < total {
		// Every lane failed or died: the rest cannot be sent.
		reason := "no association to the destination"
		if st.openErr != nil {
			reason = "destination unreachable: " + st.openErr.Error()
		}
		for _, inst := range r.Instances[attempted:] {
			st.fail(inst, reason)
		}
	}
	out.Counts = counts()
	out.Failures = st.failures
	if !out.Cancelled {
		out.Remaining = 0
	}
	switch {
	case out.Cancelled:
		out.Status = dimse.Status{Code: dimse.StatusCancel, Comment: "cancelled by the requestor"}
	case total > 0 && st.opened.Load() == 0:
		out.Status = dimse.Status{Code: dimse.StatusOutOfResourcesSubOps, Comment: comment("unable to perform sub-operations: " + errString(st.openErr))}
	case out.Failed > 0 || out.Warning > 0:
		out.Status = dimse.Status{Code: dimse.StatusWarningSubOpsFailed, Comment: fmt.Sprintf("%d of %d sub-operations failed", out.Failed, total)}
	default:
		out.Status = dimse.Status{Code: dimse.StatusSuccess}
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return "no association"
	}
	return err.Error()
}

// comment fits an Error Comment (LO, 64 characters).
func comment(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func (r *Run) worker(ctx context.Context, i int, st *runState, log *slog.Logger) {
	if ctx.Err() != nil {
		return
	}
	lane, err := r.Lanes(ctx, i)
	if err != nil {
		log.Warn("retrieve: sub-operation association failed", "lane", i, "err", err)
		st.mu.Lock()
		if st.openErr == nil {
			st.openErr = err
		}
		st.mu.Unlock()
		return
	}
	st.opened.Add(1)
	// In-flight stores finish even when the retrieve is cancelled: a
	// C-CANCEL stops new sub-operations, it does not tear a data set.
	storeCtx := context.WithoutCancel(ctx)
	defer func() {
		cctx, cancel := context.WithTimeout(storeCtx, 10*time.Second)
		defer cancel()
		lane.Close(cctx)
	}()
	for ctx.Err() == nil {
		n := st.next.Add(1) - 1
		if n >= int64(len(r.Instances)) {
			return
		}
		inst := r.Instances[n]
		status, err := r.storeOne(storeCtx, lane, inst)
		switch {
		case err != nil:
			st.fail(inst, err.Error())
			log.Warn("retrieve: sub-operation failed", "sop", inst.SOPInstanceUID, "err", err)
			if errors.Is(err, dimse.ErrAssociationEnded) {
				return // this lane is gone; the others carry on
			}
		case status.Category() == dimse.CategoryWarning:
			st.warning.Add(1)
		case status.Category() == dimse.CategorySuccess:
			st.completed.Add(1)
		default:
			st.fail(inst, "C-STORE status "+status.String())
		}
	}
}

// Uncompressed reports whether ts is one of the native (uncompressed,
// non-deflated) transfer syntaxes Transcode converts between.
func Uncompressed(ts string) bool {
	return ts == dicom.ExplicitVRLittleEndian || ts == dicom.ImplicitVRLittleEndian || ts == dicom.ExplicitVRBigEndian
}

// PickContext returns the context to send an instance stored in ts: one
// accepted in ts itself, else (for uncompressed data) one in another
// uncompressed syntax, to transcode to.
func PickContext(pcs []dimse.PresentationContext, sopClass, ts string) (dimse.PresentationContext, bool) {
	for _, pc := range pcs {
		if pc.AbstractSyntax == sopClass && pc.TransferSyntax == ts {
			return pc, true
		}
	}
	if Uncompressed(ts) {
		for _, pc := range pcs {
			if pc.AbstractSyntax == sopClass && Uncompressed(pc.TransferSyntax) {
				return pc, true
			}
		}
	}
	return dimse.PresentationContext{}, false
}

// storeOne streams one stored instance: the blob's file meta is skipped
// and the data set sent as stored, or transcoded on the fly.
func (r *Run) storeOne(ctx context.Context, lane Lane, inst *storage.Instance) (dimse.Status, error) {
	pc, ok := PickContext(lane.Contexts(), inst.SOPClassUID, inst.TransferSyntaxUID)
	if !ok {
		return dimse.Status{}, fmt.Errorf("no presentation context accepted for %s in %s", inst.SOPClassUID, inst.TransferSyntaxUID)
	}
	b, err := r.Blobs.Open(ctx, inst.BlobKey)
	if err != nil {
		return dimse.Status{}, fmt.Errorf("opening blob: %w", err)
	}
	defer b.Close()
	br := bufio.NewReaderSize(b, 64<<10)
	if _, _, err := dicom.ReadFileMeta(br); err != nil {
		return dimse.Status{}, fmt.Errorf("reading blob file meta: %w", err)
	}
	var data io.Reader = br
	if pc.TransferSyntax != inst.TransferSyntaxUID {
		from, _ := dicom.LookupTransferSyntax(inst.TransferSyntaxUID)
		to, _ := dicom.LookupTransferSyntax(pc.TransferSyntax)
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(dicom.Transcode(pw, br, from, to, dicom.DefaultLimits()))
		}()
		defer pr.Close()
		data = pr
	}
	return lane.Store(ctx, pc, inst.SOPClassUID, inst.SOPInstanceUID, data)
}
