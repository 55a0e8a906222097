package dimse_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

// TestServerHonoursPeerMaxPDU: a C-FIND response with a 20 KB identifier
// to a peer that accepts 4 KB PDUs arrives in PDUs of at most 4 KB.
func TestServerHonoursPeerMaxPDU(t *testing.T) {
	ident := bytes.Repeat([]byte{0xAB}, 20000)
	mux := newMux(nil)
	mux.Handle(dimse.CFind, studyRootFind, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		w.Pending(dimse.Status{Code: dimse.StatusPending}, ident)
		w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
	}))
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux})
	p := dimsetest.DialPeer(t, srv.Addr)
	rq := dimsetest.AssociateRQ("RAW", "RELAIS", dimse.PresentationContextRQItem{ID: 3, AbstractSyntax: studyRootFind,
		TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}})
	rq.UserInfo.MaxLength = 4096
	p.Associate(rq)
	find := &dimse.Command{Field: dimse.CFindRQ, MessageID: 1, AffectedSOPClassUID: studyRootFind, HasDataSet: true}
	p.SendPDU(&dimse.PDataTF{PDVs: []dimse.PDV{{ContextID: 3, Command: true, Last: true, Data: find.Encode()}, {ContextID: 3, Last: true, Data: []byte{8, 0, 0x52, 0, 0, 0, 0, 0}}}})
	var data []byte
	var cmds int
	for cmds < 2 {
		p.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		pdu, err := dimse.ReadPDU(p.Conn, 4096) // fails on a larger PDU
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		for _, v := range pdu.(*dimse.PDataTF).PDVs {
			if v.Command && v.Last {
				cmds++
			} else if !v.Command {
				data = append(data, v.Data...)
			}
		}
	}
	if !bytes.Equal(data, ident) {
		t.Fatalf("identifier: %d bytes", len(data))
	}
}

// TestClientHonoursPeerMaxPDU: our client's C-STORE to an acceptor that
// accepts 4 KB PDUs uses PDUs of at most 4 KB; with 0 (unlimited) it caps
// at its own maximum.
func TestClientHonoursPeerMaxPDU(t *testing.T) {
	for _, tc := range []struct {
		peerMax, ourMax, limit uint32
	}{{4096, 1 << 20, 4096}, {0, 8192, 8192}} {
		l := listenLoopback(t)
		payload := bytes.Repeat([]byte("0123456789"), 5000)
		done := make(chan error, 1)
		go func() {
			done <- fakeStoreSCP(l, tc.peerMax, tc.limit, payload)
		}()
		as, err := dimse.Dial(context.Background(), l.Addr().String(), dimse.DialOptions{CallingAE: "A", CalledAE: "B", MaxPDULength: tc.ourMax,
			Contexts: []dimse.ProposedContext{{AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}}}})
		if err != nil {
			t.Fatal(err)
		}
		pc, _ := as.FindContext(ctImageStorage, "")
		st, err := as.Store(context.Background(), pc, ctImageStorage, "1.2.3", bytes.NewReader(payload))
		if err != nil || st.Code != 0 {
			t.Fatalf("Store: %v %v", st, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("peer max %d: %v", tc.peerMax, err)
		}
		as.Abort()
	}
}

// fakeStoreSCP accepts one association with the given max length, reads a
// C-STORE with PDUs no longer than limit, checks the data and answers.
func fakeStoreSCP(l net.Listener, peerMax, limit uint32, want []byte) error {
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	p, err := dimse.ReadPDU(c, 1<<20)
	if err != nil {
		return err
	}
	rq := p.(*dimse.AAssociateRQ)
	ac := &dimse.AAssociateAC{ProtocolVersion: 1, CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, ApplicationContext: rq.ApplicationContext,
		Contexts: []dimse.PresentationContextACItem{{ID: rq.Contexts[0].ID, TransferSyntax: dimse.ImplicitVRLittleEndian}}}
	ac.UserInfo.MaxLength = peerMax
	dimse.WritePDU(c, ac)
	var cmd []byte
	var data []byte
	for {
		p, err := dimse.ReadPDU(c, limit)
		if err != nil {
			return err
		}
		last := false
		for _, v := range p.(*dimse.PDataTF).PDVs {
			if v.Command {
				cmd = append(cmd, v.Data...)
			} else {
				data = append(data, v.Data...)
				last = v.Last
			}
		}
		if last {
			break
		}
	}
	c1, err := dimse.DecodeCommand(cmd)
	if err != nil {
		return err
	}
	if !bytes.Equal(data, want) {
		return errString("data mismatch")
	}
	rsp := &dimse.Command{Field: dimse.CStoreRSP, MessageIDBeingRespondedTo: c1.MessageID, AffectedSOPClassUID: c1.AffectedSOPClassUID,
		AffectedSOPInstanceUID: c1.AffectedSOPInstanceUID}
	return dimse.WritePDU(c, dimsetest.CommandPDU(ac.Contexts[0].ID, rsp))
}

type errString string

func (e errString) Error() string { return string(e) }

// TestCGetSubOperation: a C-GET handler stores on the same association
// through SubOperator; the requestor plays SCP for CT storage.
func TestCGetSubOperation(t *testing.T) {
	const patientRootGet = "1.2.840.10008.5.1.4.1.2.1.3"
	instance := bytes.Repeat([]byte{7}, 30000)
	mux := newMux(nil)
	mux.Handle(dimse.CGet, patientRootGet, dimse.HandlerFunc(func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
		so := w.(dimse.SubOperator)
		w.(dimse.SubOperationCounter).SetSubOperationCounts(1, 0, 0, 0)
		w.Pending(dimse.Status{Code: dimse.StatusPending}, nil)
		st, err := so.Store(ctx, ctImageStorage, "1.2.3.9", bytes.NewReader(instance), "")
		if err != nil || st.Code != 0 {
			w.(dimse.SubOperationCounter).SetSubOperationCounts(0, 0, 1, 0)
			w.Respond(dimse.Status{Code: dimse.StatusWarningSubOpsFailed}, nil)
			return
		}
		w.(dimse.SubOperationCounter).SetSubOperationCounts(0, 1, 0, 0)
		w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
	}))
	// The server must accept CT storage for the SCP role.
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: mux,
		AbstractSyntaxes: func(uid string) bool {
			return uid == patientRootGet || uid == ctImageStorage || uid == dimse.VerificationSOPClass
		}})
	p := dimsetest.DialPeer(t, srv.Addr)
	rq := dimsetest.AssociateRQ("RAW", "RELAIS",
		dimse.PresentationContextRQItem{ID: 3, AbstractSyntax: patientRootGet, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}},
		dimse.PresentationContextRQItem{ID: 5, AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}})
	rq.UserInfo.Roles = []dimse.RoleSelection{{SOPClassUID: ctImageStorage, SCU: false, SCP: true}}
	ac := p.Associate(rq)
	if len(ac.UserInfo.Roles) != 1 || !ac.UserInfo.Roles[0].SCP || ac.UserInfo.Roles[0].SCU {
		t.Fatalf("role selection answer %+v", ac.UserInfo.Roles)
	}
	get := &dimse.Command{Field: dimse.CGetRQ, MessageID: 1, AffectedSOPClassUID: patientRootGet, HasDataSet: true}
	p.SendPDU(&dimse.PDataTF{PDVs: []dimse.PDV{{ContextID: 3, Command: true, Last: true, Data: get.Encode()}, {ContextID: 3, Last: true, Data: []byte{8, 0, 0x52, 0, 0, 0, 0, 0}}}})
	pend := p.ExpectCommand()
	if pend.Field != dimse.CGetRSP || pend.Status.Code != dimse.StatusPending || pend.Remaining == nil || *pend.Remaining != 1 {
		t.Fatalf("pending %+v", pend)
	}
	store := p.ExpectCommand()
	if store.Field != dimse.CStoreRQ || store.AffectedSOPInstanceUID != "1.2.3.9" {
		t.Fatalf("sub-op %+v", store)
	}
	var data []byte
	for len(data) < len(instance) {
		for _, v := range p.Expect(dimse.PDUPDataTF).(*dimse.PDataTF).PDVs {
			data = append(data, v.Data...)
		}
	}
	if !bytes.Equal(data, instance) {
		t.Fatal("sub-operation data mismatch")
	}
	p.SendPDU(dimsetest.CommandPDU(5, &dimse.Command{Field: dimse.CStoreRSP, MessageIDBeingRespondedTo: store.MessageID,
		AffectedSOPClassUID: ctImageStorage, AffectedSOPInstanceUID: "1.2.3.9"}))
	final := p.ExpectCommand()
	if final.Status.Code != 0 || final.Completed == nil || *final.Completed != 1 || final.Remaining != nil {
		t.Fatalf("final %+v", final)
	}
}

// TestStoreCancelledMidStreamAborts: ctx ending while the data set is on
// the wire aborts the association (a partial message cannot be taken back).
func TestStoreCancelledMidStreamAborts(t *testing.T) {
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(newSink()), MaxPDULength: 16384})
	as := dial(t, srv.Addr, 0)
	pc, _ := as.FindContext(ctImageStorage, "")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := as.Store(ctx, pc, ctImageStorage, "1.2.3", &slowReader{n: 1 << 30})
	if err == nil {
		t.Fatal("Store succeeded")
	}
	<-as.Done()
	srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationAborted))
	echoOnce(t, srv.Addr)
}

type slowReader struct{ n int }

func (r *slowReader) Read(b []byte) (int, error) {
	time.Sleep(time.Millisecond)
	if len(b) > 1000 {
		b = b[:1000]
	}
	return len(b), nil
}
