package dimse_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

func echoOnce(t *testing.T, addr string) {
	t.Helper()
	as := dial(t, addr, 0)
	st, err := as.Echo(context.Background())
	if err != nil || st.Code != 0 {
		t.Fatalf("follow-up echo: %v %v", st, err)
	}
	if err := as.Release(context.Background()); err != nil {
		t.Fatalf("follow-up release: %v", err)
	}
}

func expectAbort(t *testing.T, p *dimsetest.Peer, src dimse.AbortSource, reason dimse.AbortReason) {
	t.Helper()
	ab := p.Expect(dimse.PDUAbort).(*dimse.AAbort)
	if ab.Source != src || ab.Reason != reason {
		t.Fatalf("A-ABORT %v/%v, want %v/%v", ab.Source, ab.Reason, src, reason)
	}
	p.Close()
}

func pdataHeader(pduLen uint32) []byte {
	b := []byte{4, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:], pduLen)
	return b
}

// TestMalformedInput sends hostile input over raw TCP: each case ends
// with the right A-ABORT, an Event, no panic, and the server still serves.
func TestMalformedInput(t *testing.T) {
	lyingRQ := func() []byte {
		b, _ := dimsetest.AssociateRQ("RAW", "RELAIS").MarshalBinary()
		binary.BigEndian.PutUint16(b[74+2:], 0x7FFF) // application context item length
		return b
	}
	cases := []struct {
		name   string
		script func(t *testing.T, p *dimsetest.Peer)
		reason dimse.AbortReason
		detail string
	}{
		{"garbage first byte", func(t *testing.T, p *dimsetest.Peer) {
			p.Send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortUnrecognizedPDU)
		}, dimse.AbortUnrecognizedPDU, "unrecognized PDU"},
		{"lying item length", func(t *testing.T, p *dimsetest.Peer) {
			p.Send(lyingRQ())
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortInvalidPDUParameterValue)
		}, dimse.AbortInvalidPDUParameterValue, "item 0x10 length"},
		{"A-ASSOCIATE-RQ longer than the limit", func(t *testing.T, p *dimsetest.Peer) {
			p.Send([]byte{1, 0, 0x7F, 0xFF, 0xFF, 0xFF})
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortInvalidPDUParameterValue)
		}, dimse.AbortInvalidPDUParameterValue, "exceeds limit"},
		{"P-DATA longer than max after association", func(t *testing.T, p *dimsetest.Peer) {
			p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS"))
			p.Send(pdataHeader(64 << 20))
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortInvalidPDUParameterValue)
		}, dimse.AbortInvalidPDUParameterValue, "exceeds our maximum"},
		{"P-DATA before association", func(t *testing.T, p *dimsetest.Peer) {
			p.SendPDU(dimsetest.CommandPDU(1, &dimse.Command{Field: dimse.CEchoRQ, MessageID: 1, AffectedSOPClassUID: dimse.VerificationSOPClass}))
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortUnexpectedPDU)
		}, dimse.AbortUnexpectedPDU, "P-DATA-TF before A-ASSOCIATE-RQ"},
		{"P-DATA on unaccepted context", func(t *testing.T, p *dimsetest.Peer) {
			p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS"))
			p.SendPDU(dimsetest.CommandPDU(3, &dimse.Command{Field: dimse.CEchoRQ, MessageID: 1, AffectedSOPClassUID: dimse.VerificationSOPClass}))
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortInvalidPDUParameterValue)
		}, dimse.AbortInvalidPDUParameterValue, "context 3, which was not accepted"},
		{"unreadable command set", func(t *testing.T, p *dimsetest.Peer) {
			p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS"))
			p.SendPDU(&dimse.PDataTF{PDVs: []dimse.PDV{{ContextID: 1, Command: true, Last: true, Data: []byte{0, 0, 0, 1, 9, 9, 9, 9}}}})
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortUnexpectedPDUParameter)
		}, dimse.AbortUnexpectedPDUParameter, "invalid command set"},
		{"data PDV without command", func(t *testing.T, p *dimsetest.Peer) {
			p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS"))
			p.SendPDU(&dimse.PDataTF{PDVs: []dimse.PDV{{ContextID: 1, Last: true, Data: []byte{1, 2}}}})
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortUnexpectedPDUParameter)
		}, dimse.AbortUnexpectedPDUParameter, "without a command"},
		{"second A-ASSOCIATE-RQ", func(t *testing.T, p *dimsetest.Peer) {
			p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS"))
			p.SendPDU(dimsetest.AssociateRQ("RAW", "RELAIS"))
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortUnexpectedPDU)
		}, dimse.AbortUnexpectedPDU, "unexpected A-ASSOCIATE-RQ"},
		{"unknown PDU type after association", func(t *testing.T, p *dimsetest.Peer) {
			p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS"))
			p.Send([]byte{0x0A, 0, 0, 0, 0, 2, 1, 2})
			expectAbort(t, p, dimse.AbortServiceProvider, dimse.AbortUnrecognizedPDU)
		}, dimse.AbortUnrecognizedPDU, "unrecognized PDU"},
		{"truncated PDU then close", func(t *testing.T, p *dimsetest.Peer) {
			b, _ := dimsetest.AssociateRQ("RAW", "RELAIS").MarshalBinary()
			p.Send(b[:40])
			p.Close()
		}, 0, "connection lost before A-ASSOCIATE-RQ"},
		{"truncated P-DATA then close", func(t *testing.T, p *dimsetest.Peer) {
			p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS"))
			p.Send(append(pdataHeader(100), 0, 0, 0, 50, 1, 3))
			p.Close()
		}, 0, "transport connection closed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil)})
			p := dimsetest.DialPeer(t, srv.Addr)
			tc.script(t, p)
			ev := srv.WaitEvent(t, 5*time.Second, func(ev dimse.Event) bool {
				return (ev.Kind == dimse.ProtocolError || ev.Kind == dimse.AssociationAborted) && strings.Contains(ev.Detail, tc.detail)
			})
			if tc.reason != 0 && (ev.AbortSource != uint8(dimse.AbortServiceProvider) || ev.AbortReason != uint8(tc.reason)) {
				t.Errorf("event %+v", ev)
			}
			echoOnce(t, srv.Addr)
		})
	}
}

func TestRejections(t *testing.T) {
	admit := func(ctx context.Context, rq *dimse.AssociateRequest) *dimse.Rejection {
		if rq.CalledAE != "RELAIS" {
			return &dimse.Rejection{Result: dimse.RejectedPermanent, Source: dimse.SourceServiceUser, Reason: dimse.ReasonCalledAENotRecognized}
		}
		return nil
	}
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil), Admit: admit})
	_, err := dimse.Dial(context.Background(), srv.Addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "WRONG"})
	var rj *dimse.Rejection
	if !errors.As(err, &rj) || *rj != (dimse.Rejection{dimse.RejectedPermanent, dimse.SourceServiceUser, dimse.ReasonCalledAENotRecognized}) {
		t.Fatalf("Dial: %v", err)
	}
	ev := srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationRejected))
	if ev.Assoc.CalledAE != "WRONG" || ev.Assoc.CallingAE != "SCU" || ev.Assoc.RemoteAddr == nil {
		t.Errorf("partial assoc info %+v", ev.Assoc)
	}

	// Application context and protocol version are checked by the engine.
	for _, tc := range []struct {
		mod  func(*dimse.AAssociateRQ)
		want dimse.Rejection
	}{
		{func(rq *dimse.AAssociateRQ) { rq.ApplicationContext = "1.2.3" },
			dimse.Rejection{dimse.RejectedPermanent, dimse.SourceServiceUser, dimse.ReasonApplicationContextNotSupported}},
		{func(rq *dimse.AAssociateRQ) { rq.ProtocolVersion = 2 },
			dimse.Rejection{dimse.RejectedPermanent, dimse.SourceServiceProviderACSE, dimse.ReasonProtocolVersionNotSupported}},
	} {
		p := dimsetest.DialPeer(t, srv.Addr)
		rq := dimsetest.AssociateRQ("RAW", "RELAIS")
		tc.mod(rq)
		p.SendPDU(rq)
		got := p.Expect(dimse.PDUAssociateRJ).(*dimse.AAssociateRJ)
		if (dimse.Rejection{got.Result, got.Source, got.Reason}) != tc.want {
			t.Errorf("got %+v want %+v", got, tc.want)
		}
		p.Close()
	}
	echoOnce(t, srv.Addr)
}

func TestMaxAssociations(t *testing.T) {
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil), MaxAssociations: 1})
	first := dial(t, srv.Addr, 0)
	_, err := dimse.Dial(context.Background(), srv.Addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "RELAIS"})
	var rj *dimse.Rejection
	if !errors.As(err, &rj) || *rj != (dimse.Rejection{dimse.RejectedTransient, dimse.SourceServiceProviderPresentation, dimse.ReasonLocalLimitExceeded}) {
		t.Fatalf("second Dial: %v", err)
	}
	first.Release(context.Background())
	srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationReleased))
	// The slot is free once the first association's connection is gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		as, err := dimse.Dial(context.Background(), srv.Addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "RELAIS"})
		if err == nil {
			as.Release(context.Background())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("third Dial: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAbortByClient(t *testing.T) {
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil)})
	as := dial(t, srv.Addr, 0)
	as.Abort()
	ev := srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationAborted))
	if !ev.ByPeer || ev.AbortSource != uint8(dimse.AbortServiceUser) {
		t.Errorf("event %+v", ev)
	}
	if _, err := as.Echo(context.Background()); !errors.Is(err, dimse.ErrAssociationEnded) {
		t.Errorf("Echo after abort: %v", err)
	}
}

func TestAbortByServerHandler(t *testing.T) {
	// A handler that never answers, and a server shutdown that cannot wait.
	block := make(chan struct{})
	mux := newMux(nil)
	mux.Handle(dimse.CStore, ctImageStorage, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		select {
		case <-block:
		case <-ctx.Done():
		}
	}))
	s := &dimse.Server{AETitle: "RELAIS", Handler: mux}
	srv := dimsetest.NewServer(t, s)
	as := dial(t, srv.Addr, 0)
	pc, _ := as.FindContext(ctImageStorage, "")
	errc := make(chan error, 1)
	go func() {
		_, err := as.Store(context.Background(), pc, ctImageStorage, "1.2.3", strings.NewReader("data"))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	err := <-errc
	var ae *dimse.AbortError
	if !errors.As(err, &ae) || !ae.ByPeer {
		t.Fatalf("Store during shutdown: %v", err)
	}
	close(block)
}

func TestIdleTimeout(t *testing.T) {
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil), IdleTimeout: 200 * time.Millisecond})
	as := dial(t, srv.Addr, 0)
	if _, err := as.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-as.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("association not aborted after idle timeout")
	}
	ev := srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationAborted))
	if !errors.Is(ev.Err, dimse.ErrIdleTimeout) {
		t.Errorf("event %+v", ev)
	}
	var ae *dimse.AbortError
	if !errors.As(as.Err(), &ae) || !ae.ByPeer {
		t.Errorf("client sees %v", as.Err())
	}
}

func TestIdleTimeoutNotWhileBusy(t *testing.T) {
	mux := newMux(nil)
	mux.Handle(dimse.CStore, ctImageStorage, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		time.Sleep(600 * time.Millisecond) // longer than the idle timeout
		w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
	}))
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux, IdleTimeout: 200 * time.Millisecond})
	as := dial(t, srv.Addr, 0)
	pc, _ := as.FindContext(ctImageStorage, "")
	st, err := as.Store(context.Background(), pc, ctImageStorage, "1.2.3", strings.NewReader("x"))
	if err != nil || st.Code != 0 {
		t.Fatalf("Store: %v %v", st, err)
	}
	as.Release(context.Background())
}

func TestARTIMOnSilentConnection(t *testing.T) {
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(nil), ARTIMTimeout: 200 * time.Millisecond})
	p := dimsetest.DialPeer(t, srv.Addr)
	start := time.Now()
	p.ExpectClose(5 * time.Second)
	if el := time.Since(start); el < 150*time.Millisecond || el > 3*time.Second {
		t.Errorf("closed after %v", el)
	}
	ev := srv.WaitEvent(t, time.Second, dimsetest.Kind(dimse.ProtocolError))
	if !errors.Is(ev.Err, dimse.ErrARTIMExpired) {
		t.Errorf("event %+v", ev)
	}
	echoOnce(t, srv.Addr)
}

// TestCCancel: a C-CANCEL-RQ cancels the ctx of the C-FIND handler it
// names; the handler answers FE00.
func TestCCancel(t *testing.T) {
	started := make(chan struct{})
	var sawCancel atomic.Bool
	mux := newMux(nil)
	mux.Handle(dimse.CFind, studyRootFind, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		w.Pending(dimse.Status{Code: dimse.StatusPending}, []byte{8, 0, 0x50, 0, 0, 0, 0, 0})
		close(started)
		select {
		case <-ctx.Done():
			sawCancel.Store(true)
			w.Respond(dimse.Status{Code: dimse.StatusCancel}, nil)
		case <-time.After(10 * time.Second):
			w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
		}
	}))
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux})
	p := dimsetest.DialPeer(t, srv.Addr)
	ac := p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS", dimse.PresentationContextRQItem{ID: 3, AbstractSyntax: studyRootFind,
		TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}}))
	if ac.Contexts[1].Result != dimse.PCAcceptance {
		t.Fatalf("find context: %+v", ac.Contexts)
	}
	find := &dimse.Command{Field: dimse.CFindRQ, MessageID: 42, AffectedSOPClassUID: studyRootFind, HasDataSet: true}
	p.SendPDU(&dimse.PDataTF{PDVs: []dimse.PDV{
		{ContextID: 3, Command: true, Last: true, Data: find.Encode()},
		{ContextID: 3, Last: true, Data: []byte{8, 0, 0x52, 0, 6, 0, 0, 0, 'S', 'T', 'U', 'D', 'Y', ' '}},
	}})
	pending := p.ExpectCommand()
	if pending.Field != dimse.CFindRSP || pending.Status.Code != dimse.StatusPending || !pending.HasDataSet {
		t.Fatalf("pending: %+v", pending)
	}
	p.Expect(dimse.PDUPDataTF) // the identifier
	<-started
	p.SendPDU(dimsetest.CommandPDU(3, &dimse.Command{Field: dimse.CCancelRQ, MessageIDBeingRespondedTo: 42}))
	final := p.ExpectCommand()
	if final.Status.Code != dimse.StatusCancel || final.MessageIDBeingRespondedTo != 42 || !sawCancel.Load() {
		t.Fatalf("final: %+v", final)
	}
	p.SendPDU(&dimse.AReleaseRQ{})
	p.Expect(dimse.PDUReleaseRP)
}

func TestEngineAnswersForHandlers(t *testing.T) {
	mux := newMux(nil)
	mux.Handle(dimse.CStore, ctImageStorage, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		switch r.Command.AffectedSOPInstanceUID {
		case "panic":
			panic("boom")
		case "silent":
			return
		}
		w.Respond(dimse.Status{Code: dimse.StatusWarningCoercion, Comment: "coerced"}, nil)
	}))
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux})
	as := dial(t, srv.Addr, 0)
	defer as.Release(context.Background())
	pc, _ := as.FindContext(ctImageStorage, "")
	for uid, want := range map[string]uint16{"panic": dimse.StatusProcessingFailure, "silent": dimse.StatusProcessingFailure, "ok": dimse.StatusWarningCoercion} {
		st, err := as.Store(context.Background(), pc, ctImageStorage, uid, strings.NewReader(strings.Repeat("x", 100000)))
		if err != nil || st.Code != want {
			t.Errorf("%s: %v %v, want 0x%04X", uid, st, err, want)
		}
	}
	// A C-STORE-RQ without Affected SOP Instance UID: C000 without calling
	// the handler, data drained; a command the mux does not know: 0x0211.
	p := dimsetest.DialPeer(t, srv.Addr)
	p.Associate(dimsetest.AssociateRQ("RAW", "RELAIS", dimse.PresentationContextRQItem{ID: 3, AbstractSyntax: ctImageStorage,
		TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}}))
	bad := &dimse.Command{Field: dimse.CStoreRQ, MessageID: 5, AffectedSOPClassUID: ctImageStorage, HasDataSet: true}
	p.SendPDU(&dimse.PDataTF{PDVs: []dimse.PDV{{ContextID: 3, Command: true, Last: true, Data: bad.Encode()}, {ContextID: 3, Data: make([]byte, 1000)}}})
	p.SendPDU(&dimse.PDataTF{PDVs: []dimse.PDV{{ContextID: 3, Last: true, Data: make([]byte, 1000)}}})
	rsp := p.ExpectCommand()
	if rsp.Field != dimse.CStoreRSP || rsp.Status.Code != dimse.StatusCannotUnderstand || len(rsp.Status.OffendingElements) != 1 {
		t.Fatalf("rsp %+v", rsp)
	}
	p.SendPDU(dimsetest.CommandPDU(1, &dimse.Command{Field: dimse.NGetRQ, MessageID: 6, RequestedSOPClassUID: dimse.VerificationSOPClass}))
	if rsp := p.ExpectCommand(); rsp.Status.Code != dimse.StatusSOPClassNotSupported || rsp.Field != dimse.NGetRSP {
		t.Fatalf("N-GET rsp %+v", rsp)
	}
	p.SendPDU(dimsetest.CommandPDU(1, &dimse.Command{Field: dimse.CommandField(0x0777), MessageID: 7}))
	if rsp := p.ExpectCommand(); rsp.Status.Code != dimse.StatusUnrecognizedOperation {
		t.Fatalf("unknown rsp %+v", rsp)
	}
	p.SendPDU(dimsetest.CommandPDU(1, &dimse.Command{Field: dimse.CEchoRQ, MessageID: 8, AffectedSOPClassUID: dimse.VerificationSOPClass}))
	if rsp := p.ExpectCommand(); rsp.Status.Code != 0 || rsp.MessageIDBeingRespondedTo != 8 {
		t.Fatalf("echo rsp %+v", rsp)
	}
}

func TestMuxDuplicatePanics(t *testing.T) {
	mux := dimse.NewServeMux()
	mux.Handle(dimse.CEcho, dimse.VerificationSOPClass, dimse.EchoHandler)
	defer func() {
		r := recover()
		s, _ := r.(string)
		if strings.Count(s, "protocol_test.go:") != 2 {
			t.Fatalf("panic %q does not name both callers", s)
		}
	}()
	mux.HandleClasses(dimse.CEcho, []string{dimse.VerificationSOPClass}, dimse.EchoHandler)
}

// TestPeerInitiatedRelease: our client answers an A-RELEASE-RQ from the
// acceptor with A-RELEASE-RP (AR-2, AR-4).
func TestPeerInitiatedRelease(t *testing.T) {
	l := listenLoopback(t)
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		p, err := dimse.ReadPDU(c, 1<<20)
		if err != nil {
			done <- err
			return
		}
		rq := p.(*dimse.AAssociateRQ)
		ac := &dimse.AAssociateAC{ProtocolVersion: 1, CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, ApplicationContext: rq.ApplicationContext,
			Contexts: []dimse.PresentationContextACItem{{ID: rq.Contexts[0].ID, TransferSyntax: dimse.ImplicitVRLittleEndian}}}
		ac.UserInfo.MaxLength = 0 // unlimited
		dimse.WritePDU(c, ac)
		dimse.WritePDU(c, &dimse.AReleaseRQ{})
		p, err = dimse.ReadPDU(c, 1<<20)
		if err == nil && p.Type() != dimse.PDUReleaseRP {
			err = errors.New("got " + p.Type().String())
		}
		done <- err
	}()
	var events []dimse.Event
	as, err := dimse.Dial(context.Background(), l.Addr().String(), dimse.DialOptions{CallingAE: "A", CalledAE: "B",
		OnEvent: func(ev dimse.Event) { events = append(events, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("fake acceptor: %v", err)
	}
	<-as.Done()
	if as.Info().PeerMaxPDULength != 0 {
		t.Errorf("peer max %d", as.Info().PeerMaxPDULength)
	}
}
