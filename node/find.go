package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/query"
)

// StatusUnableToProcess is the C-FIND failure "unable to process" (PS3.4
// C.4.1.1.4: Cxxx).
const StatusUnableToProcess uint16 = 0xC001

// maxFindIdentifier bounds a C-FIND identifier.
const maxFindIdentifier = 1 << 20

// errResultLimit ends a C-FIND at limits.max_find_results.
var errResultLimit = errors.New("result limit reached")

// registerFind registers the C-FIND SCP for the Patient Root and Study Root
// information models on mux.
func (n *Node) registerFind(mux *dimse.ServeMux) {
	mux.HandleClasses(dimse.CFindRQ, []string{query.PatientRootFind, query.StudyRootFind}, dimse.HandlerFunc(n.serveFind))
}

// serveFind is the C-FIND SCP: the identifier is parsed, the query engine
// streams its matches as pending responses (FF00, or FF01 when optional
// keys were ignored) and the final status is:
//
//   - 0000 when every match was sent;
//   - FE00 after a C-CANCEL-RQ (the handler's context is cancelled);
//   - A700 with the comment "result limit N reached" when the query matches
//     more than limits.max_find_results entities (PS3.4 has no truncation
//     warning for C-FIND; like dcm4chee's limit, the SCU learns the answer
//     is incomplete from a failure status after the matches it got);
//   - A900 when the identifier does not fit the model (missing or unknown
//     level, PATIENT in Study Root), C000 when it cannot be parsed, 0124
//     when the caller may not query (query/retrieve policy), C001 when the
//     index fails.
//
// Every query is journaled (kind "query"): calling AE, level, model, the
// keys used (tags, never values), result count and status.
func (n *Node) serveFind(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	start := time.Now()
	class := r.Command.AffectedSOPClassUID
	if class == "" {
		class = r.Context.AbstractSyntax
	}
	model, _ := query.ModelOf(class)
	ev := &journal.Event{Kind: "query"}
	if r.Assoc != nil {
		ev.AE, ev.CalledAE, ev.Addr, ev.Association = r.Assoc.CallingAE, r.Assoc.CalledAE, addrOf(r.Assoc.RemoteAddr), r.Assoc.ID
	}
	results := 0
	var q *query.Query
	finish := func(st dimse.Status, reason string) {
		w.Respond(st, nil)
		ev.Status = fmt.Sprintf("%04X", st.Code)
		level, summary := "", ""
		if q != nil {
			level, summary = string(q.Level), q.Summary()
		}
		ev.Reason = reason
		ev.Data, _ = json.Marshal(map[string]any{
			"model": string(model), "level": level, "keys": summary, "results": results,
			"ms": time.Since(start).Milliseconds(),
		})
		n.Journal.AppendAsync(ev)
		n.Metrics.queried(string(model), level, st.Code, results, time.Since(start))
		log := n.Logger.Debug
		if st.Code != dimse.StatusSuccess && st.Code != dimse.StatusCancel {
			log = n.Logger.Warn
		}
		log("C-FIND", "calling_ae", ev.AE, "model", model, "level", level, "keys", summary, "results", results,
			"status", ev.Status, "reason", reason, "elapsed", time.Since(start))
	}
	if !n.MayQueryRetrieve(ctx, r.Assoc) {
		finish(dimse.Status{Code: dimse.StatusNotAuthorized, Comment: "caller may not query"}, "not authorized")
		return
	}
	if r.Data == nil {
		finish(dimse.Status{Code: dimse.StatusCannotUnderstand, Comment: "C-FIND-RQ without identifier"}, "no identifier")
		return
	}
	ts, ok := dicom.LookupTransferSyntax(r.Context.TransferSyntax)
	if !ok {
		finish(dimse.Status{Code: dimse.StatusCannotUnderstand, Comment: "unknown transfer syntax"}, "unknown transfer syntax "+r.Context.TransferSyntax)
		return
	}
	lim := dicom.DefaultLimits()
	lim.MaxDatasetSize = maxFindIdentifier
	sr, err := dicom.Scan(r.Data, ts, lim, dicom.WantAll)
	if err != nil {
		finish(dimse.Status{Code: dimse.StatusCannotUnderstand, Comment: comment("malformed identifier: " + err.Error())}, "malformed identifier: "+err.Error())
		return
	}
	q, err = query.Parse(model, sr.Dataset)
	if err != nil {
		code := dimse.StatusCannotUnderstand
		if errors.Is(err, query.ErrBadQuery) {
			code = dimse.StatusIdentifierMismatch
		}
		finish(dimse.Status{Code: code, Comment: comment(err.Error())}, err.Error())
		return
	}
	pending := dimse.Status{Code: dimse.StatusPending}
	if q.Unsupported() {
		pending.Code = dimse.StatusPendingWarning
	}
	limit := n.Config.Limits.MaxFindResults
	eng := &query.Engine{Index: n.Index}
	err = eng.Find(ctx, q, func(row *query.Row) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if limit > 0 && results >= limit {
			return errResultLimit
		}
		b, err := query.EncodeRow(q, row, ts, n.Config.AETitle)
		if err != nil {
			return err
		}
		if err := w.Pending(pending, b); err != nil {
			return fmt.Errorf("send pending: %w", err)
		}
		results++
		return nil
	})
	switch {
	case err == nil:
		finish(dimse.Status{Code: dimse.StatusSuccess}, "")
	case ctx.Err() != nil:
		finish(dimse.Status{Code: dimse.StatusCancel}, "cancelled")
	case errors.Is(err, errResultLimit):
		msg := fmt.Sprintf("result limit %d reached", limit)
		finish(dimse.Status{Code: dimse.StatusOutOfResources, Comment: msg}, msg)
	default:
		finish(dimse.Status{Code: StatusUnableToProcess, Comment: comment(err.Error())}, err.Error())
	}
}
