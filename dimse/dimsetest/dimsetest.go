// Package dimsetest provides fakes and helpers for testing code built on
// package dimse: a loopback Server with an event log, a Recorder
// ResponseWriter, and a scripted raw Peer for golden PDU exchanges.
package dimsetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
)

// Server is a dimse.Server listening on 127.0.0.1:0 for one test.
type Server struct {
	*dimse.Server
	Addr string

	mu     sync.Mutex
	events []dimse.Event
	notify chan struct{}
	done   chan error
}

// NewServer starts srv (its OnEvent is wrapped to record events) on a
// loopback port and shuts it down when the test ends.
func NewServer(t testing.TB, srv *dimse.Server) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Server: srv, Addr: l.Addr().String(), notify: make(chan struct{}, 1), done: make(chan error, 1)}
	if srv.Logger == nil {
		// Exercise every log statement without cluttering test output.
		srv.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	user := srv.OnEvent
	srv.OnEvent = func(ev dimse.Event) {
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
		if user != nil {
			user(ev)
		}
	}
	go func() { s.done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-s.done; !errors.Is(err, dimse.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s
}

// Events returns a copy of the events seen so far.
func (s *Server) Events() []dimse.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]dimse.Event(nil), s.events...)
}

// WaitEvent waits until an event satisfying match has been recorded.
func (s *Server) WaitEvent(t testing.TB, timeout time.Duration, match func(dimse.Event) bool) dimse.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, ev := range s.Events() {
			if match(ev) {
				return ev
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no matching event within %v; have %+v", timeout, s.Events())
		}
		select {
		case <-s.notify:
		case <-time.After(min(left, 50*time.Millisecond)):
		}
	}
}

// Kind matches events of kind k.
func Kind(k dimse.EventKind) func(dimse.Event) bool {
	return func(ev dimse.Event) bool { return ev.Kind == k }
}

// Response is one response recorded by a Recorder.
type Response struct {
	Status  dimse.Status
	Data    []byte
	Pending bool
}

// Recorder is a dimse.ResponseWriter that records responses, for testing
// handlers without a network.
type Recorder struct {
	Responses []Response
}

// Respond records the final response.
func (r *Recorder) Respond(st dimse.Status, data []byte) error {
	if r.Final() != nil {
		return dimse.ErrAlreadyResponded
	}
	r.Responses = append(r.Responses, Response{Status: st, Data: bytes.Clone(data)})
	return nil
}

// Pending records a pending response.
func (r *Recorder) Pending(st dimse.Status, data []byte) error {
	if r.Final() != nil {
		return dimse.ErrAlreadyResponded
	}
	r.Responses = append(r.Responses, Response{Status: st, Data: bytes.Clone(data), Pending: true})
	return nil
}

// Final returns the final response, nil if none yet.
func (r *Recorder) Final() *Response {
	for i := range r.Responses {
		if !r.Responses[i].Pending {
			return &r.Responses[i]
		}
	}
	return nil
}

// Peer is a scripted raw peer speaking PDUs over TCP, for golden and
// malformed-input tests.
type Peer struct {
	t    testing.TB
	Conn net.Conn
}

// DialPeer connects a Peer to addr.
func DialPeer(t testing.TB, addr string) *Peer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Peer{t: t, Conn: c}
}

// Send writes raw bytes.
func (p *Peer) Send(b []byte) *Peer {
	p.t.Helper()
	p.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.Conn.Write(b); err != nil {
		p.t.Fatalf("peer send: %v", err)
	}
	return p
}

// SendPDU encodes and writes a PDU.
func (p *Peer) SendPDU(pdu dimse.PDU) *Peer {
	p.t.Helper()
	b, err := pdu.MarshalBinary()
	if err != nil {
		p.t.Fatal(err)
	}
	return p.Send(b)
}

// Read reads the next PDU, failing the test after timeout.
func (p *Peer) Read(timeout time.Duration) (dimse.PDU, error) {
	p.Conn.SetReadDeadline(time.Now().Add(timeout))
	return dimse.ReadPDU(p.Conn, 16<<20)
}

// Expect reads the next PDU and checks its type.
func (p *Peer) Expect(typ dimse.PDUType) dimse.PDU {
	p.t.Helper()
	pdu, err := p.Read(5 * time.Second)
	if err != nil {
		p.t.Fatalf("peer: expecting %s: %v", typ, err)
	}
	if pdu.Type() != typ {
		p.t.Fatalf("peer: got %s (%+v), want %s", pdu.Type(), pdu, typ)
	}
	return pdu
}

// ExpectClose waits for the server to close the connection.
func (p *Peer) ExpectClose(timeout time.Duration) {
	p.t.Helper()
	p.Conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := io.Copy(io.Discard, p.Conn)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		p.t.Fatalf("peer: waiting for close: %v (after %d bytes)", err, n)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// Close closes the peer's connection.
func (p *Peer) Close() { p.Conn.Close() }

// AssociateRQ returns an A-ASSOCIATE-RQ proposing Verification (context
// 1) with implicit VR little endian, plus extra contexts.
func AssociateRQ(calling, called string, extra ...dimse.PresentationContextRQItem) *dimse.AAssociateRQ {
	rq := &dimse.AAssociateRQ{
		ProtocolVersion:    1,
		CallingAE:          calling,
		CalledAE:           called,
		ApplicationContext: dimse.DICOMApplicationContext,
		Contexts: append([]dimse.PresentationContextRQItem{{ID: 1, AbstractSyntax: dimse.VerificationSOPClass,
			TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}}}, extra...),
	}
	rq.UserInfo.MaxLength = 16384
	rq.UserInfo.ImplementationClassUID = "1.2.3.4"
	return rq
}

// Associate sends rq and expects an A-ASSOCIATE-AC.
func (p *Peer) Associate(rq *dimse.AAssociateRQ) *dimse.AAssociateAC {
	p.t.Helper()
	p.SendPDU(rq)
	return p.Expect(dimse.PDUAssociateAC).(*dimse.AAssociateAC)
}

// CommandPDU returns a P-DATA-TF PDU carrying a whole command set.
func CommandPDU(pcID uint8, c *dimse.Command) *dimse.PDataTF {
	return &dimse.PDataTF{PDVs: []dimse.PDV{{ContextID: pcID, Command: true, Last: true, Data: c.Encode()}}}
}

// ExpectCommand reads P-DATA-TF PDUs until a whole command set arrived and
// decodes it.
func (p *Peer) ExpectCommand() dimse.Command {
	p.t.Helper()
	var buf []byte
	for {
		pd := p.Expect(dimse.PDUPDataTF).(*dimse.PDataTF)
		for _, v := range pd.PDVs {
			if !v.Command {
				p.t.Fatalf("peer: data PDV while expecting a command")
			}
			buf = append(buf, v.Data...)
			if v.Last {
				c, err := dimse.DecodeCommand(buf)
				if err != nil {
					p.t.Fatal(err)
				}
				return c
			}
		}
	}
}

// String describes the peer.
func (p *Peer) String() string { return fmt.Sprintf("peer %s", p.Conn.LocalAddr()) }
