package retrieve

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/storage"
)

// maxContexts is the PS3.8 limit: presentation context IDs are odd 1..255.
const maxContexts = 128

// ProposeContexts returns the presentation contexts to propose to a move
// destination for instances: per SOP class, one context per stored
// transfer syntax (so that the acceptor cannot pick another one and the
// data goes byte for byte), plus one offering explicit and implicit
// little endian when some of the class is uncompressed (the transcoding
// fallback). Beyond 128 contexts the rest is dropped: those instances
// fail with "no presentation context".
func ProposeContexts(insts []*storage.Instance) []dimse.ProposedContext {
	type key struct{ class, ts string }
	seen := map[key]bool{}
	var keys []key
	for _, in := range insts {
		ks := []key{{in.SOPClassUID, in.TransferSyntaxUID}}
		if Uncompressed(in.TransferSyntaxUID) {
			ks = append(ks, key{in.SOPClassUID, "native"})
		}
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].class != keys[j].class {
			return keys[i].class < keys[j].class
		}
		return keys[i].ts < keys[j].ts
	})
	var pcs []dimse.ProposedContext
	for _, k := range keys {
		if len(pcs) == maxContexts {
			break
		}
		pc := dimse.ProposedContext{AbstractSyntax: k.class, TransferSyntaxes: []string{k.ts}}
		if k.ts == "native" {
			pc.TransferSyntaxes = []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian}
		}
		pcs = append(pcs, pc)
	}
	return pcs
}

// AssociationLane is a Lane over an association we requested (C-MOVE
// sub-operations).
type AssociationLane struct {
	A *dimse.Association
	// Originator identifies the C-MOVE these stores serve (Move
	// Originator AE Title and Message ID); zero for plain stores.
	Originator dimse.StoreOptions
}

// Contexts implements Lane.
func (l AssociationLane) Contexts() []dimse.PresentationContext { return l.A.Accepted() }

// Store implements Lane.
func (l AssociationLane) Store(ctx context.Context, pc dimse.PresentationContext, sopClass, sopInstance string, data io.Reader) (dimse.Status, error) {
	return l.A.StoreWith(ctx, pc, sopClass, sopInstance, data, l.Originator)
}

// Close implements Lane.
func (l AssociationLane) Close(ctx context.Context) error {
	if err := l.A.Release(ctx); err != nil {
		l.A.Abort()
		return err
	}
	return nil
}

// DialLanes returns a Run.Lanes that opens associations to a move
// destination at addr proposing the contexts the instances need; every
// C-STORE carries originator (the C-MOVE's requestor AE and message ID).
func DialLanes(addr string, opts dimse.DialOptions, insts []*storage.Instance, originator dimse.StoreOptions) func(ctx context.Context, i int) (Lane, error) {
	opts.Contexts = ProposeContexts(insts)
	return func(ctx context.Context, i int) (Lane, error) {
		a, err := dimse.Dial(ctx, addr, opts)
		if err != nil {
			return nil, fmt.Errorf("associating with %s at %s: %w", opts.CalledAE, addr, err)
		}
		return AssociationLane{A: a, Originator: originator}, nil
	}
}

// SubOperatorLane is the Lane of a C-GET: the requestor's association, in
// the contexts where it accepted the SCP role.
type SubOperatorLane struct {
	Op       dimse.SubOperator
	Accepted []dimse.PresentationContext
}

// Contexts implements Lane: the storage contexts with the requestor as SCP.
func (l SubOperatorLane) Contexts() []dimse.PresentationContext {
	var out []dimse.PresentationContext
	for _, pc := range l.Accepted {
		if pc.SCPRole {
			out = append(out, pc)
		}
	}
	return out
}

// Store implements Lane.
func (l SubOperatorLane) Store(ctx context.Context, pc dimse.PresentationContext, sopClass, sopInstance string, data io.Reader) (dimse.Status, error) {
	return l.Op.Store(ctx, sopClass, sopInstance, data, pc.TransferSyntax)
}

// Close implements Lane: the association is the requestor's.
func (SubOperatorLane) Close(context.Context) error { return nil }
