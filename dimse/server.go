package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Implementation identification sent when none is configured (PS3.7
// Annex D.3.3.2).
const (
	DefaultImplementationClassUID    = "2.25.180245347392871612378610287458123654012"
	DefaultImplementationVersionName = "RELAIS_DIMSE_1"
)

// Server defaults.
const (
	DefaultMaxPDULength = 1 << 20
	DefaultARTIMTimeout = 30 * time.Second
	DefaultIdleTimeout  = 5 * time.Minute
)

// Server accepts associations (as association-acceptor, PS3.8 Section 7.1)
// and serves their DIMSE requests with Handler. A zero Server is valid: it
// accepts every association and any abstract syntax, and with a nil
// Handler answers every request with 0x0122 or 0x0211. A Server must not
// be copied after first use; its fields must not change while it serves.
type Server struct {
	AETitle string  // our AE title
	Handler Handler // usually a *ServeMux

	// Admit decides whether an association may be established, before
	// negotiation; nil accepts all. Rejecting a called AE title other than
	// AETitle is Admit's job, not the Server's.
	Admit func(ctx context.Context, rq *AssociateRequest) *Rejection

	// AbstractSyntaxes reports the SOP classes accepted in negotiation;
	// nil derives it from Handler when it is a *ServeMux, else accepts any.
	AbstractSyntaxes func(uid string) bool

	// TransferSyntaxes is the preference order used to pick one transfer
	// syntax per presentation context; nil means DefaultTransferSyntaxes.
	TransferSyntaxes []string

	// MaxPDULength is the maximum P-DATA-TF PDU length we advertise, and
	// accept; default 1 MiB. What we send is bounded by the peer's.
	MaxPDULength uint32

	// ARTIMTimeout bounds the wait for the A-ASSOCIATE-RQ after a
	// connection opens and for the peer to close after a release or
	// abort (PS3.8 Section 9.1.5); default 30 s. IdleTimeout aborts an
	// established association with nothing in progress; default 5 min;
	// negative disables it.
	ARTIMTimeout, IdleTimeout time.Duration

	// MaxAssociations limits concurrent associations (0 = no limit);
	// beyond it: A-ASSOCIATE-RJ rejected-transient, service-provider
	// (presentation), local-limit-exceeded.
	MaxAssociations int

	ImplementationClassUID, ImplementationVersionName string

	// ExtendedNegotiation answers the SOP Class Extended Negotiation
	// sub-items (56H, PS3.7 D.3.3.5) of an A-ASSOCIATE-RQ: it is called
	// once per SOP class that the requestor asked about and that was
	// accepted in at least one presentation context, with the requested
	// service-class-application-information; a non-empty result is sent
	// back in the A-ASSOCIATE-AC for that SOP class (and recorded in
	// AssociationInfo.ExtendedNegotiation), nil sends none. A nil
	// ExtendedNegotiation answers no sub-item, which the requestor must
	// read as "none of the extended features" (PS3.7 D.3.3.5). Its panics
	// are recovered (no answer).
	ExtendedNegotiation func(sopClass string, requested []byte) []byte

	// OnEvent is notified of association events; its panics are recovered
	// and never reach the peer. It is called synchronously.
	OnEvent func(Event)
	Logger  *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*assoc]struct{}
	active    int
	closing   bool
}

// answerExtendedNegotiation puts the answers of s.ExtendedNegotiation to
// rq's SOP Class Extended Negotiation sub-items into ac and info: one
// answer per SOP class, only for SOP classes accepted in info.Contexts.
func (s *Server) answerExtendedNegotiation(rq *AAssociateRQ, ac *AAssociateAC, info *AssociationInfo) {
	if s.ExtendedNegotiation == nil || len(rq.UserInfo.ExtendedNegotiation) == 0 {
		return
	}
	accepted := make(map[string]bool, len(info.Contexts))
	for _, pc := range info.Contexts {
		accepted[pc.AbstractSyntax] = true
	}
	for _, e := range rq.UserInfo.ExtendedNegotiation {
		if !accepted[e.SOPClassUID] {
			continue
		}
		if _, done := info.ExtendedNegotiation[e.SOPClassUID]; done {
			continue
		}
		answer := s.callExtendedNegotiation(e.SOPClassUID, e.Info)
		if len(answer) == 0 {
			continue
		}
		if info.ExtendedNegotiation == nil {
			info.ExtendedNegotiation = make(map[string][]byte)
		}
		info.ExtendedNegotiation[e.SOPClassUID] = answer
		ac.UserInfo.ExtendedNegotiation = append(ac.UserInfo.ExtendedNegotiation, SOPClassExtendedNegotiation{SOPClassUID: e.SOPClassUID, Info: answer})
	}
}

func (s *Server) callExtendedNegotiation(class string, requested []byte) (answer []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.logger().Error("dimse: ExtendedNegotiation panicked", "sop_class", class, "panic", r)
			answer = nil
		}
	}()
	return s.ExtendedNegotiation(class, append([]byte(nil), requested...))
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func durOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	if d < 0 {
		return 0
	}
	return d
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dimse: listen: %w", err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l, each served in its own goroutine, until
// l fails or Shutdown is called; it then returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*assoc]struct{})
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) ||
				errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of file descriptors or a connection gone before
				// accept: back off and keep serving, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("dimse: accept: %w", err)
		}
		backoff = 0
		a := s.newConn(nc)
		s.mu.Lock()
		s.conns[a] = struct{}{}
		s.active++
		over := s.MaxAssociations > 0 && s.active > s.MaxAssociations
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, a)
				s.active--
				s.mu.Unlock()
			}()
			s.serveConn(a, over)
		}()
	}
}

// Shutdown stops accepting, then waits for the associations in progress to
// end; when ctx ends first, it aborts them (A-ABORT) and returns ctx.Err().
// Connections still waiting for their A-ASSOCIATE-RQ are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for a := range s.conns {
		if a.state() == Sta2 {
			a.nc.Close()
		}
	}
	s.mu.Unlock()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			s.mu.Lock()
			var all []*assoc
			for a := range s.conns {
				all = append(all, a)
			}
			s.mu.Unlock()
			for _, a := range all {
				a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, "server shutdown", ErrServerClosed)
				a.nc.Close()
			}
			return ctx.Err()
		}
	}
}

func (s *Server) newConn(nc net.Conn) *assoc {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true) // Go's default; stated, since DIMSE is latency bound
	}
	a := newAssoc(nc, s.logger(), false)
	a.artim = durOr(s.ARTIMTimeout, DefaultARTIMTimeout)
	a.idle = durOr(s.IdleTimeout, DefaultIdleTimeout)
	a.handler = s.Handler
	a.onEvent = s.OnEvent
	a.step(Evt5) // AE-5: transport connection indication, start ARTIM → Sta2
	return a
}

func (s *Server) maxPDU() uint32 {
	if s.MaxPDULength == 0 {
		return DefaultMaxPDULength
	}
	if s.MaxPDULength < 1024 {
		return 1024
	}
	return s.MaxPDULength
}

// serveConn runs one connection from Sta2 to its end.
func (s *Server) serveConn(a *assoc, overLimit bool) {
	nc := a.nc
	defer nc.Close()
	partial := &AssociationInfo{RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr()}
	a.info = partial
	a.nc.SetReadDeadline(time.Now().Add(a.artim))
	p, err := ReadPDU(a.br, MaxAssociatePDULength)
	if err != nil {
		s.beforeAssociation(a, err)
		return
	}
	rq, ok := p.(*AAssociateRQ)
	if !ok {
		act, _, _ := a.step(eventForPDU(p.Type()))
		err := fmt.Errorf("dimse: %s before A-ASSOCIATE-RQ", p.Type())
		reason := AbortUnexpectedPDU
		if act == AA2 { // A-ABORT in Sta2: close
			a.emit(Event{Kind: ProtocolError, Err: err, Detail: err.Error()})
			return
		}
		a.emit(Event{Kind: ProtocolError, Err: err, AbortSource: uint8(AbortServiceProvider), AbortReason: uint8(reason), Detail: err.Error()})
		a.writeAbort(AbortServiceProvider, reason)
		a.drainUntilClose()
		return
	}
	partial.CallingAE, partial.CalledAE = rq.CallingAE, rq.CalledAE

	// AE-6: is the request acceptable to the service provider?
	var rj *Rejection
	switch {
	case rq.ProtocolVersion&1 == 0:
		rj = &Rejection{RejectedPermanent, SourceServiceProviderACSE, ReasonProtocolVersionNotSupported}
	case rq.ApplicationContext != DICOMApplicationContext:
		rj = &Rejection{RejectedPermanent, SourceServiceUser, ReasonApplicationContextNotSupported}
	}
	a.fsmMu.Lock()
	a.fsm.Step(Evt6, rj == nil)
	a.fsmMu.Unlock()
	if rj != nil {
		s.reject(a, rj, "not acceptable to the service provider")
		return
	}

	// Sta3: the local user (Admit, negotiation) answers.
	req := &AssociateRequest{
		CallingAE: rq.CallingAE, CalledAE: rq.CalledAE,
		RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr(),
		ImplementationClassUID:    rq.UserInfo.ImplementationClassUID,
		ImplementationVersionName: rq.UserInfo.ImplementationVersionName,
		MaxPDULength:              rq.UserInfo.MaxLength,
		Contexts:                  proposedFromPDU(rq),
		UserIdentity:              rq.UserInfo.UserIdentity,
	}
	if w := rq.UserInfo.AsyncOps; w != nil {
		req.MaxOpsInvoked, req.MaxOpsPerformed = w.MaxOpsInvoked, w.MaxOpsPerformed
	}
	if overLimit {
		s.reject(a, &Rejection{RejectedTransient, SourceServiceProviderPresentation, ReasonLocalLimitExceeded},
			fmt.Sprintf("more than %d associations", s.MaxAssociations))
		return
	}
	if s.Admit != nil {
		if rj := s.admit(a, req); rj != nil {
			s.reject(a, rj, "refused by Admit")
			return
		}
	}

	supported := s.AbstractSyntaxes
	if supported == nil {
		if m, ok := s.Handler.(*ServeMux); ok {
			supported = m.Supports
		}
	}
	prefs := s.TransferSyntaxes
	if len(prefs) == 0 {
		prefs = DefaultTransferSyntaxes
	}
	results := Negotiate(req.Contexts, supported, prefs)
	ac := &AAssociateAC{
		ProtocolVersion:    1,
		CalledAE:           rq.CalledAE,
		CallingAE:          rq.CallingAE,
		ApplicationContext: DICOMApplicationContext,
	}
	ac.UserInfo.MaxLength = s.maxPDU()
	ac.UserInfo.ImplementationClassUID = s.ImplementationClassUID
	if ac.UserInfo.ImplementationClassUID == "" {
		ac.UserInfo.ImplementationClassUID = DefaultImplementationClassUID
		ac.UserInfo.ImplementationVersionName = DefaultImplementationVersionName
	}
	if s.ImplementationVersionName != "" {
		ac.UserInfo.ImplementationVersionName = s.ImplementationVersionName
	}
	if rq.UserInfo.AsyncOps != nil {
		// We perform and invoke one operation at a time (PS3.7 D.3.3.3).
		ac.UserInfo.AsyncOps = &AsyncOpsWindow{1, 1}
	}
	info := &AssociationInfo{
		ID:        newAssociationID(),
		CallingAE: rq.CallingAE, CalledAE: rq.CalledAE,
		RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr(),
		ImplementationClassUID:    rq.UserInfo.ImplementationClassUID,
		ImplementationVersionName: rq.UserInfo.ImplementationVersionName,
		PeerMaxPDULength:          rq.UserInfo.MaxLength,
		UserIdentity:              rq.UserInfo.UserIdentity,
	}
	roleAnswered := make(map[string]bool)
	proposedRole := make(map[string]bool)
	for _, r := range rq.UserInfo.Roles {
		proposedRole[r.SOPClassUID] = true
	}
	for i, r := range results {
		item := PresentationContextACItem{ID: r.ID, Result: r.Result, TransferSyntax: r.TransferSyntax}
		if r.Result != PCAcceptance {
			item.TransferSyntax = ImplicitVRLittleEndian
			if ts := rq.Contexts[i].TransferSyntaxes; len(ts) > 0 && ts[0] != "" {
				item.TransferSyntax = ts[0]
			}
		} else {
			info.Contexts = append(info.Contexts, PresentationContext{ID: r.ID, AbstractSyntax: r.AbstractSyntax,
				TransferSyntax: r.TransferSyntax, SCURole: r.SCURole, SCPRole: r.SCPRole})
			if proposedRole[r.AbstractSyntax] && !roleAnswered[r.AbstractSyntax] {
				roleAnswered[r.AbstractSyntax] = true
				ac.UserInfo.Roles = append(ac.UserInfo.Roles, RoleSelection{SOPClassUID: r.AbstractSyntax, SCU: r.SCURole, SCP: r.SCPRole})
			}
		}
		ac.Contexts = append(ac.Contexts, item)
	}
	s.answerExtendedNegotiation(rq, ac, info)
	if id := rq.UserInfo.UserIdentity; id != nil && id.PositiveResponseRequested {
		// Accepted by Admit; username types carry an empty server response.
		ac.UserInfo.UserIdentityAC = &UserIdentityAC{}
	}
	a.info = info
	a.setAccepted(info.Contexts, s.maxPDU(), rq.UserInfo.MaxLength)

	b, err := ac.MarshalBinary()
	if err == nil {
		err = a.writeRaw(b)
	}
	a.step(Evt7) // AE-7 → Sta6
	if err != nil {
		a.end(&Event{Kind: ProtocolError, Err: err, Detail: "writing A-ASSOCIATE-AC"}, err)
		return
	}
	a.log.Info("dimse: association accepted", "assoc", info.ID, "calling", info.CallingAE, "called", info.CalledAE,
		"remote", info.RemoteAddr, "contexts", len(info.Contexts), "peer_max_pdu", info.PeerMaxPDULength)
	a.emit(Event{Kind: AssociationAccepted, Detail: fmt.Sprintf("%d of %d presentation contexts accepted", len(info.Contexts), len(results))})
	a.start()
	<-a.readerDone
	<-a.runnerDone
}

func (s *Server) admit(a *assoc, req *AssociateRequest) (rj *Rejection) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("dimse: Admit panicked", "panic", r)
			rj = &Rejection{RejectedTransient, SourceServiceUser, ReasonNoReasonGiven}
		}
	}()
	return s.Admit(a.ctx, req)
}

// reject sends an A-ASSOCIATE-RJ (AE-8, or AE-6 unacceptable) and waits in
// Sta13 for the peer to close.
func (s *Server) reject(a *assoc, rj *Rejection, detail string) {
	if a.state() == Sta3 {
		a.step(Evt8) // AE-8 → Sta13
	}
	a.log.Info("dimse: association rejected", "calling", a.info.CallingAE, "called", a.info.CalledAE,
		"remote", a.info.RemoteAddr, "rejection", rj.Error(), "detail", detail)
	a.emit(Event{Kind: AssociationRejected, Rejection: rj, Detail: detail})
	b, _ := (&AAssociateRJ{Result: rj.Result, Source: rj.Source, Reason: rj.Reason}).MarshalBinary()
	a.writeRaw(b)
	a.closeWrite()
	a.drainUntilClose()
}

// beforeAssociation handles a failed read in Sta2.
func (s *Server) beforeAssociation(a *assoc, err error) {
	switch {
	case isTimeout(err):
		a.step(Evt18) // AA-2
		a.emit(Event{Kind: ProtocolError, Err: ErrARTIMExpired, Detail: "no A-ASSOCIATE-RQ before ARTIM expired"})
	case errors.Is(err, io.EOF):
		a.step(Evt17) // AA-5: closed without a word (port probe)
		a.log.Debug("dimse: connection closed before A-ASSOCIATE-RQ", "remote", a.nc.RemoteAddr())
	case errors.Is(err, ErrPDUTooLarge), errors.Is(err, ErrInvalidPDU), errors.Is(err, ErrUnknownPDU):
		// AA-1. Table 9-10 names the service-user as source in Sta2; we
		// send source service-provider with the diagnostic reason, which
		// tells the peer what went wrong (as for AA-8 later on).
		a.step(Evt19)
		reason := AbortInvalidPDUParameterValue
		if errors.Is(err, ErrUnknownPDU) {
			reason = AbortUnrecognizedPDU
		}
		a.log.Warn("dimse: invalid PDU before association", "remote", a.nc.RemoteAddr(), "err", err)
		a.emit(Event{Kind: ProtocolError, Err: err, AbortSource: uint8(AbortServiceProvider), AbortReason: uint8(reason), Detail: err.Error()})
		a.writeAbort(AbortServiceProvider, reason)
		a.drainUntilClose()
	default:
		a.step(Evt17) // AA-5
		a.emit(Event{Kind: ProtocolError, Err: err, Detail: "connection lost before A-ASSOCIATE-RQ completed"})
	}
}
