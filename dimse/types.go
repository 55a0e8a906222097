package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// PresentationContext is an accepted presentation context (PS3.8 Section
// 9.3.3.2): its ID, abstract syntax and the one transfer syntax agreed.
// SCURole and SCPRole are the association-requestor's roles for the
// abstract syntax (PS3.7 Annex D.3.3.4): by default SCU only.
type PresentationContext struct {
	ID             uint8
	AbstractSyntax string
	TransferSyntax string
	SCURole        bool
	SCPRole        bool
}

// ProposedContext is a presentation context proposed in an A-ASSOCIATE-RQ,
// with the roles of a matching SCP/SCU role selection item, nil when none
// was proposed.
type ProposedContext struct {
	ID               uint8
	AbstractSyntax   string
	TransferSyntaxes []string
	SCURole, SCPRole *bool
}

// AssociateRequest is the A-ASSOCIATE indication as seen by Server.Admit
// (PS3.8 Section 7.1.1): the requestor's proposal before negotiation.
type AssociateRequest struct {
	CallingAE, CalledAE                               string
	RemoteAddr, LocalAddr                             net.Addr
	ImplementationClassUID, ImplementationVersionName string
	MaxPDULength                                      uint32
	Contexts                                          []ProposedContext
	UserIdentity                                      *UserIdentity
	MaxOpsInvoked, MaxOpsPerformed                    uint16
}

// AssociationInfo describes an established association. It is shared by
// all requests of the association and must not be modified.
type AssociationInfo struct {
	ID                                                string // unique per association: "a-<counter>-<random>"
	CallingAE, CalledAE                               string
	RemoteAddr, LocalAddr                             net.Addr
	ImplementationClassUID, ImplementationVersionName string // the peer's
	PeerMaxPDULength                                  uint32
	UserIdentity                                      *UserIdentity
	Contexts                                          []PresentationContext // accepted
	// ExtendedNegotiation is the SOP Class Extended Negotiation agreed
	// (56H sub-items of the A-ASSOCIATE-AC, PS3.7 D.3.3.5): the acceptor's
	// service-class-application-information by SOP class; nil when none.
	ExtendedNegotiation map[string][]byte
}

// Request is one DIMSE request received by a Server (PS3.7 Section 9.1).
type Request struct {
	Command Command
	Context PresentationContext
	Assoc   *AssociationInfo
	// Data streams the request's data set, in Context.TransferSyntax, as
	// its PDVs arrive; nil when the request has none. It is valid until
	// ServeDIMSE returns; the engine drains what the handler leaves.
	Data io.Reader
}

// ResponseWriter answers a Request. Its methods must be called from the
// handler's goroutine, before ServeDIMSE returns.
type ResponseWriter interface {
	// Respond sends the one final response with status st. data, if not
	// empty, is a data set already encoded in the context's transfer
	// syntax. Respond first drains what is left of Request.Data.
	Respond(st Status, data []byte) error
	// Pending sends a pending response (FF00 or FF01) of a C-FIND, C-MOVE
	// or C-GET; it may be called many times before Respond.
	Pending(st Status, data []byte) error
}

// SubOperator is implemented by the ResponseWriter of a Server: a C-GET
// handler stores its matches on the same association as C-STORE
// sub-operations (PS3.4 Annex C.4.3). ts "" uses any context accepted for
// sopClass with the requestor in the SCP role.
type SubOperator interface {
	Store(ctx context.Context, sopClass, sopInstance string, data io.Reader, ts string) (Status, error)
}

// SubOperationCounter is implemented by the ResponseWriter of a Server:
// the counts set are sent with the following Pending and Respond calls as
// Number of Remaining/Completed/Failed/Warning Sub-operations (0000,1020-
// 1023) of C-MOVE and C-GET responses.
type SubOperationCounter interface {
	SetSubOperationCounts(remaining, completed, failed, warning uint16)
}

// Handler serves DIMSE requests (the intervention of PS3.7 Section 9.1).
// ctx is cancelled when a C-CANCEL-RQ names the request's message ID, or
// when the association ends. A handler that returns without calling
// Respond gets 0110 (processing failure) sent for it; a panic is recovered
// and answered the same way.
type Handler interface {
	ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, w ResponseWriter, r *Request)

// ServeDIMSE calls f(ctx, w, r).
func (f HandlerFunc) ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request) { f(ctx, w, r) }

// EchoHandler answers a C-ECHO-RQ with success (PS3.4 Annex A).
var EchoHandler Handler = HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
	w.Respond(Status{Code: StatusSuccess}, nil)
})

// EventKind classifies Events.
type EventKind int

// Event kinds.
const (
	AssociationAccepted EventKind = iota + 1
	AssociationRejected
	AssociationReleased
	AssociationAborted
	ProtocolError
)

func (k EventKind) String() string {
	switch k {
	case AssociationAccepted:
		return "AssociationAccepted"
	case AssociationRejected:
		return "AssociationRejected"
	case AssociationReleased:
		return "AssociationReleased"
	case AssociationAborted:
		return "AssociationAborted"
	case ProtocolError:
		return "ProtocolError"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a notification about an association (the NotificationEvent of
// pynetdicom): OnEvent observers see it, cannot steer, and their panics
// are contained.
type Event struct {
	Kind EventKind
	Time time.Time
	// Assoc may be partial for rejections and early protocol errors:
	// CallingAE, CalledAE, RemoteAddr, LocalAddr.
	Assoc     *AssociationInfo
	Rejection *Rejection
	// AbortSource and AbortReason are those of the A-ABORT received or
	// sent (AssociationAborted, ProtocolError).
	AbortSource, AbortReason uint8
	// ByPeer is true when the peer aborted or released.
	ByPeer bool
	Err    error
	Detail string
}

// Engine errors.
var (
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("dimse: server closed")
	// ErrAssociationEnded: the association was released, aborted or its
	// connection lost.
	ErrAssociationEnded = errors.New("dimse: association ended")
	// ErrAlreadyResponded: Respond or Pending after the final response.
	ErrAlreadyResponded = errors.New("dimse: final response already sent")
	// ErrNoContext: no accepted presentation context fits the request.
	ErrNoContext = errors.New("dimse: no accepted presentation context")
	// ErrARTIMExpired: the ARTIM timer expired (PS3.8 Section 9.1.5).
	ErrARTIMExpired = errors.New("dimse: ARTIM timer expired")
	// ErrIdleTimeout: an established association stayed idle too long.
	ErrIdleTimeout = errors.New("dimse: association idle timeout")
)

// AbortError is returned when the association was aborted, by the peer
// (A-ABORT PDU) or locally.
type AbortError struct {
	Source AbortSource
	Reason AbortReason
	ByPeer bool
}

func (e *AbortError) Error() string {
	who := "locally"
	if e.ByPeer {
		who = "by peer"
	}
	return fmt.Sprintf("dimse: association aborted %s: source %s, reason %s", who, e.Source, e.Reason)
}

// Unwrap makes errors.Is(err, ErrAssociationEnded) true.
func (e *AbortError) Unwrap() error { return ErrAssociationEnded }
