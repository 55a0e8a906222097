package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// DialOptions configures Dial.
type DialOptions struct {
	CallingAE, CalledAE string
	// Contexts to propose; IDs of 0 are assigned (1, 3, 5, ...). Empty
	// proposes Verification with implicit VR little endian.
	Contexts []ProposedContext
	// MaxPDULength is the largest P-DATA-TF PDU we accept; default 1 MiB.
	MaxPDULength                                      uint32
	ImplementationClassUID, ImplementationVersionName string
	UserIdentity                                      *UserIdentity
	// ExtendedNegotiation is sent as SOP Class Extended Negotiation
	// sub-items (56H, PS3.7 D.3.3.5); the acceptor's answers are in
	// Info().ExtendedNegotiation.
	ExtendedNegotiation []SOPClassExtendedNegotiation
	// ARTIMTimeout bounds the wait for the A-ASSOCIATE-AC/RJ and for the
	// A-RELEASE-RP; default 30 s.
	ARTIMTimeout time.Duration
	// IdleTimeout aborts the association after this long without
	// activity; 0 disables it.
	IdleTimeout time.Duration
	// Handler serves requests the peer sends on this association (for
	// instance C-STORE sub-operations of a C-GET); nil answers 0x0122.
	Handler Handler
	OnEvent func(Event)
	Logger  *slog.Logger
}

// Association is an association we requested (association-requestor,
// PS3.8 Section 7.1). Its methods may be called from several goroutines;
// operations are performed one at a time.
type Association struct {
	a        *assoc
	accepted []PresentationContext
	opMu     chan struct{}
}

// Dial opens a TCP connection to addr and negotiates an association (PS3.8
// Sections 7.1 and 9.2: AE-1, AE-2, then AE-3 or AE-4). A rejection is
// returned as a *Rejection error.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Association, error) {
	for _, ae := range []string{opts.CallingAE, opts.CalledAE} {
		if len(ae) > 16 {
			return nil, fmt.Errorf("dimse: AE title %q longer than 16 characters", ae)
		}
	}
	var m Machine
	m.Requestor = true
	m.Step(Evt1, true) // AE-1 → Sta4
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dimse: dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	a := newAssoc(nc, opts.Logger, true)
	a.fsm = m
	a.artim = durOr(opts.ARTIMTimeout, DefaultARTIMTimeout)
	a.idle = opts.IdleTimeout
	a.handler = opts.Handler
	a.onEvent = opts.OnEvent
	ourMax := opts.MaxPDULength
	if ourMax == 0 {
		ourMax = DefaultMaxPDULength
	}
	if ourMax < 1024 {
		ourMax = 1024
	}

	rq := &AAssociateRQ{
		ProtocolVersion:    1,
		CalledAE:           opts.CalledAE,
		CallingAE:          opts.CallingAE,
		ApplicationContext: DICOMApplicationContext,
	}
	rq.UserInfo.MaxLength = ourMax
	rq.UserInfo.ImplementationClassUID = opts.ImplementationClassUID
	rq.UserInfo.ImplementationVersionName = opts.ImplementationVersionName
	if rq.UserInfo.ImplementationClassUID == "" {
		rq.UserInfo.ImplementationClassUID = DefaultImplementationClassUID
		if rq.UserInfo.ImplementationVersionName == "" {
			rq.UserInfo.ImplementationVersionName = DefaultImplementationVersionName
		}
	}
	rq.UserInfo.UserIdentity = opts.UserIdentity
	rq.UserInfo.ExtendedNegotiation = opts.ExtendedNegotiation
	proposed := opts.Contexts
	if len(proposed) == 0 {
		proposed = []ProposedContext{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	}
	byID := make(map[uint8]ProposedContext)
	next := uint8(1)
	roled := make(map[string]bool)
	for _, pc := range proposed {
		if pc.ID == 0 {
			for byID[next].AbstractSyntax != "" {
				next += 2
			}
			pc.ID = next
			next += 2
		}
		byID[pc.ID] = pc
		rq.Contexts = append(rq.Contexts, PresentationContextRQItem{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
		if (pc.SCURole != nil || pc.SCPRole != nil) && !roled[pc.AbstractSyntax] {
			roled[pc.AbstractSyntax] = true
			r := RoleSelection{SOPClassUID: pc.AbstractSyntax, SCU: true}
			if pc.SCURole != nil {
				r.SCU = *pc.SCURole
			}
			if pc.SCPRole != nil {
				r.SCP = *pc.SCPRole
			}
			rq.UserInfo.Roles = append(rq.UserInfo.Roles, r)
		}
	}

	fail := func(err error) (*Association, error) {
		nc.Close()
		a.cancel(err)
		return nil, err
	}
	a.step(Evt2) // AE-2: send A-ASSOCIATE-RQ → Sta5
	b, err := rq.MarshalBinary()
	if err != nil {
		return fail(err)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := a.writeRaw(b); err != nil {
		return fail(fmt.Errorf("dimse: sending A-ASSOCIATE-RQ: %w", err))
	}
	nc.SetReadDeadline(time.Now().Add(a.artim))
	p, err := ReadPDU(a.br, MaxAssociatePDULength)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if isTimeout(err) {
			err = ErrARTIMExpired
		}
		if errors.Is(err, ErrInvalidPDU) || errors.Is(err, ErrUnknownPDU) || errors.Is(err, ErrPDUTooLarge) {
			a.step(Evt19) // AA-8
			a.writeAbort(AbortServiceProvider, AbortInvalidPDUParameterValue)
		} else {
			a.step(Evt17)
		}
		return fail(fmt.Errorf("dimse: waiting for A-ASSOCIATE-AC: %w", err))
	}
	act, _, _ := a.step(eventForPDU(p.Type()))
	switch act {
	case AE3:
	case AE4:
		rj := p.(*AAssociateRJ)
		return fail(&Rejection{Result: rj.Result, Source: rj.Source, Reason: rj.Reason})
	case AA3:
		ab := p.(*AAbort)
		return fail(&AbortError{Source: ab.Source, Reason: ab.Reason, ByPeer: true})
	default:
		a.writeAbort(AbortServiceProvider, AbortUnexpectedPDU)
		return fail(fmt.Errorf("dimse: unexpected %s in answer to A-ASSOCIATE-RQ", p.Type()))
	}
	ac := p.(*AAssociateAC)
	roles := make(map[string]RoleSelection)
	for _, r := range ac.UserInfo.Roles {
		roles[r.SOPClassUID] = r
	}
	info := &AssociationInfo{
		ID:        newAssociationID(),
		CallingAE: opts.CallingAE, CalledAE: opts.CalledAE,
		RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr(),
		ImplementationClassUID:    ac.UserInfo.ImplementationClassUID,
		ImplementationVersionName: ac.UserInfo.ImplementationVersionName,
		PeerMaxPDULength:          ac.UserInfo.MaxLength,
		UserIdentity:              opts.UserIdentity,
	}
	for _, e := range ac.UserInfo.ExtendedNegotiation {
		if info.ExtendedNegotiation == nil {
			info.ExtendedNegotiation = make(map[string][]byte)
		}
		info.ExtendedNegotiation[e.SOPClassUID] = e.Info
	}
	for _, r := range ac.Contexts {
		prop, ok := byID[r.ID]
		if !ok || r.Result != PCAcceptance {
			continue
		}
		pc := PresentationContext{ID: r.ID, AbstractSyntax: prop.AbstractSyntax, TransferSyntax: r.TransferSyntax, SCURole: true}
		if rs, ok := roles[prop.AbstractSyntax]; ok && roled[prop.AbstractSyntax] {
			pc.SCURole, pc.SCPRole = rs.SCU, rs.SCP
		}
		info.Contexts = append(info.Contexts, pc)
	}
	a.info = info
	a.setAccepted(info.Contexts, ourMax, ac.UserInfo.MaxLength)
	nc.SetDeadline(time.Time{})
	if !stop() {
		return fail(ctx.Err())
	}
	a.emit(Event{Kind: AssociationAccepted, Detail: fmt.Sprintf("%d of %d presentation contexts accepted", len(info.Contexts), len(rq.Contexts))})
	a.start()
	return &Association{a: a, accepted: info.Contexts, opMu: make(chan struct{}, 1)}, nil
}

// Info describes the association.
func (as *Association) Info() *AssociationInfo { return as.a.info }

// Accepted returns the accepted presentation contexts.
func (as *Association) Accepted() []PresentationContext { return as.accepted }

// FindContext returns an accepted context for abstractSyntax with
// transferSyntax ("" = any).
func (as *Association) FindContext(abstractSyntax, transferSyntax string) (PresentationContext, bool) {
	for _, pc := range as.accepted {
		if pc.AbstractSyntax == abstractSyntax && (transferSyntax == "" || pc.TransferSyntax == transferSyntax) {
			return pc, true
		}
	}
	return PresentationContext{}, false
}

// Done is closed when the association has ended.
func (as *Association) Done() <-chan struct{} { return as.a.ctx.Done() }

// Err returns why the association ended, nil while it is established.
func (as *Association) Err() error {
	if as.a.ctx.Err() == nil {
		return nil
	}
	return as.a.endError()
}

func (as *Association) lockOp(ctx context.Context) error {
	select {
	case as.opMu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-as.a.ctx.Done():
		return as.a.endError()
	}
}

func (as *Association) unlockOp() { <-as.opMu }

// Echo performs C-ECHO (PS3.7 Section 9.1.5) on the Verification context.
func (as *Association) Echo(ctx context.Context) (Status, error) {
	pc, ok := as.FindContext(VerificationSOPClass, "")
	if !ok {
		return Status{}, fmt.Errorf("%w for Verification", ErrNoContext)
	}
	if err := as.lockOp(ctx); err != nil {
		return Status{}, err
	}
	defer as.unlockOp()
	return as.a.request(ctx, pc.ID, &Command{Field: CEchoRQ, AffectedSOPClassUID: VerificationSOPClass}, nil, nil)
}

// Store performs C-STORE (PS3.7 Section 9.1.1): data is the data set
// encoded in pc.TransferSyntax, streamed in PDUs of the peer's maximum
// length. A failure to read data, or ctx ending while the data set is on
// the wire, aborts the association (a partial message cannot be
// recovered).
func (as *Association) Store(ctx context.Context, pc PresentationContext, sopClass, sopInstance string, data io.Reader) (Status, error) {
	return as.StoreWith(ctx, pc, sopClass, sopInstance, data, StoreOptions{})
}

// StoreOptions are the optional fields of a C-STORE-RQ (PS3.7 Table 9.3-1).
type StoreOptions struct {
	// Priority: PriorityMedium when zero.
	Priority uint16
	// MoveOriginatorAE and MoveOriginatorMessageID identify the C-MOVE a
	// sub-operation serves; the standard requires them on the C-STOREs of
	// a C-MOVE so the destination can tie the instances to the request.
	MoveOriginatorAE        string
	MoveOriginatorMessageID uint16
}

// StoreWith is Store with the optional command fields.
func (as *Association) StoreWith(ctx context.Context, pc PresentationContext, sopClass, sopInstance string, data io.Reader, o StoreOptions) (Status, error) {
	if pc.ID == 0 || !as.a.pcOK[pc.ID] {
		return Status{}, fmt.Errorf("%w: context %d", ErrNoContext, pc.ID)
	}
	if err := as.lockOp(ctx); err != nil {
		return Status{}, err
	}
	defer as.unlockOp()
	cmd := &Command{Field: CStoreRQ, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sopInstance, Priority: PriorityMedium,
		MoveOriginatorAE: o.MoveOriginatorAE, MoveOriginatorMessageID: o.MoveOriginatorMessageID}
	if o.Priority != 0 {
		cmd.Priority = o.Priority
	}
	if data == nil {
		data = eofReader{}
	}
	return as.a.request(ctx, pc.ID, cmd, nil, data)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Release performs A-RELEASE (PS3.8 Section 7.2: AR-1, then AR-3 when the
// A-RELEASE-RP arrives). If ctx ends first the association is aborted.
func (as *Association) Release(ctx context.Context) error {
	a := as.a
	if err := a.lockWrite(ctx); err != nil {
		return err
	}
	act, st, err := a.step(Evt11)
	if err != nil || act != AR1 {
		a.unlockWrite()
		return fmt.Errorf("%w: cannot release in %v", ErrAssociationEnded, st)
	}
	b, _ := (&AReleaseRQ{}).MarshalBinary()
	err = a.writeRaw(b)
	a.unlockWrite()
	if err != nil {
		a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, "sending A-RELEASE-RQ failed", err)
		return fmt.Errorf("dimse: sending A-RELEASE-RQ: %w", err)
	}
	t := time.NewTimer(a.artim)
	defer t.Stop()
	select {
	case <-a.readerDone:
	case <-ctx.Done():
		a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, "release interrupted", ctx.Err())
		return ctx.Err()
	case <-t.C:
		a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, "no A-RELEASE-RP", ErrARTIMExpired)
		return fmt.Errorf("dimse: waiting for A-RELEASE-RP: %w", ErrARTIMExpired)
	}
	if ev := a.endEvent; ev != nil && ev.Kind == AssociationReleased {
		return nil
	}
	return a.endError()
}

// Abort sends an A-ABORT (service-user source, PS3.8 Section 7.3; AA-1)
// and closes the association.
func (as *Association) Abort() error {
	as.a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, "aborted by user", nil)
	select {
	case <-as.a.readerDone:
	case <-time.After(time.Second):
		as.a.nc.Close()
	}
	return nil
}

// Find performs C-FIND (PS3.7 Section 9.1.2): identifier is the query
// encoded in pc.TransferSyntax. Each pending response (FF00/FF01) is
// passed to each with its identifier; when each returns false, or ctx
// ends, a C-CANCEL-RQ is sent and the final response (usually FE00) is
// awaited. The final status is returned.
func (as *Association) Find(ctx context.Context, pc PresentationContext, identifier []byte,
	each func(st Status, identifier []byte) bool) (Status, error) {
	if pc.ID == 0 || !as.a.pcOK[pc.ID] {
		return Status{}, fmt.Errorf("%w: context %d", ErrNoContext, pc.ID)
	}
	if err := as.lockOp(ctx); err != nil {
		return Status{}, err
	}
	defer as.unlockOp()
	if identifier == nil {
		identifier = []byte{}
	}
	cmd := &Command{Field: CFindRQ, AffectedSOPClassUID: pc.AbstractSyntax, Priority: PriorityMedium}
	final, _, err := as.a.requestEach(ctx, pc.ID, cmd, identifier, nil, func(c Command, body []byte) bool {
		if each == nil {
			return true
		}
		return each(c.Status, body)
	})
	if err != nil {
		return Status{}, err
	}
	return final.Status, nil
}

// Do sends an arbitrary request and returns its final response command
// and data set; pending responses go to pending (nil skips them). It is
// the building block for services without a helper (C-MOVE, C-GET
// without sub-operation handling, N-*). cmd.MessageID is assigned.
func (as *Association) Do(ctx context.Context, pc PresentationContext, cmd Command, data []byte,
	pending func(Command, []byte) bool) (Command, []byte, error) {
	if pc.ID == 0 || !as.a.pcOK[pc.ID] {
		return Command{}, nil, fmt.Errorf("%w: context %d", ErrNoContext, pc.ID)
	}
	if err := as.lockOp(ctx); err != nil {
		return Command{}, nil, err
	}
	defer as.unlockOp()
	return as.a.requestEach(ctx, pc.ID, &cmd, data, nil, pending)
}
