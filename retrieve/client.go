package retrieve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
)

// ClientOptions configures Move and Get.
type ClientOptions struct {
	CallingAE, CalledAE string
	// PatientRoot uses the Patient Root information model (default Study
	// Root); it is required for the PATIENT level.
	PatientRoot  bool
	MaxPDULength uint32
	// Progress is called with the counts of each pending response.
	Progress func(Counts)
	Logger   *slog.Logger
}

// Result is the final response of a C-MOVE or C-GET.
type Result struct {
	Status dimse.Status
	Counts
	// FailedUIDs is the Failed SOP Instance UID List (0008,0058) of the
	// final response, if any.
	FailedUIDs []string
}

// OK reports success or warning (B000: some sub-operations failed).
func (r Result) OK() bool { return r.Status.OK() }

func (o ClientOptions) sopClass(get bool) string {
	switch {
	case o.PatientRoot && get:
		return PatientRootGet
	case o.PatientRoot:
		return PatientRootMove
	case get:
		return StudyRootGet
	}
	return StudyRootMove
}

func countsOf(c dimse.Command) Counts {
	v := func(p *uint16) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	return Counts{Remaining: v(c.Remaining), Completed: v(c.Completed), Failed: v(c.Failed), Warning: v(c.Warning)}
}

func resultOf(c dimse.Command, body []byte, ts string) Result {
	res := Result{Status: c.Status, Counts: countsOf(c)}
	if len(body) > 0 {
		if syntax, ok := dicom.LookupTransferSyntax(ts); ok {
			if sr, err := dicom.Scan(bytes.NewReader(body), syntax, dicom.DefaultLimits(), dicom.WantTags(TagFailedSOPInstanceUIDList)); err == nil {
				res.FailedUIDs, _ = sr.Dataset.Strings(TagFailedSOPInstanceUIDList)
			}
		}
	}
	return res
}

// retrieveRQ sends a C-MOVE-RQ or C-GET-RQ on a and waits for the final
// response. ctx ending sends a C-CANCEL (the final response, usually
// FE00, is still returned).
func retrieveRQ(ctx context.Context, a *dimse.Association, opts ClientOptions, field dimse.CommandField, dest string, keys Keys) (Result, error) {
	class := opts.sopClass(field == dimse.CGetRQ)
	if err := keys.Check(class); err != nil {
		return Result{}, err
	}
	pc, ok := a.FindContext(class, "")
	if !ok {
		return Result{}, fmt.Errorf("retrieve: %s not accepted by %s: %w", class, opts.CalledAE, dimse.ErrNoContext)
	}
	id, err := keys.Encode(pc.TransferSyntax)
	if err != nil {
		return Result{}, err
	}
	cmd := dimse.Command{Field: field, AffectedSOPClassUID: class, Priority: dimse.PriorityMedium, MoveDestination: dest}
	final, body, err := a.Do(ctx, pc, cmd, id, func(c dimse.Command, _ []byte) bool {
		if opts.Progress != nil {
			opts.Progress(countsOf(c))
		}
		return true
	})
	if err != nil {
		return Result{}, fmt.Errorf("retrieve: %s: %w", field, err)
	}
	res := resultOf(final, body, pc.TransferSyntax)
	if !res.OK() && res.Status.Category() != dimse.CategoryCancel {
		return res, fmt.Errorf("retrieve: %s: %w", field, res.Status)
	}
	return res, nil
}

func release(a *dimse.Association) {
	if err := a.Release(context.Background()); err != nil {
		a.Abort()
	}
}

// Move asks the SCP at addr to C-MOVE what keys designate to the AE title
// dest (PS3.4 C.4.2). A final failure status is returned in Result and as
// an error wrapping the dimse.Status; B000 and FE00 (ctx cancelled) are
// not errors.
func Move(ctx context.Context, addr string, opts ClientOptions, dest string, keys Keys) (Result, error) {
	class := opts.sopClass(false)
	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{
		CallingAE: opts.CallingAE, CalledAE: opts.CalledAE, MaxPDULength: opts.MaxPDULength, Logger: opts.Logger,
		Contexts: []dimse.ProposedContext{{AbstractSyntax: class, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian}}},
	})
	if err != nil {
		return Result{}, fmt.Errorf("retrieve: associate with %s at %s: %w", opts.CalledAE, addr, err)
	}
	defer release(a)
	return retrieveRQ(ctx, a, opts, dimse.CMoveRQ, dest, keys)
}

// Received is one instance a C-GET brings back: its identity, the transfer
// syntax of its data set, and the data set itself (streamed; valid until
// the Sink returns).
type Received struct {
	SOPClassUID, SOPInstanceUID, TransferSyntaxUID string
	Data                                           io.Reader
}

// Sink stores an instance received by Get; an error is answered to the
// peer as a C-STORE failure (A700 out of resources, or the dimse.Status
// it wraps).
type Sink func(ctx context.Context, in *Received) error

// GetOptions adds to ClientOptions what a C-GET needs.
type GetOptions struct {
	ClientOptions
	// StorageClasses are the SOP classes we accept sub-operations for
	// (SCP role); default CommonStorageClasses. At most 31 fit in one
	// association with the default syntaxes.
	StorageClasses []string
	// TransferSyntaxes are proposed for each storage class, one context
	// each so that any of them can come as stored; default
	// DefaultGetSyntaxes.
	TransferSyntaxes [][]string
}

// DefaultGetSyntaxes are the transfer syntax groups proposed by Get per
// storage class: uncompressed, then the common lossless and lossy JPEG
// flavours as separate contexts (an acceptor picks one syntax per context).
var DefaultGetSyntaxes = [][]string{
	{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian},
	{dicom.JPEGLosslessSV1},
	{dicom.JPEGBaseline8Bit},
	{dicom.JPEG2000Lossless},
}

// CommonStorageClasses are the storage SOP classes Get accepts by default.
var CommonStorageClasses = []string{
	"1.2.840.10008.5.1.4.1.1.1",      // CR
	"1.2.840.10008.5.1.4.1.1.1.1",    // DX for presentation
	"1.2.840.10008.5.1.4.1.1.1.1.1",  // DX for processing
	"1.2.840.10008.5.1.4.1.1.1.2",    // MG for presentation
	"1.2.840.10008.5.1.4.1.1.1.2.1",  // MG for processing
	"1.2.840.10008.5.1.4.1.1.2",      // CT
	"1.2.840.10008.5.1.4.1.1.2.1",    // Enhanced CT
	"1.2.840.10008.5.1.4.1.1.3.1",    // US multi-frame
	"1.2.840.10008.5.1.4.1.1.4",      // MR
	"1.2.840.10008.5.1.4.1.1.4.1",    // Enhanced MR
	"1.2.840.10008.5.1.4.1.1.6.1",    // US
	"1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture
	"1.2.840.10008.5.1.4.1.1.7.4",    // Multi-frame true color SC
	"1.2.840.10008.5.1.4.1.1.11.1",   // Grayscale softcopy presentation state
	"1.2.840.10008.5.1.4.1.1.12.1",   // XA
	"1.2.840.10008.5.1.4.1.1.12.2",   // RF
	"1.2.840.10008.5.1.4.1.1.13.1.3", // Breast tomosynthesis
	"1.2.840.10008.5.1.4.1.1.20",     // NM
	"1.2.840.10008.5.1.4.1.1.66.4",   // Segmentation
	"1.2.840.10008.5.1.4.1.1.77.1.4", // VL photographic
	"1.2.840.10008.5.1.4.1.1.88.11",  // Basic text SR
	"1.2.840.10008.5.1.4.1.1.88.22",  // Enhanced SR
	"1.2.840.10008.5.1.4.1.1.88.33",  // Comprehensive SR
	"1.2.840.10008.5.1.4.1.1.88.59",  // Key object selection
	"1.2.840.10008.5.1.4.1.1.104.1",  // Encapsulated PDF
	"1.2.840.10008.5.1.4.1.1.128",    // PET
	"1.2.840.10008.5.1.4.1.1.130",    // Enhanced PET
	"1.2.840.10008.5.1.4.1.1.481.1",  // RT image
	"1.2.840.10008.5.1.4.1.1.481.2",  // RT dose
	"1.2.840.10008.5.1.4.1.1.481.3",  // RT structure set
	"1.2.840.10008.5.1.4.1.1.481.5",  // RT plan
}

// Get performs a C-GET (PS3.4 C.4.3) at addr: the instances come back on
// the same association as C-STORE sub-operations and are handed to sink.
// Statuses are as for Move.
func Get(ctx context.Context, addr string, opts GetOptions, keys Keys, sink Sink) (Result, error) {
	class := opts.sopClass(true)
	classes := opts.StorageClasses
	if len(classes) == 0 {
		classes = CommonStorageClasses
	}
	groups := opts.TransferSyntaxes
	if len(groups) == 0 {
		groups = DefaultGetSyntaxes
	}
	pcs := []dimse.ProposedContext{{AbstractSyntax: class, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian}}}
	no, yes := false, true
	for _, c := range classes {
		for _, g := range groups {
			pcs = append(pcs, dimse.ProposedContext{AbstractSyntax: c, TransferSyntaxes: g, SCURole: &no, SCPRole: &yes})
		}
	}
	if len(pcs) > maxContexts {
		return Result{}, fmt.Errorf("retrieve: %d presentation contexts needed, %d allowed: fewer storage classes or syntaxes", len(pcs), maxContexts)
	}
	handler := dimse.HandlerFunc(func(hctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		if r.Command.Field != dimse.CStoreRQ {
			w.Respond(dimse.Status{Code: dimse.StatusUnrecognizedOperation}, nil)
			return
		}
		err := sink(hctx, &Received{SOPClassUID: r.Command.AffectedSOPClassUID, SOPInstanceUID: r.Command.AffectedSOPInstanceUID,
			TransferSyntaxUID: r.Context.TransferSyntax, Data: r.Data})
		if err != nil {
			st := dimse.Status{Code: dimse.StatusOutOfResources, Comment: comment(err.Error())}
			var ds dimse.Status
			if errors.As(err, &ds) {
				st = ds
			}
			w.Respond(st, nil)
			return
		}
		w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
	})
	a, err := dimse.Dial(ctx, addr, dimse.DialOptions{
		CallingAE: opts.CallingAE, CalledAE: opts.CalledAE, MaxPDULength: opts.MaxPDULength, Logger: opts.Logger,
		Contexts: pcs, Handler: handler,
	})
	if err != nil {
		return Result{}, fmt.Errorf("retrieve: associate with %s at %s: %w", opts.CalledAE, addr, err)
	}
	defer release(a)
	if n := countSCP(a.Accepted()); n == 0 {
		return Result{}, fmt.Errorf("retrieve: %s accepted no storage context with us as SCP", opts.CalledAE)
	}
	return retrieveRQ(ctx, a, opts.ClientOptions, dimse.CGetRQ, "", keys)
}

func countSCP(pcs []dimse.PresentationContext) int {
	n := 0
	for _, pc := range pcs {
		if pc.SCPRole && strings.HasPrefix(pc.AbstractSyntax, "1.2.840.10008.5.1.4.1.1.") {
			n++
		}
	}
	return n
}
