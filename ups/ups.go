// Package ups serves the reading worklist as the DICOMweb Worklist Service
// (UPS-RS, PS3.18 chapter 11, with the UPS semantics of PS3.4 annex CC), so
// that reading workstations of other vendors can search workitems, take
// one (claim: SCHEDULED → IN PROGRESS with their Transaction UID), finish
// or cancel it, request its cancellation, and subscribe to its events over
// a WebSocket event channel.
//
// The package knows nothing of how workitems are made: a Backend (the
// node's adapter over package worklist) lists them and performs the
// transitions; the package owns the DICOM JSON form, the search matching,
// the Transaction UIDs, the subscriptions and the event channels.
package ups

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/big"
	"time"
)

// UIDs of PS3.4 annex CC.
const (
	// SOPClassPush is the UPS Push SOP Class (the workitem's SOP Class).
	SOPClassPush = "1.2.840.10008.5.1.4.34.6.1"
	// GlobalSubscription and FilteredGlobalSubscription are the well-known
	// SOP Instance UIDs of global subscriptions.
	GlobalSubscription         = "1.2.840.10008.5.1.4.34.5"
	FilteredGlobalSubscription = "1.2.840.10008.5.1.4.34.5.1"
)

// State is a Procedure Step State (0074,1000).
type State string

// Procedure step states.
const (
	Scheduled  State = "SCHEDULED"
	InProgress State = "IN PROGRESS"
	Canceled   State = "CANCELED"
	Completed  State = "COMPLETED"
)

// Event Type IDs (0000,1002) of UPS event reports (PS3.4 CC.2.4).
const (
	EventStateReport     = 1
	EventCancelRequested = 2
	EventAssigned        = 5
)

// Workitem is what a Backend says of one worklist item.
type Workitem struct {
	UID      string // SOP Instance UID of the workitem
	State    State
	Priority string // HIGH, MEDIUM or LOW
	// Label is the Procedure Step Label, WorklistLabel the Worklist Label.
	Label, WorklistLabel                   string
	PatientName, PatientID, Sex, BirthDate string
	StudyUID, AccessionNumber              string
	// RetrieveURL is the WADO-RS URL of the study (Input Information).
	RetrieveURL, RetrieveAE string
	// Performer is the assigned reader (Scheduled Human Performers), "" for
	// a pool.
	Performer      string
	ScheduledStart time.Time // the study was ready
	ExpectedEnd    time.Time // the report is due
	Modalities     []string
	Description    string
}

// Errors a Backend returns.
var (
	ErrNotFound = errors.New("ups: no such workitem")
	// ErrState: the transition does not apply (the item's state, a
	// report not signed yet, another reader's claim).
	ErrState = errors.New("ups: not allowed in this state")
	// ErrForbidden: the user may not do this.
	ErrForbidden = errors.New("ups: forbidden")
)

// Backend is the worklist behind the service.
type Backend interface {
	// List returns every workitem.
	List(ctx context.Context) ([]Workitem, error)
	// Get returns one workitem (ErrNotFound).
	Get(ctx context.Context, uid string) (Workitem, error)
	// Claim takes the workitem for user (SCHEDULED → IN PROGRESS).
	Claim(ctx context.Context, uid, user string) (Workitem, error)
	// Complete ends the workitem user performs (IN PROGRESS → COMPLETED):
	// refused (ErrState) while its report is not signed.
	Complete(ctx context.Context, uid, user string) (Workitem, error)
	// Cancel cancels the workitem (IN PROGRESS → CANCELED by its
	// performer, or any open one by an administrator).
	Cancel(ctx context.Context, uid, user, reason string, admin bool) (Workitem, error)
}

// UIDFor derives a workitem UID from a backend's item id (2.25 form).
func UIDFor(itemID string) string {
	h := sha256.Sum256([]byte("relais/ups\x00" + itemID))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(h[:16]).String()
}
