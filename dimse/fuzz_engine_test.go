package dimse

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzAssociation feeds arbitrary bytes to an established association on
// the server side: the engine must neither panic nor hang, whatever
// follows the A-ASSOCIATE-RQ.
func FuzzAssociation(f *testing.F) {
	const ct = "1.2.840.10008.5.1.4.1.1.2"
	pd := func(pdvs ...PDV) []byte { b, _ := (&PDataTF{PDVs: pdvs}).MarshalBinary(); return b }
	echo := (&Command{Field: CEchoRQ, MessageID: 1, AffectedSOPClassUID: VerificationSOPClass}).Encode()
	store := (&Command{Field: CStoreRQ, MessageID: 2, AffectedSOPClassUID: ct, AffectedSOPInstanceUID: "1.2", HasDataSet: true}).Encode()
	find := (&Command{Field: CFindRQ, MessageID: 3, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.1", HasDataSet: true}).Encode()
	cancel := (&Command{Field: CCancelRQ, MessageIDBeingRespondedTo: 3}).Encode()
	rel, _ := (&AReleaseRQ{}).MarshalBinary()
	ab, _ := (&AAbort{}).MarshalBinary()
	f.Add(pd(PDV{ContextID: 1, Command: true, Last: true, Data: echo}))
	f.Add(append(pd(PDV{ContextID: 1, Command: true, Last: true, Data: echo}), rel...))
	f.Add(bytes.Join([][]byte{pd(PDV{ContextID: 3, Command: true, Last: true, Data: store}), pd(PDV{ContextID: 3, Data: []byte("abc")}),
		pd(PDV{ContextID: 3, Last: true, Data: []byte("def")}), rel}, nil))
	f.Add(bytes.Join([][]byte{pd(PDV{ContextID: 5, Command: true, Last: true, Data: find}, PDV{ContextID: 5, Last: true, Data: []byte{8, 0, 0x52, 0, 0, 0, 0, 0}}),
		pd(PDV{ContextID: 5, Command: true, Last: true, Data: cancel}), ab}, nil))
	f.Add(pd(PDV{ContextID: 1, Command: true, Data: echo[:10]}, PDV{ContextID: 1, Command: true, Last: true, Data: echo[10:]}))
	f.Fuzz(func(t *testing.T, in []byte) {
		mux := NewServeMux()
		mux.Handle(CEcho, VerificationSOPClass, EchoHandler)
		mux.Handle(CStore, ct, HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
			io.Copy(io.Discard, r.Data)
			w.Respond(Status{}, nil)
		}))
		mux.Handle(CFind, "1.2.840.10008.5.1.4.1.2.2.1", HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			w.Respond(Status{}, nil)
		}))
		s := &Server{Handler: mux, ARTIMTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond, MaxPDULength: 4096}
		sc, cc := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(s.newConn(sc), false)
		}()
		go io.Copy(io.Discard, cc)
		rq := &AAssociateRQ{ProtocolVersion: 1, CalledAE: "A", CallingAE: "B", ApplicationContext: DICOMApplicationContext,
			Contexts: []PresentationContextRQItem{
				{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
				{ID: 3, AbstractSyntax: ct, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
				{ID: 5, AbstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			}}
		rq.UserInfo.MaxLength = 1024
		b, _ := rq.MarshalBinary()
		cc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		cc.Write(append(b, in...))
		cc.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("serveConn did not return")
		}
	})
}
