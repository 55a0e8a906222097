package dimse

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Tuning of the engine.
const (
	readBufferSize  = 256 << 10 // bufio.Reader per association
	pduSlack        = 64        // tolerated excess over our advertised maximum length
	abortWriteWait  = 2 * time.Second
	maxLinger       = 10 * time.Second // longest wait for the peer to close after A-ABORT
	defaultWriteTTL = 5 * time.Minute  // write deadline per PDU
)

var assocCounter atomic.Uint64

func newAssociationID() string {
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("a-%d-%s", assocCounter.Add(1), hex.EncodeToString(r[:]))
}

// incoming is a DIMSE message being received: its command set and, when
// it has one, the stream of its data set.
type incoming struct {
	cmd     Command
	pc      PresentationContext
	data    *dataStream
	discard bool // nobody consumes the data set: release PDVs at once
}

// assoc is the engine of one established (or establishing) association,
// shared by Server and Association. One reader goroutine (readLoop) reads
// every PDU; one runner goroutine (runLoop) serves incoming requests in
// order; any goroutine may send messages, serialized by wsem.
type assoc struct {
	nc        net.Conn
	br        *bufio.Reader
	log       *slog.Logger
	info      *AssociationInfo
	requestor bool

	ourMax  uint32 // maximum P-DATA-TF PDU length we advertised
	sendMax int    // maximum PDV value length we send (peer's max - 6)

	ctx    context.Context // cancelled when the association ends
	cancel context.CancelCauseFunc

	fsmMu sync.Mutex
	fsm   Machine

	wsem     chan struct{} // write lock
	wclosed  atomic.Bool
	scratch  []byte // command PDU encoding, guarded by wsem
	hdr      [12]byte
	wv       [2][]byte   // writev vector, guarded by wsem
	nb       net.Buffers // over wv; a field so that WriteTo does not allocate
	artim    time.Duration
	idle     time.Duration
	lingerTo time.Time // read deadline in Sta13, guarded by fsmMu

	pcs  [256]PresentationContext
	pcOK [256]bool

	handler Handler
	onEvent func(Event)

	msgID   atomic.Uint32
	mu      sync.Mutex
	waiters map[uint16]chan *incoming
	running map[uint16]context.CancelFunc
	busy    atomic.Int32

	reqs       chan *incoming
	runnerDone chan struct{}
	readerDone chan struct{}
	endOnce    sync.Once
	endEvent   *Event // the event describing how the association ended
	endErr     error

	// receive-side assembly, reader goroutine only
	cmdBuf []byte
	cmdPC  uint8
	cur    *incoming
	bufCap int
}

func newAssoc(nc net.Conn, log *slog.Logger, requestor bool) *assoc {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &assoc{
		nc:         nc,
		br:         bufio.NewReaderSize(nc, readBufferSize),
		log:        log,
		requestor:  requestor,
		wsem:       make(chan struct{}, 1),
		waiters:    make(map[uint16]chan *incoming),
		running:    make(map[uint16]context.CancelFunc),
		reqs:       make(chan *incoming, 8),
		runnerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	a.fsm.Requestor = requestor
	a.ctx, a.cancel = context.WithCancelCause(context.Background())
	return a
}

// step applies an event to the state machine.
func (a *assoc) step(e FSMEvent) (Action, State, error) {
	a.fsmMu.Lock()
	defer a.fsmMu.Unlock()
	act, err := a.fsm.Step(e, true)
	return act, a.fsm.State, err
}

func (a *assoc) state() State {
	a.fsmMu.Lock()
	defer a.fsmMu.Unlock()
	return a.fsm.State
}

func (a *assoc) emit(ev Event) {
	if a.onEvent == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Assoc == nil {
		ev.Assoc = a.info
	}
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("dimse: OnEvent panicked", "panic", r)
		}
	}()
	a.onEvent(ev)
}

// setAccepted installs the accepted presentation contexts and the
// maximum lengths.
func (a *assoc) setAccepted(pcs []PresentationContext, ourMax, peerMax uint32) {
	for _, pc := range pcs {
		a.pcs[pc.ID], a.pcOK[pc.ID] = pc, true
	}
	a.ourMax = ourMax
	if peerMax == 0 || peerMax > ourMax && ourMax != 0 {
		// 0 means unlimited: cap at our own maximum.
		peerMax = ourMax
	}
	if peerMax < 64 {
		peerMax = 64
	}
	a.sendMax = int(peerMax) - 6
	a.bufCap = int(ourMax) + pduSlack
	if a.bufCap < 1024 {
		a.bufCap = 1024
	}
}

func (a *assoc) start() {
	go a.runLoop(a.reqs)
	go func() {
		defer close(a.readerDone)
		a.readLoop()
	}()
}

// --- writing ---

func (a *assoc) lockWrite(ctx context.Context) error {
	select {
	case a.wsem <- struct{}{}:
		return nil
	default:
	}
	select {
	case a.wsem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-a.ctx.Done():
		return ErrAssociationEnded
	}
}

func (a *assoc) unlockWrite() { <-a.wsem }

// writeRaw writes whole PDUs already encoded; the caller holds wsem.
func (a *assoc) writeRaw(b []byte) error {
	a.nc.SetWriteDeadline(time.Now().Add(defaultWriteTTL))
	_, err := a.nc.Write(b)
	return err
}

// writePDV writes one P-DATA-TF PDU holding one PDV with one writev.
// The caller holds wsem.
func (a *assoc) writePDV(pcID uint8, flags byte, data []byte) error {
	h := a.hdr[:]
	h[0], h[1] = byte(PDUPDataTF), 0
	binary.BigEndian.PutUint32(h[2:], uint32(len(data)+6))
	binary.BigEndian.PutUint32(h[6:], uint32(len(data)+2))
	h[10], h[11] = pcID, flags
	a.nc.SetWriteDeadline(time.Now().Add(defaultWriteTTL))
	if len(data) < 4096 {
		b := append(a.scratch[:0], h...)
		b = append(b, data...)
		a.scratch = b
		_, err := a.nc.Write(b)
		return err
	}
	a.wv[0], a.wv[1] = h, data
	a.nb = a.wv[:]
	_, err := a.nb.WriteTo(a.nc)
	a.wv[1] = nil
	return err
}

// appendCommandPDUs appends the command set fragmented into P-DATA-TF PDUs
// of at most sendMax PDV bytes.
func (a *assoc) appendCommandPDUs(b []byte, pcID uint8, cmd *Command) []byte {
	enc := cmd.Encode()
	for {
		n := len(enc)
		flags := byte(1)
		if n > a.sendMax {
			n = a.sendMax
		} else {
			flags |= 2
		}
		b = append(b, byte(PDUPDataTF), 0)
		b = binary.BigEndian.AppendUint32(b, uint32(n+6))
		b = binary.BigEndian.AppendUint32(b, uint32(n+2))
		b = append(b, pcID, flags)
		b = append(b, enc[:n]...)
		enc = enc[n:]
		if len(enc) == 0 {
			return b
		}
	}
}

// send sends one DIMSE message: the command set, then the data set taken
// from data (bytes) or from r (streamed in PDUs of at most the peer's
// maximum length, reading ahead one PDU to set the last-fragment bit). A
// failure while part of a message is on the wire aborts the association.
func (a *assoc) send(ctx context.Context, pcID uint8, cmd *Command, data []byte, r io.Reader) error {
	if err := a.lockWrite(ctx); err != nil {
		return err
	}
	if act, st, err := a.step(Evt9); err != nil || (act != DT1 && act != AR7) {
		a.unlockWrite()
		return fmt.Errorf("%w: cannot send %s in %v", ErrAssociationEnded, cmd.Field, st)
	}
	err := a.sendLocked(ctx, pcID, cmd, data, r)
	a.unlockWrite()
	return a.fail(err, ctx)
}

// sendLocked writes the message; the caller holds wsem.
func (a *assoc) sendLocked(ctx context.Context, pcID uint8, cmd *Command, data []byte, r io.Reader) error {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { a.nc.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	cmd.HasDataSet = data != nil || r != nil
	b := a.appendCommandPDUs(a.scratch[:0], pcID, cmd)
	// Small data sets travel in the same write as the command.
	if data != nil && len(data) <= 16<<10 && len(data) <= a.sendMax {
		b = append(b, byte(PDUPDataTF), 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)+6))
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)+2))
		b = append(b, pcID, 2)
		b = append(b, data...)
		a.scratch = b
		return a.writeRaw(b)
	}
	a.scratch = b
	if err := a.writeRaw(b); err != nil {
		return err
	}
	switch {
	case data != nil:
		for {
			n := len(data)
			flags := byte(2)
			if n > a.sendMax {
				n, flags = a.sendMax, 0
			}
			if err := a.writePDV(pcID, flags, data[:n]); err != nil {
				return err
			}
			data = data[n:]
			if flags == 2 {
				return nil
			}
		}
	case r != nil:
		return a.streamData(ctx, pcID, r)
	}
	return nil
}

// streamData sends a data set read from r.
func (a *assoc) streamData(ctx context.Context, pcID uint8, r io.Reader) error {
	b1, b2 := getBuf(a.sendMax), getBuf(a.sendMax)
	defer b1.release()
	defer b2.release()
	cur, next := b1.b[:a.sendMax], b2.b[:a.sendMax]
	n, err := io.ReadFull(r, cur)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return &sourceError{err}
	}
	if err != nil { // the whole data set fits one PDU
		return a.writePDV(pcID, 2, cur[:n])
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := io.ReadFull(r, next)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return &sourceError{err}
		}
		if m == 0 {
			return a.writePDV(pcID, 2, cur[:n])
		}
		if werr := a.writePDV(pcID, 0, cur[:n]); werr != nil {
			return werr
		}
		cur, next, n = next, cur, m
		if err != nil {
			return a.writePDV(pcID, 2, cur[:n])
		}
	}
}

// sourceError is a failure to read the caller's data set while sending.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "dimse: reading data set: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// fail turns a failure in the middle of a message into an abort: the peer
// cannot resynchronize on a partial message.
func (a *assoc) fail(err error, ctx context.Context) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, fmt.Sprintf("send failed: %v", err), err)
	return fmt.Errorf("dimse: sending message: %w", err)
}

// writeAbort sends an A-ABORT PDU, waiting at most abortWriteWait for an
// ongoing write, then closes our side for writing.
func (a *assoc) writeAbort(src AbortSource, reason AbortReason) {
	if a.wclosed.Load() {
		return
	}
	select {
	case a.wsem <- struct{}{}:
		b, _ := (&AAbort{Source: src, Reason: reason}).MarshalBinary()
		a.nc.SetWriteDeadline(time.Now().Add(abortWriteWait))
		a.nc.Write(b)
		a.closeWrite()
		<-a.wsem
	case <-time.After(abortWriteWait):
		a.closeWrite()
	}
}

func (a *assoc) closeWrite() {
	a.wclosed.Store(true)
	if cw, ok := a.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// linger arms the ARTIM timer of Sta13: the reader waits that long for the
// peer to close.
func (a *assoc) linger() {
	d := a.artim
	if d <= 0 || d > maxLinger {
		d = maxLinger
	}
	a.fsmMu.Lock()
	a.lingerTo = time.Now().Add(d)
	a.fsmMu.Unlock()
	a.nc.SetReadDeadline(time.Now().Add(d))
}

// end records how the association ended (first caller wins) and cancels
// everything that depends on it.
func (a *assoc) end(ev *Event, err error) {
	a.endOnce.Do(func() {
		a.endEvent, a.endErr = ev, err
		if err == nil {
			err = ErrAssociationEnded
		}
		a.cancel(err)
		if ev != nil {
			level := slog.LevelInfo
			if ev.Kind == ProtocolError {
				level = slog.LevelWarn
			}
			a.log.Log(context.Background(), level, "dimse: association ended", "assoc", a.id(), "kind", ev.Kind,
				"detail", ev.Detail, "err", ev.Err)
			a.emit(*ev)
		}
	})
}

// abortLocal is the A-ABORT request primitive (Evt15 → AA-1) or, for
// provider-detected errors, AA-8: send A-ABORT, end the association and
// let the reader linger in Sta13 until the peer closes.
func (a *assoc) abortLocal(src AbortSource, reason AbortReason, provider bool, detail string, cause error) {
	var act Action
	if provider {
		act, _, _ = a.step(Evt19)
	} else {
		act, _, _ = a.step(Evt15)
	}
	kind := AssociationAborted
	if provider {
		kind = ProtocolError
	}
	ae := &AbortError{Source: src, Reason: reason}
	if cause == nil {
		cause = ae
	}
	a.end(&Event{Kind: kind, AbortSource: uint8(src), AbortReason: uint8(reason), Err: cause, Detail: detail}, ae)
	switch act {
	case AA1, AA7, AA8:
		a.writeAbort(src, reason)
		a.linger()
	case AA2:
		a.nc.Close()
	default:
		// Already ending (Sta1/Sta13): nothing more to send.
		a.linger()
	}
}

// --- reading ---

// readLoop reads PDUs until the association ends, then closes the
// connection.
func (a *assoc) readLoop() {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("dimse: reader panicked", "panic", r, "stack", string(debug.Stack()))
			a.end(&Event{Kind: ProtocolError, Detail: fmt.Sprintf("internal error: %v", r)}, ErrAssociationEnded)
		}
		a.end(nil, nil)
		a.nc.Close()
		if a.cur != nil && a.cur.data != nil {
			// Consumer sees the association end.
			a.cur = nil
		}
	}()
	for {
		typ, n, err := a.readHeader()
		if err != nil {
			a.onReadError(err)
			return
		}
		if typ == PDUPDataTF {
			if n > uint32(a.bufCap) {
				a.protocolError(AbortInvalidPDUParameterValue,
					fmt.Errorf("%w: P-DATA-TF length %d exceeds our maximum %d", ErrPDUTooLarge, n, a.ourMax))
				return
			}
			act, _, err := a.step(Evt10)
			if err != nil || (act != DT2 && act != AR6) {
				if !a.unexpected(act, PDUPDataTF) {
					return
				}
				if _, err := a.br.Discard(int(n)); err != nil {
					return
				}
				continue
			}
			if !a.readPData(n) {
				return
			}
			continue
		}
		p := newPDU(typ)
		if p == nil {
			a.protocolError(AbortUnrecognizedPDU, fmt.Errorf("%w: 0x%02X", ErrUnknownPDU, uint8(typ)))
			return
		}
		if n > MaxAssociatePDULength {
			a.protocolError(AbortInvalidPDUParameterValue, fmt.Errorf("%w: %s length %d", ErrPDUTooLarge, typ, n))
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(a.br, body); err != nil {
			a.onReadError(noEOF(err))
			return
		}
		if err := p.unmarshalBody(body); err != nil {
			a.protocolError(AbortInvalidPDUParameterValue, err)
			return
		}
		if !a.handleControl(p) {
			return
		}
	}
}

// readHeader waits for the next PDU header. While the association is
// idle the wait is bounded by the idle timeout, in Sta13 by ARTIM.
func (a *assoc) readHeader() (PDUType, uint32, error) {
	for {
		a.fsmMu.Lock()
		st, lingerTo := a.fsm.State, a.lingerTo
		a.fsmMu.Unlock()
		switch {
		case st == Sta13 || st == Sta1:
			if lingerTo.IsZero() {
				lingerTo = time.Now().Add(maxLinger)
			}
			a.nc.SetReadDeadline(lingerTo)
		case a.idle > 0:
			a.nc.SetReadDeadline(time.Now().Add(a.idle))
		default:
			a.nc.SetReadDeadline(time.Time{})
		}
		_, err := a.br.Peek(1)
		if err != nil {
			if isTimeout(err) && st != Sta13 && st != Sta1 && a.inProgress() {
				continue // an operation is in progress: not idle
			}
			return 0, 0, err
		}
		break
	}
	if a.idle > 0 || a.artim > 0 {
		d := max(a.idle, a.artim)
		a.nc.SetReadDeadline(time.Now().Add(d))
	}
	h, err := a.br.Peek(6)
	if err != nil {
		return 0, 0, noEOF(err)
	}
	typ, n := PDUType(h[0]), binary.BigEndian.Uint32(h[2:])
	a.br.Discard(6)
	return typ, n, nil
}

// inProgress reports whether the association has work in progress.
func (a *assoc) inProgress() bool {
	if a.busy.Load() > 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiters) > 0 || len(a.running) > 0
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// onReadError handles a failed read: Evt17 (transport closed) or Evt18
// (ARTIM expired), or the idle timeout.
func (a *assoc) onReadError(err error) {
	st := a.state()
	if isTimeout(err) {
		if st == Sta13 || st == Sta1 {
			a.step(Evt18) // AA-2: close
			a.end(&Event{Kind: ProtocolError, Err: ErrARTIMExpired, Detail: "ARTIM expired waiting for the peer to close"}, ErrARTIMExpired)
			return
		}
		a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, "idle timeout", ErrIdleTimeout)
		// Linger in Sta13 until the peer closes.
		a.drainUntilClose()
		return
	}
	act, _, _ := a.step(Evt17)
	switch act {
	case AR5, AA5, AA2:
		a.end(nil, nil)
	default: // AA-4: A-P-ABORT indication
		a.end(&Event{Kind: AssociationAborted, AbortSource: uint8(AbortServiceProvider), Err: err,
			ByPeer: true, Detail: fmt.Sprintf("transport connection closed in %v: %v", st, err)},
			fmt.Errorf("%w: connection lost: %v", ErrAssociationEnded, err))
	}
}

// drainUntilClose discards whatever the peer still sends until it closes
// or ARTIM expires (Sta13 after a locally detected error).
func (a *assoc) drainUntilClose() {
	a.linger()
	io.Copy(io.Discard, a.br)
}

// protocolError is Evt19 (unrecognized or invalid PDU): A-ABORT with source
// service-provider and the given reason, an Event, and Sta13.
func (a *assoc) protocolError(reason AbortReason, err error) {
	a.log.Warn("dimse: protocol error, aborting", "assoc", a.id(), "reason", reason, "err", err)
	a.abortLocal(AbortServiceProvider, reason, true, err.Error(), err)
	a.drainUntilClose()
}

func (a *assoc) id() string {
	if a.info != nil {
		return a.info.ID
	}
	return ""
}

// unexpected handles a PDU the state table answers with an abort or
// ignore; it reports whether reading goes on.
func (a *assoc) unexpected(act Action, t PDUType) bool {
	switch act {
	case AA6: // ignore (Sta13)
		return true
	case AA7:
		// Sta13: our A-ABORT is already sent and our write side closed;
		// a second one could not be sent, so AA-7 degrades to ignoring.
		if a.wclosed.Load() {
			return true
		}
		fallthrough
	case AA8, AA1:
		err := fmt.Errorf("dimse: unexpected %s in %v", t, a.state())
		a.log.Warn("dimse: unexpected PDU, aborting", "assoc", a.id(), "pdu", t)
		a.end(&Event{Kind: ProtocolError, AbortSource: uint8(AbortServiceProvider), AbortReason: uint8(AbortUnexpectedPDU),
			Err: err, Detail: err.Error()}, &AbortError{Source: AbortServiceProvider, Reason: AbortUnexpectedPDU})
		a.writeAbort(AbortServiceProvider, AbortUnexpectedPDU)
		a.drainUntilClose()
		return false
	}
	return false
}

// handleControl executes the action for a non-data PDU received after the
// association was established; it reports whether reading goes on.
func (a *assoc) handleControl(p PDU) bool {
	act, _, _ := a.step(eventForPDU(p.Type()))
	switch act {
	case AA3: // A-ABORT received
		ab := p.(*AAbort)
		a.end(&Event{Kind: AssociationAborted, ByPeer: true, AbortSource: uint8(ab.Source), AbortReason: uint8(ab.Reason),
			Detail: "aborted by peer"}, &AbortError{Source: ab.Source, Reason: ab.Reason, ByPeer: true})
		return false
	case AA2: // A-ABORT in Sta13
		return false
	case AR2: // A-RELEASE-RQ: finish the work in progress, then answer.
		a.finishRequests()
		if act, _, _ := a.step(Evt14); act == AR4 {
			a.sendReleaseRP()
		}
		a.end(&Event{Kind: AssociationReleased, ByPeer: true, Detail: "released by peer"}, nil)
		return true // Sta13: wait for the peer to close
	case AR3: // A-RELEASE-RP: release confirmed
		a.end(&Event{Kind: AssociationReleased, Detail: "released"}, nil)
		return false
	case AR8: // release collision
		if a.requestor { // Sta9: answer, then wait for the RP
			if act, _, _ := a.step(Evt14); act == AR9 {
				a.sendReleaseRP()
			}
		}
		return true
	case AR10: // Sta10 → Sta12: answer the peer's release
		if act, _, _ := a.step(Evt14); act == AR4 {
			a.sendReleaseRP()
		}
		a.end(&Event{Kind: AssociationReleased, Detail: "released (collision)"}, nil)
		return true
	}
	return a.unexpected(act, p.Type())
}

func (a *assoc) sendReleaseRP() {
	if err := a.lockWrite(context.Background()); err == nil {
		b, _ := (&AReleaseRP{}).MarshalBinary()
		a.writeRaw(b)
		a.unlockWrite()
	}
	a.linger()
}

// finishRequests waits until the runner has served what it was given.
func (a *assoc) finishRequests() {
	close(a.reqs)
	a.reqs = nil
	// The reader is not reading meanwhile: a handler waiting for the peer
	// (a C-GET sub-operation) would wait forever; bound the wait.
	d := a.artim
	if d <= 0 {
		d = DefaultARTIMTimeout
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.runnerDone:
	case <-a.ctx.Done():
	case <-t.C:
		a.log.Warn("dimse: requests still running at A-RELEASE-RQ, aborting", "assoc", a.id())
		a.abortLocal(AbortServiceUser, AbortReasonNotSpecified, false, "requests still running at A-RELEASE-RQ", nil)
	}
}

// readPData reads the body of a P-DATA-TF PDU of length n and dispatches
// its PDVs; it reports whether reading goes on.
func (a *assoc) readPData(n uint32) bool {
	buf := getBuf(a.bufCap)
	body := buf.b[:n]
	if _, err := io.ReadFull(a.br, body); err != nil {
		buf.release()
		a.onReadError(noEOF(err))
		return false
	}
	defer buf.release()
	if n == 0 {
		a.protocolError(AbortInvalidPDUParameterValue, fmt.Errorf("%w: P-DATA-TF without PDV items", ErrInvalidPDU))
		return false
	}
	b := body
	for len(b) > 0 {
		if len(b) < 6 {
			a.protocolError(AbortInvalidPDUParameterValue, fmt.Errorf("%w: truncated PDV item", ErrInvalidPDU))
			return false
		}
		l := binary.BigEndian.Uint32(b)
		if l < 2 || uint64(l) > uint64(len(b)-4) {
			a.protocolError(AbortInvalidPDUParameterValue, fmt.Errorf("%w: PDV item length %d, %d bytes left", ErrInvalidPDU, l, len(b)-4))
			return false
		}
		pcID, h := b[4], b[5]
		data := b[6 : 4+l : 4+l]
		b = b[4+l:]
		if !a.pcOK[pcID] {
			a.protocolError(AbortInvalidPDUParameterValue, fmt.Errorf("%w: PDV on presentation context %d, which was not accepted", ErrInvalidPDU, pcID))
			return false
		}
		if h&^3 != 0 {
			a.protocolError(AbortInvalidPDUParameterValue, fmt.Errorf("%w: PDV message control header 0x%02X", ErrInvalidPDU, h))
			return false
		}
		var err error
		if h&1 != 0 {
			err = a.commandPDV(pcID, h&2 != 0, data)
		} else {
			err = a.dataPDV(buf, pcID, h&2 != 0, data)
		}
		if err != nil {
			if errors.Is(err, ErrAssociationEnded) {
				return false
			}
			a.protocolError(AbortUnexpectedPDUParameter, err)
			return false
		}
	}
	return true
}

func (a *assoc) commandPDV(pcID uint8, last bool, data []byte) error {
	if a.cur != nil {
		return fmt.Errorf("%w: command fragment while the data set of %s is incomplete", ErrInvalidPDU, a.cur.cmd.Field)
	}
	if len(a.cmdBuf) > 0 && pcID != a.cmdPC {
		return fmt.Errorf("%w: command fragments on contexts %d and %d", ErrInvalidPDU, a.cmdPC, pcID)
	}
	if len(a.cmdBuf)+len(data) > MaxCommandLength {
		return fmt.Errorf("%w: command set longer than %d bytes", ErrInvalidPDU, MaxCommandLength)
	}
	a.cmdPC = pcID
	a.cmdBuf = append(a.cmdBuf, data...)
	if !last {
		return nil
	}
	cmd, err := DecodeCommand(a.cmdBuf)
	a.cmdBuf = a.cmdBuf[:0]
	if err != nil {
		return err
	}
	inc := &incoming{cmd: cmd, pc: a.pcs[pcID]}
	if cmd.HasDataSet {
		inc.data = newDataStream(a.ctx.Done())
		a.cur = inc
	}
	return a.dispatch(inc)
}

// dispatch routes a complete command: C-CANCEL-RQ cancels the running
// request it names, responses go to their waiter, requests to the runner.
func (a *assoc) dispatch(inc *incoming) error {
	cmd := &inc.cmd
	switch {
	case cmd.Field == CCancelRQ:
		a.mu.Lock()
		cancel := a.running[cmd.MessageIDBeingRespondedTo]
		a.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		if inc.data != nil {
			inc.discard = true
		}
		return nil
	case cmd.Field.IsResponse():
		a.mu.Lock()
		ch := a.waiters[cmd.MessageIDBeingRespondedTo]
		if ch != nil && CategoryOf(cmd.Status.Code) != CategoryPending {
			delete(a.waiters, cmd.MessageIDBeingRespondedTo)
		}
		a.mu.Unlock()
		if ch == nil {
			a.log.Warn("dimse: response to no outstanding request", "assoc", a.id(), "field", cmd.Field,
				"id", cmd.MessageIDBeingRespondedTo)
			if inc.data != nil {
				inc.discard = true
			}
			return nil
		}
		select {
		case ch <- inc:
		case <-a.ctx.Done():
			return ErrAssociationEnded
		}
		return nil
	}
	if a.reqs == nil {
		return fmt.Errorf("%w: %s after A-RELEASE-RQ", ErrInvalidPDU, cmd.Field)
	}
	a.busy.Add(1)
	select {
	case a.reqs <- inc:
	case <-a.ctx.Done():
		a.busy.Add(-1)
		return ErrAssociationEnded
	}
	return nil
}

func (a *assoc) dataPDV(buf *pbuf, pcID uint8, last bool, data []byte) error {
	inc := a.cur
	if inc == nil {
		return fmt.Errorf("%w: data set fragment without a command expecting one", ErrInvalidPDU)
	}
	if pcID != inc.pc.ID {
		return fmt.Errorf("%w: data set fragment on context %d, command on %d", ErrInvalidPDU, pcID, inc.pc.ID)
	}
	if last {
		a.cur = nil
	}
	if inc.discard {
		return nil
	}
	buf.refs.Add(1)
	c := chunk{buf: buf, data: data, last: last}
	select {
	case inc.data.ch <- c:
		return nil
	default:
	}
	select {
	case inc.data.ch <- c:
		return nil
	case <-a.ctx.Done():
		buf.release()
		return ErrAssociationEnded
	}
}

// --- serving requests ---

func (a *assoc) runLoop(reqs <-chan *incoming) {
	defer close(a.runnerDone)
	for {
		select {
		case inc, ok := <-reqs:
			if !ok {
				return
			}
			a.serve(inc)
		case <-a.ctx.Done():
			return
		}
	}
}

// serve runs the handler for one request and guarantees a response.
func (a *assoc) serve(inc *incoming) {
	defer a.busy.Add(-1)
	id := inc.cmd.MessageID
	rctx, cancel := context.WithCancel(a.ctx)
	a.mu.Lock()
	a.running[id] = cancel
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.running, id)
		a.mu.Unlock()
		cancel()
	}()
	w := &responseWriter{a: a, inc: inc}
	req := &Request{Command: inc.cmd, Context: inc.pc, Assoc: a.info}
	if inc.data != nil {
		req.Data = inc.data
	}
	if st, bad := validateRequest(&inc.cmd); bad {
		a.log.Warn("dimse: invalid request", "assoc", a.id(), "field", inc.cmd.Field, "status", st)
		w.Respond(st, nil)
		return
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				a.log.Error("dimse: handler panicked", "assoc", a.id(), "field", inc.cmd.Field,
					"panic", r, "stack", string(debug.Stack()))
				if !w.final {
					w.Respond(Status{Code: StatusProcessingFailure, Comment: "internal error"}, nil)
				}
			}
		}()
		h := a.handler
		if h == nil {
			h = NewServeMux()
		}
		h.ServeDIMSE(rctx, w, req)
	}()
	if !w.final {
		a.log.Warn("dimse: handler returned without a response", "assoc", a.id(), "field", inc.cmd.Field)
		w.Respond(Status{Code: StatusProcessingFailure, Comment: "no response from handler"}, nil)
	}
	if inc.data != nil {
		inc.data.drain()
	}
}

// validateRequest checks what the engine answers itself (PS3.7 Section
// 9.1.1.1): a C-STORE-RQ needs its affected SOP class and instance and a
// data set.
func validateRequest(c *Command) (Status, bool) {
	switch c.Field {
	case CStoreRQ:
		var missing []uint32
		if c.AffectedSOPClassUID == "" {
			missing = append(missing, TagAffectedSOPClassUID)
		}
		if c.AffectedSOPInstanceUID == "" {
			missing = append(missing, TagAffectedSOPInstanceUID)
		}
		if len(missing) > 0 {
			return Status{Code: StatusCannotUnderstand, Comment: "missing Affected SOP Class/Instance UID",
				OffendingElements: missing}, true
		}
		if !c.HasDataSet {
			return Status{Code: StatusCannotUnderstand, Comment: "C-STORE-RQ without data set"}, true
		}
	case CFindRQ, CMoveRQ, CGetRQ:
		if !c.HasDataSet {
			return Status{Code: StatusCannotUnderstand, Comment: c.Field.String() + " without identifier"}, true
		}
	}
	return Status{}, false
}

// responseWriter is the ResponseWriter, SubOperator and
// SubOperationCounter given to handlers.
type responseWriter struct {
	a      *assoc
	inc    *incoming
	final  bool
	counts *[4]uint16
}

func (w *responseWriter) response(st Status) *Command {
	rq := &w.inc.cmd
	c := &Command{
		Field:                     rq.Field | 0x8000,
		MessageIDBeingRespondedTo: rq.MessageID,
		AffectedSOPClassUID:       rq.AffectedSOPClassUID,
		Status:                    st,
	}
	if !rq.Field.Known() || rq.Field.IsResponse() {
		c.Field = CommandField(uint16(rq.Field) | 0x8000)
	}
	switch rq.Field {
	case CStoreRQ, NEventReportRQ, NSetRQ, NActionRQ, NCreateRQ, NDeleteRQ, NGetRQ:
		c.AffectedSOPInstanceUID = rq.AffectedSOPInstanceUID
		if c.AffectedSOPInstanceUID == "" {
			c.AffectedSOPInstanceUID = rq.RequestedSOPInstanceUID
		}
		if c.AffectedSOPClassUID == "" {
			c.AffectedSOPClassUID = rq.RequestedSOPClassUID
		}
	}
	if w.counts != nil && (rq.Field == CMoveRQ || rq.Field == CGetRQ) {
		n := *w.counts
		if CategoryOf(st.Code) == CategoryPending {
			c.Remaining = &n[0]
		}
		c.Completed, c.Failed, c.Warning = &n[1], &n[2], &n[3]
	}
	return c
}

// Respond implements ResponseWriter.
func (w *responseWriter) Respond(st Status, data []byte) error {
	if w.final {
		return ErrAlreadyResponded
	}
	if CategoryOf(st.Code) == CategoryPending {
		return fmt.Errorf("dimse: Respond with pending status 0x%04X; use Pending", st.Code)
	}
	w.final = true
	if w.inc.data != nil {
		if err := w.inc.data.drain(); err != nil {
			return err
		}
	}
	var d []byte
	if len(data) > 0 {
		d = data
	}
	return w.a.send(context.Background(), w.inc.pc.ID, w.response(st), d, nil)
}

// Pending implements ResponseWriter.
func (w *responseWriter) Pending(st Status, data []byte) error {
	if w.final {
		return ErrAlreadyResponded
	}
	switch w.inc.cmd.Field {
	case CFindRQ, CMoveRQ, CGetRQ:
	default:
		return fmt.Errorf("dimse: pending response to %s", w.inc.cmd.Field)
	}
	if CategoryOf(st.Code) != CategoryPending {
		return fmt.Errorf("dimse: Pending with status 0x%04X", st.Code)
	}
	var d []byte
	if len(data) > 0 {
		d = data
	}
	return w.a.send(context.Background(), w.inc.pc.ID, w.response(st), d, nil)
}

// SetSubOperationCounts implements SubOperationCounter.
func (w *responseWriter) SetSubOperationCounts(remaining, completed, failed, warning uint16) {
	w.counts = &[4]uint16{remaining, completed, failed, warning}
}

// Store implements SubOperator: a C-STORE sub-operation on this
// association (C-GET, PS3.4 Annex C.4.3).
func (w *responseWriter) Store(ctx context.Context, sopClass, sopInstance string, data io.Reader, ts string) (Status, error) {
	for _, pc := range w.a.info.Contexts {
		if pc.AbstractSyntax == sopClass && pc.SCPRole && (ts == "" || pc.TransferSyntax == ts) {
			cmd := &Command{Field: CStoreRQ, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sopInstance,
				Priority: PriorityMedium, MoveOriginatorMessageID: 0}
			return w.a.request(ctx, pc.ID, cmd, nil, data)
		}
	}
	return Status{}, fmt.Errorf("%w for %s (SCP role) %s", ErrNoContext, sopClass, ts)
}

// request sends a request and waits for its final response (pending
// responses and their data sets are skipped).
func (a *assoc) request(ctx context.Context, pcID uint8, cmd *Command, data []byte, r io.Reader) (Status, error) {
	final, _, err := a.requestEach(ctx, pcID, cmd, data, r, nil)
	return final.Status, err
}

// maxResponseData bounds a response data set read into memory (C-FIND
// identifiers, N-GET attribute lists).
const maxResponseData = 64 << 20

// requestEach sends a request and waits for its final response. Each
// pending response is passed to pending with its data set; when pending
// returns false, or ctx ends, a C-CANCEL-RQ is sent (PS3.7 Section 9.3.2.3)
// and the final response is still awaited (for ctx, at most ARTIM).
func (a *assoc) requestEach(ctx context.Context, pcID uint8, cmd *Command, data []byte, r io.Reader,
	pending func(Command, []byte) bool) (Command, []byte, error) {
	id := uint16(a.msgID.Add(1))
	if id == 0 {
		id = uint16(a.msgID.Add(1))
	}
	cmd.MessageID = id
	ch := make(chan *incoming, 4)
	a.mu.Lock()
	a.waiters[id] = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiters, id)
		a.mu.Unlock()
	}()
	if err := a.send(ctx, pcID, cmd, data, r); err != nil {
		return Command{}, nil, err
	}
	cancelled := false
	cancel := func() {
		if !cancelled {
			cancelled = true
			a.send(context.Background(), pcID, &Command{Field: CCancelRQ, MessageIDBeingRespondedTo: id}, nil, nil)
		}
	}
	receive := func(inc *incoming) (Command, []byte, bool, error) {
		var body []byte
		if inc.data != nil {
			var err error
			if pending != nil || inc.cmd.Status.Category() != CategoryPending {
				body, err = io.ReadAll(io.LimitReader(inc.data, maxResponseData))
			}
			if derr := inc.data.drain(); err == nil && derr != nil {
				err = derr
			}
			if err != nil {
				return Command{}, nil, true, err
			}
		}
		if inc.cmd.Status.Category() == CategoryPending {
			if pending != nil && !cancelled && !pending(inc.cmd, body) {
				cancel()
			}
			return Command{}, nil, false, nil
		}
		return inc.cmd, body, true, nil
	}
	done := ctx.Done()
	var timeout <-chan time.Time
	for {
		select {
		case inc := <-ch:
			c, body, final, err := receive(inc)
			if final {
				return c, body, err
			}
		case <-done:
			// Ask the peer to stop, then give it ARTIM to answer.
			cancel()
			done = nil
			t := time.NewTimer(max(a.artim, time.Second))
			defer t.Stop()
			timeout = t.C
		case <-timeout:
			return Command{}, nil, ctx.Err()
		case <-a.ctx.Done():
			// A response that arrived just before the end still counts.
			select {
			case inc := <-ch:
				if c, body, final, err := receive(inc); final {
					return c, body, err
				}
			default:
			}
			return Command{}, nil, a.endError()
		}
	}
}

func (a *assoc) endError() error {
	<-a.ctx.Done()
	if a.endErr != nil {
		return a.endErr
	}
	return ErrAssociationEnded
}
