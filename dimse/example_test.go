package dimse_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

func Example() {
	mux := dimse.NewServeMux()
	mux.Handle(dimse.CEcho, dimse.VerificationSOPClass, dimse.EchoHandler)
	mux.Handle(dimse.CStore, "1.2.840.10008.5.1.4.1.1.2", dimse.HandlerFunc(
		func(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
			// Stream r.Data to durable storage, fsync, then answer.
			if _, err := io.Copy(io.Discard, r.Data); err != nil {
				w.Respond(dimse.Status{Code: dimse.StatusOutOfResources, Comment: err.Error()}, nil)
				return
			}
			w.Respond(dimse.Status{Code: dimse.StatusSuccess}, nil)
		}))
	srv := &dimse.Server{
		AETitle: "RELAIS",
		Handler: mux,
		Admit: func(ctx context.Context, rq *dimse.AssociateRequest) *dimse.Rejection {
			if rq.CalledAE != "RELAIS" {
				return &dimse.Rejection{Result: dimse.RejectedPermanent, Source: dimse.SourceServiceUser, Reason: dimse.ReasonCalledAENotRecognized}
			}
			return nil
		},
	}
	_ = srv // srv.ListenAndServe(":11112")
	fmt.Println(mux.AbstractSyntaxes())
	// Output: [1.2.840.10008.1.1 1.2.840.10008.5.1.4.1.1.2]
}

func ExampleDial() {
	ctx := context.Background()
	as, err := dimse.Dial(ctx, "pacs.example:104", dimse.DialOptions{
		CallingAE: "RELAIS", CalledAE: "PACS",
		Contexts: []dimse.ProposedContext{
			{AbstractSyntax: dimse.VerificationSOPClass, TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}},
		},
	})
	if err != nil {
		log.Print(err) // a *dimse.Rejection when the peer refuses
		return
	}
	defer as.Release(ctx)
	st, err := as.Echo(ctx)
	fmt.Println(st, err)
}

// Example_recorder tests a handler without a network.
func Example_recorder() {
	var rec dimsetest.Recorder
	mux := dimse.NewServeMux()
	mux.Handle(dimse.CEcho, dimse.VerificationSOPClass, dimse.EchoHandler)
	mux.ServeDIMSE(context.Background(), &rec, &dimse.Request{Command: dimse.Command{Field: dimse.CEchoRQ, AffectedSOPClassUID: dimse.VerificationSOPClass}})
	mux.ServeDIMSE(context.Background(), &rec, &dimse.Request{Command: dimse.Command{Field: dimse.CFindRQ, AffectedSOPClassUID: "1.2.3"}})
	var rec2 dimsetest.Recorder
	mux.ServeDIMSE(context.Background(), &rec2, &dimse.Request{Command: dimse.Command{Field: dimse.CFindRQ, AffectedSOPClassUID: "1.2.3"}})
	fmt.Printf("0x%04X 0x%04X\n", rec.Final().Status.Code, rec2.Final().Status.Code)
	// Output: 0x0000 0x0122
}
